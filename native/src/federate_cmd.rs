//! `kiln federate`: create a federation on a `kiln serve` (admin), follow one, or take part in
//! one as a client — train each round on local data and send only the trained model back.

use crate::federate_http::{Api, ok};
use crate::federate_secure::{SecureJoin, Took, take_part};
use kiln::backend::{BackendKind, native_device};
use kiln::config::{DataSource, LabelColumn};
use kiln::data::load_source;
use kiln::federated::{local_config, prepare_local, train_round};
use kiln::model::SavedModel;
use kiln::train::CancelToken;
use kiln::{Config, KilnError, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `kiln federate ...`
#[derive(Debug, clap::Subcommand)]
pub enum FederateAction {
    /// Create a federation on a server (needs its admin token).
    Create(CreateArgs),
    /// Take part in a federation: train every round on local data until it ends.
    Join(JoinArgs),
    /// Make a join token for a federation (needs the admin token): it lets a client join,
    /// check in, fetch the global model and send updates — nothing else. Printed once.
    Invite {
        /// The server (http://host:port).
        server: String,
        /// The federation's id (fed-…).
        federation: String,
        /// A file whose first line is the admin token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Seconds until the join token stops working (default: never).
        #[arg(long)]
        expires_in_secs: Option<i64>,
        /// How many clients may join with it (default: any number).
        #[arg(long)]
        max_uses: Option<i64>,
    },
    /// Print a federation's status, rounds and metrics as JSON.
    Status {
        /// The server (http://host:port).
        server: String,
        /// The federation's id (fed-…).
        federation: String,
        /// A file whose first line is the bearer token.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

/// `kiln federate create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The training config every client trains its rounds with (YAML or JSON;
    /// `training.num_passes` = local epochs per round).
    pub config: PathBuf,
    /// The server (http://host:port).
    #[arg(long, default_value = "http://127.0.0.1:7878")]
    pub server: String,
    /// A file whose first line is the bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Rounds in all.
    #[arg(long)]
    pub rounds: i64,
    /// Clients per round, at most.
    #[arg(long)]
    pub clients_per_round: i64,
    /// Updates a round needs at its timeout (default: clients per round).
    #[arg(long)]
    pub min_clients: Option<i64>,
    /// Seconds a round waits for its clients (default 600).
    #[arg(long)]
    pub round_timeout_secs: Option<i64>,
    /// fedavg, fedprox, fedadam, fedyogi, median or trimmed_mean.
    #[arg(long, default_value = "fedavg")]
    pub aggregation: String,
    /// Clip each client's update to this norm.
    #[arg(long)]
    pub clip_norm: Option<f64>,
    /// trimmed_mean: the fraction of values dropped at each end (default 0.1).
    #[arg(long)]
    pub trim: Option<f64>,
    /// fedprox: the proximal term's μ (default 0.01).
    #[arg(long)]
    pub mu: Option<f64>,
    /// The server learns only each round's sum of updates (needs --clip-norm).
    #[arg(long)]
    pub secure_aggregation: bool,
    /// Secure aggregation: shares needed to unmask (default: a majority of --min-clients).
    #[arg(long)]
    pub secure_threshold: Option<i64>,
    /// Secure aggregation: seconds each step waits for the clients (default 30).
    #[arg(long)]
    pub secure_phase_secs: Option<i64>,
    /// One sample's shape, comma-separated (`64`, or `1,28,28`).
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Vec<usize>,
    /// Classes (classification) or 1 (regression).
    #[arg(long)]
    pub num_outputs: Option<usize>,
    /// A stored model to start from instead.
    #[arg(long)]
    pub init_model: Option<String>,
    /// An uploaded dataset (dataset-…) every round's global model is evaluated on.
    #[arg(long)]
    pub validation_dataset: Option<String>,
}

/// `kiln federate join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The server (http://host:port).
    pub server: String,
    /// The federation's id (fed-…).
    #[arg(long)]
    pub federation: String,
    /// The local training data: a CSV file (the label in the last column unless
    /// --label-column says otherwise). It never leaves this machine.
    #[arg(long)]
    pub data: PathBuf,
    /// The CSV's label column, by header name or 0-based index.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Whether the CSV's first line is a header.
    #[arg(long)]
    pub header: bool,
    /// A file whose first line is the bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Where this client keeps its participant id, so a restart rejoins as the same client
    /// (default: `.<data file name>.<federation>.json` beside --data).
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// The backend local training runs on.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
}

/// Runs a `kiln federate` action.
pub fn run(action: FederateAction, store: &kiln::store::DirStore) -> Result<()> {
    match action {
        FederateAction::Create(args) => create(&args),
        FederateAction::Join(args) => join(&args, store),
        FederateAction::Invite {
            server,
            federation,
            token_file,
            expires_in_secs,
            max_uses,
        } => {
            let api = Api::new(&server, token_file.as_deref())?;
            let body = json!({"expiresInSecs": expires_in_secs, "maxUses": max_uses});
            let invite =
                api.json(api.post_json(&format!("/v1/federations/{federation}/invites"), &body)?)?;
            println!("{}", pretty(&invite));
            Ok(())
        }
        FederateAction::Status {
            server,
            federation,
            token_file,
        } => {
            let api = Api::new(&server, token_file.as_deref())?;
            let view = api.json(api.get(&format!("/v1/federations/{federation}"))?)?;
            println!("{}", pretty(&view));
            Ok(())
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn create(args: &CreateArgs) -> Result<()> {
    let config = serde_json::to_value(Config::from_file(&args.config)?)
        .map_err(|e| KilnError::Internal(format!("encoding the config: {e}")))?;
    let mut body = json!({
        "config": config,
        "rounds": args.rounds,
        "clientsPerRound": args.clients_per_round,
        "aggregation": {"method": args.aggregation, "clipNorm": args.clip_norm},
    });
    for (key, value) in [("trim", args.trim), ("mu", args.mu)] {
        if let Some(value) = value {
            body["aggregation"][key] = Value::from(value);
        }
    }
    let optional = [
        (
            "secureAggregation",
            args.secure_aggregation.then_some(Value::Bool(true)),
        ),
        ("secureThreshold", args.secure_threshold.map(Value::from)),
        ("securePhaseSecs", args.secure_phase_secs.map(Value::from)),
        ("minClients", args.min_clients.map(Value::from)),
        ("roundTimeoutSecs", args.round_timeout_secs.map(Value::from)),
        ("numOutputs", args.num_outputs.map(Value::from)),
        ("initModel", args.init_model.clone().map(Value::from)),
        (
            "validationDataset",
            args.validation_dataset.clone().map(Value::from),
        ),
        (
            "inputShape",
            (!args.input_shape.is_empty()).then(|| json!(args.input_shape)),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    let api = Api::new(&args.server, args.token_file.as_deref())?;
    let view = api.json(api.post_json("/v1/federations", &body)?)?;
    println!("{}", pretty(&view));
    Ok(())
}

/// What a client keeps between runs: its participant id.
fn state_path(args: &JoinArgs) -> PathBuf {
    args.state_file.clone().unwrap_or_else(|| {
        let dir = args
            .data
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let name = args
            .data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        dir.join(format!(".{name}.{}.json", args.federation))
    })
}

fn participant_of(api: &Api, args: &JoinArgs) -> Result<(String, Value)> {
    let path = state_path(args);
    let known = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["participant"].as_str().map(str::to_string));
    let body = match &known {
        Some(p) => json!({"participant": p}),
        None => json!({}),
    };
    let joined =
        api.json(api.post_json(&format!("/v1/federations/{}/join", args.federation), &body)?)?;
    let participant = joined["participant"]
        .as_str()
        .ok_or_else(|| KilnError::Internal("join: the server gave no participant id".into()))?
        .to_string();
    kiln::store::write_atomic(
        &path,
        json!({"participant": participant}).to_string().as_bytes(),
    )?;
    Ok((participant, joined))
}

/// The local data source: the CSV, read the way the federation's config reads data.
fn local_data(config: &Config, args: &JoinArgs) -> kiln::config::DataConfig {
    let label_column = args
        .label_column
        .as_ref()
        .map(|c| match c.parse::<usize>() {
            Ok(index) => LabelColumn::Index(index),
            Err(_) => LabelColumn::Name(c.clone()),
        });
    kiln::config::DataConfig {
        source: DataSource::Csv,
        path: Some(args.data.display().to_string()),
        header: args.header,
        label_column: label_column.or_else(|| config.data.label_column.clone()),
        ..config.data.clone()
    }
}

fn join(args: &JoinArgs, store: &kiln::store::DirStore) -> Result<()> {
    let api = Api::new(&args.server, args.token_file.as_deref())?;
    let (participant, joined) = participant_of(&api, args)?;
    let plan_config: Config = serde_json::from_value(joined["config"].clone())
        .map_err(|e| KilnError::Internal(format!("join: unreadable config: {e}")))?;
    let data = local_data(&plan_config, args);
    let secure = SecureJoin::from_join(&joined);
    let device = native_device(args.backend)?;
    let fed = &args.federation;
    eprintln!(
        "kiln: joined {fed} as {participant}; the data in {} stays here",
        args.data.display()
    );
    let mut prepared = None;
    let mut skipped = None;
    loop {
        let next = api.json(api.post_json(
            &format!("/v1/federations/{fed}/checkin"),
            &json!({"participant": participant}),
        )?)?;
        let round = next["round"].as_i64().unwrap_or(0);
        let action = match next["action"].as_str().unwrap_or_default() {
            "train" if skipped == Some(round) => "wait",
            other => other,
        };
        match action {
            "train" => {
                let global = fetch_model(&api, fed, round)?;
                let (config, splits) = match prepared.take() {
                    Some(ready) => ready,
                    None => {
                        let config = local_config(&global, data.clone())?;
                        let splits = prepare_local(&global, &config, load_source(&config)?)?;
                        (config, splits)
                    }
                };
                let trained = futures::executor::block_on(train_round(
                    &global,
                    &config,
                    &splits,
                    device.clone(),
                    &mut |_| {},
                    CancelToken::new(),
                    None,
                ));
                match (trained, secure) {
                    (Ok(update), Some(settings)) => {
                        let took =
                            take_part(&api, fed, round, &participant, settings, &global, &update)?;
                        match took {
                            Took::Part => eprintln!(
                                "kiln: round {round}: sent a masked update of {} examples",
                                update.examples
                            ),
                            Took::Left(why) => eprintln!("kiln: round {round}: {why}"),
                        }
                    }
                    (Ok(update), None) => send_update(&api, fed, round, &participant, &update)?,
                    // A global model local training cannot work with (it diverges, say): this
                    // client sits the round out — the round closes without it at its timeout.
                    (Err(e), _) => {
                        eprintln!(
                            "kiln: round {round}: local training failed ({e}); sitting this round out"
                        );
                        skipped = Some(round);
                    }
                }
                prepared = Some((config, splits));
            }
            "wait" => std::thread::sleep(Duration::from_millis(300)),
            "completed" => {
                // The final model, kept in the local store to predict with.
                let model = fetch_model(&api, fed, round)?;
                futures::executor::block_on(kiln::store::save_model(store, &model))?;
                eprintln!(
                    "kiln: {fed} completed; its model {} is in {}",
                    model.header.model_id,
                    store.root().display()
                );
                println!("{}", pretty(&next));
                return Ok(());
            }
            other => {
                return Err(KilnError::Training(format!(
                    "federation {fed} is {other}: {}",
                    next["error"].as_str().unwrap_or("no reason given")
                )));
            }
        }
    }
}

fn fetch_model(api: &Api, fed: &str, round: i64) -> Result<SavedModel> {
    let response = ok(api.get(&format!("/v1/federations/{fed}/model?round={round}"))?)?;
    let bytes = response
        .bytes()
        .map_err(|e| KilnError::Internal(format!("reading the global model: {e}")))?;
    SavedModel::from_bytes(&bytes)
}

fn send_update(
    api: &Api,
    fed: &str,
    round: i64,
    participant: &str,
    update: &kiln::federated::LocalUpdate,
) -> Result<()> {
    let bytes = update.model.to_bytes()?;
    let url = format!(
        "{}/v1/federations/{fed}/rounds/{round}/updates?participant={participant}&examples={}",
        api.base, update.examples
    );
    let response = api.send("sending the update", |c| {
        c.post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.clone())
    })?;
    match response.status() {
        // The round closed without it (a timeout): the next check-in says what to do.
        StatusCode::CONFLICT => {
            eprintln!("kiln: round {round} closed before this client's update arrived");
            Ok(())
        }
        _ => {
            ok(response)?;
            let metric = update
                .model
                .header
                .metrics
                .iter()
                .find(|(name, _)| name.contains("accuracy") || name.contains("loss"))
                .map(|(name, value)| format!(", local {name} {value:.4}"))
                .unwrap_or_default();
            eprintln!(
                "kiln: round {round}: sent an update trained on {} examples{metric}",
                update.examples
            );
            Ok(())
        }
    }
}
