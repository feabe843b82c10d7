//! Kiln: a config-driven training runtime for burn models — one async training loop for the
//! browser (WebGPU), the edge (CPU wasm) and native GPU servers (wgpu, CUDA).
#![warn(missing_docs)]

pub mod api_schema;
pub mod backend;
pub mod config;
pub mod data;
pub mod error;
pub mod federated;
mod field_checks;
pub mod jobs;
pub mod layers;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod store;
pub mod train;
#[cfg(target_family = "wasm")]
pub mod web;

pub use config::Config;
pub use error::{KilnError, Result};
pub use jobs::{Job, JobStatus, TrainRunInfo};
