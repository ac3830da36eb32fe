//! Every body and frame the double sends, built from the captured codex-manager fixtures
//! (compiled in with `include_str!`, never read at run time) by replacing only the fields that
//! vary: ids, timestamps, tool names, arguments and texts. Shapes therefore stay those of the
//! real server.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::clock;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../fixtures/codex-manager/", $name))
    };
}

/// The captured frames and bodies, parsed once.
struct Templates {
    create_session: Value,
    get_session: Value,
    delete_session: Value,
    deleted_session: Value,
    validation_error: Value,
    respond_invalid_union_issue: Value,
    pending_row: Value,
    tool_call_signal: Value,
    tool_call_requested: Value,
    tool_call_resolved: Value,
    turn_started: Value,
    turn_completed: Value,
    item_completed: Value,
    notification: Value,
    ready: Value,
}

/// The `body` of a captured REST exchange (`{"status":..,"body":..}`).
fn rest_body(text: &str) -> Value {
    let mut exchange: Value = serde_json::from_str(text).expect("fixture is JSON");
    exchange["body"].take()
}

fn frame(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

static TEMPLATES: LazyLock<Templates> = LazyLock::new(|| {
    let validation_error = rest_body(fixture!("rest-sessions-create-400-invalid-tool.json"));
    let respond_400 = rest_body(fixture!("rest-tool-calls-respond-400-invalid-body.json"));
    let pending_list = rest_body(fixture!("rest-tool-calls-list-200-pending.json"));
    Templates {
        create_session: rest_body(fixture!("rest-sessions-create-200.json")),
        get_session: rest_body(fixture!("rest-sessions-get-200.json")),
        delete_session: rest_body(fixture!("rest-sessions-delete.json")),
        deleted_session: rest_body(fixture!("rest-tool-calls-list-deleted-session.json")),
        validation_error,
        respond_invalid_union_issue: respond_400["issues"][0].clone(),
        pending_row: pending_list["data"][0].clone(),
        tool_call_signal: frame(fixture!("ws-app_server-request-item-tool-call.json")),
        tool_call_requested: frame(fixture!("ws-tool_call_requested.json")),
        tool_call_resolved: frame(fixture!("ws-tool_call_resolved.json")),
        turn_started: frame(fixture!("ws-app_server-turn-started.json")),
        turn_completed: frame(fixture!("ws-app_server-turn-completed.json")),
        item_completed: frame(fixture!("ws-app_server-item-completed.json")),
        notification: frame(fixture!("ws-notification.json")),
        ready: frame(fixture!("ws-ready.json")),
    }
});

/// The constant frames, serialized once.
pub(crate) static PONG: LazyLock<String> = LazyLock::new(|| compact(fixture!("ws-pong.json")));
pub(crate) static INVALID_COMMAND: LazyLock<String> =
    LazyLock::new(|| compact(fixture!("ws-error-invalid-command.json")));

fn compact(text: &str) -> String {
    frame(text).to_string()
}

/// What an app-server signal says about its session (`payload.session`).
#[derive(Debug, Clone)]
pub(crate) struct SessionRef {
    pub id: String,
    pub title: String,
}

/// The session fields the create and read bodies carry.
pub(crate) struct SessionView<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub created_at: i64,
    pub updated_at: i64,
    pub cwd: Option<&'a str>,
    pub model: Option<&'a str>,
    pub approval_policy: Option<&'a str>,
    pub network_access: Option<&'a str>,
    pub filesystem_sandbox: Option<&'a str>,
}

