//! What the training loop reports while it runs, and how callers cancel it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The latest state of a running job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Current epoch, 1-based.
    pub epoch: usize,
    /// Epochs planned.
    pub epochs: usize,
    /// Batches processed so far.
    pub step: u64,
    /// Batches planned for the whole run.
    pub total_steps: u64,
    /// Mean training loss over the steps since the previous report.
    pub loss: f64,
    /// Learning rate of the last optimiser step.
    pub learning_rate: f64,
    /// Global L2 norm of the last logged gradient.
    pub grad_norm: Option<f64>,
    /// Training throughput.
    pub samples_per_sec: f64,
    /// Estimated seconds to finish.
    pub eta_seconds: f64,
    /// Training time so far in seconds, resumed sessions included.
    #[serde(default)]
    pub elapsed_seconds: f64,
    /// The latest validation metrics (`val_loss`, `val_accuracy`, ...).
    pub metrics: BTreeMap<String, f64>,
}

/// One entry of the run's history: the metrics at an evaluation point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Batches processed.
    pub step: u64,
    /// `train_loss`, `val_*` and `lr`.
    pub metrics: BTreeMap<String, f64>,
}

/// Events emitted by the training loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// Training begins (or resumes).
    Started {
        /// Batches planned in total.
        total_steps: u64,
        /// Batches per epoch.
        steps_per_epoch: u64,
        /// The epoch training starts from, 1-based (greater than 1 when resuming).
        start_epoch: usize,
    },
    /// Losses were read from the device.
    Progress(Progress),
    /// The validation split was evaluated.
    Evaluated(HistoryEntry),
    /// A checkpoint was written.
    Checkpoint {
        /// Epochs completed.
        epoch: usize,
        /// Batches processed.
        step: u64,
    },
    /// Something the caller should know that does not stop the run (an empty or tiny split,
    /// a checkpoint skipped as corrupt).
    Warning {
        /// What happened, and what to do about it.
        message: String,
    },
}

/// A cancellation flag shared between the caller and the loop; checked between steps.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, un-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the loop to stop at the next step.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
