//! The connection loop driven through in-memory channels: subscribe, pings on the interval, a missing pong means a
//! reconnect, malformed frames are skipped, slow handlers never stall the socket, a full handler queue resyncs,
//! and the stop token ends `run` promptly.
//!
//! Tests of timing (ping interval, pong deadline, reconnect backoff, stop) run on Tokio's paused clock: with
//! in-memory channels nothing happens outside the runtime, so each interval is observed exactly.

mod paused_clock;

use paused_clock::assert_backoff;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc as fmpsc;
use serde_json::{Value, json};
use skillbridge::manager::ManagerConfig;
use skillbridge::stream::{
    ConnectError, ConnectRequest, Connection, Frame, HandlerContext, Message, Router, StreamClient, StreamError,
    StreamEvent, StreamOptions, StreamReport,
};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything a test waits for; generous so a loaded machine does not cause false failures.
const WAIT: Duration = Duration::from_secs(5);

/// The reconnect backoff of [`quiet_options`]: 5 ms before the first retry, doubling up to 20 ms.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(20));

/// The server end of one in-memory connection.
struct ServerEnd {
    request: ConnectRequest,
    from_client: fmpsc::UnboundedReceiver<Message>,
    to_client: fmpsc::UnboundedSender<Result<Message, String>>,
}

impl ServerEnd {
    /// The next message the client sent, or `None` once it hung up.
    async fn recv(&mut self) -> Option<Message> {
        tokio::time::timeout(WAIT, self.from_client.next())
            .await
            .expect("client sent nothing in time")
    }

    /// The next text command the client sent, as JSON.
    async fn command(&mut self) -> Value {
        match self.recv().await {
            Some(Message::Text(text)) => serde_json::from_str(text.as_str()).unwrap(),
            other => panic!("expected a text command, got {other:?}"),
        }
    }

    fn send(&self, frame: Value) {
        self.send_raw(Message::text(frame.to_string()));
    }

    fn send_raw(&self, message: Message) {
        self.to_client.unbounded_send(Ok(message)).expect("client hung up");
    }

    /// Waits until the client's side of this connection is gone; returns whether a close frame came first.
    async fn closed_by_client(&mut self) -> bool {
        let mut saw_close = false;
        while let Some(message) = self.recv().await {
            saw_close |= matches!(message, Message::Close(_));
        }
        saw_close
    }
}

/// A connector handing every connection's server end to the test.
fn channel_client() -> (StreamClient, mpsc::UnboundedReceiver<ServerEnd>) {
    let (servers_tx, servers_rx) = mpsc::unbounded_channel();
    let connector = move |request: ConnectRequest| {
        let servers = servers_tx.clone();
        async move {
            let (client_tx, from_client) = fmpsc::unbounded::<Message>();
            let (to_client, client_rx) = fmpsc::unbounded::<Result<Message, String>>();
            servers
                .send(ServerEnd {
                    request,
                    from_client,
                    to_client,
                })
                .map_err(|_| ConnectError::Unreachable {
                    url: "memory".into(),
                    message: "test over".into(),
                })?;
            Ok(Connection::new(client_tx, client_rx))
        }
    };
    let config = ManagerConfig::builder()
        .base_url("http://127.0.0.1:3999")
        .bearer_token("test-token")
        .build()
        .unwrap();
    (StreamClient::with_connector(config, connector), servers_rx)
}

async fn next_server(servers: &mut mpsc::UnboundedReceiver<ServerEnd>) -> ServerEnd {
    tokio::time::timeout(WAIT, servers.recv())
        .await
        .expect("client did not connect in time")
        .expect("connector dropped")
}

fn quiet_options(stop: &CancellationToken) -> StreamOptions {
    StreamOptions::new()
        .ping_interval(Duration::from_secs(60))
        .pong_timeout(Duration::from_secs(60))
        .backoff(BACKOFF.0, BACKOFF.1)
        .stop(stop.clone())
}

fn spawn_run(
    client: &StreamClient,
    router: Router,
    options: StreamOptions,
) -> JoinHandle<Result<StreamReport, StreamError>> {
    let client = client.clone();
    tokio::spawn(async move { client.run(router, options).await })
}

