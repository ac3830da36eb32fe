//! The codex-manager REST client: configuration, typed operations, hooks and a blocking facade.
//!
//! - [`CodexManager`]: the async client. Operations, with the names hooks see: `sessions.create`,
//!   `sessions.get`, `sessions.delete`, `sessions.send_message`, `sessions.interrupt`,
//!   `sessions.tool_calls.list`, `tool_calls.respond`, and [`CodexManager::request`] for any other route
//!   under a name of your choosing.
//! - [`blocking::CodexManager`]: the same, synchronous, for programs without a runtime.
//! - [`ManagerError`]: typed failures carrying the operation, and for unexpected statuses the status and
//!   body. On `tool_calls.respond`, 404 and 409 mean "already answered"
//!   ([`ManagerError::is_already_answered`]). A failed TLS handshake says why in plain words ([`TlsFailure`]).
//! - TLS (`https://`, and `wss://` for the stream): one rustls configuration for REST and the stream, trusting the
//!   system's CAs plus those of [`ManagerConfigBuilder::ca_file`] (`CODEX_MANAGER_CA`).
//!
//! # Hooks
//!
//! `before(op)`, `after(op)` and `on_error(op)` hooks run around every REST call; `op` is an operation
//! name or `"*"` for all. For each stage the `"*"` hooks run first, then the operation's own, each group
//! in registration order. A [`Middleware`] (or [`AsyncMiddleware`]) bundles the three and runs as `"*"`
//! hooks at the position where it was added.
//!
//! - `before` hooks get the [`RequestCall`] `&mut` (operation, method, URL, headers, JSON body) and may
//!   change any of it; an `Err` (or a panic) aborts the call with [`ManagerError::Hook`] before anything
//!   is sent.
//! - `after` hooks see the call and the [`CallResponse`] of a successful (2xx, decodable) answer.
//! - `on_error` hooks see the call and the [`ManagerError`], whatever the failure (hook, status,
//!   transport, decode).
//! - `after` and `on_error` hooks only observe; one that panics is logged and skipped.
//! - Each kind has a sync form (`before`) and an async form (`before_async`, returning
//!   `Box::pin(async move { .. })`).
//!
//! `RequestCall`'s `Debug` redacts secret headers; each request is logged at debug level (operation,
//! method, route, status, elapsed) without headers or bodies. URLs in logs and errors go through [`redact_url`], and a
//! base URL with credentials in it is refused ([`ManagerConfigBuilder::build`]).
//!
//! ```
//! use skillbridge::ToolResult;
//! use skillbridge::manager::{CodexManager, ManagerError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ManagerError> {
//! let mut cm = CodexManager::builder().base_url("http://127.0.0.1:3001").build()?;
//! cm.before("*", |call| {
//!     call.headers.insert("x-request-source", "skillbridge".parse().unwrap());
//! });
//! cm.before("tool_calls.respond", |_call| -> Result<(), String> { Err("read-only mode".into()) });
//! cm.on_error("*", |call, error| eprintln!("{} failed: {error}", call.operation));
//!
//! // The second before hook refuses, so nothing is sent.
//! let err = cm.respond_tool_call("1", &ToolResult::text("done")).await.unwrap_err();
//! assert!(matches!(err, ManagerError::Hook { ref message, .. } if message == "read-only mode"));
//! # Ok(())
//! # }
//! ```

pub mod blocking;
mod client;
mod config;
mod error;
mod hooks;
mod tls;
mod types;

pub(crate) use client::is_too_deep;
pub use client::{CodexManager, CodexManagerBuilder};
pub use config::{
    Auth, ConfigError, DEFAULT_API_PREFIX, DEFAULT_BASE_URL, DEFAULT_TIMEOUT, ManagerConfig, ManagerConfigBuilder,
    default_profile_path, is_secret_header, redact_url,
};
pub use error::ManagerError;
pub(crate) use error::{connection_failure, error_chain};
pub use hooks::{ANY_OPERATION, AsyncMiddleware, CallResponse, Hook, HookError, HookOutcome, Middleware, RequestCall};
pub use tls::TlsFailure;
pub(crate) use tls::client_config as tls_client_config;
pub(crate) use types::PendingRow;
pub use types::{
    CreateSession, CreatedSession, MessageAccepted, PendingCalls, PendingToolCall, RespondAck, SendMessage,
    UnreadableRow,
};
