//! `kiln eval`, `kiln predict` and `kiln models ...`.

use crate::cli::ModelsAction;
use burn::module::Module;
use futures::executor::block_on;
use kiln::backend::{BackendKind, native_device};
use kiln::data::{Dataset, load_and_prepare, load_idx_pair, parse_table, read_text_file};
use kiln::limits::read_file_limited;
use kiln::model::{Predictor, SavedModel, predictions_csv};
use kiln::store::{DirStore, ModelId, ModelStore, import_into, list_models, load_model};
use kiln::train::evaluate;
use kiln::{KilnError, Result};
use std::path::{Path, PathBuf};

/// A model given as a store id or as a `.kiln` file path.
pub fn resolve_model(store: &DirStore, reference: &str) -> Result<SavedModel> {
    let path = Path::new(reference);
    if path.is_file() {
        return SavedModel::from_bytes(&read_file_limited(path, "model file")?);
    }
    if ModelId::parse(reference).is_err() {
        return Err(KilnError::InvalidArgument(format!(
            "`{reference}` is neither a model file nor a model id in {}",
            store.root().display()
        )));
    }
    block_on(load_model(store, reference))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| KilnError::Internal(format!("cannot encode JSON: {e}")))
}

/// What `kiln eval` evaluates on.
pub enum EvalData {
    /// The test split of the model's own config.
    TestSplit,
    /// A labelled CSV with the training columns.
    Csv(PathBuf),
    /// An IDX images file and its labels file.
    Idx {
        /// The images (`idx3-ubyte`, optionally gzipped).
        images: PathBuf,
        /// The labels (`idx1-ubyte`, optionally gzipped).
        labels: PathBuf,
    },
}

impl EvalData {
    /// What `--data`, or `--images` with `--labels`, name; the model's test split without them.
    pub fn of(csv: Option<PathBuf>, idx: Option<(PathBuf, PathBuf)>) -> Self {
        match (csv, idx) {
            (Some(csv), _) => Self::Csv(csv),
            (None, Some((images, labels))) => Self::Idx { images, labels },
            (None, None) => Self::TestSplit,
        }
    }
}

/// `kiln eval`: metrics of a saved model on its own test split, a labelled CSV or an IDX pair.
pub fn eval(store: &DirStore, model: &str, data: EvalData, backend: BackendKind) -> Result<()> {
    let saved = resolve_model(store, model)?;
    let device = native_device(backend)?;
    let config = &saved.header.config;
    let dataset: Dataset = match data {
        EvalData::Csv(path) => {
            let text = read_text_file(&path, "CSV")?;
            let set = parse_table(&text, config.data.header, &path.display().to_string())?
                .into_dataset(config.data.label_column.as_ref(), config.task)?;
            for_model(&saved, set)?
        }
        EvalData::Idx { images, labels } => for_model(&saved, load_idx_pair(&images, &labels)?)?,
        EvalData::TestSplit => load_and_prepare(config)?.test.ok_or_else(|| {
            KilnError::InvalidArgument(
                "the model's config has no test split (data.split[2] is 0): pass --data FILE.csv \
                 or --images/--labels"
                    .into(),
            )
        })?,
    };
    let network = saved.load_network(&device)?.valid();
    let report = block_on(evaluate(
        &network,
        &dataset,
        config.training.batch_size,
        &config.validation.metrics,
        &device,
        None,
    ))?;
    println!("{}", json(&report)?);
    Ok(())
}

/// Shapes an external data set like the model's training data: same sample size, the model's
/// input shape and outputs, and the training set's normalisation.
pub(crate) fn for_model(saved: &SavedModel, mut set: Dataset) -> Result<Dataset> {
    check_width(saved, set.sample_len())?;
    set.sample_shape = saved.header.input_shape.clone();
    set.num_outputs = saved.header.num_outputs;
    if let Some(norm) = &saved.header.normalization {
        norm.apply(&mut set.features);
    }
    Ok(set)
}

fn check_width(saved: &SavedModel, width: usize) -> Result<()> {
    let expected: usize = saved.header.input_shape.iter().product();
    if width != expected {
        return Err(KilnError::Data(format!(
            "the data has {width} values per sample but the model expects {expected}"
        )));
    }
    Ok(())
}

