//! [`AppServerUpstream`]: keeps a `codex app-server` child serving for as long as a bridge runs. It spawns and
//! initializes the child, starts its threads with the skills as dynamic tools, hands its tool calls and turn
//! events to the [`Feed`], reports the child's exit or restarts it with backoff ([`RestartPolicy`]), and
//! terminates it on close, archiving its threads first when told to.
//!
//! The dispatcher answers through one [`Upstream`] for the bridge's lifetime, while a restarted child is a new
//! process with new threads and request ids that start again at 0. [`CurrentChild`] bridges that: it forwards each
//! answer to the child that is current, and only when the call's thread belongs to that child; an answer for a
//! call of a child that is gone comes back [`AnswerOutcome::Rejected`] (the call died with its process).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{RwLock, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::AppServerError;
use super::answers::PendingAnswers;
use super::child::AppServer;
use super::process::{AppServerCommand, ExitReport};
use super::protocol::{DynamicTool, ThreadStartParams};
use super::rpc::RpcError;
use crate::BoxFuture;
use crate::skill::{Catalog, Offered, ToolResult, Toolset};
use crate::telemetry::{LinkStatus, ServedSession};
use crate::upstream::{AnswerOutcome, Feed, ToolCall, Upstream, UpstreamError};
use crate::util::{Backoff, lock};

/// How the upstream is named in sessions, logs and metrics.
const NAME: &str = "app-server";

/// How long a child that failed to start its threads gets to exit before it is killed.
const ABANDONED_CHILD_GRACE: Duration = Duration::from_secs(2);

/// How long a child gets to exit after its input is closed, on close, before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long archiving one thread may take on close.
const ARCHIVE_WAIT: Duration = Duration::from_secs(5);

/// When and how fast a dead child is restarted: exponential backoff from `initial_backoff` up to
/// `max_backoff`, back to `initial_backoff` once a child has run for `healthy_after`.
///
/// ```
/// use std::time::Duration;
/// use skillbridge::upstream::app_server::RestartPolicy;
///
/// let policy = RestartPolicy::default();
/// assert_eq!(policy.backoff(1), Duration::from_millis(200));
/// assert_eq!(policy.backoff(2), Duration::from_millis(400));
/// assert_eq!(policy.backoff(20), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// The wait before the first restart.
    pub initial_backoff: Duration,
    /// The longest wait between restarts.
    pub max_backoff: Duration,
    /// A child that ran this long was healthy: the next restart waits `initial_backoff` again.
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    /// 200 ms, doubling up to 30 s, reset after a healthy minute.
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// The wait before restart attempt number `failures` (1 for the first) since the last healthy child.
    pub fn backoff(&self, failures: u32) -> Duration {
        Backoff {
            initial: self.initial_backoff,
            max: self.max_backoff,
        }
        .delay(failures)
    }
}

/// The child being served, as [`AppServerUpstream::state`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildState {
    /// 1 for the first child, one more for each restart; 0 before the bridge starts.
    pub generation: u64,
    /// The child's process id.
    pub pid: Option<u32>,
    /// The threads started in it.
    pub threads: Vec<String>,
    /// `true` while it is initialized, has its threads and its calls are being handled.
    pub up: bool,
    /// How the previous child (or this one, once it is down) ended.
    pub last_exit: Option<ExitReport>,
}

/// Serves tool calls of threads in a `codex app-server` child it spawns; cheap to clone, clones share the child.
///
/// ```no_run
/// use skillbridge::upstream::AppServerUpstream;
/// use skillbridge::upstream::app_server::{AppServerCommand, RestartPolicy, ThreadStartParams};
///
/// let upstream = AppServerUpstream::new(AppServerCommand::new("codex"))
///     .threads(2)
///     .thread_options(ThreadStartParams::new("/work/project"))
///     .restart(RestartPolicy::default());
/// ```
#[derive(Clone)]
pub struct AppServerUpstream {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    dynamic_tools: Mutex<Vec<DynamicTool>>,
    /// The tools the threads are offered, when the toolset leaves some skills out.
    offered: Mutex<Option<Offered>>,
    child: RwLock<Option<AppServer>>,
    answers: CurrentChild,
    link: Arc<ChildLink>,
    state: watch::Sender<ChildState>,
    closed: CancellationToken,
}

