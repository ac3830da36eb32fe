//! How the stream reaches a socket: a [`Connector`] opens a [`Connection`] (any `Sink<Message>` plus
//! `Stream<Item = Result<Message, _>>`) for a [`ConnectRequest`]. [`WsConnector`] does it over TCP (and TLS for
//! `wss://`, with the TLS configuration REST uses) with tokio-tungstenite; tests can hand the stream in-memory
//! channels instead.
//!
//! [`WsConnector`] writes the upgrade request itself rather than through tungstenite's client handshake, which logs
//! the whole request, `Authorization` header included, at trace level through the `log` crate: any program that
//! forwards `log` records (`tracing-log`, `env_logger`) would print the token. Nothing here logs a header, and URLs
//! appear in errors only [redacted](crate::manager::redact_url).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::BoxFuture;
use crate::manager::{ManagerConfig, TlsFailure, connection_failure, error_chain, redact_url};
use futures::{Sink, SinkExt, Stream, StreamExt};
use http::{HeaderMap, Uri};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// A websocket message (tokio-tungstenite's type).
pub use tokio_tungstenite::tungstenite::Message;

/// A transport failure while reading or writing an open connection, as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

pub(crate) type BoxSink = Pin<Box<dyn Sink<Message, Error = TransportError> + Send>>;
pub(crate) type BoxMessages = Pin<Box<dyn Stream<Item = Result<Message, TransportError>> + Send>>;

/// One open websocket: where frames go and where they come from.
pub struct Connection {
    pub(crate) sink: BoxSink,
    pub(crate) messages: BoxMessages,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connection { .. }")
    }
}

impl Connection {
    /// A connection from a sink of outgoing messages and a stream of incoming ones. With
    /// `futures::channel::mpsc` channels this is an in-memory socket:
    ///
    /// ```
    /// use futures::channel::mpsc;
    /// use skillbridge::stream::{Connection, Message};
    ///
    /// let (to_server, _server_inbox) = mpsc::unbounded::<Message>();
    /// let (_server_outbox, from_server) = mpsc::unbounded::<Result<Message, String>>();
    /// let connection = Connection::new(to_server, from_server);
    /// # drop(connection);
    /// ```
    pub fn new<Si, St, SinkErr, StreamErr>(sink: Si, messages: St) -> Self
    where
        Si: Sink<Message, Error = SinkErr> + Send + 'static,
        SinkErr: fmt::Display,
        St: Stream<Item = Result<Message, StreamErr>> + Send + 'static,
        StreamErr: fmt::Display,
    {
        Self {
            sink: Box::pin(sink.sink_map_err(|e| TransportError(e.to_string()))),
            messages: Box::pin(messages.map(|m| m.map_err(|e| TransportError(e.to_string())))),
        }
    }
}

/// What to connect to: the websocket URL and the headers for the upgrade request (auth included; secret header
/// values are marked sensitive, so `Debug` does not show them, nor the URL's credentials).
#[derive(Clone)]
pub struct ConnectRequest {
    /// e.g. `ws://127.0.0.1:3001/api/stream?threadId=..`.
    pub url: String,
    /// Headers for the upgrade request.
    pub headers: HeaderMap,
    /// The thread the stream subscribes to.
    pub thread_id: Option<String>,
}

impl fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers)
            .field("thread_id", &self.thread_id)
            .finish()
    }
}

/// Why a connection attempt failed. URLs in it are [redacted](crate::manager::redact_url); messages carry the
/// cause (`Connection refused (os error 111)`, `failed to lookup address information: ..`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The URL cannot be used (malformed, not `ws://` or `wss://`, credentials in it). Retrying cannot help, so
    /// `run` returns this.
    #[error("invalid websocket URL {url}: {message}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The server answered the upgrade with an HTTP error status. 401/403 mean the credentials are wrong; the
    /// stream keeps retrying with backoff (the server or its tokens may change) and reports this as `last_error`.
    #[error("websocket upgrade rejected with HTTP {status}{hint}", hint = rejected_hint(*status))]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The TLS handshake of a `wss://` connection failed: why, in plain words. The stream keeps retrying with
    /// backoff (the server's certificate may be replaced) and reports this as `last_error`.
    #[error("TLS handshake with {url} failed: {failure}")]
    Tls {
        /// The URL.
        url: String,
        /// Why.
        failure: TlsFailure,
    },
    /// The server could not be reached or the handshake failed.
    #[error("cannot connect to {url}: {message}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The handshake took longer than the configured timeout.
    #[error("websocket handshake with {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
}

