//! `batch_norm`: batch normalisation over vector features or image channels.

use super::activations::Activations;
use super::kind::{InputLayout, LayerForward, LayerKind, TorchParameter};
use super::registry::Layer;
use super::sample_shape::{SampleShape, wide};
use crate::error::{KilnError, Result};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `batch_norm` layer (no parameters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchNormSpec {}

impl LayerKind for BatchNormSpec {
    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        if matches!(input, SampleShape::Sequence(..)) {
            return Err(KilnError::Config(format!(
                "{at}: `batch_norm` needs vectors or images; use `layer_norm` on sequences"
            )));
        }
        Ok(input)
    }

    fn parameters(&self, input: SampleShape, _outputs: usize) -> Option<u64> {
        wide(input.features()).checked_mul(2)
    }

    fn build(&self, input: SampleShape, _outputs: usize, device: &Device) -> Layer {
        Layer::BatchNorm(BatchNormConfig::new(input.features()).init(device))
    }
}

impl LayerForward for BatchNorm {
    fn forward(&self, x: Activations) -> Activations {
        x.map(|v| self.forward(v), |i| self.forward(i), |s| s)
    }

    fn input_layout(&self) -> InputLayout {
        InputLayout::Images
    }

    fn torch_parameters(&self) -> &'static [TorchParameter] {
        const PARAMETERS: &[TorchParameter] = &[
            TorchParameter::renamed("weight", "gamma"),
            TorchParameter::renamed("bias", "beta"),
            TorchParameter::same("running_mean"),
            TorchParameter::same("running_var"),
            TorchParameter {
                torch: "num_batches_tracked",
                burn: None,
                transpose: false,
            },
        ];
        PARAMETERS
    }
}
