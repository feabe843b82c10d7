//! The configuration schema: one struct per section, with the documented defaults.
//!
//! The key names are the public contract shared by YAML, JSON, the CLI and the JS API.

pub use crate::layers::LayerSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::tracking::{MlflowConfig, TrackingConfig};

/// A whole training run: data, model, optimisation, validation, early stopping, checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A human-readable name for the run and the saved model.
    pub name: String,
    /// Seed for weight initialisation, data splits, shuffling and dropout.
    pub seed: u64,
    /// Classification (integer class labels) or regression (one float target).
    pub task: Task,
    /// Reproducible runs: reseeds every epoch so a resumed run matches an uninterrupted one.
    pub deterministic: bool,
    /// Smoke run: one batch of train, validation and test, then stop.
    pub fast_dev_run: bool,
    /// Where the samples come from and how they are split.
    pub data: DataConfig,
    /// The network.
    pub model: ModelConfig,
    /// Optimisation settings.
    pub training: TrainingConfig,
    /// When and what to evaluate on the validation split.
    pub validation: ValidationConfig,
    /// Stop when validation metrics stop improving.
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Periodic checkpoints for resuming and keeping the best models.
    pub checkpoint: CheckpointConfig,
    /// What a `kiln serve` worker must offer to claim the job (ignored by `kiln train` and in
    /// the browser).
    #[serde(skip_serializing_if = "ResourcesConfig::is_empty")]
    pub resources: ResourcesConfig,
    /// Experiment trackers to log the run to (native runs only).
    #[serde(skip_serializing_if = "TrackingConfig::is_empty")]
    pub tracking: TrackingConfig,
    /// `kiln train`: the directory run directories are made in (default `runs`; `--out` names
    /// the run directory itself). Not allowed in `kiln serve` jobs or the browser.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    /// The device index to train on, for the backend chosen (`gpus: [1]` with `--backend wgpu`
    /// is `--device wgpu:1`); at most one, as a run trains on one device. `kiln train --device`
    /// overrides it; `kiln serve` workers train on their own `--device`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<usize>,
}

/// Where a job may run, in a fleet of `kiln serve` workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesConfig {
    /// Labels a worker must have (`kiln serve --label key=value`; every worker also has
    /// `backend=<its backend>`), e.g. `{gpu: h200}`.
    pub labels: std::collections::BTreeMap<String, String>,
}

impl ResourcesConfig {
    /// Whether nothing is required.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: "kiln-run".into(),
            seed: 42,
            task: Task::Classification,
            deterministic: false,
            fast_dev_run: false,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            training: TrainingConfig::default(),
            validation: ValidationConfig::default(),
            early_stopping: None,
            checkpoint: CheckpointConfig::default(),
            resources: ResourcesConfig::default(),
            tracking: TrackingConfig::default(),
            output_dir: None,
            gpus: Vec::new(),
        }
    }
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Integer class labels, cross-entropy loss, softmax outputs.
    Classification,
    /// One float target, mean-squared-error loss.
    Regression,
}

/// The data source and its preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `digits` (embedded), `fashion-mnist`, `csv`, `idx`, or `inline` (arrays given by the caller).
    pub source: DataSource,
    /// `csv`: the file. `fashion-mnist`: the directory holding the IDX files
    /// (default `/usr/share/datasets/fashion-mnist`).
    pub path: Option<String>,
    /// `csv`: the label column, by header name or 0-based index (default: the last column).
    pub label_column: Option<LabelColumn>,
    /// `csv`: whether the first row is a header.
    pub header: bool,
    /// `idx`: the images file (`.gz` allowed).
    pub images: Option<String>,
    /// `idx`: the labels file (`.gz` allowed).
    pub labels: Option<String>,
    /// Fractions of the samples for [train, validation, test]; they must sum to 1.
    /// Classification splits are stratified by class.
    pub split: [f64; 3],
    /// Shuffle the training samples every epoch.
    pub shuffle: bool,
    /// Standardise every feature with the training split's mean and standard deviation.
    pub normalize: bool,
    /// Use at most this many samples (after loading; handy for quick runs): the first ones, or
    /// for a `text` source a stratified random subset.
    pub limit: Option<usize>,
    /// `text`: how texts become token ids.
    pub text: TextConfig,
}

