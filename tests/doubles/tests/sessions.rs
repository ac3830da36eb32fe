//! Session routes: creation with `dynamicTools` validation, read, delete, messages, interrupt,
//! and bearer enforcement on REST.

mod common;

use common::{Rest, Ws, tool};
use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::MAX_DYNAMIC_TOOLS;

const CREATE_400: &str = include_str!("../../fixtures/codex-manager/rest-sessions-create-400-invalid-tool.json");
const DELETED_410: &str = include_str!("../../fixtures/codex-manager/rest-tool-calls-list-deleted-session.json");

fn fixture_body(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap()["body"].take()
}

#[tokio::test]
async fn create_returns_fresh_ids_and_records_the_tools() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let first = rest
        .post(
            "/api/sessions",
            json!({"cwd": "/work", "dynamicTools": [tool("uppercase")]}),
        )
        .await;
    let second = rest.post("/api/sessions", json!({})).await;
    assert_eq!((first.status, second.status), (200, 200));
    let id = first.body["session"]["sessionId"].as_str().unwrap().to_owned();
    assert_eq!(first.body["thread"]["id"], id.as_str());
    assert_eq!(first.body["thread"]["cwd"], "/work");
    assert_ne!(second.body["session"]["sessionId"], id.as_str());

    let sessions = double.sessions();
    let created = sessions.iter().find(|s| s.id == id).unwrap();
    // Kept as codex-manager keeps them: unknown keys such as "type" stripped.
    assert_eq!(
        created.tools,
        vec![json!({
            "name": "uppercase",
            "description": "The uppercase tool",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
        })]
    );
    assert!(!created.deleted);
}

#[tokio::test]
async fn invalid_tools_get_codex_managers_400() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);

    let empty_name = rest
        .post(
            "/api/sessions",
            json!({"dynamicTools": [{"name": "", "description": "d", "inputSchema": {}}]}),
        )
        .await;
    assert_eq!(empty_name.status, 400);
    assert_eq!(
        empty_name.body,
        fixture_body(CREATE_400),
        "same body as the captured one"
    );

    let blank_description =
        json!({"dynamicTools": [tool("a"), {"name": "b", "description": "  \t", "inputSchema": {}}]});
    let reply = rest.post("/api/sessions", blank_description).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["issues"][0]["code"], "too_small");
    assert_eq!(
        reply.body["issues"][0]["path"],
        json!(["dynamicTools", 1, "description"])
    );

    let bad_schema = rest
        .post(
            "/api/sessions",
            json!({"dynamicTools": [{"name": "a", "description": "d", "inputSchema": []}]}),
        )
        .await;
    assert_eq!(bad_schema.status, 400);
    assert_eq!(bad_schema.body["issues"][0]["code"], "invalid_type");
    assert_eq!(
        bad_schema.body["issues"][0]["path"],
        json!(["dynamicTools", 0, "inputSchema"])
    );

    let too_many: Vec<Value> = (0..=MAX_DYNAMIC_TOOLS).map(|i| tool(&format!("t{i}"))).collect();
    let reply = rest.post("/api/sessions", json!({"dynamicTools": too_many})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["issues"][0]["code"], "too_big");
    assert_eq!(reply.body["issues"][0]["path"], json!(["dynamicTools"]));

    let exactly_max: Vec<Value> = (0..MAX_DYNAMIC_TOOLS).map(|i| tool(&format!("t{i}"))).collect();
    assert_eq!(
        rest.post("/api/sessions", json!({"dynamicTools": exactly_max}))
            .await
            .status,
        200
    );

    let not_an_array = rest.post("/api/sessions", json!({"dynamicTools": {"name": "a"}})).await;
    assert_eq!(not_an_array.status, 400);
    assert_eq!(double.sessions().len(), 1, "only the valid request created a session");
}

