//! Uploaded datasets: a CSV (read like the `csv` source) or a safetensors file with `features`
//! (f32 or u8, `[n, …sample]`) and `labels` (i32 or f32, `[n]`). The upload is checked and kept
//! as sent under `DATA_DIR/datasets/`; a job reads it with its own task.

use crate::serve::registry::{DatasetRow, now_ms};
use kiln::Config;
use kiln::config::{DataSource, LabelColumn};
use kiln::data::{Loaded, dataset_from_labels, for_each_row, label_index, parse_table};
use kiln::limits::checked_elements;
use kiln::{KilnError, Result};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// The formats an upload can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `text/csv`.
    Csv,
    /// `application/octet-stream`: safetensors.
    Safetensors,
}

kiln::display_serde_name!(Format);

impl Format {
    /// The format for a Content-Type header.
    pub fn from_content_type(content_type: Option<&str>) -> kiln::Result<Self> {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("text/csv") => Ok(Self::Csv),
            Some("application/octet-stream") => Ok(Self::Safetensors),
            other => Err(kiln::KilnError::InvalidArgument(format!(
                "Content-Type: a dataset is text/csv or application/octet-stream (a safetensors \
                 file with `features` and `labels`), got {}",
                other.unwrap_or("none")
            ))),
        }
    }
}

/// Where a dataset's file lives.
pub fn dataset_key(id: &str, format: &str) -> String {
    format!("datasets/{id}.{format}")
}

/// The CSV settings of an upload (`?label_column=&header=`).
#[derive(Debug, Clone)]
pub struct CsvSettings {
    /// Whether the first line names the columns.
    pub header: bool,
    /// The label column (default: the last).
    pub label_column: Option<LabelColumn>,
}

impl CsvSettings {
    /// From the query values; a label column that is a whole number is an index.
    pub fn from_query(header: Option<bool>, label_column: Option<String>) -> Self {
        let label_column = label_column.map(|c| match c.parse::<usize>() {
            Ok(i) => LabelColumn::Index(i),
            Err(_) => LabelColumn::Name(c),
        });
        Self {
            header: header.unwrap_or(true),
            label_column,
        }
    }
}

/// Checks an upload; returns its row (id, rows, sample shape) without storing anything.
pub fn inspect(bytes: &[u8], format: Format, csv: &CsvSettings) -> Result<DatasetRow> {
    let (rows, sample_shape) = match format {
        Format::Csv => {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| KilnError::Data(format!("the uploaded CSV is not UTF-8 text: {e}")))?;
            // Checked row by row, nothing kept: an upload costs its own bytes, not a table.
            let mut rows = 0usize;
            let (header, width) = for_each_row(text, csv.header, "the uploaded CSV", |_, _| {
                rows += 1;
                Ok(())
            })?;
            label_index(
                header.as_deref(),
                width,
                csv.label_column.as_ref(),
                "the uploaded CSV",
            )?;
            if width < 2 {
                return Err(KilnError::Data(
                    "the uploaded CSV needs at least one feature column besides the label".into(),
                ));
            }
            (rows, vec![width - 1])
        }
        Format::Safetensors => {
            let (features, shape, labels) = read_safetensors(bytes)?;
            drop((features, labels));
            (shape[0], shape[1..].to_vec())
        }
    };
    Ok(DatasetRow {
        id: format!("dataset-{}", uuid::Uuid::new_v4()),
        format: format.to_string(),
        rows: rows as i64,
        sample_shape: serde_json::to_string(&sample_shape).unwrap_or_else(|_| "[]".into()),
        header: csv.header,
        label_column: csv
            .label_column
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok()),
        bytes: bytes.len() as i64,
        created_at: now_ms(),
    })
}

