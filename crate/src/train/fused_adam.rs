//! Adam and AdamW with a one-pass, in-place update on the CPU backend.
//!
//! burn's Adam updates a parameter with about a dozen tensor operations, each a full pass over
//! memory; on the `flex` CPU backend that is a quarter of a small model's step. These
//! optimisers keep burn's arithmetic (the same operations in the same order, so the same
//! rounding) and burn's state types (checkpoints stay interchangeable between backends), and
//! when the parameter, gradient and moments are f32 `flex` tensors they do the whole update in
//! one loop, in place. Everywhere else (GPU backends, f16) they run burn's own optimiser.

use crate::model::contiguous_flex;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState,
    LearningRate, Optimizer, decay::WeightDecayConfig,
};
use burn::tensor::{DType, Device, Tensor};
use burn_flex::{Flex, FlexTensor};

/// Adam's moment hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub struct Moments {
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
}

impl Moments {
    /// burn's bias corrections at step `time` (1-based): `(1 − β1^t, 1 − β2^t)`.
    fn bias_corrections(&self, time: usize) -> (f32, f32) {
        let time = time as i32;
        (1.0 - self.beta_1.powi(time), 1.0 - self.beta_2.powi(time))
    }
}

/// Adam with an optional L2 penalty added to the gradient (burn's and PyTorch's `Adam`).
#[derive(Clone)]
pub struct FusedAdam {
    moments: Moments,
    penalty: Option<f32>,
    burn: Adam,
}

impl FusedAdam {
    /// Adam with the given moments and L2 penalty (`None`: no weight decay).
    pub fn new(moments: Moments, penalty: Option<f32>) -> Self {
        let burn = AdamConfig::new()
            .with_beta_1(moments.beta_1)
            .with_beta_2(moments.beta_2)
            .with_epsilon(moments.epsilon)
            .with_weight_decay(penalty.map(WeightDecayConfig::new))
            .build();
        Self {
            moments,
            penalty,
            burn,
        }
    }

