//! The training loop: one `async` function shared by every target.

use super::batch::{batch_loss, make_batch};
use super::checkpoint::{BestRecord, CheckpointData, CheckpointSink, ResumePoint, TrainerState};
use super::evaluate::evaluate;
use super::events::{CancelToken, HistoryEntry, Progress, TrainEvent};
use super::optim::{build_optimizer, clip_global_norm, global_grad_norm};
use super::schedule::learning_rate;
use crate::config::{Config, Every, Metric, Precision};
use crate::data::{Splits, epoch_order};
use crate::error::{KilnError, Result};
use crate::metrics::EvalReport;
use crate::model::{Network, export_weights, import_weights, resolve_layers};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{DType, Device, FloatDType, Tensor, Transaction};
use std::collections::BTreeMap;
use web_time::Instant;

/// Everything one training run needs.
pub struct TrainRequest<'a, 'c> {
    /// The validated config.
    pub config: &'a Config,
    /// The prepared splits.
    pub splits: &'a Splits,
    /// The device to train on (without autodiff; the loop adds it).
    pub device: Device,
    /// Receives progress, evaluation and checkpoint events.
    pub events: &'a mut dyn FnMut(TrainEvent),
    /// Checked between steps.
    pub cancel: CancelToken,
    /// Checked at the end of every epoch: once set, the epoch is checkpointed (when there is a
    /// checkpoint sink) and the run stops as cancelled — a server shutting down uses it so its
    /// jobs resume from exactly there.
    pub stop_at_epoch_end: CancelToken,
    /// Where checkpoints go, if anywhere.
    pub checkpoints: Option<&'c mut dyn CheckpointSink>,
    /// Continue from here instead of starting fresh.
    pub resume: Option<ResumePoint>,
    /// Awaited after every batch of device reads, so a browser or Node event loop gets control
    /// back even on a CPU backend whose reads complete at once.
    pub yield_now: Option<&'a YieldFn>,
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
    /// The best evaluation, if there was a validation split.
    pub best: Option<BestRecord>,
    /// Latest validation metrics and the best model's test metrics (`test_*`).
    pub final_metrics: BTreeMap<String, f64>,
    /// The test split's confusion matrix, when requested.
    pub test_confusion_matrix: Option<Vec<Vec<u64>>>,
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

/// Whether a lower value of the named metric (`val_loss`, `train_loss`, `val_accuracy`) is better.
pub fn lower_is_better(name: &str) -> bool {
    let bare = name
        .strip_prefix("val_")
        .or_else(|| name.strip_prefix("train_"))
        .or_else(|| name.strip_prefix("test_"))
        .unwrap_or(name);
    Metric::ALL
        .iter()
        .find(|m| m.name() == bare)
        .is_none_or(|m| m.lower_is_better())
}

/// Steps between evaluations.
fn eval_interval(every: Every, steps_per_epoch: u64) -> u64 {
    match every {
        Every::Steps(n) => n.max(1),
        Every::Epochs(x) => ((x * steps_per_epoch as f64).round() as u64).max(1),
    }
}

/// Training losses (and gradient norms) waiting to be read in one batch.
#[derive(Default)]
struct PendingReads {
    losses: Vec<(u64, Tensor<1>)>,
    grad_norm: Option<Tensor<1>>,
    grad_norm_value: Option<f64>,
}

/// Prepares the device for the requested precision. burn fixes a device's default float type
/// once per process (the first use or `configure` settles it), so a job may only train in the
/// precision the device already has, or settle it.
fn configure_precision(device: &mut Device, precision: Precision) -> Result<()> {
    let current = device.settings().float_dtype;
    let wanted = match precision {
        Precision::F32 => FloatDType::F32,
        Precision::F16 => FloatDType::F16,
    };
    if current == wanted {
        return Ok(());
    }
    if precision == Precision::F32 {
        return Err(KilnError::BackendUnavailable(format!(
            "training.precision: f32 was asked for, but an earlier f16 job switched this device \
             ({device:?}) to {current:?} for the rest of the process; train in f16 too, or start \
             a new process (reload the page) for f32 jobs"
        )));
    }
    if !device.supports_dtype(DType::F16) {
        return Err(KilnError::BackendUnavailable(format!(
            "training.precision: f16 is not supported by this device ({device:?}); use f32"
        )));
    }
    device.configure(FloatDType::F16).map_err(|e| {
        KilnError::BackendUnavailable(format!(
            "training.precision: cannot switch the device to f16 ({e:?}): it has already been \
             used in f32 by this process; use f32, or run f16 jobs in a new process (reload \
             the page) before any f32 work"
        ))
    })
}

/// Trains a model as configured. Never blocks on a device read: every read is awaited,
/// and losses are read in batches of `training.log_every_steps`.
pub async fn train(request: TrainRequest<'_, '_>) -> Result<TrainOutcome> {
    let TrainRequest {
        config,
        splits,
        mut device,
        events,
        cancel,
        stop_at_epoch_end,
        mut checkpoints,
        resume,
        yield_now,
    } = request;
    let pause = || async {
        if let Some(yield_now) = yield_now {
            yield_now().await;
        }
    };
    configure_precision(&mut device, config.training.precision)?;
    let t = &config.training;
    let train_set = &splits.train;
    let autodiff = device.clone().autodiff();
    let layers = resolve_layers(&config.model);
    // Initial weights always come from the seeded CPU generator, so a seed gives the same
    // starting model on every backend (CPU, wgpu, WebGPU, CUDA).
    let init_device = crate::backend::cpu_device();
    init_device.seed(config.seed);
    device.seed(config.seed);
    let initial = Network::build(
        &layers,
        &train_set.sample_shape,
        train_set.num_outputs,
        &init_device.clone().autodiff(),
    )?;
    initial.initialize_params();
    let mut model = initial.fork(&autodiff);
    if t.precision == Precision::F16 {
        model = model.cast_float(FloatDType::F16);
    }
    let mut optim: ModuleOptimizer = build_optimizer(&t.weight_optimization, t.precision);
    let mut state = TrainerState::default();
    let mut best_weights: Option<Vec<u8>> = None;
    if let Some(point) = resume {
        model = import_weights(model, &point.model_weights)?;
        optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(point.optimizer))
            .map_err(|e| {
                KilnError::Model(format!("the checkpoint's optimizer state is corrupt: {e}"))
            })?;
        state = point.state;
        best_weights = point.best_weights;
    }

