//! App-server pass-through signals: the payload of `app_server.*` events ([`AppServerSignal`]) and the method
//! normalization codex-manager uses to name them ([`normalize_method`]).

use serde::Deserialize;
use serde_json::Value;

use super::signal_fields::SignalFields;

/// The type prefix of every app-server pass-through event.
pub(crate) const APP_SERVER_PREFIX: &str = "app_server.";
/// The type prefix of app-server *requests* (the server expects an answer), e.g. tool calls.
pub(crate) const APP_SERVER_REQUEST_PREFIX: &str = "app_server.request.";

/// Whether the app-server sent a notification or a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignalType {
    /// A JSON-RPC notification: no answer expected.
    Notification,
    /// A JSON-RPC request: somebody must answer it (for tool calls: `tool_calls.respond`).
    Request,
    /// Any other value of `signalType`, kept verbatim.
    Other(String),
}

impl SignalType {
    pub(crate) fn parse(value: &str) -> Self {
        match value {
            "notification" => SignalType::Notification,
            "request" => SignalType::Request,
            other => SignalType::Other(other.to_owned()),
        }
    }
}

/// Where a signal belongs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignalContext {
    /// The thread (session) id.
    pub thread_id: Option<String>,
    /// The turn id, when the signal belongs to a turn.
    pub turn_id: Option<String>,
}

/// The codex-manager session a signal belongs to, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalSession {
    /// The session id (equal to the thread id).
    pub id: String,
    /// The session title.
    pub title: Option<String>,
    /// The project the session belongs to.
    pub project_id: Option<String>,
}

/// The payload of an `app_server.*` event:
/// `{source, signalType, eventType, method, receivedAt, context:{threadId, turnId}, params, session, requestId?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct AppServerSignal {
    /// The raw app-server method, e.g. `item/tool/call`.
    pub method: String,
    /// Notification or request.
    pub signal_type: SignalType,
    /// The event type it arrived as, e.g. `app_server.request.item.tool.call`.
    pub event_type: String,
    /// Thread and turn.
    pub context: SignalContext,
    /// The JSON-RPC params (`Value::Null` when absent).
    pub params: Value,
    /// The JSON-RPC id of a request, in string form: codex-manager sends it as a JSON number (`0`, `1`, ..) here
    /// but as a string (`"1"`) in pending-call rows, `tool_call_resolved` and the REST path, so key by this.
    pub request_id: Option<String>,
    /// The session, when codex-manager knows it.
    pub session: Option<SignalSession>,
    /// When codex-manager received the message (RFC 3339 text, as sent).
    pub received_at: Option<String>,
}

impl AppServerSignal {
    /// Reads a signal from an event payload; `None` when the payload has no `method` string.
    ///
    /// `event_type` and `event_thread_id` are the envelope's, used when the payload lacks `eventType` or
    /// `context.threadId`.
    pub fn from_payload(event_type: &str, event_thread_id: Option<&str>, payload: &Value) -> Option<Self> {
        payload.get("method")?.as_str()?;
        Self::from_owned_payload(event_type, event_thread_id, payload.clone())
    }

    /// [`from_payload`](Self::from_payload) taking the payload by value: its `params` and texts move into the
    /// signal instead of being copied.
    ///
    /// ```
    /// use serde_json::json;
    /// use skillbridge::stream::AppServerSignal;
    ///
    /// let payload = json!({"method": "item/tool/call", "requestId": 3, "params": {"tool": "echo"}});
    /// let signal = AppServerSignal::from_owned_payload("app_server.request.item.tool.call", Some("t1"), payload)
    ///     .unwrap();
    /// assert_eq!(signal.request_id.as_deref(), Some("3"));
    /// assert_eq!(signal.params["tool"], "echo");
    /// assert_eq!(signal.context.thread_id.as_deref(), Some("t1"));
    /// ```
    pub fn from_owned_payload(event_type: &str, event_thread_id: Option<&str>, payload: Value) -> Option<Self> {
        SignalFields::deserialize(payload)
            .ok()?
            .into_signal(event_type, event_thread_id)
    }

    /// The method in normalized form, e.g. `item.tool.call`.
    pub fn normalized_method(&self) -> String {
        normalize_method(&self.method)
    }

