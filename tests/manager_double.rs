//! The manager client against the codex-manager double: every operation end to end, auth, and the
//! respond statuses the bridge relies on (500 retry, 409 in flight, 404 already answered, 410 gone).

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use skillbridge::ToolResult;
use skillbridge::manager::{CodexManager, CreateSession, ManagerError, PendingToolCall, SendMessage};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::TurnScript;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

fn tool() -> Value {
    json!({"name": "uppercase", "description": "Upper-cases text",
           "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}})
}

fn client_for(double: &CodexManagerDouble, token: &str) -> CodexManager {
    CodexManager::builder()
        .base_url(double.base_url())
        .bearer_token(token)
        .rbac(Some("rbac-tok".into()), Some("operator".into()), Some("bridge".into()))
        .before("*", |call| {
            call.headers.insert("x-hooked", call.operation.parse().unwrap());
        })
        .build()
        .unwrap()
}

/// Lists until at least one call is pending, or fails after `WAIT`.
async fn wait_pending(cm: &CodexManager, session: &str) -> Vec<PendingToolCall> {
    let deadline = Instant::now() + WAIT;
    loop {
        let calls = cm.list_tool_calls(session).await.unwrap();
        if !calls.is_empty() {
            return calls;
        }
        assert!(Instant::now() < deadline, "no pending call within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn every_operation_works_against_the_double() {
    let double = CodexManagerDouble::builder()
        .require_bearer("tok")
        .start()
        .await
        .unwrap();
    let cm = client_for(&double, "tok");

    let created = cm
        .create_session(
            &CreateSession::new()
                .cwd("/work")
                .approval_policy("never")
                .dynamic_tool(tool()),
        )
        .await
        .unwrap();
    assert!(!created.session_id.is_empty());
    assert_eq!(created.raw["session"]["sessionId"], created.session_id.as_str());
    let session = &created.session_id;
    assert_eq!(
        cm.get_session(session).await.unwrap()["session"]["sessionId"],
        session.as_str()
    );

    // A turn whose model calls the tool once: the client finds the call, answers it, the turn ends.
    double.script_turn(
        &created.thread_id,
        TurnScript::new().tool_call("uppercase", json!({"text": "hi"})),
    );
    let accepted = cm.send_message(session, &SendMessage::new("shout hi")).await.unwrap();
    assert_eq!(&accepted.session_id, session);
    let calls = wait_pending(&cm, session).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].tool.as_str(), &calls[0].arguments),
        ("uppercase", &json!({"text": "hi"}))
    );
    assert_eq!(calls[0].turn_id.as_deref(), Some(accepted.turn_id.as_str()));
    let ack = cm
        .respond_tool_call(&calls[0].request_id, &ToolResult::text("HI"))
        .await
        .unwrap();
    assert_eq!(ack.request_id, calls[0].request_id);
    assert_eq!(ack.thread_id.as_deref(), Some(created.thread_id.as_str()));
    let answer = double
        .wait_answered(&calls[0].request_id, WAIT)
        .await
        .expect("answered");
    assert_eq!(
        answer,
        json!({"contentItems": [{"type": "inputText", "text": "HI"}], "success": true})
    );
    assert!(cm.list_tool_calls(session).await.unwrap().is_empty());

    // Answering again: 404, which the bridge treats as done.
    let again = cm
        .respond_tool_call(&calls[0].request_id, &ToolResult::text("HI"))
        .await
        .unwrap_err();
    assert_eq!(again.status().map(|s| s.as_u16()), Some(404));
    assert!(again.is_already_answered());

    // A turn without a script stays in progress until interrupted; a second interrupt finds none.
    let turn = cm.send_message(session, &SendMessage::new("wait")).await.unwrap();
    let interrupted = cm.interrupt(session, Some(&turn.turn_id)).await.unwrap();
    assert_eq!(interrupted["turnId"], turn.turn_id.as_str());
    let none = cm.interrupt(session, None).await.unwrap_err();
    assert_eq!(none.status().map(|s| s.as_u16()), Some(409));
    assert_eq!(none.body().unwrap()["code"], "no_active_turn");

    let raw = cm
        .request("sessions.get", Method::GET, &format!("/sessions/{session}"), None)
        .await
        .unwrap();
    assert_eq!(raw["session"]["sessionId"], session.as_str());

    let deleted = cm.delete_session(session).await.unwrap();
    assert_eq!(deleted["sessionId"], session.as_str());
    let gone = cm.get_session(session).await.unwrap_err();
    assert_eq!(
        (gone.operation(), gone.status().map(|s| s.as_u16())),
        ("sessions.get", Some(410))
    );
    let gone = cm.list_tool_calls(session).await.unwrap_err();
    assert_eq!(gone.status().map(|s| s.as_u16()), Some(410));

    // Every request carried the auth headers and the hook's header.
    let received = double.received();
    assert!(received.len() >= 14, "{}", received.len());
    for request in &received {
        assert_eq!(request.header("authorization"), Some("Bearer tok"), "{}", request.path);
        assert_eq!(request.header("x-codex-rbac-token"), Some("rbac-tok"));
        assert_eq!(request.header("x-codex-rbac-role"), Some("operator"));
        assert_eq!(request.header("x-codex-rbac-actor"), Some("bridge"));
        assert!(
            request.header("x-hooked").is_some_and(|op| op.contains('.')),
            "{request:?}"
        );
    }
    double.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_is_a_401_status_error() {
    let double = CodexManagerDouble::builder()
        .require_bearer("tok")
        .start()
        .await
        .unwrap();
    let err = client_for(&double, "wrong")
        .create_session(&CreateSession::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ManagerError::Status { status, .. } if status.as_u16() == 401),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    double.shutdown().await;
}

#[tokio::test]
async fn invalid_dynamic_tools_are_a_400_with_codex_managers_body() {
    let double = CodexManagerDouble::start().await.unwrap();
    let cm = client_for(&double, "any");
    let nameless = json!({"name": "  ", "description": "d", "inputSchema": {"type": "object"}});
    let err = cm
        .create_session(&CreateSession::new().dynamic_tool(nameless))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(err.body().unwrap()["code"], "invalid_request");
    let too_many = (0..129).map(|i| json!({"name": format!("t{i}"), "description": "d", "inputSchema": {}}));
    let err = cm
        .create_session(&CreateSession::new().dynamic_tools(too_many))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    double.shutdown().await;
}

#[tokio::test]
async fn a_failed_respond_is_retryable_and_the_retry_lands() {
    let double = CodexManagerDouble::start().await.unwrap();
    let cm = client_for(&double, "any");
    let thread = double.create_session(vec![tool()]);
    let request_id = double.inject_tool_call(&thread, "uppercase", json!({"text": "a"}));
    double.fail_next_responds(1);

    let err = cm
        .respond_tool_call(&request_id, &ToolResult::text("A"))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    assert!(err.is_retryable() && !err.is_already_answered());
    assert_eq!(
        cm.list_tool_calls(&thread).await.unwrap().len(),
        1,
        "still pending after a 500"
    );

    cm.respond_tool_call(&request_id, &ToolResult::text("A")).await.unwrap();
    assert!(double.wait_answered(&request_id, WAIT).await.is_some());
    double.shutdown().await;
}

// On the paused clock (the double and the client share this runtime over loopback), so the first answer is in
// flight for exactly its delay, however slow the machine.
#[tokio::test(start_paused = true)]
async fn a_second_answer_while_the_first_is_in_flight_is_409_already_answered() {
    let double = CodexManagerDouble::start().await.unwrap();
    let cm = client_for(&double, "any");
    let thread = double.create_session(vec![tool()]);
    let request_id = double.inject_tool_call(&thread, "uppercase", json!({"text": "a"}));
    // The first answer is held in flight this long.
    let delay = Duration::from_secs(2);
    double.set_response_delay(delay);

    let sent = Instant::now();
    let first = tokio::spawn({
        let (cm, id) = (cm.clone(), request_id.clone());
        async move { cm.respond_tool_call(&id, &ToolResult::text("A")).await }
    });
    // Its body is recorded once the double has claimed the call; look every millisecond of the paused clock.
    let deadline = Instant::now() + WAIT;
    while double.responses_for(&request_id).is_empty() {
        assert!(Instant::now() < deadline, "first answer never arrived");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let second = cm
        .respond_tool_call(&request_id, &ToolResult::text("B"))
        .await
        .unwrap_err();
    assert!(
        sent.elapsed() < delay,
        "the second answer came while the first was in flight"
    );
    assert_eq!(second.status().map(|s| s.as_u16()), Some(409), "{second}");
    assert_eq!(second.body().unwrap()["code"], "in_flight");
    assert!(second.is_already_answered() && !second.is_retryable());

    first.await.unwrap().unwrap();
    assert_eq!(sent.elapsed(), delay, "the first answer was held for the delay");
    let answer = double.wait_answered(&request_id, WAIT).await.unwrap();
    assert_eq!(answer["contentItems"][0]["text"], "A");
    double.shutdown().await;
}
