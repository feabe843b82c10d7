//! How a round's client updates become the next global model: FedAvg (weighted by examples),
//! FedProx (FedAvg's mean of clients trained with a proximal term, Li et al. 2020),
//! the server-side adaptive optimisers FedAdam and FedYogi (Reddi et al., "Adaptive Federated
//! Optimization", ICLR 2021), and the robust coordinate-wise median and trimmed mean for rounds
//! where some clients may send garbage; each update optionally clipped to a norm first.

use super::flat_weights::FlatWeights;
use crate::error::{KilnError, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The aggregation rule of a federation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregationMethod {
    /// The mean of the clients' models, weighted by their example counts (McMahan et al. 2017).
    #[default]
    Fedavg,
    /// FedAvg's weighted mean of clients that train with the proximal term μ/2·‖w − w_global‖²
    /// (`mu`; Li et al. 2020), which keeps clients with very different data from drifting apart.
    Fedprox,
    /// FedAvg's mean update applied through a server-side Adam.
    Fedadam,
    /// FedAvg's mean update applied through a server-side Yogi.
    Fedyogi,
    /// The coordinate-wise median of the updates (unweighted; robust to a minority of bad
    /// clients).
    Median,
    /// The coordinate-wise mean after dropping the `trim` fraction of largest and smallest
    /// values (unweighted; robust to that fraction of bad clients on each side).
    TrimmedMean,
}

crate::display_serde_name!(AggregationMethod);

/// The aggregation settings of a federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Aggregation {
    /// The rule.
    pub method: AggregationMethod,
    /// Each client's update (its model minus the global one) is scaled down to this norm when
    /// it is longer (none: no clipping).
    pub clip_norm: Option<f64>,
    /// `fedadam` / `fedyogi`: the server's learning rate η.
    pub server_learning_rate: f64,
    /// `fedadam` / `fedyogi`: the first-moment decay β1.
    pub beta1: f64,
    /// `fedadam` / `fedyogi`: the second-moment decay β2.
    pub beta2: f64,
    /// `fedadam` / `fedyogi`: the adaptivity τ added to √v.
    pub tau: f64,
    /// `trimmed_mean`: the fraction of values dropped at each end, in [0, 0.5).
    pub trim: f64,
    /// `fedprox`: the proximal term's μ, > 0 (each client's `training.proximal_mu`).
    pub mu: f64,
}

impl Default for Aggregation {
    fn default() -> Self {
        Self {
            method: AggregationMethod::Fedavg,
            clip_norm: None,
            server_learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
            trim: 0.1,
            mu: 0.01,
        }
    }
}

impl Aggregation {
    /// Checks every setting; `at` is its path (`aggregation`).
    pub fn validate(&self, at: &str) -> Result<()> {
        use crate::field_checks::{positive, probability};
        if let Some(clip) = self.clip_norm {
            positive(&format!("{at}.clipNorm"), clip)?;
        }
        positive(
            &format!("{at}.serverLearningRate"),
            self.server_learning_rate,
        )?;
        probability(&format!("{at}.beta1"), self.beta1)?;
        probability(&format!("{at}.beta2"), self.beta2)?;
        positive(&format!("{at}.tau"), self.tau)?;
        positive(&format!("{at}.mu"), self.mu)?;
        if !(self.trim.is_finite() && (0.0..0.5).contains(&self.trim)) {
            return Err(crate::field_checks::fail(
                &format!("{at}.trim"),
                "must be in [0, 0.5)",
                self.trim,
            ));
        }
        Ok(())
    }

    /// The clients' training config under this rule: `fedprox` sets `training.proximal_mu` to
    /// `mu`; the other rules leave the config as it is.
    pub fn client_config(&self, mut config: crate::config::Config) -> crate::config::Config {
        if self.method == AggregationMethod::Fedprox {
            config.training.proximal_mu = self.mu;
        }
        config
    }
}

/// One client's contribution to a round: its locally trained model and how many examples it
/// trained on.
#[derive(Debug, Clone)]
pub struct ClientModel {
    /// The client's weights after local training.
    pub weights: FlatWeights,
    /// Its training examples (FedAvg's weight), at least 1.
    pub examples: u64,
}

/// The server optimiser's moments (`fedadam` / `fedyogi`), kept from round to round.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMoments {
    /// First moment m.
    pub m: FlatWeights,
    /// Second moment v.
    pub v: FlatWeights,
}