    let batch = t.batch_size;
    let full_batches = (train_set.len() / batch) as u64;
    let mut steps_per_epoch = if t.drop_last || train_set.len() % batch == 0 {
        full_batches
    } else {
        full_batches + 1
    };
    let epochs = if config.fast_dev_run { 1 } else { t.num_passes };
    if config.fast_dev_run {
        steps_per_epoch = 1;
    }
    let total_steps = steps_per_epoch * epochs as u64;
    let accumulation = t.gradient_accumulation_steps as u64;
    let total_optimizer_steps = total_steps.div_ceil(accumulation);
    let interval = eval_interval(config.validation.every, steps_per_epoch);
    let eval_batches = config.fast_dev_run.then_some(1);
    let main_metric = config.checkpoint.main_metric.clone();
    let main_lower = lower_is_better(&main_metric);

    events(TrainEvent::Started {
        total_steps,
        steps_per_epoch,
        start_epoch: state.epochs_done + 1,
    });

    let started = Instant::now();
    let start_step = state.step;
    let mut pending = PendingReads::default();
    let mut loss_window = (0.0f64, 0u64);
    let mut last_lr = t.weight_optimization.learning_rate;
    let mut latest_val: BTreeMap<String, f64> = BTreeMap::new();
    let mut stopped_early = false;
    let mut accumulator = GradientsAccumulator::<Network>::new();