#[derive(Debug, Clone)]
struct Config {
    command: AppServerCommand,
    threads: usize,
    thread_options: ThreadStartParams,
    restart: Option<RestartPolicy>,
    toolset: Toolset,
    archive_threads: bool,
}

impl std::fmt::Debug for AppServerUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServerUpstream")
            .field("program", &self.shared.config.command.program())
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl AppServerUpstream {
    /// Runs `command` (`codex app-server`) when the bridge starts, with one thread working in the current
    /// directory, and no restart: the child's exit ends the bridge.
    pub fn new(command: AppServerCommand) -> Self {
        let cwd = std::env::current_dir().unwrap_or_default();
        Self::with_config(Config {
            command,
            threads: 1,
            thread_options: ThreadStartParams::new(cwd),
            restart: None,
            toolset: Toolset::all(),
            archive_threads: false,
        })
    }

    fn with_config(config: Config) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                dynamic_tools: Mutex::new(Vec::new()),
                offered: Mutex::new(None),
                child: RwLock::new(None),
                answers: CurrentChild::default(),
                link: Arc::new(ChildLink::default()),
                state: watch::channel(ChildState::default()).0,
                closed: CancellationToken::new(),
            }),
        }
    }

    fn configure(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.shared.config.clone();
        change(&mut config);
        Self::with_config(config)
    }

    /// Starts this many threads in each child (default 1).
    pub fn threads(self, threads: usize) -> Self {
        self.configure(|config| config.threads = threads)
    }

    /// The `thread/start` parameters (cwd, model, approval policy, sandbox); the dynamic tools are the catalog's.
    pub fn thread_options(self, options: ThreadStartParams) -> Self {
        self.configure(|config| config.thread_options = options)
    }

    /// Which skills the threads are offered (default: every skill of the catalog); a call to any other tool is
    /// answered "not offered in this session" and never runs.
    pub fn toolset(self, toolset: Toolset) -> Self {
        self.configure(|config| config.toolset = toolset)
    }

    /// Restarts a child that exits, with fresh threads, after a backoff (default: no restart, the exit ends the
    /// bridge).
    pub fn restart(self, policy: RestartPolicy) -> Self {
        self.configure(|config| config.restart = Some(policy))
    }

    /// Archives the threads of the current child on close (`thread/archive`), so that they no longer show among
    /// the threads of its CODEX_HOME (default: kept).
    pub fn archive_threads_on_close(self, archive: bool) -> Self {
        self.configure(|config| config.archive_threads = archive)
    }

    /// Follows the child: its generation, pid, threads and whether it is up.
    pub fn state(&self) -> watch::Receiver<ChildState> {
        self.shared.state.subscribe()
    }

    /// Spawns and initializes the first child and starts its threads with `dynamic_tools` (also used for the
    /// threads of restarted children). Returns the thread ids. Its calls wait (queued) until
    /// [`supervise`](Self::supervise) starts handling them.
    async fn open_child(&self, dynamic_tools: Vec<DynamicTool>) -> Result<Vec<String>, AppServerError> {
        *lock(&self.shared.dynamic_tools) = dynamic_tools;
        let (app, threads) = self.launch().await?;
        self.install(app, threads.clone(), None).await?;
        Ok(threads)
    }

    /// Hands the current child's calls to `feed` until `stop` fires (returns `Ok`) or the child exits. Without a
    /// restart policy the exit ends it (`Err` with the child's exit report); with one, a new child with fresh
    /// threads replaces it after the backoff. Each time a child is up, its threads become the served sessions.
    async fn supervise(&self, feed: Feed, stop: CancellationToken) -> Result<(), ExitReport> {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let exit = {
                let child = self.shared.child.read().await;
                let Some(app) = child.as_ref() else {
                    return Ok(()); // closed meanwhile
                };
                if let Err(error) = app.start_event_loop(feed.clone()) {
                    // Only when the upstream runs twice at once: the other run handles this child's calls.
                    tracing::warn!(%error, "codex app-server upstream run twice");
                }
                app.exit_watch()
            };
            if self.shared.closed.is_cancelled() {
                return Ok(());
            }
            self.shared.link.up.store(true, Ordering::Relaxed);
            let mut state = self.shared.state.borrow().clone();
            state.up = true;
            // Before publishing: whoever sees `up` in the state sees the sessions too.
            let tools = tool_names(&lock(&self.shared.dynamic_tools));
            let threads = state
                .threads
                .iter()
                .cloned()
                .map(|thread| thread_session(thread, &tools));
            feed.health().replace_sessions(NAME, threads);
            feed.link_up();
            self.shared.state.send_replace(state);

            let report = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                report = exit.exited() => report,
            };
            self.shared.link.up.store(false, Ordering::Relaxed);
            self.shared.state.send_modify(|state| {
                state.up = false;
                state.last_exit = Some(report.clone());
            });
            let Some(policy) = self.shared.config.restart.clone() else {
                return Err(report);
            };
            if started.elapsed() >= policy.healthy_after {
                failures = 0;
            }
            loop {
                failures = failures.saturating_add(1);
                let wait = policy.backoff(failures);
                tracing::warn!(?wait, attempt = failures, "restarting codex app-server");
                let launched = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    launched = async {
                        tokio::time::sleep(wait).await;
                        self.launch().await
                    } => launched,
                };
                match launched {
                    Ok((app, threads)) => match self.install(app, threads, Some(report.clone())).await {
                        Ok(()) => break,
                        Err(_) => return Ok(()), // closed while restarting
                    },
                    Err(error) => tracing::error!(%error, "codex app-server did not come back"),
                }
            }
            self.shared.link.restarts.fetch_add(1, Ordering::Relaxed);
            let state = self.shared.state.borrow().clone();
            tracing::info!(generation = state.generation, pid = state.pid, threads = ?state.threads, "codex app-server restarted");
        }
    }

    /// Archives the threads of the current child; returns the ones archived.
    async fn archive_threads(&self) -> Vec<String> {
        let child = self.shared.child.read().await;
        let Some(app) = child.as_ref() else {
            return Vec::new();
        };
        let threads = self.shared.state.borrow().threads.clone();
        let mut archived = Vec::with_capacity(threads.len());
        for thread in threads {
            match tokio::time::timeout(ARCHIVE_WAIT, app.archive_thread(&thread)).await {
                Ok(Ok(())) => {
                    tracing::info!(thread = %thread, "archived thread");
                    archived.push(thread);
                }
                Ok(Err(error)) => tracing::warn!(thread = %thread, %error, "could not archive the thread; it is kept"),
                Err(_) => {
                    tracing::warn!(thread = %thread, wait = ?ARCHIVE_WAIT, "archiving the thread took too long; it is kept")
                }
            }
        }
        archived
    }

    /// Ends the current child (closes its input, waits up to `grace`, then kills it) and stops restarts.
    async fn shutdown(&self, grace: Duration) -> Option<ExitReport> {
        self.shared.closed.cancel();
        let app = self.shared.child.write().await.take()?;
        self.shared.link.up.store(false, Ordering::Relaxed);
        self.shared.state.send_modify(|state| state.up = false);
        let report = app.shutdown(grace).await;
        self.shared
            .state
            .send_modify(|state| state.last_exit = Some(report.clone()));
        Some(report)
    }

    /// Spawns and initializes a child and starts its threads; on a failure the child is ended.
    async fn launch(&self) -> Result<(AppServer, Vec<String>), AppServerError> {
        let config = &self.shared.config;
        let app = AppServer::start(config.command.clone()).await?;
        let tools = lock(&self.shared.dynamic_tools).clone();
        let tool_count = tools.len();
        let options = config.thread_options.clone().dynamic_tools(tools);
        let mut threads = Vec::with_capacity(config.threads);
        for _ in 0..config.threads {
            match app.start_thread(&options).await {
                Ok(thread) => {
                    tracing::info!(thread = %thread, tools = tool_count, "started thread");
                    threads.push(thread);
                }
                Err(error) => {
                    app.shutdown(ABANDONED_CHILD_GRACE).await;
                    return Err(error);
                }
            }
        }
        Ok((app, threads))
    }

    /// Makes `app` the current child. Fails (and ends `app`) when the upstream was closed meanwhile.
    async fn install(
        &self,
        app: AppServer,
        threads: Vec<String>,
        last_exit: Option<ExitReport>,
    ) -> Result<(), AppServerError> {
        let mut child = self.shared.child.write().await;
        if self.shared.closed.is_cancelled() {
            drop(child);
            let report = app.shutdown(ABANDONED_CHILD_GRACE).await;
            return Err(AppServerError::Exited(report));
        }
        let pid = app.pid();
        self.shared.answers.swap(Arc::clone(app.answers()), &threads);
        *child = Some(app);
        self.shared.state.send_modify(|state| {
            state.generation += 1;
            state.pid = pid;
            state.threads = threads;
            state.up = false;
            if last_exit.is_some() {
                state.last_exit = last_exit;
            }
        });
        Ok(())
    }
}