    /// The scalars of the update at step `time` (1-based), computed as burn computes them.
    fn adam_step(&self, lr: LearningRate, time: usize) -> AdamStep {
        let (correction_1, correction_2) = self.moments.bias_corrections(time);
        let correction_2_sqrt = correction_2.sqrt();
        AdamStep {
            beta_1: self.moments.beta_1,
            beta_2: self.moments.beta_2,
            penalty: self.penalty,
            combined_factor: correction_2_sqrt / correction_1,
            epsilon: self.moments.epsilon * correction_2_sqrt,
            lr: lr as f32,
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let momentum = state.map(|s| s.momentum);
        match CpuUpdate::run(tensor, grad, momentum, |time| self.adam_step(lr, time)) {
            Ok((tensor, momentum)) => (tensor, Some(AdamState::new(momentum))),
            Err(untaken) => {
                let (tensor, grad, momentum) = *untaken;
                self.burn
                    .step(lr, tensor, grad, momentum.map(AdamState::new))
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamState::new(momentum_to_device(state.momentum, device))
    }
}

/// AdamW: Adam with weight decay applied to the weights, not the gradient.
#[derive(Clone)]
pub struct FusedAdamW {
    moments: Moments,
    weight_decay: f32,
    burn: AdamW,
}

impl FusedAdamW {
    /// AdamW with the given moments and decoupled weight decay.
    pub fn new(moments: Moments, weight_decay: f32) -> Self {
        let burn = AdamWConfig::new()
            .with_beta_1(moments.beta_1)
            .with_beta_2(moments.beta_2)
            .with_epsilon(moments.epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            moments,
            weight_decay,
            burn,
        }
    }

    /// The scalars of the update at step `time` (1-based), computed as burn computes them.
    fn adamw_step(&self, lr: LearningRate, time: usize) -> AdamWStep {
        let (correction_1, correction_2) = self.moments.bias_corrections(time);
        let decay_rate = lr * f64::from(self.weight_decay);
        AdamWStep {
            beta_1: self.moments.beta_1,
            beta_2: self.moments.beta_2,
            correction_1,
            correction_2,
            epsilon: self.moments.epsilon,
            keep: (decay_rate != 0.0).then_some((1.0 - decay_rate) as f32),
            lr: lr as f32,
        }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let momentum = state.map(|s| s.momentum);
        match CpuUpdate::run(tensor, grad, momentum, |time| self.adamw_step(lr, time)) {
            Ok((tensor, momentum)) => (tensor, Some(AdamWState::new(momentum))),
            Err(untaken) => {
                let (tensor, grad, momentum) = *untaken;
                let state = momentum.map(AdamWState::new);
                self.burn.step(lr, tensor, grad, state)
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamWState::new(momentum_to_device(state.momentum, device))
    }
}

/// The moments on `device`. burn's optimiser calls this before every step; moments already
/// there are returned as they are rather than moved (a dispatch per tensor per step).
fn momentum_to_device<const D: usize>(
    momentum: AdaptiveMomentumState<D>,
    device: &Device,
) -> AdaptiveMomentumState<D> {
    let there = |tensor: &Tensor<D>| tensor.device() == *device;
    let all_there = there(&momentum.moment_1)
        && there(&momentum.moment_2)
        && momentum.max_moment_2.as_ref().is_none_or(there);
    if all_there {
        momentum
    } else {
        momentum.to_device(device)
    }
}

/// The scalars of one Adam update.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    beta_1: f32,
    beta_2: f32,
    penalty: Option<f32>,
    combined_factor: f32,
    epsilon: f32,
    lr: f32,
}

impl ElementUpdate for AdamStep {
    /// burn's Adam, in burn's order: `g = p·penalty + g`; the moments; `p = p − (m·c) / (√v + ε')·lr`.
    #[inline(always)]
    fn apply(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        let g = match self.penalty {
            Some(penalty) => *p * penalty + g,
            None => g,
        };
        update_moments(m, v, g, self.beta_1, self.beta_2);
        let delta = (*m * self.combined_factor) / (v.sqrt() + self.epsilon);
        *p -= delta * self.lr;
    }
}

/// The scalars of one AdamW update.
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    beta_1: f32,
    beta_2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    /// `1 − lr·weight_decay`, when that is not 1.
    keep: Option<f32>,
    lr: f32,
}

impl ElementUpdate for AdamWStep {
    /// burn's AdamW, in burn's order: the moments; `p = p·(1 − lr·λ) − (m/c1) / (√(v/c2) + ε)·lr`.
    #[inline(always)]
    fn apply(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        update_moments(m, v, g, self.beta_1, self.beta_2);
        let delta = (*m / self.correction_1) / ((*v / self.correction_2).sqrt() + self.epsilon);
        let decayed = match self.keep {
            Some(keep) => *p * keep,
            None => *p,
        };
        *p = decayed - delta * self.lr;
    }
}

/// One optimiser's update of a single weight, with the step's scalars.
pub trait ElementUpdate: Copy {
    /// Updates weight `p` in place from its gradient `g` and its moments `m`, `v`.
    fn apply(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32);
}

/// The moments as Adam and AdamW update them: `m = m·β1 + g·(1−β1)`; `v = v·β2 + g²·(1−β2)`.
#[inline(always)]
fn update_moments(m: &mut f32, v: &mut f32, g: f32, beta_1: f32, beta_2: f32) {
    *m = *m * beta_1 + g * (1.0 - beta_1);
    *v = *v * beta_2 + (g * g) * (1.0 - beta_2);
}

/// Applies `step` to every weight in place; on x86-64 CPUs with AVX, a build of the loop with
/// eight lanes for the square roots and divisions.
pub fn update_in_place<S: ElementUpdate>(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: &S,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, checked just above.
        return unsafe { update_avx(param, grad, m, v, step) };
    }
    update_loop(param, grad, m, v, step);
}

/// [`update_in_place`]'s loop compiled for AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn update_avx<S: ElementUpdate>(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: &S,
) {
    update_loop(param, grad, m, v, step);
}

/// The loop of [`update_in_place`], inlined into each instruction-set build.
#[inline(always)]
fn update_loop<S: ElementUpdate>(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: &S,
) {
    let moments = m.iter_mut().zip(v.iter_mut());
    for ((p, &g), (m, v)) in param.iter_mut().zip(grad).zip(moments) {
        step.apply(p, g, m, v);
    }
}

/// A parameter, its gradient and its moments as contiguous f32 CPU tensors, ready for an
/// in-place update.
struct CpuUpdate {
    param: FlexTensor,
    grad: FlexTensor,
    moment_1: FlexTensor,
    moment_2: FlexTensor,
    /// The step number of this update (1-based).
    time: usize,
}

/// What goes back to burn's optimiser when the fused path does not apply.
type Untaken<const D: usize> = Box<(Tensor<D>, Tensor<D>, Option<AdaptiveMomentumState<D>>)>;

impl CpuUpdate {
    /// Takes the tensors when they are all f32 on the CPU backend without AMSGrad state;
    /// otherwise hands them back untouched.
    fn take<const D: usize>(
        param: Tensor<D>,
        grad: Tensor<D>,
        momentum: Option<AdaptiveMomentumState<D>>,
    ) -> Result<Self, Untaken<D>> {
        let f32_state = momentum.as_ref().is_none_or(|s| {
            s.max_moment_2.is_none()
                && s.moment_1.dtype() == DType::F32
                && s.moment_2.dtype() == DType::F32
        });
        let eligible = f32_state && param.dtype() == DType::F32 && grad.dtype() == DType::F32;
        // Only CPU tensors convert; a GPU parameter goes back before anything is allocated.
        let cpu = eligible
            .then(|| contiguous_flex(&param).zip(contiguous_flex(&grad)))
            .flatten();
        let Some((param_cpu, grad_cpu)) = cpu else {
            return Err(Box::new((param, grad, momentum)));
        };
        let moments = match &momentum {
            Some(state) => contiguous_flex(&state.moment_1).zip(contiguous_flex(&state.moment_2)),
            None => {
                let zeros = || FlexTensor::zeros(param.shape(), DType::F32);
                Some((zeros(), zeros()))
            }
        };
        let Some((moment_1, moment_2)) = moments else {
            return Err(Box::new((param, grad, momentum)));
        };
        let time = momentum.map_or(1, |state| state.time + 1);
        Ok(Self {
            param: param_cpu,
            grad: grad_cpu,
            moment_1,
            moment_2,
            time,
        })
    }

