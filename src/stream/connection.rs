//! One connection's life: subscribe, ping on an interval, read frames, hand them to the dispatch queue, and end on
//! stop, close, read error, missing pong or a full queue. Runs over any [`Connection`], so tests can drive it with
//! in-memory channels.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::frame::{Frame, FrameError, Screened, screen_frame};
use super::malformed::MalformedLog;
use super::options::StreamOptions;
use super::router::{HandlerContext, Router, frame_type};
use super::signal::AppServerSignal;
use super::stats::{Counter, StreamStats};
use super::transport::{BoxMessages, BoxSink, Connection, Message};

/// How long a close frame may take on stop before the socket is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_millis(50);
/// How much of a malformed frame goes into the log.
const LOGGED_FRAME_CHARS: usize = 200;

/// A frame on its way to the handlers.
#[derive(Debug)]
pub(crate) struct Dispatch {
    pub(crate) item: Item,
    pub(crate) ctx: HandlerContext,
}

/// What the handlers get from one frame.
// Moved once per frame; boxing the large variant would cost an allocation per tool call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub(crate) enum Item {
    /// The frame as parsed.
    Frame(Frame),
    /// An event only signal handlers take, already read into its signal.
    Signal {
        event_type: String,
        signal: Option<AppServerSignal>,
    },
}

