//! Captured codex-manager websocket frames parse into the right `Frame`, app-server signals read correctly, and
//! `normalize_method` follows PROTOCOL.md.

use std::path::PathBuf;

use serde_json::Value;
use skillbridge::stream::{
    AppServerSignal, Frame, FrameError, SignalType, StreamEvent, app_server_event_type, normalize_method, parse_frame,
};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex-manager")
}

fn fixture(name: &str) -> String {
    let path = fixture_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn event(name: &str) -> StreamEvent {
    match parse_frame(&fixture(name)).unwrap() {
        Frame::Event(event) => event,
        other => panic!("{name} parsed as {other:?}"),
    }
}

fn signal(name: &str) -> AppServerSignal {
    event(name)
        .app_server_signal()
        .unwrap_or_else(|| panic!("{name} has no signal"))
}

#[test]
fn every_ws_fixture_parses_into_the_frame_its_type_names() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("ws-") && name.ends_with(".json")) {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: Value = serde_json::from_str(&text).unwrap();
        let frame = parse_frame(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw_type = raw["type"].as_str().unwrap();
        match (raw_type, &frame) {
            ("ready", Frame::Ready { thread_id }) => assert_eq!(thread_id.as_deref(), raw["threadId"].as_str()),
            ("pong", Frame::Pong) => {}
            ("error", Frame::Error { message }) => assert_eq!(message, raw["message"].as_str().unwrap()),
            (_, Frame::Event(event)) => {
                assert_eq!(event.event_type, raw_type, "{name}");
                assert_eq!(event.thread_id.as_deref(), raw["threadId"].as_str(), "{name}");
                assert_eq!(event.payload, raw["payload"], "{name}");
                if event.is_app_server() {
                    let signal = event.app_server_signal().unwrap_or_else(|| panic!("{name}: no signal"));
                    // The captured event type is exactly what the normalization rule gives for the method.
                    assert_eq!(
                        app_server_event_type(&signal.method, signal.is_request()),
                        event.event_type,
                        "{name}"
                    );
                    assert_eq!(signal.event_type, event.event_type, "{name}");
                } else {
                    assert!(event.app_server_signal().is_none(), "{name}");
                }
            }
            (t, frame) => panic!("{name}: type {t:?} parsed as {frame:?}"),
        }
    }
    assert!(seen >= 20, "only {seen} ws fixtures found");
}

#[test]
fn control_fixtures() {
    assert_eq!(
        parse_frame(&fixture("ws-ready.json")).unwrap(),
        Frame::Ready {
            thread_id: Some("01a20b31-f8aa-7ee1-a8ed-f30e81e9ab3b".into())
        }
    );
    assert_eq!(
        parse_frame(&fixture("ws-ready-no-thread.json")).unwrap(),
        Frame::Ready { thread_id: None }
    );
    assert_eq!(parse_frame(&fixture("ws-pong.json")).unwrap(), Frame::Pong);
    assert_eq!(
        parse_frame(&fixture("ws-error-invalid-command.json")).unwrap(),
        Frame::Error {
            message: "invalid websocket command".into()
        }
    );
}

#[test]
fn tool_call_request_signal() {
    let signal = signal("ws-app_server-request-item-tool-call.json");
    assert_eq!(signal.method, "item/tool/call");
    assert_eq!(signal.normalized_method(), "item.tool.call");
    assert_eq!(signal.signal_type, SignalType::Request);
    assert_eq!(signal.event_type, "app_server.request.item.tool.call");
    // A JSON number on the wire, keyed by its string form like the pending row and the REST path.
    assert_eq!(signal.request_id.as_deref(), Some("1"));
    assert_eq!(
        signal.context.thread_id.as_deref(),
        Some("01a20b39-6909-7682-9b44-1cd5afff9d3c")
    );
    assert_eq!(
        signal.context.turn_id.as_deref(),
        Some("01a20b39-691e-7b11-8a24-82d515e83aaa")
    );
    assert_eq!(signal.params["tool"], "uppercase");
    assert_eq!(signal.params["callId"], "call_0");
    assert_eq!(signal.params["arguments"]["text"], "hello bridge");
    let session = signal.session.unwrap();
    assert_eq!(session.id, "01a20b39-6909-7682-9b44-1cd5afff9d3c");
    assert_eq!(session.title.as_deref(), Some("New chat"));
    assert_eq!(session.project_id, None);
    assert_eq!(signal.received_at.as_deref(), Some("2026-11-24T01:44:01.602Z"));
}

