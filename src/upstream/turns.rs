//! What became of each turn, for both upstreams alike: its last agent message and how it completed
//! ([`TurnOutcome`]), kept until somebody waits for it, so `send` gets the final reply even when the turn finishes
//! before it asks. codex-manager passes the app-server notifications through with the same params, so one reader
//! serves both: [`TurnTracker::item_completed`] and [`TurnTracker::turn_completed`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use super::app_server::protocol::{self, ItemCompletedNotification, Turn, TurnCompletedNotification};
use crate::util::lock;

/// Completed turns kept for a waiter that has not asked yet; the oldest are forgotten beyond this.
const KEPT_OUTCOMES: usize = 64;

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnStatus {
    /// The model finished.
    Completed,
    /// Interrupted or cancelled (on request, or by Codex).
    Interrupted,
    /// Failed; [`TurnOutcome::error`] says why.
    Failed,
    /// A status this version does not know, as sent.
    Other(String),
}

impl TurnStatus {
    /// How a turn with `status` ended; `None` while it is still running.
    fn of(status: &protocol::TurnStatus) -> Option<Self> {
        Some(match status {
            protocol::TurnStatus::Completed => Self::Completed,
            protocol::TurnStatus::Interrupted => Self::Interrupted,
            protocol::TurnStatus::Failed => Self::Failed,
            protocol::TurnStatus::InProgress => return None,
            protocol::TurnStatus::Other(other) if other == "cancelled" => Self::Interrupted,
            protocol::TurnStatus::Other(other) => Self::Other(other.clone()),
        })
    }

    /// The name used in logs.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Completed => "completed",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
            Self::Other(other) => other,
        }
    }
}

/// One finished turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnOutcome {
    /// The thread (session).
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// How it ended.
    pub status: TurnStatus,
    /// The last agent message of the turn, if any.
    pub final_reply: Option<String>,
    /// The turn error's message, when it carries one.
    pub error: Option<String>,
}

impl TurnOutcome {
    /// `None` while the turn runs. `last_agent_message` wins over the turn's own items.
    fn of(thread_id: &str, turn: &Turn, last_agent_message: Option<String>) -> Option<Self> {
        Some(Self {
            thread_id: thread_id.to_owned(),
            turn_id: turn.id.clone(),
            status: TurnStatus::of(&turn.status)?,
            final_reply: last_agent_message.or_else(|| turn.last_agent_message().map(str::to_owned)),
            error: turn.error.as_ref().map(|error| error.message.clone()),
        })
    }
}

/// Agent messages per running turn, and finished turns until they are claimed with [`wait`](Self::wait).
#[derive(Debug)]
pub struct TurnTracker {
    state: Mutex<State>,
    completions: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    last_message: HashMap<String, String>,
    completed: VecDeque<TurnOutcome>,
    /// Turns somebody waits for, with their thread: an upstream that may have missed events re-reads these.
    awaited: HashMap<String, String>,
}

