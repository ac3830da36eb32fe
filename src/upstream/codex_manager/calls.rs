//! [`Calls`]: which call each request id stands for, across the connections to codex-manager.
//!
//! codex-manager addresses an answer by request id alone, and the request ids restart at 0 when codex-manager
//! restarts (its sessions survive). A call taken on an earlier connection may therefore share its request id with
//! a new call by the time it is answered. So every connection (every `ready` frame) is a new *generation*: a call
//! seen in the current generation is answered directly; a call from an earlier one is answered only once the
//! pending-call listing of the current generation shows its request id with the same thread, turn and call id.
//! Otherwise its result is dropped: it is never delivered to another call. The listing is taken once per
//! generation and thread (the feed's listing after the `ready` frame usually is that one), not once per call.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::upstream::ToolCall;
use crate::util::lock;

/// Request ids remembered, at most: more than the calls a bridge holds at once.
const REMEMBERED: usize = 65_536;

/// What identifies a call besides its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    thread_id: String,
    turn_id: Option<String>,
    call_id: String,
}

impl Identity {
    pub(super) fn of(call: &ToolCall) -> Self {
        Self {
            thread_id: call.thread_id.clone(),
            turn_id: call.turn_id.clone(),
            call_id: call.call_id.clone(),
        }
    }
}

/// Whether a call may be answered now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// Seen on the current connection: answer it.
    Current,
    /// Seen on an earlier connection: answer it only if the current listing of `thread` shows it.
    Earlier,
    /// Its request id now stands for another call: drop the result.
    Replaced,
}

/// Generations and the calls seen in them; one per codex-manager upstream, shared with its feed.
#[derive(Default)]
pub(super) struct Calls {
    generation: AtomicU64,
    seen: Mutex<Seen>,
    /// The current generation's pending rows of each thread listed in it.
    listed: Mutex<HashMap<String, Listing>>,
}

#[derive(Default)]
struct Seen {
    by_request: HashMap<String, (Identity, u64)>,
    order: VecDeque<String>,
}

struct Listing {
    generation: u64,
    pending: HashMap<String, Identity>,
}

impl Calls {
    /// A new connection is up (a `ready` frame): calls seen before it are from an earlier generation.
    pub(super) fn new_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Notes a call handed to the bridge in `generation`.
    pub(super) fn seen(&self, call: &ToolCall, generation: u64) {
        let mut seen = lock(&self.seen);
        let entry = (Identity::of(call), generation);
        if seen.by_request.insert(call.request_id.clone(), entry).is_none() {
            seen.order.push_back(call.request_id.clone());
            if seen.order.len() > REMEMBERED
                && let Some(oldest) = seen.order.pop_front()
            {
                seen.by_request.remove(&oldest);
            }
        }
    }

    /// Whether `call` may be answered now.
    pub(super) fn standing(&self, call: &ToolCall) -> Standing {
        let seen = lock(&self.seen);
        match seen.by_request.get(&call.request_id) {
            Some((identity, _)) if *identity != Identity::of(call) => Standing::Replaced,
            Some((_, generation)) if *generation == self.generation() => Standing::Current,
            // Forgotten (the bridge held more calls than remembered) counts as earlier: it is checked.
            _ => Standing::Earlier,
        }
    }

    /// Records the pending rows of `thread` as listed in `generation` (ignored if a newer one started since).
    pub(super) fn listed(&self, thread: &str, generation: u64, pending: impl IntoIterator<Item = ToolCall>) {
        if generation != self.generation() {
            return;
        }
        let pending = pending
            .into_iter()
            .map(|call| (call.request_id.clone(), Identity::of(&call)))
            .collect();
        lock(&self.listed).insert(thread.to_owned(), Listing { generation, pending });
    }

    /// Whether the current generation's listing of the call's thread shows it pending under its request id;
    /// `None` when the thread was not listed in this generation yet.
    pub(super) fn listed_pending(&self, call: &ToolCall) -> Option<bool> {
        let listed = lock(&self.listed);
        let listing = listed
            .get(&call.thread_id)
            .filter(|l| l.generation == self.generation())?;
        Some(listing.pending.get(&call.request_id) == Some(&Identity::of(call)))
    }
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

    #[test]
    fn a_call_from_before_a_reconnect_is_checked_and_a_reused_request_id_is_refused() {
        let calls = Calls::default();
        let first = calls.new_generation();
        calls.seen(&call("0", "call_a"), first);
        assert_eq!(calls.standing(&call("0", "call_a")), Standing::Current);

        let second = calls.new_generation();
        assert_eq!(calls.standing(&call("0", "call_a")), Standing::Earlier);
        assert_eq!(
            calls.listed_pending(&call("0", "call_a")),
            None,
            "not listed in this generation yet"
        );
        calls.listed("t", second, [call("0", "call_a")]);
        assert_eq!(
            calls.listed_pending(&call("0", "call_a")),
            Some(true),
            "a mere reconnect: still pending"
        );

        // codex-manager restarted: request id 0 now stands for a new call.
        let third = calls.new_generation();
        calls.listed("t", third, [call("0", "call_b")]);
        assert_eq!(calls.listed_pending(&call("0", "call_a")), Some(false));
        calls.seen(&call("0", "call_b"), third);
        assert_eq!(calls.standing(&call("0", "call_a")), Standing::Replaced);
        assert_eq!(calls.standing(&call("0", "call_b")), Standing::Current);
        // A listing taken before the generation changed does not count for the new one.
        calls.listed("t", second, [call("0", "call_a")]);
        assert_eq!(calls.listed_pending(&call("0", "call_a")), Some(false));
    }
}
