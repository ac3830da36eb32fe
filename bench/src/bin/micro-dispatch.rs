//! `micro-dispatch`: what the bridge's dispatch costs per call on its own, without sockets, the double or HTTP:
//! the trivial skill of W1 as a plain `fn` (run on Tokio's blocking pool) and as an `async fn`, through a
//! [`Bridge`] whose upstream hands calls straight to its feed and accepts every answer at once. Not part of the harness; a diagnostic for changes to the dispatch
//! path (dispatcher, skill invocation, statistics).
//!
//! Usage: `cargo run --release -p skillbridge-bench --bin micro-dispatch [CALLS]` (default 200,000 per series, 64
//! outstanding, Tokio's default multi-thread runtime). Prints calls/s, wall and process CPU time per call for two
//! series of each skill.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::json;
use skillbridge::skill::Catalog;
use skillbridge::telemetry::CallSource;
use skillbridge::upstream::{AnswerOutcome, Feed, ToolCall, Upstream, UpstreamError};
use skillbridge::{BoxFuture, Bridge, ToolResult, skill};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

/// How many calls a series keeps unanswered at most.
const OUTSTANDING: usize = 64;
/// Calls answered before a series is measured.
const WARM_UP: usize = 5_000;

/// Returns its input unchanged, on the blocking pool.
#[skill]
fn noop(
    /// Any text.
    text: String,
) -> String {
    text
}

/// Returns its input unchanged, as an `async fn`.
#[skill]
async fn noop_async(
    /// Any text.
    text: String,
) -> String {
    text
}

/// Hands its feed over when the bridge runs it; accepts every answer at once and frees a slot for the next call.
struct Accepting {
    slots: Arc<Semaphore>,
    answered: AtomicUsize,
    feed: watch::Sender<Option<Feed>>,
}

impl Upstream for Accepting {
    fn name(&self) -> &'static str {
        "accepting"
    }

    fn run<'a>(&'a self, feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>> {
        self.feed.send_replace(Some(feed));
        Box::pin(async move {
            stop.cancelled().await;
            Ok(())
        })
    }

    fn answer<'a>(&'a self, _call: &'a ToolCall, _result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.slots.add_permits(1);
        Box::pin(async { AnswerOutcome::Delivered })
    }
}

/// This process's user + system CPU time in clock ticks (1/100 s).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Submits `calls` calls of `tool`, at most [`OUTSTANDING`] unanswered, and waits for their answers.
async fn series(feed: &Feed, upstream: &Accepting, tool: &str, calls: usize, first_id: usize) {
    for id in first_id..first_id + calls {
        let Ok(slot) = upstream.slots.acquire().await else {
            return;
        };
        slot.forget();
        let call = ToolCall {
            request_id: id.to_string(),
            thread_id: "thread".into(),
            turn_id: Some("turn".into()),
            call_id: format!("call_{id}"),
            tool: tool.into(),
            arguments: json!({"text": "ping"}),
        };
        feed.submit(call, CallSource::Stream);
    }
    while upstream.answered.load(Ordering::Relaxed) < first_id + calls {
        tokio::task::yield_now().await;
    }
}

fn main() -> anyhow::Result<()> {
    let calls: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        for tool in ["noop", "noop_async", "noop", "noop_async"] {
            let upstream = Arc::new(Accepting {
                slots: Arc::new(Semaphore::new(OUTSTANDING)),
                answered: AtomicUsize::new(0),
                feed: watch::channel(None).0,
            });
            let mut handover = upstream.feed.subscribe();
            let bridge = Bridge::builder()
                .catalog(Catalog::from_registry()?)
                .upstream(Arc::clone(&upstream))
                .build()?;
            bridge.start().await?;
            let feed = handover.wait_for(Option::is_some).await?.clone().expect("handed over");
            series(&feed, &upstream, tool, WARM_UP, 0).await;
            let (cpu, wall) = (cpu_ticks(), Instant::now());
            series(&feed, &upstream, tool, calls, WARM_UP).await;
            let wall = wall.elapsed().as_secs_f64();
            let cpu = cpu_ticks().saturating_sub(cpu) as f64 / 100.0;
            println!(
                "{tool:<10} {:>8.0} calls/s  {:>6.2} µs wall/call  {:>6.2} µs cpu/call",
                calls as f64 / wall,
                wall * 1e6 / calls as f64,
                cpu * 1e6 / calls as f64
            );
            bridge.shutdown().await;
        }
        Ok(())
    })
}
