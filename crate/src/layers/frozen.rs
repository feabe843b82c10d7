//! `frozen` (what `trainable: false` reads as): a layer built as its kind builds it, with
//! parameters that take no gradient and no optimiser update.

use super::kind::LayerKind;
use super::registry::{Layer, LayerSpec};
use super::sample_shape::SampleShape;
use crate::error::Result;
use burn::module::Module;
use burn::tensor::Device;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The config form of a frozen layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrozenSpec {
    /// The layer.
    pub layer: Box<LayerSpec>,
}

impl LayerKind for FrozenSpec {
    fn validate(&self, at: &str) -> Result<()> {
        self.layer.kind().validate(at)
    }

    fn reads_tokens(&self) -> bool {
        self.layer.kind().reads_tokens()
    }

    fn output(&self, at: &str, input: SampleShape, outputs: usize) -> Result<SampleShape> {
        self.layer.output(at, input, outputs)
    }

    fn parameters(&self, input: SampleShape, outputs: usize) -> Option<u64> {
        self.layer.kind().parameters(input, outputs)
    }

    fn build(&self, input: SampleShape, outputs: usize, device: &Device) -> Layer {
        self.layer.kind().build(input, outputs, device).no_grad()
    }
}
