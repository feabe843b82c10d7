//! `positional_encoding`: adds sinusoidal position encodings to a sequence `[len, features]`.

use super::activations::Activations;
use super::kind::{LayerForward, LayerKind};
use super::registry::Layer;
use super::sample_shape::SampleShape;
use crate::error::Result;
use burn::nn::{PositionalEncoding, PositionalEncodingConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `positional_encoding` layer (no parameters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PositionalEncodingSpec {}

impl LayerKind for PositionalEncodingSpec {
    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        input.sequence(at, "positional_encoding")?;
        Ok(input)
    }

    fn build(&self, input: SampleShape, _outputs: usize, device: &Device) -> Layer {
        let steps = match input {
            SampleShape::Sequence(len, _) => len,
            _ => 1,
        };
        Layer::PositionalEncoding(
            PositionalEncodingConfig::new(input.features())
                .with_max_sequence_size(steps.max(1))
                .init(device),
        )
    }
}

impl LayerForward for PositionalEncoding {
    fn forward(&self, x: Activations) -> Activations {
        x.map(|v| v, |i| i, |s| self.forward(s))
    }
}
