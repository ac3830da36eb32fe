//! Where tool calls come from and where their answers go: the port the [`Bridge`](crate::Bridge) drives, and
//! its two implementations, [`CodexManagerUpstream`] (codex-manager's REST API and websocket stream) and
//! [`AppServerUpstream`] (a `codex app-server` child over stdio).
//!
//! The port is written in the bridge's terms and owned here, below the bridge, so that the dependencies point
//! one way: the bridge uses an [`Upstream`], an upstream never uses the bridge.
//!
//! - An upstream [`open`](Upstream::open)s its sessions, then [`run`](Upstream::run)s: it turns its wire
//!   messages into [`ToolCall`]s and hands them to the [`Feed`] (whose [`CallSink`] is the bridge's
//!   dispatcher), along with what it learns about turns ([`TurnTracker`]) and its link ([`BridgeHealth`]).
//! - The dispatcher runs each call once and hands the result back through [`Upstream::answer`], one attempt
//!   at a time; it owns retries. [`AnswerOutcome`] says how an attempt went.
//! - [`Upstream::start_turn`] and [`Upstream::interrupt_turn`] let the bridge run a turn of its own
//!   (`skillbridge send`); [`Upstream::close`] ends the upstream.
//!
//! Every upstream turns its requests into a [`ToolCall`] through [`ToolCall::from_params`], so a call means
//! the same thing whichever way it arrived.

pub mod app_server;
pub mod codex_manager;
pub mod mcp;
mod turns;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use app_server::AppServerUpstream;
pub use codex_manager::CodexManagerUpstream;
pub use mcp::{McpTransport, McpUpstream};
pub use turns::{TurnOutcome, TurnStatus, TurnTracker};

use crate::BoxFuture;
use crate::skill::{Catalog, ToolResult};
use crate::telemetry::{BridgeHealth, CallSource, ServedSession};

/// One tool call, as any upstream delivers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// The upstream's request id in string form (a JSON-RPC number `0` is `"0"`); answers are addressed by it.
    pub request_id: String,
    /// The Codex thread (codex-manager session) the call belongs to.
    pub thread_id: String,
    /// The turn, when the upstream says.
    pub turn_id: Option<String>,
    /// The model's call id; empty when the upstream sent none.
    pub call_id: String,
    /// The tool the model called.
    pub tool: String,
    /// The arguments the model sent (`null` when absent).
    pub arguments: Value,
}

/// The parameters of a tool-call request, as codex-manager's stream signal (`payload.params`), its pending-call
/// rows and `codex app-server`'s `item/tool/call` all carry them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallParams {
    /// `threadId`: required.
    pub thread_id: Option<String>,
    /// `turnId`.
    #[serde(default)]
    pub turn_id: Option<String>,
    /// `callId`: absent or `null` reads as empty.
    #[serde(default)]
    pub call_id: Option<String>,
    /// `namespace`: set for a tool of a namespace (an MCP server's), `null` for plain function tools.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `tool`: required.
    pub tool: Option<String>,
    /// `arguments`: `null` when absent.
    #[serde(default)]
    pub arguments: Value,
}

/// Why a tool-call request cannot become a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToolCall {
    /// The params are not an object of the expected shape.
    #[error("tool call params are malformed: {0}")]
    Malformed(String),
    /// A required field is missing, `null` or empty.
    #[error("tool call without `{0}`")]
    Missing(&'static str),
}

impl ToolCall {
    /// The call of request `request_id` with JSON `params` (see [`ToolCallParams`]).
    ///
    /// ```
    /// use serde_json::json;
    /// use skillbridge::upstream::{InvalidToolCall, ToolCall};
    ///
    /// let params = json!({"threadId": "t", "turnId": "u", "callId": "c", "tool": "echo", "arguments": {"a": 1}});
    /// let call = ToolCall::from_params("0", params).unwrap();
    /// assert_eq!((call.thread_id.as_str(), call.tool.as_str()), ("t", "echo"));
    /// assert_eq!(ToolCall::from_params("1", json!({"threadId": "t"})), Err(InvalidToolCall::Missing("tool")));
    /// ```
    pub fn from_params(request_id: impl Into<String>, params: Value) -> Result<Self, InvalidToolCall> {
        let params = serde_json::from_value(params).map_err(|error| InvalidToolCall::Malformed(error.to_string()))?;
        Self::from_parts(request_id.into(), params)
    }