/// Reads `features` and `labels` from a safetensors file.
fn read_safetensors(bytes: &[u8]) -> Result<(Vec<f32>, Vec<usize>, Vec<f64>)> {
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| KilnError::Data(format!("the uploaded file is not safetensors: {e}")))?;
    let tensor = |name: &str| {
        tensors.tensor(name).map_err(|_| {
            KilnError::Data(format!(
                "the safetensors file has no tensor `{name}` (it needs `features` [n, …sample] \
                 and `labels` [n])"
            ))
        })
    };
    let features = tensor("features")?;
    let shape = features.shape().to_vec();
    if shape.len() < 2 {
        return Err(KilnError::Data(format!(
            "features: shape must be [n, …sample], got {shape:?}"
        )));
    }
    checked_elements(&shape, "features")?;
    let values: Vec<f32> = match features.dtype() {
        Dtype::F32 => features
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::U8 => features.data().iter().map(|&b| f32::from(b)).collect(),
        other => {
            return Err(KilnError::Data(format!(
                "features: dtype must be F32 or U8, got {other:?}"
            )));
        }
    };
    let labels = tensor("labels")?;
    if labels.shape() != [shape[0]] {
        return Err(KilnError::Data(format!(
            "labels: shape must be [{}] (one per sample), got {:?}",
            shape[0],
            labels.shape()
        )));
    }
    let labels: Vec<f64> = match labels.dtype() {
        Dtype::I32 => labels
            .data()
            .chunks_exact(4)
            .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        Dtype::F32 => labels
            .data()
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        other => {
            return Err(KilnError::Data(format!(
                "labels: dtype must be I32 or F32, got {other:?}"
            )));
        }
    };
    Ok((values, shape, labels))
}

/// Reads a stored dataset for a job, with the job's task; a CSV is read with the label column
/// and header given at upload.
pub fn load(file: &Path, row: &DatasetRow, config: &Config) -> Result<Loaded> {
    let bytes = std::fs::read(file)
        .map_err(|e| KilnError::io(format!("cannot read dataset {}", row.id), e))?;
    let samples = if row.format == "csv" {
        let text = String::from_utf8(bytes)
            .map_err(|_| KilnError::Data(format!("dataset {} is not UTF-8", row.id)))?;
        let label_column = row
            .label_column
            .as_deref()
            .and_then(|c| serde_json::from_str::<LabelColumn>(c).ok());
        parse_table(&text, row.header, &format!("dataset {}", row.id))?
            .into_dataset(label_column.as_ref(), config.task)?
    } else {
        let (features, shape, labels) = read_safetensors(&bytes)?;
        dataset_from_labels(features, shape[1..].to_vec(), &labels, config.task, &|i| {
            format!("labels[{i}]")
        })?
    };
    Ok(Loaded {
        samples,
        official_test: None,
        texts: None,
    })
}

/// A stored dataset's features for prediction by a model with `sample_len` inputs: a CSV's
/// columns are all features when there are `sample_len` of them, or all but the label column
/// given at upload when there is one more.
pub fn prediction_features(file: &Path, row: &DatasetRow, sample_len: usize) -> Result<Vec<f32>> {
    let bytes = std::fs::read(file)
        .map_err(|e| KilnError::io(format!("cannot read dataset {}", row.id), e))?;
    if row.format != "csv" {
        let (features, shape, _) = read_safetensors(&bytes)?;
        let per_sample: usize = shape[1..].iter().product();
        if per_sample != sample_len {
            return Err(KilnError::Data(format!(
                "dataset {}: samples of shape {:?} ({per_sample} values), the model takes \
                 {sample_len}",
                row.id,
                &shape[1..]
            )));
        }
        return Ok(features);
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| KilnError::Data(format!("dataset {} is not UTF-8", row.id)))?;
    let table = parse_table(&text, row.header, &format!("dataset {}", row.id))?;
    let width = table.width;
    let skip = if width == sample_len {
        None
    } else if width == sample_len + 1 {
        let column = row
            .label_column
            .as_deref()
            .and_then(|c| serde_json::from_str::<LabelColumn>(c).ok());
        Some(table.label_index(column.as_ref())?)
    } else {
        return Err(KilnError::Data(format!(
            "dataset {}: {width} columns, the model takes {sample_len} features (or {} with a \
             label column)",
            row.id,
            sample_len + 1
        )));
    };
    Ok(table
        .rows()
        .flat_map(|r| {
            r.iter()
                .enumerate()
                .filter(move |(i, _)| Some(*i) != skip)
                .map(|(_, v)| *v as f32)
        })
        .collect())
}

