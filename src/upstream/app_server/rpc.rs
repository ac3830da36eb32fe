//! Line-delimited JSON-RPC as `codex app-server` speaks it: one JSON object per line, no `"jsonrpc"` field.
//!
//! [`RpcConnection::new`] takes any reader/writer pair (the child's stdout/stdin, or `tokio::io::duplex` in
//! tests). Our requests get increasing numeric ids and their responses are routed back through a pending map;
//! everything the server starts (requests and notifications) arrives on the [`Incoming`] receiver. A line that
//! is not a JSON-RPC message is logged and skipped; when the reader ends, pending requests fail with
//! [`RpcError::Closed`] and the incoming stream ends.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// Longest line accepted from the server; longer ones are skipped with a log (Codex's largest messages are
/// thread snapshots, far below this).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// JSON-RPC "method not found", the answer to server requests we do not handle.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;

/// JSON-RPC "invalid params".
pub(crate) const INVALID_PARAMS: i64 = -32602;

/// A request the server sent us; it must be answered with [`RpcConnection::respond`] or
/// [`RpcConnection::respond_error`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRequest {
    /// The id exactly as the server sent it (Codex sends numbers, starting at 0).
    pub id: Value,
    /// The method, e.g. `item/tool/call`.
    pub method: String,
    /// The params (`null` when absent).
    pub params: Value,
}

impl ServerRequest {
    /// The id in string form: a number as its digits (`0` → `"0"`), a string as itself.
    pub fn id_string(&self) -> String {
        crate::util::request_id_string(&self.id).unwrap_or_else(|| self.id.to_string())
    }
}

/// A notification the server sent us.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The method, e.g. `turn/completed`.
    pub method: String,
    /// The params (`null` when absent).
    pub params: Value,
}

/// A message the server started.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Needs an answer.
    Request(ServerRequest),
    /// Needs nothing.
    Notification(Notification),
}

/// The `error` member of a JSON-RPC response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcErrorObject {
    /// The error code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// Extra data, when sent.
    pub data: Option<Value>,
}

impl fmt::Display for RpcErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// Why an RPC operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The server's output ended (the process exited or the pipe broke).
    #[error("the app-server connection is closed")]
    Closed,
    /// Writing to the server failed.
    #[error("writing to the app-server failed: {0}")]
    Write(#[source] std::io::Error),
    /// The server answered our request with an error.
    #[error("app-server answered `{method}` with an error: {error}")]
    Server {
        /// The method we called.
        method: String,
        /// What the server said.
        error: RpcErrorObject,
    },
}

type Writer = Pin<Box<dyn AsyncWrite + Send>>;
type ResponseSender = oneshot::Sender<Result<Value, RpcErrorObject>>;

