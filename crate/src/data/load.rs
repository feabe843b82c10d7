//! Loading a config's data source and preparing its splits (normalised, tokenised).

#[cfg(not(target_family = "wasm"))]
use super::load_texts;
use super::{
    Dataset, FASHION_MNIST_DIR, LabelledTexts, Normalization, Splits, Targets, Vocabulary,
    load_csv_file, load_digits, load_fashion_mnist, load_idx_pair, split_indices, split_warnings,
};
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
    /// A text source's texts: `samples` then holds each text's index as its one feature, and
    /// the texts are tokenised once the training split is known.
    pub texts: Option<LabelledTexts>,
}

impl Loaded {
    /// Labelled texts, with each sample's feature its text's index.
    pub fn from_texts(texts: LabelledTexts) -> Result<Self> {
        let indices = (0..texts.texts.len()).map(|i| i as f32).collect();
        let classes = Targets::Classes(texts.classes.clone());
        let samples = Dataset::new(indices, classes, vec![1], texts.class_names.len())?;
        Ok(Self {
            samples,
            official_test: None,
            texts: Some(texts),
        })
    }
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
        DataSource::Text => {
            needs_classes("text")?;
            let path = data
                .path
                .as_deref()
                .ok_or_else(|| KilnError::Config("data.path: required for text".into()))?;
            return load_text_source(config, Path::new(path));
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
        texts: None,
    })
}

#[cfg(not(target_family = "wasm"))]
fn load_text_source(config: &Config, path: &Path) -> Result<Loaded> {
    let data = &config.data;
    Loaded::from_texts(load_texts(
        path,
        &data.text,
        data.label_column.as_ref(),
        data.header,
    )?)
}

#[cfg(target_family = "wasm")]
fn load_text_source(_: &Config, path: &Path) -> Result<Loaded> {
    Err(KilnError::Config(format!(
        "data.source: `text` reads files ({}), which a browser or Node wasm cannot; train text \
         natively (kiln train / kiln serve)",
        path.display()
    )))
}

/// Replaces text indices with token ids: a vocabulary is fitted on the training texts and every
/// split is encoded with it.
fn tokenise(
    texts: &LabelledTexts,
    config: &Config,
    train: &mut Dataset,
    others: [Option<&mut Dataset>; 2],
) -> Result<Vocabulary> {
    if config.training.precision == crate::config::Precision::F16 {
        return Err(KilnError::Config(
            "training.precision: must be f32 for texts (token ids above 2048 are not exact in \
             f16), got f16"
                .into(),
        ));
    }
    if config.data.text.max_len == 0 || config.data.text.vocab_size < 3 {
        return Err(KilnError::Config(format!(
            "data.text: max_len must be at least 1 and vocab_size at least 3, got {} and {}",
            config.data.text.max_len, config.data.text.vocab_size
        )));
    }
    let text_of =
        |set: &Dataset| -> Vec<usize> { set.features.iter().map(|&i| i as usize).collect() };
    let train_texts = text_of(train);
    let vocabulary = Vocabulary::fit(
        train_texts.iter().map(|&i| texts.texts[i].as_str()),
        &config.data.text,
        texts.class_names.clone(),
    );
    for set in std::iter::once(train).chain(others.into_iter().flatten()) {
        let rows = text_of(set);
        crate::limits::checked_elements(
            &[rows.len(), vocabulary.max_len],
            "texts × data.text.max_len",
        )?;
        let features = vocabulary.encode_all(rows.iter().map(|&i| texts.texts[i].as_str()));
        *set = Dataset::new(
            features,
            set.targets.clone(),
            vec![vocabulary.max_len],
            set.num_outputs,
        )?;
    }
    Ok(vocabulary)
}

/// Splits the loaded samples as configured and standardises them with training statistics.
pub fn prepare(config: &Config, loaded: Loaded) -> Result<Splits> {
    let data = &config.data;
    let limit = data.limit.unwrap_or(usize::MAX);
    let loaded_texts = loaded.texts;
    let samples = if loaded_texts.is_some() && limit < loaded.samples.len() {
        // Class folders are read one after another: a limit takes a stratified random subset.
        let fraction = limit as f64 / loaded.samples.len() as f64;
        let [kept, _, _] = split_indices(
            &loaded.samples.targets,
            [fraction, 1.0 - fraction, 0.0],
            config.seed,
        );
        loaded.samples.into_selected(&kept)
    } else {
        loaded.samples.truncated(limit)
    };
    let official_test = loaded.official_test.map(|t| t.truncated(limit));
    let fractions = if official_test.is_some() {
        let kept = data.split[0] + data.split[1];
        [data.split[0] / kept, data.split[1] / kept, 0.0]
    } else {
        data.split
    };
    let [train_i, val_i, test_i] = split_indices(&samples.targets, fractions, config.seed);
    let num_classes = matches!(samples.targets, Targets::Classes(_)).then_some(samples.num_outputs);
    let test_size = official_test.as_ref().map_or(test_i.len(), Dataset::len);
    let warnings = split_warnings(
        data.split,
        [train_i.len(), val_i.len(), test_size],
        num_classes,
    );
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
    let vocabulary = match &loaded_texts {
        Some(texts) => Some(tokenise(
            texts,
            config,
            &mut train,
            [val.as_mut(), test.as_mut()],
        )?),
        None => None,
    };
    // Token ids are not standardised.
    let normalization =
        (data.normalize && vocabulary.is_none()).then(|| Normalization::fit(&train));
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
        vocabulary,
        warnings,
    })
}

/// Loads and splits the configured data in one go.
pub fn load_and_prepare(config: &Config) -> Result<Splits> {
    prepare(config, load_source(config)?)
}
