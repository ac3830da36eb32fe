//! The codex-manager double as a separate process, and the test controls the harnesses use: sessions and bursts;
//! and for the fault suite, restarts, dropped sockets, failing answers, raw frames and events, and what the double's
//! answer identity check found.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::process::Process;

/// How long a test control other than a burst may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// A burst's outcome as the double reports it (`POST /_double/burst`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Burst {
    /// Calls asked for.
    pub count: usize,
    /// Calls answered with a 200.
    pub answered: usize,
    /// Wall time of the burst.
    pub elapsed_ms: u64,
    /// Answered calls per second.
    pub calls_per_sec: f64,
    /// Event-to-answer latency.
    pub latency_us: Latency,
    /// The burst gave up waiting.
    #[serde(default)]
    pub timed_out: bool,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
}

/// How the double runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DoubleOptions {
    /// Record every request (`GET /_double/received`); off, memory stays flat however many calls are made.
    pub record: bool,
    /// `--check-answer-identity`: every call carries its id in its arguments (`call_id`), and accepted answers
    /// that do not name their call, or name one already answered, are reported.
    pub check_answer_identity: bool,
}

/// An answer the double accepted for a call whose id its text lacks (`GET /_double/misdelivered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Misdelivery {
    /// The request id the answer was posted to.
    pub request_id: String,
    /// The call pending under it, which took the answer.
    pub expected_call_id: String,
    /// The answer's text.
    pub answer_text: String,
}

/// A call whose id more than one accepted answer contains (`GET /_double/answered-twice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnsweredTwice {
    /// The call.
    pub call_id: String,
    /// Accepted answers naming it.
    pub answers: u32,
    /// One of them was accepted for the call itself.
    pub own_answer_accepted: bool,
}

/// What a restart of the double did (`POST /_double/restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartReport {
    /// Pending calls forgotten: their answers can no longer be delivered.
    pub calls_forgotten: usize,
    /// TCP connections cut.
    pub connections_cut: usize,
}

/// The ids of a call the double issued (`POST /_double/tool-calls`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCall {
    /// What the answer is posted to.
    pub request_id: String,
    /// The model's call id, never reused.
    pub call_id: String,
}

/// A running double.
pub struct Double {
    process: Process,
    base_url: String,
    http: reqwest::Client,
}

impl Double {
    /// Starts `program` on a free loopback port without request recording, and waits for its
    /// `listening on <url>` line.
    pub async fn start(program: &Path, log_dir: &Path) -> Result<Double> {
        Double::start_with(program, log_dir, "double", DoubleOptions::default()).await
    }

