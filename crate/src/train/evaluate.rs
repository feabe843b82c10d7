//! Evaluating a model on a split: every batch on the device, one read at the end.

use crate::config::{Metric, Task};
use crate::data::{Dataset, Targets};
use crate::error::{KilnError, Result};
use crate::metrics::{EvalReport, classification_report, regression_report};
use crate::model::make_batch;
use crate::model::{Batch, TrainStep};
use burn::tensor::{Device, Transaction};

/// Evaluates `model` (already in validation mode) on `data` in batches of `batch_size`,
/// at most `max_batches` of them. Reads predictions and the loss in a single transaction.
pub async fn evaluate<M: TrainStep>(
    model: &M,
    data: &Dataset,
    batch_size: usize,
    metrics: &[Metric],
    device: &Device,
    max_batches: Option<usize>,
) -> Result<EvalReport> {
    check_classes_in_range(data)?;
    let indices: Vec<usize> = (0..data.len()).collect();
    let chunks: Vec<&[usize]> = indices
        .chunks(batch_size.max(1))
        .take(max_batches.unwrap_or(usize::MAX))
        .collect();
    let evaluated: usize = chunks.iter().map(|c| c.len()).sum();
    let task = task_of(&data.targets);
    let mut transaction = Transaction::default();
    let mut loss_sum = None;
    for chunk in &chunks {
        let (inputs, targets) = make_batch(data, chunk, device);
        let out = model.step(Batch { inputs, targets })?;
        transaction = transaction.register(model.predictions(out.outputs, task));
        let weighted = out.loss.value * (chunk.len() as f32);
        loss_sum = Some(match loss_sum {
            Some(sum) => sum + weighted,
            None => weighted,
        });
    }
    let Some(loss_sum) = loss_sum else {
        return Err(KilnError::Data("cannot evaluate an empty split".into()));
    };
    let mut values = transaction
        .register(loss_sum)
        .execute_async()
        .await
        .map_err(|e| KilnError::Training(format!("reading evaluation results failed: {e:?}")))?;
    let loss_data = values
        .pop()
        .ok_or_else(|| KilnError::Internal("evaluation returned no loss".into()))?;
    let loss = loss_data.iter::<f64>().next().unwrap_or(f64::NAN) / evaluated as f64;
    let outputs: Vec<f32> = values.iter().flat_map(|d| d.iter::<f32>()).collect();
    let shown: Vec<usize> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    Ok(match &data.targets {
        Targets::Classes(classes) => {
            let truth: Vec<u32> = shown.iter().map(|&i| classes[i]).collect();
            let predicted: Vec<u32> = outputs.iter().map(|&p| p as u32).collect();
            classification_report(metrics, loss, &truth, &predicted, data.num_outputs)
        }
        Targets::Values(v) => {
            let truth: Vec<f32> = shown.iter().map(|&i| v[i]).collect();
            regression_report(metrics, loss, &truth, &outputs)
        }
    })
}

fn task_of(targets: &Targets) -> Task {
    match targets {
        Targets::Classes(_) => Task::Classification,
        Targets::Values(_) => Task::Regression,
    }
}

/// A class label the model has no output for would index past its logits; name the sample.
fn check_classes_in_range(data: &Dataset) -> Result<()> {
    let outputs = data.num_outputs;
    let Some(classes) = data.classes() else {
        return Ok(());
    };
    match classes
        .iter()
        .enumerate()
        .find(|(_, c)| **c as usize >= outputs)
    {
        Some((sample, class)) => Err(KilnError::Data(format!(
            "sample {sample} (counting from 0) has label {class}, but the model predicts {outputs} \
             classes (labels 0 to {})",
            outputs.saturating_sub(1)
        ))),
        None => Ok(()),
    }
}
