//! The layer kinds: one line each — the config variant, the kind's spec (its config form, in
//! the kind's own module) and the burn module it builds. Adding a kind is its module plus one
//! line here. The variant names are part of saved models' records: never rename one.

use super::kind::{LayerForward, LayerKind};
use super::sample_shape::SampleShape;
use super::{
    batch_norm::BatchNormSpec, conv1d::Conv1dSpec, conv2d::Conv2dSpec, dropout::DropoutSpec,
    embedding::EmbeddingSpec, flatten::Flatten, flatten::FlattenSpec, frozen::FrozenSpec,
    layer_norm::LayerNormSpec, linear::LinearSpec, max_pool2d::MaxPool2dSpec, pointwise::GeluSpec,
    pointwise::ReluSpec, pointwise::SigmoidSpec, pointwise::TanhSpec,
    positional_encoding::PositionalEncodingSpec, recurrent::GruLayer, recurrent::GruSpec,
    recurrent::LstmLayer, recurrent::LstmSpec, residual::ResidualBlock, residual::ResidualSpec,
    sequence_pool::MaxPool, sequence_pool::MaxPoolSpec, sequence_pool::MeanPool,
    sequence_pool::MeanPoolSpec, transformer_encoder::TransformerEncoderSpec,
};
use crate::error::{KilnError, Result};
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::transformer::TransformerEncoder;
use burn::nn::{
    BatchNorm, Dropout, Embedding, Gelu, LayerNorm, Linear, PositionalEncoding, Relu, Sigmoid, Tanh,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Declares [`LayerSpec`] (the config form of every kind), [`Layer`] (the built module of every
/// kind that builds one of its own) and the dispatch between them and the kinds' traits.
macro_rules! layer_kinds {
    ($( $(#[doc = $doc:literal])* $kind:ident($spec:ty) $(=> $module:ty)? ),+ $(,)?) => {
        /// One layer of the network.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum LayerSpec {
            $( $(#[doc = $doc])* $kind($spec), )+
        }

        impl LayerSpec {
            /// The kind behind this config form.
            pub fn kind(&self) -> &dyn LayerKind {
                match self {
                    $( Self::$kind(spec) => spec, )+
                }
            }
        }

        $(
            impl From<$spec> for LayerSpec {
                fn from(spec: $spec) -> Self {
                    Self::$kind(spec)
                }
            }
        )+

        /// One built layer of a network (`kiln::model::Network`).
        #[derive(Module, Debug)]
        #[allow(clippy::large_enum_variant)] // built once per model; never moved in a hot loop
        pub enum Layer {
            $( $(
                #[doc = concat!("A built `", stringify!($kind), "` layer.")]
                $kind($module),
            )? )+
        }

        impl Layer {
            /// What the built layer does.
            pub fn built(&self) -> &dyn LayerForward {
                match self {
                    $( $( Self::$kind(module) => {
                        let module: &$module = module;
                        module
                    } )? )+
                }
            }

            /// The variant's name, as saved models' records and burn's parameter paths spell it.
            pub fn variant_name(&self) -> &'static str {
                match self {
                    $( $( Self::$kind(module) => {
                        let _: &$module = module;
                        stringify!($kind)
                    } )? )+
                }
            }
        }
    };
}

layer_kinds! {
    /// Fully connected layer. Flattens image inputs first.
    Linear(LinearSpec) => Linear,
    /// 2-D convolution over `[channels, height, width]` inputs.
    Conv2d(Conv2dSpec) => Conv2d,
    /// 2-D max pooling.
    MaxPool2d(MaxPool2dSpec) => MaxPool2d,
    /// Flattens `[channels, height, width]` to one vector.
    Flatten(FlattenSpec) => Flatten,
    /// Rectified linear unit.
    Relu(ReluSpec) => Relu,
    /// Gaussian error linear unit.
    Gelu(GeluSpec) => Gelu,
    /// Hyperbolic tangent.
    Tanh(TanhSpec) => Tanh,
    /// Logistic sigmoid.
    Sigmoid(SigmoidSpec) => Sigmoid,
    /// Randomly zeroes activations while training.
    Dropout(DropoutSpec) => Dropout,
    /// Batch normalisation over features (vectors) or channels (images).
    BatchNorm(BatchNormSpec) => BatchNorm,
    /// Layer normalisation over the last dimension.
    LayerNorm(LayerNormSpec) => LayerNorm,
    /// Token ids `[len]` → vectors `[len, dim]` (needs a `text` source).
    Embedding(EmbeddingSpec) => Embedding,
    /// A GRU over a sequence `[len, features]`: its last hidden state `[hidden]`, or every
    /// step's (`all_steps: true`, `[len, hidden]`).
    Gru(GruSpec) => GruLayer,
    /// An LSTM over a sequence `[len, features]`: its last hidden state, or every step's.
    Lstm(LstmSpec) => LstmLayer,
    /// 1-D convolution over time: `[len, features]` → `[len', channels]`.
    Conv1d(Conv1dSpec) => Conv1d,
    /// The mean over time of the non-padding steps: `[len, features]` → `[features]`.
    MeanPool(MeanPoolSpec) => MeanPool,
    /// The maximum over time: `[len, features]` → `[features]`.
    MaxPool(MaxPoolSpec) => MaxPool,
    /// Adds sinusoidal position encodings to `[len, features]`.
    PositionalEncoding(PositionalEncodingSpec) => PositionalEncoding,
    /// burn's transformer encoder over `[len, d_model]` (padding masked out).
    TransformerEncoder(TransformerEncoderSpec) => TransformerEncoder,
    /// A layer whose parameters do not train: what `trainable: false` on any layer reads as.
    /// No gradient, no optimiser update; checkpoints keep its weights as they are.
    Frozen(FrozenSpec),
    /// `x + layers(x)`: the block's layers must give back their input's shape.
    Residual(ResidualSpec) => ResidualBlock,
}

impl LayerSpec {
    /// The kind's name as configs write it (`gru`, `mean_pool`).
    pub fn kind_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
            .unwrap_or_default()
    }

    /// The output shape of the layer at config path `at`; token ids reach only a layer that
    /// reads them.
    pub fn output(&self, at: &str, input: SampleShape, outputs: usize) -> Result<SampleShape> {
        if matches!(input, SampleShape::Tokens(..)) && !self.kind().reads_tokens() {
            return Err(KilnError::Config(format!(
                "{at}: token ids must go through an `embedding` layer first, not `{}`",
                self.kind_name()
            )));
        }
        self.kind().output(at, input, outputs)
    }
}
