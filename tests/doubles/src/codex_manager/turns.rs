//! Turns: what happens after `POST /api/sessions/:id/messages`. The double emits
//! `app_server.turn.started`, then plays a [`TurnScript`] (tool calls, then a final agent message
//! and `app_server.turn.completed`), so a client that sends a message and bridges tool calls can
//! be tested end to end. Without a script the turn stays in progress until interrupted.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::clock;
use super::fixtures;
use super::state::{State, TurnRecord};

/// What the scripted model does during one turn.
///
/// ```
/// use serde_json::json;
/// use skillbridge_doubles::codex_manager::{TurnScript, answer_text};
///
/// // Call `uppercase` once; after the answer, reply with what the tool said.
/// let script = TurnScript::new()
///     .tool_call("uppercase", json!({"text": "hello bridge"}))
///     .final_message_from(|answers| format!("Tool said: {}", answer_text(&answers[0])));
/// assert_eq!(script.tool_calls.len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct TurnScript {
    /// Tool calls to issue, as `(tool, arguments)`.
    pub tool_calls: Vec<(String, Value)>,
    /// The agent message ending the turn once every call is answered; `None` completes the turn
    /// without a message.
    pub final_message: Option<FinalMessage>,
    /// Issue every call at once (parallel tool calls) instead of one after another's answer.
    pub parallel: bool,
}

impl TurnScript {
    /// An empty script: the turn completes at once, without a message.
    pub fn new() -> TurnScript {
        TurnScript::default()
    }

    /// Adds a tool call.
    pub fn tool_call(mut self, tool: impl Into<String>, arguments: Value) -> TurnScript {
        self.tool_calls.push((tool.into(), arguments));
        self
    }

    /// Ends the turn with this agent message.
    pub fn final_message(mut self, message: impl Into<FinalMessage>) -> TurnScript {
        self.final_message = Some(message.into());
        self
    }

    /// Ends the turn with a message computed from the answer bodies (in tool-call order).
    pub fn final_message_from(mut self, make: impl Fn(&[Value]) -> String + Send + Sync + 'static) -> TurnScript {
        self.final_message = Some(FinalMessage::FromAnswers(Arc::new(make)));
        self
    }

    /// Issues all tool calls at once instead of sequentially.
    pub fn parallel(mut self, parallel: bool) -> TurnScript {
        self.parallel = parallel;
        self
    }
}

/// Renders a final message from the tool-call response bodies.
pub type AnswersToText = dyn Fn(&[Value]) -> String + Send + Sync;

/// The agent message ending a scripted turn.
#[derive(Clone)]
pub enum FinalMessage {
    /// A fixed text.
    Text(String),
    /// Computed from the tool-call response bodies, in tool-call order.
    FromAnswers(Arc<AnswersToText>),
}

impl FinalMessage {
    fn render(&self, answers: &[Value]) -> String {
        match self {
            FinalMessage::Text(text) => text.clone(),
            FinalMessage::FromAnswers(make) => make(answers),
        }
    }
}

impl fmt::Debug for FinalMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinalMessage::Text(text) => f.debug_tuple("Text").field(text).finish(),
            FinalMessage::FromAnswers(_) => f.write_str("FromAnswers(..)"),
        }
    }
}

impl From<&str> for FinalMessage {
    fn from(text: &str) -> FinalMessage {
        FinalMessage::Text(text.to_owned())
    }
}

impl From<String> for FinalMessage {
    fn from(text: String) -> FinalMessage {
        FinalMessage::Text(text)
    }
}

/// A message as a [`CodexManagerDoubleBuilder::on_message`](super::CodexManagerDoubleBuilder::on_message)
/// hook sees it.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    /// The session (thread) id.
    pub thread_id: String,
    /// The turn the message started.
    pub turn_id: String,
    /// The message text.
    pub text: String,
}

