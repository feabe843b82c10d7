//! Limits on what outside input may make Kiln parse or allocate: config size and nesting,
//! model size, tensor elements, file sizes. Checked before the work, with errors that name
//! the field and the limit. Natively they can be raised with `KILN_MAX_*` environment variables
//! (read by the CLI), in JS with `Kiln.create({ limits })`.

use crate::error::{KilnError, Result};
use serde::{Deserialize, Serialize};
use std::sync::RwLock;

/// The limits in force for this process (or wasm instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Limits {
    /// Bytes of config text (YAML or JSON), and of a JS config object as JSON.
    pub max_config_bytes: usize,
    /// Nesting depth of a config (lists and maps inside each other).
    pub max_config_depth: usize,
    /// Entries of `model.layers` and `model.hidden`.
    pub max_layers: usize,
    /// Trainable parameters of a model.
    pub max_parameters: u64,
    /// Values of one tensor (a layer's weights, one sample's activations, a batch).
    pub max_tensor_elements: u64,
    /// Bytes of a data file (CSV, IDX after decompression) or of a model file.
    pub max_file_bytes: u64,
}

impl Limits {
    /// The built-in defaults: generous for the models Kiln trains, far below what would
    /// exhaust a browser tab or a 2-core server.
    pub const DEFAULT: Self = Self {
        max_config_bytes: 1 << 20,
        max_config_depth: 32,
        max_layers: 256,
        max_parameters: 100_000_000,
        max_tensor_elements: 1 << 28,
        max_file_bytes: 4 << 30,
    };

