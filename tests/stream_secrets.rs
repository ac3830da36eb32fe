//! No credential reaches a log line, even in a program that forwards the `log` crate's records (as `tracing-log`
//! or `env_logger` do) at trace level: tungstenite, reqwest and hyper log through `log`, and tungstenite's own client
//! handshake logs the whole upgrade request, `Authorization` included. The bridge's stream writes its upgrade
//! request itself, so with every record of every crate captured, the tokens never show.
//!
//! One test in this binary: the `log` logger is process-wide.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use skillbridge::manager::{CodexManager, ManagerConfig};
use skillbridge::stream::{Router, StreamClient, StreamOptions};
use skillbridge_doubles::CodexManagerDouble;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const BEARER: &str = "bearer-s3cret-4f1c";
const RBAC: &str = "rbac-s3cret-9a2e";

/// Every `log` record, formatted with its arguments.
#[derive(Clone, Default)]
struct LogRecords(Arc<Mutex<String>>);

impl log::Log for LogRecords {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}\n", record.level(), record.target(), record.args());
        self.0.lock().unwrap().push_str(&line);
    }

    fn flush(&self) {}
}

/// Every `tracing` event of this thread, at trace level.
#[derive(Clone, Default)]
struct TracingEvents(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for TracingEvents {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_never_reach_log_or_tracing_records_at_trace_level() {
    let records = LogRecords::default();
    log::set_logger(Box::leak(Box::new(records.clone()))).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let events = TracingEvents::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer({
                let events = events.clone();
                move || events.clone()
            })
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish(),
    );

    let double = CodexManagerDouble::builder()
        .require_bearer(BEARER)
        .start()
        .await
        .unwrap();
    let config = ManagerConfig::builder()
        .base_url(double.base_url())
        .bearer_token(BEARER)
        .rbac(Some(RBAC.into()), Some("operator".into()), None)
        .build()
        .unwrap();
    let thread = double.create_session(vec![]);

    // The stream: upgrade with the tokens, frames both ways.
    let client = StreamClient::new(config.clone());
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router.on_app_server_request("item.tool.call", move |signal, _ctx| {
        let _ = calls_tx.send(signal.request_id);
        async {}
    });
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let client = client.clone();
        let options = StreamOptions::new().thread_id(&thread).stop(stop.clone());
        async move { client.run(router, options).await }
    });
    assert!(
        double.wait_for_sockets(1, WAIT).await,
        "the stream connects with the bearer token"
    );
    let id = double.inject_tool_call(&thread, "echo", json!({"text": "hi"}));
    let seen = tokio::time::timeout(WAIT, calls.recv()).await.unwrap().unwrap();
    assert_eq!(seen.as_deref(), Some(id.as_str()));

    // REST with the same headers.
    let cm = CodexManager::new(config).unwrap();
    assert_eq!(cm.list_tool_calls(&thread).await.unwrap().len(), 1);

    stop.cancel();
    tokio::time::timeout(WAIT, run).await.unwrap().unwrap().unwrap();
    double.shutdown().await;

    let records = records.0.lock().unwrap().clone();
    let events = String::from_utf8_lossy(&events.0.lock().unwrap()).into_owned();
    // The capture works: tungstenite logged the frames, hyper its connections.
    assert!(
        records.contains("tungstenite"),
        "no tungstenite record captured:\n{records}"
    );
    assert!(events.contains("hyper_util"), "no hyper event captured:\n{events}");
    for secret in [BEARER, RBAC] {
        assert!(!records.contains(secret), "a `log` record holds a token:\n{records}");
        assert!(!events.contains(secret), "a tracing event holds a token:\n{events}");
    }
}
