//! Shared setup of the bridge tests: a codex-manager double, bridges pointing at it, and bounded waits.
//! Each test binary brings its own skills; these helpers only wire things together.

#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use skillbridge::manager::CodexManager;
use skillbridge::skill::Catalog;
use skillbridge::{Bridge, BridgeBuilder, BridgeError, CodexManagerUpstream, TurnReply};
use skillbridge_doubles::CodexManagerDouble;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Upper bound of every wait in these tests; only reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(20);

/// The pending-call listing interval of the test bridges.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The grace period of the test bridges made by [`builder`].
pub const GRACE: Duration = Duration::from_secs(2);

/// How long the running calls of a `send` turn get once it is over, as `skillbridge send` has it.
pub const SEND_GRACE: Duration = Duration::from_secs(5);

/// A codex-manager client for `double`.
pub fn client(double: &CodexManagerDouble) -> CodexManager {
    client_at(&double.base_url())
}

/// A codex-manager client for the codex-manager at `url`.
pub fn client_at(url: &str) -> CodexManager {
    CodexManager::builder()
        .base_url(url)
        .build()
        .expect("a valid codex-manager client")
}

/// The codex-manager upstream of `double` with a short poll interval: one new session, kept on exit.
pub fn upstream(double: &CodexManagerDouble) -> CodexManagerUpstream {
    upstream_of(client(double))
}

/// The codex-manager upstream over `client` with a short poll interval.
pub fn upstream_of(client: CodexManager) -> CodexManagerUpstream {
    CodexManagerUpstream::new(client).poll_interval(POLL_INTERVAL)
}

/// A bridge builder with every skill of this test binary and a short grace, without an upstream or an admin
/// endpoint.
pub fn builder() -> BridgeBuilder {
    Bridge::builder()
        .catalog(Catalog::from_registry().expect("the test skills form a catalog"))
        .grace(GRACE)
}

/// A bridge builder against `double`, as serve would be set up: every skill of this test binary, no admin
/// endpoint, a short poll interval and grace, one new session kept on exit.
pub fn bridge_for(double: &CodexManagerDouble) -> BridgeBuilder {
    builder().upstream(upstream(double))
}

/// Builds and starts a bridge and waits until its stream is connected.
pub async fn start(builder: BridgeBuilder) -> Bridge {
    let bridge = builder.build().expect("a valid bridge");
    bridge.start().await.expect("the bridge starts");
    assert!(bridge.wait_connected(WAIT).await, "the bridge's stream never connected");
    bridge
}

/// The served thread when the bridge serves exactly one.
pub fn only_thread(bridge: &Bridge) -> String {
    let sessions = bridge.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    sessions[0].id.clone()
}

/// A bridge for one `send` turn, as `skillbridge send` builds it: one session, deleted at the end unless
/// `keep_session`, a short poll interval, 5 s for running calls once the turn is over.
pub fn send_bridge(client: CodexManager, keep_session: bool) -> Bridge {
    Bridge::builder()
        .catalog(Catalog::from_registry().expect("the test skills form a catalog"))
        .upstream(upstream_of(client).sessions(1).delete_on_exit(!keep_session))
        .grace(SEND_GRACE)
        .build()
        .expect("a valid bridge")
}

/// What `send` did: the turn's reply, and whether its session was deleted at the end.
#[derive(Debug)]
pub struct Sent {
    pub reply: TurnReply,
    pub deleted: bool,
}

/// Runs one turn as `skillbridge send` does: sends `prompt`, interrupting the turn when `interrupt` is cancelled
/// or after `timeout`, then shuts the bridge down whatever happened.
pub async fn send(
    bridge: &Bridge,
    prompt: &str,
    timeout: Duration,
    interrupt: CancellationToken,
) -> Result<Sent, BridgeError> {
    let turn = bridge.send(prompt).timeout(timeout).interrupt_on(interrupt).await;
    let report = bridge.shutdown().await;
    let reply = turn?;
    let deleted = report.deleted.contains(&reply.session_id);
    Ok(Sent { reply, deleted })
}

/// The text items of a tool-call response body, joined.
pub fn answer_text(body: &Value) -> String {
    body["contentItems"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// `success` of a response body (codex-manager's default is true).
pub fn answer_success(body: &Value) -> bool {
    body["success"].as_bool().unwrap_or(true)
}

/// Polls `condition` every few milliseconds until it holds; panics with `what` after [`WAIT`] (of Tokio's clock,
/// so of the paused clock in tests that pause it).
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Like [`eventually`], for a condition that needs to await.
pub async fn eventually_async<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How many `GET /sessions/{thread}/tool-calls` listings the double has seen.
pub fn listings(double: &CodexManagerDouble, thread: &str) -> usize {
    let path = format!("/api/sessions/{thread}/tool-calls");
    double
        .received()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

/// The value of one sample line of the Prometheus text, 0 when absent.
pub fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