    /// Updates the parameter and moments in place with the step `make_step` gives for this
    /// update's step number, or hands the tensors back when they are not f32 CPU tensors.
    fn run<const D: usize, S: ElementUpdate>(
        param: Tensor<D>,
        grad: Tensor<D>,
        momentum: Option<AdaptiveMomentumState<D>>,
        make_step: impl FnOnce(usize) -> S,
    ) -> Result<(Tensor<D>, AdaptiveMomentumState<D>), Untaken<D>> {
        let mut update = Self::take(param, grad, momentum)?;
        let step = make_step(update.time);
        let (param, grad, m, v) = update.slices();
        update_in_place(param, grad, m, v, &step);
        Ok(update.finish())
    }

    /// The parameter, gradient and moments as slices (the mutable ones copied first if shared).
    fn slices(&mut self) -> (&mut [f32], &[f32], &mut [f32], &mut [f32]) {
        (
            self.param.storage_mut::<f32>(),
            self.grad.storage::<f32>(),
            self.moment_1.storage_mut::<f32>(),
            self.moment_2.storage_mut::<f32>(),
        )
    }

    /// The updated parameter and moments as tensors again.
    fn finish<const D: usize>(self) -> (Tensor<D>, AdaptiveMomentumState<D>) {
        let param = Tensor::from_primitive::<Flex>(self.param);
        let state = AdaptiveMomentumState {
            time: self.time,
            moment_1: Tensor::from_primitive::<Flex>(self.moment_1),
            moment_2: Tensor::from_primitive::<Flex>(self.moment_2),
            max_moment_2: None,
        };
        (param, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{GradientsParams, ModuleOptimizer};
    use burn::tensor::{Distribution, FloatDType, TensorData, Tolerance};

    const MOMENTS: Moments = Moments {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
    };

    fn random(shape: [usize; 2]) -> Tensor<2> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex())
    }

    fn assert_close(actual: &Tensor<2>, expected: &Tensor<2>) {
        actual
            .to_data()
            .assert_approx_eq::<f32>(&expected.to_data(), Tolerance::rel_abs(1e-5, 1e-7));
    }

    /// burn's Adam and the fused Adam, stepped side by side on the CPU.
    fn compare_adam(penalty: Option<f32>, param: Tensor<2>) {
        let fused = FusedAdam::new(MOMENTS, penalty);
        let burn = AdamConfig::new()
            .with_epsilon(MOMENTS.epsilon)
            .with_weight_decay(penalty.map(WeightDecayConfig::new))
            .build();
        let (mut p_fused, mut p_burn) = (param.clone(), param);
        let (mut s_fused, mut s_burn) = (None, None);
        for step in 0..5 {
            let grad = random(p_burn.dims());
            let lr = 1e-2 / (step + 1) as f64;
            (p_fused, s_fused) = fused.step(lr, p_fused, grad.clone(), s_fused);
            (p_burn, s_burn) = burn.step(lr, p_burn, grad, s_burn);
            assert_close(&p_fused, &p_burn);
            let (Some(f), Some(b)) = (&s_fused, &s_burn) else {
                panic!("both optimisers keep a state");
            };
            assert_eq!(f.momentum.time, b.momentum.time);
            assert_close(&f.momentum.moment_1, &b.momentum.moment_1);
            assert_close(&f.momentum.moment_2, &b.momentum.moment_2);
        }
    }

    #[test]
    fn f32_cpu_tensors_take_the_fused_path_and_f16_ones_do_not() {
        let taken = CpuUpdate::take(random([3, 3]), random([3, 3]), None);
        assert!(matches!(taken, Ok(CpuUpdate { time: 1, .. })));
        let half = |t: Tensor<2>| t.cast(FloatDType::F16);
        let untaken = CpuUpdate::take(half(random([3, 3])), half(random([3, 3])), None);
        assert!(untaken.is_err());
    }

