//! The saved-model format: the same bytes on every target.
//!
//! Layout: the 8-byte magic `KILNMDL1`, a little-endian `u32` header length, the header as
//! JSON (config, shapes, normalisation, metrics), then the weights as burnpack bytes.

use super::network::Network;
use super::shape::resolve_layers;
use super::weights::import_weights;
use crate::config::{Config, Task};
use crate::data::Normalization;
use crate::error::{KilnError, Result};
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
}

/// A model as stored: header plus burnpack weights.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModel {
    /// Metadata.
    pub header: ModelHeader,
    /// burnpack weights.
    pub weights: Vec<u8>,
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
        let end = 12usize
            .checked_add(len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| corrupt("truncated header"))?;
        let header: ModelHeader = serde_json::from_slice(&bytes[12..end])
            .map_err(|e| corrupt(&format!("unreadable header: {e}")))?;
        if bytes.len() == end {
            return Err(corrupt("no weights"));
        }
        Ok(Self {
            header,
            weights: bytes[end..].to_vec(),
        })
    }

    /// Rebuilds the network on `device` and loads the weights into it.
    pub fn load_network(&self, device: &Device) -> Result<Network> {
        let layers = resolve_layers(&self.header.config.model);
        let network = Network::build(
            &layers,
            &self.header.input_shape,
            self.header.num_outputs,
            device,
        )
        .map_err(|e| KilnError::Model(format!("the model's architecture is invalid: {e}")))?;
        import_weights(network, &self.weights)
    }

    /// The task the model was trained for.
    pub fn task(&self) -> Task {
        self.header.config.task
    }
}
