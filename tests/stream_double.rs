//! The stream against the codex-manager double: tool calls reach the handlers with the right request id, the
//! stream recovers from dropped sockets and from a peer that stops answering pings, malformed frames are skipped,
//! and bad credentials are retried without leaking.
//!
//! On Tokio's paused clock: the double runs in the test's runtime and loopback sockets wake it, so only timers
//! (ping interval, pong deadline, backoff) move the clock, and each is observed exactly.

mod paused_clock;

use paused_clock::{CLOSE_GRACE, assert_backoff};
use std::time::Duration;

use serde_json::json;
use skillbridge::manager::ManagerConfig;
use skillbridge::stream::{
    AppServerSignal, Frame, HandlerContext, Router, StreamClient, StreamError, StreamEvent, StreamOptions, StreamReport,
};
use skillbridge_doubles::CodexManagerDouble;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

struct Channels {
    ready: mpsc::UnboundedReceiver<HandlerContext>,
    calls: mpsc::UnboundedReceiver<AppServerSignal>,
    events: mpsc::UnboundedReceiver<StreamEvent>,
}

/// Ready frames, tool-call signals and every other event, each to its own channel.
fn router() -> (Router, Channels) {
    let (ready_tx, ready) = mpsc::unbounded_channel();
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router
        .on_control(move |frame, ctx| {
            if matches!(frame, Frame::Ready { .. }) {
                let _ = ready_tx.send(ctx);
            }
            async {}
        })
        .on_app_server_request("item.tool.call", move |signal, _ctx| {
            let _ = calls_tx.send(signal);
            async {}
        })
        .on_event_prefix("", move |event, _ctx| {
            let _ = events_tx.send(event);
            async {}
        });
    (router, Channels { ready, calls, events })
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("nothing arrived in time")
        .unwrap()
}

/// The next event of the given type, skipping others.
async fn next_event(events: &mut mpsc::UnboundedReceiver<StreamEvent>, event_type: &str) -> StreamEvent {
    loop {
        let event = next(events).await;
        if event.event_type == event_type {
            return event;
        }
    }
}

fn config(double: &CodexManagerDouble, token: &str) -> ManagerConfig {
    ManagerConfig::builder()
        .base_url(double.base_url())
        .bearer_token(token)
        .build()
        .unwrap()
}

fn spawn_run(
    client: &StreamClient,
    router: Router,
    options: StreamOptions,
) -> JoinHandle<Result<StreamReport, StreamError>> {
    let client = client.clone();
    tokio::spawn(async move { client.run(router, options).await })
}

/// Stops the stream and asserts `run` returns `Ok` without waiting on any timer but the close frame's.
async fn stop_at_once(stop: &CancellationToken, run: JoinHandle<Result<StreamReport, StreamError>>) -> StreamReport {
    let asked = Instant::now();
    stop.cancel();
    let report = tokio::time::timeout(WAIT, run)
        .await
        .expect("run did not end after the stop token")
        .unwrap()
        .expect("run failed");
    let took = asked.elapsed();
    assert!(took <= CLOSE_GRACE, "run took {took:?} to stop");
    report
}

