//! `skillbridge serve`: open sessions with the skills as dynamic tools, answer every tool call Codex makes to
//! them until SIGINT/SIGTERM, then shut down gracefully.
//!
//! The work is split so that tests can run the whole loop in-process and either upstream slots in:
//! - [`UpstreamRuntime`]: the upstream-specific half (open sessions, feed calls, send a prompt, clean up);
//!   [`CodexManagerRuntime`] is the codex-manager one, [`AppServerRuntime`] the `codex app-server` one (a child
//!   process it spawns, restarts if asked, and terminates). The dispatcher, the admin endpoint and the
//!   statistics are shared by every upstream.
//! - [`Serving`]: a running bridge. [`Serving::start`] / [`Serving::start_with`] bring it up,
//!   [`Serving::run_until`] serves until a shutdown future completes and shuts down.
//! - [`serve_with`]: both in one call; [`run`]: the command-line wrapper (settings, signals, output, exit code).

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::settings::{
    AppServerArgs, AppServerSettings, ManagerArgs, Secret, ServeSettings, SessionArgs, SessionTemplate, SettingsError,
};
use crate::admin::{self, AdminError, AdminState, AdminToken};
use crate::bridge::{BridgeHealth, BridgeStats, DispatchConfig, Dispatcher, ServedSession};
use crate::manager::{CodexManager, ManagerError, SendMessage};
use crate::skill::{Catalog, ToolFlavor};
use crate::stream::{Frame, HandlerContext, Router};
use crate::upstream::Upstream;
use crate::upstream::app_server::{
    AppServerError, AppServerSupervisor, ChildState, RestartPolicy, SupervisorConfig, ToolCallSink,
};
use crate::upstream::codex_manager::{CodexManagerFeed, CodexManagerUpstream, SessionScope};

/// How long the answers of calls cancelled at the end of the grace period may take to deliver before serve
/// exits anyway (the calls then stay pending upstream, where the next bridge finds them).
pub const ANSWER_DEADLINE_AFTER_GRACE: Duration = Duration::from_secs(2);

/// How long the upstream feed gets to close its connection on shutdown.
const FEED_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a `codex app-server` child gets to exit after its input is closed, before it is killed.
pub const APP_SERVER_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

const SERVE_ABOUT: &str = "Serve the skills to Codex through codex-manager (or codex app-server) until SIGINT/SIGTERM";

const SERVE_LONG_ABOUT: &str = "\
Serve the skills to Codex through codex-manager (or a codex app-server it spawns) until SIGINT/SIGTERM.

Creates one session (or --sessions N) whose dynamic tools are this binary's skills, or attaches to existing sessions
(--session ID), and answers every tool call made in them: calls arrive on codex-manager's websocket stream and from
pending-call listing (after every (re)connect and every --poll-interval); each runs once, at most --concurrency at a
time, and is answered through codex-manager's REST API, with retries.

Prints `session <id>` on stdout for each session served, then `admin http://<addr>` when the admin endpoint is on;
logs go to stderr (RUST_LOG=debug for more).
On SIGINT/SIGTERM it stops taking calls, lets running ones finish for up to --grace, answers the rest with
success:false, deletes the sessions it created if --delete-on-exit, and exits 0.

With --app-server [PATH] there is no codex-manager: serve spawns `PATH app-server` (default `codex` on PATH, with
the CODEX_HOME and login of the environment, or --codex-home), starts --sessions threads with the skills as dynamic
tools and answers their calls over the child's stdio; `session <id>` lines name the threads. If the child exits,
serve says why and exits 1, or with --restart starts a new child with fresh threads after a backoff (200ms doubling
to 30s); the calls of the dead child are gone with it, and --prompt is not sent again. On exit the child is
terminated. --session, --all-sessions and --delete-on-exit do not apply to it.

Settings are layered: flag > environment variable > TOML file (--config) > codex-manager profile (--profile) >
default. The TOML file has the tables [codex_manager] (url, prefix, timeout, bearer_token, rbac_token, rbac_role,
rbac_actor, profile, profile_file), [session] (cwd, model, approval_policy, sandbox), [serve] (sessions, attach,
prompt, poll_interval, concurrency, all_sessions, grace, delete_on_exit), [admin] (enabled, addr, token) and
[app_server] (enabled, program, codex_home, restart).
Durations are written like 500ms, 5s or 2m. Tokens are never printed or logged.";

