//! The admin endpoint's HTTP/1 server: hyper over our own accept loop, so that its connections are bounded and
//! timed (`axum::serve` has neither).
//!
//! Every open connection is in the [`Registry`], in one of two phases:
//!
//! - **waiting** for a request (just accepted, or idle after a response): it is closed at its deadline, which is
//!   [`HEADER_READ_TIMEOUT`] after it was accepted, [`KEEP_ALIVE_TIMEOUT`] after its last response, and at most
//!   [`HEADER_READ_TIMEOUT`] after the first byte of a later request arrived (the [`Tracked`] socket sees it);
//! - **busy** handling a request: no deadline here, the router's own request timeout bounds it.
//!
//! At most [`MAX_CONNECTIONS`] are open. A connection accepted beyond that is held (one at a time; the rest wait in
//! the kernel's backlog, holding none of our descriptors) while the waiting connection that has waited longest is
//! closed, and admitted once it is; when every connection is busy, until one is idle. So a local client holding
//! thousands of idle connections cycles through them rather than locking `/healthz` out.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{HEADER_READ_TIMEOUT, KEEP_ALIVE_TIMEOUT, MAX_CONNECTIONS};
use crate::util::{Backoff, lock};

/// The pause after a failed `accept` (out of descriptors, say), doubling while it keeps failing.
const ACCEPT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(50),
    max: Duration::from_secs(1),
};

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets requests in flight finish
/// (idle connections close at once, half-sent requests at their deadline) and returns.
pub(super) async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    // Failed accepts in a row, and whether the cap has been reached since the last admission without a wait.
    let (mut failures, mut at_cap) = (0u32, false);
    tokio::pin!(shutdown);
    'serve: loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    failures += 1;
                    let delay = ACCEPT_BACKOFF.delay(failures);
                    if failures == 1 {
                        tracing::warn!(
                            %error,
                            "admin endpoint: accepting a connection failed; retrying with backoff (the rest of \
                             this burst is logged at debug)"
                        );
                    } else {
                        tracing::debug!(%error, failures, ?delay, "admin endpoint: accept failed again");
                    }
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            },
        };
        if failures > 0 {
            tracing::info!(failures, "admin endpoint: accepting connections again");
            failures = 0;
        }
        let mut first_try = true;
        let registration = loop {
            match registry.admit() {
                Some(registration) => break registration,
                None if !at_cap => {
                    at_cap = true;
                    tracing::warn!(
                        max = MAX_CONNECTIONS,
                        "admin endpoint: connection cap reached; closing the longest-waiting connections to admit \
                         new ones"
                    );
                }
                None => {}
            }
            first_try = false;
            tokio::select! {
                () = &mut shutdown => break 'serve,
                () = registry.room.notified() => {}
            }
        };
        if first_try && at_cap {
            tracing::info!("admin endpoint: below its connection cap again");
            at_cap = false;
        }
        tasks.spawn(serve_connection(stream, registration, router.clone(), stop.clone()));
    }
    drop(listener);
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Serves one connection until it ends, times out, is evicted, or drains on shutdown.
async fn serve_connection(stream: TcpStream, registration: Registration, router: Router, stop: CancellationToken) {
    let conn = Arc::clone(&registration.conn);
    let io = TokioIo::new(Tracked {
        stream,
        conn: Arc::clone(&conn),
    });
    let service = {
        let (router, conn) = (TowerToHyperService::new(router), Arc::clone(&conn));
        service_fn(move |request: hyper::Request<Incoming>| {
            let busy = conn.busy();
            let response = router.call(request);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        })
    };
    // Our own deadlines replace hyper's header timer (which would also cut keep-alive at the header timeout).
    let connection = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(io, service);
    // Pinned in here, so that it (and its socket) is dropped at the block's end, before the slot is given back.
    {
        tokio::pin!(connection);
        let mut draining = false;
        loop {
            let deadline = match conn.next() {
                Next::Evicted => {
                    tracing::debug!("admin endpoint: closed the longest-waiting connection to admit a new one");
                    break;
                }
                Next::Deadline(deadline) => deadline,
            };
            if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                tracing::debug!("admin endpoint: closed a connection that sent no request in time");
                break;
            }
            let expired = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(%error, "admin endpoint: connection ended with an error");
                    }
                    break;
                }
                () = conn.wake.notified() => {}
                () = expired => {}
                () = stop.cancelled(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(registration);
}

