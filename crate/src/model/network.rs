//! The network: a sequence of burn layers built from the config's layer list.

use crate::config::LayerSpec;
use crate::error::Result;
use crate::layers::{Activations, InputLayout, Layer, SampleShape, infer_shapes};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

/// A feed-forward network over vector, image or token samples.
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
            .map(|(spec, input)| spec.kind().build(input, outputs, device))
            .collect();
        Ok(Self {
            layers,
            input_shape: input_shape.to_vec(),
            token_vocab: vocab.unwrap_or(0),
        })
    }

    /// Whether the first layer that cares reads image batches; when it does not (an MLP over
    /// images), the batch stays flat and skips a reshape and a flatten every step.
    fn starts_with_image_layer(&self) -> bool {
        self.layers
            .iter()
            .map(|layer| layer.built().input_layout())
            .find(|layout| *layout != InputLayout::Any)
            == Some(InputLayout::Images)
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
            x = layer.built().forward(x);
        }
        x.into_vectors()
    }
}
#[cfg(test)]
mod tests {
    use super::Network;
    use crate::config::LayerSpec;
    use crate::layers::{
        Conv1dSpec, EmbeddingSpec, GeluSpec, GruSpec, LayerNormSpec, LinearSpec, LstmSpec,
        MaxPoolSpec, MeanPoolSpec, PositionalEncodingSpec, ReluSpec, ResidualSpec,
        TransformerEncoderSpec,
    };
    use burn::module::Module;
    use burn::tensor::{Tensor, TensorData};

    fn run(network: &Network, ids: [f32; 4]) -> Vec<f32> {
        let device = crate::backend::cpu_device();
        let x = Tensor::<2>::from_data(TensorData::new(ids.to_vec(), [1, 4]), &device);
        network
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 outputs")
    }

    fn network(layers: &[LayerSpec]) -> Network {
        let device = crate::backend::cpu_device();
        device.seed(3);
        Network::build(layers, &[4], Some(10), 3, &device).expect("valid network")
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn mean_pool_averages_only_the_tokens() {
        let net = network(&[
            EmbeddingSpec { dim: 4 }.into(),
            MeanPoolSpec {}.into(),
            LinearSpec::new(None).into(),
        ]);
        // [pad, pad, 5, 6] pools like [5, 6, 5, 6]: padding is left out of the mean.
        assert!(close(
            &run(&net, [0.0, 0.0, 5.0, 6.0]),
            &run(&net, [5.0, 6.0, 5.0, 6.0])
        ));
        assert!(!close(
            &run(&net, [0.0, 0.0, 5.0, 6.0]),
            &run(&net, [0.0, 0.0, 5.0, 7.0])
        ));
    }

    #[test]
    fn max_pool_skips_padding_and_recurrent_layers_run() {
        let pooled = network(&[
            EmbeddingSpec { dim: 4 }.into(),
            MaxPoolSpec {}.into(),
            LinearSpec::new(None).into(),
        ]);
        assert!(close(
            &run(&pooled, [0.0, 0.0, 5.0, 6.0]),
            &run(&pooled, [6.0, 5.0, 6.0, 5.0])
        ));
        for recurrent in [
            LayerSpec::from(GruSpec {
                hidden: 5,
                all_steps: false,
            }),
            LayerSpec::from(LstmSpec {
                hidden: 5,
                all_steps: false,
            }),
        ] {
            let net = network(&[
                EmbeddingSpec { dim: 4 }.into(),
                recurrent,
                LinearSpec::new(None).into(),
            ]);
            let out = run(&net, [0.0, 1.0, 5.0, 6.0]);
            assert_eq!(out.len(), 3);
            // Order matters to a recurrent layer.
            assert!(!close(&out, &run(&net, [0.0, 1.0, 6.0, 5.0])));
        }
    }

    #[test]
    fn a_transformer_stack_runs_with_its_padding_masked() {
        let net = network(&[
            EmbeddingSpec { dim: 8 }.into(),
            PositionalEncodingSpec {}.into(),
            ResidualSpec {
                layers: vec![LayerNormSpec {}.into(), GeluSpec {}.into()],
            }
            .into(),
            TransformerEncoderSpec {
                d_model: None,
                heads: 2,
                layers: 1,
                dropout: 0.0,
                ff: Some(16),
            }
            .into(),
            Conv1dSpec {
                channels: 4,
                kernel: 3,
                padding: 1,
            }
            .into(),
            ReluSpec {}.into(),
            MeanPoolSpec {}.into(),
            LinearSpec::new(None).into(),
        ]);
        let out = run(&net.valid(), [0.0, 2.0, 5.0, 6.0]);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
