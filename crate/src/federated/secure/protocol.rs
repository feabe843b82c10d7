//! Secure aggregation's four steps (Bonawitz et al., "Practical Secure Aggregation for
//! Privacy-Preserving Machine Learning", CCS 2017), for a server that follows the protocol but
//! would like to learn each client's update:
//!
//! 1. each client of the round makes two X25519 key pairs and advertises the public halves;
//! 2. each splits its mask secret key and a fresh self-mask seed into Shamir shares, one per
//!    other client, sealed (ChaCha20-Poly1305) with a key only the two of them can agree on,
//!    and the server relays them;
//! 3. each sends its update masked with its self mask and one pairwise mask per other client
//!    that shared keys (added toward higher indices, subtracted toward lower ones, so the pairs
//!    cancel in the sum);
//! 4. each survivor reveals, for every other client, either its share of that client's self-mask
//!    seed (the client sent a masked update) or of its mask secret key (it dropped) — never both —
//!    and the server removes the masks that do not cancel.
//!
//! The server learns the sum and who took part; any `threshold` colluding clients could learn
//! one client's update only together with the server.

use super::masks::{apply_mask, pair_seed, share_key};
use super::shamir::{Share, combine, split};
use crate::error::{KilnError, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};

/// A client's two public keys for one round, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicKeys {
    /// Seals the shares sent to this client.
    pub cipher: String,
    /// Agrees the pairwise mask seeds with this client.
    pub mask: String,
}

/// A client of the round: its share point (1..=255), its participant id and its public keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    /// Its share point and its place in the mask order.
    pub index: u8,
    /// Its participant id.
    pub participant: String,
    /// Its keys.
    pub keys: PublicKeys,
}

/// A share sealed by client `from` for client `to` (hex ciphertext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SealedShare {
    /// The sender's index.
    pub from: u8,
    /// The recipient's index.
    pub to: u8,
    /// ChaCha20-Poly1305 ciphertext of the two shares.
    pub sealed: String,
}

/// What a revealed share is a share of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Secret {
    /// A survivor's self-mask seed.
    SelfMask,
    /// A dropped client's mask secret key.
    MaskKey,
}

/// A share a survivor reveals in step 4: of client `of`'s `secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revealed {
    /// Whose secret.
    pub of: u8,
    /// Which of its secrets.
    pub secret: Secret,
    /// The share.
    pub share: Share,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str, what: &str) -> Result<Vec<u8>> {
    let bad = || KilnError::InvalidArgument(format!("{what}: not hex"));
    if !text.len().is_multiple_of(2) || text.len() > 1024 {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

fn key32(text: &str, what: &str) -> Result<[u8; 32]> {
    unhex(text, what)?
        .try_into()
        .map_err(|_| KilnError::InvalidArgument(format!("{what}: must be 32 bytes")))
}

/// 32 bytes from the operating system (the browser's crypto in wasm).
fn random32() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| KilnError::Internal(format!("no secure randomness: {e}")))?;
    Ok(bytes)
}

/// Checks a roster: distinct non-zero indices, at least `threshold` members, `me` among them.
fn check_roster(members: &[Member], me: u8, threshold: usize) -> Result<()> {
    let mut indices: Vec<u8> = members.iter().map(|m| m.index).collect();
    indices.sort_unstable();
    indices.dedup();
    if indices.len() != members.len() || indices.contains(&0) {
        return Err(KilnError::InvalidArgument(
            "the roster's indices must be distinct and 1..=255".into(),
        ));
    }
    if members.len() < threshold || threshold < 2 {
        return Err(KilnError::Training(format!(
            "{} clients shared keys; secure aggregation needs at least the threshold {threshold} \
             (and a threshold of at least 2)",
            members.len()
        )));
    }
    if !indices.contains(&me) {
        return Err(KilnError::InvalidArgument(format!(
            "index {me} is not in the roster"
        )));
    }
    Ok(())
}

/// The nonce of the shares `from` seals for `to` (each key seals one message per direction).
fn nonce(from: u8, to: u8) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[0] = from;
    n[1] = to;
    n
}

/// A client's secrets for one round. Kept in memory only: a client that restarts mid-round is
/// one that dropped, and the survivors' shares recover its masks.
pub struct RoundSecrets {
    cipher: StaticSecret,
    mask: StaticSecret,
    self_mask: [u8; 32],
    /// This client's own shares (of its mask key, of its self-mask seed), kept at step 2.
    own_shares: Option<([u8; 32], [u8; 32])>,
}

