//! The floor client: the least work that can answer a tool call, to measure what the double itself allows.
//!
//! It connects `ws://<base>/api/stream?threadId=<thread>`, prints `ready` when the `ready` frame arrives, and for
//! every `app_server.request.item.tool.call` frame POSTs a canned answer to
//! `/api/tool-calls/:requestId/response` on a task of its own, over one keep-alive HTTP client. Nothing else: no
//! skill, no pending-call listing, no retries, no deduplication. It exits when the socket closes (or on SIGTERM).
//!
//! Usage: `bench-floor <base-url> <thread-id>`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const TOOL_CALL: &str = "app_server.request.item.tool.call";
const ANSWER: &str = r#"{"contentItems":[{"type":"inputText","text":"ok"}],"success":true}"#;

/// Only the fields the floor needs; serde skips the rest of the frame without building it. A frame whose payload
/// is not an object fails to parse and is skipped, which is fine: tool-call payloads are objects.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    #[serde(default)]
    request_id: Option<Value>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, thread] = args.as_slice() else {
        eprintln!("usage: bench-floor <base-url> <thread-id>");
        return ExitCode::from(2);
    };
    let base = base.trim_end_matches('/').to_owned();
    let ws_url = format!("{}/api/stream?threadId={thread}", base.replacen("http", "ws", 1));
    let (socket, _) = match tokio_tungstenite::connect_async(ws_url.as_str()).await {
        Ok(connected) => connected,
        Err(error) => {
            eprintln!("bench-floor: cannot connect {ws_url}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let http = reqwest::Client::new();
    let failures = Arc::new(AtomicU64::new(0));
    let (_sink, mut frames) = socket.split();
    while let Some(message) = frames.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(error) => {
                eprintln!("bench-floor: stream error: {error}");
                break;
            }
        };
        let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(text.as_str()) else {
            continue;
        };
        if envelope.kind == "ready" {
            let mut stdout = std::io::stdout();
            let _ = writeln!(stdout, "ready").and_then(|()| stdout.flush());
            continue;
        }
        if envelope.kind != TOOL_CALL {
            continue;
        }
        let request_id = match envelope.payload.and_then(|p| p.request_id) {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s,
            _ => continue,
        };
        let url = format!("{base}/api/tool-calls/{request_id}/response");
        let http = http.clone();
        let failures = Arc::clone(&failures);
        tokio::spawn(async move {
            let sent = http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(ANSWER)
                .send()
                .await;
            let ok = match sent {
                Ok(response) => {
                    let status = response.status();
                    // Reading the body lets the connection go back to the pool.
                    response.bytes().await.is_ok() && status.is_success()
                }
                Err(_) => false,
            };
            if !ok && failures.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("bench-floor: answering {request_id} failed");
            }
        });
    }
    ExitCode::SUCCESS
}
