//! `/v1/models`: the directory model store under `DATA_DIR/models`, and online prediction.

use crate::serve::body_reader::BodyReader;
use crate::serve::problem::ApiError;
use crate::serve::state::{AppState, blocking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use kiln::KilnError;
use kiln::backend::{native_device, native_device_at};
use kiln::model::{Predictor, SavedModel, summary};
use kiln::store::{ModelId, ModelStore, import_into, list_models, load_model};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

fn no_model(id: &str) -> ApiError {
    ApiError::not_found(format!("no model {id}"))
}

/// The stored models (the same summaries as the JS `listModels()`: modelId, name, task, inputShape, numOutputs, createdUnixMs, metrics).
#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = Vec<Object>)))]
pub async fn list(State(state): State<AppState>) -> std::result::Result<Json<Value>, ApiError> {
    let store = state.runner.store.clone();
    let headers = blocking(move || futures::executor::block_on(list_models(&store))).await?;
    let summaries: Vec<_> = headers.iter().map(summary).collect();
    Ok(Json(serde_json::to_value(summaries).unwrap_or_default()))
}

async fn model_bytes(state: &AppState, id: &str) -> std::result::Result<Vec<u8>, ApiError> {
    let model_id = ModelId::parse(id).map_err(|_| no_model(id))?;
    let store = state.runner.store.clone();
    blocking(move || futures::executor::block_on(store.get(&model_id)))
        .await?
        .ok_or_else(|| no_model(id))
}

/// The model's portable `.kiln` bytes.
#[utoipa::path(get, path = "/v1/models/{model_id}", responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn download(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let bytes = model_bytes(&state, &model_id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{model_id}.kiln\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The model's summary (as the JS `model.info`).
#[utoipa::path(get, path = "/v1/models/{model_id}/info", responses((status = 200, body = Object), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn info(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> std::result::Result<Json<Value>, ApiError> {
    let bytes = model_bytes(&state, &model_id).await?;
    let saved = blocking(move || SavedModel::from_bytes(&bytes)).await?;
    Ok(Json(
        serde_json::to_value(summary(&saved.header)).unwrap_or_default(),
    ))
}

/// `?force=true` replaces a stored model with the same id.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Replace a model with the same id.
    pub force: Option<bool>,
}

/// The id of an imported model.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    /// The model id from the file's header.
    pub model_id: String,
}

/// Imports `.kiln` bytes (checked like `kiln models import`).
#[utoipa::path(post, path = "/v1/models", params(ImportQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Imported), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn import(
    State(state): State<AppState>,
    Query(query): Query<ImportQuery>,
    body: Bytes,
) -> std::result::Result<(StatusCode, Json<Imported>), ApiError> {
    let store = state.runner.store.clone();
    let force = query.force.unwrap_or(false);
    let id = blocking(move || {
        let device = native_device(kiln::backend::BackendKind::Cpu)?;
        futures::executor::block_on(import_into(&store, body.to_vec(), force, &device))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Imported {
            model_id: id.to_string(),
        }),
    ))
}

/// Deletes a model.
#[utoipa::path(delete, path = "/v1/models/{model_id}", responses((status = 204), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> std::result::Result<StatusCode, ApiError> {
    let id = ModelId::parse(&model_id).map_err(|_| no_model(&model_id))?;
    let store = state.runner.store.clone();
    let existed = blocking(move || futures::executor::block_on(store.delete(&id))).await?;
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_model(&model_id))
    }
}

/// `POST /v1/models/{model_id}/predict`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Row-major samples: numbers, or base64 of little-endian f32.
    #[schema(value_type = Object)]
    pub features: Features,
    /// `[rows, …sample]`; default: rows of the model's input size.
    pub shape: Option<Vec<usize>>,
}

/// Predictions.
#[derive(Debug, Serialize, ToSchema)]
pub struct PredictResponse {
    /// `rows × outputs` values: class probabilities or regression values.
    pub outputs: Vec<f32>,
    /// `[rows, outputs]`.
    pub shape: Vec<usize>,
}

