//! Holdout predictions: the saved model's predictions on the test split, as CSV
//! (`row,label,prediction` then one probability per class for classification).

use crate::data::{Dataset, Targets};
use crate::error::Result;
use crate::model::{Predictor, SavedModel, argmax_rows};
use burn::tensor::Device;
use std::fmt::Write;

/// Rows predicted per forward pass.
const ROWS_PER_PASS: usize = 2048;

/// The CSV of `model`'s predictions on `test` (already standardised), one line per sample;
/// `rows[i]` is sample `i`'s row in the source.
pub async fn holdout_csv(
    model: &SavedModel,
    test: &Dataset,
    rows: &[usize],
    device: &Device,
) -> Result<String> {
    let predictor = Predictor::new(model.clone(), device)?;
    let width = model.header.num_outputs.max(1);
    let sample = test.sample_len();
    let mut csv = String::from("row,label,prediction");
    if let Targets::Classes(_) = test.targets {
        for c in 0..width {
            let _ = write!(csv, ",p{c}");
        }
    }
    csv.push('\n');
    for (chunk, features) in test.features.chunks(ROWS_PER_PASS * sample).enumerate() {
        let outputs = predictor.predict_standardized(features.to_vec()).await?;
        let first = chunk * ROWS_PER_PASS;
        match &test.targets {
            Targets::Classes(classes) => {
                for (i, (predicted, probs)) in argmax_rows(&outputs, width)
                    .into_iter()
                    .zip(outputs.chunks_exact(width))
                    .enumerate()
                {
                    let at = first + i;
                    let _ = write!(
                        csv,
                        "{},{},{predicted}",
                        rows.get(at).copied().unwrap_or(at),
                        classes[at]
                    );
                    for p in probs {
                        let _ = write!(csv, ",{p:.6}");
                    }
                    csv.push('\n');
                }
            }
            Targets::Values(values) => {
                for (i, value) in outputs.iter().enumerate() {
                    let at = first + i;
                    let _ = writeln!(
                        csv,
                        "{},{},{value}",
                        rows.get(at).copied().unwrap_or(at),
                        values[at]
                    );
                }
            }
        }
    }
    Ok(csv)
}
