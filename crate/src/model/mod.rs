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
mod recurrent;
mod saved;
mod sequence_layers;
mod shape;
mod small_linear;
mod summary;
mod trainable;
mod weights;

pub use batch::{BatchLoss, BatchTargets, make_batch, task_loss};
pub(crate) use cpu_tensor::contiguous_flex;
pub use id::{MAX_MODEL_ID_LEN, ModelId};
pub use import::import_safetensors;
pub use network::{Flatten, Layer, Network, ResidualBlock};
pub use params::{cast_float, initialize_params};
pub use predict::{Predictor, argmax_rows};
pub use predictions_csv::predictions_csv;
pub use saved::{MODEL_MAGIC, ModelHeader, SavedModel};
pub use sequence_layers::{GruLayer, LstmLayer, MaxPool, MeanPool};
pub use shape::{SampleShape, infer_shapes, layer_kind, resolve_layers};
pub use small_linear::{MAX_PRODUCT_ELEMENTS, linear_as_product, linear_forward};
pub use summary::{ModelSummary, summary};
pub use trainable::{
    Batch, CONFIG_ARCHITECTURE, ConfigModel, ModelBuilder, ModelSpec, StepOutput, TrainStep,
};
pub use weights::{export_weights, import_weights};
