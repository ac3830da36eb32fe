//! The codex-manager REST client: configuration, typed operations, hooks and a blocking facade.
//!
//! - [`CodexManager`]: the async client (`sessions.create`, `sessions.get`, `sessions.delete`,
//!   `sessions.send_message`, `sessions.interrupt`, `sessions.tool_calls.list`, `tool_calls.respond`,
//!   and [`CodexManager::request`] for any other route).
//! - [`hooks`](Hook): `before` / `after` / `on_error` around every call, and [`Middleware`].
//! - [`blocking::CodexManager`]: the same, synchronous.
//! - [`ManagerError`]: typed failures carrying the operation, status and body.

pub mod blocking;
mod client;
mod config;
mod error;
mod hooks;
mod types;

pub use client::{CodexManager, CodexManagerBuilder};
pub use config::{
    Auth, ConfigError, DEFAULT_API_PREFIX, DEFAULT_BASE_URL, DEFAULT_TIMEOUT, ManagerConfig, ManagerConfigBuilder,
    default_profile_path, is_secret_header,
};
pub use error::ManagerError;
pub use hooks::{
    ANY_OPERATION, AsyncMiddleware, BoxFuture, CallResponse, Hook, HookError, HookOutcome, Middleware, RequestCall,
};
pub use types::{CreateSession, CreatedSession, MessageAccepted, PendingToolCall, RespondAck, SendMessage};
