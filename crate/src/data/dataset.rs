//! In-memory data sets: row-major float features plus class or value targets.

use crate::error::{KilnError, Result};
use crate::limits::checked_elements;

/// What a sample is labelled with.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class indices in `0..num_classes`.
    Classes(Vec<u32>),
    /// One float target per sample.
    Values(Vec<f32>),
}

impl Targets {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Self::Classes(v) => v.len(),
            Self::Values(v) => v.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The targets of the samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        match self {
            Self::Classes(v) => Self::Classes(indices.iter().map(|&i| v[i]).collect()),
            Self::Values(v) => Self::Values(indices.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// A labelled data set held in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major features, `len() * sample_len()` values.
    pub features: Vec<f32>,
    /// The labels.
    pub targets: Targets,
    /// Shape of one sample: `[features]` for vectors, `[channels, height, width]` for images.
    pub sample_shape: Vec<usize>,
    /// Number of classes (classification), or 1 (regression).
    pub num_outputs: usize,
}

impl Dataset {
    /// Builds a data set, checking that the arrays agree with each other.
    pub fn new(
        features: Vec<f32>,
        targets: Targets,
        sample_shape: Vec<usize>,
        num_outputs: usize,
    ) -> Result<Self> {
        let sample_len = checked_elements(&sample_shape, "the sample shape")?;
        if sample_shape.is_empty() || sample_len == 0 {
            return Err(KilnError::Data(format!(
                "sample shape must be non-empty with no zero dimension, got {sample_shape:?}"
            )));
        }
        let expected = targets.len().checked_mul(sample_len);
        if expected != Some(features.len()) {
            let expected =
                expected.map_or_else(|| "more than fit in memory".into(), |n| n.to_string());
            return Err(KilnError::Data(format!(
                "{} feature values do not make {} samples of shape {sample_shape:?} ({expected} \
                 values expected)",
                features.len(),
                targets.len(),
            )));
        }
        if let Some(i) = features.iter().position(|x| !x.is_finite()) {
            return Err(KilnError::Data(format!(
                "features[{i}] (sample {}, value {}, both counted from 0) is not a finite number",
                i / sample_len,
                i % sample_len
            )));
        }
        match &targets {
            Targets::Classes(classes) => {
                if let Some((i, c)) = classes
                    .iter()
                    .enumerate()
                    .find(|(_, c)| **c as usize >= num_outputs)
                {
                    return Err(KilnError::Data(format!(
                        "label {c} of sample {i} is out of range: labels must be in 0..{num_outputs}"
                    )));
                }
            }
            Targets::Values(values) => {
                if let Some(i) = values.iter().position(|x| !x.is_finite()) {
                    return Err(KilnError::Data(format!(
                        "target of sample {i} is not a finite number"
                    )));
                }
            }
        }
        Ok(Self {
            features,
            targets,
            sample_shape,
            num_outputs,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Number of values in one sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        let n = self.sample_len();
        let mut features = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            features.extend_from_slice(&self.features[i * n..(i + 1) * n]);
        }
        Self {
            features,
            targets: self.targets.select(indices),
            sample_shape: self.sample_shape.clone(),
            num_outputs: self.num_outputs,
        }
    }

    /// The samples at `indices`, in that order, consuming the data set. When `indices` is a
    /// permutation of every sample (a split that keeps them all) the rows are rearranged in
    /// place, so a large data set is never held twice.
    pub fn into_selected(mut self, indices: &[usize]) -> Self {
        if !is_permutation(indices, self.len()) {
            return self.select(indices);
        }
        let width = self.sample_len();
        permute_rows(&mut self.features, width, indices);
        match &mut self.targets {
            Targets::Classes(c) => permute_rows(c, 1, indices),
            Targets::Values(v) => permute_rows(v, 1, indices),
        }
        self
    }

    /// The first `n` samples (all of them when there are fewer), without copying.
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.features.truncate(n * self.sample_len());
        match &mut self.targets {
            Targets::Classes(c) => c.truncate(n),
            Targets::Values(v) => v.truncate(n),
        }
        self
    }

    /// Class indices, or `None` for regression targets.
    pub fn classes(&self) -> Option<&[u32]> {
        match &self.targets {
            Targets::Classes(c) => Some(c),
            Targets::Values(_) => None,
        }
    }
}

/// Whether `indices` holds each of `0..len` exactly once.
fn is_permutation(indices: &[usize], len: usize) -> bool {
    let mut seen = vec![false; len];
    indices.len() == len
        && indices
            .iter()
            .all(|&i| i < len && !std::mem::replace(&mut seen[i], true))
}

/// Rearranges rows of `width` values in place so that row `k` becomes the old row
/// `order[k]`; `order` must be a permutation. Follows each cycle with one spare row.
fn permute_rows<T: Copy>(data: &mut [T], width: usize, order: &[usize]) {
    let mut placed = vec![false; order.len()];
    let mut spare = Vec::with_capacity(width);
    for start in 0..order.len() {
        if placed[start] || order[start] == start {
            continue;
        }
        spare.clear();
        spare.extend_from_slice(&data[start * width..(start + 1) * width]);
        let mut at = start;
        loop {
            placed[at] = true;
            let from = order[at];
            if from == start {
                data[at * width..(at + 1) * width].copy_from_slice(&spare);
                break;
            }
            data.copy_within(from * width..(from + 1) * width, at * width);
            at = from;
        }
    }
}

/// Builds a data set from row-major features and numeric labels, read as class indices or as
/// values depending on `task`; `sample(i)` says where sample `i` is in messages (a file and
/// line, `data.labels[i]`).
pub fn dataset_from_labels(
    features: Vec<f32>,
    sample_shape: Vec<usize>,
    labels: &[f64],
    task: crate::config::Task,
    sample: &dyn Fn(usize) -> String,
) -> Result<Dataset> {
    let (targets, outputs) = match task {
        crate::config::Task::Classification => {
            let (classes, n) = labels_to_classes(labels, sample)?;
            (Targets::Classes(classes), n)
        }
        crate::config::Task::Regression => (
            Targets::Values(labels.iter().map(|&v| v as f32).collect()),
            1,
        ),
    };
    Dataset::new(features, targets, sample_shape, outputs)
}

/// Turns float labels into class indices, naming the first sample whose label is not a
/// non-negative integer; `sample(i)` says where sample `i` is (a file and line, an index).
pub fn labels_to_classes(
    labels: &[f64],
    sample: &dyn Fn(usize) -> String,
) -> Result<(Vec<u32>, usize)> {
    let mut classes = Vec::with_capacity(labels.len());
    for (i, &label) in labels.iter().enumerate() {
        if !(label.is_finite() && label >= 0.0 && label.fract() == 0.0 && label < 1e6) {
            return Err(KilnError::Data(format!(
                "{}: label {label} is out of range: class labels must be integers in \
                 0..1000000 (use task: regression for continuous targets)",
                sample(i)
            )));
        }
        classes.push(label as u32);
    }
    let num_classes = classes.iter().max().map_or(0, |m| *m as usize + 1);
    if num_classes < 2 {
        return Err(KilnError::Data(format!(
            "classification needs at least 2 classes, the labels hold {num_classes}"
        )));
    }
    Ok((classes, num_classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_samples() -> Dataset {
        let features = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        Dataset::new(features, Targets::Classes(vec![0, 1, 0]), vec![2], 2)
            .expect("a valid data set")
    }

    #[test]
    fn truncated_keeps_the_first_samples_with_their_labels() {
        let two = three_samples().truncated(2);
        assert_eq!(two.features, [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(two.classes(), Some(&[0, 1][..]));
        assert_eq!(three_samples().truncated(10), three_samples());
    }

    #[test]
    fn into_selected_rearranges_a_permutation_in_place_and_copies_a_subset() {
        for order in [[2, 0, 1], [1, 0, 2], [0, 1, 2], [2, 1, 0]] {
            let expected = three_samples().select(&order);
            assert_eq!(
                three_samples().into_selected(&order),
                expected,
                "order {order:?}"
            );
        }
        assert_eq!(
            three_samples().into_selected(&[2]),
            three_samples().select(&[2])
        );
        assert_eq!(
            three_samples().into_selected(&[1, 1, 0]),
            three_samples().select(&[1, 1, 0])
        );
    }

    #[test]
    fn permuting_many_rows_matches_gathering_them() {
        let n = 1000;
        let mut order: Vec<usize> = (0..n).collect();
        // A fixed scramble with cycles of many lengths.
        for k in 0..n {
            order.swap(k, (k * 7919 + 13) % n);
        }
        let features: Vec<f32> = (0..n * 3).map(|v| v as f32).collect();
        let classes = (0..n).map(|i| (i % 2) as u32).collect();
        let data = Dataset::new(features, Targets::Classes(classes), vec![3], 2).expect("valid");
        assert_eq!(data.clone().into_selected(&order), data.select(&order));
    }

    #[test]
    fn select_gathers_samples_in_the_given_order() {
        let picked = three_samples().select(&[2, 0]);
        assert_eq!(picked.features, [4.0, 5.0, 0.0, 1.0]);
        assert_eq!(picked.classes(), Some(&[0, 0][..]));
    }
}
