//! The `codex app-server` upstream: skillbridge spawns Codex itself and serves skills over its stdio
//! JSON-RPC (PROTOCOL.md §2).
//!
//! [`AppServer`] owns one child process and its connection: [`AppServer::start`] spawns and initializes it,
//! [`AppServer::upstream`] is the [`Upstream`](crate::upstream::Upstream) the dispatcher answers through,
//! [`AppServer::start_event_loop`] feeds tool calls to a [`ToolCallSink`] (the dispatcher), and threads and
//! turns are started through it. The pieces are usable alone: [`rpc`] (the JSON-RPC framing over any
//! reader/writer), [`process`] (the child), [`session`] (typed calls), [`refusals`] (answers to requests we
//! do not handle).
//!
//! ```no_run
//! # async fn demo(sink: std::sync::Arc<dyn skillbridge::upstream::app_server::ToolCallSink>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use skillbridge::upstream::app_server::{AppServer, AppServerCommand, ThreadOptions};
//!
//! let app = AppServer::start(AppServerCommand::new("codex")).await?;
//! app.start_event_loop(sink)?; // e.g. the dispatcher built with `app.upstream()`
//! let thread = app.start_thread(&ThreadOptions::new(std::env::current_dir()?)).await?;
//! let turn = app.start_turn(&thread, "Say hello").await?;
//! let outcome = app.wait_turn(&turn, Duration::from_secs(300)).await?;
//! println!("{}", outcome.final_reply.unwrap_or_default());
//! app.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

mod error;
mod events;
pub mod process;
pub mod refusals;
pub mod rpc;
pub mod session;
mod supervisor;
mod turns;
mod upstream;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

pub use error::AppServerError;
pub use events::{AppServerEvents, TOOL_CALL_METHOD, ToolCallSink};
pub use process::{AppServerCommand, AppServerProcess, ExitReport, ExitWatch, SpawnError};
pub use rpc::{Incoming, RpcConnection, RpcError};
pub use session::{AppServerClient, ApprovalPolicy, DEFAULT_REQUEST_TIMEOUT, SandboxMode, ThreadOptions};
pub use supervisor::{AppServerSupervisor, ChildState, CurrentChild, RestartPolicy, SupervisorConfig};
pub use turns::{TurnOutcome, TurnStatus, TurnTracker};
pub use upstream::AppServerUpstream;

/// How long to wait for the exit report after the connection closed under us.
const EXIT_REPORT_WAIT: Duration = Duration::from_secs(5);

/// One running `codex app-server`, initialized, with its connection.
///
/// Dropping it kills the child; [`shutdown`](Self::shutdown) ends it gracefully.
pub struct AppServer {
    process: AppServerProcess,
    client: AppServerClient,
    upstream: Arc<AppServerUpstream>,
    turns: Arc<TurnTracker>,
    incoming: Mutex<Option<mpsc::UnboundedReceiver<Incoming>>>,
    initialize_result: Value,
}

impl std::fmt::Debug for AppServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServer")
            .field("pid", &self.process.pid())
            .field("pending_tool_calls", &self.upstream.pending_count())
            .finish()
    }
}

impl AppServer {
    /// Spawns the child and initializes it, each call bounded by [`DEFAULT_REQUEST_TIMEOUT`].
    pub async fn start(command: AppServerCommand) -> Result<Self, AppServerError> {
        Self::start_with_timeout(command, DEFAULT_REQUEST_TIMEOUT).await
    }

    /// Like [`start`](Self::start), with a per-call timeout.
    pub async fn start_with_timeout(command: AppServerCommand, timeout: Duration) -> Result<Self, AppServerError> {
        let mut process = command.spawn()?;
        let (stdout, stdin) = process.take_stdio().expect("a fresh process has its pipes");
        let (rpc, incoming) = RpcConnection::new(stdout, stdin);
        let client = AppServerClient::new(rpc.clone()).with_timeout(timeout);
        let mut app = Self {
            process,
            client,
            upstream: Arc::new(AppServerUpstream::new(rpc)),
            turns: Arc::new(TurnTracker::new()),
            incoming: Mutex::new(Some(incoming)),
            initialize_result: Value::Null,
        };
        let initialized = app.client.initialize(env!("CARGO_PKG_VERSION")).await;
        app.initialize_result = app.explain(initialized).await?;
        let user_agent = app.initialize_result.get("userAgent").and_then(Value::as_str);
        tracing::info!(
            user_agent = user_agent.unwrap_or_default(),
            "codex app-server initialized"
        );
        Ok(app)
    }