fn fill_session(body: &mut Value, view: &SessionView<'_>) {
    let template_id = body["session"]["sessionId"].as_str().unwrap_or_default().to_owned();
    let session = &mut body["session"];
    session["sessionId"] = json!(view.id);
    session["title"] = json!(view.title);
    session["createdAt"] = json!(view.created_at);
    session["updatedAt"] = json!(view.updated_at);
    if let Some(policy) = view.approval_policy {
        session["approvalPolicy"] = json!(policy);
        session["sessionControls"]["approvalPolicy"] = json!(policy);
    }
    if let Some(model) = view.model {
        session["sessionControls"]["model"] = json!(model);
    }
    if let Some(network) = view.network_access {
        session["sessionControls"]["networkAccess"] = json!(network);
    }
    if let Some(sandbox) = view.filesystem_sandbox {
        session["sessionControls"]["filesystemSandbox"] = json!(sandbox);
    }
    if let Some(cwd) = view.cwd {
        session["cwd"] = json!(cwd);
    }
    let thread = &mut body["thread"];
    thread["id"] = json!(view.id);
    thread["sessionId"] = json!(view.id);
    thread["createdAt"] = json!(view.created_at);
    thread["updatedAt"] = json!(view.updated_at);
    thread["recencyAt"] = json!(view.updated_at);
    if let Some(path) = thread["path"].as_str().map(|p| p.replace(&template_id, view.id)) {
        thread["path"] = json!(path);
    }
    if let Some(model) = view.model {
        thread["model"] = json!(model);
    }
    if let Some(cwd) = view.cwd {
        thread["cwd"] = json!(cwd);
        thread["environments"][0]["cwd"] = json!(cwd);
        thread["environments"][0]["runtimeWorkspaceRoots"] = json!([cwd]);
    }
}

/// `POST /api/sessions` 200 body.
pub(crate) fn create_session_body(view: &SessionView<'_>) -> Value {
    let mut body = TEMPLATES.create_session.clone();
    fill_session(&mut body, view);
    body
}

/// `GET /api/sessions/:id` 200 body with the session's turns and transcript.
pub(crate) fn get_session_body(view: &SessionView<'_>, turns: Vec<Value>, transcript: Vec<Value>) -> Value {
    let mut body = TEMPLATES.get_session.clone();
    fill_session(&mut body, view);
    body["thread"]["name"] = json!(view.title);
    body["thread"]["turns"] = Value::Array(turns);
    body["transcript"] = Value::Array(transcript);
    body
}

/// `DELETE /api/sessions/:id` 200 body.
pub(crate) fn delete_session_body(id: &str, title: &str) -> Value {
    let mut body = TEMPLATES.delete_session.clone();
    body["sessionId"] = json!(id);
    body["title"] = json!(title);
    body
}

/// The 410 body for anything touching a deleted session.
pub(crate) fn deleted_session_body(id: &str, deleted_at: &str) -> Value {
    let mut body = TEMPLATES.deleted_session.clone();
    body["sessionId"] = json!(id);
    body["deletedAt"] = json!(deleted_at);
    body
}

/// A 400 `invalid_request` body carrying zod-style issues.
pub(crate) fn validation_error_body(issues: Vec<Value>) -> Value {
    let mut body = TEMPLATES.validation_error.clone();
    body["issues"] = Value::Array(issues);
    body
}

/// The issue codex-manager reports for a content item whose `type` matches no variant.
pub(crate) fn invalid_union_issue(path: Vec<Value>) -> Value {
    let mut issue = TEMPLATES.respond_invalid_union_issue.clone();
    issue["path"] = Value::Array(path);
    issue
}

/// One dynamic tool call, as the signal, the pending row and the resolution describe it.
pub(crate) struct CallView<'a> {
    pub request_id: u64,
    pub request_id_text: &'a str,
    pub thread_id: &'a str,
    pub turn_id: &'a str,
    pub call_id: &'a str,
    pub tool: &'a str,
    pub arguments: &'a Value,
    pub session: Option<&'a SessionRef>,
    pub created_at: &'a str,
}

fn details(call: &CallView<'_>) -> Value {
    json!({
        "threadId": call.thread_id,
        "turnId": call.turn_id,
        "callId": call.call_id,
        "namespace": null,
        "tool": call.tool,
        "arguments": call.arguments,
    })
}

