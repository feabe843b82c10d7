//! What an MLflow-tracked run needs to know, resolved from the config, the command line (or the
//! server's `--mlflow`) and MLflow's own environment variables.

use super::flatten_config;
use kiln::{Config, KilnError, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file in a run directory that remembers the run's MLflow run id, so a resumed run logs
/// into the same MLflow run.
pub const RUN_ID_FILE: &str = "mlflow-run.json";

/// Where and how one run is logged.
#[derive(Debug, Clone, PartialEq)]
pub struct MlflowSettings {
    /// The tracking server.
    pub uri: String,
    /// The experiment's name.
    pub experiment: String,
    /// The new run's name.
    pub run_name: String,
    /// An existing run to log into.
    pub run_id: Option<String>,
    /// Whether `run_id` is the one the run directory remembers (a resumed run): the steps
    /// MLflow already holds are not logged again (the resumed part re-runs them).
    pub continues_own_run: bool,
    /// Whether to upload artifacts at the end.
    pub log_artifacts: bool,
    /// The resolved config, flattened.
    pub params: Vec<(String, String)>,
    /// `kiln.job_id`, `kiln.backend`, `kiln.version`.
    pub tags: Vec<(String, String)>,
    /// Where to remember the run id (the run directory's [`RUN_ID_FILE`]).
    pub run_id_file: Option<PathBuf>,
}

impl MlflowSettings {
    /// The settings of a run, or `None` when it is not tracked: the config's `tracking.mlflow`,
    /// with `default_uri` (`--mlflow URI`) turning tracking on when the config does not and
    /// giving the URI it leaves out; then `MLFLOW_TRACKING_URI`. A run directory that already
    /// has a run id (a resumed run) logs into that run.
    pub fn resolve(
        config: &Config,
        default_uri: Option<&str>,
        job_id: &str,
        backend: &str,
        run_dir: Option<&Path>,
    ) -> Result<Option<Self>> {
        let section = match (&config.tracking.mlflow, default_uri) {
            (Some(section), _) => section.clone(),
            (None, Some(_)) => kiln::config::MlflowConfig::default(),
            (None, None) => return Ok(None),
        };
        let uri = section
            .uri
            .clone()
            .or_else(|| default_uri.map(str::to_string))
            .or_else(|| std::env::var("MLFLOW_TRACKING_URI").ok())
            .ok_or_else(|| {
                KilnError::Config(
                    "tracking.mlflow.uri: not set: give the tracking server's URL there, with \
                     --mlflow URI, or in MLFLOW_TRACKING_URI"
                        .into(),
                )
            })?;
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            return Err(KilnError::Config(format!(
                "tracking.mlflow.uri: must be an http:// or https:// URL of an MLflow tracking \
                 server, got {uri:?}"
            )));
        }
        let run_id_file = run_dir.map(|dir| dir.join(RUN_ID_FILE));
        let remembered = run_id_file.as_deref().and_then(read_run_id);
        let continues_own_run = section.run_id.is_none() && remembered.is_some();
        Ok(Some(Self {
            uri,
            experiment: section.experiment.unwrap_or_else(|| config.name.clone()),
            run_name: section
                .run_name
                .unwrap_or_else(|| format!("{}-{job_id}", config.name_slug())),
            run_id: section.run_id.or(remembered),
            continues_own_run,
            log_artifacts: section.log_artifacts,
            params: flatten_config(config),
            tags: vec![
                ("kiln.job_id".into(), job_id.into()),
                ("kiln.backend".into(), backend.into()),
                ("kiln.version".into(), env!("CARGO_PKG_VERSION").into()),
            ],
            run_id_file,
        }))
    }
}

/// The run id a run directory remembers.
fn read_run_id(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("runId")?.as_str().map(str::to_string)
}

/// How long the end of a run may wait for the tracking server (the last metrics, artifacts and
/// the final status) before giving up and reporting what was not sent: `KILN_MLFLOW_FINISH_SECS`
/// seconds, 30 by default.
pub fn finish_timeout() -> Duration {
    let secs = std::env::var("KILN_MLFLOW_FINISH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(30.0);
    Duration::from_secs_f64(secs.min(3600.0))
}
