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

/// A device by name: `cpu`, `wgpu` (the default adapter), `wgpu:N` (the Nth adapter wgpu
/// lists), `cuda`, `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceChoice {
    /// The backend.
    pub kind: BackendKind,
    /// The adapter's index; `None` for the backend's default device.
    pub index: Option<usize>,
}

impl DeviceChoice {
    /// The backend's default device.
    pub fn default_of(kind: BackendKind) -> Self {
        Self { kind, index: None }
    }

    /// The device a run asks for with a backend and the config's `gpus` (at most one index).
    pub fn for_run(kind: BackendKind, gpus: &[usize]) -> crate::error::Result<Self> {
        match (kind, gpus.first()) {
            (_, None) => Ok(Self::default_of(kind)),
            (BackendKind::Cpu, Some(index)) => Err(crate::error::KilnError::Config(format!(
                "gpus: [{index}] picks a GPU adapter, but the backend is cpu: train with \
                 --backend wgpu or --backend cuda (or --device wgpu:{index}), or remove gpus"
            ))),
            (_, Some(&index)) => Ok(Self {
                kind,
                index: Some(index),
            }),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(index) => write!(f, "{}:{index}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let wrong = || {
            format!(
                "`{text}` is not a device: use cpu, wgpu, wgpu:N, cuda or cuda:N (N: the adapter's index)"
            )
        };
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => (name, Some(index.parse::<usize>().map_err(|_| wrong())?)),
            None => (text, None),
        };
        let kind = crate::config::from_serde_name::<BackendKind>(name).ok_or_else(wrong)?;
        if kind == BackendKind::Cpu && index.is_some() {
            return Err(format!("`{text}`: the cpu device takes no index (use cpu)"));
        }
        Ok(Self { kind, index })
    }
}

/// The CPU device.
pub fn cpu_device() -> Device {
    Device::flex()
}

/// Opens the requested device on a native target, with an actionable error when it is not
/// available.
#[cfg(not(target_family = "wasm"))]
pub fn native_device(kind: BackendKind) -> Result<Device> {
    native_device_at(DeviceChoice::default_of(kind))
}

/// Opens a device by backend and adapter index; a missing index names the devices there are.
#[cfg(not(target_family = "wasm"))]
pub fn native_device_at(choice: DeviceChoice) -> Result<Device> {
    match (choice.kind, choice.index) {
        (BackendKind::Cpu, _) => Ok(cpu_device()),
        (BackendKind::Wgpu, None) => wgpu_device(),
        (BackendKind::Wgpu, Some(index)) => wgpu_device_at(index),
        (BackendKind::Cuda, index) => cuda_device(index.unwrap_or(0)),
    }
}

/// The device at `index` of a list, or an error naming every device there is.
#[cfg(all(not(target_family = "wasm"), any(feature = "wgpu", feature = "cuda")))]
fn pick(devices: Vec<Device>, kind: BackendKind, index: usize) -> Result<Device> {
    if let Some(device) = devices.get(index) {
        return Ok(device.clone());
    }
    let found: Vec<String> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{kind}:{i} ({})", device_name(d)))
        .collect();
    let list = if found.is_empty() {
        "none".to_string()
    } else {
        found.join(", ")
    };
    Err(KilnError::BackendUnavailable(format!(
        "there is no device {kind}:{index}: this machine has {list}"
    )))
}

/// A device as it names itself (`llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H200`), opening it;
/// its debug form when it cannot say.
#[cfg(all(not(target_family = "wasm"), any(feature = "wgpu", feature = "cuda")))]
fn device_name(device: &Device) -> String {
    std::panic::catch_unwind(|| device.identity())
        .ok()
        .flatten()
        .map(|identity| identity.name)
        .unwrap_or_else(|| format!("{device:?}"))
}

#[cfg(all(not(target_family = "wasm"), feature = "wgpu"))]
fn wgpu_device_at(index: usize) -> Result<Device> {
    let listed =
        std::panic::catch_unwind(|| Device::enumerate(burn::tensor::DeviceType::Wgpu).into_vec())
            .map_err(|_| no_wgpu("the wgpu runtime panicked while listing adapters"))?;
    let device = pick(listed, BackendKind::Wgpu, index)?;
    let opened = std::panic::catch_unwind(|| {
        let _ = burn::tensor::Tensor::<1>::zeros([1], &device);
    });
    opened
        .map(|_| device)
        .map_err(|_| no_wgpu(&format!("wgpu:{index} was listed but could not be opened")))
}

#[cfg(all(not(target_family = "wasm"), not(feature = "wgpu")))]
fn wgpu_device_at(_index: usize) -> Result<Device> {
    wgpu_device()
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
fn cuda_device(index: usize) -> Result<Device> {
    let listed =
        std::panic::catch_unwind(|| Device::enumerate(burn::tensor::DeviceType::Cuda).into_vec())
            .unwrap_or_default();
    if index > 0 {
        pick(listed, BackendKind::Cuda, index)?;
    }
    let attempt = std::panic::catch_unwind(|| {
        let device = Device::cuda(index);
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
fn cuda_device(_index: usize) -> Result<Device> {
    Err(KilnError::BackendUnavailable(
        "this build has no CUDA support: rebuild on the GPU server with `cargo build --release \
         -p kiln-native --features cuda` (needs network once for the LLVM bundle), or use \
         --backend wgpu / --backend cpu"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_by_name() {
        let parse = |s: &str| s.parse::<DeviceChoice>();
        assert_eq!(parse("cpu"), Ok(DeviceChoice::default_of(BackendKind::Cpu)));
        assert_eq!(
            parse("wgpu:1"),
            Ok(DeviceChoice {
                kind: BackendKind::Wgpu,
                index: Some(1)
            })
        );
        assert_eq!(parse("cuda:0").map(|d| d.to_string()), Ok("cuda:0".into()));
        assert!(
            parse("gpu:1")
                .unwrap_err()
                .contains("cpu, wgpu, wgpu:N, cuda or cuda:N")
        );
        assert!(parse("wgpu:x").is_err());
        assert!(parse("cpu:0").unwrap_err().contains("takes no index"));
        let from_config = DeviceChoice::for_run(BackendKind::Wgpu, &[2]).unwrap();
        assert_eq!(from_config.to_string(), "wgpu:2");
        let e = DeviceChoice::for_run(BackendKind::Cpu, &[0])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gpus: [0]") && e.contains("--backend wgpu"),
            "{e}"
        );
    }
}
