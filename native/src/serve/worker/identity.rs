//! This server as a worker of the fleet: its id (kept in `DATA_DIR/worker-id`, so a restarted
//! worker rejoins as itself), its labels (`--label key=value`, plus `backend=<name>`) and its
//! lease length.

use kiln::{KilnError, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Who this worker is.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    /// `worker-<uuid>`.
    pub id: String,
    /// What it offers jobs that require labels.
    pub labels: BTreeMap<String, String>,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
}

/// Label keys and values: short, no separators that would need quoting anywhere.
const MAX_LABEL_CHARS: usize = 64;

/// Checks one `key=value` label.
pub fn parse_label(text: &str) -> Result<(String, String)> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        KilnError::InvalidArgument(format!("--label {text:?}: must be key=value"))
    })?;
    check_label(key, value)
        .map_err(|why| KilnError::InvalidArgument(format!("--label {text:?}: {why}")))?;
    Ok((key.to_string(), value.to_string()))
}

/// Why a label is refused, if it is (keys 1–64 of `[A-Za-z0-9_.-]`, values up to 64 of the
/// same).
pub fn check_label(key: &str, value: &str) -> std::result::Result<(), String> {
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    };
    if key.is_empty() || key.len() > MAX_LABEL_CHARS || !ok(key) {
        return Err(format!(
            "a label key is 1–{MAX_LABEL_CHARS} characters of letters, digits, '_', '-', '.', '/'"
        ));
    }
    if value.len() > MAX_LABEL_CHARS || !ok(value) {
        return Err(format!(
            "a label value is at most {MAX_LABEL_CHARS} characters of letters, digits, '_', '-', '.', '/'"
        ));
    }
    Ok(())
}

/// This worker's id: the one in `DATA_DIR/worker-id`, or a new random one written there.
pub fn worker_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("worker-id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if id.starts_with("worker-") && uuid::Uuid::parse_str(&id["worker-".len()..]).is_ok() {
            return Ok(id.to_string());
        }
        return Err(KilnError::InvalidArgument(format!(
            "{} does not hold a worker id (worker-<uuid>); remove it to make a new one",
            path.display()
        )));
    }
    let id = format!("worker-{}", uuid::Uuid::new_v4());
    kiln::store::write_atomic(&path, format!("{id}\n").as_bytes())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_and_bounded() {
        assert_eq!(
            parse_label("gpu=h200").ok(),
            Some(("gpu".to_string(), "h200".to_string()))
        );
        assert!(parse_label("gpu").is_err());
        assert!(parse_label("=x").is_err());
        assert!(parse_label("a b=c").is_err());
        assert!(parse_label(&format!("k={}", "x".repeat(65))).is_err());
    }

    #[test]
    fn a_worker_keeps_its_id_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = worker_id(dir.path()).unwrap();
        assert!(first.starts_with("worker-"));
        assert_eq!(worker_id(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("worker-id"), "nonsense").unwrap();
        assert!(worker_id(dir.path()).is_err());
    }
}
