//! The admin HTTP endpoint: skills, health, readiness, metrics, sessions and recent calls.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once the upstream is connected and a session is served, else 503 with the reasons |
//! | `GET /skills`, `GET /skills/{name}` | the catalog with schemas, annotations, tags and per-skill call counts |
//! | `GET /metrics` | Prometheus text |
//! | `GET /sessions` | the sessions served |
//! | `GET /calls?limit=N&offset=M&tool=T&outcome=O` | recent calls, newest first (default 50 at a time, at most 1000; the last 10,000 are kept), filtered by tool and outcome; `x-total-count` says how many match |
//! | `GET /calls/{request_id}?session=S` | the latest recent call with that request id, with its arguments when they are recorded (`BridgeBuilder::record_arguments`) |
//! | `GET /running` | the calls running now, oldest first |
//! | `GET /cluster` | for a bridge in a group (`--cluster`): the group's live bridges (calls in flight, claims held, sessions), its store's reachability and round trips, this bridge's claims by result; 404 for a bridge on its own |
//! | `GET /events` | Server-Sent Events: `started` and `finished` as calls start and finish (at most 16 watchers) |
//! | `GET /` | the dashboard: one page, no external assets, that reads the routes above (`dashboard.rs`) |
//! | `POST /skills/{name}/invoke` | runs a skill with the JSON body as arguments; needs the admin token |
//!
//! With an admin token set, every route but `/`, `/healthz` and `/readyz` requires `Authorization: Bearer <token>`
//! (the scheme in any case, as RFC 9110 has it; the token compared in constant time); without one, `invoke` is
//! refused. Requests are traced.
//!
//! The endpoint's limits, so that a client on this machine cannot starve it (or the process) of descriptors:
//!
//! | limit | value | what |
//! |---|---|---|
//! | [`MAX_CONNECTIONS`] | 128 | open connections [`bind`]'s server holds; a new one beyond them is admitted by closing the connection that has waited longest for a request (one that has not sent a whole request yet, or sits idle between requests), or once a request in flight finishes |
//! | [`HEADER_READ_TIMEOUT`] | 5 s | a new connection's request headers must be in this long after it was accepted, and a later request's this long after its first byte |
//! | [`KEEP_ALIVE_TIMEOUT`] | 10 s | an idle keep-alive connection is closed when no next request has started this long after its response |
//! | `REQUEST_TIMEOUT` | 30 s | a request (its body and its handler) gets 408 after this long |
//! | `BODY_LIMIT` | 1 MiB | a request body larger than this gets 413 |
//!
//! When `accept` fails (no descriptors left, say), the server logs a warning once for the burst, backs off
//! (50 ms, doubling up to 1 s) and goes on; it logs again once accepting works. The last two limits are the
//! router's, so they also hold where [`router`] is mounted in another server; the first three are [`bind`]'s.

mod auth;
mod dashboard;
mod metrics;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::AdminToken;
pub use metrics::render as render_metrics;

use crate::skill::{Catalog, SkillContext, SkillInfo};
use crate::telemetry::{BridgeHealth, BridgeStats, CallRecord, CallSource, unix_ms};

const DEFAULT_CALLS_LIMIT: usize = 50;
const MAX_CALLS_LIMIT: usize = 1000;
const BODY_LIMIT: usize = 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The most connections [`bind`]'s server holds open: plenty for probes, scrapers and an operator, and a small
/// share of a 1024-descriptor limit, so that the rest of the process (the upstream's sockets) keeps its own.
pub const MAX_CONNECTIONS: usize = 128;

/// Connections the kernel completes for the endpoint before it accepts them (they hold none of the process's
/// descriptors): room for a burst, so that a probe arriving during a flood is queued rather than dropped and
/// retried a second later. (`TcpListener::bind` would give 128.)
const LISTEN_BACKLOG: u32 = 1024;