fn thread_session(thread: String, tools: &[String]) -> ServedSession {
    ServedSession {
        id: thread,
        upstream: NAME,
        created: true,
        tools: Some(tools.to_vec()),
    }
}

fn tool_names(tools: &[DynamicTool]) -> Vec<String> {
    tools.iter().map(|tool| tool.name.clone()).collect()
}

impl Upstream for AppServerUpstream {
    fn name(&self) -> &'static str {
        NAME
    }

    fn offered(&self, thread: &str) -> Option<Offered> {
        let _ = thread;
        lock(&self.shared.offered).clone()
    }

    fn open<'a>(&'a self, catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, UpstreamError>> {
        Box::pin(async move {
            if self.shared.config.threads == 0 {
                return Err(UpstreamError::Invalid(
                    "nothing to serve: a codex app-server upstream needs at least one thread".into(),
                ));
            }
            let toolset = &self.shared.config.toolset;
            let offered = toolset
                .select(catalog)
                .map_err(|error| UpstreamError::Invalid(format!("toolset ({toolset}): {error}")))?;
            let tools: Vec<DynamicTool> = catalog
                .iter()
                .filter(|skill| offered.contains(skill.name()))
                .map(DynamicTool::of)
                .collect();
            if !toolset.is_all() {
                *lock(&self.shared.offered) = Some(offered);
            }
            if tools.is_empty() {
                tracing::warn!("no skills are registered: the threads have no dynamic tools");
            }
            let names = tool_names(&tools);
            let threads = self.open_child(tools).await?;
            Ok(threads
                .into_iter()
                .map(|thread| thread_session(thread, &names))
                .collect())
        })
    }

    fn run<'a>(&'a self, feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>> {
        feed.health().attach_link(self.shared.link.clone());
        Box::pin(async move {
            self.supervise(feed, stop)
                .await
                .map_err(|report| UpstreamError::AppServer(AppServerError::Exited(report)))
        })
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        Box::pin(self.shared.answers.answer(call, result))
    }

    fn start_turn<'a>(&'a self, session: &'a str, text: &'a str) -> BoxFuture<'a, Result<String, UpstreamError>> {
        Box::pin(async move {
            let child = self.shared.child.read().await;
            let app = child.as_ref().ok_or(AppServerError::Rpc(RpcError::Closed))?;
            Ok(app.start_turn(session, text).await?)
        })
    }

    fn interrupt_turn<'a>(&'a self, session: &'a str, turn: &'a str) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            let child = self.shared.child.read().await;
            let app = child.as_ref().ok_or(AppServerError::Rpc(RpcError::Closed))?;
            Ok(app.interrupt_turn(session, turn).await?)
        })
    }

    fn close(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            // Restarts stop first, so that the threads archived are the last child's.
            self.shared.closed.cancel();
            let archived = if self.shared.config.archive_threads {
                self.archive_threads().await
            } else {
                Vec::new()
            };
            self.shutdown(SHUTDOWN_GRACE).await;
            archived
        })
    }
}

