//! Federated training end to end: a real `kiln serve`, several `kiln federate join` clients in
//! their own processes, each holding a few classes of the digits data (non-IID) that never
//! leave it; the federation's final model against centralised training of the same model for
//! the same total epochs. Then the protocol's refusals: stale rounds, duplicates, outsiders,
//! garbage.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// A running `kiln serve` on a free loopback port.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, "127.0.0.1:0", &[])
    }

    /// A server on `addr` (port 0: a free one) with `extra` arguments.
    fn start_with(data_dir: &Path, addr: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(KILN)
            .args(["serve", "--addr", addr])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kiln serve starts");
        let addr = BufReader::new(child.stdout.take().expect("stdout"))
            .lines()
            .find_map(|l| {
                l.ok()?
                    .split("listening on http://")
                    .nth(1)?
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            })
            .expect("a listening line");
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A CSV row and its label.
type LabelledRow = (u32, String);

/// The digits data set as CSV rows (64 features, then the label), split per class into a
/// held-out test set (every 5th sample of each class) and the rest.
fn digits_rows() -> (Vec<LabelledRow>, Vec<LabelledRow>) {
    let digits = kiln::data::load_digits().expect("embedded digits");
    let kiln::data::Targets::Classes(labels) = &digits.targets else {
        panic!("digits are classes");
    };
    let mut seen = [0usize; 10];
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, label) in labels.iter().enumerate() {
        let row = digits.features[i * 64..(i + 1) * 64]
            .iter()
            .map(|v| v.to_string())
            .chain([label.to_string()])
            .collect::<Vec<_>>()
            .join(",");
        let n = &mut seen[*label as usize];
        *n += 1;
        if *n % 5 == 0 {
            test.push((*label, row));
        } else {
            train.push((*label, row));
        }
    }
    (train, test)
}

fn write_rows(path: &Path, rows: &[&LabelledRow]) {
    let text: String = rows.iter().map(|(_, r)| format!("{r}\n")).collect();
    std::fs::write(path, text).expect("write CSV");
}

/// The local config of every client (and of the centralised run, with more epochs).
fn config_yaml(name: &str, epochs: usize) -> String {
    format!(
        "name: {name}\nseed: 7\nmodel:\n  hidden: [64]\ntraining:\n  num_passes: {epochs}\n  batch_size: 32\n  \
         weight_optimization:\n    optimization_method: sgd\n    learning_rate: 0.05\ndata:\n  normalize: false\n  split: [0.9, 0.1, 0.0]\n"
    )
}

/// Fails with the command's stderr unless it succeeded.
fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Accuracy of a `.kiln` model on a CSV, through `kiln eval`.
fn accuracy(model: &Path, csv: &Path) -> f64 {
    let out = Command::new(KILN)
        .args(["eval", "--model"])
        .arg(model)
        .arg("--data")
        .arg(csv)
        .output()
        .expect("kiln eval");
    assert_succeeded(&out);
    let report: Value = serde_json::from_slice(&out.stdout).expect("eval JSON");
    report["metrics"]["accuracy"].as_f64().expect("accuracy")
}

fn create(server: &Server, dir: &Path, rounds: i64, clients: i64, extra: &[&str]) -> Value {
    let config = dir.join("fed.yaml");
    std::fs::write(&config, config_yaml("fed-digits", 1)).expect("config");
    let out = Command::new(KILN)
        .args(["federate", "create"])
        .arg(&config)
        .args(["--server", &server.base, "--rounds", &rounds.to_string()])
        .args(["--clients-per-round", &clients.to_string()])
        .args(["--input-shape", "64", "--num-outputs", "10"])
        .args(extra)
        .output()
        .expect("kiln federate create");
    assert_succeeded(&out);
    serde_json::from_slice(&out.stdout).expect("the federation as JSON")
}