    /// The call of request `request_id` with `params`, by the same rules as [`from_params`](Self::from_params):
    /// the request id, thread and tool must be non-empty; the call id may be missing.
    pub fn from_parts(request_id: String, params: ToolCallParams) -> Result<Self, InvalidToolCall> {
        let required =
            |value: Option<String>, name| value.filter(|v| !v.is_empty()).ok_or(InvalidToolCall::Missing(name));
        Ok(Self {
            request_id: required(Some(request_id), "requestId")?,
            thread_id: required(params.thread_id, "threadId")?,
            turn_id: params.turn_id,
            call_id: params.call_id.unwrap_or_default(),
            tool: required(params.tool, "tool")?,
            arguments: params.arguments,
        })
    }
}

/// What happened to one attempt at delivering an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// The upstream took the answer.
    Delivered,
    /// Somebody answered first (codex-manager 404/409): done, never retried.
    AlreadyAnswered {
        /// The HTTP status that said so.
        status: u16,
    },
    /// A passing failure (5xx, transport): worth trying again.
    Retry {
        /// What went wrong.
        reason: String,
    },
    /// The upstream refused the answer for good (400, deleted session, closed pipe, a child that is gone).
    Rejected {
        /// What went wrong, with the upstream's body when there is one.
        reason: String,
    },
    /// The call is gone upstream (lost in an upstream restart); the result was not delivered, and never to
    /// another call that took its request id.
    Lost {
        /// What shows it.
        reason: String,
    },
}

impl AnswerOutcome {
    /// A short label for logs and metrics: `delivered`, `already_answered`, `retry`, `rejected`, `lost`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::AlreadyAnswered { .. } => "already_answered",
            Self::Retry { .. } => "retry",
            Self::Rejected { .. } => "rejected",
            Self::Lost { .. } => "lost",
        }
    }
}

/// What a [`CallSink`] did with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Taken: it will run and be answered.
    Accepted,
    /// Run before, but its answer was not delivered: the same result is being sent again.
    Redelivering,
    /// Already taken; ignored.
    Duplicate,
    /// Shutting down: no new calls are taken, the call stays pending upstream.
    Closed,
}

