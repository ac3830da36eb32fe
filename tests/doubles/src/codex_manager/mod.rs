//! A codex-manager stand-in for tests and benchmarks: an in-process axum server that answers the
//! REST routes and the websocket stream skillbridge uses, with bodies and frames built from the
//! captured fixtures in `tests/fixtures/codex-manager/`, plus controls to inject tool calls,
//! script turns, break sockets, fail or delay responses, restart the server the way codex-manager
//! restarts, check that answers reach the calls they were meant for, and inspect what it received.
//!
//! Ids behave as on the real server: request ids are app-server's JSON-RPC ids, numbered from 0 by
//! each server process, so a [`restart`](CodexManagerDouble::restart) numbers them from 0 again; call
//! ids (`call_<n>`) are the model's, and never repeat, not across turns, sessions or restarts.
//!
//! It speaks plain HTTP, or HTTPS (and `wss://`) with a certificate made in the test
//! ([`CodexManagerDoubleBuilder::tls`], [`crate::tls`]).
//!
//! Routes (under `/api`, as on the real server): `POST /sessions`, `GET|DELETE /sessions/:id`,
//! `POST /sessions/:id/messages`, `POST /sessions/:id/interrupt`, `GET /sessions/:id/tool-calls`,
//! `POST /tool-calls/:requestId/response`, websocket `GET /stream[?threadId=]`. Run as its own
//! process with `cargo run -p skillbridge-doubles --bin codex-manager-double -- --port 3001`; the
//! same controls are then under `/_double/` (see the binary's `--help`).
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use skillbridge_doubles::CodexManagerDouble;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let double = CodexManagerDouble::builder().require_bearer("tok").start().await?;
//! let thread = double.create_session(vec![]);
//! // Nobody is connected, so the frames are lost, but the call is pending.
//! let request_id = double.inject_tool_call(&thread, "uppercase", json!({"text": "hi"}));
//! assert_eq!(request_id, "0");
//! assert_eq!(double.pending(&thread).len(), 1);
//! assert_eq!(double.wait_answered(&request_id, Duration::from_millis(10)).await, None);
//! double.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod burst;
mod clock;
mod conn;
mod control;
mod fixtures;
mod hub;
mod rest;
mod state;
mod turns;
mod validate;
mod ws;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Message;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use burst::{BurstReport, BurstSpec, DEFAULT_BURST_TIMEOUT, LatencyMicros};
pub use state::{
    AnsweredTwice, CALL_ID_ARGUMENT, IssuedCall, Misdelivery, RecordedRequest, RestartReport, SessionSnapshot,
};
pub use turns::{AnswersToText, FinalMessage, IncomingMessage, TurnScript, answer_text};
pub use validate::MAX_DYNAMIC_TOOLS;

use crate::tls::ServerIdentity;
use conn::{ConnectionId, KillableListener};
use state::{Config, State};
use turns::MessageHook;
use validate::CreateSession;

/// How long [`CodexManagerDouble::shutdown`] waits for open HTTP requests before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the double could not start.
#[derive(Debug, thiserror::Error)]
pub enum DoubleError {
    /// The address is not loopback and non-loopback binding was not allowed.
    #[error("refusing to bind {0}: not a loopback address (allow it explicitly)")]
    NonLoopback(SocketAddr),
    /// The listener could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The TLS identity cannot be served.
    #[error("cannot serve the TLS identity: {0}")]
    Tls(#[source] rustls::Error),
}

/// Configures a [`CodexManagerDouble`] before it starts.
pub struct CodexManagerDoubleBuilder {
    addr: SocketAddr,
    allow_non_loopback: bool,
    bearer: Option<String>,
    record: bool,
    default_turn: Option<TurnScript>,
    on_message: Option<MessageHook>,
    check_identity: bool,
    tls: Option<ServerIdentity>,
}

impl fmt::Debug for CodexManagerDoubleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodexManagerDoubleBuilder")
            .field("addr", &self.addr)
            .field("allow_non_loopback", &self.allow_non_loopback)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("record", &self.record)
            .field("default_turn", &self.default_turn)
            .field("on_message", &self.on_message.as_ref().map(|_| ".."))
            .field("check_identity", &self.check_identity)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Default for CodexManagerDoubleBuilder {
    fn default() -> Self {
        CodexManagerDoubleBuilder {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            allow_non_loopback: false,
            bearer: None,
            record: true,
            default_turn: None,
            on_message: None,
            check_identity: false,
            tls: None,
        }
    }
}

impl CodexManagerDoubleBuilder {
    /// Listens on `addr` (default `127.0.0.1:0`, a free port). Non-loopback addresses are refused
    /// unless [`allow_non_loopback`](Self::allow_non_loopback) is set.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Allows binding a non-loopback address.
    pub fn allow_non_loopback(mut self, allow: bool) -> Self {
        self.allow_non_loopback = allow;
        self
    }

