//! Shamir secret sharing of 32-byte secrets over GF(2^8), byte by byte: any `threshold` of the
//! shares give the secret back, fewer say nothing about it. Share points are the participants'
//! indices 1..=255, so a round has at most 255 participants.

use crate::error::{KilnError, Result};

/// One participant's share of a secret: its point `x` (1..=255) and the polynomial's values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Share {
    /// The point the polynomials were evaluated at (the holder's index).
    pub x: u8,
    /// One value per secret byte.
    pub y: [u8; 32],
}

/// Multiplication in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80;
        a <<= 1;
        if carry != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

/// The multiplicative inverse (a^254) of a non-zero element.
fn inverse(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut exponent = 254u8;
    while exponent != 0 {
        if exponent & 1 != 0 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exponent >>= 1;
    }
    result
}

/// Splits `secret` into one share per point in `points` (distinct, non-zero); `threshold` of
/// them recover it. `random` supplies the polynomials' coefficients.
pub fn split(
    secret: &[u8; 32],
    points: &[u8],
    threshold: usize,
    random: &mut dyn FnMut(&mut [u8]),
) -> Result<Vec<Share>> {
    if threshold == 0 || threshold > points.len() {
        return Err(KilnError::InvalidArgument(format!(
            "a threshold of {threshold} for {} shares",
            points.len()
        )));
    }
    if points.contains(&0) {
        return Err(KilnError::InvalidArgument(
            "share points must be 1..=255".into(),
        ));
    }
    // coefficients[k][byte]: the k-th coefficient (k ≥ 1) of each byte's polynomial.
    let mut coefficients = vec![[0u8; 32]; threshold - 1];
    for c in &mut coefficients {
        random(c);
    }
    Ok(points
        .iter()
        .map(|&x| {
            let mut y = [0u8; 32];
            for (byte, out) in y.iter_mut().enumerate() {
                // Horner's rule from the highest coefficient down to the secret.
                let mut value = 0u8;
                for c in coefficients.iter().rev() {
                    value = mul(value, x) ^ c[byte];
                }
                *out = mul(value, x) ^ secret[byte];
            }
            Share { x, y }
        })
        .collect())
}

/// The secret from at least `threshold` shares with distinct points (Lagrange at 0).
pub fn combine(shares: &[Share], threshold: usize) -> Result<[u8; 32]> {
    let mut points: Vec<u8> = shares.iter().map(|s| s.x).collect();
    points.sort_unstable();
    points.dedup();
    if points.len() < threshold || points.len() != shares.len() || points.contains(&0) {
        return Err(KilnError::Training(format!(
            "{} distinct shares where {threshold} are needed",
            points.len()
        )));
    }
    let used = &shares[..threshold];
    let mut secret = [0u8; 32];
    for (i, share) in used.iter().enumerate() {
        // The Lagrange basis polynomial of point i at 0: Π x_j / (x_j − x_i); − is ⊕ here.
        let mut basis = 1u8;
        for (j, other) in used.iter().enumerate() {
            if i != j {
                basis = mul(basis, mul(other.x, inverse(other.x ^ share.x)));
            }
        }
        for (out, &y) in secret.iter_mut().zip(&share.y) {
            *out ^= mul(basis, y);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_random(seed: u8) -> impl FnMut(&mut [u8]) {
        let mut state = seed;
        move |buf: &mut [u8]| {
            for b in buf {
                state = state.wrapping_mul(197).wrapping_add(89);
                *b = state;
            }
        }
    }

    #[test]
    fn any_threshold_of_the_shares_recover_the_secret_and_fewer_do_not() {
        let secret: [u8; 32] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        let points: Vec<u8> = (1..=7).collect();
        let shares = split(&secret, &points, 4, &mut counter_random(3)).unwrap();
        for start in 0..4 {
            let subset = &shares[start..start + 4];
            assert_eq!(combine(subset, 4).unwrap(), secret);
        }
        let scattered = [
            shares[6].clone(),
            shares[0].clone(),
            shares[3].clone(),
            shares[5].clone(),
        ];
        assert_eq!(combine(&scattered, 4).unwrap(), secret);
        assert!(combine(&shares[..3], 4).is_err());
        // Three shares with a wrong fourth give something else.
        let mut forged = shares[..4].to_vec();
        forged[3].y[0] ^= 1;
        assert_ne!(combine(&forged, 4).unwrap(), secret);
        assert!(split(&secret, &points, 8, &mut counter_random(1)).is_err());
    }

    #[test]
    fn field_inverses_are_inverses() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1, "{a}");
        }
    }
}
