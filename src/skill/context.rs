//! [`SkillContext`]: what a skill may know about the call it serves, injected by the runtime.

use tokio_util::sync::CancellationToken;

/// Facts about the tool call being served, plus its cancellation token.
///
/// A skill that declares a parameter of this type receives it; it is not part of the input schema.
/// The token fires when the skill's deadline passes, when the turn is interrupted, or when the bridge
/// shuts down past its grace period.
#[derive(Debug, Clone, Default)]
pub struct SkillContext {
    /// The Codex thread (codex-manager calls it the session id; they are the same id).
    pub thread_id: String,
    /// The turn the call belongs to, when known.
    pub turn_id: Option<String>,
    /// The model's call id (`call_0`, ..).
    pub call_id: String,
    /// The upstream request id, in string form (`"1"`).
    pub request_id: String,
    /// The tool name the model called.
    pub tool: String,
    cancellation: CancellationToken,
}

impl SkillContext {
    /// A context for a call; pass the token that should cancel the skill.
    pub fn new(
        thread_id: impl Into<String>,
        turn_id: Option<String>,
        call_id: impl Into<String>,
        request_id: impl Into<String>,
        tool: impl Into<String>,
        cancellation: CancellationToken,
    ) -> Self {
        Self {
            thread_id: thread_id.into(),
            turn_id,
            call_id: call_id.into(),
            request_id: request_id.into(),
            tool: tool.into(),
            cancellation,
        }
    }

    /// A context for running a skill by hand (CLI `call`, admin `invoke`, tests): ids are empty
    /// except the tool name, and the token is fresh.
    pub fn detached(tool: impl Into<String>) -> Self {
        Self {
            tool: tool.into(),
            ..Self::default()
        }
    }

    /// The same context with a different cancellation token (the catalog gives each run a child token
    /// so that a timeout cancels that run only).
    pub(crate) fn with_cancellation(mut self, cancellation: CancellationToken) -> Self {
        self.cancellation = cancellation;
        self
    }

    /// The call's cancellation token.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancellation
    }

    /// `true` once the call has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancellation.is_cancelled()
    }

    /// Completes when the call is cancelled; `select!` on it in long-running skills.
    pub async fn cancelled(&self) {
        self.cancellation.cancelled().await
    }
}