/// The next global model from the current one and a round's client models, and the server
/// optimiser's moments after the round (only for `fedadam` / `fedyogi`). Every client model
/// must have the global model's layout and finite values (checked here).
pub fn aggregate(
    global: &FlatWeights,
    clients: &[ClientModel],
    settings: &Aggregation,
    moments: Option<ServerMoments>,
) -> Result<(FlatWeights, Option<ServerMoments>)> {
    if clients.is_empty() {
        return Err(KilnError::Training(
            "a round cannot be aggregated without any client update".into(),
        ));
    }
    let mut updates = Vec::with_capacity(clients.len());
    for (i, client) in clients.iter().enumerate() {
        global.check_same_layout(&format!("client update {i}"), &client.weights)?;
        let update = client.weights.zip_map(global, |local, g| local - g);
        updates.push(clipped(update, settings.clip_norm));
    }
    let examples: Vec<f64> = clients.iter().map(|c| c.examples.max(1) as f64).collect();
    let delta = match settings.method {
        AggregationMethod::Fedavg
        | AggregationMethod::Fedprox
        | AggregationMethod::Fedadam
        | AggregationMethod::Fedyogi => weighted_mean(global, &updates, &examples),
        AggregationMethod::Median => coordinatewise(global, &updates, median),
        AggregationMethod::TrimmedMean => coordinatewise(global, &updates, |values| {
            trimmed_mean(values, settings.trim)
        }),
    };
    match settings.method {
        AggregationMethod::Fedadam | AggregationMethod::Fedyogi => {
            let (next, moments) = adaptive_step(global, &delta, settings, moments);
            Ok((next, Some(moments)))
        }
        _ => Ok((global.zip_map(&delta, |g, d| g + d), None)),
    }
}

/// `update` scaled down to norm `clip` when it is longer.
fn clipped(update: FlatWeights, clip: Option<f64>) -> FlatWeights {
    let Some(clip) = clip else {
        return update;
    };
    let norm = update.norm();
    if norm <= clip || norm == 0.0 {
        return update;
    }
    let scale = (clip / norm) as f32;
    update.map(|v| v * scale)
}