impl Item {
    /// The type of the frame, for logs.
    fn frame_type(&self) -> &str {
        match self {
            Item::Frame(frame) => frame_type(frame),
            Item::Signal { event_type, .. } => event_type,
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectionEnd {
    /// The stop token fired; a close frame was sent.
    Stopped,
    /// The server closed, the socket failed, or a write failed.
    Closed(String),
    /// A ping went unanswered for `pong_timeout`.
    PongTimeout,
    /// The dispatch queue was full: a frame was dropped.
    Overflow,
    /// The dispatch task is gone.
    DispatcherGone,
}

/// The outcome of one connection.
#[derive(Debug)]
pub(crate) struct ConnectionOutcome {
    pub(crate) end: ConnectionEnd,
    /// At least one valid frame arrived, so the server is really there (resets the backoff).
    pub(crate) healthy: bool,
}

/// Everything a connection needs besides the socket.
pub(crate) struct ConnectionDriver<'a> {
    pub(crate) options: &'a StreamOptions,
    pub(crate) stats: &'a StreamStats,
    pub(crate) dispatch: &'a mpsc::Sender<Dispatch>,
    /// Decides which events are worth building (see [`Router::handles_event`]).
    pub(crate) router: &'a Router,
    pub(crate) reconnect_count: u64,
    /// [`HandlerContext::connection`].
    pub(crate) connection: u64,
    /// Rate-limits the log lines of malformed frames across the connections of a run.
    pub(crate) malformed: &'a MalformedLog,
}

enum SendFailure {
    Stopped,
    Failed(String),
}

impl ConnectionDriver<'_> {
    /// Runs one connection until it ends.
    pub(crate) async fn drive(&self, connection: Connection) -> ConnectionOutcome {
        let Connection { mut sink, messages } = connection;
        let mut healthy = false;
        let end = self.run_until_end(&mut sink, messages, &mut healthy).await;
        if matches!(
            end,
            ConnectionEnd::Stopped | ConnectionEnd::Overflow | ConnectionEnd::PongTimeout
        ) {
            close(&mut sink).await;
        }
        ConnectionOutcome { end, healthy }
    }

    async fn run_until_end(&self, sink: &mut BoxSink, mut messages: BoxMessages, healthy: &mut bool) -> ConnectionEnd {
        if let Some(thread_id) = &self.options.thread_id {
            let subscribe = json!({"type": "subscribe", "threadId": thread_id}).to_string();
            if let Err(failure) = self.send(sink, Message::text(subscribe)).await {
                return failure.into();
            }
        }

        let period = self.options.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pong_deadline: Option<Instant> = None;

        loop {
            let pong_overdue = async {
                match pong_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.options.stop.cancelled() => return ConnectionEnd::Stopped,
                _ = pong_overdue => {
                    self.stats.add(Counter::PongTimeouts, 1);
                    return ConnectionEnd::PongTimeout;
                }
                _ = ping.tick() => {
                    let ping = Message::text(json!({"type": "ping"}).to_string());
                    if let Err(failure) = self.send(sink, ping).await {
                        return failure.into();
                    }
                    pong_deadline.get_or_insert_with(|| Instant::now() + self.options.pong_timeout);
                }
                message = messages.next() => {
                    let parsed = match message {
                        None => return ConnectionEnd::Closed("the server ended the stream".into()),
                        Some(Err(e)) => return ConnectionEnd::Closed(format!("read failed: {e}")),
                        Some(Ok(Message::Close(frame))) => {
                            let reason = match frame {
                                Some(frame) => format!("the server closed the socket ({} {})", frame.code, frame.reason),
                                None => "the server closed the socket".to_owned(),
                            };
                            return ConnectionEnd::Closed(reason);
                        }
                        Some(Ok(Message::Text(text))) => self.screen(text.as_str()),
                        Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                            Ok(text) => self.screen(text),
                            Err(_) => Err((FrameError::NotText, format!("<{} bytes>", bytes.len()))),
                        },
                        // Websocket-level ping/pong is answered by the transport itself.
                        Some(Ok(_)) => continue,
                    };
                    let screened = match parsed {
                        Ok(screened) => screened,
                        Err((error, frame)) => {
                            self.stats.add(Counter::MalformedFrames(error.kind_index()), 1);
                            self.malformed.skipped(&error, &frame);
                            continue;
                        }
                    };
                    self.stats.add(Counter::Frames, 1);
                    *healthy = true;
                    let item = match screened {
                        Screened::Frame(frame) => Item::Frame(frame),
                        Screened::Signal { event_type, signal } => Item::Signal { event_type, signal },
                        Screened::Unwanted => {
                            self.stats.add(Counter::UnhandledFrames, 1);
                            continue;
                        }
                    };
                    if item == Item::Frame(Frame::Pong) {
                        pong_deadline = None;
                    }
                    if let Some(end) = self.enqueue(item).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Reads a frame, building only what a handler will see.
    fn screen(&self, text: &str) -> Result<Screened, (FrameError, String)> {
        screen_frame(text, &|event_type| self.router.interest(event_type)).map_err(|e| (e, preview(text)))
    }

    /// Hands a frame to the dispatch task. When the handlers are a full buffer behind, the socket is not read until
    /// they make room (the server holds what follows, and TCP slows it down), for at most `pong_timeout`: handlers
    /// stuck for longer make the stream drop the frame and reconnect once they have caught up.
    async fn enqueue(&self, item: Item) -> Option<ConnectionEnd> {
        let ctx = HandlerContext {
            thread_id: self.options.thread_id.clone(),
            reconnect_count: self.reconnect_count,
            connection: self.connection,
        };
        let dispatch = Dispatch { item, ctx };
        let dispatch = match self.dispatch.try_send(dispatch) {
            Ok(()) => return None,
            Err(mpsc::error::TrySendError::Full(dispatch)) => dispatch,
            Err(mpsc::error::TrySendError::Closed(_)) => return Some(ConnectionEnd::DispatcherGone),
        };
        let room = tokio::select! {
            biased;
            _ = self.options.stop.cancelled() => return Some(ConnectionEnd::Stopped),
            room = tokio::time::timeout(self.options.pong_timeout, self.dispatch.reserve()) => room,
        };
        match room {
            Ok(Ok(permit)) => {
                permit.send(dispatch);
                None
            }
            Ok(Err(_)) => Some(ConnectionEnd::DispatcherGone),
            Err(_) => {
                self.stats.add(Counter::DroppedFrames, 1);
                tracing::warn!(
                    event_type = %dispatch.item.frame_type(),
                    buffer = self.options.event_buffer,
                    waited = ?self.options.pong_timeout,
                    "stream handlers are {} frames behind and made no room; dropping this frame and reconnecting once \
                     they catch up",
                    self.options.event_buffer,
                );
                Some(ConnectionEnd::Overflow)
            }
        }
    }

    /// Sends one message, giving up after `pong_timeout` (a socket that cannot take a ping is dead) or on stop.
    async fn send(&self, sink: &mut BoxSink, message: Message) -> Result<(), SendFailure> {
        tokio::select! {
            biased;
            _ = self.options.stop.cancelled() => Err(SendFailure::Stopped),
            sent = tokio::time::timeout(self.options.pong_timeout, sink.send(message)) => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SendFailure::Failed(format!("write failed: {e}"))),
                Err(_) => Err(SendFailure::Failed(format!("write blocked for {:?}", self.options.pong_timeout))),
            },
        }
    }
}

impl From<SendFailure> for ConnectionEnd {
    fn from(failure: SendFailure) -> Self {
        match failure {
            SendFailure::Stopped => ConnectionEnd::Stopped,
            SendFailure::Failed(reason) => ConnectionEnd::Closed(reason),
        }
    }
}

/// Sends a close frame, briefly: on stop the socket is dropped either way.
async fn close(sink: &mut BoxSink) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    })
    .await;
}

