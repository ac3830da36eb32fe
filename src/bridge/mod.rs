//! The [`Bridge`]: skills served to Codex through an [`Upstream`], built from code. `skillbridge serve` and
//! `skillbridge send` are this, with settings from the command line.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use skillbridge::manager::CodexManager;
//! use skillbridge::{Bridge, Catalog, CodexManagerUpstream};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = CodexManager::from_env()?;
//! let bridge = Bridge::builder()
//!     .catalog(Catalog::from_registry()?)
//!     .upstream(CodexManagerUpstream::new(client).sessions(3))
//!     .concurrency(64)
//!     .grace(Duration::from_secs(10))
//!     .build()?;
//!
//! // The admin routes (health, readiness, metrics, skills, calls) inside your own axum app.
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my service" }))
//!     .nest("/skillbridge", bridge.admin_router());
//! # let _ = app;
//!
//! // One turn, as `skillbridge send` runs it: the reply, and how the turn ended.
//! let reply = bridge.send("How many words are in 'to be'?").await?;
//! println!("{:?}: {}", reply.end, reply.reply.unwrap_or_default());
//!
//! // Serve until the token is cancelled (on SIGTERM, say), then shut down gracefully.
//! let shutdown = CancellationToken::new();
//! bridge.run(shutdown.cancelled()).await?;
//! # Ok(()) }
//! ```
//!
//! Inside, a call flows: the upstream's [`Feed`] → the dispatcher (deduplicated by a
//! bounded ledger, at most `concurrency` skills at once) → the skill → [`Upstream::answer`], with retries. Every
//! accepted call is answered once; the upstream's socket never waits for a skill.

mod cluster;
mod dispatcher;
mod journal;
mod run;
mod send;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use cluster::{ClusterConfig, DEFAULT_GROUP, DEFAULT_LEASE};
pub use dispatcher::RetryPolicy;
pub use journal::JournalError;
pub use run::ServeReport;
pub use send::{SendTurn, TurnEnd, TurnReply};

use crate::admin::{AdminError, AdminToken};
use crate::skill::{Catalog, CatalogError, RuntimeSkill, States};
use crate::telemetry::{BridgeHealth, BridgeStats, ServedSession};
use crate::upstream::{Feed, TurnTracker, Upstream, UpstreamError};
use dispatcher::{DispatchConfig, Dispatcher};

/// Skills running at once, at most, unless set.
pub(crate) const DEFAULT_CONCURRENCY: usize = 64;
/// How long running calls may finish on shutdown, unless set.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Why a bridge could not be built, start, or run a turn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// [`BridgeBuilder::build`] without an upstream.
    #[error("the bridge has no upstream: set one with Bridge::builder().upstream(..)")]
    NoUpstream,
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The registered skills do not form a catalog.
    #[error("the skills cannot be served: {0}")]
    Catalog(#[from] CatalogError),
    /// The admin endpoint could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The upstream could not open its sessions, or refused a request.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The group's store could not be reached for the whole [startup timeout](BridgeBuilder::startup_timeout).
    #[error("gave up after waiting {} for the cluster store: {reason}", crate::skill::format_duration(*waited))]
    ClusterNotReady {
        /// How long the bridge waited.
        waited: Duration,
        /// Why the last attempt failed.
        reason: String,
    },
    /// The upstream could not be reached for the whole [startup timeout](BridgeBuilder::startup_timeout).
    #[error("gave up after waiting {} for {upstream}: {source}", crate::skill::format_duration(*waited))]
    UpstreamNotReady {
        /// The upstream's name.
        upstream: &'static str,
        /// How long the bridge waited.
        waited: Duration,
        /// Why the last attempt failed.
        source: Box<UpstreamError>,
    },
    /// The upstream did not connect in time, so a turn's events could not be followed.
    #[error("the {upstream} upstream did not connect within {after:?}")]
    NotConnected {
        /// The upstream's name.
        upstream: &'static str,
        /// How long the bridge waited.
        after: Duration,
    },
    /// A turn was asked for, but the bridge serves no session.
    #[error("the bridge serves no session to send the message to")]
    NoSession,
    /// The upstream stopped by itself (its child process exited), so the bridge stopped too.
    #[error("the {upstream} upstream stopped: {reason}")]
    UpstreamStopped {
        /// The upstream's name.
        upstream: &'static str,
        /// Why, as far as it said.
        reason: String,
    },
    /// The bridge was shut down and cannot start again.
    #[error("the bridge was shut down")]
    ShutDown,
}

