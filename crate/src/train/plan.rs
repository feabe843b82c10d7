//! The run's shape, resolved once from the config: batches, epochs, steps, when to log and
//! when to evaluate.

use crate::config::{Config, Every};

/// Steps, epochs and intervals of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPlan {
    /// Samples per batch.
    pub batch_size: usize,
    /// Batches per epoch.
    pub steps_per_epoch: u64,
    /// Epochs to run.
    pub epochs: usize,
    /// Batches in the whole run.
    pub total_steps: u64,
    /// Batches whose gradients make one optimiser step.
    pub accumulation: u64,
    /// Optimiser steps in the whole run (drives the learning-rate schedule).
    pub total_optimizer_steps: u64,
    /// Batches between evaluations.
    pub eval_interval: u64,
    /// Batches between progress reports (and loss reads).
    pub log_every: u64,
    /// At most this many batches per evaluation (`fast_dev_run`: 1).
    pub eval_batches: Option<usize>,
}

impl RunPlan {
    /// The plan for `train_samples` training samples. `fast_dev_run` is one batch of one epoch,
    /// evaluated on one batch.
    pub fn new(config: &Config, train_samples: usize) -> Self {
        let t = &config.training;
        let batch_size = t.batch_size.max(1);
        let full = (train_samples / batch_size) as u64;
        let partial = !t.drop_last && !train_samples.is_multiple_of(batch_size);
        let mut steps_per_epoch = full + u64::from(partial);
        let mut epochs = t.num_passes;
        let mut eval_interval = match config.validation.every {
            Every::Steps(n) => n.max(1),
            Every::Epochs(x) => ((x * steps_per_epoch as f64).round() as u64).max(1),
        };
        let mut eval_batches = None;
        if config.fast_dev_run {
            (steps_per_epoch, epochs, eval_interval, eval_batches) = (1, 1, 1, Some(1));
        }
        let total_steps = steps_per_epoch * epochs as u64;
        let accumulation = (t.gradient_accumulation_steps as u64).max(1);
        Self {
            batch_size,
            steps_per_epoch,
            epochs,
            total_steps,
            accumulation,
            total_optimizer_steps: total_steps.div_ceil(accumulation),
            eval_interval,
            log_every: (t.log_every_steps as u64).max(1),
            eval_batches,
        }
    }

    /// The sample indices of batch `index` of an epoch whose sample order is `order`.
    pub fn batch<'o>(&self, order: &'o [usize], index: u64) -> &'o [usize] {
        let from = (index as usize * self.batch_size).min(order.len());
        &order[from..(from + self.batch_size).min(order.len())]
    }

    /// Whether the progress is reported after global step `step` (1-based).
    pub fn logs_at(&self, step: u64, last_in_epoch: bool) -> bool {
        step.is_multiple_of(self.log_every) || last_in_epoch
    }

    /// Whether the model is evaluated after global step `step`.
    pub fn evaluates_at(&self, step: u64) -> bool {
        step.is_multiple_of(self.eval_interval)
    }

    /// Whether the optimiser steps after micro-batch `micro` (1-based within its group).
    pub fn updates_at(&self, micro: u64, last_in_epoch: bool) -> bool {
        micro == self.accumulation || last_in_epoch
    }

    /// Whether a checkpoint is due after `epochs_done` epochs, written every `every` epochs
    /// (0: never), and always when the run ends or is interrupted.
    pub fn checkpoint_due(&self, every: usize, epochs_done: usize, ending: bool) -> bool {
        every > 0 && (epochs_done.is_multiple_of(every) || epochs_done == self.epochs || ending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml).expect("valid config")
    }

    #[test]
    fn a_partial_last_batch_counts_unless_dropped() {
        let c = config("training: {batch_size: 32, num_passes: 3}");
        let plan = RunPlan::new(&c, 100);
        assert_eq!((plan.steps_per_epoch, plan.total_steps), (4, 12));
        let order: Vec<usize> = (0..100).collect();
        assert_eq!(plan.batch(&order, 3), &order[96..100]);
        let c = config("training: {batch_size: 32, num_passes: 3, drop_last: true}");
        assert_eq!(RunPlan::new(&c, 100).steps_per_epoch, 3);
    }

    #[test]
    fn evaluation_every_fraction_of_an_epoch_rounds_to_steps() {
        let c = config("training: {batch_size: 10}\nvalidation: {every: 0.5}");
        let plan = RunPlan::new(&c, 100);
        assert_eq!(plan.eval_interval, 5);
        assert!(plan.evaluates_at(5) && plan.evaluates_at(10) && !plan.evaluates_at(7));
        let c = config("validation: {every: 7}");
        assert_eq!(RunPlan::new(&c, 1000).eval_interval, 7);
    }

    #[test]
    fn accumulation_groups_batches_and_flushes_at_the_epoch_end() {
        let c = config("training: {batch_size: 10, num_passes: 2, gradient_accumulation_steps: 3}");
        let plan = RunPlan::new(&c, 100);
        assert_eq!((plan.total_steps, plan.total_optimizer_steps), (20, 7));
        assert!(!plan.updates_at(2, false) && plan.updates_at(3, false));
        assert!(plan.updates_at(1, true));
    }

    #[test]
    fn fast_dev_run_is_one_batch_evaluated_on_one_batch() {
        let c = config("fast_dev_run: true\ntraining: {batch_size: 10, num_passes: 9}");
        let plan = RunPlan::new(&c, 100);
        assert_eq!(
            (plan.steps_per_epoch, plan.epochs, plan.total_steps),
            (1, 1, 1)
        );
        assert_eq!(plan.eval_batches, Some(1));
        assert!(plan.evaluates_at(1));
    }

    #[test]
    fn checkpoints_follow_every_epochs_and_the_end() {
        let c = config("training: {num_passes: 5}");
        let plan = RunPlan::new(&c, 100);
        assert!(plan.checkpoint_due(2, 2, false) && !plan.checkpoint_due(2, 3, false));
        assert!(plan.checkpoint_due(2, 5, false) && plan.checkpoint_due(2, 3, true));
        assert!(!plan.checkpoint_due(0, 5, true));
    }
}