    /// [`start`](Self::start) with `options`; its stderr goes to `<log_dir>/<name>.log`.
    pub async fn start_with(program: &Path, log_dir: &Path, name: &str, options: DoubleOptions) -> Result<Double> {
        let mut args = vec!["--port".to_owned(), "0".to_owned()];
        if !options.record {
            args.push("--no-record".into());
        }
        if options.check_answer_identity {
            args.push("--check-answer-identity".into());
        }
        let mut process = Process::spawn(name, program, &args, log_dir)?;
        let base_url = process
            .wait_line(Duration::from_secs(20), |line| {
                line.strip_prefix("listening on ").map(|url| url.trim().to_owned())
            })
            .await?;
        Ok(Double {
            process,
            base_url,
            http: reqwest::Client::new(),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The double's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The port it listens on.
    pub fn port(&self) -> Result<u16> {
        let port = self.base_url.rsplit_once(':').and_then(|(_, port)| port.parse().ok());
        port.with_context(|| format!("no port in {}", self.base_url))
    }

    /// POSTs a JSON body to a test control and returns the JSON answer.
    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .timeout(CONTROL_TIMEOUT)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let response = response.error_for_status().with_context(|| format!("POST {path}"))?;
        response
            .json()
            .await
            .with_context(|| format!("reading the answer to POST {path}"))
    }

    /// GETs a test control's `data` list.
    async fn list<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<Vec<T>> {
        #[derive(Deserialize)]
        struct Data<T> {
            data: Vec<T>,
        }
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .timeout(CONTROL_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let data: Data<T> = response
            .error_for_status()
            .with_context(|| format!("GET {path}"))?
            .json()
            .await
            .with_context(|| format!("reading the answer to GET {path}"))?;
        Ok(data.data)
    }

    /// Issues one tool call; `nested` makes its arguments nest that many levels deep.
    pub async fn inject_call(
        &self,
        thread_id: &str,
        tool: &str,
        arguments: &Value,
        nested: Option<usize>,
    ) -> Result<IssuedCall> {
        let mut body = json!({"threadId": thread_id, "tool": tool, "arguments": arguments});
        if let Some(depth) = nested {
            body["nested"] = json!(depth);
        }
        Ok(serde_json::from_value(self.post("/_double/tool-calls", &body).await?)?)
    }

    /// Restarts the double as codex-manager restarts: connections cut, pending calls forgotten, request ids from
    /// 0 again, sessions kept.
    pub async fn restart(&self) -> Result<RestartReport> {
        Ok(serde_json::from_value(
            self.post("/_double/restart", &json!({})).await?,
        )?)
    }

    /// Closes every websocket without a close handshake; returns how many there were.
    pub async fn drop_sockets(&self) -> Result<u64> {
        let answer = self.post("/_double/drop-sockets", &json!({})).await?;
        answer["dropped"].as_u64().context("no `dropped` count")
    }

    /// Every answer fails with 500 for `window` from now (zero: stop failing).
    pub async fn fail_answers_for(&self, window: Duration) -> Result<()> {
        let ms = window.as_millis() as u64;
        self.post("/_double/fail-for", &json!({ "ms": ms })).await.map(drop)
    }

    /// Sends a raw text frame to every socket.
    pub async fn emit_raw_text(&self, text: &str) -> Result<()> {
        self.post("/_double/raw", &json!({ "text": text })).await.map(drop)
    }

    /// Sends a binary frame of `bytes` to every socket.
    pub async fn emit_raw_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.post("/_double/raw", &json!({ "bytes": bytes })).await.map(drop)
    }

    /// Emits an event `{type, threadId, payload}` on the thread.
    pub async fn emit_event(&self, thread_id: &str, event_type: &str, payload: &Value) -> Result<()> {
        let body = json!({"threadId": thread_id, "type": event_type, "payload": payload});
        self.post("/_double/events", &body).await.map(drop)
    }

    /// Answers accepted for a call whose id their text lacks.
    pub async fn misdelivered(&self) -> Result<Vec<Misdelivery>> {
        self.list("/_double/misdelivered").await
    }

    /// Calls whose id more than one accepted answer contains.
    pub async fn answered_twice(&self) -> Result<Vec<AnsweredTwice>> {
        self.list("/_double/answered-twice").await
    }

    /// The bodies of every answer posted so far, accepted or not (needs [`DoubleOptions::record`]).
    pub async fn answer_bodies(&self) -> Result<Vec<Value>> {
        #[derive(Deserialize)]
        struct Request {
            method: String,
            path: String,
            body: Value,
        }
        let requests: Vec<Request> = self.list("/_double/received").await?;
        Ok(requests
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.starts_with("/api/tool-calls/") && r.path.ends_with("/response"))
            .map(|r| r.body)
            .collect())
    }

    /// Creates a session through the test controls (for clients that do not create their own).
    pub async fn create_session(&self) -> Result<String> {
        let body: Value = self
            .http
            .post(format!("{}/_double/sessions", self.base_url))
            .json(&json!({"tools": []}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match body["sessionId"].as_str() {
            Some(id) => Ok(id.to_owned()),
            None => bail!("the double answered {body} to a session request"),
        }
    }

    /// Issues `count` calls of `tool` on `thread_id`, at most `outstanding` unanswered, and returns the double's
    /// measurement. Gives up after `timeout`.
    pub async fn burst(
        &self,
        thread_id: &str,
        tool: &str,
        arguments: &Value,
        count: usize,
        outstanding: usize,
        timeout: Duration,
    ) -> Result<Burst> {
        let spec = json!({
            "threadId": thread_id,
            "tool": tool,
            "arguments": arguments,
            "count": count,
            "outstanding": outstanding,
            "timeoutMs": timeout.as_millis() as u64,
        });
        let burst: Burst = self
            .http
            .post(format!("{}/_double/burst", self.base_url))
            .timeout(timeout + Duration::from_secs(10))
            .json(&spec)
            .send()
            .await
            .context("asking the double for a burst")?
            .error_for_status()?
            .json()
            .await
            .context("reading the burst report")?;
        Ok(burst)
    }

    /// Stops the double.
    pub async fn stop(self) -> Result<()> {
        self.process.stop().await.map(|_| ())
    }
}
