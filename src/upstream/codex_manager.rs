//! The codex-manager upstream: tool calls arrive on the websocket stream (`app_server.request.item.tool.call`)
//! and from pending-call listing (after every ready frame and on an interval); answers go to
//! `POST /api/tool-calls/:requestId/response`.
//!
//! Both arrival paths feed the same [`Dispatcher`], which deduplicates, so a call seen twice runs once and
//! a call published while no socket was connected is still found by the next listing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{AnswerOutcome, ToolCall, Upstream};
use crate::ToolResult;
use crate::bridge::{BridgeHealth, CallSource, Dispatcher};
use crate::manager::{CodexManager, ManagerError, PendingToolCall};
use crate::stream::{AppServerSignal, Frame, HandlerContext, Router, StreamClient, StreamOptions, StreamStats};
use crate::sync::lock;

/// Answers tool calls through codex-manager's REST API.
#[derive(Clone)]
pub struct CodexManagerUpstream {
    client: CodexManager,
}

impl CodexManagerUpstream {
    /// Answers through `client`.
    pub fn new(client: CodexManager) -> Self {
        Self { client }
    }
}

impl Upstream for CodexManagerUpstream {
    fn name(&self) -> &'static str {
        "codex-manager"
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        Box::pin(async move {
            match self.client.respond_tool_call(&call.request_id, result).await {
                Ok(_) => AnswerOutcome::Delivered,
                Err(error) => classify(&error),
            }
        })
    }
}

/// Maps a respond error to what the dispatcher should do: 404/409 mean somebody answered; 410 means the
/// session is gone; 5xx, 429 and transport errors pass; anything else (400) is final.
fn classify(error: &ManagerError) -> AnswerOutcome {
    let status = error.status().map(|s| s.as_u16());
    if error.is_already_answered() {
        AnswerOutcome::AlreadyAnswered {
            status: status.unwrap_or_default(),
        }
    } else if error.is_retryable() {
        AnswerOutcome::Retry {
            reason: error.to_string(),
        }
    } else {
        AnswerOutcome::Rejected {
            reason: error.to_string(),
        }
    }
}

/// A tool call from a stream signal, or why the signal is not a usable tool call.
pub fn tool_call_from_signal(signal: &AppServerSignal) -> Result<ToolCall, String> {
    tool_call_from_owned_signal(signal.clone())
}

/// [`tool_call_from_signal`] taking the signal by value: the arguments and ids move into the call.
pub fn tool_call_from_owned_signal(signal: AppServerSignal) -> Result<ToolCall, String> {
    let AppServerSignal {
        params,
        request_id,
        context,
        ..
    } = signal;
    let mut params = match params {
        Value::Object(params) => params,
        _ => Map::new(),
    };
    let mut text = |key: &str| match params.remove(key) {
        Some(Value::String(text)) => Some(text),
        _ => None,
    };
    let request_id = request_id.ok_or("tool call signal without requestId")?;
    let thread_id = text("threadId")
        .or(context.thread_id)
        .ok_or("tool call signal without threadId")?;
    let tool = text("tool").ok_or("tool call signal without tool")?;
    let turn_id = text("turnId").or(context.turn_id);
    let call_id = text("callId").unwrap_or_default();
    Ok(ToolCall {
        request_id,
        thread_id,
        turn_id,
        call_id,
        tool,
        arguments: params.remove("arguments").unwrap_or(Value::Null),
    })
}

/// A tool call from a pending-call row.
pub fn tool_call_from_pending(row: &PendingToolCall) -> ToolCall {
    ToolCall {
        request_id: row.request_id.clone(),
        thread_id: row.thread_id.clone(),
        turn_id: row.turn_id.clone(),
        call_id: row.call_id.clone(),
        tool: row.tool.clone(),
        arguments: row.arguments.clone(),
    }
}

/// Which threads' calls this bridge takes.
#[derive(Debug, Clone)]
pub enum SessionScope {
    /// Only these sessions (the ones it created or was told to attach to).
    Only(BTreeSet<String>),
    /// Every session on the codex-manager (`--all-sessions`); listing covers the given ones plus every
    /// thread a call has been seen on.
    All(BTreeSet<String>),
}

impl SessionScope {
    fn serves(&self, thread_id: &str) -> bool {
        match self {
            Self::Only(ids) => ids.contains(thread_id),
            Self::All(_) => true,
        }
    }

    /// The stream's thread filter: one served session can be filtered server-side.
    fn stream_filter(&self) -> Option<String> {
        match self {
            Self::Only(ids) if ids.len() == 1 => ids.iter().next().cloned(),
            _ => None,
        }
    }
}

/// Feeds a dispatcher from codex-manager: the stream plus pending-call listing.
pub struct CodexManagerFeed {
    client: CodexManager,
    dispatcher: Dispatcher,
    health: Arc<BridgeHealth>,
    scope: SessionScope,
    poll_interval: Duration,
    stream_options: StreamOptions,
    known_threads: Arc<Mutex<BTreeSet<String>>>,
    poll_now: Arc<Notify>,
}

impl CodexManagerFeed {
    /// A feed for `scope`, listing pending calls every `poll_interval` and after every ready frame.
    pub fn new(
        client: CodexManager,
        dispatcher: Dispatcher,
        health: Arc<BridgeHealth>,
        scope: SessionScope,
        poll_interval: Duration,
    ) -> Self {
        let known = match &scope {
            SessionScope::Only(ids) | SessionScope::All(ids) => ids.clone(),
        };
        Self {
            client,
            dispatcher,
            health,
            scope,
            poll_interval,
            stream_options: StreamOptions::default(),
            known_threads: Arc::new(Mutex::new(known)),
            poll_now: Arc::new(Notify::new()),
        }
    }

