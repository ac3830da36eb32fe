//! One turn, as `skillbridge send` runs it, on either upstream: [`Bridge::send`] sends a message to a served
//! session, answers the turn's tool calls as any others, and returns the reply and how the turn ended
//! ([`TurnReply`]). A turn that is interrupted (on request or by Codex), times out, or fails means the same on
//! every upstream.

use std::future::IntoFuture;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Bridge, BridgeError};
use crate::BoxFuture;
use crate::upstream::{TurnOutcome, TurnStatus};

/// How long a turn may run unless [`SendTurn::timeout`] says otherwise.
pub(crate) const DEFAULT_TURN_TIMEOUT: Duration = Duration::from_secs(300);

/// How long to wait for an interrupted turn to report its end.
const INTERRUPT_WAIT: Duration = Duration::from_secs(10);

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEnd {
    /// The model finished.
    Completed,
    /// The turn failed, with its error message when it had one.
    Failed(Option<String>),
    /// The turn was interrupted: on request ([`SendTurn::interrupt_on`]), or by Codex or somebody else.
    Interrupted,
    /// The turn did not finish within its timeout; it was interrupted.
    TimedOut,
}

impl TurnEnd {
    /// `true` for [`TurnEnd::Completed`].
    pub fn is_completed(&self) -> bool {
        *self == TurnEnd::Completed
    }

    fn of(outcome: &TurnOutcome) -> Self {
        match &outcome.status {
            TurnStatus::Completed => TurnEnd::Completed,
            TurnStatus::Interrupted => TurnEnd::Interrupted,
            TurnStatus::Failed => TurnEnd::Failed(outcome.error.clone()),
            TurnStatus::Other(status) => TurnEnd::Failed(Some(format!("the turn ended with status {status:?}"))),
        }
    }
}

/// What one turn came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnReply {
    /// The session (thread) the turn ran in.
    pub session_id: String,
    /// The turn.
    pub turn_id: String,
    /// How it ended.
    pub end: TurnEnd,
    /// The assistant's final reply (the turn's last agent message), if there was one.
    pub reply: Option<String>,
}

/// One turn to run; `.await` it. Made by [`Bridge::send`].
#[must_use = "a turn runs only when awaited"]
pub struct SendTurn<'a> {
    bridge: &'a Bridge,
    text: String,
    session: Option<String>,
    timeout: Duration,
    interrupt: CancellationToken,
}

impl SendTurn<'_> {
    /// The session to send to (default: the first session the bridge serves).
    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.session = Some(session_id.into());
        self
    }

    /// How long the turn may run before it is interrupted and ends [`TurnEnd::TimedOut`] (default 5 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Interrupts the turn when `token` is cancelled (Ctrl-C, say); it then ends [`TurnEnd::Interrupted`] and
    /// its running skills are cancelled.
    pub fn interrupt_on(mut self, token: CancellationToken) -> Self {
        self.interrupt = token;
        self
    }
}

impl<'a> IntoFuture for SendTurn<'a> {
    type Output = Result<TurnReply, BridgeError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(
            self.bridge
                .run_turn(self.text, self.session, self.timeout, self.interrupt),
        )
    }
}

impl Bridge {
    /// Sends `text` as a user message to a served session and waits for the turn it starts, answering the turn's
    /// tool calls meanwhile; starts the bridge first if needed. Set a session, a timeout or an interrupt on the
    /// returned [`SendTurn`] before awaiting it.
    pub fn send(&self, text: impl Into<String>) -> SendTurn<'_> {
        SendTurn {
            bridge: self,
            text: text.into(),
            session: None,
            timeout: DEFAULT_TURN_TIMEOUT,
            interrupt: CancellationToken::new(),
        }
    }

    async fn run_turn(
        &self,
        text: String,
        session: Option<String>,
        timeout: Duration,
        interrupt: CancellationToken,
    ) -> Result<TurnReply, BridgeError> {
        self.start().await?;
        // Sending before the upstream listens could lose the turn's events.
        if !self.wait_connected(timeout).await {
            return Err(BridgeError::NotConnected {
                upstream: self.upstream_name(),
                after: timeout,
            });
        }
        let session_id = match session {
            Some(session) => session,
            None => self
                .sessions()
                .first()
                .map(|s| s.id.clone())
                .ok_or(BridgeError::NoSession)?,
        };
        let upstream = &self.inner.upstream;
        let turn_id = upstream.start_turn(&session_id, &text).await?;
        tracing::info!(session = %session_id, turn = %turn_id, "message sent; waiting for the turn to finish");
        let turns = self.inner.feed.turns();
        let upstream_ended = self.feed_ended().await;

        let finished = tokio::select! {
            finished = turns.wait(&session_id, &turn_id, timeout) => finished,
            _ = interrupt.cancelled() => {
                tracing::info!(turn = %turn_id, "interrupting the turn");
                let outcome = self.interrupt(&session_id, &turn_id, &upstream_ended).await;
                let end = match &outcome {
                    Some(outcome) if outcome.status == TurnStatus::Completed => TurnEnd::Completed,
                    _ => TurnEnd::Interrupted,
                };
                return Ok(self.reply(session_id, turn_id, end, outcome));
            }
            _ = upstream_ended.cancelled() => {
                let reason = self.feed_error().await.unwrap_or_else(|| "it ended during the turn".into());
                return Err(BridgeError::UpstreamStopped { upstream: self.upstream_name(), reason });
            }
        };
        match finished {
            Some(outcome) => Ok(self.reply(session_id, turn_id, TurnEnd::of(&outcome), Some(outcome))),
            None => {
                tracing::warn!(turn = %turn_id, ?timeout, "the turn did not finish in time; interrupting it");
                let outcome = self.interrupt(&session_id, &turn_id, &upstream_ended).await;
                Ok(self.reply(session_id, turn_id, TurnEnd::TimedOut, outcome))
            }
        }
    }

    /// Asks the upstream to interrupt the turn and waits for its end (or the upstream's), then cancels whatever
    /// of its skills still runs: a turn the upstream never reported has none left to cancel them.
    async fn interrupt(
        &self,
        session_id: &str,
        turn_id: &str,
        upstream_ended: &CancellationToken,
    ) -> Option<TurnOutcome> {
        if let Err(error) = self.inner.upstream.interrupt_turn(session_id, turn_id).await {
            // The turn may have ended meanwhile.
            tracing::debug!(%error, "interrupting the turn failed");
        }
        let outcome = tokio::select! {
            outcome = self.inner.feed.turns().wait(session_id, turn_id, INTERRUPT_WAIT) => outcome,
            // A Ctrl-C typed in a terminal also reaches a child that shares our process group.
            _ = upstream_ended.cancelled() => None,
        };
        self.inner.dispatcher.cancel_turn(turn_id);
        outcome
    }

    fn reply(&self, session_id: String, turn_id: String, end: TurnEnd, outcome: Option<TurnOutcome>) -> TurnReply {
        let reply = match outcome {
            Some(outcome) => outcome.final_reply,
            None => self.inner.feed.turns().reply_so_far(&turn_id),
        };
        TurnReply {
            session_id,
            turn_id,
            end,
            reply,
        }
    }
}