const SERVE_EXAMPLES: &str = "\
Examples:
  # one session on the local codex-manager, admin endpoint on 127.0.0.1:7878
  skillbridge serve

  # three sessions that start working right away, cleaned up on exit
  skillbridge serve --sessions 3 --prompt 'List the open tickets' --delete-on-exit

  # a remote codex-manager; the token comes from the environment
  CODEX_MANAGER_BEARER_TOKEN=... skillbridge serve --manager-url http://10.0.0.5:3001

  # serve sessions created elsewhere (their tool catalog was fixed when they were created)
  skillbridge serve --session 01a20b31-f8aa-7ee1-a8ed-f30e81e9ab3b

  # settings from a file, admin endpoint on all interfaces (requires a token)
  SKILLBRIDGE_ADMIN_TOKEN=... skillbridge serve --config skillbridge.toml --admin 0.0.0.0:7878

  # no codex-manager: spawn `codex app-server` (your Codex login), restart it if it dies
  skillbridge serve --app-server --restart --prompt 'Count the words of README.md'

  # a specific Codex build, two threads
  skillbridge serve --app-server ~/.cache/codex/bin/codex --sessions 2";

/// The flags of `skillbridge serve`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(about = SERVE_ABOUT, long_about = SERVE_LONG_ABOUT, after_long_help = SERVE_EXAMPLES)]
pub struct ServeArgs {
    /// codex-manager connection and settings file.
    #[command(flatten)]
    pub manager: ManagerArgs,

    /// How created sessions are set up.
    #[command(flatten)]
    pub session: SessionArgs,

    /// Serve through a spawned `codex app-server` instead of codex-manager.
    #[command(flatten)]
    pub app_server: AppServerArgs,

    /// With --app-server: when the child exits, start a new one (fresh threads) after a backoff of 200ms doubling
    /// to 30s, instead of exiting 1. [env: SKILLBRIDGE_RESTART]
    #[arg(long, help_heading = "codex app-server")]
    pub restart: bool,

    /// Create this many sessions with the skills as their dynamic tools. 0 is allowed with --session or
    /// --all-sessions. [env: SKILLBRIDGE_SESSIONS] [default: 1, or 0 when --session is given]
    #[arg(long, value_name = "N", help_heading = "Sessions")]
    pub sessions: Option<usize>,

    /// Also serve this existing session (repeatable). Its tool catalog was fixed when it was created: skills
    /// added since then are not visible to its model.
    #[arg(long = "session", value_name = "ID", help_heading = "Sessions")]
    pub attach: Vec<String>,

    /// Send this message to each created session once the bridge is listening, so work starts right away.
    /// [env: SKILLBRIDGE_PROMPT]
    #[arg(long, value_name = "TEXT", help_heading = "Sessions")]
    pub prompt: Option<String>,

    /// Answer calls of every session on the codex-manager, not only the ones served here.
    /// [env: SKILLBRIDGE_ALL_SESSIONS]
    #[arg(long, help_heading = "Sessions")]
    pub all_sessions: bool,

    /// Delete the sessions this bridge created when it exits (attached ones are left alone).
    /// [env: SKILLBRIDGE_DELETE_ON_EXIT]
    #[arg(long, help_heading = "Sessions")]
    pub delete_on_exit: bool,

    /// How often to list pending tool calls, besides after every (re)connect: the safety net for calls
    /// published while no socket was connected. [env: SKILLBRIDGE_POLL_INTERVAL] [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = super::settings::parse_duration, help_heading = "Dispatch")]
    pub poll_interval: Option<Duration>,

    /// Skills running at once, at most; further calls wait for a slot without holding up the stream.
    /// [env: SKILLBRIDGE_CONCURRENCY] [default: 64]
    #[arg(long, value_name = "N", help_heading = "Dispatch")]
    pub concurrency: Option<usize>,

    /// On SIGINT/SIGTERM, how long running calls may finish before they are answered success:false.
    /// [env: SKILLBRIDGE_GRACE] [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = super::settings::parse_duration, help_heading = "Dispatch")]
    pub grace: Option<Duration>,

    /// Address of the admin endpoint (/healthz, /readyz, /metrics, /skills, /sessions, /calls). A non-loopback
    /// address requires --admin-token. [env: SKILLBRIDGE_ADMIN] [default: 127.0.0.1:7878]
    #[arg(long, value_name = "ADDR", value_parser = super::settings::parse_admin_addr, conflicts_with = "no_admin", help_heading = "Admin endpoint")]
    pub admin: Option<SocketAddr>,