    /// Stream settings (ping interval, backoff); the thread filter and stop token are set by [`run`](Self::run).
    pub fn stream_options(mut self, options: StreamOptions) -> Self {
        self.stream_options = options;
        self
    }

    /// Adds handlers for tool calls, interrupted turns and ready frames to `router` (which may carry the caller's
    /// own handlers).
    pub fn install(&self, router: &mut Router) {
        let dispatcher = self.dispatcher.clone();
        let scope = self.scope.clone();
        let known = Arc::clone(&self.known_threads);
        router.on_app_server_request("item.tool.call", move |signal: AppServerSignal, _ctx: HandlerContext| {
            let outcome = match tool_call_from_owned_signal(signal) {
                Ok(call) if scope.serves(&call.thread_id) => {
                    lock(&known).insert(call.thread_id.clone());
                    dispatcher.submit(call, CallSource::Stream);
                    Ok(())
                }
                Ok(call) => {
                    tracing::trace!(thread_id = %call.thread_id, "tool call for a session this bridge does not serve");
                    Ok(())
                }
                Err(reason) => Err(format!("unusable tool call signal: {reason}")),
            };
            async move { outcome }
        });
        // An interrupted turn cancels its running skills (their calls are answered `success:false`).
        let dispatcher = self.dispatcher.clone();
        router.on_app_server(
            "turn.completed",
            move |signal: AppServerSignal, _ctx: HandlerContext| {
                let turn = &signal.params["turn"];
                if turn["status"] == "interrupted"
                    && let Some(turn_id) = turn["id"].as_str()
                {
                    dispatcher.cancel_turn(turn_id);
                }
                async {}
            },
        );
        let poll_now = Arc::clone(&self.poll_now);
        router.on_control(move |frame: Frame, _ctx: HandlerContext| {
            if let Frame::Ready { .. } = frame {
                poll_now.notify_one();
            }
            async { Ok::<(), String>(()) }
        });
    }

    /// Runs the stream and the poller until `stop` fires.
    pub async fn run(self, mut router: Router, stop: CancellationToken) {
        self.install(&mut router);
        let stream = StreamClient::new(self.client.config().clone());
        let mut options = self.stream_options.clone();
        options.thread_id = self.scope.stream_filter();
        options.stop = stop.clone();
        self.health.attach_link(stream.stats());
        let streaming = async {
            if let Err(error) = stream.run(router, options).await {
                tracing::error!(%error, "codex-manager stream ended");
            }
        };
        tokio::join!(streaming, self.poll_loop(stop.clone()));
    }

    async fn poll_loop(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.poll_now.notified() => {}
            }
            self.poll_once().await;
        }
    }

    /// Lists pending calls of every known session and submits them (duplicates are dropped by the dispatcher).
    pub async fn poll_once(&self) {
        let threads: Vec<String> = lock(&self.known_threads).iter().cloned().collect();
        for thread in threads {
            match self.client.list_tool_calls(&thread).await {
                Ok(rows) => {
                    for row in rows.iter().filter(|r| r.status == "pending") {
                        self.dispatcher.submit(tool_call_from_pending(row), CallSource::Poll);
                    }
                }
                Err(error) => tracing::warn!(%error, thread_id = %thread, "listing pending tool calls failed"),
            }
        }
    }
}

impl crate::bridge::LinkStatus for crate::stream::StreamStats {
    fn connected(&self) -> bool {
        StreamStats::connected(self)
    }

    fn reconnects(&self) -> u64 {
        StreamStats::reconnects(self)
    }

    fn malformed_frames(&self) -> u64 {
        StreamStats::malformed_frames(self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn signal(params: Value) -> AppServerSignal {
        let payload = json!({
            "method": "item/tool/call",
            "requestId": 7,
            "context": {"threadId": "ctx-thread", "turnId": "ctx-turn"},
            "params": params,
        });
        AppServerSignal::from_owned_payload("app_server.request.item.tool.call", None, payload).unwrap()
    }

    #[test]
    fn a_signal_becomes_a_call_with_params_before_context() {
        let params = json!({"threadId": "t", "turnId": "u", "callId": "c", "tool": "echo", "arguments": {"a": 1}});
        let call = tool_call_from_owned_signal(signal(params)).unwrap();
        let expected = ToolCall {
            request_id: "7".into(),
            thread_id: "t".into(),
            turn_id: Some("u".into()),
            call_id: "c".into(),
            tool: "echo".into(),
            arguments: json!({"a": 1}),
        };
        assert_eq!(call, expected);
        let borrowed = signal(json!({"tool": "echo"}));
        let call = tool_call_from_signal(&borrowed).unwrap();
        assert_eq!(
            (call.thread_id.as_str(), call.turn_id.as_deref(), call.call_id.as_str()),
            ("ctx-thread", Some("ctx-turn"), "")
        );
        assert_eq!(call.arguments, Value::Null);
    }

    #[test]
    fn unusable_signals_say_why() {
        assert_eq!(
            tool_call_from_owned_signal(signal(json!({"arguments": {}}))).unwrap_err(),
            "tool call signal without tool"
        );
        let mut no_id = signal(json!({"tool": "echo"}));
        no_id.request_id = None;
        assert_eq!(
            tool_call_from_signal(&no_id).unwrap_err(),
            "tool call signal without requestId"
        );
    }
}
