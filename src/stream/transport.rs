//! How the stream reaches a socket: a [`Connector`] opens a [`Connection`] (any `Sink<Message>` plus
//! `Stream<Item = Result<Message, _>>`) for a [`ConnectRequest`]. [`WsConnector`] does it over TCP with
//! tokio-tungstenite; tests can hand the stream in-memory channels instead.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::BoxFuture;
use futures::{Sink, SinkExt, Stream, StreamExt};
use http::HeaderMap;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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
/// values are marked sensitive, so `Debug` does not show them).
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// e.g. `ws://127.0.0.1:3001/api/stream?threadId=..`.
    pub url: String,
    /// Headers for the upgrade request.
    pub headers: HeaderMap,
    /// The thread the stream subscribes to.
    pub thread_id: Option<String>,
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The URL cannot be used (malformed, or `wss://`, which this build has no TLS for). Retrying cannot help, so
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

/// Connects over TCP with tokio-tungstenite (plain `ws://` only), with the request headers on the upgrade and
/// Nagle's algorithm off (tool-call latency matters more than packet count).
#[derive(Debug, Clone)]
pub struct WsConnector {
    handshake_timeout: Duration,
}

impl WsConnector {
    /// A connector whose TCP connect plus upgrade must finish within `handshake_timeout`.
    pub fn new(handshake_timeout: Duration) -> Self {
        Self { handshake_timeout }
    }
}

impl Connector for WsConnector {
    fn connect(&self, request: ConnectRequest) -> BoxFuture<'static, Result<Connection, ConnectError>> {
        let timeout = self.handshake_timeout;
        Box::pin(async move {
            let url = request.url;
            let invalid = |message: String| ConnectError::InvalidUrl {
                url: url.clone(),
                message,
            };
            if url.starts_with("wss://") {
                return Err(invalid(
                    "wss:// needs TLS, which this build does not include; use ws:// (e.g. through a local proxy)"
                        .into(),
                ));
            }
            let mut upgrade = url.as_str().into_client_request().map_err(|e| invalid(e.to_string()))?;
            upgrade.headers_mut().extend(request.headers);
            let handshake = tokio_tungstenite::connect_async_with_config(upgrade, None, true);
            let socket = match tokio::time::timeout(timeout, handshake).await {
                Err(_) => return Err(ConnectError::Timeout { url, timeout }),
                Ok(Ok((socket, _response))) => socket,
                Ok(Err(tungstenite::Error::Http(response))) => {
                    return Err(ConnectError::Rejected {
                        status: response.status().as_u16(),
                    });
                }
                Ok(Err(tungstenite::Error::Url(e))) => return Err(invalid(e.to_string())),
                Ok(Err(e)) => {
                    return Err(ConnectError::Unreachable {
                        message: e.to_string(),
                        url,
                    });
                }
            };
            let (sink, messages) = socket.split();
            Ok(Connection::new(sink, messages))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unusable_urls_are_fatal() {
        let connector = WsConnector::new(Duration::from_secs(1));
        for url in ["wss://127.0.0.1:9/api/stream", "not a url"] {
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
