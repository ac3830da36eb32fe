//! [`CallLedger`]: which tool calls this bridge has taken, bounded in memory, so a call that arrives twice
//! (by the stream and by pending-call listing, or twice on one path) runs once.
//!
//! A call whose answer could not be delivered keeps its result here, so a later sighting re-sends that
//! result instead of running the skill again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::ToolResult;
use crate::upstream::ToolCall;

/// The identity of a call. Request ids restart when an app-server restarts, so the thread and the
/// model's call id are part of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CallKey {
    request_id: String,
    thread_id: String,
    call_id: String,
}

impl CallKey {
    pub(crate) fn of(call: &ToolCall) -> Self {
        Self {
            request_id: call.request_id.clone(),
            thread_id: call.thread_id.clone(),
            call_id: call.call_id.clone(),
        }
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

/// A bounded map of call states; the oldest settled entries are forgotten first.
#[derive(Debug)]
pub(crate) struct CallLedger {
    capacity: usize,
    states: HashMap<CallKey, CallState>,
    order: VecDeque<CallKey>,
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
    pub(crate) fn admit(&mut self, key: &CallKey) -> Admission {
        match self.states.get(key) {
            Some(CallState::InFlight | CallState::Settled) => Admission::Duplicate,
            Some(CallState::Undelivered(result)) => {
                let result = Arc::clone(result);
                self.states.insert(key.clone(), CallState::InFlight);
                Admission::Redeliver(result)
            }
            None => {
                self.evict_to(self.capacity - 1);
                self.states.insert(key.clone(), CallState::InFlight);
                self.order.push_back(key.clone());
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

    fn key(id: &str) -> CallKey {
        CallKey {
            request_id: id.into(),
            thread_id: "t".into(),
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
    fn same_request_id_on_another_thread_is_another_call() {
        let mut ledger = CallLedger::new(8);
        let other = CallKey {
            thread_id: "u".into(),
            ..key("1")
        };
        assert!(matches!(ledger.admit(&key("1")), Admission::New));
        assert!(matches!(ledger.admit(&other), Admission::New));
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
