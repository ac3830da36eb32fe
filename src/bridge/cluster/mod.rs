//! Several bridges as one service: a [`ClusterConfig`] names a Redis (or Valkey) store and a group; every bridge
//! of the group runs each call once ([`claims`]), serves the sessions any of them created, and knows the others
//! ([`members`]: heartbeats, the session registry).
//!
//! [`Cluster`] is what the dispatcher asks before running a call and tells after: claim, hold (the lease renewed
//! while the skill runs), complete (the result stored before the answer goes out). While the store cannot be
//! reached no call is claimed, so none runs: new calls stay pending upstream, `/readyz` says why, and calls
//! already running finish and are answered.

mod claims;
mod members;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::store::CallKey;
use crate::skill::ToolResult;
use crate::telemetry::{ClaimResult, ClusterStatus};
use crate::util::lock;
use claims::{Claim, Claims};
pub(crate) use members::Members;

/// The group bridges join unless told otherwise.
pub const DEFAULT_GROUP: &str = "skillbridge";

/// How long a claim lasts unless renewed, unless set: how long a dead bridge's calls wait before another takes
/// them over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// How soon a renewal that failed is tried again.
const RENEW_RETRY: Duration = Duration::from_millis(200);

/// How long one request to the store may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a group of bridges keeps its shared state, and who this bridge is in it.
///
/// ```
/// use std::time::Duration;
/// use skillbridge::ClusterConfig;
///
/// let cluster = ClusterConfig::new("redis://127.0.0.1:6379/0")
///     .group("helpdesk")
///     .lease(Duration::from_secs(5));
/// assert_eq!(cluster.group_name(), "helpdesk");
/// ```
#[derive(Clone, PartialEq)]
#[must_use]
pub struct ClusterConfig {
    url: String,
    group: String,
    name: Option<String>,
    lease: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("url", &self.redacted_url())
            .field("group", &self.group)
            .field("name", &self.name)
            .field("lease", &self.lease)
            .finish()
    }
}

impl ClusterConfig {
    /// The store at `url` (`redis://[:PASSWORD@]HOST:PORT/DB`, or `rediss://` for TLS), group `skillbridge`, a
    /// 10 s lease.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            group: DEFAULT_GROUP.to_owned(),
            name: None,
            lease: DEFAULT_LEASE,
        }
    }

    /// The group: bridges of one group share calls and sessions; groups on one store are independent.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// This bridge's name in the group (default: the host name and the process id), unique in the group.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long a claim lasts unless renewed (it is renewed every third of it while the skill runs): how long the
    /// calls of a bridge that died wait before another bridge runs them.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The group's name.
    pub fn group_name(&self) -> &str {
        &self.group
    }

    /// The store's URL with any password replaced by `<redacted>`, for logs and admin output.
    pub fn redacted_url(&self) -> String {
        crate::manager::redact_url(&self.url).into_owned()
    }

    /// Refuses what cannot work, before anything connects.
    pub(crate) fn check(&self) -> Result<(), String> {
        let url = self.redacted_url();
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            return Err(format!(
                "the cluster store must be a redis:// or rediss:// URL, not `{url}`"
            ));
        }
        if let Err(error) = redis::Client::open(self.url.as_str()) {
            return Err(format!("the cluster store URL `{url}` cannot be used: {error}"));
        }
        if self.group.is_empty() || self.group.contains([':', ' ', '{', '}']) {
            return Err(format!(
                "the cluster group `{}` must be a non-empty name without `:`, spaces or braces",
                self.group
            ));
        }
        if self.lease < Duration::from_millis(300) {
            return Err("the cluster lease must be at least 300ms".into());
        }
        Ok(())
    }

    fn member_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "bridge".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// What claiming a call came to, for the dispatcher.
pub(crate) enum Claimed {
    /// Run it; the lease is renewed until the hold is settled or dropped.
    Run(Hold),
    /// A bridge of the group ran it but did not deliver the answer: deliver this result instead, then settle.
    Ran(ToolResult, Hold),
    /// Not ours to run now (another bridge runs or answered it, or the store cannot be reached): leave it to them,
    /// or pending upstream.
    NotNow,
}

/// Results stored for the group while its store could not be reached, at most: past this the oldest is given up
/// (its call was answered; only a bridge that sees it pending later, which an answered call is not, could miss it).
const MAX_UNSTORED: usize = 10_000;

/// This bridge's link to its group, connected when the bridge starts.
pub(crate) struct Cluster {
    config: ClusterConfig,
    status: Arc<ClusterStatus>,
    claims: OnceLock<Claims>,
    /// Results that could not be stored (the store was down when their skill finished), stored once it is back,
    /// before this bridge claims another call: so that no bridge of the group runs one of them again.
    unstored: Mutex<VecDeque<(String, String)>>,
}

