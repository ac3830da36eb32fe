//! [`ClusterStatus`]: how this bridge stands in a group of bridges sharing work over Redis — whether the store is
//! reachable, its claims and their round trips, the bridges seen at the last heartbeat — written by the bridge's
//! cluster code, read by readiness, `/metrics` and `/cluster`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::stats::{Histogram, HistogramSnapshot};
use crate::util::lock;

/// Upper bounds (seconds) of the Redis round-trip histogram: loopback round trips take tens of microseconds.
pub(crate) const ROUND_TRIP_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// What claiming a call came to, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimResult {
    /// This bridge runs the call.
    Won,
    /// This bridge runs a call another bridge claimed before it died (its lease ran out without a result).
    TakenOver,
    /// Another bridge runs it (or answers it).
    Held,
    /// Another bridge ran it and answered it.
    Answered,
    /// Another bridge ran it but did not deliver the answer (it died): its stored result was delivered instead.
    Completed,
    /// Redis could not be asked: the call was left pending upstream.
    Unavailable,
}

impl ClaimResult {
    const ALL: [ClaimResult; 6] = [
        ClaimResult::Won,
        ClaimResult::TakenOver,
        ClaimResult::Held,
        ClaimResult::Answered,
        ClaimResult::Completed,
        ClaimResult::Unavailable,
    ];

    /// The label in `/metrics` and `/cluster`.
    pub fn label(self) -> &'static str {
        match self {
            ClaimResult::Won => "won",
            ClaimResult::TakenOver => "taken_over",
            ClaimResult::Held => "held_elsewhere",
            ClaimResult::Answered => "answered_elsewhere",
            ClaimResult::Completed => "completed_elsewhere",
            ClaimResult::Unavailable => "store_unavailable",
        }
    }
}

/// One bridge of the group as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// The bridge's name in the group (host and process id unless set).
    pub name: String,
    /// Calls it had waiting, running or being answered.
    pub in_flight: i64,
    /// Claims it held (skills it was running for the group).
    pub claims_held: i64,
    /// Sessions it served.
    pub sessions: usize,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// When it last beat, in milliseconds since the Unix epoch.
    pub last_seen_ms: u64,
}

/// `GET /cluster`: the group as this bridge sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The group's name.
    pub group: String,
    /// This bridge's name in it.
    pub this: String,
    /// Where the group's store is (credentials redacted).
    pub store: String,
    /// Whether this bridge reached the store at its last attempt.
    pub reachable: bool,
    /// Why not, when it did not.
    pub unreachable_reason: Option<String>,
    /// The live bridges, this one included, by name.
    pub bridges: Vec<PeerStatus>,
    /// Sessions registered by the group.
    pub sessions: usize,
    /// This bridge's claims by result since start.
    pub claims: Vec<(String, u64)>,
    /// The median round trip to the store, in milliseconds (bucket bound), once there was one.
    pub round_trip_p50_ms: Option<f64>,
    /// The 99th percentile round trip to the store, in milliseconds (bucket bound).
    pub round_trip_p99_ms: Option<f64>,
}

/// How this bridge stands in its group; shared by the cluster code that writes it and the admin routes.
#[derive(Debug)]
pub struct ClusterStatus {
    group: String,
    name: String,
    store: String,
    reachable: AtomicBool,
    unreachable_reason: Mutex<Option<String>>,
    /// By [`ClaimResult`], in its declaration order.
    claims: [AtomicU64; ClaimResult::ALL.len()],
    claims_held: AtomicI64,
    round_trips: Mutex<Histogram>,
    peers: Mutex<Vec<PeerStatus>>,
    sessions: AtomicU64,
}

