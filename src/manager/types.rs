//! Typed request bodies and results of the codex-manager REST operations the bridge uses.
//!
//! Requests serialize to exactly the keys of the OpenAPI `requestBody` schemas (camelCase, unset
//! fields left out); results keep only what the bridge needs plus, where useful, the raw body.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Body of `sessions.create` (`POST /api/sessions`).
///
/// ```
/// use serde_json::json;
/// use skillbridge::manager::CreateSession;
///
/// let req = CreateSession::new()
///     .cwd("/work")
///     .approval_policy("never")
///     .dynamic_tool(json!({"name": "uppercase", "description": "Upper-cases text",
///                          "inputSchema": {"type": "object"}}));
/// let body = serde_json::to_value(&req).unwrap();
/// assert_eq!(body["approvalPolicy"], "never");
/// assert!(body.get("model").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    /// Working directory of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `untrusted`, `on-failure`, `on-request` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<String>,
    /// `restricted` or `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access: Option<String>,
    /// `read-only`, `workspace-write` or `danger-full-access`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem_sandbox: Option<String>,
    /// Dynamic tool definitions `{name, description, inputSchema}` (codex-manager accepts at most 128,
    /// with non-empty names and descriptions, and answers 400 otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_tools: Vec<Value>,
}

impl CreateSession {
    /// An empty request: codex-manager's defaults for everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Sets the model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the approval policy (`untrusted`, `on-failure`, `on-request`, `never`).
    pub fn approval_policy(mut self, policy: impl Into<String>) -> Self {
        self.approval_policy = Some(policy.into());
        self
    }

    /// Sets network access (`restricted`, `enabled`).
    pub fn network_access(mut self, access: impl Into<String>) -> Self {
        self.network_access = Some(access.into());
        self
    }

    /// Sets the filesystem sandbox (`read-only`, `workspace-write`, `danger-full-access`).
    pub fn filesystem_sandbox(mut self, sandbox: impl Into<String>) -> Self {
        self.filesystem_sandbox = Some(sandbox.into());
        self
    }

    /// Adds one dynamic tool definition `{name, description, inputSchema}`.
    pub fn dynamic_tool(mut self, tool: Value) -> Self {
        self.dynamic_tools.push(tool);
        self
    }

    /// Adds dynamic tool definitions.
    pub fn dynamic_tools(mut self, tools: impl IntoIterator<Item = Value>) -> Self {
        self.dynamic_tools.extend(tools);
        self
    }
}

/// Result of `sessions.create`: the ids the bridge needs, and the whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedSession {
    /// `session.sessionId`.
    pub session_id: String,
    /// `thread.id` (the id stream events and pending calls carry as `threadId`).
    pub thread_id: String,
    /// The full response body `{session, thread}`.
    pub raw: Value,
}

impl CreatedSession {
    /// Reads the ids out of a `sessions.create` response body.
    pub fn from_body(raw: Value) -> Result<Self, String> {
        let text = |pointer: &str| {
            raw.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("missing string {pointer}"))
        };
        Ok(Self {
            session_id: text("/session/sessionId")?,
            thread_id: text("/thread/id")?,
            raw,
        })
    }
}

/// Body of `sessions.send_message` (`POST /api/sessions/:id/messages`): starts a turn.
///
/// ```
/// use skillbridge::manager::SendMessage;
///
/// let req = SendMessage::new("call the uppercase tool").effort("low");
/// assert_eq!(
///     serde_json::to_value(&req).unwrap(),
///     serde_json::json!({"text": "call the uppercase tool", "effort": "low"})
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// The user message (must not be empty).
    pub text: String,
    /// Model override for this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Reasoning effort: `none`, `minimal`, `low`, `medium`, `high` or `xhigh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// Approval policy override for this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<String>,
}

impl SendMessage {
    /// A message with just its text.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// Sets the model for this turn.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the reasoning effort.
    pub fn effort(mut self, effort: impl Into<String>) -> Self {
        self.effort = Some(effort.into());
        self
    }

    /// Sets the approval policy for this turn.
    pub fn approval_policy(mut self, policy: impl Into<String>) -> Self {
        self.approval_policy = Some(policy.into());
        self
    }
}

/// Result of `sessions.send_message` (202 `{status:"accepted", sessionId, turnId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAccepted {
    /// The session.
    pub session_id: String,
    /// The turn that was started.
    pub turn_id: String,
}

