//! Dispatch through a bridge over a recording upstream: each call runs once, is answered, retried when the
//! upstream fails passingly, cancelled on shutdown or turn interrupt, and bounded in concurrency.

mod paused_clock;

mod recording;

use paused_clock::assert_took;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use recording::{Rig, call as turn_call};
use serde_json::json;
use skillbridge::bridge::RetryPolicy;
use skillbridge::skill::{Catalog, SkillContext};
use skillbridge::telemetry::CallSource;
use skillbridge::upstream::{AnswerOutcome, Submitted, ToolCall};
use skillbridge::{Bridge, BridgeBuilder, ToolResult, skill};
use tokio::sync::Notify;

/// Every text `echo` was run with (tests run in parallel, so each counts its own texts).
static ECHOED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn runs_of(text: &str) -> usize {
    ECHOED.lock().unwrap().iter().filter(|t| *t == text).count()
}

/// Echoes its text back.
#[skill]
fn echo(text: String) -> String {
    ECHOED.lock().unwrap().push(text.clone());
    text
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MAX_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// How long `occupy` holds its slot.
const OCCUPY: Duration = Duration::from_millis(20);

/// Holds a slot for a few milliseconds and reports how many ran at once.
#[skill]
async fn occupy() -> String {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(OCCUPY).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    "done".into()
}

/// Never finishes on its own and ignores cancellation.
#[skill]
async fn stubborn() -> String {
    std::future::pending::<()>().await;
    unreachable!()
}

fn patient_started() -> &'static Notify {
    static STARTED: OnceLock<Notify> = OnceLock::new();
    STARTED.get_or_init(Notify::new)
}

/// Waits for its cancellation token and says so.
#[skill]
async fn patient(ctx: SkillContext) -> String {
    patient_started().notify_one();
    ctx.cancelled().await;
    "cancelled".into()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

/// A bridge with this binary's skills, fast retries and a one-second grace.
fn builder() -> BridgeBuilder {
    Bridge::builder()
        .catalog(Catalog::from_registry().expect("test skills form a catalog"))
        .answer_retry(fast_retries())
        .grace(Duration::from_secs(1))
}

fn call(id: &str, tool: &str, arguments: serde_json::Value) -> ToolCall {
    turn_call(id, "turn-1", tool, arguments)
}

#[tokio::test]
async fn a_call_runs_once_and_is_answered_with_the_skill_output() {
    let mut rig = Rig::start(builder(), vec![]).await;
    let first = call("dup-1", "echo", json!({"text": "hello"}));
    assert_eq!(rig.feed.submit(first.clone(), CallSource::Stream), Submitted::Accepted);
    assert_eq!(rig.feed.submit(first.clone(), CallSource::Poll), Submitted::Duplicate);
    let (answered, result, _) = rig.next().await;
    assert_eq!(answered.request_id, "dup-1");
    assert_eq!(result, ToolResult::text("hello"));
    assert_eq!(rig.feed.submit(first, CallSource::Poll), Submitted::Duplicate);
    rig.bridge.shutdown().await;
    assert!(rig.answers.try_recv().is_err(), "answered twice");
    assert_eq!(runs_of("hello"), 1);
    assert_eq!(rig.bridge.stats().duplicates(), 2);
    let record = &rig.bridge.stats().recent(1)[0];
    assert_eq!(
        (record.outcome, record.submit_status, record.attempts),
        ("success", "delivered", 1)
    );
}

// On the paused clock, so that the backoff between attempts is observed exactly. (`echo` runs on the blocking
// pool; while it runs the paused clock does not auto-advance.)
#[tokio::test(start_paused = true)]
async fn passing_failures_are_retried_until_delivered() {
    let retry = || AnswerOutcome::Retry { reason: "500".into() };
    let policy = RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(250),
    };
    let mut rig = Rig::start(builder().answer_retry(policy), vec![retry(), retry(), retry()]).await;
    rig.feed
        .submit(call("retry-1", "echo", json!({"text": "x"})), CallSource::Stream);
    assert_eq!(rig.next().await.2.label(), "retry");
    let mut last = tokio::time::Instant::now();
    // The backoff doubles after each failed attempt, up to its cap.
    for (expected, backoff) in [("retry", 100), ("retry", 200), ("delivered", 250)] {
        assert_eq!(rig.next().await.2.label(), expected);
        assert_took(last, Duration::from_millis(backoff), "the backoff before this attempt");
        last = tokio::time::Instant::now();
    }
    rig.bridge.shutdown().await;
    let record = &rig.bridge.stats().recent(1)[0];
    assert_eq!((record.submit_status, record.attempts), ("delivered", 4));
}