    /// `true` for requests (somebody must answer).
    pub fn is_request(&self) -> bool {
        self.signal_type == SignalType::Request
    }
}

pub(crate) use crate::util::request_id_string;

/// Normalizes an app-server method the way codex-manager names its events, **without** the `app_server.` /
/// `app_server.request.` prefix: split on `/`, in each segment turn non-alphanumerics into `_`, split camelCase
/// with `_`, lower-case, join with `.`.
///
/// ```
/// use skillbridge::stream::normalize_method;
///
/// assert_eq!(normalize_method("item/started"), "item.started");
/// assert_eq!(normalize_method("item/tool/call"), "item.tool.call");
/// assert_eq!(normalize_method("item/fileChange/requestApproval"), "item.file_change.request_approval");
/// ```
///
/// The full event type is `app_server.<normalized>` for notifications and `app_server.request.<normalized>` for
/// requests; [`app_server_event_type`] builds it.
pub fn normalize_method(method: &str) -> String {
    let mut out = String::with_capacity(method.len() + 8);
    for (i, segment) in method.split('/').enumerate() {
        if i > 0 {
            out.push('.');
        }
        let mut previous: Option<char> = None;
        for c in segment.chars() {
            let c = if c.is_ascii_alphanumeric() { c } else { '_' };
            if c.is_ascii_uppercase() && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous = Some(c);
        }
    }
    out
}

/// The event type codex-manager emits for an app-server method:
/// `app_server_event_type("item/tool/call", true)` → `app_server.request.item.tool.call`.
pub fn app_server_event_type(method: &str, is_request: bool) -> String {
    let prefix = if is_request {
        APP_SERVER_REQUEST_PREFIX
    } else {
        APP_SERVER_PREFIX
    };
    format!("{prefix}{}", normalize_method(method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalization_examples() {
        let cases = [
            ("item/started", "item.started"),
            ("item/tool/call", "item.tool.call"),
            ("item/fileChange/requestApproval", "item.file_change.request_approval"),
            ("turn/started", "turn.started"),
            ("configWarning", "config_warning"),
            ("thread/tokenUsage/updated", "thread.token_usage.updated"),
            ("rawResponseItem/completed", "raw_response_item.completed"),
            ("account/rateLimits/updated", "account.rate_limits.updated"),
            ("remoteControl/status/changed", "remote_control.status.changed"),
            ("item/agent-message/delta", "item.agent_message.delta"),
            ("v2Item/x", "v2_item.x"),
            ("", ""),
        ];
        for (method, expected) in cases {
            assert_eq!(normalize_method(method), expected, "{method}");
        }
        assert_eq!(
            app_server_event_type("item/tool/call", true),
            "app_server.request.item.tool.call"
        );
        assert_eq!(app_server_event_type("item/started", false), "app_server.item.started");
    }

    #[test]
    fn request_ids_in_both_forms() {
        assert_eq!(request_id_string(&json!(0)).as_deref(), Some("0"));
        assert_eq!(request_id_string(&json!(17)).as_deref(), Some("17"));
        assert_eq!(request_id_string(&json!("17")).as_deref(), Some("17"));
        assert_eq!(request_id_string(&json!(null)), None);
        assert_eq!(request_id_string(&json!({"id": 1})), None);
    }

    #[test]
    fn minimal_payload_falls_back_to_envelope() {
        let payload = json!({"method": "item/tool/call", "params": {"turnId": "u1"}, "requestId": 0});
        let signal = AppServerSignal::from_payload("app_server.request.item.tool.call", Some("t1"), &payload).unwrap();
        assert_eq!(signal.signal_type, SignalType::Request);
        assert_eq!(signal.event_type, "app_server.request.item.tool.call");
        assert_eq!(signal.context.thread_id.as_deref(), Some("t1"));
        assert_eq!(signal.context.turn_id.as_deref(), Some("u1"));
        assert_eq!(signal.request_id.as_deref(), Some("0"));
        assert_eq!(signal.session, None);
        assert!(AppServerSignal::from_payload("app_server.x", None, &json!({"params": {}})).is_none());
        assert!(AppServerSignal::from_payload("app_server.x", None, &json!("text")).is_none());
    }
}
