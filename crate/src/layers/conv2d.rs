//! `conv2d`: a 2-D convolution over `[channels, height, width]` samples.

use super::activations::Activations;
use super::kind::{InputLayout, LayerForward, LayerKind, TorchParameter};
use super::registry::Layer;
use super::sample_shape::{SampleShape, Window, wide};
use crate::error::Result;
use crate::field_checks::at_least_one;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `conv2d` layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conv2dSpec {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    #[serde(default = "one")]
    pub stride: usize,
    /// Zero padding on every side.
    #[serde(default)]
    pub padding: usize,
}

fn one() -> usize {
    1
}

impl Conv2dSpec {
    fn window(&self) -> Window {
        Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

impl LayerKind for Conv2dSpec {
    fn validate(&self, at: &str) -> Result<()> {
        at_least_one(&format!("{at}.channels"), self.channels)?;
        at_least_one(&format!("{at}.kernel"), self.kernel)?;
        at_least_one(&format!("{at}.stride"), self.stride)
    }

    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        let (_, h, w) = input.image(at, "conv2d")?;
        let window = self.window();
        Ok(SampleShape::Image(
            self.channels,
            window.output(at, "conv2d", h)?,
            window.output(at, "conv2d", w)?,
        ))
    }

    fn parameters(&self, input: SampleShape, _outputs: usize) -> Option<u64> {
        wide(input.features())
            .checked_mul(wide(self.channels))?
            .checked_mul(wide(self.kernel))?
            .checked_mul(wide(self.kernel))?
            .checked_add(wide(self.channels))
    }

    fn build(&self, input: SampleShape, _outputs: usize, device: &Device) -> Layer {
        let (kernel, stride, padding) = (self.kernel, self.stride, self.padding);
        Layer::Conv2d(
            Conv2dConfig::new([input.features(), self.channels], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .init(device),
        )
    }
}

impl LayerForward for Conv2d {
    fn forward(&self, x: Activations) -> Activations {
        // Shape inference only places image layers after image inputs.
        x.map(|v| v, |i| self.forward(i), |s| s)
    }

    fn input_layout(&self) -> InputLayout {
        InputLayout::Images
    }

    fn torch_parameters(&self) -> &'static [TorchParameter] {
        const PARAMETERS: &[TorchParameter] =
            &[TorchParameter::same("weight"), TorchParameter::same("bias")];
        PARAMETERS
    }
}