    /// Requires `Authorization: Bearer <token>` on every `/api` request and on the websocket
    /// upgrade; anything else gets 401.
    pub fn require_bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// Records requests ([`received`](CodexManagerDouble::received),
    /// [`responses_for`](CodexManagerDouble::responses_for), websocket texts). On by default; turn
    /// it off for long benchmarks so memory stays flat.
    pub fn record_requests(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// The script every turn plays unless one was queued for its thread with
    /// [`script_turn`](CodexManagerDouble::script_turn) or the
    /// [`on_message`](Self::on_message) hook chose one.
    pub fn default_turn(mut self, script: TurnScript) -> Self {
        self.default_turn = Some(script);
        self
    }

    /// Chooses a turn's script from the message that started it (`None`: fall back to the default).
    ///
    /// ```
    /// use serde_json::json;
    /// use skillbridge_doubles::CodexManagerDouble;
    /// use skillbridge_doubles::codex_manager::TurnScript;
    ///
    /// let builder = CodexManagerDouble::builder().on_message(|message| {
    ///     message.text.contains("shout").then(|| {
    ///         TurnScript::new().tool_call("uppercase", json!({"text": message.text})).final_message("done")
    ///     })
    /// });
    /// # drop(builder);
    /// ```
    pub fn on_message(mut self, hook: impl Fn(&IncomingMessage) -> Option<TurnScript> + Send + Sync + 'static) -> Self {
        self.on_message = Some(Arc::new(hook));
        self
    }

    /// Checks that every answer the double accepts belongs to the call pending under its request id.
    ///
    /// The answer body does not name its call, so the call id travels through the skill: every tool call
    /// the double issues ([`inject_tool_call`](CodexManagerDouble::inject_tool_call), scripted turns,
    /// bursts) carries its call id in its arguments, under the key [`CALL_ID_ARGUMENT`] (`"call_id"`,
    /// merged into object arguments, overwriting a `call_id` already there; `null` arguments become
    /// `{"call_id": ..}`; any other JSON is left alone and its answer not checked). An accepted answer
    /// whose text ([`answer_text`], or the whole body as JSON when that is empty) does not contain that
    /// call id as a whole word (`call_1` is not found in `call_12`) is recorded in
    /// [`misdelivered`](CodexManagerDouble::misdelivered) and still answered 200, as the real server
    /// would. So the skill under test must echo its arguments (or at least `call_id`) in every answer,
    /// failures included; then `assert!(double.misdelivered().is_empty())` proves no answer went to the
    /// wrong call, e.g. to a new call holding an old call's request id after a restart. The call ids an
    /// accepted answer contains are noted too (a few dozen bytes per call), so that a result delivered
    /// twice shows in [`answered_twice`](CodexManagerDouble::answered_twice).
    ///
    /// ```
    /// use serde_json::json;
    /// use skillbridge_doubles::CodexManagerDouble;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let double = CodexManagerDouble::builder().check_answer_identity(true).start().await?;
    /// let thread = double.create_session(vec![]);
    /// double.inject_tool_call(&thread, "echo", json!({"text": "hi"}));
    /// let row = &double.pending(&thread)[0];
    /// assert_eq!(row["arguments"], json!({"text": "hi", "call_id": row["callId"]}));
    /// double.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn check_answer_identity(mut self, check: bool) -> Self {
        self.check_identity = check;
        self
    }

