//! Mean cross-entropy with its gradient written out.
//!
//! Through autodiff, burn's cross-entropy is a log-softmax, a gather and a mean: about a dozen
//! recorded operations, each run again backwards, which on a small model cost more than its
//! matrix products. Here the loss value and its gradient with respect to the logits,
//! `(softmax(logits) − one_hot(labels)) / batch`, are computed outside autodiff — on the CPU
//! backend in one pass over the logits, elsewhere with a few tensor operations — and joined to
//! the graph by one recorded operation.

use super::cpu_tensor::contiguous_flex;
use crate::error::{KilnError, Result};
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, Tensor, TensorData};

/// Mean cross-entropy of `logits` `[batch, classes]` against class `labels`, without autodiff,
/// and, when the logits are tracked, a tracked objective `logits · gradient` (element-wise,
/// constant gradient) whose backward pass, seeded with ones, gives the logits the
/// cross-entropy's gradient. Its value is not the loss.
pub fn mean_cross_entropy(
    logits: Tensor<2>,
    labels: &[u32],
) -> Result<(Tensor<1>, Option<Tensor<2>>)> {
    let [batch, classes] = logits.dims();
    check_labels(labels, batch, classes)?;
    let tracked = logits.is_tracked();
    let plain = logits.clone().without_autodiff();
    let (loss, gradient) = match cpu_loss_and_gradient(&plain, labels, tracked) {
        Some(computed) => computed,
        None => tensor_loss_and_gradient(plain, labels, tracked),
    };
    Ok((loss, gradient.map(|gradient| logits * gradient)))
}

/// One label per row, every label naming one of the logits' columns.
fn check_labels(labels: &[u32], batch: usize, classes: usize) -> Result<()> {
    if labels.len() != batch || batch == 0 || classes == 0 {
        return Err(KilnError::Internal(format!(
            "a batch of {batch} outputs × {classes} classes came with {} labels",
            labels.len()
        )));
    }
    match labels.iter().find(|&&label| label as usize >= classes) {
        Some(label) => Err(KilnError::Data(format!(
            "label {label} has no output: the model predicts {classes} classes (labels 0 to {})",
            classes.saturating_sub(1)
        ))),
        None => Ok(()),
    }
}

/// The loss, and the gradient if `with_gradient`, in one pass over f32 logits on the CPU
/// backend; `None` for other backends and precisions.
fn cpu_loss_and_gradient(
    logits: &Tensor<2>,
    labels: &[u32],
    with_gradient: bool,
) -> Option<(Tensor<1>, Option<Tensor<2>>)> {
    if logits.dtype() != DType::F32 {
        return None;
    }
    let flex = contiguous_flex(logits)?;
    let [batch, classes] = logits.dims();
    let values = flex.storage::<f32>();
    let mut gradient = vec![0.0f32; if with_gradient { batch * classes } else { 0 }];
    let mut probabilities = vec![0.0f32; classes];
    let mut total = 0.0f64;
    let per_sample = 1.0 / batch as f32;
    for (row, (logit_row, &label)) in values.chunks_exact(classes).zip(labels).enumerate() {
        // log p(label) = z[label] − max − ln Σ exp(z − max); NaN or ±∞ logits give a NaN loss.
        let max = logit_row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (p, &z) in probabilities.iter_mut().zip(logit_row) {
            *p = (z - max).exp();
            sum += *p;
        }
        let label = label as usize;
        total += f64::from(max + sum.ln() - logit_row[label]);
        if with_gradient {
            let row_gradient = &mut gradient[row * classes..(row + 1) * classes];
            let scale = per_sample / sum;
            for (g, &p) in row_gradient.iter_mut().zip(&probabilities) {
                *g = p * scale;
            }
            row_gradient[label] -= per_sample;
        }
    }
    let device = logits.device();
    let loss = Tensor::<1>::from_data(
        TensorData::new(vec![(total / batch as f64) as f32], [1]),
        &device,
    );
    let gradient = with_gradient
        .then(|| Tensor::<2>::from_data(TensorData::new(gradient, [batch, classes]), &device));
    Some((loss, gradient))
}

/// The loss, and the gradient if `with_gradient`, with tensor operations on any backend.
fn tensor_loss_and_gradient(
    logits: Tensor<2>,
    labels: &[u32],
    with_gradient: bool,
) -> (Tensor<1>, Option<Tensor<2>>) {
    let [batch, classes] = logits.dims();
    let targets = one_hot(labels, classes, &logits.device());
    let log_probs = log_softmax(logits, 1);
    let loss = (log_probs.clone() * targets.clone())
        .sum()
        .mul_scalar(-1.0 / batch as f64);
    let gradient =
        with_gradient.then(|| (log_probs.exp() - targets).mul_scalar(1.0 / batch as f64));
    (loss, gradient)
}