fn session_value(session: Option<&SessionRef>) -> Value {
    match session {
        Some(s) => json!({ "id": s.id, "title": s.title, "projectId": null }),
        None => Value::Null,
    }
}

/// Fills the fields every app-server signal envelope shares.
fn fill_signal(envelope: &mut Value, thread_id: &str, turn_id: Option<&str>, session: Option<&SessionRef>) {
    envelope["threadId"] = json!(thread_id);
    let payload = &mut envelope["payload"];
    payload["receivedAt"] = json!(clock::iso_now());
    payload["context"] = json!({ "threadId": thread_id, "turnId": turn_id });
    payload["session"] = session_value(session);
}

/// The `app_server.request.item.tool.call` envelope; `payload.requestId` is a JSON number.
pub(crate) fn tool_call_signal(call: &CallView<'_>) -> Value {
    let mut envelope = TEMPLATES.tool_call_signal.clone();
    fill_signal(&mut envelope, call.thread_id, Some(call.turn_id), call.session);
    envelope["payload"]["params"] = details(call);
    envelope["payload"]["requestId"] = json!(call.request_id);
    envelope
}

/// The pending-call row (REST listing and `tool_call_requested` payload); `requestId` is a string.
pub(crate) fn pending_row(call: &CallView<'_>) -> Value {
    let mut row = TEMPLATES.pending_row.clone();
    row["requestId"] = json!(call.request_id_text);
    row["threadId"] = json!(call.thread_id);
    row["turnId"] = json!(call.turn_id);
    row["itemId"] = json!(call.call_id);
    row["callId"] = json!(call.call_id);
    row["tool"] = json!(call.tool);
    row["arguments"] = call.arguments.clone();
    row["summary"] = json!(format!("Tool call requested: {}", call.tool));
    row["details"] = details(call);
    row["createdAt"] = json!(call.created_at);
    row
}

/// An envelope `{type, threadId, payload}` serialized without building a wrapper value.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    thread_id: Option<&'a str>,
    payload: &'a Value,
}

/// Serializes an envelope frame.
pub(crate) fn envelope_text(kind: &str, thread_id: Option<&str>, payload: &Value) -> String {
    serde_json::to_string(&Envelope {
        kind,
        thread_id,
        payload,
    })
    .expect("a Value always serializes")
}

/// The `tool_call_requested` frame for a pending row.
pub(crate) fn tool_call_requested_text(thread_id: &str, row: &Value) -> String {
    let kind = TEMPLATES.tool_call_requested["type"]
        .as_str()
        .unwrap_or("tool_call_requested");
    envelope_text(kind, Some(thread_id), row)
}

/// The `tool_call_resolved` frame.
pub(crate) fn tool_call_resolved_text(thread_id: &str, request_id: &str, success: bool) -> String {
    let mut envelope = TEMPLATES.tool_call_resolved.clone();
    envelope["threadId"] = json!(thread_id);
    envelope["payload"]["requestId"] = json!(request_id);
    envelope["payload"]["success"] = json!(success);
    envelope.to_string()
}

/// A turn as `turn/started`, `turn/completed` and `thread.turns` show it.
pub(crate) struct TurnView<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub items: &'a [Value],
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// A turn object in the captured shape.
pub(crate) fn turn_value(turn: &TurnView<'_>) -> Value {
    let template = if turn.completed_at.is_some() {
        &TEMPLATES.turn_completed
    } else {
        &TEMPLATES.turn_started
    };
    let mut value = template["payload"]["params"]["turn"].clone();
    value["id"] = json!(turn.id);
    value["rootTurnId"] = json!(turn.id);
    value["items"] = Value::Array(turn.items.to_vec());
    value["status"] = json!(turn.status);
    value["startedAt"] = json!(turn.started_at);
    value["completedAt"] = json!(turn.completed_at);
    value["durationMs"] = json!(turn.duration_ms);
    value
}

