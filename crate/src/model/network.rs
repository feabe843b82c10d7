//! The network: a sequence of burn layers built from the config's layer list.

use super::shape::{SampleShape, infer_shapes};
use super::small_linear::linear_forward;
use crate::config::LayerSpec;
use crate::error::Result;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Gelu, LayerNorm, LayerNormConfig, Linear,
    LinearConfig, PaddingConfig2d, Relu, Sigmoid, Tanh,
};
use burn::tensor::{Device, Tensor};

/// Flattens `[batch, channels, height, width]` to `[batch, features]`.
#[derive(Module, Debug, Default)]
pub struct Flatten;

/// One layer of a [`Network`].
#[derive(Module, Debug)]
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
}

/// A batch of activations: vectors or images.
enum Activations {
    Vectors(Tensor<2>),
    Images(Tensor<4>),
}

impl Activations {
    fn into_vectors(self) -> Tensor<2> {
        match self {
            Self::Vectors(x) => x,
            Self::Images(x) => x.flatten(1, 3),
        }
    }

    /// Applies a rank-generic operation to either kind of batch.
    fn map(
        self,
        vectors: impl FnOnce(Tensor<2>) -> Tensor<2>,
        images: impl FnOnce(Tensor<4>) -> Tensor<4>,
    ) -> Self {
        match self {
            Self::Vectors(x) => Self::Vectors(vectors(x)),
            Self::Images(x) => Self::Images(images(x)),
        }
    }
}

/// A feed-forward network over vector or image samples.
#[derive(Module, Debug)]
pub struct Network {
    /// The layers, applied in order.
    pub layers: Vec<Layer>,
    /// Input sample shape `[features]` or `[channels, height, width]`.
    pub input_shape: Vec<usize>,
}

impl Network {
    /// Builds the layers on `device`, inferring input sizes from the sample shape.
    pub fn build(
        specs: &[LayerSpec],
        input_shape: &[usize],
        outputs: usize,
        device: &Device,
    ) -> Result<Self> {
        let sample = SampleShape::from_dims(input_shape)?;
        let shapes = infer_shapes(specs, sample, outputs)?;
        let layers = specs
            .iter()
            .zip(shapes)
            .map(|(spec, input)| build_layer(spec, input, outputs, device))
            .collect();
        Ok(Self {
            layers,
            input_shape: input_shape.to_vec(),
        })
    }

    /// Whether the first shape-dependent layer needs image batches; when it does not (an MLP
    /// over images), the batch stays flat and skips a reshape and a flatten every step.
    fn starts_with_image_layer(&self) -> bool {
        self.layers
            .iter()
            .find(|layer| {
                !matches!(
                    layer,
                    Layer::Relu(_)
                        | Layer::Gelu(_)
                        | Layer::Tanh(_)
                        | Layer::Sigmoid(_)
                        | Layer::Dropout(_)
                )
            })
            .is_some_and(|layer| {
                matches!(
                    layer,
                    Layer::Conv2d(_)
                        | Layer::MaxPool2d(_)
                        | Layer::BatchNorm(_)
                        | Layer::LayerNorm(_)
                )
            })
    }

    /// Forward pass.
    ///
    /// - `input`: `[batch, features]` (any sample shape is flattened row-major)
    /// - output: `[batch, outputs]` logits (classification) or values (regression)
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let batch = input.dims()[0];
        let mut x = match (self.input_shape.as_slice(), self.starts_with_image_layer()) {
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
    match layer {
        Layer::Linear(l) => Activations::Vectors(linear_forward(l, x.into_vectors())),
        Layer::Flatten(_) => Activations::Vectors(x.into_vectors()),
        // The builder only places image layers after image inputs (see `infer_shapes`).
        Layer::Conv2d(l) => x.map(|v| v, |i| l.forward(i)),
        Layer::MaxPool2d(l) => x.map(|v| v, |i| l.forward(i)),
        Layer::Relu(l) => x.map(|v| l.forward(v), |i| l.forward(i)),
        Layer::Gelu(l) => x.map(|v| l.forward(v), |i| l.forward(i)),
        Layer::Tanh(l) => x.map(|v| l.forward(v), |i| l.forward(i)),
        Layer::Sigmoid(l) => x.map(|v| l.forward(v), |i| l.forward(i)),
        Layer::Dropout(l) => x.map(|v| l.forward(v), |i| l.forward(i)),
        Layer::BatchNorm(l) => x.map(|v| l.forward(v), |i| l.forward(i)),
        Layer::LayerNorm(l) => x.map(|v| l.forward(v), |i| l.forward(i)),
    }
}

fn build_layer(spec: &LayerSpec, input: SampleShape, outputs: usize, device: &Device) -> Layer {
    let channels_or_features = match input {
        SampleShape::Vector(n) => n,
        SampleShape::Image(c, _, _) => c,
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
                SampleShape::Vector(n) => n,
                SampleShape::Image(_, _, w) => w,
            };
            Layer::LayerNorm(LayerNormConfig::new(last).init(device))
        }
    }
}
