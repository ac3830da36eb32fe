//! [`AppServerUpstream`]: answers tool calls as JSON-RPC results to the app-server's `item/tool/call` requests.
//!
//! Each call's string request id maps back to the raw JSON id Codex sent (numbers, starting at 0) until the
//! answer is written or Codex reports the request resolved (e.g. its turn ended).

use std::collections::HashMap;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use super::rpc::{RpcConnection, ServerRequest};
use crate::ToolResult;
use crate::upstream::{AnswerOutcome, ToolCall, Upstream};

/// The app-server as an [`Upstream`]: `answer` writes `{"id": N, "result": {contentItems, success}}`.
#[derive(Debug)]
pub struct AppServerUpstream {
    rpc: RpcConnection,
    /// String request id → the id exactly as Codex sent it, for requests not yet answered.
    pending: Mutex<HashMap<String, Value>>,
}

impl AppServerUpstream {
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
        self.pending
            .lock()
            .expect("pending lock")
            .insert(id.clone(), request.id.clone());
        id
    }

    /// Forgets a request Codex no longer waits for (`serverRequest/resolved`); `true` if it was unanswered.
    pub fn forget(&self, request_id: &str) -> bool {
        self.pending.lock().expect("pending lock").remove(request_id).is_some()
    }

    /// How many tool calls await an answer.
    pub fn pending_count(&self) -> usize {
        self.pending.lock().expect("pending lock").len()
    }

    async fn deliver(&self, call: &ToolCall, result: &ToolResult) -> AnswerOutcome {
        let id = self
            .pending
            .lock()
            .expect("pending lock")
            .get(&call.request_id)
            .cloned();
        let Some(id) = id else {
            return AnswerOutcome::Rejected {
                reason: format!(
                    "app-server request {} is not pending (already answered, or resolved when its turn ended)",
                    call.request_id
                ),
            };
        };
        let result = serde_json::to_value(result).expect("tool results serialize");
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

impl Upstream for AppServerUpstream {
    fn name(&self) -> &'static str {
        "app-server"
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        self.deliver(call, result).boxed()
    }
}
