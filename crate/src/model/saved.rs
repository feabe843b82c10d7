//! The saved-model format: the same bytes on every target.
//!
//! Layout: the 8-byte magic `KILNMDL1`, a little-endian `u32` header length, the header as
//! JSON (config, shapes, normalisation, metrics), then the weights as burnpack bytes.

use super::ModelId;
use super::network::Network;
use super::presets::resolve_layers;
use super::trainable::{CONFIG_ARCHITECTURE, ConfigModel, ModelBuilder, ModelSpec};
use super::weights::import_weights;
use crate::config::{Config, Task};
use crate::data::{Normalization, Vocabulary};
use crate::error::{KilnError, Result, cut_short};
use crate::layers::{SampleShape, infer_shapes};
use crate::limits::checked_elements;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The first bytes of every saved model.
pub const MODEL_MAGIC: &[u8; 8] = b"KILNMDL1";

/// Everything about a saved model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    /// The model id (a GUID).
    pub model_id: String,
    /// The run's name.
    pub name: String,
    /// The architecture ([`super::ModelBuilder::architecture`]); files written before it was
    /// recorded hold config-built networks.
    #[serde(default = "config_architecture")]
    pub architecture: String,
    /// Milliseconds since the Unix epoch when the model was saved.
    pub created_unix_ms: u64,
    /// The Kiln version that wrote the file.
    pub kiln_version: String,
    /// The full resolved config it was trained with.
    pub config: Config,
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
    /// Classes (classification) or 1 (regression).
    pub num_outputs: usize,
    /// Feature standardisation to apply before the network.
    pub normalization: Option<Normalization>,
    /// Metrics measured when it was saved (e.g. `test_accuracy`).
    pub metrics: BTreeMap<String, f64>,
    /// A text model's vocabulary and tokenizer: inputs are its token ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<Vocabulary>,
}

fn config_architecture() -> String {
    CONFIG_ARCHITECTURE.into()
}

/// A model as stored: header plus burnpack weights.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModel {
    /// Metadata.
    pub header: ModelHeader,
    /// burnpack weights.
    pub weights: Vec<u8>,
}

/// The largest model header: config, shapes, normalisation statistics and metrics.
pub const MAX_HEADER_BYTES: usize = 64 << 20;

impl ModelHeader {
    /// Checks a header read from outside: a valid id, a valid config, a sane input shape and
    /// normalisation statistics that fit it. Errors name the header field.
    pub fn check(&self) -> Result<()> {
        let bad = |field: &str, why: String| {
            KilnError::Model(format!(
                "not a valid Kiln model: header field `{field}`: {why}"
            ))
        };
        ModelId::parse(&self.model_id).map_err(|e| bad("model_id", e.to_string()))?;
        self.config
            .validate()
            .map_err(|e| bad("config", e.to_string()))?;
        let sample_len = checked_elements(&self.input_shape, "input_shape")
            .map_err(|e| bad("input_shape", e.to_string()))?;
        if sample_len == 0 {
            return Err(bad(
                "input_shape",
                format!("{:?} holds no values", self.input_shape),
            ));
        }
        if let Some(vocabulary) = &self.vocabulary {
            if self.input_shape != [vocabulary.max_len] {
                return Err(bad(
                    "vocabulary.max_len",
                    format!(
                        "{} tokens per text, but input_shape is {:?}",
                        vocabulary.max_len, self.input_shape
                    ),
                ));
            }
            if vocabulary.tokens.len() < 3 {
                return Err(bad(
                    "vocabulary.tokens",
                    "needs <pad>, <unk> and at least one token".into(),
                ));
            }
        }
        let min_outputs = match self.config.task {
            Task::Classification => 2,
            Task::Regression => 1,
        };
        if self.num_outputs < min_outputs || self.num_outputs > 1_000_000 {
            return Err(bad(
                "num_outputs",
                format!(
                    "must be in {min_outputs}..=1000000 for this task, got {}",
                    self.num_outputs
                ),
            ));
        }
        if let Some(norm) = &self.normalization {
            for (field, values) in [
                ("normalization.mean", &norm.mean),
                ("normalization.std", &norm.std),
            ] {
                if values.len() != sample_len {
                    return Err(bad(
                        field,
                        format!(
                            "holds {} values but a sample has {sample_len} (input_shape {:?})",
                            values.len(),
                            self.input_shape
                        ),
                    ));
                }
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(bad(field, format!("value {i} is not a finite number")));
                }
            }
            if let Some(i) = norm.std.iter().position(|s| *s <= 0.0) {
                return Err(bad(
                    "normalization.std",
                    format!("value {i} is {}, but every std must be > 0", norm.std[i]),
                ));
            }
        }
        Ok(())
    }
}