    #[test]
    fn fused_adam_matches_burns_adam() {
        compare_adam(None, random([17, 33]));
    }

    #[test]
    fn fused_adam_matches_burns_adam_with_l2_penalty() {
        compare_adam(Some(0.05), random([8, 5]));
    }

    #[test]
    fn fused_adam_updates_a_non_contiguous_parameter_like_burn() {
        compare_adam(Some(0.01), random([6, 9]).transpose());
    }

    #[test]
    fn fused_adamw_matches_burns_adamw() {
        for weight_decay in [0.0, 0.1] {
            let fused = FusedAdamW::new(MOMENTS, weight_decay);
            let burn = AdamWConfig::new()
                .with_epsilon(MOMENTS.epsilon)
                .with_weight_decay(weight_decay)
                .build();
            let mut p_fused = random([12, 7]);
            let mut p_burn = p_fused.clone();
            let (mut s_fused, mut s_burn) = (None, None);
            for _ in 0..5 {
                let grad = random([12, 7]);
                (p_fused, s_fused) = fused.step(3e-2, p_fused, grad.clone(), s_fused);
                (p_burn, s_burn) = burn.step(3e-2, p_burn, grad, s_burn);
                assert_close(&p_fused, &p_burn);
            }
            let (Some(f), Some(b)) = (&s_fused, &s_burn) else {
                panic!("both optimisers keep a state");
            };
            assert_eq!(f.momentum.time, 5);
            assert_close(&f.momentum.moment_2, &b.momentum.moment_2);
        }
    }

    #[test]
    fn fused_adam_leaves_the_callers_copy_of_a_shared_parameter_alone() {
        let param = random([4, 4]);
        let kept = param.clone();
        let before = kept.to_data();
        let (updated, _) = FusedAdam::new(MOMENTS, None).step(0.1, param, random([4, 4]), None);
        kept.to_data()
            .assert_approx_eq::<f32>(&before, Tolerance::absolute(0.0));
        assert!(
            updated.to_data() != before,
            "the update changed the parameter"
        );
    }

    #[test]
    fn half_precision_tensors_take_burns_path_and_still_learn() {
        let param = random([4, 4]).cast(FloatDType::F16);
        let grad = Tensor::<2>::ones([4, 4], &Device::flex()).cast(FloatDType::F16);
        let optim = FusedAdam::new(MOMENTS, None);
        let (updated, state) = optim.step(0.1, param.clone(), grad, None);
        assert_eq!(updated.dtype(), DType::F16);
        let moved = (param - updated).cast(FloatDType::F32).into_data();
        for delta in moved.iter::<f32>() {
            assert!(
                (delta - 0.1).abs() < 1e-2,
                "each weight moved by lr: {delta}"
            );
        }
        assert_eq!(state.map(|s| s.momentum.time), Some(1));
    }

    fn linear_grads(model: &Linear, seed: f32) -> GradientsParams {
        let device = Device::flex().autodiff();
        let input = Tensor::<2>::from_data(
            TensorData::new(vec![seed, 1.0 - seed, 0.5, seed * seed], [2, 2]),
            &device,
        );
        let loss = model.forward(input).powi_scalar(2).sum();
        GradientsParams::from_grads(loss.backward(), model)
    }

    #[test]
    fn a_checkpoint_of_burns_adam_resumes_in_the_fused_adam_and_back() {
        let device = Device::flex().autodiff();
        let start = LinearConfig::new(2, 3).init(&device);
        let burn_optim = || AdamConfig::new().with_epsilon(1e-8).init();
        let fused_optim = || ModuleOptimizer::from(FusedAdam::new(MOMENTS, None));

        // Five steps with burn's Adam throughout.
        let mut optim = burn_optim();
        let mut reference = start.clone();
        for step in 0..5 {
            let grads = linear_grads(&reference, step as f32 * 0.1);
            reference = optim.step(1e-2, reference, grads);
        }

        // Two with burn's, three with the fused one from burn's saved state.
        let mut optim = burn_optim();
        let mut model = start.clone();
        for step in 0..2 {
            let grads = linear_grads(&model, step as f32 * 0.1);
            model = optim.step(1e-2, model, grads);
        }
        let saved = optim.into_bytes().expect("the state serialises");
        let mut optim = fused_optim().from_bytes(saved).expect("burn's state loads");
        for step in 2..5 {
            let grads = linear_grads(&model, step as f32 * 0.1);
            model = optim.step(1e-2, model, grads);
        }
        let weight = |m: &Linear| m.weight.val().inner();
        assert_close(&weight(&model), &weight(&reference));

        // And the fused optimiser's state loads into burn's.
        let saved = optim.into_bytes().expect("the state serialises");
        burn_optim()
            .from_bytes(saved)
            .expect("the fused optimiser's state loads into burn's Adam");
    }
}
