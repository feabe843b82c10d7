//! The HTTP calls of `kiln federate`: the server's API with its token, retried while the
//! server is unreachable (restarting, say), and its problems as errors.

use kiln::{KilnError, Result};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The server's API, with the token when there is one.
pub struct Api {
    /// The server's URL, without a trailing slash.
    pub base: String,
    token: Option<String>,
    client: Client,
}

/// How long calls keep retrying while the server cannot be reached (restarting, say).
const UNREACHABLE_FOR: Duration = Duration::from_secs(180);

impl Api {
    pub fn new(server: &str, token_file: Option<&Path>) -> Result<Self> {
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| KilnError::io(format!("cannot read {}", path.display()), e))?;
                let token = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_string);
                Some(token.ok_or_else(|| {
                    KilnError::InvalidArgument(format!("--token-file {}: empty", path.display()))
                })?)
            }
            None => None,
        };
        let client = Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| KilnError::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            base: server.trim_end_matches('/').to_string(),
            token,
            client,
        })
    }

    /// Sends a request (built again for each try), retrying while the server is unreachable.
    pub fn send(
        &self,
        what: &str,
        build: impl Fn(&Client) -> reqwest::blocking::RequestBuilder,
    ) -> Result<Response> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            let mut request = build(&self.client);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            match request.send() {
                Ok(response) => return Ok(response),
                // The server restarting: refused connections, and requests it cut off.
                Err(e)
                    if (e.is_connect() || e.is_timeout() || e.is_request())
                        && started.elapsed() < UNREACHABLE_FOR =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(3));
                }
                Err(e) => {
                    return Err(KilnError::Internal(format!(
                        "{what}: {} unreachable: {e}",
                        self.base
                    )));
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        self.send(&format!("GET {path}"), |c| c.get(&url))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        self.send(&format!("POST {path}"), |c| c.post(&url).json(body))
    }

    /// The JSON body of a successful response, or the server's problem as an error.
    pub fn json(&self, response: Response) -> Result<Value> {
        let response = ok(response)?;
        response
            .json()
            .map_err(|e| KilnError::Internal(format!("the server's answer is not JSON: {e}")))
    }
}

/// The response when it succeeded, else an error carrying the server's `detail`.
pub fn ok(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: Value = response.json().unwrap_or(Value::Null);
    let detail = body["detail"].as_str().unwrap_or("no detail").to_string();
    Err(match status {
        StatusCode::BAD_REQUEST
        | StatusCode::NOT_FOUND
        | StatusCode::CONFLICT
        | StatusCode::FORBIDDEN => {
            KilnError::InvalidArgument(format!("the server refused ({status}): {detail}"))
        }
        _ => KilnError::Internal(format!("the server answered {status}: {detail}")),
    })
}
