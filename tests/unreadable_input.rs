//! Input the bridge cannot read, against the codex-manager double: a pending call nested deeper than JSON is read to
//! does not fail the listing of its session (the other calls are served; it is reported once, with its request id
//! and why), the same call on the stream is a malformed frame of kind `too_deep`, and malformed frames are counted by
//! kind in `/metrics`, next to well-formed signals that cannot be used (a tool call whose request id is an object).

mod bridge_support;

mod captured_logs;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use bridge_support::{WAIT, builder, client, eventually, eventually_async, listings, sample, start, upstream_of};
use captured_logs::CapturedLogs;
use serde_json::{Value, json};
use skillbridge::Bridge;
use skillbridge::manager::{CodexManager, UnreadableRow};
use skillbridge::skill;
use skillbridge_doubles::CodexManagerDouble;
use tower::ServiceExt;

/// Shouts.
#[skill]
fn shout(
    /// What to shout.
    text: String,
) -> String {
    text.to_uppercase()
}

/// Arguments that nest `depth` levels deep: an object around arrays.
fn nested_arguments(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 1..depth {
        value = json!([value]);
    }
    json!({ "text": value })
}

/// The reason a row with arguments 126 levels deep is given (`details` holds them one level deeper).
const TOO_DEEP_126: &str = "`arguments` nests 126 levels deep (the row 128): rows are read to a depth of 127";

