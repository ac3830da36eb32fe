//! The upstream-specific half of serve: [`UpstreamRuntime`] and its two implementations,
//! [`CodexManagerRuntime`] (sessions over REST, calls from the websocket stream and pending-call listing) and
//! [`AppServerRuntime`] (a `codex app-server` child it spawns, restarts if asked, and terminates). The dispatcher,
//! the admin endpoint and the statistics ([`Serving`](super::serving::Serving)) are shared by both.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::settings::{AppServerSettings, ServeSettings, SessionTemplate};
use crate::bridge::{BridgeHealth, Dispatcher, ServedSession};
use crate::manager::{CodexManager, ManagerError, SendMessage};
use crate::skill::{Catalog, ToolFlavor};
use crate::stream::{Frame, HandlerContext, Router};
use crate::upstream::Upstream;
use crate::upstream::app_server::{AppServerSupervisor, ChildState, RestartPolicy, SupervisorConfig, ToolCallSink};
use crate::upstream::codex_manager::{CodexManagerFeed, CodexManagerUpstream, SessionScope};

use super::serving::ServeError;
use crate::sync::lock;

/// How long a `codex app-server` child gets to exit after its input is closed, before it is killed.
pub const APP_SERVER_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The upstream-specific half of serve. The dispatcher, admin endpoint and statistics are shared; an upstream
/// only opens its sessions, feeds tool calls into the dispatcher, sends first prompts and cleans up.
/// [`CodexManagerRuntime`] is the codex-manager implementation, [`AppServerRuntime`] the `codex app-server` one;
/// either plugs into [`Serving::start_with`](super::serving::Serving::start_with).
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
