//! Seeded train / validation / test splits (stratified for classification) and feature
//! standardisation fitted on the training split.

use super::dataset::{Dataset, Targets};
use crate::error::{KilnError, Result};
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
    /// What the caller should hear about the splits (an empty or tiny split), reported as
    /// `warning` events when training starts.
    pub warnings: Vec<String>,
}

impl Splits {
    /// Every split as a classification over `classes` outputs (a federation's class count,
    /// which one client's labels may not all reach); a label at or above it is an error.
    pub fn with_classes(mut self, classes: usize) -> Result<Self> {
        for set in std::iter::once(&mut self.train)
            .chain(self.val.iter_mut())
            .chain(self.test.iter_mut())
        {
            if let Targets::Classes(labels) = &set.targets {
                if let Some(label) = labels.iter().find(|c| **c as usize >= classes) {
                    return Err(KilnError::Data(format!(
                        "label {label} is out of range: the model has {classes} classes (0..{classes})"
                    )));
                }
                set.num_outputs = classes;
            }
        }
        Ok(self)
    }

    /// Standardises every split with `normalization` (a federation's, fitted elsewhere).
    pub fn normalized_with(mut self, normalization: &Normalization) -> Result<Self> {
        let len = self.train.sample_len();
        if normalization.mean.len() != len {
            return Err(KilnError::Data(format!(
                "the samples have {len} values, but the model standardises {}",
                normalization.mean.len()
            )));
        }
        for set in std::iter::once(&mut self.train)
            .chain(self.val.iter_mut())
            .chain(self.test.iter_mut())
        {
            normalization.apply(&mut set.features);
        }
        self.normalization = Some(normalization.clone());
        Ok(self)
    }
}

/// Splits indices `0..n` into three groups by fractions, stratified by class when classes are
/// given. Each split gets the total its fraction asks for (validation and test rounded up, as
/// scikit-learn's `train_test_split` does, leaving at least one training sample), and each
/// total is shared out over the classes by largest remainder, so small classes cannot round a
/// split away. The same seed gives the same split on every target.
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
    let n: usize = groups.iter().map(Vec::len).sum();
    let wanted = |fraction: f64| ((n as f64 * fraction) - 1e-9).ceil().max(0.0) as usize;
    let n_test = wanted(fractions[2]).min(n.saturating_sub(1));
    let n_val = wanted(fractions[1]).min(n.saturating_sub(1 + n_test));
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let test_per_class = apportion(n_test, &sizes, &sizes);
    let left: Vec<usize> = sizes
        .iter()
        .zip(&test_per_class)
        .map(|(s, t)| s - t)
        .collect();
    let val_per_class = apportion(n_val, &sizes, &left);
    let mut out: [Vec<usize>; 3] = Default::default();
    for (k, mut group) in groups.into_iter().enumerate() {
        group.shuffle(&mut rng);
        let (n_test, n_val) = (test_per_class[k], val_per_class[k]);
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

/// Shares `total` over groups in proportion to `weights` (largest remainder; ties go to the
/// earlier group), never giving a group more than its `cap`. `total` must not exceed the sum
/// of the caps.
fn apportion(total: usize, weights: &[usize], caps: &[usize]) -> Vec<usize> {
    let sum: usize = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<usize> = weights
        .iter()
        .zip(caps)
        .map(|(&w, &cap)| ((w as u128 * total as u128 / sum as u128) as usize).min(cap))
        .collect();
    let mut remainders: Vec<(u128, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| ((w as u128 * total as u128) % sum as u128, i))
        .collect();
    // Largest remainder first, then the earlier group.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut missing = total.saturating_sub(shares.iter().sum());
    while missing > 0 {
        let before = missing;
        for &(_, i) in &remainders {
            if missing == 0 {
                break;
            }
            if shares[i] < caps[i] {
                shares[i] += 1;
                missing -= 1;
            }
        }
        if missing == before {
            break; // every group is at its cap
        }
    }
    shares
}

/// What a caller should hear about the splits a config asked for: a split that ended up
/// empty, or a classification split with fewer samples than classes.
pub fn split_warnings(
    fractions: [f64; 3],
    sizes: [usize; 3],
    num_classes: Option<usize>,
) -> Vec<String> {
    let names = ["training", "validation", "test"];
    let mut warnings = Vec::new();
    for i in 1..3 {
        if fractions[i] <= 0.0 {
            continue;
        }
        let asked = format!("data.split[{i}] = {}", fractions[i]);
        if sizes[i] == 0 {
            warnings.push(format!(
                "the {} split is empty ({asked} of {} samples); use more data or a larger fraction",
                names[i],
                sizes.iter().sum::<usize>()
            ));
        } else if let Some(classes) = num_classes.filter(|&c| sizes[i] < c) {
            warnings.push(format!(
                "the {} split has {} samples for {classes} classes ({asked}): some classes are \
                 not in it, so its metrics are noisy",
                names[i], sizes[i]
            ));
        }
    }
    warnings
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
    fn small_classes_cannot_round_a_split_away() {
        // 40 rows, 10 classes of 4: rounding per class gave 40 / 0 / 0.
        let classes: Vec<u32> = (0..40).map(|i| (i % 10) as u32).collect();
        let [train, val, test] =
            split_indices(&Targets::Classes(classes.clone()), [0.8, 0.1, 0.1], 3);
        assert_eq!((train.len(), val.len(), test.len()), (32, 4, 4));
        let mut all: Vec<usize> = train.iter().chain(&val).chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        // Each class gives at most one sample to a split of 4 (largest remainder).
        for split in [&val, &test] {
            let mut seen: Vec<u32> = split.iter().map(|&i| classes[i]).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 4);
        }
        let warnings = split_warnings([0.8, 0.1, 0.1], [32, 4, 4], Some(10));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("validation split has 4 samples for 10 classes"),
            "{warnings:?}"
        );
    }

    #[test]
    fn digits_sized_splits_match_scikit_learn_totals() {
        let classes: Vec<u32> = (0..1797).map(|i| (i % 10) as u32).collect();
        let [train, val, test] = split_indices(&Targets::Classes(classes), [0.8, 0.0, 0.2], 0);
        // ceil(1797 × 0.2) = 360, as train_test_split(test_size=0.2) gives.
        assert_eq!((train.len(), val.len(), test.len()), (1437, 0, 360));
    }

    #[test]
    fn an_empty_split_is_warned_about() {
        let [train, val, test] =
            split_indices(&Targets::Values(vec![0.0; 3]), [0.5, 0.25, 0.25], 0);
        assert_eq!((train.len(), val.len(), test.len()), (1, 1, 1));
        let [train, val, test] =
            split_indices(&Targets::Values(vec![0.0; 2]), [0.5, 0.25, 0.25], 0);
        assert_eq!((train.len(), val.len(), test.len()), (1, 0, 1));
        let warnings = split_warnings([0.5, 0.25, 0.25], [1, 0, 1], None);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("the validation split is empty"),
            "{warnings:?}"
        );
        assert!(split_warnings([1.0, 0.0, 0.0], [5, 0, 0], Some(2)).is_empty());
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