/// Builds a [`Bridge`]; see the [module docs](self) for an example.
#[must_use]
pub struct BridgeBuilder {
    catalog: Option<Catalog>,
    skills: Vec<RuntimeSkill>,
    states: States,
    upstream: Option<Arc<dyn Upstream>>,
    concurrency: usize,
    grace: Duration,
    retry: RetryPolicy,
    prompt: Option<String>,
    admin_addr: Option<SocketAddr>,
    admin_token: Option<AdminToken>,
    journal: Option<PathBuf>,
    cluster: Option<ClusterConfig>,
    startup_timeout: Duration,
    record_arguments: bool,
}

impl BridgeBuilder {
    /// The skills to serve (default: [`Catalog::from_registry_with`] the [states](Self::state), every `#[skill]`
    /// of the binary). The states given to the builder are added to the catalog's.
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Adds a skill built at run time to the catalog (the given [`catalog`](Self::catalog) or the registry's). A
    /// name another skill has makes [`build`](Self::build) fail, naming both.
    pub fn skill(mut self, skill: RuntimeSkill) -> Self {
        self.skills.push(skill);
        self
    }

    /// Adds skills built at run time (see [`skill`](Self::skill)).
    pub fn skills(mut self, skills: impl IntoIterator<Item = RuntimeSkill>) -> Self {
        self.skills.extend(skills);
        self
    }

    /// Supplies `value` to every skill that takes a [`State<T>`](crate::State) (replacing an earlier `T`). A
    /// skill whose state is not supplied makes [`build`](Self::build) fail, before anything connects.
    ///
    /// ```standalone_crate
    /// use skillbridge::{Bridge, State, skill};
    ///
    /// struct Pool;
    ///
    /// /// Pings the database.
    /// #[skill]
    /// async fn ping(pool: State<Pool>) -> &'static str {
    ///     let _ = &*pool;
    ///     "pong"
    /// }
    ///
    /// # fn upstream() -> skillbridge::AppServerUpstream {
    /// #     skillbridge::AppServerUpstream::new(skillbridge::upstream::app_server::AppServerCommand::new("codex"))
    /// # }
    /// let error = Bridge::builder().upstream(upstream()).build().unwrap_err();
    /// assert!(error.to_string().contains("skill `ping` needs State<"), "{error}");
    /// let bridge = Bridge::builder().upstream(upstream()).state(Pool).build().unwrap();
    /// assert!(bridge.catalog().states().get::<Pool>().is_some());
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Supplies every state of `states` (see [`state`](Self::state)); use it to share a
    /// [`State`](crate::State) you keep, or to pass [`States::choices`].
    pub fn states(mut self, states: States) -> Self {
        self.states.extend(states);
        self
    }

    /// Where calls come from and answers go: [`CodexManagerUpstream`](crate::CodexManagerUpstream),
    /// [`AppServerUpstream`](crate::AppServerUpstream), or an [`Upstream`] of your own.
    pub fn upstream(mut self, upstream: impl Upstream) -> Self {
        self.upstream = Some(Arc::new(upstream));
        self
    }

    /// Skills running at once, at most (default 64); further calls wait for a slot without holding up the
    /// upstream.
    pub fn concurrency(mut self, skills: usize) -> Self {
        self.concurrency = skills;
        self
    }

    /// How long running calls may finish on shutdown before they are cancelled and answered `success:false`
    /// (default 10 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How failed answers are retried (default: 8 attempts, 100 ms doubling to 5 s).
    pub fn answer_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A message sent to each session the bridge creates once it is connected, so work starts right away.
    pub fn prompt(mut self, text: impl Into<String>) -> Self {
        self.prompt = Some(text.into());
        self
    }

    /// Serves the admin routes on their own address when the bridge starts (port 0 picks a free one, see
    /// [`Bridge::admin_addr`]). A non-loopback address needs an [`admin_token`](Self::admin_token).
    pub fn admin_addr(mut self, addr: SocketAddr) -> Self {
        self.admin_addr = Some(addr);
        self
    }

    /// The bearer token the admin routes require (all but `/healthz` and `/readyz`); it also enables
    /// `POST /skills/{name}/invoke`.
    pub fn admin_token(mut self, token: AdminToken) -> Self {
        self.admin_token = Some(token);
        self
    }

    /// Joins a group of bridges that share calls and sessions through a Redis (or Valkey) store: each call runs on
    /// one bridge of the group (claimed, with a lease renewed while it runs; a bridge that dies has its calls taken
    /// over once the lease runs out), each result is stored before it is answered, and every bridge serves the
    /// sessions any of them created. Needs an upstream whose sessions can be shared (codex-manager). While the
    /// store cannot be reached the bridge runs no new call and `/readyz` says why.
    pub fn cluster(mut self, cluster: ClusterConfig) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Records each call's result in a journal file before it is answered, so that after a crash and a restart
    /// with the same file a call that had completed is answered with its recorded result instead of running
    /// again. Without one, a crash re-runs the skills of calls that were in flight.
    pub fn journal(mut self, path: impl Into<PathBuf>) -> Self {
        self.journal = Some(path.into());
        self
    }

    /// Keeps each recent call's arguments (at most 4 KiB of JSON each; parameters marked `#[skill(redact)]` as
    /// `"<redacted>"`), so that `GET /calls/{request_id}` shows them and `skillbridge call --replay` can run the call
    /// again. Off by default: arguments may hold what an operator should not see.
    pub fn record_arguments(mut self, record: bool) -> Self {
        self.record_arguments = record;
        self
    }

    /// How long [`start`](Bridge::start) keeps trying to open the upstream while it cannot be reached (refused,
    /// unresolvable, answering 5xx), with backoff, logging each failed attempt (default: zero, fail at the first).
    /// Meanwhile the admin endpoint is up and `/readyz` says what the bridge waits for. Other failures, such as a
    /// refused token, end the start at once.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Checks the settings, opens the journal, and builds the bridge; nothing connects until it
    /// [starts](Bridge::start).
    pub fn build(self) -> Result<Bridge, BridgeError> {
        let upstream = self.upstream.ok_or(BridgeError::NoUpstream)?;
        if self.concurrency == 0 {
            return Err(BridgeError::Invalid("the concurrency must be at least 1".into()));
        }
        let catalog = match self.catalog {
            Some(catalog) => catalog.extended(self.states, self.skills)?,
            None => Catalog::builder().states(self.states).skills(self.skills).build()?,
        };
        let stats = Arc::new(BridgeStats::new());
        let health = Arc::new(BridgeHealth::new());
        let turns = Arc::new(TurnTracker::new());
        let config = DispatchConfig {
            concurrency: self.concurrency,
            retry: self.retry,
            record_arguments: self.record_arguments,
            ..DispatchConfig::default()
        };
        let cluster = match self.cluster {
            Some(config) => {
                if !upstream.join_group() {
                    return Err(BridgeError::Invalid(format!(
                        "the {} upstream cannot share its sessions with a group of bridges; a cluster needs \
                         codex-manager",
                        upstream.name()
                    )));
                }
                let cluster = Arc::new(cluster::Cluster::new(config).map_err(BridgeError::Invalid)?);
                health.attach_cluster(Arc::clone(cluster.status()));
                Some(cluster)
            }
            None => None,
        };
        let journal = self.journal.as_deref().map(journal::Journal::open).transpose()?;
        let store = store::CallStore::new(config.ledger_capacity, journal);
        let dispatcher = Dispatcher::new(
            catalog.clone(),
            Arc::clone(&upstream),
            config,
            store,
            cluster.clone(),
            Arc::clone(&stats),
        );
        let feed = Feed::new(Arc::new(dispatcher.clone()), Arc::clone(&health), Arc::clone(&turns));
        Ok(Bridge {
            inner: Arc::new(Inner {
                catalog,
                upstream,
                dispatcher,
                stats,
                health,
                feed,
                grace: self.grace,
                prompt: self.prompt,
                admin_addr: self.admin_addr,
                admin_token: self.admin_token,
                startup_timeout: self.startup_timeout,
                cluster,
                phase: tokio::sync::Mutex::new(run::Phase::Built),
            }),
        })
    }
}

/// Skills served to Codex through an upstream; cheap to clone, clones share the bridge.
///
/// Build one with [`Bridge::builder`]; [`run`](Self::run) serves until a token is cancelled,
/// [`send`](Self::send) runs one turn, [`admin_router`](Self::admin_router) gives the admin routes to mount in
/// another axum app.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    upstream: Arc<dyn Upstream>,
    dispatcher: Dispatcher,
    stats: Arc<BridgeStats>,
    health: Arc<BridgeHealth>,
    feed: Feed,
    grace: Duration,
    prompt: Option<String>,
    admin_addr: Option<SocketAddr>,
    admin_token: Option<AdminToken>,
    startup_timeout: Duration,
    cluster: Option<Arc<cluster::Cluster>>,
    phase: tokio::sync::Mutex<run::Phase>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("upstream", &self.inner.upstream.name())
            .field("skills", &self.inner.catalog.len())
            .field("health", &self.inner.health)
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// A builder with the defaults: every registered skill, concurrency 64, grace 10 s, no admin address.
    pub fn builder() -> BridgeBuilder {
        BridgeBuilder {
            catalog: None,
            skills: Vec::new(),
            states: States::new(),
            upstream: None,
            concurrency: DEFAULT_CONCURRENCY,
            grace: DEFAULT_GRACE,
            retry: RetryPolicy::default(),
            prompt: None,
            admin_addr: None,
            admin_token: None,
            journal: None,
            cluster: None,
            startup_timeout: Duration::ZERO,
            record_arguments: false,
        }
    }

