//! Jobs: every training run has an id, a status, the latest progress and a result.

mod holdout;
mod job;
mod run;

pub use holdout::holdout_csv;
pub use job::{Job, JobStatus, TrainRunInfo, now_unix_ms};
pub use run::{BeforeStore, JobOutput, JobRun, run_job};
