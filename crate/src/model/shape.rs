//! Resolving presets into layers and inferring every layer's input size from the data.

use crate::config::{LayerSpec, ModelConfig, Preset};
use crate::error::{KilnError, Result};
use crate::limits::{Limit, Limits};

/// The shape of one sample flowing between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleShape {
    /// A feature vector.
    Vector(usize),
    /// An image `[channels, height, width]`.
    Image(usize, usize, usize),
}

impl SampleShape {
    /// The shape of a data set's samples: rank 1 is a vector, rank 3 an image.
    pub fn from_dims(dims: &[usize]) -> Result<Self> {
        match dims {
            [n] => Ok(Self::Vector(*n)),
            [c, h, w] => Ok(Self::Image(*c, *h, *w)),
            other => Err(KilnError::Data(format!(
                "samples must be vectors [features] or images [channels, height, width], got \
                 shape {other:?}"
            ))),
        }
    }

    /// Number of values (saturating: shapes past the tensor limit are refused by
    /// [`infer_shapes`] before anything is built).
    pub fn len(self) -> usize {
        match self {
            Self::Vector(n) => n,
            Self::Image(c, h, w) => c.saturating_mul(h).saturating_mul(w),
        }
    }

    /// Whether the shape holds no values.
    pub fn is_empty(self) -> bool {
        self.len() == 0
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

/// The output shape of one layer, or an error naming the layer and the mismatch.
pub fn infer_output(
    index: usize,
    layer: &LayerSpec,
    input: SampleShape,
    outputs: usize,
) -> Result<SampleShape> {
    let at = format!("model.layers[{index}]");
    let image = |what: &str| match input {
        SampleShape::Image(c, h, w) => Ok((c, h, w)),
        SampleShape::Vector(n) => Err(KilnError::Config(format!(
            "{at}: `{what}` needs image samples [channels, height, width], but its input is a \
             vector of {n} features"
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
        _ => input,
    })
}

/// The number of trainable values a layer holds, given its input shape (`None` on overflow).
pub fn layer_parameters(layer: &LayerSpec, input: SampleShape, outputs: usize) -> Option<u64> {
    let n = |x: usize| x as u64;
    match layer {
        LayerSpec::Linear { out, bias } => {
            let out = n(out.unwrap_or(outputs));
            n(input.len())
                .checked_mul(out)?
                .checked_add(if *bias { out } else { 0 })
        }
        LayerSpec::Conv2d {
            channels, kernel, ..
        } => {
            let in_channels = match input {
                SampleShape::Image(c, _, _) => n(c),
                SampleShape::Vector(v) => n(v),
            };
            in_channels
                .checked_mul(n(*channels))?
                .checked_mul(n(*kernel))?
                .checked_mul(n(*kernel))?
                .checked_add(n(*channels))
        }
        LayerSpec::BatchNorm => Some(
            2 * match input {
                SampleShape::Image(c, _, _) => n(c),
                SampleShape::Vector(v) => n(v),
            },
        ),
        LayerSpec::LayerNorm => Some(
            2 * match input {
                SampleShape::Image(_, _, w) => n(w),
                SampleShape::Vector(v) => n(v),
            },
        ),
        _ => Some(0),
    }
}

/// The exact number of values in a shape, or `None` when it overflows.
fn exact_len(shape: SampleShape) -> Option<u64> {
    match shape {
        SampleShape::Vector(n) => Some(n as u64),
        SampleShape::Image(c, h, w) => (c as u64).checked_mul(h as u64)?.checked_mul(w as u64),
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
        current = infer_output(i, layer, current, outputs)?;
        check_activation(&at, current, limits.max_tensor_elements)?;
    }
    let last = match current {
        SampleShape::Vector(n) => n,
        image => image.len(),
    };
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
    fn wrong_output_count_is_rejected() {
        let layers = vec![LayerSpec::Linear {
            out: Some(5),
            bias: true,
        }];
        assert!(infer_shapes(&layers, SampleShape::Vector(10), 3).is_err());
    }
}