/// In-range class labels as a one-hot matrix `[labels, classes]` on `device`.
fn one_hot(labels: &[u32], classes: usize, device: &Device) -> Tensor<2> {
    let mut hot = vec![0.0f32; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        hot[row * classes + label as usize] = 1.0;
    }
    Tensor::from_data(TensorData::new(hot, [labels.len(), classes]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::{Distribution, Int, Tolerance};

    const LABELS: [u32; 6] = [2, 0, 4, 1, 4, 3];

    fn logits(scale: f64) -> Tensor<2> {
        Tensor::<2>::random([6, 5], Distribution::Normal(0.0, 1.0), &Device::flex())
            .mul_scalar(scale)
    }

    /// burn's cross-entropy of `logits` and its gradient with respect to them.
    fn burns(logits: &Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let tracked = logits.clone().autodiff().require_grad();
        let labels: Vec<i64> = LABELS.iter().map(|&l| i64::from(l)).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [6]), &tracked.device());
        let loss = CrossEntropyLossConfig::new()
            .init(&tracked.device())
            .forward(tracked.clone(), targets);
        let gradient = tracked
            .grad(&loss.backward())
            .expect("logits have a gradient");
        (loss.without_autodiff(), gradient)
    }

    /// Kiln's cross-entropy of `logits` and the gradient its objective gives them.
    fn kilns(logits: &Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let tracked = logits.clone().autodiff().require_grad();
        let (loss, objective) = mean_cross_entropy(tracked.clone(), &LABELS).expect("labels fit");
        let objective = objective.expect("tracked logits give an objective");
        let gradient = tracked
            .grad(&objective.backward())
            .expect("logits have a gradient");
        (loss, gradient)
    }

    fn assert_same(actual: (Tensor<1>, Tensor<2>), expected: (Tensor<1>, Tensor<2>)) {
        let tolerance = Tolerance::rel_abs(1e-5, 1e-6);
        actual
            .0
            .to_data()
            .assert_approx_eq::<f32>(&expected.0.to_data(), tolerance);
        actual
            .1
            .to_data()
            .assert_approx_eq::<f32>(&expected.1.to_data(), tolerance);
    }

    #[test]
    fn the_cpu_pass_matches_burns_cross_entropy_and_gradient() {
        for scale in [1.0, 30.0] {
            let logits = logits(scale);
            assert!(cpu_loss_and_gradient(&logits, &LABELS, true).is_some());
            assert_same(kilns(&logits), burns(&logits));
        }
    }

    #[test]
    fn the_tensor_path_matches_burns_cross_entropy_and_gradient() {
        for scale in [1.0, 30.0] {
            let logits = logits(scale);
            let (loss, gradient) = tensor_loss_and_gradient(logits.clone(), &LABELS, true);
            let gradient = gradient.expect("asked for a gradient");
            assert_same((loss, gradient), burns(&logits));
        }
    }

    #[test]
    fn untracked_logits_give_the_loss_only() {
        let logits = logits(1.0);
        let (loss, objective) = mean_cross_entropy(logits.clone(), &LABELS).expect("labels fit");
        assert!(objective.is_none());
        let tolerance = Tolerance::rel_abs(1e-5, 1e-6);
        loss.to_data()
            .assert_approx_eq::<f32>(&burns(&logits).0.to_data(), tolerance);
    }

    #[test]
    fn a_nan_or_infinite_logit_gives_a_nan_loss() {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut values = vec![0.5f32; 30];
            values[7] = bad;
            let logits = Tensor::<2>::from_data(TensorData::new(values, [6, 5]), &Device::flex());
            let (loss, _) = mean_cross_entropy(logits, &LABELS).expect("labels fit");
            let value = loss.to_data().iter::<f32>().next().expect("one value");
            assert!(value.is_nan(), "{bad} in the logits gave the loss {value}");
        }
    }

    #[test]
    fn a_label_without_an_output_is_a_data_error() {
        let error = mean_cross_entropy(logits(1.0), &[2, 0, 5, 1, 4, 3]).expect_err("5 of 5");
        assert!(
            matches!(&error, KilnError::Data(m) if m.contains("label 5")),
            "{error}"
        );
        let error = mean_cross_entropy(logits(1.0), &[2, 0]).expect_err("2 labels for 6");
        assert!(matches!(error, KilnError::Internal(_)));
        let empty =
            Tensor::<2>::from_data(TensorData::new(Vec::<f32>::new(), [0, 5]), &Device::flex());
        let error = mean_cross_entropy(empty, &[]).expect_err("an empty batch");
        assert!(matches!(error, KilnError::Internal(_)));
    }
}
