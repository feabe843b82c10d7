//! Resolving presets into layers and inferring every layer's input size from the data.

use crate::config::{LayerSpec, ModelConfig, Preset};
use crate::error::{KilnError, Result};
use crate::limits::{Limit, Limits};

/// The shape of one sample (or one layer's activation for one sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleShape {
    /// `[features]`.
    Vector(usize),
    /// `[channels, height, width]`.
    Image(usize, usize, usize),
    /// `len` token ids below `vocab`.
    Tokens(usize, usize),
    /// `[len, features]`: a sequence of vectors.
    Sequence(usize, usize),
}

impl SampleShape {
    /// The shape of samples with dimensions `dims`: token ids when the data has a vocabulary
    /// of `vocab` tokens, else vectors or images.
    pub fn from_input(dims: &[usize], vocab: Option<usize>) -> Result<Self> {
        match (dims, vocab) {
            ([len], Some(vocab)) => Ok(Self::Tokens(*len, vocab)),
            ([n], None) => Ok(Self::Vector(*n)),
            ([c, h, w], None) => Ok(Self::Image(*c, *h, *w)),
            (other, Some(_)) => Err(KilnError::Data(format!(
                "token samples are [length], got shape {other:?}"
            ))),
            (other, None) => Err(KilnError::Data(format!(
                "samples must be vectors [features] or images [channels, height, width], got \
                 shape {other:?}"
            ))),
        }
    }

    /// Vectors or images of dimensions `dims`.
    pub fn from_dims(dims: &[usize]) -> Result<Self> {
        Self::from_input(dims, None)
    }

    /// Values in one sample.
    pub fn len(self) -> usize {
        match self {
            Self::Vector(n) => n,
            Self::Image(c, h, w) => c.saturating_mul(h).saturating_mul(w),
            Self::Tokens(len, _) => len,
            Self::Sequence(len, features) => len.saturating_mul(features),
        }
    }

    /// Whether a sample holds no values.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The size normalisation layers normalise over: vector features, image channels
    /// (`batch_norm`) or widths (`layer_norm`), sequence features.
    fn features(self) -> usize {
        match self {
            Self::Vector(n) | Self::Sequence(_, n) | Self::Tokens(n, _) => n,
            Self::Image(c, _, _) => c,
        }
    }
}

/// The explicit layer list of a model config: its `layers`, or the preset expanded.
pub fn resolve_layers(model: &ModelConfig) -> Vec<LayerSpec> {
    if !model.layers.is_empty() {
        return model.layers.clone();
    }
    let dropout = |layers: &mut Vec<LayerSpec>| {
        if model.dropout > 0.0 {
            layers.push(LayerSpec::Dropout {
                prob: model.dropout,
            });
        }
    };
    let mut layers = Vec::new();
    match model.preset.unwrap_or(Preset::Mlp) {
        Preset::Mlp => {
            for width in &model.hidden {
                layers.push(LayerSpec::Linear {
                    out: Some(*width),
                    bias: true,
                });
                layers.push(LayerSpec::Relu);
                dropout(&mut layers);
            }
        }
        Preset::Cnn => {
            for channels in [16, 32] {
                layers.push(LayerSpec::Conv2d {
                    channels,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                });
                layers.push(LayerSpec::Relu);
                layers.push(LayerSpec::MaxPool2d {
                    kernel: 2,
                    stride: None,
                });
            }
            layers.push(LayerSpec::Flatten);
            layers.push(LayerSpec::Linear {
                out: Some(128),
                bias: true,
            });
            layers.push(LayerSpec::Relu);
            dropout(&mut layers);
        }
    }
    layers.push(LayerSpec::Linear {
        out: None,
        bias: true,
    });
    layers
}

/// The output shape of layer `index`, or an error naming the layer and the mismatch.
pub fn infer_output(
    index: usize,
    layer: &LayerSpec,
    input: SampleShape,
    outputs: usize,
) -> Result<SampleShape> {
    infer_output_at(&format!("model.layers[{index}]"), layer, input, outputs)
}