async fn metrics(bridge: &Bridge) -> String {
    let request = axum::http::Request::get("/metrics").body(Body::empty()).unwrap();
    let response = bridge.admin_router().oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_listing_returns_the_rows_it_can_read_and_says_why_not_the_others() {
    let _guard = CapturedLogs::default().install(tracing::Level::INFO);
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    let first = double.inject_tool_call(&thread, "shout", json!({"text": "first"}));
    let deep = double.inject_tool_call(&thread, "shout", nested_arguments(126));
    let later: Vec<String> = (0..5)
        .map(|i| double.inject_tool_call(&thread, "shout", json!({"text": format!("later {i}")})))
        .collect();
    let readable: Vec<&str> = std::iter::once(&first).chain(&later).map(String::as_str).collect();

    let cm = client(&double);
    let listing = cm.list_pending_calls(&thread).await.unwrap();
    let ids: Vec<&str> = listing.calls.iter().map(|c| c.request_id.as_str()).collect();
    assert_eq!(ids, readable);
    assert_eq!(
        listing.unreadable,
        [UnreadableRow {
            request_id: Some(deep.clone()),
            reason: TOO_DEEP_126.into()
        }]
    );
    let calls = cm.list_tool_calls(&thread).await.unwrap();
    assert_eq!(calls.len(), 6);

    // With hooks the body goes through them: an `after` hook sees the rows that could be read.
    let seen = Arc::new(Mutex::new(None));
    let hooked = CodexManager::builder()
        .base_url(double.base_url())
        .after("sessions.tool_calls.list", {
            let seen = seen.clone();
            move |_call, response| *seen.lock().unwrap() = Some(response.body["data"].as_array().unwrap().len())
        })
        .build()
        .unwrap();
    let listing = hooked.list_pending_calls(&thread).await.unwrap();
    assert_eq!((listing.calls.len(), listing.unreadable.len()), (6, 1));
    assert_eq!(*seen.lock().unwrap(), Some(6));
    double.shutdown().await;
}

#[tokio::test]
async fn a_call_too_deep_to_read_is_reported_once_and_the_calls_after_it_are_answered() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::INFO);
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    // Published while nobody listens: only the listing can find these.
    let deep = double.inject_tool_call(&thread, "shout", nested_arguments(126));
    let later: Vec<String> = (0..5)
        .map(|i| double.inject_tool_call(&thread, "shout", json!({"text": format!("later {i}")})))
        .collect();

    let bridge = start(builder().upstream(upstream_of(client(&double)).attach(&thread))).await;
    for (i, id) in later.iter().enumerate() {
        let body = double
            .wait_answered(id, WAIT)
            .await
            .expect("the calls after the deep one are answered");
        assert_eq!(body["contentItems"][0]["text"], format!("LATER {i}"));
    }
    // Listed again and again, the deep call stays pending and is reported once.
    let listed = listings(&double, &thread);
    eventually("three more listings", || listings(&double, &thread) >= listed + 3).await;
    let pending: Vec<Value> = double.pending(&thread);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["requestId"], deep.as_str());
    assert_eq!(bridge.health().unreadable_calls(), 1);
    let reports = logs.lines_with("a pending tool call cannot be read");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("WARN")
            && reports[0].contains(&format!("request_id={deep}"))
            && reports[0].contains(TOO_DEEP_126),
        "{}",
        reports[0]
    );
    assert_eq!(
        sample(&metrics(&bridge).await, "skillbridge_unreadable_calls_total"),
        1.0
    );

    // The same on a live stream: the signal is a malformed frame, the listing reports the call, the next is served.
    let live = double.inject_tool_call(&thread, "shout", nested_arguments(126));
    let after = double.inject_tool_call(&thread, "shout", json!({"text": "after"}));
    double
        .wait_answered(&after, WAIT)
        .await
        .expect("the call after is answered");
    eventually("the live deep call reported", || {
        bridge.health().unreadable_calls() == 2
    })
    .await;
    let text = metrics(&bridge).await;
    assert_eq!(
        sample(&text, "skillbridge_malformed_frames_total{kind=\"too_deep\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(sample(&text, "skillbridge_unreadable_calls_total"), 2.0);
    let frames = logs.lines_with("malformed stream frame");
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(
        frames[0].contains("WARN") && frames[0].contains("kind=\"too_deep\""),
        "{}",
        frames[0]
    );
    let reports = logs.lines_with("a pending tool call cannot be read");
    assert!(
        reports.len() == 2 && reports[1].contains(&format!("request_id={live}")),
        "{reports:?}"
    );
    bridge.shutdown().await;
    double.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_are_counted_by_kind_in_the_metrics() {
    let _guard = CapturedLogs::default().install(tracing::Level::INFO);
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    let bridge = start(builder().upstream(upstream_of(client(&double)).attach(&thread))).await;
    for frame in [
        "not json",
        "[1]",
        "{}",
        r#"{"type":"x","threadId":5}"#,
        "{\"type\":",
        "null",
    ] {
        double.emit_raw(frame);
    }
    // Well-formed frames, but tool calls whose request id is neither a string nor a number: no call can be answered.
    for request_id in [json!({"id": 1}), json!(true)] {
        let params = json!({"threadId": thread, "callId": "call_x", "tool": "shout", "arguments": {"text": "x"}});
        let payload = json!({"method": "item/tool/call", "requestId": request_id, "params": params});
        double.emit_event(Some(&thread), "app_server.request.item.tool.call", payload);
    }
    eventually_async("six malformed frames and two unusable signals counted", || async {
        bridge.health().malformed_frames() == 6 && bridge.health().unusable_signals() == 2
    })
    .await;
    let text = metrics(&bridge).await;
    for (kind, n) in [
        ("not_json", 2.0),
        ("not_an_object", 2.0),
        ("missing_type", 1.0),
        ("invalid_field", 1.0),
        ("too_deep", 0.0),
        ("not_text", 0.0),
    ] {
        let line = format!("skillbridge_malformed_frames_total{{kind=\"{kind}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert_eq!(sample(&text, "skillbridge_unusable_signals_total"), 2.0);
    // The stream goes on.
    let id = double.inject_tool_call(&thread, "shout", json!({"text": "still here"}));
    let body = double.wait_answered(&id, WAIT).await.expect("answered");
    assert_eq!(body["contentItems"][0]["text"], "STILL HERE");
    bridge.shutdown().await;
    double.shutdown().await;
}
