//! The websocket fan-out: a registry of connected sockets, each with its thread filter and an
//! unbounded queue of pre-serialized frames (text, or binary for malformed-frame tests). A frame is
//! serialized once and its bytes shared by every socket. Publishing takes one short lock (never across an await), so frames reach every
//! socket in one global order. Frames published while no socket is connected are lost, as on the
//! real server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

struct SocketEntry {
    filter: Option<Arc<str>>,
    frames: mpsc::UnboundedSender<Message>,
    kill: CancellationToken,
}

/// Every connected socket.
pub(crate) struct Hub {
    sockets: Mutex<HashMap<u64, SocketEntry>>,
    count: watch::Sender<usize>,
    next_id: AtomicU64,
    /// Parent of every socket's kill token: cancelling it closes all sockets for good.
    shutdown: CancellationToken,
}

/// A socket's membership in the hub; leaving the hub happens when this is dropped.
pub(crate) struct Membership {
    hub: Arc<Hub>,
    pub id: u64,
    pub frames: mpsc::UnboundedReceiver<Message>,
    pub kill: CancellationToken,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(self.id);
    }
}

impl Hub {
    pub(crate) fn new(shutdown: CancellationToken) -> Arc<Hub> {
        Arc::new(Hub {
            sockets: Mutex::new(HashMap::new()),
            count: watch::channel(0).0,
            next_id: AtomicU64::new(0),
            shutdown,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SocketEntry>> {
        self.sockets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a socket with an initial thread filter.
    pub(crate) fn join(self: &Arc<Self>, filter: Option<Arc<str>>) -> Membership {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let kill = self.shutdown.child_token();
        let mut sockets = self.lock();
        sockets.insert(
            id,
            SocketEntry {
                filter,
                frames: tx,
                kill: kill.clone(),
            },
        );
        self.count.send_replace(sockets.len());
        drop(sockets);
        Membership {
            hub: Arc::clone(self),
            id,
            frames: rx,
            kill,
        }
    }

    /// How many sockets joined so far, those gone since included.
    pub(crate) fn opened(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    fn leave(&self, id: u64) {
        let mut sockets = self.lock();
        if sockets.remove(&id).is_some() {
            self.count.send_replace(sockets.len());
        }
    }

    /// Changes a socket's thread filter (`None`: every event).
    pub(crate) fn set_filter(&self, id: u64, filter: Option<Arc<str>>) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.filter = filter;
        }
    }

    /// Sends a frame to every socket whose filter lets `thread_id` through: sockets without a
    /// filter get everything; a broadcast frame (`None`) reaches every socket.
    pub(crate) fn publish(&self, thread_id: Option<&str>, frame: Utf8Bytes) {
        for entry in self.lock().values() {
            let wanted = match (&entry.filter, thread_id) {
                (Some(filter), Some(thread)) => &**filter == thread,
                _ => true,
            };
            if wanted {
                // A closed queue means the socket is going away; its frames are lost like on the real server.
                let _ = entry.frames.send(Message::Text(frame.clone()));
            }
        }
    }

    /// Sends a frame (text or binary) to every socket regardless of filters.
    pub(crate) fn publish_all(&self, frame: Message) {
        for entry in self.lock().values() {
            let _ = entry.frames.send(frame.clone());
        }
    }

    /// Closes every socket at once (no close handshake) and returns how many there were.
    /// The count drops to zero immediately, so a later wait sees only new connections.
    pub(crate) fn drop_all(&self) -> usize {
        let mut sockets = self.lock();
        let dropped = sockets.len();
        for (_, entry) in sockets.drain() {
            entry.kill.cancel();
        }
        self.count.send_replace(0);
        dropped
    }

    pub(crate) fn count(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until exactly `n` sockets are connected.
    pub(crate) async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.count.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|count| *count == n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