/// One JSON-RPC connection to an app-server; cheap to clone, all clones share it.
#[derive(Clone)]
pub struct RpcConnection {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` once [`RpcConnection::close`] dropped it (which closes the child's stdin).
    writer: tokio::sync::Mutex<Option<Writer>>,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    closed: bool,
    waiting: HashMap<u64, ResponseSender>,
}

impl fmt::Debug for RpcConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = crate::util::lock(&self.inner.pending);
        f.debug_struct("RpcConnection")
            .field("closed", &pending.closed)
            .field("pending_requests", &pending.waiting.len())
            .finish()
    }
}

impl RpcConnection {
    /// Starts reading `reader` on a background task and returns the connection plus the stream of
    /// server-started messages. Must be called inside a Tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use serde_json::json;
    /// use skillbridge::upstream::app_server::rpc::RpcConnection;
    /// use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    ///
    /// let (ours, theirs) = tokio::io::duplex(4096);
    /// let (our_read, our_write) = tokio::io::split(ours);
    /// let (rpc, _incoming) = RpcConnection::new(our_read, our_write);
    ///
    /// let (their_read, mut their_write) = tokio::io::split(theirs);
    /// let server = tokio::spawn(async move {
    ///     let mut lines = BufReader::new(their_read).lines();
    ///     let request: serde_json::Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    ///     let reply = json!({"id": request["id"], "result": {"pong": true}});
    ///     their_write.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
    /// });
    /// assert_eq!(rpc.request("ping", json!({})).await.unwrap(), json!({"pong": true}));
    /// server.await.unwrap();
    /// # }
    /// ```
    pub fn new<R, W>(reader: R, writer: W) -> (Self, mpsc::UnboundedReceiver<Incoming>)
    where
        R: AsyncRead + Send + 'static,
        W: AsyncWrite + Send + 'static,
    {
        let inner = Arc::new(Inner {
            writer: tokio::sync::Mutex::new(Some(Box::pin(writer))),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Pending::default()),
        });
        // Unbounded so that a slow consumer of server-started messages can never stall the routing of
        // responses it is itself waiting for.
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(Box::pin(BufReader::new(reader)), inner.clone(), incoming_tx));
        (Self { inner }, incoming_rx)
    }

    /// Sends a request and waits for its response's `result`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = crate::util::lock(&self.inner.pending);
            if pending.closed {
                return Err(RpcError::Closed);
            }
            pending.waiting.insert(id, tx);
        }
        if let Err(error) = self.write(&json!({"id": id, "method": method, "params": params})).await {
            crate::util::lock(&self.inner.pending).waiting.remove(&id);
            return Err(error);
        }
        match rx.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(RpcError::Server {
                method: method.to_owned(),
                error,
            }),
            Err(_) => Err(RpcError::Closed),
        }
    }

    /// Sends a notification (`params` left out when `None`).
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), RpcError> {
        let mut message = Map::new();
        message.insert("method".into(), method.into());
        if let Some(params) = params {
            message.insert("params".into(), params);
        }
        self.write(&Value::Object(message)).await
    }

    /// Answers a server request with a result.
    pub async fn respond(&self, id: &Value, result: Value) -> Result<(), RpcError> {
        self.write(&json!({"id": id, "result": result})).await
    }

    /// Answers a server request with an error.
    pub async fn respond_error(&self, id: &Value, code: i64, message: &str) -> Result<(), RpcError> {
        self.write(&json!({"id": id, "error": {"code": code, "message": message}}))
            .await
    }

    /// Closes our side of the connection: the writer is dropped (for a child process that closes its stdin,
    /// which makes `codex app-server` exit). Later writes fail with [`RpcError::Closed`]; responses already
    /// on their way are still read.
    pub async fn close(&self) {
        if let Some(mut writer) = self.inner.writer.lock().await.take() {
            // Shut down explicitly: for a split pipe, dropping our half alone would not end the peer's input.
            if let Err(error) = writer.shutdown().await {
                tracing::debug!(%error, "closing the app-server input failed; it is dropped anyway");
            }
        }
    }

    /// `true` once the server's output has ended.
    pub fn is_closed(&self) -> bool {
        crate::util::lock(&self.inner.pending).closed
    }

    async fn write(&self, message: &Value) -> Result<(), RpcError> {
        let mut line = message.to_string();
        line.push('\n');
        let mut writer = self.inner.writer.lock().await;
        let writer = writer.as_mut().ok_or(RpcError::Closed)?;
        writer.write_all(line.as_bytes()).await.map_err(RpcError::Write)?;
        writer.flush().await.map_err(RpcError::Write)
    }
}

async fn read_loop(
    mut reader: Pin<Box<dyn AsyncBufRead + Send>>,
    inner: Arc<Inner>,
    incoming: mpsc::UnboundedSender<Incoming>,
) {
    let mut line = Vec::new();
    loop {
        match read_line_capped(&mut reader, &mut line, MAX_LINE_BYTES).await {
            Ok(LineRead::Eof) => break,
            Ok(LineRead::TooLong(length)) => {
                tracing::warn!(
                    length,
                    max = MAX_LINE_BYTES,
                    "app-server sent an over-long line; skipped"
                );
            }
            Ok(LineRead::Line) => route(&line, &inner, &incoming),
            Err(error) => {
                tracing::warn!(%error, "reading from the app-server failed");
                break;
            }
        }
    }
    let waiting = {
        let mut pending = crate::util::lock(&inner.pending);
        pending.closed = true;
        std::mem::take(&mut pending.waiting)
    };
    if !waiting.is_empty() {
        tracing::warn!(
            requests = waiting.len(),
            "app-server connection closed with requests unanswered"
        );
    }
    // Dropping the senders fails every waiting request with `RpcError::Closed`.
    drop(waiting);
    tracing::debug!("app-server connection closed");
}