fn join(server: &Server, fed: &str, data: &Path) -> Child {
    Command::new(KILN)
        .args([
            "federate",
            "join",
            &server.base,
            "--federation",
            fed,
            "--data",
        ])
        .arg(data)
        .arg("--store")
        .arg(data.with_extension("store"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln federate join")
}

/// Waits for a client to end; its exit status and stderr.
fn finish(mut child: Child, limit: Duration) -> (bool, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err);
            return (status.success(), err);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err);
            panic!("a client ran past {limit:?}: {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn non_iid_clients_train_one_model_close_to_centralised_training() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (train, test) = digits_rows();
    let test_csv = dir.path().join("test.csv");
    write_rows(&test_csv, &test.iter().collect::<Vec<_>>());
    // Four clients with two or three classes each: no client has seen most digits.
    let groups: [&[u32]; 4] = [&[0, 1, 2], &[3, 4, 5], &[6, 7], &[8, 9]];
    let client_files: Vec<PathBuf> = groups
        .iter()
        .enumerate()
        .map(|(i, classes)| {
            let path = dir.path().join(format!("client-{i}.csv"));
            write_rows(
                &path,
                &train
                    .iter()
                    .filter(|(l, _)| classes.contains(l))
                    .collect::<Vec<_>>(),
            );
            path
        })
        .collect();
    let server = Server::start(&dir.path().join("server"));
    // 60 rounds of one local epoch: measured 0.955 against 0.977 centralised (2026-12-07).
    let rounds = 60;
    let fed = create(&server, dir.path(), rounds, 4, &[]);
    let id = fed["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("fed-"), "{fed}");
    assert_eq!(fed["status"], "waiting");
    let clients: Vec<Child> = client_files.iter().map(|f| join(&server, &id, f)).collect();
    for client in clients {
        let (ok, err) = finish(client, Duration::from_secs(600));
        assert!(ok, "a client failed: {err}");
        assert!(err.contains("stays here"), "{err}");
    }
    let view: Value = http()
        .get(server.url(&format!("/v1/federations/{id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(
        view["history"].as_array().map(Vec::len),
        Some(rounds as usize),
        "{view}"
    );
    for round in view["history"].as_array().unwrap() {
        assert_eq!(round["participants"], 4, "{round}");
    }
    let model_id = view["trainedModel"]["modelId"]
        .as_str()
        .expect("a final model")
        .to_string();
    // The final model is in the store like a training job's, and is the last round's model.
    let stored = http()
        .get(server.url(&format!("/v1/models/{model_id}")))
        .send()
        .unwrap();
    assert!(stored.status().is_success());
    let federated = dir.path().join("federated.kiln");
    std::fs::write(&federated, stored.bytes().unwrap()).unwrap();
    let fed_accuracy = accuracy(&federated, &test_csv);
    // kiln plot draws the federation's rounds (one step per round) from the server.
    let chart = dir.path().join("rounds.png");
    let out = Command::new(KILN)
        .args([
            "plot",
            "--federation",
            &id,
            "--server",
            &server.base,
            "--out",
        ])
        .arg(&chart)
        .args(["--metrics", "clients_val_accuracy,clients_val_loss"])
        .output()
        .expect("kiln plot");
    assert_succeeded(&out);
    assert!(std::fs::metadata(&chart).expect("a chart").len() > 5_000);
    let out = Command::new(KILN)
        .args([
            "plot",
            "--federation",
            &id,
            "--server",
            &server.base,
            "--terminal",
        ])
        .output()
        .expect("kiln plot --terminal");
    assert_succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("clients_val_accuracy"));
    // Centralised: the same model on all the clients' data, for the same total epochs.
    let all = dir.path().join("all.csv");
    write_rows(&all, &train.iter().collect::<Vec<_>>());
    let central_yaml = format!(
        "{}  source: csv\n  path: {}\n",
        config_yaml("central", rounds as usize),
        all.display()
    );
    let central_config = dir.path().join("central.yaml");
    std::fs::write(&central_config, central_yaml).unwrap();
    let out = Command::new(KILN)
        .args(["--store"])
        .arg(dir.path().join("store"))
        .arg("train")
        .arg(&central_config)
        .arg("--out")
        .arg(dir.path().join("central"))
        .output()
        .expect("kiln train");
    assert_succeeded(&out);
    let central_accuracy = accuracy(&dir.path().join("central/best_model.kiln"), &test_csv);
    eprintln!("federated {fed_accuracy:.4}, centralised {central_accuracy:.4}");
    assert!(
        fed_accuracy >= central_accuracy - 0.03,
        "federated {fed_accuracy:.4} vs centralised {central_accuracy:.4}"
    );
}

/// A member's update, as the CLI would send it: a `.kiln` file.
fn post_update(
    server: &Server,
    id: &str,
    round: i64,
    participant: &str,
    body: Vec<u8>,
) -> reqwest::blocking::Response {
    http()
        .post(server.url(&format!(
            "/v1/federations/{id}/rounds/{round}/updates?participant={participant}&examples=10"
        )))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn the_protocol_refuses_outsiders_duplicates_stale_rounds_and_garbage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("server"));
    let fed = create(
        &server,
        dir.path(),
        2,
        2,
        &["--min-clients", "1", "--round-timeout-secs", "3600"],
    );
    let id = fed["id"].as_str().unwrap().to_string();
    let client = http();
    // A trimmed mean that would trim nothing from a round is refused at creation.
    let refused = client
        .post(server.url("/v1/federations"))
        .json(&json!({
            "rounds": 1, "clientsPerRound": 4, "inputShape": [64], "numOutputs": 10,
            "aggregation": {"method": "trimmed_mean", "trim": 0.1}
        }))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .unwrap()
            .contains("aggregation.trim: 0.1 of a round of 4 clients")
    );
    // Standardisation from the validation dataset: every client applies the same statistics.
    let (_, test_rows) = digits_rows();
    let csv: String = test_rows.iter().map(|(_, r)| format!("{r}\n")).collect();
    let dataset: Value = client
        .post(server.url("/v1/datasets?header=false"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let standardised: Value = client
        .post(server.url("/v1/federations"))
        .json(&json!({
            "rounds": 1, "clientsPerRound": 2, "inputShape": [64], "numOutputs": 10,
            "config": {"data": {"normalize": true}},
            "validationDataset": dataset["id"],
        }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let first = fetch_model(
        &server,
        &format!(
            "/v1/federations/{}/model",
            standardised["id"].as_str().unwrap()
        ),
    );
    let stats = first
        .header
        .normalization
        .expect("the validation dataset's statistics");
    let column: Vec<f64> = test_rows
        .iter()
        .map(|(_, r)| r.split(',').nth(10).unwrap().parse::<f64>().unwrap())
        .collect();
    let mean = column.iter().sum::<f64>() / column.len() as f64;
    assert!(
        (f64::from(stats.mean[10]) - mean).abs() < 1e-4,
        "{} vs {mean}",
        stats.mean[10]
    );
    assert!(
        !first.header.config.data.normalize,
        "clients never standardise on their own"
    );
    // FedProx: μ must be positive; the clients' config carries it as training.proximal_mu.
    let fedprox = |mu: f64| {
        client
            .post(server.url("/v1/federations"))
            .json(&json!({
                "rounds": 1, "clientsPerRound": 2, "inputShape": [64], "numOutputs": 10,
                "aggregation": {"method": "fedprox", "mu": mu}
            }))
            .send()
            .unwrap()
    };
    // Secure aggregation's settings: a clip norm, a rule that needs only the sum, a threshold
    // a round can reach.
    for (extra, needle) in [
        (json!({}), "aggregation.clipNorm"),
        (
            json!({"aggregation": {"method": "median", "clipNorm": 5}}),
            "hides",
        ),
        (
            json!({"aggregation": {"clipNorm": 5}, "secureThreshold": 3}),
            "secureThreshold",
        ),
    ] {
        let mut body = json!({"rounds": 1, "clientsPerRound": 2, "inputShape": [64],
                              "numOutputs": 10, "secureAggregation": true});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = client
            .post(server.url("/v1/federations"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400);
        let text = r.text().unwrap();
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let refused = fedprox(0.0);
    assert_eq!(refused.status(), 400);
    assert!(refused.text().unwrap().contains("aggregation.mu"));
    let prox: Value = fedprox(0.25).json().unwrap();
    let prox_id = prox["id"].as_str().expect("a fedprox federation");
    let joined: Value = client
        .post(server.url(&format!("/v1/federations/{prox_id}/join")))
        .json(&json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        joined["config"]["training"]["proximal_mu"], 0.25,
        "{joined}"
    );
    let prox_model = client
        .get(server.url(&format!("/v1/federations/{prox_id}/model")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let prox_model = kiln::model::SavedModel::from_bytes(&prox_model).expect("a .kiln model");
    assert_eq!(prox_model.header.config.training.proximal_mu, 0.25);
    let join = |body: Value| -> Value {
        client
            .post(server.url(&format!("/v1/federations/{id}/join")))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let a = join(json!({}))["participant"].as_str().unwrap().to_string();
    let b = join(json!({}))["participant"].as_str().unwrap().to_string();
    let outsider = join(json!({}))["participant"].as_str().unwrap().to_string();
    // Rejoining with the same id keeps it.
    assert_eq!(join(json!({"participant": a}))["participant"], a.as_str());
    let check_in = |p: &str| -> Value {
        client
            .post(server.url(&format!("/v1/federations/{id}/checkin")))
            .json(&json!({"participant": p}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(check_in(&a)["action"], "train");
    assert_eq!(check_in(&b)["action"], "train");
    // The round is full: a third client waits.
    assert_eq!(check_in(&outsider)["action"], "wait");
    let global = client
        .get(server.url(&format!("/v1/federations/{id}/model")))
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    let model = kiln::model::SavedModel::from_bytes(&global).expect("a .kiln model");
    // An outsider's update: 403.
    let r = post_update(&server, &id, 0, &outsider, global.clone());
    assert_eq!(r.status(), 403, "{}", r.text().unwrap());
    // Garbage, wrong shapes, NaN: 400 naming what is wrong.
    let r = post_update(&server, &id, 0, &a, b"not a model".to_vec());
    assert_eq!(r.status(), 400);
    let mut nan = model.clone();
    let mut flat = kiln::federated::FlatWeights::from_burnpack("w", &nan.weights).unwrap();
    flat.tensors[0].values[0] = f32::NAN;
    nan.weights = flat.to_burnpack().unwrap();
    let r = post_update(&server, &id, 0, &a, nan.to_bytes().unwrap());
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("NaN"));
    let mut wrong = model.clone();
    wrong.header.num_outputs = 3;
    let r = post_update(&server, &id, 0, &a, wrong.to_bytes().unwrap());
    assert_eq!(r.status(), 400);
    // A good update, then the same client again: 409.
    let r = post_update(&server, &id, 0, &a, global.clone());
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let r = post_update(&server, &id, 0, &a, global.clone());
    assert_eq!(r.status(), 409);
    assert_eq!(check_in(&a)["action"], "wait");
    // The second update fills the round: it closes and round 1 opens.
    let r = post_update(&server, &id, 0, &b, global.clone());
    assert_eq!(r.status(), 202);
    let started = Instant::now();
    let view = loop {
        let view: Value = client
            .get(server.url(&format!("/v1/federations/{id}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if view["round"] == 1 || started.elapsed() > Duration::from_secs(30) {
            break view;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(view["round"], 1, "{view}");
    assert_eq!(view["history"][0]["participants"], 2, "{view}");
    // An update to the closed round is stale: 409.
    let r = post_update(&server, &id, 0, &b, global.clone());
    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("at round 1"));
    // Cancelled: clients are told so; deleting it then works.
    let r = client
        .post(server.url(&format!("/v1/federations/{id}/cancel")))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(check_in(&a)["action"], "cancelled");
    let r = client
        .delete(server.url(&format!("/v1/federations/{id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client
        .get(server.url(&format!("/v1/federations/{id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// The federation's events so far (its stream ends with the final status).
fn event_kinds(server: &Server, id: &str) -> Vec<(String, Value)> {
    let text = http()
        .get(server.url(&format!("/v1/federations/{id}/events")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut events = Vec::new();
    let mut kind = String::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((
                kind.clone(),
                serde_json::from_str(data).unwrap_or(Value::Null),
            ));
        }
    }
    events
}

/// Polls a federation until `done` says so (or fails after `limit`).
fn wait_for(server: &Server, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = http()
            .get(server.url(&format!("/v1/federations/{id}")))
            .send()
            .and_then(|r| r.json::<Value>());
        if let Ok(view) = view {
            if done(&view) {
                return view;
            }
            assert!(started.elapsed() < limit, "still {view}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_federation_survives_a_killed_server_a_vanished_client_and_a_late_joiner() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (train, _) = digits_rows();
    let files: Vec<PathBuf> = (0..3)
        .map(|i| {
            let path = dir.path().join(format!("client-{i}.csv"));
            let rows: Vec<&LabelledRow> = train.iter().skip(i).step_by(3).collect();
            write_rows(&path, &rows);
            path
        })
        .collect();
    let data_dir = dir.path().join("server");
    let mut server = Server::start(&data_dir);
    let rounds = 8;
    let fed = create(
        &server,
        dir.path(),
        rounds,
        3,
        &["--min-clients", "2", "--round-timeout-secs", "3"],
    );
    let id = fed["id"].as_str().unwrap().to_string();
    let steady = join(&server, &id, &files[0]);
    let doomed = join(&server, &id, &files[1]);
    wait_for(&server, &id, Duration::from_secs(60), |v| {
        v["round"].as_i64() >= Some(1)
    });
    // A client vanishes mid-federation: kill -9, no goodbye.
    let mut doomed = doomed;
    doomed.kill().expect("kill a client");
    let _ = doomed.wait();
    // A client that joins a round and then is never heard of again (what a closed laptop looks
    // like to the server): dropped at the round's timeout, the round closes without it.
    let ghost: Value = http()
        .post(server.url(&format!("/v1/federations/{id}/join")))
        .json(&json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ghost = ghost["participant"].as_str().unwrap().to_string();
    let answer: Value = http()
        .post(server.url(&format!("/v1/federations/{id}/checkin")))
        .json(&json!({"participant": ghost}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ghost_round = answer["round"].as_i64().unwrap();
    assert_eq!(answer["action"], "train", "{answer}");
    // A late joiner takes part from the round that is open when it arrives.
    let late = join(&server, &id, &files[2]);
    wait_for(&server, &id, Duration::from_secs(60), |v| {
        v["round"].as_i64() >= Some(3)
    });
    // The server is killed with -9 mid-federation and started again on the same address and
    // data: the clients' calls wait for it and the federation goes on.
    let addr = server.base.trim_start_matches("http://").to_string();
    server.child.kill().expect("kill -9 the server");
    let _ = server.child.wait();
    server = Server::start_with(&data_dir, &addr, &[]);
    for client in [steady, late] {
        let (ok, err) = finish(client, Duration::from_secs(300));
        assert!(ok, "a client failed: {err}");
    }
    let view = wait_for(&server, &id, Duration::from_secs(30), |v| {
        v["status"] == "completed"
    });
    let history = view["history"].as_array().expect("history");
    let closed: Vec<i64> = history
        .iter()
        .map(|r| r["round"].as_i64().unwrap())
        .collect();
    assert_eq!(
        closed,
        (0..rounds).collect::<Vec<_>>(),
        "every round closed once: {view}"
    );
    let events = event_kinds(&server, &id);
    let count = |kind: &str| events.iter().filter(|(k, _)| k == kind).count();
    assert_eq!(count("roundClosed"), rounds as usize, "{events:?}");
    assert!(
        events.iter().any(|(k, e)| k == "clientDropped"
            && e["participant"] == ghost.as_str()
            && e["round"] == ghost_round),
        "the vanished client is dropped: {events:?}"
    );
    let late_rounds = history
        .iter()
        .filter(|r| r["participants"].as_i64() == Some(2) || r["participants"].as_i64() == Some(3))
        .count();
    assert_eq!(late_rounds, rounds as usize, "{view}");
    assert!(
        history.iter().skip(3).all(|r| r["participants"] == 2),
        "after the drop the steady client and the late joiner carry the rounds: {view}"
    );
}

#[test]
fn join_tokens_open_one_federation_s_client_calls_and_nothing_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin_file = dir.path().join("admin-token");
    std::fs::write(&admin_file, "admin-secret-token\n").unwrap();
    let data_dir = dir.path().join("server");
    let server = Server::start_with(
        &data_dir,
        "127.0.0.1:0",
        &["--token-file", admin_file.to_str().unwrap()],
    );
    let admin = ["--token-file", admin_file.to_str().unwrap()];
    let fed_a = create(&server, dir.path(), 1, 1, &admin)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fed_b = create(&server, dir.path(), 1, 1, &admin)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let invite = Command::new(KILN)
        .args([
            "federate",
            "invite",
            &server.base,
            &fed_a,
            "--max-uses",
            "2",
        ])
        .args(admin)
        .output()
        .unwrap();
    assert_succeeded(&invite);
    let invite: Value = serde_json::from_slice(&invite.stdout).unwrap();
    let token = invite["token"]
        .as_str()
        .expect("the token, shown once")
        .to_string();
    let with = |method: reqwest::Method, path: &str, token: &str| -> u16 {
        http()
            .request(method, server.url(path))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    use reqwest::Method as M;
    let a = |tail: &str| format!("/v1/federations/{fed_a}{tail}");
    // Every call outside federation A's client calls: 403, whatever it is.
    for (method, path) in [
        (M::GET, a("")),
        (M::GET, "/v1/federations".to_string()),
        (M::POST, "/v1/federations".to_string()),
        (M::POST, a("/cancel")),
        (M::DELETE, a("")),
        (M::POST, a("/invites")),
        (M::GET, a("/invites")),
        (M::GET, a("/events")),
        (M::POST, format!("/v1/federations/{fed_b}/join")),
        (M::GET, format!("/v1/federations/{fed_b}/model")),
        (M::GET, "/v1/jobs".to_string()),
        (M::POST, "/v1/jobs".to_string()),
        (M::GET, "/v1/models".to_string()),
        (M::GET, "/v1/datasets".to_string()),
        (M::GET, "/v1/workers".to_string()),
        (M::GET, "/v1/openapi.json".to_string()),
    ] {
        assert_eq!(with(method.clone(), &path, &token), 403, "{method} {path}");
    }
    // Its client calls work.
    assert_eq!(with(M::GET, &a("/model"), &token), 200);
    // A native client joins with the join token alone and completes the federation's round.
    let token_file = dir.path().join("join-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let (train, _) = digits_rows();
    let data = dir.path().join("mine.csv");
    write_rows(&data, &train.iter().collect::<Vec<_>>());
    let client = Command::new(KILN)
        .args([
            "federate",
            "join",
            &server.base,
            "--federation",
            &fed_a,
            "--data",
        ])
        .arg(&data)
        .arg("--token-file")
        .arg(&token_file)
        .arg("--store")
        .arg(dir.path().join("store"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, err) = finish(client, Duration::from_secs(120));
    assert!(ok, "{err}");
    assert!(err.contains("completed; its model"), "{err}");
    let view: Value = http()
        .get(server.url(&a("")))
        .bearer_auth("admin-secret-token")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(view["status"], "completed", "{view}");
    // Two joins allowed: the client's one, then one more; the third is refused.
    assert_eq!(with(M::POST, &a("/join"), &token), 200);
    assert_eq!(with(M::POST, &a("/join"), &token), 403);
    // The registry keeps the token's digest, never the token.
    for file in ["kiln.db", "kiln.db-wal"] {
        if let Ok(bytes) = std::fs::read(data_dir.join(file)) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&token),
                "{file} holds the token"
            );
        }
    }
    // Revoked: 401 from then on. Expired: the same.
    let invite_id = invite["id"].as_str().unwrap();
    let revoked = http()
        .delete(server.url(&a(&format!("/invites/{invite_id}"))))
        .bearer_auth("admin-secret-token")
        .send()
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(with(M::GET, &a("/model"), &token), 401);
    let short: Value = http()
        .post(server.url(&format!("/v1/federations/{fed_b}/invites")))
        .bearer_auth("admin-secret-token")
        .json(&json!({"expiresInSecs": 1}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let short = short["token"].as_str().unwrap();
    assert_eq!(
        with(M::GET, &format!("/v1/federations/{fed_b}/model"), short),
        200
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        with(M::GET, &format!("/v1/federations/{fed_b}/model"), short),
        401
    );
    assert_eq!(with(M::GET, &a("/model"), "not-a-token"), 401);
}

/// A client that sends scaled garbage every round it is given: the global model plus noise a
/// hundred times the size of its weights, claiming as many examples as an honest client.
fn garbage_client(base: String, id: String) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let client = http();
        let url = |path: String| format!("{base}{path}");
        let joined: Value = client
            .post(url(format!("/v1/federations/{id}/join")))
            .json(&json!({}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let participant = joined["participant"].as_str().unwrap().to_string();
        let mut sent = 0;
        loop {
            let next: Value = client
                .post(url(format!("/v1/federations/{id}/checkin")))
                .json(&json!({"participant": participant}))
                .send()
                .unwrap()
                .json()
                .unwrap();
            match next["action"].as_str().unwrap() {
                "train" => {
                    let round = next["round"].as_i64().unwrap();
                    let bytes = client
                        .get(url(format!("/v1/federations/{id}/model?round={round}")))
                        .send()
                        .unwrap()
                        .bytes()
                        .unwrap();
                    let mut model = kiln::model::SavedModel::from_bytes(&bytes).unwrap();
                    let flat =
                        kiln::federated::FlatWeights::from_burnpack("global", &model.weights)
                            .unwrap();
                    let values: Vec<f32> = flat
                        .values()
                        .enumerate()
                        .map(|(i, v)| v + 100.0 * (i as f32 * 12.9898).sin())
                        .collect();
                    let noisy = flat.with_values(&values);
                    model.weights = noisy.to_burnpack().unwrap();
                    let answer = client
                        .post(url(format!(
                            "/v1/federations/{id}/rounds/{round}/updates?participant={participant}&examples=360"
                        )))
                        .header("content-type", "application/octet-stream")
                        .body(model.to_bytes().unwrap())
                        .send()
                        .unwrap();
                    assert!(answer.status().is_success() || answer.status() == 409);
                    sent += 1;
                }
                "wait" => std::thread::sleep(Duration::from_millis(100)),
                _ => return sent,
            }
        }
    })
}

/// One federation of four honest clients (an IID split) with `aggregation`, and a garbage
/// client when `attacked`; the final model's test accuracy.
fn robust_run(dir: &Path, aggregation: &str, attacked: bool) -> f64 {
    let (train, test) = digits_rows();
    let test_csv = dir.join("test.csv");
    write_rows(&test_csv, &test.iter().collect::<Vec<_>>());
    let server = Server::start(&dir.join(format!("server-{aggregation}-{attacked}")));
    let rounds = 15;
    let clients = if attacked { 5 } else { 4 };
    let mut extra = vec!["--aggregation", aggregation, "--round-timeout-secs", "60"];
    if aggregation == "trimmed_mean" {
        extra.extend(["--trim", "0.2"]);
    }
    let fed = create(&server, dir, rounds, clients, &extra);
    let id = fed["id"].as_str().unwrap().to_string();
    let honest: Vec<Child> = (0..4)
        .map(|i| {
            let path = dir.join(format!("iid-{aggregation}-{attacked}-{i}.csv"));
            write_rows(&path, &train.iter().skip(i).step_by(4).collect::<Vec<_>>());
            join(&server, &id, &path)
        })
        .collect();
    let garbage = attacked.then(|| garbage_client(server.base.clone(), id.clone()));
    for client in honest {
        let (ok, err) = finish(client, Duration::from_secs(300));
        assert!(ok, "a client failed: {err}");
    }
    if let Some(garbage) = garbage {
        assert_eq!(
            garbage.join().unwrap(),
            rounds as usize,
            "garbage in every round"
        );
    }
    let view = wait_for(&server, &id, Duration::from_secs(30), |v| {
        v["status"] == "completed"
    });
    let model_id = view["trainedModel"]["modelId"].as_str().unwrap();
    let bytes = http()
        .get(server.url(&format!("/v1/models/{model_id}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let file = dir.join(format!("{aggregation}-{attacked}.kiln"));
    std::fs::write(&file, bytes).unwrap();
    accuracy(&file, &test_csv)
}

#[test]
fn trimmed_mean_shrugs_off_a_client_that_sends_scaled_garbage_where_fedavg_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clean = robust_run(dir.path(), "fedavg", false);
    let trimmed = robust_run(dir.path(), "trimmed_mean", true);
    let averaged = robust_run(dir.path(), "fedavg", true);
    eprintln!(
        "clean fedavg {clean:.4}; with a garbage client: trimmed_mean {trimmed:.4}, fedavg {averaged:.4}"
    );
    assert!(clean > 0.85, "the clean run reached {clean}");
    assert!(
        trimmed >= clean - 0.05,
        "trimmed_mean {trimmed} vs clean {clean}"
    );
    assert!(
        averaged < clean - 0.3,
        "fedavg under attack still reached {averaged}"
    );
}

/// Four clients holding a quarter of the digits each (IID), their CSV files.
fn quarters(dir: &Path, tag: &str) -> Vec<PathBuf> {
    let (train, _) = digits_rows();
    (0..4)
        .map(|i| {
            let path = dir.join(format!("{tag}-{i}.csv"));
            write_rows(&path, &train.iter().skip(i).step_by(4).collect::<Vec<_>>());
            path
        })
        .collect()
}

/// Runs a federation of `files` to its end; its id and the server (still running).
fn run_to_end(
    dir: &Path,
    tag: &str,
    files: &[PathBuf],
    extra: &[&str],
    rounds: i64,
) -> (Server, String) {
    let server = Server::start(&dir.join(format!("server-{tag}")));
    let fed = create(&server, dir, rounds, files.len() as i64, extra);
    let id = fed["id"].as_str().expect("id").to_string();
    let clients: Vec<Child> = files.iter().map(|f| join(&server, &id, f)).collect();
    for client in clients {
        let (ok, err) = finish(client, Duration::from_secs(300));
        assert!(ok, "a client failed: {err}");
    }
    (server, id)
}

/// A model's weights, flat.
fn flat(model: &kiln::model::SavedModel) -> Vec<f32> {
    kiln::federated::FlatWeights::from_burnpack("model", &model.weights)
        .unwrap()
        .values()
        .collect()
}

fn fetch_model(server: &Server, path: &str) -> kiln::model::SavedModel {
    let bytes = http()
        .get(server.url(path))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    kiln::model::SavedModel::from_bytes(&bytes).expect("a .kiln model")
}

/// Pearson's correlation.
fn correlation(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let vx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let vy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    cov / (vx.sqrt() * vy.sqrt())
}

#[test]
fn secure_aggregation_gives_fedavg_s_model_and_the_server_sees_only_masked_updates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = quarters(dir.path(), "iid");
    let clip = ["--clip-norm", "10"];
    let secure = [
        &clip[..],
        &["--secure-aggregation", "--secure-phase-secs", "5"],
    ]
    .concat();
    let (plain_server, plain_id) = run_to_end(dir.path(), "plain", &files, &clip, 3);
    let (server, id) = run_to_end(dir.path(), "secure", &files, &secure, 3);
    let view = wait_for(&server, &id, Duration::from_secs(30), |v| {
        v["status"] == "completed"
    });
    for round in view["history"].as_array().unwrap() {
        assert_eq!(round["participants"], 4, "{round}");
    }
    // The same clients, the same rounds: the same model within the quantisation bound.
    let secure_model = flat(&fetch_model(
        &server,
        &format!("/v1/federations/{id}/model"),
    ));
    let plain_model = flat(&fetch_model(
        &plain_server,
        &format!("/v1/federations/{plain_id}/model"),
    ));
    let gap = secure_model
        .iter()
        .zip(&plain_model)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(gap < 1e-3, "secure and plain FedAvg differ by {gap}");
    // What the server stored of client 0's round-0 update: the plain run stored its model
    // (round 0 starts from the same global model, so it is the same update), the secure run
    // only a masked vector, uncorrelated with it.
    let stored = |server_dir: &str, fed: &str| -> Vec<u8> {
        let state = files[0].with_file_name(format!(".iid-0.csv.{fed}.json"));
        let state: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
        let participant = state["participant"].as_str().unwrap();
        let path = dir
            .path()
            .join(server_dir)
            .join(format!("federations/{fed}/round-0/{participant}.kiln"));
        std::fs::read(path).unwrap()
    };
    let start = flat(&fetch_model(
        &server,
        &format!("/v1/federations/{id}/model?round=0"),
    ));
    let plain = kiln::model::SavedModel::from_bytes(&stored("server-plain", &plain_id)).unwrap();
    let delta: Vec<f64> = flat(&plain)
        .iter()
        .zip(&start)
        .map(|(l, g)| f64::from(l - g))
        .collect();
    let masked = stored("server-secure", &id);
    assert_eq!(masked.len(), start.len() * 8, "one ring element per weight");
    let values: Vec<f64> = masked
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    let r = correlation(&delta, &values);
    assert!(
        r.abs() < 0.1,
        "the stored masked update correlates {r} with the update"
    );
    assert!(
        kiln::model::SavedModel::from_bytes(&masked).is_err(),
        "no model is stored"
    );
}

/// A client that takes part in round 0 of a secure federation up to its shares, then vanishes
/// (its masked update never comes).
fn vanishing_after_shares(base: String, id: String) -> std::thread::JoinHandle<()> {
    use kiln::federated::secure::{Member, RoundSecrets};
    std::thread::spawn(move || {
        let client = http();
        let post = |path: String, body: Value| -> Value {
            client
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        let fed = format!("/v1/federations/{id}");
        let participant = post(format!("{fed}/join"), json!({}))["participant"]
            .as_str()
            .unwrap()
            .to_string();
        while post(
            format!("{fed}/checkin"),
            json!({"participant": participant}),
        )["action"]
            != "train"
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut secrets = RoundSecrets::generate().unwrap();
        let secure = format!("{fed}/rounds/0/secure");
        post(
            format!("{secure}/keys"),
            json!({"participant": participant, "keys": secrets.public_keys()}),
        );
        let roster = loop {
            let r: Value = client
                .get(format!("{base}{secure}/roster"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            if r["ready"] == true {
                break r;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let members: Vec<Member> = serde_json::from_value(roster["members"].clone()).unwrap();
        let me = members
            .iter()
            .find(|m| m.participant == participant)
            .unwrap()
            .index;
        let context = roster["context"].as_str().unwrap().as_bytes().to_vec();
        let shares = secrets
            .seal_shares(
                me,
                &members,
                roster["threshold"].as_u64().unwrap() as usize,
                &context,
            )
            .unwrap();
        post(
            format!("{secure}/shares"),
            json!({"participant": participant, "shares": shares}),
        );
    })
}

#[test]
fn secure_rounds_survive_a_client_vanishing_after_its_shares_and_restart_below_the_threshold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = quarters(dir.path(), "drop");
    let secure = [
        "--clip-norm",
        "10",
        "--secure-aggregation",
        "--secure-threshold",
        "3",
        "--secure-phase-secs",
        "2",
        "--min-clients",
        "3",
        "--round-timeout-secs",
        "8",
    ];
    // One of four vanishes after sharing: round 0 is the survivors' FedAvg all the same.
    let server = Server::start(&dir.path().join("server-drop"));
    let id = create(&server, dir.path(), 1, 4, &secure)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ghost = vanishing_after_shares(server.base.clone(), id.clone());
    let clients: Vec<Child> = files[..3].iter().map(|f| join(&server, &id, f)).collect();
    ghost.join().unwrap();
    for client in clients {
        let (ok, err) = finish(client, Duration::from_secs(300));
        assert!(ok, "a client failed: {err}");
    }
    let view = wait_for(&server, &id, Duration::from_secs(30), |v| {
        v["status"] == "completed"
    });
    assert_eq!(view["history"][0]["participants"], 3, "{view}");
    let (plain, plain_id) = run_to_end(
        dir.path(),
        "drop-plain",
        &files[..3],
        &["--clip-norm", "10"],
        1,
    );
    let with_ghost = flat(&fetch_model(
        &server,
        &format!("/v1/federations/{id}/model"),
    ));
    let survivors = flat(&fetch_model(
        &plain,
        &format!("/v1/federations/{plain_id}/model"),
    ));
    let gap = with_ghost
        .iter()
        .zip(&survivors)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(gap < 1e-3, "the unmasked sum is off by {gap}");

    // Two of four vanish: fewer survivors than the threshold. The round says so and starts
    // again; with a third client it completes.
    let server = Server::start(&dir.path().join("server-below"));
    let id = create(&server, dir.path(), 1, 4, &secure)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ghosts = [
        vanishing_after_shares(server.base.clone(), id.clone()),
        vanishing_after_shares(server.base.clone(), id.clone()),
    ];
    let mut clients: Vec<Child> = files[..2].iter().map(|f| join(&server, &id, f)).collect();
    for ghost in ghosts {
        ghost.join().unwrap();
    }
    wait_for(&server, &id, Duration::from_secs(60), |v| {
        v["roundTry"].as_i64() > Some(0) || v["status"] != "running"
    });
    clients.push(join(&server, &id, &files[2]));
    for client in clients {
        let (ok, err) = finish(client, Duration::from_secs(300));
        assert!(ok, "a client failed: {err}");
    }
    let view = wait_for(&server, &id, Duration::from_secs(30), |v| {
        v["status"] == "completed"
    });
    assert_eq!(view["history"][0]["participants"], 3, "{view}");
    let warning = event_kinds(&server, &id)
        .into_iter()
        .find(|(kind, _)| kind == "warning")
        .expect("a warning");
    let message = warning.1["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("only 2 clients sent masked updates; secure aggregation needs 3")
            && message.contains("starts again"),
        "{message}"
    );
}
