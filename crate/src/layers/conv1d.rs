//! `conv1d`: a 1-D convolution over time, `[len, features]` → `[len', channels]`.

use super::activations::{Activations, Steps};
use super::kind::{LayerForward, LayerKind, TorchParameter};
use super::registry::Layer;
use super::sample_shape::{SampleShape, Window, wide};
use crate::error::Result;
use crate::field_checks::at_least_one;
use burn::nn::PaddingConfig1d;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `conv1d` layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conv1dSpec {
    /// Output channels.
    pub channels: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Zero padding on both ends.
    #[serde(default)]
    pub padding: usize,
}

impl LayerKind for Conv1dSpec {
    fn validate(&self, at: &str) -> Result<()> {
        at_least_one(&format!("{at}.channels"), self.channels)?;
        at_least_one(&format!("{at}.kernel"), self.kernel)
    }

    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        let (len, _) = input.sequence(at, "conv1d")?;
        let window = Window {
            kernel: self.kernel,
            stride: 1,
            padding: self.padding,
        };
        Ok(SampleShape::Sequence(
            window.output(at, "conv1d", len)?,
            self.channels,
        ))
    }

    fn parameters(&self, input: SampleShape, _outputs: usize) -> Option<u64> {
        wide(input.features())
            .checked_mul(wide(self.channels))?
            .checked_mul(wide(self.kernel))?
            .checked_add(wide(self.channels))
    }

    fn build(&self, input: SampleShape, _outputs: usize, device: &Device) -> Layer {
        Layer::Conv1d(
            Conv1dConfig::new(input.features(), self.channels, self.kernel)
                .with_padding(PaddingConfig1d::Explicit(self.padding, self.padding))
                .init(device),
        )
    }
}

impl LayerForward for Conv1d {
    /// The output no longer lines up with the tokens, so it carries no padding mask.
    fn forward(&self, x: Activations) -> Activations {
        let steps = x.into_steps();
        let x = self.forward(steps.x.swap_dims(1, 2)).swap_dims(1, 2);
        Activations::Sequences(Steps { x, padding: None })
    }

    fn torch_parameters(&self) -> &'static [TorchParameter] {
        const PARAMETERS: &[TorchParameter] =
            &[TorchParameter::same("weight"), TorchParameter::same("bias")];
        PARAMETERS
    }
}
