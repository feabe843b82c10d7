//! Data: loading the configured source, splitting it, and standardising features.

mod csv;
mod dataset;
mod digits;
mod idx;
mod split;

pub use csv::{CsvTable, load_csv_file, parse_table, read_text_file};
pub use dataset::{Dataset, Targets, dataset_from_labels, labels_to_classes};
pub use digits::load_digits;
pub use idx::{FASHION_MNIST_DIR, load_fashion_mnist, load_idx_pair, parse_idx_u8};
pub use split::{Normalization, Splits, epoch_order, split_indices};

use crate::config::{Config, DataSource, Task};
use crate::error::{KilnError, Result};
use std::path::Path;

/// A loaded source: all samples, plus the official test set for sources that have one.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The samples to split into train / validation (/ test).
    pub samples: Dataset,
    /// The source's own test set (Fashion-MNIST's t10k), used instead of a test fraction.
    pub official_test: Option<Dataset>,
}

/// Loads `config.data.source` from the embedded data or the file system.
pub fn load_source(config: &Config) -> Result<Loaded> {
    let data = &config.data;
    let needs_classes = |what: &str| {
        if config.task != Task::Classification {
            Err(KilnError::Config(format!(
                "task: `{what}` is a classification data set, set task: classification"
            )))
        } else {
            Ok(())
        }
    };
    let (samples, official_test) = match data.source {
        DataSource::Digits => {
            needs_classes("digits")?;
            (load_digits()?, None)
        }
        DataSource::FashionMnist => {
            needs_classes("fashion-mnist")?;
            let dir = data.path.as_deref().unwrap_or(FASHION_MNIST_DIR);
            let (train, test) = load_fashion_mnist(Path::new(dir))?;
            (train, Some(test))
        }
        DataSource::Csv => {
            let path = data
                .path
                .as_deref()
                .ok_or_else(|| KilnError::Config("data.path: required for csv".into()))?;
            let set = load_csv_file(
                Path::new(path),
                data.header,
                data.label_column.as_ref(),
                config.task,
            )?;
            (set, None)
        }
        DataSource::Idx => {
            needs_classes("idx")?;
            let (Some(images), Some(labels)) = (&data.images, &data.labels) else {
                return Err(KilnError::Config(
                    "data.images and data.labels: required for idx".into(),
                ));
            };
            (load_idx_pair(Path::new(images), Path::new(labels))?, None)
        }
        DataSource::Inline => {
            return Err(KilnError::Config(
                "data.source: `inline` needs the data arrays from the caller (the JS API's \
                 train(config, data)); use digits, fashion-mnist, csv or idx here"
                    .into(),
            ));
        }
    };
    Ok(Loaded {
        samples,
        official_test,
    })
}

/// Splits the loaded samples as configured and standardises them with training statistics.
pub fn prepare(config: &Config, loaded: Loaded) -> Result<Splits> {
    let data = &config.data;
    let limit = data.limit.unwrap_or(usize::MAX);
    let samples = loaded.samples.truncated(limit);
    let official_test = loaded.official_test.map(|t| t.truncated(limit));
    let fractions = if official_test.is_some() {
        let kept = data.split[0] + data.split[1];
        [data.split[0] / kept, data.split[1] / kept, 0.0]
    } else {
        data.split
    };
    let [train_i, val_i, test_i] = split_indices(&samples.targets, fractions, config.seed);
    let nonempty = |idx: &[usize]| (!idx.is_empty()).then(|| samples.select(idx));
    let mut val = nonempty(&val_i);
    let test_rows = match &official_test {
        Some(t) => (0..t.len()).collect(),
        None => test_i.clone(),
    };
    let mut test = official_test.or_else(|| nonempty(&test_i));
    let mut train = samples.into_selected(&train_i);
    let batch = config.training.batch_size;
    if train.len() < batch {
        return Err(KilnError::Data(format!(
            "the training split has {} samples, fewer than one batch (training.batch_size = \
             {batch}); use more data or a smaller batch size",
            train.len()
        )));
    }
    let normalization = data.normalize.then(|| Normalization::fit(&train));
    if let Some(norm) = &normalization {
        norm.apply(&mut train.features);
        for set in [&mut val, &mut test].into_iter().flatten() {
            norm.apply(&mut set.features);
        }
    }
    Ok(Splits {
        train,
        val,
        test,
        test_rows,
        normalization,
    })
}

/// Loads and splits the configured data in one go.
pub fn load_and_prepare(config: &Config) -> Result<Splits> {
    prepare(config, load_source(config)?)
}
