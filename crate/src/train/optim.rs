//! Building burn's optimiser from the config, and global gradient-norm clipping.

use super::fused_adam::{FusedAdam, FusedAdamW, Moments};
use crate::config::{OptimizationMethod, Precision, WeightOptimization};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Tensor;

/// The optimiser the config asks for (PyTorch's defaults where burn's differ: Adam epsilon
/// 1e-8, momentum without dampening); Adam and AdamW update in one pass on the CPU. In f16
/// Adam's epsilon is 1e-4: 1e-8 rounds to zero in half precision and turns the first steps
/// into divisions by zero.
pub fn build_optimizer(w: &WeightOptimization, precision: Precision) -> ModuleOptimizer {
    let epsilon = match precision {
        Precision::F32 => 1e-8,
        Precision::F16 => 1e-4,
    };
    let moments = Moments {
        beta_1: w.betas[0] as f32,
        beta_2: w.betas[1] as f32,
        epsilon,
    };
    let penalty = (w.weight_decay > 0.0).then_some(w.weight_decay as f32);
    let decay = penalty.map(WeightDecayConfig::new);
    match w.optimization_method {
        OptimizationMethod::Sgd => SgdConfig::new().with_weight_decay(decay).init(),
        OptimizationMethod::Momentum => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(w.momentum)
                    .with_dampening(0.0),
            ))
            .init(),
        OptimizationMethod::Adam => ModuleOptimizer::from(FusedAdam::new(moments, penalty)),
        OptimizationMethod::Adamw => {
            ModuleOptimizer::from(FusedAdamW::new(moments, w.weight_decay as f32))
        }
    }
}

/// Sums the squares of every parameter's gradient, on the device.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

/// The global L2 norm of all gradients, as a one-element tensor (no device read).
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    let mut visitor = SquaredNorm { grads, total: None };
    module.visit(&mut visitor);
    visitor.total.map(|t| t.without_autodiff().sqrt())
}

/// Multiplies every gradient by a one-element scale tensor.
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    scale: Tensor<1>,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let scale = self
                .scale
                .clone()
                .to_device(&grad.device())
                .reshape([1usize; D]);
            self.grads.register(param.id, grad * scale);
        }
    }
}

/// Scales gradients so that their global norm is at most `max_norm` (like PyTorch's
/// `clip_grad_norm_`), computed entirely on the device.
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    norm: &Tensor<1>,
    max_norm: f64,
) {
    let scale = (norm.clone().add_scalar(1e-6).recip() * max_norm).clamp_max(1.0);
    module.visit(&mut ScaleGrads { grads, scale });
}
