//! Evaluation metrics, computed on the host from predictions read back in one batch.

mod classification;
mod regression;
mod report;

pub use crate::config::{LEARNING_RATE, MetricName, Split, direction_of};
pub use classification::ConfusionMatrix;
pub use regression::regression_scores;
pub use report::{EvalReport, classification_report, regression_report};
