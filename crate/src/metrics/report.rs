//! Evaluation reports: the metrics a config asks for, from predictions and targets.

use super::{ConfusionMatrix, regression_scores};
use crate::config::Metric;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The result of evaluating a model on one split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Scalar metrics by name (`loss`, `accuracy`, `f1_macro`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// `counts[true][predicted]`, when requested.
    pub confusion_matrix: Option<Vec<Vec<u64>>>,
    /// Number of samples evaluated.
    pub samples: usize,
}

/// Computes the requested metrics for a classification split.
pub fn classification_report(
    wanted: &[Metric],
    loss: f64,
    truth: &[u32],
    predicted: &[u32],
    num_classes: usize,
) -> EvalReport {
    let cm = ConfusionMatrix::new(truth, predicted, num_classes);
    let (macro_avg, weighted) = cm.averages();
    let mut report = EvalReport {
        samples: truth.len(),
        ..EvalReport::default()
    };
    for metric in wanted {
        let value = match metric {
            Metric::Loss => loss,
            Metric::Accuracy => cm.accuracy(),
            Metric::PrecisionMacro => macro_avg[0],
            Metric::RecallMacro => macro_avg[1],
            Metric::F1Macro => macro_avg[2],
            Metric::PrecisionWeighted => weighted[0],
            Metric::RecallWeighted => weighted[1],
            Metric::F1Weighted => weighted[2],
            Metric::ConfusionMatrix => {
                report.confusion_matrix = Some(cm.counts.clone());
                continue;
            }
            Metric::Mse | Metric::Mae | Metric::R2 => continue,
        };
        report.metrics.insert(metric.to_string(), value);
    }
    report.metrics.insert("loss".into(), loss);
    report
}

/// Computes the requested metrics for a regression split.
pub fn regression_report(
    wanted: &[Metric],
    loss: f64,
    truth: &[f32],
    predicted: &[f32],
) -> EvalReport {
    let (mse, mae, r2) = regression_scores(truth, predicted);
    let mut report = EvalReport {
        samples: truth.len(),
        ..EvalReport::default()
    };
    for metric in wanted {
        let value = match metric {
            Metric::Mse => mse,
            Metric::Mae => mae,
            Metric::R2 => r2,
            _ => continue,
        };
        report.metrics.insert(metric.to_string(), value);
    }
    report.metrics.insert("loss".into(), loss);
    report
}
