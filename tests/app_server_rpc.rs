//! The app-server JSON-RPC layer over an in-memory pipe: ids, response routing, server-started messages,
//! malformed input, and the connection ending.

mod captured_logs;

use std::time::Duration;

use captured_logs::CapturedLogs;
use serde_json::{Value, json};
use skillbridge::upstream::app_server::rpc::{
    Incoming, MAX_LINE_BYTES, Notification, RpcConnection, RpcError, ServerRequest,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf};
use tokio::sync::mpsc::UnboundedReceiver;

const STEP: Duration = Duration::from_secs(5);

/// The server end of the pipe, as the test drives it.
struct FakeServer {
    lines: Lines<BufReader<ReadHalf<DuplexStream>>>,
    writer: WriteHalf<DuplexStream>,
}

impl FakeServer {
    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(STEP, self.lines.next_line())
            .await
            .expect("the client wrote nothing")
            .unwrap()
            .expect("the client closed the pipe");
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("client wrote invalid JSON {line:?}: {error}"))
    }

    async fn read_raw(&mut self) -> String {
        tokio::time::timeout(STEP, self.lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }

    async fn write(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
    }

    async fn send(&mut self, message: Value) {
        self.write(&message.to_string()).await;
    }
}

fn connect() -> (RpcConnection, UnboundedReceiver<Incoming>, FakeServer) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (our_read, our_write) = tokio::io::split(ours);
    let (rpc, incoming) = RpcConnection::new(our_read, our_write);
    let (their_read, their_write) = tokio::io::split(theirs);
    let server = FakeServer {
        lines: BufReader::new(their_read).lines(),
        writer: their_write,
    };
    (rpc, incoming, server)
}

async fn next_incoming(incoming: &mut UnboundedReceiver<Incoming>) -> Option<Incoming> {
    tokio::time::timeout(STEP, incoming.recv())
        .await
        .expect("nothing arrived")
}

#[tokio::test]
async fn each_response_reaches_the_request_with_its_id_even_out_of_order() {
    let (rpc, _incoming, mut server) = connect();
    let first = tokio::spawn({
        let rpc = rpc.clone();
        async move { rpc.request("thread/start", json!({"cwd": "/a"})).await }
    });
    let one = server.read().await;
    let second = tokio::spawn({
        let rpc = rpc.clone();
        async move { rpc.request("turn/start", json!({"threadId": "t"})).await }
    });
    let two = server.read().await;

    assert_eq!(one["method"], "thread/start");
    assert_eq!(one["params"], json!({"cwd": "/a"}));
    assert!(
        one.get("jsonrpc").is_none(),
        "app-server messages carry no jsonrpc field: {one}"
    );
    assert!(one["id"].is_u64() && two["id"].is_u64());
    assert_ne!(one["id"], two["id"]);

    server
        .send(json!({"id": two["id"], "result": {"turn": {"id": "u"}}}))
        .await;
    server
        .send(json!({"id": one["id"], "result": {"thread": {"id": "t"}}}))
        .await;
    assert_eq!(second.await.unwrap().unwrap(), json!({"turn": {"id": "u"}}));
    assert_eq!(first.await.unwrap().unwrap(), json!({"thread": {"id": "t"}}));
}

#[tokio::test]
async fn an_error_response_fails_the_request_with_the_servers_message() {
    let (rpc, _incoming, mut server) = connect();
    let request = tokio::spawn(async move { rpc.request("thread/start", json!({})).await });
    let sent = server.read().await;
    server
        .send(json!({"id": sent["id"], "error": {"code": -32600, "message": "cwd is required"}}))
        .await;

    match request.await.unwrap() {
        Err(RpcError::Server { method, error }) => {
            assert_eq!(method, "thread/start");
            assert_eq!(error.code, -32600);
            assert_eq!(error.message, "cwd is required");
        }
        other => panic!("expected the server's error, got {other:?}"),
    }
}