impl Default for TurnTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl TurnTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            completions: watch::channel(0).0,
        }
    }

    /// Notes an item that completed: its text, when it is an agent message, which it returns.
    pub fn item_completed(&self, params: &ItemCompletedNotification) -> Option<String> {
        let text = params.item.agent_message_text()?.to_owned();
        lock(&self.state)
            .last_message
            .insert(params.turn_id.clone(), text.clone());
        Some(text)
    }

    /// Records a turn that completed, wakes its waiter, and returns its outcome.
    pub fn turn_completed(&self, params: &TurnCompletedNotification) -> Option<TurnOutcome> {
        self.finished(&params.thread_id, &params.turn)
    }

    /// Records a finished turn read from elsewhere (a session's turn list, after a reconnect lost its events);
    /// `None` when it is still running. A turn already recorded is not recorded twice.
    pub fn finished(&self, thread_id: &str, turn: &Turn) -> Option<TurnOutcome> {
        let outcome = {
            let mut state = lock(&self.state);
            let last = state.last_message.get(&turn.id).cloned();
            let outcome = TurnOutcome::of(thread_id, turn, last)?;
            state.last_message.remove(&turn.id);
            if state.completed.iter().any(|done| done.turn_id == outcome.turn_id) {
                return Some(outcome);
            }
            if state.completed.len() == KEPT_OUTCOMES {
                state.completed.pop_front();
            }
            state.completed.push_back(outcome.clone());
            outcome
        };
        self.completions.send_modify(|count| *count += 1);
        Some(outcome)
    }

    /// The threads of the turns somebody waits for now.
    pub fn awaited_threads(&self) -> Vec<String> {
        let mut threads: Vec<String> = lock(&self.state).awaited.values().cloned().collect();
        threads.sort();
        threads.dedup();
        threads
    }

    /// Waits until turn `turn_id` of `thread_id` finishes (or has finished) and claims its outcome; `None` after
    /// `timeout`. Each outcome is claimed once; the last 64 unclaimed ones are kept.
    pub async fn wait(&self, thread_id: &str, turn_id: &str, timeout: Duration) -> Option<TurnOutcome> {
        let mut completions = self.completions.subscribe();
        lock(&self.state)
            .awaited
            .insert(turn_id.to_owned(), thread_id.to_owned());
        let claim = async {
            loop {
                if let Some(outcome) = self.claim(turn_id) {
                    return outcome;
                }
                if completions.changed().await.is_err() {
                    // The sender lives as long as `self`; this cannot end otherwise.
                    std::future::pending::<()>().await;
                }
            }
        };
        let outcome = tokio::time::timeout(timeout, claim).await.ok();
        lock(&self.state).awaited.remove(turn_id);
        outcome
    }

    /// The last agent message of a turn that has not finished.
    pub fn reply_so_far(&self, turn_id: &str) -> Option<String> {
        lock(&self.state).last_message.get(turn_id).cloned()
    }

    fn claim(&self, turn_id: &str) -> Option<TurnOutcome> {
        let mut state = lock(&self.state);
        let index = state.completed.iter().position(|outcome| outcome.turn_id == turn_id)?;
        state.completed.remove(index)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn turn(value: Value) -> Turn {
        serde_json::from_value(value).unwrap()
    }

    fn completed(value: Value) -> TurnCompletedNotification {
        serde_json::from_value(value).unwrap()
    }

    fn item(value: Value) -> ItemCompletedNotification {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn reads_the_captured_turn_completed_of_both_upstreams() {
        let app_server: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/app-server-0.169/turn-completed.json"
        ))
        .unwrap();
        let manager: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/codex-manager/ws-app_server-turn-completed.json"
        ))
        .unwrap();
        for params in [&app_server["params"], &manager["payload"]["params"]] {
            let outcome = TurnTracker::new().turn_completed(&completed(params.clone())).unwrap();
            assert_eq!(outcome.status, TurnStatus::Completed);
            assert_eq!(outcome.final_reply.as_deref(), Some("Tool said: HELLO BRIDGE"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_reply_is_the_last_agent_message_and_a_finished_turn_is_claimed_once() {
        let turns = TurnTracker::new();
        let message = |turn: &str, kind: &str, text: &str| {
            item(json!({"threadId": "t", "turnId": turn, "item": {"type": kind, "id": "i", "text": text}}))
        };
        turns.item_completed(&message("u", "userMessage", "hi"));
        turns.item_completed(&message("u", "agentMessage", "first"));
        turns.item_completed(&message("u", "agentMessage", "partial"));
        turns.item_completed(&message("v", "agentMessage", "other turn"));
        assert_eq!(turns.reply_so_far("u").as_deref(), Some("partial"));
        turns.turn_completed(&completed(
            json!({"threadId": "t", "turn": {"id": "u", "status": "interrupted",
                                                  "items": [], "error": {"message": "stopped"}}}),
        ));
        let outcome = turns.wait("t", "u", Duration::from_secs(1)).await.unwrap();
        assert_eq!(outcome.status, TurnStatus::Interrupted);
        assert_eq!(outcome.final_reply.as_deref(), Some("partial"));
        assert_eq!(outcome.error.as_deref(), Some("stopped"));
        assert_eq!(turns.wait("t", "u", Duration::from_millis(20)).await, None);
    }

    #[test]
    fn statuses_mean_the_same_on_both_upstreams() {
        let turns = TurnTracker::new();
        let status = |id: &str, status: &str| {
            turns
                .finished("t", &turn(json!({"id": id, "status": status})))
                .map(|outcome| outcome.status)
        };
        assert_eq!(status("a", "cancelled"), Some(TurnStatus::Interrupted));
        assert_eq!(status("b", "interrupted"), Some(TurnStatus::Interrupted));
        assert_eq!(status("c", "failed"), Some(TurnStatus::Failed));
        assert_eq!(status("d", "inProgress"), None);
        assert_eq!(status("e", "exploded"), Some(TurnStatus::Other("exploded".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_turns_name_their_threads_until_they_are_claimed() {
        let turns = std::sync::Arc::new(TurnTracker::new());
        let waiter = tokio::spawn({
            let turns = turns.clone();
            async move { turns.wait("thread-1", "turn-1", Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(turns.awaited_threads(), ["thread-1"]);
        let detail = json!({"id": "turn-1", "status": "failed", "error": {"message": "model overloaded"},
                            "items": [{"type": "agentMessage", "id": "m", "text": "done"}]});
        turns.finished("thread-1", &turn(detail));
        let outcome = waiter.await.unwrap().unwrap();
        assert_eq!(outcome.error.as_deref(), Some("model overloaded"));
        assert_eq!(outcome.final_reply.as_deref(), Some("done"));
        assert!(turns.awaited_threads().is_empty());
    }
}
