//! A blocking codex-manager client for programs without an async runtime, like `reqwest::blocking`.
//!
//! [`CodexManager`] owns a current-thread tokio runtime running on a dedicated thread; each call is
//! spawned there and the calling thread waits for its result. Because the runtime lives on its own
//! thread, calling (or dropping) the client from inside an async context does not panic, unlike
//! `reqwest::blocking`: it blocks that executor thread for the duration of the call, though, so in
//! async code use the async [`super::CodexManager`] instead. A hook must not call the blocking client
//! it runs in (that call fails with [`ManagerError::Runtime`] instead of deadlocking).
//!
//! ```no_run
//! use skillbridge::manager::blocking::CodexManager;
//! use skillbridge::manager::{CreateSession, SendMessage};
//!
//! let mut cm = CodexManager::from_profile("local")?;
//! cm.after("*", |call, response| println!("{} -> {}", call.operation, response.status));
//! let created = cm.create_session(&CreateSession::new().cwd("."))?;
//! cm.send_message(&created.session_id, &SendMessage::new("hello"))?;
//! for call in cm.list_tool_calls(&created.session_id)? {
//!     cm.respond_tool_call(&call.request_id, &skillbridge::ToolResult::text("done"))?;
//! }
//! # Ok::<(), skillbridge::manager::ManagerError>(())
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};

use http::Method;
use serde_json::Value;
use tokio::sync::oneshot;

use super::config::ManagerConfig;
use super::error::ManagerError;
use super::hooks::{AsyncMiddleware, CallResponse, Hook, HookError, HookOutcome, Middleware, RequestCall};
use super::types::{
    CreateSession, CreatedSession, MessageAccepted, PendingCalls, PendingToolCall, RespondAck, SendMessage,
};
use crate::BoxFuture;
use crate::skill::ToolResult;

/// The blocking codex-manager client: the same operations and hooks as the async
/// [`super::CodexManager`], synchronous. Cheap to clone; the runtime thread stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct CodexManager {
    client: super::CodexManager,
    worker: Arc<Worker>,
}

impl fmt::Debug for CodexManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::CodexManager")
            .field("client", &self.client)
            .finish()
    }
}

impl CodexManager {
    /// A client for this configuration, without hooks.
    pub fn new(config: ManagerConfig) -> Result<Self, ManagerError> {
        Self::from_async(&super::CodexManager::new(config)?)
    }

    /// A builder; finish it with [`build_blocking`](super::CodexManagerBuilder::build_blocking).
    pub fn builder() -> super::CodexManagerBuilder {
        super::CodexManager::builder()
    }

    /// A client configured from the `CODEX_MANAGER_*` environment variables.
    pub fn from_env() -> Result<Self, ManagerError> {
        Self::new(ManagerConfig::from_env()?)
    }

    /// A client configured from a codex-manager CLI profile.
    pub fn from_profile(name: &str) -> Result<Self, ManagerError> {
        Self::new(ManagerConfig::from_profile(name)?)
    }

