//! Kiln's forward pass over burn's GRU and LSTM parameters.
//!
//! burn's own forward computes six (GRU) or eight (LSTM) small matrix products per time step,
//! slices each step out of the input and writes each step's state back into a `[batch, len,
//! hidden]` tensor with a slice assignment. In autodiff a slice's gradient is a zero tensor the
//! size of what it was sliced from, so a sequence of `len` steps costs `len` full-size tensors in
//! the backward pass twice over. Here the input part of every gate of every step is one product
//! (`[len·batch, in] · [in, gates·hidden]`), each step adds one hidden product for all its gates,
//! the steps are split off in halves (`len·log2(len)` in the backward pass) and the states are
//! joined once at the end, only when every step is wanted. The parameters, and so saved models
//! and imported weights, are burn's unchanged; every form of burn's layers is covered (GRU reset
//! before or after the product, coupled, reversed and time-first LSTMs, clipping), so burn's
//! forward is not compiled in.

use burn::nn::gru::Gru;
use burn::nn::lstm::Lstm;
use burn::nn::{GateController, Linear};
use burn::tensor::Tensor;

/// What a recurrent layer computed: the final state, and every step's when asked for.
pub struct RecurrentRun {
    /// `[batch, hidden]`: the state after the last step processed (the first one for a reversed
    /// LSTM).
    pub last: Tensor<2>,
    /// The state after every step, at the step's place, in the input's layout (`[batch, len,
    /// hidden]`, or `[len, batch, hidden]` for a time-first LSTM), when asked for.
    pub steps: Option<Tensor<3>>,
}

/// The GRU over `x` (`[batch, len, features]`), as burn's `Gru::forward` computes it.
pub fn gru_run(gru: &Gru, x: Tensor<3>, keep_steps: bool) -> RecurrentRun {
    let [batch, _, _] = x.dims();
    let hidden = gru.d_hidden;
    let gates = StackedGates::of(&[&gru.update_gate, &gru.reset_gate, &gru.new_gate]);
    let inputs = gates.input.steps(x.swap_dims(0, 1));
    // Without `reset_after` the reset gate scales the state before the new gate's product, so
    // that product is one of its own (the hidden weights split once, for every step).
    let reset_before = (!gru.reset_after).then(|| gates.hidden.split_columns(2 * hidden));
    let mut state = Tensor::<2>::zeros([batch, hidden], &gates.hidden.weight.device());
    let mut states = Vec::with_capacity(if keep_steps { inputs.len() } else { 0 });
    for input in inputs {
        let from_state = match &reset_before {
            None => gates.hidden.apply(state.clone()),
            Some((update_reset, _)) => update_reset.apply(state.clone()),
        };
        let update_reset_values = gru.gate_activation.forward(
            input.clone().narrow(1, 0, 2 * hidden) + from_state.clone().narrow(1, 0, 2 * hidden),
        );
        let update = update_reset_values.clone().narrow(1, 0, hidden);
        let reset = update_reset_values.narrow(1, hidden, hidden);
        let new_from_state = match &reset_before {
            None => reset * from_state.narrow(1, 2 * hidden, hidden),
            Some((_, new)) => new.apply(reset * state.clone()),
        };
        let candidate = gru
            .hidden_activation
            .forward(input.narrow(1, 2 * hidden, hidden) + new_from_state);
        // (1 - z)·n + z·h, written as n + z·(h - n).
        state = candidate.clone() + update * (state - candidate);
        if let Some(clip) = gru.clip {
            state = state.clamp(-clip, clip);
        }
        if keep_steps {
            states.push(state.clone());
        }
    }
    finish(state, states, keep_steps.then_some(1))
}