#[tokio::test]
async fn get_and_delete_follow_the_session_lifecycle() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let id = double.create_session(vec![]);

    let read = rest.get(&format!("/api/sessions/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["session"]["sessionId"], id.as_str());
    assert_eq!(read.body["transcript"], json!([]));

    let unknown = rest.get("/api/sessions/nope").await;
    assert_eq!(
        (unknown.status, unknown.body),
        (404, json!({"status": "not_found", "sessionId": "nope"}))
    );
    assert_eq!(rest.delete("/api/sessions/nope").await.status, 404);

    let deleted = rest.delete(&format!("/api/sessions/{id}")).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["status"], "ok");
    assert_eq!(deleted.body["sessionId"], id.as_str());

    let again = rest.delete(&format!("/api/sessions/{id}")).await;
    assert_eq!(again.status, 410);
    let expected = fixture_body(DELETED_410);
    assert_eq!(again.body["status"], expected["status"]);
    assert_eq!(again.body["message"], expected["message"]);
    assert_eq!(again.body["sessionId"], id.as_str());
    assert_eq!(rest.get(&format!("/api/sessions/{id}")).await.status, 410);
    assert_eq!(
        rest.post(&format!("/api/sessions/{id}/messages"), json!({"text": "hi"}))
            .await
            .status,
        410
    );
    assert_eq!(rest.get(&format!("/api/sessions/{id}/tool-calls")).await.status, 410);
    assert!(double.sessions()[0].deleted);
}

#[tokio::test]
async fn a_message_starts_a_turn_that_interrupt_ends() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let id = double.create_session(vec![]);
    let mut ws = Ws::connect(&double, Some(&id)).await;

    let missing_text = rest
        .post(&format!("/api/sessions/{id}/messages"), json!({"model": "x"}))
        .await;
    assert_eq!(missing_text.status, 400);
    assert_eq!(missing_text.body["issues"][0]["path"], json!(["text"]));
    assert_eq!(
        rest.post("/api/sessions/nope/messages", json!({"text": "hi"}))
            .await
            .status,
        404
    );

    let accepted = rest
        .post(&format!("/api/sessions/{id}/messages"), json!({"text": "hello"}))
        .await;
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.body["status"], "accepted");
    assert_eq!(accepted.body["sessionId"], id.as_str());
    let turn_id = accepted.body["turnId"].as_str().unwrap().to_owned();

    let started = ws.next().await;
    assert_eq!(started["type"], "app_server.turn.started");
    assert_eq!(started["payload"]["params"]["turn"]["id"], turn_id.as_str());
    assert_eq!(started["payload"]["context"]["turnId"], turn_id.as_str());
    assert_eq!(ws.next().await["type"], "notification");
    assert_eq!(double.sessions()[0].messages, vec!["hello".to_owned()]);
    assert_eq!(double.sessions()[0].active_turn.as_deref(), Some(turn_id.as_str()));

    let interrupted = rest.post(&format!("/api/sessions/{id}/interrupt"), json!({})).await;
    assert_eq!(interrupted.status, 200);
    assert_eq!(interrupted.body["turnId"], turn_id.as_str());
    let completed = ws.next().await;
    assert_eq!(completed["type"], "app_server.turn.completed");
    assert_eq!(completed["payload"]["params"]["turn"]["status"], "interrupted");

    let nothing_to_interrupt = rest.post(&format!("/api/sessions/{id}/interrupt"), json!({})).await;
    assert_eq!(nothing_to_interrupt.status, 409);
    assert_eq!(nothing_to_interrupt.body["code"], "no_active_turn");

    let read = rest.get(&format!("/api/sessions/{id}")).await;
    assert_eq!(read.body["thread"]["turns"][0]["status"], "interrupted");
    assert_eq!(read.body["transcript"][0]["content"], "hello");
}

#[tokio::test]
async fn bearer_is_required_on_rest_when_configured() {
    let double = CodexManagerDouble::builder()
        .require_bearer("s3cret")
        .start()
        .await
        .unwrap();
    let anonymous = Rest::new(&double).post("/api/sessions", json!({})).await;
    assert_eq!(anonymous.status, 401);
    let wrong = Rest::with_bearer(&double, "guess")
        .post("/api/sessions", json!({}))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(double.sessions().is_empty());

    let right = Rest::with_bearer(&double, "s3cret")
        .post("/api/sessions", json!({}))
        .await;
    assert_eq!(right.status, 200);

    let received = double.received();
    assert_eq!(received.len(), 3, "rejected requests are recorded too");
    assert_eq!(received[2].header("authorization"), Some("Bearer s3cret"));
    assert!(
        !format!("{:?}", received[2]).contains("s3cret"),
        "Debug output redacts the token"
    );
    assert!(!format!("{double:?}").contains("s3cret"));
}

#[tokio::test]
async fn unknown_routes_get_fastifys_404() {
    let double = CodexManagerDouble::start().await.unwrap();
    let reply = Rest::new(&double).get("/api/nothing-here").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["message"], "Route GET:/api/nothing-here not found");
}