    /// The skills it serves.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The upstream's name (`codex-manager`, `app-server`).
    pub fn upstream_name(&self) -> &'static str {
        self.inner.upstream.name()
    }

    /// The sessions served now (a restarted `codex app-server` serves fresh threads).
    pub fn sessions(&self) -> Vec<ServedSession> {
        self.inner.health.sessions()
    }

    /// What the bridge has done: calls by skill and outcome, durations, recent calls.
    pub fn stats(&self) -> &Arc<BridgeStats> {
        &self.inner.stats
    }

    /// Readiness: the upstream link and the sessions.
    pub fn health(&self) -> &Arc<BridgeHealth> {
        &self.inner.health
    }

    /// The admin routes (`/healthz`, `/readyz`, `/metrics`, `/skills`, `/sessions`, `/calls`), ready to
    /// [`nest`](axum::Router::nest) in another axum app; guarded by the [admin token](BridgeBuilder::admin_token).
    pub fn admin_router(&self) -> axum::Router {
        crate::admin::router(self.admin_state())
    }

    fn admin_state(&self) -> crate::admin::AdminState {
        crate::admin::AdminState::new(
            self.inner.catalog.clone(),
            Arc::clone(&self.inner.stats),
            Arc::clone(&self.inner.health),
            self.inner.admin_token.clone(),
        )
    }
}
