//! Hooks and errors of the manager client, observed on the wire: hook order, a `before` hook changing
//! the request the server sees, `on_error` on error statuses and transport failures, typed errors,
//! auth headers from an env-style configuration, and logs free of secrets.

mod manager_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use skillbridge::manager::{
    CallResponse, CodexManager, HookError, ManagerConfig, ManagerError, Middleware, RequestCall, SendMessage,
};

use manager_support::{Reply, Stub, closed_port};

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

struct Recorder {
    name: &'static str,
    log: Log,
}

impl Middleware for Recorder {
    fn before(&self, call: &mut RequestCall) -> Result<(), HookError> {
        push(&self.log, format!("{}:before:{}", self.name, call.operation));
        Ok(())
    }
    fn after(&self, call: &RequestCall, response: &CallResponse) {
        push(
            &self.log,
            format!("{}:after:{}:{}", self.name, call.operation, response.status.as_u16()),
        );
    }
    fn on_error(&self, call: &RequestCall, error: &ManagerError) {
        push(
            &self.log,
            format!("{}:on_error:{}:{:?}", self.name, call.operation, error.status()),
        );
    }
}

#[tokio::test]
async fn hooks_run_wildcards_first_then_exact_each_in_registration_order() {
    let stub = Stub::start().await;
    let log = Log::default();
    let mut cm = CodexManager::builder()
        .config(stub.config().build().unwrap())
        .before("sessions.get", {
            let log = log.clone();
            move |_call| push(&log, "exact-1")
        })
        .middleware(Recorder {
            name: "mw",
            log: log.clone(),
        })
        .build()
        .unwrap();
    cm.before("*", {
        let log = log.clone();
        move |_call| push(&log, "star-2")
    });
    cm.before_async("sessions.get", {
        let log = log.clone();
        move |_call| {
            let log = log.clone();
            Box::pin(async move {
                tokio::task::yield_now().await;
                push(&log, "exact-2-async");
                Ok(())
            })
        }
    });
    cm.before("sessions.delete", {
        let log = log.clone();
        move |_call| push(&log, "other-operation")
    });
    cm.after("sessions.get", {
        let log = log.clone();
        move |_call, _response| push(&log, "exact-after")
    });
    cm.after("*", {
        let log = log.clone();
        move |_call, _response| push(&log, "star-after")
    });

    stub.reply_json(200, json!({"session": {}}));
    cm.get_session("s1").await.unwrap();
    assert_eq!(
        entries(&log),
        [
            "mw:before:sessions.get",
            "star-2",
            "exact-1",
            "exact-2-async",
            "mw:after:sessions.get:200",
            "star-after",
            "exact-after",
        ]
    );
}

#[tokio::test]
async fn before_hooks_change_the_request_the_server_sees() {
    let stub = Stub::start().await;
    let mut cm = CodexManager::new(stub.config().build().unwrap()).unwrap();
    cm.before("*", |call| {
        call.headers.insert("x-trace-id", "trace-42".parse().unwrap());
    });
    cm.before("sessions.send_message", |call| {
        if let Some(Value::Object(body)) = call.json_body.as_mut() {
            body.insert("effort".into(), json!("high"));
        }
    });
    cm.before_async("sessions.send_message", |call| {
        Box::pin(async move {
            let text = call
                .json_body
                .as_ref()
                .and_then(|b| b["text"].as_str())
                .unwrap_or_default();
            let upper = text.to_uppercase();
            call.json_body.as_mut().unwrap()["text"] = json!(upper);
            Ok(())
        })
    });

    stub.reply_fixture("rest-sessions-send-message-202.json");
    cm.send_message("s1", &SendMessage::new("hello")).await.unwrap();
    let received = stub.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].headers["x-trace-id"], "trace-42");
    assert_eq!(received[0].body, Some(json!({"text": "HELLO", "effort": "high"})));
    assert_eq!(received[0].path, "/api/sessions/s1/messages");
}

