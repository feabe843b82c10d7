//! Experiment tracking for native runs (`kiln train`, `kiln serve` jobs): MLflow over its REST
//! API, logged from a thread of its own so a slow or absent server never slows training.

mod api_error;
mod mlflow_api;
mod mlflow_settings;
mod mlflow_tracker;
mod params;
mod run_end;
mod s3_artifacts;

pub use mlflow_api::{MlflowApi, TimedPoint};
pub use mlflow_settings::{MlflowSettings, RUN_ID_FILE, finish_timeout};
pub use mlflow_tracker::{Artifact, MlflowTracker, RunEnd, TrackerReport};
pub use params::flatten_config;
pub use run_end::{finish_tracked_run, run_end};
