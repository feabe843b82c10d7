//! `TrainingJob`: a running job seen from JS — status, progress, listeners, `waitForTraining`.

use super::convert::to_js;
use crate::jobs::{Job, JobStatus, TrainRunInfo};
use crate::train::TrainEvent;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// How a job ended, as seen from JS.
enum Outcome {
    Done(TrainRunInfo),
    Failed(String),
}

/// State shared by the `TrainingJob` handle, the training future and the panic hook.
pub struct JobShared {
    /// The engine's job.
    pub job: Job,
    outcome: RefCell<Option<Outcome>>,
    waiters: RefCell<Vec<(js_sys::Function, js_sys::Function)>>,
    listeners: RefCell<Vec<js_sys::Function>>,
    event_listeners: RefCell<Vec<js_sys::Function>>,
}

impl JobShared {
    /// A new shared state for `job`.
    pub fn new(job: Job) -> Rc<Self> {
        Rc::new(Self {
            job,
            outcome: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
            listeners: RefCell::new(Vec::new()),
            event_listeners: RefCell::new(Vec::new()),
        })
    }

    /// Sends an engine event to the JS listeners.
    pub fn emit(&self, event: &TrainEvent) {
        let Ok(value) = to_js(event) else { return };
        let call = |listeners: &RefCell<Vec<js_sys::Function>>, value: &JsValue| {
            let listeners = listeners.borrow().clone();
            for listener in listeners {
                // A throwing listener must not stop training.
                let _ = listener.call1(&JsValue::NULL, value);
            }
        };
        call(&self.event_listeners, &value);
        if let TrainEvent::Progress(p) = event
            && let Ok(progress) = to_js(p)
        {
            call(&self.listeners, &progress);
        }
    }

    /// Records the result and settles every waiting Promise.
    pub fn settle(&self, result: Result<TrainRunInfo, String>) {
        let outcome = match result {
            Ok(info) => Outcome::Done(info),
            Err(message) => Outcome::Failed(message),
        };
        if let Ok(mut slot) = self.outcome.try_borrow_mut() {
            if slot.is_some() {
                return;
            }
            *slot = Some(outcome);
        }
        let waiters = self.waiters.take();
        for (resolve, reject) in waiters {
            self.answer(&resolve, &reject);
        }
        self.event_listeners.take();
    }

    /// Fails the job from the panic hook (no engine state is touched).
    pub fn fail_from_panic(&self, message: &str) {
        self.job
            .fail(&crate::KilnError::Internal(message.to_string()));
        self.settle(Err(message.to_string()));
    }

    fn answer(&self, resolve: &js_sys::Function, reject: &js_sys::Function) {
        let Ok(outcome) = self.outcome.try_borrow() else {
            return;
        };
        match outcome.as_ref() {
            Some(Outcome::Done(info)) => match to_js(info) {
                Ok(value) => drop(resolve.call1(&JsValue::NULL, &value)),
                Err(e) => drop(reject.call1(&JsValue::NULL, &e)),
            },
            Some(Outcome::Failed(message)) => {
                let error = js_sys::Error::new(message);
                let status = self.job.status().to_string();
                let _ = js_sys::Reflect::set(&error, &"status".into(), &status.into());
                let _ = reject.call1(&JsValue::NULL, &error);
            }
            None => {}
        }
    }
}

/// A training job started by `kiln.train(...)`.
#[wasm_bindgen]
pub struct TrainingJob {
    pub(super) shared: Rc<JobShared>,
}

#[wasm_bindgen]
impl TrainingJob {
    /// `"trainingjob-<uuid>"`.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.shared.job.id().to_string()
    }

    /// `"queued" | "processing" | "completed" | "failed" | "cancelled"`.
    pub fn status(&self) -> String {
        self.shared.job.status().to_string()
    }

    /// The latest progress report, or `undefined` before the first one.
    pub fn progress(&self) -> Result<JsValue, JsValue> {
        match self.shared.job.progress() {
            Some(p) => to_js(&p),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Why the job failed or was cancelled, if it did.
    #[wasm_bindgen(getter)]
    pub fn error(&self) -> Option<String> {
        self.shared.job.error()
    }

    /// Calls `callback(progress)` on every progress report.
    #[wasm_bindgen(js_name = onProgress)]
    pub fn on_progress(&self, callback: js_sys::Function) {
        self.shared.listeners.borrow_mut().push(callback);
    }

    /// Calls `callback(event)` on every engine event (`started`, `progress`, `evaluated`,
    /// `checkpoint`) until the job ends.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, callback: js_sys::Function) {
        if self.shared.job.status().is_final() {
            return;
        }
        self.shared.event_listeners.borrow_mut().push(callback);
    }

    /// Resolves with the `TrainRunInfo` when the job completes; rejects with an `Error`
    /// (carrying `status`) when it fails or is cancelled.
    #[wasm_bindgen(js_name = waitForTraining)]
    pub fn wait_for_training(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        js_sys::Promise::new(&mut |resolve, reject| {
            let finished = shared
                .outcome
                .try_borrow()
                .map(|o| o.is_some())
                .unwrap_or(false);
            if finished {
                shared.answer(&resolve, &reject);
            } else {
                shared.waiters.borrow_mut().push((resolve, reject));
            }
        })
    }

    /// Asks the job to stop before its next step; it ends as `"cancelled"`.
    pub fn cancel(&self) {
        self.shared.job.cancel();
    }

    /// `{ modelId, guid }` of the trained model once the job completed, else `undefined` (`guid`:
    /// the same id under the hosted-training API's name).
    #[wasm_bindgen(getter, js_name = trainedModel)]
    pub fn trained_model(&self) -> JsValue {
        match self.shared.job.result() {
            Some(info) if self.shared.job.status() == JobStatus::Completed => {
                let object = js_sys::Object::new();
                let _ =
                    js_sys::Reflect::set(&object, &"modelId".into(), &info.model_id.clone().into());
                let _ = js_sys::Reflect::set(&object, &"guid".into(), &info.model_id.into());
                object.into()
            }
            _ => JsValue::UNDEFINED,
        }
    }
}