    /// Do not start the admin endpoint. [env: SKILLBRIDGE_NO_ADMIN]
    #[arg(long, help_heading = "Admin endpoint")]
    pub no_admin: bool,

    /// Bearer token the admin endpoint requires (all routes but /healthz and /readyz); also enables
    /// POST /skills/{name}/invoke. Never printed or logged. [env: SKILLBRIDGE_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN", help_heading = "Admin endpoint")]
    pub admin_token: Option<Secret>,
}

/// Why serve could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The settings are unusable.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The registered skills do not form a catalog.
    #[error("the skills cannot be served: {0}")]
    Catalog(#[from] crate::skill::CatalogError),
    /// codex-manager could not be reached.
    #[error(
        "cannot reach codex-manager at {url}: {source}\n(is it running? set --manager-url or CODEX_MANAGER_API_BASE)"
    )]
    Unreachable {
        /// The base URL tried.
        url: String,
        /// The failure.
        source: ManagerError,
    },
    /// codex-manager refused to create a session.
    #[error("codex-manager refused to create a session: {0}")]
    CreateSession(ManagerError),
    /// A session to attach to does not exist or cannot be read.
    #[error("cannot attach to session {id}: {reason}")]
    Attach {
        /// The session.
        id: String,
        /// Why.
        reason: String,
    },
    /// The admin endpoint could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The `codex app-server` child could not be spawned.
    #[error("{source}\n(is the Codex CLI installed? give its path with --app-server PATH or SKILLBRIDGE_APP_SERVER)")]
    AppServerSpawn {
        /// The failure.
        source: AppServerError,
    },
    /// The `codex app-server` child did not initialize or start its threads.
    #[error("codex app-server did not start: {0}")]
    AppServer(AppServerError),
    /// Another upstream-specific startup failure.
    #[error("{0}")]
    Upstream(String),
}

impl From<AppServerError> for ServeError {
    fn from(error: AppServerError) -> Self {
        match error {
            AppServerError::Spawn(_) => Self::AppServerSpawn { source: error },
            other => Self::AppServer(other),
        }
    }
}

/// What a finished serve did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeReport {
    /// The sessions served.
    pub sessions: Vec<ServedSession>,
    /// Calls still running when the grace period ended (answered `success:false`).
    pub cancelled: usize,
    /// `true` when some answers could not be delivered within [`ANSWER_DEADLINE_AFTER_GRACE`].
    pub answers_abandoned: bool,
    /// The sessions deleted on exit.
    pub deleted: Vec<String>,
    /// `true` when serve stopped because the upstream feed ended by itself rather than on request.
    pub upstream_ended: bool,
    /// Why the upstream ended, when it said (e.g. how the `codex app-server` child exited).
    pub upstream_error: Option<String>,
}

/// The upstream-specific half of serve. The dispatcher, admin endpoint and statistics are shared; an upstream
/// only opens its sessions, feeds tool calls into the dispatcher, sends first prompts and cleans up.
/// [`CodexManagerRuntime`] is the codex-manager implementation, [`AppServerRuntime`] the `codex app-server` one;
/// either plugs into [`Serving::start_with`].
pub trait UpstreamRuntime: Send + Sync + 'static {
    /// A short name for logs and [`ServedSession::upstream`].
    fn name(&self) -> &'static str;

    /// Where the dispatcher sends answers.
    fn answerer(&self) -> Arc<dyn Upstream>;

    /// Opens the upstream and the sessions to serve; created sessions carry `catalog` as their dynamic tools.
    fn open<'a>(&'a self, catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, ServeError>>;

    /// Feeds tool calls into `dispatcher` until `stop` fires, keeping `health` informed. `connected` is notified
    /// every time the upstream connection is (re)established. A feed that ends before `stop` fires ends serve;
    /// it returns why, when it knows.
    fn feed(
        &self,
        dispatcher: Dispatcher,
        health: Arc<BridgeHealth>,
        connected: Arc<Notify>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, Option<String>>;

    /// Sends a user message to a session (the first prompt).
    fn send_prompt<'a>(&'a self, session: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// Closes the upstream; with `delete_created`, deletes the sessions it created. Returns the deleted ids.
    fn close(&self, delete_created: bool) -> BoxFuture<'_, Vec<String>>;
}

