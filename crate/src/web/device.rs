//! Opening the browser's WebGPU device (once per page) or the CPU device.

use crate::backend::cpu_device;
use crate::error::KilnError;
use burn::tensor::Device;
use serde::Serialize;
use std::cell::RefCell;

/// Which backend a `Kiln` instance trains on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendInfo {
    /// `"webgpu"` or `"cpu"`.
    pub kind: String,
    /// The WebGPU adapter's name and backend, when WebGPU is used.
    pub adapter: Option<String>,
    /// Why `auto` chose the CPU, when it did.
    pub reason: Option<String>,
}

thread_local! {
    /// The WebGPU runtime can be initialised once per page: later instances share it.
    static WEBGPU: RefCell<Option<(Device, String)>> = const { RefCell::new(None) };
}

/// Opens the WebGPU device through wgpu's browser backend.
#[cfg(feature = "webgpu")]
pub async fn webgpu_device() -> Result<(Device, String), KilnError> {
    if let Some(cached) = WEBGPU.with(|w| w.borrow().clone()) {
        return Ok(cached);
    }
    if !has_navigator_gpu() {
        // wgpu's browser backend panics without `navigator.gpu` (Node, old browsers, insecure
        // pages): say so instead.
        return Err(KilnError::BackendUnavailable(
            "WebGPU is unavailable here (no navigator.gpu: Node, a browser without WebGPU, or a \
             page that is not a secure context); use backend: \"cpu\" (or \"auto\")"
                .into(),
        ));
    }
    let (device, setup) = Device::wgpu_options()
        .graphics_api(burn::tensor::wgpu::WgpuBackend::WebGpu)
        .init_with_setup_async()
        .await
        .map_err(|e| {
            KilnError::BackendUnavailable(format!(
                "WebGPU could not be initialised ({e:?}); use backend: \"cpu\" (or \"auto\"), or \
                 a browser with WebGPU enabled"
            ))
        })?;
    let info = setup.adapter.get_info();
    let name = format!("{} ({:?})", info.name, info.backend);
    WEBGPU.with(|w| *w.borrow_mut() = Some((device.clone(), name.clone())));
    Ok((device, name))
}

/// Whether the JS global has `navigator.gpu` (window or worker).
#[cfg(feature = "webgpu")]
fn has_navigator_gpu() -> bool {
    let get = |object: &wasm_bindgen::JsValue, key: &str| {
        js_sys::Reflect::get(object, &key.into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED)
    };
    let navigator = get(&js_sys::global(), "navigator");
    navigator.is_object() && get(&navigator, "gpu").is_object()
}

/// Without the `webgpu` feature there is no WebGPU device.
#[cfg(not(feature = "webgpu"))]
pub async fn webgpu_device() -> Result<(Device, String), KilnError> {
    Err(KilnError::BackendUnavailable(
        "this build of Kiln has no WebGPU support; use backend: \"cpu\"".into(),
    ))
}

/// The device for a backend name chosen by the JS side.
pub async fn open(kind: &str, reason: Option<String>) -> Result<(Device, BackendInfo), KilnError> {
    match kind {
        "webgpu" => {
            let (device, adapter) = webgpu_device().await?;
            Ok((
                device,
                BackendInfo {
                    kind: "webgpu".into(),
                    adapter: Some(adapter),
                    reason,
                },
            ))
        }
        "cpu" => Ok((
            cpu_device(),
            BackendInfo {
                kind: "cpu".into(),
                adapter: None,
                reason,
            },
        )),
        other => Err(KilnError::InvalidArgument(format!(
            "backend must be \"webgpu\", \"cpu\" or \"auto\", got {other:?}"
        ))),
    }
}
