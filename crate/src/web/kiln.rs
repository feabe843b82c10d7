//! `Kiln`: a device, a backend choice and a model store, from which jobs and models are made.

use super::convert::{config_from_js, data_from_js, js_error, to_js};
use super::device::{BackendInfo, open};
use super::job::{JobShared, TrainingJob};
use super::model::Model;
use super::panic;
use super::startup;
use super::store::JsStore;
use crate::data::{load_source, prepare};
use crate::error::KilnError;
use crate::jobs::{Job, JobRun, run_job};
use crate::limits::Limits;
use crate::model::{Predictor, SavedModel};
use crate::store::{ModelId, ModelStore, import_into, list_models, load_model};
use burn::tensor::Device;
use futures::future::LocalBoxFuture;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise, spawn_local};

/// What a `Kiln` and the futures it spawns share: the device, the backend and the store.
pub(super) struct Shared {
    pub(super) device: Device,
    pub(super) backend: BackendInfo,
    pub(super) store: JsStore,
}

/// The entry point of the JS API. Use the package's `Kiln.create(...)`, which picks the
/// backend and the model store, rather than `Kiln.open` directly.
#[wasm_bindgen]
pub struct Kiln {
    pub(super) shared: Rc<Shared>,
}

/// A future that resolves on the next macrotask, so the event loop runs between reads.
pub(super) fn next_tick() -> LocalBoxFuture<'static, ()> {
    Box::pin(async {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let set_timeout = js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into())
                .ok()
                .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
            match set_timeout {
                Some(set_timeout) => {
                    let _ = set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from(0));
                }
                None => {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
        });
        let _ = JsFuture::from(promise).await;
    })
}

#[wasm_bindgen]
impl Kiln {
    /// Opens `backend` (`"webgpu"` or `"cpu"`) with a JS model store object. `reason` is
    /// recorded when `auto` picked the backend.
    pub async fn open(
        backend: String,
        store: JsValue,
        reason: Option<String>,
    ) -> Result<Kiln, JsValue> {
        startup::run_constructors_once();
        panic::install();
        let store = JsStore::new(store).map_err(js_error)?;
        let (device, backend) = open(&backend, reason).await.map_err(js_error)?;
        Ok(Kiln {
            shared: Rc::new(Shared {
                device,
                backend,
                store,
            }),
        })
    }

    /// Puts input limits in force for this wasm instance: an object with any of
    /// `maxConfigBytes`, `maxConfigDepth`, `maxLayers`, `maxParameters`, `maxTensorElements`,
    /// `maxFileBytes` (the rest keep their defaults). Throws on unknown keys or bad values.
    #[wasm_bindgen(js_name = setLimits)]
    pub fn set_limits(limits: JsValue) -> Result<(), JsValue> {
        // Through JSON text: serde_wasm_bindgen only reads a struct's known keys, so a
        // misspelt limit would pass unnoticed.
        let text = js_sys::JSON::stringify(&limits)
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        let limits: Limits = serde_json::from_str(&text).map_err(|e| {
            js_error(KilnError::InvalidArgument(format!(
                "limits: {e} (allowed keys: maxConfigBytes, maxConfigDepth, maxLayers, \
                 maxParameters, maxTensorElements, maxFileBytes; whole numbers > 0)"
            )))
        })?;
        if let Some(zero) = limits.zero_limit() {
            let (_, key, _) = zero.describe(&limits);
            return Err(js_error(KilnError::InvalidArgument(format!(
                "limits.{key}: must be a whole number > 0, got 0"
            ))));
        }
        limits.install();
        Ok(())
    }

    /// Bytes of this wasm instance's linear memory (it only grows).
    #[wasm_bindgen(js_name = memoryBytes)]
    pub fn memory_bytes() -> f64 {
        (core::arch::wasm32::memory_size::<0>() * 65536) as f64
    }

    /// Calls `listener(message)` when Rust code panics in this wasm instance (the JS wrapper
    /// then restarts the module).
    #[wasm_bindgen(js_name = onPanic)]
    pub fn on_panic(listener: js_sys::Function) {
        panic::set_listener(listener);
    }

