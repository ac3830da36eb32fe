//! [`ScriptedModel`]: the loopback HTTP server that answers Codex's Responses-API requests from a [`ModelScript`]
//! and records every request body.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::script::{ModelScript, turn_outputs};

/// The model id the server lists and the CODEX_HOME configuration selects.
pub const MODEL_ID: &str = "fake-model";

/// A scripted stand-in for the OpenAI Responses API on `127.0.0.1`, so the real `codex` runs offline.
///
/// `POST /v1/responses` is answered with Server-Sent Events as the [`ModelScript`] says; `GET /v1/models`
/// lists [`MODEL_ID`]. The server stops when the value is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use serde_json::json;
/// use skillbridge_doubles::model::{ModelScript, ScriptedModel};
///
/// let model = ScriptedModel::start(ModelScript::new().call("uppercase", json!({"text": "hi"}))).await;
/// assert!(model.base_url().starts_with("http://127.0.0.1:"));
/// assert!(model.requests().is_empty());
/// # }
/// ```
pub struct ScriptedModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    recorded: watch::Receiver<usize>,
    server: JoinHandle<()>,
}

struct Shared {
    script: ModelScript,
    requests: Mutex<Vec<Value>>,
    recorded: watch::Sender<usize>,
    next_response: AtomicU64,
    /// The next model turn: numbers the call ids, never reused.
    next_turn: AtomicU64,
    /// Every call id made, in order.
    call_ids: Mutex<Vec<String>>,
}

/// [`ScriptedModel::wait_requests`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTimeout {
    /// How many requests were awaited.
    pub wanted: usize,
    /// How many had arrived at the deadline.
    pub received: usize,
    /// How long it waited.
    pub waited: Duration,
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the scripted model received {} of {} requests within {:?}",
            self.received, self.wanted, self.waited
        )
    }
}

impl std::error::Error for WaitTimeout {}

impl ScriptedModel {
    /// Starts the server on `127.0.0.1` with a free port.
    ///
    /// # Panics
    /// When no loopback port can be bound (the tests cannot run at all then).
    pub async fn start(script: ModelScript) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the scripted model on 127.0.0.1");
        let addr = listener.local_addr().expect("scripted model address");
        let (recorded_tx, recorded) = watch::channel(0);
        let shared = Arc::new(Shared {
            script,
            requests: Mutex::new(Vec::new()),
            recorded: recorded_tx,
            next_response: AtomicU64::new(1),
            next_turn: AtomicU64::new(0),
            call_ids: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/responses", post(responses))
            .route("/v1/models", get(models))
            .fallback(unknown_route)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "scripted model server stopped");
            }
        });
        Self {
            addr,
            shared,
            recorded,
            server,
        }
    }

    /// The API base URL to configure in Codex: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every `POST /v1/responses` body received so far, in arrival order (unparsable bodies appear as
    /// `{"unparsed": "<text>"}`).
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// Every call id the model has made so far, in order: `call_<turn>_<index>` (see
    /// [`ModelScript::call_id`]), never the same twice.
    pub fn call_ids(&self) -> Vec<String> {
        self.shared.call_ids.lock().expect("call ids lock").clone()
    }

    /// Waits until at least `count` requests have arrived and returns all of them.
    pub async fn wait_requests(&self, count: usize, timeout: Duration) -> Result<Vec<Value>, WaitTimeout> {
        let mut recorded = self.recorded.clone();
        match tokio::time::timeout(timeout, recorded.wait_for(|received| *received >= count)).await {
            Ok(Ok(_)) => Ok(self.requests()),
            _ => Err(WaitTimeout {
                wanted: count,
                received: self.requests().len(),
                waited: timeout,
            }),
        }
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn responses(State(shared): State<Arc<Shared>>, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw)
        .unwrap_or_else(|_| json!({"unparsed": String::from_utf8_lossy(&raw).into_owned()}));
    let outputs = turn_outputs(&body);
    {
        let mut requests = shared.requests.lock().expect("requests lock");
        requests.push(body);
        shared.recorded.send_replace(requests.len());
    }

    let response_id = format!("resp_{}", shared.next_response.fetch_add(1, Ordering::Relaxed));
    let script = &shared.script;
    let mut events = vec![json!({"type": "response.created", "response": {"id": response_id}})];
    if !script.calls.is_empty() && !script.all_answered(&outputs) {
        let turn = shared.next_turn.fetch_add(1, Ordering::Relaxed);
        let call_ids: Vec<String> = (0..script.calls.len())
            .map(|index| ModelScript::call_id(turn, index))
            .collect();
        shared
            .call_ids
            .lock()
            .expect("call ids lock")
            .extend(call_ids.iter().cloned());
        for ((index, call), call_id) in script.calls.iter().enumerate().zip(call_ids) {
            let mut item = json!({
                "type": "function_call",
                "id": format!("fc_{turn}_{index}"),
                "call_id": call_id,
                "name": call.name,
                "arguments": call.arguments.to_string(),
            });
            if let Some(namespace) = &call.namespace {
                item["namespace"] = json!(namespace);
            }
            events.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
        }
    } else {
        let item = json!({
            "type": "message",
            "role": "assistant",
            "id": format!("msg_{response_id}"),
            "content": [{"type": "output_text", "text": script.final_text(&outputs), "annotations": []}],
        });
        events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
    }
    let usage = json!({"input_tokens": 1, "input_tokens_details": null, "output_tokens": 1,
                       "output_tokens_details": null, "total_tokens": 2});
    events.push(json!({"type": "response.completed", "response": {"id": response_id, "usage": usage}}));

    let stream: String = events
        .iter()
        .map(|event| {
            format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap_or_default()
            )
        })
        .collect();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(stream))
        .expect("static response parts")
}

async fn models() -> impl IntoResponse {
    axum::Json(json!({"object": "list", "data": [{"id": MODEL_ID, "object": "model"}], "models": []}))
}

async fn unknown_route(request: axum::extract::Request) -> impl IntoResponse {
    tracing::warn!(method = %request.method(), uri = %request.uri(), "scripted model: no such route");
    StatusCode::NOT_FOUND
}
