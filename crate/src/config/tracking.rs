//! Experiment tracking settings: where a native run's params, metrics and artifacts are logged.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Experiment trackers a run logs to. Native runs only (`kiln train`, `kiln serve` jobs): a
/// config naming one is refused in the browser and in Node's wasm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    /// An MLflow tracking server (its REST API; no Python needed by Kiln).
    pub mlflow: Option<MlflowConfig>,
}

impl TrackingConfig {
    /// Whether no tracker is configured.
    pub fn is_empty(&self) -> bool {
        self.mlflow.is_none()
    }
}

/// Logging a run to MLflow: params (the resolved config, flattened), metrics at the loop's read
/// points in batches, tags (job id, backend, Kiln version), artifacts at the end, and the run's
/// final status (FINISHED, FAILED or KILLED).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowConfig {
    /// The tracking server, e.g. `http://127.0.0.1:5000` (or `kiln train --mlflow URI`, or the
    /// default of `kiln serve --mlflow URI`).
    pub uri: Option<String>,
    /// The experiment, created when missing (default: the config's `name`).
    pub experiment: Option<String>,
    /// The MLflow run's name (default: `<name>-<job id>`).
    pub run_name: Option<String>,
    /// Log into this existing MLflow run instead of creating one (resuming it).
    pub run_id: Option<String>,
    /// Upload the best model, `run.json`, `holdout.csv` and the config as artifacts at the end.
    pub log_artifacts: bool,
}

impl Default for MlflowConfig {
    fn default() -> Self {
        Self {
            uri: None,
            experiment: None,
            run_name: None,
            run_id: None,
            log_artifacts: true,
        }
    }
}
