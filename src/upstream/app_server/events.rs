//! The event loop: every message the app-server starts is handled here.
//!
//! `item/tool/call` becomes a [`ToolCall`] submitted to the [`ToolCallSink`] (the dispatcher); every other
//! server request is refused out loud ([`refusal`]); agent messages and turn completions are logged and
//! recorded for `send`; a turn completed as `interrupted` cancels its running calls; `serverRequest/resolved`
//! forgets a call Codex no longer waits for.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use super::refusals::{Refusal, refusal};
use super::rpc::{INVALID_PARAMS, Incoming, Notification, RpcConnection, ServerRequest};
use super::turns::{TurnOutcome, TurnStatus, TurnTracker, agent_message_text};
use super::upstream::AppServerUpstream;
use crate::ToolResult;
use crate::bridge::{CallSource, Dispatcher, Submitted};
use crate::upstream::{ToolCall, Upstream};

/// The server request that carries a dynamic tool call.
pub const TOOL_CALL_METHOD: &str = "item/tool/call";

/// Where the event loop sends tool calls: the dispatcher, or a test's own handler.
pub trait ToolCallSink: Send + Sync + 'static {
    /// Takes a call; the answer goes back later through [`AppServerUpstream`]'s
    /// [`Upstream::answer`](crate::upstream::Upstream::answer). Returns `false` when the sink takes no more
    /// calls (shutting down): the event loop then answers the call `success:false` itself, since Codex
    /// would otherwise wait on it forever.
    fn submit(&self, call: ToolCall) -> bool;

    /// The turn was interrupted: cancel its running calls.
    fn cancel_turn(&self, turn_id: &str);
}

impl ToolCallSink for Dispatcher {
    fn submit(&self, call: ToolCall) -> bool {
        // Every outcome but `Closed` means the dispatcher answers (or already answered) the call.
        Dispatcher::submit(self, call, CallSource::AppServer) != Submitted::Closed
    }

    fn cancel_turn(&self, turn_id: &str) {
        Dispatcher::cancel_turn(self, turn_id);
    }
}

/// The loop that handles everything one app-server connection starts.
///
/// [`AppServer`](super::AppServer) runs one for its child; it runs over any [`RpcConnection`] too.
pub struct AppServerEvents {
    rpc: RpcConnection,
    upstream: Arc<AppServerUpstream>,
    turns: Arc<TurnTracker>,
    sink: Arc<dyn ToolCallSink>,
}

impl AppServerEvents {
    /// Handles `rpc`'s messages: tool calls are tracked in `upstream` (which answers them) and go to `sink`;
    /// turn completions are recorded in `turns`.
    pub fn new(
        rpc: RpcConnection,
        upstream: Arc<AppServerUpstream>,
        turns: Arc<TurnTracker>,
        sink: Arc<dyn ToolCallSink>,
    ) -> Self {
        Self {
            rpc,
            upstream,
            turns,
            sink,
        }
    }

    /// Handles messages until the connection ends.
    pub async fn run(self, mut incoming: mpsc::UnboundedReceiver<Incoming>) {
        while let Some(message) = incoming.recv().await {
            match message {
                Incoming::Request(request) if request.method == TOOL_CALL_METHOD => self.tool_call(request).await,
                Incoming::Request(request) => self.refuse(request).await,
                Incoming::Notification(notification) => self.notification(notification),
            }
        }
        tracing::debug!("app-server event loop ended: the connection closed");
    }

    async fn tool_call(&self, request: ServerRequest) {
        let call = match read_tool_call(&request) {
            Ok(call) => call,
            Err(missing) => {
                let message = format!("skillbridge could not read {TOOL_CALL_METHOD}: {missing}");
                tracing::warn!(id = %request.id, params = %request.params, "{message}");
                if let Err(error) = self.rpc.respond_error(&request.id, INVALID_PARAMS, &message).await {
                    tracing::warn!(%error, "could not answer a malformed tool call");
                }
                return;
            }
        };
        self.upstream.track(&request);
        tracing::debug!(request_id = %call.request_id, tool = %call.tool, call_id = %call.call_id, "tool call");
        if !self.sink.submit(call.clone()) {
            let refused = ToolResult::failure(format!(
                "skillbridge is shutting down; the tool `{}` was not run",
                call.tool
            ));
            let outcome = self.upstream.answer(&call, &refused).await;
            tracing::info!(request_id = %call.request_id, outcome = outcome.label(), "tool call refused: shutting down");
        }
    }