/// What codex-manager sessions to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// Sessions to create with the catalog.
    pub create: usize,
    /// Existing sessions to attach to.
    pub attach: Vec<String>,
    /// How created sessions are set up.
    pub template: SessionTemplate,
    /// Serve calls of every session, not only these.
    pub all_sessions: bool,
}

/// The codex-manager upstream: sessions over REST, calls from the websocket stream and pending-call listing,
/// answers over REST.
pub struct CodexManagerRuntime {
    client: CodexManager,
    plan: SessionPlan,
    poll_interval: Duration,
    created: Mutex<Vec<String>>,
    served: Mutex<BTreeSet<String>>,
}

impl CodexManagerRuntime {
    /// A runtime using `client`, opening the sessions of `plan`, listing pending calls every `poll_interval`.
    pub fn new(client: CodexManager, plan: SessionPlan, poll_interval: Duration) -> Self {
        Self {
            client,
            plan,
            poll_interval,
            created: Mutex::new(Vec::new()),
            served: Mutex::new(BTreeSet::new()),
        }
    }

    /// The runtime `serve` builds from its settings.
    pub fn from_settings(settings: &ServeSettings) -> Result<Self, ServeError> {
        let client = CodexManager::new(settings.manager.clone()).map_err(|e| ServeError::Upstream(e.to_string()))?;
        let plan = SessionPlan {
            create: settings.create_sessions,
            attach: settings.attach.clone(),
            template: settings.session.clone(),
            all_sessions: settings.all_sessions,
        };
        Ok(Self::new(client, plan, settings.poll_interval))
    }

    /// The REST client.
    pub fn client(&self) -> &CodexManager {
        &self.client
    }

    fn unreachable_or(&self, error: ManagerError, other: impl FnOnce(ManagerError) -> ServeError) -> ServeError {
        if matches!(error, ManagerError::Transport { .. }) {
            ServeError::Unreachable {
                url: self.client.config().base_url().to_owned(),
                source: error,
            }
        } else {
            other(error)
        }
    }

    async fn open_sessions(&self, catalog: &Catalog) -> Result<Vec<ServedSession>, ServeError> {
        let mut sessions = Vec::new();
        let tools = catalog.dynamic_tools(ToolFlavor::CodexManager);
        if self.plan.create > 0 && tools.is_empty() {
            tracing::warn!("no skills are registered: the created sessions have no dynamic tools");
        }
        for _ in 0..self.plan.create {
            let request = self.plan.template.request(tools.clone());
            match self.client.create_session(&request).await {
                Ok(created) => {
                    tracing::info!(session = %created.session_id, tools = tools.len(), "created session");
                    lock(&self.created).push(created.session_id.clone());
                    sessions.push(ServedSession {
                        id: created.thread_id,
                        upstream: "codex-manager",
                        created: true,
                    });
                }
                Err(error) => {
                    self.delete_created().await;
                    return Err(self.unreachable_or(error, ServeError::CreateSession));
                }
            }
        }
        for id in &self.plan.attach {
            if let Err(error) = self.client.get_session(id).await {
                self.delete_created().await;
                return Err(self.unreachable_or(error, |error| ServeError::Attach {
                    id: id.clone(),
                    reason: match error.status().map(|s| s.as_u16()) {
                        Some(404) => "codex-manager has no such session (404)".to_owned(),
                        Some(410) => "the session was deleted (410)".to_owned(),
                        _ => error.to_string(),
                    },
                }));
            }
            tracing::warn!(
                session = %id,
                "attached to an existing session: its tool catalog was fixed when it was created, so skills added \
                 since then are not visible to its model"
            );
            sessions.push(ServedSession {
                id: id.clone(),
                upstream: "codex-manager",
                created: false,
            });
        }
        lock(&self.served).extend(sessions.iter().map(|s| s.id.clone()));
        Ok(sessions)
    }

    async fn delete_created(&self) -> Vec<String> {
        let ids: Vec<String> = std::mem::take(&mut *lock(&self.created));
        let mut deleted = Vec::new();
        for id in ids {
            match self.client.delete_session(&id).await {
                Ok(_) => {
                    tracing::info!(session = %id, "deleted session");
                    deleted.push(id);
                }
                Err(error) if matches!(error.status().map(|s| s.as_u16()), Some(404 | 410)) => {
                    tracing::info!(session = %id, "session was already gone");
                    deleted.push(id);
                }
                Err(error) => tracing::error!(session = %id, %error, "could not delete session"),
            }
        }
        deleted
    }
}

