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
//! and imported weights, are burn's unchanged.

use burn::nn::gru::Gru;
use burn::nn::lstm::Lstm;
use burn::nn::{GateController, Linear};
use burn::tensor::Tensor;

/// What a recurrent layer computed: the last state, and every step's when asked for.
pub struct RecurrentRun {
    /// `[batch, hidden]`: the state after the last step.
    pub last: Tensor<2>,
    /// `[batch, len, hidden]`: the state after every step, when asked for.
    pub steps: Option<Tensor<3>>,
}

/// The GRU over `x` (`[batch, len, features]`), as burn's `Gru::forward` computes it.
pub fn gru_run(gru: &Gru, x: Tensor<3>, keep_steps: bool) -> RecurrentRun {
    if !gru.reset_after {
        // The reset gate then scales the state before its product: burn's forward has it.
        return from_all_steps(gru.forward(x, None), keep_steps);
    }
    let [batch, _, _] = x.dims();
    let hidden = gru.d_hidden;
    let gates = StackedGates::of(&[&gru.update_gate, &gru.reset_gate, &gru.new_gate]);
    let inputs = gates.input_steps(x);
    let mut state = Tensor::<2>::zeros([batch, hidden], &gates.hidden_weight.device());
    let mut states = Vec::with_capacity(if keep_steps { inputs.len() } else { 0 });
    for input in inputs {
        let from_state = gates.hidden_part(state.clone());
        let update_reset = gru.gate_activation.forward(
            input.clone().narrow(1, 0, 2 * hidden) + from_state.clone().narrow(1, 0, 2 * hidden),
        );
        let update = update_reset.clone().narrow(1, 0, hidden);
        let reset = update_reset.narrow(1, hidden, hidden);
        let candidate = gru.hidden_activation.forward(
            input.narrow(1, 2 * hidden, hidden) + reset * from_state.narrow(1, 2 * hidden, hidden),
        );
        // (1 - z)·n + z·h, written as n + z·(h - n).
        state = candidate.clone() + update * (state - candidate);
        if let Some(clip) = gru.clip {
            state = state.clamp(-clip, clip);
        }
        if keep_steps {
            states.push(state.clone());
        }
    }
    finish(state, states, keep_steps)
}

/// The LSTM over `x` (`[batch, len, features]`), as burn's `Lstm::forward` computes it: the
/// last and every step's hidden state.
pub fn lstm_run(lstm: &Lstm, x: Tensor<3>, keep_steps: bool) -> RecurrentRun {
    let forget_gate = match &lstm.forget_gate {
        Some(gate) if !lstm.input_forget && lstm.batch_first && !lstm.reverse => gate,
        // Coupled, reversed or time-first LSTMs: burn's forward has them.
        _ => return from_all_steps(lstm.forward(x, None).0, keep_steps),
    };
    let [batch, _, _] = x.dims();
    let hidden = lstm.d_hidden;
    let gates = StackedGates::of(&[
        &lstm.input_gate,
        forget_gate,
        &lstm.output_gate,
        &lstm.cell_gate,
    ]);
    let inputs = gates.input_steps(x);
    let device = gates.hidden_weight.device();
    let mut state = Tensor::<2>::zeros([batch, hidden], &device);
    let mut cell = Tensor::<2>::zeros([batch, hidden], &device);
    let mut states = Vec::with_capacity(if keep_steps { inputs.len() } else { 0 });
    for input in inputs {
        let sums = input + gates.hidden_part(state);
        let input_forget_output =
            lstm.gate_activation
                .forward(sums.clone().narrow(1, 0, 3 * hidden));
        let candidate = lstm
            .cell_activation
            .forward(sums.narrow(1, 3 * hidden, hidden));
        let input_gate = input_forget_output.clone().narrow(1, 0, hidden);
        let forget = input_forget_output.clone().narrow(1, hidden, hidden);
        let output = input_forget_output.narrow(1, 2 * hidden, hidden);
        cell = forget * cell + input_gate * candidate;
        if let Some(clip) = lstm.clip {
            cell = cell.clamp(-clip, clip);
        }
        state = output * lstm.hidden_activation.forward(cell.clone());
        if keep_steps {
            states.push(state.clone());
        }
    }
    finish(state, states, keep_steps)
}

/// The gates' weights side by side, in the order given.
struct StackedGates {
    /// `[in, gates·hidden]`.
    input_weight: Tensor<2>,
    /// `[gates·hidden]`, when the gates have biases.
    input_bias: Option<Tensor<1>>,
    /// `[hidden, gates·hidden]`.
    hidden_weight: Tensor<2>,
    /// `[gates·hidden]`, when the gates have biases.
    hidden_bias: Option<Tensor<1>>,
}

impl StackedGates {
    fn of(gates: &[&GateController]) -> Self {
        let input: Vec<&Linear> = gates.iter().map(|g| &g.input_transform).collect();
        let hidden: Vec<&Linear> = gates.iter().map(|g| &g.hidden_transform).collect();
        Self {
            input_weight: side_by_side_weights(&input),
            input_bias: side_by_side_biases(&input),
            hidden_weight: side_by_side_weights(&hidden),
            hidden_bias: side_by_side_biases(&hidden),
        }
    }