/// The output shape of the layer at config path `at`.
pub fn infer_output_at(
    at: &str,
    layer: &LayerSpec,
    input: SampleShape,
    outputs: usize,
) -> Result<SampleShape> {
    if let LayerSpec::Frozen { layer } = layer {
        return infer_output_at(at, layer, input, outputs);
    }
    let at = at.to_string();
    let image = |what: &str| match input {
        SampleShape::Image(c, h, w) => Ok((c, h, w)),
        other => Err(KilnError::Config(format!(
            "{at}: `{what}` needs image samples [channels, height, width], but its input is \
             {other:?}"
        ))),
    };
    let spatial = |size: usize, kernel: usize, stride: usize, padding: usize, what: &str| {
        let padded = padding
            .checked_mul(2)
            .and_then(|p| p.checked_add(size))
            .ok_or_else(|| {
                KilnError::Config(format!("{at}: `{what}` padding {padding} is far too large"))
            })?;
        if padded < kernel {
            return Err(KilnError::Config(format!(
                "{at}: `{what}` kernel {kernel} is larger than its (padded) input size {padded}"
            )));
        }
        Ok((padded - kernel) / stride + 1)
    };
    if matches!(input, SampleShape::Tokens(..)) && !matches!(layer, LayerSpec::Embedding { .. }) {
        return Err(KilnError::Config(format!(
            "{at}: token ids must go through an `embedding` layer first, not `{}`",
            layer_kind(layer)
        )));
    }
    Ok(match layer {
        LayerSpec::Linear { out, .. } => SampleShape::Vector(out.unwrap_or(outputs)),
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
        } => {
            let (_, h, w) = image("conv2d")?;
            SampleShape::Image(
                *channels,
                spatial(h, *kernel, *stride, *padding, "conv2d")?,
                spatial(w, *kernel, *stride, *padding, "conv2d")?,
            )
        }
        LayerSpec::MaxPool2d { kernel, stride } => {
            let (c, h, w) = image("max_pool2d")?;
            let stride = stride.unwrap_or(*kernel);
            SampleShape::Image(
                c,
                spatial(h, *kernel, stride, 0, "max_pool2d")?,
                spatial(w, *kernel, stride, 0, "max_pool2d")?,
            )
        }
        LayerSpec::Flatten => SampleShape::Vector(input.len()),
        LayerSpec::Embedding { dim } => match input {
            SampleShape::Tokens(len, _) => SampleShape::Sequence(len, *dim),
            other => {
                return Err(KilnError::Config(format!(
                    "{at}: `embedding` needs token ids (a `text` data source), but its input is \
                     {other:?}"
                )));
            }
        },
        LayerSpec::Gru { hidden, all_steps } | LayerSpec::Lstm { hidden, all_steps } => {
            let (len, _) = sequence(&at, layer, input)?;
            if *all_steps {
                SampleShape::Sequence(len, *hidden)
            } else {
                SampleShape::Vector(*hidden)
            }
        }
        LayerSpec::Conv1d {
            channels,
            kernel,
            padding,
        } => {
            let (len, _) = sequence(&at, layer, input)?;
            SampleShape::Sequence(spatial(len, *kernel, 1, *padding, "conv1d")?, *channels)
        }
        LayerSpec::MeanPool | LayerSpec::MaxPool => {
            SampleShape::Vector(sequence(&at, layer, input)?.1)
        }
        LayerSpec::PositionalEncoding => {
            sequence(&at, layer, input)?;
            input
        }
        LayerSpec::TransformerEncoder { d_model, heads, .. } => {
            let (_, features) = sequence(&at, layer, input)?;
            if d_model.is_some_and(|d| d != features) {
                return Err(KilnError::Config(format!(
                    "{at}: `transformer_encoder` d_model is {}, but its input has {features} \
                     features per step; set d_model to {features} or leave it out",
                    d_model.unwrap_or_default()
                )));
            }
            if *heads == 0 || features % heads != 0 {
                return Err(KilnError::Config(format!(
                    "{at}: `transformer_encoder` heads must divide d_model {features}, got {heads}"
                )));
            }
            input
        }
        LayerSpec::Residual { layers } => {
            let mut shape = input;
            for (j, inner) in layers.iter().enumerate() {
                shape = infer_output_at(&format!("{at}.layers[{j}]"), inner, shape, outputs)?;
            }
            if shape != input {
                return Err(KilnError::Config(format!(
                    "{at}: a `residual` block must give back its input's shape {input:?}, but its \
                     layers end with {shape:?}"
                )));
            }
            input
        }
        LayerSpec::BatchNorm if matches!(input, SampleShape::Sequence(..)) => {
            return Err(KilnError::Config(format!(
                "{at}: `batch_norm` needs vectors or images; use `layer_norm` on sequences"
            )));
        }
        _ => input,
    })
}

