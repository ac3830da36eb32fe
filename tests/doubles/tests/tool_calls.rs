//! Tool calls: injection frames and ids, the pending listing, and every response status with
//! codex-manager's bodies.

mod common;

use std::time::Duration;

use common::{Rest, WAIT, Ws, eventually};
use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn body_of(text: &str) -> Value {
    fixture(text)["body"].take()
}

/// The keys of every object level, to compare shapes with a fixture.
fn keys(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| {
                std::iter::once(k.clone()).chain(keys(v).into_iter().map(move |sub| format!("{k}.{sub}")))
            })
            .collect(),
        _ => vec![],
    }
}

#[tokio::test]
async fn injection_emits_the_signal_then_the_row_with_number_and_string_ids() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![common::tool("uppercase")]);
    let mut ws = Ws::connect(&double, Some(&thread)).await;

    let first = double.inject_tool_call(&thread, "uppercase", json!({"text": "hello bridge"}));
    let second = double.inject_tool_call(&thread, "uppercase", json!({"text": "again"}));
    assert_eq!((first.as_str(), second.as_str()), ("0", "1"));

    let signal = ws.next().await;
    let captured = fixture(include_str!(
        "../../fixtures/codex-manager/ws-app_server-request-item-tool-call.json"
    ));
    assert_eq!(keys(&signal), keys(&captured));
    assert_eq!(signal["type"], "app_server.request.item.tool.call");
    assert_eq!(signal["threadId"], thread.as_str());
    assert_eq!(
        signal["payload"]["requestId"],
        json!(0),
        "the signal carries the raw JSON-RPC id, a number"
    );
    assert_eq!(signal["payload"]["params"]["tool"], "uppercase");
    assert_eq!(
        signal["payload"]["params"]["arguments"],
        json!({"text": "hello bridge"})
    );
    assert_eq!(signal["payload"]["session"]["id"], thread.as_str());

    let requested = ws.next().await;
    let captured = fixture(include_str!("../../fixtures/codex-manager/ws-tool_call_requested.json"));
    assert_eq!(keys(&requested), keys(&captured));
    assert_eq!(requested["type"], "tool_call_requested");
    assert_eq!(
        requested["payload"]["requestId"], "0",
        "the row carries the string form"
    );
    assert_eq!(requested["payload"]["callId"], signal["payload"]["params"]["callId"]);
    assert_eq!(requested["payload"]["status"], "pending");

    assert_eq!(ws.next().await["payload"]["requestId"], json!(1));
    assert_eq!(ws.next().await["payload"]["requestId"], "1");

    let listed = Rest::new(&double)
        .get(&format!("/api/sessions/{thread}/tool-calls"))
        .await;
    assert_eq!(listed.status, 200);
    let rows = listed.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], requested["payload"]);
    assert_eq!(rows[1]["requestId"], "1");
    let captured_row = &body_of(include_str!(
        "../../fixtures/codex-manager/rest-tool-calls-list-200-pending.json"
    ))["data"][0];
    assert_eq!(keys(&rows[0]), keys(captured_row));
    assert_eq!(double.pending(&thread), rows.clone());
}

#[tokio::test]
async fn listing_an_unknown_session_is_empty() {
    let double = CodexManagerDouble::start().await.unwrap();
    let listed = Rest::new(&double).get("/api/sessions/unknown/tool-calls").await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.body,
        body_of(include_str!(
            "../../fixtures/codex-manager/rest-tool-calls-list-unknown-session.json"
        ))
    );
}

