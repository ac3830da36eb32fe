//! Shared setup of the bridge tests: a codex-manager double, serve settings pointing at it, and bounded waits.
//! Each test binary brings its own skills; these helpers only wire things together.

#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;
use skillbridge::cli::serve::{ServeArgs, Serving};
use skillbridge::cli::settings::{ManagerArgs, ServeSettings};
use skillbridge::skill::Catalog;
use skillbridge_doubles::CodexManagerDouble;

/// Upper bound of every wait in these tests; only reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(20);

/// Serve flags against `double`: no admin endpoint, a short poll interval and grace.
pub fn args(double: &CodexManagerDouble) -> ServeArgs {
    ServeArgs {
        manager: ManagerArgs {
            url: Some(double.base_url()),
            ..ManagerArgs::default()
        },
        poll_interval: Some(Duration::from_millis(250)),
        grace: Some(Duration::from_secs(2)),
        no_admin: true,
        ..ServeArgs::default()
    }
}

/// Resolves `args` without reading the process environment.
pub fn settings(args: &ServeArgs) -> ServeSettings {
    ServeSettings::resolve(args, &|_| None).expect("valid settings")
}

/// Starts a bridge with every skill of this test binary and waits until its stream is connected.
pub async fn start(args: &ServeArgs) -> Serving {
    let catalog = Catalog::from_registry().expect("the test skills form a catalog");
    let serving = Serving::start(settings(args), catalog).await.expect("serve starts");
    assert!(
        serving.wait_connected(WAIT).await,
        "the bridge's stream never connected"
    );
    serving
}

/// The served thread when the bridge serves exactly one.
pub fn only_thread(serving: &Serving) -> String {
    assert_eq!(serving.sessions().len(), 1, "{:?}", serving.sessions());
    serving.sessions()[0].id.clone()
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

/// Polls `condition` every few milliseconds until it holds; panics with `what` after [`WAIT`].
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