fn rejected_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (check the bearer/RBAC credentials)",
        _ => "",
    }
}

impl ConnectError {
    /// `true` when retrying cannot succeed, so the stream gives up.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ConnectError::InvalidUrl { .. })
    }
}

/// Opens connections for the stream. Implemented by [`WsConnector`] and by any
/// `Fn(ConnectRequest) -> impl Future<Output = Result<Connection, ConnectError>>`.
pub trait Connector: Send + Sync + 'static {
    /// Opens one connection.
    fn connect(&self, request: ConnectRequest) -> BoxFuture<'static, Result<Connection, ConnectError>>;
}

impl<F, Fut> Connector for F
where
    F: Fn(ConnectRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Connection, ConnectError>> + Send + 'static,
{
    fn connect(&self, request: ConnectRequest) -> BoxFuture<'static, Result<Connection, ConnectError>> {
        Box::pin(self(request))
    }
}

/// Connects over TCP, and TLS for `wss://`, with the request headers on the upgrade and Nagle's algorithm off
/// (tool-call latency matters more than packet count); tokio-tungstenite runs the websocket once upgraded.
#[derive(Clone)]
pub struct WsConnector {
    handshake_timeout: Duration,
    /// For `wss://`; `None` checks the server against the system's trusted CAs.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for WsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConnector")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("tls", &self.tls.as_ref().map(|_| ".."))
            .finish()
    }
}

impl WsConnector {
    /// A connector whose TCP connect, TLS handshake and upgrade must finish within `handshake_timeout`; a `wss://`
    /// server's certificate must be signed by one of the system's trusted CAs.
    pub fn new(handshake_timeout: Duration) -> Self {
        Self {
            handshake_timeout,
            tls: None,
        }
    }

    /// A connector for the codex-manager of `config`: its timeout as the handshake limit, and for `wss://` the
    /// TLS configuration its REST client uses (the system's CAs plus [`ca_file`](crate::manager::ManagerConfigBuilder::ca_file)).
    pub fn for_manager(config: &ManagerConfig) -> Self {
        Self {
            handshake_timeout: config.timeout(),
            tls: config.tls().cloned(),
        }
    }
}

impl Connector for WsConnector {
    fn connect(&self, request: ConnectRequest) -> BoxFuture<'static, Result<Connection, ConnectError>> {
        let timeout = self.handshake_timeout;
        let tls = self.tls.clone();
        Box::pin(async move {
            let url = redact_url(&request.url).into_owned();
            let target = match Target::parse(&request.url) {
                Ok(target) => target,
                Err(message) => return Err(ConnectError::InvalidUrl { url, message }),
            };
            match tokio::time::timeout(timeout, open(&target, &request.headers, tls)).await {
                Err(_) => Err(ConnectError::Timeout { url, timeout }),
                Ok(Err(Refusal::Status(status))) => Err(ConnectError::Rejected { status }),
                Ok(Err(Refusal::Tls(failure))) => Err(ConnectError::Tls { url, failure }),
                Ok(Err(Refusal::Failed(message))) => Err(ConnectError::Unreachable { url, message }),
                Ok(Ok(connection)) => Ok(connection),
            }
        })
    }
}

