//! `flatten`: `[channels, height, width]` (or any sample) to one vector.

use super::activations::Activations;
use super::kind::{LayerForward, LayerKind};
use super::registry::Layer;
use super::sample_shape::SampleShape;
use crate::error::Result;
use burn::module::Module;
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `flatten` layer (no parameters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlattenSpec {}

/// Flattens `[batch, channels, height, width]` to `[batch, features]`.
#[derive(Module, Debug, Default)]
pub struct Flatten;

impl LayerKind for FlattenSpec {
    fn output(&self, _at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        Ok(SampleShape::Vector(input.len()))
    }

    fn build(&self, _input: SampleShape, _outputs: usize, _device: &Device) -> Layer {
        Layer::Flatten(Flatten)
    }
}

impl LayerForward for Flatten {
    fn forward(&self, x: Activations) -> Activations {
        Activations::Vectors(x.into_vectors())
    }
}
