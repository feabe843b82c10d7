//! The training loop: one `async` function shared by every target, generic over the model.

use super::checkpoint::{CheckpointData, CheckpointSink, ResumePoint, TrainerState};
use super::evaluate::evaluate;
use super::events::{CancelToken, HistoryEntry, Progress, TrainEvent};
use super::learner::{Learner, Started};
use super::loss_reads::LossReads;
use super::plan::RunPlan;
use super::precision::configure_precision;
use super::tracker::{Tracker, Verdict};
use crate::config::{Config, Metric};
use crate::data::{Splits, epoch_order};
use crate::error::{KilnError, Result};
use crate::metrics::{EvalReport, LEARNING_RATE, MetricName, Split};
use crate::model::{ConfigModel, ModelBuilder, TrainStep, export_weights, import_weights};
use burn::tensor::Device;
use std::collections::BTreeMap;
use web_time::Instant;

/// What a run trains, on what, from where, and where its checkpoints go — shared by
/// [`TrainRequest`] and the job API's `JobRun`. `B` builds the model (the config's network by
/// default).
pub struct TrainInputs<'a, 'c, B: ModelBuilder = ConfigModel> {
    /// The validated config.
    pub config: &'a Config,
    /// The prepared splits.
    pub splits: &'a Splits,
    /// Builds the model to train.
    pub builder: &'a B,
    /// The device to train on (without autodiff; the loop adds it).
    pub device: Device,
    /// Where checkpoints go, if anywhere.
    pub checkpoints: Option<&'c mut dyn CheckpointSink>,
    /// Continue from here instead of starting fresh.
    pub resume: Option<ResumePoint>,
    /// Awaited after every batch of device reads, so a browser or Node event loop gets control
    /// back even on a CPU backend whose reads complete at once.
    pub yield_now: Option<&'a YieldFn>,
}

/// Everything one training run needs: its inputs, where events go and how it is stopped.
pub struct TrainRequest<'a, 'c, B: ModelBuilder = ConfigModel> {
    /// What to train.
    pub inputs: TrainInputs<'a, 'c, B>,
    /// Receives progress, evaluation and checkpoint events.
    pub events: &'a mut dyn FnMut(TrainEvent),
    /// Checked between steps.
    pub cancel: CancelToken,
    /// Checked at the end of every epoch: once set, the epoch is checkpointed (when there is a
    /// checkpoint sink) and the run stops as cancelled — a server shutting down uses it so its
    /// jobs resume from exactly there.
    pub stop_at_epoch_end: CancelToken,
}

/// A function returning a future that gives control back to the host's event loop.
pub type YieldFn = dyn Fn() -> futures::future::LocalBoxFuture<'static, ()>;

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Weights of the best model (burnpack): best by `checkpoint.main_metric`, or the last.
    pub best_weights: Vec<u8>,
    /// Weights at the end of training (burnpack).
    pub final_weights: Vec<u8>,
    /// The run's results.
    pub summary: RunSummary,
}

/// A finished run's results, without its weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Metrics at the best evaluation (by `checkpoint.main_metric`).
    pub best_metrics: BTreeMap<String, f64>,
    /// Epoch of the best evaluation, 1-based.
    pub best_epoch: Option<usize>,
    /// Latest validation metrics and the best model's test metrics (`test_*`).
    pub final_metrics: BTreeMap<String, f64>,
    /// The test split's confusion matrix, when requested.
    pub confusion_matrix: Option<Vec<Vec<u64>>>,
    /// Metrics at every evaluation.
    pub history: Vec<HistoryEntry>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Epochs completed.
    pub epochs_run: usize,
    /// Batches processed.
    pub steps: u64,
    /// Training time in seconds (including resumed sessions).
    pub duration_secs: f64,
}

