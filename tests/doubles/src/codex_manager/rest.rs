//! The codex-manager routes under `/api` (REST plus the websocket upgrade) and the middleware
//! around them: request recording (outermost, so rejected requests are recorded too), bearer
//! authentication, and the injected response delay.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::fixtures;
use super::state::{Begin, RecordedRequest, State};
use super::turns::{self, InterruptError, StartError};
use super::validate;
use super::ws;

type Shared = Arc<State>;

/// The largest request body accepted (codex-manager's own limit is larger; tests never get near).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    json_text(status, body.to_string())
}

/// A JSON response from already-serialized text.
pub(crate) fn json_text(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The body as JSON: `Ok(None)` when empty; `Err` holds Fastify's 400 body when it is not JSON.
pub(crate) fn parse_body(bytes: &Bytes) -> Result<Option<Value>, Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|err| {
        json!({
            "statusCode": 400,
            "code": "FST_ERR_CTP_INVALID_JSON_BODY",
            "error": "Bad Request",
            "message": format!("Body is not valid JSON: {err}"),
        })
    })
}

fn bad_request(body: &Value) -> Response {
    json_response(StatusCode::BAD_REQUEST, body)
}

/// The `/api` router.
pub(crate) fn router(state: Shared) -> Router<Shared> {
    let delayed = Router::new()
        .route("/api/sessions", post(create_session))
        .route("/api/sessions/{id}", get(get_session).delete(delete_session))
        .route("/api/sessions/{id}/messages", post(send_message))
        .route("/api/sessions/{id}/interrupt", post(interrupt))
        .route("/api/sessions/{id}/tool-calls", get(list_tool_calls))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), delay));
    Router::new()
        .merge(delayed)
        // The respond route applies the delay itself, while the call is in flight.
        .route("/api/tool-calls/{request_id}/response", post(respond))
        .route("/api/stream", get(ws::upgrade))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), authenticate))
        .layer(middleware::from_fn_with_state(state, record))
}

async fn record(Extract(state): Extract<Shared>, request: Request, next: Next) -> Response {
    if !state.config.record {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"status": "error", "code": "too_large"}),
            );
        }
    };
    let body = match parse_body(&bytes) {
        Ok(Some(value)) => value,
        Ok(None) => Value::Null,
        Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
    };
    state.record_request(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    });
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// True when the request carries `Authorization: Bearer <expected>`.
pub(crate) fn bearer_ok(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(token.trim().as_bytes(), expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authenticate(Extract(state): Extract<Shared>, request: Request, next: Next) -> Response {
    match &state.config.bearer {
        Some(expected) if !bearer_ok(request.headers(), expected) => json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"status": "error", "code": "unauthorized", "message": "Authentication required"}),
        ),
        _ => next.run(request).await,
    }
}

async fn delay(Extract(state): Extract<Shared>, request: Request, next: Next) -> Response {
    let delay = state.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    next.run(request).await
}

/// Fastify's not-found body.
async fn not_found(request: Request) -> Response {
    let message = format!("Route {}:{} not found", request.method(), request.uri().path());
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"message": message, "error": "Not Found", "statusCode": 404}),
    )
}

fn session_not_found(id: &str) -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({"status": "not_found", "sessionId": id}))
}

async fn create_session(Extract(state): Extract<Shared>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(error) => return bad_request(&error),
    };
    match validate::create_session(body.as_ref()) {
        Ok(_) if state.take_create_failure() => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"status": "error", "message": "injected failure"}),
        ),
        Ok(settings) => json_response(StatusCode::OK, &state.create_session(settings).1),
        Err(error) => json_response(StatusCode::BAD_REQUEST, &error),
    }
}

async fn get_session(Extract(state): Extract<Shared>, Path(id): Path<String>) -> Response {
    let sessions = state.sessions();
    let Some(session) = sessions.get(&id) else {
        return session_not_found(&id);
    };
    if let Some(body) = session.deleted_body() {
        return json_response(StatusCode::GONE, &body);
    }
    let turns = session.turns.iter().map(|t| t.value()).collect();
    let body = fixtures::get_session_body(&session.view(), turns, session.transcript.clone());
    drop(sessions);
    json_response(StatusCode::OK, &body)
}

async fn delete_session(Extract(state): Extract<Shared>, Path(id): Path<String>) -> Response {
    let body = {
        let sessions = state.sessions();
        let Some(session) = sessions.get(&id) else {
            return session_not_found(&id);
        };
        if let Some(body) = session.deleted_body() {
            return json_response(StatusCode::GONE, &body);
        }
        fixtures::delete_session_body(&id, &session.title)
    };
    state.mark_deleted(&id);
    json_response(StatusCode::OK, &body)
}

