//! The network: a sequence of burn layers built from the config's layer list.

use super::sequence_layers::{
    GruLayer, LstmLayer, MaxPool, MeanPool, Recurrent, Steps, conv1d_forward, transformer_forward,
};
use super::shape::{SampleShape, infer_output_at, infer_shapes};
use super::small_linear::linear_forward;
use crate::config::LayerSpec;
use crate::error::Result;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::gru::GruConfig;
use burn::nn::lstm::LstmConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Embedding, EmbeddingConfig, Gelu,
    LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig1d, PaddingConfig2d,
    PositionalEncoding, PositionalEncodingConfig, Relu, Sigmoid, Tanh,
};
use burn::tensor::{Device, Tensor};

/// Flattens `[batch, channels, height, width]` to `[batch, features]`.
#[derive(Module, Debug, Default)]
pub struct Flatten;

/// One layer of a [`Network`].
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // built once per model; never moved in a hot loop
pub enum Layer {
    /// Fully connected.
    Linear(Linear),
    /// 2-D convolution.
    Conv2d(Conv2d),
    /// 2-D max pooling.
    MaxPool2d(MaxPool2d),
    /// Image to vector.
    Flatten(Flatten),
    /// ReLU.
    Relu(Relu),
    /// GELU.
    Gelu(Gelu),
    /// tanh.
    Tanh(Tanh),
    /// Logistic sigmoid.
    Sigmoid(Sigmoid),
    /// Dropout (active only while training).
    Dropout(Dropout),
    /// Batch normalisation.
    BatchNorm(BatchNorm),
    /// Layer normalisation.
    LayerNorm(LayerNorm),
    /// Token ids to vectors.
    Embedding(Embedding),
    /// GRU over time.
    Gru(GruLayer),
    /// LSTM over time.
    Lstm(LstmLayer),
    /// 1-D convolution over time.
    Conv1d(Conv1d),
    /// Mean over time.
    MeanPool(MeanPool),
    /// Maximum over time.
    MaxPool(MaxPool),
    /// Sinusoidal position encodings.
    PositionalEncoding(PositionalEncoding),
    /// burn's transformer encoder.
    TransformerEncoder(TransformerEncoder),
    /// `x + layers(x)`.
    Residual(ResidualBlock),
}

/// A residual block: its layers' output added to its input.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// The block's layers.
    pub layers: Vec<Layer>,
}

/// A batch of activations: vectors, images, token ids or sequences.
#[allow(clippy::large_enum_variant)] // a few moves per forward pass, next to tensor work
enum Activations {
    Vectors(Tensor<2>),
    Images(Tensor<4>),
    /// Token ids as floats `[batch, len]` (0 is padding).
    Tokens(Tensor<2>),
    Sequences(Steps),
}

impl Activations {
    /// Another handle on the same activations (tensors are shared, not copied).
    fn duplicate(&self) -> Self {
        match self {
            Self::Vectors(x) => Self::Vectors(x.clone()),
            Self::Images(x) => Self::Images(x.clone()),
            Self::Tokens(x) => Self::Tokens(x.clone()),
            Self::Sequences(steps) => Self::Sequences(Steps {
                x: steps.x.clone(),
                padding: steps.padding.clone(),
            }),
        }
    }

    /// `self + other` of the same shape (a residual connection); sequences keep their padding.
    fn add(self, other: Self) -> Self {
        match (self, other) {
            (Self::Images(a), Self::Images(b)) => Self::Images(a + b),
            (Self::Sequences(a), Self::Sequences(b)) => Self::Sequences(Steps {
                x: a.x + b.x,
                padding: a.padding,
            }),
            (a, b) => Self::Vectors(a.into_vectors() + b.into_vectors()),
        }
    }

    fn into_vectors(self) -> Tensor<2> {
        match self {
            Self::Vectors(x) | Self::Tokens(x) => x,
            Self::Images(x) => x.flatten(1, 3),
            Self::Sequences(steps) => steps.x.flatten(1, 2),
        }
    }

    /// The sequence a sequence layer reads (shape inference only places those after one).
    fn into_steps(self) -> Steps {
        match self {
            Self::Sequences(steps) => steps,
            other => {
                let x = other.into_vectors();
                let [batch, features] = x.dims();
                Steps {
                    x: x.reshape([batch, 1, features]),
                    padding: None,
                }
            }
        }
    }

    /// Applies a rank-generic operation to any kind of batch (token ids pass through).
    fn map(
        self,
        vectors: impl FnOnce(Tensor<2>) -> Tensor<2>,
        images: impl FnOnce(Tensor<4>) -> Tensor<4>,
        sequences: impl FnOnce(Tensor<3>) -> Tensor<3>,
    ) -> Self {
        match self {
            Self::Vectors(x) => Self::Vectors(vectors(x)),
            Self::Images(x) => Self::Images(images(x)),
            Self::Tokens(x) => Self::Tokens(x),
            Self::Sequences(Steps { x, padding }) => Self::Sequences(Steps {
                x: sequences(x),
                padding,
            }),
        }
    }
}

