//! Bursts for benchmarks: issue N tool calls keeping at most K unanswered, and report throughput
//! and per-call latency, measured from emitting the `app_server.request.item.tool.call` frame to
//! accepting the 200 answer.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::state::State;

/// Calls issued between two yields to the runtime.
const ISSUE_BATCH: usize = 256;

/// How long a burst waits for answers unless told otherwise.
pub const DEFAULT_BURST_TIMEOUT: Duration = Duration::from_secs(60);

/// What to burst. Deserializes from the `/_double/burst` body
/// `{threadId, tool, arguments, count, outstanding, timeoutMs?}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BurstSpec {
    /// The thread the calls belong to.
    pub thread_id: String,
    /// The tool every call names.
    pub tool: String,
    /// The arguments every call carries.
    #[serde(default)]
    pub arguments: Value,
    /// How many calls to issue.
    pub count: usize,
    /// The most calls left unanswered at once (at least 1).
    #[serde(default = "one")]
    pub outstanding: usize,
    /// Give up waiting for answers after this many milliseconds (default 60 000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn one() -> usize {
    1
}

impl BurstSpec {
    /// A burst of `count` calls of `tool` on `thread_id`, one outstanding at a time.
    pub fn new(thread_id: impl Into<String>, tool: impl Into<String>, arguments: Value, count: usize) -> BurstSpec {
        BurstSpec {
            thread_id: thread_id.into(),
            tool: tool.into(),
            arguments,
            count,
            outstanding: 1,
            timeout_ms: None,
        }
    }

    /// Keeps at most `outstanding` calls unanswered at once.
    pub fn outstanding(mut self, outstanding: usize) -> BurstSpec {
        self.outstanding = outstanding;
        self
    }

    /// Gives up after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> BurstSpec {
        self.timeout_ms = Some(timeout.as_millis().min(u128::from(u64::MAX)) as u64);
        self
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencyMicros {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
}

/// The outcome of a burst, serialized as `{count, answered, elapsed_ms, calls_per_sec,
/// latency_us:{p50,p99,max}, timed_out}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurstReport {
    /// Calls asked for.
    pub count: usize,
    /// Calls answered with a 200.
    pub answered: usize,
    /// Wall time of the whole burst.
    pub elapsed_ms: u64,
    /// `answered` per second of `elapsed_ms`.
    pub calls_per_sec: f64,
    /// Per-call latency over the answered calls.
    pub latency_us: LatencyMicros,
    /// The timeout passed before every call was answered.
    pub timed_out: bool,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) async fn run(state: &State, spec: &BurstSpec) -> BurstReport {
    let outstanding = spec.outstanding.max(1);
    let timeout = spec
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_BURST_TIMEOUT);
    let deadline = tokio::time::Instant::now() + timeout;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut latencies = Vec::with_capacity(spec.count);
    let mut unanswered = HashSet::with_capacity(outstanding);
    let mut issued = 0;
    let started = Instant::now();
    let mut timed_out = false;
    while latencies.len() < spec.count {
        while issued < spec.count && unanswered.len() < outstanding {
            let call = state.inject_tool_call(&spec.thread_id, None, &spec.tool, &spec.arguments, Some(tx.clone()));
            unanswered.insert(call.call_id);
            issued += 1;
            // Issuing tens of thousands of calls takes the double a second: let its sockets carry the first ones
            // meanwhile, as a server emits each call when it is made.
            if issued % ISSUE_BATCH == 0 {
                tokio::task::yield_now().await;
            }
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(answer)) => {
                if unanswered.remove(&*answer.call_id) {
                    latencies.push(answer.latency.as_micros().min(u128::from(u64::MAX)) as u64);
                }
            }
            Ok(None) => unreachable!("the burst holds a sender"),
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let answered = latencies.len();
    BurstReport {
        count: spec.count,
        answered,
        elapsed_ms: elapsed.as_millis().min(u128::from(u64::MAX)) as u64,
        calls_per_sec: if elapsed.is_zero() {
            0.0
        } else {
            answered as f64 / elapsed.as_secs_f64()
        },
        latency_us: LatencyMicros {
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or(0),
        },
        timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.50), 50);
        assert_eq!(percentile(&samples, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn spec_reads_the_http_body() {
        let spec: BurstSpec = serde_json::from_value(serde_json::json!({
            "threadId": "t", "tool": "echo", "arguments": {"x": 1}, "count": 5, "outstanding": 2
        }))
        .unwrap();
        assert_eq!((spec.count, spec.outstanding, spec.timeout_ms), (5, 2, None));
    }
}