impl Cluster {
    /// Checks `config`; nothing connects until [`connect`](Self::connect).
    pub(crate) fn new(config: ClusterConfig) -> Result<Self, String> {
        config.check()?;
        let status = ClusterStatus::new(config.group.clone(), config.member_name(), config.redacted_url());
        Ok(Self {
            config,
            status: Arc::new(status),
            claims: OnceLock::new(),
            unstored: Mutex::new(VecDeque::new()),
        })
    }

    /// The status `/readyz`, `/metrics` and `/cluster` read.
    pub(crate) fn status(&self) -> &Arc<ClusterStatus> {
        &self.status
    }

    /// The store, for logs (credentials redacted).
    pub(crate) fn store(&self) -> String {
        self.config.redacted_url()
    }

    /// Connects to the store (one attempt); `Ok` once it answered.
    pub(crate) async fn connect(&self) -> Result<(), String> {
        if self.claims.get().is_some() {
            return Ok(());
        }
        let started = Instant::now();
        let connecting = Claims::connect(
            &self.config.url,
            &self.config.group,
            self.status.name(),
            REQUEST_TIMEOUT,
        );
        let claims = match tokio::time::timeout(REQUEST_TIMEOUT * 2, connecting).await {
            Ok(Ok(claims)) => claims,
            Ok(Err(error)) => return Err(self.lost("connecting", &error.to_string())),
            Err(_) => return Err(self.lost("connecting", "it did not answer in time")),
        };
        self.status.store_answered(started.elapsed());
        let _ = self.claims.set(claims);
        Ok(())
    }

    /// The connected claims, unless the store is known to be unreachable now or results wait to be stored.
    fn usable(&self) -> Option<&Claims> {
        let ready = self.status.reachable() && lock(&self.unstored).is_empty();
        self.claims.get().filter(|_| ready)
    }

    /// Keeps a result the store did not take, to store it once the store is back.
    fn keep_unstored(&self, call: String, result: String) {
        let mut unstored = lock(&self.unstored);
        if unstored.len() >= MAX_UNSTORED {
            unstored.pop_front();
            tracing::warn!("too many results wait for the cluster store: the oldest is given up");
        }
        unstored.push_back((call, result));
    }

    /// Stores the results kept while the store was down; `Err` when it failed again (the rest stay kept).
    pub(crate) async fn store_kept_results(&self) -> Result<usize, String> {
        let Some(claims) = self.claims.get() else { return Ok(0) };
        let mut stored = 0;
        loop {
            let Some((call, result)) = lock(&self.unstored).front().cloned() else {
                return Ok(stored);
            };
            self.request("storing a kept result", claims.complete(&call, &result))
                .await?;
            lock(&self.unstored).pop_front();
            stored += 1;
        }
    }

    /// The heartbeat and session-sharing loop's view of the store.
    pub(crate) fn claims_for_members(&self) -> Option<&Claims> {
        self.claims.get()
    }

    /// Times one request to the store, keeping the status up to date.
    async fn request<T>(&self, what: &str, request: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
        let started = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(value)) => {
                self.status.store_answered(started.elapsed());
                Ok(value)
            }
            Ok(Err(error)) => Err(self.lost(what, &error.to_string())),
            Err(_) => Err(self.lost(what, "no answer in time")),
        }
    }

    /// The store failed `what`: it is unreachable until a request succeeds, logged once when it was reachable
    /// before (start-up logs its own attempts). Returns why, for the caller.
    fn lost(&self, what: &str, error: &str) -> String {
        let reason = format!("the cluster store {} cannot be reached: {error}", self.store());
        if self.status.store_failed(reason.clone()) {
            tracing::error!("{reason} ({what} failed); no new call is run until it is back");
        }
        reason
    }

    /// Asks the group whether this bridge runs `key`'s call.
    pub(crate) async fn claim(self: &Arc<Self>, key: &CallKey) -> Claimed {
        let Some(claims) = self.usable() else {
            self.status.claimed(ClaimResult::Unavailable);
            return Claimed::NotNow;
        };
        let call = key.encoded();
        let claim = match self.request("a claim", claims.claim(&call, self.config.lease)).await {
            Ok(claim) => claim,
            Err(_) => {
                self.status.claimed(ClaimResult::Unavailable);
                return Claimed::NotNow;
            }
        };
        match claim {
            Claim::Won { previous } => {
                match previous.filter(|previous| previous != self.status.name()) {
                    Some(previous) => {
                        self.status.claimed(ClaimResult::TakenOver);
                        tracing::info!(from = %previous, "took the call over: its bridge's lease ran out without a result");
                    }
                    None => self.status.claimed(ClaimResult::Won),
                }
                Claimed::Run(Hold::start(Arc::clone(self), call))
            }
            Claim::Answered => {
                self.status.claimed(ClaimResult::Answered);
                Claimed::NotNow
            }
            Claim::Held { owner } => {
                self.status.claimed(ClaimResult::Held);
                tracing::trace!(%owner, "another bridge of the group runs this call");
                Claimed::NotNow
            }
            Claim::Completed(stored) => match serde_json::from_str::<ToolResult>(&stored) {
                Ok(result) => {
                    self.status.claimed(ClaimResult::Completed);
                    Claimed::Ran(result, Hold::redelivery(Arc::clone(self), call))
                }
                Err(error) => {
                    tracing::error!(%error, "the result another bridge stored is unreadable; leaving the call pending");
                    self.status.claimed(ClaimResult::Unavailable);
                    Claimed::NotNow
                }
            },
        }
    }
}