/// `[len, features]` of a sequence input, or an error naming the layer and what it got.
fn sequence(at: &str, layer: &LayerSpec, input: SampleShape) -> Result<(usize, usize)> {
    match input {
        SampleShape::Sequence(len, features) => Ok((len, features)),
        other => Err(KilnError::Config(format!(
            "{at}: `{}` needs a sequence [length, features] (e.g. after `embedding`), but its \
             input is {other:?}",
            layer_kind(layer)
        ))),
    }
}

/// The layer's kind as written in configs (`gru`, `mean_pool`).
pub fn layer_kind(layer: &LayerSpec) -> String {
    serde_json::to_value(layer)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
        .unwrap_or_default()
}

/// The number of trainable values a layer holds, given its input shape (`None` on overflow).
pub fn layer_parameters(layer: &LayerSpec, input: SampleShape, outputs: usize) -> Option<u64> {
    let n = |x: usize| x as u64;
    match layer {
        LayerSpec::Frozen { layer } => layer_parameters(layer, input, outputs),
        LayerSpec::Linear { out, bias } => {
            let out = n(out.unwrap_or(outputs));
            n(input.len())
                .checked_mul(out)?
                .checked_add(if *bias { out } else { 0 })
        }
        LayerSpec::Conv2d {
            channels, kernel, ..
        } => {
            let in_channels = n(input.features());
            in_channels
                .checked_mul(n(*channels))?
                .checked_mul(n(*kernel))?
                .checked_mul(n(*kernel))?
                .checked_add(n(*channels))
        }
        LayerSpec::BatchNorm => Some(2 * n(input.features())),
        LayerSpec::LayerNorm => Some(
            2 * match input {
                SampleShape::Image(_, _, w) => n(w),
                other => n(other.features()),
            },
        ),
        LayerSpec::Embedding { dim } => match input {
            SampleShape::Tokens(_, vocab) => n(vocab).checked_mul(n(*dim)),
            _ => Some(0),
        },
        LayerSpec::Gru { hidden, .. } | LayerSpec::Lstm { hidden, .. } => {
            let gates = if matches!(layer, LayerSpec::Gru { .. }) {
                3
            } else {
                4
            };
            let (f, h) = (n(input.features()), n(*hidden));
            let per_gate = f
                .checked_mul(h)?
                .checked_add(h.checked_mul(h)?)?
                .checked_add(2 * h)?;
            per_gate.checked_mul(gates)
        }
        LayerSpec::Conv1d {
            channels, kernel, ..
        } => n(input.features())
            .checked_mul(n(*channels))?
            .checked_mul(n(*kernel))?
            .checked_add(n(*channels)),
        LayerSpec::Residual { layers } => {
            let mut shape = input;
            let mut total: u64 = 0;
            for inner in layers {
                total = total.checked_add(layer_parameters(inner, shape, outputs)?)?;
                shape = infer_output_at("", inner, shape, outputs).ok()?;
            }
            Some(total)
        }
        LayerSpec::TransformerEncoder { layers, ff, .. } => {
            let d = n(input.features());
            let ff = ff.map_or(d.checked_mul(4)?, n);
            let attention = d.checked_mul(d)?.checked_add(d)?.checked_mul(4)?;
            let feed_forward = d.checked_mul(ff)?.checked_mul(2)?.checked_add(ff + d)?;
            attention
                .checked_add(feed_forward)?
                .checked_add(4 * d)?
                .checked_mul(n(*layers))
        }
        _ => Some(0),
    }
}