fn route(line: &[u8], inner: &Inner, incoming: &mpsc::UnboundedSender<Incoming>) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let message: Map<String, Value> = match serde_json::from_slice(line) {
        Ok(Value::Object(message)) => message,
        Ok(_) | Err(_) => {
            tracing::warn!(line = %preview(line), "app-server sent a line that is not a JSON object; skipped");
            return;
        }
    };
    let id = message.get("id").filter(|id| !id.is_null()).cloned();
    match (message.get("method").and_then(Value::as_str), id) {
        (Some(method), Some(id)) => {
            let request = ServerRequest {
                id,
                method: method.to_owned(),
                params: message.get("params").cloned().unwrap_or(Value::Null),
            };
            if incoming.send(Incoming::Request(request)).is_err() {
                tracing::warn!(
                    method,
                    "app-server request arrived after its consumer stopped; unanswered"
                );
            }
        }
        (Some(method), None) => {
            let notification = Notification {
                method: method.to_owned(),
                params: message.get("params").cloned().unwrap_or(Value::Null),
            };
            // Nobody listening to notifications is fine: they need no answer.
            let _ = incoming.send(Incoming::Notification(notification));
        }
        (None, Some(id)) => deliver_response(&message, &id, inner),
        (None, None) => {
            tracing::warn!(line = %preview(line), "app-server sent a message without method or id; skipped");
        }
    }
}

fn deliver_response(message: &Map<String, Value>, id: &Value, inner: &Inner) {
    let outcome = match (message.get("result"), message.get("error")) {
        (_, Some(error)) => Err(RpcErrorObject {
            code: error.get("code").and_then(Value::as_i64).unwrap_or_default(),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_owned(),
            data: error.get("data").cloned(),
        }),
        (Some(result), None) => Ok(result.clone()),
        (None, None) => {
            tracing::warn!(id = %id, "app-server response has neither result nor error; skipped");
            return;
        }
    };
    let waiter = id
        .as_u64()
        .and_then(|id| crate::util::lock(&inner.pending).waiting.remove(&id));
    match waiter {
        // The requester may have given up (timeout); its answer is then of no use to anyone.
        Some(waiter) => {
            let _ = waiter.send(outcome);
        }
        None => tracing::warn!(id = %id, "app-server answered a request we are not waiting for; skipped"),
    }
}

fn preview(line: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]);
    if line.len() > MAX {
        format!("{text}... ({} bytes)", line.len())
    } else {
        text.into_owned()
    }
}

enum LineRead {
    Line,
    TooLong(usize),
    Eof,
}

/// Reads one `\n`-terminated line into `line` (without the newline). A line longer than `max` is consumed
/// and discarded, so one bad message cannot exhaust memory or desynchronise the stream.
async fn read_line_capped(
    reader: &mut Pin<Box<dyn AsyncBufRead + Send>>,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    line.clear();
    let mut length = 0usize;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(match length {
                0 => LineRead::Eof,
                _ if length > max => LineRead::TooLong(length),
                _ => LineRead::Line,
            });
        }
        let (chunk, done) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&buffer[..end], true),
            None => (buffer, false),
        };
        length += chunk.len();
        if length <= max {
            line.extend_from_slice(chunk);
        } else {
            line.clear();
        }
        let consumed = chunk.len() + usize::from(done);
        reader.as_mut().consume(consumed);
        if done {
            return Ok(if length > max {
                LineRead::TooLong(length)
            } else {
                LineRead::Line
            });
        }
    }
}
