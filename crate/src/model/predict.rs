//! Inference with a saved model: standardise, forward, softmax.

use super::network::Network;
use super::saved::SavedModel;
use super::trainable::{ModelBuilder, TrainStep};
use crate::config::Task;
use crate::error::{KilnError, Result};
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

/// A loaded model ready to predict: a config-built [`Network`] unless built with another
/// builder.
#[derive(Debug)]
pub struct Predictor<M: TrainStep = Network> {
    /// The model's metadata and weights as loaded.
    pub saved: SavedModel,
    model: M,
    device: Device,
}

impl Predictor {
    /// Loads a saved config-built model onto `device` (without autodiff).
    pub fn new(saved: SavedModel, device: &Device) -> Result<Self> {
        let model = saved.load_network(device)?.valid();
        Ok(Self {
            saved,
            model,
            device: device.clone(),
        })
    }
}

impl<M: TrainStep> Predictor<M> {
    /// Loads a saved model of `builder`'s architecture onto `device` (without autodiff).
    pub fn with_builder<B: ModelBuilder<Model = M>>(
        saved: SavedModel,
        builder: &B,
        device: &Device,
    ) -> Result<Self> {
        let model = saved.load_with(builder, device)?.valid();
        Ok(Self {
            saved,
            model,
            device: device.clone(),
        })
    }

    /// Number of values in one input sample.
    pub fn sample_len(&self) -> usize {
        self.saved.header.input_shape.iter().product()
    }

    /// Predicts a batch of row-major samples. Returns `rows × num_outputs` values: class
    /// probabilities for classification, predicted values for regression.
    pub async fn predict(&self, features: &[f32]) -> Result<Vec<f32>> {
        let n = self.sample_len();
        if features.is_empty() || !features.len().is_multiple_of(n) {
            return Err(KilnError::InvalidArgument(format!(
                "expected a multiple of {n} feature values (input shape {:?}), got {}",
                self.saved.header.input_shape,
                features.len()
            )));
        }
        if features.iter().any(|x| !x.is_finite()) {
            return Err(KilnError::InvalidArgument(
                "features must be finite numbers (found NaN or infinity)".into(),
            ));
        }
        let mut input = features.to_vec();
        if let Some(norm) = &self.saved.header.normalization {
            norm.apply(&mut input);
        }
        self.predict_standardized(input).await
    }

    /// Predicts texts with a text model, tokenising each with the model's own vocabulary.
    /// Returns `texts.len() × num_outputs` values, as [`Self::predict`] does.
    pub async fn predict_texts(&self, texts: &[String]) -> Result<Vec<f32>> {
        let vocabulary = self.saved.header.vocabulary.as_ref().ok_or_else(|| {
            KilnError::InvalidArgument(
                "this model was not trained on texts: give it feature values".into(),
            )
        })?;
        if texts.is_empty() {
            return Err(KilnError::InvalidArgument("no texts to predict".into()));
        }
        let ids = vocabulary.encode_all(texts.iter().map(String::as_str));
        self.predict_standardized(ids).await
    }

    /// Predicts samples that are already standardised (a prepared split's features), in
    /// row-major order; `features.len()` must be a multiple of the sample size.
    pub async fn predict_standardized(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        let n = self.sample_len();
        let rows = input.len() / n.max(1);
        let x = Tensor::<2>::from_data(TensorData::new(input, [rows, n]), &self.device);
        let out = self.model.forward(x);
        let out = match self.saved.task() {
            Task::Classification => softmax(out, 1),
            Task::Regression => out,
        };
        let data = out
            .into_data_async()
            .await
            .map_err(|e| KilnError::Internal(format!("reading predictions failed: {e:?}")))?;
        // Reduced-precision devices (`precision: f16`) hand back their own float type.
        data.convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| KilnError::Internal(format!("unexpected prediction data: {e:?}")))
    }
}

/// The index of the largest value in each row of `rows × width` values.
pub fn argmax_rows(values: &[f32], width: usize) -> Vec<usize> {
    values
        .chunks_exact(width.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i)
        })
        .collect()
}