/// The exact number of values in a shape, or `None` when it overflows.
fn exact_len(shape: SampleShape) -> Option<u64> {
    match shape {
        SampleShape::Vector(n) | SampleShape::Tokens(n, _) => Some(n as u64),
        SampleShape::Image(c, h, w) => (c as u64).checked_mul(h as u64)?.checked_mul(w as u64),
        SampleShape::Sequence(len, f) => (len as u64).checked_mul(f as u64),
    }
}

/// Checks a shape against the tensor-element limit.
fn check_activation(at: &str, shape: SampleShape, max: u64) -> Result<()> {
    match exact_len(shape) {
        Some(len) if len <= max => Ok(()),
        len => Err(Limits::exceeded(
            at,
            format!(
                "{shape:?} per sample ({} values)",
                len.map_or_else(|| "more than 2^64".into(), |l| l.to_string())
            ),
            Limit::TensorElements,
        )),
    }
}

/// Checks the whole stack against the data and the limits (parameters in all, values of
/// every weight tensor and of every sample's activations) and returns every layer's input
/// shape. Nothing is allocated: a config or model header asking for more is refused here.
pub fn infer_shapes(
    layers: &[LayerSpec],
    sample: SampleShape,
    outputs: usize,
) -> Result<Vec<SampleShape>> {
    let limits = Limits::current();
    check_activation("the input samples", sample, limits.max_tensor_elements)?;
    let mut shapes = Vec::with_capacity(layers.len());
    let mut current = sample;
    let mut parameters: u64 = 0;
    for (i, layer) in layers.iter().enumerate() {
        let at = format!("model.layers[{i}]");
        shapes.push(current);
        let next = infer_output(i, layer, current, outputs)?;
        let own = layer_parameters(layer, current, outputs)
            .filter(|p| *p <= limits.max_tensor_elements)
            .ok_or_else(|| {
                Limits::exceeded(
                    &at,
                    format!("a weight tensor for input {current:?}"),
                    Limit::TensorElements,
                )
            })?;
        parameters = parameters.saturating_add(own);
        if parameters > limits.max_parameters {
            return Err(Limits::exceeded(
                &at,
                format!("the network's {parameters} parameters up to this layer"),
                Limit::Parameters,
            ));
        }
        current = next;
        check_activation(&at, current, limits.max_tensor_elements)?;
    }
    let last = current.len();
    if last != outputs {
        return Err(KilnError::Config(format!(
            "model.layers: the network ends with {last} outputs but the data needs {outputs} \
             (the number of classes, or 1 for regression); leave `out` off the last linear layer"
        )));
    }
    Ok(shapes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnn_preset_fits_digits() {
        let model = ModelConfig {
            preset: Some(Preset::Cnn),
            ..ModelConfig::default()
        };
        let layers = resolve_layers(&model);
        let shapes = infer_shapes(&layers, SampleShape::Image(1, 8, 8), 10).unwrap();
        assert_eq!(shapes.len(), layers.len());
    }

    #[test]
    fn conv_on_vectors_is_rejected() {
        let layers = vec![LayerSpec::Conv2d {
            channels: 4,
            kernel: 3,
            stride: 1,
            padding: 0,
        }];
        let e = infer_shapes(&layers, SampleShape::Vector(10), 2).unwrap_err();
        assert!(e.to_string().contains("model.layers[0]"), "{e}");
    }

    #[test]
    fn a_huge_hidden_layer_is_refused_before_anything_is_built() {
        let model = ModelConfig {
            hidden: vec![100_000_000],
            ..ModelConfig::default()
        };
        let e = infer_shapes(&resolve_layers(&model), SampleShape::Vector(64), 10)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.layers[0]") && e.contains("KILN_MAX_"),
            "{e}"
        );
    }

    #[test]
    fn overflowing_image_shapes_are_refused() {
        let e = infer_shapes(
            &[
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    out: None,
                    bias: true,
                },
            ],
            SampleShape::Image(1 << 24, 1 << 24, 1 << 24),
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("KILN_MAX_TENSOR_ELEMENTS"), "{e}");
    }

    #[test]
    fn sequence_shapes_follow_embedding_recurrence_and_pooling() {
        let layers = [
            LayerSpec::Embedding { dim: 8 },
            LayerSpec::Gru {
                hidden: 6,
                all_steps: true,
            },
            LayerSpec::Conv1d {
                channels: 4,
                kernel: 3,
                padding: 0,
            },
            LayerSpec::MeanPool,
            LayerSpec::Linear {
                out: None,
                bias: true,
            },
        ];
        let shapes = infer_shapes(&layers, SampleShape::Tokens(20, 100), 2).unwrap();
        assert_eq!(
            shapes,
            [
                SampleShape::Tokens(20, 100),
                SampleShape::Sequence(20, 8),
                SampleShape::Sequence(20, 6),
                SampleShape::Sequence(18, 4),
                SampleShape::Vector(4),
            ]
        );
        let embedding = layer_parameters(&layers[0], shapes[0], 2);
        assert_eq!(embedding, Some(800));
    }

    #[test]
    fn transformer_widths_and_heads_are_checked() {
        let encoder = |d_model, heads| LayerSpec::TransformerEncoder {
            d_model,
            heads,
            layers: 1,
            dropout: 0.0,
            ff: None,
        };
        let input = SampleShape::Tokens(10, 50);
        let with = |layer| {
            vec![
                LayerSpec::Embedding { dim: 8 },
                layer,
                LayerSpec::MeanPool,
                LayerSpec::Linear {
                    out: None,
                    bias: true,
                },
            ]
        };
        assert!(infer_shapes(&with(encoder(None, 2)), input, 2).is_ok());
        let e = infer_shapes(&with(encoder(Some(16), 2)), input, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.layers[1]") && e.contains("d_model is 16"),
            "{e}"
        );
        let e = infer_shapes(&with(encoder(None, 3)), input, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("heads must divide d_model 8"), "{e}");
        let e = infer_shapes(
            &[LayerSpec::Linear {
                out: None,
                bias: true,
            }],
            input,
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("token ids must go through an `embedding`"),
            "{e}"
        );
    }

    #[test]
    fn residual_blocks_must_keep_their_shape_and_count_their_parameters() {
        let linear = |out| LayerSpec::Linear {
            out: Some(out),
            bias: true,
        };
        let block = |out| LayerSpec::Residual {
            layers: vec![linear(out), LayerSpec::Relu],
        };
        let last = LayerSpec::Linear {
            out: None,
            bias: true,
        };
        let input = SampleShape::Vector(6);
        let shapes = infer_shapes(&[block(6), last.clone()], input, 2).unwrap();
        assert_eq!(shapes, [input, input]);
        assert_eq!(layer_parameters(&block(6), input, 2), Some(42));
        let e = infer_shapes(&[block(5), last], input, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.layers[0]: a `residual` block must give back"),
            "{e}"
        );
        let nested = LayerSpec::Residual {
            layers: vec![LayerSpec::Gru {
                hidden: 3,
                all_steps: false,
            }],
        };
        let e = infer_shapes(&[nested], input, 2).unwrap_err().to_string();
        assert!(
            e.contains("model.layers[0].layers[0]: `gru` needs a sequence"),
            "{e}"
        );
    }

    #[test]
    fn wrong_output_count_is_rejected() {
        let layers = vec![LayerSpec::Linear {
            out: Some(5),
            bias: true,
        }];
        assert!(infer_shapes(&layers, SampleShape::Vector(10), 3).is_err());
    }
}
