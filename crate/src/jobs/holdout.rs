//! Holdout predictions: the saved model's predictions on the test split, as CSV — each line of
//! `predictions_csv` (the prediction, then one probability per class for classification)
//! behind the sample's source row and label.

use crate::data::{Dataset, Targets};
use crate::error::Result;
use crate::model::{Predictor, TrainStep, predictions_csv};

/// Rows predicted per forward pass.
const ROWS_PER_PASS: usize = 2048;

/// The CSV of `model`'s predictions on `test` (already standardised), one line per sample;
/// `rows[i]` is sample `i`'s row in the source.
pub async fn holdout_csv<M: TrainStep>(
    predictor: &Predictor<M>,
    test: &Dataset,
    rows: &[usize],
) -> Result<String> {
    let model = &predictor.saved;
    let mut outputs = Vec::with_capacity(test.len() * model.header.num_outputs);
    for features in test.features.chunks(ROWS_PER_PASS * test.sample_len()) {
        outputs.extend(predictor.predict_standardized(features.to_vec()).await?);
    }
    let predicted = predictions_csv(&outputs, model.header.num_outputs, model.task());
    let labels: Vec<String> = match &test.targets {
        Targets::Classes(classes) => classes.iter().map(u32::to_string).collect(),
        Targets::Values(values) => values.iter().map(f32::to_string).collect(),
    };
    let mut lines = predicted.lines();
    let mut csv = format!("row,label,{}\n", lines.next().unwrap_or("prediction"));
    for (i, (line, label)) in lines.zip(&labels).enumerate() {
        let row = rows.get(i).copied().unwrap_or(i);
        csv.push_str(&format!("{row},{label},{line}\n"));
    }
    Ok(csv)
}
