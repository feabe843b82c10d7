//! Backend selection: CPU (`flex`) everywhere, wgpu natively, CUDA behind a feature.

#[cfg(not(target_family = "wasm"))]
use crate::error::{KilnError, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// The backends a user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// burn's `flex` CPU backend.
    Cpu,
    /// wgpu: Vulkan, Metal or DX12 natively; WebGPU in the browser.
    Wgpu,
    /// NVIDIA CUDA (build with the `cuda` feature).
    Cuda,
}

crate::display_serde_name!(BackendKind);

/// The CPU device.
pub fn cpu_device() -> Device {
    Device::flex()
}

/// Opens the requested device on a native target, with an actionable error when it is not
/// available.
#[cfg(not(target_family = "wasm"))]
pub fn native_device(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Cpu => Ok(cpu_device()),
        BackendKind::Wgpu => wgpu_device(),
        BackendKind::Cuda => cuda_device(),
    }
}

#[cfg(all(not(target_family = "wasm"), feature = "wgpu"))]
fn wgpu_device() -> Result<Device> {
    let attempt = std::panic::catch_unwind(|| Device::wgpu_options().init());
    match attempt {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(no_wgpu(&format!("{e:?}"))),
        Err(_) => Err(no_wgpu(
            "the wgpu runtime panicked while looking for an adapter",
        )),
    }
}

#[cfg(all(not(target_family = "wasm"), feature = "wgpu"))]
fn no_wgpu(detail: &str) -> KilnError {
    KilnError::BackendUnavailable(format!(
        "no wgpu adapter could be opened ({detail}). Install a Vulkan driver (on Debian: \
         `apt-get install mesa-vulkan-drivers`), or use --backend cpu"
    ))
}

#[cfg(all(not(target_family = "wasm"), not(feature = "wgpu")))]
fn wgpu_device() -> Result<Device> {
    Err(KilnError::BackendUnavailable(
        "this build has no wgpu support (a CPU-only build, as `make train` makes by default): \
         build one with `make train BACKEND=wgpu` or `cargo build --release -p kiln-native \
         --features wgpu`, or use --backend cpu"
            .into(),
    ))
}

#[cfg(all(not(target_family = "wasm"), feature = "cuda"))]
fn cuda_device() -> Result<Device> {
    let attempt = std::panic::catch_unwind(|| {
        let device = Device::cuda(0);
        let _ = burn::tensor::Tensor::<1>::zeros([1], &device);
        device
    });
    attempt.map_err(|_| {
        KilnError::BackendUnavailable(
            "no CUDA device could be opened: install the NVIDIA driver and CUDA toolkit, or use \
             --backend wgpu / --backend cpu"
                .into(),
        )
    })
}

#[cfg(all(not(target_family = "wasm"), not(feature = "cuda")))]
fn cuda_device() -> Result<Device> {
    Err(KilnError::BackendUnavailable(
        "this build has no CUDA support: rebuild on the GPU server with `cargo build --release \
         -p kiln-native --features cuda` (needs network once for the LLVM bundle), or use \
         --backend wgpu / --backend cpu"
            .into(),
    ))
}