impl SavedModel {
    /// Serialises to the portable byte format.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_vec(&self.header)
            .map_err(|e| KilnError::Internal(format!("cannot encode model header: {e}")))?;
        let len = u32::try_from(header.len())
            .map_err(|_| KilnError::Internal("model header is too large".into()))?;
        let mut out = Vec::with_capacity(12 + header.len() + self.weights.len());
        out.extend_from_slice(MODEL_MAGIC);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.weights);
        Ok(out)
    }

    /// Parses the portable byte format, rejecting anything that is not a Kiln model.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt = |why: &str| {
            KilnError::Model(format!(
                "not a valid Kiln model ({why}); export it again with `kiln models export` or model.export()"
            ))
        };
        if bytes.len() < 12 || &bytes[..8] != MODEL_MAGIC {
            return Err(corrupt("missing KILNMDL1 header"));
        }
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        if len > MAX_HEADER_BYTES {
            return Err(corrupt(&format!(
                "its header claims {len} bytes, more than the {MAX_HEADER_BYTES} a model header may have"
            )));
        }
        let end = 12usize
            .checked_add(len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| corrupt("truncated header"))?;
        let header: ModelHeader = serde_json::from_slice(&bytes[12..end])
            .map_err(|e| corrupt(&format!("unreadable header: {e}")))?;
        if bytes.len() == end {
            return Err(corrupt("no weights"));
        }
        header.check()?;
        Ok(Self {
            header,
            weights: bytes[end..].to_vec(),
        })
    }

    /// Builds the model with `builder` on `device` and loads the weights into it, after
    /// checking that the file holds that architecture.
    pub fn load_with<B: ModelBuilder>(&self, builder: &B, device: &Device) -> Result<B::Model> {
        self.check_architecture(&builder.architecture())?;
        let spec = ModelSpec {
            config: &self.header.config,
            input_shape: &self.header.input_shape,
            num_outputs: self.header.num_outputs,
            vocab_size: self.header.vocabulary.as_ref().map(|v| v.size()),
        };
        let model = builder
            .build(&spec, device)
            .map_err(|e| KilnError::Model(format!("the model's architecture is invalid: {e}")))?;
        import_weights(model, &self.weights)
    }

    fn check_architecture(&self, expected: &str) -> Result<()> {
        let found = &self.header.architecture;
        if found == expected {
            return Ok(());
        }
        let hint = if found == CONFIG_ARCHITECTURE {
            " (a network from the config's model section: load it without a builder)".to_string()
        } else {
            let found = cut_short(found);
            format!(" (a custom model: load it with the `{found}` builder it was trained with)")
        };
        Err(KilnError::Model(format!(
            "this model's architecture is `{}`, not `{expected}`{hint}",
            cut_short(found)
        )))
    }

    /// Rebuilds a config-built network on `device` and loads the weights into it. The
    /// architecture is checked against the limits and the weights' size before anything is
    /// allocated.
    pub fn load_network(&self, device: &Device) -> Result<Network> {
        self.check_architecture(CONFIG_ARCHITECTURE)?;
        let layers = resolve_layers(&self.header.config.model);
        let vocab = self.header.vocabulary.as_ref().map(|v| v.size());
        let sample = SampleShape::from_input(&self.header.input_shape, vocab)
            .map_err(|e| KilnError::Model(format!("the model's input shape is invalid: {e}")))?;
        let shapes = infer_shapes(&layers, sample, self.header.num_outputs)
            .map_err(|e| KilnError::Model(format!("the model's architecture is invalid: {e}")))?;
        let parameters: u64 = layers
            .iter()
            .zip(&shapes)
            .filter_map(|(layer, input)| layer.kind().parameters(*input, self.header.num_outputs))
            .sum();
        // Every parameter takes at least 2 bytes (f16) in the weights.
        if (self.weights.len() as u64) < parameters.saturating_mul(2) {
            return Err(KilnError::Model(format!(
                "the weights ({} bytes) are too small for the {parameters} parameters its header \
                 describes: the file is truncated or tampered with",
                self.weights.len()
            )));
        }
        self.load_with(&ConfigModel::default(), device)
    }

    /// The task the model was trained for.
    pub fn task(&self) -> Task {
        self.header.config.task
    }
}
