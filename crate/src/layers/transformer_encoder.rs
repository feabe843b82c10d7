//! `transformer_encoder`: burn's transformer encoder over a sequence `[len, d_model]`, with
//! the padding masked out of attention.

use super::activations::{Activations, Steps};
use super::kind::{LayerForward, LayerKind};
use super::registry::Layer;
use super::sample_shape::{SampleShape, wide};
use crate::error::{KilnError, Result};
use crate::field_checks::{at_least_one, probability};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a `transformer_encoder` layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformerEncoderSpec {
    /// The model width; must equal the input's features when given.
    #[serde(default)]
    pub d_model: Option<usize>,
    /// Attention heads (must divide d_model).
    pub heads: usize,
    /// Encoder layers.
    #[serde(default = "one")]
    pub layers: usize,
    /// Dropout inside the encoder.
    #[serde(default)]
    pub dropout: f64,
    /// The feed-forward width (default 4 × d_model).
    #[serde(default)]
    pub ff: Option<usize>,
}

fn one() -> usize {
    1
}

impl LayerKind for TransformerEncoderSpec {
    fn validate(&self, at: &str) -> Result<()> {
        at_least_one(&format!("{at}.heads"), self.heads)?;
        at_least_one(&format!("{at}.layers"), self.layers)?;
        probability(&format!("{at}.dropout"), self.dropout)
    }

    fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
        let (_, features) = input.sequence(at, "transformer_encoder")?;
        if let Some(d_model) = self.d_model.filter(|d| *d != features) {
            return Err(KilnError::Config(format!(
                "{at}: `transformer_encoder` d_model is {d_model}, but its input has {features} \
                 features per step; set d_model to {features} or leave it out"
            )));
        }
        let heads = self.heads;
        if heads == 0 || features % heads != 0 {
            return Err(KilnError::Config(format!(
                "{at}: `transformer_encoder` heads must divide d_model {features}, got {heads}"
            )));
        }
        Ok(input)
    }

    fn parameters(&self, input: SampleShape, _outputs: usize) -> Option<u64> {
        let d = wide(input.features());
        let ff = self.ff.map_or(d.checked_mul(4)?, wide);
        let attention = d.checked_mul(d)?.checked_add(d)?.checked_mul(4)?;
        let feed_forward = d
            .checked_mul(ff)?
            .checked_mul(2)?
            .checked_add(ff.checked_add(d)?)?;
        attention
            .checked_add(feed_forward)?
            .checked_add(d.checked_mul(4)?)?
            .checked_mul(wide(self.layers))
    }

    fn build(&self, input: SampleShape, _outputs: usize, device: &Device) -> Layer {
        let d_model = input.features();
        Layer::TransformerEncoder(
            TransformerEncoderConfig::new(
                d_model,
                self.ff.unwrap_or(4 * d_model),
                self.heads,
                self.layers,
            )
            .with_dropout(self.dropout)
            .init(device),
        )
    }
}

impl LayerForward for TransformerEncoder {
    fn forward(&self, x: Activations) -> Activations {
        let steps = x.into_steps();
        let mut input = TransformerEncoderInput::new(steps.x);
        if let Some(padding) = steps.padding.clone() {
            input = input.mask_pad(padding);
        }
        Activations::Sequences(Steps {
            x: self.forward(input),
            padding: steps.padding,
        })
    }
}
