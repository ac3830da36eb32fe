//! [`CallStore`]: what the bridge knows about the calls it has taken — have we seen this call, what became of
//! it — so that a call that arrives twice (by the stream and by pending-call listing, or twice on one path) runs
//! once, and a result that could not be delivered is re-sent instead of the skill running again.
//!
//! In memory ([`CallLedger`], bounded) by default; with a [`Journal`] on disk as well, a result is recorded
//! before its answer is sent, so that after a crash a call still pending upstream gets that result instead of a
//! second run.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::journal::Journal;
use crate::ToolResult;
use crate::upstream::ToolCall;
use crate::util::lock;

/// The identity of a call: request ids repeat when an upstream restarts (they are JSON-RPC ids numbered from 0
/// by each app-server process), so the thread, the turn and the model's call id are part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CallKey {
    request_id: String,
    thread_id: String,
    turn_id: Option<String>,
    call_id: String,
}

impl CallKey {
    pub(crate) fn of(call: &ToolCall) -> Self {
        Self {
            request_id: call.request_id.clone(),
            thread_id: call.thread_id.clone(),
            turn_id: call.turn_id.clone(),
            call_id: call.call_id.clone(),
        }
    }

    /// One string for the journal: the parts joined by a separator no id contains.
    pub(crate) fn encoded(&self) -> String {
        let turn = self.turn_id.as_deref().unwrap_or_default();
        format!(
            "{}\u{1f}{}\u{1f}{turn}\u{1f}{}",
            self.thread_id, self.request_id, self.call_id
        )
    }
}

/// How delivering a result ended, as the store keeps it.
pub(crate) enum Settlement {
    /// Answered, or settled by the upstream: forget the result.
    Answered,
    /// Not delivered: re-send this result when the call shows up pending again.
    Undelivered(Arc<ToolResult>),
    /// Not run here after all (another bridge of the group runs it, or the group's store cannot be reached):
    /// forget it, so that the next time it is seen pending it is claimed again.
    Released,
}

/// The store of call states: memory, and a journal when configured.
pub(crate) struct CallStore {
    memory: Mutex<CallLedger>,
    journal: Option<Journal>,
}

impl CallStore {
    pub(crate) fn new(capacity: usize, journal: Option<Journal>) -> Self {
        Self {
            memory: Mutex::new(CallLedger::new(capacity)),
            journal,
        }
    }

    /// Takes `key` if it is new (recording it in flight) and says what to do with it. A call this process has
    /// not seen may still have a result in the journal, from before a crash: that result is re-delivered.
    pub(crate) fn admit(&self, key: &Arc<CallKey>) -> Admission {
        let admission = lock(&self.memory).admit(key);
        let (Admission::New, Some(journal)) = (&admission, &self.journal) else {
            return admission;
        };
        match journal.lookup(key) {
            Some(result) => Admission::Redeliver(Arc::new(result)),
            None => admission,
        }
    }

    /// The call ran: its result is kept (on disk, with a journal) before the answer goes out.
    pub(crate) async fn complete(&self, key: &CallKey, result: &ToolResult) {
        if let Some(journal) = &self.journal {
            journal.completed(key, result).await;
        }
    }

    /// How delivering ended. (The journal keeps the result either way: should the call show up pending again
    /// after a restart, its answer was lost, and the same result goes out again.)
    pub(crate) fn settle(&self, key: &CallKey, settlement: Settlement) {
        let state = match settlement {
            Settlement::Answered => CallState::Settled,
            Settlement::Undelivered(result) => CallState::Undelivered(result),
            Settlement::Released => return lock(&self.memory).forget(key),
        };
        lock(&self.memory).finish(key, state);
    }
}

/// Where a known call stands.
#[derive(Debug, Clone)]
pub(crate) enum CallState {
    /// Running or being answered.
    InFlight,
    /// Answered (or settled by the upstream).
    Settled,
    /// Executed, but every delivery attempt failed: re-send this result when the call shows up again.
    Undelivered(Arc<ToolResult>),
}

/// What the ledger says about a newly seen call.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Never seen: run it.
    New,
    /// Seen and in flight or settled: ignore it.
    Duplicate,
    /// Executed but not delivered: deliver this result again.
    Redeliver(Arc<ToolResult>),
}

/// A bounded map of call states; the oldest settled entries are forgotten first. Each key is held once, shared by
/// the map, the order and the call's job: at tens of thousands of entries the copies would cost megabytes.
#[derive(Debug)]
pub(crate) struct CallLedger {
    capacity: usize,
    states: HashMap<Arc<CallKey>, CallState>,
    order: VecDeque<Arc<CallKey>>,
}

impl CallLedger {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            states: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `key` as in flight if it is new or undelivered, and says what to do.
    pub(crate) fn admit(&mut self, key: &Arc<CallKey>) -> Admission {
        match self.states.get_mut(&**key) {
            Some(CallState::InFlight | CallState::Settled) => Admission::Duplicate,
            Some(state @ CallState::Undelivered(_)) => match std::mem::replace(state, CallState::InFlight) {
                CallState::Undelivered(result) => Admission::Redeliver(result),
                _ => unreachable!("matched as undelivered"),
            },
            None => {
                self.evict_to(self.capacity - 1);
                self.states.insert(Arc::clone(key), CallState::InFlight);
                self.order.push_back(Arc::clone(key));
                Admission::New
            }
        }
    }

