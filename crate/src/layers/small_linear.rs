//! Linear layers on GPU devices without a matmul kernel when the product is small.
//!
//! cubecl's tiled matmul kernel is large (30–38 KB of WGSL per shape and line size) and a
//! software WebGPU adapter spends 1.2–1.5 s compiling each one; a small MLP needs seven of them
//! (forward and both gradients of each layer), which made up 9.3 s of the 10 s of shader
//! compilation before its first epoch (`bench/js/first-step.mjs`, BENCHMARKS.md). For a small
//! product the same layer is a broadcast multiply summed over the inputs: elementwise and
//! reduction kernels that burn fuses and that compile in ~30 ms. The CPU backend keeps its
//! matmul, which is fast to start and to run.

use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};

/// The largest `batch × inputs × outputs` computed as a broadcast product (2^23 elements, a
/// 32 MB intermediate when it is not fused): a 64→128 layer up to a batch of 1 024, or a
/// 784→128 layer up to 83.
pub const MAX_PRODUCT_ELEMENTS: usize = 1 << 23;

/// `layer.forward(x)`, as a broadcast product on GPU devices when it is small enough (f32).
pub fn linear_forward(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    let [batch, inputs] = x.dims();
    let [_, outputs] = layer.weight.dims();
    let small = batch
        .checked_mul(inputs)
        .and_then(|n| n.checked_mul(outputs))
        .is_some_and(|n| n <= MAX_PRODUCT_ELEMENTS);
    // f16 keeps the matmul, which accumulates in f32; a sum of f16 products would not.
    if small && x.dtype() == DType::F32 && !runs_on_cpu(&x.device()) {
        linear_as_product(layer, x)
    } else {
        layer.forward(x)
    }
}

/// `x · W + b` as `sum_i x[b, i] · W[i, o]` over a `[batch, inputs, outputs]` broadcast.
pub fn linear_as_product(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    let weight = layer.weight.val();
    let product = x.unsqueeze_dim::<3>(2) * weight.unsqueeze_dim::<3>(0);
    let y = product.sum_dim(1).squeeze_dim::<2>(1);
    match &layer.bias {
        Some(bias) => y + bias.val().unsqueeze_dim::<2>(0),
        None => y,
    }
}

/// Whether `device` is burn's CPU backend (`flex`), with or without autodiff.
fn runs_on_cpu(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::TensorData;

    fn values(tensor: Tensor<2>) -> Vec<f32> {
        tensor.into_data().iter::<f32>().collect()
    }

    fn assert_close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn the_product_equals_the_matmul_with_and_without_bias_and_in_its_gradients() {
        let device = Device::flex().autodiff();
        device.seed(7);
        for bias in [true, false] {
            let layer = LinearConfig::new(5, 3).with_bias(bias).init(&device);
            let data: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect();
            let x = || Tensor::<2>::from_data(TensorData::new(data.clone(), [4, 5]), &device);

            let reference = layer.forward(x());
            let product = linear_as_product(&layer, x());
            assert_close(
                &values(reference.clone().inner()),
                &values(product.clone().inner()),
            );

            let grads = |y: Tensor<2>| {
                let grads = y.powi_scalar(2).sum().backward();
                let weight = layer.weight.grad(&grads).map(values);
                let bias = layer
                    .bias
                    .as_ref()
                    .and_then(|b| b.grad(&grads))
                    .map(|g| g.into_data().iter::<f32>().collect::<Vec<_>>());
                (weight, bias)
            };
            let (w_ref, b_ref) = grads(reference);
            let (w_prod, b_prod) = grads(product);
            assert_close(
                &w_ref.expect("weight gradient"),
                &w_prod.expect("weight gradient"),
            );
            assert_eq!(b_ref.is_some(), bias);
            if let (Some(a), Some(b)) = (b_ref, b_prod) {
                assert_close(&a, &b);
            }
        }
    }

    #[test]
    fn the_cpu_backend_keeps_its_matmul() {
        assert!(runs_on_cpu(&Device::flex()));
        assert!(runs_on_cpu(&Device::flex().autodiff()));
    }
}
