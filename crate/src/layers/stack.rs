//! A stack of layers checked against the data and the limits before anything is built: every
//! layer's input shape, the parameters in all, the size of every weight and activation.

use super::registry::LayerSpec;
use super::sample_shape::SampleShape;
use crate::error::{KilnError, Result};
use crate::limits::{Limit, Limits};

/// Checks a shape against the tensor-element limit.
fn check_activation(at: &str, shape: SampleShape, max: u64) -> Result<()> {
    match shape.exact_len() {
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
        let next = layer.output(&at, current, outputs)?;
        let own = layer
            .kind()
            .parameters(current, outputs)
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
    use crate::layers::{
        Conv1dSpec, Conv2dSpec, EmbeddingSpec, FlattenSpec, GruSpec, LinearSpec, MeanPoolSpec,
        ReluSpec, ResidualSpec, TransformerEncoderSpec,
    };

    fn output_layer() -> LayerSpec {
        LinearSpec::new(None).into()
    }

    #[test]
    fn conv_on_vectors_is_rejected() {
        let conv = Conv2dSpec {
            channels: 4,
            kernel: 3,
            stride: 1,
            padding: 0,
        };
        let e = infer_shapes(&[conv.into()], SampleShape::Vector(10), 2).unwrap_err();
        assert!(e.to_string().contains("model.layers[0]"), "{e}");
    }

    #[test]
    fn a_zero_stride_or_kernel_is_refused_not_divided_by() {
        for (kernel, stride) in [(0, 1), (3, 0)] {
            let conv = Conv2dSpec {
                channels: 4,
                kernel,
                stride,
                padding: 1,
            };
            let e = infer_shapes(&[conv.into()], SampleShape::Image(1, 8, 8), 2)
                .unwrap_err()
                .to_string();
            assert!(e.contains("kernel and stride must be >= 1"), "{e}");
        }
    }

    #[test]
    fn overflowing_image_shapes_are_refused() {
        let e = infer_shapes(
            &[FlattenSpec {}.into(), output_layer()],
            SampleShape::Image(1 << 24, 1 << 24, 1 << 24),
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("KILN_MAX_TENSOR_ELEMENTS"), "{e}");
    }

    #[test]
    fn sequence_shapes_follow_embedding_recurrence_and_pooling() {
        let layers: [LayerSpec; 5] = [
            EmbeddingSpec { dim: 8 }.into(),
            GruSpec {
                hidden: 6,
                all_steps: true,
            }
            .into(),
            Conv1dSpec {
                channels: 4,
                kernel: 3,
                padding: 0,
            }
            .into(),
            MeanPoolSpec {}.into(),
            output_layer(),
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
        assert_eq!(layers[0].kind().parameters(shapes[0], 2), Some(800));
        // 3 gates × (8·6 input + 6·6 hidden + 2·6 biases).
        assert_eq!(layers[1].kind().parameters(shapes[1], 2), Some(288));
    }

    #[test]
    fn transformer_widths_and_heads_are_checked() {
        let encoder = |d_model, heads| {
            LayerSpec::from(TransformerEncoderSpec {
                d_model,
                heads,
                layers: 1,
                dropout: 0.0,
                ff: None,
            })
        };
        let input = SampleShape::Tokens(10, 50);
        let with = |layer| {
            vec![
                EmbeddingSpec { dim: 8 }.into(),
                layer,
                MeanPoolSpec {}.into(),
                output_layer(),
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
        let e = infer_shapes(&[output_layer()], input, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("token ids must go through an `embedding`"),
            "{e}"
        );
    }

    #[test]
    fn residual_blocks_must_keep_their_shape_and_count_their_parameters() {
        let block = |out| {
            LayerSpec::from(ResidualSpec {
                layers: vec![LinearSpec::new(Some(out)).into(), ReluSpec {}.into()],
            })
        };
        let input = SampleShape::Vector(6);
        let shapes = infer_shapes(&[block(6), output_layer()], input, 2).unwrap();
        assert_eq!(shapes, [input, input]);
        assert_eq!(block(6).kind().parameters(input, 2), Some(42));
        let e = infer_shapes(&[block(5), output_layer()], input, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.layers[0]: a `residual` block must give back"),
            "{e}"
        );
        let nested = LayerSpec::from(ResidualSpec {
            layers: vec![
                GruSpec {
                    hidden: 3,
                    all_steps: false,
                }
                .into(),
            ],
        });
        let e = infer_shapes(&[nested], input, 2).unwrap_err().to_string();
        assert!(
            e.contains("model.layers[0].layers[0]: `gru` needs a sequence"),
            "{e}"
        );
    }

    #[test]
    fn wrong_output_count_is_rejected() {
        let layers = [LayerSpec::from(LinearSpec::new(Some(5)))];
        assert!(infer_shapes(&layers, SampleShape::Vector(10), 3).is_err());
    }
}
