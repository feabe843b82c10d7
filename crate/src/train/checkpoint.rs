//! Checkpoint contents and the sink that stores them (a directory natively).

use super::early_stop::EarlyStopState;
use super::events::HistoryEntry;
use crate::config::Direction;
use crate::error::Result;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The best evaluation so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BestRecord {
    /// The main metric's value.
    pub score: f64,
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Batches processed.
    pub step: u64,
    /// All metrics at that point.
    pub metrics: BTreeMap<String, f64>,
}

/// Counters and bookkeeping of the loop, saved with every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Epochs completed (the next epoch to run, 0-based).
    pub epochs_done: usize,
    /// Batches processed.
    pub step: u64,
    /// Optimiser steps taken (drives the learning-rate schedule).
    pub optimizer_steps: u64,
    /// The best evaluation so far.
    pub best: Option<BestRecord>,
    /// Early stopping progress.
    pub early_stop: EarlyStopState,
    /// Metrics at every evaluation.
    pub history: Vec<HistoryEntry>,
    /// Training time before this session, in seconds.
    pub elapsed_secs: f64,
}

/// What the loop hands to a [`CheckpointSink`].
pub struct CheckpointData<'a> {
    /// Counters and bookkeeping.
    pub state: &'a TrainerState,
    /// Current weights (burnpack).
    pub model_weights: &'a [u8],
    /// Weights of the best model so far (burnpack).
    pub best_weights: Option<&'a [u8]>,
    /// The optimiser, whose state the sink serialises.
    pub optimizer: &'a ModuleOptimizer,
    /// The main metric at this checkpoint, for top-k ranking.
    pub score: Option<f64>,
    /// Which way the score is better.
    pub direction: Direction,
}

/// Where checkpoints go. The native implementation writes directories; serialising the
/// optimiser reads device memory synchronously, so sinks are for native targets.
pub trait CheckpointSink {
    /// Stores a checkpoint.
    fn save(&mut self, checkpoint: CheckpointData<'_>) -> Result<()>;

    /// The most recent checkpoint's location, for error messages.
    fn last_location(&self) -> Option<String>;
}

/// Everything needed to continue a run.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// Counters and bookkeeping.
    pub state: TrainerState,
    /// Weights to continue from (burnpack).
    pub model_weights: Vec<u8>,
    /// Optimiser state (burnpack).
    pub optimizer: Vec<u8>,
    /// Weights of the best model so far.
    pub best_weights: Option<Vec<u8>>,
    /// What the caller should hear about how the point was found (newer checkpoints skipped
    /// as corrupt); reported as `warning` events when training resumes.
    pub warnings: Vec<String>,
}

/// A [`CheckpointSink`] that keeps every checkpoint in memory as a [`ResumePoint`] (tests, and
/// runs that resume in the same process). Native only: it serialises the optimiser, which
/// reads device memory synchronously.
#[cfg(not(target_family = "wasm"))]
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    /// The checkpoints, oldest first.
    pub points: Vec<ResumePoint>,
}

#[cfg(not(target_family = "wasm"))]
impl CheckpointSink for MemoryCheckpoints {
    fn save(&mut self, c: CheckpointData<'_>) -> Result<()> {
        let optimizer = c.optimizer.into_bytes().map_err(|e| {
            crate::error::KilnError::Internal(format!("cannot serialise the optimizer: {e}"))
        })?;
        self.points.push(ResumePoint {
            state: c.state.clone(),
            model_weights: c.model_weights.to_vec(),
            optimizer: optimizer.to_vec(),
            best_weights: c.best_weights.map(<[u8]>::to_vec),
            warnings: Vec::new(),
        });
        Ok(())
    }

    fn last_location(&self) -> Option<String> {
        let last = self.points.last()?;
        Some(format!("memory (after epoch {})", last.state.epochs_done))
    }
}
