//! [`SkillContext`]: what a skill may know about the call it serves, injected by the runtime, and where its
//! [`Progress`] reports go.

use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// One progress report of a skill: how far it is, out of how much when that is known, and what it does now.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Work done so far; it should grow with every report.
    pub done: f64,
    /// All the work, when known.
    pub total: Option<f64>,
    /// What the skill does now, for a person.
    pub message: Option<String>,
}

/// Where a call's progress reports go: the upstream sets one for a call whose client asked for progress (an MCP
/// client that sent a progress token); without one, reports are dropped.
#[derive(Clone)]
pub struct ProgressSink(Arc<dyn Fn(Progress) + Send + Sync>);

impl ProgressSink {
    /// Reports go to `report`, which must not block (it runs in the skill's task).
    pub fn new(report: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Self(Arc::new(report))
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressSink")
    }
}

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
    progress: Option<ProgressSink>,
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
            progress: None,
        }
    }

    /// The same context, its progress reports going to `sink`.
    pub fn with_progress(mut self, sink: ProgressSink) -> Self {
        self.progress = Some(sink);
        self
    }

    /// Reports how far the skill is: `done` of `total` (when known), doing `message` (empty: nothing to say). An
    /// MCP client that asked for progress receives it as `notifications/progress`; elsewhere it is dropped, so a
    /// skill may report whoever calls it.
    ///
    /// ```
    /// use skillbridge::skill::SkillContext;
    ///
    /// # async fn demo(ctx: SkillContext, files: Vec<String>) {
    /// for (i, file) in files.iter().enumerate() {
    ///     ctx.progress(i as f64, Some(files.len() as f64), &format!("indexing {file}"));
    /// }
    /// # }
    /// ```
    pub fn progress(&self, done: f64, total: Option<f64>, message: &str) {
        if let Some(sink) = &self.progress {
            (sink.0)(Progress {
                done,
                total,
                message: (!message.is_empty()).then(|| message.to_owned()),
            });
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