/// Trains a model as configured. Never blocks on a device read: every read is awaited,
/// and losses are read in batches of `training.log_every_steps`.
pub async fn train<B: ModelBuilder>(request: TrainRequest<'_, '_, B>) -> Result<TrainOutcome> {
    let TrainInputs {
        config,
        splits,
        builder,
        mut device,
        checkpoints,
        resume,
        yield_now,
    } = request.inputs;
    configure_precision(&mut device, config.training.precision)?;
    let plan = RunPlan::new(config, splits.train.len());
    if plan.accumulation > plan.total_steps && !config.fast_dev_run {
        return Err(KilnError::Config(format!(
            "training.gradient_accumulation_steps: {} is more than the {} batches of the whole \
             run, so no optimizer step would be taken; use at most {}",
            plan.accumulation, plan.total_steps, plan.total_steps
        )));
    }
    let resume_warnings: Vec<String> = resume
        .as_ref()
        .map(|r| r.warnings.clone())
        .unwrap_or_default();
    let started = Learner::start(builder, config, splits, &device, plan, resume)?;
    let mut run = Run {
        config,
        splits,
        device,
        plan,
        tracker: Tracker::new(config),
        events: request.events,
        checkpoints,
        yield_now,
        clock: Instant::now(),
        start_step: started.state.step,
        reads: LossReads::default(),
        latest_val: BTreeMap::new(),
        started,
    };
    (run.events)(TrainEvent::Started {
        total_steps: plan.total_steps,
        steps_per_epoch: plan.steps_per_epoch,
        start_epoch: run.started.state.epochs_done + 1,
    });
    for message in splits.warnings.iter().chain(&resume_warnings) {
        (run.events)(TrainEvent::Warning {
            message: message.clone(),
        });
    }
    for epoch in run.started.state.epochs_done..plan.epochs {
        let stopped_early = run.epoch(epoch, &request.cancel).await?;
        let interrupted =
            request.stop_at_epoch_end.is_cancelled() && epoch + 1 < plan.epochs && !stopped_early;
        run.end_epoch(epoch, stopped_early || interrupted).await?;
        if interrupted {
            return Err(KilnError::Cancelled);
        }
        if stopped_early {
            return run.finish(true).await;
        }
    }
    run.finish(false).await
}

/// The running mean training loss, as histories name it.
const TRAIN_LOSS: MetricName = MetricName::new(Split::Train, Metric::Loss);

/// A run in progress: the learner, its counters and where results go.
struct Run<'a, 'c, M: TrainStep> {
    config: &'a Config,
    splits: &'a Splits,
    device: Device,
    plan: RunPlan,
    tracker: Tracker<'a>,
    events: &'a mut dyn FnMut(TrainEvent),
    checkpoints: Option<&'c mut dyn CheckpointSink>,
    yield_now: Option<&'a YieldFn>,
    clock: Instant,
    start_step: u64,
    reads: LossReads,
    latest_val: BTreeMap<String, f64>,
    started: Started<M>,
}

