//! `max_pool2d`: 2-D max pooling over `[channels, height, width]` samples.

use super::activations::Activations;
use super::kind::{InputLayout, LayerForward, LayerKind};
use super::registry::Layer;
use super::sample_shape::{SampleShape, Window};
use crate::error::Result;
use crate::field_checks::at_least_one;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `max_pool2d` layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxPool2dSpec {
    /// Square window size.
    pub kernel: usize,
    /// Stride (default: the kernel size).
    #[serde(default)]
    pub stride: Option<usize>,
}

impl MaxPool2dSpec {
    fn stride(&self) -> usize {
        self.stride.unwrap_or(self.kernel)
    }
}

impl LayerKind for MaxPool2dSpec {
    fn validate(&self, at: &str) -> Result<()> {
        at_least_one(&format!("{at}.kernel"), self.kernel)?;
        match self.stride {
            Some(stride) => at_least_one(&format!("{at}.stride"), stride),
            None => Ok(()),
        }
    }

    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        let (c, h, w) = input.image(at, "max_pool2d")?;
        let window = Window {
            kernel: self.kernel,
            stride: self.stride(),
            padding: 0,
        };
        Ok(SampleShape::Image(
            c,
            window.output(at, "max_pool2d", h)?,
            window.output(at, "max_pool2d", w)?,
        ))
    }

    fn build(&self, _input: SampleShape, _outputs: usize, _device: &Device) -> Layer {
        let stride = self.stride();
        Layer::MaxPool2d(
            MaxPool2dConfig::new([self.kernel, self.kernel])
                .with_strides([stride, stride])
                .init(),
        )
    }
}

impl LayerForward for MaxPool2d {
    fn forward(&self, x: Activations) -> Activations {
        x.map(|v| v, |i| self.forward(i), |s| s)
    }

    fn input_layout(&self) -> InputLayout {
        InputLayout::Images
    }
}
