//! The model trait the training loop trains, and the builder that makes a fresh model.
//!
//! Like burn-train's `TrainStep`/`ValidStep`, a model says what one step computes; unlike them,
//! Kiln's loop runs the backward pass, the optimiser, metrics, checkpoints and jobs itself, so
//! the trait only asks for the forward pass (and, optionally, a custom loss or predictions).

use super::network::Network;
use super::{BatchLoss, BatchTargets, task_loss};
use crate::config::{Config, Task};
use crate::error::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

/// One batch as the loop hands it to a model.
pub struct Batch {
    /// Inputs `[batch, features]`: each sample flattened row-major (its shape is
    /// [`ModelSpec::input_shape`]).
    pub inputs: Tensor<2>,
    /// The batch's targets.
    pub targets: BatchTargets,
}

/// What a model computes for a batch.
pub struct StepOutput {
    /// Outputs `[batch, outputs]`: logits (classification) or values (regression).
    pub outputs: Tensor<2>,
    /// The batch's mean loss.
    pub loss: BatchLoss,
}

/// A burn [`Module`] Kiln can train: the loop, events, jobs, checkpoints and resume, early
/// stopping, metrics and the model store work for any implementation, natively and in wasm.
pub trait TrainStep: Module {
    /// The outputs for a batch of inputs `[batch, features]`: `[batch, outputs]` logits for
    /// classification (softmax is applied at prediction time), values for regression.
    fn forward(&self, inputs: Tensor<2>) -> Tensor<2>;

    /// One step: outputs and loss. The default is the task's loss over [`Self::forward`]:
    /// cross-entropy against class labels, mean squared error against values.
    fn step(&self, batch: Batch) -> Result<StepOutput> {
        let outputs = self.forward(batch.inputs);
        let loss = task_loss(outputs.clone(), batch.targets)?;
        Ok(StepOutput { outputs, loss })
    }

    /// What the model predicts, for metrics: `[batch, 1]`, the class index (as a float) for
    /// classification, the value for regression. The default takes the largest logit.
    fn predictions(&self, outputs: Tensor<2>, task: Task) -> Tensor<2> {
        match task {
            Task::Classification => outputs.argmax(1).float(),
            Task::Regression => outputs,
        }
    }

    /// The parameters of each numbered layer, for `training.layer_groups`' learning-rate
    /// multipliers. The default (no numbered layers) refuses layer groups.
    fn layer_params(&self) -> Vec<Vec<burn::module::ParamId>> {
        Vec::new()
    }
}

/// What a builder knows about the data when it makes a model.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec<'a> {
    /// The run's config (its `model` section describes config-built networks).
    pub config: &'a Config,
    /// One sample's shape: `[features]` or `[channels, height, width]`.
    pub input_shape: &'a [usize],
    /// Classes (classification) or 1 (regression).
    pub num_outputs: usize,
    /// When the samples are token ids (a `text` source): the vocabulary's size.
    pub vocab_size: Option<usize>,
}

/// Makes fresh models of one architecture; the loop calls it once per run, and loading a saved
/// model of that architecture calls it before reading the weights in.
pub trait ModelBuilder {
    /// The model it builds.
    type Model: TrainStep;

    /// The architecture's name, saved in every model header; loading checks it.
    fn architecture(&self) -> String;

    /// A new model with freshly initialised parameters on `device`.
    fn build(&self, spec: &ModelSpec<'_>, device: &Device) -> Result<Self::Model>;

    /// Prepares a freshly built model before a run trains it (weights trained elsewhere, say);
    /// not called when a saved model is loaded. The default keeps the model as built.
    fn initialize(&self, model: Self::Model, config: &Config) -> Result<Self::Model> {
        let _ = config;
        Ok(model)
    }
}

/// The architecture name of networks built from the config's `model` section.
pub const CONFIG_ARCHITECTURE: &str = "kiln.layers";

/// Builds the config's [`Network`] (`model.layers`, or a preset).
#[derive(Debug, Clone, Default)]
pub struct ConfigModel {
    /// `model.init_from`'s file, handed over as bytes (the npm package fetches a URL or takes
    /// bytes); without it `init_from.path` is read.
    init_weights: Option<Vec<u8>>,
    /// Burnpack weights every parameter starts from (a federation's global model), replacing
    /// the random initialisation and `model.init_from`.
    start_weights: Option<Vec<u8>>,
}

impl ConfigModel {
    /// A builder whose networks start from these burnpack weights (of the same architecture).
    pub fn starting_from(weights: Vec<u8>) -> Self {
        Self {
            init_weights: None,
            start_weights: Some(weights),
        }
    }

    /// A builder that starts `model.init_from` from these safetensors bytes instead of a path.
    pub fn with_init_weights(bytes: Vec<u8>) -> Self {
        Self {
            init_weights: Some(bytes),
            start_weights: None,
        }
    }
}

impl ModelBuilder for ConfigModel {
    type Model = Network;

    fn architecture(&self) -> String {
        CONFIG_ARCHITECTURE.into()
    }

    /// `model.init_from`: the safetensors file's weights replace the fresh ones they cover.
    fn initialize(&self, model: Network, config: &Config) -> Result<Network> {
        if let Some(weights) = &self.start_weights {
            return super::import_weights(model, weights);
        }
        match &config.model.init_from {
            None => Ok(model),
            Some(init) => {
                let bytes = match (&self.init_weights, &init.path) {
                    (Some(bytes), _) => std::borrow::Cow::Borrowed(bytes.as_slice()),
                    (None, Some(path)) => std::borrow::Cow::Owned(read_weights_file(path)?),
                    (None, None) => {
                        return Err(crate::error::KilnError::Config(
                            "model.init_from: give `path` (native runs), or `url` / `bytes` in \
                             the npm package"
                                .into(),
                        ));
                    }
                };
                super::import_safetensors(model, &bytes, &init.map)
            }
        }
    }

    fn build(&self, spec: &ModelSpec<'_>, device: &Device) -> Result<Network> {
        let layers = super::resolve_layers(&spec.config.model);
        Network::build(
            &layers,
            spec.input_shape,
            spec.vocab_size,
            spec.num_outputs,
            device,
        )
    }
}

impl TrainStep for Network {
    fn forward(&self, inputs: Tensor<2>) -> Tensor<2> {
        Network::forward(self, inputs)
    }

    fn layer_params(&self) -> Vec<Vec<burn::module::ParamId>> {
        self.layers.iter().map(super::params::param_ids).collect()
    }
}

#[cfg(not(target_family = "wasm"))]
fn read_weights_file(path: &str) -> Result<Vec<u8>> {
    crate::limits::read_file_limited(std::path::Path::new(path), "safetensors")
}

#[cfg(target_family = "wasm")]
fn read_weights_file(path: &str) -> Result<Vec<u8>> {
    Err(crate::error::KilnError::Config(format!(
        "model.init_from.path: a browser or Node wasm cannot read files ({path}); fine-tune with \
         `kiln train`"
    )))
}