#[tokio::test]
async fn an_answer_resolves_the_call_and_a_second_one_is_not_found() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    let mut ws = Ws::connect(&double, Some(&thread)).await;
    let id = double.inject_tool_call(&thread, "uppercase", json!({"text": "hi"}));
    ws.next().await;
    ws.next().await;

    let answer = json!({"success": false, "contentItems": [{"type": "inputText", "text": "bad input"}]});
    let ok = rest.respond(&id, answer.clone()).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, json!({"status": "ok", "requestId": id, "threadId": thread}));
    let resolved = ws.next().await;
    assert_eq!(
        resolved,
        json!({
            "type": "tool_call_resolved",
            "threadId": thread,
            "payload": {"requestId": id, "status": "resolved", "success": false},
        })
    );
    assert!(double.pending(&thread).is_empty());
    assert_eq!(double.wait_answered(&id, WAIT).await, Some(answer.clone()));
    assert!(double.wait_all_answered(WAIT).await);

    let again = rest.respond(&id, json!({"text": "late"})).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.body, json!({"status": "not_found", "requestId": id}));
    let unknown = rest.respond("999999", json!({"text": "x"})).await;
    assert_eq!(
        (unknown.status, unknown.body),
        (
            404,
            body_of(include_str!(
                "../../fixtures/codex-manager/rest-tool-calls-respond-404.json"
            ))
        )
    );
    assert_eq!(double.responses_for(&id), vec![answer, json!({"text": "late"})]);
}

#[tokio::test]
async fn success_defaults_to_true() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    let mut ws = Ws::connect(&double, Some(&thread)).await;
    let id = double.inject_tool_call(&thread, "t", json!({}));
    ws.next().await;
    ws.next().await;
    assert_eq!(
        Rest::new(&double).respond(&id, json!({"text": "fine"})).await.status,
        200
    );
    assert_eq!(ws.next().await["payload"]["success"], true);
}

#[tokio::test]
async fn invalid_bodies_get_400_and_leave_the_call_pending() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    let id = double.inject_tool_call(&thread, "t", json!({}));

    let bad_item = rest
        .respond(&id, json!({"contentItems": [{"type": "text", "text": "x"}]}))
        .await;
    assert_eq!(bad_item.status, 400);
    assert_eq!(
        bad_item.body,
        body_of(include_str!(
            "../../fixtures/codex-manager/rest-tool-calls-respond-400-invalid-body.json"
        ))
    );

    let bad_success = rest.respond(&id, json!({"success": "yes"})).await;
    assert_eq!(bad_success.status, 400);
    assert_eq!(bad_success.body["issues"][0]["path"], json!(["success"]));
    let missing_text = rest
        .respond(&id, json!({"contentItems": [{"type": "inputText"}]}))
        .await;
    assert_eq!(
        missing_text.body["issues"][0]["path"],
        json!(["contentItems", 0, "text"])
    );
    let raw = reqwest::Client::new()
        .post(format!("{}/api/tool-calls/{id}/response", double.base_url()))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);

    assert_eq!(double.pending(&thread).len(), 1);
    assert_eq!(double.responses_for(&id).len(), 4);
    assert_eq!(double.responses_for(&id)[3], json!("{oops"));
}

#[tokio::test]
async fn injected_failures_answer_500_and_keep_the_call_pending() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    let id = double.inject_tool_call(&thread, "t", json!({}));
    double.fail_next_responds(2);

    for _ in 0..2 {
        let failed = rest.respond(&id, json!({"text": "try"})).await;
        assert_eq!(failed.status, 500);
        assert_eq!(failed.body["status"], "error");
        assert_eq!(failed.body["requestId"], id.as_str());
        assert_eq!(double.pending(&thread).len(), 1, "the call is pending again");
    }
    assert_eq!(double.wait_answered(&id, Duration::from_millis(1)).await, None);
    assert_eq!(rest.respond(&id, json!({"text": "try"})).await.status, 200);
    assert_eq!(double.responses_for(&id).len(), 3, "failed answers are recorded too");
    assert!(double.pending(&thread).is_empty());
}