#[tokio::test]
async fn already_answered_and_rejected_are_not_retried() {
    let script = vec![
        AnswerOutcome::AlreadyAnswered { status: 409 },
        AnswerOutcome::Rejected {
            reason: "400 invalid_request".into(),
        },
    ];
    let mut rig = Rig::start(builder(), script).await;
    rig.feed
        .submit(call("done-1", "echo", json!({"text": "a"})), CallSource::Stream);
    assert_eq!(rig.next().await.2.label(), "already_answered");
    rig.feed
        .submit(call("done-2", "echo", json!({"text": "b"})), CallSource::Stream);
    assert_eq!(rig.next().await.2.label(), "rejected");
    rig.bridge.shutdown().await;
    assert!(rig.answers.try_recv().is_err(), "a settled answer was retried");
}

#[tokio::test]
async fn an_undelivered_result_is_resent_without_running_the_skill_again() {
    let retry = || AnswerOutcome::Retry {
        reason: "connection refused".into(),
    };
    let mut rig = Rig::start(builder(), vec![retry(), retry(), retry()]).await;
    let pending = call("lost-1", "echo", json!({"text": "keep me"}));
    rig.feed.submit(pending.clone(), CallSource::Stream);
    for _ in 0..3 {
        assert_eq!(rig.next().await.2.label(), "retry");
    }
    // The call is still pending upstream, so the next listing sees it again.
    let resubmitted = loop {
        match rig.feed.submit(pending.clone(), CallSource::Poll) {
            Submitted::Duplicate => tokio::task::yield_now().await,
            other => break other,
        }
    };
    assert_eq!(resubmitted, Submitted::Redelivering);
    let (_, result, outcome) = rig.next().await;
    assert_eq!(
        (result.text_content().as_str(), outcome.label()),
        ("keep me", "delivered")
    );
    rig.bridge.shutdown().await;
    assert_eq!(runs_of("keep me"), 1);
}

// On the paused clock: every call is taken before any `occupy` finishes, so the bound is always full.
#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded() {
    let mut rig = Rig::start(builder().concurrency(3), vec![]).await;
    let started = tokio::time::Instant::now();
    for i in 0..12 {
        rig.feed
            .submit(call(&format!("occupy-{i}"), "occupy", json!({})), CallSource::Stream);
    }
    for _ in 0..12 {
        rig.next().await;
    }
    assert_eq!(MAX_RUNNING.load(Ordering::SeqCst), 3);
    // Twelve calls three at a time: four rounds, each as long as one call, and no idle slot in between.
    assert_took(started, OCCUPY * 4, "twelve calls at a concurrency of three");
    rig.bridge.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_skills_past_the_grace_and_refuses_new_calls() {
    let grace = Duration::from_millis(100);
    let mut rig = Rig::start(builder().grace(grace), vec![]).await;
    rig.feed
        .submit(call("hang-1", "stubborn", json!({})), CallSource::Stream);
    let started = tokio::time::Instant::now();
    let report = rig.bridge.shutdown().await;
    assert_took(started, grace, "the skill gets the grace period, no more");
    assert_eq!(report.cancelled, 1);
    let (answered, result, _) = rig.next().await;
    assert_eq!(answered.request_id, "hang-1");
    assert!(!result.success);
    assert!(result.text_content().contains("shut down"), "{}", result.text_content());
    assert_eq!(
        rig.feed
            .submit(call("late-1", "echo", json!({"text": "late"})), CallSource::Stream),
        Submitted::Closed
    );
}

