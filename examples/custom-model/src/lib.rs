//! A custom model for Kiln: a residual MLP written by hand with burn, trained by the same job
//! API, loop, checkpoints and model store as Kiln's config-built networks.
//!
//! ```text
//! input ─ linear ─ relu ─┬─ block ─┬─ … ─ head ─ logits
//!                        └── + ────┘      (block: layer_norm → linear → relu, added back)
//! ```

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};
use kiln::data::Splits;
use kiln::jobs::{Job, JobOutput, JobRun, run_job};
use kiln::model::{ModelBuilder, ModelSpec, TrainStep};
use kiln::store::ModelStore;
use kiln::train::{CheckpointSink, ResumePoint, TrainEvent, TrainInputs};
use kiln::{Config, KilnError, Result};

/// One residual block: `x + relu(linear(layer_norm(x)))`.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    norm: LayerNorm,
    linear: Linear,
    activation: Relu,
}

impl ResidualBlock {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let update = self
            .activation
            .forward(self.linear.forward(self.norm.forward(x.clone())));
        x + update
    }
}

/// A residual MLP over flattened samples.
#[derive(Module, Debug)]
pub struct ResidualMlp {
    input: Linear,
    blocks: Vec<ResidualBlock>,
    head: Linear,
    activation: Relu,
}

impl TrainStep for ResidualMlp {
    fn forward(&self, inputs: Tensor<2>) -> Tensor<2> {
        let mut x = self.activation.forward(self.input.forward(inputs));
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.head.forward(x)
    }
}

/// Builds [`ResidualMlp`]s of a given width and depth.
#[derive(Debug, Clone, Copy)]
pub struct ResidualMlpBuilder {
    /// Width of the hidden layers.
    pub hidden: usize,
    /// Residual blocks.
    pub blocks: usize,
}

impl ModelBuilder for ResidualMlpBuilder {
    type Model = ResidualMlp;

    fn architecture(&self) -> String {
        format!("example.residual-mlp/{}x{}", self.hidden, self.blocks)
    }

    fn build(&self, spec: &ModelSpec<'_>, device: &Device) -> Result<ResidualMlp> {
        if self.hidden == 0 {
            return Err(KilnError::InvalidArgument(
                "ResidualMlpBuilder.hidden: must be at least 1".into(),
            ));
        }
        let features = spec.input_shape.iter().product();
        let block = || ResidualBlock {
            norm: LayerNormConfig::new(self.hidden).init(device),
            linear: LinearConfig::new(self.hidden, self.hidden).init(device),
            activation: Relu,
        };
        Ok(ResidualMlp {
            input: LinearConfig::new(features, self.hidden).init(device),
            blocks: (0..self.blocks).map(|_| block()).collect(),
            head: LinearConfig::new(self.hidden, spec.num_outputs).init(device),
            activation: Relu,
        })
    }
}

/// A short digits run: the config's data, training and validation settings apply; its
/// `model` section does not (the builder decides the architecture).
pub const DIGITS_CONFIG: &str = "\
name: residual-mlp-digits
seed: 7
deterministic: true
data: {source: digits, split: [0.7, 0.1, 0.2], normalize: true}
training:
  num_passes: 6
  batch_size: 32
  log_every_steps: 20
  weight_optimization: {optimization_method: adam, learning_rate: 0.002}
validation: {every: 1.0, metrics: [loss, accuracy]}
checkpoint: {every_epochs: 1, main_metric: val_accuracy}
";

/// Where a run's checkpoints go and where it continues from.
#[derive(Default)]
pub struct Resumable<'a> {
    /// Receives a checkpoint at the end of every epoch.
    pub checkpoints: Option<&'a mut dyn CheckpointSink>,
    /// Continue from this checkpoint.
    pub resume: Option<ResumePoint>,
}

/// Trains `builder`'s model as `config` says, on `device`, as a Kiln job: the best model goes
/// to `store`, and `on_event` sees every progress, evaluation and checkpoint event.
pub async fn train(
    builder: &ResidualMlpBuilder,
    config: &Config,
    splits: &Splits,
    device: Device,
    store: &dyn ModelStore,
    resumable: Resumable<'_>,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<JobOutput> {
    let job = Job::new();
    let backend = format!("{device:?}");
    run_job(
        &job,
        JobRun {
            inputs: TrainInputs {
                config,
                splits,
                builder,
                device,
                checkpoints: resumable.checkpoints.map(|c| c as &mut dyn CheckpointSink),
                resume: resumable.resume,
                yield_now: None,
            },
            backend,
            store,
            on_event,
            best_model_path: None,
            before_store: None,
            holdout: true,
            model_id: None,
        },
    )
    .await
}