/// Refuses the run settings a remote job may not choose: a directory on the server, a device
/// (the worker's `--device` decides), or an MLflow server other than the worker's `--mlflow`.
pub fn check_remote_run_settings(config: &Config, server_mlflow: Option<&str>) -> Result<()> {
    if let Some(dir) = &config.output_dir {
        return Err(KilnError::Config(format!(
            "output_dir: a remote job cannot name a server-side directory (got {dir:?}); the \
             server keeps each job's files itself"
        )));
    }
    if !config.gpus.is_empty() {
        return Err(KilnError::Config(format!(
            "gpus: a remote job runs on its worker's device (kiln serve --device), got {:?}; \
             route jobs to workers with resources.labels",
            config.gpus
        )));
    }
    let Some(mlflow) = &config.tracking.mlflow else {
        return Ok(());
    };
    match (server_mlflow, mlflow.uri.as_deref()) {
        (None, _) => Err(KilnError::Config(
            "tracking.mlflow: this server logs to no MLflow tracking server (start it with \
             `kiln serve --mlflow URI`)"
                .into(),
        )),
        (Some(server), Some(asked))
            if asked.trim_end_matches('/') != server.trim_end_matches('/') =>
        {
            Err(KilnError::Config(format!(
                "tracking.mlflow.uri: this server logs to its own MLflow server ({server}); a job \
                 cannot point it at another (got {asked:?}): leave uri out"
            )))
        }
        _ => Ok(()),
    }
}

/// Reads a remote config's `data.source` for a job that trains on an uploaded dataset of
/// `format`: a source naming the dataset's own format (`csv` for a CSV upload) means "the
/// upload", as `inline` does, and becomes `inline`; a format source that contradicts the
/// upload is refused saying so. Other sources are left for [`check_remote_data`].
pub fn source_for_dataset(config: &mut serde_json::Value, dataset: &DatasetRow) -> Result<()> {
    let Some(data) = config.get_mut("data").and_then(|d| d.as_object_mut()) else {
        return Ok(());
    };
    let Some(source) = data.get("source").and_then(|s| s.as_str()) else {
        return Ok(());
    };
    match (source, dataset.format.as_str()) {
        ("csv", "csv") => {
            data.insert("source".into(), "inline".into());
            Ok(())
        }
        ("csv", format) => Err(KilnError::Config(format!(
            "data.source: csv contradicts dataset {} (a {format} upload): set data.source to \
             inline or leave it out",
            dataset.id
        ))),
        _ => Ok(()),
    }
}

/// Refuses what a remote config may not say: a server-side path, or a source that reads the
/// server's files. Remote jobs train on an uploaded dataset or the embedded `digits`.
pub fn check_remote_data(config: &Config, has_dataset: bool) -> Result<()> {
    let data = &config.data;
    for (field, value) in [
        ("data.path", &data.path),
        ("data.images", &data.images),
        ("data.labels", &data.labels),
    ] {
        if let Some(value) = value {
            return Err(KilnError::Config(format!(
                "{field}: a remote job cannot name a server-side path (got {value:?}); upload the \
                 data with POST /v1/datasets and pass its id as `dataset`"
            )));
        }
    }
    if let Some(init) = &config.model.init_from {
        return Err(KilnError::Config(format!(
            "model.init_from: a remote job cannot name server-side files (got {:?}); fine-tune \
             with `kiln train` or in the npm package",
            init.path
                .as_deref()
                .or(init.url.as_deref())
                .unwrap_or_default()
        )));
    }
    match (data.source, has_dataset) {
        // With a dataset, `inline` (data handed over by the caller) and the default `digits`
        // both mean "the uploaded data".
        (DataSource::Inline | DataSource::Digits, true) | (DataSource::Digits, false) => Ok(()),
        (source, true) => Err(KilnError::Config(format!(
            "data.source: a job with a `dataset` trains on it: set data.source to inline (or csv \
             for a CSV upload) or leave it out, got {}",
            source_name(source)
        ))),
        (DataSource::FashionMnist | DataSource::Idx, false) => Err(KilnError::Config(
            "data.source: fashion-mnist and idx read the server's files; upload the data with \
             POST /v1/datasets and pass its id as `dataset`"
                .into(),
        )),
        (source, false) => Err(KilnError::Config(format!(
            "data.source: {} needs uploaded data: POST /v1/datasets, then pass its id as \
             `dataset` (remote jobs without one train on the embedded digits)",
            source_name(source)
        ))),
    }
}

