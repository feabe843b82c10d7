//! A client's trained model as the masked vector it sends in a secure round (step 3), and that
//! vector's wire form: 8 little-endian bytes per weight.

use super::fixed_point::FixedPoint;
use super::protocol::{Member, RoundSecrets};
use crate::error::Result;
use crate::federated::FlatWeights;
use crate::model::SavedModel;

/// The settings a secure round's client needs: the threshold and the clip norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecureRoundSettings {
    /// Shares needed to remove a client's masks.
    pub threshold: usize,
    /// The norm updates are clipped to.
    pub clip_norm: f64,
}

/// The update `trained − global`, clipped, weighted by `examples`, encoded and masked for
/// `sharers`, as the bytes the client sends.
pub fn masked_model_update(
    secrets: &RoundSecrets,
    me: u8,
    sharers: &[Member],
    settings: SecureRoundSettings,
    (global, trained): (&SavedModel, &SavedModel),
    examples: u64,
    context: &[u8],
) -> Result<Vec<u8>> {
    let start = FlatWeights::from_burnpack("the global model", &global.weights)?;
    let local = FlatWeights::from_burnpack("the local model", &trained.weights)?;
    start.check_same_layout("the local model", &local)?;
    let delta: Vec<f32> = local
        .values()
        .zip(start.values())
        .map(|(l, g)| l - g)
        .collect();
    let encoded = FixedPoint::new(settings.clip_norm)?.encode(&delta, examples);
    let masked = secrets.masked_input(me, encoded, sharers, settings.threshold, context)?;
    Ok(masked.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// The ring elements of a masked update's bytes (a trailing partial element is ignored).
pub fn ring_values(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            u64::from_le_bytes(word)
        })
        .collect()
}
