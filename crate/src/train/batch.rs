//! Turning host samples into device batches, and the loss for a task.

use crate::data::{Dataset, Targets};
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// A batch of targets on the device.
pub enum BatchTargets {
    /// Class indices `[batch]`.
    Classes(Tensor<1, Int>),
    /// Values `[batch, 1]`.
    Values(Tensor<2>),
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
        Targets::Classes(c) => {
            let labels: Vec<i64> = indices.iter().map(|&i| i64::from(c[i])).collect();
            BatchTargets::Classes(Tensor::from_data(
                TensorData::new(labels, [indices.len()]),
                device,
            ))
        }
        Targets::Values(v) => {
            let values: Vec<f32> = indices.iter().map(|&i| v[i]).collect();
            BatchTargets::Values(Tensor::from_data(
                TensorData::new(values, [indices.len(), 1]),
                device,
            ))
        }
    };
    (x, y)
}

/// Mean loss of a batch: cross-entropy for classes, mean squared error for values.
pub fn batch_loss(output: Tensor<2>, targets: BatchTargets) -> Tensor<1> {
    match targets {
        BatchTargets::Classes(y) => {
            let device = output.device();
            CrossEntropyLossConfig::new()
                .init(&device)
                .forward(output, y)
        }
        BatchTargets::Values(y) => MseLoss::new().forward(output, y, Reduction::Mean),
    }
}