    /// The server's `initialize` result (`userAgent`, `codexHome`, `platformOs`, ..).
    pub fn initialize_result(&self) -> &Value {
        &self.initialize_result
    }

    /// Where the dispatcher delivers answers.
    pub fn upstream(&self) -> Arc<AppServerUpstream> {
        self.upstream.clone()
    }

    /// The typed calls, for anything [`AppServer`] does not wrap.
    pub fn client(&self) -> &AppServerClient {
        &self.client
    }

    /// The child process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Starts handling what the server sends: tool calls go to `sink`, other requests are refused, turns are
    /// tracked. Requests arriving before this are queued, not lost. Runs until the connection closes.
    pub fn start_event_loop(&self, sink: Arc<dyn ToolCallSink>) -> Result<(), AppServerError> {
        let incoming = self
            .incoming
            .lock()
            .expect("incoming lock")
            .take()
            .ok_or(AppServerError::EventLoopStarted)?;
        let events = AppServerEvents::new(
            self.client.rpc().clone(),
            self.upstream.clone(),
            self.turns.clone(),
            sink,
        );
        tokio::spawn(events.run(incoming));
        Ok(())
    }

    /// Starts a thread; returns its id.
    pub async fn start_thread(&self, options: &ThreadOptions) -> Result<String, AppServerError> {
        let started = self.client.start_thread(options).await;
        self.explain(started).await
    }

    /// Starts a turn with one text input; returns the turn id.
    pub async fn start_turn(&self, thread_id: &str, text: &str) -> Result<String, AppServerError> {
        let started = self.client.start_turn(thread_id, text).await;
        self.explain(started).await
    }

    /// Asks Codex to interrupt a turn (it then completes as `interrupted`, which cancels its running calls).
    pub async fn interrupt_turn(&self, thread_id: &str, turn_id: &str) -> Result<(), AppServerError> {
        let interrupted = self.client.interrupt_turn(thread_id, turn_id).await;
        self.explain(interrupted).await
    }

    /// Waits for a turn to complete (needs the event loop running). Fails early when the child exits.
    pub async fn wait_turn(&self, turn_id: &str, timeout: Duration) -> Result<TurnOutcome, AppServerError> {
        tokio::select! {
            outcome = self.turns.wait(turn_id, timeout) => outcome.ok_or_else(|| AppServerError::TurnTimeout {
                turn_id: turn_id.to_owned(),
                after: timeout,
            }),
            report = self.process.exited() => Err(AppServerError::Exited(report)),
        }
    }

    /// Waits until the child exits, for whatever reason, and reports how.
    pub async fn exited(&self) -> ExitReport {
        self.process.exited().await
    }

    /// A handle to wait for the child's exit from another task.
    pub fn exit_watch(&self) -> ExitWatch {
        self.process.exit_watch()
    }

    /// Ends the child: closes its stdin, waits up to `grace` for it to exit, then kills it.
    pub async fn shutdown(self, grace: Duration) -> ExitReport {
        self.client.rpc().close().await;
        self.process.shutdown(grace).await
    }

    /// Turns "the connection closed" into the child's exit report, which says why.
    async fn explain<T>(&self, result: Result<T, AppServerError>) -> Result<T, AppServerError> {
        match result {
            Err(AppServerError::Rpc(error @ (RpcError::Closed | RpcError::Write(_)))) => {
                match tokio::time::timeout(EXIT_REPORT_WAIT, self.process.exited()).await {
                    Ok(report) => Err(AppServerError::Exited(report)),
                    Err(_) => Err(AppServerError::Rpc(error)),
                }
            }
            other => other,
        }
    }
}