impl RoundSecrets {
    /// Fresh keys and a fresh self-mask seed.
    pub fn generate() -> Result<Self> {
        Ok(Self {
            cipher: StaticSecret::from(random32()?),
            mask: StaticSecret::from(random32()?),
            self_mask: random32()?,
            own_shares: None,
        })
    }

    /// The public keys to advertise (step 1).
    pub fn public_keys(&self) -> PublicKeys {
        PublicKeys {
            cipher: hex(PublicKey::from(&self.cipher).as_bytes()),
            mask: hex(PublicKey::from(&self.mask).as_bytes()),
        }
    }

    /// Step 2: shares of the mask key and the self-mask seed for every other member, sealed.
    pub fn seal_shares(
        &mut self,
        me: u8,
        roster: &[Member],
        threshold: usize,
        context: &[u8],
    ) -> Result<Vec<SealedShare>> {
        check_roster(roster, me, threshold)?;
        let points: Vec<u8> = roster.iter().map(|m| m.index).collect();
        let mut failed = false;
        let mut random = |buf: &mut [u8]| failed |= getrandom::fill(buf).is_err();
        let mask_shares = split(&self.mask.to_bytes(), &points, threshold, &mut random)?;
        let self_shares = split(&self.self_mask, &points, threshold, &mut random)?;
        if failed {
            return Err(KilnError::Internal(
                "no secure randomness for the shares".into(),
            ));
        }
        let mut sealed = Vec::with_capacity(roster.len() - 1);
        for ((member, mask_share), self_share) in roster.iter().zip(mask_shares).zip(self_shares) {
            if member.index == me {
                self.own_shares = Some((mask_share.y, self_share.y));
                continue;
            }
            let key = share_key(
                &self.cipher,
                &key32(&member.keys.cipher, "keys.cipher")?,
                context,
            );
            let mut plain = vec![me, member.index];
            plain.extend_from_slice(&mask_share.y);
            plain.extend_from_slice(&self_share.y);
            let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
            let bytes = cipher
                .encrypt(
                    Nonce::from_slice(&nonce(me, member.index)),
                    Payload {
                        msg: &plain,
                        aad: context,
                    },
                )
                .map_err(|_| KilnError::Internal("sealing a share failed".into()))?;
            sealed.push(SealedShare {
                from: me,
                to: member.index,
                sealed: hex(&bytes),
            });
        }
        Ok(sealed)
    }

    /// Step 3: the encoded update plus the self mask and the pairwise masks with every other
    /// member of `sharers` (the clients whose shares went out in step 2).
    pub fn masked_input(
        &self,
        me: u8,
        mut encoded: Vec<u64>,
        sharers: &[Member],
        threshold: usize,
        context: &[u8],
    ) -> Result<Vec<u64>> {
        check_roster(sharers, me, threshold)?;
        apply_mask(&mut encoded, &self.self_mask, true);
        for other in sharers.iter().filter(|m| m.index != me) {
            let seed = pair_seed(&self.mask, &key32(&other.keys.mask, "keys.mask")?, context);
            apply_mask(&mut encoded, &seed, me < other.index);
        }
        Ok(encoded)
    }

    /// Step 4: this client's shares of the survivors' self-mask seeds and of the dropped
    /// clients' mask keys, opened from `inbox` (the shares sealed for it). Refuses when fewer
    /// than `threshold` survived (the server could otherwise unmask a single update).
    pub fn reveal(
        &self,
        me: u8,
        inbox: &[SealedShare],
        sharers: &[Member],
        survivors: &[u8],
        threshold: usize,
        context: &[u8],
    ) -> Result<Vec<Revealed>> {
        check_roster(sharers, me, threshold)?;
        if survivors.len() < threshold {
            return Err(KilnError::Training(format!(
                "only {} clients sent masked updates; secure aggregation needs {threshold}",
                survivors.len()
            )));
        }
        if let Some(stranger) = survivors
            .iter()
            .find(|s| !sharers.iter().any(|m| m.index == **s))
        {
            return Err(KilnError::InvalidArgument(format!(
                "survivor {stranger} never shared keys"
            )));
        }
        let mut revealed = Vec::with_capacity(sharers.len());
        for member in sharers {
            let (mask_y, self_y) = if member.index == me {
                self.own_shares
                    .ok_or_else(|| KilnError::InvalidArgument("reveal before seal_shares".into()))?
            } else {
                let Some(sealed) = inbox.iter().find(|s| s.from == member.index && s.to == me)
                else {
                    continue;
                };
                self.open(me, sealed, member, context)?
            };
            let survived = survivors.contains(&member.index);
            // A share of exactly one of the two secrets per client, never both.
            let (secret, y) = if survived {
                (Secret::SelfMask, self_y)
            } else {
                (Secret::MaskKey, mask_y)
            };
            revealed.push(Revealed {
                of: member.index,
                secret,
                share: Share { x: me, y },
            });
        }
        Ok(revealed)
    }