/// A dynamic tool call waiting for an answer, as `sessions.tool_calls.list` and the
/// `tool_call_requested` stream event carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingToolCall {
    /// The id to answer with (`tool_calls.respond`); a JSON number is accepted and kept as its string form.
    #[serde(deserialize_with = "string_or_number")]
    pub request_id: String,
    /// The thread (session) the call belongs to.
    pub thread_id: String,
    /// The turn, when known.
    #[serde(default)]
    pub turn_id: Option<String>,
    /// The model's call id (empty when codex-manager sent `null`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub call_id: String,
    /// The tool name.
    pub tool: String,
    /// The arguments the model passed.
    #[serde(default)]
    pub arguments: Value,
    /// The item id, when known.
    #[serde(default)]
    pub item_id: Option<String>,
    /// When codex-manager saw the call (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// `"pending"` for calls still waiting.
    #[serde(default)]
    pub status: String,
    /// Every other field of the row (`method`, `summary`, `details`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Result of `sessions.tool_calls.list` ([`CodexManager::list_pending_calls`](super::CodexManager::list_pending_calls)):
/// the rows that could be read, and the ones that could not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingCalls {
    /// The calls, in the order listed.
    pub calls: Vec<PendingToolCall>,
    /// Rows that could not be read (left out of `calls`).
    pub unreadable: Vec<UnreadableRow>,
}

/// A pending-call row that could not be read: not the shape of a [`PendingToolCall`], or nested deeper than the
/// 128 levels JSON is read to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRow {
    /// Its `requestId`, when that much of it could be read.
    pub request_id: Option<String>,
    /// Why, e.g. ``"`arguments` nests 126 levels deep (the row 128): rows are read to a depth of 127"`` or
    /// ``"tool: invalid type: integer `5`, expected a string"``.
    pub reason: String,
}

/// Result of `tool_calls.respond` (200 `{status:"ok", requestId, threadId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RespondAck {
    /// The answered request.
    #[serde(deserialize_with = "string_or_number")]
    pub request_id: String,
    /// Its thread.
    #[serde(default)]
    pub thread_id: Option<String>,
}

/// A pending call as the bridge reads a listing: only what it takes to run and answer the call. A listing can hold
/// tens of thousands of rows, most of them calls the bridge already holds, and every other field of a
/// [`PendingToolCall`] (`details` repeats the arguments) would triple what it costs to read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PendingRow {
    #[serde(deserialize_with = "string_or_number")]
    pub(crate) request_id: String,
    pub(crate) thread_id: String,
    #[serde(default)]
    pub(crate) turn_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) call_id: String,
    pub(crate) tool: String,
    #[serde(default)]
    pub(crate) arguments: Value,
    #[serde(default)]
    pub(crate) status: String,
}

impl From<PendingToolCall> for PendingRow {
    fn from(call: PendingToolCall) -> Self {
        Self {
            request_id: call.request_id,
            thread_id: call.thread_id,
            turn_id: call.turn_id,
            call_id: call.call_id,
            tool: call.tool,
            arguments: call.arguments,
            status: call.status,
        }
    }
}

/// `"1"` or `1` as `"1"`: JSON-RPC ids reach the bridge in both forms.
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let id = Value::deserialize(deserializer)?;
    crate::util::request_id_string(&id)
        .ok_or_else(|| serde::de::Error::custom(format!("expected a string or number id, got {id}")))
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pending_call_accepts_numeric_ids_and_null_call_ids() {
        let row: PendingToolCall = serde_json::from_value(json!({
            "requestId": 0, "method": "item/tool/call", "threadId": "t", "turnId": null,
            "itemId": null, "callId": null, "tool": "uppercase", "arguments": {"text": "a"},
            "summary": "s", "details": {}, "createdAt": "2026-11-24T01:44:01.603Z", "status": "pending"
        }))
        .unwrap();
        assert_eq!(row.request_id, "0");
        assert_eq!(row.call_id, "");
        assert_eq!(row.turn_id, None);
        assert_eq!(row.extra["method"], "item/tool/call");
    }

    #[test]
    fn created_session_names_the_missing_field() {
        let err = CreatedSession::from_body(json!({"session": {"sessionId": "s"}, "thread": {}})).unwrap_err();
        assert!(err.contains("/thread/id"), "{err}");
    }
}
