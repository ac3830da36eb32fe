//! [`Members`]: the bridges of a group and the sessions they share, kept in Redis by heartbeats.
//!
//! Every [`HEARTBEAT`] a bridge writes what it is doing (`..:member:NAME`, expiring after three heartbeats, and its
//! name in the sorted set `..:members` scored by the time), registers the sessions it created in the hash
//! `..:sessions`, reads the live members and the registry, and serves every registered session it does not serve
//! yet. A failed heartbeat marks the store unreachable (no call is claimed meanwhile) and is retried with
//! backoff; the first one that succeeds makes it reachable again. The registry lives as long as some bridge of the
//! group beats (a day past the last beat), so nothing stays in Redis for good.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::telemetry::{BridgeHealth, BridgeStats, PeerStatus, unix_ms};
use crate::upstream::{SharedSession, Upstream};
use crate::util::Backoff;

/// How often a bridge beats.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// A bridge whose last beat is older than this is gone.
const MEMBER_TTL: Duration = Duration::from_secs(3);

/// How long the session registry outlives the group's last beat.
const REGISTRY_TTL: Duration = Duration::from_secs(24 * 3600);

/// The waits between heartbeats while the store cannot be reached.
const RETRY: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: HEARTBEAT,
};

/// One bridge's heartbeats.
pub(crate) struct Members {
    cluster: Arc<Cluster>,
    upstream: Arc<dyn Upstream>,
    stats: Arc<BridgeStats>,
    health: Arc<BridgeHealth>,
    started_at_ms: u64,
    /// The registry entries this bridge wrote, so that it removes those it no longer has (a session deleted on
    /// exit, or replaced after codex-manager lost it).
    registered: BTreeSet<String>,
    /// The registry as the last heartbeat read it: an entry of this bridge's is written again only when it is not
    /// there as it should be (new, changed, or lost with the store's data).
    registry: HashMap<String, String>,
}

/// A session in the registry: who created it and what it offers.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    created_by: String,
    #[serde(flatten)]
    session: SharedSession,
}

impl Members {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        upstream: Arc<dyn Upstream>,
        stats: Arc<BridgeStats>,
        health: Arc<BridgeHealth>,
    ) -> Self {
        Self {
            cluster,
            upstream,
            stats,
            health,
            started_at_ms: unix_ms(SystemTime::now()),
            registered: BTreeSet::new(),
            registry: HashMap::new(),
        }
    }

    /// Beats until `stop`, then says goodbye (this bridge leaves the member list at once, and its sessions stay
    /// registered unless it deleted them).
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let mut failures = 0;
        loop {
            let wait = match self.beat().await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(
                            "the cluster store {} is reachable again: taking calls",
                            self.cluster.store()
                        );
                    }
                    failures = 0;
                    HEARTBEAT
                }
                Err(_) => {
                    failures += 1;
                    RETRY.delay(failures)
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.leave().await;
    }

    /// One heartbeat: write this bridge's state and sessions, read the group's, serve the sessions it lacks.
    async fn beat(&mut self) -> Result<(), String> {
        if self.cluster.claims_for_members().is_none() {
            self.cluster.connect().await?;
        }
        let Some(claims) = self.cluster.claims_for_members() else {
            return Err("not connected".into());
        };
        let stored = self.cluster.store_kept_results().await?;
        if stored > 0 {
            tracing::info!(stored, "stored the results kept while the cluster store was down");
        }
        let status = self.cluster.status();
        let now = unix_ms(SystemTime::now());
        let me = PeerStatus {
            name: status.name().to_owned(),
            in_flight: self.stats.in_flight(),
            claims_held: status.claims_held(),
            sessions: self.health.sessions().len(),
            started_at_ms: self.started_at_ms,
            last_seen_ms: now,
        };
        let shared = self.upstream.shared_sessions();
        let (members_key, sessions_key) = (claims.key("members"), claims.key("sessions"));
        let mut pipe = redis::pipe();
        pipe.set_options(
            claims.key(&format!("member:{}", me.name)),
            serde_json::to_string(&me).unwrap_or_default(),
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(MEMBER_TTL.as_millis() as u64)),
        )
        .ignore()
        .zadd(&members_key, &me.name, now)
        .ignore()
        .zrembyscore(&members_key, 0, now.saturating_sub(MEMBER_TTL.as_millis() as u64))
        .ignore()
        .pexpire(&members_key, MEMBER_TTL.as_millis() as i64)
        .ignore();
        let mine: BTreeMap<&str, String> = shared
            .iter()
            .map(|session| {
                let entry = Registered {
                    created_by: me.name.clone(),
                    session: session.clone(),
                };
                (
                    session.thread_id.as_str(),
                    serde_json::to_string(&entry).unwrap_or_default(),
                )
            })
            .collect();
        for (thread, entry) in &mine {
            if self.registry.get(*thread) != Some(entry) {
                pipe.hset(&sessions_key, *thread, entry).ignore();
            }
        }
        let gone: Vec<&String> = self
            .registered
            .iter()
            .filter(|thread| !mine.contains_key(thread.as_str()))
            .collect();
        for thread in &gone {
            pipe.hdel(&sessions_key, thread.as_str()).ignore();
        }
        pipe.pexpire(&sessions_key, REGISTRY_TTL.as_millis() as i64)
            .ignore()
            .zrange(&members_key, 0, -1)
            .hgetall(&sessions_key);
        let mut redis = claims.connection();
        let (names, registry): (Vec<String>, HashMap<String, String>) = self
            .cluster
            .request("a heartbeat", pipe.query_async(&mut redis))
            .await?;
        self.registered = mine.keys().map(|thread| (*thread).to_owned()).collect();
        self.registry = registry;

        let member_keys: Vec<String> = names.iter().map(|name| claims.key(&format!("member:{name}"))).collect();
        let peers: Vec<Option<String>> = if member_keys.is_empty() {
            Vec::new()
        } else {
            self.cluster
                .request("reading the group", redis.mget(member_keys))
                .await?
        };
        let peers: Vec<PeerStatus> = peers
            .into_iter()
            .flatten()
            .filter_map(|peer| serde_json::from_str(&peer).ok())
            .collect();
        status.heartbeat_read(peers, self.registry.len());

        let others: Vec<SharedSession> = self
            .registry
            .values()
            .filter_map(|entry| serde_json::from_str::<Registered>(entry).ok())
            .filter(|entry| entry.created_by != me.name)
            .map(|entry| entry.session)
            .collect();
        for session in self.upstream.adopt(&others) {
            tracing::info!(session = %session.id, "serving a session of the group");
            self.health.add_session(session);
        }
        Ok(())
    }

    async fn leave(&self) {
        let Some(claims) = self.cluster.claims_for_members() else {
            return;
        };
        let name = self.cluster.status().name().to_owned();
        let mut pipe = redis::pipe();
        pipe.del(claims.key(&format!("member:{name}")))
            .ignore()
            .zrem(claims.key("members"), &name)
            .ignore();
        let still_created = self.upstream.shared_sessions();
        let kept: BTreeSet<&str> = still_created.iter().map(|s| s.thread_id.as_str()).collect();
        for thread in self.registered.iter().filter(|thread| !kept.contains(thread.as_str())) {
            pipe.hdel(claims.key("sessions"), thread).ignore();
        }
        let mut redis = claims.connection();
        let _: Result<(), String> = self
            .cluster
            .request("leaving the group", pipe.query_async(&mut redis))
            .await;
    }
}
