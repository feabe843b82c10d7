//! `kiln train`: run (or resume) a job with a live progress bar.

use crate::cli::TrainArgs;
use crate::local_run::{LocalRun, RunSink, run_locally};
use crate::run_dir::{RunDir, run_json};
use crate::tracking::MlflowSettings;
use indicatif::{ProgressBar, ProgressStyle};
use kiln::backend::{BackendKind, DeviceChoice, native_device_at};
use kiln::data::load_and_prepare;
use kiln::jobs::Job;
use kiln::store::{DirStore, ModelStore};
use kiln::train::{ResumePoint, TrainEvent};
use kiln::{Config, Result, TrainRunInfo};
use std::path::PathBuf;

/// `kiln train`'s part of a run: a progress bar and the latest validation metrics on the
/// terminal; the tracker's warnings on stderr.
struct Terminal {
    bar: ProgressBar,
    last_val: String,
}

impl RunSink for Terminal {
    fn tracking_started(&mut self, settings: &MlflowSettings) {
        self.bar.suspend(|| {
            eprintln!(
                "kiln: logging to MLflow at {} (experiment `{}`)",
                settings.uri, settings.experiment
            );
        });
    }

    fn event(&mut self, event: &TrainEvent) {
        describe(event, &self.bar, &mut self.last_val);
    }

    fn tracking_warnings(&mut self, lines: Vec<String>) {
        for line in lines {
            eprintln!("kiln: warning: {line}");
        }
    }
}

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

/// Where a `kiln train` run goes: its config, its run directory (held locked for the run), and
/// the checkpoint it resumes from.
struct RunPlace {
    config: Config,
    root: PathBuf,
    resume: Option<ResumePoint>,
    _lock: std::fs::File,
}

impl RunPlace {
    /// The run `--resume DIR` continues, or a new one (`--out`, else `runs/<name>-<job id>`).
    fn of(args: &TrainArgs, job: &Job) -> Result<Self> {
        if let Some(dir) = &args.resume {
            let config = RunDir::load_config(dir)?;
            let lock = RunDir::lock(dir)?;
            RunDir::check_unfinished(dir)?;
            let point = RunDir::latest_checkpoint(dir, config.training.num_passes)?;
            return Ok(Self {
                config,
                root: dir.clone(),
                resume: Some(point),
                _lock: lock,
            });
        }
        let config = match &args.config {
            Some(path) => Config::from_file(path)?,
            None => Config::embedded_default()?,
        };
        let root = args.out.clone().unwrap_or_else(|| {
            let parent = config.output_dir.as_deref().unwrap_or("runs");
            PathBuf::from(parent).join(format!("{}-{}", config.name_slug(), job.id()))
        });
        let lock = RunDir::lock(&root)?;
        if root.join("config.yaml").exists() {
            return Err(kiln::KilnError::InvalidArgument(format!(
                "{} already holds a run: continue it with --resume {0}, or pick another --out",
                root.display()
            )));
        }
        Ok(Self {
            config,
            root,
            resume: None,
            _lock: lock,
        })
    }
}

/// Runs `kiln train`.
pub fn run(args: TrainArgs, store: &DirStore) -> Result<()> {
    futures::executor::block_on(store.check_writable())?;
    let job = Job::new();
    let place = RunPlace::of(&args, &job)?;
    let config = &place.config;
    let choice = match args.device {
        Some(choice) => choice,
        None => DeviceChoice::for_run(args.backend, &config.gpus)?,
    };
    let splits = load_and_prepare(config)?;
    let device = native_device_at(choice)?;
    let mut run_dir = RunDir::open(place.root.clone(), config, config.checkpoint.save_top_k)?;
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
    let root = run_dir.root.clone();
    let best_path = run_dir.best_model_path().display().to_string();
    let mut terminal = Terminal {
        bar: progress_bar(),
        last_val: String::new(),
    };
    let outcome = run_locally(
        LocalRun {
            job: &job,
            config,
            splits: &splits,
            device,
            backend: choice.kind.to_string(),
            store,
            root: &root,
            checkpoints: &mut run_dir,
            resume: place.resume,
            mlflow: args.mlflow.as_deref(),
            best_model_path: Some(best_path),
            model_id: None,
        },
        &mut terminal,
    );
    terminal.bar.finish_and_clear();
    let info = outcome?.info;
    let json = run_json(&info)?;
    eprintln!(
        "{}",
        summary_line(
            &info,
            &test_metrics(&info),
            &store.root().display().to_string()
        )
    );
    if args.json {
        println!("{json}");
    }
    Ok(())
}

/// The test metrics a summary line shows, as `name value`.
fn test_metrics(info: &TrainRunInfo) -> Vec<String> {
    [
        "test_accuracy",
        "test_loss",
        "test_f1_macro",
        "test_mse",
        "test_r2",
    ]
    .iter()
    .filter_map(|name| {
        info.summary
            .final_metrics
            .get(*name)
            .map(|v| format!("{name} {v:.4}"))
    })
    .collect()
}
