//! In-memory data sets: row-major float features plus class or value targets.

use crate::error::{KilnError, Result};

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
        let sample_len: usize = sample_shape.iter().product();
        if sample_shape.is_empty() || sample_len == 0 {
            return Err(KilnError::Data(format!(
                "sample shape must be non-empty with no zero dimension, got {sample_shape:?}"
            )));
        }
        if features.len() != targets.len() * sample_len {
            return Err(KilnError::Data(format!(
                "{} feature values do not make {} samples of shape {sample_shape:?} ({} values \
                 expected)",
                features.len(),
                targets.len(),
                targets.len() * sample_len
            )));
        }
        if let Some(i) = features.iter().position(|x| !x.is_finite()) {
            return Err(KilnError::Data(format!(
                "feature value {} of sample {} is not a finite number",
                i % sample_len,
                i / sample_len
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

/// Turns float labels into class indices, naming the first sample whose label is not a
/// non-negative integer.
pub fn labels_to_classes(labels: &[f64], what: &str) -> Result<(Vec<u32>, usize)> {
    let mut classes = Vec::with_capacity(labels.len());
    for (i, &label) in labels.iter().enumerate() {
        if !(label.is_finite() && label >= 0.0 && label.fract() == 0.0 && label < 1e6) {
            return Err(KilnError::Data(format!(
                "{what} {i}: label {label} is out of range: class labels must be integers in \
                 0..1000000 (use task: regression for continuous targets)"
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
    fn select_gathers_samples_in_the_given_order() {
        let picked = three_samples().select(&[2, 0]);
        assert_eq!(picked.features, [4.0, 5.0, 0.0, 1.0]);
        assert_eq!(picked.classes(), Some(&[0, 0][..]));
    }
}
