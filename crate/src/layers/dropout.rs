//! `dropout`: randomly zeroes activations while training (any batch, any shape).

use super::activations::{Activations, every_rank};
use super::kind::{InputLayout, LayerForward, LayerKind};
use super::registry::Layer;
use super::sample_shape::SampleShape;
use crate::error::Result;
use crate::field_checks::probability;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `dropout` layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropoutSpec {
    /// Probability of zeroing an activation, in [0, 1).
    pub prob: f64,
}

impl LayerKind for DropoutSpec {
    fn validate(&self, at: &str) -> Result<()> {
        probability(&format!("{at}.prob"), self.prob)
    }

    fn output(&self, _at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        Ok(input)
    }

    fn build(&self, _input: SampleShape, _outputs: usize, _device: &Device) -> Layer {
        Layer::Dropout(DropoutConfig::new(self.prob).init())
    }
}

impl LayerForward for Dropout {
    fn forward(&self, x: Activations) -> Activations {
        every_rank!(x, |t| self.forward(t))
    }

    fn input_layout(&self) -> InputLayout {
        InputLayout::Any
    }
}
