//! [`AppServerSupervisor`]: keeps a `codex app-server` child serving for as long as a bridge runs. It spawns
//! and initializes the child, starts its threads with the skills as dynamic tools, feeds its tool calls to a
//! [`ToolCallSink`] (the dispatcher), reports the child's exit or restarts it with backoff ([`RestartPolicy`]),
//! and terminates it on shutdown.
//!
//! The dispatcher holds one [`Upstream`] for its lifetime, while a restarted child is a new process with new
//! threads and request ids that start again at 0. [`CurrentChild`] bridges that: it forwards each answer to the
//! child that is current, and only when the call's thread belongs to that child; an answer for a call of a
//! child that is gone comes back [`AnswerOutcome::Rejected`] (the call died with its process).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{RwLock, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{AppServer, AppServerCommand, AppServerError, AppServerUpstream, ExitReport, ThreadOptions, ToolCallSink};
use crate::ToolResult;
use crate::bridge::LinkStatus;
use crate::sync::lock;
use crate::upstream::{AnswerOutcome, ToolCall, Upstream};

/// How long a child that failed to start its threads gets to exit before it is killed.
const ABANDONED_CHILD_GRACE: Duration = Duration::from_secs(2);

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
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What a supervisor runs: the command, how many threads each child gets, and how they are set up.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// How to start `codex app-server`.
    pub command: AppServerCommand,
    /// Threads started in each child.
    pub threads: usize,
    /// The `thread/start` parameters; the dynamic tools are given to [`AppServerSupervisor::open`].
    pub thread_options: ThreadOptions,
    /// Restart a child that exits (`None`: its exit ends [`AppServerSupervisor::supervise`]).
    pub restart: Option<RestartPolicy>,
}

/// The child being served, as [`AppServerSupervisor::state`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildState {
    /// 1 for the first child, one more for each restart; 0 before [`AppServerSupervisor::open`].
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

/// Runs `codex app-server` children one after the other; cheap to clone, clones share the child.
#[derive(Clone)]
pub struct AppServerSupervisor {
    shared: Arc<Shared>,
}

struct Shared {
    config: SupervisorConfig,
    dynamic_tools: Mutex<Vec<Value>>,
    child: RwLock<Option<AppServer>>,
    upstream: Arc<CurrentChild>,
    link: Arc<ChildLink>,
    state: watch::Sender<ChildState>,
    closed: CancellationToken,
}

