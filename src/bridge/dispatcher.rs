//! [`Dispatcher`]: takes tool calls from any upstream, runs each once with bounded concurrency, and answers
//! it through the upstream with retries. Every accepted call gets an answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ledger::{Admission, CallKey, CallLedger, CallState};
use crate::skill::{Catalog, Invocation, Outcome, SkillContext, ToolResult};
use crate::telemetry::{BridgeStats, CallRecord, CallSource, unix_ms};
use crate::upstream::{AnswerOutcome, CallSink, Submitted, ToolCall, Upstream};
use crate::util::{Backoff, lock};

/// How answers are retried after a passing failure.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, failed_attempts: u32) -> Duration {
        Backoff {
            initial: self.initial_backoff,
            max: self.max_backoff,
        }
        .delay(failed_attempts)
    }
}

/// Dispatcher settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DispatchConfig {
    /// Skills running at once, at most.
    pub concurrency: usize,
    /// Calls remembered for deduplication.
    pub ledger_capacity: usize,
    /// How failed answers are retried.
    pub retry: RetryPolicy,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            ledger_capacity: 65_536,
            retry: RetryPolicy::default(),
        }
    }
}

/// What [`Dispatcher::shutdown`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShutdownReport {
    /// Skills still running when the grace period ended; they were cancelled and answered `success:false`.
    pub cancelled: usize,
}

/// Runs tool calls and answers them. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    upstream: Arc<dyn Upstream>,
    config: DispatchConfig,
    permits: Arc<Semaphore>,
    ledger: Mutex<CallLedger>,
    turns: Mutex<HashMap<String, TurnTokens>>,
    tasks: TaskTracker,
    closing: CancellationToken,
    abandon: CancellationToken,
    abandoned: AtomicUsize,
    stats: Arc<BridgeStats>,
}

struct TurnTokens {
    token: CancellationToken,
    running: usize,
}

impl Dispatcher {
    /// A dispatcher running `catalog`'s skills, answering through `upstream`, recording into `stats`.
    pub(crate) fn new(
        catalog: Catalog,
        upstream: Arc<dyn Upstream>,
        config: DispatchConfig,
        stats: Arc<BridgeStats>,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let ledger = Mutex::new(CallLedger::new(config.ledger_capacity));
        Self {
            inner: Arc::new(Inner {
                catalog,
                upstream,
                config,
                permits,
                ledger,
                turns: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                closing: CancellationToken::new(),
                abandon: CancellationToken::new(),
                abandoned: AtomicUsize::new(0),
                stats,
            }),
        }
    }

    /// Takes a call without waiting for it: the skill runs on its own task, so a stream is never held up.
    pub(crate) fn submit(&self, call: ToolCall, source: CallSource) -> Submitted {
        if self.inner.closing.is_cancelled() {
            tracing::info!(request_id = %call.request_id, tool = %call.tool, "shutting down: call left pending");
            return Submitted::Closed;
        }
        let key = CallKey::of(&call);
        let admission = lock(&self.inner.ledger).admit(&key);
        let redelivery = match admission {
            Admission::Duplicate => {
                self.inner.stats.duplicate_seen();
                tracing::trace!(request_id = %call.request_id, "duplicate call ignored");
                return Submitted::Duplicate;
            }
            Admission::Redeliver(result) => Some(result),
            Admission::New => None,
        };
        let submitted = if redelivery.is_some() {
            Submitted::Redelivering
        } else {
            Submitted::Accepted
        };
        let inner = Arc::clone(&self.inner);
        inner.stats.call_started();
        self.inner.tasks.spawn(async move {
            inner.handle(call, key, source, redelivery).await;
            inner.stats.call_finished();
        });
        submitted
    }

    /// Fires the cancellation token of every running skill of this turn (the turn was interrupted).
    pub(crate) fn cancel_turn(&self, turn_id: &str) {
        if let Some(turn) = lock(&self.inner.turns).get(turn_id) {
            tracing::info!(
                turn_id,
                running = turn.running,
                "turn interrupted: cancelling its skills"
            );
            turn.token.cancel();
        }
    }

    /// Calls running or being answered now.
    pub(crate) fn in_flight(&self) -> i64 {
        self.inner.stats.in_flight()
    }

    /// Stops taking calls, lets running ones finish for up to `grace`, then cancels the rest and answers
    /// them `success:false`. Past the grace, failed answers get one last attempt instead of their backoff.
    /// Returns once every taken call has been answered (or its answer given up).
    pub(crate) async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.inner.closing.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!(
                in_flight = self.inner.stats.in_flight(),
                "grace period over: cancelling running skills and ending answer retries"
            );
            self.inner.abandon.cancel();
            self.inner.tasks.wait().await;
        }
        ShutdownReport {
            cancelled: self.inner.abandoned.load(Ordering::Relaxed),
        }
    }
}

impl CallSink for Dispatcher {
    fn submit(&self, call: ToolCall, source: CallSource) -> Submitted {
        Dispatcher::submit(self, call, source)
    }

