//! The masks that hide each update: streams of ring elements from ChaCha20 seeded by a secret —
//! a client's own self-mask seed, or a seed two clients agree on with X25519 and the server
//! never learns — and the key that seals the Shamir shares two clients send each other.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

/// Adds (or subtracts) the mask stream of `seed` to `values`, mod 2^64.
pub fn apply_mask(values: &mut [u64], seed: &[u8; 32], add: bool) {
    let mut stream = ChaCha20Rng::from_seed(*seed);
    for value in values {
        let mask = stream.next_u64();
        *value = if add {
            value.wrapping_add(mask)
        } else {
            value.wrapping_sub(mask)
        };
    }
}

/// A seed two parties share: SHA-256 of the purpose, their X25519 agreement and the round's
/// context (so no seed is used in two rounds).
fn agreed(purpose: &[u8], secret: &StaticSecret, public: &[u8; 32], context: &[u8]) -> [u8; 32] {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    Sha256::new()
        .chain_update(purpose)
        .chain_update(shared.as_bytes())
        .chain_update(context)
        .finalize()
        .into()
}

/// The seed of the mask between the holder of `secret` and the owner of `public`.
pub fn pair_seed(secret: &StaticSecret, public: &[u8; 32], context: &[u8]) -> [u8; 32] {
    agreed(
        b"kiln secure aggregation: pair mask v1",
        secret,
        public,
        context,
    )
}

/// The key that seals the shares between the holder of `secret` and the owner of `public`.
pub fn share_key(secret: &StaticSecret, public: &[u8; 32], context: &[u8]) -> [u8; 32] {
    agreed(
        b"kiln secure aggregation: share key v1",
        secret,
        public,
        context,
    )
}