impl UpstreamRuntime for CodexManagerRuntime {
    fn name(&self) -> &'static str {
        "codex-manager"
    }

    fn answerer(&self) -> Arc<dyn Upstream> {
        Arc::new(CodexManagerUpstream::new(self.client.clone()))
    }

    fn open<'a>(&'a self, catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, ServeError>> {
        Box::pin(self.open_sessions(catalog))
    }

    fn feed(
        &self,
        dispatcher: Dispatcher,
        health: Arc<BridgeHealth>,
        connected: Arc<Notify>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, Option<String>> {
        let served = lock(&self.served).clone();
        let scope = if self.plan.all_sessions {
            SessionScope::All(served)
        } else {
            SessionScope::Only(served)
        };
        let feed = CodexManagerFeed::new(self.client.clone(), dispatcher, health, scope, self.poll_interval);
        let mut router = Router::new();
        router.on_control(move |frame: Frame, _ctx: HandlerContext| {
            if matches!(frame, Frame::Ready { .. }) {
                connected.notify_waiters();
            }
            async {}
        });
        Box::pin(async move {
            feed.run(router, stop).await;
            None
        })
    }

    fn send_prompt<'a>(&'a self, session: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let accepted = self
                .client
                .send_message(session, &SendMessage::new(text))
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(session, turn = %accepted.turn_id, "sent the first prompt");
            Ok(())
        })
    }

    fn close(&self, delete_created: bool) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            if delete_created {
                self.delete_created().await
            } else {
                Vec::new()
            }
        })
    }
}

/// The `codex app-server` upstream: a child process started by serve, its threads opened with the skills as
/// dynamic tools, its calls handled over its stdio, restarted with backoff when asked, terminated on close.
///
/// The lifecycle is the [`AppServerSupervisor`]'s; this adapts it to [`UpstreamRuntime`] (sessions are threads).
pub struct AppServerRuntime {
    supervisor: AppServerSupervisor,
}

impl AppServerRuntime {
    /// A runtime around `supervisor`.
    pub fn new(supervisor: AppServerSupervisor) -> Self {
        Self { supervisor }
    }

    /// The runtime `serve --app-server` builds: `settings.create_sessions` threads per child, restarted with
    /// [`RestartPolicy::default`] when `restart` is set.
    pub fn from_settings(settings: &ServeSettings) -> Result<Self, ServeError> {
        let app_server = settings
            .app_server
            .as_ref()
            .ok_or_else(|| ServeError::Upstream("the settings select codex-manager, not codex app-server".into()))?;
        Ok(Self::new(AppServerSupervisor::new(Self::config(
            app_server,
            settings.create_sessions,
        ))))
    }

    /// The supervisor config for `threads` threads with `settings`.
    pub fn config(settings: &AppServerSettings, threads: usize) -> SupervisorConfig {
        SupervisorConfig {
            command: settings.command(),
            threads,
            thread_options: settings.thread_options.clone(),
            restart: settings.restart.then(RestartPolicy::default),
        }
    }

    /// The child's supervisor (its state: pid, threads, generation).
    pub fn supervisor(&self) -> &AppServerSupervisor {
        &self.supervisor
    }
}

/// How the app-server upstream is named in sessions, logs and metrics.
const APP_SERVER: &str = "app-server";

impl UpstreamRuntime for AppServerRuntime {
    fn name(&self) -> &'static str {
        APP_SERVER
    }

    fn answerer(&self) -> Arc<dyn Upstream> {
        self.supervisor.upstream()
    }

    fn open<'a>(&'a self, catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, ServeError>> {
        Box::pin(async move {
            let tools = catalog.dynamic_tools(ToolFlavor::AppServer);
            if tools.is_empty() {
                tracing::warn!("no skills are registered: the threads have no dynamic tools");
            }
            let threads = self.supervisor.open(tools).await?;
            Ok(threads.into_iter().map(app_server_session).collect())
        })
    }

    fn feed(
        &self,
        dispatcher: Dispatcher,
        health: Arc<BridgeHealth>,
        connected: Arc<Notify>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, Option<String>> {
        health.attach_link(self.supervisor.link());
        let supervisor = self.supervisor.clone();
        Box::pin(async move {
            let sink: Arc<dyn ToolCallSink> = Arc::new(dispatcher);
            let on_up = |state: &ChildState| {
                let threads = state.threads.iter().cloned().map(app_server_session);
                health.replace_sessions(APP_SERVER, threads);
                connected.notify_waiters();
            };
            match supervisor.supervise(sink, stop, on_up).await {
                Ok(()) => None,
                Err(report) => Some(report.to_string()),
            }
        })
    }

    fn send_prompt<'a>(&'a self, session: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let turn = self
                .supervisor
                .start_turn(session, text)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(thread = session, %turn, "sent the first prompt");
            Ok(())
        })
    }

    fn close(&self, _delete_created: bool) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            // The threads end with the child; there is nothing to delete.
            self.supervisor.shutdown(APP_SERVER_SHUTDOWN_GRACE).await;
            Vec::new()
        })
    }
}

