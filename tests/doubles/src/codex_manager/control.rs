//! The test controls over HTTP, under `/_double/`, for a double running as its own process.
//! They mirror the Rust controls on [`CodexManagerDouble`](super::CodexManagerDouble); recorded
//! requests are shown with secret headers redacted. These routes need no bearer token.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::ws::Message;
use axum::extract::{ConnectInfo, Path, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::burst::{self, BurstSpec};
use super::conn::ConnectionId;
use super::rest::{json_response, parse_body};
use super::state::State;
use super::turns::TurnScript;
use super::validate::CreateSession;

type Shared = Arc<State>;

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/_double/sessions", get(sessions).post(create_session))
        .route("/_double/tool-calls", post(inject))
        .route("/_double/pending", get(pending))
        .route("/_double/drop-sockets", post(drop_sockets))
        .route("/_double/sockets", get(sockets))
        .route("/_double/fail-next", post(fail_next))
        .route("/_double/fail-for", post(fail_for))
        .route("/_double/delay", post(delay))
        .route("/_double/pong", post(pong))
        .route("/_double/events", post(emit_event))
        .route(
            "/_double/raw",
            post(emit_raw).layer(DefaultBodyLimit::max(RAW_BODY_LIMIT)),
        )
        .route("/_double/received", get(received))
        .route("/_double/ws-received", get(ws_received))
        .route("/_double/responses/{request_id}", get(responses))
        .route("/_double/turn-script", post(turn_script))
        .route("/_double/burst", post(burst))
        .route("/_double/restart", post(restart))
        .route("/_double/misdelivered", get(misdelivered))
        .route("/_double/answered-twice", get(answered_twice))
}

/// The largest `/_double/raw` body: room for a frame larger than a client's frame limit (tungstenite's default
/// is 16 MiB).
const RAW_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The deepest `nested` arguments `/_double/tool-calls` builds.
const MAX_NESTED: usize = 1000;

/// Reads a JSON body into `T`; `Err` is the 400 body saying what is wrong.
fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, Value> {
    let value = parse_body(bytes)?.unwrap_or_else(|| json!({}));
    serde_json::from_value(value).map_err(|err| json!({"status": "error", "message": err.to_string()}))
}

macro_rules! read_body {
    ($bytes:expr) => {
        match body(&$bytes) {
            Ok(value) => value,
            Err(error) => return json_response(StatusCode::BAD_REQUEST, &error),
        }
    };
}

fn ok(value: Value) -> Response {
    json_response(StatusCode::OK, &value)
}

#[derive(Deserialize)]
struct NewSession {
    #[serde(default)]
    tools: Vec<Value>,
}

async fn create_session(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let request: NewSession = read_body!(bytes);
    let (id, _) = state.create_session(CreateSession {
        tools: request.tools,
        ..CreateSession::default()
    });
    ok(json!({"sessionId": id}))
}

