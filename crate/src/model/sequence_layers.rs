//! Layers over sequences `[batch, len, features]`: recurrent layers, pooling over time and the
//! pieces of a transformer, with the padding mask their inputs carry.

use burn::module::Module;
use burn::nn::conv::Conv1d;
use burn::nn::gru::Gru;
use burn::nn::lstm::Lstm;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderInput};
use burn::tensor::{Bool, Tensor};

use super::recurrent::{RecurrentRun, gru_run, lstm_run};

/// A batch of sequences and, while it lines up with the tokens, which steps are padding.
pub struct Steps {
    /// `[batch, len, features]`.
    pub x: Tensor<3>,
    /// `[batch, len]`, true at padding.
    pub padding: Option<Tensor<2, Bool>>,
}

/// A GRU returning its last state or every step's.
#[derive(Module, Debug)]
pub struct GruLayer {
    /// burn's GRU.
    pub gru: Gru,
    /// Return every step.
    pub all_steps: bool,
}

/// An LSTM returning its last hidden state or every step's.
#[derive(Module, Debug)]
pub struct LstmLayer {
    /// burn's LSTM.
    pub lstm: Lstm,
    /// Return every step.
    pub all_steps: bool,
}

/// The mean over the non-padding steps.
#[derive(Module, Debug, Default)]
pub struct MeanPool;

/// The maximum over the non-padding steps.
#[derive(Module, Debug, Default)]
pub struct MaxPool;

/// What a recurrent layer gives: a sequence or one vector per sample.
#[allow(clippy::large_enum_variant)] // one move per recurrent layer and forward pass
pub enum Recurrent {
    /// Every step (the padding mask still applies).
    Steps(Steps),
    /// The last step's state `[batch, hidden]` (inputs are left-padded, so it follows the text).
    Last(Tensor<2>),
}

impl GruLayer {
    /// Runs the GRU over `steps`.
    pub fn forward(&self, steps: Steps) -> Recurrent {
        let run = gru_run(&self.gru, steps.x, self.all_steps);
        recurrent_output(run, steps.padding)
    }
}

impl LstmLayer {
    /// Runs the LSTM over `steps`.
    pub fn forward(&self, steps: Steps) -> Recurrent {
        let run = lstm_run(&self.lstm, steps.x, self.all_steps);
        recurrent_output(run, steps.padding)
    }
}

fn recurrent_output(run: RecurrentRun, padding: Option<Tensor<2, Bool>>) -> Recurrent {
    match run.steps {
        Some(x) => Recurrent::Steps(Steps { x, padding }),
        None => Recurrent::Last(run.last),
    }
}

impl MeanPool {
    /// `[batch, features]`: the mean of the non-padding steps.
    pub fn forward(&self, steps: Steps) -> Tensor<2> {
        let [batch, _, features] = steps.x.dims();
        let pooled = match steps.padding {
            None => steps.x.mean_dim(1),
            Some(padding) => {
                let keep = padding.bool_not().float().unsqueeze_dim::<3>(2);
                let count = keep.clone().sum_dim(1).clamp_min(1.0);
                (steps.x * keep).sum_dim(1) / count
            }
        };
        pooled.reshape([batch, features])
    }
}

impl MaxPool {
    /// `[batch, features]`: the maximum of the non-padding steps.
    pub fn forward(&self, steps: Steps) -> Tensor<2> {
        let [batch, len, features] = steps.x.dims();
        let x = match steps.padding {
            None => steps.x,
            Some(padding) => {
                let mask = padding.unsqueeze_dim::<3>(2).expand([batch, len, features]);
                steps.x.mask_fill(mask, -1.0e4)
            }
        };
        x.max_dim(1).reshape([batch, features])
    }
}

/// A 1-D convolution over time; the output no longer lines up with the tokens.
pub fn conv1d_forward(conv: &Conv1d, steps: Steps) -> Steps {
    let x = conv.forward(steps.x.swap_dims(1, 2)).swap_dims(1, 2);
    Steps { x, padding: None }
}

/// burn's transformer encoder with the padding masked out of attention.
pub fn transformer_forward(encoder: &TransformerEncoder, steps: Steps) -> Steps {
    let mut input = TransformerEncoderInput::new(steps.x);
    if let Some(padding) = steps.padding.clone() {
        input = input.mask_pad(padding);
    }
    Steps {
        x: encoder.forward(input),
        padding: steps.padding,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LayerSpec;
    use crate::model::Network;
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
            LayerSpec::Embedding { dim: 4 },
            LayerSpec::MeanPool,
            LayerSpec::Linear {
                out: None,
                bias: true,
            },
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
            LayerSpec::Embedding { dim: 4 },
            LayerSpec::MaxPool,
            LayerSpec::Linear {
                out: None,
                bias: true,
            },
        ]);
        assert!(close(
            &run(&pooled, [0.0, 0.0, 5.0, 6.0]),
            &run(&pooled, [6.0, 5.0, 6.0, 5.0])
        ));
        for recurrent in [
            LayerSpec::Gru {
                hidden: 5,
                all_steps: false,
            },
            LayerSpec::Lstm {
                hidden: 5,
                all_steps: false,
            },
        ] {
            let net = network(&[
                LayerSpec::Embedding { dim: 4 },
                recurrent,
                LayerSpec::Linear {
                    out: None,
                    bias: true,
                },
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
            LayerSpec::Embedding { dim: 8 },
            LayerSpec::PositionalEncoding,
            LayerSpec::Residual {
                layers: vec![LayerSpec::LayerNorm, LayerSpec::Gelu],
            },
            LayerSpec::TransformerEncoder {
                d_model: None,
                heads: 2,
                layers: 1,
                dropout: 0.0,
                ff: Some(16),
            },
            LayerSpec::Conv1d {
                channels: 4,
                kernel: 3,
                padding: 1,
            },
            LayerSpec::Relu,
            LayerSpec::MeanPool,
            LayerSpec::Linear {
                out: None,
                bias: true,
            },
        ]);
        let out = run(&net.valid(), [0.0, 2.0, 5.0, 6.0]);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