async fn finish(stop: &CancellationToken, run: JoinHandle<Result<StreamReport, StreamError>>) -> StreamReport {
    stop.cancel();
    tokio::time::timeout(WAIT, run)
        .await
        .expect("run did not end after stop")
        .unwrap()
        .expect("run failed")
}

/// Adds handlers forwarding every event and control frame (with its context) to the returned channel.
fn record_all(router: &mut Router) -> mpsc::UnboundedReceiver<(Frame, HandlerContext)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let events = tx.clone();
    router
        .on_event_prefix("", move |event, ctx| {
            let _ = events.send((Frame::Event(event), ctx));
            async {}
        })
        .on_control(move |frame, ctx| {
            let _ = tx.send((frame, ctx));
            async {}
        });
    rx
}

fn recording_router() -> (Router, mpsc::UnboundedReceiver<(Frame, HandlerContext)>) {
    let mut router = Router::new();
    let frames = record_all(&mut router);
    (router, frames)
}

async fn next_frame(frames: &mut mpsc::UnboundedReceiver<(Frame, HandlerContext)>) -> (Frame, HandlerContext) {
    tokio::time::timeout(WAIT, frames.recv())
        .await
        .expect("no frame reached the handlers in time")
        .unwrap()
}

fn event(event_type: &str, payload: Value) -> Value {
    json!({"type": event_type, "threadId": "t1", "payload": payload})
}

#[tokio::test]
async fn connects_with_thread_and_auth_then_subscribes_and_dispatches() {
    let (client, mut servers) = channel_client();
    let (router, mut frames) = recording_router();
    let stop = CancellationToken::new();
    let run = spawn_run(&client, router, quiet_options(&stop).thread_id("t1"));

    let mut server = next_server(&mut servers).await;
    assert_eq!(server.request.url, "ws://127.0.0.1:3999/api/stream?threadId=t1");
    assert_eq!(server.request.headers["authorization"], "Bearer test-token");
    assert!(!format!("{:?}", server.request).contains("test-token"));
    assert_eq!(server.command().await, json!({"type": "subscribe", "threadId": "t1"}));

    server.send(json!({"type": "ready", "threadId": "t1"}));
    server.send(event("transcript_updated", json!({"n": 1})));
    let (ready, ctx) = next_frame(&mut frames).await;
    assert_eq!(
        ready,
        Frame::Ready {
            thread_id: Some("t1".into())
        }
    );
    assert_eq!(
        ctx,
        HandlerContext {
            thread_id: Some("t1".into()),
            reconnect_count: 0,
            connection: 1,
        }
    );
    let (update, _) = next_frame(&mut frames).await;
    assert_eq!(
        update,
        Frame::Event(StreamEvent::new(
            "transcript_updated",
            Some("t1".into()),
            json!({"n": 1})
        ))
    );
    assert!(client.stats().connected());

    let report = finish(&stop, run).await;
    assert!(server.closed_by_client().await, "no close frame on stop");
    assert_eq!((report.connects, report.reconnects, report.frames), (1, 0, 2));
    assert!(!client.stats().connected());
}