/// Tokenising a `text` source: texts become `max_len` token ids (left-padded with 0, `<pad>`;
/// unknown tokens are 1, `<unk>`) over a vocabulary built from the training split and saved with
/// the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TextConfig {
    /// `word` (runs of letters and digits) or `char`.
    pub tokenizer: Tokenizer,
    /// Tokens per sample: longer texts keep their first `max_len`, shorter ones are padded.
    pub max_len: usize,
    /// The vocabulary's size, `<pad>` and `<unk>` included: the most frequent training tokens.
    pub vocab_size: usize,
    /// Lower-case before tokenising.
    pub lowercase: bool,
    /// A CSV file's text column, by header name or 0-based index (default: the first column).
    pub column: Option<LabelColumn>,
    /// A directory of class folders: folder name → label (folders not listed are skipped when
    /// the map is given; without it every folder is its own class).
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// Class folders: every line of a `.txt` file is one text (word lists, names), instead of
    /// every file.
    pub lines: bool,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            tokenizer: Tokenizer::Word,
            max_len: 128,
            vocab_size: 10_000,
            lowercase: true,
            column: None,
            labels: None,
            lines: false,
        }
    }
}

/// How a text is split into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// Runs of letters and digits.
    Word,
    /// Single characters.
    Char,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: DataSource::Digits,
            path: None,
            label_column: None,
            header: true,
            images: None,
            labels: None,
            split: [0.7, 0.1, 0.2],
            shuffle: true,
            normalize: true,
            limit: None,
            text: TextConfig::default(),
        }
    }
}

/// The supported data sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// The 1797 8×8 UCI handwritten digits as shipped in scikit-learn, embedded in Kiln.
    Digits,
    /// Fashion-MNIST from its official IDX files.
    FashionMnist,
    /// A numeric CSV file with one label column.
    Csv,
    /// A pair of IDX files (images and labels).
    Idx,
    /// Arrays handed over by the caller (the JS API's `{ features, labels, shape }`).
    Inline,
    /// Texts: a directory with one folder of `.txt` files per class, or a CSV file with a text
    /// column and a label column; tokenised as `data.text` says.
    Text,
}

/// A CSV label column, by name or by 0-based index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum LabelColumn {
    /// 0-based column index.
    Index(usize),
    /// Header name.
    Name(String),
}

/// The network: a preset or an explicit list of layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `mlp` or `cnn`; ignored when `layers` is given.
    pub preset: Option<Preset>,
    /// Hidden layer widths for the `mlp` preset.
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden layer of a preset (0 = none).
    pub dropout: f64,
    /// Explicit layers, applied in order. Input sizes are inferred from the data; a final
    /// `linear` without `out` gets the number of classes (or 1 for regression). Each is
    /// `{type: linear, out: 64}`, `{linear: {out: 64}}`, or a bare name (`relu`).
    #[serde(deserialize_with = "crate::layers::forms::deserialize")]
    #[schemars(schema_with = "crate::layers::forms::schema")]
    pub layers: Vec<LayerSpec>,
    /// Start from weights trained elsewhere (a PyTorch state dict saved with `safetensors`)
    /// instead of a random initialisation; layers the file does not cover start fresh.
    pub init_from: Option<InitFrom>,
}

/// Weights to start from: a safetensors file and how its keys name Kiln's layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitFrom {
    /// The `.safetensors` file (native runs; a browser or Node wasm cannot read paths).
    #[serde(default)]
    pub path: Option<String>,
    /// npm package: a URL the package fetches the file from (or pass `bytes`, a Uint8Array).
    #[serde(default)]
    pub url: Option<String>,
    /// Key prefixes of the file → Kiln layer indices: `{fc1: "0", fc2: "2"}` reads `fc1.weight`
    /// as layer 0's weight. Keys that are already `<index>.<param>` (an `nn.Sequential`) need
    /// no entry. PyTorch's linear weights are transposed as burn stores them.
    #[serde(default)]
    pub map: std::collections::BTreeMap<String, String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            preset: Some(Preset::Mlp),
            hidden: vec![128],
            dropout: 0.0,
            layers: Vec::new(),
            init_from: None,
        }
    }
}

