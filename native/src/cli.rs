//! Command-line arguments.

use clap::{Args, Parser, Subcommand};
use kiln::backend::BackendKind;
use std::path::PathBuf;

/// Kiln: train burn models from a config, natively on CPU, wgpu or CUDA.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
pub struct Cli {
    /// The model store directory (default: $KILN_HOME/models, or ~/.kiln/models).
    #[arg(long, global = true)]
    pub store: Option<PathBuf>,
    /// CPU threads for large tensor ops (default: $RAYON_NUM_THREADS, else every core).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (the embedded default, an MLP on digits, when no CONFIG is given).
    Train(TrainArgs),
    /// Evaluate a saved model on its test split, on a CSV file, or on an IDX image/label pair.
    Eval {
        /// A model id from the store, or a .kiln file.
        #[arg(long)]
        model: String,
        /// A CSV file with the same columns the model was trained on (label included).
        #[arg(long, conflicts_with = "images")]
        data: Option<PathBuf>,
        /// An IDX images file (e.g. Fashion-MNIST's t10k-images-idx3-ubyte[.gz]); needs --labels.
        #[arg(long, requires = "labels")]
        images: Option<PathBuf>,
        /// The IDX labels file that goes with --images.
        #[arg(long, requires = "images")]
        labels: Option<PathBuf>,
        /// The backend to run on.
        #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
        backend: BackendKind,
    },
    /// Predict every row of a CSV of features.
    Predict {
        /// A model id from the store, or a .kiln file.
        #[arg(long)]
        model: String,
        /// CSV of features (a header row is detected and skipped).
        #[arg(long)]
        input: PathBuf,
        /// Write predictions here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The backend to run on.
        #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
        backend: BackendKind,
    },
    /// Federated training through a `kiln serve`: create a federation, take part in one as a
    /// client (training on local data that never leaves this machine), or follow one.
    Federate {
        /// What to do.
        #[command(subcommand)]
        action: crate::federate_cmd::FederateAction,
    },
    /// Manage the model store.
    Models {
        /// What to do with the store.
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Draw runs' curves (losses, accuracy, gradient norm, learning rate) from their
    /// metrics.jsonl into a PNG or SVG file, or in the terminal.
    Plot {
        /// Run directories (`runs/<name>-<job id>`, or a `kiln serve` job's directory).
        #[arg(required_unless_present = "federations")]
        runs: Vec<PathBuf>,
        /// A federation (fed-…) on --server: its rounds' metrics, one step per round.
        #[arg(long = "federation")]
        federations: Vec<String>,
        /// The server of --federation.
        #[arg(long, default_value = "http://127.0.0.1:7878")]
        server: String,
        /// A file whose first line is the server's token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The series, comma-separated (default: train_loss,val_loss,val_accuracy,grad_norm —
        /// those the runs have). Also learning_rate, test_* and any val_* metric.
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// The image to write (.png or .svg; default: curves.png in the first run directory).
        #[arg(long, conflicts_with = "terminal")]
        out: Option<PathBuf>,
        /// Draw in the terminal instead (braille characters, for a quick look over SSH).
        #[arg(long)]
        terminal: bool,
    },
    /// Print the config file's JSON Schema.
    Schema {
        /// Print every API type instead (config, events, results, model summaries) under
        /// `$defs`: what the npm package's types.d.ts is generated from.
        #[arg(long)]
        api: bool,
    },
    /// Serve the job API over HTTP (jobs, datasets, events, models) until SIGINT / SIGTERM.
    Serve {
        /// Address to bind; without --token-file only loopback addresses are allowed.
        #[arg(long, default_value = "127.0.0.1:7878")]
        addr: std::net::SocketAddr,
        /// Registry (kiln.db), datasets, job runs and models (models/).
        #[arg(long, default_value = "kiln-data")]
        data_dir: PathBuf,
        /// Bearer tokens, one per line; every endpoint but /v1/health then needs one.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// An origin browsers may call the API from (CORS); repeatable.
        #[arg(long = "allow-origin")]
        allow_origin: Vec<String>,
        /// Jobs training at once; the rest wait in FIFO order.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        max_concurrent_jobs: u16,
        /// Jobs waiting at most; more are refused with 429.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100000))]
        max_queued_jobs: u32,
        /// Largest request body (datasets, models), in MiB.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
        max_upload_mb: u32,
        /// Largest prediction request (`POST /v1/models/{id}/predict`), in MiB; other JSON
        /// bodies (job configs) may be twice the config size limit.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
        max_json_mb: u32,
        /// The backend to run on.
        #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
        backend: BackendKind,
        /// The registry: postgres://user:password@host/db, shared by every worker of a fleet
        /// (default: the embedded SQLite file DATA_DIR/kiln.db). Also KILN_DATABASE_URL.
        #[arg(long, env = "KILN_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// Models, datasets, checkpoints and results: file:///shared/dir or
        /// s3://bucket/prefix (AWS_* variables for credentials, region, endpoint); default:
        /// DATA_DIR itself.
        #[arg(long)]
        objects: Option<String>,
        /// A label this worker offers (key=value, repeatable); jobs may require labels with
        /// resources.labels. Every worker also has backend=<its backend>.
        #[arg(long = "label")]
        label: Vec<String>,
        /// Seconds a job's claim lasts without a heartbeat; after that another worker takes
        /// the job over from its latest checkpoint.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(2..=3600))]
        lease_secs: u32,
        /// The device jobs train and predict on: `cpu`, `wgpu:N`, `cuda:N` (one worker per GPU:
        /// `--device cuda:1`). Overrides --backend.
        #[arg(long, conflicts_with = "backend")]
        device: Option<kiln::backend::DeviceChoice>,
        /// Log every training job to this MLflow tracking server (http://host:port); a job's
        /// `tracking.mlflow` may pick its experiment and run name, not another server.
        #[arg(long, value_name = "URI")]
        mlflow: Option<String>,
    },
}

/// `kiln models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// List stored models.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one model's metadata as JSON.
    Show {
        /// The model id.
        id: String,
    },
    /// Write a model's portable bytes to a file.
    Export {
        /// The model id.
        id: String,
        /// Destination file.
        file: PathBuf,
    },
    /// Add a model file (from `export`, the browser or Node) to the store.
    Import {
        /// The model file.
        file: PathBuf,
        /// Replace a stored model with the same id (otherwise that is an error).
        #[arg(long)]
        force: bool,
    },
    /// Delete a model.
    Rm {
        /// The model id.
        id: String,
    },
}

/// Options of `kiln train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A YAML or JSON config file.
    pub config: Option<PathBuf>,
    /// The backend to train on.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// The run directory (default: runs/<name>-<job id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its latest checkpoint.
    #[arg(long, conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Print the TrainRunInfo as JSON on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// Log the run to this MLflow tracking server (http://host:port): turns tracking on, or
    /// gives the URI the config's `tracking.mlflow` leaves out.
    #[arg(long, value_name = "URI")]
    pub mlflow: Option<String>,
    /// The device: `cpu`, `wgpu:N` or `cuda:N` (N: the adapter's index; `wgpu` alone is the
    /// default adapter). Overrides --backend and the config's `gpus`.
    #[arg(long, conflicts_with = "backend")]
    pub device: Option<kiln::backend::DeviceChoice>,
}