    /// Opens the shares `member` sealed for this client: (mask-key share, self-mask share).
    fn open(
        &self,
        me: u8,
        sealed: &SealedShare,
        member: &Member,
        context: &[u8],
    ) -> Result<([u8; 32], [u8; 32])> {
        let key = share_key(
            &self.cipher,
            &key32(&member.keys.cipher, "keys.cipher")?,
            context,
        );
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&nonce(member.index, me)),
                Payload {
                    msg: &unhex(&sealed.sealed, "sealed")?,
                    aad: context,
                },
            )
            .map_err(|_| {
                KilnError::InvalidArgument(format!(
                    "the shares from client {} do not open (tampered with, or for another round)",
                    member.index
                ))
            })?;
        if plain.len() != 66 || plain[0] != member.index || plain[1] != me {
            return Err(KilnError::InvalidArgument(format!(
                "the shares from client {} are malformed",
                member.index
            )));
        }
        let mut mask_y = [0u8; 32];
        let mut self_y = [0u8; 32];
        mask_y.copy_from_slice(&plain[2..34]);
        self_y.copy_from_slice(&plain[34..66]);
        Ok((mask_y, self_y))
    }
}

/// The server's part of step 4: the sum of the survivors' updates. `inputs` are the survivors'
/// masked inputs by index, `sharers` the members whose shares went out, `revealed` everything
/// the survivors revealed. Fails, naming the client, when fewer than `threshold` shares of a
/// secret arrived or a dropped client's key does not match what it advertised.
pub fn unmask_sum(
    inputs: &[(u8, Vec<u64>)],
    sharers: &[Member],
    revealed: &[Revealed],
    threshold: usize,
    context: &[u8],
) -> Result<Vec<u64>> {
    let Some((_, first)) = inputs.first() else {
        return Err(KilnError::Training("no masked update to unmask".into()));
    };
    let mut sum = vec![0u64; first.len()];
    for (index, input) in inputs {
        if input.len() != sum.len() {
            return Err(KilnError::InvalidArgument(format!(
                "client {index}'s masked update has {} values, not {}",
                input.len(),
                sum.len()
            )));
        }
        for (s, v) in sum.iter_mut().zip(input) {
            *s = s.wrapping_add(*v);
        }
    }
    let survived = |index: u8| inputs.iter().any(|(i, _)| *i == index);
    for member in sharers {
        let shares: Vec<Share> = revealed
            .iter()
            .filter(|r| r.of == member.index)
            .filter(|r| {
                r.secret
                    == if survived(member.index) {
                        Secret::SelfMask
                    } else {
                        Secret::MaskKey
                    }
            })
            .map(|r| r.share.clone())
            .collect();
        let secret = combine(&shares, threshold).map_err(|_| {
            KilnError::Training(format!(
                "client {} ({}): {} of the {threshold} shares needed to remove its mask arrived",
                member.index,
                member.participant,
                shares.len()
            ))
        })?;
        if survived(member.index) {
            apply_mask(&mut sum, &secret, false);
            continue;
        }
        // A dropped client: its pairwise masks with the survivors do not cancel.
        let key = StaticSecret::from(secret);
        if hex(PublicKey::from(&key).as_bytes()) != member.keys.mask {
            return Err(KilnError::Training(format!(
                "client {} ({}): the revealed shares do not give the key it advertised",
                member.index, member.participant
            )));
        }
        for (index, _) in inputs {
            let other = sharers.iter().find(|m| m.index == *index).ok_or_else(|| {
                KilnError::InvalidArgument(format!("survivor {index} never shared keys"))
            })?;
            let seed = pair_seed(&key, &key32(&other.keys.mask, "keys.mask")?, context);
            // The survivor added the mask toward a higher index and subtracted it toward a lower one.
            apply_mask(&mut sum, &seed, *index > member.index);
        }
    }
    Ok(sum)
}
