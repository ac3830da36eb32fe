//! A bridge's life: [`Bridge::start`] (admin endpoint, sessions, the upstream's feed, the first prompts),
//! [`Bridge::run`] (serve until shutdown or until the upstream stops by itself) and [`Bridge::shutdown`] (stop
//! taking calls, give running ones the grace period, close the upstream, stop the admin endpoint).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Bridge, BridgeError};
use crate::admin;
use crate::telemetry::ServedSession;
use crate::util::{Backoff, format_duration_approx, lock};

/// The waits between attempts at opening the upstream at start-up.
const STARTUP_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(5),
};

/// How long the answers of calls cancelled at the end of the grace period may take to deliver before the bridge
/// stops anyway (the calls then stay pending upstream, where the next bridge finds them).
const ANSWER_DEADLINE_AFTER_GRACE: Duration = Duration::from_secs(2);

/// How long the upstream's feed and the admin endpoint get to stop on shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a finished bridge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// The sessions served at the end.
    pub sessions: Vec<ServedSession>,
    /// Calls taken since start.
    pub taken: usize,
    /// Calls answered.
    pub answered: usize,
    /// Calls still running or waiting when the grace period ended (answered `success:false`).
    pub cancelled: usize,
    /// Calls seen while shutting down: not taken, they stay pending upstream for the next bridge.
    pub left_pending: usize,
    /// Calls whose answer could not be delivered (the upstream refused it or stayed unreachable).
    pub undeliverable: usize,
    /// `true` when some answers were still being delivered when the bridge gave up waiting; those calls stay
    /// pending upstream.
    pub answers_abandoned: bool,
    /// The sessions deleted on exit (`codex app-server` threads: archived).
    pub deleted: Vec<String>,
}

impl ServeReport {
    /// `true` when every call taken was answered (or settled by the upstream).
    pub fn all_answered(&self) -> bool {
        self.undeliverable == 0 && !self.answers_abandoned
    }
}

/// Where a bridge is in its life.
pub(super) enum Phase {
    Built,
    Running(Running),
    Stopped(ServeReport),
}

/// What a started bridge runs.
pub(super) struct Running {
    stop_feed: CancellationToken,
    feed: JoinHandle<()>,
    /// Cancelled when the upstream's `run` returned, by itself or on `stop_feed`.
    pub(super) feed_ended: CancellationToken,
    feed_error: Arc<Mutex<Option<String>>>,
    prompts: Option<JoinHandle<()>>,
    admin_addr: Option<SocketAddr>,
    stop_admin: CancellationToken,
    admin: Option<JoinHandle<std::io::Result<()>>>,
    /// The heartbeats of a bridge in a group, stopped after the upstream closed (so that the sessions it deleted
    /// leave the group's registry).
    members: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Bridge {
    /// Starts serving, once: binds the admin address (when set), opens the upstream's sessions, starts taking
    /// calls, and sends the first prompt to created sessions once connected. Calling it again does nothing;
    /// [`run`](Self::run) and [`send`](Self::send) call it. A failure leaves nothing behind.
    pub async fn start(&self) -> Result<(), BridgeError> {
        let mut phase = self.inner.phase.lock().await;
        match &*phase {
            Phase::Running(_) => return Ok(()),
            Phase::Stopped(_) => return Err(BridgeError::ShutDown),
            Phase::Built => {}
        }
        *phase = Phase::Running(self.launch().await?);
        Ok(())
    }

    /// Opens the upstream; while it cannot be reached, tries again with backoff until the startup timeout has
    /// passed, logging each failed attempt with its cause and telling `/readyz` what it waits for.
    async fn open_upstream(&self) -> Result<Vec<ServedSession>, BridgeError> {
        let inner = &self.inner;
        let name = inner.upstream.name();
        let started = tokio::time::Instant::now();
        let mut failures = 0;
        let outcome = loop {
            let error = match inner.upstream.open(&inner.catalog).await {
                Ok(sessions) => break Ok(sessions),
                Err(error) if error.is_transient() && !inner.startup_timeout.is_zero() => error,
                Err(error) => break Err(error.into()),
            };
            let left = inner.startup_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                break Err(BridgeError::UpstreamNotReady {
                    upstream: name,
                    waited: inner.startup_timeout,
                    source: Box::new(error),
                });
            }
            failures += 1;
            let delay = STARTUP_BACKOFF.delay(failures).min(left);
            // Before the log line, so that whoever reads it finds /readyz saying the same.
            inner.health.waiting_for_upstream(Some(error.to_string()));
            tracing::warn!(
                "{error}; trying again in {} (start-up gives up after {})",
                format_duration_approx(delay),
                crate::skill::format_duration(inner.startup_timeout),
            );
            tokio::time::sleep(delay).await;
        };
        inner.health.waiting_for_upstream(None);
        if outcome.is_ok() && failures > 0 {
            let waited = format_duration_approx(started.elapsed());
            tracing::info!("{name} is up after {waited} and {failures} failed attempts");
        }
        outcome
    }