fn preview(text: &str) -> String {
    if text.chars().count() <= LOGGED_FRAME_CHARS {
        text.to_owned()
    } else {
        let head: String = text.chars().take(LOGGED_FRAME_CHARS).collect();
        format!("{head}..")
    }
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc as fmpsc;

    use super::*;

    /// Drives one in-memory connection through `frames`, until the server side ends, and returns what reached the
    /// dispatch queue.
    async fn drive(router: &Router, stats: &StreamStats, frames: &[&str]) -> Vec<Item> {
        let options = StreamOptions::new();
        let (queue, mut pending) = mpsc::channel(64);
        let (to_server, _server_inbox) = fmpsc::unbounded::<Message>();
        let (to_client, from_server) = fmpsc::unbounded::<Result<Message, String>>();
        for frame in frames {
            to_client.unbounded_send(Ok(Message::text(*frame))).unwrap();
        }
        drop(to_client);
        let malformed = MalformedLog::default();
        let driver = ConnectionDriver {
            options: &options,
            stats,
            dispatch: &queue,
            router,
            reconnect_count: 0,
            connection: 1,
            malformed: &malformed,
        };
        let outcome = driver.drive(Connection::new(to_server, from_server)).await;
        assert!(matches!(outcome.end, ConnectionEnd::Closed(_)), "{:?}", outcome.end);
        drop(queue);
        let mut delivered = Vec::new();
        while let Some(dispatch) = pending.recv().await {
            delivered.push(dispatch.item);
        }
        delivered
    }

    #[tokio::test]
    async fn frames_no_handler_takes_are_counted_not_queued() {
        let mut router = Router::new();
        router.on_app_server_request("item.tool.call", |_signal, _ctx| async {});
        let stats = StreamStats::default();
        let call = r#"{"type":"app_server.request.item.tool.call","threadId":"t","payload":{"method":"item/tool/call","requestId":1}}"#;
        let frames = [
            r#"{"type":"ready","threadId":"t"}"#,
            r#"{"type":"tool_call_requested","threadId":"t","payload":{"requestId":"0","arguments":{"a":[1,2]}}}"#,
            call,
            r#"{"payload":{"requestId":"1","success":true},"threadId":"t","type":"tool_call_resolved"}"#,
            r#"{"type":"tool_call_requested","payload":{"requestId":}}"#,
            r#"{"type":"transcript_updated","threadId":7}"#,
            r#"{"type":"pong"}"#,
        ];
        let delivered = drive(&router, &stats, &frames).await;
        let payload = serde_json::json!({"method": "item/tool/call", "requestId": 1});
        // Only a signal handler takes the call: it arrives as its signal, read without a payload `Value`.
        let expected_call = Item::Signal {
            event_type: "app_server.request.item.tool.call".into(),
            signal: AppServerSignal::from_payload("app_server.request.item.tool.call", Some("t"), &payload),
        };
        assert_eq!(
            delivered,
            [
                Item::Frame(Frame::Ready {
                    thread_id: Some("t".into())
                }),
                expected_call,
                Item::Frame(Frame::Pong)
            ]
        );
        let report = stats.snapshot();
        assert_eq!(
            (report.frames, report.unhandled_frames, report.malformed_frames),
            (5, 2, 2),
            "valid frames nobody handles still count as frames; malformed ones count as malformed"
        );
    }

    #[tokio::test]
    async fn a_catch_all_handler_takes_every_event() {
        let mut router = Router::new();
        router.on_event_prefix("", |_event, _ctx| async {});
        let stats = StreamStats::default();
        let delivered = drive(
            &router,
            &stats,
            &[r#"{"type":"tool_call_requested","payload":{"x":1}}"#],
        )
        .await;
        assert!(matches!(&delivered[..], [Item::Frame(Frame::Event(e))] if e.payload["x"] == 1));
        assert_eq!(stats.unhandled_frames(), 0);
    }
}