/// The open connections, and the accept loop's wake-up when there may be room.
#[derive(Default)]
struct Registry {
    conns: Mutex<Conns>,
    /// Notified when a connection closes or becomes idle.
    room: Arc<Notify>,
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
}

impl Registry {
    /// A slot for a new connection, or `None` when at the cap; then the waiting connection that has waited longest
    /// is told to close (unless one is closing already), and `room` is notified once it has.
    fn admit(self: &Arc<Self>) -> Option<Registration> {
        let mut conns = lock(&self.conns);
        if conns.open.len() < MAX_CONNECTIONS {
            let id = conns.next_id;
            conns.next_id += 1;
            let conn = Arc::new(Conn::new(Arc::clone(&self.room)));
            conns.open.insert(id, Arc::clone(&conn));
            return Some(Registration {
                registry: Arc::clone(self),
                id,
                conn,
            });
        }
        if conns.open.values().any(|conn| conn.evicted()) {
            return None;
        }
        let longest_waiting = conns
            .open
            .values()
            .filter_map(|conn| conn.waiting_since().map(|since| (since, conn)))
            .min_by_key(|(since, _)| *since);
        if let Some((_, conn)) = longest_waiting {
            conn.evict();
        }
        None
    }
}

/// A connection's slot in the registry, given back when dropped.
struct Registration {
    registry: Arc<Registry>,
    id: u64,
    conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.conns).open.remove(&self.id);
        self.registry.room.notify_one();
    }
}

/// One connection's phase, shared by its task, its socket, its service and the registry.
struct Conn {
    state: Mutex<ConnState>,
    /// Wakes the connection's task: its deadline moved, or it was evicted.
    wake: Notify,
    /// The registry's: notified when this connection becomes idle, so that it can be evicted.
    room: Arc<Notify>,
}

struct ConnState {
    phase: Phase,
    evicted: bool,
}

#[derive(Clone, Copy)]
enum Phase {
    /// Waiting for a request since `since`, to be closed at `deadline`; `reading` once its first bytes arrived.
    Waiting {
        since: Instant,
        deadline: Instant,
        reading: bool,
    },
    /// Handling a request.
    Busy,
}

/// What the connection's task should do next.
enum Next {
    Evicted,
    /// Close the connection at this time (`None`: not while busy).
    Deadline(Option<Instant>),
}

impl Conn {
    /// A just-accepted connection: its request's headers are due within [`HEADER_READ_TIMEOUT`].
    fn new(room: Arc<Notify>) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(ConnState {
                phase: Phase::Waiting {
                    since: now,
                    deadline: now + HEADER_READ_TIMEOUT,
                    reading: true,
                },
                evicted: false,
            }),
            wake: Notify::new(),
            room,
        }
    }

    fn next(&self) -> Next {
        let state = lock(&self.state);
        match state.phase {
            _ if state.evicted => Next::Evicted,
            Phase::Waiting { deadline, .. } => Next::Deadline(Some(deadline)),
            Phase::Busy => Next::Deadline(None),
        }
    }

    fn evicted(&self) -> bool {
        lock(&self.state).evicted
    }

    /// Since when the connection has waited for a request; `None` while busy or once evicted.
    fn waiting_since(&self) -> Option<Instant> {
        match *lock(&self.state) {
            ConnState {
                phase: Phase::Waiting { since, .. },
                evicted: false,
            } => Some(since),
            _ => None,
        }
    }

    fn evict(&self) {
        lock(&self.state).evicted = true;
        self.wake.notify_one();
    }

    /// Bytes came in: when idle, a request has started, and its headers are due within [`HEADER_READ_TIMEOUT`].
    fn bytes_arrived(&self) {
        let mut state = lock(&self.state);
        if let Phase::Waiting {
            deadline,
            reading: reading @ false,
            ..
        } = &mut state.phase
        {
            *reading = true;
            *deadline = (*deadline).min(Instant::now() + HEADER_READ_TIMEOUT);
            drop(state);
            self.wake.notify_one();
        }
    }

    /// A request's headers are in: busy until the guard is dropped (its response is ready, or it was abandoned).
    fn busy(self: &Arc<Self>) -> Busy {
        lock(&self.state).phase = Phase::Busy;
        Busy(Arc::clone(self))
    }
}