/// How long a connection may take to send a request's headers: from being accepted for its first request, from
/// the request's first byte for later ones. A client that connects and sends nothing, or trickles its headers, is
/// closed after this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a kept-alive connection may sit idle after a response before its next request starts; then it is
/// closed. Long enough for a scraper polling every few seconds to reuse its connection.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the admin endpoint would not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A non-loopback address without a token.
    #[error("refusing to serve the admin endpoint on non-loopback address {0} without an admin token (--admin-token)")]
    PublicWithoutToken(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the admin routes read.
#[derive(Clone)]
pub struct AdminState {
    catalog: Catalog,
    stats: Arc<BridgeStats>,
    health: Arc<BridgeHealth>,
    token: Option<AdminToken>,
    /// `/events` streams open now, at most [`dashboard::MAX_WATCHERS`].
    watchers: Arc<tokio::sync::Semaphore>,
    /// Fired when [`bind`]'s server shuts down, so that event streams end and do not hold it up.
    closing: tokio_util::sync::CancellationToken,
}

impl AdminState {
    /// State over a bridge's catalog, statistics and health; `token` guards the routes (see module docs).
    pub fn new(
        catalog: Catalog,
        stats: Arc<BridgeStats>,
        health: Arc<BridgeHealth>,
        token: Option<AdminToken>,
    ) -> Self {
        Self {
            catalog,
            stats,
            health,
            token,
            watchers: Arc::new(tokio::sync::Semaphore::new(dashboard::MAX_WATCHERS)),
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }
}

/// The admin router, ready for `axum::serve` or `Router::oneshot` in tests.
pub fn router(state: AdminState) -> Router {
    let guarded = Router::new()
        .route("/skills", get(list_skills))
        .route("/skills/{name}", get(show_skill))
        .route("/skills/{name}/invoke", post(invoke_skill))
        .route("/metrics", get(metrics))
        .route("/sessions", get(sessions))
        .route("/calls", get(calls))
        .route("/calls/{request_id}", get(one_call))
        .route("/cluster", get(cluster))
        .route("/running", get(dashboard::running))
        .route("/events", get(dashboard::events));
    let guarded = match state.token.clone() {
        Some(token) => guarded.layer(axum::middleware::from_fn_with_state(token, auth::require_token)),
        None => guarded,
    };
    Router::new()
        .route("/", get(dashboard::page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .fallback(not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http().on_failure(log_failure))
}

/// A failed admin request, logged at the level it deserves: `/readyz`'s 503 is its answer while the bridge is not
/// ready (a load balancer probing it every second would otherwise fill the log with errors), so it is a debug
/// line; any other server error is a warning.
fn log_failure(failure: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency_ms = latency.as_millis() as u64;
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms, "answered 503 Service Unavailable");
        }
        failure => tracing::warn!(latency_ms, %failure, "admin request failed"),
    }
}

/// Refuses to serve the admin endpoint beyond this machine without a token: a non-loopback `addr` needs one.
pub fn check_exposure(addr: SocketAddr, has_token: bool) -> Result<(), AdminError> {
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(AdminError::PublicWithoutToken(addr))
    }
}

/// Binds `addr` (refusing a non-loopback address without a token) and serves until `shutdown` completes.
/// Returns the bound address (useful with port 0) and the server future.
///
/// The server holds at most [`MAX_CONNECTIONS`] connections and closes those that send nothing in time (see the
/// module docs). When `shutdown` completes it stops accepting, closes idle connections, lets requests in flight
/// finish, and then its future returns.
pub async fn bind(
    addr: SocketAddr,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>>), AdminError> {
    check_exposure(addr, state.token.is_some())?;
    let listen = || {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        Ok((listener.local_addr()?, listener))
    };
    let (local, listener) = listen().map_err(|source| AdminError::Bind { addr, source })?;
    let closing = state.closing.clone();
    let shutdown = async move {
        shutdown.await;
        closing.cancel();
    };
    Ok((local, serve::serve(listener, router(state), shutdown)))
}

fn error_body(message: impl Into<String>) -> Json<Value> {
    Json(json!({ "error": message.into() }))
}

/// One skill: `annotations` is MCP's `ToolAnnotations` object (hints the skill does not give left out).
fn skill_json(skill: &SkillInfo, stats: &BridgeStats) -> Value {
    let mut listing = skill.listing();
    listing["calls"] = json!(stats.skill_counts(skill.name()));
    listing["latency"] = dashboard::latency(stats, skill.name());
    listing
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.health.readiness() {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reasons": reasons })),
        )
            .into_response(),
    }
}

async fn list_skills(State(state): State<AdminState>) -> Json<Value> {
    let skills: Vec<Value> = state.catalog.iter().map(|s| skill_json(s, &state.stats)).collect();
    Json(Value::Array(skills))
}

async fn show_skill(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    match state.catalog.get(&name) {
        Some(skill) => Json(skill_json(skill, &state.stats)).into_response(),
        None => unknown_skill(&state.catalog, &name),
    }
}

