//! The dispatcher against a recording upstream: each call runs once, is answered, retried when the upstream
//! fails passingly, cancelled on shutdown or turn interrupt, and bounded in concurrency.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;
use skillbridge::bridge::{CallSource, DispatchConfig, Dispatcher, RetryPolicy, Submitted};
use skillbridge::skill::{Catalog, SkillContext};
use skillbridge::upstream::{AnswerOutcome, ToolCall, Upstream};
use skillbridge::{ToolResult, skill};
use tokio::sync::{Notify, mpsc};

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

/// Holds a slot for a few milliseconds and reports how many ran at once.
#[skill]
async fn occupy() -> String {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
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

/// Records every answer attempt; answers with scripted outcomes first, then `Delivered`.
struct RecordingUpstream {
    script: Mutex<VecDeque<AnswerOutcome>>,
    answers: mpsc::UnboundedSender<(ToolCall, ToolResult, AnswerOutcome)>,
}

impl Upstream for RecordingUpstream {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        let outcome = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(AnswerOutcome::Delivered);
        let _ = self.answers.send((call.clone(), result.clone(), outcome.clone()));
        Box::pin(async move { outcome })
    }
}

type Answers = mpsc::UnboundedReceiver<(ToolCall, ToolResult, AnswerOutcome)>;

fn dispatcher(script: Vec<AnswerOutcome>, config: DispatchConfig) -> (Dispatcher, Answers) {
    let (tx, rx) = mpsc::unbounded_channel();
    let upstream = RecordingUpstream {
        script: Mutex::new(script.into()),
        answers: tx,
    };
    let catalog = Catalog::from_registry().expect("test skills form a catalog");
    (Dispatcher::new(catalog, Arc::new(upstream), config), rx)
}

fn fast_retries() -> DispatchConfig {
    DispatchConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        },
        ..DispatchConfig::default()
    }
}

fn call(id: &str, tool: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        request_id: id.into(),
        thread_id: "thread-1".into(),
        turn_id: Some("turn-1".into()),
        call_id: format!("call_{id}"),
        tool: tool.into(),
        arguments,
    }
}

async fn next(answers: &mut Answers) -> (ToolCall, ToolResult, AnswerOutcome) {
    tokio::time::timeout(Duration::from_secs(5), answers.recv())
        .await
        .expect("an answer within 5 s")
        .expect("upstream alive")
}

#[tokio::test]
async fn a_call_runs_once_and_is_answered_with_the_skill_output() {
    let (dispatcher, mut answers) = dispatcher(vec![], fast_retries());
    let first = call("dup-1", "echo", json!({"text": "hello"}));
    assert_eq!(
        dispatcher.submit(first.clone(), CallSource::Stream),
        Submitted::Accepted
    );
    assert_eq!(dispatcher.submit(first.clone(), CallSource::Poll), Submitted::Duplicate);
    let (answered, result, _) = next(&mut answers).await;
    assert_eq!(answered.request_id, "dup-1");
    assert_eq!(result, ToolResult::text("hello"));
    assert_eq!(dispatcher.submit(first, CallSource::Poll), Submitted::Duplicate);
    dispatcher.shutdown(Duration::from_secs(1)).await;
    assert!(answers.try_recv().is_err(), "answered twice");
    assert_eq!(runs_of("hello"), 1);
    assert_eq!(dispatcher.stats().duplicates(), 2);
    let record = &dispatcher.stats().recent(1)[0];
    assert_eq!(
        (record.outcome, record.submit_status, record.attempts),
        ("success", "delivered", 1)
    );
}

#[tokio::test]
async fn passing_failures_are_retried_until_delivered() {
    let retry = || AnswerOutcome::Retry { reason: "500".into() };
    let (dispatcher, mut answers) = dispatcher(vec![retry(), retry()], fast_retries());
    dispatcher.submit(call("retry-1", "echo", json!({"text": "x"})), CallSource::Stream);
    for expected in ["retry", "retry", "delivered"] {
        assert_eq!(next(&mut answers).await.2.label(), expected);
    }
    dispatcher.shutdown(Duration::from_secs(1)).await;
    let record = &dispatcher.stats().recent(1)[0];
    assert_eq!((record.submit_status, record.attempts), ("delivered", 3));
}