/// The LSTM over `x` (`[batch, len, features]`, or `[len, batch, features]` when the LSTM is
/// not batch-first), as burn's `Lstm::forward` computes it: the final and every step's hidden
/// state.
pub fn lstm_run(lstm: &Lstm, x: Tensor<3>, keep_steps: bool) -> RecurrentRun {
    let hidden = lstm.d_hidden;
    // The gates in the order input, forget (absent when coupled to the input gate), output,
    // cell; the first `sigmoid_gates` go through the gate activation.
    let mut controllers = vec![&lstm.input_gate];
    controllers.extend(lstm.forget_gate.as_ref().filter(|_| !lstm.input_forget));
    let coupled = controllers.len() == 1;
    controllers.extend([&lstm.output_gate, &lstm.cell_gate]);
    let sigmoid_gates = controllers.len() - 1;
    let gates = StackedGates::of(&controllers);

    let time_first = if lstm.batch_first {
        x.swap_dims(0, 1)
    } else {
        x
    };
    let [_, batch, _] = time_first.dims();
    let mut inputs = gates.input.steps(time_first);
    if lstm.reverse {
        inputs.reverse();
    }
    let device = gates.hidden.weight.device();
    let mut state = Tensor::<2>::zeros([batch, hidden], &device);
    let mut cell = Tensor::<2>::zeros([batch, hidden], &device);
    let mut states = Vec::with_capacity(if keep_steps { inputs.len() } else { 0 });
    for input in inputs {
        let sums = input + gates.hidden.apply(state);
        let gate_values =
            lstm.gate_activation
                .forward(sums.clone().narrow(1, 0, sigmoid_gates * hidden));
        let candidate =
            lstm.cell_activation
                .forward(sums.narrow(1, sigmoid_gates * hidden, hidden));
        let gate = |index: usize| gate_values.clone().narrow(1, index * hidden, hidden);
        let input_gate = gate(0);
        let (forget, output) = if coupled {
            (input_gate.clone().neg().add_scalar(1.0), gate(1))
        } else {
            (gate(1), gate(2))
        };
        cell = forget * cell + input_gate * candidate;
        if let Some(clip) = lstm.clip {
            cell = cell.clamp(-clip, clip);
        }
        state = output * lstm.hidden_activation.forward(cell.clone());
        if keep_steps {
            states.push(state.clone());
        }
    }
    if lstm.reverse {
        states.reverse();
    }
    let time_dim = if lstm.batch_first { 1 } else { 0 };
    finish(state, states, keep_steps.then_some(time_dim))
}

/// `x · weight + bias` for `[rows, in]` inputs.
struct Affine {
    /// `[in, out]`.
    weight: Tensor<2>,
    /// `[out]`, when there is a bias.
    bias: Option<Tensor<1>>,
}

impl Affine {
    /// The linear layers side by side: their outputs one after the other.
    fn side_by_side(layers: &[&Linear]) -> Self {
        Self {
            weight: Tensor::cat(layers.iter().map(|l| l.weight.val()).collect(), 1),
            bias: side_by_side_biases(layers),
        }
    }

    fn apply(&self, x: Tensor<2>) -> Tensor<2> {
        let product = x.matmul(self.weight.clone());
        match &self.bias {
            Some(bias) => product + bias.clone().unsqueeze_dim(0),
            None => product,
        }
    }

    /// The outputs before `at`, and those from `at` on.
    fn split_columns(&self, at: usize) -> (Self, Self) {
        let [_, width] = self.weight.dims();
        let part = |start: usize, len: usize| Self {
            weight: self.weight.clone().narrow(1, start, len),
            bias: self.bias.clone().map(|b| b.narrow(0, start, len)),
        };
        (part(0, at), part(at, width - at))
    }

    /// Every step's output for `[len, batch, in]`, `[batch, out]` each, in time order.
    fn steps(&self, time_first: Tensor<3>) -> Vec<Tensor<2>> {
        let [len, batch, features] = time_first.dims();
        let [_, width] = self.weight.dims();
        let all = self.apply(time_first.reshape([len * batch, features]));
        let mut steps = Vec::with_capacity(len);
        split_in_halves(all.reshape([len, batch, width]), &mut steps);
        steps
    }
}

/// The gates' input and hidden transforms side by side, in the order given.
struct StackedGates {
    /// `[in, gates·hidden]`.
    input: Affine,
    /// `[hidden, gates·hidden]`.
    hidden: Affine,
}

impl StackedGates {
    fn of(gates: &[&GateController]) -> Self {
        let input: Vec<&Linear> = gates.iter().map(|g| &g.input_transform).collect();
        let hidden: Vec<&Linear> = gates.iter().map(|g| &g.hidden_transform).collect();
        Self {
            input: Affine::side_by_side(&input),
            hidden: Affine::side_by_side(&hidden),
        }
    }
}

/// The biases side by side; a layer without one (never mixed in burn's layers) counts as zeros.
fn side_by_side_biases(layers: &[&Linear]) -> Option<Tensor<1>> {
    if layers.iter().all(|l| l.bias.is_none()) {
        return None;
    }
    let parts = layers
        .iter()
        .map(|l| match &l.bias {
            Some(bias) => bias.val(),
            None => {
                let [_, outputs] = l.weight.dims();
                Tensor::zeros([outputs], &l.weight.device())
            }
        })
        .collect();
    Some(Tensor::cat(parts, 0))
}