impl<M: TrainStep> Run<'_, '_, M> {
    /// Trains one epoch; returns whether early stopping ended the run.
    async fn epoch(&mut self, epoch: usize, cancel: &CancelToken) -> Result<bool> {
        let c = self.config;
        if c.deterministic {
            let autodiff = self.device.clone().autodiff();
            autodiff.seed(c.seed.wrapping_add(epoch as u64 + 1));
        }
        let order = epoch_order(self.splits.train.len(), c.seed, epoch, c.data.shuffle);
        for index in 0..self.plan.steps_per_epoch {
            if cancel.is_cancelled() {
                return Err(KilnError::Cancelled);
            }
            let last_in_epoch = index + 1 == self.plan.steps_per_epoch;
            let step = self.started.state.step + 1;
            let log_now = self.plan.logs_at(step, last_in_epoch);
            let report = self.started.learner.step(
                &self.splits.train,
                self.plan.batch(&order, index),
                &mut self.started.state,
                last_in_epoch,
                log_now,
            )?;
            if report.grad_norm.is_some() {
                self.reads.set_grad_norm(report.grad_norm);
            }
            self.reads.push(step, report.loss);
            if log_now {
                self.report_progress(epoch).await?;
            }
            if self.plan.evaluates_at(step) && self.evaluate(epoch).await?.stop {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads the queued losses and reports progress.
    async fn report_progress(&mut self, epoch: usize) -> Result<()> {
        let loss = self.read_losses(epoch).await?;
        let state = &self.started.state;
        let elapsed = self.clock.elapsed().as_secs_f64();
        let rate = (state.step - self.start_step) as f64 / elapsed.max(1e-9);
        (self.events)(TrainEvent::Progress(Progress {
            epoch: epoch + 1,
            epochs: self.plan.epochs,
            step: state.step,
            total_steps: self.plan.total_steps,
            loss,
            learning_rate: self.started.learner.learning_rate(),
            grad_norm: self.reads.take_grad_norm(),
            samples_per_sec: rate * self.plan.batch_size as f64,
            eta_seconds: (self.plan.total_steps - state.step) as f64 / rate.max(1e-9),
            elapsed_seconds: state.elapsed_secs + elapsed,
            metrics: self.latest_val.clone(),
        }));
        Ok(())
    }

    /// Evaluates on the validation split, records the evaluation and keeps the best weights.
    async fn evaluate(&mut self, epoch: usize) -> Result<Verdict> {
        self.read_losses(epoch).await?;
        let mut metrics = BTreeMap::new();
        if let Some(loss) = self.reads.take_window_mean() {
            metrics.insert(TRAIN_LOSS.to_string(), loss);
        }
        metrics.insert(
            LEARNING_RATE.to_string(),
            self.started.learner.learning_rate(),
        );
        if let Some(val) = &self.splits.val {
            let model = self.started.learner.model()?.valid();
            let report = self.evaluate_on(&model, val).await?;
            self.latest_val = named(Split::Val, &report);
            metrics.extend(self.latest_val.clone());
        }
        let entry = HistoryEntry {
            epoch: epoch + 1,
            step: self.started.state.step,
            metrics,
        };
        (self.events)(TrainEvent::Evaluated(entry.clone()));
        if let Some(yield_now) = self.yield_now {
            yield_now().await;
        }
        let verdict = self.tracker.record(&mut self.started.state, entry);
        if verdict.new_best {
            self.started.best_weights = Some(export_weights(self.started.learner.model()?).await?);
        }
        Ok(verdict)
    }

    async fn evaluate_on(&self, model: &M, split: &crate::data::Dataset) -> Result<EvalReport> {
        let metrics = &self.config.validation.metrics;
        let (batch, limit) = (self.plan.batch_size, self.plan.eval_batches);
        evaluate(model, split, batch, metrics, &self.device, limit).await
    }

    /// Finishes an epoch: reads what is left and writes a checkpoint when one is due.
    async fn end_epoch(&mut self, epoch: usize, ending: bool) -> Result<()> {
        self.read_losses(epoch).await?;
        self.started.state.epochs_done = epoch + 1;
        let every = self.config.checkpoint.every_epochs;
        if !self.plan.checkpoint_due(every, epoch + 1, ending) {
            return Ok(());
        }
        let Some(sink) = self.checkpoints.as_deref_mut() else {
            return Ok(());
        };
        let started = &mut self.started;
        let weights = export_weights(started.learner.model()?).await?;
        let session = self.clock.elapsed().as_secs_f64();
        started.state.elapsed_secs += session;
        let goal = &self.tracker.goal;
        let saved = sink.save(CheckpointData {
            state: &started.state,
            model_weights: &weights,
            best_weights: started.best_weights.as_deref(),
            optimizer: started.learner.optimizer(),
            score: started.state.history.last().and_then(|h| goal.score(h)),
            direction: goal.direction,
        });
        started.state.elapsed_secs -= session;
        saved?;
        (self.events)(TrainEvent::Checkpoint {
            epoch: epoch + 1,
            step: started.state.step,
        });
        Ok(())
    }

    /// The final weights, and the best model's test metrics.
    async fn finish(mut self, stopped_early: bool) -> Result<TrainOutcome> {
        let learner = &self.started.learner;
        let final_weights = export_weights(learner.model()?).await?;
        let best_weights = self
            .started
            .best_weights
            .take()
            .unwrap_or_else(|| final_weights.clone());
        let mut final_metrics = std::mem::take(&mut self.latest_val);
        let mut confusion_matrix = None;
        if let Some(test) = &self.splits.test {
            let best_model = import_weights(learner.model()?.valid(), &best_weights)?;
            let report = self.evaluate_on(&best_model, test).await?;
            final_metrics.extend(named(Split::Test, &report));
            confusion_matrix = report.confusion_matrix;
        }
        let TrainerState {
            best,
            history,
            epochs_done,
            step,
            elapsed_secs,
            ..
        } = self.started.state;
        Ok(TrainOutcome {
            best_weights,
            final_weights,
            summary: RunSummary {
                best_epoch: best.as_ref().map(|b| b.epoch),
                best_metrics: best.map(|b| b.metrics).unwrap_or_default(),
                final_metrics,
                confusion_matrix,
                history,
                stopped_early,
                epochs_run: epochs_done,
                steps: step,
                duration_secs: elapsed_secs + self.clock.elapsed().as_secs_f64(),
            },
        })
    }

    async fn read_losses(&mut self, epoch: usize) -> Result<f64> {
        let sink = self
            .checkpoints
            .as_deref()
            .map(|s| s as &dyn CheckpointSink);
        self.reads.read(epoch, sink).await
    }
}

/// A report's metrics under their reported names (`loss` on `val` → `val_loss`).
fn named(split: Split, report: &EvalReport) -> BTreeMap<String, f64> {
    report
        .metrics
        .iter()
        .map(|(k, v)| (format!("{split}_{k}"), *v))
        .collect()
}