    /// Every step's input part of the gates, `[batch, gates·hidden]` each, in time order.
    fn input_steps(&self, x: Tensor<3>) -> Vec<Tensor<2>> {
        let [batch, len, features] = x.dims();
        let [_, width] = self.input_weight.dims();
        let time_first = x.swap_dims(0, 1).reshape([len * batch, features]);
        let sums = with_bias(
            time_first.matmul(self.input_weight.clone()),
            &self.input_bias,
        );
        let mut steps = Vec::with_capacity(len);
        split_in_halves(sums.reshape([len, batch, width]), &mut steps);
        steps
    }

    /// The state's part of the gates, `[batch, gates·hidden]`.
    fn hidden_part(&self, state: Tensor<2>) -> Tensor<2> {
        with_bias(state.matmul(self.hidden_weight.clone()), &self.hidden_bias)
    }
}

fn side_by_side_weights(layers: &[&Linear]) -> Tensor<2> {
    Tensor::cat(layers.iter().map(|l| l.weight.val()).collect(), 1)
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

fn with_bias(product: Tensor<2>, bias: &Option<Tensor<1>>) -> Tensor<2> {
    match bias {
        Some(bias) => product + bias.clone().unsqueeze_dim(0),
        None => product,
    }
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

fn finish(last: Tensor<2>, states: Vec<Tensor<2>>, keep_steps: bool) -> RecurrentRun {
    let steps = keep_steps.then(|| {
        if states.is_empty() {
            let [batch, hidden] = last.dims();
            Tensor::zeros([batch, 0, hidden], &last.device())
        } else {
            Tensor::stack(states, 1)
        }
    });
    RecurrentRun { last, steps }
}

fn from_all_steps(out: Tensor<3>, keep_steps: bool) -> RecurrentRun {
    let [batch, len, hidden] = out.dims();
    RecurrentRun {
        last: out
            .clone()
            .narrow(1, len.saturating_sub(1), 1)
            .reshape([batch, hidden]),
        steps: keep_steps.then_some(out),
    }
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

    fn check_against_burn(
        what: &str,
        ours: impl Fn(Tensor<3>, bool) -> RecurrentRun,
        burn_all_steps: impl Fn(Tensor<3>) -> Tensor<3>,
        module_grads: impl Fn(Tensor<1>) -> Vec<Vec<f32>>,
        device: &Device,
    ) {
        // A backward pass consumes its graph, so every gradient comes from a fresh forward pass.
        let last_of = |all: Tensor<3>| {
            let [batch, len, hidden] = all.dims();
            all.narrow(1, len - 1, 1).reshape([batch, hidden])
        };
        for (batch, len) in [(3, 1), (2, 7), (4, 16)] {
            let x = || input(device, batch, len, 5);
            let reference = burn_all_steps(x());

            let run = ours(x(), true);
            let steps = run.steps.expect("every step was asked for");
            assert_close(what, &values(steps), &values(reference.clone()));
            assert_close(what, &values(run.last), &values(last_of(reference)));

            let steps = ours(x(), true).steps.expect("every step was asked for");
            assert_close(
                &format!("{what} step gradients (batch {batch}, len {len})"),
                &module_grads(weighted_sum(steps)).concat(),
                &module_grads(weighted_sum(burn_all_steps(x()))).concat(),
            );

            let run = ours(x(), false);
            assert!(run.steps.is_none());
            assert_close(
                &format!("{what} last-state gradients (batch {batch}, len {len})"),
                &module_grads(weighted_sum(run.last)).concat(),
                &module_grads(weighted_sum(last_of(burn_all_steps(x())))).concat(),
            );
        }
    }

    #[test]
    fn the_gru_gives_burns_states_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let gru = GruConfig::new(5, 6, true).init(&device);
        check_against_burn(
            "GRU",
            |x, keep| gru_run(&gru, x, keep),
            |x| gru.forward(x, None),
            |loss| gradients(&gru, loss),
            &device,
        );
    }

    #[test]
    fn the_lstm_gives_burns_states_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(12);
        let lstm = LstmConfig::new(5, 6, true).init(&device);
        check_against_burn(
            "LSTM",
            |x, keep| lstm_run(&lstm, x, keep),
            |x| lstm.forward(x, None).0,
            |loss| gradients(&lstm, loss),
            &device,
        );
    }

    #[test]
    fn layers_without_biases_and_burns_other_forms_agree_too() {
        let device = Device::flex().autodiff();
        device.seed(13);
        let gru = GruConfig::new(5, 4, false).init(&device);
        check_against_burn(
            "GRU without biases",
            |x, keep| gru_run(&gru, x, keep),
            |x| gru.forward(x, None),
            |loss| gradients(&gru, loss),
            &device,
        );
        let gru = GruConfig::new(5, 4, true)
            .with_reset_after(false)
            .init(&device);
        check_against_burn(
            "GRU resetting before the product",
            |x, keep| gru_run(&gru, x, keep),
            |x| gru.forward(x, None),
            |loss| gradients(&gru, loss),
            &device,
        );
        let lstm = LstmConfig::new(5, 4, false).init(&device);
        check_against_burn(
            "LSTM without biases",
            |x, keep| lstm_run(&lstm, x, keep),
            |x| lstm.forward(x, None).0,
            |loss| gradients(&lstm, loss),
            &device,
        );
    }

    #[test]
    fn an_empty_sequence_leaves_the_state_at_zero() {
        let device = Device::flex();
        let gru = GruConfig::new(5, 4, true).init(&device);
        let run = gru_run(&gru, input(&device, 2, 0, 5), true);
        assert_eq!(values(run.last), vec![0.0; 8]);
        assert_eq!(run.steps.expect("steps").dims(), [2, 0, 4]);
    }
}