async fn send_message(Extract(state): Extract<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(error) => return bad_request(&error),
    };
    // Like codex-manager, a missing or deleted session wins over a bad body.
    {
        let sessions = state.sessions();
        match sessions.get(&id) {
            None => return session_not_found(&id),
            Some(session) => {
                if let Some(body) = session.deleted_body() {
                    return json_response(StatusCode::GONE, &body);
                }
            }
        }
    }
    let message = match validate::send_message(body.as_ref()) {
        Ok(message) => message,
        Err(error) => return json_response(StatusCode::BAD_REQUEST, &error),
    };
    match turns::start_turn(&state, &id, message.text, message.tools) {
        Ok(turn_id) => json_response(
            StatusCode::ACCEPTED,
            &json!({"status": "accepted", "sessionId": id, "turnId": turn_id}),
        ),
        Err(StartError::NotFound) => session_not_found(&id),
        Err(StartError::Deleted(body)) => json_response(StatusCode::GONE, &body),
    }
}

async fn interrupt(Extract(state): Extract<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(error) => return bad_request(&error),
    };
    let wanted = body.as_ref().and_then(|b| b.get("turnId")).and_then(Value::as_str);
    match turns::interrupt(&state, &id, wanted) {
        Ok(turn_id) => json_response(
            StatusCode::OK,
            &json!({"status": "ok", "sessionId": id, "turnId": turn_id}),
        ),
        Err(InterruptError::NotFound) => session_not_found(&id),
        Err(InterruptError::Deleted(body)) => json_response(StatusCode::GONE, &body),
        Err(InterruptError::NoActiveTurn) => json_response(
            StatusCode::CONFLICT,
            &json!({
                "status": "error",
                "code": "no_active_turn",
                "sessionId": id,
                "message": "No active turn to interrupt",
            }),
        ),
    }
}

async fn list_tool_calls(Extract(state): Extract<Shared>, Path(id): Path<String>) -> Response {
    let deleted = state.sessions().get(&id).and_then(|s| s.deleted_body());
    if let Some(body) = deleted {
        return json_response(StatusCode::GONE, &body);
    }
    // An unknown session lists nothing, like the real server.
    json_response(StatusCode::OK, &json!({"data": state.pending_rows(&id)}))
}

async fn respond(Extract(state): Extract<Shared>, Path(request_id): Path<String>, bytes: Bytes) -> Response {
    let parsed = parse_body(&bytes);
    let recorded = state.config.record.then(|| match &parsed {
        Ok(body) => body.clone().unwrap_or(Value::Null),
        Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
    });
    let record = |recorded: Option<Value>| {
        if let Some(body) = recorded {
            state.record_respond_body(&request_id, body);
        }
    };
    // Both a body that is not JSON and one that fails validation are 400s.
    let checked = parsed.and_then(|body| validate::respond(body.as_ref()).map(|valid| (valid.success, body)));
    let (success, body) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            record(recorded);
            return bad_request(&error);
        }
    };
    let begin = state.begin_response(&request_id);
    // Recorded after the claim, so a test that sees the body knows the call is in flight.
    record(recorded);
    let claimed = match begin {
        Begin::Started(claimed) => claimed,
        Begin::NotFound => {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"status": "not_found", "requestId": request_id}),
            );
        }
        Begin::SessionDeleted(body) => return json_response(StatusCode::GONE, &body),
        Begin::InFlight => {
            return json_response(
                StatusCode::CONFLICT,
                &json!({"status": "conflict", "code": "in_flight", "requestId": request_id}),
            );
        }
    };
    // If the client goes away mid-delay this future is dropped: the claim then releases the call.
    let claim = Claim {
        state: &state,
        request_id: &request_id,
        call_id: &claimed.call_id,
        settled: false,
    };
    let delay = state.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if state.take_failure() {
        drop(claim);
        return delivery_failed(&request_id);
    }
    claim.settle();
    if !state.complete_response(&request_id, &claimed, body.unwrap_or(Value::Null), success) {
        // A restart came while the answer was in flight: the process it was for is gone.
        return delivery_failed(&request_id);
    }
    let ok = json!({"status": "ok", "requestId": request_id, "threadId": &*claimed.thread_id});
    json_response(StatusCode::OK, &ok)
}

/// codex-manager's 500 when it could not hand an answer to app-server.
fn delivery_failed(request_id: &str) -> Response {
    let body = json!({
        "status": "error",
        "requestId": request_id,
        "message": "failed to deliver the tool-call response to app-server",
    });
    json_response(StatusCode::INTERNAL_SERVER_ERROR, &body)
}

/// A call claimed by `begin_response`; released (left pending) unless settled.
struct Claim<'a> {
    state: &'a State,
    request_id: &'a str,
    call_id: &'a str,
    settled: bool,
}

impl Claim<'_> {
    fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.state.abandon_response(self.request_id, self.call_id);
        }
    }
}
