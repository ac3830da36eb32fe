//! The codex-manager double as a separate process, and the test controls the harness uses: sessions and bursts.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::process::Process;

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
        let args = ["--port", "0", "--no-record"].map(String::from);
        let mut process = Process::spawn("double", program, &args, log_dir)?;
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
