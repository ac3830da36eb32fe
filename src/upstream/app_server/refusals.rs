//! Answers to the server requests skillbridge does not handle, so Codex never waits on silence.
//!
//! Approvals get the protocol's own "no" (Codex 0.169 schema: `decline` for v2 approvals, a `denied` decision
//! with its reason for the legacy ones, `decline` for MCP elicitations, an empty grant for permission requests), so
//! the turn goes on without the action; anything else gets JSON-RPC "method not found".

use serde_json::{Value, json};

use super::rpc::METHOD_NOT_FOUND;

/// How skillbridge answers a server request it does not handle.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A protocol-level "no": this is the `result`.
    Decline(Value),
    /// A JSON-RPC error.
    Error {
        /// The error code.
        code: i64,
        /// The message.
        message: String,
    },
}

/// The answer to the unhandled server request `method`.
///
/// ```
/// use serde_json::json;
/// use skillbridge::upstream::app_server::refusals::{Refusal, refusal};
///
/// assert_eq!(
///     refusal("item/commandExecution/requestApproval"),
///     Refusal::Decline(json!({"decision": "decline"}))
/// );
/// assert!(matches!(refusal("account/chatgptAuthTokens/refresh"), Refusal::Error { code: -32601, .. }));
/// ```
pub fn refusal(method: &str) -> Refusal {
    match method {
        "item/commandExecution/requestApproval" | "item/fileChange/requestApproval" => {
            Refusal::Decline(json!({"decision": "decline"}))
        }
        "execCommandApproval" | "applyPatchApproval" => Refusal::Decline(json!({
            "decision": {"denied": {"rejection": "skillbridge answers approval requests with no"}}
        })),
        "mcpServer/elicitation/request" => Refusal::Decline(json!({"action": "decline", "content": null})),
        "item/permissions/requestApproval" => Refusal::Decline(json!({"permissions": {}, "scope": "turn"})),
        _ => Refusal::Error {
            code: METHOD_NOT_FOUND,
            message: format!("skillbridge does not handle {method}"),
        },
    }
}
