//! A federation's first global model, made where there is no data: the config's network for
//! the given sample shape and class count, initialised from the config's seed exactly as a
//! training run would be.

use crate::config::Config;
use crate::error::Result;
use crate::jobs::now_unix_ms;
use crate::model::{ConfigModel, ModelBuilder, ModelHeader, ModelSpec, SavedModel, export_weights};

/// The untrained global model of a federation: `model_id` names it, `config` (already
/// validated) describes its network.
pub async fn initial_model(
    config: &Config,
    input_shape: &[usize],
    num_outputs: usize,
    model_id: &str,
) -> Result<SavedModel> {
    let device = crate::backend::cpu_device();
    device.seed(config.seed);
    let builder = ConfigModel::default();
    let spec = ModelSpec {
        config,
        input_shape,
        num_outputs,
        vocab_size: None,
    };
    let network = builder.initialize(builder.build(&spec, &device)?, config)?;
    let weights = export_weights(&network).await?;
    Ok(SavedModel {
        header: ModelHeader {
            model_id: model_id.to_string(),
            name: config.name.clone(),
            architecture: builder.architecture(),
            created_unix_ms: now_unix_ms(),
            kiln_version: env!("CARGO_PKG_VERSION").into(),
            config: config.clone(),
            input_shape: input_shape.to_vec(),
            num_outputs,
            normalization: None,
            metrics: Default::default(),
            vocabulary: None,
        },
        weights,
    })
}
