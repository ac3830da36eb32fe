//! The stream over real loopback sockets against a small axum websocket server: auth headers on the upgrade,
//! subscribe and ping commands, reconnect after the server drops every socket, rejected upgrades retried and
//! reported without secrets, and the stop token ending `run` at once.
//!
//! On Tokio's paused clock: the server runs in the test's runtime and loopback sockets wake it, so only the
//! stream's own timers (ping interval, backoff) move the clock, and each is observed exactly.

mod paused_clock;

use paused_clock::{CLOSE_GRACE, assert_backoff};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router as HttpRouter;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use skillbridge::manager::ManagerConfig;
use skillbridge::stream::{
    AppServerSignal, Frame, HandlerContext, Router, StreamClient, StreamError, StreamOptions, StreamReport,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// The reconnect backoff of [`options`]: 20 ms before the first retry, doubling up to 100 ms.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(100));

/// What the test server observed.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Upgrade {
        thread_id: Option<String>,
        authorization: Option<String>,
        rbac_role: Option<String>,
    },
    Rejected(u16),
    Command(Value),
    /// A socket ended; `close_frame` tells whether the client said goodbye with a close frame.
    Closed {
        close_frame: bool,
    },
}

struct ServerState {
    require_bearer: Option<String>,
    seen: mpsc::UnboundedSender<Seen>,
    frames: broadcast::Sender<String>,
    drop_sockets: Mutex<CancellationToken>,
}

/// A codex-manager-shaped websocket endpoint at `/api/stream`.
struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(require_bearer: Option<&str>) -> Self {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let state = Arc::new(ServerState {
            require_bearer: require_bearer.map(str::to_owned),
            seen: seen_tx,
            frames: broadcast::channel(64).0,
            drop_sockets: Mutex::new(CancellationToken::new()),
        });
        let app = HttpRouter::new()
            .route("/api/stream", get(upgrade))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            state,
            seen,
            task,
        }
    }

    fn config(&self, bearer: Option<&str>) -> ManagerConfig {
        let mut builder = ManagerConfig::builder().base_url(format!("http://{}", self.addr)).rbac(
            None,
            Some("operator".into()),
            None,
        );
        if let Some(token) = bearer {
            builder = builder.bearer_token(token);
        }
        builder.build().unwrap()
    }

    async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("server saw nothing in time")
            .unwrap()
    }

    /// Skips pings until something else arrives.
    async fn next_seen_except_pings(&mut self) -> Seen {
        loop {
            match self.next_seen().await {
                Seen::Command(c) if c["type"] == "ping" => continue,
                other => return other,
            }
        }
    }

    fn emit(&self, frame: Value) {
        self.state.frames.send(frame.to_string()).expect("no socket connected");
    }

    /// Drops every open socket without a close frame, like a crashed or restarted server.
    fn drop_sockets(&self) {
        let mut token = self.state.drop_sockets.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(serde::Deserialize)]
struct StreamQuery {
    #[serde(rename = "threadId")]
    thread_id: Option<String>,
}

async fn upgrade(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorization = header("authorization");
    if let Some(token) = &state.require_bearer
        && authorization.as_deref() != Some(format!("Bearer {token}").as_str())
    {
        let _ = state.seen.send(Seen::Rejected(401));
        return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
    }
    let _ = state.seen.send(Seen::Upgrade {
        thread_id: query.thread_id.clone(),
        authorization,
        rbac_role: header("x-codex-rbac-role"),
    });
    ws.on_upgrade(move |socket| serve(socket, state, query.thread_id))
}