fn weighted_mean(layout: &FlatWeights, updates: &[FlatWeights], weights: &[f64]) -> FlatWeights {
    let total: f64 = weights.iter().sum();
    let mut sum = vec![0f64; layout.len()];
    for (update, weight) in updates.iter().zip(weights) {
        for (s, v) in sum.iter_mut().zip(update.values()) {
            *s += f64::from(v) * weight;
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| (s / total) as f32).collect();
    layout.with_values(&mean)
}

/// Applies `reduce` to each coordinate's values across the updates.
fn coordinatewise(
    layout: &FlatWeights,
    updates: &[FlatWeights],
    reduce: impl Fn(&mut [f32]) -> f32,
) -> FlatWeights {
    let columns: Vec<Vec<f32>> = updates.iter().map(|u| u.values().collect()).collect();
    let mut column = vec![0f32; updates.len()];
    let reduced: Vec<f32> = (0..layout.len())
        .map(|i| {
            for (slot, values) in column.iter_mut().zip(&columns) {
                *slot = values[i];
            }
            reduce(&mut column)
        })
        .collect();
    layout.with_values(&reduced)
}

fn median(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn trimmed_mean(values: &mut [f32], trim: f64) -> f32 {
    values.sort_by(f32::total_cmp);
    let n = values.len();
    let cut = ((n as f64) * trim).floor() as usize;
    let kept = &values[cut.min(n / 2)..n - cut.min(n / 2)];
    let kept = if kept.is_empty() { &values[..] } else { kept };
    (kept.iter().map(|v| f64::from(*v)).sum::<f64>() / kept.len() as f64) as f32
}

/// One step of the server-side Adam or Yogi on the mean update `delta`.
fn adaptive_step(
    global: &FlatWeights,
    delta: &FlatWeights,
    settings: &Aggregation,
    moments: Option<ServerMoments>,
) -> (FlatWeights, ServerMoments) {
    let (b1, b2) = (settings.beta1 as f32, settings.beta2 as f32);
    let tau = settings.tau as f32;
    let zeros = global.map(|_| 0.0);
    let ServerMoments { m, v } = moments
        .filter(|mo| global.check_same_layout("", &mo.m).is_ok())
        .unwrap_or_else(|| ServerMoments {
            m: zeros.clone(),
            // Reddi et al. start v at τ².
            v: zeros.map(|_| tau * tau),
        });
    let m = m.zip_map(delta, |m, d| b1 * m + (1.0 - b1) * d);
    let v = match settings.method {
        AggregationMethod::Fedyogi => v.zip_map(delta, |v, d| {
            let d2 = d * d;
            v - (1.0 - b2) * d2 * (v - d2).signum()
        }),
        _ => v.zip_map(delta, |v, d| b2 * v + (1.0 - b2) * d * d),
    };
    let lr = settings.server_learning_rate as f32;
    let step = m.zip_map(&v, |m, v| lr * m / (v.max(0.0).sqrt() + tau));
    (global.zip_map(&step, |g, s| g + s), ServerMoments { m, v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federated::flat_weights::NamedValues;

    fn weights(values: &[f32]) -> FlatWeights {
        FlatWeights {
            tensors: vec![NamedValues {
                name: "w".into(),
                shape: vec![values.len()],
                param_id: None,
                values: values.to_vec(),
            }],
        }
    }

    fn client(values: &[f32], examples: u64) -> ClientModel {
        ClientModel {
            weights: weights(values),
            examples,
        }
    }

    fn with(method: AggregationMethod) -> Aggregation {
        Aggregation {
            method,
            ..Aggregation::default()
        }
    }

    fn close(a: &FlatWeights, b: &[f32]) -> bool {
        a.values().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn fedavg_weights_clients_by_their_examples() {
        let global = weights(&[0.0, 0.0]);
        let clients = [client(&[1.0, 2.0], 1), client(&[4.0, 8.0], 3)];
        let (next, moments) =
            aggregate(&global, &clients, &with(AggregationMethod::Fedavg), None).unwrap();
        assert!(close(&next, &[3.25, 6.5]), "{next:?}");
        assert!(moments.is_none());
    }

    #[test]
    fn clipping_bounds_each_update_before_averaging() {
        let global = weights(&[1.0, 1.0]);
        let settings = Aggregation {
            clip_norm: Some(1.0),
            ..Aggregation::default()
        };
        // The update (3, 4) has norm 5: it is scaled to (0.6, 0.8).
        let (next, _) = aggregate(&global, &[client(&[4.0, 5.0], 1)], &settings, None).unwrap();
        assert!(close(&next, &[1.6, 1.8]), "{next:?}");
    }

    #[test]
    fn median_and_trimmed_mean_ignore_one_garbage_client() {
        let global = weights(&[0.0]);
        let mut clients: Vec<ClientModel> = [1.0, 1.1, 0.9, 1.05, 0.95]
            .iter()
            .map(|v| client(&[*v], 10))
            .collect();
        clients.push(client(&[1.0e6], 10));
        let (avg, _) =
            aggregate(&global, &clients, &with(AggregationMethod::Fedavg), None).unwrap();
        assert!(avg.values().next().unwrap() > 1000.0);
        let (median, _) =
            aggregate(&global, &clients, &with(AggregationMethod::Median), None).unwrap();
        assert!(close(&median, &[1.025]), "{median:?}");
        let trimmed = Aggregation {
            trim: 0.2,
            ..with(AggregationMethod::TrimmedMean)
        };
        let (mean, _) = aggregate(&global, &clients, &trimmed, None).unwrap();
        // Six values, one dropped at each end: 0.95, 1.0, 1.05, 1.1.
        assert!(close(&mean, &[1.025]), "{mean:?}");
    }

    #[test]
    fn fedadam_and_fedyogi_step_towards_the_mean_update_and_keep_their_moments() {
        let global = weights(&[0.0, 0.0]);
        let clients = [client(&[1.0, -1.0], 1)];
        for method in [AggregationMethod::Fedadam, AggregationMethod::Fedyogi] {
            let settings = with(method);
            let (first, moments) = aggregate(&global, &clients, &settings, None).unwrap();
            let moments = moments.expect("server moments");
            let step: Vec<f32> = first.values().collect();
            assert!(step[0] > 0.0 && step[1] < 0.0, "{method}: {step:?}");
            // Adam's first step is about η·(1-β1)/√(1-β2) per coordinate, whatever the scale.
            assert!(step[0] < 0.05, "{method}: {step:?}");
            let (second, _) = aggregate(&first, &clients, &settings, Some(moments)).unwrap();
            let again: Vec<f32> = second.values().collect();
            assert!(
                again[0] > step[0],
                "{method}: momentum carries on: {again:?}"
            );
        }
    }

    #[test]
    fn wrong_shapes_and_non_finite_values_are_refused() {
        let global = weights(&[0.0, 0.0]);
        let settings = Aggregation::default();
        let e = aggregate(&global, &[client(&[1.0], 1)], &settings, None).unwrap_err();
        assert!(e.to_string().contains("client update 0"), "{e}");
        let e = aggregate(&global, &[client(&[1.0, f32::NAN], 1)], &settings, None).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
        assert!(aggregate(&global, &[], &settings, None).is_err());
    }

    #[test]
    fn settings_name_the_field_that_is_out_of_range() {
        let bad = Aggregation {
            trim: 0.5,
            ..Aggregation::default()
        };
        let e = bad.validate("aggregation").unwrap_err().to_string();
        assert!(
            e.contains("aggregation.trim: must be in [0, 0.5), got 0.5"),
            "{e}"
        );
        let bad = Aggregation {
            clip_norm: Some(0.0),
            ..Aggregation::default()
        };
        let e = bad.validate("aggregation").unwrap_err().to_string();
        assert!(e.contains("aggregation.clipNorm"), "{e}");
    }
}