#[tokio::test]
async fn a_failing_before_hook_aborts_without_sending_and_reaches_on_error() {
    let stub = Stub::start().await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut cm = CodexManager::new(stub.config().build().unwrap()).unwrap();
    cm.before("tool_calls.respond", |_call| -> Result<(), String> {
        Err("read-only mode".into())
    });
    cm.on_error("*", {
        let seen = seen.clone();
        move |call, error| push(&seen, format!("{} {error}", call.operation))
    });

    let err = cm
        .respond_tool_call("3", &skillbridge::ToolResult::text("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ManagerError::Hook { message, .. } if message == "read-only mode"),
        "{err:?}"
    );
    assert_eq!(err.operation(), "tool_calls.respond");
    assert!(!err.is_retryable());
    assert!(stub.received().is_empty(), "nothing may be sent");
    assert_eq!(
        entries(&seen),
        ["tool_calls.respond tool_calls.respond: hook failed: read-only mode"]
    );
}

#[tokio::test]
async fn on_error_sees_server_errors_with_their_status_and_body() {
    let stub = Stub::start().await;
    let log = Log::default();
    let cm = CodexManager::builder()
        .config(stub.config().build().unwrap())
        .middleware(Recorder {
            name: "mw",
            log: log.clone(),
        })
        .build()
        .unwrap();
    let body = json!({"status": "error", "requestId": "5"});
    stub.reply_json(500, body.clone());
    let err = cm
        .respond_tool_call("5", &skillbridge::ToolResult::text("x"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(err.body(), Some(&body));
    assert!(err.is_retryable() && !err.is_already_answered());
    assert_eq!(
        entries(&log),
        [
            "mw:before:tool_calls.respond",
            "mw:on_error:tool_calls.respond:Some(500)"
        ],
        "after hooks do not run for a failed call"
    );
}

#[tokio::test]
async fn on_error_sees_transport_failures() {
    let config = ManagerConfig::builder()
        .base_url(format!("http://127.0.0.1:{}", closed_port()))
        .build()
        .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut cm = CodexManager::new(config).unwrap();
    cm.on_error("sessions.tool_calls.list", {
        let seen = seen.clone();
        move |call, error| {
            let kind = if matches!(error, ManagerError::Transport { .. }) {
                "transport"
            } else {
                "other"
            };
            push(&seen, format!("{} {kind}", call.operation));
        }
    });
    let err = cm.list_tool_calls("s").await.unwrap_err();
    assert!(matches!(err, ManagerError::Transport { .. }), "{err:?}");
    assert!(err.is_retryable() && !err.is_timeout());
    assert!(
        err.to_string()
            .starts_with("sessions.tool_calls.list: request to codex-manager failed"),
        "{err}"
    );
    assert_eq!(entries(&seen), ["sessions.tool_calls.list transport"]);
}

// On the paused clock (the stub answers on loopback inside this runtime): the request gives up exactly at the
// configured timeout, not at the 30 s default.
#[tokio::test(start_paused = true)]
async fn a_silent_server_is_a_timeout() {
    let stub = Stub::start().await;
    stub.reply(Reply::Hang);
    let timeout = Duration::from_millis(200);
    let cm = CodexManager::new(stub.config().timeout(timeout).build().unwrap()).unwrap();
    let started = tokio::time::Instant::now();
    let err = cm.get_session("s").await.unwrap_err();
    assert_eq!(started.elapsed(), timeout, "gave up at the configured timeout");
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unexpected_statuses_and_bodies_become_typed_errors() {
    let stub = Stub::start().await;
    let cm = CodexManager::new(stub.config().build().unwrap()).unwrap();

    let deleted =
        json!({"status": "deleted", "sessionId": "s", "message": "gone", "deletedAt": "2026-11-24T01:35:54.150Z"});
    stub.reply_json(410, deleted.clone());
    let err = cm.get_session("s").await.unwrap_err();
    assert!(matches!(&err, ManagerError::Status { operation, status, body }
        if operation == "sessions.get" && status.as_u16() == 410 && *body == deleted));
    assert!(
        err.to_string()
            .contains("sessions.get: codex-manager answered 410 Gone"),
        "{err}"
    );

    stub.reply(Reply::Text(http::StatusCode::BAD_GATEWAY, "upstream down".into()));
    let err = cm.delete_session("s").await.unwrap_err();
    assert_eq!(err.body(), Some(&json!("upstream down")));
    assert!(err.is_retryable());

    stub.reply(Reply::Text(http::StatusCode::OK, "<html>proxy page</html>".into()));
    let err = cm.get_session("s").await.unwrap_err();
    assert!(
        matches!(&err, ManagerError::Decode { message, .. } if message.contains("not JSON")),
        "{err:?}"
    );

    stub.reply_json(202, json!({"status": "accepted"}));
    let err = cm.send_message("s", &SendMessage::new("x")).await.unwrap_err();
    assert!(
        matches!(&err, ManagerError::Decode { operation, message }
        if operation == "sessions.send_message" && message.contains("sessionId")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_panicking_observer_hook_does_not_break_the_call() {
    let stub = Stub::start().await;
    let mut cm = CodexManager::new(stub.config().build().unwrap()).unwrap();
    cm.after("*", |_call, _response| panic!("observer bug"));
    stub.reply_json(200, json!({"status": "ok"}));
    assert_eq!(cm.delete_session("s").await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn a_malformed_pending_row_is_skipped_not_fatal() {
    let stub = Stub::start().await;
    let cm = CodexManager::new(stub.config().build().unwrap()).unwrap();
    let (_, good) = manager_support::fixture("rest-tool-calls-list-200-pending.json");
    let good_row = good["data"][0].clone();
    stub.reply_json(200, json!({"data": [{"requestId": "9", "tool": 5}, good_row]}));
    let calls = cm.list_tool_calls("s").await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].request_id, "1");
}

#[tokio::test]
async fn auth_headers_from_an_env_style_config_go_on_every_request() {
    let stub = Stub::start().await;
    let base = stub.base_url();
    let env = move |name: &str| match name {
        "CODEX_MANAGER_API_BASE" => Some(base.clone()),
        "CODEX_MANAGER_BEARER_TOKEN" => Some("tok-123".to_owned()),
        "CODEX_MANAGER_RBAC_TOKEN" => Some("rbac-456".to_owned()),
        "CODEX_MANAGER_RBAC_ROLE" => Some("operator".to_owned()),
        "CODEX_MANAGER_RBAC_ACTOR" => Some("bridge".to_owned()),
        _ => None,
    };
    let config = ManagerConfig::builder().env_overrides(env).unwrap().build().unwrap();
    let cm = CodexManager::new(config).unwrap();
    stub.reply_fixture("rest-tool-calls-list-200-empty.json");
    cm.list_tool_calls("s").await.unwrap();
    stub.reply_json(200, json!({}));
    cm.request("sessions.archive", Method::POST, "/sessions/s/archive", Some(json!({})))
        .await
        .unwrap();
    let received = stub.received();
    assert_eq!(received.len(), 2);
    for request in received {
        assert_eq!(request.headers["authorization"], "Bearer tok-123", "{}", request.path);
        assert_eq!(request.headers["x-codex-rbac-token"], "rbac-456");
        assert_eq!(request.headers["x-codex-rbac-role"], "operator");
        assert_eq!(request.headers["x-codex-rbac-actor"], "bridge");
    }
}

#[tokio::test]
async fn hooks_and_logs_never_show_secrets() {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || LogWriter(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let stub = Stub::start().await;
    let debug_seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut cm = CodexManager::new(stub.config().bearer_token("sup3r-secret").build().unwrap()).unwrap();
    cm.before("*", {
        let debug_seen = debug_seen.clone();
        move |call| push(&debug_seen, format!("{call:?}"))
    });
    stub.reply_json(500, json!({"status": "error"}));
    let err = cm.get_session("s").await.unwrap_err();

    assert_eq!(stub.received()[0].headers["authorization"], "Bearer sup3r-secret");
    let debug = entries(&debug_seen).join("\n");
    assert!(
        debug.contains("authorization") && !debug.contains("sup3r-secret"),
        "{debug}"
    );
    assert!(!format!("{err:?} {err} {cm:?}").contains("sup3r-secret"));
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("codex-manager request") && logs.contains("sessions.get"),
        "{logs}"
    );
    assert!(!logs.contains("sup3r-secret"), "{logs}");
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
