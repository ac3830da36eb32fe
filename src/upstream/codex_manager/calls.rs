//! [`Calls`]: which call each request id stands for, across the connections to codex-manager.
//!
//! codex-manager addresses an answer by request id alone, and the request ids restart at 0 when codex-manager
//! restarts (its sessions survive). A call taken on an earlier connection may therefore share its request id with
//! a new call by the time it is answered. So each call is tagged with the stream connection it was seen on: a call
//! seen on the connection that is up now is answered directly; any other (an earlier connection, or none is up)
//! is answered only while a pending-call listing taken on the current connection, or just now, shows its request
//! id with the same thread, turn and call id. Otherwise its result is dropped: it is never delivered to another
//! call. A restart always cuts the stream, so it always starts a new connection. The listing is taken once per
//! connection and thread (the feed's listing after the `ready` frame usually is that one), not once per call: one
//! listing of a thread is taken at a time ([`Calls::listing_gate`]), and whoever waited for it uses it, connected or
//! not: a listing begun after an answer began waiting is as fresh as one it would take itself. A thread with
//! tens of thousands of pending calls lists as many megabytes, so the workers answering calls of an earlier
//! connection must not each take their own.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::stream::StreamStats;
use crate::upstream::ToolCall;
use crate::util::lock;

/// Request ids remembered, at most: more than the calls a bridge holds at once.
const REMEMBERED: usize = 65_536;

/// The connection number of calls seen while no connection was up: never the current one.
pub(super) const NO_CONNECTION: u64 = 0;

/// What identifies a call besides its request id (thread, turn and call id), as a fingerprint: tens of thousands
/// are remembered, and two different calls under one request id share a fingerprint with a chance of 2^-64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Identity(u64);

impl Identity {
    pub(super) fn of(call: &ToolCall) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        (&call.thread_id, &call.turn_id, &call.call_id).hash(&mut hasher);
        Self(hasher.finish())
    }
}

/// Whether a call may be answered now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// Seen on the connection that is up: answer it.
    Current,
    /// Seen on another connection: answer it only if a current listing of its thread shows it.
    Earlier,
    /// Its request id now stands for another call: drop the result.
    Replaced,
}

/// The calls seen and the listings taken, by connection; one per codex-manager upstream, shared with its feed.
#[derive(Default)]
pub(super) struct Calls {
    link: OnceLock<Arc<StreamStats>>,
    seen: Mutex<Seen>,
    /// The pending rows of each thread, as last listed, with the connection they were listed on.
    listed: Mutex<HashMap<String, Listing>>,
    /// Listings begun so far: each listing's number, in the order they began.
    listings_begun: AtomicU64,
    /// Held while a thread is being listed.
    listing_gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Default)]
struct Seen {
    by_request: HashMap<Arc<str>, (Identity, u64)>,
    order: VecDeque<Arc<str>>,
}

struct Listing {
    connection: u64,
    /// Its number (see [`Calls::begin_listing`]).
    number: u64,
    pending: HashMap<String, Identity>,
}

impl Calls {
    /// Follows the stream whose connections tag the calls.
    pub(super) fn attach_link(&self, link: Arc<StreamStats>) {
        let _ = self.link.set(link);
    }

    /// The connection that is up, or [`NO_CONNECTION`].
    pub(super) fn connection(&self) -> u64 {
        match self.link.get() {
            Some(link) if link.connected() => link.connects(),
            _ => NO_CONNECTION,
        }
    }

    /// Notes a call handed to the bridge, seen on `connection`.
    pub(super) fn seen(&self, call: &ToolCall, connection: u64) {
        let mut seen = lock(&self.seen);
        let entry = (Identity::of(call), connection);
        if let Some(known) = seen.by_request.get_mut(call.request_id.as_str()) {
            *known = entry;
            return;
        }
        let request_id: Arc<str> = Arc::from(call.request_id.as_str());
        seen.by_request.insert(Arc::clone(&request_id), entry);
        seen.order.push_back(request_id);
        if seen.order.len() > REMEMBERED
            && let Some(oldest) = seen.order.pop_front()
        {
            seen.by_request.remove(&oldest);
        }
    }

    /// Whether `call` may be answered now.
    pub(super) fn standing(&self, call: &ToolCall) -> Standing {
        let current = self.connection();
        let seen = lock(&self.seen);
        match seen.by_request.get(call.request_id.as_str()) {
            Some((identity, _)) if *identity != Identity::of(call) => Standing::Replaced,
            Some((_, connection)) if *connection == current && current != NO_CONNECTION => Standing::Current,
            // Forgotten (the bridge held more calls than remembered) counts as earlier: it is checked.
            _ => Standing::Earlier,
        }
    }