/// The answers of whichever child is current. Answers go to it only for calls of its own threads: the calls of
/// a child that exited died with it, and their request ids may be reused by its successor.
#[derive(Debug, Default)]
struct CurrentChild {
    current: Mutex<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    answers: Arc<PendingAnswers>,
    threads: HashSet<String>,
}

impl CurrentChild {
    /// Answers go to `answers` from now on, for calls of `threads`.
    fn swap(&self, answers: Arc<PendingAnswers>, threads: &[String]) {
        *lock(&self.current) = Some(Current {
            answers,
            threads: threads.iter().cloned().collect(),
        });
    }

    fn target(&self, call: &ToolCall) -> Option<Arc<PendingAnswers>> {
        let current = lock(&self.current);
        let current = current.as_ref()?;
        current
            .threads
            .contains(&call.thread_id)
            .then(|| Arc::clone(&current.answers))
    }

    async fn answer(&self, call: &ToolCall, result: &ToolResult) -> AnswerOutcome {
        match self.target(call) {
            Some(answers) => answers.answer(call, result).await,
            None => AnswerOutcome::Rejected {
                reason: format!(
                    "the codex app-server that sent request {} (thread {}) is gone; its calls died with it",
                    call.request_id, call.thread_id
                ),
            },
        }
    }
}