/// `app_server.turn.started` for a new turn.
pub(crate) fn turn_started(thread_id: &str, turn: &TurnView<'_>, session: Option<&SessionRef>) -> Value {
    let mut envelope = TEMPLATES.turn_started.clone();
    fill_signal(&mut envelope, thread_id, Some(turn.id), session);
    envelope["payload"]["params"]["threadId"] = json!(thread_id);
    envelope["payload"]["params"]["turn"] = turn_value(turn);
    envelope
}

/// `app_server.turn.completed` (status `completed` or `interrupted`).
pub(crate) fn turn_completed(thread_id: &str, turn: &TurnView<'_>, session: Option<&SessionRef>) -> Value {
    let mut envelope = TEMPLATES.turn_completed.clone();
    fill_signal(&mut envelope, thread_id, Some(turn.id), session);
    envelope["payload"]["params"]["threadId"] = json!(thread_id);
    envelope["payload"]["params"]["turn"] = turn_value(turn);
    envelope
}

/// An `agentMessage` item in the captured shape.
pub(crate) fn agent_message_item(text: &str, at_ms: i64) -> Value {
    let mut item = TEMPLATES.turn_completed["payload"]["params"]["turn"]["items"][0].clone();
    item["id"] = json!(format!("msg_{}", clock::new_id()));
    item["text"] = json!(text);
    item["startedAtMs"] = json!(at_ms);
    item["completedAtMs"] = json!(at_ms);
    item
}

/// `app_server.item.completed` carrying `item`.
pub(crate) fn item_completed(thread_id: &str, turn_id: &str, item: Value, session: Option<&SessionRef>) -> Value {
    let completed_at = item["completedAtMs"].clone();
    let mut envelope = TEMPLATES.item_completed.clone();
    fill_signal(&mut envelope, thread_id, Some(turn_id), session);
    let params = &mut envelope["payload"]["params"];
    params["item"] = item;
    params["threadId"] = json!(thread_id);
    params["turnId"] = json!(turn_id);
    params["completedAtMs"] = completed_at;
    envelope
}

/// The raw `notification` frame that follows each `app_server.*` notification.
pub(crate) fn raw_notification(signal: &Value) -> Value {
    let mut envelope = TEMPLATES.notification.clone();
    envelope["threadId"] = signal["threadId"].clone();
    envelope["payload"] = json!({
        "method": signal["payload"]["method"],
        "params": signal["payload"]["params"],
    });
    envelope
}

/// The `ready` frame sent on connect.
pub(crate) fn ready_text(thread_id: Option<&str>) -> String {
    let mut envelope = TEMPLATES.ready.clone();
    envelope["threadId"] = json!(thread_id);
    envelope.to_string()
}