fn app_server_session(thread: String) -> ServedSession {
    ServedSession {
        id: thread,
        upstream: APP_SERVER,
        created: true,
    }
}

/// The runtime `settings` select: `codex app-server` with `--app-server`, codex-manager otherwise.
pub fn runtime_for(settings: &ServeSettings) -> Result<Arc<dyn UpstreamRuntime>, ServeError> {
    Ok(match settings.app_server {
        Some(_) => Arc::new(AppServerRuntime::from_settings(settings)?),
        None => Arc::new(CodexManagerRuntime::from_settings(settings)?),
    })
}

/// The parts of [`ServeSettings`] every upstream shares.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// Skills running at once.
    pub concurrency: usize,
    /// Time in-flight calls get on shutdown.
    pub grace: Duration,
    /// Delete created sessions on exit.
    pub delete_on_exit: bool,
    /// First message to each created session.
    pub prompt: Option<String>,
    /// Admin endpoint address (`None`: off).
    pub admin_addr: Option<SocketAddr>,
    /// Admin token.
    pub admin_token: Option<Secret>,
}

impl From<&ServeSettings> for BridgeSettings {
    fn from(settings: &ServeSettings) -> Self {
        Self {
            concurrency: settings.concurrency,
            grace: settings.grace,
            delete_on_exit: settings.delete_on_exit,
            prompt: settings.prompt.clone(),
            admin_addr: settings.admin.addr,
            admin_token: settings.admin.token.clone(),
        }
    }
}

/// A running bridge.
pub struct Serving {
    runtime: Arc<dyn UpstreamRuntime>,
    settings: BridgeSettings,
    sessions: Vec<ServedSession>,
    dispatcher: Dispatcher,
    stats: Arc<BridgeStats>,
    health: Arc<BridgeHealth>,
    connected: Arc<Notify>,
    stop_feed: CancellationToken,
    feed: JoinHandle<()>,
    feed_ended: CancellationToken,
    feed_error: Arc<Mutex<Option<String>>>,
    prompts: Option<JoinHandle<()>>,
    admin_addr: Option<SocketAddr>,
    stop_admin: CancellationToken,
    admin: Option<JoinHandle<std::io::Result<()>>>,
}

impl Serving {
    /// Starts the bridge `settings` select (codex-manager, or `codex app-server` with `--app-server`): connects,
    /// opens the sessions, starts the feed and the admin endpoint.
    pub async fn start(settings: ServeSettings, catalog: Catalog) -> Result<Self, ServeError> {
        let runtime = runtime_for(&settings)?;
        Self::start_with(runtime, BridgeSettings::from(&settings), catalog).await
    }

