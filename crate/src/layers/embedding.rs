//! `embedding`: token ids `[len]` to vectors `[len, dim]`, marking padding (id 0) for the
//! sequence layers after it.

use super::activations::{Activations, Steps};
use super::kind::{LayerForward, LayerKind, TorchParameter};
use super::registry::Layer;
use super::sample_shape::{SampleShape, wide};
use crate::error::{KilnError, Result};
use crate::field_checks::at_least_one;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of an `embedding` layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSpec {
    /// The vector size.
    pub dim: usize,
}

/// The vocabulary size of token inputs (0 for any other input, which shape inference refuses).
fn vocabulary(input: SampleShape) -> usize {
    match input {
        SampleShape::Tokens(_, vocab) => vocab,
        _ => 0,
    }
}

impl LayerKind for EmbeddingSpec {
    fn validate(&self, at: &str) -> Result<()> {
        at_least_one(&format!("{at}.dim"), self.dim)
    }

    fn reads_tokens(&self) -> bool {
        true
    }

    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        match input {
            SampleShape::Tokens(len, _) => Ok(SampleShape::Sequence(len, self.dim)),
            other => Err(KilnError::Config(format!(
                "{at}: `embedding` needs token ids (a `text` data source), but its input is \
                 {other:?}"
            ))),
        }
    }

    fn parameters(&self, input: SampleShape, _outputs: usize) -> Option<u64> {
        wide(vocabulary(input)).checked_mul(wide(self.dim))
    }

    fn build(&self, input: SampleShape, _outputs: usize, device: &Device) -> Layer {
        Layer::Embedding(EmbeddingConfig::new(vocabulary(input), self.dim).init(device))
    }
}

impl LayerForward for Embedding {
    fn forward(&self, x: Activations) -> Activations {
        let ids = x.into_vectors();
        let padding = ids.clone().equal_elem(0.0);
        Activations::Sequences(Steps {
            x: self.forward(ids.int()),
            padding: Some(padding),
        })
    }

    fn torch_parameters(&self) -> &'static [TorchParameter] {
        const PARAMETERS: &[TorchParameter] = &[TorchParameter::same("weight")];
        PARAMETERS
    }
}