impl std::fmt::Debug for AppServerSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServerSupervisor")
            .field("program", &self.shared.config.command.program())
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl AppServerSupervisor {
    /// A supervisor that starts nothing until [`open`](Self::open).
    pub fn new(config: SupervisorConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                dynamic_tools: Mutex::new(Vec::new()),
                child: RwLock::new(None),
                upstream: Arc::new(CurrentChild::default()),
                link: Arc::new(ChildLink::default()),
                state: watch::channel(ChildState::default()).0,
                closed: CancellationToken::new(),
            }),
        }
    }

    /// The [`Upstream`] the dispatcher answers through: always the current child.
    pub fn upstream(&self) -> Arc<CurrentChild> {
        Arc::clone(&self.shared.upstream)
    }

    /// The link readiness reads: connected while a child is up; its restarts count as reconnects.
    pub fn link(&self) -> Arc<dyn LinkStatus> {
        self.shared.link.clone()
    }

    /// Follows the child: its generation, pid, threads and whether it is up.
    pub fn state(&self) -> watch::Receiver<ChildState> {
        self.shared.state.subscribe()
    }

    /// Spawns and initializes the first child and starts its threads with `dynamic_tools` (also used for the
    /// threads of restarted children). Returns the thread ids. Its calls wait (queued) until
    /// [`supervise`](Self::supervise) starts handling them.
    pub async fn open(&self, dynamic_tools: Vec<Value>) -> Result<Vec<String>, AppServerError> {
        *lock(&self.shared.dynamic_tools) = dynamic_tools;
        let (app, threads) = self.launch().await?;
        self.install(app, threads.clone(), None).await?;
        Ok(threads)
    }

    /// Handles the current child's calls through `sink` until `stop` fires (returns `Ok`) or the child exits.
    /// Without a restart policy the exit ends it (`Err` with the child's exit report); with one, a new child
    /// with fresh threads replaces it after the backoff, and `on_up` is called again. `on_up` is called each
    /// time a child is up, with its state.
    pub async fn supervise(
        &self,
        sink: Arc<dyn ToolCallSink>,
        stop: CancellationToken,
        mut on_up: impl FnMut(&ChildState) + Send,
    ) -> Result<(), ExitReport> {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let exit = {
                let child = self.shared.child.read().await;
                let Some(app) = child.as_ref() else {
                    return Ok(()); // shut down meanwhile
                };
                if let Err(error) = app.start_event_loop(Arc::clone(&sink)) {
                    // Only when `supervise` runs twice at once: the other one handles this child's calls.
                    tracing::warn!(%error, "supervise called again for the same codex app-server");
                }
                app.exit_watch()
            };
            if self.shared.closed.is_cancelled() {
                return Ok(());
            }
            self.shared.link.up.store(true, Ordering::Relaxed);
            let mut state = self.shared.state.borrow().clone();
            state.up = true;
            // Before publishing: whoever sees `up` in the state sees what `on_up` did too.
            on_up(&state);
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

    /// Starts a turn in a thread of the current child; returns the turn id.
    pub async fn start_turn(&self, thread_id: &str, text: &str) -> Result<String, AppServerError> {
        let child = self.shared.child.read().await;
        let app = child.as_ref().ok_or(AppServerError::Rpc(super::RpcError::Closed))?;
        app.start_turn(thread_id, text).await
    }

    /// Ends the current child (closes its input, waits up to `grace`, then kills it) and stops restarts.
    /// Returns how it ended; `None` when there was none.
    pub async fn shutdown(&self, grace: Duration) -> Option<ExitReport> {
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
        let options = config
            .thread_options
            .clone()
            .dynamic_tools(lock(&self.shared.dynamic_tools).clone());
        let mut threads = Vec::with_capacity(config.threads);
        for _ in 0..config.threads {
            match app.start_thread(&options).await {
                Ok(thread) => {
                    tracing::info!(thread = %thread, tools = options.params()["dynamicTools"].as_array().map_or(0, Vec::len), "started thread");
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

    /// Makes `app` the current child. Fails (and ends `app`) when the supervisor was shut down meanwhile.
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
        self.shared.upstream.swap(app.upstream(), &threads);
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

/// The [`Upstream`] of whichever child is current. Answers go to it only for calls of its own threads: the
/// calls of a child that exited died with it, and their request ids may be reused by its successor.
#[derive(Debug, Default)]
pub struct CurrentChild {
    current: Mutex<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    upstream: Arc<AppServerUpstream>,
    threads: HashSet<String>,
}

impl CurrentChild {
    /// Answers go to `upstream` from now on, for calls of `threads`.
    pub fn swap(&self, upstream: Arc<AppServerUpstream>, threads: &[String]) {
        *lock(&self.current) = Some(Current {
            upstream,
            threads: threads.iter().cloned().collect(),
        });
    }

    fn target(&self, call: &ToolCall) -> Option<Arc<AppServerUpstream>> {
        let current = lock(&self.current);
        let current = current.as_ref()?;
        current
            .threads
            .contains(&call.thread_id)
            .then(|| Arc::clone(&current.upstream))
    }
}

impl Upstream for CurrentChild {
    fn name(&self) -> &'static str {
        "app-server"
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        async move {
            match self.target(call) {
                Some(upstream) => upstream.answer(call, result).await,
                None => AnswerOutcome::Rejected {
                    reason: format!(
                        "the codex app-server that sent request {} (thread {}) is gone; its calls died with it",
                        call.request_id, call.thread_id
                    ),
                },
            }
        }
        .boxed()
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
    use crate::upstream::app_server::rpc::ServerRequest;
    use crate::upstream::app_server::{RpcConnection, TOOL_CALL_METHOD};
    use serde_json::json;
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
        upstream: Arc<AppServerUpstream>,
        received: Lines<BufReader<ReadHalf<DuplexStream>>>,
        _input: WriteHalf<DuplexStream>,
    }

    fn child_with_pending(id: u64) -> FakeChild {
        let (ours, theirs) = tokio::io::duplex(4096);
        let (read, write) = tokio::io::split(ours);
        let (rpc, _incoming) = RpcConnection::new(read, write);
        let upstream = Arc::new(AppServerUpstream::new(rpc));
        upstream.track(&ServerRequest {
            id: id.into(),
            method: TOOL_CALL_METHOD.into(),
            params: json!({}),
        });
        let (their_read, their_write) = tokio::io::split(theirs);
        FakeChild {
            upstream,
            received: BufReader::new(their_read).lines(),
            _input: their_write,
        }
    }

    #[tokio::test]
    async fn answers_for_a_replaced_child_are_rejected_even_when_the_request_id_is_reused() {
        let current = CurrentChild::default();
        let first = child_with_pending(0);
        current.swap(first.upstream.clone(), &["old-thread".into()]);
        let mut second = child_with_pending(0);
        current.swap(second.upstream.clone(), &["new-thread".into()]);

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