pub(crate) type MessageHook = Arc<dyn Fn(&IncomingMessage) -> Option<TurnScript> + Send + Sync>;

/// The text of a tool-call response body: its `inputText` items joined by newlines, else its
/// `text` shorthand, else the same from a verbatim `response`.
///
/// ```
/// use serde_json::json;
/// use skillbridge_doubles::codex_manager::answer_text;
///
/// let body = json!({"success": true, "contentItems": [{"type": "inputText", "text": "HELLO"}]});
/// assert_eq!(answer_text(&body), "HELLO");
/// assert_eq!(answer_text(&json!({"text": "hi"})), "hi");
/// ```
pub fn answer_text(body: &Value) -> String {
    if let Some(items) = body.get("contentItems").and_then(Value::as_array) {
        let texts: Vec<&str> = items
            .iter()
            .filter(|item| item["type"] == "inputText")
            .filter_map(|item| item["text"].as_str())
            .collect();
        return texts.join("\n");
    }
    if let Some(text) = body.get("text").and_then(Value::as_str) {
        return text.to_owned();
    }
    match body.get("response") {
        Some(response) => answer_text(response),
        None => String::new(),
    }
}

/// Why a message could not start a turn.
pub(crate) enum StartError {
    NotFound,
    Deleted(Value),
}

/// Records the message, starts a turn, emits `app_server.turn.started` and plays the script
/// chosen for it (queued for the thread, else the hook's, else the default). Returns the turn id.
pub(crate) fn start_turn(
    state: &Arc<State>,
    session_id: &str,
    text: String,
    tools: Option<Vec<Value>>,
) -> Result<String, StartError> {
    let turn_id = clock::new_id();
    let cancel = state.shutdown.child_token();
    let now_ms = clock::unix_millis();
    let (started, session) = {
        let mut sessions = state.sessions();
        let session = sessions.get_mut(session_id).ok_or(StartError::NotFound)?;
        if let Some(body) = session.deleted_body() {
            return Err(StartError::Deleted(body));
        }
        if let Some(tools) = tools {
            session.settings.tools = tools;
        }
        session.messages.push(text.clone());
        session.updated_at = now_ms / 1000;
        session
            .transcript
            .push(fixtures::transcript_entry(&turn_id, "user", &text, now_ms));
        let turn = TurnRecord {
            id: turn_id.clone(),
            status: "inProgress",
            items: vec![],
            started_ms: now_ms,
            completed_ms: None,
        };
        let started = fixtures::turn_started(session_id, &turn.view(), Some(&session.reference()));
        session.turns.push(turn);
        session.active_turn = Some((turn_id.clone(), cancel.clone()));
        (started, session.reference())
    };
    state.publish_notification(&started);
    let message = IncomingMessage {
        thread_id: session.id,
        turn_id: turn_id.clone(),
        text,
    };
    let script = state
        .next_script(session_id)
        .or_else(|| state.config.on_message.as_ref().and_then(|hook| hook(&message)))
        .or_else(|| state.config.default_turn.clone());
    if let Some(script) = script {
        tokio::spawn(play(
            Arc::clone(state),
            message.thread_id,
            turn_id.clone(),
            script,
            cancel,
        ));
    }
    Ok(turn_id)
}

/// Plays a script until it ends or its turn is interrupted.
async fn play(state: Arc<State>, thread_id: String, turn_id: String, script: TurnScript, cancel: CancellationToken) {
    let calls = async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut answers = vec![Value::Null; script.tool_calls.len()];
        let mut slot_of = HashMap::new();
        for (index, (tool, arguments)) in script.tool_calls.iter().enumerate() {
            let issued = state.inject_tool_call(&thread_id, Some(&turn_id), tool, arguments, Some(tx.clone()));
            slot_of.insert(issued.call_id, index);
            if !script.parallel {
                let answer = rx.recv().await.expect("the turn holds a sender");
                answers[slot_of[&*answer.call_id]] = answer.body;
            }
        }
        if script.parallel {
            for _ in 0..answers.len() {
                let answer = rx.recv().await.expect("the turn holds a sender");
                answers[slot_of[&*answer.call_id]] = answer.body;
            }
        }
        answers
    };
    let answers = tokio::select! {
        _ = cancel.cancelled() => return,
        answers = calls => answers,
    };
    let message = script.final_message.as_ref().map(|m| m.render(&answers));
    finish_turn(&state, &thread_id, &turn_id, "completed", message);
}