    async fn refuse(&self, request: ServerRequest) {
        let answer = match refusal(&request.method) {
            Refusal::Decline(result) => {
                tracing::warn!(method = %request.method, id = %request.id, "declined an app-server request");
                self.rpc.respond(&request.id, result).await
            }
            Refusal::Error { code, message } => {
                tracing::warn!(method = %request.method, id = %request.id, "app-server request not handled");
                self.rpc.respond_error(&request.id, code, &message).await
            }
        };
        if let Err(error) = answer {
            tracing::warn!(method = %request.method, %error, "could not answer an app-server request");
        }
    }

    fn notification(&self, notification: Notification) {
        let params = &notification.params;
        let text = |key: &str| params.get(key).and_then(Value::as_str).unwrap_or_default();
        match notification.method.as_str() {
            "item/completed" => {
                if let Some(message) = params.get("item").and_then(agent_message_text) {
                    tracing::info!(
                        thread_id = text("threadId"),
                        turn_id = text("turnId"),
                        "agent: {message}"
                    );
                    self.turns.agent_message(text("turnId"), message);
                }
            }
            "turn/completed" => self.turn_completed(params),
            "turn/started" => {
                let turn_id = params.pointer("/turn/id").and_then(Value::as_str).unwrap_or_default();
                tracing::info!(thread_id = text("threadId"), turn_id, "turn started");
            }
            "serverRequest/resolved" => {
                let request_id = match params.get("requestId") {
                    Some(Value::String(id)) => id.clone(),
                    Some(id) => id.to_string(),
                    None => return,
                };
                if self.upstream.forget(&request_id) {
                    tracing::info!(%request_id, "app-server resolved a tool call before it was answered");
                }
            }
            "error" => {
                let message = params
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let will_retry = params.get("willRetry").and_then(Value::as_bool).unwrap_or(false);
                tracing::warn!(turn_id = text("turnId"), will_retry, "app-server turn error: {message}");
            }
            "warning" => tracing::warn!(thread_id = text("threadId"), "app-server: {}", text("message")),
            "configWarning" => match params.get("details").and_then(Value::as_str) {
                Some(details) => tracing::warn!("app-server configuration: {} {details}", text("summary")),
                None => tracing::warn!("app-server configuration: {}", text("summary")),
            },
            method => tracing::trace!(method, "app-server notification"),
        }
    }

    fn turn_completed(&self, params: &Value) {
        let turn_id = params.pointer("/turn/id").and_then(Value::as_str).unwrap_or_default();
        let last_message = self.turns.take_last_message(turn_id);
        let Some(outcome) = TurnOutcome::from_completed(params, last_message) else {
            tracing::warn!(%params, "app-server sent turn/completed without a turn id; ignored");
            return;
        };
        match &outcome.error {
            Some(error) => tracing::info!(
                thread_id = %outcome.thread_id, turn_id = %outcome.turn_id, status = outcome.status.as_str(),
                "turn completed: {error}"
            ),
            None => tracing::info!(
                thread_id = %outcome.thread_id, turn_id = %outcome.turn_id, status = outcome.status.as_str(),
                "turn completed"
            ),
        }
        if outcome.status == TurnStatus::Interrupted {
            self.sink.cancel_turn(&outcome.turn_id);
        }
        self.turns.completed(outcome);
    }
}

fn read_tool_call(request: &ServerRequest) -> Result<ToolCall, String> {
    let params = &request.params;
    let field = |key: &str| {
        params
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("params lack the string `{key}`"))
    };
    Ok(ToolCall {
        request_id: request.id_string(),
        thread_id: field("threadId")?,
        turn_id: params.get("turnId").and_then(Value::as_str).map(str::to_owned),
        call_id: field("callId")?,
        tool: field("tool")?,
        arguments: params.get("arguments").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_captured_tool_call() {
        let captured: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/app-server-0.169/item-tool-call.json"
        ))
        .unwrap();
        let request = ServerRequest {
            id: captured["id"].clone(),
            method: TOOL_CALL_METHOD.to_owned(),
            params: captured["params"].clone(),
        };
        let call = read_tool_call(&request).unwrap();
        assert_eq!(call.request_id, "0");
        assert_eq!(call.call_id, "call_0");
        assert_eq!(call.tool, "uppercase");
        assert_eq!(call.turn_id.as_deref(), Some("01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01"));
        assert_eq!(call.arguments, serde_json::json!({"text": "hello bridge"}));
    }

    #[test]
    fn a_call_without_a_tool_name_is_refused_with_the_reason() {
        let request = ServerRequest {
            id: 3.into(),
            method: TOOL_CALL_METHOD.to_owned(),
            params: serde_json::json!({"threadId": "t", "callId": "c"}),
        };
        assert_eq!(read_tool_call(&request).unwrap_err(), "params lack the string `tool`");
    }
}