/// `kiln predict`: one output row per input row.
pub fn predict(
    store: &DirStore,
    model: &str,
    input: &Path,
    output: Option<PathBuf>,
    backend: BackendKind,
) -> Result<()> {
    if let Some(out) = &output {
        refuse_same_file(input, out, "--input")?;
        refuse_same_file(&model_file(store, model), out, "--model")?;
    }
    let saved = resolve_model(store, model)?;
    let device = native_device(backend)?;
    if saved.header.vocabulary.is_some() {
        // A text model: a CSV with a header, texts in its `text` column (or the first).
        let texts = kiln::data::read_text_column(input)?;
        let (task, outputs) = (saved.task(), saved.header.num_outputs);
        let values = block_on(Predictor::new(saved, &device)?.predict_texts(&texts))?;
        return write_predictions(&predictions_csv(&values, outputs, task), output);
    }
    let text = read_text_file(input, "CSV")?;
    let has_header = kiln::data::first_record_is_header(&text);
    let table = parse_table(&text, has_header, &input.display().to_string())?;
    check_width(&saved, table.width)?;
    let features: Vec<f32> = table.values.iter().map(|&v| v as f32).collect();
    let task = saved.task();
    let outputs = saved.header.num_outputs;
    let predictor = Predictor::new(saved, &device)?;
    let values = block_on(predictor.predict(&features))?;
    write_predictions(&predictions_csv(&values, outputs, task), output)
}

/// Writes predictions to `output`, or stdout.
fn write_predictions(csv: &str, output: Option<PathBuf>) -> Result<()> {
    match output {
        Some(path) => kiln::store::write_atomic(&path, csv.as_bytes()),
        None => {
            print!("{csv}");
            Ok(())
        }
    }
}

/// The file a `--model` reference reads: the path itself, or the store's file of a model id.
fn model_file(store: &DirStore, reference: &str) -> PathBuf {
    match ModelId::parse(reference) {
        Ok(id) if !Path::new(reference).is_file() => store.path_of(&id),
        _ => PathBuf::from(reference),
    }
}

/// `--output` must not be one of the command's inputs (or a link to one): writing there would
/// destroy it. `flag` names the input (`--input`, `--model`).
fn refuse_same_file(input: &Path, output: &Path, flag: &str) -> Result<()> {
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(KilnError::InvalidArgument(format!(
            "--output {} is the {flag} file: writing predictions there would destroy it; pick \
             another file",
            output.display()
        )));
    }
    Ok(())
}

/// `kiln models ...`.
pub fn models(store: &DirStore, action: ModelsAction) -> Result<()> {
    match action {
        ModelsAction::List { json: as_json } => {
            let headers = block_on(list_models(store))?;
            if as_json {
                println!("{}", json(&headers)?);
            } else if headers.is_empty() {
                eprintln!("no models in {}", store.root().display());
            } else {
                println!("{:<38} {:<20} {:<12} metrics", "id", "name", "input");
                for h in headers {
                    let metric = h
                        .metrics
                        .get("test_accuracy")
                        .map(|v| format!("test_accuracy {v:.4}"))
                        .unwrap_or_default();
                    println!(
                        "{:<38} {:<20} {:<12} {metric}",
                        h.model_id,
                        h.name,
                        format!("{:?}", h.input_shape)
                    );
                }
            }
            Ok(())
        }
        ModelsAction::Show { id } => {
            let saved = resolve_model(store, &id)?;
            println!("{}", json(&saved.header)?);
            Ok(())
        }
        ModelsAction::Export { id, file } => {
            let saved = resolve_model(store, &id)?;
            kiln::store::write_atomic(&file, &saved.to_bytes()?)?;
            eprintln!("exported {id} to {}", file.display());
            Ok(())
        }
        ModelsAction::Import { file, force } => {
            let bytes = read_file_limited(&file, "model file")?;
            let id = block_on(import_into(
                store,
                bytes,
                force,
                &kiln::backend::cpu_device(),
            ))?;
            println!("{id}");
            Ok(())
        }
        ModelsAction::Rm { id } => {
            let id = ModelId::parse(&id)?;
            if block_on(store.delete(&id))? {
                eprintln!("deleted {id}");
                Ok(())
            } else {
                Err(KilnError::Model(format!(
                    "no model with id `{id}` in {}",
                    store.root().display()
                )))
            }
        }
    }
}
