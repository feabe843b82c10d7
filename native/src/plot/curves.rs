//! A run directory's series, read from `metrics.jsonl` the way trackers log them.

use crate::run_dir::logged_points;
use kiln::{KilnError, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// What `kiln plot` draws when `--metrics` is not given (those a run has).
pub const DEFAULT_METRICS: [&str; 4] = ["train_loss", "val_loss", "val_accuracy", "grad_norm"];

/// One run's series: metric name → `(step, value)` in the order logged.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCurves {
    /// The run's name in legends (its directory's name).
    pub name: String,
    /// The series.
    pub series: BTreeMap<String, Vec<(u64, f64)>>,
}

impl RunCurves {
    /// Reads `RUN_DIR/metrics.jsonl`; an unreadable line is an error naming the file and line.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut series: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
        for point in logged_points(dir)?.into_iter().map(|logged| logged.point) {
            if point.value.is_finite() {
                series
                    .entry(point.name)
                    .or_default()
                    .push((point.step, point.value));
            }
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self { name, series })
    }
}

/// The metrics to draw: those asked for (each must be in some run), or the defaults the runs
/// have (every series they have when they have none of the defaults).
pub fn pick_metrics(runs: &[RunCurves], asked: &[String]) -> Result<Vec<String>> {
    let mut present: Vec<&str> = runs
        .iter()
        .flat_map(|r| r.series.keys().map(String::as_str))
        .collect();
    present.sort_unstable();
    present.dedup();
    if present.is_empty() {
        return Err(KilnError::InvalidArgument(
            "the runs have no metrics logged yet (metrics.jsonl is empty)".into(),
        ));
    }
    if asked.is_empty() {
        let defaults: Vec<String> = DEFAULT_METRICS
            .iter()
            .filter(|m| present.contains(m))
            .map(|m| m.to_string())
            .collect();
        return Ok(if defaults.is_empty() {
            present.iter().map(|m| m.to_string()).collect()
        } else {
            defaults
        });
    }
    for metric in asked {
        if !present.contains(&metric.as_str()) {
            return Err(KilnError::InvalidArgument(format!(
                "--metrics: no run has `{metric}` (they have: {})",
                present.join(", ")
            )));
        }
    }
    Ok(asked.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, metrics: &[&str]) -> RunCurves {
        RunCurves {
            name: name.into(),
            series: metrics
                .iter()
                .map(|m| (m.to_string(), vec![(1, 1.0)]))
                .collect(),
        }
    }

    #[test]
    fn defaults_are_the_ones_the_runs_have() {
        let runs = [
            run("a", &["train_loss", "learning_rate"]),
            run("b", &["val_loss"]),
        ];
        assert_eq!(
            pick_metrics(&runs, &[]).unwrap(),
            vec!["train_loss", "val_loss"]
        );
        let only_lr = [run("a", &["learning_rate"])];
        assert_eq!(pick_metrics(&only_lr, &[]).unwrap(), vec!["learning_rate"]);
        let e = pick_metrics(&runs, &["val_f1".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no run has `val_f1`") && e.contains("learning_rate"),
            "{e}"
        );
    }
}
