//! FedProx's proximal term (Li et al., "Federated Optimization in Heterogeneous Networks", 2020):
//! μ/2·‖w − w₀‖² added to the loss pulls the weights toward the ones training started from. Its
//! gradient, μ·(w − w₀), is added to each parameter's gradient before the optimiser step, which
//! is the same as differentiating the augmented loss — for every optimiser.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use std::collections::HashMap;

/// The starting weights (flattened, without autodiff) by parameter id, and μ.
pub struct ProximalAnchor {
    mu: f64,
    start: HashMap<ParamId, Tensor<1>>,
}

/// Collects a module's float parameters, flattened.
struct Collect<'a> {
    into: &'a mut HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().without_autodiff().flatten::<1>(0, D - 1);
        self.into.insert(param.id, value);
    }
}

/// Adds μ·(w − w₀) to each parameter's gradient.
struct Pull<'a> {
    grads: &'a mut GradientsParams,
    anchor: &'a ProximalAnchor,
}

impl ModuleVisitor for Pull<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return;
        };
        let grad = match self.anchor.start.get(&param.id) {
            Some(start) => {
                let weights = param.val().without_autodiff();
                let start = start.clone().reshape(weights.dims());
                let pull = (weights - start).mul_scalar(self.anchor.mu);
                let device = grad.device();
                grad + pull.to_device(&device)
            }
            None => grad,
        };
        self.grads.register(param.id, grad);
    }
}

impl ProximalAnchor {
    /// The anchor at `module`'s current weights, with strength `mu`.
    pub fn at<M: Module>(module: &M, mu: f64) -> Self {
        let mut start = HashMap::new();
        module.visit(&mut Collect { into: &mut start });
        Self { mu, start }
    }

    /// Adds the proximal term's gradient to `grads` (the gradients of `module`'s loss).
    pub fn add_to<M: Module>(&self, module: &M, grads: &mut GradientsParams) {
        module.visit(&mut Pull {
            grads,
            anchor: self,
        });
    }
}