impl ClusterStatus {
    /// The status of bridge `name` of `group`, whose store is at `store` (already redacted); unreachable until
    /// the first round trip succeeds.
    pub fn new(group: impl Into<String>, name: impl Into<String>, store: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            name: name.into(),
            store: store.into(),
            reachable: AtomicBool::new(false),
            unreachable_reason: Mutex::new(Some("not connected yet".into())),
            claims: Default::default(),
            claims_held: AtomicI64::new(0),
            round_trips: Mutex::new(Histogram::with_bounds(&ROUND_TRIP_BUCKETS)),
            peers: Mutex::new(Vec::new()),
            sessions: AtomicU64::new(0),
        }
    }

    /// This bridge's name in the group.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Whether the store answered the last request.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Why the store cannot be used, while it cannot.
    pub fn unreachable_reason(&self) -> Option<String> {
        lock(&self.unreachable_reason).clone()
    }

    /// A request to the store succeeded after `round_trip`.
    pub(crate) fn store_answered(&self, round_trip: Duration) {
        lock(&self.round_trips).observe(round_trip.as_secs_f64());
        if !self.reachable.swap(true, Ordering::Relaxed) {
            *lock(&self.unreachable_reason) = None;
        }
    }

    /// A request to the store failed: the store is unreachable until one succeeds. Returns whether it was
    /// reachable before (so that the change is logged once).
    pub(crate) fn store_failed(&self, reason: String) -> bool {
        *lock(&self.unreachable_reason) = Some(reason);
        self.reachable.swap(false, Ordering::Relaxed)
    }

    /// Counts one claim.
    pub(crate) fn claimed(&self, result: ClaimResult) {
        self.claims[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Claims held by this bridge go up (`+1`, a skill started for the group) or down (`-1`).
    pub(crate) fn claims_held_add(&self, delta: i64) {
        self.claims_held.fetch_add(delta, Ordering::Relaxed);
    }

    /// Claims held by this bridge now.
    pub fn claims_held(&self) -> i64 {
        self.claims_held.load(Ordering::Relaxed)
    }

    /// Claims by result since start, in a fixed order.
    pub fn claim_counts(&self) -> Vec<(&'static str, u64)> {
        ClaimResult::ALL
            .iter()
            .zip(&self.claims)
            .map(|(result, count)| (result.label(), count.load(Ordering::Relaxed)))
            .collect()
    }

    /// The round trips to the store so far.
    pub fn round_trips(&self) -> HistogramSnapshot {
        lock(&self.round_trips).snapshot()
    }

    /// What the last heartbeat read: the live bridges and the group's sessions.
    pub(crate) fn heartbeat_read(&self, mut peers: Vec<PeerStatus>, sessions: usize) {
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        *lock(&self.peers) = peers;
        self.sessions.store(sessions as u64, Ordering::Relaxed);
    }

    /// The live bridges at the last heartbeat.
    pub fn peers(&self) -> Vec<PeerStatus> {
        lock(&self.peers).clone()
    }

    /// Everything `/cluster` shows.
    pub fn view(&self) -> ClusterView {
        let round_trips = self.round_trips();
        let millis = |q| round_trips.quantile(q).map(|seconds| seconds * 1000.0);
        ClusterView {
            group: self.group.clone(),
            this: self.name.clone(),
            store: self.store.clone(),
            reachable: self.reachable(),
            unreachable_reason: self.unreachable_reason(),
            bridges: self.peers(),
            sessions: self.sessions.load(Ordering::Relaxed) as usize,
            claims: self
                .claim_counts()
                .into_iter()
                .map(|(label, n)| (label.to_owned(), n))
                .collect(),
            round_trip_p50_ms: millis(0.5),
            round_trip_p99_ms: millis(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_unreachable_until_it_answers_and_says_why_while_it_is() {
        let status = ClusterStatus::new("g", "b1", "redis://127.0.0.1:6379/0");
        assert!(!status.reachable());
        status.store_answered(Duration::from_micros(80));
        assert!(status.reachable());
        assert_eq!(status.unreachable_reason(), None);
        assert!(
            status.store_failed("connection refused".into()),
            "it was reachable before"
        );
        assert!(!status.store_failed("connection refused".into()), "logged once");
        assert_eq!(status.unreachable_reason().as_deref(), Some("connection refused"));
        assert_eq!(status.round_trips().count, 1);
        assert_eq!(status.view().round_trip_p50_ms, Some(0.1));
    }

    #[test]
    fn claims_are_counted_by_result() {
        let status = ClusterStatus::new("g", "b1", "redis://x");
        status.claimed(ClaimResult::Won);
        status.claimed(ClaimResult::Won);
        status.claimed(ClaimResult::Held);
        let counts = status.claim_counts();
        assert_eq!(counts[0], ("won", 2));
        assert_eq!(counts[2], ("held_elsewhere", 1));
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }
}