/// The `len` steps of `[len, batch, width]` as `[batch, width]` tensors, halving recursively so
/// that the slices' gradients add up to `len·log2(len)` elements per column, not `len²`.
fn split_in_halves(sequence: Tensor<3>, steps: &mut Vec<Tensor<2>>) {
    let [len, batch, width] = sequence.dims();
    match len {
        0 => {}
        1 => steps.push(sequence.reshape([batch, width])),
        _ => {
            let half = len / 2;
            split_in_halves(sequence.clone().narrow(0, 0, half), steps);
            split_in_halves(sequence.narrow(0, half, len - half), steps);
        }
    }
}

/// The run, with the states stacked along `time_dim` when every step is wanted.
fn finish(last: Tensor<2>, states: Vec<Tensor<2>>, time_dim: Option<usize>) -> RecurrentRun {
    let steps = time_dim.map(|dim| {
        if states.is_empty() {
            let [batch, hidden] = last.dims();
            let shape = if dim == 0 {
                [0, batch, hidden]
            } else {
                [batch, 0, hidden]
            };
            Tensor::zeros(shape, &last.device())
        } else {
            Tensor::stack(states, dim)
        }
    });
    RecurrentRun { last, steps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::nn::gru::GruConfig;
    use burn::nn::lstm::LstmConfig;
    use burn::tensor::{Device, TensorData};

    fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().iter::<f32>().collect()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 + 1e-4 * y.abs(),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// `[batch, len, features]` of varied values.
    fn input(device: &Device, batch: usize, len: usize, features: usize) -> Tensor<3> {
        let data: Vec<f32> = (0..batch * len * features)
            .map(|i| (i as f32 * 0.61).sin() * 1.5)
            .collect();
        Tensor::from_data(TensorData::new(data, [batch, len, features]), device)
    }

    /// Every parameter's gradient, in the module's order.
    struct GradientsOf<'a> {
        grads: &'a burn::tensor::Gradients,
        collected: Vec<Vec<f32>>,
    }

    impl ModuleVisitor for GradientsOf<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = param
                .grad(self.grads)
                .expect("every parameter has a gradient");
            self.collected
                .push(grad.into_data().iter::<f32>().collect());
        }
    }

    fn gradients<M: Module>(module: &M, loss: Tensor<1>) -> Vec<Vec<f32>> {
        let grads = loss.backward();
        let mut visitor = GradientsOf {
            grads: &grads,
            collected: Vec::new(),
        };
        module.visit(&mut visitor);
        visitor.collected
    }

    /// A loss that weighs every output differently, so that a swapped gradient shows.
    fn weighted_sum<const D: usize>(out: Tensor<D>) -> Tensor<1> {
        let n = out.shape().num_elements();
        let weights: Vec<f32> = (0..n).map(|i| 1.0 + (i as f32 * 0.37).cos()).collect();
        let weights = Tensor::<1>::from_data(TensorData::new(weights, [n]), &out.device());
        (out.reshape([n]) * weights).sum()
    }

    /// Where burn's output holds the final state: the last step, or the first for a reversed
    /// LSTM.
    #[derive(Clone, Copy)]
    enum FinalAt {
        LastStep,
        FirstStep,
    }

    /// Checks `ours` against burn's forward (`[batch, len, hidden]` either way) on sequences of
    /// several lengths: every state, the final one, and the parameters' gradients of both.
    fn check_against_burn(
        what: &str,
        ours: impl Fn(Tensor<3>, bool) -> RecurrentRun,
        burn_all_steps: impl Fn(Tensor<3>) -> Tensor<3>,
        final_at: FinalAt,
        module_grads: impl Fn(Tensor<1>) -> Vec<Vec<f32>>,
        device: &Device,
    ) {
        let final_of = |all: Tensor<3>| {
            let [batch, len, hidden] = all.dims();
            let at = match final_at {
                FinalAt::LastStep => len - 1,
                FinalAt::FirstStep => 0,
            };
            all.narrow(1, at, 1).reshape([batch, hidden])
        };
        // A backward pass consumes its graph, so every gradient comes from a fresh forward pass.
        for (batch, len) in [(3, 1), (2, 7), (4, 16)] {
            let x = || input(device, batch, len, 5);
            let reference = burn_all_steps(x());

            let run = ours(x(), true);
            let steps = run.steps.expect("every step was asked for");
            assert_close(what, &values(steps), &values(reference.clone()));
            assert_close(what, &values(run.last), &values(final_of(reference)));

            let steps = ours(x(), true).steps.expect("every step was asked for");
            assert_close(
                &format!("{what} step gradients (batch {batch}, len {len})"),
                &module_grads(weighted_sum(steps)).concat(),
                &module_grads(weighted_sum(burn_all_steps(x()))).concat(),
            );

            let run = ours(x(), false);
            assert!(run.steps.is_none());
            assert_close(
                &format!("{what} final-state gradients (batch {batch}, len {len})"),
                &module_grads(weighted_sum(run.last)).concat(),
                &module_grads(weighted_sum(final_of(burn_all_steps(x())))).concat(),
            );
        }
    }

    fn check_gru(what: &str, config: GruConfig, seed: u64) {
        let device = Device::flex().autodiff();
        device.seed(seed);
        let gru = config.init(&device);
        check_against_burn(
            what,
            |x, keep| gru_run(&gru, x, keep),
            |x| gru.forward(x, None),
            FinalAt::LastStep,
            |loss| gradients(&gru, loss),
            &device,
        );
    }

    fn check_lstm(what: &str, config: LstmConfig, seed: u64) {
        let device = Device::flex().autodiff();
        device.seed(seed);
        let lstm = config.init(&device);
        // Both sides see and give `[batch, len, …]`; a time-first LSTM gets `[len, batch, …]`.
        let to_layout = |x: Tensor<3>| {
            if lstm.batch_first {
                x
            } else {
                x.swap_dims(0, 1)
            }
        };
        let final_at = if lstm.reverse {
            FinalAt::FirstStep
        } else {
            FinalAt::LastStep
        };
        check_against_burn(
            what,
            |x, keep| {
                let run = lstm_run(&lstm, to_layout(x), keep);
                RecurrentRun {
                    last: run.last,
                    steps: run.steps.map(to_layout),
                }
            },
            |x| to_layout(lstm.forward(to_layout(x), None).0),
            final_at,
            |loss| gradients(&lstm, loss),
            &device,
        );
    }

    #[test]
    fn the_gru_gives_burns_states_and_gradients() {
        check_gru("GRU", GruConfig::new(5, 6, true), 11);
        check_gru("GRU without biases", GruConfig::new(5, 4, false), 12);
        check_gru(
            "GRU resetting before the product",
            GruConfig::new(5, 4, true).with_reset_after(false),
            13,
        );
        check_gru(
            "GRU with a clipped state",
            GruConfig::new(5, 4, true).with_clip(Some(0.2)),
            14,
        );
    }

    #[test]
    fn the_lstm_gives_burns_states_and_gradients() {
        check_lstm("LSTM", LstmConfig::new(5, 6, true), 21);
        check_lstm("LSTM without biases", LstmConfig::new(5, 4, false), 22);
        check_lstm(
            "LSTM with coupled input and forget gates",
            LstmConfig::new(5, 4, true).with_input_forget(true),
            23,
        );
        check_lstm(
            "reversed LSTM",
            LstmConfig::new(5, 4, true).with_reverse(true),
            24,
        );
        check_lstm(
            "time-first LSTM",
            LstmConfig::new(5, 4, true).with_batch_first(false),
            25,
        );
        check_lstm(
            "LSTM with a clipped cell",
            LstmConfig::new(5, 4, true).with_clip(Some(0.3)),
            26,
        );
    }

    #[test]
    fn an_empty_sequence_leaves_the_state_at_zero() {
        let device = Device::flex();
        let gru = GruConfig::new(5, 4, true).init(&device);
        let run = gru_run(&gru, input(&device, 2, 0, 5), true);
        assert_eq!(values(run.last), vec![0.0; 8]);
        assert_eq!(run.steps.expect("steps").dims(), [2, 0, 4]);

        let lstm = LstmConfig::new(5, 4, true)
            .with_batch_first(false)
            .init(&device);
        let run = lstm_run(&lstm, input(&device, 0, 2, 5), true);
        assert_eq!(values(run.last), vec![0.0; 8]);
        assert_eq!(run.steps.expect("steps").dims(), [0, 2, 4]);
    }
}
