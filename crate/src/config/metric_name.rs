//! Reported metric names: a split and a metric, printed and parsed as `val_loss`.

use super::{Direction, Metric, from_serde_name};
use crate::error::KilnError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The data a metric was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The training batches (their running mean loss).
    Train,
    /// The validation split.
    Val,
    /// The test split, measured once with the best model.
    Test,
}

crate::display_serde_name!(Split);

/// A metric as reported in histories, events and results: `val_loss`, `test_accuracy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricName {
    /// Where it was measured.
    pub split: Split,
    /// What was measured.
    pub metric: Metric,
}

/// The learning rate's name in histories (it belongs to no split).
pub const LEARNING_RATE: &str = "lr";

impl MetricName {
    /// `split` + `metric`.
    pub const fn new(split: Split, metric: Metric) -> Self {
        Self { split, metric }
    }

    /// Which way is better for this metric.
    pub fn direction(self) -> Direction {
        self.metric.direction()
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.split, self.metric)
    }
}

impl FromStr for MetricName {
    type Err = KilnError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        name.split_once('_')
            .and_then(|(split, metric)| {
                Some(Self::new(from_serde_name(split)?, from_serde_name(metric)?))
            })
            .ok_or_else(|| {
                KilnError::InvalidArgument(format!(
                    "`{name}` is not a metric name (split_metric, e.g. val_loss, test_accuracy)"
                ))
            })
    }
}

/// The direction of a reported metric by name; names that are no metric (such as `lr`) count
/// as lower-is-better.
pub fn direction_of(name: &str) -> Direction {
    name.parse::<MetricName>()
        .map_or(Direction::Min, MetricName::direction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_as_split_underscore_metric() {
        let name = MetricName::new(Split::Val, Metric::F1Macro);
        assert_eq!(name.to_string(), "val_f1_macro");
        assert_eq!("val_f1_macro".parse::<MetricName>().ok(), Some(name));
        assert_eq!(
            "test_loss".parse::<MetricName>().ok(),
            Some(MetricName::new(Split::Test, Metric::Loss))
        );
        assert!("loss".parse::<MetricName>().is_err());
        assert!("val_speed".parse::<MetricName>().is_err());
        assert!("dev_loss".parse::<MetricName>().is_err());
    }

    #[test]
    fn direction_follows_the_metric() {
        assert_eq!(direction_of("val_loss"), Direction::Min);
        assert_eq!(direction_of("val_accuracy"), Direction::Max);
        assert_eq!(direction_of("test_r2"), Direction::Max);
        assert_eq!(direction_of("train_loss"), Direction::Min);
    }
}