    /// Marks how a call ended.
    pub(crate) fn finish(&mut self, key: &CallKey, state: CallState) {
        if let Some(slot) = self.states.get_mut(key) {
            *slot = state;
        }
    }

    /// Forgets a call, so that it is admitted as new when it is seen again. Its entry in the order stays until it
    /// comes up for eviction, or until forgotten entries make the order twice the capacity: then it is compacted.
    pub(crate) fn forget(&mut self, key: &CallKey) {
        self.states.remove(key);
        if self.order.len() > self.capacity.saturating_mul(2) {
            let mut kept = std::collections::HashSet::with_capacity(self.states.len());
            let states = &self.states;
            self.order
                .retain(|key| states.contains_key(&**key) && kept.insert(Arc::clone(key)));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// Forgets the oldest entries that are not in flight until at most `target` remain. In-flight entries are
    /// never forgotten (forgetting one would let its call run twice), so the ledger may exceed its capacity
    /// while more calls than that are running at once.
    fn evict_to(&mut self, target: usize) {
        let mut kept_in_flight = Vec::new();
        while self.states.len() > target {
            let Some(oldest) = self.order.pop_front() else { break };
            match self.states.get(&oldest) {
                Some(CallState::InFlight) => kept_in_flight.push(oldest),
                Some(_) => {
                    self.states.remove(&oldest);
                }
                None => {}
            }
        }
        for key in kept_in_flight.into_iter().rev() {
            self.order.push_front(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Arc<CallKey> {
        Arc::new(call_key(id))
    }

    fn call_key(id: &str) -> CallKey {
        CallKey {
            request_id: id.into(),
            thread_id: "t".into(),
            turn_id: Some("u".into()),
            call_id: format!("call_{id}"),
        }
    }

    #[test]
    fn a_call_is_admitted_once() {
        let mut ledger = CallLedger::new(8);
        assert!(matches!(ledger.admit(&key("1")), Admission::New));
        assert!(matches!(ledger.admit(&key("1")), Admission::Duplicate));
        ledger.finish(&key("1"), CallState::Settled);
        assert!(matches!(ledger.admit(&key("1")), Admission::Duplicate));
    }

    #[test]
    fn the_same_request_id_on_another_thread_or_turn_is_another_call() {
        let mut ledger = CallLedger::new(8);
        let other_thread = Arc::new(CallKey {
            thread_id: "other".into(),
            ..call_key("1")
        });
        let other_turn = Arc::new(CallKey {
            turn_id: Some("next".into()),
            ..call_key("1")
        });
        assert!(matches!(ledger.admit(&key("1")), Admission::New));
        assert!(matches!(ledger.admit(&other_thread), Admission::New));
        assert!(matches!(ledger.admit(&other_turn), Admission::New));
    }

    #[test]
    fn undelivered_result_is_handed_back_once() {
        let mut ledger = CallLedger::new(8);
        ledger.admit(&key("1"));
        ledger.finish(&key("1"), CallState::Undelivered(Arc::new(ToolResult::text("done"))));
        match ledger.admit(&key("1")) {
            Admission::Redeliver(result) => assert_eq!(result.text_content(), "done"),
            other => panic!("expected redelivery, got {other:?}"),
        }
        assert!(matches!(ledger.admit(&key("1")), Admission::Duplicate));
    }

    #[test]
    fn a_released_call_is_admitted_again() {
        let store = CallStore::new(8, None);
        let call = key("1");
        assert!(matches!(store.admit(&call), Admission::New));
        store.settle(&call, Settlement::Released);
        assert!(
            matches!(store.admit(&call), Admission::New),
            "claimed again when seen again"
        );
        assert!(matches!(store.admit(&call), Admission::Duplicate));
    }

    #[test]
    fn calls_released_over_and_over_do_not_grow_the_ledger() {
        let mut ledger = CallLedger::new(4);
        for _ in 0..1000 {
            ledger.admit(&key("held elsewhere"));
            ledger.forget(&key("held elsewhere"));
        }
        assert!(ledger.order.len() <= 8, "order grew to {}", ledger.order.len());
        assert!(matches!(ledger.admit(&key("held elsewhere")), Admission::New));
    }

    #[test]
    fn memory_is_bounded_but_in_flight_calls_are_kept() {
        let mut ledger = CallLedger::new(3);
        ledger.admit(&key("running"));
        for i in 0..100 {
            let k = key(&i.to_string());
            ledger.admit(&k);
            ledger.finish(&k, CallState::Settled);
        }
        assert!(ledger.len() <= 3, "ledger grew to {}", ledger.len());
        assert!(matches!(ledger.admit(&key("running")), Admission::Duplicate));
        assert!(matches!(ledger.admit(&key("99")), Admission::Duplicate));
        assert!(matches!(ledger.admit(&key("0")), Admission::New));
    }
}