#[tokio::test]
async fn interrupting_a_turn_cancels_its_running_skills() {
    let mut rig = Rig::start(builder(), vec![]).await;
    rig.feed
        .submit(call("patient-1", "patient", json!({})), CallSource::AppServer);
    tokio::time::timeout(Duration::from_secs(5), patient_started().notified())
        .await
        .expect("the skill starts");
    rig.feed.cancel_turn("turn-1");
    let (_, result, _) = rig.next().await;
    assert!(!result.success);
    assert!(result.text_content().contains("cancelled"), "{}", result.text_content());
    assert_eq!(rig.bridge.stats().recent(1)[0].outcome, "cancelled");
    rig.bridge.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_answer_retries_at_the_grace() {
    let retry = || AnswerOutcome::Retry { reason: "503".into() };
    let slow_retries = RetryPolicy {
        max_attempts: 50,
        initial_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(10),
    };
    let grace = Duration::from_millis(100);
    let builder = builder().answer_retry(slow_retries).grace(grace);
    let mut rig = Rig::start(builder, (0..50).map(|_| retry()).collect()).await;
    rig.feed
        .submit(call("flaky-1", "echo", json!({"text": "flaky"})), CallSource::Stream);
    assert_eq!(rig.next().await.2.label(), "retry");
    // The skill has run (on the blocking pool); from here on only timers matter.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let report = rig.bridge.shutdown().await;
    assert_took(started, grace, "the retry waits for the grace, not its 10 s backoff");
    assert_eq!(
        report.cancelled, 0,
        "the skill had finished; only its answer was pending"
    );
    assert_eq!(rig.next().await.2.label(), "retry", "one last attempt after the grace");
    assert!(rig.answers.try_recv().is_err());
    assert_eq!(rig.bridge.stats().recent(1)[0].attempts, 2);
}

/// Released by the test, one run per permit.
static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
/// Runs of `gated` begun (each taken off the queue), and a wake-up for each.
static GATED_RUNS: AtomicUsize = AtomicUsize::new(0);
static GATED_RUN_BEGUN: Notify = Notify::const_new();

/// Runs once the test lets it.
#[skill]
async fn gated() -> &'static str {
    GATED_RUNS.fetch_add(1, Ordering::SeqCst);
    GATED_RUN_BEGUN.notify_waiters();
    let _ = GATE.acquire().await.map(tokio::sync::SemaphorePermit::forget);
    "through"
}

/// Waits until `runs` runs of `gated` have begun: that many calls left the queue.
async fn gated_runs_begun(runs: usize) {
    loop {
        let begun = GATED_RUN_BEGUN.notified();
        if GATED_RUNS.load(Ordering::SeqCst) >= runs {
            return;
        }
        begun.await;
    }
}

/// Lets `runs` calls of `gated` through, waits for their answers and for the next call to leave the queue.
async fn let_through(rig: &mut Rig, runs: usize) {
    let begun = GATED_RUNS.load(Ordering::SeqCst);
    GATE.add_permits(runs);
    for _ in 0..runs {
        assert_eq!(rig.next().await.1, ToolResult::text("through"));
    }
    gated_runs_begun(begun + runs).await;
}

// The stream is paused past 4,096 waiting calls and resumed at 3,072 (a batch, not one call per call that starts);
// optional listings wait until fewer than 1,024 wait.
#[tokio::test]
async fn a_full_queue_holds_the_stream_back_until_a_quarter_drained_and_listings_until_nearly_empty() {
    const HIGH: usize = 4096;
    const RESUME: usize = 3072;
    const LOW: usize = 1024;
    let mut rig = Rig::start(builder().concurrency(1), vec![]).await;
    // One runs, HIGH wait.
    for i in 0..=HIGH {
        let submitted = rig
            .feed
            .submit(call(&format!("gated-{i}"), "gated", json!({})), CallSource::Stream);
        assert_eq!(submitted, Submitted::Accepted);
    }
    gated_runs_begun(1).await;
    let feed = rig.feed.clone();
    let (room, caught_up) = (feed.room(), feed.caught_up());
    tokio::pin!(room, caught_up);
    assert!(futures::poll!(&mut room).is_pending(), "{HIGH} waiting: no room");
    assert!(futures::poll!(&mut caught_up).is_pending());

    // Below the high-water mark, but not down to the resume mark: the waiting stream stays held back.
    let_through(&mut rig, HIGH - RESUME - 1).await;
    assert!(
        futures::poll!(&mut room).is_pending(),
        "{} waiting: not yet",
        RESUME + 1
    );
    let_through(&mut rig, 1).await;
    assert!(futures::poll!(&mut room).is_ready(), "{RESUME} waiting: room");
    assert!(futures::poll!(&mut caught_up).is_pending());

    let_through(&mut rig, RESUME - LOW).await;
    assert!(
        futures::poll!(&mut caught_up).is_pending(),
        "{LOW} waiting: still behind"
    );
    let_through(&mut rig, 1).await;
    assert!(
        futures::poll!(&mut caught_up).is_ready(),
        "{} waiting: caught up",
        LOW - 1
    );

    GATE.add_permits(LOW);
    for _ in 0..LOW {
        assert_eq!(rig.next().await.1, ToolResult::text("through"));
    }
    rig.bridge.shutdown().await;
}