fn source_name(source: DataSource) -> String {
    serde_json::to_value(source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn csv_uploads_are_checked_with_their_settings() {
        let csv = b"a,b,label\n1,2,0\n3,4,1\n";
        let by_name = CsvSettings::from_query(Some(true), Some("label".into()));
        let row = inspect(csv, Format::Csv, &by_name).unwrap();
        assert_eq!((row.rows, row.sample_shape.as_str()), (2, "[2]"));
        assert!(row.id.starts_with("dataset-"));
        let missing = CsvSettings::from_query(Some(true), Some("nope".into()));
        let e = inspect(csv, Format::Csv, &missing).unwrap_err().to_string();
        assert!(e.contains("no column named `nope`"), "{e}");
        let by_index = CsvSettings::from_query(Some(true), Some("7".into()));
        let e = inspect(csv, Format::Csv, &by_index)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label_column"), "{e}");
        let e = inspect(&[0xff, 0xfe], Format::Csv, &by_name)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn safetensors_uploads_need_features_and_matching_labels() {
        let settings = CsvSettings::from_query(None, None);
        let mut data = Vec::new();
        for v in [0.0f32, 1.0, 2.0, 3.0] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        for l in [0i32, 1] {
            data.extend_from_slice(&l.to_le_bytes());
        }
        let good = r#"{"features":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"labels":{"dtype":"I32","shape":[2],"data_offsets":[16,24]}}"#;
        let row = inspect(&safetensors(good, &data), Format::Safetensors, &settings).unwrap();
        assert_eq!((row.rows, row.sample_shape.as_str()), (2, "[2]"));
        let short = r#"{"features":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"labels":{"dtype":"I32","shape":[1],"data_offsets":[16,20]}}"#;
        let e = inspect(
            &safetensors(short, &data[..20]),
            Format::Safetensors,
            &settings,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("labels: shape must be [2]"), "{e}");
        let no_labels = r#"{"features":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
        let e = inspect(
            &safetensors(no_labels, &data[..16]),
            Format::Safetensors,
            &settings,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no tensor `labels`"), "{e}");
        let e = inspect(b"junk", Format::Safetensors, &settings)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not safetensors"), "{e}");
    }

    #[test]
    fn a_source_naming_the_uploads_format_means_the_upload() {
        let mut row = inspect(
            b"a,b,label\n1,2,0\n3,4,1\n",
            Format::Csv,
            &CsvSettings::from_query(None, None),
        )
        .unwrap();
        let mut config = serde_json::json!({"data": {"source": "csv"}, "seed": 1});
        source_for_dataset(&mut config, &row).unwrap();
        assert_eq!(config["data"]["source"], "inline");
        let parsed = Config::from_value(config).unwrap();
        assert!(check_remote_data(&parsed, true).is_ok());
        row.format = "safetensors".into();
        let mut config = serde_json::json!({"data": {"source": "csv"}});
        let e = source_for_dataset(&mut config, &row)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data.source: csv contradicts dataset") && e.contains("safetensors"),
            "{e}"
        );
        let mut untouched = serde_json::json!({"data": {"source": "text"}});
        source_for_dataset(&mut untouched, &row).unwrap();
        assert_eq!(untouched["data"]["source"], "text");
    }

    #[test]
    fn remote_configs_name_no_server_path() {
        let config = |yaml: &str| Config::from_yaml_str(yaml).unwrap();
        assert!(check_remote_data(&config("{}"), false).is_ok());
        assert!(check_remote_data(&config("data: {source: inline}"), true).is_ok());
        let e = check_remote_data(&config("data: {source: csv, path: /etc/passwd}"), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data.path: a remote job cannot name a server-side path"),
            "{e}"
        );
        let e = check_remote_data(&config("data: {source: fashion-mnist}"), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fashion-mnist and idx read the server's files"),
            "{e}"
        );
        let e = check_remote_data(&config("data: {source: inline}"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.source: inline needs uploaded data"), "{e}");
    }
}
