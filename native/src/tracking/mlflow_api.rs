//! MLflow's tracking REST API (`/api/2.0/mlflow/...`) and its artifact proxy
//! (`/api/2.0/mlflow-artifacts/...`, or an S3 artifact root), one blocking call per method.
//!
//! Credentials come from MLflow's own variables: `MLFLOW_TRACKING_TOKEN` (a bearer token) or
//! `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`.

use super::api_error::ApiError;
use super::s3_artifacts;
use kiln::train::MetricPoint;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// A run as the tracking server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    /// The run's id.
    pub run_id: String,
    /// Its experiment's id.
    pub experiment_id: String,
    /// Where its artifacts go, e.g. `mlflow-artifacts:/1/<run id>/artifacts`.
    pub artifact_uri: String,
    /// The highest step the server holds of each metric (empty for a new run).
    pub latest_steps: BTreeMap<String, u64>,
}

/// A metric value with the wall-clock time it was measured (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct TimedPoint {
    /// The value, its series and step.
    pub point: MetricPoint,
    /// When it was measured.
    pub timestamp_ms: i64,
}

/// A client of one tracking server.
#[derive(Debug, Clone)]
pub struct MlflowApi {
    base: String,
    client: reqwest::blocking::Client,
}

impl MlflowApi {
    /// A client of the tracking server at `uri` (`http://host:port`, optionally with a path).
    pub fn new(uri: &str) -> Result<Self, ApiError> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ApiError {
                message: format!("cannot make an HTTP client: {e}"),
                retryable: false,
            })?;
        Ok(Self {
            base: uri.trim_end_matches('/').to_string(),
            client,
        })
    }

    fn authorised(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        if let Ok(token) = std::env::var("MLFLOW_TRACKING_TOKEN") {
            return request.bearer_auth(token);
        }
        match std::env::var("MLFLOW_TRACKING_USERNAME") {
            Ok(user) => request.basic_auth(user, std::env::var("MLFLOW_TRACKING_PASSWORD").ok()),
            Err(_) => request,
        }
    }

    /// Sends a request and reads the JSON answer (an empty body reads as `{}`).
    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        what: &str,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let response = self
            .authorised(request)
            .timeout(timeout)
            .send()
            .map_err(|e| ApiError {
                message: format!(
                    "{what}: the tracking server {} did not answer: {e}",
                    self.base
                ),
                retryable: true,
            })?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(json!({}));
            }
            return serde_json::from_str(&text).map_err(|e| ApiError {
                message: format!("{what}: the answer is not JSON ({e})"),
                retryable: false,
            });
        }
        let said = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                let code = v.get("error_code")?.as_str()?.to_string();
                let message = v.get("message").and_then(Value::as_str).unwrap_or_default();
                Some(format!("{code}: {message}"))
            })
            .unwrap_or_else(|| text.chars().take(300).collect());
        Err(ApiError {
            message: format!("{what}: HTTP {status}: {said}"),
            retryable: status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408,
        })
    }

    fn post(
        &self,
        path: &str,
        body: &Value,
        what: &str,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let request = self
            .client
            .post(format!("{}/api/2.0/mlflow/{path}", self.base))
            .json(body);
        self.send(request, what, timeout)
    }

    fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let request = self
            .client
            .get(format!("{}/api/2.0/mlflow/{path}", self.base))
            .query(query);
        self.send(request, what, timeout)
    }

    /// The id of the experiment called `name`, created when there is none.
    pub fn experiment_id(&self, name: &str, timeout: Duration) -> Result<String, ApiError> {
        let what = format!("experiment `{name}`");
        match self.get(
            "experiments/get-by-name",
            &[("experiment_name", name)],
            &what,
            timeout,
        ) {
            Ok(found) => return string_at(&found, &["experiment", "experiment_id"], &what),
            Err(e) if !e.message.contains("RESOURCE_DOES_NOT_EXIST") => return Err(e),
            Err(_) => {}
        }
        match self.post(
            "experiments/create",
            &json!({ "name": name }),
            &what,
            timeout,
        ) {
            Ok(created) => string_at(&created, &["experiment_id"], &what),
            // Created by someone else in between: read it again.
            Err(e) if e.message.contains("RESOURCE_ALREADY_EXISTS") => {
                let found = self.get(
                    "experiments/get-by-name",
                    &[("experiment_name", name)],
                    &what,
                    timeout,
                )?;
                string_at(&found, &["experiment", "experiment_id"], &what)
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a run in an experiment.
    pub fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[(String, String)],
        timeout: Duration,
    ) -> Result<RunRef, ApiError> {
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": now_ms(),
            "tags": key_values(tags),
        });
        let created = self.post("runs/create", &body, "creating the run", timeout)?;
        run_ref(&created, "creating the run")
    }

    /// An existing run (to log into it again), marked running.
    pub fn resume_run(&self, run_id: &str, timeout: Duration) -> Result<RunRef, ApiError> {
        let what = format!("run {run_id}");
        let found = self.get("runs/get", &[("run_id", run_id)], &what, timeout)?;
        let run = run_ref(&found, &what)?;
        self.set_status(run_id, "RUNNING", None, timeout)?;
        Ok(run)
    }

    /// Logs metrics, params and tags in one request (MLflow allows at most 1000 metrics,
    /// 100 params and 100 tags per request; callers batch accordingly).
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: &[TimedPoint],
        params: &[(String, String)],
        tags: &[(String, String)],
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let metrics: Vec<Value> = metrics
            .iter()
            .map(|m| {
                json!({
                    "key": m.point.name,
                    "value": m.point.value,
                    "timestamp": m.timestamp_ms,
                    "step": m.point.step,
                })
            })
            .collect();
        let body = json!({
            "run_id": run_id,
            "metrics": metrics,
            "params": key_values(params),
            "tags": key_values(tags),
        });
        self.post("runs/log-batch", &body, "logging a batch", timeout)
            .map(|_| ())
    }

    /// Deletes a run (it moves to MLflow's trash).
    pub fn delete_run(&self, run_id: &str, timeout: Duration) -> Result<(), ApiError> {
        self.post(
            "runs/delete",
            &json!({ "run_id": run_id }),
            &format!("deleting run {run_id}"),
            timeout,
        )
        .map(|_| ())
    }

    /// Sets the run's status (`RUNNING`, `FINISHED`, `FAILED`, `KILLED`) and end time.
    pub fn set_status(
        &self,
        run_id: &str,
        status: &str,
        end_time_ms: Option<i64>,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let mut body = json!({ "run_id": run_id, "status": status });
        if let Some(end) = end_time_ms {
            body["end_time"] = end.into();
        }
        self.post(
            "runs/update",
            &body,
            &format!("setting the run {status}"),
            timeout,
        )
        .map(|_| ())
    }

    /// Uploads one artifact file of a run: through the server's artifact proxy (`mlflow server`
    /// serves artifacts by default), or straight to the bucket of an `s3://` artifact root.
    /// Other roots (a path on the tracking server's machine, other clouds) are refused.
    pub fn upload_artifact(
        &self,
        run: &RunRef,
        name: &str,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        if let Some(location) = crate::s3::s3_location(&run.artifact_uri) {
            return s3_artifacts::upload(&run.artifact_uri, location, name, bytes, timeout);
        }
        let Some(root) = proxied_artifact_path(&run.artifact_uri) else {
            return Err(ApiError {
                message: format!(
                    "artifact {name}: the run's artifacts live at {} — neither behind the \
                     tracking server's artifact proxy nor in S3, the places Kiln uploads to",
                    run.artifact_uri
                ),
                retryable: false,
            });
        };
        let request = self
            .client
            .put(format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{root}/{name}",
                self.base
            ))
            .header("Content-Type", "application/octet-stream")
            .body(bytes);
        self.send(request, &format!("artifact {name}"), timeout)
            .map(|_| ())
    }
}