    /// A blocking client with the configuration and hooks of an async one (and its own connections).
    pub fn from_async(client: &super::CodexManager) -> Result<Self, ManagerError> {
        Ok(Self {
            client: client.with_fresh_pool()?,
            worker: Arc::new(Worker::start()?),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        self.client.config()
    }

    /// Registers a hook built with [`Hook`].
    pub fn add_hook(&mut self, hook: Hook) -> &mut Self {
        self.client.add_hook(hook);
        self
    }

    /// Registers a sync `before` hook (see [`super::CodexManager::before`]).
    pub fn before<F, R>(&mut self, operation: impl Into<String>, hook: F) -> &mut Self
    where
        F: Fn(&mut RequestCall) -> R + Send + Sync + 'static,
        R: HookOutcome,
    {
        self.add_hook(Hook::before(operation, hook))
    }

    /// Registers an async `before` hook (it runs on the client's runtime thread).
    pub fn before_async<F>(&mut self, operation: impl Into<String>, hook: F) -> &mut Self
    where
        F: for<'a> Fn(&'a mut RequestCall) -> BoxFuture<'a, Result<(), HookError>> + Send + Sync + 'static,
    {
        self.add_hook(Hook::before_async(operation, hook))
    }

    /// Registers a sync `after` hook.
    pub fn after<F>(&mut self, operation: impl Into<String>, hook: F) -> &mut Self
    where
        F: Fn(&RequestCall, &CallResponse) + Send + Sync + 'static,
    {
        self.add_hook(Hook::after(operation, hook))
    }

    /// Registers an async `after` hook.
    pub fn after_async<F>(&mut self, operation: impl Into<String>, hook: F) -> &mut Self
    where
        F: for<'a> Fn(&'a RequestCall, &'a CallResponse) -> BoxFuture<'a, ()> + Send + Sync + 'static,
    {
        self.add_hook(Hook::after_async(operation, hook))
    }

    /// Registers a sync `on_error` hook.
    pub fn on_error<F>(&mut self, operation: impl Into<String>, hook: F) -> &mut Self
    where
        F: Fn(&RequestCall, &ManagerError) + Send + Sync + 'static,
    {
        self.add_hook(Hook::on_error(operation, hook))
    }

    /// Registers an async `on_error` hook.
    pub fn on_error_async<F>(&mut self, operation: impl Into<String>, hook: F) -> &mut Self
    where
        F: for<'a> Fn(&'a RequestCall, &'a ManagerError) -> BoxFuture<'a, ()> + Send + Sync + 'static,
    {
        self.add_hook(Hook::on_error_async(operation, hook))
    }

    /// Registers a sync middleware.
    pub fn use_middleware<M: Middleware>(&mut self, middleware: M) -> &mut Self {
        self.client.use_middleware(middleware);
        self
    }

    /// Registers an async middleware (it runs on the client's runtime thread).
    pub fn use_async_middleware<M: AsyncMiddleware>(&mut self, middleware: M) -> &mut Self {
        self.client.use_async_middleware(middleware);
        self
    }

    /// `sessions.create` (see [`super::CodexManager::create_session`]).
    pub fn create_session(&self, req: &CreateSession) -> Result<CreatedSession, ManagerError> {
        let (client, req) = (self.client.clone(), req.clone());
        self.run(async move { client.create_session(&req).await })
    }

    /// `sessions.get`.
    pub fn get_session(&self, id: &str) -> Result<Value, ManagerError> {
        let (client, id) = (self.client.clone(), id.to_owned());
        self.run(async move { client.get_session(&id).await })
    }

    /// `sessions.delete`.
    pub fn delete_session(&self, id: &str) -> Result<Value, ManagerError> {
        let (client, id) = (self.client.clone(), id.to_owned());
        self.run(async move { client.delete_session(&id).await })
    }

    /// `sessions.send_message`.
    pub fn send_message(&self, id: &str, req: &SendMessage) -> Result<MessageAccepted, ManagerError> {
        let (client, id, req) = (self.client.clone(), id.to_owned(), req.clone());
        self.run(async move { client.send_message(&id, &req).await })
    }

    /// `sessions.interrupt`.
    pub fn interrupt(&self, id: &str, turn_id: Option<&str>) -> Result<Value, ManagerError> {
        let (client, id, turn) = (self.client.clone(), id.to_owned(), turn_id.map(str::to_owned));
        self.run(async move { client.interrupt(&id, turn.as_deref()).await })
    }

    /// `sessions.tool_calls.list`.
    pub fn list_tool_calls(&self, session_id: &str) -> Result<Vec<PendingToolCall>, ManagerError> {
        let (client, id) = (self.client.clone(), session_id.to_owned());
        self.run(async move { client.list_tool_calls(&id).await })
    }

    /// `sessions.tool_calls.list`, with the rows that could not be read (see
    /// [`CodexManager::list_pending_calls`](super::CodexManager::list_pending_calls)).
    pub fn list_pending_calls(&self, session_id: &str) -> Result<PendingCalls, ManagerError> {
        let (client, id) = (self.client.clone(), session_id.to_owned());
        self.run(async move { client.list_pending_calls(&id).await })
    }

    /// `tool_calls.respond`; 404 and 409 mean "already answered" (see
    /// [`super::CodexManager::respond_tool_call`]).
    pub fn respond_tool_call(&self, request_id: &str, body: &ToolResult) -> Result<RespondAck, ManagerError> {
        let (client, id, body) = (self.client.clone(), request_id.to_owned(), body.clone());
        self.run(async move { client.respond_tool_call(&id, &body).await })
    }

    /// Any route below the prefix (see [`super::CodexManager::request`]).
    pub fn request(
        &self,
        operation: &str,
        method: Method,
        route: &str,
        body: Option<Value>,
    ) -> Result<Value, ManagerError> {
        let (client, operation, route) = (self.client.clone(), operation.to_owned(), route.to_owned());
        self.run(async move { client.request(&operation, method, &route, body).await })
    }

    fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, ManagerError>> + Send + 'static,
    ) -> Result<T, ManagerError> {
        if thread::current().id() == self.worker.thread_id {
            return Err(runtime_error(
                "the blocking client was called from one of its own hooks; use the async client there",
            ));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.worker.handle.spawn(async move {
            // The receiver is gone only if the caller's thread died; nothing to report to.
            let _ = tx.send(call.await);
        });
        rx.recv()
            .map_err(|_| runtime_error("the runtime thread stopped before the call finished"))?
    }
}

fn runtime_error(message: &str) -> ManagerError {
    ManagerError::Runtime {
        message: message.to_owned(),
    }
}

/// The runtime thread: a current-thread runtime that runs spawned calls until told to stop.
struct Worker {
    handle: tokio::runtime::Handle,
    thread_id: ThreadId,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start() -> Result<Self, ManagerError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("codex-manager-blocking".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(runtime.handle().clone()));
                // Either a stop signal or every handle dropped ends the thread.
                runtime.block_on(async move {
                    let _ = stop_rx.await;
                });
            })
            .map_err(|e| runtime_error(&format!("could not start the runtime thread: {e}")))?;
        let handle = match ready_rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(message)) => return Err(runtime_error(&format!("could not build the runtime: {message}"))),
            Err(_) => return Err(runtime_error("the runtime thread exited while starting")),
        };
        Ok(Self {
            handle,
            thread_id: thread.thread().id(),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The last clone may be dropped by a hook on the runtime thread itself: never join oneself.
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_client_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<CodexManager>();
    }

    #[test]
    fn transport_errors_come_back_from_the_runtime_thread() {
        // A port that was just bound and released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = ManagerConfig::builder()
            .base_url(format!("http://127.0.0.1:{port}"))
            .build()
            .unwrap();
        let cm = CodexManager::new(config).unwrap();
        let err = cm.get_session("s").unwrap_err();
        assert!(matches!(err, ManagerError::Transport { .. }), "{err:?}");
        assert_eq!(err.operation(), "sessions.get");
        assert!(err.is_retryable());
    }
}
