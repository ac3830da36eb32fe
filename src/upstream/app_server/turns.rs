//! What became of each turn: its last agent message and how it completed ([`TurnOutcome`]), kept until
//! somebody waits for it, so `send` can print the final reply even when the turn finishes before it asks.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

/// Completed turns kept for a waiter that has not asked yet; the oldest are forgotten beyond this.
const KEPT_OUTCOMES: usize = 64;

/// How a turn ended (`turn/completed` `turn.status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnStatus {
    /// The model finished.
    Completed,
    /// Interrupted (`turn/interrupt`, or Codex stopped it).
    Interrupted,
    /// Failed; [`TurnOutcome::error`] says why.
    Failed,
    /// A status this version does not know.
    Other(String),
}

impl TurnStatus {
    fn parse(status: &str) -> Self {
        match status {
            "completed" => Self::Completed,
            "interrupted" => Self::Interrupted,
            "failed" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Completed => "completed",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
            Self::Other(other) => other,
        }
    }
}

/// One completed turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnOutcome {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// How it ended.
    pub status: TurnStatus,
    /// The last agent message of the turn, if any.
    pub final_reply: Option<String>,
    /// The turn error's message, for failed or interrupted turns that carry one.
    pub error: Option<String>,
}

impl TurnOutcome {
    /// Reads a `turn/completed` notification's params; `last_agent_message` is the latest `agentMessage`
    /// seen in `item/completed` for the turn (used when the turn's own item list has none).
    pub(crate) fn from_completed(params: &Value, last_agent_message: Option<String>) -> Option<Self> {
        let turn = params.get("turn")?;
        let from_items = turn
            .get("items")
            .and_then(Value::as_array)
            .and_then(|items| items.iter().rev().find_map(agent_message_text));
        Some(Self {
            thread_id: params
                .get("threadId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            turn_id: turn.get("id")?.as_str()?.to_owned(),
            status: TurnStatus::parse(turn.get("status").and_then(Value::as_str).unwrap_or("unknown")),
            final_reply: last_agent_message.or(from_items),
            error: turn
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// The text of a thread item when it is an agent message.
pub(crate) fn agent_message_text(item: &Value) -> Option<String> {
    if item.get("type")?.as_str()? != "agentMessage" {
        return None;
    }
    item.get("text")?.as_str().map(str::to_owned)
}

/// Agent messages per running turn, and completed turns until they are claimed with [`wait`](Self::wait).
#[derive(Debug)]
pub struct TurnTracker {
    state: Mutex<State>,
    completions: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    last_message: HashMap<String, String>,
    completed: VecDeque<TurnOutcome>,
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

    /// Notes an agent message of a running turn.
    pub(crate) fn agent_message(&self, turn_id: &str, text: String) {
        let mut state = self.state.lock().expect("turns lock");
        state.last_message.insert(turn_id.to_owned(), text);
    }

    /// Takes the last agent message noted for a turn.
    pub(crate) fn take_last_message(&self, turn_id: &str) -> Option<String> {
        self.state.lock().expect("turns lock").last_message.remove(turn_id)
    }

    /// Records a completed turn and wakes its waiter.
    pub(crate) fn completed(&self, outcome: TurnOutcome) {
        {
            let mut state = self.state.lock().expect("turns lock");
            if state.completed.len() == KEPT_OUTCOMES {
                state.completed.pop_front();
            }
            state.completed.push_back(outcome);
        }
        self.completions.send_modify(|count| *count += 1);
    }

    /// Waits until `turn_id` completes (or has completed) and claims its outcome; `None` on timeout.
    /// Each outcome is claimed once; the last 64 unclaimed ones are kept.
    pub async fn wait(&self, turn_id: &str, timeout: Duration) -> Option<TurnOutcome> {
        let mut completions = self.completions.subscribe();
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
        tokio::time::timeout(timeout, claim).await.ok()
    }

    fn claim(&self, turn_id: &str) -> Option<TurnOutcome> {
        let mut state = self.state.lock().expect("turns lock");
        let index = state.completed.iter().position(|outcome| outcome.turn_id == turn_id)?;
        state.completed.remove(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_captured_turn_completed() {
        let captured: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/app-server-0.169/turn-completed.json"
        ))
        .unwrap();
        let outcome = TurnOutcome::from_completed(&captured["params"], None).unwrap();
        assert_eq!(outcome.status, TurnStatus::Completed);
        assert_eq!(outcome.final_reply.as_deref(), Some("Tool said: HELLO BRIDGE"));
        assert_eq!(outcome.turn_id, "01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01");
    }

    #[tokio::test]
    async fn a_turn_completed_before_the_wait_is_still_claimed_once() {
        let turns = TurnTracker::new();
        let params = json!({"threadId": "t", "turn": {"id": "u", "status": "interrupted", "items": [],
                                                      "error": {"message": "stopped"}}});
        turns.completed(TurnOutcome::from_completed(&params, Some("partial".into())).unwrap());
        let outcome = turns.wait("u", Duration::from_secs(1)).await.unwrap();
        assert_eq!(outcome.status, TurnStatus::Interrupted);
        assert_eq!(outcome.final_reply.as_deref(), Some("partial"));
        assert_eq!(outcome.error.as_deref(), Some("stopped"));
        assert_eq!(turns.wait("u", Duration::from_millis(20)).await, None);
    }
}