/// A feed-forward network over vector or image samples.
#[derive(Module, Debug)]
pub struct Network {
    /// The layers, applied in order.
    pub layers: Vec<Layer>,
    /// Input sample shape `[features]`, `[channels, height, width]` or `[len]` token ids.
    pub input_shape: Vec<usize>,
    /// The vocabulary size when the inputs are token ids, else 0.
    pub token_vocab: usize,
}

impl Network {
    /// Builds the layers on `device`, inferring input sizes from the sample shape.
    pub fn build(
        specs: &[LayerSpec],
        input_shape: &[usize],
        vocab: Option<usize>,
        outputs: usize,
        device: &Device,
    ) -> Result<Self> {
        let sample = SampleShape::from_input(input_shape, vocab)?;
        let shapes = infer_shapes(specs, sample, outputs)?;
        let layers = specs
            .iter()
            .zip(shapes)
            .map(|(spec, input)| build_layer(spec, input, outputs, device))
            .collect();
        Ok(Self {
            layers,
            input_shape: input_shape.to_vec(),
            token_vocab: vocab.unwrap_or(0),
        })
    }

    /// Whether the first shape-dependent layer needs image batches; when it does not (an MLP
    /// over images), the batch stays flat and skips a reshape and a flatten every step.
    fn starts_with_image_layer(&self) -> bool {
        starts_with_image_layer(&self.layers)
    }

    /// Forward pass.
    ///
    /// - `input`: `[batch, features]` (any sample shape is flattened row-major)
    /// - output: `[batch, outputs]` logits (classification) or values (regression)
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let batch = input.dims()[0];
        let mut x = match (self.input_shape.as_slice(), self.starts_with_image_layer()) {
            _ if self.token_vocab > 0 => Activations::Tokens(input),
            ([c, h, w], true) => Activations::Images(input.reshape([batch, *c, *h, *w])),
            _ => Activations::Vectors(input),
        };
        for layer in &self.layers {
            x = apply(layer, x);
        }
        x.into_vectors()
    }
}

fn apply(layer: &Layer, x: Activations) -> Activations {
    use Activations::{Sequences, Vectors};
    match layer {
        Layer::Linear(l) => Vectors(linear_forward(l, x.into_vectors())),
        Layer::Flatten(_) => Vectors(x.into_vectors()),
        // The builder only places image layers after image inputs (see `infer_shapes`).
        Layer::Conv2d(l) => x.map(|v| v, |i| l.forward(i), |s| s),
        Layer::MaxPool2d(l) => x.map(|v| v, |i| l.forward(i), |s| s),
        Layer::Relu(l) => x.map(|v| l.forward(v), |i| l.forward(i), |s| l.forward(s)),
        Layer::Gelu(l) => x.map(|v| l.forward(v), |i| l.forward(i), |s| l.forward(s)),
        Layer::Tanh(l) => x.map(|v| l.forward(v), |i| l.forward(i), |s| l.forward(s)),
        Layer::Sigmoid(l) => x.map(|v| l.forward(v), |i| l.forward(i), |s| l.forward(s)),
        Layer::Dropout(l) => x.map(|v| l.forward(v), |i| l.forward(i), |s| l.forward(s)),
        Layer::BatchNorm(l) => x.map(|v| l.forward(v), |i| l.forward(i), |s| s),
        Layer::LayerNorm(l) => x.map(|v| l.forward(v), |i| l.forward(i), |s| l.forward(s)),
        Layer::Embedding(l) => {
            let ids = x.into_vectors();
            let padding = ids.clone().equal_elem(0.0);
            Sequences(Steps {
                x: l.forward(ids.int()),
                padding: Some(padding),
            })
        }
        Layer::Gru(l) => recurrent(l.forward(x.into_steps())),
        Layer::Lstm(l) => recurrent(l.forward(x.into_steps())),
        Layer::Conv1d(l) => Sequences(conv1d_forward(l, x.into_steps())),
        Layer::MeanPool(l) => Vectors(l.forward(x.into_steps())),
        Layer::MaxPool(l) => Vectors(l.forward(x.into_steps())),
        Layer::PositionalEncoding(l) => x.map(|v| v, |i| i, |s| l.forward(s)),
        Layer::TransformerEncoder(l) => Sequences(transformer_forward(l, x.into_steps())),
        Layer::Residual(block) => {
            let skip = x.duplicate();
            let out = block.layers.iter().fold(x, |x, layer| apply(layer, x));
            skip.add(out)
        }
    }
}