#[tokio::test]
async fn server_requests_and_notifications_arrive_in_order_and_are_answered_with_their_raw_ids() {
    let (rpc, mut incoming, mut server) = connect();
    server
        .send(json!({"method": "item/tool/call", "id": 0, "params": {"tool": "echo"}}))
        .await;
    server
        .send(json!({"method": "warning", "params": {"message": "careful"}}))
        .await;
    server.send(json!({"method": "custom/ask", "id": "req-7"})).await;

    let Some(Incoming::Request(tool_call)) = next_incoming(&mut incoming).await else {
        panic!("expected the tool call request first");
    };
    assert_eq!(
        tool_call,
        ServerRequest {
            id: json!(0),
            method: "item/tool/call".into(),
            params: json!({"tool": "echo"})
        }
    );
    assert_eq!(tool_call.id_string(), "0");
    assert_eq!(
        next_incoming(&mut incoming).await,
        Some(Incoming::Notification(Notification {
            method: "warning".into(),
            params: json!({"message": "careful"})
        }))
    );
    let Some(Incoming::Request(ask)) = next_incoming(&mut incoming).await else {
        panic!("expected the string-id request");
    };
    assert_eq!(ask.id_string(), "req-7");
    assert_eq!(ask.params, Value::Null);

    rpc.respond(&tool_call.id, json!({"success": true})).await.unwrap();
    rpc.respond_error(&ask.id, -32601, "skillbridge does not handle custom/ask")
        .await
        .unwrap();
    assert_eq!(server.read().await, json!({"id": 0, "result": {"success": true}}));
    assert_eq!(
        server.read().await,
        json!({"id": "req-7", "error": {"code": -32601, "message": "skillbridge does not handle custom/ask"}})
    );
}

#[tokio::test]
async fn a_notification_without_params_is_sent_without_the_field() {
    let (rpc, _incoming, mut server) = connect();
    rpc.notify("initialized", None).await.unwrap();
    assert_eq!(server.read_raw().await, r#"{"method":"initialized"}"#);
}

#[tokio::test]
async fn malformed_lines_are_skipped_with_a_log_and_the_stream_goes_on() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::DEBUG);
    let (_rpc, mut incoming, mut server) = connect();

    server.write("this is not json").await;
    server.write("[1, 2, 3]").await;
    server.write("").await;
    server.send(json!({"result": "orphan"})).await;
    server
        .send(json!({"method": "turn/started", "params": {"turn": {"id": "u"}}}))
        .await;

    let Some(Incoming::Notification(notification)) = next_incoming(&mut incoming).await else {
        panic!("the valid notification after the bad lines did not arrive");
    };
    assert_eq!(notification.method, "turn/started");
    let logs = logs.text();
    assert!(
        logs.contains("not a JSON object") && logs.contains("this is not json"),
        "{logs}"
    );
    assert!(logs.contains("[1, 2, 3]"), "{logs}");
    assert!(logs.contains("without method or id"), "{logs}");
}

#[tokio::test]
async fn an_over_long_line_is_skipped_without_losing_the_next_message() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::DEBUG);
    let (_rpc, mut incoming, mut server) = connect();

    let writer = tokio::spawn(async move {
        let huge = format!(r#"{{"method":"big","params":"{}"}}"#, "x".repeat(MAX_LINE_BYTES));
        server.write(&huge).await;
        server.send(json!({"method": "after"})).await;
        server
    });
    let Some(Incoming::Notification(notification)) = next_incoming(&mut incoming).await else {
        panic!("the message after the over-long line did not arrive");
    };
    assert_eq!(notification.method, "after");
    writer.await.unwrap();
    assert!(logs.text().contains("over-long line"), "{}", logs.text());
}

#[tokio::test]
async fn when_the_server_goes_away_waiting_and_later_requests_fail_closed_and_the_stream_ends() {
    let (rpc, mut incoming, mut server) = connect();
    let waiting = tokio::spawn({
        let rpc = rpc.clone();
        async move { rpc.request("turn/start", json!({})).await }
    });
    server.read().await;
    drop(server);

    assert!(matches!(waiting.await.unwrap(), Err(RpcError::Closed)));
    assert_eq!(next_incoming(&mut incoming).await, None);
    assert!(rpc.is_closed());
    assert!(matches!(
        rpc.request("turn/start", json!({})).await,
        Err(RpcError::Closed)
    ));
}

#[tokio::test]
async fn after_close_nothing_more_is_written_and_the_server_sees_end_of_input() {
    let (rpc, _incoming, mut server) = connect();
    rpc.close().await;
    assert!(matches!(rpc.notify("initialized", None).await, Err(RpcError::Closed)));
    let end = tokio::time::timeout(STEP, server.lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, None, "the server should read end of input");
}
