//! The activation functions, applied elementwise to any batch: `relu`, `gelu`, `tanh`,
//! `sigmoid`. None has parameters or changes the shape.

use super::activations::{Activations, every_rank};
use super::kind::{InputLayout, LayerForward, LayerKind};
use super::registry::Layer;
use super::sample_shape::SampleShape;
use crate::error::Result;
use burn::nn::{Gelu, Relu, Sigmoid, Tanh};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Declares an activation kind: its (empty) config form, how it is built and its forward pass.
macro_rules! activation {
    ($(#[doc = $doc:literal])* $spec:ident => $variant:ident($module:expr)) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $spec {}

        impl LayerKind for $spec {
            fn output(&self, _at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
                Ok(input)
            }

            fn build(&self, _input: SampleShape, _outputs: usize, _device: &Device) -> Layer {
                Layer::$variant($module)
            }
        }

        impl LayerForward for $variant {
            fn forward(&self, x: Activations) -> Activations {
                every_rank!(x, |t| self.forward(t))
            }

            fn input_layout(&self) -> InputLayout {
                InputLayout::Any
            }
        }
    };
}

activation! {
    /// The config form of a `relu` layer.
    ReluSpec => Relu(Relu)
}
activation! {
    /// The config form of a `gelu` layer.
    GeluSpec => Gelu(Gelu::new())
}
activation! {
    /// The config form of a `tanh` layer.
    TanhSpec => Tanh(Tanh)
}
activation! {
    /// The config form of a `sigmoid` layer.
    SigmoidSpec => Sigmoid(Sigmoid)
}
