//! The double as its own process: the first stdout line, the `/_double/` controls, bearer
//! enforcement, and a burst driven over HTTP.

mod common;

use std::process::Stdio;

use common::WAIT;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A running double process, killed when dropped.
struct Process {
    _child: Child,
    base: String,
}

async fn spawn(extra: &[&str]) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_codex-manager-double"))
        .args(["--port", "0"])
        .args(extra)
        .env_remove("CODEX_MANAGER_DOUBLE_BEARER")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let first = tokio::time::timeout(WAIT, BufReader::new(stdout).lines().next_line())
        .await
        .expect("a first line within the wait")
        .expect("readable stdout")
        .expect("a first line");
    let base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    Process { _child: child, base }
}

async fn call(method: reqwest::Method, url: String, bearer: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url).timeout(WAIT);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the process answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn controls_work_over_http_and_secrets_stay_hidden() {
    let process = spawn(&["--bearer", "tok"]).await;
    let base = &process.base;
    let (status, created) = call(
        reqwest::Method::POST,
        format!("{base}/_double/sessions"),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let thread = created["sessionId"].as_str().unwrap().to_owned();

    let (status, _) = call(
        reqwest::Method::GET,
        format!("{base}/api/sessions/{thread}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 401, "the api needs the bearer");
    let (status, _) = call(
        reqwest::Method::GET,
        format!("{base}/api/sessions/{thread}"),
        Some("tok"),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let injected = json!({"threadId": thread, "tool": "uppercase", "arguments": {"text": "x"}});
    let (_, call_id) = call(
        reqwest::Method::POST,
        format!("{base}/_double/tool-calls"),
        None,
        Some(injected),
    )
    .await;
    assert_eq!(call_id["requestId"], "0");
    let (_, pending) = call(
        reqwest::Method::GET,
        format!("{base}/_double/pending?threadId={thread}"),
        None,
        None,
    )
    .await;
    assert_eq!(pending["data"][0]["tool"], "uppercase");

    call(
        reqwest::Method::POST,
        format!("{base}/_double/fail-next"),
        None,
        Some(json!({"n": 1})),
    )
    .await;
    let respond = format!("{base}/api/tool-calls/0/response");
    assert_eq!(
        call(
            reqwest::Method::POST,
            respond.clone(),
            Some("tok"),
            Some(json!({"text": "X"}))
        )
        .await
        .0,
        500
    );
    assert_eq!(
        call(reqwest::Method::POST, respond, Some("tok"), Some(json!({"text": "X"})))
            .await
            .0,
        200
    );
    let (_, responses) = call(reqwest::Method::GET, format!("{base}/_double/responses/0"), None, None).await;
    assert_eq!(responses["data"].as_array().unwrap().len(), 2);

    let (_, received) = call(reqwest::Method::GET, format!("{base}/_double/received"), None, None).await;
    let text = received.to_string();
    assert!(
        text.contains("<redacted>") && !text.contains("tok\""),
        "admin output hides the token: {text}"
    );
}

#[tokio::test]
async fn a_burst_over_http_reports_latency() {
    let process = spawn(&["--no-record"]).await;
    let base = process.base.clone();
    let (_, created) = call(
        reqwest::Method::POST,
        format!("{base}/_double/sessions"),
        None,
        Some(json!({})),
    )
    .await;
    let thread = created["sessionId"].as_str().unwrap().to_owned();

    let ws_url = format!("{}/api/stream?threadId={thread}", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.into_client_request().unwrap())
        .await
        .unwrap();
    let answerer = {
        let base = base.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut answered = 0;
            while answered < 30 {
                let message = tokio::time::timeout(WAIT, ws.next()).await.expect("frames keep coming");
                let Some(Ok(Message::Text(text))) = message else {
                    panic!("socket ended: {message:?}")
                };
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if frame["type"] == "app_server.request.item.tool.call" {
                    let id = frame["payload"]["requestId"].as_u64().unwrap();
                    let url = format!("{base}/api/tool-calls/{id}/response");
                    let response = client.post(url).json(&json!({"text": "ok"})).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    answered += 1;
                }
            }
            ws.close(None).await.ok();
        })
    };
    let spec =
        json!({"threadId": thread, "tool": "echo", "arguments": {}, "count": 30, "outstanding": 3, "timeoutMs": 5000});
    let (status, report) = call(reqwest::Method::POST, format!("{base}/_double/burst"), None, Some(spec)).await;
    answerer.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(report["count"], 30);
    assert_eq!(report["answered"], 30);
    assert_eq!(report["timed_out"], false);
    assert!(report["latency_us"]["p50"].as_u64().unwrap() > 0);
    assert!(report["calls_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["elapsed_ms"].is_u64());
}

#[tokio::test]
async fn restart_and_misdeliveries_are_controlled_over_http() {
    let process = spawn(&["--check-answer-identity"]).await;
    let base = &process.base;
    let post = |path: &str, body: Value| call(reqwest::Method::POST, format!("{base}{path}"), None, Some(body));
    let (_, created) = post("/_double/sessions", json!({})).await;
    let thread = created["sessionId"].as_str().unwrap().to_owned();
    let injected = json!({"threadId": thread, "tool": "echo", "arguments": {"text": "old"}});
    let (_, old) = post("/_double/tool-calls", injected).await;
    assert_eq!(old, json!({"requestId": "0", "callId": "call_0"}));

    let (status, report) = post("/_double/restart", json!({})).await;
    assert_eq!(status, 200, "the restart request's own connection is spared");
    assert_eq!(report["callsForgotten"], 1);
    assert_eq!(report["sessionsLost"], 0);
    let (_, new) = post(
        "/_double/tool-calls",
        json!({"threadId": thread, "tool": "echo", "arguments": {"text": "new"}}),
    )
    .await;
    assert_eq!(new, json!({"requestId": "0", "callId": "call_1"}));
    let stale = json!({"text": r#"{"call_id":"call_0","text":"old"}"#});
    assert_eq!(post("/api/tool-calls/0/response", stale).await.0, 200);
    let (_, misdelivered) = call(reqwest::Method::GET, format!("{base}/_double/misdelivered"), None, None).await;
    assert_eq!(
        misdelivered,
        json!({"data": [{"requestId": "0", "expectedCallId": "call_1", "answerText": r#"{"call_id":"call_0","text":"old"}"#}]})
    );

    let (status, report) = post("/_double/restart", json!({"loseSessions": true})).await;
    assert_eq!(status, 200);
    assert_eq!(report["sessionsLost"], 1);
    let (status, body) = call(
        reqwest::Method::GET,
        format!("{base}/api/sessions/{thread}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (404, json!({"status": "not_found", "sessionId": thread}))
    );
}
