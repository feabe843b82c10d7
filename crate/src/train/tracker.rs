//! Judging evaluations: the best model by the main metric, and early stopping. Both rank with
//! the one [`Direction`] type.

use super::checkpoint::{BestRecord, TrainerState};
use super::events::HistoryEntry;
use crate::config::{Config, Direction, EarlyStoppingConfig};
use crate::metrics::direction_of;

/// The metric that picks the best model and ranks checkpoints, with its direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// A reported metric name, e.g. `val_loss`.
    pub metric: String,
    /// Which way is better.
    pub direction: Direction,
}

impl Goal {
    /// `checkpoint.main_metric` of a config.
    pub fn of(config: &Config) -> Self {
        let metric = config.checkpoint.main_metric.clone();
        Self {
            direction: direction_of(&metric),
            metric,
        }
    }

    /// The goal's value in an evaluation, if it was measured.
    pub fn score(&self, entry: &HistoryEntry) -> Option<f64> {
        entry.metrics.get(&self.metric).copied()
    }
}

/// What an evaluation meant for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    /// It is the best so far (its weights should be kept).
    pub new_best: bool,
    /// Early stopping says the run should end.
    pub stop: bool,
}

/// Records evaluations into the trainer state: the best so far and early stopping progress.
#[derive(Debug, Clone)]
pub struct Tracker<'a> {
    /// The main metric.
    pub goal: Goal,
    early_stopping: Option<&'a EarlyStoppingConfig>,
}

impl<'a> Tracker<'a> {
    /// The tracker a config asks for.
    pub fn new(config: &'a Config) -> Self {
        Self {
            goal: Goal::of(config),
            early_stopping: config.early_stopping.as_ref(),
        }
    }

    /// Records `entry` (appending it to the history) and says what it meant.
    pub fn record(&self, state: &mut TrainerState, entry: HistoryEntry) -> Verdict {
        let mut verdict = Verdict::default();
        if let Some(score) = self.goal.score(&entry) {
            let best = state.best.as_ref().map(|b| b.score);
            if self.goal.direction.improves(score, best, 0.0) {
                verdict.new_best = true;
                state.best = Some(BestRecord {
                    score,
                    epoch: entry.epoch,
                    step: entry.step,
                    metrics: entry.metrics.clone(),
                });
            }
        }
        if let Some(es) = self.early_stopping {
            verdict.stop = state.early_stop.update(es, &entry.metrics);
        }
        state.history.push(entry);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(step: u64, name: &str, value: f64) -> HistoryEntry {
        HistoryEntry {
            epoch: step as usize,
            step,
            metrics: BTreeMap::from([(name.to_string(), value)]),
        }
    }

    #[test]
    fn the_best_follows_the_main_metrics_direction() {
        let config = Config::from_yaml_str(
            "checkpoint: {main_metric: val_accuracy}\nvalidation: {metrics: [loss, accuracy]}",
        )
        .expect("config");
        let tracker = Tracker::new(&config);
        assert_eq!(tracker.goal.direction, Direction::Max);
        let mut state = TrainerState::default();
        let verdicts: Vec<bool> = [0.5, 0.7, 0.6, 0.9]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                tracker
                    .record(&mut state, entry(i as u64 + 1, "val_accuracy", *v))
                    .new_best
            })
            .collect();
        assert_eq!(verdicts, [true, true, false, true]);
        assert_eq!(state.best.map(|b| (b.step, b.score)), Some((4, 0.9)));
        assert_eq!(state.history.len(), 4);
    }

    #[test]
    fn loss_goals_prefer_lower_and_early_stopping_uses_its_own_config() {
        let config = Config::from_yaml_str(
            "early_stopping: {tasks: [{metric: val_loss, mode: min}], patience: 1}",
        )
        .expect("config");
        let tracker = Tracker::new(&config);
        let mut state = TrainerState::default();
        let first = tracker.record(&mut state, entry(1, "val_loss", 1.0));
        let worse = tracker.record(&mut state, entry(2, "val_loss", 2.0));
        assert_eq!(
            first,
            Verdict {
                new_best: true,
                stop: false
            }
        );
        assert_eq!(
            worse,
            Verdict {
                new_best: false,
                stop: true
            }
        );
    }
}
