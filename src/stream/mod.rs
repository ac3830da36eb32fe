//! The codex-manager websocket stream: frames, app-server signals, the handler router and the connection loop.
//!
//! [`StreamClient::run`] connects `ws://<base>/api/stream?threadId=<id>` with the configuration's auth headers on
//! the upgrade request, sends `{"type":"subscribe","threadId":..}` when a thread is set, sends `{"type":"ping"}`
//! every [`StreamOptions::ping_interval`], and treats a ping unanswered for [`StreamOptions::pong_timeout`] as a
//! dead socket. Whenever a connection ends it reconnects with exponential backoff and jitter (reset after a
//! connection that delivered frames). It returns `Ok` promptly after [`StreamOptions::stop`] fires, having sent a
//! close frame. Frames that do not parse are counted by kind ([`StreamStats::malformed_frames_by_kind`],
//! [`FrameError::kind`]) and skipped; the first of each kind is logged at warn, then at most one line per kind a
//! minute with the count since (the others at debug). Events that no handler takes ([`Router::handles_event`]) are
//! checked like any frame, counted ([`StreamStats::unhandled_frames`]) and dropped as soon as their type is read,
//! without building their payload.
//!
//! Each frame is parsed into a [`Frame`]: a control frame (`ready`, `pong`, `error`) or a [`StreamEvent`]. The
//! [`Router`] runs every matching handler, in registration order; a failing or panicking handler is reported and
//! does not stop the others or the stream.
//!
//! # Minimal async listener
//!
//! ```no_run
//! use skillbridge::manager::ManagerConfig;
//! use skillbridge::stream::{Router, StreamClient, StreamOptions};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let config = ManagerConfig::from_profile("local")?;
//! let mut router = Router::new();
//! router
//!     .on_event("transcript_updated", |event, _ctx| async move {
//!         println!("transcript update {:?}", event.thread_id);
//!     })
//!     .on_app_server("item.started", |signal, _ctx| async move {
//!         println!("turn {:?}", signal.context.turn_id);
//!     })
//!     .on_app_server_request("item.tool.call", |signal, _ctx| async move {
//!         println!("tool call request {:?}", signal.request_id);
//!     });
//!
//! let report = StreamClient::new(config)
//!     .run(router, StreamOptions::new().thread_id("<session-id>"))
//!     .await?;
//! println!("{} frames, {} reconnects", report.frames, report.reconnects);
//! # Ok(())
//! # }
//! ```
//!
//! For programs without an async runtime, [`StreamClient::run_blocking`] does the same from a plain `main`, and
//! [`sync_handler`] adapts synchronous handler functions.
//!
//! # Slow handlers
//!
//! One task owns the socket: it reads frames, sends pings, watches for pongs and reconnects, and hands each frame to
//! a queue of [`StreamOptions::event_buffer`] frames (1024 by default). A second task takes frames off that queue in
//! arrival order and runs their handlers **sequentially**: one frame's handlers all finish before the next frame's
//! start. So a slow handler delays the handlers of later frames, but not the socket while the queue has room: pings
//! are still sent and answered and a dead connection is still noticed and replaced while a handler runs.
//!
//! Long work (running a tool, calling a model) therefore belongs in a task of its own: a handler should record or
//! enqueue the work and return. The bridge's tool-call handler does exactly that.
//!
//! If the handlers still fall a full buffer behind (a burst of thousands of calls at once, say), the socket task
//! stops reading until they make room: the frames wait on the server and in the kernel's socket buffers, not in
//! this process, and TCP slows the server down. It waits at most [`StreamOptions::pong_timeout`]; handlers that make
//! no room for that long are stuck, and the stream does not buffer without bound: it drops the frame that does not
//! fit (counted in [`StreamStats::dropped_frames`], logged with `tracing::warn!`), closes the connection, waits until
//! the handlers have emptied the queue, and connects again.
//! The new connection starts with a `ready` frame. Since codex-manager does not replay events (any event published
//! while no socket is connected is lost as well), a client that must not miss tool calls lists the pending calls
//! (`GET /api/sessions/:id/tool-calls`) on every `ready` frame ([`Router::on_control`]); the bridge does, so a
//! dropped tool-call event is picked up again rather than lost silently.
//!
//! When the stop token fires, frames still queued are discarded and a running handler is cancelled at its next
//! `.await`.

mod client;
mod connection;
mod envelope;
mod frame;
mod malformed;
mod options;
mod router;
mod signal;
mod signal_fields;
mod stats;
mod transport;

pub use client::{StreamClient, StreamError};
pub use frame::{Frame, FrameError, StreamEvent, parse_frame};
pub use options::StreamOptions;
pub use router::{
    DispatchSummary, HandlerContext, HandlerFailure, HandlerFailureKind, HandlerOutput, Router, sync_handler,
};
pub use signal::{AppServerSignal, SignalContext, SignalSession, SignalType, app_server_event_type, normalize_method};
pub use stats::{StreamReport, StreamStats};
pub use transport::{ConnectError, ConnectRequest, Connection, Connector, Message, TransportError, WsConnector};
