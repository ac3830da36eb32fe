//! [`PendingAnswers`]: the tool calls one app-server connection waits on, answered as JSON-RPC results to its
//! `item/tool/call` requests.
//!
//! Each call's string request id maps back to the raw JSON id Codex sent (numbers, starting at 0) until the
//! answer is written or Codex reports the request resolved (e.g. its turn ended).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::rpc::{RpcConnection, ServerRequest};
use crate::skill::ToolResult;
use crate::upstream::{AnswerOutcome, ToolCall};
use crate::util::lock;

/// The unanswered tool calls of one connection; `answer` writes `{"id": N, "result": {contentItems, success}}`.
#[derive(Debug)]
pub struct PendingAnswers {
    rpc: RpcConnection,
    /// String request id → the id exactly as Codex sent it.
    pending: Mutex<HashMap<String, Value>>,
}

impl PendingAnswers {
    /// Answers over `rpc`.
    pub fn new(rpc: RpcConnection) -> Self {
        Self {
            rpc,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers a tool-call request so it can be answered; returns its string id.
    pub fn track(&self, request: &ServerRequest) -> String {
        let id = request.id_string();
        lock(&self.pending).insert(id.clone(), request.id.clone());
        id
    }

    /// Forgets a request Codex no longer waits for (`serverRequest/resolved`); `true` if it was unanswered.
    pub fn forget(&self, request_id: &str) -> bool {
        lock(&self.pending).remove(request_id).is_some()
    }

    /// How many tool calls await an answer.
    pub fn len(&self) -> usize {
        lock(&self.pending).len()
    }

    /// `true` when no tool call awaits an answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One attempt at answering `call`.
    pub async fn answer(&self, call: &ToolCall, result: &ToolResult) -> AnswerOutcome {
        let Some(id) = lock(&self.pending).get(&call.request_id).cloned() else {
            return AnswerOutcome::Rejected {
                reason: format!(
                    "app-server request {} is not pending (already answered, or resolved when its turn ended)",
                    call.request_id
                ),
            };
        };
        let result = match serde_json::to_value(result) {
            Ok(result) => result,
            Err(error) => {
                return AnswerOutcome::Rejected {
                    reason: format!("the result does not serialize: {error}"),
                };
            }
        };
        match self.rpc.respond(&id, result).await {
            Ok(()) => {
                self.forget(&call.request_id);
                AnswerOutcome::Delivered
            }
            // Writing fails only on a closed or broken pipe, which does not come back: retrying cannot help.
            Err(error) => AnswerOutcome::Rejected {
                reason: error.to_string(),
            },
        }
    }
}