async fn invoke_skill(State(state): State<AdminState>, Path(name): Path<String>, body: String) -> Response {
    if state.token.is_none() {
        return (
            StatusCode::FORBIDDEN,
            error_body("invoke is disabled: start the bridge with --admin-token to enable it"),
        )
            .into_response();
    }
    if state.catalog.get(&name).is_none() {
        return unknown_skill(&state.catalog, &name);
    }
    let arguments: Value = if body.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    error_body(format!("body is not JSON arguments: {e}")),
                )
                    .into_response();
            }
        }
    };
    let started_at = SystemTime::now();
    let started = Instant::now();
    let invocation = state
        .catalog
        .invoke_detailed(&name, arguments, SkillContext::detached(name.clone()))
        .await;
    let duration = started.elapsed();
    let outcome = invocation.outcome.as_str();
    state.stats.skill_ran(&name, outcome, duration);
    let error = (!invocation.result.success).then(|| CallRecord::error_text(&invocation.result.text_content()));
    state.stats.record(
        None,
        CallRecord {
            request_id: String::new(),
            call_id: String::new(),
            tool: name,
            session: String::new(),
            source: CallSource::Admin,
            started_at_ms: unix_ms(started_at),
            duration_ms: duration.as_secs_f64() * 1000.0,
            outcome,
            submit_status: "none",
            attempts: 0,
            error,
            turn_id: None,
            arguments: None,
            arguments_omitted: None,
        },
    );
    Json(json!({ "outcome": outcome, "result": invocation.result })).into_response()
}

fn unknown_skill(catalog: &Catalog, name: &str) -> Response {
    let known: Vec<&str> = catalog.iter().map(|s| s.name()).collect();
    (
        StatusCode::NOT_FOUND,
        error_body(format!("no skill named {name:?}; known skills: {}", known.join(", "))),
    )
        .into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics::render(&state.stats, &state.health),
    )
        .into_response()
}

/// The sessions served, each with when its latest call started (`lastCallAtMs`, `null` before any).
async fn sessions(State(state): State<AdminState>) -> Json<Value> {
    let sessions = state.health.sessions();
    let ids: Vec<&str> = sessions.iter().map(|session| session.id.as_str()).collect();
    let last_calls = state.stats.last_calls(&ids);
    let sessions: Vec<Value> = sessions
        .iter()
        .zip(last_calls)
        .map(|(session, last_call)| {
            let mut listed = json!(session);
            listed["lastCallAtMs"] = json!(last_call);
            listed
        })
        .collect();
    Json(Value::Array(sessions))
}

#[derive(Deserialize)]
struct CallsQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    tool: Option<String>,
    outcome: Option<String>,
}

async fn calls(State(state): State<AdminState>, Query(query): Query<CallsQuery>) -> Response {
    let limit = query.limit.unwrap_or(DEFAULT_CALLS_LIMIT).min(MAX_CALLS_LIMIT);
    let tool = query.tool.filter(|tool| !tool.is_empty());
    let outcome = query.outcome.filter(|outcome| !outcome.is_empty());
    let keep = |record: &CallRecord| {
        tool.as_ref().is_none_or(|tool| record.tool == *tool)
            && outcome
                .as_ref()
                .is_none_or(|outcome| record.outcome == outcome.as_str())
    };
    let (page, total) = state.stats.recent_page(keep, query.offset.unwrap_or(0), limit);
    ([("x-total-count", total.to_string())], Json(json!(page))).into_response()
}

#[derive(Deserialize)]
struct OneCallQuery {
    session: Option<String>,
}

/// The latest recorded call with this request id (in `session`, when given), with its arguments when the bridge
/// records them; `skillbridge call --replay` reads it.
async fn one_call(
    State(state): State<AdminState>,
    Path(request_id): Path<String>,
    Query(query): Query<OneCallQuery>,
) -> Response {
    let keep = |record: &CallRecord| {
        record.request_id == request_id && query.session.as_ref().is_none_or(|session| record.session == *session)
    };
    match state.stats.recent_page(keep, 0, 1).0.pop() {
        Some(record) => Json(json!(record)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            error_body(format!(
                "no recent call has request id {request_id}; the last {} calls are kept",
                crate::telemetry::JOURNAL_CAPACITY
            )),
        )
            .into_response(),
    }
}

/// The group as this bridge sees it (as of its last heartbeat); 404 for a bridge on its own.
async fn cluster(State(state): State<AdminState>) -> Response {
    match state.health.cluster() {
        Some(cluster) => Json(json!(cluster.view())).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            error_body("this bridge runs on its own: start it with --cluster redis://HOST:PORT/DB to share work"),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        error_body(
            "no such route; try /, /skills, /healthz, /readyz, /metrics, /sessions, /calls, /running, /events or \
             /cluster",
        ),
    )
        .into_response()
}
