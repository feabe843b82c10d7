//! `layer_norm`: layer normalisation over the last dimension (an image's width).

use super::activations::{Activations, every_rank};
use super::kind::{InputLayout, LayerForward, LayerKind, TorchParameter};
use super::registry::Layer;
use super::sample_shape::{SampleShape, wide};
use crate::error::Result;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `layer_norm` layer (no parameters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerNormSpec {}

/// The size of the last dimension, which the layer normalises over.
fn last_dimension(input: SampleShape) -> usize {
    match input {
        SampleShape::Image(_, _, w) => w,
        other => other.features(),
    }
}

impl LayerKind for LayerNormSpec {
    fn output(&self, _at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        Ok(input)
    }

    fn parameters(&self, input: SampleShape, _outputs: usize) -> Option<u64> {
        wide(last_dimension(input)).checked_mul(2)
    }

    fn build(&self, input: SampleShape, _outputs: usize, device: &Device) -> Layer {
        Layer::LayerNorm(LayerNormConfig::new(last_dimension(input)).init(device))
    }
}

impl LayerForward for LayerNorm {
    fn forward(&self, x: Activations) -> Activations {
        every_rank!(x, |t| self.forward(t))
    }

    fn input_layout(&self) -> InputLayout {
        InputLayout::Images
    }

    fn torch_parameters(&self) -> &'static [TorchParameter] {
        const PARAMETERS: &[TorchParameter] = &[
            TorchParameter::renamed("weight", "gamma"),
            TorchParameter::renamed("bias", "beta"),
        ];
        PARAMETERS
    }
}