/// Ends a turn in progress: records it, then emits `app_server.item.completed` (agent message,
/// if any) and `app_server.turn.completed`. Does nothing if the turn already ended.
fn finish_turn(state: &State, thread_id: &str, turn_id: &str, status: &'static str, message: Option<String>) -> bool {
    let now_ms = clock::unix_millis();
    let item = message
        .as_deref()
        .map(|text| fixtures::agent_message_item(text, now_ms));
    let (completed, session) = {
        let mut sessions = state.sessions();
        let Some(session) = sessions.get_mut(thread_id) else {
            return false;
        };
        let reference = session.reference();
        let Some(turn) = session
            .turns
            .iter_mut()
            .find(|t| t.id == turn_id && t.status == "inProgress")
        else {
            return false;
        };
        turn.status = status;
        turn.completed_ms = Some(now_ms);
        turn.items.extend(item.clone());
        let completed = fixtures::turn_completed(thread_id, &turn.view(), Some(&reference));
        if session.active_turn.as_ref().is_some_and(|(id, _)| id == turn_id) {
            session.active_turn = None;
        }
        if let Some(text) = &message {
            session
                .transcript
                .push(fixtures::transcript_entry(turn_id, "assistant", text, now_ms));
        }
        (completed, reference)
    };
    if let Some(item) = item {
        state.publish_notification(&fixtures::item_completed(thread_id, turn_id, item, Some(&session)));
    }
    state.publish_notification(&completed);
    true
}

/// Why an interrupt did nothing.
pub(crate) enum InterruptError {
    NotFound,
    Deleted(Value),
    NoActiveTurn,
}

/// Interrupts the turn in progress (optionally only if it is `turn_id`): stops its script and
/// emits `app_server.turn.completed` with status `interrupted`. Returns the turn id.
pub(crate) fn interrupt(state: &State, session_id: &str, turn_id: Option<&str>) -> Result<String, InterruptError> {
    let (active, cancel) = {
        let mut sessions = state.sessions();
        let session = sessions.get_mut(session_id).ok_or(InterruptError::NotFound)?;
        if let Some(body) = session.deleted_body() {
            return Err(InterruptError::Deleted(body));
        }
        match &session.active_turn {
            Some((active, _)) if turn_id.is_none_or(|wanted| wanted == active) => {
                session.active_turn.take().expect("checked above")
            }
            _ => return Err(InterruptError::NoActiveTurn),
        }
    };
    cancel.cancel();
    finish_turn(state, session_id, &active, "interrupted", None);
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answer_text_reads_every_response_form() {
        let items = json!({"contentItems": [
            {"type": "inputText", "text": "a"},
            {"type": "inputImage", "imageUrl": "data:"},
            {"type": "inputText", "text": "b"}
        ]});
        assert_eq!(answer_text(&items), "a\nb");
        assert_eq!(
            answer_text(&json!({"response": {"contentItems": [{"type": "inputText", "text": "r"}]}})),
            "r"
        );
        assert_eq!(answer_text(&json!({})), "");
    }

    #[test]
    fn final_messages_render() {
        let fixed: FinalMessage = "done".into();
        assert_eq!(fixed.render(&[]), "done");
        let script = TurnScript::new().final_message_from(|answers| format!("{} answers", answers.len()));
        assert_eq!(script.final_message.unwrap().render(&[json!(1), json!(2)]), "2 answers");
    }
}
