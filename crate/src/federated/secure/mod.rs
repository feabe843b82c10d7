//! Secure aggregation: the server learns only the sum of a round's updates. Shamir sharing,
//! fixed-point encoding in the ring mod 2^64, the masks, and the protocol's steps — the same
//! code on every target.

mod fixed_point;
mod masks;
mod model_update;
mod protocol;
mod shamir;

pub use fixed_point::{FixedPoint, MAX_CLIENTS, MAX_WEIGHT};
pub use model_update::{SecureRoundSettings, masked_model_update, ring_values};
pub use protocol::{Member, PublicKeys, Revealed, RoundSecrets, SealedShare, Secret, unmask_sum};
pub use shamir::Share;

#[cfg(test)]
mod tests;
