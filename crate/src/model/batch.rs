//! Turning host samples into device batches, and the loss for a task.

use super::cross_entropy::mean_cross_entropy;
use crate::data::{Dataset, Targets};
use crate::error::{KilnError, Result};
use burn::nn::loss::{MseLoss, Reduction};
use burn::tensor::{Device, Gradients, Tensor, TensorData};

/// A batch's targets, kept on the host until the loss knows the output's device and width.
pub enum BatchTargets {
    /// Class indices, one per sample.
    Classes(Vec<u32>),
    /// Target values, one per sample.
    Values(Vec<f32>),
}

/// Copies the samples at `indices` into one feature tensor `[batch, features]` and targets.
pub fn make_batch(data: &Dataset, indices: &[usize], device: &Device) -> (Tensor<2>, BatchTargets) {
    let n = data.sample_len();
    let mut features = Vec::with_capacity(indices.len() * n);
    for &i in indices {
        features.extend_from_slice(&data.features[i * n..(i + 1) * n]);
    }
    let x = Tensor::from_data(TensorData::new(features, [indices.len(), n]), device);
    let y = match &data.targets {
        Targets::Classes(c) => BatchTargets::Classes(indices.iter().map(|&i| c[i]).collect()),
        Targets::Values(v) => BatchTargets::Values(indices.iter().map(|&i| v[i]).collect()),
    };
    (x, y)
}

/// A batch's loss: its value, and what to run backwards for its gradient.
pub struct BatchLoss {
    /// The mean loss `[1]`, without autodiff.
    pub value: Tensor<1>,
    objective: Option<Objective>,
}

/// A tracked tensor whose backward pass (seeded with ones) gives the loss's gradient.
enum Objective {
    /// The loss itself.
    Loss(Tensor<1>),
    /// Logits times the loss's constant gradient with respect to them.
    Weighted(Tensor<2>),
}

impl BatchLoss {
    /// A loss computed by the model itself: `loss` is the batch's mean loss `[1]`; when it is
    /// tracked, its backward pass gives the gradients.
    pub fn from_loss(loss: Tensor<1>) -> Self {
        Self {
            value: loss.clone().without_autodiff(),
            objective: loss.is_tracked().then_some(Objective::Loss(loss)),
        }
    }

    /// The loss's gradients, scaled by `scale` (`1 / gradient_accumulation_steps`).
    pub fn gradients(self, scale: f32) -> Result<Gradients> {
        let gradients = |objective: Objective| match objective {
            Objective::Loss(loss) => scaled_backward(loss, scale),
            Objective::Weighted(weighted) => scaled_backward(weighted, scale),
        };
        self.objective.map(gradients).ok_or_else(|| {
            KilnError::Internal("the loss was computed without autodiff; nothing to train".into())
        })
    }
}

/// The backward pass of `objective × scale` (no extra recorded operation when `scale` is 1).
fn scaled_backward<const D: usize>(objective: Tensor<D>, scale: f32) -> Gradients {
    if scale == 1.0 {
        objective.backward()
    } else {
        objective.mul_scalar(scale).backward()
    }
}

/// The mean loss of a batch: cross-entropy for classes, mean squared error for values.
pub fn task_loss(output: Tensor<2>, targets: BatchTargets) -> Result<BatchLoss> {
    match targets {
        BatchTargets::Classes(labels) => {
            let (value, weighted) = mean_cross_entropy(output, &labels)?;
            Ok(BatchLoss {
                value,
                objective: weighted.map(Objective::Weighted),
            })
        }
        BatchTargets::Values(values) => {
            let shape = [values.len(), 1];
            let y = Tensor::from_data(TensorData::new(values, shape), &output.device());
            Ok(BatchLoss::from_loss(MseLoss::new().forward(
                output,
                y,
                Reduction::Mean,
            )))
        }
    }
}
