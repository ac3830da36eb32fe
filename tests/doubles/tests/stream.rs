//! The websocket: ready/pong/error frames, thread filtering, raw frames, dropping sockets and
//! bearer enforcement on the upgrade.

mod common;

use common::{WAIT, Ws};
use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;
use tokio_tungstenite::tungstenite;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn ready_pong_and_error_frames_match_the_fixtures() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut ws = Ws::try_connect(&double, None, None).await.unwrap();
    assert_eq!(
        ws.next().await,
        fixture(include_str!("../../fixtures/codex-manager/ws-ready-no-thread.json"))
    );

    ws.send(json!({"type": "ping"})).await;
    assert_eq!(
        ws.next().await,
        fixture(include_str!("../../fixtures/codex-manager/ws-pong.json"))
    );

    let error = fixture(include_str!(
        "../../fixtures/codex-manager/ws-error-invalid-command.json"
    ));
    for bad in ["not json", "{\"type\":\"dance\"}", "[1,2]", "{\"type\":\"subscribe\"}"] {
        ws.send_text(bad).await;
        assert_eq!(ws.next().await, error, "reply to {bad:?}");
    }
    // The socket survives bad commands.
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");
    assert_eq!(double.ws_received().len(), 6);
}

#[tokio::test]
async fn ready_names_the_thread_of_the_query() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut ws = Ws::try_connect(&double, Some("thread-a"), None).await.unwrap();
    assert_eq!(ws.next().await, json!({"type": "ready", "threadId": "thread-a"}));
}

#[tokio::test]
async fn a_filter_passes_its_thread_and_broadcasts_only() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut filtered = Ws::connect(&double, Some("a")).await;
    let mut everything = Ws::connect(&double, None).await;

    double.emit_event(Some("b"), "transcript_updated", json!({"n": 1}));
    double.emit_event(Some("a"), "transcript_updated", json!({"n": 2}));
    double.emit_event(None, "account_rate_limits_updated", json!({"n": 3}));

    let seen: Vec<Value> = filtered
        .frames_until_pong()
        .await
        .iter()
        .map(|f| f["payload"]["n"].clone())
        .collect();
    assert_eq!(seen, [json!(2), json!(3)]);
    let all = everything.frames_until_pong().await;
    assert_eq!(
        all.iter().map(|f| f["payload"]["n"].clone()).collect::<Vec<_>>(),
        [json!(1), json!(2), json!(3)]
    );
    assert_eq!(
        all[0],
        json!({"type": "transcript_updated", "threadId": "b", "payload": {"n": 1}})
    );
    assert_eq!(all[2]["threadId"], Value::Null);

    // subscribe moves the filter; unsubscribe removes it.
    everything.send(json!({"type": "subscribe", "threadId": "b"})).await;
    filtered.send(json!({"type": "unsubscribe"})).await;
    // A pong proves each command was applied before the next events.
    assert!(everything.frames_until_pong().await.is_empty());
    assert!(filtered.frames_until_pong().await.is_empty());
    double.emit_event(Some("a"), "x", json!({"n": 4}));
    double.emit_event(Some("b"), "x", json!({"n": 5}));
    let seen: Vec<Value> = everything
        .frames_until_pong()
        .await
        .iter()
        .map(|f| f["payload"]["n"].clone())
        .collect();
    assert_eq!(seen, [json!(5)]);
    let seen: Vec<Value> = filtered
        .frames_until_pong()
        .await
        .iter()
        .map(|f| f["payload"]["n"].clone())
        .collect();
    assert_eq!(seen, [json!(4), json!(5)]);
}

#[tokio::test]
async fn raw_frames_reach_every_socket_verbatim() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut filtered = Ws::connect(&double, Some("a")).await;
    double.emit_raw("{not json");
    assert_eq!(filtered.next_text().await, "{not json");
}

#[tokio::test]
async fn events_without_a_socket_are_lost() {
    let double = CodexManagerDouble::start().await.unwrap();
    double.emit_event(None, "lost", json!({}));
    let mut ws = Ws::connect(&double, None).await;
    double.emit_event(None, "kept", json!({}));
    assert_eq!(ws.next().await["type"], "kept");
}

#[tokio::test]
async fn drop_sockets_closes_every_socket_and_counts_reconnects() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut first = Ws::connect(&double, None).await;
    let mut second = Ws::connect(&double, Some("a")).await;
    assert!(double.wait_for_sockets(2, WAIT).await);
    assert_eq!(double.socket_count(), 2);

    assert_eq!(double.drop_sockets(), 2);
    assert_eq!(double.socket_count(), 0);
    // Dropped without a close handshake, like a server that went away.
    assert!(first.end().await.is_some());
    assert!(second.end().await.is_some());

    let _again = Ws::connect(&double, None).await;
    assert!(double.wait_for_sockets(1, WAIT).await);
}

#[tokio::test]
async fn pongs_can_be_silenced() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut ws = Ws::connect(&double, None).await;
    double.set_pong_enabled(false);
    ws.send(json!({"type": "ping"})).await;
    // The ping is read and ignored: the next frame is the event emitted after it was received.
    assert!(common::eventually(|| double.ws_received().len() == 1).await);
    double.emit_event(None, "after", json!({}));
    assert_eq!(ws.next().await["type"], "after");
    double.set_pong_enabled(true);
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");
}

#[tokio::test]
async fn the_upgrade_needs_the_bearer_when_configured() {
    let double = CodexManagerDouble::builder()
        .require_bearer("tok")
        .start()
        .await
        .unwrap();
    match Ws::try_connect(&double, None, None).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        Err(other) => panic!("expected a 401 response, got {other}"),
        Ok(_) => panic!("connected without a token"),
    }
    assert!(
        matches!(Ws::try_connect(&double, None, Some("bad")).await, Err(tungstenite::Error::Http(r)) if r.status() == 401)
    );
    assert_eq!(double.socket_count(), 0);
    let mut ws = Ws::try_connect(&double, None, Some("tok")).await.unwrap();
    assert_eq!(ws.next().await["type"], "ready");
}

#[tokio::test]
async fn shutdown_closes_sockets_and_stops_listening() {
    let double = CodexManagerDouble::start().await.unwrap();
    let addr = double.addr();
    let mut ws = Ws::connect(&double, None).await;
    double.shutdown().await;
    assert!(ws.end().await.is_some());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

// On the paused clock: the server stops in tasks of this runtime, so only the runtime's progress matters, not how
// many milliseconds a loaded machine needs for it.
#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_stops_the_server() {
    let double = CodexManagerDouble::start().await.unwrap();
    let addr = double.addr();
    let clone = double.clone();
    drop(double);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_ok(),
        "a clone keeps it running"
    );
    drop(clone);
    let mut stopped = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(stopped, "the listener closes once the last handle is gone");
}
