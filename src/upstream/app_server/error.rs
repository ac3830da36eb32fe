//! [`AppServerError`]: everything that can go wrong talking to `codex app-server`.

use std::time::Duration;

use super::process::{ExitReport, SpawnError};
use super::rpc::RpcError;

/// Why an app-server operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AppServerError {
    /// The child could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The connection failed or the server answered with an error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The server did not answer in time.
    #[error("app-server did not answer `{method}` within {after:?}")]
    Timeout {
        /// The method we called.
        method: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The server's answer lacked what we need.
    #[error("app-server answered `{method}` unexpectedly: {detail}")]
    UnexpectedResponse {
        /// The method we called.
        method: &'static str,
        /// What was missing.
        detail: String,
    },
    /// The child exited while we were waiting on it.
    #[error("{0}")]
    Exited(ExitReport),
    /// A turn did not complete in time.
    #[error("turn {turn_id} did not complete within {after:?}")]
    TurnTimeout {
        /// The turn.
        turn_id: String,
        /// How long we waited.
        after: Duration,
    },
    /// [`AppServer::start_event_loop`](super::AppServer::start_event_loop) was called twice.
    #[error("the app-server event loop is already running")]
    EventLoopStarted,
}
