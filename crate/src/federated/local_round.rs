//! One client's part of a round, on any target: its own data prepared the way the global model
//! expects it, then ordinary local training that starts from the global model's weights. What
//! leaves the device is the trained model (weights, the config it was sent, local metrics) and
//! the number of training examples — never the data.

use crate::config::Config;
use crate::data::{Loaded, Splits, prepare};
use crate::error::{KilnError, Result};
use crate::jobs::now_unix_ms;
use crate::model::{ConfigModel, SavedModel};
use crate::train::{CancelToken, TrainEvent, TrainInputs, TrainRequest, YieldFn, train};
use burn::tensor::Device;

/// A client's trained model for one round.
#[derive(Debug, Clone)]
pub struct LocalUpdate {
    /// The global model's header with the local metrics, and the locally trained weights.
    pub model: SavedModel,
    /// Training examples it saw per epoch (FedAvg's weight).
    pub examples: u64,
}

/// The config a client trains a round with: the global model's, reading `data` from the
/// client's own source. Features are never standardised with local statistics: the global
/// model's standardisation (if it has one) applies on every device.
pub fn local_config(global: &SavedModel, data: crate::config::DataConfig) -> Result<Config> {
    let mut config = global.header.config.clone();
    config.data = crate::config::DataConfig {
        normalize: false,
        ..data
    };
    config.validate()?;
    Ok(config)
}

/// Splits the client's loaded samples and makes them the global model's inputs: the same
/// sample shape, its class count, its standardisation.
pub fn prepare_local(global: &SavedModel, config: &Config, loaded: Loaded) -> Result<Splits> {
    let header = &global.header;
    let splits = prepare(config, loaded)?;
    if splits.vocabulary.is_some() || header.vocabulary.is_some() {
        return Err(KilnError::Config(
            "federated training of text models is not supported yet: every client would build \
             its own vocabulary"
                .into(),
        ));
    }
    if splits.train.sample_shape != header.input_shape {
        return Err(KilnError::Data(format!(
            "the local samples have shape {:?}, but the federation's model takes {:?}",
            splits.train.sample_shape, header.input_shape
        )));
    }
    let splits = splits.with_classes(header.num_outputs)?;
    match &header.normalization {
        Some(normalization) => splits.normalized_with(normalization),
        None => Ok(splits),
    }
}

/// Trains one round locally from the global model's weights and returns the trained model.
pub async fn train_round(
    global: &SavedModel,
    config: &Config,
    splits: &Splits,
    device: Device,
    events: &mut dyn FnMut(TrainEvent),
    cancel: CancelToken,
    yield_now: Option<&YieldFn>,
) -> Result<LocalUpdate> {
    let builder = ConfigModel::starting_from(global.weights.clone());
    let outcome = train(TrainRequest {
        inputs: TrainInputs {
            config,
            splits,
            builder: &builder,
            device,
            checkpoints: None,
            resume: None,
            yield_now,
        },
        events,
        cancel,
        stop_at_epoch_end: CancelToken::new(),
    })
    .await?;
    let mut header = global.header.clone();
    header.metrics = outcome.summary.final_metrics;
    header.created_unix_ms = now_unix_ms();
    Ok(LocalUpdate {
        model: SavedModel {
            header,
            weights: outcome.final_weights,
        },
        examples: splits.train.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federated::{FlatWeights, initial_model};

    /// How far a client's round moves the weights from the global model, with FedProx's μ.
    fn distance_moved(mu: f64) -> f64 {
        let mut config = Config::default();
        config.training.num_passes = 3;
        config.training.weight_optimization.learning_rate = 0.05;
        config.training.proximal_mu = mu;
        config.model.hidden = vec![16];
        let global = futures::executor::block_on(initial_model(&config, &[1, 8, 8], 10, "m-prox"))
            .expect("initial model");
        let local = local_config(&global, config.data.clone()).expect("config");
        let loaded = crate::data::load_source(&local).expect("digits");
        let splits = prepare_local(&global, &local, loaded).expect("splits");
        let update = futures::executor::block_on(train_round(
            &global,
            &local,
            &splits,
            crate::backend::cpu_device(),
            &mut |_| {},
            CancelToken::new(),
            None,
        ))
        .expect("a round trains");
        let start = FlatWeights::from_burnpack("global", &global.weights).expect("global");
        let end = FlatWeights::from_burnpack("update", &update.model.weights).expect("update");
        end.zip_map(&start, |a, b| a - b).norm()
    }

    #[test]
    fn the_proximal_term_keeps_a_round_near_the_global_model() {
        let free = distance_moved(0.0);
        let held = distance_moved(5.0);
        eprintln!("moved {free} without the term, {held} with μ = 5");
        assert!(free > 0.1, "plain local training moved {free}");
        assert!(held < 0.2 * free, "μ = 5 moved {held}, μ = 0 moved {free}");
    }
}