/// Features as they stream out of the request body: an array of numbers is read straight into
/// `f32`s (never a JSON value per number), base64 is decoded once.
#[derive(Debug)]
pub struct Features(pub Vec<f32>);

impl<'de> Deserialize<'de> for Features {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(FeaturesVisitor).map(Features)
    }
}

struct FeaturesVisitor;

impl<'de> serde::de::Visitor<'de> for FeaturesVisitor {
    type Value = Vec<f32>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of numbers or base64 of little-endian f32")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Vec<f32>, A::Error> {
        let mut values = Vec::with_capacity(FEATURES_CAPACITY.with(|c| c.replace(0)));
        while let Some(value) = seq.next_element::<f64>()? {
            values.push(value as f32);
        }
        Ok(values)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<Vec<f32>, E> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| E::custom(format_args!("not base64: {e}")))?;
        if bytes.len() % 4 != 0 {
            return Err(E::custom(format_args!(
                "{} bytes of base64 are not whole f32 values",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

std::thread_local! {
    /// How many numbers the features array being parsed on this thread can hold at most
    /// (reserved, not touched: pages that are never written cost no memory).
    static FEATURES_CAPACITY: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A predict request's body parsed into typed values as it streams in: the features straight
/// into `f32`s (never a JSON value per number, never the whole body beside them). `declared`:
/// its `Content-Length`, if it has one.
fn parse_predict_request(
    mut body: BodyReader,
    declared: Option<usize>,
) -> std::result::Result<PredictRequest, ApiError> {
    // Every number but the last takes two bytes at least (`0,`).
    FEATURES_CAPACITY.with(|c| c.set(declared.map_or(0, |n| n / 2 + 1)));
    let parsed = {
        let buffered = std::io::BufReader::with_capacity(64 << 10, &mut body);
        let mut reader = serde_json::Deserializer::from_reader(buffered);
        serde_path_to_error::deserialize::<_, PredictRequest>(&mut reader)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_input(format!("{path}: {}", e.into_inner()))
            })
            .and_then(|parsed| {
                reader.end().map(|()| parsed).map_err(|e| {
                    ApiError::bad_input(format!("the body is not one JSON object: {e}"))
                })
            })
    };
    FEATURES_CAPACITY.with(|c| c.set(0));
    match body.take_failure() {
        Some(failure) => Err(failure),
        None => parsed,
    }
}

/// Predicts with a stored model.
#[utoipa::path(post, path = "/v1/models/{model_id}/predict", request_body = PredictRequest,
    responses((status = 200, body = PredictResponse), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json"), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn predict(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> std::result::Result<Json<PredictResponse>, ApiError> {
    ModelId::parse(&model_id).map_err(|_| no_model(&model_id))?;
    let store = state.runner.store.clone();
    // The model is checked before the body is parsed: a request for no model costs no parse.
    if model_bytes(&state, &model_id).await.is_err() {
        return Err(no_model(&model_id));
    }
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = BodyReader::new(body);
    let request = blocking(move || Ok(parse_predict_request(body, declared))).await??;
    let device = state.runner.device;
    let response = blocking(move || {
        let features = request.features.0;
        let saved = futures::executor::block_on(load_model(&store, &model_id))?;
        let outputs_per_row = saved.header.num_outputs;
        let predictor = Predictor::new(saved, &native_device_at(device)?)?;
        let sample = predictor.sample_len();
        if let Some(shape) = &request.shape {
            let elements = kiln::limits::checked_elements(shape, "shape")?;
            let per_row: usize = shape.iter().skip(1).product();
            if elements != features.len() || per_row != sample {
                return Err(KilnError::InvalidArgument(format!(
                    "shape: {shape:?} does not fit {} feature values of samples with {sample} \
                     values each",
                    features.len()
                )));
            }
        }
        let outputs = futures::executor::block_on(predictor.predict(&features))?;
        let rows = outputs.len() / outputs_per_row.max(1);
        Ok(PredictResponse {
            outputs,
            shape: vec![rows, outputs_per_row],
        })
    })
    .await?;
    Ok(Json(response))
}