/// Ready-made architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Linear layers of widths `hidden` with ReLU between them.
    Mlp,
    /// Two conv(3×3)-ReLU-maxpool(2) blocks (16 and 32 channels), then linear 128, ReLU, linear.
    Cnn,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Number of passes over the training split.
    pub num_passes: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Drop the last, smaller batch of every epoch.
    pub drop_last: bool,
    /// The optimiser and its hyperparameters.
    pub weight_optimization: WeightOptimization,
    /// How the learning rate changes over the run.
    pub lr_scheduler: LrScheduler,
    /// Batches whose gradients are summed before one optimiser step.
    pub gradient_accumulation_steps: usize,
    /// Clip the global gradient norm to this value (0 = no clipping).
    pub gradient_max_norm: f64,
    /// Floating-point precision: `f32`, or `f16` where the device supports it (`32` and `16`
    /// mean the same).
    #[schemars(schema_with = "precision_schema")]
    pub precision: Precision,
    /// Read the training loss (and gradient norm) from the device every this many steps.
    pub log_every_steps: usize,
    /// Learning-rate multipliers for groups of the network's layers (fine-tuning: a smaller
    /// rate for imported layers than for a new head). Layers in no group train at the base rate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layer_groups: Vec<LayerGroup>,
    /// FedProx's μ (Li et al. 2020): adds μ/2·‖w − w₀‖² to the loss, pulling the weights toward
    /// the ones training started from — a federation's global model in a client's round, the
    /// `model.init_from` weights when fine-tuning (0 = off). A federation with `fedprox`
    /// aggregation sets it for its clients.
    #[serde(skip_serializing_if = "is_zero")]
    pub proximal_mu: f64,
}

/// Whether a number is 0 (an unset optional setting, left out of saved configs).
fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// Some of the network's layers and their learning-rate multiplier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerGroup {
    /// Indices into the network's layers (`model.layers`, counted from 0; a preset's layers
    /// as it expands them).
    pub layers: Vec<usize>,
    /// The group's learning rate is the base rate (after the schedule) times this (>= 0).
    pub lr_multiplier: f64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            num_passes: 20,
            batch_size: 32,
            drop_last: false,
            weight_optimization: WeightOptimization::default(),
            lr_scheduler: LrScheduler::default(),
            gradient_accumulation_steps: 1,
            gradient_max_norm: 0.0,
            precision: Precision::F32,
            log_every_steps: 10,
            layer_groups: Vec::new(),
            proximal_mu: 0.0,
        }
    }
}

/// The optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WeightOptimization {
    /// `sgd`, `momentum`, `adam` or `adamw`.
    pub optimization_method: OptimizationMethod,
    /// The base learning rate (> 0).
    pub learning_rate: f64,
    /// L2 penalty (sgd, momentum, adam) or decoupled decay (adamw).
    pub weight_decay: f64,
    /// Momentum factor for `momentum`.
    pub momentum: f64,
    /// Adam's (beta1, beta2).
    pub betas: [f64; 2],
}

impl Default for WeightOptimization {
    fn default() -> Self {
        Self {
            optimization_method: OptimizationMethod::Adam,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            betas: [0.9, 0.999],
        }
    }
}

/// The supported optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OptimizationMethod {
    /// Plain stochastic gradient descent.
    Sgd,
    /// SGD with momentum.
    Momentum,
    /// Adam.
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
}

/// Learning-rate schedule, as a function of the optimiser step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrScheduler {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_size` optimiser steps.
    Step {
        /// Steps between decays.
        step_size: usize,
        /// Decay factor in (0, 1].
        #[serde(default = "half")]
        gamma: f64,
    },
    /// Cosine decay from the base rate to `min_lr` over the whole run.
    Cosine {
        /// The final learning rate.
        #[serde(default)]
        min_lr: f64,
    },
    /// Linear warm-up from 0 to the base rate over `warmup_steps`, then constant.
    LinearWarmup {
        /// Steps of warm-up.
        warmup_steps: usize,
    },
}

/// `f32` / `f16`, or the same as a number of bits.
fn precision_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let named = generator.subschema_for::<Precision>();
    schemars::json_schema!({ "anyOf": [named, { "enum": [32, 16] }] })
}

fn half() -> f64 {
    0.5
}

/// Floating-point precision of weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats (every device).
    F32,
    /// 16-bit floats (only devices that support them).
    F16,
}

/// Validation schedule and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// An integer N evaluates every N optimiser steps; a float x evaluates every x epochs
    /// (0.5 = twice per epoch, 1.0 = every epoch).
    pub every: Every,
    /// Metrics to compute on the validation and test splits.
    pub metrics: Vec<Metric>,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            every: Every::Epochs(1.0),
            metrics: vec![Metric::Loss, Metric::Accuracy],
        }
    }
}