/// Where an upstream hands its calls: the bridge's dispatcher, or a test's own sink.
pub trait CallSink: Send + Sync + 'static {
    /// Takes a call without waiting for it to run; the answer goes back later through [`Upstream::answer`].
    fn submit(&self, call: ToolCall, source: CallSource) -> Submitted;

    /// A turn was interrupted: cancel its running calls (they are answered `success:false`).
    fn cancel_turn(&self, turn_id: &str);

    /// Resolves when the sink would rather take more calls: an upstream that can leave calls waiting on its side (a
    /// stream it can stop reading) awaits this before submitting, so a burst waits upstream rather than in memory.
    /// It resolves in bounded time whatever the sink's state; by default at once.
    fn room(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Resolves when few calls wait to run: an upstream puts off work it does only in case calls were missed (a
    /// periodic listing of pending calls) while the sink is behind, since any call it found would wait behind the
    /// backlog anyway. It may never resolve under a lasting backlog, so callers bound the wait; by default at once.
    fn caught_up(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// What an upstream reports into while it runs: its calls, its turns, its link and sessions. Cheap to clone.
#[derive(Clone)]
pub struct Feed {
    calls: Arc<dyn CallSink>,
    health: Arc<BridgeHealth>,
    turns: Arc<TurnTracker>,
    connects: watch::Sender<u64>,
}

impl Feed {
    /// A feed handing calls to `calls`, readiness to `health` and turn events to `turns`.
    pub fn new(calls: Arc<dyn CallSink>, health: Arc<BridgeHealth>, turns: Arc<TurnTracker>) -> Self {
        Self {
            calls,
            health,
            turns,
            connects: watch::channel(0).0,
        }
    }

    /// Hands a call to the sink.
    pub fn submit(&self, call: ToolCall, source: CallSource) -> Submitted {
        self.calls.submit(call, source)
    }

    /// Resolves when the sink would rather take more calls (see [`CallSink::room`]).
    pub async fn room(&self) {
        self.calls.room().await;
    }

    /// Resolves when few calls wait to run (see [`CallSink::caught_up`]).
    pub async fn caught_up(&self) {
        self.calls.caught_up().await;
    }

    /// Cancels the running calls of an interrupted turn.
    pub fn cancel_turn(&self, turn_id: &str) {
        self.calls.cancel_turn(turn_id);
    }

    /// Readiness: attach the link, add or replace sessions.
    pub fn health(&self) -> &BridgeHealth {
        &self.health
    }

    /// Where turn events go.
    pub fn turns(&self) -> &TurnTracker {
        &self.turns
    }

    /// Says that the upstream connection is (again) established: wakes those who wait for [`connects`](Self::connects).
    pub fn link_up(&self) {
        self.connects.send_modify(|count| *count += 1);
    }

    /// How many times the link came up so far, and a receiver that sees the next time.
    pub fn connects(&self) -> watch::Receiver<u64> {
        self.connects.subscribe()
    }
}

/// Why an upstream could not do what the bridge asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// codex-manager could not be reached at all (refused, unresolvable, timed out).
    #[error("cannot reach codex-manager at {url}: {}", source.connection_failure())]
    Unreachable {
        /// The base URL tried.
        url: String,
        /// The failure.
        source: crate::manager::ManagerError,
    },
    /// codex-manager answered an operation with an error.
    #[error("codex-manager refused to {action}: {source}")]
    Refused {
        /// What was asked, e.g. `create a session`.
        action: &'static str,
        /// Its answer.
        source: crate::manager::ManagerError,
    },
    /// A session to attach to does not exist or cannot be read.
    #[error("cannot attach to session {id}: {reason}")]
    Attach {
        /// The session.
        id: String,
        /// Why.
        reason: String,
    },
    /// The `codex app-server` child could not be started, failed a request, or exited.
    #[error(transparent)]
    AppServer(#[from] app_server::AppServerError),
    /// The upstream is set up so that it has nothing to serve, or asked for something it cannot do.
    #[error("{0}")]
    Invalid(String),
}

impl UpstreamError {
    /// `true` when trying again later may succeed: codex-manager could not be reached, or answered with a server
    /// error (a proxy in front of it says 502/503 while it starts). Refusals such as a bad token or an unknown
    /// session are not transient, and neither is a failed TLS handshake (a certificate the client does not trust,
    /// or one for another name, stays so).
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::Unreachable { source, .. } => source.tls_failure().is_none(),
            UpstreamError::Refused { source, .. } => source.status().is_some_and(|status| status.is_server_error()),
            _ => false,
        }
    }
}

/// An upstream of tool calls: codex-manager, `codex app-server`, or one of your own.
///
/// The bridge calls [`open`](Self::open) once, then [`run`](Self::run) until it shuts down, then
/// [`close`](Self::close). [`answer`](Self::answer) may be called from any task at any time after `open`.
pub trait Upstream: Send + Sync + 'static {
    /// A short name for logs, metrics and [`ServedSession::upstream`] (`codex-manager`, `app-server`).
    fn name(&self) -> &'static str;

    /// Connects and opens the sessions to serve; sessions it creates get `catalog`'s skills as dynamic tools. A
    /// failure leaves nothing behind. The default serves no sessions of its own.
    fn open<'a>(&'a self, catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, UpstreamError>> {
        let _ = catalog;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The tools offered in session `thread`, when this upstream chose them (a [`Toolset`](crate::skill::Toolset));
    /// a call to any other tool is answered "not offered in this session" and never runs. `None` (the default)
    /// when every skill may be called there, as in a session attached to rather than created.
    fn offered(&self, thread: &str) -> Option<crate::skill::Offered> {
        let _ = thread;
        None
    }

    /// Delivers calls and turn events into `feed` until `stop` fires (`Ok`). An upstream that ends by itself
    /// (its child process exited) returns why.
    fn run<'a>(&'a self, feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>>;

    /// One attempt at delivering `result` as the answer to `call`.
    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome>;

    /// Sends a user message to a served session, starting a turn; returns the turn id. The default refuses:
    /// an upstream whose client drives the conversation (MCP) cannot start turns.
    fn start_turn<'a>(&'a self, session: &'a str, text: &'a str) -> BoxFuture<'a, Result<String, UpstreamError>> {
        let _ = (session, text);
        Box::pin(async {
            Err(UpstreamError::Invalid(format!(
                "the {} upstream cannot start turns",
                self.name()
            )))
        })
    }

    /// Asks for a running turn to be interrupted; it then completes as interrupted. The default refuses, as
    /// [`start_turn`](Self::start_turn) does.
    fn interrupt_turn<'a>(&'a self, session: &'a str, turn: &'a str) -> BoxFuture<'a, Result<(), UpstreamError>> {
        let _ = (session, turn);
        Box::pin(async {
            Err(UpstreamError::Invalid(format!(
                "the {} upstream cannot interrupt turns",
                self.name()
            )))
        })
    }

    /// Ends the upstream: terminates child processes, deletes (or archives) the sessions it created when it was
    /// told to. Returns the ids of the sessions deleted or archived. The default has nothing to end.
    fn close(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }

    /// Called once, before [`open`](Self::open), when the bridge belongs to a group of bridges: says whether
    /// the group's bridges can serve each other's sessions here (codex-manager's, yes; a `codex app-server`
    /// child's threads are its own). An upstream in a group may create no session of its own, and serve the
    /// group's. The default: no.
    fn join_group(&self) -> bool {
        false
    }

    /// The sessions created here now, for the other bridges of a group to serve too. The default: none.
    fn shared_sessions(&self) -> Vec<SharedSession> {
        Vec::new()
    }

    /// Where the progress reports of `call`'s skill go, when its client asked for them (an MCP client that sent a
    /// progress token). The default: nowhere.
    fn progress_sink(&self, call: &ToolCall) -> Option<crate::skill::ProgressSink> {
        let _ = call;
        None
    }

    /// Serves `sessions` (created by other bridges of the group) as well, those not served yet; returns the ones
    /// newly served. The default serves none.
    fn adopt(&self, sessions: &[SharedSession]) -> Vec<ServedSession> {
        let _ = sessions;
        Vec::new()
    }
}

