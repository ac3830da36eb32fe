//! skillbridge: typed Rust functions as Codex dynamic tools.
//!
//! Write a skill, and skillbridge announces it to Codex with a JSON Schema derived from its parameters and
//! doc comments, runs it when the model calls it, and answers the call:
//!
//! ```
//! use skillbridge::{skill, SkillError};
//!
//! /// Look up a ticket's status by id.
//! #[skill]
//! async fn lookup_ticket(
//!     /// Stable id, like ABC-123.
//!     ticket_id: String,
//! ) -> Result<String, SkillError> {
//!     match ticket_id.as_str() {
//!         "ABC-123" => Ok("open".to_owned()),
//!         other => Err(SkillError::new(format!("no ticket {other}"))),
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! The pieces, in the order a call flows through them:
//!
//! - [`upstream`]: where calls come from and answers go: codex-manager ([`manager`] REST + [`stream`]
//!   websocket) or `codex app-server` over stdio;
//! - [`bridge`]: the [`Dispatcher`](bridge::Dispatcher) that runs each call once, with bounded concurrency,
//!   and answers it with retries;
//! - [`skill`](mod@skill): the `#[skill]` registry, the [`Catalog`] with its schemas, and invocation that never panics
//!   or hangs;
//! - [`admin`]: the HTTP admin endpoint; [`cli`]: the `skillbridge` command line.
//!
//! A crate of your own gets the whole `skillbridge` binary, with its skills, from one call:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     skillbridge::cli::main()
//! }
//! ```

pub mod admin;
pub mod bridge;
pub mod cli;
pub mod manager;
pub mod skill;
pub mod stream;
mod sync;
pub mod upstream;

pub use manager::{CodexManager, ManagerConfig, ManagerError};
pub use skill::{
    Catalog, CatalogError, Content, ContentItem, IntoToolResult, Invocation, Outcome, SkillContext, SkillError,
    SkillInfo, ToolFlavor, ToolResult,
};
pub use skillbridge_macros::skill;
pub use stream::{AppServerSignal, Router, StreamClient, StreamEvent, StreamOptions};
