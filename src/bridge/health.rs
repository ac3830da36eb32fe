//! [`BridgeHealth`]: what readiness depends on (the upstream connection and the served sessions), shared
//! between the upstream glue that updates it and the admin endpoint that reports it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

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
}

/// Connection state and counters of the upstream, updated by the upstream glue.
#[derive(Debug, Default)]
pub struct BridgeHealth {
    connected: AtomicBool,
    reconnects: AtomicU64,
    malformed_frames: AtomicU64,
    sessions: Mutex<Vec<ServedSession>>,
}

impl BridgeHealth {
    /// Not connected, no sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records whether the upstream connection is up.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Whether the upstream connection is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Sets the reconnect count (the stream keeps its own counter; this mirrors it).
    pub fn set_reconnects(&self, reconnects: u64) {
        self.reconnects.store(reconnects, Ordering::Relaxed);
    }

    /// Reconnects since start.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Sets the malformed frame count.
    pub fn set_malformed_frames(&self, frames: u64) {
        self.malformed_frames.store(frames, Ordering::Relaxed);
    }

    /// Malformed frames skipped since start.
    pub fn malformed_frames(&self) -> u64 {
        self.malformed_frames.load(Ordering::Relaxed)
    }

    /// Adds a served session.
    pub fn add_session(&self, session: ServedSession) {
        let mut sessions = self.lock_sessions();
        if !sessions.iter().any(|s| s.id == session.id) {
            sessions.push(session);
        }
    }

    /// The served sessions.
    pub fn sessions(&self) -> Vec<ServedSession> {
        self.lock_sessions().clone()
    }

    /// Ready means connected with at least one session; otherwise the reasons why not.
    pub fn readiness(&self) -> Result<(), Vec<&'static str>> {
        let mut reasons = Vec::new();
        if !self.connected() {
            reasons.push("upstream not connected");
        }
        if self.lock_sessions().is_empty() {
            reasons.push("no session served yet");
        }
        if reasons.is_empty() { Ok(()) } else { Err(reasons) }
    }

    fn lock_sessions(&self) -> MutexGuard<'_, Vec<ServedSession>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