#[tokio::test(start_paused = true)]
async fn tool_calls_reach_the_handlers_and_survive_dropped_sockets() {
    let double = CodexManagerDouble::builder()
        .require_bearer("double-token")
        .start()
        .await
        .unwrap();
    let thread = double.create_session(vec![]);
    let client = StreamClient::new(config(&double, "double-token"));
    let (router, mut ch) = router();
    let stop = CancellationToken::new();
    let backoff = Duration::from_millis(20);
    let options = StreamOptions::new()
        .thread_id(thread.clone())
        .backoff(backoff, Duration::from_millis(100))
        .stop(stop.clone());
    let run = spawn_run(&client, router, options);

    assert_eq!(next(&mut ch.ready).await.reconnect_count, 0);
    let first = double.inject_tool_call(&thread, "uppercase", json!({"text": "hello"}));
    let signal = next(&mut ch.calls).await;
    assert_eq!(signal.request_id.as_deref(), Some(first.as_str()));
    assert_eq!(signal.params["tool"], "uppercase");
    assert_eq!(signal.context.thread_id.as_deref(), Some(thread.as_str()));
    let requested = next_event(&mut ch.events, "tool_call_requested").await;
    assert_eq!(requested.payload["requestId"], first.as_str());
    assert!(
        double
            .ws_received()
            .contains(&json!({"type": "subscribe", "threadId": thread}).to_string()),
        "{:?}",
        double.ws_received()
    );

    assert_eq!(double.drop_sockets(), 1);
    let dropped = Instant::now();
    assert_eq!(next(&mut ch.ready).await.reconnect_count, 1);
    assert_backoff(dropped.elapsed(), backoff, "reconnect after the drop");
    assert!(double.wait_for_sockets(1, WAIT).await);
    let second = double.inject_tool_call(&thread, "uppercase", json!({"text": "again"}));
    assert_eq!(next(&mut ch.calls).await.request_id.as_deref(), Some(second.as_str()));

    let report = stop_at_once(&stop, run).await;
    assert_eq!((report.connects, report.reconnects), (2, 1));
    assert!(double.wait_for_sockets(0, WAIT).await, "socket left open after stop");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_answering_pings_is_replaced() {
    let double = CodexManagerDouble::start().await.unwrap();
    let client = StreamClient::new(config(&double, "unused"));
    let (router, mut ch) = router();
    let stop = CancellationToken::new();
    let (interval, pong_timeout, backoff) = (
        Duration::from_millis(30),
        Duration::from_millis(300),
        Duration::from_millis(20),
    );
    let options = StreamOptions::new()
        .ping_interval(interval)
        .pong_timeout(pong_timeout)
        .backoff(backoff, Duration::from_millis(100))
        .stop(stop.clone());
    let run = spawn_run(&client, router, options);

    assert_eq!(next(&mut ch.ready).await.reconnect_count, 0);
    let connected = Instant::now();
    // Answered pings keep the socket for several intervals. (Half an interval more, so that the switch does not
    // fall on a ping's tick.)
    tokio::time::sleep(interval * 5 + interval / 2).await;
    assert_eq!(client.stats().connects(), 1);
    double.set_pong_enabled(false);
    // The first unanswered ping is the next one on the interval (the sixth); the socket is closed exactly
    // `pong_timeout` after it and replaced after the first backoff.
    assert!(
        double.wait_for_sockets(0, WAIT).await,
        "the silent socket was not closed"
    );
    let closed = Instant::now();
    assert_eq!(
        closed - connected,
        interval * 6 + pong_timeout,
        "closed at the pong deadline"
    );
    assert_eq!(next(&mut ch.ready).await.reconnect_count, 1);
    assert_backoff(closed.elapsed(), backoff, "replaced after the backoff");
    double.set_pong_enabled(true);
    assert!(client.stats().pong_timeouts() >= 1);
    assert!(client.stats().last_error().unwrap().contains("pong"));
    stop_at_once(&stop, run).await;
}

#[tokio::test(start_paused = true)]
async fn malformed_frames_from_the_double_are_skipped() {
    let double = CodexManagerDouble::start().await.unwrap();
    let client = StreamClient::new(config(&double, "unused"));
    let (router, mut ch) = router();
    let stop = CancellationToken::new();
    let run = spawn_run(&client, router, StreamOptions::new().stop(stop.clone()));

    next(&mut ch.ready).await;
    double.emit_raw("{\"type\":");
    double.emit_raw("[]");
    double.emit_event(None, "transcript_updated", json!({"n": 1}));
    let event = next_event(&mut ch.events, "transcript_updated").await;
    assert_eq!(event.payload, json!({"n": 1}));
    assert_eq!(client.stats().malformed_frames(), 2);
    let report = stop_at_once(&stop, run).await;
    assert_eq!((report.malformed_frames, report.connects), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_wrong_token_is_retried_and_never_logged() {
    let double = CodexManagerDouble::builder()
        .require_bearer("double-token")
        .start()
        .await
        .unwrap();
    let client = StreamClient::new(config(&double, "not-the-token"));
    let stop = CancellationToken::new();
    let options = StreamOptions::new()
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .stop(stop.clone());
    let run = spawn_run(&client, Router::new(), options);
    let stats = client.stats();
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats.connect_failures() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no retries");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last_error = stats.last_error().unwrap();
    assert!(last_error.contains("401"), "{last_error}");
    assert!(!last_error.contains("not-the-token"));
    assert_eq!(double.socket_count(), 0);
    let report = stop_at_once(&stop, run).await;
    assert_eq!(report.connects, 0);
}