    /// Fault injection for Kiln's recovery tests: `"now"` panics in this call, `"job"` makes the
    /// next job panic when it starts. Not for applications.
    #[wasm_bindgen(js_name = _injectPanic)]
    pub fn inject_panic(place: &str) -> Result<(), JsValue> {
        match place {
            "now" => panic!("injected fault (Kiln._injectPanic)"),
            "job" => {
                panic::inject_into_next_job();
                Ok(())
            }
            other => Err(js_error(KilnError::InvalidArgument(format!(
                "_injectPanic takes \"now\" or \"job\", got {other:?}"
            )))),
        }
    }

    /// Checks a config (object, YAML/JSON string or `undefined`) without training; throws an
    /// `Error` naming the field path, the value and what is allowed.
    #[wasm_bindgen(js_name = validateConfig)]
    pub fn validate_config(config: JsValue) -> Result<(), JsValue> {
        config_from_js(&config).map(|_| ()).map_err(js_error)
    }

    /// Whether `train(config, data)` needs the digits data set handed over first: `data` is
    /// absent, the config is valid and trains on `digits`, and this module has no copy yet (the
    /// package's wasm modules do not embed it). An invalid config answers `false`: `train`
    /// then throws its error.
    #[wasm_bindgen(js_name = needsDigits)]
    pub fn needs_digits(config: JsValue, data: JsValue) -> bool {
        (data.is_undefined() || data.is_null())
            && !crate::data::digits_available()
            && config_from_js(&config)
                .is_ok_and(|config| config.data.source == crate::config::DataSource::Digits)
    }

    /// Hands over the digits file (`digits.csv.gz`, gzipped or already decompressed); throws if
    /// the bytes are not the digits data set.
    #[wasm_bindgen(js_name = provideDigits)]
    pub fn provide_digits(bytes: &[u8]) -> Result<(), JsValue> {
        crate::data::provide_digits(bytes).map_err(js_error)
    }

