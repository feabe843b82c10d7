//! Updates as fixed-point numbers in the ring of integers mod 2^64, where masks cancel exactly:
//! each client's update (its model minus the global one) is clipped to the federation's
//! `clipNorm`, weighted by its example count (at most [`MAX_WEIGHT`]) and scaled so that the sum
//! of [`MAX_CLIENTS`] such values can never wrap. Decoding the ring sum and dividing by the
//! total weight gives FedAvg's weighted mean, within [`FixedPoint::error_bound`].

use crate::error::{KilnError, Result};

/// The most clients a securely aggregated round can have (Shamir share points are one byte).
pub const MAX_CLIENTS: usize = 255;
/// The largest example count a client's update is weighted with (larger counts weigh this much).
pub const MAX_WEIGHT: u64 = 1 << 20;

/// The encoding of one federation's updates: its clip norm and the scale that follows from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedPoint {
    clip_norm: f64,
    scale: f64,
}

impl FixedPoint {
    /// The encoding for updates clipped to `clip_norm` (> 0): every coordinate of a weighted,
    /// scaled update is below 2^62 / MAX_CLIENTS, so no sum of a round wraps around.
    pub fn new(clip_norm: f64) -> Result<Self> {
        if !(clip_norm.is_finite() && clip_norm > 0.0) {
            return Err(KilnError::InvalidArgument(format!(
                "secure aggregation needs a positive clipNorm, got {clip_norm}"
            )));
        }
        let scale = 2f64.powi(62) / (MAX_CLIENTS as f64 * clip_norm * MAX_WEIGHT as f64);
        Ok(Self { clip_norm, scale })
    }

    /// The weight an example count gets (1..=MAX_WEIGHT).
    pub fn weight(examples: u64) -> u64 {
        examples.clamp(1, MAX_WEIGHT)
    }

    /// `update` clipped to the norm, times `weight`, as ring elements.
    pub fn encode(&self, update: &[f32], weight: u64) -> Vec<u64> {
        let norm = update
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        let shrink = if norm > self.clip_norm {
            self.clip_norm / norm
        } else {
            1.0
        };
        let factor = shrink * Self::weight(weight) as f64 * self.scale;
        update
            .iter()
            .map(|&v| ((f64::from(v) * factor).round() as i64) as u64)
            .collect()
    }

    /// The weighted mean update from a ring sum and the total weight of the summed updates.
    pub fn decode(&self, sum: &[u64], total_weight: u64) -> Vec<f32> {
        let divisor = self.scale * total_weight.max(1) as f64;
        sum.iter()
            .map(|&v| ((v as i64) as f64 / divisor) as f32)
            .collect()
    }

    /// The most a decoded mean's coordinate can differ from the exact weighted mean of the
    /// clipped updates: half a unit of the scale per client, before the f32 conversion.
    pub fn error_bound(&self, clients: usize) -> f64 {
        0.5 * clients as f64 / self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_sum_decodes_to_the_weighted_mean_within_the_bound() {
        let codec = FixedPoint::new(5.0).unwrap();
        let updates = [
            vec![0.5f32, -1.25, 2.0],
            vec![-0.75, 0.5, 1.0],
            vec![0.1, 0.2, -0.3],
        ];
        let weights = [100u64, 300, 7];
        let mut sum = vec![0u64; 3];
        for (u, &w) in updates.iter().zip(&weights) {
            for (s, e) in sum.iter_mut().zip(codec.encode(u, w)) {
                *s = s.wrapping_add(e);
            }
        }
        let total: u64 = weights.iter().sum();
        let mean = codec.decode(&sum, total);
        for c in 0..3 {
            let exact: f64 = updates
                .iter()
                .zip(&weights)
                .map(|(u, &w)| f64::from(u[c]) * w as f64)
                .sum::<f64>()
                / total as f64;
            assert!(
                (f64::from(mean[c]) - exact).abs() < 1e-6,
                "{c}: {} vs {exact}",
                mean[c]
            );
        }
        assert!(codec.error_bound(3) < 1e-8);
        // Clipping: an update of norm 10 counts as one of norm 5.
        let long = codec.decode(&codec.encode(&[6.0, 8.0], 1), 1);
        assert!(
            (long[0] - 3.0).abs() < 1e-6 && (long[1] - 4.0).abs() < 1e-6,
            "{long:?}"
        );
        assert!(FixedPoint::new(0.0).is_err());
    }

    #[test]
    fn the_largest_round_does_not_wrap() {
        let codec = FixedPoint::new(1.0).unwrap();
        let one = codec.encode(&[1.0], MAX_WEIGHT * 10);
        let mut sum = 0u64;
        for _ in 0..MAX_CLIENTS {
            sum = sum.wrapping_add(one[0]);
        }
        let mean = codec.decode(&[sum], MAX_WEIGHT * MAX_CLIENTS as u64);
        assert!((mean[0] - 1.0).abs() < 1e-6, "{mean:?}");
    }
}