#[tokio::test(start_paused = true)]
async fn pings_on_the_interval_and_reconnects_when_a_pong_is_missing() {
    let (client, mut servers) = channel_client();
    let (router, mut frames) = recording_router();
    let stop = CancellationToken::new();
    let interval = Duration::from_millis(40);
    let pong_timeout = Duration::from_millis(400);
    let options = quiet_options(&stop).ping_interval(interval).pong_timeout(pong_timeout);
    let run = spawn_run(&client, router, options);

    let mut first = next_server(&mut servers).await;
    let connected = Instant::now();
    // No thread: no subscribe, the first command is a ping; answered pings keep the connection.
    for n in 1..=3 {
        assert_eq!(first.command().await, json!({"type": "ping"}));
        assert_eq!(connected.elapsed(), interval * n, "ping {n} goes out on the interval");
        first.send(json!({"type": "pong"}));
    }
    assert!(
        servers.try_recv().is_err(),
        "reconnected although every ping was answered"
    );
    // Now stop answering: `pong_timeout` after the unanswered ping the socket counts as dead, and after the first
    // backoff the client connects again.
    assert_eq!(first.command().await, json!({"type": "ping"}));
    let unanswered = Instant::now();
    assert_eq!(unanswered - connected, interval * 4);
    // Pings go on meanwhile; the close frame comes at the pong deadline.
    loop {
        match first.recv().await {
            Some(Message::Text(text)) if text.as_str() == r#"{"type":"ping"}"# => continue,
            Some(Message::Close(_)) => break,
            other => panic!("expected pings, then a close frame; got {other:?}"),
        }
    }
    let closed = Instant::now();
    assert_eq!(closed - unanswered, pong_timeout, "closed at the pong deadline");
    assert_eq!(first.recv().await, None, "the dead socket was dropped");
    let second = next_server(&mut servers).await;
    assert_backoff(closed.elapsed(), BACKOFF.0, "reconnect after the missing pong");
    assert_eq!(client.stats().pong_timeouts(), 1);
    assert!(client.stats().last_error().unwrap().contains("pong"));

    second.send(json!({"type": "ready", "threadId": null}));
    // Pongs of the first connection reached the control handlers; skip them.
    let ctx = loop {
        match next_frame(&mut frames).await {
            (Frame::Pong, _) => continue,
            (Frame::Ready { thread_id: None }, ctx) => break ctx,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!((ctx.reconnect_count, ctx.connection), (1, 2));
    let report = finish(&stop, run).await;
    assert_eq!((report.connects, report.reconnects, report.pong_timeouts), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn reconnects_after_the_server_drops_and_after_failed_attempts() {
    // When each connection attempt was made.
    let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (servers_tx, mut servers) = mpsc::unbounded_channel::<ServerEnd>();
    let counter = Arc::clone(&attempts);
    // Attempts 2 and 3 are refused; the others connect.
    let connector = move |request: ConnectRequest| {
        let servers = servers_tx.clone();
        let attempt = {
            let mut made = counter.lock().unwrap();
            made.push(Instant::now());
            made.len()
        };
        async move {
            if attempt == 2 || attempt == 3 {
                return Err(ConnectError::Rejected { status: 503 });
            }
            let (client_tx, from_client) = fmpsc::unbounded::<Message>();
            let (to_client, client_rx) = fmpsc::unbounded::<Result<Message, String>>();
            let _ = servers.send(ServerEnd {
                request,
                from_client,
                to_client,
            });
            Ok(Connection::new(client_tx, client_rx))
        }
    };
    let client = StreamClient::with_connector(ManagerConfig::default(), connector);
    let (router, mut frames) = recording_router();
    let stop = CancellationToken::new();
    let run = spawn_run(&client, router, quiet_options(&stop));

    let first = next_server(&mut servers).await;
    first.send(json!({"type": "ready", "threadId": null}));
    assert_eq!(next_frame(&mut frames).await.1.reconnect_count, 0);
    drop(first); // the server goes away without a close frame
    let dropped = Instant::now();

    let second = next_server(&mut servers).await;
    let made = attempts.lock().unwrap().clone();
    assert_eq!(made.len(), 4);
    // The backoff starts over after a connection that worked, and doubles with each failed attempt.
    assert_backoff(made[1] - dropped, BACKOFF.0, "first retry");
    assert_backoff(made[2] - made[1], BACKOFF.0 * 2, "second retry");
    assert_backoff(made[3] - made[2], BACKOFF.0 * 4, "third retry");
    second.send(json!({"type": "ready", "threadId": null}));
    second.send(event("tool_call_requested", json!({"requestId": "1"})));
    assert_eq!(next_frame(&mut frames).await.1.reconnect_count, 1);
    let (frame, _) = next_frame(&mut frames).await;
    assert!(matches!(frame, Frame::Event(e) if e.payload["requestId"] == "1"));
    assert!(client.stats().last_error().unwrap().contains("503"));

    let report = finish(&stop, run).await;
    assert_eq!((report.connects, report.reconnects, report.connect_failures), (2, 1, 2));
}

#[tokio::test]
async fn malformed_frames_are_counted_and_skipped() {
    let (client, mut servers) = channel_client();
    let (router, mut frames) = recording_router();
    let stop = CancellationToken::new();
    let run = spawn_run(&client, router, quiet_options(&stop));

    let server = next_server(&mut servers).await;
    server.send_raw(Message::text("not json"));
    server.send_raw(Message::text("{}"));
    server.send_raw(Message::text(r#"{"type":"x","threadId":7}"#));
    server.send_raw(Message::binary(vec![0xff, 0xfe, 0x00]));
    server.send_raw(Message::Ping(Default::default()));
    server.send_raw(Message::binary(
        event("binary_text", json!({})).to_string().into_bytes(),
    ));
    server.send(event("after_garbage", json!({})));

    let (first, _) = next_frame(&mut frames).await;
    assert!(matches!(first, Frame::Event(e) if e.event_type == "binary_text"));
    let (second, _) = next_frame(&mut frames).await;
    assert!(matches!(second, Frame::Event(e) if e.event_type == "after_garbage"));
    let stats = client.stats();
    assert_eq!(stats.malformed_frames(), 4);
    assert_eq!(stats.connects(), 1, "a malformed frame cost the connection");

    let report = finish(&stop, run).await;
    assert_eq!((report.frames, report.malformed_frames), (2, 4));
}

async fn explode(message: &'static str) {
    panic!("{message}")
}

#[tokio::test]
async fn handler_failures_do_not_stop_the_stream() {
    let (client, mut servers) = channel_client();
    let (tx, mut seen) = mpsc::unbounded_channel::<String>();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let failures_seen = Arc::clone(&failures);
    let mut router = Router::new();
    router
        .on_event("tool_call_requested", |_event, _ctx| explode("handler bug"))
        .on_event("tool_call_requested", |_event, _ctx| async {
            Err::<(), _>("handler error")
        })
        .on_event_prefix("", move |event, _ctx| {
            let _ = tx.send(event.event_type);
            async {}
        })
        .on_handler_error(move |failure| failures_seen.lock().unwrap().push(failure.message.clone()));
    let stop = CancellationToken::new();
    let run = spawn_run(&client, router, quiet_options(&stop));

    let server = next_server(&mut servers).await;
    server.send(event("tool_call_requested", json!({})));
    server.send(event("tool_call_requested", json!({})));
    server.send(event("transcript_updated", json!({})));
    for expected in ["tool_call_requested", "tool_call_requested", "transcript_updated"] {
        let got = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
        assert_eq!(got, expected);
    }
    assert_eq!(
        *failures.lock().unwrap(),
        ["handler bug", "handler error", "handler bug", "handler error"]
    );
    assert!(client.stats().connected());
    let report = finish(&stop, run).await;
    assert_eq!((report.handler_failures, report.connects), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_does_not_stall_pings_and_later_frames_wait_their_turn() {
    let (client, mut servers) = channel_client();
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (tx, mut seen) = mpsc::unbounded_channel::<String>();
    let mut router = Router::new();
    let (started_in, release_in) = (Arc::clone(&started), Arc::clone(&release));
    router
        .on_event("slow_tool", move |_event, _ctx| {
            let (started, release) = (Arc::clone(&started_in), Arc::clone(&release_in));
            async move {
                started.notify_one();
                release.notified().await;
            }
        })
        .on_event_prefix("", move |event, _ctx| {
            let _ = tx.send(event.event_type);
            async {}
        });
    let stop = CancellationToken::new();
    let interval = Duration::from_millis(30);
    let options = quiet_options(&stop)
        .ping_interval(interval)
        .pong_timeout(Duration::from_millis(300));
    let run = spawn_run(&client, router, options);

    let mut server = next_server(&mut servers).await;
    let connected = Instant::now();
    server.send(event("slow_tool", json!({})));
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("slow handler never started");
    server.send(event("after_slow", json!({})));
    // While the handler is stuck, the socket side keeps pinging on the interval and reading pongs.
    for n in 1..=5 {
        assert_eq!(server.command().await, json!({"type": "ping"}));
        assert_eq!(connected.elapsed(), interval * n, "ping {n} goes out on the interval");
        server.send(json!({"type": "pong"}));
    }
    assert!(seen.try_recv().is_err(), "handlers ran out of order");
    assert_eq!(client.stats().connects(), 1);
    assert_eq!(client.stats().pong_timeouts(), 0);

    release.notify_one();
    let order: Vec<String> = vec![
        tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap(),
        tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap(),
    ];
    assert_eq!(order, ["slow_tool", "after_slow"]);
    finish(&stop, run).await;
}

#[tokio::test(start_paused = true)]
async fn a_full_handler_queue_holds_the_socket_until_the_handlers_make_room() {
    let (client, mut servers) = channel_client();
    let release = Arc::new(Notify::new());
    let mut router = Router::new();
    let release_in = Arc::clone(&release);
    router.on_event("block", move |_event, _ctx| {
        let release = Arc::clone(&release_in);
        async move { release.notified().await }
    });
    let mut frames = record_all(&mut router);
    let stop = CancellationToken::new();
    let run = spawn_run(&client, router, quiet_options(&stop).event_buffer(2));

    let first = next_server(&mut servers).await;
    first.send(event("block", json!({})));
    for n in 1..=5 {
        first.send(event("queued", json!({"n": n})));
    }
    // Handlers stuck for less than the pong timeout (60 s here): the socket waits, nothing is dropped.
    tokio::time::sleep(Duration::from_secs(30)).await;
    release.notify_one();
    let mut delivered = Vec::new();
    while delivered.len() < 6 {
        if let (Frame::Event(e), _) = next_frame(&mut frames).await {
            delivered.push(e.payload["n"].clone());
        }
    }
    assert_eq!(
        delivered,
        [Value::Null, json!(1), json!(2), json!(3), json!(4), json!(5)]
    );
    assert_eq!(client.stats().dropped_frames(), 0);
    assert_eq!(client.stats().connects(), 1, "the connection was kept");
    finish(&stop, run).await;
}

#[tokio::test(start_paused = true)]
async fn handlers_stuck_past_the_pong_timeout_drop_a_frame_and_resubscribe_after_catching_up() {
    let (client, mut servers) = channel_client();
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let mut router = Router::new();
    let (started_in, release_in) = (Arc::clone(&started), Arc::clone(&release));
    router.on_event("block", move |_event, _ctx| {
        let (started, release) = (Arc::clone(&started_in), Arc::clone(&release_in));
        async move {
            started.notify_one();
            release.notified().await;
        }
    });
    let mut frames = record_all(&mut router);
    let stop = CancellationToken::new();
    let run = spawn_run(
        &client,
        router,
        quiet_options(&stop)
            .event_buffer(2)
            .pong_timeout(Duration::from_secs(1)),
    );

    let mut first = next_server(&mut servers).await;
    first.send(event("block", json!({})));
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("blocking handler never started");
    // Two frames fit the queue; the third does not, and the handler is stuck past the pong timeout (1 s).
    for n in 1..=3 {
        first.send(event("queued", json!({"n": n})));
    }
    assert!(
        first.closed_by_client().await,
        "the overflowing connection was not closed"
    );
    assert_eq!(client.stats().dropped_frames(), 1);
    // No new connection until the handlers have caught up.
    assert!(servers.try_recv().is_err(), "reconnected before the handlers caught up");

    release.notify_one();
    let second = next_server(&mut servers).await;
    second.send(json!({"type": "ready", "threadId": null}));
    let mut delivered = Vec::new();
    let ready_ctx = loop {
        match next_frame(&mut frames).await {
            (Frame::Event(e), _) => delivered.push((e.event_type, e.payload["n"].clone())),
            (Frame::Ready { .. }, ctx) => break ctx,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        delivered,
        [
            ("block".to_owned(), Value::Null),
            ("queued".to_owned(), json!(1)),
            ("queued".to_owned(), json!(2))
        ]
    );
    assert_eq!(ready_ctx.reconnect_count, 1);
    let report = finish(&stop, run).await;
    assert_eq!((report.dropped_frames, report.reconnects), (1, 1));
}

/// Stops `run` and waits for it on the paused clock, asserting it ended without waiting for any timer.
async fn stop_at_once(stop: &CancellationToken, run: JoinHandle<Result<StreamReport, StreamError>>) -> StreamReport {
    let asked = Instant::now();
    stop.cancel();
    let report = tokio::time::timeout(WAIT, run)
        .await
        .expect("run did not end after stop")
        .unwrap()
        .expect("run failed");
    assert_eq!(asked.elapsed(), Duration::ZERO, "run waited for a timer after the stop");
    report
}

#[tokio::test(start_paused = true)]
async fn stop_ends_run_promptly_in_every_state() {
    // While connected (pinging every 60 s).
    let (client, mut servers) = channel_client();
    let stop = CancellationToken::new();
    let run = spawn_run(&client, Router::new(), quiet_options(&stop));
    let mut server = next_server(&mut servers).await;
    stop_at_once(&stop, run).await;
    assert!(server.closed_by_client().await);

    // While waiting to reconnect (every attempt fails, long backoff).
    let failing = |_request: ConnectRequest| async {
        Err::<Connection, _>(ConnectError::Unreachable {
            url: "memory".into(),
            message: "refused".into(),
        })
    };
    let client = StreamClient::with_connector(ManagerConfig::default(), failing);
    let stop = CancellationToken::new();
    let options = quiet_options(&stop).backoff(Duration::from_secs(30), Duration::from_secs(30));
    let run = spawn_run(&client, Router::new(), options);
    let stats = client.stats();
    let deadline = Instant::now() + WAIT;
    while stats.connect_failures() == 0 {
        assert!(Instant::now() < deadline, "no connection attempt");
        tokio::task::yield_now().await;
    }
    let report = stop_at_once(&stop, run).await;
    assert_eq!((report.connects, report.connect_failures), (0, 1));
    assert!(report.last_error.unwrap().contains("refused"));

    // Already stopped before starting.
    let (client, _servers) = channel_client();
    let stop = CancellationToken::new();
    stop.cancel();
    let asked = Instant::now();
    let report = tokio::time::timeout(WAIT, client.run(Router::new(), quiet_options(&stop)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert_eq!(report.connects, 0);
}

#[tokio::test(start_paused = true)]
async fn stop_cancels_a_stuck_handler() {
    let (client, mut servers) = channel_client();
    let started = Arc::new(Notify::new());
    let mut router = Router::new();
    let started_in = Arc::clone(&started);
    router.on_event("stuck", move |_event, _ctx| {
        let started = Arc::clone(&started_in);
        async move {
            started.notify_one();
            std::future::pending::<()>().await;
        }
    });
    let stop = CancellationToken::new();
    let run = spawn_run(&client, router, quiet_options(&stop));
    let server = next_server(&mut servers).await;
    server.send(event("stuck", json!({})));
    tokio::time::timeout(WAIT, started.notified()).await.unwrap();
    stop_at_once(&stop, run).await;
}

#[tokio::test]
async fn invalid_options_and_fatal_urls_are_errors() {
    let (client, _servers) = channel_client();
    let err = client
        .run(Router::new(), StreamOptions::new().ping_interval(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(matches!(err, StreamError::InvalidOptions(_)), "{err}");

    // A path no URL may hold: the websocket URL made from it cannot be parsed, and retrying cannot change that.
    let config = ManagerConfig::builder()
        .base_url("http://127.0.0.1:9/a path")
        .build()
        .unwrap();
    let err = StreamClient::new(config)
        .run(Router::new(), StreamOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(&err, StreamError::Connect(e) if e.is_fatal()), "{err}");
    assert!(
        err.to_string()
            .contains("invalid websocket URL ws://127.0.0.1:9/a path"),
        "{err}"
    );
}