/// The path under the artifact proxy of an `mlflow-artifacts:` URI
/// (`mlflow-artifacts:/1/abc/artifacts` or `mlflow-artifacts://host:port/1/abc/artifacts`).
fn proxied_artifact_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    let path = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map(|(_, p)| p)?,
        None => rest.trim_start_matches('/'),
    };
    Some(path.trim_end_matches('/').to_string())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    kiln::jobs::now_unix_ms() as i64
}

fn key_values(pairs: &[(String, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect()
}

fn string_at(value: &Value, path: &[&str], what: &str) -> Result<String, ApiError> {
    path.iter()
        .try_fold(value, |at, key| at.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError {
            message: format!("{what}: the answer has no {}", path.join(".")),
            retryable: false,
        })
}

fn run_ref(answer: &Value, what: &str) -> Result<RunRef, ApiError> {
    Ok(RunRef {
        run_id: string_at(answer, &["run", "info", "run_id"], what)?,
        experiment_id: string_at(answer, &["run", "info", "experiment_id"], what)?,
        artifact_uri: string_at(answer, &["run", "info", "artifact_uri"], what)?,
        latest_steps: latest_steps(answer),
    })
}

/// Each metric's highest step in a run (`run.data.metrics` holds each metric's latest value,
/// which MLflow defines as the one at the highest step).
fn latest_steps(answer: &Value) -> BTreeMap<String, u64> {
    let metrics = answer["run"]["data"]["metrics"].as_array();
    metrics
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["key"].as_str()?.to_string(), step_of(&m["step"])?)))
        .collect()
}

/// A step as MLflow's JSON writes it (a number, or an int64 as a string).
fn step_of(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_latest_steps_are_read_from_its_metrics() {
        let answer = json!({"run": {
            "info": {"run_id": "r", "experiment_id": "1", "artifact_uri": "mlflow-artifacts:/1/r"},
            "data": {"metrics": [
                {"key": "train_loss", "value": 0.5, "timestamp": 1, "step": "40"},
                {"key": "val_loss", "value": 0.4, "timestamp": 1, "step": 32},
                {"key": "odd", "value": 1.0, "timestamp": 1}
            ]}
        }});
        let run = run_ref(&answer, "run r").expect("a run");
        assert_eq!(
            run.latest_steps,
            BTreeMap::from([("train_loss".into(), 40), ("val_loss".into(), 32)])
        );
        let created =
            json!({"run": {"info": {"run_id": "r", "experiment_id": "1", "artifact_uri": "a"}}});
        assert!(
            run_ref(&created, "new")
                .expect("a run")
                .latest_steps
                .is_empty()
        );
    }

    #[test]
    fn artifact_uris_behind_the_proxy() {
        assert_eq!(
            proxied_artifact_path("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            proxied_artifact_path("mlflow-artifacts://127.0.0.1:5000/1/abc/artifacts/").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(proxied_artifact_path("s3://bucket/1/abc/artifacts"), None);
    }
}
