//! Waiting for the upstream at start-up (Tokio's paused clock): while it answers 503 the bridge tries again with
//! backoff, telling `/readyz` why it is not ready, until it opens or the startup timeout passes; a refusal that
//! waiting cannot cure (401) ends the start at once.

use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use skillbridge::manager::ManagerError;
use skillbridge::skill::Catalog;
use skillbridge::telemetry::ServedSession;
use skillbridge::upstream::{AnswerOutcome, Feed, ToolCall, Upstream, UpstreamError};
use skillbridge::{BoxFuture, Bridge, BridgeError, ToolResult};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Refuses to open with `status` until `failures` attempts have failed, recording when each attempt came.
struct Flaky {
    status: StatusCode,
    failures: usize,
    attempts: Mutex<Vec<Instant>>,
}

impl Flaky {
    fn new(status: StatusCode, failures: usize) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            status,
            failures,
            attempts: Mutex::new(Vec::new()),
        })
    }

    /// When each attempt came, counted from `start`.
    fn attempts_after(&self, start: Instant) -> Vec<Duration> {
        self.attempts.lock().unwrap().iter().map(|at| *at - start).collect()
    }
}

impl Upstream for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn open<'a>(&'a self, _catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, UpstreamError>> {
        let mut attempts = self.attempts.lock().unwrap();
        attempts.push(Instant::now());
        let result = if attempts.len() <= self.failures {
            Err(UpstreamError::Refused {
                action: "create a session",
                source: ManagerError::Status {
                    operation: "sessions.create".into(),
                    status: self.status,
                    body: json!({"error": "starting up"}),
                },
            })
        } else {
            Ok(vec![ServedSession {
                id: "thread-1".into(),
                upstream: "flaky",
                created: true,
                tools: None,
            }])
        };
        Box::pin(async move { result })
    }

    fn run<'a>(&'a self, _feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            stop.cancelled().await;
            Ok(())
        })
    }

    fn answer<'a>(&'a self, _call: &'a ToolCall, _result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        Box::pin(async { AnswerOutcome::Delivered })
    }
}

fn bridge(upstream: &std::sync::Arc<Flaky>, startup_timeout: Duration) -> Bridge {
    Bridge::builder()
        .catalog(Catalog::builder().without_registry().build().unwrap())
        .upstream(std::sync::Arc::clone(upstream))
        .startup_timeout(startup_timeout)
        .build()
        .unwrap()
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test(start_paused = true)]
async fn an_upstream_answering_503_is_tried_again_with_backoff_until_it_opens() {
    let upstream = Flaky::new(StatusCode::SERVICE_UNAVAILABLE, 4);
    let bridge = bridge(&upstream, Duration::from_secs(60));
    let start = Instant::now();
    let starting = tokio::spawn({
        let bridge = bridge.clone();
        async move { bridge.start().await }
    });
    // While it waits, readiness says for what.
    tokio::time::sleep(MS(100)).await;
    let reasons = bridge.health().readiness().unwrap_err();
    assert!(
        reasons[0].starts_with(
            "waiting for the upstream: codex-manager refused to create a session: sessions.create: \
                                codex-manager answered 503"
        ),
        "{reasons:?}"
    );
    starting
        .await
        .unwrap()
        .expect("the bridge starts once the upstream opens");
    assert_eq!(
        upstream.attempts_after(start),
        [MS(0), MS(200), MS(600), MS(1400), MS(3000)],
        "200 ms doubling"
    );
    let reasons = bridge.health().readiness().unwrap_err();
    assert!(
        !reasons.iter().any(|reason| reason.starts_with("waiting")),
        "no longer waiting: {reasons:?}"
    );
    bridge.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn start_up_gives_up_when_the_startup_timeout_has_passed() {
    let upstream = Flaky::new(StatusCode::BAD_GATEWAY, usize::MAX);
    let bridge = bridge(&upstream, Duration::from_secs(2));
    let start = Instant::now();
    let error = bridge.start().await.unwrap_err();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "gave up exactly at the timeout"
    );
    assert!(
        matches!(&error, BridgeError::UpstreamNotReady { upstream: "flaky", .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(
            "gave up after waiting 2s for flaky: codex-manager refused to create a session: sessions.create: \
             codex-manager answered 502"
        ),
        "{error}"
    );
    assert_eq!(
        upstream.attempts_after(start),
        [MS(0), MS(200), MS(600), MS(1400), MS(2000)],
        "the last wait is cut to the time left"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_waiting_cannot_cure_ends_the_start_at_once() {
    let upstream = Flaky::new(StatusCode::UNAUTHORIZED, 1);
    let error = bridge(&upstream, Duration::from_secs(60)).start().await.unwrap_err();
    assert!(
        matches!(&error, BridgeError::Upstream(UpstreamError::Refused { .. })),
        "{error}"
    );
    assert_eq!(upstream.attempts.lock().unwrap().len(), 1);

    let upstream = Flaky::new(StatusCode::SERVICE_UNAVAILABLE, 1);
    let error = bridge(&upstream, Duration::ZERO).start().await.unwrap_err();
    assert!(
        matches!(&error, BridgeError::Upstream(UpstreamError::Refused { .. })),
        "no startup timeout, no waiting: {error}"
    );
    assert_eq!(upstream.attempts.lock().unwrap().len(), 1);
}
