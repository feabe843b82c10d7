//! What `listModels()`, `model.info` and the server's `/v1/models` report about a model.

use super::saved::ModelHeader;
use serde::Serialize;
use std::collections::BTreeMap;

/// A model's summary: id, name, task, shapes, metrics.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "ModelInfo")]
#[serde(rename_all = "camelCase")]
pub struct ModelSummary {
    /// The model id.
    pub model_id: String,
    /// The run name.
    pub name: String,
    /// `classification` or `regression`.
    pub task: String,
    /// One sample's shape.
    pub input_shape: Vec<usize>,
    /// Classes, or 1 for regression.
    pub num_outputs: usize,
    /// When it was trained (ms since the Unix epoch).
    pub created_unix_ms: u64,
    /// Its final metrics.
    pub metrics: BTreeMap<String, f64>,
}

/// The summary of a model header.
pub fn summary(header: &ModelHeader) -> ModelSummary {
    ModelSummary {
        model_id: header.model_id.clone(),
        name: header.name.clone(),
        task: header.config.task.to_string(),
        input_shape: header.input_shape.clone(),
        num_outputs: header.num_outputs,
        created_unix_ms: header.created_unix_ms,
        metrics: header.metrics.clone(),
    }
}