#[tokio::test]
async fn already_answered_and_rejected_are_not_retried() {
    let script = vec![
        AnswerOutcome::AlreadyAnswered { status: 409 },
        AnswerOutcome::Rejected {
            reason: "400 invalid_request".into(),
        },
    ];
    let (dispatcher, mut answers) = dispatcher(script, fast_retries());
    dispatcher.submit(call("done-1", "echo", json!({"text": "a"})), CallSource::Stream);
    assert_eq!(next(&mut answers).await.2.label(), "already_answered");
    dispatcher.submit(call("done-2", "echo", json!({"text": "b"})), CallSource::Stream);
    assert_eq!(next(&mut answers).await.2.label(), "rejected");
    dispatcher.shutdown(Duration::from_secs(1)).await;
    assert!(answers.try_recv().is_err(), "a settled answer was retried");
}

#[tokio::test]
async fn an_undelivered_result_is_resent_without_running_the_skill_again() {
    let retry = || AnswerOutcome::Retry {
        reason: "connection refused".into(),
    };
    let (dispatcher, mut answers) = dispatcher(vec![retry(), retry(), retry()], fast_retries());
    let pending = call("lost-1", "echo", json!({"text": "keep me"}));
    dispatcher.submit(pending.clone(), CallSource::Stream);
    for _ in 0..3 {
        assert_eq!(next(&mut answers).await.2.label(), "retry");
    }
    // The call is still pending upstream, so the next listing sees it again.
    let resubmitted = loop {
        match dispatcher.submit(pending.clone(), CallSource::Poll) {
            Submitted::Duplicate => tokio::task::yield_now().await,
            other => break other,
        }
    };
    assert_eq!(resubmitted, Submitted::Redelivering);
    let (_, result, outcome) = next(&mut answers).await;
    assert_eq!(
        (result.text_content().as_str(), outcome.label()),
        ("keep me", "delivered")
    );
    dispatcher.shutdown(Duration::from_secs(1)).await;
    assert_eq!(runs_of("keep me"), 1);
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let config = DispatchConfig {
        concurrency: 3,
        ..fast_retries()
    };
    let (dispatcher, mut answers) = dispatcher(vec![], config);
    for i in 0..12 {
        dispatcher.submit(call(&format!("occupy-{i}"), "occupy", json!({})), CallSource::Stream);
    }
    for _ in 0..12 {
        next(&mut answers).await;
    }
    assert_eq!(MAX_RUNNING.load(Ordering::SeqCst), 3);
    dispatcher.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_answers_skills_past_the_grace_and_refuses_new_calls() {
    let (dispatcher, mut answers) = dispatcher(vec![], fast_retries());
    dispatcher.submit(call("hang-1", "stubborn", json!({})), CallSource::Stream);
    let started = tokio::time::Instant::now();
    let report = dispatcher.shutdown(Duration::from_millis(100)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(report.cancelled, 1);
    let (answered, result, _) = next(&mut answers).await;
    assert_eq!(answered.request_id, "hang-1");
    assert!(!result.success);
    assert!(result.text_content().contains("shut down"), "{}", result.text_content());
    assert_eq!(
        dispatcher.submit(call("late-1", "echo", json!({"text": "late"})), CallSource::Stream),
        Submitted::Closed
    );
}

#[tokio::test]
async fn interrupting_a_turn_cancels_its_running_skills() {
    let (dispatcher, mut answers) = dispatcher(vec![], fast_retries());
    dispatcher.submit(call("patient-1", "patient", json!({})), CallSource::AppServer);
    tokio::time::timeout(Duration::from_secs(5), patient_started().notified())
        .await
        .expect("the skill starts");
    dispatcher.cancel_turn("turn-1");
    let (_, result, _) = next(&mut answers).await;
    assert!(!result.success);
    assert!(result.text_content().contains("cancelled"), "{}", result.text_content());
    assert_eq!(dispatcher.stats().recent(1)[0].outcome, "cancelled");
    dispatcher.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_ends_answer_retries_at_the_grace() {
    let retry = || AnswerOutcome::Retry { reason: "503".into() };
    let slow_retries = DispatchConfig {
        retry: RetryPolicy {
            max_attempts: 50,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
        },
        ..DispatchConfig::default()
    };
    let (dispatcher, mut answers) = dispatcher((0..50).map(|_| retry()).collect(), slow_retries);
    dispatcher.submit(call("flaky-1", "echo", json!({"text": "flaky"})), CallSource::Stream);
    assert_eq!(next(&mut answers).await.2.label(), "retry");
    let started = tokio::time::Instant::now();
    let report = dispatcher.shutdown(Duration::from_millis(100)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(
        report.cancelled, 0,
        "the skill had finished; only its answer was pending"
    );
    assert_eq!(
        next(&mut answers).await.2.label(),
        "retry",
        "one last attempt after the grace"
    );
    assert!(answers.try_recv().is_err());
    assert_eq!(dispatcher.stats().recent(1)[0].attempts, 2);
}
