//! Early stopping over several watched metrics, with patience and a grace period.

use crate::config::{EarlyStoppingConfig, StopMode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Progress of one watched metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// Best score so far.
    pub best: Option<f64>,
    /// Evaluations since the last improvement.
    pub stale: usize,
    /// Evaluations seen.
    pub seen: usize,
}

/// The state of early stopping, kept in checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopState {
    /// One entry per configured task.
    pub tasks: Vec<WatchState>,
}

impl EarlyStopState {
    /// Records one evaluation and says whether training should stop.
    pub fn update(
        &mut self,
        config: &EarlyStoppingConfig,
        metrics: &BTreeMap<String, f64>,
    ) -> bool {
        if self.tasks.len() != config.tasks.len() {
            self.tasks = config
                .tasks
                .iter()
                .map(|t| WatchState {
                    best: t.init_best_score,
                    ..WatchState::default()
                })
                .collect();
        }
        let mut stalled = Vec::with_capacity(config.tasks.len());
        for (task, state) in config.tasks.iter().zip(&mut self.tasks) {
            let Some(&value) = metrics.get(&task.metric) else {
                stalled.push(false);
                continue;
            };
            state.seen += 1;
            if value.is_finite() && task.mode.improves(value, state.best, task.delta) {
                state.best = Some(value);
                state.stale = 0;
            } else {
                state.stale += 1;
            }
            stalled.push(state.seen > task.grace_period && state.stale >= config.patience);
        }
        match config.mode {
            StopMode::Any => stalled.iter().any(|s| *s),
            StopMode::All => !stalled.is_empty() && stalled.iter().all(|s| *s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Direction, EarlyStoppingTask};

    fn config(patience: usize, grace: usize) -> EarlyStoppingConfig {
        EarlyStoppingConfig {
            tasks: vec![EarlyStoppingTask {
                metric: "val_loss".into(),
                delta: 0.01,
                mode: Direction::Min,
                grace_period: grace,
                init_best_score: None,
            }],
            patience,
            mode: StopMode::Any,
        }
    }

    fn run(config: &EarlyStoppingConfig, losses: &[f64]) -> Option<usize> {
        let mut state = EarlyStopState::default();
        losses.iter().position(|&loss| {
            let metrics = BTreeMap::from([("val_loss".to_string(), loss)]);
            state.update(config, &metrics)
        })
    }

    #[test]
    fn stops_after_patience_on_a_plateau() {
        // Improves twice, then plateaus (changes below delta do not count).
        let losses = [1.0, 0.5, 0.499, 0.498, 0.497, 0.496];
        assert_eq!(run(&config(3, 0), &losses), Some(4));
    }

    #[test]
    fn grace_period_delays_stopping() {
        let losses = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(run(&config(1, 0), &losses), Some(1));
        assert_eq!(run(&config(1, 4), &losses), Some(4));
    }
}