/// Where a `ws://` or `wss://` URL points.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// The host to connect to, without the brackets of an IPv6 address.
    host: String,
    port: u16,
    /// `host[:port]` as the URL has it, for the `Host` header.
    authority: String,
    /// Path and query, `/` at least.
    path: String,
    /// For `wss://`: the name the server's certificate must be for.
    tls_name: Option<ServerName<'static>>,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err("the URL must start with ws:// or wss://".into()),
        };
        let Some(authority) = uri.authority() else {
            return Err("the URL has no host".into());
        };
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not sent; use a bearer token".into());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        let tls_name = match secure {
            true => Some(
                ServerName::try_from(host.to_owned())
                    .map_err(|_| format!("{host} is neither a host name nor an IP address"))?,
            ),
            false => None,
        };
        Ok(Self {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if secure { 443 } else { 80 }),
            authority: authority.as_str().to_owned(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            tls_name,
        })
    }
}

/// Why an upgrade did not happen.
#[derive(Debug)]
enum Refusal {
    /// The server answered with this status instead of 101.
    Status(u16),
    /// The TLS handshake failed.
    Tls(TlsFailure),
    /// No answer, or not a websocket one: what went wrong.
    Failed(String),
}

/// The longest handshake answer read: its status line and headers.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// Headers of the upgrade request that the handshake itself sets; the request's own are not sent twice.
const HANDSHAKE_HEADERS: [&str; 5] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// Opens the TCP connection, runs the TLS handshake for `wss://` (with `tls`, or the system's CAs), and upgrades.
async fn open(
    target: &Target,
    headers: &HeaderMap,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Connection, Refusal> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| Refusal::Failed(connection_failure(&e)))?;
    let _ = tcp.set_nodelay(true);
    let Some(name) = &target.tls_name else {
        return Ok(connection(upgrade(tcp, target, headers).await?));
    };
    let tls = match tls {
        Some(tls) => tls,
        None => crate::manager::tls_client_config(Vec::new()).map_err(Refusal::Failed)?,
    };
    let stream = TlsConnector::from(tls)
        .connect(name.clone(), tcp)
        .await
        .map_err(|error| match TlsFailure::find(&error) {
            Some(failure) => Refusal::Tls(failure),
            None => Refusal::Failed(format!("TLS handshake failed: {}", error_chain(&error))),
        })?;
    Ok(connection(upgrade(stream, target, headers).await?))
}

/// The [`Connection`] over an upgraded socket.
fn connection<S>(socket: WebSocketStream<S>) -> Connection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, messages) = socket.split();
    Connection::new(
        sink.sink_map_err(|e| TransportError(error_chain(&e))),
        messages.map(|m| m.map_err(|e| TransportError(error_chain(&e)))),
    )
}

/// Upgrades an open connection (RFC 6455 section 4.1), with `headers` on the request.
async fn upgrade<S>(mut socket: S, target: &Target, headers: &HeaderMap) -> Result<WebSocketStream<S>, Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let failed = |what: &str, error: &std::io::Error| Refusal::Failed(format!("{what}: {}", error_chain(error)));
    let key = generate_key();
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {key}\r\n",
        target.path, target.authority
    )
    .into_bytes();
    for (name, value) in headers {
        if !HANDSHAKE_HEADERS.contains(&name.as_str()) {
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
    }
    request.extend_from_slice(b"\r\n");
    let written = match socket.write_all(&request).await {
        Ok(()) => socket.flush().await,
        Err(error) => Err(error),
    };
    drop(request);
    written.map_err(|e| failed("sending the upgrade request failed", &e))?;

    let mut answer = Vec::with_capacity(512);
    let head_len = loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if answer.len() >= MAX_ANSWER_HEAD {
            return Err(Refusal::Failed(format!(
                "the upgrade answer's head is longer than {MAX_ANSWER_HEAD} bytes"
            )));
        }
        let mut chunk = [0u8; 1024];
        match socket.read(&mut chunk).await {
            Ok(0) => {
                return Err(Refusal::Failed(
                    "the server closed the connection during the upgrade".into(),
                ));
            }
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(failed("reading the upgrade answer failed", &e)),
        }
    };
    check_answer(&answer[..head_len], &key)?;
    // Frames the server sent right behind its answer (codex-manager's `ready`) were read with it.
    let rest = answer.split_off(head_len);
    Ok(WebSocketStream::from_partially_read(socket, rest, Role::Client, None).await)
}