    /// Connects to the group's store, trying again with backoff until the startup timeout has passed, as for the
    /// upstream.
    async fn join_cluster(&self, cluster: &super::cluster::Cluster) -> Result<(), BridgeError> {
        let inner = &self.inner;
        let started = tokio::time::Instant::now();
        let mut failures = 0;
        loop {
            let reason = match cluster.connect().await {
                Ok(()) => break,
                Err(reason) => reason,
            };
            let left = inner.startup_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(BridgeError::ClusterNotReady {
                    waited: inner.startup_timeout,
                    reason,
                });
            }
            failures += 1;
            let delay = STARTUP_BACKOFF.delay(failures).min(left);
            tracing::warn!(
                "{reason}; trying again in {} (start-up gives up after {})",
                format_duration_approx(delay),
                crate::skill::format_duration(inner.startup_timeout),
            );
            tokio::time::sleep(delay).await;
        }
        let status = cluster.status();
        tracing::info!(group = status.group(), bridge = status.name(), store = %cluster.store(), "joined the group");
        Ok(())
    }

    async fn launch(&self) -> Result<Running, BridgeError> {
        let inner = &self.inner;
        // Bound before any session exists, so a taken port fails fast and leaves nothing behind; /readyz says 503
        // until the sessions are open and the upstream is connected.
        let stop_admin = CancellationToken::new();
        // Stops the admin endpoint if starting fails or is abandoned midway (the future dropped).
        let abandoned = stop_admin.clone().drop_guard();
        let (admin_addr, admin) = match inner.admin_addr {
            Some(addr) => {
                let stop = stop_admin.clone();
                let (bound, server) =
                    admin::bind(addr, self.admin_state(), async move { stop.cancelled().await }).await?;
                tracing::info!(addr = %bound, "admin endpoint listening");
                (Some(bound), Some(tokio::spawn(server)))
            }
            None => (None, None),
        };
        if let Some(cluster) = &inner.cluster {
            self.join_cluster(cluster).await?;
        }
        let sessions = self.open_upstream().await?;
        for session in &sessions {
            inner.health.add_session(session.clone());
        }
        let members = inner.cluster.as_ref().map(|cluster| {
            let members = super::cluster::Members::new(
                Arc::clone(cluster),
                Arc::clone(&inner.upstream),
                Arc::clone(&inner.stats),
                Arc::clone(&inner.health),
            );
            let stop = CancellationToken::new();
            (stop.clone(), tokio::spawn(members.run(stop)))
        });

        let stop_feed = CancellationToken::new();
        // Subscribed before the feed starts, so the first connect cannot be missed.
        let connects = inner.feed.connects();
        let feed_ended = CancellationToken::new();
        let feed_error = Arc::new(Mutex::new(None));
        let feed = {
            let (upstream, feed, stop) = (Arc::clone(&inner.upstream), inner.feed.clone(), stop_feed.clone());
            let (ended, error) = (feed_ended.clone(), Arc::clone(&feed_error));
            tokio::spawn(async move {
                if let Err(reason) = upstream.run(feed, stop).await {
                    *lock(&error) = Some(reason.to_string());
                }
                ended.cancel();
            })
        };
        let prompts = inner.prompt.clone().map(|prompt| {
            let upstream = Arc::clone(&inner.upstream);
            let created: Vec<String> = sessions.iter().filter(|s| s.created).map(|s| s.id.clone()).collect();
            let stop = stop_feed.clone();
            let mut connects = connects;
            tokio::spawn(async move {
                // Listening first means no event of the new turn is missed.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = connects.wait_for(|count| *count > 0) => {}
                }
                for session in created {
                    match upstream.start_turn(&session, &prompt).await {
                        Ok(turn) => tracing::info!(%session, %turn, "sent the first prompt"),
                        Err(error) => tracing::error!(%session, %error, "could not send the first prompt"),
                    }
                }
            })
        });
        abandoned.disarm();
        Ok(Running {
            stop_feed,
            feed,
            feed_ended,
            feed_error,
            prompts,
            admin_addr,
            stop_admin,
            admin,
            members,
        })
    }

    /// Where the bridge's own admin endpoint listens, once started (the real port when the address had port 0).
    pub async fn admin_addr(&self) -> Option<SocketAddr> {
        match &*self.inner.phase.lock().await {
            Phase::Running(running) => running.admin_addr,
            _ => None,
        }
    }

    /// Waits until the upstream is connected, at most `timeout`; `true` when it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut connects = self.inner.feed.connects();
        let connected = async {
            while !self.inner.health.connected() {
                if connects.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, connected).await.is_ok()
    }

    /// Starts (see [`start`](Self::start)) and serves until `shutdown` completes, then shuts down (see
    /// [`shutdown`](Self::shutdown)). If the upstream stops by itself first, the bridge shuts down as well: with
    /// [`BridgeError::UpstreamStopped`] and its reason when it failed (its child process exited), normally when its
    /// client was done (an MCP client on stdio closed it).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<ServeReport, BridgeError> {
        self.start().await?;
        let ended = self.feed_ended().await;
        let upstream_ended = tokio::select! {
            _ = shutdown => false,
            _ = ended.cancelled() => true,
        };
        if !upstream_ended {
            return Ok(self.shutdown().await);
        }
        let Some(reason) = self.feed_error().await else {
            // Ended by itself without an error: its client is done (an MCP client closed stdin).
            tracing::info!(
                upstream = self.upstream_name(),
                "the upstream's client is gone; shutting down"
            );
            return Ok(self.shutdown().await);
        };
        tracing::error!(upstream = self.upstream_name(), %reason, "the upstream stopped; shutting down");
        self.shutdown().await;
        Err(BridgeError::UpstreamStopped {
            upstream: self.upstream_name(),
            reason,
        })
    }

    /// Cancelled once the upstream's feed ended (never, for a bridge that is not running).
    pub(super) async fn feed_ended(&self) -> CancellationToken {
        match &*self.inner.phase.lock().await {
            Phase::Running(running) => running.feed_ended.clone(),
            Phase::Built => CancellationToken::new(),
            Phase::Stopped(_) => {
                let ended = CancellationToken::new();
                ended.cancel();
                ended
            }
        }
    }

    pub(super) async fn feed_error(&self) -> Option<String> {
        match &*self.inner.phase.lock().await {
            Phase::Running(running) => lock(&running.feed_error).clone(),
            _ => None,
        }
    }

    /// Shuts down: stops taking calls, lets running ones finish for the grace period, cancels the rest and
    /// answers them `success:false`, closes the upstream (ending its child process, deleting the sessions it was
    /// told to), and stops the admin endpoint. Calling it again returns the same report.
    pub async fn shutdown(&self) -> ServeReport {
        let mut phase = self.inner.phase.lock().await;
        let running = match std::mem::replace(&mut *phase, Phase::Stopped(ServeReport::default())) {
            Phase::Running(running) => running,
            Phase::Stopped(report) => {
                *phase = Phase::Stopped(report.clone());
                return report;
            }
            Phase::Built => {
                // A start abandoned midway may have created sessions: they are cleaned up as on a normal exit.
                let report = ServeReport {
                    deleted: self.inner.upstream.close().await,
                    ..ServeReport::default()
                };
                *phase = Phase::Stopped(report.clone());
                return report;
            }
        };
        let report = self.stop(running).await;
        *phase = Phase::Stopped(report.clone());
        report
    }

    async fn stop(&self, running: Running) -> ServeReport {
        let inner = &self.inner;
        let dispatcher = &inner.dispatcher;
        tracing::info!(in_flight = dispatcher.in_flight(), grace = ?inner.grace, "shutting down: no new calls are taken");
        running.stop_feed.cancel();
        if let Some(prompts) = running.prompts {
            prompts.abort();
        }
        let deadline = inner.grace + ANSWER_DEADLINE_AFTER_GRACE;
        let (calls, answers_abandoned) = match tokio::time::timeout(deadline, dispatcher.shutdown(inner.grace)).await {
            Ok(calls) => (calls, false),
            Err(_) => (dispatcher.counts(), true),
        };
        if tokio::time::timeout(STOP_TIMEOUT, running.feed).await.is_err() {
            tracing::warn!("the upstream feed did not stop in time");
        }
        let deleted = inner.upstream.close().await;
        if let Some((stop, members)) = running.members {
            stop.cancel();
            if tokio::time::timeout(STOP_TIMEOUT, members).await.is_err() {
                tracing::warn!("leaving the group did not finish in time");
            }
        }
        running.stop_admin.cancel();
        if let Some(admin) = running.admin {
            match tokio::time::timeout(STOP_TIMEOUT, admin).await {
                Ok(Ok(Err(error))) => tracing::warn!(%error, "admin endpoint ended with an error"),
                Err(_) => tracing::warn!("admin endpoint did not stop in time"),
                _ => {}
            }
        }
        let report = ServeReport {
            sessions: inner.health.sessions(),
            taken: calls.taken,
            answered: calls.answered,
            cancelled: calls.cancelled,
            left_pending: calls.left_pending,
            undeliverable: calls.undeliverable,
            answers_abandoned,
            deleted,
        };
        let summary = format!(
            "stopped: {} calls taken, {} answered, {} cancelled at the end of the grace period, {} left pending \
             for the next bridge, {} undeliverable",
            report.taken, report.answered, report.cancelled, report.left_pending, report.undeliverable
        );
        if report.all_answered() {
            tracing::info!("{summary}");
        } else {
            tracing::error!(answers_abandoned, "{summary}");
        }
        report
    }
}
