//! The float precision a job trains in, settled on its device.

use crate::config::Precision;
use crate::error::{KilnError, Result};
use burn::tensor::{DType, Device, FloatDType};

/// Prepares the device for the requested precision. burn fixes a device's default float type
/// once per process (the first use or `configure` settles it), so a job may only train in the
/// precision the device already has, or settle it.
pub fn configure_precision(device: &mut Device, precision: Precision) -> Result<()> {
    let current = device.settings().float_dtype;
    let wanted = match precision {
        Precision::F32 => FloatDType::F32,
        Precision::F16 => FloatDType::F16,
    };
    if current == wanted {
        return Ok(());
    }
    if precision == Precision::F32 {
        return Err(KilnError::BackendUnavailable(format!(
            "training.precision: f32 was asked for, but an earlier f16 job switched this device \
             ({device:?}) to {current:?} for the rest of the process; train in f16 too, or start \
             a new process (reload the page) for f32 jobs"
        )));
    }
    if !device.supports_dtype(DType::F16) {
        return Err(KilnError::BackendUnavailable(format!(
            "training.precision: f16 is not supported by this device ({device:?}); use f32"
        )));
    }
    device.configure(FloatDType::F16).map_err(|e| {
        KilnError::BackendUnavailable(format!(
            "training.precision: cannot switch the device to f16 ({e:?}): it has already been \
             used in f32 by this process; use f32, or run f16 jobs in a new process (reload \
             the page) before any f32 work"
        ))
    })
}