    /// Serves HTTPS and `wss://` with this identity instead of plain HTTP (see [`crate::tls::TestCa`]); the
    /// URLs the double gives are then `https://` and `wss://`.
    pub fn tls(mut self, identity: ServerIdentity) -> Self {
        self.tls = Some(identity);
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(self) -> Result<CodexManagerDouble, DoubleError> {
        let requested = self.addr;
        if !requested.ip().is_loopback() && !self.allow_non_loopback {
            return Err(DoubleError::NonLoopback(requested));
        }
        let acceptor = self
            .tls
            .as_ref()
            .map(ServerIdentity::acceptor)
            .transpose()
            .map_err(DoubleError::Tls)?;
        let listener = TcpListener::bind(requested).await.map_err(|source| DoubleError::Bind {
            addr: requested,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| DoubleError::Bind {
            addr: requested,
            source,
        })?;
        let config = Config {
            bearer: self.bearer,
            record: self.record,
            default_turn: self.default_turn,
            on_message: self.on_message,
            check_identity: self.check_identity,
        };
        let shutdown = CancellationToken::new();
        let state = Arc::new(State::new(config, shutdown.clone()));
        let app = control::router()
            .merge(rest::router(Arc::clone(&state)))
            .with_state(Arc::clone(&state));
        let stop = shutdown.clone();
        let tls = acceptor.is_some();
        let listener = KillableListener::new(listener, Arc::clone(&state.connections), acceptor);
        let service = app.into_make_service_with_connect_info::<ConnectionId>();
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, service)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(%err, "codex-manager double stopped serving");
            }
        });
        let server = Server {
            addr,
            tls,
            shutdown,
            task: Mutex::new(Some(task)),
        };
        Ok(CodexManagerDouble {
            state,
            server: Arc::new(server),
        })
    }
}

/// Stops the server when the last handle goes away.
struct Server {
    addr: SocketAddr,
    /// Serving HTTPS rather than plain HTTP.
    tls: bool,
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A running codex-manager double. Cheap to clone (every clone controls the same server); the
/// server stops on [`shutdown`](Self::shutdown) or when the last clone is dropped.
#[derive(Clone)]
pub struct CodexManagerDouble {
    state: Arc<State>,
    server: Arc<Server>,
}

impl fmt::Debug for CodexManagerDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodexManagerDouble")
            .field("addr", &self.server.addr)
            .field("requires_bearer", &self.state.config.bearer.is_some())
            .field("sockets", &self.socket_count())
            .finish()
    }
}

/// Publishes an envelope `{type, threadId, payload}`.
fn emit(state: &State, thread_id: Option<&str>, event_type: &str, payload: &Value) {
    state.publish_text(thread_id, fixtures::envelope_text(event_type, thread_id, payload));
}

impl CodexManagerDouble {
    /// A builder (loopback, free port, no auth, recording on).
    pub fn builder() -> CodexManagerDoubleBuilder {
        CodexManagerDoubleBuilder::default()
    }

    /// Starts a double on `127.0.0.1` with a free port and default settings.
    pub async fn start() -> Result<CodexManagerDouble, DoubleError> {
        Self::builder().start().await
    }

