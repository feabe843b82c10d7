//! The UCI handwritten digits (1797 samples, 8×8 pixels valued 0–16, 10 classes): built into
//! the binary (feature `embedded-digits`), or handed over at run time by the npm package, whose
//! wasm modules leave the 57 KB file out and fetch it only for a job that trains on it.
//!
//! The file is `sklearn/datasets/data/digits.csv.gz` from scikit-learn (BSD-3-Clause); the data
//! is the test set of the UCI "Optical Recognition of Handwritten Digits" data set
//! (E. Alpaydin, C. Kaynak, 1998, CC BY 4.0). See `crate/data/LICENSE-digits.md`.

use super::csv::parse_table;
use super::dataset::{Dataset, Targets, labels_to_classes};
use super::gzip::decompress_if_gzipped;
use crate::error::{KilnError, Result};
use std::sync::OnceLock;

/// The digits file built into this build, if it was built with `embedded-digits`.
#[cfg(feature = "embedded-digits")]
const EMBEDDED_DIGITS: Option<&[u8]> = Some(include_bytes!("../../data/digits.csv.gz"));
#[cfg(not(feature = "embedded-digits"))]
const EMBEDDED_DIGITS: Option<&[u8]> = None;

/// Pixels per sample (8×8).
const PIXELS: usize = 64;

/// The digits handed over by `provide_digits`, parsed once.
static PROVIDED_DIGITS: OnceLock<Dataset> = OnceLock::new();

/// Loads the digits as images of shape `[1, 8, 8]`: the copy handed over by `provide_digits`,
/// else the embedded one; an error saying how to get them when the build has neither.
pub fn load_digits() -> Result<Dataset> {
    if let Some(digits) = PROVIDED_DIGITS.get() {
        return Ok(digits.clone());
    }
    match EMBEDDED_DIGITS {
        Some(bytes) => parse_digits(bytes, "embedded digits"),
        None => Err(KilnError::Data(
            "data.source: `digits`: this build of Kiln does not embed the digits data set; the \
             npm package fetches its wasm/digits.csv.gz before such a job starts, a Rust build \
             needs the `embedded-digits` feature or kiln::data::provide_digits"
                .into(),
        )),
    }
}

/// Whether `load_digits` can succeed without `provide_digits` being called first.
pub fn digits_available() -> bool {
    EMBEDDED_DIGITS.is_some() || PROVIDED_DIGITS.get().is_some()
}

/// Hands over the digits file (`digits.csv.gz`, gzipped or already decompressed by an HTTP
/// layer) for builds without the embedded copy. The bytes are checked and parsed now: a file
/// that is not the digits data set is an error naming what is wrong. Once digits are provided,
/// later calls change nothing.
pub fn provide_digits(bytes: &[u8]) -> Result<()> {
    if PROVIDED_DIGITS.get().is_some() {
        return Ok(());
    }
    let digits = parse_digits(bytes, "the digits file")?;
    // A second caller that raced us set the same data set: either copy serves.
    let _ = PROVIDED_DIGITS.set(digits);
    Ok(())
}

/// Parses the digits CSV (gzipped or plain): 65 numbers a row, 64 pixels in 0–16 then the label.
fn parse_digits(bytes: &[u8], what: &str) -> Result<Dataset> {
    let text = String::from_utf8(decompress_if_gzipped(bytes.to_vec(), what)?).map_err(|_| {
        KilnError::Data(format!(
            "{what} is neither gzip nor text (it starts with bytes {:02x?})",
            &bytes[..bytes.len().min(4)]
        ))
    })?;
    let table = parse_table(&text, false, what)?;
    let mut features = Vec::with_capacity(table.len() * PIXELS);
    let mut labels = Vec::with_capacity(table.len());
    for (index, row) in table.rows().enumerate() {
        let not_digits = |why: &str| {
            KilnError::Data(format!(
                "{what} is not the digits data set: row {} {why}",
                index + 1
            ))
        };
        let Some((label, pixels)) = row.split_last().filter(|(_, p)| p.len() == PIXELS) else {
            return Err(not_digits(&format!(
                "has {} values, not {} pixels and a label",
                row.len(),
                PIXELS
            )));
        };
        if let Some(pixel) = pixels.iter().find(|p| !(0.0..=16.0).contains(*p)) {
            return Err(not_digits(&format!(
                "has the pixel value {pixel}, not 0–16"
            )));
        }
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

    const DIGITS_FILE: &[u8] = include_bytes!("../../data/digits.csv.gz");

    fn gunzipped(bytes: &[u8]) -> String {
        String::from_utf8(decompress_if_gzipped(bytes.to_vec(), "the digits file").unwrap())
            .unwrap()
    }

    #[test]
    fn digits_has_the_documented_size() {
        let d = load_digits().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.sample_len(), 64);
        assert_eq!(d.num_outputs, 10);
        assert!(d.features.iter().all(|&p| (0.0..=16.0).contains(&p)));
    }

    #[test]
    fn the_file_parses_the_same_gzipped_or_decompressed() {
        let zipped = parse_digits(DIGITS_FILE, "the digits file").unwrap();
        let plain = parse_digits(gunzipped(DIGITS_FILE).as_bytes(), "the digits file").unwrap();
        assert_eq!(zipped.len(), 1797);
        assert_eq!(zipped.features, plain.features);
        assert_eq!(zipped.targets, plain.targets);
    }

    #[test]
    fn a_file_that_is_not_the_digits_is_refused_with_the_reason() {
        let page = b"<!doctype html><title>404 Not Found</title>";
        let error = parse_digits(page, "the digits file")
            .unwrap_err()
            .to_string();
        assert!(error.contains("the digits file"), "{error}");

        let short_row = "1,2,3\n";
        let error = parse_digits(short_row.as_bytes(), "the digits file")
            .unwrap_err()
            .to_string();
        assert!(error.contains("row 1 has 3 values"), "{error}");

        let mut text = gunzipped(DIGITS_FILE);
        text.replace_range(0..1, "99");
        let error = parse_digits(text.as_bytes(), "the digits file")
            .unwrap_err()
            .to_string();
        assert!(error.contains("pixel value 99"), "{error}");

        let error = parse_digits(&[0x1f, 0x8b, 0, 1, 2], "the digits file")
            .unwrap_err()
            .to_string();
        assert!(error.contains("corrupt gzip data"), "{error}");
        let error = parse_digits(&[0xff, 0xfe, 0x00], "the digits file")
            .unwrap_err()
            .to_string();
        assert!(error.contains("neither gzip nor text"), "{error}");
    }

    #[test]
    fn provided_digits_are_what_load_digits_returns() {
        provide_digits(DIGITS_FILE).unwrap();
        assert!(digits_available());
        let provided = load_digits().unwrap();
        let from_file = parse_digits(DIGITS_FILE, "the digits file").unwrap();
        assert_eq!(provided.features, from_file.features);
        // Providing again (even bytes that are not the digits) changes nothing.
        provide_digits(b"junk").unwrap();
        assert_eq!(load_digits().unwrap().features, from_file.features);
    }
}
