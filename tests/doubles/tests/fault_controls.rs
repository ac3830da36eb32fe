//! The controls fault suites use: a window in which every answer fails, raw binary and oversized frames, calls
//! whose arguments nest deeper than a request body can, and calls whose result was accepted twice.

mod common;

use std::time::Duration;

use common::{Rest, Ws};
use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::AnsweredTwice;
use tokio_tungstenite::tungstenite::Message;

/// An answer whose text is `text`.
fn answer(text: &str) -> Value {
    json!({"contentItems": [{"type": "inputText", "text": text}]})
}

/// How many levels deep a JSON value nests (a scalar: 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[tokio::test]
async fn every_answer_fails_within_the_window_and_the_calls_stay_pending() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    let id = double.inject_tool_call(&thread, "echo", json!({}));

    double.fail_next_responds(1);
    let window = rest.post("/_double/fail-for", json!({"ms": 60_000})).await;
    assert_eq!((window.status, window.body), (200, json!({"ms": 60_000})));
    for _ in 0..3 {
        let failed = rest.respond(&id, answer("x")).await;
        assert_eq!(failed.status, 500);
        assert_eq!(
            failed.body["message"],
            "failed to deliver the tool-call response to app-server"
        );
    }
    assert_eq!(double.pending(&thread).len(), 1);

    // Ending the window leaves the count of `fail_next_responds` as it was: one more failure.
    assert_eq!(rest.post("/_double/fail-for", json!({"ms": 0})).await.status, 200);
    assert_eq!(rest.respond(&id, answer("x")).await.status, 500);
    assert_eq!(rest.respond(&id, answer("x")).await.status, 200);

    // A window ends by itself.
    let next = double.inject_tool_call(&thread, "echo", json!({}));
    double.fail_responds_for(Duration::from_millis(50));
    assert_eq!(rest.respond(&next, answer("x")).await.status, 500);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(rest.respond(&next, answer("x")).await.status, 200);
    double.shutdown().await;
}

#[tokio::test]
async fn raw_frames_may_be_binary_or_larger_than_a_default_request_body() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let mut ws = Ws::connect(&double, None).await;

    let bytes = vec![0xff, 0xfe, b'{', 0x80];
    assert_eq!(rest.post("/_double/raw", json!({"bytes": bytes})).await.status, 200);
    assert_eq!(ws.next_message().await, Message::binary(bytes.clone()));
    double.emit_raw_binary(bytes.clone());
    assert_eq!(ws.next_message().await, Message::binary(bytes));

    // Three MiB: more than axum's default body limit of 2 MB.
    let large = format!(r#"{{"type":"large","payload":"{}"}}"#, "x".repeat(3 << 20));
    assert_eq!(rest.post("/_double/raw", json!({"text": large})).await.status, 200);
    assert_eq!(ws.next_text().await, large);

    let neither = rest.post("/_double/raw", json!({"frame": "?"})).await;
    assert_eq!(neither.status, 400);
    double.shutdown().await;
}

#[tokio::test]
async fn a_call_may_nest_deeper_than_a_request_body_can() {
    let double = CodexManagerDouble::builder()
        .check_answer_identity(true)
        .start()
        .await
        .unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    let injected = rest
        .post(
            "/_double/tool-calls",
            json!({"threadId": thread, "tool": "echo", "arguments": {"text": "deep"}, "nested": 200}),
        )
        .await;
    assert_eq!(injected.status, 200);
    let row = &double.pending(&thread)[0];
    assert_eq!(row["requestId"], injected.body["requestId"]);
    let arguments = &row["arguments"];
    assert_eq!(depth(arguments), 200);
    assert_eq!(arguments["text"], "deep");
    assert_eq!(arguments["call_id"], injected.body["callId"]);

    for refused in [json!(1), json!(1001), json!("deep")] {
        let reply = rest
            .post(
                "/_double/tool-calls",
                json!({"threadId": thread, "tool": "echo", "arguments": [], "nested": refused}),
            )
            .await;
        assert_eq!(reply.status, 400, "{refused}");
    }
    let not_an_object = rest
        .post(
            "/_double/tool-calls",
            json!({"threadId": thread, "tool": "echo", "arguments": [1], "nested": 3}),
        )
        .await;
    assert_eq!(not_an_object.status, 400);
    assert_eq!(double.pending(&thread).len(), 1);
    double.shutdown().await;
}

#[tokio::test]
async fn a_result_accepted_for_two_calls_is_answered_twice() {
    let double = CodexManagerDouble::builder()
        .check_answer_identity(true)
        .start()
        .await
        .unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    let first = double.inject_call(&thread, "echo", json!({}));
    assert_eq!(
        rest.respond(&first.request_id, answer(&first.call_id)).await.status,
        200
    );
    let forgotten = double.inject_call(&thread, "echo", json!({}));
    assert!(double.answered_twice().is_empty(), "each result accepted once so far");

    double.restart();
    // The restart cut the pooled connection.
    let rest = Rest::new(&double);
    // Request ids 0 and 1 now stand for new calls; answers meant for the old ones go to them.
    let reused = double.inject_call(&thread, "echo", json!({}));
    let other = double.inject_call(&thread, "echo", json!({}));
    assert_eq!(
        (&reused.request_id, &other.request_id),
        (&first.request_id, &forgotten.request_id)
    );
    assert_eq!(
        rest.respond(&reused.request_id, answer(&first.call_id)).await.status,
        200
    );
    // Named twice in one answer is still one answer.
    let both = format!("{} and {}", forgotten.call_id, forgotten.call_id);
    assert_eq!(rest.respond(&other.request_id, answer(&both)).await.status, 200);
    let first_twice = AnsweredTwice {
        call_id: first.call_id.clone(),
        answers: 2,
        own_answer_accepted: true,
    };
    assert_eq!(
        double.answered_twice(),
        std::slice::from_ref(&first_twice),
        "the forgotten call's result went to one other call: misdelivered, not answered twice"
    );
    let again = double.inject_call(&thread, "echo", json!({}));
    assert_eq!(
        rest.respond(&again.request_id, answer(&forgotten.call_id)).await.status,
        200
    );

    let forgotten_twice = AnsweredTwice {
        call_id: forgotten.call_id.clone(),
        answers: 2,
        own_answer_accepted: false,
    };
    assert_eq!(double.answered_twice(), [first_twice, forgotten_twice]);
    assert_eq!(double.misdelivered().len(), 3);
    let listed = rest.get("/_double/answered-twice").await;
    assert_eq!(
        listed.body,
        json!({"data": [
            {"callId": first.call_id, "answers": 2, "ownAnswerAccepted": true},
            {"callId": forgotten.call_id, "answers": 2, "ownAnswerAccepted": false},
        ]})
    );
    double.shutdown().await;
}
