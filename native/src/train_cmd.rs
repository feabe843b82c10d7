//! `kiln train`: run (or resume) a job with a live progress bar.

use crate::cli::TrainArgs;
use crate::run_dir::{MetricsLog, RunDir, run_json};
use crate::tracking::{MlflowSettings, MlflowTracker, finish_tracked_run, run_end};
use indicatif::{ProgressBar, ProgressStyle};
use kiln::backend::{BackendKind, DeviceChoice, native_device_at};
use kiln::data::load_and_prepare;
use kiln::jobs::{Job, JobOutput, JobRun, run_job};
use kiln::model::ConfigModel;
use kiln::store::{DirStore, ModelStore};
use kiln::train::TrainEvent;
use kiln::train::TrainInputs;
use kiln::{Config, Result, TrainRunInfo};
use std::path::PathBuf;

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{bar:30.cyan/blue} {pos}/{len} steps {elapsed_precise}<{eta_precise} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn describe(event: &TrainEvent, bar: &ProgressBar, last_val: &mut String) {
    match event {
        TrainEvent::Started {
            total_steps,
            start_epoch,
            ..
        } => {
            bar.set_length(*total_steps);
            if *start_epoch > 1 {
                eprintln!("kiln: resuming at epoch {start_epoch}");
            }
        }
        TrainEvent::Progress(p) => {
            bar.set_position(p.step);
            bar.set_message(format!(
                "epoch {}/{} loss {:.4} {:.0} samples/s {last_val}",
                p.epoch, p.epochs, p.loss, p.samples_per_sec
            ));
        }
        TrainEvent::Evaluated(entry) => {
            *last_val = ["val_loss", "val_accuracy"]
                .iter()
                .filter_map(|k| entry.metrics.get(*k).map(|v| format!("{k} {v:.4}")))
                .collect::<Vec<_>>()
                .join(" ");
        }
        TrainEvent::Checkpoint { .. } => {}
        TrainEvent::Warning { message } => bar.suspend(|| eprintln!("kiln: warning: {message}")),
    }
}

/// The closing line of `kiln train`: what ran, for how long, the test metrics when there are
/// any, and where the model went.
fn summary_line(info: &TrainRunInfo, metrics: &[String], store: &str) -> String {
    let epochs = match info.summary.epochs_run {
        1 => "1 epoch".to_string(),
        n => format!("{n} epochs"),
    };
    let early = if info.summary.stopped_early {
        " (stopped early)"
    } else {
        ""
    };
    let metrics = if metrics.is_empty() {
        String::new()
    } else {
        format!(" — {}", metrics.join(", "))
    };
    format!(
        "kiln: {} finished in {:.1}s, {epochs}{early}{metrics} — model {} saved in {store}",
        info.job_id, info.summary.duration_secs, info.model_id
    )
}

/// The device as the start line names it; CPU with its thread count (`--threads`).
fn backend_label(choice: DeviceChoice) -> String {
    match choice.kind {
        BackendKind::Cpu => match rayon::current_num_threads() {
            1 => "cpu (1 thread)".to_string(),
            n => format!("cpu ({n} threads)"),
        },
        _ => choice.to_string(),
    }
}

/// Ctrl-C (SIGINT) or SIGTERM cancels the job: it stops at its next step, the run directory
/// keeps its checkpoints for `--resume`, and a tracked run ends KILLED.
fn cancel_on_ctrl_c(job: &Job) {
    let token = job.cancel_token();
    let _ = std::thread::Builder::new()
        .name("kiln-signals".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                let mut signalled = async || match term.as_mut() {
                    Some(term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                };
                signalled().await;
                eprintln!("kiln: interrupted: stopping at the next step (again to quit at once)");
                token.cancel();
                signalled().await;
                std::process::exit(130);
            });
        });
}