    /// Starts a bridge over any upstream.
    pub async fn start_with(
        runtime: Arc<dyn UpstreamRuntime>,
        settings: BridgeSettings,
        catalog: Catalog,
    ) -> Result<Self, ServeError> {
        let stats = Arc::new(BridgeStats::new());
        let health = Arc::new(BridgeHealth::new());
        let config = DispatchConfig {
            concurrency: settings.concurrency,
            ..DispatchConfig::default()
        };
        let dispatcher = Dispatcher::with_stats(catalog.clone(), runtime.answerer(), config, Arc::clone(&stats));

        // The admin endpoint is bound before any session exists, so a taken port fails fast and leaves nothing
        // behind; /readyz says 503 until the sessions are open and the upstream is connected.
        let stop_admin = CancellationToken::new();
        let (admin_addr, admin) = match settings.admin_addr {
            Some(addr) => {
                let token = settings.admin_token.as_ref().and_then(|t| AdminToken::new(t.expose()));
                let state = AdminState::new(catalog.clone(), Arc::clone(&stats), Arc::clone(&health), token);
                let stop = stop_admin.clone();
                let (bound, server) = admin::bind(addr, state, async move { stop.cancelled().await }).await?;
                tracing::info!(addr = %bound, "admin endpoint listening");
                (Some(bound), Some(tokio::spawn(server)))
            }
            None => (None, None),
        };

        let sessions = match runtime.open(&catalog).await {
            Ok(sessions) => sessions,
            Err(error) => {
                stop_admin.cancel();
                return Err(error);
            }
        };
        for session in &sessions {
            health.add_session(session.clone());
        }

        let connected = Arc::new(Notify::new());
        let stop_feed = CancellationToken::new();
        // Registered before the feed starts, so the first ready frame cannot be missed.
        let first_connect = Arc::clone(&connected).notified_owned();
        let feeding = runtime.feed(
            dispatcher.clone(),
            Arc::clone(&health),
            Arc::clone(&connected),
            stop_feed.clone(),
        );
        let feed_ended = CancellationToken::new();
        let feed_error = Arc::new(Mutex::new(None));
        let (ended, error) = (feed_ended.clone(), Arc::clone(&feed_error));
        let feed = tokio::spawn(async move {
            *lock(&error) = feeding.await;
            ended.cancel();
        });
        let prompts = settings.prompt.clone().map(|prompt| {
            let runtime = Arc::clone(&runtime);
            let created: Vec<String> = sessions.iter().filter(|s| s.created).map(|s| s.id.clone()).collect();
            let stop = stop_feed.clone();
            tokio::spawn(async move {
                // Listening first means no event of the new turn is missed.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = first_connect => {}
                }
                for session in created {
                    if let Err(error) = runtime.send_prompt(&session, &prompt).await {
                        tracing::error!(%session, %error, "could not send the first prompt");
                    }
                }
            })
        });

        Ok(Self {
            runtime,
            settings,
            sessions,
            dispatcher,
            stats,
            health,
            connected,
            stop_feed,
            feed,
            feed_ended,
            feed_error,
            prompts,
            admin_addr,
            stop_admin,
            admin,
        })
    }

    /// The upstream's name (`codex-manager`, ..).
    pub fn upstream_name(&self) -> &'static str {
        self.runtime.name()
    }

    /// The sessions served.
    pub fn sessions(&self) -> &[ServedSession] {
        &self.sessions
    }

    /// Where the admin endpoint listens (the real port when the setting had port 0).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The bridge's statistics.
    pub fn stats(&self) -> &Arc<BridgeStats> {
        &self.stats
    }

    /// The bridge's health (connection, sessions).
    pub fn health(&self) -> &Arc<BridgeHealth> {
        &self.health
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Waits until the upstream is connected, at most `timeout`; `true` when it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.health.connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            // A ready frame wakes this at once; the short timeout covers a link that comes up without one.
            let notified = self.connected.notified();
            let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
        }
        true
    }

    /// Serves until `shutdown` completes (or the upstream feed ends by itself, e.g. a child process exited),
    /// then shuts down: stops taking calls, gives running ones the grace period, answers the rest
    /// `success:false`, deletes created sessions if asked, stops the admin endpoint.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> ServeReport {
        let upstream_ended = tokio::select! {
            _ = shutdown => false,
            _ = self.feed_ended.cancelled() => true,
        };
        let upstream_error = if upstream_ended {
            let error = lock(&self.feed_error).take();
            tracing::error!(
                upstream = self.runtime.name(),
                reason = error.as_deref().unwrap_or("unknown"),
                "the upstream feed stopped; shutting down"
            );
            error
        } else {
            None
        };
        let mut report = self.shutdown().await;
        report.upstream_ended = upstream_ended;
        report.upstream_error = upstream_error;
        report
    }

    /// Shuts down now (see [`run_until`](Self::run_until)).
    pub async fn shutdown(self) -> ServeReport {
        let in_flight = self.dispatcher.in_flight();
        tracing::info!(in_flight, grace = ?self.settings.grace, "shutting down: no new calls are taken");
        self.stop_feed.cancel();
        if let Some(prompts) = self.prompts {
            prompts.abort();
        }
        let grace = self.settings.grace;
        let (cancelled, answers_abandoned) =
            match tokio::time::timeout(grace + ANSWER_DEADLINE_AFTER_GRACE, self.dispatcher.shutdown(grace)).await {
                Ok(report) => (report.cancelled, false),
                Err(_) => {
                    tracing::error!(
                        unanswered = self.dispatcher.in_flight(),
                        "answers could not be delivered in time; those calls stay pending upstream"
                    );
                    (self.dispatcher.in_flight().max(0) as usize, true)
                }
            };
        if cancelled > 0 {
            tracing::warn!(
                cancelled,
                "calls still running after the grace period were answered success:false"
            );
        }
        if tokio::time::timeout(FEED_CLOSE_TIMEOUT, self.feed).await.is_err() {
            tracing::warn!("the upstream feed did not close in time");
        }
        let deleted = self.runtime.close(self.settings.delete_on_exit).await;
        self.stop_admin.cancel();
        if let Some(admin) = self.admin {
            match tokio::time::timeout(FEED_CLOSE_TIMEOUT, admin).await {
                Ok(Ok(Err(error))) => tracing::warn!(%error, "admin endpoint ended with an error"),
                Err(_) => tracing::warn!("admin endpoint did not stop in time"),
                _ => {}
            }
        }
        tracing::info!("stopped");
        ServeReport {
            sessions: self.sessions,
            cancelled,
            answers_abandoned,
            deleted,
            upstream_ended: false,
            upstream_error: None,
        }
    }
}

