//! `async fn` skills run inside the dispatcher's own task for each call: a panicking one is still answered, and
//! one interrupted with its turn is answered at once while it goes on cleaning up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;
use skillbridge::bridge::{CallSource, DispatchConfig, Dispatcher};
use skillbridge::skill::{Catalog, Outcome, SkillContext};
use skillbridge::upstream::{AnswerOutcome, ToolCall, Upstream};
use skillbridge::{ToolResult, skill};
use tokio::sync::mpsc;

/// Panics after its first await.
#[skill]
async fn explode_later(
    /// Put into the panic message.
    reason: String,
) -> String {
    tokio::task::yield_now().await;
    panic!("kaboom: {reason}");
}

/// Who is told when `tidy` has started and when it has cleaned up.
static TIDY_EVENTS: Mutex<Option<mpsc::UnboundedSender<&'static str>>> = Mutex::new(None);

fn tidy_event(event: &'static str) {
    if let Some(events) = TIDY_EVENTS.lock().unwrap().as_ref() {
        let _ = events.send(event);
    }
}

/// Waits for its token, then cleans up (reported through `TIDY_EVENTS`) after the call was answered.
#[skill]
async fn tidy(ctx: SkillContext) -> String {
    tidy_event("started");
    ctx.cancelled().await;
    tokio::task::yield_now().await;
    tidy_event("cleaned up");
    "tidied".into()
}

/// Hands every answer to the test.
struct Recording(mpsc::UnboundedSender<(ToolCall, ToolResult)>);

impl Upstream for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        let _ = self.0.send((call.clone(), result.clone()));
        Box::pin(async { AnswerOutcome::Delivered })
    }
}

fn dispatcher() -> (Dispatcher, mpsc::UnboundedReceiver<(ToolCall, ToolResult)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let catalog = Catalog::from_registry().expect("test skills form a catalog");
    (
        Dispatcher::new(catalog, Arc::new(Recording(tx)), DispatchConfig::default()),
        rx,
    )
}

fn call(id: &str, tool: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        request_id: id.into(),
        thread_id: "thread-1".into(),
        turn_id: Some(format!("turn-{id}")),
        call_id: format!("call_{id}"),
        tool: tool.into(),
        arguments,
    }
}

async fn within<T>(future: impl std::future::Future<Output = Option<T>>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("in time")
        .expect("channel open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_async_skill_is_answered_and_counted() {
    let (dispatcher, mut answers) = dispatcher();
    dispatcher.submit(
        call("p1", "explode_later", json!({"reason": "test"})),
        CallSource::Stream,
    );
    let (answered, result) = within(answers.recv()).await;
    assert_eq!(answered.request_id, "p1");
    assert!(!result.success);
    assert_eq!(result.text_content(), "skill explode_later panicked: kaboom: test");
    assert_eq!(
        dispatcher.stats().skill_counts("explode_later").by_outcome[Outcome::Panicked.as_str()],
        1
    );
    // The dispatcher goes on taking calls.
    dispatcher.submit(
        call("p2", "explode_later", json!({"reason": "again"})),
        CallSource::Stream,
    );
    assert_eq!(within(answers.recv()).await.0.request_id, "p2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_async_skill_is_answered_at_once_and_cleans_up_afterwards() {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    *TIDY_EVENTS.lock().unwrap() = Some(events_tx);
    let (dispatcher, mut answers) = dispatcher();
    dispatcher.submit(call("t1", "tidy", json!({})), CallSource::Stream);
    assert_eq!(within(events.recv()).await, "started");
    dispatcher.cancel_turn("turn-t1");
    let (answered, result) = within(answers.recv()).await;
    assert_eq!(answered.request_id, "t1");
    assert_eq!(result.text_content(), "skill tidy was cancelled");
    assert_eq!(within(events.recv()).await, "cleaned up");
}
