//! Training: the shared async loop, its events, optimisers, schedules, early stopping,
//! evaluation and checkpoints.

mod checkpoint;
mod early_stop;
mod evaluate;
mod events;
mod fused_adam;
mod layer_groups;
mod learner;
mod loss_reads;
mod optim;
mod plan;
mod points;
mod precision;
mod proximal;
mod retention;
mod run;
mod schedule;
mod tracker;

pub use crate::model::{BatchLoss, BatchTargets, make_batch, task_loss};
#[cfg(not(target_family = "wasm"))]
pub use checkpoint::MemoryCheckpoints;
pub use checkpoint::{BestRecord, CheckpointData, CheckpointSink, ResumePoint, TrainerState};
pub use early_stop::{EarlyStopState, WatchState};
pub use evaluate::evaluate;
pub use events::{CancelToken, HistoryEntry, Progress, TrainEvent};
pub use layer_groups::LrGroups;
pub use learner::{Learner, Started, StepReport};
pub use loss_reads::LossReads;
pub use optim::{build_optimizer, clip_global_norm, global_grad_norm};
pub use plan::RunPlan;
pub use points::{
    GRAD_NORM_SERIES, LEARNING_RATE_SERIES, MetricPoint, TRAIN_LOSS_SERIES, points_of, test_points,
};
pub use precision::configure_precision;
pub use proximal::ProximalAnchor;
pub use retention::{RankedCheckpoint, retain_top_k};
pub use run::{RunSummary, TrainInputs, TrainOutcome, TrainRequest, YieldFn, train};
pub use schedule::learning_rate;
pub use tracker::{Goal, Tracker, Verdict};