    'epochs: for epoch in state.epochs_done..epochs {
        if config.deterministic {
            autodiff.seed(config.seed.wrapping_add(epoch as u64 + 1));
        }
        let order = epoch_order(train_set.len(), config.seed, epoch, config.data.shuffle);
        let mut micro = 0u64;
        for batch_index in 0..steps_per_epoch as usize {
            if cancel.is_cancelled() {
                return Err(KilnError::Cancelled);
            }
            let from = batch_index * batch;
            let indices = &order[from..(from + batch).min(order.len())];
            let (x, y) = make_batch(train_set, indices, &autodiff);
            let loss = batch_loss(model.forward(x), y)?;
            let loss_value = loss.value.clone();
            let grads =
                GradientsParams::from_grads(loss.gradients(1.0 / accumulation as f32)?, &model);
            micro += 1;
            state.step += 1;
            let last_in_epoch = batch_index + 1 == steps_per_epoch as usize;
            let log_now = state.step % t.log_every_steps as u64 == 0 || last_in_epoch;
            if micro == accumulation || last_in_epoch {
                let mut grads = if accumulation > 1 {
                    accumulator.accumulate(&model, grads);
                    accumulator.grads()
                } else {
                    grads
                };
                micro = 0;
                let clip = t.gradient_max_norm > 0.0;
                if clip || log_now {
                    let norm = global_grad_norm(&model, &grads);
                    if let (true, Some(norm)) = (clip, &norm) {
                        clip_global_norm(&model, &mut grads, norm, t.gradient_max_norm);
                    }
                    pending.grad_norm = norm;
                }
                last_lr = learning_rate(
                    &t.lr_scheduler,
                    t.weight_optimization.learning_rate,
                    state.optimizer_steps,
                    total_optimizer_steps,
                );
                model = optim.step(last_lr, model, grads);
                state.optimizer_steps += 1;
            }
            pending.losses.push((state.step, loss_value));

            if log_now {
                let (sum, count) =
                    read_losses(&mut pending, &mut loss_window, epoch, &checkpoints).await?;
                let elapsed = started.elapsed().as_secs_f64();
                let done = (state.step - start_step) as f64;
                let rate = done / elapsed.max(1e-9);
                events(TrainEvent::Progress(Progress {
                    epoch: epoch + 1,
                    epochs,
                    step: state.step,
                    total_steps,
                    loss: sum / count.max(1) as f64,
                    learning_rate: last_lr,
                    grad_norm: pending.grad_norm_value.take(),
                    samples_per_sec: rate * batch as f64,
                    eta_seconds: (total_steps - state.step) as f64 / rate.max(1e-9),
                    elapsed_seconds: state.elapsed_secs + elapsed,
                    metrics: latest_val.clone(),
                }));
            }

            if state.step % interval == 0 || (config.fast_dev_run && last_in_epoch) {
                read_losses(&mut pending, &mut loss_window, epoch, &checkpoints).await?;
                let mut metrics = BTreeMap::new();
                if loss_window.1 > 0 {
                    metrics.insert(
                        "train_loss".to_string(),
                        loss_window.0 / loss_window.1 as f64,
                    );
                }
                loss_window = (0.0, 0);
                metrics.insert("lr".to_string(), last_lr);
                if let Some(val) = &splits.val {
                    let report = evaluate(
                        &model.valid(),
                        val,
                        batch,
                        &config.validation.metrics,
                        &device,
                        eval_batches,
                    )
                    .await?;
                    latest_val = prefixed("val", &report);
                    metrics.extend(latest_val.clone());
                }
                let entry = HistoryEntry {
                    epoch: epoch + 1,
                    step: state.step,
                    metrics: metrics.clone(),
                };
                state.history.push(entry.clone());
                events(TrainEvent::Evaluated(entry));
                pause().await;
                if let Some(&score) = metrics.get(&main_metric) {
                    let better = match &state.best {
                        None => true,
                        Some(best) if main_lower => score < best.score,
                        Some(best) => score > best.score,
                    };
                    if better {
                        state.best = Some(BestRecord {
                            score,
                            epoch: epoch + 1,
                            step: state.step,
                            metrics: metrics.clone(),
                        });
                        best_weights = Some(export_weights(&model).await?);
                    }
                }
                if let Some(es) = &config.early_stopping
                    && state.early_stop.update(es, &metrics)
                {
                    stopped_early = true;
                }
            }
            if config.fast_dev_run || stopped_early {
                break;
            }
        }
        read_losses(&mut pending, &mut loss_window, epoch, &checkpoints).await?;
        state.epochs_done = epoch + 1;
        let every = config.checkpoint.every_epochs;
        let stopping = stop_at_epoch_end.is_cancelled() && state.epochs_done < epochs;
        let due = every > 0
            && (state.epochs_done % every == 0
                || state.epochs_done == epochs
                || stopped_early
                || stopping);
        if let (true, Some(sink)) = (due, checkpoints.as_deref_mut()) {
            state.elapsed_secs += started.elapsed().as_secs_f64();
            let weights = export_weights(&model).await?;
            let saved = sink.save(CheckpointData {
                state: &state,
                model_weights: &weights,
                best_weights: best_weights.as_deref(),
                optimizer: &optim,
                score: state
                    .history
                    .last()
                    .and_then(|h| h.metrics.get(&main_metric).copied()),
                lower_is_better: main_lower,
            });
            state.elapsed_secs -= started.elapsed().as_secs_f64();
            saved?;
            events(TrainEvent::Checkpoint {
                epoch: state.epochs_done,
                step: state.step,
            });
        }
        if stopped_early || config.fast_dev_run {
            break 'epochs;
        }
        if stopping {
            return Err(KilnError::Cancelled);
        }
    }

    let final_weights = export_weights(&model).await?;
    let best_weights = best_weights.unwrap_or_else(|| final_weights.clone());
    let mut final_metrics = latest_val;
    let mut test_confusion_matrix = None;
    if let Some(test) = &splits.test {
        let best_model = import_weights(model.valid(), &best_weights)?;
        let report = evaluate(
            &best_model,
            test,
            batch,
            &config.validation.metrics,
            &device,
            eval_batches,
        )
        .await?;
        final_metrics.extend(prefixed("test", &report));
        test_confusion_matrix = report.confusion_matrix;
    }
    Ok(TrainOutcome {
        best_weights,
        final_weights,
        best: state.best.clone(),
        final_metrics,
        test_confusion_matrix,
        history: state.history.clone(),
        stopped_early,
        epochs_run: state.epochs_done,
        steps: state.step,
        duration_secs: state.elapsed_secs + started.elapsed().as_secs_f64(),
    })
}

