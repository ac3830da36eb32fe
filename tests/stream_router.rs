//! Router matching, ordering and failure isolation, exercised through `Router::dispatch` (no socket).

use std::sync::{Arc, Mutex};

use serde_json::json;
use skillbridge::stream::{
    AppServerSignal, DispatchSummary, Frame, HandlerContext, HandlerFailureKind, Router, StreamEvent, sync_handler,
};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::default()
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// A handler that records `label:<event type>`.
fn record(log: &Log, label: &'static str) -> impl Fn(StreamEvent, HandlerContext) -> std::future::Ready<()> + use<> {
    let log = Arc::clone(log);
    move |event, _ctx| {
        log.lock().unwrap().push(format!("{label}:{}", event.event_type));
        std::future::ready(())
    }
}

fn record_signal(
    log: &Log,
    label: &'static str,
) -> impl Fn(AppServerSignal, HandlerContext) -> std::future::Ready<()> + use<> {
    let log = Arc::clone(log);
    move |signal, _ctx| {
        let id = signal.request_id.unwrap_or_default();
        log.lock().unwrap().push(format!("{label}:{}:{id}", signal.method));
        std::future::ready(())
    }
}

fn app_server_event(method: &str, request: bool, request_id: Option<serde_json::Value>) -> Frame {
    let event_type = skillbridge::stream::app_server_event_type(method, request);
    let mut payload = json!({
        "source": "app_server",
        "signalType": if request { "request" } else { "notification" },
        "eventType": event_type,
        "method": method,
        "context": {"threadId": "t1", "turnId": "u1"},
        "params": {"threadId": "t1"},
        "session": null,
    });
    if let Some(id) = request_id {
        payload["requestId"] = id;
    }
    Frame::Event(StreamEvent::new(event_type, Some("t1".into()), payload))
}

fn plain_event(event_type: &str) -> Frame {
    Frame::Event(StreamEvent::new(event_type, Some("t1".into()), json!({})))
}

fn ctx() -> HandlerContext {
    HandlerContext {
        thread_id: Some("t1".into()),
        reconnect_count: 0,
        connection: 1,
    }
}

#[tokio::test]
async fn each_matcher_picks_its_frames() {
    let log = log();
    let mut router = Router::new();
    router
        .on_event("transcript_updated", record(&log, "exact"))
        .on_event_prefix("app_server.", record(&log, "prefix"))
        .on_app_server("item.started", record_signal(&log, "notification"))
        .on_app_server_request("item.tool.call", record_signal(&log, "request"))
        .on_turn_started(record(&log, "turn_started"));

    router.dispatch(&plain_event("transcript_updated"), &ctx()).await;
    router.dispatch(&plain_event("transcript_updated_later"), &ctx()).await;
    router
        .dispatch(&app_server_event("item/started", false, None), &ctx())
        .await;
    router
        .dispatch(&app_server_event("item/tool/call", true, Some(json!(0))), &ctx())
        .await;
    // The notification route does not take the request of the same method, and vice versa.
    router
        .dispatch(&app_server_event("item/tool/call", false, None), &ctx())
        .await;

    assert_eq!(
        entries(&log),
        [
            "exact:transcript_updated",
            "prefix:app_server.item.started",
            "notification:item/started:",
            "turn_started:app_server.item.started",
            "prefix:app_server.request.item.tool.call",
            "request:item/tool/call:0",
            "prefix:app_server.item.tool.call",
        ]
    );
}

#[tokio::test]
async fn app_server_routes_accept_raw_and_full_names() {
    let log = log();
    let mut router = Router::new();
    router
        .on_app_server_request("item/fileChange/requestApproval", record_signal(&log, "raw"))
        .on_app_server_request(
            "app_server.request.item.file_change.request_approval",
            record_signal(&log, "full"),
        )
        .on_app_server_request("item.file_change.request_approval", record_signal(&log, "normalized"));
    let frame = app_server_event("item/fileChange/requestApproval", true, Some(json!("9")));
    let summary = router.dispatch(&frame, &ctx()).await;
    assert_eq!(summary, DispatchSummary { handled: 3, failed: 0 });
    assert_eq!(
        entries(&log),
        [
            "raw:item/fileChange/requestApproval:9",
            "full:item/fileChange/requestApproval:9",
            "normalized:item/fileChange/requestApproval:9"
        ]
    );
}

#[tokio::test]
async fn every_matching_handler_runs_in_registration_order() {
    let log = log();
    let mut router = Router::new();
    router
        .on_event_prefix("tool_", record(&log, "1"))
        .on_event("tool_call_requested", record(&log, "2"))
        .on_event_prefix("", record(&log, "3"))
        .on_event("tool_call_requested", record(&log, "4"));
    let summary = router.dispatch(&plain_event("tool_call_requested"), &ctx()).await;
    assert_eq!(summary.handled, 4);
    assert_eq!(
        entries(&log),
        [
            "1:tool_call_requested",
            "2:tool_call_requested",
            "3:tool_call_requested",
            "4:tool_call_requested"
        ]
    );
}

