//! What a round is aggregated from: the clients' models, or — with secure aggregation — the
//! survivors' masked updates, which only their sum can be read from.

use super::secure_rounds::Unmasking;
use crate::serve::federations::UpdateRow;
use kiln::federated::secure::{FixedPoint, ring_values, unmask_sum};
use kiln::federated::{Aggregation, ClientModel, FlatWeights};
use kiln::model::SavedModel;
use kiln::{KilnError, Result};

/// A round's client inputs.
pub enum RoundInputs {
    /// Each client's `.kiln` model and example count.
    Models(Vec<(bytes::Bytes, i64)>),
    /// The survivors' masked updates and what unmasks their sum.
    Masked(MaskedRound),
}

/// A securely aggregated round's inputs.
pub struct MaskedRound {
    /// Each survivor's index and masked update (little-endian u64s).
    pub inputs: Vec<(u8, bytes::Bytes)>,
    /// The roster, the sets and the revealed shares.
    pub unmasking: Unmasking,
    /// The survivors' weights in all (their example counts, capped).
    pub total_weight: u64,
}

/// The masked updates of the survivors among `updates` (whose objects are `objects`, in order).
pub fn masked_inputs(
    unmasking: &Unmasking,
    updates: &[UpdateRow],
    objects: Vec<(bytes::Bytes, i64)>,
) -> Result<MaskedRound> {
    let mut inputs = Vec::with_capacity(updates.len());
    let mut total_weight = 0;
    for (update, (bytes, examples)) in updates.iter().zip(objects) {
        let member = unmasking
            .roster
            .members
            .iter()
            .find(|m| m.participant == update.participant)
            .ok_or_else(|| {
                KilnError::Internal(format!("{} is not in the roster", update.participant))
            })?;
        total_weight += FixedPoint::weight(examples.max(1) as u64);
        inputs.push((member.index, bytes));
    }
    Ok(MaskedRound {
        inputs,
        unmasking: unmasking.clone(),
        total_weight,
    })
}

/// The client models to aggregate and the settings to aggregate them with. A masked round
/// becomes one model — the global one plus the unmasked mean update (already clipped by the
/// clients) — which FedAvg keeps as it is and FedAdam/FedYogi take as the round's mean update.
pub fn client_models(
    global: &FlatWeights,
    inputs: &RoundInputs,
    settings: &Aggregation,
) -> Result<(Vec<ClientModel>, Aggregation)> {
    match inputs {
        RoundInputs::Models(clients) => {
            let mut models = Vec::with_capacity(clients.len());
            for (bytes, examples) in clients {
                let saved = SavedModel::from_bytes(bytes)?;
                models.push(ClientModel {
                    weights: FlatWeights::from_burnpack("a client update", &saved.weights)?,
                    examples: (*examples).max(1) as u64,
                });
            }
            Ok((models, settings.clone()))
        }
        RoundInputs::Masked(round) => {
            let clip = settings.clip_norm.ok_or_else(|| {
                KilnError::Internal("secure aggregation without a clipNorm".into())
            })?;
            let inputs: Vec<(u8, Vec<u64>)> = round
                .inputs
                .iter()
                .map(|(index, bytes)| (*index, ring_values(bytes)))
                .collect();
            let u = &round.unmasking;
            let sum = unmask_sum(
                &inputs,
                &u.sharers,
                &u.revealed,
                u.roster.threshold,
                u.roster.context.as_bytes(),
            )?;
            let mean = FixedPoint::new(clip)?.decode(&sum, round.total_weight);
            if mean.len() != global.len() {
                return Err(KilnError::Training(format!(
                    "the unmasked sum has {} values, the model {}",
                    mean.len(),
                    global.len()
                )));
            }
            let values: Vec<f32> = global.values().zip(&mean).map(|(g, d)| g + d).collect();
            let model = ClientModel {
                weights: global.with_values(&values),
                examples: 1,
            };
            let settings = Aggregation {
                clip_norm: None,
                ..settings.clone()
            };
            Ok((vec![model], settings))
        }
    }
}