#[test]
fn notification_signals() {
    let started = signal("ws-app_server-item-started.json");
    assert_eq!(started.signal_type, SignalType::Notification);
    assert_eq!(started.normalized_method(), "item.started");
    assert_eq!(started.request_id, None);
    assert_eq!(started.params["item"]["type"], "userMessage");

    let warning = signal("ws-app_server-warning.json");
    assert_eq!(warning.context.turn_id, None);
    assert_eq!(warning.method, "warning");

    let usage = signal("ws-app_server-thread-token_usage-updated.json");
    assert_eq!(usage.method, "thread/tokenUsage/updated");
    assert_eq!(usage.normalized_method(), "thread.token_usage.updated");
}

#[test]
fn request_id_accepts_number_zero_and_strings() {
    let mut raw: Value = serde_json::from_str(&fixture("ws-app_server-request-item-tool-call.json")).unwrap();
    raw["payload"]["requestId"] = Value::from(0);
    let Frame::Event(zero) = parse_frame(&raw.to_string()).unwrap() else {
        unreachable!()
    };
    assert_eq!(zero.app_server_signal().unwrap().request_id.as_deref(), Some("0"));
    raw["payload"]["requestId"] = Value::from("req-7");
    let Frame::Event(text) = parse_frame(&raw.to_string()).unwrap() else {
        unreachable!()
    };
    assert_eq!(text.app_server_signal().unwrap().request_id.as_deref(), Some("req-7"));
}

#[test]
fn codex_manager_events_around_a_tool_call_are_plain_events() {
    let requested = event("ws-tool_call_requested.json");
    assert_eq!(requested.payload["requestId"], "1");
    assert_eq!(requested.payload["status"], "pending");
    let resolved = event("ws-tool_call_resolved.json");
    assert_eq!(resolved.payload["success"], true);
    // `notification` carries a raw JSON-RPC message, not an app-server signal envelope.
    let raw = event("ws-notification.json");
    assert!(!raw.is_app_server());
    assert!(raw.app_server_signal().is_none());
}

#[test]
fn protocol_normalization_examples() {
    assert_eq!(normalize_method("item/started"), "item.started");
    assert_eq!(normalize_method("item/tool/call"), "item.tool.call");
    assert_eq!(
        normalize_method("item/fileChange/requestApproval"),
        "item.file_change.request_approval"
    );
    assert_eq!(app_server_event_type("item/started", false), "app_server.item.started");
    assert_eq!(
        app_server_event_type("item/tool/call", true),
        "app_server.request.item.tool.call"
    );
    assert_eq!(
        app_server_event_type("item/fileChange/requestApproval", true),
        "app_server.request.item.file_change.request_approval"
    );
}

#[test]
fn malformed_text_is_an_error_not_a_panic() {
    let long = "x".repeat(10_000);
    let inputs = [
        "",
        "   ",
        "null",
        "42",
        "[]",
        "{\"type\":null}",
        "{\"type\":\"ready\",\"threadId\":{}}",
        "{\"payload\":{}}",
        "\u{0}\u{1}",
        long.as_str(),
    ];
    for input in inputs {
        let err = parse_frame(input).expect_err(input);
        assert!(!err.to_string().is_empty());
    }
    assert!(matches!(
        parse_frame("{\"type\":\"x\",\"threadId\":[1]}"),
        Err(FrameError::InvalidField { field: "threadId", .. })
    ));
}
