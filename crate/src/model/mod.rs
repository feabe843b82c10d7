//! The model: layers from the config, weights import/export, saved-model format, inference.

mod batch;
mod cpu_tensor;
mod cross_entropy;
mod id;
mod import;
mod network;
mod params;
mod predict;
mod predictions_csv;
mod presets;
mod saved;
mod summary;
mod trainable;
mod weights;

pub use crate::layers::{
    Flatten, GruLayer, Layer, LstmLayer, MAX_PRODUCT_ELEMENTS, MaxPool, MeanPool, ResidualBlock,
    SampleShape, infer_shapes, linear_as_product, linear_forward,
};
pub use batch::{BatchLoss, BatchTargets, make_batch, task_loss};
pub(crate) use cpu_tensor::contiguous_flex;
pub use id::{MAX_MODEL_ID_LEN, ModelId};
pub use import::import_safetensors;
pub use network::Network;
pub use params::{cast_float, initialize_params};
pub use predict::{Predictor, argmax_rows};
pub use predictions_csv::predictions_csv;
pub use presets::resolve_layers;
pub use saved::{MODEL_MAGIC, ModelHeader, SavedModel};
pub use summary::{ModelSummary, summary};
pub use trainable::{
    Batch, CONFIG_ARCHITECTURE, ConfigModel, ModelBuilder, ModelSpec, StepOutput, TrainStep,
};
pub use weights::{export_weights, import_weights};
