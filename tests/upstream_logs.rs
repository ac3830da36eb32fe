//! What the bridge says about its upstream, in plain words: a reconnect says how long the stream was down and how
//! many calls were pending, and a stream that cannot connect says why.

mod bridge_support;
mod captured_logs;

use std::sync::atomic::{AtomicUsize, Ordering};

use bridge_support::{WAIT, eventually, only_thread, start, upstream};
use captured_logs::CapturedLogs;
use serde_json::json;
use skillbridge::skill;
use skillbridge::skill::Catalog;
use skillbridge_doubles::CodexManagerDouble;
use tokio::sync::Semaphore;

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static RELEASE: Semaphore = Semaphore::const_new(0);

/// Waits until the test lets it finish.
#[skill]
async fn held() -> String {
    RUNNING.fetch_add(1, Ordering::SeqCst);
    RELEASE.acquire().await.expect("never closed").forget();
    "released".into()
}

#[tokio::test]
async fn a_reconnect_says_how_long_the_stream_was_down_and_how_many_calls_were_pending() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::INFO);
    let double = CodexManagerDouble::start().await.unwrap();
    let builder = skillbridge::Bridge::builder()
        .catalog(Catalog::from_registry().unwrap())
        .upstream(upstream(&double));
    let bridge = start(builder).await;
    let thread = only_thread(&bridge);
    let calls: Vec<String> = (0..3)
        .map(|_| double.inject_tool_call(&thread, "held", json!({})))
        .collect();
    eventually("the three calls run", || RUNNING.load(Ordering::SeqCst) == 3).await;
    assert!(
        logs.lines_with("stream reconnected").is_empty(),
        "the first connection is no reconnect"
    );

    double.drop_sockets();
    eventually("the reconnect is logged", || {
        !logs.lines_with("stream reconnected").is_empty()
    })
    .await;
    let line = &logs.lines_with("stream reconnected")[0];
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.ends_with("(3 calls were pending)"), "{line}");
    let after = line.split("stream reconnected after ").nth(1).unwrap();
    assert!(
        after.starts_with(|c: char| c.is_ascii_digit()) && after.contains("ms ("),
        "{line}"
    );

    RELEASE.add_permits(3);
    for call in &calls {
        double
            .wait_answered(call, WAIT)
            .await
            .expect("answered after the reconnect");
    }

    double.shutdown().await;
    eventually("the failed connect is logged", || {
        !logs.lines_with("the stream cannot connect").is_empty()
    })
    .await;
    let line = &logs.lines_with("the stream cannot connect")[0];
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(": connection refused; trying again with backoff"),
        "{line}"
    );
    bridge.shutdown().await;
}
