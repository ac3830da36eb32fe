//! [`BridgeHealth`]: what readiness depends on (the upstream connection and the served sessions), and what the
//! upstream could not read (malformed frames, unusable signals, unreadable calls), shared between the upstream glue that updates it and
//! the admin endpoint that reports it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use serde::Serialize;

use super::ClusterStatus;

/// A session (thread) this bridge serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedSession {
    /// The session (thread) id.
    pub id: String,
    /// Which upstream it lives on (`codex-manager`, `app-server`).
    pub upstream: &'static str,
    /// `true` when this bridge created it (and so may delete it on exit).
    pub created: bool,
    /// The tools it was offered, by name, when this bridge created it; `None` for a session attached to, whose
    /// tools were fixed by whoever created it.
    pub tools: Option<Vec<String>>,
}

/// The live state of an upstream connection (a websocket stream, a child process), read on demand.
pub trait LinkStatus: Send + Sync + 'static {
    /// Whether the connection is up now.
    fn connected(&self) -> bool;
    /// Reconnects since start.
    fn reconnects(&self) -> u64 {
        0
    }
    /// Malformed frames skipped since start.
    fn malformed_frames(&self) -> u64 {
        0
    }
    /// [`malformed_frames`](Self::malformed_frames) by kind, for a link that tells them apart (empty otherwise).
    fn malformed_frames_by_kind(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Well-formed signals since start that could not be used: a tool call without a usable `requestId` (an object
    /// or a bool, say), an unreadable turn event.
    fn unusable_signals(&self) -> u64 {
        0
    }
}

/// What readiness depends on: the upstream link and the served sessions; and what the upstream could not read.
#[derive(Default)]
pub struct BridgeHealth {
    link: RwLock<Option<Arc<dyn LinkStatus>>>,
    sessions: Mutex<Vec<ServedSession>>,
    /// Sessions the upstream lost, with why, until they are replaced.
    lost: Mutex<BTreeMap<String, String>>,
    /// Why the upstream could not be opened yet, while the bridge waits for it at start-up.
    waiting: Mutex<Option<String>>,
    unreadable_calls: AtomicU64,
    /// The group's store, for a bridge in a group: no call is taken while it cannot be reached.
    cluster: OnceLock<Arc<ClusterStatus>>,
}

impl fmt::Debug for BridgeHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeHealth")
            .field("connected", &self.connected())
            .field("sessions", &self.sessions())
            .finish()
    }
}

impl BridgeHealth {
    /// No link, no sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads connection state from `link` from now on.
    pub fn attach_link(&self, link: Arc<dyn LinkStatus>) {
        *self.link.write().unwrap_or_else(|p| p.into_inner()) = Some(link);
    }

