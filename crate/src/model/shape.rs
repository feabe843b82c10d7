//! Resolving presets into layers and inferring every layer's input size from the data.

use crate::config::{LayerSpec, ModelConfig, Preset};
use crate::error::{KilnError, Result};

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

    /// Number of values.
    pub fn len(self) -> usize {
        match self {
            Self::Vector(n) => n,
            Self::Image(c, h, w) => c * h * w,
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
        let padded = size + 2 * padding;
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

/// Checks the whole stack against the data and returns every layer's input shape.
pub fn infer_shapes(
    layers: &[LayerSpec],
    sample: SampleShape,
    outputs: usize,
) -> Result<Vec<SampleShape>> {
    let mut shapes = Vec::with_capacity(layers.len());
    let mut current = sample;
    for (i, layer) in layers.iter().enumerate() {
        shapes.push(current);
        current = infer_output(i, layer, current, outputs)?;
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
    fn wrong_output_count_is_rejected() {
        let layers = vec![LayerSpec::Linear {
            out: Some(5),
            bias: true,
        }];
        assert!(infer_shapes(&layers, SampleShape::Vector(10), 3).is_err());
    }
}
