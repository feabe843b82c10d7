//! Learning-rate schedules as pure functions of the optimiser step (trivial to checkpoint).

use crate::config::LrScheduler;

/// The learning rate for optimiser step `step` (0-based) of `total` steps.
pub fn learning_rate(schedule: &LrScheduler, base: f64, step: u64, total: u64) -> f64 {
    match schedule {
        LrScheduler::Constant => base,
        LrScheduler::Step { step_size, gamma } => {
            let decays = step / (*step_size as u64).max(1);
            base * gamma.powi(decays.min(i32::MAX as u64) as i32)
        }
        LrScheduler::Cosine { min_lr } => {
            let progress = step as f64 / total.max(1) as f64;
            min_lr
                + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
        }
        LrScheduler::LinearWarmup { warmup_steps } => {
            let warm = *warmup_steps as u64;
            if step < warm {
                base * (step + 1) as f64 / warm as f64
            } else {
                base
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_definitions() {
        let step = LrScheduler::Step {
            step_size: 10,
            gamma: 0.5,
        };
        assert!((learning_rate(&step, 1.0, 25, 100) - 0.25).abs() < 1e-12);
        let cosine = LrScheduler::Cosine { min_lr: 0.0 };
        assert!((learning_rate(&cosine, 1.0, 0, 100) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&cosine, 1.0, 50, 100) - 0.5).abs() < 1e-12);
        assert!(learning_rate(&cosine, 1.0, 100, 100).abs() < 1e-12);
        let warm = LrScheduler::LinearWarmup { warmup_steps: 4 };
        assert!((learning_rate(&warm, 1.0, 1, 100) - 0.5).abs() < 1e-12);
        assert!((learning_rate(&warm, 1.0, 10, 100) - 1.0).abs() < 1e-12);
    }
}