// On the paused clock (client and double share this runtime over loopback), so the first answer is in flight for
// exactly its delay, however slow the machine.
#[tokio::test(start_paused = true)]
async fn a_second_answer_while_the_first_is_in_flight_conflicts() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    let id = double.inject_tool_call(&thread, "t", json!({}));
    let delay = Duration::from_millis(300);
    double.set_response_delay(delay);

    let sent = tokio::time::Instant::now();
    let first = {
        let rest = Rest::new(&double);
        let id = id.clone();
        tokio::spawn(async move { rest.respond(&id, json!({"text": "first"})).await })
    };
    // The body is recorded once the call is claimed.
    assert!(eventually(|| double.responses_for(&id).len() == 1).await);
    let second = Rest::new(&double).respond(&id, json!({"text": "second"})).await;
    assert!(
        sent.elapsed() < delay,
        "the second answer came while the first was in flight"
    );
    assert_eq!(second.status, 409);
    assert_eq!(
        second.body,
        json!({"status": "conflict", "code": "in_flight", "requestId": id})
    );

    let first = first.await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(sent.elapsed(), delay, "the first answer was held for the delay");
    assert_eq!(double.wait_answered(&id, WAIT).await, Some(json!({"text": "first"})));
}

#[tokio::test]
async fn answers_for_a_deleted_session_are_gone() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    let id = double.inject_tool_call(&thread, "t", json!({}));
    assert_eq!(rest.delete(&format!("/api/sessions/{thread}")).await.status, 200);

    let gone = rest.respond(&id, json!({"text": "late"})).await;
    assert_eq!(gone.status, 410);
    assert_eq!(gone.body["status"], "deleted");
    assert_eq!(gone.body["sessionId"], thread.as_str());
    // Calls of deleted sessions do not hold up "all answered".
    assert!(double.wait_all_answered(WAIT).await);
}

#[tokio::test(start_paused = true)]
async fn wait_all_answered_times_out_while_a_call_is_pending() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    let id = double.inject_tool_call(&thread, "t", json!({}));
    let started = tokio::time::Instant::now();
    assert!(!double.wait_all_answered(Duration::from_millis(20)).await);
    assert_eq!(started.elapsed(), Duration::from_millis(20), "gave up at its timeout");
    let waiter = {
        let double = double.clone();
        tokio::spawn(async move { double.wait_all_answered(WAIT).await })
    };
    assert_eq!(Rest::new(&double).respond(&id, json!({})).await.status, 200);
    assert!(waiter.await.unwrap());
}

#[tokio::test]
async fn a_burst_reports_every_answer() {
    let double = CodexManagerDouble::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let thread = double.create_session(vec![]);
    let mut ws = Ws::connect(&double, Some(&thread)).await;
    // A minimal bridge: answer every signal over REST.
    let answerer = {
        let rest = Rest::new(&double);
        tokio::spawn(async move {
            let mut answered = 0;
            while answered < 40 {
                let frame = ws.next().await;
                if frame["type"] == "app_server.request.item.tool.call" {
                    let id = frame["payload"]["requestId"].as_u64().unwrap().to_string();
                    assert_eq!(rest.respond(&id, json!({"text": "ok"})).await.status, 200);
                    answered += 1;
                }
            }
        })
    };
    let spec = skillbridge_doubles::codex_manager::BurstSpec::new(&thread, "echo", json!({"x": 1}), 40)
        .outstanding(4)
        .timeout(WAIT);
    let report = double.burst(spec).await;
    answerer.await.unwrap();
    assert_eq!((report.count, report.answered, report.timed_out), (40, 40, false));
    assert!(report.latency_us.p50 > 0 && report.latency_us.p50 <= report.latency_us.p99);
    assert!(report.latency_us.p99 <= report.latency_us.max);
    assert!(report.calls_per_sec > 0.0);
    assert!(double.received().is_empty(), "recording was off");
}

#[tokio::test(start_paused = true)]
async fn a_burst_without_answers_times_out() {
    let double = CodexManagerDouble::start().await.unwrap();
    let timeout = Duration::from_millis(30);
    let spec = skillbridge_doubles::codex_manager::BurstSpec::new("t", "echo", json!({}), 5)
        .outstanding(2)
        .timeout(timeout);
    let started = tokio::time::Instant::now();
    let report = double.burst(spec).await;
    assert_eq!(started.elapsed(), timeout, "gave up at its timeout");
    assert_eq!((report.answered, report.timed_out), (0, true));
    assert_eq!(double.pending("t").len(), 2, "never more than `outstanding` unanswered");
}
