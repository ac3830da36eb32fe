//! The `codex app-server` upstream: skillbridge spawns Codex itself and serves skills over its stdio JSON-RPC.
//!
//! [`AppServerUpstream`] is the [`Upstream`](crate::upstream::Upstream) a bridge runs: it keeps a child serving,
//! restarts it when asked ([`RestartPolicy`]) and answers each call to the child that sent it. The pieces below
//! it are usable alone:
//!
//! - [`AppServer`]: one initialized child; threads and turns are started through it, and its event loop hands
//!   what the child sends to a [`Feed`](crate::upstream::Feed);
//! - [`AppServerClient`]: the calls (`initialize`, `thread/start`, `turn/start`, `turn/interrupt`,
//!   `thread/archive`), typed by [`protocol`], which holds every message skillbridge sends and reads;
//! - [`rpc`]: the line-delimited JSON-RPC framing over any reader/writer; [`AppServerCommand`] and
//!   [`AppServerProcess`]: the child process; [`refusals`]: answers to requests skillbridge does not handle.
//!
//! ```no_run
//! # async fn demo(feed: skillbridge::upstream::Feed) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use skillbridge::upstream::app_server::{AppServer, AppServerCommand, ThreadStartParams};
//!
//! let app = AppServer::start(AppServerCommand::new("codex")).await?;
//! app.start_event_loop(feed.clone())?;
//! let thread = app.start_thread(&ThreadStartParams::new(std::env::current_dir()?)).await?;
//! let turn = app.start_turn(&thread, "Say hello").await?;
//! let outcome = feed.turns().wait(&thread, &turn, Duration::from_secs(300)).await;
//! println!("{:?}", outcome.and_then(|outcome| outcome.final_reply));
//! app.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

mod answers;
mod child;
mod client;
mod error;
mod events;
mod process;
pub mod protocol;
pub mod refusals;
pub mod rpc;
mod supervisor;

pub use answers::PendingAnswers;
pub use child::AppServer;
pub use client::AppServerClient;
pub use error::AppServerError;
pub use events::AppServerEvents;
pub use process::{AppServerCommand, AppServerProcess, ExitReport, ExitWatch, SpawnError};
pub use protocol::{ApprovalPolicy, SandboxMode, ThreadStartParams};
pub use rpc::{RpcConnection, RpcError};
pub use supervisor::{AppServerUpstream, ChildState, RestartPolicy};