    fn cancel_turn(&self, turn_id: &str) {
        Dispatcher::cancel_turn(self, turn_id);
    }
}

impl Inner {
    async fn handle(&self, call: ToolCall, key: CallKey, source: CallSource, redelivery: Option<Arc<ToolResult>>) {
        let started_at = SystemTime::now();
        let (result, outcome, duration) = match redelivery {
            Some(result) => (result, "redelivered", Duration::ZERO),
            None => {
                let started = Instant::now();
                let invocation = self.execute(&call).await;
                let duration = started.elapsed();
                let outcome = invocation.outcome.as_str();
                self.stats.skill_ran(&call.tool, outcome, duration);
                (Arc::new(invocation.result), outcome, duration)
            }
        };
        let (last, attempts) = self.deliver(&call, &result).await;
        let state = match last {
            AnswerOutcome::Retry { .. } => CallState::Undelivered(Arc::clone(&result)),
            _ => CallState::Settled,
        };
        lock(&self.ledger).finish(&key, state);
        self.stats.record(CallRecord {
            request_id: call.request_id,
            tool: call.tool,
            session: call.thread_id,
            source,
            started_at_ms: unix_ms(started_at),
            duration_ms: duration.as_secs_f64() * 1000.0,
            outcome,
            submit_status: last.label(),
            attempts,
        });
    }

    /// Runs the skill under the concurrency bound; cancelled when its turn is interrupted or the grace
    /// period ends, in which case it is answered `success:false` at once.
    async fn execute(&self, call: &ToolCall) -> Invocation {
        let token = self.call_token(call);
        let ctx = SkillContext::new(
            call.thread_id.clone(),
            call.turn_id.clone(),
            call.call_id.clone(),
            call.request_id.clone(),
            call.tool.clone(),
            token.clone(),
        );
        let invocation = tokio::select! {
            biased;
            _ = self.abandon.cancelled() => {
                token.cancel();
                self.abandoned.fetch_add(1, Ordering::Relaxed);
                Invocation {
                    result: ToolResult::failure(format!(
                        "skill {} was cancelled: the bridge shut down before it finished", call.tool
                    )),
                    outcome: Outcome::Cancelled,
                }
            }
            invocation = async {
                let _permit = self.permits.acquire().await;
                self.catalog.invoke_detailed(&call.tool, call.arguments.clone(), ctx).await
            } => invocation,
        };
        self.release_turn(call);
        invocation
    }

    fn call_token(&self, call: &ToolCall) -> CancellationToken {
        let Some(turn_id) = &call.turn_id else {
            return CancellationToken::new();
        };
        let mut turns = lock(&self.turns);
        // Looked up first: the turn id is copied only for a turn's first call.
        let turn = match turns.get_mut(turn_id) {
            Some(turn) => turn,
            None => turns.entry(turn_id.clone()).or_insert_with(|| TurnTokens {
                token: CancellationToken::new(),
                running: 0,
            }),
        };
        turn.running += 1;
        turn.token.child_token()
    }

    fn release_turn(&self, call: &ToolCall) {
        let Some(turn_id) = &call.turn_id else { return };
        let mut turns = lock(&self.turns);
        if let Some(turn) = turns.get_mut(turn_id) {
            turn.running -= 1;
            if turn.running == 0 {
                turns.remove(turn_id);
            }
        }
    }

    /// Answers with retries on passing failures. Returns the last outcome and the attempts made.
    async fn deliver(&self, call: &ToolCall, result: &ToolResult) -> (AnswerOutcome, u32) {
        let policy = &self.config.retry;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = self.upstream.answer(call, result).await;
            self.stats.answer_attempted(outcome.label());
            match &outcome {
                AnswerOutcome::Delivered => {
                    tracing::debug!(request_id = %call.request_id, tool = %call.tool, "answered");
                    return (outcome, attempts);
                }
                AnswerOutcome::AlreadyAnswered { status } => {
                    tracing::info!(request_id = %call.request_id, status, "already answered upstream");
                    return (outcome, attempts);
                }
                AnswerOutcome::Rejected { reason } => {
                    tracing::error!(
                        request_id = %call.request_id, tool = %call.tool, upstream = self.upstream.name(), %reason,
                        "upstream rejected the answer; not retrying"
                    );
                    return (outcome, attempts);
                }
                AnswerOutcome::Retry { reason } if attempts >= policy.max_attempts || self.abandon.is_cancelled() => {
                    tracing::error!(
                        request_id = %call.request_id, tool = %call.tool, attempts, upstream = self.upstream.name(),
                        %reason, "giving up on delivering an answer; it is re-sent if the call is seen pending again"
                    );
                    return (outcome, attempts);
                }
                AnswerOutcome::Retry { reason } => {
                    let wait = policy.backoff(attempts);
                    tracing::warn!(request_id = %call.request_id, attempts, ?wait, %reason, "answer failed; retrying");
                    // Past the grace period there is time for one last attempt, not for the backoff.
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.abandon.cancelled() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<_> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }
}
