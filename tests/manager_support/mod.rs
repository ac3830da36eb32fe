//! A minimal local codex-manager stand-in for the manager client tests: it answers each request with
//! the next queued reply (a captured fixture or a hand-made body) and records what it received.
//! The full double (`skillbridge_doubles`) covers behaviour; this stub covers exact wire shapes.

#![allow(dead_code)] // Each test binary uses a different part of the stub.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use skillbridge::manager::{ManagerConfig, ManagerConfigBuilder};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query, e.g. `/api/sessions/abc`.
    pub path: String,
    pub headers: HeaderMap,
    /// The body as JSON; `None` when the request had no body.
    pub body: Option<Value>,
}

/// What the stub answers with.
#[derive(Debug, Clone)]
pub enum Reply {
    Json(StatusCode, Value),
    Text(StatusCode, String),
    /// Never answers (for timeouts).
    Hang,
}

#[derive(Default)]
struct Inner {
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// The running stub; it stops with the test's runtime.
pub struct Stub {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Stub {
    pub async fn start() -> Stub {
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Stub { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A configuration builder pointing at the stub (prefix `/api`).
    pub fn config(&self) -> ManagerConfigBuilder {
        ManagerConfig::builder().base_url(self.base_url())
    }

    pub fn reply(&self, reply: Reply) {
        self.inner.replies.lock().unwrap().push_back(reply);
    }

    pub fn reply_json(&self, status: u16, body: Value) {
        self.reply(Reply::Json(StatusCode::from_u16(status).unwrap(), body));
    }

    /// Queues a captured fixture and returns its body.
    pub fn reply_fixture(&self, name: &str) -> Value {
        let (status, body) = fixture(name);
        self.reply_json(status, body.clone());
        body
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let body = (!bytes.is_empty()).then(|| {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    });
    inner.received.lock().unwrap().push(Received {
        method: parts.method,
        path: parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default(),
        headers: parts.headers,
        body,
    });
    let reply = inner.replies.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Json(status, body)) => (status, axum::Json(body)).into_response(),
        Some(Reply::Text(status, text)) => (status, Body::from(text)).into_response(),
        Some(Reply::Hang) => std::future::pending().await,
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"status": "error", "message": "stub: no reply queued"})),
        )
            .into_response(),
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex-manager")
}

/// A captured REST fixture: `(status, body)`.
pub fn fixture(name: &str) -> (u16, Value) {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).unwrap();
    let status = value["status"].as_u64().expect("fixture status") as u16;
    (status, value["body"].clone())
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
