//! An upstream of the test's own: the test hands calls to the bridge through the [`Feed`] the bridge gives the
//! upstream when it runs, and sees every answer attempt; answers follow a script of outcomes, then `Delivered`.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use skillbridge::upstream::{AnswerOutcome, Feed, ToolCall, Upstream, UpstreamError};
use skillbridge::{BoxFuture, Bridge, BridgeBuilder, ToolResult};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// One answer attempt: the call, the result, and what the upstream said.
pub type Answer = (ToolCall, ToolResult, AnswerOutcome);

/// Records answers, plays back scripted outcomes, and hands its feed to the test.
pub struct RecordingUpstream {
    script: Mutex<VecDeque<AnswerOutcome>>,
    answers: mpsc::UnboundedSender<Answer>,
    feed: Mutex<Option<oneshot::Sender<Feed>>>,
}

impl Upstream for RecordingUpstream {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn run<'a>(&'a self, feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>> {
        if let Some(handover) = self.feed.lock().unwrap().take() {
            let _ = handover.send(feed);
        }
        Box::pin(async move {
            stop.cancelled().await;
            Ok(())
        })
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

/// A started bridge over a [`RecordingUpstream`].
pub struct Rig {
    pub bridge: Bridge,
    pub feed: Feed,
    pub answers: mpsc::UnboundedReceiver<Answer>,
}

impl Rig {
    /// Builds `builder` (catalog and settings of the test's choosing) over a recording upstream that answers
    /// with `script` first, and starts it.
    pub async fn start(builder: BridgeBuilder, script: Vec<AnswerOutcome>) -> Self {
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let (feed_tx, feed_rx) = oneshot::channel();
        let upstream = RecordingUpstream {
            script: Mutex::new(script.into()),
            answers: answers_tx,
            feed: Mutex::new(Some(feed_tx)),
        };
        let bridge = builder.upstream(upstream).build().expect("the test bridge builds");
        bridge.start().await.expect("the test bridge starts");
        let feed = feed_rx.await.expect("the bridge runs its upstream");
        Self { bridge, feed, answers }
    }

    /// The next answer attempt, within 5 s.
    pub async fn next(&mut self) -> Answer {
        tokio::time::timeout(Duration::from_secs(5), self.answers.recv())
            .await
            .expect("an answer within 5 s")
            .expect("upstream alive")
    }
}

/// A call of `tool` in turn `turn` of thread `thread-1`.
pub fn call(id: &str, turn: &str, tool: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        request_id: id.into(),
        thread_id: "thread-1".into(),
        turn_id: Some(turn.into()),
        call_id: format!("call_{id}"),
        tool: tool.into(),
        arguments,
    }
}
