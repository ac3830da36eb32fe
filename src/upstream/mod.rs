//! Upstreams that deliver tool calls and take answers: codex-manager and `codex app-server`.
//!
//! The flow is one-way: an upstream turns its wire messages into [`ToolCall`]s and submits them to the
//! [`Dispatcher`](crate::bridge::Dispatcher), which runs the skill and hands the [`ToolResult`] back through
//! [`Upstream::answer`].

pub mod app_server;
pub mod codex_manager;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::ToolResult;

/// One tool call, as any upstream delivers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// The upstream request id in string form (codex-manager's REST path uses it).
    pub request_id: String,
    /// The Codex thread (codex-manager session) the call belongs to.
    pub thread_id: String,
    /// The turn, when the upstream says.
    pub turn_id: Option<String>,
    /// The model's call id.
    pub call_id: String,
    /// The tool the model called.
    pub tool: String,
    /// The arguments the model sent.
    pub arguments: serde_json::Value,
}

/// What happened to one attempt at delivering an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// The upstream took the answer.
    Delivered,
    /// Somebody answered first (codex-manager 404/409): done, never retried.
    AlreadyAnswered {
        /// The HTTP status that said so.
        status: u16,
    },
    /// A passing failure (5xx, transport): worth trying again.
    Retry {
        /// What went wrong.
        reason: String,
    },
    /// The upstream refused the answer for good (400, deleted session, closed pipe).
    Rejected {
        /// What went wrong, with the upstream's body when there is one.
        reason: String,
    },
}

impl AnswerOutcome {
    /// A short label for logs and metrics: `delivered`, `already_answered`, `retry`, `rejected`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::AlreadyAnswered { .. } => "already_answered",
            Self::Retry { .. } => "retry",
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// Where answers go. Implemented by each upstream; the dispatcher owns retries.
pub trait Upstream: Send + Sync + 'static {
    /// A short name for logs (`codex-manager`, `app-server`).
    fn name(&self) -> &'static str;

    /// One attempt at delivering `result` as the answer to `call`.
    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome>;
}