/// This bridge's part in a call of the group until its answer is settled: for a call it runs, the claim, whose
/// lease is renewed every third of it while the skill runs and the answer goes out; for a result another bridge
/// stored, the delivery. [`settle`](Self::settle) ends it; dropped without that, the lease runs out by itself.
pub(crate) struct Hold {
    cluster: Arc<Cluster>,
    call: String,
    /// Whether this bridge holds the claim (it runs the call), rather than delivers another's result.
    claimed: bool,
    /// The lease's renewals, while the claim is held.
    renewals: Option<JoinHandle<()>>,
}

impl Hold {
    fn start(cluster: Arc<Cluster>, call: String) -> Self {
        cluster.status.claims_held_add(1);
        let renewals = tokio::spawn({
            let (cluster, call) = (Arc::clone(&cluster), call.clone());
            async move {
                let lease = cluster.config.lease;
                let mut wait = lease / 3;
                loop {
                    tokio::time::sleep(wait).await;
                    let Some(claims) = cluster.claims.get() else { return };
                    match cluster.request("renewing a claim", claims.renew(&call, lease)).await {
                        Ok(true) => wait = lease / 3,
                        // Tried again soon: the lease must be renewed as soon as the store is back, not up to a third
                        // of it later, so that an outage of up to two thirds of the lease keeps the claim.
                        Err(_) => wait = RENEW_RETRY.min(lease / 3),
                        Ok(false) => {
                            tracing::warn!(
                                "this bridge's claim on the call ran out while it ran (the store was unreachable \
                                 longer than the lease): another bridge may run it too"
                            );
                            return;
                        }
                    }
                }
            }
        });
        Self {
            cluster,
            call,
            claimed: true,
            renewals: Some(renewals),
        }
    }

    fn redelivery(cluster: Arc<Cluster>, call: String) -> Self {
        Self {
            cluster,
            call,
            claimed: false,
            renewals: None,
        }
    }

    /// Stores `result` as the call's for the group, before the answer goes out; the claim is kept (and renewed)
    /// until the answer is settled. When the store cannot be reached the answer goes out anyway, and the result is
    /// stored once the store is back, before this bridge claims another call.
    pub(crate) async fn complete(&self, result: &ToolResult) {
        let Some(claims) = self.cluster.claims.get() else {
            return;
        };
        let stored = match serde_json::to_string(result) {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(%error, "the result cannot be stored for the group");
                return;
            }
        };
        if let Err(reason) = self
            .cluster
            .request("storing a result", claims.complete(&self.call, &stored))
            .await
        {
            tracing::warn!("{reason}: answering anyway; the result is stored once the store is back");
            self.cluster.keep_unstored(self.call.clone(), stored);
        }
    }

    /// The answer is settled: releases the claim, and when the answer went through (`answered`), marks the call
    /// answered for the group, so that bridges that see it late leave it alone; otherwise the stored result stays,
    /// for the next bridge that sees the call pending to deliver.
    pub(crate) async fn settle(mut self, answered: bool) {
        if let Some(renewals) = self.renewals.take() {
            renewals.abort();
        }
        let Some(claims) = self.cluster.claims.get() else {
            return;
        };
        if self.cluster.status.reachable() {
            let _ = self
                .cluster
                .request("settling a call", claims.settle(&self.call, answered))
                .await;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(renewals) = self.renewals.take() {
            renewals.abort();
        }
        if self.claimed {
            self.cluster.status.claims_held_add(-1);
        }
    }
}