    /// `http://127.0.0.1:PORT`, `https://` with TLS (routes are under `/api`).
    pub fn base_url(&self) -> String {
        let scheme = if self.server.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.server.addr)
    }

    /// `ws://127.0.0.1:PORT/api/stream`, `wss://` with TLS.
    pub fn ws_url(&self) -> String {
        let scheme = if self.server.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/api/stream", self.server.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Creates a session directly (no HTTP, no validation) and returns its id, which is also its
    /// thread id.
    pub fn create_session(&self, tools: Vec<Value>) -> String {
        self.state
            .create_session(CreateSession {
                tools,
                ..CreateSession::default()
            })
            .0
    }

    /// Issues a tool call on a thread, as app-server would: adds the pending row, then emits
    /// `app_server.request.item.tool.call` (`payload.requestId` a JSON number; the first call is
    /// `0`) and `tool_call_requested`. Returns the request id in string form. The thread need not
    /// be a known session; the turn is the thread's turn in progress, else a fresh id.
    pub fn inject_tool_call(&self, thread_id: &str, tool: &str, arguments: Value) -> String {
        self.inject_call(thread_id, tool, arguments).request_id
    }

    /// [`inject_tool_call`](Self::inject_tool_call), returning the call id too.
    pub fn inject_call(&self, thread_id: &str, tool: &str, arguments: Value) -> IssuedCall {
        self.state.inject_tool_call(thread_id, None, tool, &arguments, None)
    }

    /// Restarts the server the way codex-manager restarts, keeping its sessions (it re-attaches their
    /// threads):
    ///
    /// - every TCP connection is cut: websockets close without a close handshake (clients reconnect
    ///   and get a new `ready`; events published meanwhile are lost), requests in flight get no
    ///   response, idle keep-alive connections close (a pooled client's next request may fail);
    /// - pending calls are forgotten, and so are answers in flight (never accepted);
    /// - request ids start at 0 again: answering an old call's request id gets 404 `not_found`,
    ///   unless a new call now holds that id, which then takes the answer (the hazard
    ///   [`check_answer_identity`](CodexManagerDoubleBuilder::check_answer_identity) exposes);
    /// - turns in progress end `interrupted`, without an event, and their scripts stop.
    ///
    /// Sessions, their threads, finished turns and transcripts stay; call ids keep counting. Test
    /// settings (failures, delay, pong, queued scripts, recordings) are kept. Over HTTP:
    /// `POST /_double/restart`.
    pub fn restart(&self) -> RestartReport {
        self.state.restart(false, None)
    }

    /// [`restart`](Self::restart), losing every session as well: the session routes then answer 404
    /// `not_found` and the tool-call listing of a lost session is empty, as for a session never created.
    pub fn restart_and_lose_sessions(&self) -> RestartReport {
        self.state.restart(true, None)
    }

    /// Every answer accepted for a call whose id its text lacks, oldest first; always empty unless
    /// [`check_answer_identity`](CodexManagerDoubleBuilder::check_answer_identity) is on.
    pub fn misdelivered(&self) -> Vec<Misdelivery> {
        self.state.misdelivered()
    }

    /// The calls whose id more than one accepted answer contains, by call id; always empty unless
    /// [`check_answer_identity`](CodexManagerDoubleBuilder::check_answer_identity) is on. Each accepted
    /// answer is taken for the call it was accepted for, so a result accepted twice means one of its
    /// answers went to another call (which [`misdelivered`](Self::misdelivered) lists as well).
    pub fn answered_twice(&self) -> Vec<AnsweredTwice> {
        self.state.answered_twice()
    }

    /// Closes every websocket now, without a close handshake, and returns how many there were.
    /// [`socket_count`](Self::socket_count) is zero right after.
    pub fn drop_sockets(&self) -> usize {
        self.state.hub.drop_all()
    }

    /// The next `n` tool-call responses that would succeed get 500 instead; their calls stay
    /// pending. Replaces any count left over.
    pub fn fail_next_responds(&self, n: usize) {
        self.state.fail_next(n);
    }

    /// Every tool-call response that would succeed gets 500 for `window` from now (zero: stop failing);
    /// their calls stay pending. Replaces any window left over; the failures of
    /// [`fail_next_responds`](Self::fail_next_responds) are not used up meanwhile.
    pub fn fail_responds_for(&self, window: Duration) {
        self.state.fail_for(window);
    }

    /// The next `n` session creations that would succeed get 500 instead (no session is created).
    /// Replaces any count left over.
    pub fn fail_next_session_creations(&self, n: usize) {
        self.state.fail_next_creates(n);
    }

    /// Delays every REST response by `delay` (zero: no delay). A tool-call response is delayed
    /// while its call is in flight, so a second response for it meanwhile gets 409.
    pub fn set_response_delay(&self, delay: Duration) {
        self.state.set_delay(delay);
    }

    /// Whether `{"type":"ping"}` gets a pong (default true); off simulates a dead peer.
    pub fn set_pong_enabled(&self, enabled: bool) {
        self.state.set_pong_enabled(enabled);
    }

    /// Emits an envelope `{type, threadId, payload}` (`thread_id` `None`: a broadcast event).
    pub fn emit_event(&self, thread_id: Option<&str>, event_type: &str, payload: Value) {
        emit(&self.state, thread_id, event_type, &payload);
    }

    /// Sends a raw text frame to every socket, whatever its filter (for malformed-frame tests).
    pub fn emit_raw(&self, text: impl Into<String>) {
        self.state.hub.publish_all(Message::Text(text.into().into()));
    }

    /// Sends a binary frame to every socket, whatever its filter (for malformed-frame tests: bytes that are
    /// not UTF-8, say).
    pub fn emit_raw_binary(&self, bytes: impl Into<Vec<u8>>) {
        self.state.hub.publish_all(Message::Binary(bytes.into().into()));
    }

    /// Every `/api` request received so far, oldest first (empty when recording is off).
    pub fn received(&self) -> Vec<RecordedRequest> {
        self.state.received()
    }

    /// Every text frame clients sent on websockets, oldest first.
    pub fn ws_received(&self) -> Vec<String> {
        self.state.ws_received()
    }

    /// Every response body received for a request id, whatever came of it (400, 404, 409, 500
    /// and 200 alike); a body that was not JSON appears as a JSON string.
    pub fn responses_for(&self, request_id: &str) -> Vec<Value> {
        self.state.responses_for(request_id)
    }

    /// The pending-call rows of a thread, oldest first.
    pub fn pending(&self, thread_id: &str) -> Vec<Value> {
        self.state.pending_rows(thread_id)
    }

    /// Every session, sorted by id.
    pub fn sessions(&self) -> Vec<SessionSnapshot> {
        self.state.snapshots()
    }

    /// How many websockets are connected.
    pub fn socket_count(&self) -> usize {
        self.state.hub.count()
    }

    /// How many websockets were opened so far, closed ones included (`wss://` ones, with TLS).
    pub fn sockets_opened(&self) -> u64 {
        self.state.hub.opened()
    }

    /// Waits until exactly `n` websockets are connected; false if `timeout` passed first.
    pub async fn wait_for_sockets(&self, n: usize, timeout: Duration) -> bool {
        self.state.hub.wait_for(n, timeout).await
    }

    /// Waits until the call got a 200 answer; returns the response body, or `None` on timeout. After a
    /// restart a request id means the newest call issued under it.
    pub async fn wait_answered(&self, request_id: &str, timeout: Duration) -> Option<Value> {
        self.state.wait_answers(timeout, || self.state.answer(request_id)).await
    }

    /// Waits until no call is pending (calls of deleted sessions do not count).
    pub async fn wait_all_answered(&self, timeout: Duration) -> bool {
        self.state
            .wait_answers(timeout, || self.state.all_answered().then_some(()))
            .await
            .is_some()
    }

    /// Queues the script for the thread's next turn (one script per turn, in order).
    pub fn script_turn(&self, thread_id: &str, script: TurnScript) {
        self.state.queue_script(thread_id, script);
    }

    /// Issues a burst of tool calls and reports throughput and latency once all are answered (or
    /// the spec's timeout passes). Something must answer them meanwhile.
    pub async fn burst(&self, spec: BurstSpec) -> BurstReport {
        burst::run(&self.state, &spec).await
    }

    /// Closes every socket, stops scripted turns and stops serving, waiting up to a few seconds
    /// for open requests. Other clones stop working too.
    pub async fn shutdown(&self) {
        self.server.shutdown.cancel();
        self.state.hub.drop_all();
        let task = state::lock(&self.server.task).take();
        if let Some(mut task) = task
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}
