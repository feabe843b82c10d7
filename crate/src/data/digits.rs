//! The embedded UCI handwritten digits (1797 samples, 8×8 pixels valued 0–16, 10 classes).
//!
//! The file is `sklearn/datasets/data/digits.csv.gz` from scikit-learn (BSD-3-Clause); the data
//! is the test set of the UCI "Optical Recognition of Handwritten Digits" data set
//! (E. Alpaydin, C. Kaynak, 1998, CC BY 4.0). See `crate/data/LICENSE-digits.md`.

use super::csv::parse_numeric_rows;
use super::dataset::{Dataset, Targets, labels_to_classes};
use crate::error::{KilnError, Result};
use std::io::Read;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Loads the embedded digits as images of shape `[1, 8, 8]`.
pub fn load_digits() -> Result<Dataset> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| KilnError::Internal(format!("embedded digits data is unreadable: {e}")))?;
    let rows = parse_numeric_rows(&text, false, "embedded digits")?;
    let mut features = Vec::with_capacity(rows.len() * 64);
    let mut labels = Vec::with_capacity(rows.len());
    for row in rows {
        let (label, pixels) = row
            .split_last()
            .ok_or_else(|| KilnError::Internal("empty digits row".into()))?;
        features.extend(pixels.iter().map(|&p| p as f32));
        labels.push(*label);
    }
    let (classes, num_classes) = labels_to_classes(&labels, &|i| format!("digits row {}", i + 1))?;
    Dataset::new(
        features,
        Targets::Classes(classes),
        vec![1, 8, 8],
        num_classes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_has_the_documented_size() {
        let d = load_digits().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.sample_len(), 64);
        assert_eq!(d.num_outputs, 10);
        assert!(d.features.iter().all(|&p| (0.0..=16.0).contains(&p)));
    }
}
