//! Semantic checks run before any work starts. Every message names the field path, the value
//! and what is allowed.

use super::schema::*;
use super::{MetricName, Split};
use crate::error::{KilnError, Result};
use crate::field_checks::{at_least_one, at_most, fail, non_negative, positive, probability};
use crate::limits::{Limit, Limits};

/// The longest run name (it names the run directory and the saved model).
pub const MAX_NAME_CHARS: usize = 128;

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The longest token sequence a text sample may have (`data.text.max_len`).
pub const MAX_SEQUENCE_LEN: usize = 1 << 16;
/// The most batches one optimizer step may accumulate (`training.gradient_accumulation_steps`).
pub const MAX_ACCUMULATION_STEPS: usize = 1 << 16;

impl Config {
    /// Checks every value against its allowed range and the sections against each other.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(fail("name", "must not be empty", "\"\""));
        }
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err(fail(
                "name",
                &format!("must be at most {MAX_NAME_CHARS} characters"),
                format!("{} characters", self.name.chars().count()),
            ));
        }
        if let Some(c) = self.name.chars().find(|c| c.is_control()) {
            return Err(fail(
                "name",
                "must not hold control characters (NUL, newlines, ...)",
                format!("{:?} containing {:?}", shorten(&self.name), c),
            ));
        }
        self.validate_data()?;
        self.validate_model()?;
        self.validate_training()?;
        self.validate_validation()?;
        self.validate_early_stopping()?;
        self.validate_checkpoint()?;
        self.validate_run_settings()
    }

    fn validate_data(&self) -> Result<()> {
        let data = &self.data;
        if data.source == DataSource::Text {
            at_least_one("data.text.max_len", data.text.max_len)?;
            at_most("data.text.max_len", data.text.max_len, MAX_SEQUENCE_LEN)?;
            if data.text.vocab_size < 3 {
                return Err(fail(
                    "data.text.vocab_size",
                    "must be at least 3 (<pad>, <unk> and one token)",
                    data.text.vocab_size,
                ));
            }
            if self.training.precision == Precision::F16 {
                return Err(fail(
                    "training.precision",
                    "must be f32 for a `text` source (token ids above 2048 are not exact in f16)",
                    "f16",
                ));
            }
        }
        for (i, fraction) in data.split.iter().enumerate() {
            if !fraction.is_finite() || !(0.0..=1.0).contains(fraction) {
                return Err(fail(
                    &format!("data.split[{i}]"),
                    "must be in [0, 1]",
                    fraction,
                ));
            }
        }
        let sum: f64 = data.split.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(fail(
                "data.split",
                "[train, val, test] fractions must sum to 1",
                format!("{:?} (sum {sum})", data.split),
            ));
        }
        if data.split[0] <= 0.0 {
            return Err(fail(
                "data.split[0]",
                "the train fraction must be > 0",
                data.split[0],
            ));
        }
        match data.source {
            DataSource::Csv if data.path.is_none() => Err(KilnError::Config(
                "data.path: required when data.source is `csv` (the CSV file to read)".into(),
            )),
            DataSource::Idx if data.images.is_none() || data.labels.is_none() => {
                Err(KilnError::Config(
                    "data.images and data.labels: both required when data.source is `idx`".into(),
                ))
            }
            _ => Ok(()),
        }?;
        if let Some(limit) = data.limit {
            at_least_one("data.limit", limit)?;
        }
        Ok(())
    }

    fn validate_model(&self) -> Result<()> {
        let model = &self.model;
        let max_layers = Limits::current().max_layers;
        for (field, len) in [
            ("model.layers", model.layers.len()),
            ("model.hidden", model.hidden.len()),
        ] {
            if len > max_layers {
                return Err(Limits::exceeded(
                    field,
                    format!("{len} entries"),
                    Limit::Layers,
                ));
            }
        }
        if model.layers.is_empty() {
            if model.preset.is_none() {
                return Err(KilnError::Config(
                    "model: give either `preset` (mlp | cnn) or a non-empty `layers` list".into(),
                ));
            }
            for (i, width) in model.hidden.iter().enumerate() {
                at_least_one(&format!("model.hidden[{i}]"), *width)?;
            }
            probability("model.dropout", model.dropout)?;
        }
        for (i, layer) in model.layers.iter().enumerate() {
            let at = format!("model.layers[{i}]");
            layer.kind().validate(&at)?;
            let leaves_out_its_width = matches!(layer, LayerSpec::Linear(l) if l.out.is_none());
            let a_linear_follows = model.layers[i + 1..]
                .iter()
                .any(|l| matches!(l, LayerSpec::Linear(_)));
            if leaves_out_its_width && a_linear_follows {
                return Err(KilnError::Config(format!(
                    "{at}.out: required on every linear layer but the last (only the last one \
                     may leave it out to get the number of outputs)"
                )));
            }
        }
        Ok(())
    }

    fn validate_training(&self) -> Result<()> {
        let t = &self.training;
        at_least_one("training.num_passes", t.num_passes)?;
        at_least_one("training.batch_size", t.batch_size)?;
        at_least_one(
            "training.gradient_accumulation_steps",
            t.gradient_accumulation_steps,
        )?;
        at_most(
            "training.gradient_accumulation_steps",
            t.gradient_accumulation_steps,
            MAX_ACCUMULATION_STEPS,
        )?;
        at_least_one("training.log_every_steps", t.log_every_steps)?;
        non_negative("training.gradient_max_norm", t.gradient_max_norm)?;
        non_negative("training.proximal_mu", t.proximal_mu)?;
        self.validate_layer_groups()?;
        let w = &t.weight_optimization;
        positive(
            "training.weight_optimization.learning_rate",
            w.learning_rate,
        )?;
        non_negative("training.weight_optimization.weight_decay", w.weight_decay)?;
        probability("training.weight_optimization.momentum", w.momentum)?;
        for (i, beta) in w.betas.iter().enumerate() {
            probability(&format!("training.weight_optimization.betas[{i}]"), *beta)?;
        }
        match &t.lr_scheduler {
            LrScheduler::Constant => Ok(()),
            LrScheduler::Step { step_size, gamma } => {
                at_least_one("training.lr_scheduler.step_size", *step_size)?;
                if !(gamma.is_finite() && *gamma > 0.0 && *gamma <= 1.0) {
                    return Err(fail(
                        "training.lr_scheduler.gamma",
                        "must be in (0, 1]",
                        gamma,
                    ));
                }
                Ok(())
            }
            LrScheduler::Cosine { min_lr } => {
                non_negative("training.lr_scheduler.min_lr", *min_lr)?;
                if *min_lr > w.learning_rate {
                    return Err(fail(
                        "training.lr_scheduler.min_lr",
                        "must not exceed training.weight_optimization.learning_rate",
                        min_lr,
                    ));
                }
                Ok(())
            }
            LrScheduler::LinearWarmup { warmup_steps } => {
                at_least_one("training.lr_scheduler.warmup_steps", *warmup_steps)
            }
        }
    }

    fn validate_validation(&self) -> Result<()> {
        match self.validation.every {
            Every::Steps(n) if n == 0 => return Err(fail("validation.every", "must be >= 1", n)),
            Every::Epochs(x) => positive("validation.every", x)?,
            Every::Steps(_) => {}
        }
        for (i, metric) in self.validation.metrics.iter().enumerate() {
            if !metric.fits(self.task) {
                let allowed: Vec<_> = Metric::ALL
                    .iter()
                    .filter(|m| m.fits(self.task))
                    .map(|m| m.to_string())
                    .collect();
                return Err(KilnError::Config(format!(
                    "validation.metrics[{i}]: `{}` does not apply to task `{}` (allowed: {})",
                    metric,
                    self.task,
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The metric names that early stopping and checkpoint ranking may refer to.
    pub fn watchable_metrics(&self) -> Vec<String> {
        let mut names = vec![MetricName::new(Split::Train, Metric::Loss)];
        let scalars = self.validation.metrics.iter().copied();
        let scalars = scalars.filter(|m| *m != Metric::ConfusionMatrix);
        names.extend(scalars.map(|m| MetricName::new(Split::Val, m)));
        if !self.validation.metrics.contains(&Metric::Loss) {
            names.push(MetricName::new(Split::Val, Metric::Loss));
        }
        names.iter().map(MetricName::to_string).collect()
    }

    fn check_watchable(&self, path: &str, name: &str) -> Result<()> {
        let allowed = self.watchable_metrics();
        if allowed.iter().any(|m| m == name) {
            return Ok(());
        }
        let hint = super::suggest::did_you_mean(name, &allowed)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        let name = crate::error::cut_short(name);
        Err(KilnError::Config(format!(
            "{path}: unknown metric `{name}`{hint} (allowed: {}; add others to validation.metrics)",
            allowed.join(", ")
        )))
    }

    fn validate_early_stopping(&self) -> Result<()> {
        let Some(es) = &self.early_stopping else {
            return Ok(());
        };
        if es.tasks.is_empty() {
            return Err(KilnError::Config(
                "early_stopping.tasks: must list at least one metric to watch".into(),
            ));
        }
        at_least_one("early_stopping.patience", es.patience)?;
        for (i, task) in es.tasks.iter().enumerate() {
            let at = format!("early_stopping.tasks[{i}]");
            self.check_watchable(&format!("{at}.metric"), &task.metric)?;
            non_negative(&format!("{at}.delta"), task.delta)?;
            let on_val =
                task.metric.parse::<MetricName>().ok().map(|m| m.split) == Some(Split::Val);
            if on_val && self.data.split[1] <= 0.0 {
                return Err(KilnError::Config(format!(
                    "{at}.metric: `{}` needs a validation split, but data.split[1] is 0",
                    task.metric
                )));
            }
        }
        Ok(())
    }

    fn validate_checkpoint(&self) -> Result<()> {
        let main = &self.checkpoint.main_metric;
        self.check_watchable("checkpoint.main_metric", main)
    }

    /// Each group names layers, each layer in one group at most, a multiplier >= 0; indices are
    /// checked against `model.layers` when it is given (against a preset's layers when the
    /// network is built).
    fn validate_layer_groups(&self) -> Result<()> {
        let mut seen = std::collections::BTreeMap::new();
        for (g, group) in self.training.layer_groups.iter().enumerate() {
            let at = format!("training.layer_groups[{g}]");
            non_negative(&format!("{at}.lr_multiplier"), group.lr_multiplier)?;
            if group.layers.is_empty() {
                return Err(fail(
                    &format!("{at}.layers"),
                    "must name at least one layer",
                    "[]",
                ));
            }
            for (j, &layer) in group.layers.iter().enumerate() {
                let count = self.model.layers.len();
                if count > 0 && layer >= count {
                    return Err(fail(
                        &format!("{at}.layers[{j}]"),
                        &format!("must be a layer index below {count} (model.layers has {count})"),
                        layer,
                    ));
                }
                if let Some(first) = seen.insert(layer, g) {
                    return Err(fail(
                        &format!("{at}.layers[{j}]"),
                        &format!("layer {layer} is already in training.layer_groups[{first}]"),
                        layer,
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_run_settings(&self) -> Result<()> {
        if self.gpus.len() > 1 {
            return Err(fail(
                "gpus",
                "must list at most one device index (a run trains on one device)",
                format!("{:?}", self.gpus),
            ));
        }
        if self
            .output_dir
            .as_deref()
            .is_some_and(|d| d.trim().is_empty())
        {
            return Err(fail("output_dir", "must not be empty", "\"\""));
        }
        let Some(mlflow) = &self.tracking.mlflow else {
            return Ok(());
        };
        if let Some(uri) = &mlflow.uri
            && !(uri.starts_with("http://") || uri.starts_with("https://"))
        {
            return Err(fail(
                "tracking.mlflow.uri",
                "must be an http:// or https:// URL of an MLflow tracking server",
                format!("{:?}", shorten(uri)),
            ));
        }
        for (path, value) in [
            ("tracking.mlflow.experiment", &mlflow.experiment),
            ("tracking.mlflow.run_name", &mlflow.run_name),
            ("tracking.mlflow.run_id", &mlflow.run_id),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(fail(path, "must not be empty", "\"\""));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Refuses what only a native run can do, for the browser and Node's wasm: MLflow tracking,
    /// an output directory, device indices.
    pub fn check_runs_in_wasm(&self) -> Result<()> {
        if self.tracking.mlflow.is_some() {
            return Err(KilnError::Config(
                "tracking.mlflow: MLflow tracking runs natively (`kiln train`, `kiln serve` jobs), \
                 not in the browser or Node's wasm; remove it here, or train with a Kiln server \
                 (remote mode) whose job logs to MLflow"
                    .into(),
            ));
        }
        if let Some(dir) = &self.output_dir {
            return Err(fail(
                "output_dir",
                "is for `kiln train` (the browser and Node's wasm keep runs in their model store)",
                format!("{:?}", shorten(dir)),
            ));
        }
        if !self.gpus.is_empty() {
            return Err(fail(
                "gpus",
                "is for native runs (a browser picks its WebGPU adapter itself)",
                format!("{:?}", self.gpus),
            ));
        }
        Ok(())
    }

    /// The run's name as a safe file-name component: ASCII letters, digits, `-` and `_` kept,
    /// everything else (path separators, dots, spaces) turned into `-`, at most 64 characters.
    pub fn name_slug(&self) -> String {
        let mut slug: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        slug = slug.trim_matches('-').to_string();
        if slug.is_empty() {
            "run".to_string()
        } else {
            slug
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> String {
        Config::from_yaml_str(yaml).unwrap_err().to_string()
    }

    #[test]
    fn negative_learning_rate_names_path_and_value() {
        let e = err("training:\n  weight_optimization:\n    learning_rate: -1\n");
        assert!(
            e.contains("training.weight_optimization.learning_rate: must be > 0, got -1"),
            "{e}"
        );
    }

    #[test]
    fn split_must_sum_to_one() {
        let e = err("data:\n  split: [0.5, 0.1, 0.1]\n");
        assert!(e.contains("data.split"), "{e}");
    }

    #[test]
    fn classification_metric_rejected_for_regression() {
        let e = err(
            "task: regression\nvalidation:\n  metrics: [loss, accuracy]\ncheckpoint:\n  main_metric: val_loss\n",
        );
        assert!(e.contains("validation.metrics[1]"), "{e}");
    }

    #[test]
    fn early_stopping_metric_must_be_known() {
        let e = err("early_stopping:\n  tasks:\n    - metric: val_acuracy\n      mode: max\n");
        assert!(e.contains("did you mean `val_accuracy`"), "{e}");
    }

    #[test]
    fn csv_needs_a_path() {
        let e = err("data:\n  source: csv\n");
        assert!(e.contains("data.path"), "{e}");
    }
}
