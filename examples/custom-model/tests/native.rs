//! The residual MLP trained natively through Kiln's job API: results, the model store,
//! checkpoints and resume, early stopping.
#![cfg(not(target_family = "wasm"))]

use futures::executor::block_on;
use kiln::Config;
use kiln::data::load_and_prepare;
use kiln::model::{Predictor, argmax_rows};
use kiln::store::{MemoryStore, load_model};
use kiln::train::{MemoryCheckpoints, TrainEvent};
use kiln_example_custom_model::{DIGITS_CONFIG, ResidualMlpBuilder, Resumable, train};

const BUILDER: ResidualMlpBuilder = ResidualMlpBuilder {
    hidden: 32,
    blocks: 2,
};

fn config(extra: &str) -> Config {
    Config::from_yaml_str(&format!("{DIGITS_CONFIG}{extra}")).expect("valid config")
}

#[test]
fn trains_digits_and_reloads_only_with_its_builder() {
    let config = config("");
    let splits = load_and_prepare(&config).expect("digits");
    let store = MemoryStore::new();
    let mut events = Vec::new();
    let output = block_on(train(
        &BUILDER,
        &config,
        &splits,
        kiln::backend::cpu_device(),
        &store,
        Resumable::default(),
        &mut |event| events.push(event.clone()),
    ))
    .expect("trains");
    let summary = &output.info.summary;
    let accuracy = summary.final_metrics["test_accuracy"];
    assert!(accuracy >= 0.9, "test accuracy {accuracy}");
    assert_eq!(summary.epochs_run, 6);
    assert_eq!(summary.history.len(), 6);
    assert!(summary.best_epoch.is_some());
    let evaluated = events
        .iter()
        .filter(|e| matches!(e, TrainEvent::Evaluated(_)))
        .count();
    assert_eq!(evaluated, 6);
    assert!(
        output
            .holdout_csv
            .as_deref()
            .is_some_and(|csv| csv.lines().count() > 300)
    );

    let saved = block_on(load_model(&store, &output.info.model_id)).expect("stored");
    assert_eq!(saved.header.architecture, "example.residual-mlp/32x2");
    let predictor = Predictor::with_builder(saved.clone(), &BUILDER, &kiln::backend::cpu_device())
        .expect("loads with its builder");
    let test = splits.test.as_ref().expect("test split");
    let probabilities =
        block_on(predictor.predict_standardized(test.features.clone())).expect("predicts");
    let predicted = argmax_rows(&probabilities, 10);
    let classes = test.classes().expect("classes");
    let right = predicted
        .iter()
        .zip(classes)
        .filter(|(p, c)| **p == **c as usize)
        .count();
    let reloaded_accuracy = right as f64 / classes.len() as f64;
    assert!(
        (reloaded_accuracy - accuracy).abs() < 1e-9,
        "{reloaded_accuracy} vs {accuracy}"
    );

    let as_config_network = Predictor::new(saved.clone(), &kiln::backend::cpu_device())
        .expect_err("not a config network");
    assert!(
        as_config_network
            .to_string()
            .contains("example.residual-mlp/32x2"),
        "{as_config_network}"
    );
    let wider = ResidualMlpBuilder {
        hidden: 64,
        ..BUILDER
    };
    let error = Predictor::with_builder(saved, &wider, &kiln::backend::cpu_device())
        .expect_err("another architecture");
    assert!(
        error
            .to_string()
            .contains("not `example.residual-mlp/64x2`"),
        "{error}"
    );
}

#[test]
fn resuming_from_a_checkpoint_gives_the_uninterrupted_runs_weights() {
    let config = config("");
    let splits = load_and_prepare(&config).expect("digits");
    let store = MemoryStore::new();
    let run = |resumable: Resumable<'_>| {
        block_on(train(
            &BUILDER,
            &config,
            &splits,
            kiln::backend::cpu_device(),
            &store,
            resumable,
            &mut |_| {},
        ))
        .expect("trains")
    };
    let mut sink = MemoryCheckpoints::default();
    let whole = run(Resumable {
        checkpoints: Some(&mut sink),
        resume: None,
    });
    assert_eq!(sink.points.len(), 6, "one checkpoint per epoch");
    let after_three = sink.points[2].clone();
    assert_eq!(after_three.state.epochs_done, 3);
    let resumed = run(Resumable {
        checkpoints: None,
        resume: Some(after_three),
    });
    assert_eq!(resumed.final_weights, whole.final_weights);
    assert_eq!(resumed.info.summary.history, whole.info.summary.history);
    assert_eq!(resumed.info.summary.steps, whole.info.summary.steps);
}

#[test]
fn early_stopping_ends_a_custom_models_run() {
    // The training loss falls, so a watch that wants it to rise stalls at once.
    let config =
        config("early_stopping: {tasks: [{metric: train_loss, mode: max}], patience: 1}\n");
    let splits = load_and_prepare(&config).expect("digits");
    let output = block_on(train(
        &BUILDER,
        &config,
        &splits,
        kiln::backend::cpu_device(),
        &MemoryStore::new(),
        Resumable::default(),
        &mut |_| {},
    ))
    .expect("trains");
    assert!(output.info.summary.stopped_early);
    assert_eq!(output.info.summary.epochs_run, 2);
}
