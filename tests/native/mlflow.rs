//! MLflow tracking against a real MLflow tracking server (`mlflow server` from PyPI in
//! `.venv-mlflow`, made by scripts/setup-mlflow.sh), started on a free loopback port with a
//! SQLite backend store and stopped afterwards: params, metric histories equal to
//! metrics.jsonl, tags, artifacts, the run's final status, `kiln serve` jobs, and a server that
//! goes away mid-run.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn mlflow_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-mlflow/bin/mlflow");
    assert!(
        bin.exists(),
        "{} is missing: run ./scripts/setup-mlflow.sh (make test does)",
        bin.display()
    );
    bin
}

/// Kills a process group (the server and every worker it started).
fn kill_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// A throwaway MLflow tracking server.
struct Mlflow {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Mlflow {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let server = Self {
            child: Self::spawn(dir.path(), port),
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        server.wait_up();
        server
    }

    /// `mlflow server` on `port`, its SQLite store and artifacts in `dir`.
    fn spawn(dir: &Path, port: u16) -> Child {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log file");
        Command::new(mlflow_bin())
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--workers")
            .arg("1")
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .current_dir(dir)
            .env("MLFLOW_TRACKING_URI", "")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start mlflow server")
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let up = reqwest::blocking::get(format!("{}/health", self.url))
                .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let log = std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default();
        panic!("the MLflow server did not come up in 120 s:\n{log}");
    }

    /// Starts the stopped server again on the same port, with the same store.
    fn restart(&mut self) {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the server's port");
        self.child = Self::spawn(self._dir.path(), port);
        self.wait_up();
    }