    /// The defaults overridden by `KILN_MAX_*` variables read through `var`; a variable that
    /// is not a positive whole number is an error naming it.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut limits = Self::DEFAULT;
        for limit in Limit::ALL {
            let (name, _, _) = limit.describe(&limits);
            let Some(text) = var(name) else { continue };
            let value: u64 = text.trim().parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                KilnError::InvalidArgument(format!(
                    "{name}: must be a whole number > 0, got `{text}`"
                ))
            })?;
            limit.set(&mut limits, value);
        }
        Ok(limits)
    }

    /// The first limit that is 0 (a limit nothing could pass), if any.
    pub fn zero_limit(&self) -> Option<Limit> {
        Limit::ALL
            .into_iter()
            .find(|limit| limit.describe(self).2 == 0)
    }

    /// The limits in force.
    pub fn current() -> Self {
        *CURRENT.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `self` in force for the whole process (or wasm instance).
    pub fn install(self) {
        *CURRENT.write().unwrap_or_else(|p| p.into_inner()) = self;
    }

    /// An error for `what` (a field path or file) of `size` over the limit `limit` (named by
    /// its environment variable / JS key).
    pub fn exceeded(what: &str, size: impl std::fmt::Display, limit: Limit) -> KilnError {
        let current = Self::current();
        let (env, key, value) = limit.describe(&current);
        let message = format!(
            "{what}: {size} is over the limit of {value} {} (raise it with {env}=N natively or \
             Kiln.create({{ limits: {{ {key}: N }} }}) in JS)",
            limit.unit()
        );
        match limit {
            Limit::TensorElements | Limit::FileBytes => KilnError::Data(message),
            _ => KilnError::Config(message),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which limit a check used (for its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_config_bytes`].
    ConfigBytes,
    /// [`Limits::max_config_depth`].
    ConfigDepth,
    /// [`Limits::max_layers`].
    Layers,
    /// [`Limits::max_parameters`].
    Parameters,
    /// [`Limits::max_tensor_elements`].
    TensorElements,
    /// [`Limits::max_file_bytes`].
    FileBytes,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 6] = [
        Self::ConfigBytes,
        Self::ConfigDepth,
        Self::Layers,
        Self::Parameters,
        Self::TensorElements,
        Self::FileBytes,
    ];

    /// Sets this limit in `limits` to `value`.
    fn set(self, limits: &mut Limits, value: u64) {
        let as_usize = usize::try_from(value).unwrap_or(usize::MAX);
        match self {
            Self::ConfigBytes => limits.max_config_bytes = as_usize,
            Self::ConfigDepth => limits.max_config_depth = as_usize,
            Self::Layers => limits.max_layers = as_usize,
            Self::Parameters => limits.max_parameters = value,
            Self::TensorElements => limits.max_tensor_elements = value,
            Self::FileBytes => limits.max_file_bytes = value,
        }
    }

    /// The limit's environment variable, its JS key and its value in `l`.
    pub fn describe(self, l: &Limits) -> (&'static str, &'static str, u64) {
        match self {
            Self::ConfigBytes => (
                "KILN_MAX_CONFIG_BYTES",
                "maxConfigBytes",
                l.max_config_bytes as u64,
            ),
            Self::ConfigDepth => (
                "KILN_MAX_CONFIG_DEPTH",
                "maxConfigDepth",
                l.max_config_depth as u64,
            ),
            Self::Layers => ("KILN_MAX_LAYERS", "maxLayers", l.max_layers as u64),
            Self::Parameters => ("KILN_MAX_PARAMETERS", "maxParameters", l.max_parameters),
            Self::TensorElements => (
                "KILN_MAX_TENSOR_ELEMENTS",
                "maxTensorElements",
                l.max_tensor_elements,
            ),
            Self::FileBytes => ("KILN_MAX_FILE_BYTES", "maxFileBytes", l.max_file_bytes),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::ConfigBytes | Self::FileBytes => "bytes",
            Self::ConfigDepth => "levels",
            Self::Layers => "entries",
            Self::Parameters => "parameters",
            Self::TensorElements => "values",
        }
    }
}

static CURRENT: RwLock<Limits> = RwLock::new(Limits::DEFAULT);

/// The product of `dims`, or an error naming `what` when it overflows or exceeds the tensor
/// element limit.
pub fn checked_elements(dims: &[usize], what: &str) -> Result<usize> {
    let limit = Limits::current().max_tensor_elements;
    let mut product: u64 = 1;
    for &d in dims {
        product = product.checked_mul(d as u64).ok_or_else(|| {
            Limits::exceeded(what, format!("shape {dims:?}"), Limit::TensorElements)
        })?;
    }
    if product > limit {
        return Err(Limits::exceeded(
            what,
            format!("shape {dims:?} ({product} values)"),
            Limit::TensorElements,
        ));
    }
    usize::try_from(product)
        .map_err(|_| Limits::exceeded(what, format!("shape {dims:?}"), Limit::TensorElements))
}

/// Checks a file's size against the file limit before it is read.
pub fn check_file_size(bytes: u64, what: &str) -> Result<()> {
    if bytes > Limits::current().max_file_bytes {
        return Err(Limits::exceeded(
            what,
            format!("{bytes} bytes"),
            Limit::FileBytes,
        ));
    }
    Ok(())
}

/// Reads a whole file within the file limit ([`Limits::max_file_bytes`]).
pub fn read_file_limited(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    read_limited(path, what, Limit::FileBytes)
}

/// Reads a whole file within `limit` (a byte limit: [`Limit::FileBytes`] or
/// [`Limit::ConfigBytes`]). Bytes are counted as they are read, so a file that reports no size
/// (`/dev/zero`, a pipe, `/proc` files) stops at the limit too.
pub fn read_limited(path: &std::path::Path, what: &str, limit: Limit) -> Result<Vec<u8>> {
    use std::io::Read;
    let name = format!("{what} {}", path.display());
    let most = match limit {
        Limit::ConfigBytes => Limits::current().max_config_bytes as u64,
        _ => Limits::current().max_file_bytes,
    };
    let cannot = |e| KilnError::io(format!("cannot read {name}"), e);
    let file = std::fs::File::open(path).map_err(cannot)?;
    let declared = file.metadata().map(|m| m.len()).unwrap_or(0);
    if declared > most {
        return Err(Limits::exceeded(&name, format!("{declared} bytes"), limit));
    }
    let mut bytes = Vec::with_capacity(declared as usize);
    file.take(most + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > most {
        return Err(Limits::exceeded(
            &name,
            format!("more than {most} bytes"),
            limit,
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_rejects_bad_values() {
        let limits = Limits::from_env(|name| (name == "KILN_MAX_PARAMETERS").then(|| "7".into()))
            .expect("valid");
        assert_eq!(limits.max_parameters, 7);
        assert_eq!(limits.max_layers, Limits::DEFAULT.max_layers);
        let e = Limits::from_env(|name| (name == "KILN_MAX_LAYERS").then(|| "0".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("KILN_MAX_LAYERS") && e.contains("`0`"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn files_that_report_no_size_stop_at_the_limit() {
        let start = web_time::Instant::now();
        let e = read_limited(
            std::path::Path::new("/dev/zero"),
            "config",
            Limit::ConfigBytes,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/dev/zero") && e.contains("more than 1048576 bytes"),
            "{e}"
        );
        assert!(start.elapsed().as_secs_f64() < 5.0);
        let e = crate::Config::from_file(std::path::Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("KILN_MAX_CONFIG_BYTES"), "{e}");
    }

    #[test]
    fn overflowing_products_are_errors() {
        let e = checked_elements(&[65536, 1 << 24, 1 << 24], "images")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("images") && e.contains("KILN_MAX_TENSOR_ELEMENTS"),
            "{e}"
        );
        assert_eq!(checked_elements(&[3, 4], "x").expect("small"), 12);
    }
}
