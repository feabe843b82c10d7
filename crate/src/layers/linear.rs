//! `linear`: a fully connected layer (image and sequence inputs are flattened first).

use super::activations::Activations;
use super::kind::{LayerForward, LayerKind, TorchParameter};
use super::registry::Layer;
use super::sample_shape::{SampleShape, wide};
use super::small_linear::linear_forward;
use crate::error::Result;
use crate::field_checks::at_least_one;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `linear` layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    /// Output features; omit on the last layer to use the number of outputs.
    #[serde(default)]
    pub out: Option<usize>,
    /// Whether to learn a bias.
    #[serde(default = "yes")]
    pub bias: bool,
}

fn yes() -> bool {
    true
}

impl LinearSpec {
    /// A layer of `out` features with a bias; `None` gives the data's number of outputs.
    pub fn new(out: Option<usize>) -> Self {
        Self { out, bias: true }
    }

    fn width(&self, outputs: usize) -> usize {
        self.out.unwrap_or(outputs)
    }
}

impl LayerKind for LinearSpec {
    fn validate(&self, at: &str) -> Result<()> {
        match self.out {
            Some(out) => at_least_one(&format!("{at}.out"), out),
            None => Ok(()),
        }
    }

    fn output(&self, _at: &str, _input: SampleShape, outputs: usize) -> Result<SampleShape> {
        Ok(SampleShape::Vector(self.width(outputs)))
    }

    fn parameters(&self, input: SampleShape, outputs: usize) -> Option<u64> {
        let out = wide(self.width(outputs));
        wide(input.len())
            .checked_mul(out)?
            .checked_add(if self.bias { out } else { 0 })
    }

    fn build(&self, input: SampleShape, outputs: usize, device: &Device) -> Layer {
        Layer::Linear(
            LinearConfig::new(input.len(), self.width(outputs))
                .with_bias(self.bias)
                .init(device),
        )
    }
}

impl LayerForward for Linear {
    fn forward(&self, x: Activations) -> Activations {
        Activations::Vectors(linear_forward(self, x.into_vectors()))
    }

    fn torch_parameters(&self) -> &'static [TorchParameter] {
        const PARAMETERS: &[TorchParameter] = &[
            TorchParameter {
                torch: "weight",
                burn: Some("weight"),
                transpose: true,
            },
            TorchParameter::same("bias"),
        ];
        PARAMETERS
    }
}