    /// `{ kind: "webgpu" | "cpu", adapter?: string, reason?: string }`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> Result<JsValue, JsValue> {
        to_js(&self.shared.backend)
    }

    /// Starts a job and returns it at once. `config` is an object with the YAML schema (or a
    /// YAML/JSON string, or `undefined` for the default); `data` is `{ features, labels, shape }`,
    /// `{ csv }` or `undefined` (then `config.data.source` is used). Throws on a bad config or
    /// bad data; training failures reject `waitForTraining()`. `job_id` (optional) must look
    /// like `trainingjob-…`; the worker proxy uses it to hand out ids at once. `init_weights`
    /// (optional) are `model.init_from`'s safetensors bytes, fetched or handed over by the
    /// package. `on_checkpoint(bytes, epochsDone)` (optional, CPU backend only) receives every
    /// checkpoint as a resume point; `resume_from` (optional) is such a point to continue from.
    pub fn train(
        &self,
        config: JsValue,
        data: JsValue,
        job_id: Option<String>,
        init_weights: Option<js_sys::Uint8Array>,
        on_checkpoint: Option<js_sys::Function>,
        resume_from: Option<js_sys::Uint8Array>,
    ) -> Result<TrainingJob, JsValue> {
        let config = config_from_js(&config).map_err(js_error)?;
        if (on_checkpoint.is_some() || resume_from.is_some()) && self.shared.backend.kind != "cpu" {
            return Err(js_error(KilnError::InvalidArgument(
                "resumable jobs need the CPU backend: WebGPU cannot hand over the optimiser's \
                 state without blocking the page"
                    .into(),
            )));
        }
        let resume = match resume_from {
            Some(bytes) => {
                Some(crate::train::ResumePoint::from_bytes(&bytes.to_vec()).map_err(js_error)?)
            }
            None => None,
        };
        let mut sink = on_checkpoint.map(super::checkpoints::JsCheckpoints::new);
        let builder = match init_weights {
            Some(bytes) => crate::model::ConfigModel::with_init_weights(bytes.to_vec()),
            None => crate::model::ConfigModel::default(),
        };
        let loaded = match data_from_js(&data, &config).map_err(js_error)? {
            Some(loaded) => loaded,
            None => load_source(&config).map_err(js_error)?,
        };
        let splits = prepare(&config, loaded).map_err(js_error)?;
        let job = match job_id {
            Some(id) if id.starts_with("trainingjob-") && id.len() <= 64 => Job::with_id(id),
            Some(id) => {
                return Err(js_error(KilnError::InvalidArgument(format!(
                    "a job id must look like trainingjob-<uuid>, got {id:?}"
                ))));
            }
            None => Job::new(),
        };
        let shared = JobShared::new(job);
        panic::register(Rc::downgrade(&shared));
        let handle = TrainingJob {
            shared: shared.clone(),
        };
        let kiln = self.shared.clone();
        spawn_local(async move {
            // One turn of the event loop first: listeners the page attaches right after
            // `train` returns (or once a deferred start resolves) hear the `started` event.
            next_tick().await;
            panic::take_injected();
            let mut on_event = |event: &crate::train::TrainEvent| shared.emit(event);
            let yield_fn: &crate::train::YieldFn = &next_tick;
            let result = run_job(
                &shared.job,
                JobRun {
                    inputs: crate::train::TrainInputs {
                        config: &config,
                        splits: &splits,
                        builder: &builder,
                        device: kiln.device.clone(),
                        checkpoints: sink
                            .as_mut()
                            .map(|s| s as &mut dyn crate::train::CheckpointSink),
                        resume,
                        yield_now: Some(yield_fn),
                    },
                    backend: kiln.backend.kind.clone(),
                    store: &kiln.store,
                    on_event: &mut on_event,
                    best_model_path: None,
                    before_store: None,
                    holdout: false,
                    model_id: None,
                },
            )
            .await;
            shared.settle(result.map(|out| out.info).map_err(|e| e.to_string()));
        });
        Ok(handle)
    }

    /// Loads a model from the store by id (`modelId`), or from exported bytes (`Uint8Array`).
    #[wasm_bindgen(js_name = preloadedModel)]
    pub fn preloaded_model(&self, source: JsValue) -> js_sys::Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let saved = if let Some(id) = source.as_string() {
                load_model(&shared.store, &id).await
            } else if source.is_instance_of::<js_sys::Uint8Array>()
                || source.is_instance_of::<js_sys::ArrayBuffer>()
            {
                SavedModel::from_bytes(&js_sys::Uint8Array::new(&source).to_vec())
            } else {
                Err(KilnError::InvalidArgument(
                    "preloadedModel takes a model id (string), a URL (string) or exported bytes \
                     (Uint8Array)"
                        .into(),
                ))
            }
            .map_err(js_error)?;
            let predictor = Predictor::new(saved, &shared.device).map_err(js_error)?;
            Ok(Model::new(predictor).into())
        })
    }

    /// Metadata of every stored model.
    #[wasm_bindgen(js_name = listModels)]
    pub fn list_models(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let headers = list_models(&shared.store).await.map_err(js_error)?;
            let summaries: Vec<_> = headers.iter().map(crate::model::summary).collect();
            to_js(&summaries)
        })
    }

    /// Deletes a stored model; resolves `true` if it existed.
    #[wasm_bindgen(js_name = deleteModel)]
    pub fn delete_model(&self, model_id: String) -> js_sys::Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let id = ModelId::parse(&model_id).map_err(js_error)?;
            let existed = shared.store.delete(&id).await.map_err(js_error)?;
            Ok(existed.into())
        })
    }

    /// Adds exported model bytes to the store; resolves with the model's id. A model whose id
    /// is already stored is refused unless `force` is true (then it is replaced).
    #[wasm_bindgen(js_name = importModel)]
    pub fn import_model(&self, bytes: js_sys::Uint8Array, force: Option<bool>) -> js_sys::Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let bytes = bytes.to_vec();
            let id = import_into(&shared.store, bytes, force.unwrap_or(false), &shared.device)
                .await
                .map_err(js_error)?;
            Ok(id.to_string().into())
        })
    }
}
