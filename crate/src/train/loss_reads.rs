//! Training losses (and the gradient norm) waiting on the device, read back in one batch.

use super::checkpoint::CheckpointSink;
use crate::error::{KilnError, Result};
use burn::tensor::{Tensor, Transaction};

/// Losses not read yet, the running window since the last evaluation, and the latest norm.
#[derive(Default)]
pub struct LossReads {
    pending: Vec<(u64, Tensor<1>)>,
    grad_norm: Option<Tensor<1>>,
    grad_norm_value: Option<f64>,
    window: (f64, u64),
}

impl LossReads {
    /// Queues the loss of global step `step`.
    pub fn push(&mut self, step: u64, loss: Tensor<1>) {
        self.pending.push((step, loss));
    }

    /// Queues the latest global gradient norm (replacing an unread one).
    pub fn set_grad_norm(&mut self, norm: Option<Tensor<1>>) {
        self.grad_norm = norm;
    }

    /// The gradient norm read last, once.
    pub fn take_grad_norm(&mut self) -> Option<f64> {
        self.grad_norm_value.take()
    }

    /// The mean loss since the last call, if any loss was read.
    pub fn take_window_mean(&mut self) -> Option<f64> {
        let (sum, count) = std::mem::take(&mut self.window);
        (count > 0).then(|| sum / count as f64)
    }

    /// Reads every queued loss and the queued norm in one transaction and adds the losses to
    /// the window. Returns the mean of the losses read (0 when none were queued). A non-finite
    /// loss fails the run, naming its step and the last good checkpoint.
    pub async fn read(
        &mut self,
        epoch: usize,
        checkpoints: Option<&dyn CheckpointSink>,
    ) -> Result<f64> {
        if self.pending.is_empty() {
            return Ok(0.0);
        }
        let losses = std::mem::take(&mut self.pending);
        let mut transaction = Transaction::default();
        for (_, loss) in &losses {
            transaction = transaction.register(loss.clone());
        }
        let norm = self.grad_norm.take();
        if let Some(norm) = &norm {
            transaction = transaction.register(norm.clone());
        }
        let data = transaction.execute_async().await.map_err(|e| {
            KilnError::Training(format!("reading the loss from the device failed: {e:?}"))
        })?;
        let mut sum = 0.0;
        for ((step, _), value) in losses.iter().zip(&data) {
            let loss = value.iter::<f64>().next().unwrap_or(f64::NAN);
            if !loss.is_finite() {
                let kept = checkpoints
                    .and_then(|c| c.last_location())
                    .map(|at| format!("; the last good checkpoint is kept at {at}"))
                    .unwrap_or_default();
                return Err(KilnError::Training(format!(
                    "the loss became {loss} at step {step} (epoch {}){kept}. Lower \
                     training.weight_optimization.learning_rate or set training.gradient_max_norm",
                    epoch + 1
                )));
            }
            sum += loss;
        }
        if norm.is_some() {
            self.grad_norm_value = data.last().and_then(|d| d.iter::<f64>().next());
        }
        self.window.0 += sum;
        self.window.1 += losses.len() as u64;
        Ok(sum / losses.len() as f64)
    }
}
