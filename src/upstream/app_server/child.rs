//! [`AppServer`]: one running `codex app-server` child, initialized, with its connection: threads and turns are
//! started through it, and [`AppServer::start_event_loop`] hands what the child sends to a [`Feed`].
//! [`AppServerUpstream`](super::AppServerUpstream) runs one of these at a time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::AppServerError;
use super::answers::PendingAnswers;
use super::client::{AppServerClient, DEFAULT_REQUEST_TIMEOUT};
use super::events::AppServerEvents;
use super::process::{AppServerCommand, AppServerProcess, ExitReport, ExitWatch};
use super::protocol::{InitializeResponse, ThreadStartParams};
use super::rpc::{Incoming, RpcConnection, RpcError};
use crate::upstream::Feed;
use crate::util::lock;

/// How long to wait for the exit report after the connection closed under us.
const EXIT_REPORT_WAIT: Duration = Duration::from_secs(5);

/// One running `codex app-server`, initialized, with its connection.
///
/// Dropping it kills the child; [`shutdown`](Self::shutdown) ends it gracefully.
pub struct AppServer {
    process: AppServerProcess,
    client: AppServerClient,
    answers: Arc<PendingAnswers>,
    incoming: Mutex<Option<mpsc::UnboundedReceiver<Incoming>>>,
    initialize_result: Option<InitializeResponse>,
}

impl std::fmt::Debug for AppServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServer")
            .field("pid", &self.process.pid())
            .field("pending_tool_calls", &self.answers.len())
            .finish()
    }
}

impl AppServer {
    /// Spawns the child and initializes it, each call bounded by 30 s.
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
            answers: Arc::new(PendingAnswers::new(rpc)),
            incoming: Mutex::new(Some(incoming)),
            initialize_result: None,
        };
        let initialized = app.client.initialize(env!("CARGO_PKG_VERSION")).await;
        let initialized = app.explain(initialized).await?;
        tracing::info!(user_agent = %initialized.user_agent, "codex app-server initialized");
        app.initialize_result = Some(initialized);
        Ok(app)
    }

    /// The server's `initialize` result (`userAgent`, `codexHome`, `platformOs`, ..).
    pub fn initialize_result(&self) -> Option<&InitializeResponse> {
        self.initialize_result.as_ref()
    }

    /// The tool calls this child waits on, and how they are answered.
    pub fn answers(&self) -> &Arc<PendingAnswers> {
        &self.answers
    }

    /// The typed calls, for anything [`AppServer`] does not wrap.
    pub fn client(&self) -> &AppServerClient {
        &self.client
    }

    /// The child process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Starts handling what the server sends: tool calls and turn events go to `feed`, other requests are refused.
    /// Requests arriving before this are queued, not lost. Runs until the connection closes.
    pub fn start_event_loop(&self, feed: Feed) -> Result<(), AppServerError> {
        let incoming = lock(&self.incoming).take().ok_or(AppServerError::EventLoopStarted)?;
        let events = AppServerEvents::new(self.client.rpc().clone(), self.answers.clone(), feed);
        tokio::spawn(events.run(incoming));
        Ok(())
    }

    /// Starts a thread; returns its id.
    pub async fn start_thread(&self, options: &ThreadStartParams) -> Result<String, AppServerError> {
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

    /// Waits until the child exits, for whatever reason, and reports how.
    pub async fn exited(&self) -> ExitReport {
        self.process.exited().await
    }

    /// A handle to wait for the child's exit from another task.
    pub fn exit_watch(&self) -> ExitWatch {
        self.process.exit_watch()
    }

    /// Archives a thread: Codex keeps its history (in CODEX_HOME) but lists it with the archived ones only.
    pub async fn archive_thread(&self, thread_id: &str) -> Result<(), AppServerError> {
        let archived = self.client.archive_thread(thread_id).await;
        self.explain(archived).await
    }

    /// Ends the child: closes its stdin, waits up to `grace` for it to exit, then kills it.
    pub async fn shutdown(self, grace: Duration) -> ExitReport {
        // Before the input closes: the child may exit before `process.shutdown` runs.
        self.process.request_stop();
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