#[tokio::test]
async fn control_frames_reach_only_control_handlers() {
    let log = log();
    let mut router = Router::new();
    let control_log = Arc::clone(&log);
    router
        .on_event_prefix("", record(&log, "any_event"))
        .on_event("ready", record(&log, "ready_event"))
        .on_event("pong", record(&log, "pong_event"))
        .on_control(move |frame, _ctx| {
            control_log.lock().unwrap().push(format!("control:{frame:?}"));
            async {}
        });
    for frame in [
        Frame::Ready {
            thread_id: Some("t1".into()),
        },
        Frame::Pong,
        Frame::Error {
            message: "invalid websocket command".into(),
        },
    ] {
        let summary = router.dispatch(&frame, &ctx()).await;
        assert_eq!(summary.handled, 1);
    }
    router.dispatch(&plain_event("transcript_updated"), &ctx()).await;
    assert_eq!(
        entries(&log),
        [
            "control:Ready { thread_id: Some(\"t1\") }",
            "control:Pong",
            "control:Error { message: \"invalid websocket command\" }",
            "any_event:transcript_updated",
        ]
    );
}

async fn explode(message: &'static str) {
    panic!("{message}")
}

#[tokio::test]
async fn failing_and_panicking_handlers_are_reported_and_isolated() {
    let log = log();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut router = Router::new();
    let failures_seen = Arc::clone(&failures);
    router
        .on_event("tool_call_requested", |_event, _ctx| async {
            Err::<(), _>(anyhow::anyhow!("database unavailable"))
        })
        .on_event("tool_call_requested", |_event, _ctx| explode("handler bug"))
        .on_event(
            "tool_call_requested",
            sync_handler(|_event: StreamEvent, _ctx| -> () { panic!("sync handler bug") }),
        )
        .on_event("tool_call_requested", |_event, _ctx| async {
            Err::<(), String>("plain string error".into())
        })
        .on_event("tool_call_requested", record(&log, "survivor"))
        .on_handler_error(move |failure| failures_seen.lock().unwrap().push(failure.clone()));

    let summary = router.dispatch(&plain_event("tool_call_requested"), &ctx()).await;
    assert_eq!(summary, DispatchSummary { handled: 5, failed: 4 });
    assert_eq!(entries(&log), ["survivor:tool_call_requested"]);

    let failures = failures.lock().unwrap().clone();
    let kinds: Vec<_> = failures.iter().map(|f| (f.kind.clone(), f.message.clone())).collect();
    assert_eq!(
        kinds,
        [
            (HandlerFailureKind::Error, "database unavailable".to_owned()),
            (HandlerFailureKind::Panic, "handler bug".to_owned()),
            (HandlerFailureKind::Panic, "sync handler bug".to_owned()),
            (HandlerFailureKind::Error, "plain string error".to_owned()),
        ]
    );
    assert!(failures.iter().all(|f| f.event_type == "tool_call_requested"));
    assert_eq!(failures[0].route, "on_event(\"tool_call_requested\")");
    assert!(failures[1].to_string().contains("panicked"), "{}", failures[1]);

    // The router is still usable afterwards.
    router.dispatch(&plain_event("tool_call_requested"), &ctx()).await;
    assert_eq!(entries(&log).len(), 2);
}

#[tokio::test]
async fn a_panicking_error_callback_does_not_escape() {
    let log = log();
    let mut router = Router::new();
    router
        .on_event("x", |_event, _ctx| async { Err::<(), _>("no") })
        .on_event("x", record(&log, "after"))
        .on_handler_error(|_failure| panic!("callback bug"));
    let summary = router.dispatch(&plain_event("x"), &ctx()).await;
    assert_eq!(summary, DispatchSummary { handled: 2, failed: 1 });
    assert_eq!(entries(&log), ["after:x"]);
}

#[tokio::test]
async fn signal_handlers_skip_app_server_events_without_a_signal() {
    let log = log();
    let mut router = Router::new();
    router
        .on_app_server("item.started", record_signal(&log, "signal"))
        .on_turn_started(record(&log, "event"));
    let frame = Frame::Event(StreamEvent::new(
        "app_server.item.started",
        None,
        json!({"no": "method"}),
    ));
    let summary = router.dispatch(&frame, &ctx()).await;
    assert_eq!(summary.handled, 1);
    assert_eq!(entries(&log), ["event:app_server.item.started"]);
}

#[tokio::test]
async fn handlers_receive_the_context() {
    let seen = Arc::new(Mutex::new(None));
    let mut router = Router::new();
    let seen_in_handler = Arc::clone(&seen);
    router.on_event("x", move |_event, ctx| {
        *seen_in_handler.lock().unwrap() = Some(ctx);
        async {}
    });
    let ctx = HandlerContext {
        thread_id: Some("thread-9".into()),
        reconnect_count: 3,
        connection: 4,
    };
    router.dispatch(&plain_event("x"), &ctx).await;
    assert_eq!(seen.lock().unwrap().clone(), Some(ctx));
}