/// How often to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Every {
    /// Every N optimiser steps (an integer).
    Steps(u64),
    /// Every x epochs (a float).
    Epochs(f64),
}

/// Evaluation metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean loss.
    Loss,
    /// Fraction of correct classes.
    Accuracy,
    /// Unweighted mean of per-class precision.
    PrecisionMacro,
    /// Support-weighted mean of per-class precision.
    PrecisionWeighted,
    /// Unweighted mean of per-class recall.
    RecallMacro,
    /// Support-weighted mean of per-class recall.
    RecallWeighted,
    /// Unweighted mean of per-class F1.
    F1Macro,
    /// Support-weighted mean of per-class F1.
    F1Weighted,
    /// Counts of (true class, predicted class).
    ConfusionMatrix,
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
    /// Coefficient of determination.
    R2,
}

/// Early stopping on validation metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// The metrics to watch (default: `val_loss`, lower is better).
    #[serde(default = "watch_val_loss")]
    pub tasks: Vec<EarlyStoppingTask>,
    /// Evaluations without improvement before stopping.
    #[serde(default = "three")]
    pub patience: usize,
    /// Stop when `any` watched metric has stalled, or only when `all` have.
    #[serde(default)]
    pub mode: StopMode,
}

fn three() -> usize {
    3
}

fn watch_val_loss() -> Vec<EarlyStoppingTask> {
    vec![EarlyStoppingTask {
        metric: "val_loss".into(),
        delta: 0.0,
        mode: Direction::Min,
        grace_period: 0,
        init_best_score: None,
    }]
}

/// One watched metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingTask {
    /// A validation metric, e.g. `val_loss` or `val_accuracy`.
    pub metric: String,
    /// The smallest change that counts as an improvement.
    #[serde(default)]
    pub delta: f64,
    /// Whether lower (`min`) or higher (`max`) is better.
    pub mode: Direction,
    /// Evaluations during which stopping is not allowed.
    #[serde(default)]
    pub grace_period: usize,
    /// The score to beat at the start (default: the first evaluation).
    #[serde(default)]
    pub init_best_score: Option<f64>,
}

/// Which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// How several early-stopping tasks combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// Stop when any task has run out of patience.
    #[default]
    Any,
    /// Stop only when every task has run out of patience.
    All,
}

/// Checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Write a checkpoint every this many epochs (0 = never).
    pub every_epochs: usize,
    /// Keep this many best checkpoints, ranked by `main_metric` (the latest is always kept).
    pub save_top_k: usize,
    /// The metric that ranks checkpoints and picks the best model, e.g. `val_loss`.
    pub main_metric: String,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every_epochs: 1,
            save_top_k: 1,
            main_metric: "val_loss".into(),
        }
    }
}

crate::display_serde_name!(Metric, Task, Direction);

impl Direction {
    /// Whether `value` beats `best` by more than `delta` (any value beats no best).
    pub fn improves(self, value: f64, best: Option<f64>, delta: f64) -> bool {
        match (best, self) {
            (None, _) => true,
            (Some(best), Self::Min) => value < best - delta,
            (Some(best), Self::Max) => value > best + delta,
        }
    }

    /// Orders two scores best first.
    pub fn best_first(self, a: f64, b: f64) -> std::cmp::Ordering {
        match self {
            Self::Min => a.total_cmp(&b),
            Self::Max => b.total_cmp(&a),
        }
    }
}

impl Metric {
    /// Which way is better.
    pub fn direction(self) -> Direction {
        match self {
            Self::Loss | Self::Mse | Self::Mae => Direction::Min,
            _ => Direction::Max,
        }
    }

    /// Whether the metric applies to the task.
    pub fn fits(self, task: Task) -> bool {
        match self {
            Self::Loss => true,
            Self::Mse | Self::Mae | Self::R2 => task == Task::Regression,
            _ => task == Task::Classification,
        }
    }

    /// Every metric.
    pub const ALL: [Metric; 12] = [
        Self::Loss,
        Self::Accuracy,
        Self::PrecisionMacro,
        Self::PrecisionWeighted,
        Self::RecallMacro,
        Self::RecallWeighted,
        Self::F1Macro,
        Self::F1Weighted,
        Self::ConfusionMatrix,
        Self::Mse,
        Self::Mae,
        Self::R2,
    ];
}
