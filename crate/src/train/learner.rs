//! The learner: the model, its optimiser and gradient accumulator, and one training step.

use super::checkpoint::{ResumePoint, TrainerState};
use super::layer_groups::LrGroups;
use super::optim::{build_optimizer, clip_global_norm, global_grad_norm};
use super::plan::RunPlan;
use super::proximal::ProximalAnchor;
use super::schedule::learning_rate;
use crate::config::{Config, Precision, TrainingConfig};
use crate::data::{Dataset, Splits};
use crate::error::{KilnError, Result};
use crate::model::make_batch;
use crate::model::{
    Batch, ModelBuilder, ModelSpec, TrainStep, cast_float, import_weights, initialize_params,
};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, FloatDType, Tensor};

/// A model being trained, with everything that updates it.
pub struct Learner<M: TrainStep> {
    /// The model on the autodiff device; only empty while the optimiser updates it.
    model: Option<M>,
    device: Device,
    optimizer: ModuleOptimizer,
    accumulator: GradientsAccumulator<M>,
    micro: u64,
    learning_rate: f64,
    plan: RunPlan,
    training: TrainingConfig,
    groups: LrGroups,
    /// The weights training started from, when `training.proximal_mu` pulls toward them.
    proximal: Option<ProximalAnchor>,
}

/// What one step leaves to read from the device.
pub struct StepReport {
    /// The batch's mean loss `[1]`.
    pub loss: Tensor<1>,
    /// The global gradient norm, when the step updated and it was asked for (or clipped).
    pub grad_norm: Option<Tensor<1>>,
}

/// A learner, the loop's counters and the best weights so far: fresh, or from a checkpoint.
pub struct Started<M: TrainStep> {
    /// The learner.
    pub learner: Learner<M>,
    /// Counters and bookkeeping.
    pub state: TrainerState,
    /// The best model's weights so far (burnpack).
    pub best_weights: Option<Vec<u8>>,
}

impl<M: TrainStep> Learner<M> {
    /// Builds the model with `builder` and the optimiser from the config, and continues from
    /// `resume` when given. Initial weights always come from the seeded CPU generator, so a
    /// seed gives the same starting model on every backend (CPU, wgpu, WebGPU, CUDA).
    pub fn start<B: ModelBuilder<Model = M>>(
        builder: &B,
        config: &Config,
        splits: &Splits,
        device: &Device,
        plan: RunPlan,
        resume: Option<ResumePoint>,
    ) -> Result<Started<M>> {
        let t = &config.training;
        let init_device = crate::backend::cpu_device();
        init_device.seed(config.seed);
        device.seed(config.seed);
        let spec = ModelSpec {
            config,
            input_shape: &splits.train.sample_shape,
            num_outputs: splits.train.num_outputs,
            vocab_size: splits.vocabulary.as_ref().map(|v| v.size()),
        };
        let initial = builder.build(&spec, &init_device.clone().autodiff())?;
        initialize_params(&initial);
        let initial = builder.initialize(initial, config)?;
        let mut model = initial.fork(&device.clone().autodiff());
        if t.precision == Precision::F16 {
            model = cast_float(model, FloatDType::F16);
        }
        let groups = LrGroups::resolve(&model, &t.layer_groups)?;
        // The starting weights, before a checkpoint's: a resumed run keeps the same anchor.
        let proximal = (t.proximal_mu > 0.0).then(|| ProximalAnchor::at(&model, t.proximal_mu));
        let mut learner = Self {
            model: Some(model),
            device: device.clone().autodiff(),
            optimizer: build_optimizer(&t.weight_optimization, t.precision),
            accumulator: GradientsAccumulator::new(),
            micro: 0,
            learning_rate: t.weight_optimization.learning_rate,
            plan,
            training: t.clone(),
            groups,
            proximal,
        };
        let Some(point) = resume else {
            return Ok(Started {
                learner,
                state: TrainerState::default(),
                best_weights: None,
            });
        };
        let model = import_weights(learner.take_model()?, &point.model_weights)?;
        learner.groups = LrGroups::resolve(&model, &t.layer_groups)?;
        learner.model = Some(model);
        learner.optimizer = learner
            .optimizer
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(point.optimizer))
            .map_err(|e| {
                KilnError::Model(format!("the checkpoint's optimizer state is corrupt: {e}"))
            })?;
        Ok(Started {
            learner,
            state: point.state,
            best_weights: point.best_weights,
        })
    }

    /// Trains on the samples of `data` at `indices`: forward, backward and — at the end of an
    /// accumulation group or of the epoch — clipping and an optimiser step. Counts the step in
    /// `state`. The gradient norm is computed when clipping needs it or `want_norm` is set.
    pub fn step(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        state: &mut TrainerState,
        last_in_epoch: bool,
        want_norm: bool,
    ) -> Result<StepReport> {
        let (plan, training) = (&self.plan, &self.training);
        let (inputs, targets) = make_batch(data, indices, &self.device);
        let model = self.model.as_ref().ok_or_else(lost_model)?;
        let out = model.step(Batch { inputs, targets })?;
        let loss = out.loss.value.clone();
        let scale = 1.0 / plan.accumulation as f32;
        let grads = GradientsParams::from_grads(out.loss.gradients(scale)?, model);
        self.micro += 1;
        state.step += 1;
        if !plan.updates_at(self.micro, last_in_epoch) {
            self.accumulator.accumulate(model, grads);
            return Ok(StepReport {
                loss,
                grad_norm: None,
            });
        }
        self.micro = 0;
        let mut grads = if plan.accumulation > 1 {
            self.accumulator.accumulate(model, grads);
            self.accumulator.grads()
        } else {
            grads
        };
        if let Some(anchor) = &self.proximal {
            anchor.add_to(model, &mut grads);
        }
        let clip = training.gradient_max_norm > 0.0;
        let grad_norm = (clip || want_norm)
            .then(|| global_grad_norm(model, &grads))
            .flatten();
        if let (true, Some(norm)) = (clip, &grad_norm) {
            clip_global_norm(model, &mut grads, norm, training.gradient_max_norm);
        }
        self.learning_rate = learning_rate(
            &training.lr_scheduler,
            training.weight_optimization.learning_rate,
            state.optimizer_steps,
            plan.total_optimizer_steps,
        );
        let parts = self.groups.split(model, &mut grads);
        // burn's optimiser takes the model by value; nothing between take and put can fail.
        let mut model = self.take_model()?;
        model = self.optimizer.step(self.learning_rate, model, grads);
        for (part, multiplier) in parts {
            model = self
                .optimizer
                .step(self.learning_rate * multiplier, model, part);
        }
        self.model = Some(model);
        state.optimizer_steps += 1;
        Ok(StepReport { loss, grad_norm })
    }

    /// The model being trained.
    pub fn model(&self) -> Result<&M> {
        self.model.as_ref().ok_or_else(lost_model)
    }

    fn take_model(&mut self) -> Result<M> {
        self.model.take().ok_or_else(lost_model)
    }

    /// The learning rate of the latest optimiser step.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// The optimiser (for checkpoints).
    pub fn optimizer(&self) -> &ModuleOptimizer {
        &self.optimizer
    }
}

fn lost_model() -> KilnError {
    KilnError::Internal("the model was lost during an optimiser step".into())
}