/// Checks an upgrade answer's head: status 101, `Upgrade: websocket`, `Connection: upgrade` and the
/// `Sec-WebSocket-Accept` that `key` calls for.
fn check_answer(head: &[u8], key: &str) -> Result<(), Refusal> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/") => status,
        _ => return Err(Refusal::Failed("the server's answer to the upgrade is not HTTP".into())),
    };
    if status != 101 {
        return Err(Refusal::Status(status));
    }
    let header = |wanted: &str| {
        text.split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.trim().to_owned())
    };
    let invalid = |what: &str| Err(Refusal::Failed(format!("the server's upgrade answer {what}")));
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return invalid("lacks `Upgrade: websocket`");
    }
    let connection = header("connection").unwrap_or_default();
    if !connection
        .split(',')
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
    {
        return invalid("lacks `Connection: upgrade`");
    }
    if header("sec-websocket-accept").as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return invalid("has a wrong or no Sec-WebSocket-Accept");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unusable_urls_are_fatal() {
        let connector = WsConnector::new(Duration::from_secs(1));
        for url in ["http://127.0.0.1:9/api/stream", "wss://a..b/api/stream", "not a url"] {
            let request = ConnectRequest {
                url: url.to_owned(),
                headers: HeaderMap::new(),
                thread_id: None,
            };
            let err = connector.connect(request).await.unwrap_err();
            assert!(err.is_fatal(), "{url}: {err}");
        }
    }

    #[test]
    fn targets_of_ws_urls() {
        let target = Target::parse("ws://127.0.0.1:3001/api/stream?threadId=a%20b").unwrap();
        assert_eq!(
            target,
            Target {
                host: "127.0.0.1".into(),
                port: 3001,
                authority: "127.0.0.1:3001".into(),
                path: "/api/stream?threadId=a%20b".into(),
                tls_name: None,
            }
        );
        let secure = Target::parse("wss://localhost/api/stream").unwrap();
        assert_eq!(secure.port, 443);
        assert_eq!(secure.tls_name, Some(ServerName::try_from("localhost").unwrap()));
        let v6 = Target::parse("ws://[::1]/x").unwrap();
        assert_eq!((v6.host.as_str(), v6.port, v6.authority.as_str()), ("::1", 80, "[::1]"));
        assert_eq!(Target::parse("ws://h").unwrap().path, "/");
        for url in [
            "http://h/x",
            "ws://u:p@h/x",
            "ws:///x",
            "ws://h/a b",
            "ws://h/\r\nX-Injected: 1",
        ] {
            let message = Target::parse(url).unwrap_err();
            assert!(!message.contains(":p@"), "{message}");
        }
    }

    #[test]
    fn upgrade_answers_are_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
                    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(check_answer(good.as_bytes(), key).is_ok());
        assert!(matches!(
            check_answer(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n", key),
            Err(Refusal::Status(401))
        ));
        for (answer, says) in [
            ("SSH-2.0-OpenSSH\r\n\r\n", "not HTTP"),
            ("HTTP/1.1 101 OK\r\nConnection: upgrade\r\n\r\n", "Upgrade: websocket"),
            (
                "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
                "Sec-WebSocket-Accept",
            ),
        ] {
            let Err(Refusal::Failed(message)) = check_answer(answer.as_bytes(), key) else {
                panic!("accepted {answer:?}")
            };
            assert!(message.contains(says), "{message}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_says_so_and_hides_the_url_secrets() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let request = ConnectRequest {
            url: format!("ws://127.0.0.1:{port}/api/stream?access_token=hunter2"),
            headers: HeaderMap::new(),
            thread_id: None,
        };
        assert!(!format!("{request:?}").contains("hunter2"));
        let error = WsConnector::new(Duration::from_secs(5))
            .connect(request)
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, ConnectError::Unreachable { .. }), "{error:?}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn rejection_names_credentials_on_401() {
        assert!(
            ConnectError::Rejected { status: 401 }
                .to_string()
                .contains("credentials")
        );
        assert!(
            !ConnectError::Rejected { status: 502 }
                .to_string()
                .contains("credentials")
        );
        assert!(!ConnectError::Rejected { status: 401 }.is_fatal());
    }
}
