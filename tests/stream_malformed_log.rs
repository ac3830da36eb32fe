//! Malformed frames from a hostile or broken peer: each is counted by kind, the first of each kind is logged at warn
//! with the reason, and after that at most one warn line per kind a minute, carrying the count since the last one.
//!
//! The stream runs over in-memory channels on Tokio's paused clock, so the minute passes exactly and at once.

mod captured_logs;

use std::time::Duration;

use captured_logs::CapturedLogs;
use futures::channel::mpsc as fmpsc;
use serde_json::json;
use skillbridge::manager::ManagerConfig;
use skillbridge::stream::{ConnectError, ConnectRequest, Connection, Message, Router, StreamClient, StreamOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Fail-safe bound of every wait (on the paused clock it only passes when something is stuck).
const WAIT: Duration = Duration::from_secs(600);

/// The warn lines about malformed frames, taken out of the capture.
fn take_warnings(logs: &CapturedLogs) -> Vec<String> {
    logs.take()
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("malformed"))
        .map(str::to_owned)
        .collect()
}

/// A tool-call signal whose arguments nest `depth` arrays deep.
fn deep_call(depth: usize) -> String {
    let arguments = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    format!(
        r#"{{"type":"app_server.request.item.tool.call","threadId":"t1","payload":{{"method":"item/tool/call","requestId":9,"params":{{"threadId":"t1","tool":"echo","arguments":{{"a":{arguments}}}}}}}}}"#
    )
}

#[tokio::test(start_paused = true)]
async fn malformed_frames_are_counted_by_kind_and_logged_once_a_minute_per_kind() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::INFO);
    let (servers_tx, mut servers) = mpsc::unbounded_channel();
    let connector = move |_request: ConnectRequest| {
        let servers = servers_tx.clone();
        async move {
            let (client_tx, _from_client) = fmpsc::unbounded::<Message>();
            let (to_client, client_rx) = fmpsc::unbounded::<Result<Message, String>>();
            servers.send(to_client).map_err(|_| ConnectError::Unreachable {
                url: "memory".into(),
                message: "test over".into(),
            })?;
            Ok(Connection::new(client_tx, client_rx))
        }
    };
    let config = ManagerConfig::builder().build().unwrap();
    let client = StreamClient::with_connector(config, connector);
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router.on_event("marker", move |event, _ctx| {
        let _ = seen_tx.send(event.payload["n"].as_u64().unwrap());
        async {}
    });
    router.on_app_server_request("item.tool.call", |_signal, _ctx| async {});
    let stop = CancellationToken::new();
    let options = StreamOptions::new()
        .ping_interval(Duration::from_secs(3600))
        .pong_timeout(Duration::from_secs(3600))
        .stop(stop.clone());
    let run = tokio::spawn({
        let client = client.clone();
        async move { client.run(router, options).await }
    });
    let server = tokio::time::timeout(WAIT, servers.recv()).await.unwrap().unwrap();
    let send = |text: String| server.unbounded_send(Ok(Message::text(text))).unwrap();
    // Frames are read in order: once a marker after them reached its handler, they were all read.
    let mut marker = 0;
    let mut sync = async |send: &dyn Fn(String)| {
        marker += 1;
        send(json!({"type": "marker", "payload": {"n": marker}}).to_string());
        let n = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
        assert_eq!(n, marker);
    };

    for _ in 0..3 {
        send("not json".into());
    }
    send("[1]".into());
    send(deep_call(200));
    sync(&send).await;
    let first = take_warnings(&logs);
    assert_eq!(first.len(), 3, "one line per kind at once:\n{}", first.join("\n"));
    assert!(
        first[0].contains("kind=\"not_json\"") && first[0].contains("not valid JSON"),
        "{}",
        first[0]
    );
    assert!(first[1].contains("kind=\"not_an_object\""), "{}", first[1]);
    assert!(
        first[2].contains("kind=\"too_deep\"")
            && first[2].contains("nests deeper than the 128 levels")
            && first[2].contains("app_server.request.item.tool.call"),
        "the reason and the start of the frame: {}",
        first[2]
    );
    // A call nested just shallow enough is no malformed frame.
    send(deep_call(122));
    sync(&send).await;
    assert!(take_warnings(&logs).is_empty());

    // Within the minute: counted, not logged at warn.
    tokio::time::sleep(Duration::from_secs(59)).await;
    send("still not json".into());
    sync(&send).await;
    assert!(take_warnings(&logs).is_empty());

    // A minute after the first line: one line with the count since (two quiet ones, and this one).
    tokio::time::sleep(Duration::from_secs(1)).await;
    send("not json again".into());
    send("and again".into());
    sync(&send).await;
    let again = take_warnings(&logs);
    assert_eq!(again.len(), 1, "{}", again.join("\n"));
    assert!(
        again[0].contains("kind=\"not_json\"") && again[0].contains("count=4") && again[0].contains("4 of this kind"),
        "{}",
        again[0]
    );

    let stats = client.stats();
    let by_kind = stats.malformed_frames_by_kind();
    let count = |kind: &str| by_kind.iter().find(|(k, _)| *k == kind).unwrap().1;
    assert_eq!(
        (
            count("not_json"),
            count("not_an_object"),
            count("too_deep"),
            count("missing_type")
        ),
        (6, 1, 1, 0)
    );
    assert_eq!(stats.malformed_frames(), 8);
    assert_eq!(stats.connects(), 1, "malformed frames cost no connection");
    stop.cancel();
    tokio::time::timeout(WAIT, run).await.unwrap().unwrap().unwrap();
}
