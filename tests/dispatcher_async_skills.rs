//! `async fn` skills run inside the dispatcher's own task for each call: a panicking one is still answered, and
//! one interrupted with its turn is answered at once while it goes on cleaning up.

mod recording;

use std::sync::Mutex;
use std::time::Duration;

use recording::Rig;
use serde_json::json;
use skillbridge::skill::{Catalog, Outcome, SkillContext};
use skillbridge::telemetry::CallSource;
use skillbridge::upstream::ToolCall;
use skillbridge::{Bridge, skill};
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

async fn rig() -> Rig {
    let catalog = Catalog::from_registry().expect("test skills form a catalog");
    Rig::start(Bridge::builder().catalog(catalog), vec![]).await
}

fn call(id: &str, tool: &str, arguments: serde_json::Value) -> ToolCall {
    recording::call(id, &format!("turn-{id}"), tool, arguments)
}

async fn within<T>(future: impl std::future::Future<Output = Option<T>>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("in time")
        .expect("channel open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_async_skill_is_answered_and_counted() {
    let mut rig = rig().await;
    rig.feed.submit(
        call("p1", "explode_later", json!({"reason": "test"})),
        CallSource::Stream,
    );
    let (answered, result, _) = rig.next().await;
    assert_eq!(answered.request_id, "p1");
    assert!(!result.success);
    assert_eq!(result.text_content(), "skill explode_later panicked: kaboom: test");
    assert_eq!(
        rig.bridge.stats().skill_counts("explode_later").by_outcome[Outcome::Panicked.as_str()],
        1
    );
    // The bridge goes on taking calls.
    rig.feed.submit(
        call("p2", "explode_later", json!({"reason": "again"})),
        CallSource::Stream,
    );
    assert_eq!(rig.next().await.0.request_id, "p2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_async_skill_is_answered_at_once_and_cleans_up_afterwards() {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    *TIDY_EVENTS.lock().unwrap() = Some(events_tx);
    let mut rig = rig().await;
    rig.feed.submit(call("t1", "tidy", json!({})), CallSource::Stream);
    assert_eq!(within(events.recv()).await, "started");
    rig.feed.cancel_turn("turn-t1");
    let (answered, result, _) = rig.next().await;
    assert_eq!(answered.request_id, "t1");
    assert_eq!(result.text_content(), "skill tidy was cancelled");
    assert_eq!(within(events.recv()).await, "cleaned up");
}
