//! A run's scalar series, one point per metric per read point: what trackers log and plots draw.

use super::TrainEvent;
use crate::config::LEARNING_RATE;

/// One value of one series at one optimiser step.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// The series: `train_loss`, `learning_rate`, `grad_norm`, `val_loss`, `val_accuracy`, ...
    pub name: String,
    /// Optimiser steps so far.
    pub step: u64,
    /// The value.
    pub value: f64,
}

/// The per-step training loss (mean over the steps since the previous progress report).
pub const TRAIN_LOSS_SERIES: &str = "train_loss";
/// The learning rate of the last optimiser step.
pub const LEARNING_RATE_SERIES: &str = "learning_rate";
/// The global L2 norm of the last logged gradient.
pub const GRAD_NORM_SERIES: &str = "grad_norm";

/// The points an event adds to the run's series. Progress reports give `train_loss`,
/// `learning_rate` and `grad_norm`; evaluations give their validation metrics (`val_*`; their
/// own `train_loss` and `lr` repeat what progress reports already give and are left out).
pub fn points_of(event: &TrainEvent) -> Vec<MetricPoint> {
    let point = |name: &str, step: u64, value: f64| MetricPoint {
        name: name.to_string(),
        step,
        value,
    };
    match event {
        TrainEvent::Progress(p) => {
            let mut points = vec![
                point(TRAIN_LOSS_SERIES, p.step, p.loss),
                point(LEARNING_RATE_SERIES, p.step, p.learning_rate),
            ];
            if let Some(norm) = p.grad_norm {
                points.push(point(GRAD_NORM_SERIES, p.step, norm));
            }
            points
        }
        TrainEvent::Evaluated(entry) => entry
            .metrics
            .iter()
            .filter(|(name, _)| *name != TRAIN_LOSS_SERIES && *name != LEARNING_RATE)
            .map(|(name, value)| point(name, entry.step, *value))
            .collect(),
        _ => Vec::new(),
    }
}

/// The test split's metrics of a finished run (`test_*` of its final metrics) as points at its
/// last step.
pub fn test_points(
    final_metrics: &std::collections::BTreeMap<String, f64>,
    step: u64,
) -> Vec<MetricPoint> {
    final_metrics
        .iter()
        .filter(|(name, _)| name.starts_with("test_"))
        .map(|(name, value)| MetricPoint {
            name: name.clone(),
            step,
            value: *value,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{HistoryEntry, Progress};
    use std::collections::BTreeMap;

    #[test]
    fn progress_and_evaluations_give_their_series() {
        let progress = TrainEvent::Progress(Progress {
            epoch: 1,
            epochs: 2,
            step: 10,
            total_steps: 20,
            loss: 0.5,
            learning_rate: 0.01,
            grad_norm: Some(1.5),
            samples_per_sec: 100.0,
            eta_seconds: 1.0,
            elapsed_seconds: 1.0,
            metrics: BTreeMap::new(),
        });
        let names: Vec<(String, u64, f64)> = points_of(&progress)
            .into_iter()
            .map(|p| (p.name, p.step, p.value))
            .collect();
        assert_eq!(
            names,
            vec![
                ("train_loss".into(), 10, 0.5),
                ("learning_rate".into(), 10, 0.01),
                ("grad_norm".into(), 10, 1.5)
            ]
        );
        let evaluated = TrainEvent::Evaluated(HistoryEntry {
            epoch: 1,
            step: 10,
            metrics: BTreeMap::from([
                ("train_loss".to_string(), 0.4),
                ("lr".to_string(), 0.01),
                ("val_loss".to_string(), 0.6),
                ("val_accuracy".to_string(), 0.8),
            ]),
        });
        let names: Vec<String> = points_of(&evaluated).into_iter().map(|p| p.name).collect();
        assert_eq!(names, vec!["val_accuracy", "val_loss"]);
    }
}
