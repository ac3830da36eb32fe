//! [`Dispatcher`]: takes tool calls from an upstream, runs each once, and answers it through the upstream with
//! retries. Every accepted call gets an answer.
//!
//! Bounded by construction: at most `concurrency` workers run, each taking one call at a time from the queue and
//! keeping it until its answer is delivered (or given up), so skills *and* answers share the budget, and sockets
//! to the upstream stay under it. A call beyond what can run waits in the queue as its plain [`ToolCall`], not as
//! a task. Each call is handled in a span of its own ([`call_span`]), so every event about it, the skill's own
//! included, carries its request id, thread and tool.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::cluster::{Claimed, Cluster};
use super::store::{Admission, CallKey, CallStore, Settlement};
use crate::skill::{Catalog, Invocation, Outcome, SkillContext, ToolResult};
use crate::telemetry::{BridgeStats, CallRecord, CallSource, RunningCall, unix_ms};
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
    /// Calls running or being answered at once, at most.
    pub concurrency: usize,
    /// Calls remembered for deduplication.
    pub ledger_capacity: usize,
    /// How failed answers are retried.
    pub retry: RetryPolicy,
    /// Whether recent calls keep their (redacted) arguments, for `GET /calls/{id}` and replay.
    pub record_arguments: bool,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            ledger_capacity: 65_536,
            retry: RetryPolicy::default(),
            record_arguments: false,
        }
    }
}

/// What [`Dispatcher::shutdown`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShutdownReport {
    /// Calls taken since start.
    pub taken: usize,
    /// Calls answered (delivered, or settled by the upstream).
    pub answered: usize,
    /// Calls still running or waiting when the grace period ended; they were cancelled and answered
    /// `success:false`.
    pub cancelled: usize,
    /// Calls seen while shutting down and left pending upstream.
    pub left_pending: usize,
    /// Calls whose answer could not be delivered; they stay pending upstream.
    pub undeliverable: usize,
}

/// Runs tool calls and answers them. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    inner: Arc<Inner>,
}

/// Calls waiting for a worker above which an upstream that can hold calls back (see [`CallSink::room`]) is asked to:
/// about a third of a second of work at the benchmark's rate, a few megabytes.
const WAITING_HIGH_WATER: usize = 4096;

/// Calls waiting for a worker below which the dispatcher has caught up (see [`CallSink::caught_up`]): a backlog
/// the size of the benchmark's steady load (1,000 outstanding) still counts as caught up.
const WAITING_LOW_WATER: usize = 1024;

/// Calls waiting for a worker at which a [`CallSink::room`] that waited resolves: the stream it held back then
/// delivers a batch of calls in a row rather than one per call that starts.
const WAITING_RESUME: usize = WAITING_HIGH_WATER * 3 / 4;

/// The longest [`CallSink::room`] waits: workers stuck on slow skills must not stall the stream until it gives up
/// on its handlers; past this the calls wait here, as queue entries.
const ROOM_WAIT: Duration = Duration::from_secs(1);

struct Inner {
    catalog: Catalog,
    /// Woken when the calls waiting for a worker fall to [`WAITING_RESUME`].
    room: Notify,
    /// Woken when the calls waiting for a worker fall below [`WAITING_LOW_WATER`].
    caught_up: Notify,
    upstream: Arc<dyn Upstream>,
    config: DispatchConfig,
    store: CallStore,
    queue: Mutex<Queue>,
    turns: Mutex<HashMap<String, TurnTokens>>,
    workers: TaskTracker,
    closing: CancellationToken,
    abandon: CancellationToken,
    counts: Counts,
    stats: Arc<BridgeStats>,
    /// The group of bridges this one shares calls with, if any: a call runs here only once claimed.
    cluster: Option<Arc<Cluster>>,
}

/// Calls waiting for a worker, and how many workers run.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    workers: usize,
}

/// One call taken: what it is, where it came from, and when.
struct Job {
    call: ToolCall,
    key: Arc<CallKey>,
    source: CallSource,
    redelivery: Option<Arc<ToolResult>>,
    token: CancellationToken,
    queued: Instant,
}

#[derive(Default)]
struct Counts {
    taken: AtomicUsize,
    answered: AtomicUsize,
    cancelled: AtomicUsize,
    left_pending: AtomicUsize,
    undeliverable: AtomicUsize,
}

struct TurnTokens {
    token: CancellationToken,
    calls: usize,
}

