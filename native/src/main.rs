//! The `kiln` command-line trainer. Exit codes: 0 ok, 2 bad input, 1 internal failure.

mod cli;
mod cpu_pool;
mod federate_cmd;
mod federate_http;
mod federate_secure;
mod local_run;
mod logging;
mod models_cmd;
mod plot;
mod run_dir;
mod s3;
mod serve;
mod tracking;
mod train_cmd;

use clap::Parser;
use cli::{Cli, Command};
use kiln::{Config, KilnError, Result};
use std::process::ExitCode;

/// mimalloc instead of the system allocator: training allocates and frees tensor buffers of
/// the same sizes every step, which glibc's malloc hands back to the kernel and faults in again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the command on a thread of the CPU pool (`--threads`, else rayon's default: every
/// core), so that the backend's parallel ops run there too: with one thread they run inline
/// instead of being handed to another thread and waited for. Splitting pays for large ops: on
/// 2 cores the cnn preset trains 1.7× faster with 2 threads (BENCHMARKS.md). The pool's
/// threads have ended when this returns.
fn run_in_cpu_pool(cli: Cli) -> Result<()> {
    let cpu = cpu_pool::CpuPool::new(cli.threads)?;
    let pool = cpu.handle();
    if let Command::Serve { .. } = cli.command {
        // The server's own threads are not pool threads: its training threads each enter the
        // pool for a job, so no job waits for a pool thread the server is sitting on.
        return run(cli, pool);
    }
    let result = pool.clone().install(|| run(cli, pool));
    // Every handle to the pool is gone now: its threads end before `cpu` is dropped.
    drop(cpu);
    result
}

fn run(cli: Cli, pool: std::sync::Arc<rayon::ThreadPool>) -> Result<()> {
    kiln::limits::Limits::from_env(|name| std::env::var(name).ok())?.install();
    let store = run_dir::default_store(cli.store);
    match cli.command {
        Command::Train(args) => train_cmd::run(args, &store),
        Command::Eval {
            model,
            data,
            images,
            labels,
            backend,
        } => {
            let source = models_cmd::EvalData::of(data, images.zip(labels));
            models_cmd::eval(&store, &model, source, backend)
        }
        Command::Predict {
            model,
            input,
            output,
            backend,
        } => models_cmd::predict(&store, &model, &input, output, backend),
        Command::Models { action } => models_cmd::models(&store, action),
        Command::Federate { action } => federate_cmd::run(action, &store),
        Command::Serve {
            addr,
            data_dir,
            token_file,
            allow_origin,
            max_concurrent_jobs,
            max_queued_jobs,
            max_upload_mb,
            max_json_mb,
            backend,
            database,
            objects,
            label,
            lease_secs,
            device,
            mlflow,
        } => serve::serve(
            serve::ServeOptions {
                addr,
                data_dir,
                token_file,
                allow_origins: allow_origin,
                max_concurrent_jobs: usize::from(max_concurrent_jobs),
                max_queued_jobs: max_queued_jobs as usize,
                max_upload_mb: max_upload_mb as usize,
                max_json_mb: max_json_mb as usize,
                device: device.unwrap_or(kiln::backend::DeviceChoice::default_of(backend)),
                mlflow,
                database,
                objects,
                labels: label
                    .iter()
                    .map(|l| serve::parse_label(l))
                    .collect::<Result<_>>()?,
                lease: std::time::Duration::from_secs(u64::from(lease_secs)),
            },
            pool,
        ),
        Command::Plot {
            runs,
            federations,
            server,
            token_file,
            metrics,
            out,
            terminal,
        } => {
            let mut curves = runs
                .iter()
                .map(|dir| plot::RunCurves::read(dir))
                .collect::<Result<Vec<_>>>()?;
            for id in &federations {
                curves.push(plot::federation_curves(&server, token_file.as_deref(), id)?);
            }
            let out = out.unwrap_or_else(|| match runs.first() {
                Some(dir) => dir.join("curves.png"),
                None => std::path::PathBuf::from(format!("{}.png", federations[0])),
            });
            plot_cmd(&curves, &metrics, out, terminal)
        }
        Command::Schema { api } => schema_cmd(api),
    }
}

/// `kiln schema`: the config's JSON Schema, or (`--api`) the API types' schemas.
fn schema_cmd(api: bool) -> Result<()> {
    let schema = if api {
        kiln::api_schema::api_schema()
    } else {
        Config::json_schema()
    };
    let schema = serde_json::to_string_pretty(&schema)
        .map_err(|e| KilnError::Internal(format!("cannot encode schema: {e}")))?;
    println!("{schema}");
    Ok(())
}

/// `kiln plot`.
fn plot_cmd(
    runs: &[plot::RunCurves],
    metrics: &[String],
    out: std::path::PathBuf,
    terminal: bool,
) -> Result<()> {
    let metrics = plot::pick_metrics(runs, metrics)?;
    if terminal {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100);
        let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
        print!("{}", plot::draw_in_terminal(runs, &metrics, width, colour));
        return Ok(());
    }
    plot::draw_chart(runs, &metrics, &out)?;
    eprintln!("kiln: {} drawn in {}", metrics.join(", "), out.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    logging::init();
    match std::panic::catch_unwind(|| run_in_cpu_pool(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("kiln: error: {e}");
            ExitCode::from(if e.is_user_error() { 2 } else { 1 })
        }
        Err(_) => {
            eprintln!("kiln: internal error (a panic); please report it with the command you ran");
            ExitCode::from(1)
        }
    }
}