/// Starts the bridge `settings` select and serves until `shutdown` completes.
pub async fn serve_with(
    settings: ServeSettings,
    catalog: Catalog,
    shutdown: impl Future<Output = ()>,
) -> Result<ServeReport, ServeError> {
    let serving = Serving::start(settings, catalog).await?;
    Ok(serving.run_until(shutdown).await)
}

/// Completes on the first SIGINT or SIGTERM. Install it before anything slow, so an early signal is not lost.
pub struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). Does nothing when a subscriber is already set.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

impl ServeArgs {
    /// Runs `skillbridge serve` (see [`run`]).
    pub async fn run(self) -> ExitCode {
        run(self).await
    }
}

/// `skillbridge serve`: exit 0 after a signal-initiated shutdown, 1 when startup fails or the upstream stops by
/// itself, 2 for unusable settings.
pub async fn run(args: ServeArgs) -> ExitCode {
    init_logging();
    let mut signals = match ShutdownSignals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("skillbridge serve: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let settings = match ServeSettings::resolve(&args, &|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("skillbridge serve: {error}");
            return ExitCode::from(2);
        }
    };
    let catalog = match Catalog::from_registry() {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("skillbridge serve: {error}");
            return ExitCode::FAILURE;
        }
    };
    match &settings.app_server {
        Some(app_server) => {
            tracing::info!(skills = catalog.len(), program = %app_server.program.display(), "starting codex app-server")
        }
        None => tracing::info!(skills = catalog.len(), manager = %settings.manager.base_url(), "starting"),
    }
    let runtime = match runtime_for(&settings) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("skillbridge serve: {error}");
            return ExitCode::FAILURE;
        }
    };
    let bridge_settings = BridgeSettings::from(&settings);
    let delete_on_exit = settings.delete_on_exit;
    let serving = tokio::select! {
        started = Serving::start_with(Arc::clone(&runtime), bridge_settings, catalog) => match started {
            Ok(serving) => serving,
            Err(error) => {
                eprintln!("skillbridge serve: {error}");
                return ExitCode::FAILURE;
            }
        },
        signal = signals.recv() => {
            // Startup is abandoned midway; sessions created so far are cleaned up as on a normal exit.
            eprintln!("skillbridge serve: {signal} during startup; stopping");
            runtime.close(delete_on_exit).await;
            return ExitCode::SUCCESS;
        }
    };
    print_started(&serving);
    let serving_name = serving.upstream_name();
    let report = serving
        .run_until(async {
            let signal = signals.recv().await;
            tracing::info!(signal, "received");
        })
        .await;
    if report.answers_abandoned {
        eprintln!("skillbridge serve: some answers could not be delivered before exit; those calls stay pending");
    }
    if report.upstream_ended {
        match &report.upstream_error {
            Some(reason) => eprintln!("skillbridge serve: the {serving_name} upstream stopped: {reason}"),
            None => eprintln!("skillbridge serve: the {serving_name} upstream stopped"),
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `session <id>` per served session, then `admin http://<addr>` when the endpoint is on (its real port, useful
/// with `--admin 127.0.0.1:0`).
fn print_started(serving: &Serving) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for session in serving.sessions() {
        let _ = writeln!(out, "session {}", session.id);
    }
    if let Some(addr) = serving.admin_addr() {
        let _ = writeln!(out, "admin http://{addr}");
    }
    let _ = out.flush();
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