/// A transcript entry (OpenAPI `TranscriptEntry`).
pub(crate) fn transcript_entry(turn_id: &str, role: &str, content: &str, at_ms: i64) -> Value {
    let mut entry = Map::new();
    entry.insert("messageId".into(), json!(clock::new_id()));
    entry.insert("turnId".into(), json!(turn_id));
    entry.insert("role".into(), json!(role));
    entry.insert("type".into(), json!("message"));
    entry.insert("content".into(), json!(content));
    entry.insert("details".into(), Value::Null);
    entry.insert("startedAt".into(), json!(at_ms));
    entry.insert("completedAt".into(), json!(at_ms));
    entry.insert("status".into(), json!("complete"));
    Value::Object(entry)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// True when `actual` has exactly the keys of `expected` at every object level, and the same
    /// JSON kinds at every leaf (null may stand for any kind: optional fields).
    pub(crate) fn same_shape(expected: &Value, actual: &Value) -> Result<(), String> {
        match (expected, actual) {
            (Value::Object(e), Value::Object(a)) => {
                let ek: Vec<_> = e.keys().collect();
                let ak: Vec<_> = a.keys().collect();
                if ek != ak {
                    return Err(format!("keys differ: expected {ek:?}, got {ak:?}"));
                }
                e.iter()
                    .try_for_each(|(k, v)| same_shape(v, &a[k]).map_err(|m| format!("{k}.{m}")))
            }
            (Value::Array(e), Value::Array(a)) => match (e.first(), a.first()) {
                (Some(e0), Some(a0)) => same_shape(e0, a0),
                _ => Ok(()),
            },
            (Value::Null, _) | (_, Value::Null) => Ok(()),
            (e, a) if std::mem::discriminant(e) == std::mem::discriminant(a) => Ok(()),
            (e, a) => Err(format!("kind differs: expected {e}, got {a}")),
        }
    }

    fn call_view<'a>(args: &'a Value, session: &'a SessionRef) -> CallView<'a> {
        CallView {
            request_id: 7,
            request_id_text: "7",
            thread_id: "t-1",
            turn_id: "turn-1",
            call_id: "call_7",
            tool: "uppercase",
            arguments: args,
            session: Some(session),
            created_at: "2026-11-24T01:44:01.603Z",
        }
    }

    #[test]
    fn tool_call_frames_keep_the_captured_shape() {
        let args = json!({"text": "hello bridge"});
        let session = SessionRef {
            id: "t-1".into(),
            title: "New chat".into(),
        };
        let call = call_view(&args, &session);
        let signal = tool_call_signal(&call);
        same_shape(&TEMPLATES.tool_call_signal, &signal).unwrap();
        assert_eq!(signal["payload"]["requestId"], json!(7));
        assert_eq!(signal["payload"]["params"]["arguments"], args);
        let row = pending_row(&call);
        same_shape(&TEMPLATES.pending_row, &row).unwrap();
        assert_eq!(row["requestId"], json!("7"));
        let requested: Value = serde_json::from_str(&tool_call_requested_text("t-1", &row)).unwrap();
        same_shape(&TEMPLATES.tool_call_requested, &requested).unwrap();
        let resolved: Value = serde_json::from_str(&tool_call_resolved_text("t-1", "7", false)).unwrap();
        same_shape(&TEMPLATES.tool_call_resolved, &resolved).unwrap();
        assert_eq!(
            resolved["payload"],
            json!({"requestId": "7", "status": "resolved", "success": false})
        );
    }

    #[test]
    fn session_bodies_keep_the_captured_shape() {
        let view = SessionView {
            id: "abc",
            title: "New chat",
            created_at: 1,
            updated_at: 2,
            cwd: Some("/tmp/x"),
            model: Some("m"),
            approval_policy: None,
            network_access: None,
            filesystem_sandbox: None,
        };
        let created = create_session_body(&view);
        same_shape(&TEMPLATES.create_session, &created).unwrap();
        assert_eq!(created["session"]["sessionId"], "abc");
        assert_eq!(created["thread"]["id"], "abc");
        assert!(created["thread"]["path"].as_str().unwrap().ends_with("-abc.jsonl"));
        let read = get_session_body(&view, vec![], vec![]);
        same_shape(&TEMPLATES.get_session, &read).unwrap();
    }

    #[test]
    fn turn_frames_keep_the_captured_shape() {
        let item = agent_message_item("done", 5);
        let items = [item.clone()];
        let turn = TurnView {
            id: "turn-1",
            status: "completed",
            items: &items,
            started_at: 1,
            completed_at: Some(2),
            duration_ms: Some(3),
        };
        same_shape(&TEMPLATES.turn_completed, &turn_completed("t", &turn, None)).unwrap();
        let started = TurnView {
            id: "turn-1",
            status: "inProgress",
            items: &[],
            started_at: 1,
            completed_at: None,
            duration_ms: None,
        };
        same_shape(&TEMPLATES.turn_started, &turn_started("t", &started, None)).unwrap();
        let completed = item_completed("t", "turn-1", item, None);
        assert_eq!(completed["payload"]["params"]["item"]["type"], "agentMessage");
        assert_eq!(completed["payload"]["params"]["item"]["text"], "done");
        let raw = raw_notification(&completed);
        assert_eq!(raw["payload"]["method"], "item/completed");
    }
}
