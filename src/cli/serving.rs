//! [`Serving`]: a running bridge: the dispatcher, the admin endpoint and the statistics around one
//! [`UpstreamRuntime`](super::runtime::UpstreamRuntime). [`Serving::start`] / [`Serving::start_with`] bring it
//! up, [`Serving::run_until`] serves until a shutdown future completes and shuts down; [`serve_with`] does both.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::settings::{Secret, ServeSettings, SettingsError};
use crate::admin::{self, AdminError, AdminState, AdminToken};
use crate::bridge::{BridgeHealth, BridgeStats, DispatchConfig, Dispatcher, ServedSession};
use crate::manager::ManagerError;
use crate::skill::Catalog;
use crate::upstream::app_server::AppServerError;

use super::runtime::{UpstreamRuntime, runtime_for};
use crate::sync::lock;

/// How long the answers of calls cancelled at the end of the grace period may take to deliver before serve
/// exits anyway (the calls then stay pending upstream, where the next bridge finds them).
pub const ANSWER_DEADLINE_AFTER_GRACE: Duration = Duration::from_secs(2);

/// How long the upstream feed gets to close its connection on shutdown.
const FEED_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

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
