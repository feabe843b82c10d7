//! Seeded train / validation / test splits (stratified for classification) and feature
//! standardisation fitted on the training split.

use super::dataset::{Dataset, Targets};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Per-feature standardisation: `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of every feature over the training split.
    pub mean: Vec<f32>,
    /// Standard deviation of every feature (1 where a feature is constant).
    pub std: Vec<f32>,
}

impl Normalization {
    /// Fits the statistics on a data set.
    pub fn fit(data: &Dataset) -> Self {
        let n = data.sample_len();
        let count = data.len().max(1) as f64;
        let mut mean = vec![0f64; n];
        for row in data.features.chunks_exact(n) {
            for (m, x) in mean.iter_mut().zip(row) {
                *m += f64::from(*x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= count);
        let mut var = vec![0f64; n];
        for row in data.features.chunks_exact(n) {
            for ((v, m), x) in var.iter_mut().zip(&mean).zip(row) {
                let d = f64::from(*x) - m;
                *v += d * d;
            }
        }
        let std = var
            .iter()
            .map(|v| {
                let s = (v / count).sqrt();
                if s < 1e-6 { 1.0 } else { s as f32 }
            })
            .collect();
        Self {
            mean: mean.iter().map(|m| *m as f32).collect(),
            std,
        }
    }

    /// Standardises row-major features in place.
    pub fn apply(&self, features: &mut [f32]) {
        let n = self.mean.len();
        for row in features.chunks_exact_mut(n) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }
}

/// A data set cut into the three splits.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training samples.
    pub train: Dataset,
    /// Validation samples (none when the validation fraction is 0).
    pub val: Option<Dataset>,
    /// Test samples (none when the test fraction is 0).
    pub test: Option<Dataset>,
    /// For each test sample, its 0-based row in the source (or in the source's own test set).
    pub test_rows: Vec<usize>,
    /// The standardisation applied to every split, if any.
    pub normalization: Option<Normalization>,
    /// A text source's vocabulary: the samples are token ids.
    pub vocabulary: Option<super::Vocabulary>,
}

/// Splits indices `0..n` into three groups by fractions, stratified by class when classes are
/// given. The same seed gives the same split on every target.
pub fn split_indices(targets: &Targets, fractions: [f64; 3], seed: u64) -> [Vec<usize>; 3] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5151_7e57);
    let groups: Vec<Vec<usize>> = match targets {
        Targets::Classes(classes) => {
            let k = classes.iter().max().map_or(0, |m| *m as usize + 1);
            let mut groups = vec![Vec::new(); k];
            for (i, c) in classes.iter().enumerate() {
                groups[*c as usize].push(i);
            }
            groups
        }
        Targets::Values(v) => vec![(0..v.len()).collect()],
    };
    let mut out: [Vec<usize>; 3] = Default::default();
    for mut group in groups {
        group.shuffle(&mut rng);
        let n = group.len() as f64;
        let n_test = (n * fractions[2]).round() as usize;
        let n_val = ((n * fractions[1]).round() as usize).min(group.len() - n_test);
        let n_train = group.len() - n_test - n_val;
        out[0].extend_from_slice(&group[..n_train]);
        out[1].extend_from_slice(&group[n_train..n_train + n_val]);
        out[2].extend_from_slice(&group[n_train + n_val..]);
    }
    for part in &mut out {
        part.shuffle(&mut rng);
    }
    out
}

/// The order of the training samples in `epoch`: shuffled from `(seed, epoch)` alone, so a
/// resumed run sees exactly the order an uninterrupted one would.
pub fn epoch_order(len: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch as u64);
        order.shuffle(&mut rng);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_class_balance() {
        let classes: Vec<u32> = (0..100).map(|i| (i % 2) as u32).collect();
        let [train, val, test] =
            split_indices(&Targets::Classes(classes.clone()), [0.6, 0.2, 0.2], 1);
        assert_eq!(train.len() + val.len() + test.len(), 100);
        let ones = test.iter().filter(|&&i| classes[i] == 1).count();
        assert_eq!(ones, 10);
        let again = split_indices(&Targets::Classes(classes), [0.6, 0.2, 0.2], 1);
        assert_eq!(again[0], train);
    }

    #[test]
    fn normalization_standardises() {
        let d = Dataset::new(
            vec![1.0, 5.0, 3.0, 5.0],
            Targets::Values(vec![0.0, 1.0]),
            vec![2],
            1,
        )
        .unwrap();
        let norm = Normalization::fit(&d);
        let mut f = d.features.clone();
        norm.apply(&mut f);
        assert!((f[0] + 1.0).abs() < 1e-6 && (f[2] - 1.0).abs() < 1e-6);
        assert_eq!(f[1], 0.0);
    }
}
