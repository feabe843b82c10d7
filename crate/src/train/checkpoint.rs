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

/// The parts of a [`ResumePoint`] in its one-blob form, after the JSON header.
#[derive(Serialize, Deserialize)]
struct BlobHeader {
    format: String,
    state: TrainerState,
    model_weights: usize,
    optimizer: usize,
    best_weights: Option<usize>,
}

/// The format tag of [`ResumePoint::to_bytes`].
const BLOB_FORMAT: &str = "kiln-resume-point-1";

impl ResumePoint {
    /// The point as one blob (a browser keeps it in IndexedDB): an 8-byte little-endian header
    /// length, a JSON header (format, state, blob lengths), then the weights, the optimiser
    /// state and the best weights.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_vec(&BlobHeader {
            format: BLOB_FORMAT.into(),
            state: self.state.clone(),
            model_weights: self.model_weights.len(),
            optimizer: self.optimizer.len(),
            best_weights: self.best_weights.as_ref().map(Vec::len),
        })
        .map_err(|e| crate::error::KilnError::Internal(format!("encoding a checkpoint: {e}")))?;
        let mut out = Vec::with_capacity(8 + header.len() + self.model_weights.len() * 2);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.model_weights);
        out.extend_from_slice(&self.optimizer);
        if let Some(best) = &self.best_weights {
            out.extend_from_slice(best);
        }
        Ok(out)
    }

    /// A point from [`ResumePoint::to_bytes`]'s blob; an error names what is wrong with it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt =
            |why: &str| crate::error::KilnError::Model(format!("the checkpoint is corrupt: {why}"));
        let length = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| corrupt("too short"))? as usize;
        let body = bytes.get(8..).ok_or_else(|| corrupt("too short"))?;
        let header: BlobHeader = serde_json::from_slice(
            body.get(..length)
                .ok_or_else(|| corrupt("truncated header"))?,
        )
        .map_err(|_| corrupt("unreadable header"))?;
        if header.format != BLOB_FORMAT {
            return Err(corrupt("another format"));
        }
        let mut rest = &body[length..];
        let mut take = |n: usize| -> Result<Vec<u8>> {
            let (part, tail) = rest
                .split_at_checked(n)
                .ok_or_else(|| corrupt("truncated"))?;
            rest = tail;
            Ok(part.to_vec())
        };
        let model_weights = take(header.model_weights)?;
        let optimizer = take(header.optimizer)?;
        let best_weights = header.best_weights.map(&mut take).transpose()?;
        Ok(Self {
            state: header.state,
            model_weights,
            optimizer,
            best_weights,
            warnings: Vec::new(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_point_goes_through_its_blob_and_back() {
        let point = ResumePoint {
            state: TrainerState {
                epochs_done: 3,
                step: 42,
                ..Default::default()
            },
            model_weights: vec![1, 2, 3],
            optimizer: vec![4, 5],
            best_weights: Some(vec![6]),
            warnings: Vec::new(),
        };
        let bytes = point.to_bytes().unwrap();
        let back = ResumePoint::from_bytes(&bytes).unwrap();
        assert_eq!(back.state, point.state);
        assert_eq!(
            (back.model_weights, back.optimizer, back.best_weights),
            (vec![1, 2, 3], vec![4, 5], Some(vec![6]))
        );
        assert!(ResumePoint::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(ResumePoint::from_bytes(b"short").is_err());
    }
}