/// Whether the first shape-dependent layer of `layers` (looking into residual blocks) needs
/// image batches.
fn starts_with_image_layer(layers: &[Layer]) -> bool {
    let shape_dependent = layers.iter().find(|layer| {
        !matches!(
            layer,
            Layer::Relu(_)
                | Layer::Gelu(_)
                | Layer::Tanh(_)
                | Layer::Sigmoid(_)
                | Layer::Dropout(_)
        )
    });
    match shape_dependent {
        Some(Layer::Residual(block)) => starts_with_image_layer(&block.layers),
        Some(layer) => matches!(
            layer,
            Layer::Conv2d(_) | Layer::MaxPool2d(_) | Layer::BatchNorm(_) | Layer::LayerNorm(_)
        ),
        None => false,
    }
}

fn recurrent(output: Recurrent) -> Activations {
    match output {
        Recurrent::Steps(steps) => Activations::Sequences(steps),
        Recurrent::Last(state) => Activations::Vectors(state),
    }
}

fn build_layer(spec: &LayerSpec, input: SampleShape, outputs: usize, device: &Device) -> Layer {
    let (channels_or_features, steps) = match input {
        SampleShape::Vector(n) | SampleShape::Tokens(n, _) => (n, 1),
        SampleShape::Image(c, _, _) => (c, 1),
        SampleShape::Sequence(len, features) => (features, len),
    };
    match spec {
        LayerSpec::Linear { out, bias } => Layer::Linear(
            LinearConfig::new(input.len(), out.unwrap_or(outputs))
                .with_bias(*bias)
                .init(device),
        ),
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
        } => Layer::Conv2d(
            Conv2dConfig::new([channels_or_features, *channels], [*kernel, *kernel])
                .with_stride([*stride, *stride])
                .with_padding(PaddingConfig2d::Explicit(
                    *padding, *padding, *padding, *padding,
                ))
                .init(device),
        ),
        LayerSpec::MaxPool2d { kernel, stride } => {
            let stride = stride.unwrap_or(*kernel);
            Layer::MaxPool2d(
                MaxPool2dConfig::new([*kernel, *kernel])
                    .with_strides([stride, stride])
                    .init(),
            )
        }
        LayerSpec::Flatten => Layer::Flatten(Flatten),
        LayerSpec::Relu => Layer::Relu(Relu),
        LayerSpec::Gelu => Layer::Gelu(Gelu::new()),
        LayerSpec::Tanh => Layer::Tanh(Tanh),
        LayerSpec::Sigmoid => Layer::Sigmoid(Sigmoid),
        LayerSpec::Dropout { prob } => Layer::Dropout(DropoutConfig::new(*prob).init()),
        LayerSpec::BatchNorm => {
            Layer::BatchNorm(BatchNormConfig::new(channels_or_features).init(device))
        }
        LayerSpec::LayerNorm => {
            let last = match input {
                SampleShape::Image(_, _, w) => w,
                _ => channels_or_features,
            };
            Layer::LayerNorm(LayerNormConfig::new(last).init(device))
        }
        LayerSpec::Embedding { dim } => {
            let vocab = match input {
                SampleShape::Tokens(_, vocab) => vocab,
                _ => 0,
            };
            Layer::Embedding(EmbeddingConfig::new(vocab, *dim).init(device))
        }
        LayerSpec::Gru { hidden, all_steps } => Layer::Gru(GruLayer {
            gru: GruConfig::new(channels_or_features, *hidden, true).init(device),
            all_steps: *all_steps,
        }),
        LayerSpec::Lstm { hidden, all_steps } => Layer::Lstm(LstmLayer {
            lstm: LstmConfig::new(channels_or_features, *hidden, true).init(device),
            all_steps: *all_steps,
        }),
        LayerSpec::Conv1d {
            channels,
            kernel,
            padding,
        } => Layer::Conv1d(
            Conv1dConfig::new(channels_or_features, *channels, *kernel)
                .with_padding(PaddingConfig1d::Explicit(*padding, *padding))
                .init(device),
        ),
        LayerSpec::MeanPool => Layer::MeanPool(MeanPool),
        LayerSpec::MaxPool => Layer::MaxPool(MaxPool),
        LayerSpec::PositionalEncoding => Layer::PositionalEncoding(
            PositionalEncodingConfig::new(channels_or_features)
                .with_max_sequence_size(steps.max(1))
                .init(device),
        ),
        LayerSpec::Frozen { layer } => build_layer(layer, input, outputs, device).no_grad(),
        LayerSpec::Residual { layers } => {
            let mut shape = input;
            let mut built = Vec::with_capacity(layers.len());
            for inner in layers {
                built.push(build_layer(inner, shape, outputs, device));
                // Checked by `infer_shapes` before anything is built.
                shape = infer_output_at("", inner, shape, outputs).unwrap_or(shape);
            }
            Layer::Residual(ResidualBlock { layers: built })
        }
        LayerSpec::TransformerEncoder {
            heads,
            layers,
            dropout,
            ff,
            ..
        } => Layer::TransformerEncoder(
            TransformerEncoderConfig::new(
                channels_or_features,
                ff.unwrap_or(4 * channels_or_features),
                *heads,
                *layers,
            )
            .with_dropout(*dropout)
            .init(device),
        ),
    }
}