/// `loss` → `val_loss`, and so on.
fn prefixed(prefix: &str, report: &EvalReport) -> BTreeMap<String, f64> {
    report
        .metrics
        .iter()
        .map(|(k, v)| (format!("{prefix}_{k}"), *v))
        .collect()
}

/// Reads every pending loss (and the pending gradient norm) in one transaction, adds them to
/// the running window and fails on a non-finite loss, naming the step. Returns the sum and
/// count of the losses read.
async fn read_losses(
    pending: &mut PendingReads,
    window: &mut (f64, u64),
    epoch: usize,
    checkpoints: &Option<&mut dyn CheckpointSink>,
) -> Result<(f64, u64)> {
    if pending.losses.is_empty() {
        return Ok((0.0, 0));
    }
    let losses = std::mem::take(&mut pending.losses);
    let mut transaction = Transaction::default();
    for (_, loss) in &losses {
        transaction = transaction.register(loss.clone());
    }
    let norm = pending.grad_norm.take();
    if let Some(norm) = &norm {
        transaction = transaction.register(norm.clone());
    }
    let data = transaction.execute_async().await.map_err(|e| {
        KilnError::Training(format!("reading the loss from the device failed: {e:?}"))
    })?;
    let mut sum = 0.0;
    for ((step, _), value) in losses.iter().zip(&data) {
        let loss = value.iter::<f64>().next().unwrap_or(f64::NAN);
        if !loss.is_finite() {
            let kept = checkpoints
                .as_ref()
                .and_then(|c| c.last_location())
                .map(|at| format!("; the last good checkpoint is kept at {at}"))
                .unwrap_or_default();
            return Err(KilnError::Training(format!(
                "the loss became {loss} at step {step} (epoch {}){kept}. Lower \
                 training.weight_optimization.learning_rate or set training.gradient_max_norm",
                epoch + 1
            )));
        }
        sum += loss;
    }
    if norm.is_some() {
        pending.grad_norm_value = data.last().and_then(|d| d.iter::<f64>().next());
    }
    window.0 += sum;
    window.1 += losses.len() as u64;
    Ok((sum, losses.len() as u64))
}
