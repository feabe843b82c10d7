//! Range checks of config fields, each phrased as `path: must be ..., got ...`.

use crate::error::{KilnError, Result};

/// The error for a field at `path` that breaks `rule`.
pub(crate) fn fail(path: &str, rule: &str, got: impl std::fmt::Display) -> KilnError {
    KilnError::Config(format!("{path}: {rule}, got {got}"))
}

/// A finite number above zero.
pub(crate) fn positive(path: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(fail(path, "must be > 0", value))
    }
}

/// A finite number of at least zero.
pub(crate) fn non_negative(path: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(fail(path, "must be >= 0", value))
    }
}

/// A count of at least one.
pub(crate) fn at_least_one(path: &str, value: usize) -> Result<()> {
    if value >= 1 {
        Ok(())
    } else {
        Err(fail(path, "must be >= 1", value))
    }
}

/// A count of at most `most`.
pub(crate) fn at_most(path: &str, value: usize, most: usize) -> Result<()> {
    if value <= most {
        Ok(())
    } else {
        Err(fail(path, &format!("must be at most {most}"), value))
    }
}

/// A probability in [0, 1).
pub(crate) fn probability(path: &str, value: f64) -> Result<()> {
    if value.is_finite() && (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(fail(path, "must be in [0, 1)", value))
    }
}