/// A session one bridge of a group created, as the others serve it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedSession {
    /// The session's thread id.
    pub thread_id: String,
    /// The tools it offers, when its toolset left some skills out (`None`: every skill).
    pub tools: Option<Vec<String>>,
}

/// A shared upstream is an upstream: keep a clone to look at it while the bridge runs it.
impl<U: Upstream> Upstream for Arc<U> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn open<'a>(&'a self, catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, UpstreamError>> {
        (**self).open(catalog)
    }

    fn offered(&self, thread: &str) -> Option<crate::skill::Offered> {
        (**self).offered(thread)
    }

    fn run<'a>(&'a self, feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>> {
        (**self).run(feed, stop)
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        (**self).answer(call, result)
    }

    fn start_turn<'a>(&'a self, session: &'a str, text: &'a str) -> BoxFuture<'a, Result<String, UpstreamError>> {
        (**self).start_turn(session, text)
    }

    fn interrupt_turn<'a>(&'a self, session: &'a str, turn: &'a str) -> BoxFuture<'a, Result<(), UpstreamError>> {
        (**self).interrupt_turn(session, turn)
    }

    fn close(&self) -> BoxFuture<'_, Vec<String>> {
        (**self).close()
    }

    fn join_group(&self) -> bool {
        (**self).join_group()
    }

    fn shared_sessions(&self) -> Vec<SharedSession> {
        (**self).shared_sessions()
    }

    fn adopt(&self, sessions: &[SharedSession]) -> Vec<ServedSession> {
        (**self).adopt(sessions)
    }

    fn progress_sink(&self, call: &ToolCall) -> Option<crate::skill::ProgressSink> {
        (**self).progress_sink(call)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_same_rules_for_every_field() {
        let call = ToolCall::from_params("7", json!({"threadId": "t", "tool": "echo", "callId": null})).unwrap();
        assert_eq!((call.call_id.as_str(), call.turn_id.as_deref()), ("", None));
        assert_eq!(call.arguments, Value::Null);
        assert_eq!(
            ToolCall::from_params("", json!({"threadId": "t", "tool": "echo"})),
            Err(InvalidToolCall::Missing("requestId"))
        );
        assert_eq!(
            ToolCall::from_params("1", json!({"threadId": "", "tool": "echo"})),
            Err(InvalidToolCall::Missing("threadId"))
        );
        assert!(matches!(
            ToolCall::from_params("1", json!({"threadId": 5, "tool": "echo"})),
            Err(InvalidToolCall::Malformed(_))
        ));
        assert!(matches!(
            ToolCall::from_params("1", json!([1])),
            Err(InvalidToolCall::Malformed(_))
        ));
    }
}
