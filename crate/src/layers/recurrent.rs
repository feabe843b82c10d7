//! `gru` and `lstm`: recurrent layers over a sequence `[len, features]`, giving their last
//! state `[hidden]` or every step's `[len, hidden]` (the forward pass is `recurrent_run`'s).

use super::activations::{Activations, Steps};
use super::kind::{LayerForward, LayerKind};
use super::recurrent_run::{RecurrentRun, gru_run, lstm_run};
use super::registry::Layer;
use super::sample_shape::{SampleShape, wide};
use crate::error::Result;
use crate::field_checks::at_least_one;
use burn::module::Module;
use burn::nn::gru::{Gru, GruConfig};
use burn::nn::lstm::{Lstm, LstmConfig};
use burn::tensor::{Bool, Device, Tensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[len, hidden]` when every step is kept, else `[hidden]`.
fn output(
    at: &str,
    kind: &str,
    input: SampleShape,
    hidden: usize,
    all_steps: bool,
) -> Result<SampleShape> {
    let (len, _) = input.sequence(at, kind)?;
    Ok(if all_steps {
        SampleShape::Sequence(len, hidden)
    } else {
        SampleShape::Vector(hidden)
    })
}

/// The parameters of a layer of `gates` gates, each with an input and a hidden product and
/// their biases.
fn parameters(input: SampleShape, hidden: usize, gates: u64) -> Option<u64> {
    let (f, h) = (wide(input.features()), wide(hidden));
    let per_gate = f
        .checked_mul(h)?
        .checked_add(h.checked_mul(h)?)?
        .checked_add(h.checked_mul(2)?)?;
    per_gate.checked_mul(gates)
}

/// Every step (the padding mask still applies), or the last step's state (inputs are
/// left-padded, so it follows the text).
fn activations(run: RecurrentRun, padding: Option<Tensor<2, Bool>>) -> Activations {
    match run.steps {
        Some(x) => Activations::Sequences(Steps { x, padding }),
        None => Activations::Vectors(run.last),
    }
}

/// Declares a recurrent kind: its config form, its built layer and their traits.
macro_rules! recurrent_kind {
    (
        $name:literal, $spec:ident, $layer:ident { $field:ident: $cell:ty },
        $config:ident, $run:ident, $gates:literal, $variant:ident
    ) => {
        #[doc = concat!("The config form of a `", $name, "` layer.")]
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $spec {
            /// Hidden state size.
            pub hidden: usize,
            /// Return every step instead of the last.
            #[serde(default)]
            pub all_steps: bool,
        }

        #[doc = concat!("A `", $name, "` returning its last state or every step's.")]
        #[derive(Module, Debug)]
        pub struct $layer {
            /// burn's cell and its parameters.
            pub $field: $cell,
            /// Return every step.
            pub all_steps: bool,
        }

        impl LayerKind for $spec {
            fn validate(&self, at: &str) -> Result<()> {
                at_least_one(&format!("{at}.hidden"), self.hidden)
            }

            fn output(&self, at: &str, input: SampleShape, _outputs: usize) -> Result<SampleShape> {
                output(at, $name, input, self.hidden, self.all_steps)
            }

            fn parameters(&self, input: SampleShape, _outputs: usize) -> Option<u64> {
                parameters(input, self.hidden, $gates)
            }

            fn build(&self, input: SampleShape, _outputs: usize, device: &Device) -> Layer {
                Layer::$variant($layer {
                    $field: $config::new(input.features(), self.hidden, true).init(device),
                    all_steps: self.all_steps,
                })
            }
        }

        impl LayerForward for $layer {
            fn forward(&self, x: Activations) -> Activations {
                let Steps { x, padding } = x.into_steps();
                activations($run(&self.$field, x, self.all_steps), padding)
            }
        }
    };
}

recurrent_kind!(
    "gru",
    GruSpec,
    GruLayer { gru: Gru },
    GruConfig,
    gru_run,
    3,
    Gru
);
recurrent_kind!(
    "lstm",
    LstmSpec,
    LstmLayer { lstm: Lstm },
    LstmConfig,
    lstm_run,
    4,
    Lstm
);