    fn stop(&mut self) {
        kill_group(self.child.id(), "-9");
        let _ = self.child.wait();
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = reqwest::blocking::Client::new()
            .get(format!("{}/api/2.0/mlflow/{path}", self.url))
            .query(query)
            .send()
            .expect("MLflow answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().expect("JSON")
    }

    fn run(&self, run_id: &str) -> Value {
        self.get("runs/get", &[("run_id", run_id)])["run"].clone()
    }

    /// `(step, value)` of a metric's whole history, by step.
    fn history(&self, run_id: &str, key: &str) -> Vec<(u64, f64)> {
        let answer = self.get(
            "metrics/get-history",
            &[
                ("run_id", run_id),
                ("metric_key", key),
                ("max_results", "25000"),
            ],
        );
        let mut points: Vec<(u64, f64)> = answer["metrics"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        (
                            m["step"].as_u64().unwrap_or(0),
                            m["value"].as_f64().unwrap_or(f64::NAN),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        points.sort_by_key(|p| p.0);
        points
    }

    /// The timestamp (ms since the Unix epoch) of each step of a metric's history.
    fn timestamps(&self, run_id: &str, key: &str) -> BTreeMap<u64, i64> {
        let answer = self.get(
            "metrics/get-history",
            &[
                ("run_id", run_id),
                ("metric_key", key),
                ("max_results", "25000"),
            ],
        );
        answer["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m["step"].as_u64()?, m["timestamp"].as_i64()?)))
            .collect()
    }

    fn artifact(&self, run: &Value, name: &str) -> Vec<u8> {
        let uri = run["info"]["artifact_uri"].as_str().expect("artifact uri");
        let path = uri
            .trim_start_matches("mlflow-artifacts:")
            .trim_start_matches('/');
        let response = reqwest::blocking::get(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{path}/{name}",
            self.url
        ))
        .expect("artifact download");
        assert!(
            response.status().is_success(),
            "{name}: {}",
            response.status()
        );
        response.bytes().expect("bytes").to_vec()
    }
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        self.stop();
    }
}

fn data(run: &Value, section: &str) -> BTreeMap<String, String> {
    run["data"][section]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        i["key"].as_str().unwrap_or_default().to_string(),
                        i["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn run_id_of(run_dir: &Path) -> String {
    let text = std::fs::read_to_string(run_dir.join("mlflow-run.json")).expect("mlflow-run.json");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    value["runId"].as_str().expect("runId").to_string()
}

/// The series metrics.jsonl holds: progress lines' loss/grad norm, evaluations' val_* metrics.
fn logged_series(run_dir: &Path) -> BTreeMap<String, Vec<(u64, f64)>> {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).expect("metrics.jsonl");
    let mut series: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).expect("a JSON line");
        let step = event["step"].as_u64().expect("step");
        match event["event"].as_str() {
            Some("progress") => {
                series
                    .entry("train_loss".into())
                    .or_default()
                    .push((step, event["loss"].as_f64().unwrap()));
                if let Some(norm) = event["gradNorm"].as_f64() {
                    series
                        .entry("grad_norm".into())
                        .or_default()
                        .push((step, norm));
                }
            }
            Some("evaluated") => {
                for (name, value) in event["metrics"].as_object().expect("metrics") {
                    if name.starts_with("val_") {
                        series
                            .entry(name.clone())
                            .or_default()
                            .push((step, value.as_f64().unwrap()));
                    }
                }
            }
            _ => {}
        }
    }
    series
}

/// MLflow's histories of the run's series equal its metrics.jsonl, step for step (each step
/// once); returns the series.
fn assert_tracked_as_logged(
    server: &Mlflow,
    run_id: &str,
    run_dir: &Path,
) -> BTreeMap<String, Vec<(u64, f64)>> {
    let series = logged_series(run_dir);
    for name in ["train_loss", "grad_norm", "val_loss", "val_accuracy"] {
        let logged = &series[name];
        let tracked = server.history(run_id, name);
        assert_eq!(
            tracked.len(),
            logged.len(),
            "{name}: {tracked:?} vs {logged:?}"
        );
        for (t, l) in tracked.iter().zip(logged) {
            assert_eq!(t.0, l.0, "{name}: steps");
            assert!(
                close(t.1, l.1),
                "{name} at step {}: {} vs {}",
                t.0,
                t.1,
                l.1
            );
        }
    }
    series
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

fn kiln(store: &Path) -> Command {
    let mut cmd = Command::new(KILN);
    cmd.arg("--store").arg(store);
    cmd.env_remove("MLFLOW_TRACKING_URI");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const CONFIG: &str = "name: mlflow-test\n\
seed: 5\n\
training:\n  num_epochs: 3\n  lr: 0.002\n  log_every_steps: 5\n\
tracking:\n  mlflow:\n    experiment: kiln-tests\n    run_name: digits-three-epochs\n";

#[test]
fn a_run_is_logged_to_a_real_mlflow_server_and_matches_its_own_files() {
    let server = Mlflow::start();
    let scratch = tempfile::tempdir().expect("temp dir");
    let config = scratch.path().join("c.yaml");
    std::fs::write(&config, CONFIG).expect("config");
    let run_dir = scratch.path().join("run");
    let out = kiln(&scratch.path().join("store"))
        .arg("train")
        .arg(&config)
        .arg("--out")
        .arg(&run_dir)
        .args(["--mlflow", &server.url, "--json"])
        .output()
        .expect("kiln train");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not sent"), "{}", stderr(&out));
    let info: Value = serde_json::from_slice(&out.stdout).expect("--json");
    let run_id = run_id_of(&run_dir);
    let run = server.run(&run_id);

    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(run["info"]["run_name"], "digits-three-epochs");
    let params = data(&run, "params");
    assert_eq!(params["name"], "mlflow-test");
    assert_eq!(params["training.num_passes"], "3", "the alias resolved");
    assert_eq!(
        params["training.weight_optimization.learning_rate"],
        "0.002"
    );
    assert_eq!(params["training.log_every_steps"], "5");
    assert!(params.len() > 20, "the whole config: {params:?}");
    let tags = data(&run, "tags");
    assert_eq!(tags["kiln.job_id"], info["jobId"].as_str().unwrap());
    assert_eq!(tags["kiln.backend"], "cpu");
    assert_eq!(tags["kiln.version"], env!("CARGO_PKG_VERSION"));
    let experiment = server.get(
        "experiments/get",
        &[(
            "experiment_id",
            run["info"]["experiment_id"].as_str().unwrap(),
        )],
    );
    assert_eq!(experiment["experiment"]["name"], "kiln-tests");

    let series = assert_tracked_as_logged(&server, &run_id, &run_dir);
    assert!(series["train_loss"].len() >= 10);
    let test_accuracy = server.history(&run_id, "test_accuracy");
    assert_eq!(test_accuracy.len(), 1);
    let expected = info["finalMetrics"]["test_accuracy"].as_f64().unwrap();
    assert!(close(test_accuracy[0].1, expected));
    assert_eq!(test_accuracy[0].0, info["steps"].as_u64().unwrap());

    for name in ["run.json", "best_model.kiln", "holdout.csv", "config.yaml"] {
        let local = std::fs::read(run_dir.join(name)).expect("local file");
        assert_eq!(server.artifact(&run, name), local, "{name}");
    }

    // Resuming a finished run is refused by kiln; a new run with the same config and `run_id`
    // logs into the existing MLflow run instead of creating one.
    let again = scratch.path().join("again.yaml");
    std::fs::write(
        &again,
        format!("{CONFIG}run:\n  run_id: {run_id}\n").replace("num_epochs: 3", "num_epochs: 1"),
    )
    .expect("config");
    let out = kiln(&scratch.path().join("store"))
        .arg("train")
        .arg(&again)
        .arg("--out")
        .arg(scratch.path().join("again"))
        .args(["--mlflow", &server.url])
        .output()
        .expect("kiln train");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // Its params differ (num_passes 1 vs 3): MLflow refuses changing a param, and Kiln says so.
    assert!(err.contains("params refused by the server"), "{err}");
    let run = server.run(&run_id);
    assert_eq!(run["info"]["status"], "FINISHED");
    let runs = server.get(
        "experiments/get",
        &[(
            "experiment_id",
            run["info"]["experiment_id"].as_str().unwrap(),
        )],
    );
    assert_eq!(runs["experiment"]["name"], "kiln-tests");
    assert!(server.history(&run_id, "train_loss").len() > series["train_loss"].len());
}

/// `kiln train CONFIG --out RUN_DIR --mlflow URL`.
fn tracked_train(store: &Path, config: &Path, run_dir: &Path, url: &str) -> Command {
    let mut cmd = kiln(store);
    cmd.arg("train")
        .arg(config)
        .arg("--out")
        .arg(run_dir)
        .args(["--mlflow", url]);
    cmd
}

/// Starts `train` and waits until its run has an MLflow run and `progress` progress lines.
fn started_with_progress(train: &mut Command, run_dir: &Path, progress: usize) -> Child {
    let mut child = train
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln train");
    wait_for(
        &run_dir.join("mlflow-run.json"),
        &mut child,
        Duration::from_secs(60),
    );
    while progress_lines(run_dir) < progress {
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "the run ended before {progress} progress lines"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Waits until `path` exists (a file the run writes), or the child ends.
fn wait_for(path: &Path, child: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("kiln ended ({status}) before {} appeared", path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn progress_lines(run_dir: &Path) -> usize {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .map(|t| t.lines().filter(|l| l.contains("\"progress\"")).count())
        .unwrap_or(0)
}

#[test]
fn a_server_that_goes_away_mid_run_does_not_stop_the_training() {
    let mut server = Mlflow::start();
    let scratch = tempfile::tempdir().expect("temp dir");
    let config = scratch.path().join("c.yaml");
    std::fs::write(
        &config,
        "name: outage\ntraining:\n  num_epochs: 40\n  log_every_steps: 2\ntracking:\n  mlflow: {}\n",
    )
    .expect("config");
    let run_dir = scratch.path().join("run");
    let started = Instant::now();
    let mut train = tracked_train(
        &scratch.path().join("store"),
        &config,
        &run_dir,
        &server.url,
    );
    train.env("KILN_MLFLOW_FINISH_SECS", "3");
    let child = started_with_progress(&mut train, &run_dir, 20);
    server.stop();
    let stopped_at = Instant::now();
    let out = child.wait_with_output().expect("kiln train ends");
    let err = stderr(&out);
    assert!(out.status.success(), "the training must complete: {err}");
    assert!(
        err.contains("warning: MLflow: not sent:") && err.contains("metric values"),
        "{err}"
    );
    assert!(err.contains("the run's final status FINISHED"), "{err}");
    let log = std::fs::read_to_string(run_dir.join("tracking.log")).expect("tracking.log");
    assert!(
        log.contains("metric values") && log.contains("FINISHED"),
        "{log}"
    );
    // The run's own files are all there, the log complete to the last step.
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).expect("run.json"))
            .expect("JSON");
    let last = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .rfind(|l| l.contains("\"progress\""))
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .expect("a progress line");
    assert_eq!(last["step"], last["totalSteps"]);
    assert_eq!(info["epochsRun"], 40);
    assert!(run_dir.join("best_model.kiln").exists());
    // The end waited for the server at most about KILN_MLFLOW_FINISH_SECS.
    assert!(
        stopped_at.elapsed() < Duration::from_secs(60),
        "took {:?} after the outage (whole run {:?})",
        stopped_at.elapsed(),
        started.elapsed()
    );
}

#[test]
fn an_interrupted_run_ends_killed_and_a_failed_one_failed() {
    let server = Mlflow::start();
    let scratch = tempfile::tempdir().expect("temp dir");
    let store = scratch.path().join("store");
    let long = scratch.path().join("long.yaml");
    std::fs::write(
        &long,
        "name: interrupted\ntraining:\n  num_epochs: 500\ntracking:\n  mlflow: {experiment: kiln-status}\n",
    )
    .expect("config");
    let run_dir = scratch.path().join("run");
    let child = started_with_progress(
        &mut tracked_train(&store, &long, &run_dir, &server.url),
        &run_dir,
        5,
    );
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("kiln ends");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(server.run(&run_id_of(&run_dir))["info"]["status"], "KILLED");

    let diverging = scratch.path().join("nan.yaml");
    std::fs::write(
        &diverging,
        "name: diverging\ntraining:\n  num_epochs: 5\n  optimizer: sgd\n  lr: 1.0e12\n\
         tracking:\n  mlflow: {experiment: kiln-status}\n",
    )
    .expect("config");
    let failed_dir = scratch.path().join("failed");
    let out = kiln(&store)
        .arg("train")
        .arg(&diverging)
        .arg("--out")
        .arg(&failed_dir)
        .args(["--mlflow", &server.url])
        .output()
        .expect("kiln train");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        server.run(&run_id_of(&failed_dir))["info"]["status"],
        "FAILED"
    );
}

#[test]
fn a_resumed_run_logs_into_its_own_run_and_no_step_twice() {
    let server = Mlflow::start();
    let (_scratch, store, config, run_dir) = scratch_run(
        "name: resumed\nseed: 3\ntraining:\n  num_epochs: 40\n  log_every_steps: 5\n\
         tracking:\n  mlflow: {experiment: kiln-resume}\n",
    );
    // Interrupted after its first checkpoint and some steps more: those steps reach MLflow,
    // and the resumed run trains them again from the checkpoint.
    let mut child = tracked_train(&store, &config, &run_dir, &server.url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln train");
    wait_for(
        &run_dir.join("checkpoints").join("index.json"),
        &mut child,
        Duration::from_secs(120),
    );
    let at_checkpoint = progress_lines(&run_dir);
    while progress_lines(&run_dir) < at_checkpoint + 3 {
        assert!(child.try_wait().ok().flatten().is_none(), "the run ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("kiln ends");
    assert!(!out.status.success(), "{}", stderr(&out));
    let run_id = run_id_of(&run_dir);
    assert_eq!(server.run(&run_id)["info"]["status"], "KILLED");
    let before = server.history(&run_id, "train_loss");
    let resumed_at = latest_checkpoint_step(&run_dir);

    resumed(&store, &run_dir, &server.url);
    assert_eq!(run_id_of(&run_dir), run_id, "the same MLflow run");
    assert_eq!(server.run(&run_id)["info"]["status"], "FINISHED");
    let series = assert_tracked_as_logged(&server, &run_id, &run_dir);
    // The interrupted part had logged steps the checkpoint did not hold, and the resumed run
    // trained them again: MLflow has each of them once, with the first run's values.
    let trained_again = before
        .iter()
        .filter(|(step, _)| series["train_loss"].iter().any(|(s, _)| s == step))
        .count();
    assert_eq!(trained_again, before.len());
    assert!(
        before.iter().any(|(step, _)| *step > resumed_at),
        "the first run logged past its checkpoint (step {resumed_at}): {before:?}"
    );
}

#[test]
fn a_run_killed_before_sending_gets_the_missed_steps_from_its_own_log_when_resumed() {
    let mut server = Mlflow::start();
    let (_scratch, store, config, run_dir) = scratch_run(
        "name: killed\nseed: 5\ntraining:\n  num_epochs: 60\n  log_every_steps: 5\n\
         tracking:\n  mlflow: {experiment: kiln-backfill}\n",
    );
    let mut child = started_with_progress(
        &mut tracked_train(&store, &config, &run_dir, &server.url),
        &run_dir,
        3,
    );
    let run_id = run_id_of(&run_dir);
    // The server goes away, the run goes on past a checkpoint, then dies without a word: the
    // steps it computed in between never reached MLflow. (The checkpoint is waited for two log
    // intervals past the outage: at least one logged step lies between, even if the step being
    // written at the outage got out.)
    server.stop();
    let logged_at_outage = last_progress_step(&run_dir);
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint_step(&run_dir).is_none_or(|step| step <= logged_at_outage + 10) {
        assert!(
            Instant::now() < deadline,
            "no checkpoint after step {logged_at_outage}"
        );
        assert!(child.try_wait().ok().flatten().is_none(), "the run ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    server.restart();
    let resumed_at = latest_checkpoint_step(&run_dir);
    let before = server.history(&run_id, "train_loss");

    let resumed_from = unix_ms();
    let out = resumed(&store, &run_dir, &server.url);
    assert!(!stderr(&out).contains("not sent"), "{}", stderr(&out));
    assert_eq!(run_id_of(&run_dir), run_id, "the same MLflow run");
    assert_eq!(server.run(&run_id)["info"]["status"], "FINISHED");
    // Every step of metrics.jsonl is in MLflow once, the ones it had missed included.
    let series = assert_tracked_as_logged(&server, &run_id, &run_dir);
    let missed: Vec<u64> = series["train_loss"]
        .iter()
        .map(|(step, _)| *step)
        .filter(|step| *step <= resumed_at && !before.iter().any(|(s, _)| s == step))
        .collect();
    assert!(
        missed.iter().any(|step| *step > logged_at_outage),
        "MLflow had missed steps after {logged_at_outage} up to the checkpoint at {resumed_at}: \
         {before:?}"
    );
    // The back-filled steps carry the time they were trained and logged (metrics.jsonl's
    // loggedAtMs, before the kill), not the time the resumed run sent them.
    let sent_at = server.timestamps(&run_id, "train_loss");
    let logged_at = logged_times(&run_dir);
    for step in &missed {
        assert_eq!(
            sent_at.get(step),
            logged_at.get(step),
            "step {step}: MLflow's timestamp vs metrics.jsonl's"
        );
        assert!(
            sent_at[step] < resumed_from,
            "step {step} was stamped {} ms, after the resume began at {resumed_from}",
            sent_at[step]
        );
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Each progress line's step and the time it was logged (`loggedAtMs`), from metrics.jsonl.
fn logged_times(run_dir: &Path) -> BTreeMap<u64, i64> {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|event| event["event"] == "progress")
        .map(|event| {
            let step = event["step"].as_u64().expect("step");
            (step, event["loggedAtMs"].as_i64().expect("loggedAtMs"))
        })
        .collect()
}

/// A scratch directory, its model store, a config file holding `yaml`, and the run directory.
fn scratch_run(yaml: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).expect("config");
    let (store, run_dir) = (dir.path().join("store"), dir.path().join("run"));
    (dir, store, config, run_dir)
}

/// `kiln train --resume RUN_DIR --mlflow URL`, which must succeed.
fn resumed(store: &Path, run_dir: &Path, url: &str) -> Output {
    let out = kiln(store)
        .arg("train")
        .arg("--resume")
        .arg(run_dir)
        .args(["--mlflow", url])
        .output()
        .expect("kiln train --resume");
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// The step of the last progress line of a run's metrics.jsonl.
fn last_progress_step(run_dir: &Path) -> u64 {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .rfind(|l| l.contains("\"progress\""))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| v["step"].as_u64())
        .expect("a progress line")
}

/// The step of the run's latest checkpoint (the one a resume starts from).
fn latest_checkpoint_step(run_dir: &Path) -> u64 {
    checkpoint_step(run_dir).expect("a complete checkpoint in the run directory")
}

/// The step of the run's latest checkpoint, if there is one (`None` also while a checkpoint
/// the index names is being replaced by the training run).
fn checkpoint_step(run_dir: &Path) -> Option<u64> {
    let checkpoints = run_dir.join("checkpoints");
    let index: Value =
        serde_json::from_slice(&std::fs::read(checkpoints.join("index.json")).ok()?).ok()?;
    let latest = index
        .as_array()?
        .iter()
        .max_by_key(|entry| entry["epoch"].as_u64())?;
    let dir = checkpoints.join(latest["dir"].as_str()?);
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).ok()?).ok()?;
    state["step"].as_u64()
}

/// A `kiln serve` on a free port, stopped afterwards.
struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, mlflow: &str) -> Serve {
    let port = free_port();
    let child = Command::new(KILN)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--mlflow",
            mlflow,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("MLFLOW_TRACKING_URI")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kiln serve");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::blocking::get(format!("{url}/v1/health")).is_err() {
        assert!(Instant::now() < deadline, "kiln serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    Serve { child, url }
}

#[test]
fn kiln_serve_jobs_are_logged_and_may_not_pick_another_server() {
    let server = Mlflow::start();
    let scratch = tempfile::tempdir().expect("temp dir");
    let kiln_serve = serve(&scratch.path().join("data"), &server.url);
    let client = reqwest::blocking::Client::new();
    let submitted: Value = client
        .post(format!("{}/v1/jobs", kiln_serve.url))
        .json(&json!({ "config": {
            "name": "served",
            "training": { "epochs": 2 },
            "tracking": { "mlflow": { "experiment": "kiln-served" } }
        }}))
        .send()
        .expect("submit")
        .json()
        .expect("JSON");
    let id = submitted["id"].as_str().expect("job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job: Value = client
            .get(format!("{}/v1/jobs/{id}", kiln_serve.url))
            .send()
            .expect("job")
            .json()
            .expect("JSON");
        if job["status"] == "completed" || job["status"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job did not end: {job}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(job["status"], "completed", "{job}");
    let experiment = server.get(
        "experiments/get-by-name",
        &[("experiment_name", "kiln-served")],
    );
    let experiment_id = experiment["experiment"]["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let found: Value = client
        .post(format!("{}/api/2.0/mlflow/runs/search", server.url))
        .json(&json!({
            "experiment_ids": [experiment_id],
            "filter": format!("tags.`kiln.job_id` = '{id}'"),
        }))
        .send()
        .expect("search")
        .json()
        .expect("JSON");
    let runs = found["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{found}");
    let run_id = runs[0]["info"]["run_id"].as_str().unwrap();
    let run = server.run(run_id);
    assert_eq!(run["info"]["status"], "FINISHED");
    assert!(!server.history(run_id, "val_loss").is_empty());
    let model_id = job["result"]["modelId"].as_str().expect("model id");
    let model = client
        .get(format!("{}/v1/models/{model_id}", kiln_serve.url))
        .send()
        .expect("model")
        .bytes()
        .expect("bytes");
    assert_eq!(server.artifact(&run, "best_model.kiln"), model.to_vec());

    let refused = client
        .post(format!("{}/v1/jobs", kiln_serve.url))
        .json(&json!({ "config": { "tracking": { "mlflow": { "uri": "http://127.0.0.1:9/" } } } }))
        .send()
        .expect("submit");
    assert_eq!(refused.status().as_u16(), 400);
    let problem: Value = refused.json().expect("problem+json");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("tracking.mlflow.uri") && detail.contains("its own MLflow server"),
        "{problem}"
    );
}

#[test]
fn a_server_that_never_answers_costs_the_run_at_most_the_finish_timeout() {
    // A "server" that accepts connections and never answers them.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let scratch = tempfile::tempdir().expect("temp dir");
    let config = scratch.path().join("c.yaml");
    std::fs::write(&config, "name: silent\ntraining: {num_epochs: 10}\n").expect("config");
    let run = |out: &str, mlflow: Option<&str>| {
        let mut cmd = kiln(&scratch.path().join("store"));
        cmd.arg("train")
            .arg(&config)
            .arg("--out")
            .arg(scratch.path().join(out));
        if let Some(url) = mlflow {
            cmd.args(["--mlflow", url])
                .env("KILN_MLFLOW_FINISH_SECS", "2");
        }
        let started = Instant::now();
        let out = cmd.output().expect("kiln train");
        (out, started.elapsed())
    };
    let (plain, plain_time) = run("plain", None);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let (tracked, tracked_time) = run("tracked", Some(&url));
    let err = stderr(&tracked);
    assert!(tracked.status.success(), "{err}");
    assert!(err.contains("warning: MLflow: not sent:"), "{err}");
    assert!(scratch.path().join("tracked/run.json").exists());
    // Training itself never waits for the server; the end waits at most the 2 s asked for
    // (and a grace second), not the 10 s a request may take.
    assert!(
        tracked_time < plain_time + Duration::from_secs(6),
        "tracked {tracked_time:?} vs untracked {plain_time:?}"
    );
}

/// A small CSV a federation client trains on: 4 features around its class (0..4), class last.
fn federation_client_csv(path: &Path, seed: u64) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let rows: String = (0..120)
        .map(|_| {
            let label = (next() * 4.0) as u32 % 4;
            let features: Vec<String> = (0..4)
                .map(|_| format!("{:.3}", label as f64 + next() * 0.5))
                .collect();
            format!("{},{label}\n", features.join(","))
        })
        .collect();
    std::fs::write(path, rows).expect("client CSV");
}

#[test]
fn a_federation_is_one_mlflow_run_with_a_step_per_round() {
    let server = Mlflow::start();
    let scratch = tempfile::tempdir().expect("temp dir");
    let kiln_serve = serve(&scratch.path().join("data"), &server.url);
    let client = reqwest::blocking::Client::new();
    let created: Value = client
        .post(format!("{}/v1/federations", kiln_serve.url))
        .json(&json!({
            "config": {"name": "fed-tracked", "model": {"hidden": [8]},
                       "training": {"num_passes": 1, "batch_size": 16},
                       "data": {"split": [0.9, 0.1, 0.0]}},
            "rounds": 2, "clientsPerRound": 2, "inputShape": [4], "numOutputs": 4
        }))
        .send()
        .expect("create")
        .json()
        .expect("JSON");
    let id = created["id"].as_str().expect("federation id").to_string();
    let clients: Vec<Child> = (0..2)
        .map(|i| {
            let csv = scratch.path().join(format!("client-{i}.csv"));
            federation_client_csv(&csv, i);
            Command::new(KILN)
                .args([
                    "federate",
                    "join",
                    &kiln_serve.url,
                    "--federation",
                    &id,
                    "--data",
                ])
                .arg(&csv)
                .arg("--store")
                .arg(scratch.path().join(format!("store-{i}")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("kiln federate join")
        })
        .collect();
    for mut c in clients {
        assert!(c.wait().expect("client").success());
    }
    // The run ends a moment after the last round (logging does not hold the round up, and
    // the experiment itself is made when the first round is logged).
    let deadline = Instant::now() + Duration::from_secs(90);
    let run_id = loop {
        let experiment: Value = client
            .get(format!(
                "{}/api/2.0/mlflow/experiments/get-by-name",
                server.url
            ))
            .query(&[("experiment_name", "fed-tracked")])
            .send()
            .expect("experiment")
            .json()
            .expect("JSON");
        let Some(experiment_id) = experiment["experiment"]["experiment_id"].as_str() else {
            assert!(Instant::now() < deadline, "no experiment: {experiment}");
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let found: Value = client
            .post(format!("{}/api/2.0/mlflow/runs/search", server.url))
            .json(&json!({
                "experiment_ids": [experiment_id],
                "filter": format!("tags.`kiln.federation_id` = '{id}'"),
            }))
            .send()
            .expect("search")
            .json()
            .expect("JSON");
        let runs = found["runs"].as_array().cloned().unwrap_or_default();
        assert!(runs.len() <= 1, "{found}");
        if let Some(run) = runs.first()
            && run["info"]["status"] == "FINISHED"
        {
            break run["info"]["run_id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no finished run: {found}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        server.history(&run_id, "participants"),
        vec![(1, 2.0), (2, 2.0)]
    );
    assert_eq!(server.history(&run_id, "clients_val_loss").len(), 2);
    let params = data(&server.run(&run_id), "params");
    assert_eq!(
        params.get("federation.rounds").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        params.get("federation.aggregation").map(String::as_str),
        Some("fedavg")
    );
}