/// Runs `kiln train`.
pub fn run(args: TrainArgs, store: &DirStore) -> Result<()> {
    futures::executor::block_on(store.check_writable())?;
    let mut _lock = None;
    let (config, root, resume) = match &args.resume {
        Some(dir) => {
            let config = RunDir::load_config(dir)?;
            _lock = Some(RunDir::lock(dir)?);
            RunDir::check_unfinished(dir)?;
            let point = RunDir::latest_checkpoint(dir, config.training.num_passes)?;
            (config, dir.clone(), Some(point))
        }
        None => {
            let config = match &args.config {
                Some(path) => Config::from_file(path)?,
                None => Config::embedded_default()?,
            };
            (config, PathBuf::new(), None)
        }
    };
    let choice = match args.device {
        Some(choice) => choice,
        None => DeviceChoice::for_run(args.backend, &config.gpus)?,
    };
    let kind = choice.kind;
    let splits = load_and_prepare(&config)?;
    let device = native_device_at(choice)?;
    let job = Job::new();
    let root = if resume.is_some() {
        root
    } else {
        args.out.clone().unwrap_or_else(|| {
            let parent = config.output_dir.as_deref().unwrap_or("runs");
            PathBuf::from(parent).join(format!("{}-{}", config.name_slug(), job.id()))
        })
    };
    if resume.is_none() {
        _lock = Some(RunDir::lock(&root)?);
        if root.join("config.yaml").exists() {
            return Err(kiln::KilnError::InvalidArgument(format!(
                "{} already holds a run: continue it with --resume {0}, or pick another --out",
                root.display()
            )));
        }
    }
    let mut run_dir = RunDir::open(root, &config, config.checkpoint.save_top_k)?;
    let mut metrics_log = MetricsLog::open(&run_dir.root, resume.as_ref().map(|r| r.state.step))?;
    let tracker = MlflowSettings::resolve(
        &config,
        args.mlflow.as_deref(),
        job.id(),
        &kind.to_string(),
        Some(&run_dir.root),
    )?
    .map(|settings| {
        eprintln!(
            "kiln: logging to MLflow at {} (experiment `{}`)",
            settings.uri, settings.experiment
        );
        MlflowTracker::start(settings)
    });
    if let (Some(tracker), Some(_)) = (&tracker, &resume) {
        tracker.log_history(&run_dir.root);
    }
    cancel_on_ctrl_c(&job);
    eprintln!(
        "kiln: training `{}` on {} ({} train / {} val / {} test samples) → {}",
        config.name,
        backend_label(choice),
        splits.train.len(),
        splits.val.as_ref().map_or(0, |v| v.len()),
        splits.test.as_ref().map_or(0, |v| v.len()),
        run_dir.root.display()
    );
    let bar = progress_bar();
    let mut last_val = String::new();
    let mut log_error = None;
    let mut on_event = |event: &TrainEvent| {
        describe(event, &bar, &mut last_val);
        if let Some(tracker) = &tracker {
            tracker.log(event);
        }
        if let Err(e) = metrics_log.log(event) {
            log_error.get_or_insert(e);
        }
    };
    let best_path = run_dir.best_model_path().display().to_string();
    let results_root = run_dir.root.clone();
    let mut write_results = |output: &JobOutput| RunDir::write_results(&results_root, output);
    let outcome = futures::executor::block_on(run_job(
        &job,
        JobRun {
            inputs: TrainInputs {
                config: &config,
                splits: &splits,
                builder: &ConfigModel::default(),
                device,
                checkpoints: Some(&mut run_dir),
                resume,
                yield_now: None,
            },
            backend: kind.to_string(),
            store,
            on_event: &mut on_event,
            best_model_path: Some(best_path),
            before_store: Some(&mut write_results),
            holdout: true,
            model_id: None,
        },
    ));
    bar.finish_and_clear();
    if let Some(tracker) = tracker {
        let end = Some(run_end(&outcome));
        for line in finish_tracked_run(tracker, &outcome, end, &results_root, Vec::new()) {
            eprintln!("kiln: warning: {line}");
        }
    }
    let output = outcome?;
    let info = &output.info;
    if let Some(e) = log_error {
        return Err(e);
    }
    let json = run_json(info)?;
    let show = |name: &str| {
        info.summary
            .final_metrics
            .get(name)
            .map(|v| format!("{name} {v:.4}"))
    };
    let summary: Vec<String> = [
        "test_accuracy",
        "test_loss",
        "test_f1_macro",
        "test_mse",
        "test_r2",
    ]
    .iter()
    .filter_map(|m| show(m))
    .collect();
    eprintln!(
        "{}",
        summary_line(info, &summary, &store.root().display().to_string())
    );
    if args.json {
        println!("{json}");
    }
    Ok(())
}