    fn link(&self) -> Option<Arc<dyn LinkStatus>> {
        self.link.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the upstream connection is up.
    pub fn connected(&self) -> bool {
        self.link().is_some_and(|l| l.connected())
    }

    /// Reconnects since start.
    pub fn reconnects(&self) -> u64 {
        self.link().map_or(0, |l| l.reconnects())
    }

    /// Malformed frames skipped since start.
    pub fn malformed_frames(&self) -> u64 {
        self.link().map_or(0, |l| l.malformed_frames())
    }

    /// [`malformed_frames`](Self::malformed_frames) by kind, when the link tells them apart (empty otherwise).
    pub fn malformed_frames_by_kind(&self) -> Vec<(&'static str, u64)> {
        self.link().map_or_else(Vec::new, |l| l.malformed_frames_by_kind())
    }

    /// Well-formed signals the upstream could not use since start (a tool call without a usable `requestId`, say);
    /// a call among them stays pending, for the pending-call listing to find or report.
    pub fn unusable_signals(&self) -> u64 {
        self.link().map_or(0, |l| l.unusable_signals())
    }

    /// Tool calls the upstream found but could not read (e.g. arguments nested deeper than JSON is read to), each
    /// counted once; they stay unanswered.
    pub fn unreadable_calls(&self) -> u64 {
        self.unreadable_calls.load(Ordering::Relaxed)
    }

    pub(crate) fn unreadable_calls_found(&self, n: u64) {
        self.unreadable_calls.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds a served session.
    pub fn add_session(&self, session: ServedSession) {
        let mut sessions = self.lock_sessions();
        if !sessions.iter().any(|s| s.id == session.id) {
            sessions.push(session);
        }
    }

    /// Replaces every session of `upstream` with `sessions` (a restarted upstream serves fresh ones).
    pub fn replace_sessions(&self, upstream: &str, sessions: impl IntoIterator<Item = ServedSession>) {
        let mut served = self.lock_sessions();
        served.retain(|s| s.upstream != upstream);
        for session in sessions {
            if !served.iter().any(|s| s.id == session.id) {
                served.push(session);
            }
        }
    }

    /// The served sessions.
    pub fn sessions(&self) -> Vec<ServedSession> {
        self.lock_sessions().clone()
    }

    /// The upstream lost a served session (codex-manager restarted without it): not ready until it is replaced
    /// ([`replace_session`](Self::replace_session)) or, for one that cannot be, for good.
    pub fn session_lost(&self, id: &str, reason: impl Into<String>) {
        self.lock_sessions().retain(|s| s.id != id);
        crate::util::lock(&self.lost).insert(id.to_owned(), reason.into());
    }

    /// A session is no longer served, and that is no reason to be unready (another bridge of the group made it,
    /// and makes its replacement).
    pub fn session_gone(&self, id: &str) {
        self.lock_sessions().retain(|s| s.id != id);
    }

    /// A lost session was replaced by a new one.
    pub fn replace_session(&self, lost: &str, session: ServedSession) {
        crate::util::lock(&self.lost).remove(lost);
        self.add_session(session);
    }

    /// The bridge is waiting at start-up for its upstream, which failed to open for `reason` (`None`: no longer
    /// waiting); [`readiness`](Self::readiness) says so.
    pub fn waiting_for_upstream(&self, reason: Option<String>) {
        *crate::util::lock(&self.waiting) = reason;
    }

    /// The bridge belongs to a group whose store `status` describes: readiness depends on it too.
    pub fn attach_cluster(&self, status: Arc<ClusterStatus>) {
        let _ = self.cluster.set(status);
    }

    /// The group's status, for a bridge in a group.
    pub fn cluster(&self) -> Option<&Arc<ClusterStatus>> {
        self.cluster.get()
    }

    /// Ready means connected with at least one session and none lost, and, in a group, the group's store
    /// reachable; otherwise the reasons why not.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if let Some(cluster) = self.cluster.get()
            && !cluster.reachable()
        {
            let reason = cluster
                .unreachable_reason()
                .unwrap_or_else(|| "the cluster store cannot be reached".into());
            reasons.push(format!("{reason}: no new call is taken"));
        }
        if let Some(reason) = crate::util::lock(&self.waiting).as_ref() {
            reasons.push(format!("waiting for the upstream: {reason}"));
        }
        if !self.connected() {
            reasons.push("upstream not connected".to_owned());
        }
        if self.lock_sessions().is_empty() {
            reasons.push("no session served yet".to_owned());
        }
        for (id, reason) in crate::util::lock(&self.lost).iter() {
            reasons.push(format!("session {id} was lost: {reason}"));
        }
        if reasons.is_empty() { Ok(()) } else { Err(reasons) }
    }

    fn lock_sessions(&self) -> MutexGuard<'_, Vec<ServedSession>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Link(AtomicBool);

    impl LinkStatus for Link {
        fn connected(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn ready_needs_a_live_link_and_a_session() {
        let health = BridgeHealth::new();
        assert_eq!(
            health.readiness(),
            Err(vec![
                "upstream not connected".to_owned(),
                "no session served yet".to_owned()
            ])
        );
        let link = Arc::new(Link(AtomicBool::new(true)));
        health.attach_link(link.clone());
        health.add_session(ServedSession {
            id: "t".into(),
            upstream: "codex-manager",
            created: true,
            tools: None,
        });
        assert_eq!(health.readiness(), Ok(()));
        link.0.store(false, Ordering::Relaxed);
        assert_eq!(health.readiness(), Err(vec!["upstream not connected".to_owned()]));
    }

    #[test]
    fn a_lost_session_keeps_the_bridge_unready_until_it_is_replaced() {
        let health = BridgeHealth::new();
        health.attach_link(Arc::new(Link(AtomicBool::new(true))));
        let session = |id: &str| ServedSession {
            id: id.into(),
            upstream: "codex-manager",
            created: true,
            tools: None,
        };
        health.add_session(session("old"));
        health.add_session(session("kept"));
        health.session_lost("old", "codex-manager no longer has it (404)");
        assert_eq!(
            health.readiness(),
            Err(vec![
                "session old was lost: codex-manager no longer has it (404)".to_owned()
            ])
        );
        health.replace_session("old", session("new"));
        assert_eq!(health.readiness(), Ok(()));
        let ids: Vec<String> = health.sessions().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["kept", "new"]);
    }

    #[test]
    fn a_restarted_upstream_replaces_its_sessions() {
        let health = BridgeHealth::new();
        let session = |id: &str, upstream| ServedSession {
            id: id.into(),
            upstream,
            created: true,
            tools: None,
        };
        health.add_session(session("old", "app-server"));
        health.add_session(session("other", "codex-manager"));
        health.replace_sessions("app-server", [session("new", "app-server")]);
        let ids: Vec<String> = health.sessions().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["other", "new"]);
    }
}
