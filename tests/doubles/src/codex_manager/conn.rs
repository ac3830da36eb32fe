//! The double's TCP connections, so a restart can cut them all as a restarting process does: requests in
//! flight end without a response, idle keep-alive connections close, websockets drop.
//!
//! [`KillableListener`] wraps the bound listener; every stream it accepts is registered in [`Connections`]
//! and fails every read and write (connection reset) once killed, which makes hyper drop it. With a TLS acceptor
//! it hands out only connections whose handshake succeeded; handshakes run beside the accept loop, so a client that
//! stalls or fails one holds up no other.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::state::lock;

/// Every open connection's kill switch.
#[derive(Default)]
pub(crate) struct Connections {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, CancellationToken>>,
}

impl Connections {
    fn register(&self) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        lock(&self.live).insert(id, token.clone());
        (id, token)
    }

    fn forget(&self, id: u64) {
        lock(&self.live).remove(&id);
    }

    /// Cuts every open connection but `keep` (the one asking for the restart, so it gets its answer).
    pub(crate) fn kill_all_except(&self, keep: Option<ConnectionId>) -> usize {
        let mut live = lock(&self.live);
        let doomed: Vec<u64> = live
            .keys()
            .copied()
            .filter(|id| Some(ConnectionId(*id)) != keep)
            .collect();
        for id in &doomed {
            if let Some(token) = live.remove(id) {
                token.cancel();
            }
        }
        doomed.len()
    }
}

/// Which connection a request came on (an axum `ConnectInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionId(u64);

impl Connected<IncomingStream<'_, KillableListener>> for ConnectionId {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        ConnectionId(stream.io().id)
    }
}

/// How long a client gets to finish its TLS handshake.
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// The double's listener: TCP with `TCP_NODELAY` (and TLS when it has an acceptor), every stream registered in
/// [`Connections`].
pub(crate) struct KillableListener {
    inner: TcpListener,
    connections: Arc<Connections>,
    tls: Option<TlsAcceptor>,
    handshakes: JoinSet<Option<(Socket, SocketAddr)>>,
}

impl KillableListener {
    pub(crate) fn new(inner: TcpListener, connections: Arc<Connections>, tls: Option<TlsAcceptor>) -> Self {
        KillableListener {
            inner,
            connections,
            tls,
            handshakes: JoinSet::new(),
        }
    }

    /// The next connection ready to serve: accepted, and through its TLS handshake when there is TLS.
    async fn next_socket(&mut self) -> (Socket, SocketAddr) {
        loop {
            tokio::select! {
                (tcp, addr) = Listener::accept(&mut self.inner) => {
                    // Small frames go out at once instead of waiting on Nagle's algorithm and delayed ACKs.
                    if let Err(err) = tcp.set_nodelay(true) {
                        tracing::warn!(%err, "cannot set TCP_NODELAY");
                    }
                    let Some(acceptor) = self.tls.clone() else {
                        return (Socket::Plain(tcp), addr);
                    };
                    self.handshakes.spawn(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_LIMIT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => Some((Socket::Tls(Box::new(tls)), addr)),
                            Ok(Err(err)) => {
                                tracing::debug!(%err, %addr, "TLS handshake failed");
                                None
                            }
                            Err(_) => {
                                tracing::debug!(%addr, "TLS handshake timed out");
                                None
                            }
                        }
                    });
                }
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(ready)) = done {
                        return ready;
                    }
                }
            }
        }
    }
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (socket, addr) = self.next_socket().await;
        let (id, token) = self.connections.register();
        let stream = KillableStream {
            socket,
            id,
            killed: Box::pin(token.cancelled_owned()),
            dead: false,
            connections: Arc::clone(&self.connections),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection as the client opened it: plain TCP, or TLS over TCP.
pub(crate) enum Socket {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Socket::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Socket::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Socket::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Socket::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection that fails with `ConnectionReset` once it is killed.
pub(crate) struct KillableStream {
    socket: Socket,
    id: u64,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    dead: bool,
    connections: Arc<Connections>,
}

impl KillableStream {
    /// Whether the connection was killed; otherwise registers the task to be woken when it is.
    fn is_killed(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.dead && self.killed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        self.dead
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the codex-manager double restarted")
}

impl AsyncRead for KillableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.is_killed(cx) {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.is_killed(cx) {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_killed(cx) {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_killed(cx) {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        self.connections.forget(self.id);
    }
}