impl Dispatcher {
    /// A dispatcher running `catalog`'s skills, answering through `upstream`, keeping call states in `store`
    /// (and claiming each call from `cluster`, when there is one), recording into `stats`.
    pub(crate) fn new(
        catalog: Catalog,
        upstream: Arc<dyn Upstream>,
        config: DispatchConfig,
        store: CallStore,
        cluster: Option<Arc<Cluster>>,
        stats: Arc<BridgeStats>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog,
                upstream,
                config,
                store,
                queue: Mutex::new(Queue::default()),
                room: Notify::new(),
                caught_up: Notify::new(),
                turns: Mutex::new(HashMap::new()),
                workers: TaskTracker::new(),
                closing: CancellationToken::new(),
                abandon: CancellationToken::new(),
                counts: Counts::default(),
                stats,
                cluster,
            }),
        }
    }

    /// Takes a call without waiting for it: it runs on a worker, so a stream is never held up.
    pub(crate) fn submit(&self, call: ToolCall, source: CallSource) -> Submitted {
        let inner = &self.inner;
        if inner.closing.is_cancelled() {
            inner.counts.left_pending.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(request_id = %call.request_id, tool = %call.tool, "shutting down: call left pending");
            return Submitted::Closed;
        }
        let key = Arc::new(CallKey::of(&call));
        let redelivery = match inner.store.admit(&key) {
            Admission::Duplicate => {
                inner.stats.duplicate_seen();
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
        inner.counts.taken.fetch_add(1, Ordering::Relaxed);
        inner.stats.call_started();
        let token = inner.call_token(&call);
        let job = Job {
            call,
            key,
            source,
            redelivery,
            token,
            queued: Instant::now(),
        };
        let start_worker = {
            let mut queue = lock(&inner.queue);
            queue.waiting.push_back(job);
            let start = queue.workers < inner.config.concurrency.max(1);
            if start {
                queue.workers += 1;
            }
            start
        };
        if start_worker {
            let inner = Arc::clone(inner);
            self.inner.workers.spawn(async move { inner.work().await });
        }
        submitted
    }

    /// Resolves at once while fewer than [`WAITING_HIGH_WATER`] calls wait for a worker; otherwise once they fall
    /// to [`WAITING_RESUME`], or after [`ROOM_WAIT`].
    async fn room(&self) {
        let wait_for_room = self.fewer_waiting_than(WAITING_HIGH_WATER, &self.inner.room);
        let _ = tokio::time::timeout(ROOM_WAIT, wait_for_room).await;
    }

    /// Resolves once fewer than [`WAITING_LOW_WATER`] calls wait for a worker (or the dispatcher closes).
    async fn caught_up(&self) {
        self.fewer_waiting_than(WAITING_LOW_WATER, &self.inner.caught_up).await;
    }

    /// Resolves once fewer than `bound` calls wait for a worker, looking again each time `woken` is notified, or once
    /// the dispatcher closes.
    async fn fewer_waiting_than(&self, bound: usize, woken: &Notify) {
        loop {
            let notified = woken.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.inner.queue).waiting.len() < bound || self.inner.closing.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Fires the cancellation token of every call of this turn (the turn was interrupted), running or queued.
    pub(crate) fn cancel_turn(&self, turn_id: &str) {
        if let Some(turn) = lock(&self.inner.turns).get(turn_id) {
            tracing::info!(turn_id, calls = turn.calls, "turn interrupted: cancelling its skills");
            turn.token.cancel();
        }
    }

    /// Calls waiting, running or being answered now.
    pub(crate) fn in_flight(&self) -> i64 {
        self.inner.stats.in_flight()
    }

    /// Stops taking calls, lets taken ones finish for up to `grace`, then cancels the rest and answers them
    /// `success:false`. Past the grace, failed answers get one last attempt instead of their backoff. Returns
    /// once every taken call has been answered (or its answer given up).
    pub(crate) async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let inner = &self.inner;
        inner.closing.cancel();
        inner.room.notify_waiters();
        inner.caught_up.notify_waiters();
        inner.workers.close();
        if tokio::time::timeout(grace, inner.workers.wait()).await.is_err() {
            tracing::warn!(
                in_flight = inner.stats.in_flight(),
                "grace period over: cancelling running skills and ending answer retries"
            );
            inner.abandon.cancel();
            inner.workers.wait().await;
        }
        self.counts()
    }

    /// The calls so far: taken, answered, cancelled, left pending, undeliverable.
    pub(crate) fn counts(&self) -> ShutdownReport {
        let count = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        let counts = &self.inner.counts;
        ShutdownReport {
            taken: count(&counts.taken),
            answered: count(&counts.answered),
            cancelled: count(&counts.cancelled),
            left_pending: count(&counts.left_pending),
            undeliverable: count(&counts.undeliverable),
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

    fn room(&self) -> crate::BoxFuture<'_, ()> {
        Box::pin(Dispatcher::room(self))
    }

    fn caught_up(&self) -> crate::BoxFuture<'_, ()> {
        Box::pin(Dispatcher::caught_up(self))
    }
}

impl Inner {
    /// One worker: takes calls off the queue until it is empty.
    async fn work(&self) {
        loop {
            let job = {
                let mut queue = lock(&self.queue);
                match queue.waiting.pop_front() {
                    Some(job) => {
                        if queue.waiting.len() == WAITING_RESUME {
                            self.room.notify_waiters();
                        }
                        if queue.waiting.len() == WAITING_LOW_WATER - 1 {
                            self.caught_up.notify_waiters();
                        }
                        job
                    }
                    None => {
                        queue.workers -= 1;
                        return;
                    }
                }
            };
            let span = call_span(&job.call);
            self.handle(job).instrument(span).await;
            self.stats.call_finished();
            // The HTTP client puts the answer's connection back in its pool from a task of its own; letting it run
            // before this worker's next answer keeps the worker on that connection rather than opening another.
            tokio::task::yield_now().await;
        }
    }

    async fn handle(&self, job: Job) {
        let Job {
            call,
            key,
            source,
            mut redelivery,
            token,
            queued,
        } = job;
        self.stats.call_dequeued(queued.elapsed());
        let mut hold = None;
        if let (None, Some(cluster)) = (&redelivery, &self.cluster) {
            // Shutting down, a call not claimed yet is left to the group rather than cancelled here.
            let claimed = if self.closing.is_cancelled() {
                self.counts.left_pending.fetch_add(1, Ordering::Relaxed);
                Claimed::NotNow
            } else {
                cluster.claim(&key).await
            };
            match claimed {
                Claimed::Run(claim) => hold = Some(claim),
                Claimed::Ran(result, delivery) => {
                    redelivery = Some(Arc::new(result));
                    hold = Some(delivery);
                }
                Claimed::NotNow => {
                    self.counts.taken.fetch_sub(1, Ordering::Relaxed);
                    self.release_turn(&call);
                    self.store.settle(&key, Settlement::Released);
                    return;
                }
            }
        }
        let started_at = SystemTime::now();
        let run = self.stats.run_started(RunningCall {
            request_id: call.request_id.clone(),
            tool: call.tool.clone(),
            session: call.thread_id.clone(),
            started_at_ms: unix_ms(started_at),
        });
        let (result, outcome, duration) = match redelivery {
            Some(result) => (result, "redelivered", Duration::ZERO),
            None => {
                let started = Instant::now();
                let invocation = self.execute(&call, token).await;
                let duration = started.elapsed();
                let outcome = invocation.outcome.as_str();
                self.stats.skill_ran(&call.tool, outcome, duration);
                let result = Arc::new(invocation.result);
                self.store.complete(&key, &result).await;
                if let Some(hold) = &hold {
                    hold.complete(&result).await;
                }
                (result, outcome, duration)
            }
        };
        self.release_turn(&call);
        let (last, attempts) = self.deliver(&call, &result).await;
        let settlement = match &last {
            AnswerOutcome::Delivered => {
                self.counts.answered.fetch_add(1, Ordering::Relaxed);
                Settlement::Answered
            }
            // Somebody else answered, or the call was lost with an upstream restart: if it shows up pending
            // again after all, the same result is sent.
            AnswerOutcome::AlreadyAnswered { .. } => {
                self.counts.answered.fetch_add(1, Ordering::Relaxed);
                Settlement::Undelivered(Arc::clone(&result))
            }
            AnswerOutcome::Retry { .. } => {
                self.counts.undeliverable.fetch_add(1, Ordering::Relaxed);
                Settlement::Undelivered(Arc::clone(&result))
            }
            AnswerOutcome::Rejected { .. } => {
                self.counts.undeliverable.fetch_add(1, Ordering::Relaxed);
                Settlement::Answered
            }
            // Should the same call show up pending after all, it gets this result.
            AnswerOutcome::Lost { .. } => {
                self.counts.undeliverable.fetch_add(1, Ordering::Relaxed);
                Settlement::Undelivered(Arc::clone(&result))
            }
        };
        if let Some(hold) = hold {
            // Answered (by this bridge or another) or refused for good: the group leaves the call alone from now.
            let settled_upstream = matches!(
                last,
                AnswerOutcome::Delivered | AnswerOutcome::AlreadyAnswered { .. } | AnswerOutcome::Rejected { .. }
            );
            hold.settle(settled_upstream).await;
        }
        self.store.settle(&key, settlement);
        let error = (!result.success).then(|| CallRecord::error_text(&result.text_content()));
        let (arguments, arguments_omitted) = if self.config.record_arguments {
            let redacted = match self.catalog.get(&call.tool) {
                Some(skill) => skill.redact(&call.arguments),
                None => call.arguments.clone(),
            };
            CallRecord::kept_arguments(redacted)
        } else {
            (None, None)
        };
        self.stats.record(
            Some(run),
            CallRecord {
                request_id: call.request_id,
                call_id: call.call_id,
                tool: call.tool,
                session: call.thread_id,
                source,
                started_at_ms: unix_ms(started_at),
                duration_ms: duration.as_secs_f64() * 1000.0,
                outcome,
                submit_status: last.label(),
                attempts,
                error,
                turn_id: call.turn_id,
                arguments,
                arguments_omitted,
            },
        );
    }

    /// Runs the skill; cancelled when its turn is interrupted or the grace period ends, in which case it is
    /// answered `success:false` at once.
    async fn execute(&self, call: &ToolCall, token: CancellationToken) -> Invocation {
        if self.abandon.is_cancelled() {
            return self.abandoned(call, &token);
        }
        if let Some(offered) = self.upstream.offered(&call.thread_id)
            && !offered.contains(&call.tool)
        {
            let offered: Vec<&str> = offered.iter().map(String::as_str).collect();
            return Invocation {
                result: ToolResult::failure(format!(
                    "tool `{}` is not offered in this session; its tools are: {}",
                    call.tool,
                    offered.join(", ")
                )),
                outcome: Outcome::NotOffered,
            };
        }
        let mut ctx = SkillContext::new(
            call.thread_id.clone(),
            call.turn_id.clone(),
            call.call_id.clone(),
            call.request_id.clone(),
            call.tool.clone(),
            token.clone(),
        );
        if let Some(sink) = self.upstream.progress_sink(call) {
            ctx = ctx.with_progress(sink);
        }
        tokio::select! {
            biased;
            _ = self.abandon.cancelled() => self.abandoned(call, &token),
            invocation = self.catalog.invoke_detailed(&call.tool, call.arguments.clone(), ctx) => invocation,
        }
    }

    fn abandoned(&self, call: &ToolCall, token: &CancellationToken) -> Invocation {
        token.cancel();
        self.counts.cancelled.fetch_add(1, Ordering::Relaxed);
        Invocation {
            result: ToolResult::failure(format!(
                "skill {} was cancelled: the bridge shut down before it finished",
                call.tool
            )),
            outcome: Outcome::Cancelled,
        }
    }

    /// The call's cancellation token: a child of its turn's, so that interrupting the turn cancels it.
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
                calls: 0,
            }),
        };
        turn.calls += 1;
        turn.token.child_token()
    }

    fn release_turn(&self, call: &ToolCall) {
        let Some(turn_id) = &call.turn_id else { return };
        let mut turns = lock(&self.turns);
        if let Some(turn) = turns.get_mut(turn_id) {
            turn.calls -= 1;
            if turn.calls == 0 {
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
            let (turn_id, call_id) = (call.turn_id.as_deref().unwrap_or("-"), &call.call_id);
            match &outcome {
                AnswerOutcome::Delivered => {
                    tracing::debug!("answered");
                    return (outcome, attempts);
                }
                AnswerOutcome::AlreadyAnswered { status } => {
                    tracing::warn!(
                        turn_id, %call_id, status,
                        "the upstream says this call was answered already (by another bridge, or lost in an upstream \
                         restart); the result is kept in case it shows up pending again"
                    );
                    return (outcome, attempts);
                }
                AnswerOutcome::Lost { reason } => {
                    tracing::warn!(
                        turn_id, %call_id, %reason,
                        "call lost in an upstream restart: its result is dropped, never delivered to another call"
                    );
                    return (outcome, attempts);
                }
                AnswerOutcome::Rejected { reason } => {
                    tracing::error!(
                        upstream = self.upstream.name(), %reason,
                        "upstream rejected the answer; not retrying"
                    );
                    return (outcome, attempts);
                }
                AnswerOutcome::Retry { reason } if attempts >= policy.max_attempts || self.abandon.is_cancelled() => {
                    tracing::error!(
                        attempts, upstream = self.upstream.name(), %reason,
                        "giving up on delivering an answer; it is re-sent if the call is seen pending again"
                    );
                    return (outcome, attempts);
                }
                AnswerOutcome::Retry { reason } => {
                    let wait = policy.backoff(attempts);
                    tracing::warn!(attempts, ?wait, %reason, "answer failed; retrying");
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

/// The span one call is handled in, with its ids. At ERROR, so that it is on whenever any event inside it is: a
/// span below the filter's level is off, and the events inside it would lose the call's ids.
fn call_span(call: &ToolCall) -> tracing::Span {
    tracing::error_span!("call", request_id = %call.request_id, thread_id = %call.thread_id, tool = %call.tool)
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
