//! Training: the shared async loop, its events, optimisers, schedules, early stopping,
//! evaluation and checkpoints.

mod batch;
mod checkpoint;
mod cpu_tensor;
mod cross_entropy;
mod early_stop;
mod evaluate;
mod events;
mod fused_adam;
mod optim;
mod run;
mod schedule;

pub use checkpoint::{BestRecord, CheckpointData, CheckpointSink, ResumePoint, TrainerState};
pub use early_stop::{EarlyStopState, WatchState, improves};
pub use evaluate::evaluate;
pub use events::{CancelToken, HistoryEntry, Progress, TrainEvent};
pub use optim::{build_optimizer, clip_global_norm, global_grad_norm};
pub use run::{TrainOutcome, TrainRequest, YieldFn, lower_is_better, train};
pub use schedule::learning_rate;