/// Marks a connection busy while it lives; afterwards the connection waits for its next request.
struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        let now = Instant::now();
        lock(&self.0.state).phase = Phase::Waiting {
            since: now,
            deadline: now + KEEP_ALIVE_TIMEOUT,
            reading: false,
        };
        self.0.wake.notify_one();
        self.0.room.notify_one();
    }
}

/// The connection's socket, telling its [`Conn`] when bytes arrive.
struct Tracked {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills the registry, each connection accepted a second after the previous one.
    async fn full_registry() -> (Arc<Registry>, Vec<Registration>) {
        let registry = Arc::new(Registry::default());
        let mut open = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            open.push(registry.admit().expect("room below the cap"));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        (registry, open)
    }

    fn evicted(open: &[Registration]) -> Vec<usize> {
        (0..open.len()).filter(|&i| open[i].conn.evicted()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_waiting_connection_makes_room() {
        let (registry, mut open) = full_registry().await;
        // The two oldest are handling requests; the third has waited longest.
        let busy = [open[0].conn.busy(), open[1].conn.busy()];
        assert!(registry.admit().is_none());
        assert_eq!(evicted(&open), [2]);
        // One eviction at a time: no other is evicted while it closes.
        assert!(registry.admit().is_none());
        assert_eq!(evicted(&open), [2]);
        open.remove(2);
        let newest = registry.admit().expect("room once the evicted one closed");

        // A connection idle after a response waits from then on: now the most recent, so the next to go is the
        // fourth accepted (index 2 now).
        drop(busy);
        assert!(registry.admit().is_none());
        assert_eq!(evicted(&open), [2]);
        open.remove(2);
        assert!(registry.admit().is_some());
        drop(newest);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_busy_admission_waits_for_one_to_be_idle() {
        let (registry, open) = full_registry().await;
        let busy: Vec<Busy> = open.iter().map(|r| r.conn.busy()).collect();
        assert!(registry.admit().is_none());
        assert!(evicted(&open).is_empty(), "a busy connection is never evicted");
        // The last accepted is answered first.
        for answered in busy.into_iter().rev() {
            drop(answered);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(registry.admit().is_none());
        assert_eq!(evicted(&open), [MAX_CONNECTIONS - 1], "the first to become idle");
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_phase() {
        let conn = Arc::new(Conn::new(Arc::default()));
        let accepted = Instant::now();
        let deadline = |conn: &Conn| match conn.next() {
            Next::Deadline(deadline) => deadline,
            Next::Evicted => panic!("not evicted"),
        };
        assert_eq!(deadline(&conn), Some(accepted + HEADER_READ_TIMEOUT));
        // Bytes of the first request do not extend its deadline.
        tokio::time::advance(Duration::from_secs(1)).await;
        conn.bytes_arrived();
        assert_eq!(deadline(&conn), Some(accepted + HEADER_READ_TIMEOUT));

        let busy = conn.busy();
        assert_eq!(deadline(&conn), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        drop(busy);
        let answered = Instant::now();
        assert_eq!(deadline(&conn), Some(answered + KEEP_ALIVE_TIMEOUT));
        assert_eq!(conn.waiting_since(), Some(answered));

        // A later request's first bytes: its headers are due within the header timeout, the idle time kept.
        tokio::time::advance(Duration::from_secs(2)).await;
        conn.bytes_arrived();
        let started = Instant::now();
        assert_eq!(deadline(&conn), Some(started + HEADER_READ_TIMEOUT));
        assert_eq!(conn.waiting_since(), Some(answered));
        tokio::time::advance(Duration::from_secs(1)).await;
        conn.bytes_arrived();
        assert_eq!(deadline(&conn), Some(started + HEADER_READ_TIMEOUT));

        conn.evict();
        assert!(matches!(conn.next(), Next::Evicted));
        assert_eq!(conn.waiting_since(), None);
    }
}