async fn serve(socket: WebSocket, state: Arc<ServerState>, thread_id: Option<String>) {
    let (mut tx, mut rx) = socket.split();
    let mut frames = state.frames.subscribe();
    let dropped = state.drop_sockets.lock().unwrap().clone();
    let ready = json!({"type": "ready", "threadId": thread_id}).to_string();
    if tx.send(WsMessage::Text(ready.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = dropped.cancelled() => return,
            frame = frames.recv() => {
                let Ok(frame) = frame else { return };
                if tx.send(WsMessage::Text(frame.into())).await.is_err() {
                    return;
                }
            }
            message = rx.next() => match message {
                Some(Ok(WsMessage::Text(text))) => {
                    let command: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    let reply = match command["type"].as_str() {
                        Some("ping") => json!({"type": "pong"}),
                        Some("subscribe") => json!({"type": "ready", "threadId": command["threadId"]}),
                        _ => json!({"type": "error", "message": "invalid websocket command"}),
                    };
                    let _ = state.seen.send(Seen::Command(command));
                    if tx.send(WsMessage::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(WsMessage::Close(_))) => {
                    let _ = state.seen.send(Seen::Closed { close_frame: true });
                    return;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    let _ = state.seen.send(Seen::Closed { close_frame: false });
                    return;
                }
            }
        }
    }
}

fn options(stop: &CancellationToken) -> StreamOptions {
    StreamOptions::new().backoff(BACKOFF.0, BACKOFF.1).stop(stop.clone())
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

fn tool_call_fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/codex-manager/ws-app_server-request-item-tool-call.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Routes ready frames and tool-call signals to channels.
fn tool_call_router() -> (
    Router,
    mpsc::UnboundedReceiver<(Frame, HandlerContext)>,
    mpsc::UnboundedReceiver<AppServerSignal>,
) {
    let (control_tx, control) = mpsc::unbounded_channel();
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router
        .on_control(move |frame, ctx| {
            if matches!(frame, Frame::Ready { .. }) {
                let _ = control_tx.send((frame, ctx));
            }
            async {}
        })
        .on_app_server_request("item.tool.call", move |signal, _ctx| {
            let _ = calls_tx.send(signal);
            async {}
        });
    (router, control, calls)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("nothing arrived in time")
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn auth_headers_thread_and_commands_reach_the_server() {
    let mut server = TestServer::start(Some("secret-token")).await;
    let client = StreamClient::new(server.config(Some("secret-token")));
    let (router, mut control, mut calls) = tool_call_router();
    let stop = CancellationToken::new();
    let interval = Duration::from_millis(50);
    let opts = options(&stop)
        .thread_id("01a20b39-6909-7682-9b44-1cd5afff9d3c")
        .ping_interval(interval)
        .pong_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let run = spawn_run(&client, router, opts);

    assert_eq!(
        server.next_seen().await,
        Seen::Upgrade {
            thread_id: Some("01a20b39-6909-7682-9b44-1cd5afff9d3c".into()),
            authorization: Some("Bearer secret-token".into()),
            rbac_role: Some("operator".into()),
        }
    );
    assert_eq!(
        server.next_seen().await,
        Seen::Command(json!({"type": "subscribe", "threadId": "01a20b39-6909-7682-9b44-1cd5afff9d3c"}))
    );
    // Two ready frames: one on connect, one answering the subscribe.
    for _ in 0..2 {
        let (frame, ctx) = next(&mut control).await;
        assert_eq!(
            frame,
            Frame::Ready {
                thread_id: Some("01a20b39-6909-7682-9b44-1cd5afff9d3c".into())
            }
        );
        assert_eq!(ctx.reconnect_count, 0);
    }

    server.emit(tool_call_fixture());
    let signal = next(&mut calls).await;
    assert_eq!(signal.request_id.as_deref(), Some("1"));
    assert_eq!(signal.params["tool"], "uppercase");

    // Connecting and subscribing took no time on the paused clock; pings go out on the interval and the
    // server's pongs keep the connection.
    for n in 1..=3 {
        assert_eq!(server.next_seen().await, Seen::Command(json!({"type": "ping"})));
        assert_eq!(started.elapsed(), interval * n, "ping {n} goes out on the interval");
    }
    let stats = client.stats();
    assert!(stats.connected());
    assert_eq!((stats.connects(), stats.pong_timeouts()), (1, 0));

    let report = stop_at_once(&stop, run).await;
    assert_eq!(
        server.next_seen_except_pings().await,
        Seen::Closed { close_frame: true }
    );
    assert_eq!(report.reconnects, 0);
    assert!(report.frames >= 4, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn reconnects_after_the_server_drops_every_socket() {
    let mut server = TestServer::start(None).await;
    let client = StreamClient::new(server.config(None));
    let (router, mut control, mut calls) = tool_call_router();
    let stop = CancellationToken::new();
    let run = spawn_run(&client, router, options(&stop));

    assert!(matches!(
        server.next_seen().await,
        Seen::Upgrade { thread_id: None, .. }
    ));
    assert_eq!(next(&mut control).await.1.reconnect_count, 0);

    server.drop_sockets();
    let dropped = Instant::now();
    assert!(matches!(
        server.next_seen().await,
        Seen::Upgrade { thread_id: None, .. }
    ));
    // The socket was healthy, so the backoff starts over at its first step.
    assert_backoff(dropped.elapsed(), BACKOFF.0, "reconnect after the drop");
    assert_eq!(next(&mut control).await.1.reconnect_count, 1);
    assert!(client.stats().last_error().is_some());

    // Events flow on the new socket.
    server.emit(tool_call_fixture());
    assert_eq!(next(&mut calls).await.request_id.as_deref(), Some("1"));

    let report = stop_at_once(&stop, run).await;
    assert_eq!((report.connects, report.reconnects), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_rejected_upgrade_is_retried_and_reported_without_the_token() {
    let mut server = TestServer::start(Some("right-token")).await;
    let client = StreamClient::new(server.config(Some("wrong-token")));
    let stop = CancellationToken::new();
    let run = spawn_run(&client, Router::new(), options(&stop));

    let mut rejected = Vec::new();
    for _ in 0..4 {
        assert_eq!(server.next_seen().await, Seen::Rejected(401));
        rejected.push(Instant::now());
    }
    // Each failed attempt doubles the backoff, up to its cap.
    assert_backoff(rejected[1] - rejected[0], BACKOFF.0, "first retry");
    assert_backoff(rejected[2] - rejected[1], BACKOFF.0 * 2, "second retry");
    assert_backoff(rejected[3] - rejected[2], BACKOFF.0 * 4, "third retry");
    let stats = client.stats();
    assert!(!stats.connected());
    let last_error = stats.last_error().unwrap();
    assert!(last_error.contains("401"), "{last_error}");
    assert!(!last_error.contains("wrong-token"), "{last_error}");
    assert!(!format!("{client:?}").contains("wrong-token"));

    let report = stop_at_once(&stop, run).await;
    assert_eq!(report.connects, 0);
    // The fourth rejection can only happen after the first three failures were recorded.
    assert!(report.connect_failures >= 3, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server_is_retried_until_stop() {
    // A port that was just free: connecting is refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = ManagerConfig::builder()
        .base_url(format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let client = StreamClient::new(config);
    let stop = CancellationToken::new();
    let run = spawn_run(&client, Router::new(), options(&stop));
    let stats = client.stats();
    // The failures are only seen in the counters: look at them every millisecond of the paused clock.
    let deadline = Instant::now() + WAIT;
    let mut failed = Vec::new();
    while failed.len() < 3 {
        assert!(Instant::now() < deadline, "no retries");
        if stats.connect_failures() > failed.len() as u64 {
            failed.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(stats.connect_failures(), 3, "one failure per millisecond at most");
    // Retried after the backoff, which doubles. Each failure is seen in the tick it happened or the next, so a
    // gap between two sightings is off by a millisecond at most.
    let ms = Duration::from_millis(1);
    for (n, nominal) in [(1, BACKOFF.0), (2, BACKOFF.0 * 2)] {
        let gap = failed[n] - failed[n - 1];
        assert!(
            gap + ms >= nominal / 2 && gap <= nominal + ms * 2,
            "retry {n}: {gap:?} after the failure before, expected a backoff of {:?}..={nominal:?}",
            nominal / 2
        );
    }
    assert!(stats.last_error().unwrap().contains("cannot connect"));
    stop_at_once(&stop, run).await;
}
