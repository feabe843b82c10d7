//! The layer kinds, each in its own module: its config form (a spec read from `{type: kind,
//! ...}`), its checks, output shape, parameter count and build, its forward pass and how
//! PyTorch names its parameters. `registry` lists them; a new kind is a module plus one line
//! there.

mod activations;
mod batch_norm;
mod conv1d;
mod conv2d;
mod dropout;
mod embedding;
mod flatten;
pub mod forms;
mod frozen;
mod kind;
mod layer_norm;
mod linear;
mod max_pool2d;
mod pointwise;
mod positional_encoding;
mod recurrent;
mod recurrent_run;
mod registry;
mod residual;
mod sample_shape;
mod sequence_pool;
mod small_linear;
mod stack;
mod transformer_encoder;

pub use activations::{Activations, Steps};
pub use batch_norm::BatchNormSpec;
pub use conv1d::Conv1dSpec;
pub use conv2d::Conv2dSpec;
pub use dropout::DropoutSpec;
pub use embedding::EmbeddingSpec;
pub use flatten::{Flatten, FlattenSpec};
pub use frozen::FrozenSpec;
pub use kind::{InputLayout, LayerForward, LayerKind, TorchParameter};
pub use layer_norm::LayerNormSpec;
pub use linear::LinearSpec;
pub use max_pool2d::MaxPool2dSpec;
pub use pointwise::{GeluSpec, ReluSpec, SigmoidSpec, TanhSpec};
pub use positional_encoding::PositionalEncodingSpec;
pub use recurrent::{GruLayer, GruSpec, LstmLayer, LstmSpec};
pub use registry::{Layer, LayerSpec};
pub use residual::{ResidualBlock, ResidualSpec};
pub use sample_shape::{SampleShape, Window};
pub use sequence_pool::{MaxPool, MaxPoolSpec, MeanPool, MeanPoolSpec};
pub use small_linear::{MAX_PRODUCT_ELEMENTS, linear_as_product, linear_forward};
pub use stack::infer_shapes;
pub use transformer_encoder::TransformerEncoderSpec;