async fn sessions(Extract(state): Extract<Shared>) -> Response {
    ok(json!({"data": state.snapshots()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inject {
    thread_id: String,
    tool: String,
    #[serde(default)]
    arguments: Value,
    /// Adds `"nested": [[..[1]..]]` to the arguments, so that they nest this many levels deep: deeper than a
    /// JSON request body can carry (serde_json reads 128 levels).
    #[serde(default)]
    nested: Option<usize>,
}

/// `{"nested": [[..[1]..]]}` merged into `arguments` (an object, or null), nesting `depth` levels in all.
fn nest(arguments: Value, depth: usize) -> Result<Value, Value> {
    if !(2..=MAX_NESTED).contains(&depth) {
        return Err(json!({"status": "error", "message": format!("nested must be 2 to {MAX_NESTED}")}));
    }
    let mut map = match arguments {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        _ => return Err(json!({"status": "error", "message": "nested needs object arguments"})),
    };
    let mut deep = json!(1);
    for _ in 1..depth {
        deep = json!([deep]);
    }
    map.insert("nested".into(), deep);
    Ok(Value::Object(map))
}

async fn inject(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let request: Inject = read_body!(bytes);
    let arguments = match request.nested {
        None => request.arguments,
        Some(depth) => match nest(request.arguments, depth) {
            Ok(arguments) => arguments,
            Err(error) => return json_response(StatusCode::BAD_REQUEST, &error),
        },
    };
    let issued = state.inject_tool_call(&request.thread_id, None, &request.tool, &arguments, None);
    ok(json!({"requestId": issued.request_id, "callId": issued.call_id}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadQuery {
    thread_id: String,
}

async fn pending(Extract(state): Extract<Shared>, Query(query): Query<ThreadQuery>) -> Response {
    ok(json!({"data": state.pending_rows(&query.thread_id)}))
}

async fn drop_sockets(Extract(state): Extract<Shared>) -> Response {
    ok(json!({"dropped": state.hub.drop_all()}))
}

async fn sockets(Extract(state): Extract<Shared>) -> Response {
    ok(json!({"count": state.hub.count()}))
}

#[derive(Deserialize)]
struct FailNext {
    n: usize,
}

async fn fail_next(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let request: FailNext = read_body!(bytes);
    state.fail_next(request.n);
    ok(json!({"n": request.n}))
}

#[derive(Deserialize)]
struct FailFor {
    ms: u64,
}

async fn fail_for(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let request: FailFor = read_body!(bytes);
    state.fail_for(Duration::from_millis(request.ms));
    ok(json!({"ms": request.ms}))
}

#[derive(Deserialize)]
struct Delay {
    ms: u64,
}

async fn delay(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let request: Delay = read_body!(bytes);
    state.set_delay(Duration::from_millis(request.ms));
    ok(json!({"ms": request.ms}))
}

#[derive(Deserialize)]
struct Pong {
    enabled: bool,
}

async fn pong(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let request: Pong = read_body!(bytes);
    state.set_pong_enabled(request.enabled);
    ok(json!({"enabled": request.enabled}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(default)]
    thread_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
}

async fn emit_event(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let event: Event = read_body!(bytes);
    super::emit(&state, event.thread_id.as_deref(), &event.kind, &event.payload);
    ok(json!({"status": "ok"}))
}

/// A text frame, or a binary one of these bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text { text: String },
    Binary { bytes: Vec<u8> },
}

async fn emit_raw(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let frame = match read_body!(bytes) {
        Raw::Text { text } => Message::Text(text.into()),
        Raw::Binary { bytes } => Message::Binary(bytes.into()),
    };
    state.hub.publish_all(frame);
    ok(json!({"status": "ok"}))
}

async fn received(Extract(state): Extract<Shared>) -> Response {
    let shown: Vec<_> = state.received().iter().map(|r| r.redacted()).collect();
    ok(json!({"data": shown}))
}

async fn ws_received(Extract(state): Extract<Shared>) -> Response {
    ok(json!({"data": state.ws_received()}))
}

async fn responses(Extract(state): Extract<Shared>, Path(request_id): Path<String>) -> Response {
    ok(json!({"data": state.responses_for(&request_id)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScriptedCall {
    tool: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Script {
    thread_id: String,
    #[serde(default)]
    tool_calls: Vec<ScriptedCall>,
    #[serde(default)]
    final_message: Option<String>,
    #[serde(default)]
    parallel: bool,
}

/// Queues a script for the thread's next turn. A `finalMessage` may contain `{answers}`, replaced
/// by the answers' texts joined by newlines.
async fn turn_script(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let request: Script = read_body!(bytes);
    let mut script = TurnScript::new().parallel(request.parallel);
    for call in request.tool_calls {
        script = script.tool_call(call.tool, call.arguments);
    }
    if let Some(message) = request.final_message {
        script = script.final_message_from(move |answers| {
            let texts: Vec<String> = answers.iter().map(super::turns::answer_text).collect();
            message.replace("{answers}", &texts.join("\n"))
        });
    }
    state.queue_script(&request.thread_id, script);
    ok(json!({"status": "ok"}))
}

async fn burst(Extract(state): Extract<Shared>, bytes: Bytes) -> Response {
    let spec: BurstSpec = read_body!(bytes);
    let report = burst::run(&state, &spec).await;
    ok(serde_json::to_value(report).expect("a report serializes"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Restart {
    #[serde(default)]
    lose_sessions: bool,
}

/// Restarts the server as [`CodexManagerDouble::restart`](super::CodexManagerDouble::restart) does (with
/// `loseSessions`, as `restart_and_lose_sessions`). Every connection is cut but this request's own, so it
/// gets its answer.
async fn restart(
    Extract(state): Extract<Shared>,
    ConnectInfo(connection): ConnectInfo<ConnectionId>,
    bytes: Bytes,
) -> Response {
    let request: Restart = read_body!(bytes);
    let report = state.restart(request.lose_sessions, Some(connection));
    ok(serde_json::to_value(report).expect("a report serializes"))
}

async fn misdelivered(Extract(state): Extract<Shared>) -> Response {
    ok(json!({"data": state.misdelivered()}))
}

async fn answered_twice(Extract(state): Extract<Shared>) -> Response {
    ok(json!({"data": state.answered_twice()}))
}
