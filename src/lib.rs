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
//! Serve the skills from your own program with a [`Bridge`] (see [`bridge`] for the whole example), or get
//! the whole `skillbridge` command line, with your skills and your binary's name and version, from one line:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     skillbridge::app!().run()
//! }
//! ```
//!
//! The pieces, from the top down (each depends only on the ones below it):
//!
//! - [`cli`]: the `skillbridge` command line: settings, `serve`, `send`, `skills`, `call`;
//! - [`bridge`]: the [`Bridge`]: runs each call once, with bounded concurrency, and answers it with retries;
//!   [`admin`]: its HTTP endpoint (health, readiness, metrics, skills, calls);
//! - [`upstream`]: where calls come from and answers go, the port the bridge drives, with
//!   [`CodexManagerUpstream`] and [`AppServerUpstream`];
//! - [`manager`] (codex-manager's REST client) and [`stream`] (its websocket stream with handlers);
//! - [`telemetry`]: statistics and readiness; [`skill`](mod@skill): the `#[skill]` registry, the [`Catalog`]
//!   with its schemas, and invocation that never panics or hangs.

//!
//! Cargo features: `cli` (the default) is all of it; `bridge` is everything but [`cli`]; without either, the
//! crate only defines skills (the macro, [`Catalog`], schemas, invocation) and pulls in no HTTP, websocket or
//! command-line crates.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "bridge")]
pub mod admin;
#[cfg(feature = "bridge")]
pub mod bridge;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "bridge")]
pub mod manager;
pub mod skill;
#[cfg(feature = "bridge")]
pub mod stream;
#[cfg(feature = "bridge")]
pub mod telemetry;
#[cfg(feature = "bridge")]
pub mod upstream;
mod util;

#[cfg(feature = "bridge")]
pub use bridge::{Bridge, BridgeBuilder, BridgeError, ClusterConfig, TurnEnd, TurnReply};
pub use skill::{
    Catalog, CatalogError, Content, ContentItem, IntoToolResult, RuntimeSkill, SkillContext, SkillError, State, States,
    ToolResult,
};
pub use skillbridge_macros::skill;
#[cfg(feature = "bridge")]
pub use upstream::{AppServerUpstream, CodexManagerUpstream, Upstream};

/// The Tokio runtime skillbridge runs skills on, for skills that sleep, spawn or time out
/// (`skillbridge::tokio::time::sleep(..)`) without a dependency of their own.
pub use tokio;

/// The command line of a skills binary, [`cli::App`], named after the crate that calls it: `--version` and
/// `--help` show its `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`.
///
/// ```no_run
/// use skillbridge::skill;
///
/// /// Says hello.
/// #[skill]
/// async fn hello(name: String) -> String {
///     format!("hello {name}")
/// }
///
/// fn main() -> std::process::ExitCode {
///     skillbridge::app!().run()
/// }
/// ```
#[cfg(feature = "cli")]
#[macro_export]
macro_rules! app {
    () => {
        $crate::cli::App::new().named(::core::env!("CARGO_PKG_NAME"), ::core::env!("CARGO_PKG_VERSION"))
    };
}

/// A boxed future, as the crate's object-safe traits return them.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
