//! Checkpoints of a resumable browser job: each one, as a [`ResumePoint`] blob, goes to a JS
//! listener (the package keeps the latest in IndexedDB), so `kiln.resume(jobId)` can continue
//! the job after a page reload. CPU backend only: serialising the optimiser reads its state
//! synchronously, which WebGPU cannot do.

use crate::error::{KilnError, Result};
use crate::train::{CheckpointData, CheckpointSink, ResumePoint};
use wasm_bindgen::JsValue;

/// Sends every checkpoint to `listener(bytes, epochsDone)`.
pub struct JsCheckpoints {
    listener: js_sys::Function,
    last_epoch: Option<usize>,
}

impl JsCheckpoints {
    /// A sink calling `listener`.
    pub fn new(listener: js_sys::Function) -> Self {
        Self {
            listener,
            last_epoch: None,
        }
    }
}

impl CheckpointSink for JsCheckpoints {
    fn save(&mut self, c: CheckpointData<'_>) -> Result<()> {
        let optimizer = c
            .optimizer
            .into_bytes()
            .map_err(|e| KilnError::Internal(format!("cannot serialise the optimizer: {e}")))?;
        let point = ResumePoint {
            state: c.state.clone(),
            model_weights: c.model_weights.to_vec(),
            optimizer: optimizer.to_vec(),
            best_weights: c.best_weights.map(<[u8]>::to_vec),
            warnings: Vec::new(),
        };
        let bytes = js_sys::Uint8Array::from(point.to_bytes()?.as_slice());
        let epochs = JsValue::from(c.state.epochs_done as f64);
        self.listener
            .call2(&JsValue::NULL, &bytes, &epochs)
            .map_err(|e| KilnError::Internal(format!("the checkpoint listener threw: {e:?}")))?;
        self.last_epoch = Some(c.state.epochs_done);
        Ok(())
    }

    fn last_location(&self) -> Option<String> {
        self.last_epoch
            .map(|epoch| format!("the page's job store (after epoch {epoch})"))
    }
}