#[derive(Debug, Default)]
struct ChildLink {
    up: AtomicBool,
    restarts: AtomicU64,
}

impl LinkStatus for ChildLink {
    fn connected(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn reconnects(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::app_server::events::TOOL_CALL_METHOD;
    use crate::upstream::app_server::rpc::{RpcConnection, ServerRequest};
    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf};

    fn call(request_id: &str, thread_id: &str) -> ToolCall {
        ToolCall {
            request_id: request_id.into(),
            thread_id: thread_id.into(),
            turn_id: None,
            call_id: "c".into(),
            tool: "t".into(),
            arguments: json!({}),
        }
    }

    /// A child stand-in over a duplex pipe, with the tool call `id` pending.
    struct FakeChild {
        answers: Arc<PendingAnswers>,
        received: Lines<BufReader<ReadHalf<DuplexStream>>>,
        _input: WriteHalf<DuplexStream>,
    }

    fn child_with_pending(id: u64) -> FakeChild {
        let (ours, theirs) = tokio::io::duplex(4096);
        let (read, write) = tokio::io::split(ours);
        let (rpc, _incoming) = RpcConnection::new(read, write);
        let answers = Arc::new(PendingAnswers::new(rpc));
        answers.track(&ServerRequest {
            id: id.into(),
            method: TOOL_CALL_METHOD.into(),
            params: json!({}),
        });
        let (their_read, their_write) = tokio::io::split(theirs);
        FakeChild {
            answers,
            received: BufReader::new(their_read).lines(),
            _input: their_write,
        }
    }

    #[tokio::test]
    async fn answers_for_a_replaced_child_are_rejected_even_when_the_request_id_is_reused() {
        let current = CurrentChild::default();
        let first = child_with_pending(0);
        current.swap(first.answers.clone(), &["old-thread".into()]);
        let mut second = child_with_pending(0);
        current.swap(second.answers.clone(), &["new-thread".into()]);

        let stale = current
            .answer(&call("0", "old-thread"), &ToolResult::text("late"))
            .await;
        assert!(
            matches!(&stale, AnswerOutcome::Rejected { reason } if reason.contains("old-thread")),
            "{stale:?}"
        );
        let fresh = current
            .answer(&call("0", "new-thread"), &ToolResult::text("on time"))
            .await;
        assert_eq!(fresh, AnswerOutcome::Delivered);
        let written: Value = serde_json::from_str(&second.received.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(written["id"], 0);
        assert_eq!(written["result"]["contentItems"][0]["text"], "on time");
    }

    #[tokio::test]
    async fn without_a_child_answers_are_rejected() {
        let outcome = CurrentChild::default()
            .answer(&call("1", "t"), &ToolResult::text("x"))
            .await;
        assert_eq!(outcome.label(), "rejected");
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let policy = RestartPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            healthy_after: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=4).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
    }
}