    /// The lock to hold while listing `thread`, so that one listing of it is taken at a time: whoever waited for it
    /// finds the result with [`listed_pending`](Self::listed_pending) instead of listing again.
    pub(super) fn listing_gate(&self, thread: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.listing_gates).entry(thread.to_owned()).or_default())
    }

    /// Numbers a listing about to begin; every listing begun later has a higher number.
    pub(super) fn begin_listing(&self) -> u64 {
        self.listings_begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The number of the last listing begun, so that [`listed_since`](Self::listed_since) can later tell a listing
    /// that began after now.
    pub(super) fn last_listing_begun(&self) -> u64 {
        self.listings_begun.load(Ordering::SeqCst)
    }

    /// Records the pending rows of `thread` as listed on `connection` ([`NO_CONNECTION`] when none stayed up while
    /// it was taken) by the listing numbered `number`.
    pub(super) fn listed(
        &self,
        thread: &str,
        connection: u64,
        number: u64,
        pending: impl IntoIterator<Item = ToolCall>,
    ) {
        let pending = pending
            .into_iter()
            .map(|call| (call.request_id.clone(), Identity::of(&call)))
            .collect();
        let listing = Listing {
            connection,
            number,
            pending,
        };
        lock(&self.listed).insert(thread.to_owned(), listing);
    }

    /// Whether the last listing of the call's thread shows it pending under its request id, if that listing began
    /// after listing number `asked` (from [`last_listing_begun`](Self::last_listing_begun)): one as fresh as a
    /// listing of its own, whatever the connection. `None` when the last listing is older.
    pub(super) fn listed_since(&self, call: &ToolCall, asked: u64) -> Option<bool> {
        let listed = lock(&self.listed);
        let listing = listed.get(&call.thread_id).filter(|l| l.number > asked)?;
        Some(shows(listing, call))
    }

    /// Whether the listing of the call's thread taken on the current connection shows it pending under its request
    /// id; `None` when there is no such listing (none was taken on this connection, or no connection is up).
    pub(super) fn listed_pending(&self, call: &ToolCall) -> Option<bool> {
        let current = self.connection();
        if current == NO_CONNECTION {
            return None;
        }
        let listed = lock(&self.listed);
        let listing = listed.get(&call.thread_id).filter(|l| l.connection == current)?;
        Some(shows(listing, call))
    }
}

/// Whether `pending` (a listing just taken) shows `call` under its request id.
pub(super) fn shows_pending(pending: &[ToolCall], call: &ToolCall) -> bool {
    let identity = Identity::of(call);
    pending
        .iter()
        .any(|row| row.request_id == call.request_id && Identity::of(row) == identity)
}

fn shows(listing: &Listing, call: &ToolCall) -> bool {
    listing.pending.get(&call.request_id) == Some(&Identity::of(call))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn call(request_id: &str, call_id: &str) -> ToolCall {
        ToolCall {
            request_id: request_id.into(),
            thread_id: "t".into(),
            turn_id: Some("u".into()),
            call_id: call_id.into(),
            tool: "echo".into(),
            arguments: Value::Null,
        }
    }

    fn connect(link: &StreamStats) -> u64 {
        link.connection_opened()
    }

    #[test]
    fn a_call_from_another_connection_is_checked_and_a_reused_request_id_is_refused() {
        let link = Arc::new(StreamStats::default());
        let calls = Calls::default();
        calls.attach_link(Arc::clone(&link));
        let first = connect(&link);
        calls.seen(&call("0", "call_a"), first);
        assert_eq!(calls.standing(&call("0", "call_a")), Standing::Current);

        link.set_connected(false);
        assert_eq!(
            calls.standing(&call("0", "call_a")),
            Standing::Earlier,
            "while disconnected"
        );
        assert_eq!(
            calls.listed_pending(&call("0", "call_a")),
            None,
            "no listing counts while disconnected"
        );

        let second = connect(&link);
        assert_eq!(calls.standing(&call("0", "call_a")), Standing::Earlier);
        assert_eq!(
            calls.listed_pending(&call("0", "call_a")),
            None,
            "not listed on this connection yet"
        );
        calls.listed("t", second, calls.begin_listing(), [call("0", "call_a")]);
        assert_eq!(
            calls.listed_pending(&call("0", "call_a")),
            Some(true),
            "a mere reconnect: still pending"
        );

        // codex-manager restarted: request id 0 now stands for a new call.
        link.set_connected(false);
        let third = connect(&link);
        calls.listed("t", third, calls.begin_listing(), [call("0", "call_b")]);
        assert_eq!(calls.listed_pending(&call("0", "call_a")), Some(false));
        calls.seen(&call("0", "call_b"), third);
        assert_eq!(calls.standing(&call("0", "call_a")), Standing::Replaced);
        assert_eq!(calls.standing(&call("0", "call_b")), Standing::Current);
        // A listing taken on an earlier connection does not count for this one.
        calls.listed("t", second, calls.begin_listing(), [call("0", "call_a")]);
        assert_eq!(calls.listed_pending(&call("0", "call_a")), None);

        assert!(shows_pending(&[call("0", "call_b")], &call("0", "call_b")));
        assert!(!shows_pending(&[call("0", "call_b")], &call("0", "call_a")));
    }

    #[test]
    fn a_listing_begun_after_an_answer_began_waiting_serves_it_connected_or_not() {
        let calls = Calls::default();
        let before = calls.last_listing_begun();
        let early = calls.begin_listing();
        let asked = calls.last_listing_begun();
        calls.listed("t", NO_CONNECTION, early, [call("0", "call_a")]);
        assert_eq!(
            calls.listed_since(&call("0", "call_a"), asked),
            None,
            "begun before it waited"
        );
        assert_eq!(calls.listed_since(&call("0", "call_a"), before), Some(true));

        let fresh = calls.begin_listing();
        calls.listed("t", NO_CONNECTION, fresh, [call("0", "call_b")]);
        assert_eq!(calls.listed_since(&call("0", "call_b"), asked), Some(true));
        assert_eq!(
            calls.listed_since(&call("0", "call_a"), asked),
            Some(false),
            "gone, or its id reused"
        );
        assert_eq!(
            calls.listed_pending(&call("0", "call_b")),
            None,
            "no connection: it stands for no connection's listing"
        );
    }

    #[test]
    fn calls_seen_without_a_connection_are_never_current() {
        let calls = Calls::default();
        calls.seen(&call("0", "call_a"), calls.connection());
        assert_eq!(calls.connection(), NO_CONNECTION);
        assert_eq!(calls.standing(&call("0", "call_a")), Standing::Earlier);
    }
}
