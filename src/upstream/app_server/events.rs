//! The event loop: every message the app-server starts is handled here.
//!
//! `item/tool/call` becomes a [`ToolCall`] handed to the [`Feed`]; every other server request is refused out loud
//! ([`refusal`]); agent messages and turn completions go to the feed's turn tracker, and a turn completed as
//! `interrupted` cancels its running calls; `serverRequest/resolved` forgets a call Codex no longer waits for.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::answers::PendingAnswers;
use super::protocol::{self, NotificationParams, TurnCompletedNotification};
use super::refusals::{Refusal, refusal};
use super::rpc::{INVALID_PARAMS, Incoming, Notification, RpcConnection, ServerRequest};
use crate::skill::ToolResult;
use crate::telemetry::CallSource;
use crate::upstream::{Feed, Submitted, ToolCall, TurnStatus};

/// The server request that carries a dynamic tool call.
pub(crate) const TOOL_CALL_METHOD: &str = "item/tool/call";

/// The loop that handles everything one app-server connection starts; [`AppServer`](super::AppServer) runs one
/// for its child, and it runs over any [`RpcConnection`] too.
pub struct AppServerEvents {
    rpc: RpcConnection,
    answers: Arc<PendingAnswers>,
    feed: Feed,
}

impl AppServerEvents {
    /// Handles `rpc`'s messages: tool calls are tracked in `answers` (which answers them) and go to `feed`.
    pub fn new(rpc: RpcConnection, answers: Arc<PendingAnswers>, feed: Feed) -> Self {
        Self { rpc, answers, feed }
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
        let call = match ToolCall::from_params(request.id_string(), request.params.clone()) {
            Ok(call) => call,
            Err(reason) => {
                let message = format!("skillbridge could not read {TOOL_CALL_METHOD}: {reason}");
                tracing::warn!(id = %request.id, params = %request.params, "{message}");
                if let Err(error) = self.rpc.respond_error(&request.id, INVALID_PARAMS, &message).await {
                    tracing::warn!(%error, "could not answer a malformed tool call");
                }
                return;
            }
        };
        self.answers.track(&request);
        tracing::debug!(request_id = %call.request_id, tool = %call.tool, call_id = %call.call_id, "tool call");
        if self.feed.submit(call.clone(), CallSource::AppServer) == Submitted::Closed {
            // Codex would wait on it forever: the call is answered here.
            let refused = ToolResult::failure(format!(
                "skillbridge is shutting down; the tool `{}` was not run",
                call.tool
            ));
            let outcome = self.answers.answer(&call, &refused).await;
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
        let method = notification.method;
        if method == protocol::ItemCompletedNotification::METHOD {
            // The items skillbridge does not read (tool calls Codex ran itself, like an MCP server's) show at debug.
            let item = &notification.params["item"];
            tracing::debug!(
                item_type = %item["type"].as_str().unwrap_or_default(),
                item_id = %item["id"].as_str().unwrap_or_default(),
                "item completed"
            );
        }
        let read = match protocol::Notification::parse(&method, notification.params) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%method, %error, "app-server sent a notification skillbridge cannot read; ignored");
                return;
            }
        };
        match read {
            protocol::Notification::ItemCompleted(params) => {
                if let Some(message) = self.feed.turns().item_completed(&params) {
                    tracing::info!(thread_id = %params.thread_id, turn_id = %params.turn_id, "agent: {message}");
                }
            }
            protocol::Notification::TurnCompleted(params) => self.turn_completed(&params),
            protocol::Notification::TurnStarted(params) => {
                tracing::info!(thread_id = %params.thread_id, turn_id = %params.turn.id, "turn started");
            }
            protocol::Notification::ServerRequestResolved(params) => {
                let request_id = params.request_id.to_string();
                if self.answers.forget(&request_id) {
                    tracing::info!(%request_id, "app-server resolved a tool call before it was answered");
                }
            }
            protocol::Notification::Error(params) => tracing::warn!(
                turn_id = %params.turn_id, will_retry = params.will_retry, "app-server turn error: {}", params.error.message
            ),
            protocol::Notification::Warning(params) => tracing::warn!(
                thread_id = params.thread_id.as_deref().unwrap_or_default(),
                "app-server: {}",
                params.message
            ),
            protocol::Notification::ConfigWarning(params) => match params.details {
                Some(details) => tracing::warn!("app-server configuration: {} {details}", params.summary),
                None => tracing::warn!("app-server configuration: {}", params.summary),
            },
            protocol::Notification::Other => tracing::trace!(%method, "app-server notification"),
        }
    }

    fn turn_completed(&self, params: &TurnCompletedNotification) {
        let Some(outcome) = self.feed.turns().turn_completed(params) else {
            tracing::warn!(turn_id = %params.turn.id, "app-server sent turn/completed for a turn still in progress; ignored");
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
            self.feed.cancel_turn(&outcome.turn_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

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
        let call = ToolCall::from_params(request.id_string(), request.params).unwrap();
        assert_eq!(call.request_id, "0");
        assert_eq!(call.call_id, "call_0");
        assert_eq!(call.tool, "uppercase");
        assert_eq!(call.turn_id.as_deref(), Some("01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01"));
        assert_eq!(call.arguments, serde_json::json!({"text": "hello bridge"}));
    }
}
