//! Predictions as CSV: `prediction,p0,…` per sample for classification, `prediction` for
//! regression (what `kiln predict` and the server's batch predictions write).

use super::predict::argmax_rows;
use crate::config::Task;
use std::fmt::Write;

/// The CSV of `values` (`rows × outputs`, as `Predictor::predict` returns them).
pub fn predictions_csv(values: &[f32], outputs: usize, task: Task) -> String {
    let mut csv = String::new();
    match task {
        Task::Classification => {
            let outputs = outputs.max(1);
            csv.push_str("prediction");
            for c in 0..outputs {
                let _ = write!(csv, ",p{c}");
            }
            csv.push('\n');
            for (row, class) in values
                .chunks_exact(outputs)
                .zip(argmax_rows(values, outputs))
            {
                let _ = write!(csv, "{class}");
                for v in row {
                    let _ = write!(csv, ",{v:.6}");
                }
                csv.push('\n');
            }
        }
        Task::Regression => {
            csv.push_str("prediction\n");
            for v in values {
                let _ = writeln!(csv, "{v}");
            }
        }
    }
    csv
}
