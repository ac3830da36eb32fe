//! [`CodexManager`]: the async codex-manager REST client, its builder, and the request pipeline
//! (before hooks → send → decode → after / on_error hooks).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio_util::bytes::Bytes;

use super::config::{ManagerConfig, ManagerConfigBuilder, redact_url};
use super::error::ManagerError;
use super::hooks::{
    AsyncMiddleware, CallResponse, Hook, HookOutcome, HookSet, Middleware, RequestCall, async_middleware_hooks,
    middleware_hooks,
};
use super::types::{
    CreateSession, CreatedSession, MessageAccepted, PendingCalls, PendingRow, PendingToolCall, RespondAck, SendMessage,
    UnreadableRow,
};
use crate::BoxFuture;
use crate::skill::ToolResult;

/// The async codex-manager REST client.
///
/// Cheap to clone (the HTTP connection pool and configuration are shared); `Send + Sync`. Hooks belong
/// to a handle: registering one affects that handle and clones made afterwards, not earlier clones.
///
/// ```no_run
/// use skillbridge::manager::{CodexManager, CreateSession, SendMessage};
///
/// # async fn demo() -> Result<(), skillbridge::manager::ManagerError> {
/// let mut cm = CodexManager::from_profile("local")?;
///
/// cm.before("sessions.send_message", |call| {
///     if let Some(serde_json::Value::Object(body)) = call.json_body.as_mut() {
///         body.entry("effort").or_insert_with(|| "low".into());
///     }
/// });
/// cm.after("*", |call, _response| println!("completed {}", call.operation));
///
/// let created = cm.create_session(&CreateSession::new().cwd(".")).await?;
/// let accepted = cm.send_message(&created.session_id, &SendMessage::new("hello")).await?;
/// println!("turn {}", accepted.turn_id);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CodexManager {
    shared: Arc<Shared>,
    hooks: Arc<HookSet>,
}

struct Shared {
    config: ManagerConfig,
    http: reqwest::Client,
    /// `config.url("")`, parsed once: without hooks, a request's URL is this with the route appended to the path,
    /// instead of a whole URL parsed per request.
    base: Option<reqwest::Url>,
    /// The configuration's headers (auth included) plus `Accept: application/json`, built once.
    headers: HeaderMap,
    /// The same plus `Content-Type: application/json`, for requests with a body.
    json_headers: HeaderMap,
}

impl Shared {
    fn new(config: ManagerConfig, http: reqwest::Client) -> Self {
        let mut headers = config.headers();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut json_headers = headers.clone();
        json_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self {
            base: reqwest::Url::parse(&config.url("")).ok(),
            config,
            http,
            headers,
            json_headers,
        }
    }

    /// The URL of a route as [`ManagerConfig::url`] spells it, without parsing the scheme and host again; `None`
    /// for a route with a query or fragment (or a base that does not parse), which is sent as text.
    fn route_url(&self, route: &str) -> Option<reqwest::Url> {
        let base = self.base.as_ref()?;
        if route.contains(['?', '#']) {
            return None;
        }
        let mut url = base.clone();
        let mut path = String::with_capacity(base.path().len() + route.len());
        path.push_str(base.path().trim_end_matches('/'));
        path.push_str(route);
        url.set_path(&path);
        Some(url)
    }
}

impl fmt::Debug for CodexManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodexManager")
            .field("config", &self.shared.config)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl CodexManager {
    /// A client for this configuration, without hooks.
    pub fn new(config: ManagerConfig) -> Result<Self, ManagerError> {
        Self::with_hooks(config, HookSet::default())
    }

    /// A builder: configuration setters, hooks, middleware.
    pub fn builder() -> CodexManagerBuilder {
        CodexManagerBuilder::default()
    }

    /// A client configured from the `CODEX_MANAGER_*` environment variables.
    pub fn from_env() -> Result<Self, ManagerError> {
        Self::new(ManagerConfig::from_env()?)
    }

    /// A client configured from a codex-manager CLI profile (see [`ManagerConfig::from_profile`]).
    pub fn from_profile(name: &str) -> Result<Self, ManagerError> {
        Self::new(ManagerConfig::from_profile(name)?)
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.shared.config
    }

    /// A client with the same configuration and hooks but its own connection pool. The blocking
    /// facade uses this so that no connection is shared between two runtimes.
    pub(crate) fn with_fresh_pool(&self) -> Result<Self, ManagerError> {
        Self::with_hooks(self.shared.config.clone(), (*self.hooks).clone())
    }

    fn with_hooks(config: ManagerConfig, hooks: HookSet) -> Result<Self, ManagerError> {
        let mut http = reqwest::Client::builder()
            .timeout(config.timeout())
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS);
        http = match config.tls() {
            // The configuration the stream uses too (reqwest takes its own copy; the verifier is shared).
            Some(tls) => http.tls_backend_preconfigured(rustls::ClientConfig::clone(tls)),
            None => http.tls_backend_preconfigured(super::tls::plain_http_config()),
        };
        let http = http.build().map_err(|source| ManagerError::Transport {
            operation: "client.build".into(),
            source,
        })?;
        Ok(Self {
            shared: Arc::new(Shared::new(config, http)),
            hooks: Arc::new(hooks),
        })
    }

    // ---- hook registration -------------------------------------------------------------------

    /// Registers a hook built with [`Hook`].
    pub fn add_hook(&mut self, hook: Hook) -> &mut Self {
        Arc::make_mut(&mut self.hooks).push(hook);
        self
    }

    /// Registers a sync `before` hook for `operation` (`"*"` for all). It may change the call; returning
    /// `Err` aborts the call with [`ManagerError::Hook`].
    pub fn before<F, R>(&mut self, operation: impl Into<String>, hook: F) -> &mut Self
    where
        F: Fn(&mut RequestCall) -> R + Send + Sync + 'static,
        R: HookOutcome,
    {
        self.add_hook(Hook::before(operation, hook))
    }

    /// Registers an async `before` hook: `|call| Box::pin(async move { ..; Ok(()) })`.
    ///
    /// ```
    /// use skillbridge::manager::{CodexManager, HookError};
    ///
    /// let mut cm = CodexManager::builder().build()?;
    /// cm.before_async("sessions.send_message", |call| {
    ///     Box::pin(async move {
    ///         let model = async { "gpt-5" }.await; // e.g. looked up elsewhere
    ///         match call.json_body.as_mut().and_then(|body| body.as_object_mut()) {
    ///             Some(body) => {
    ///                 body.entry("model").or_insert_with(|| model.into());
    ///                 Ok(())
    ///             }
    ///             None => Err(HookError::new("send_message without a body")),
    ///         }
    ///     })
    /// });
    /// # Ok::<(), skillbridge::manager::ManagerError>(())
    /// ```
    pub fn before_async<F>(&mut self, operation: impl Into<String>, hook: F) -> &mut Self
    where
        F: for<'a> Fn(&'a mut RequestCall) -> BoxFuture<'a, Result<(), super::HookError>> + Send + Sync + 'static,
    {
        self.add_hook(Hook::before_async(operation, hook))
    }

    /// Registers a sync `after` hook (runs after a successful response).
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

    /// Registers a sync `on_error` hook (runs when the call failed, whatever the reason).
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

    /// Registers a sync middleware: its three methods become `"*"` hooks, in this position.
    pub fn use_middleware<M: Middleware>(&mut self, middleware: M) -> &mut Self {
        for hook in middleware_hooks(middleware) {
            self.add_hook(hook);
        }
        self
    }

    /// Registers an async middleware: its three methods become `"*"` hooks, in this position.
    pub fn use_async_middleware<M: AsyncMiddleware>(&mut self, middleware: M) -> &mut Self {
        for hook in async_middleware_hooks(middleware) {
            self.add_hook(hook);
        }
        self
    }

    // ---- operations ---------------------------------------------------------------------------

    /// `sessions.create`: `POST /sessions`. codex-manager rejects more than 128 dynamic tools or an
    /// empty tool name/description with a 400 ([`ManagerError::Status`]).
    pub async fn create_session(&self, req: &CreateSession) -> Result<CreatedSession, ManagerError> {
        const OP: &str = "sessions.create";
        self.execute(OP, Method::POST, "/sessions".into(), Some(req), |body| {
            CreatedSession::from_body(body.clone())
        })
        .await
    }

    /// `sessions.get`: `GET /sessions/:id`, the session detail (410 when deleted).
    pub async fn get_session(&self, id: &str) -> Result<Value, ManagerError> {
        let route = format!("/sessions/{}", crate::util::percent_encode(id));
        self.execute("sessions.get", Method::GET, route, NO_BODY, |body| Ok(body.clone()))
            .await
    }

    /// `sessions.delete`: `DELETE /sessions/:id` (404 unknown, 410 already deleted).
    pub async fn delete_session(&self, id: &str) -> Result<Value, ManagerError> {
        let route = format!("/sessions/{}", crate::util::percent_encode(id));
        self.execute("sessions.delete", Method::DELETE, route, NO_BODY, |body| {
            Ok(body.clone())
        })
        .await
    }

    /// `sessions.send_message`: `POST /sessions/:id/messages`, starts a turn (403 system session,
    /// 404 unknown, 410 deleted).
    pub async fn send_message(&self, id: &str, req: &SendMessage) -> Result<MessageAccepted, ManagerError> {
        const OP: &str = "sessions.send_message";
        let route = format!("/sessions/{}/messages", crate::util::percent_encode(id));
        self.execute(OP, Method::POST, route, Some(req), decode::<MessageAccepted>)
            .await
    }

    /// `sessions.interrupt`: `POST /sessions/:id/interrupt` with `{turnId?}` (409 when no turn is active).
    pub async fn interrupt(&self, id: &str, turn_id: Option<&str>) -> Result<Value, ManagerError> {
        let body = match turn_id {
            Some(turn) => json!({ "turnId": turn }),
            None => json!({}),
        };
        let route = format!("/sessions/{}/interrupt", crate::util::percent_encode(id));
        self.execute("sessions.interrupt", Method::POST, route, Some(&body), |body| {
            Ok(body.clone())
        })
        .await
    }

    /// `sessions.tool_calls.list`: `GET /sessions/:id/tool-calls`, the calls still waiting for an answer.
    ///
    /// A row that cannot be read is logged (warn) and left out, so one odd row cannot hide the others;
    /// [`list_pending_calls`](Self::list_pending_calls) returns those rows instead.
    pub async fn list_tool_calls(&self, session_id: &str) -> Result<Vec<PendingToolCall>, ManagerError> {
        let listing = self.list_pending_calls(session_id).await?;
        for row in &listing.unreadable {
            tracing::warn!(
                session = %session_id,
                request_id = %row.request_id.as_deref().unwrap_or("?"),
                reason = %row.reason,
                "skipping unreadable pending tool call"
            );
        }
        Ok(listing.calls)
    }

    /// `sessions.tool_calls.list`, with the rows that could not be read: the calls still waiting for an answer in
    /// [`PendingCalls::calls`], and in [`PendingCalls::unreadable`] each row that is not a [`PendingToolCall`] or
    /// nests deeper than JSON is read to (128 levels, which `arguments` nested 126 levels deep reach with their copy
    /// under `details`), with its request id when readable and the reason. Nothing is logged.
    ///
    /// A body with such a row cannot be read whole, so it is then read row by row: `after` hooks see it without
    /// the rows that could not be read.
    pub async fn list_pending_calls(&self, session_id: &str) -> Result<PendingCalls, ManagerError> {
        let route = format!("/sessions/{}/tool-calls", crate::util::percent_encode(session_id));
        let op = "sessions.tool_calls.list";
        if self.hooks.len() > 0 {
            return self
                .execute_read(op, Method::GET, route, NO_BODY, Read::Rows, pending_calls)
                .await;
        }
        // Nobody looks at the body as JSON: its rows are read straight into calls, so a listing of tens of
        // thousands of calls is never held as a JSON tree as well.
        let (calls, unreadable) = self.get_unhooked(op, &route, read_listing).await?;
        Ok(PendingCalls { calls, unreadable })
    }

    /// [`list_pending_calls`](Self::list_pending_calls) as the bridge reads it: each row only as far as running and
    /// answering its call needs (the same rows are readable either way).
    pub(crate) async fn list_pending_rows(
        &self,
        session_id: &str,
    ) -> Result<(Vec<PendingRow>, Vec<UnreadableRow>), ManagerError> {
        if self.hooks.len() > 0 {
            let listing = self.list_pending_calls(session_id).await?;
            let rows = listing.calls.into_iter().map(PendingRow::from).collect();
            return Ok((rows, listing.unreadable));
        }
        let route = format!("/sessions/{}/tool-calls", crate::util::percent_encode(session_id));
        self.get_unhooked("sessions.tool_calls.list", &route, read_listing)
            .await
    }

    /// `tool_calls.respond`: `POST /tool-calls/:requestId/response` with `{contentItems, success}`.
    ///
    /// A 404 (`not_found`: unknown or already answered) or 409 (`in_flight`: an answer is being
    /// delivered) comes back as [`ManagerError::Status`] with that status; both mean the call is already
    /// answered: treat them as done, not as failures ([`ManagerError::is_already_answered`]). A 500 means
    /// the upstream failed and the call is pending again: retry ([`ManagerError::is_retryable`]).
    pub async fn respond_tool_call(&self, request_id: &str, body: &ToolResult) -> Result<RespondAck, ManagerError> {
        const OP: &str = "tool_calls.respond";
        let route = format!("/tool-calls/{}/response", crate::util::percent_encode(request_id));
        self.execute(OP, Method::POST, route, Some(body), decode::<RespondAck>)
            .await
    }

    /// Any route below the prefix (e.g. `"/sessions?limit=5"`), under the given operation name for
    /// hooks. Returns the JSON body of a 2xx answer (`Null` when empty); other statuses are
    /// [`ManagerError::Status`].
    pub async fn request(
        &self,
        operation: &str,
        method: Method,
        route: &str,
        body: Option<Value>,
    ) -> Result<Value, ManagerError> {
        self.execute(operation, method, route.to_owned(), body.as_ref(), |body| {
            Ok(body.clone())
        })
        .await
    }

    // ---- pipeline ----------------------------------------------------------------------------

    async fn execute<T, B: Serialize + ?Sized>(
        &self,
        operation: &str,
        method: Method,
        route: String,
        body: Option<&B>,
        decode: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, ManagerError> {
        self.execute_read(operation, method, route, body, Read::Whole, |body, _| decode(body))
            .await
    }

    /// [`execute`](Self::execute), reading the body as `read` says; `decode` also gets the rows that could not be
    /// read (none unless `read` is [`Read::Rows`]).
    async fn execute_read<T, B: Serialize + ?Sized>(
        &self,
        operation: &str,
        method: Method,
        route: String,
        body: Option<&B>,
        read: Read,
        decode: impl FnOnce(&Value, Vec<UnreadableRow>) -> Result<T, String>,
    ) -> Result<T, ManagerError> {
        if self.hooks.len() == 0 {
            return self
                .execute_unhooked(operation, method, &route, body, read, decode)
                .await;
        }
        let json_body = body.map(|body| to_body(operation, body)).transpose()?;
        let headers = match json_body {
            Some(_) => self.shared.json_headers.clone(),
            None => self.shared.headers.clone(),
        };
        let mut call = RequestCall {
            operation: operation.to_owned(),
            method,
            url: self.shared.config.url(&route),
            headers,
            json_body,
        };
        if let Err(error) = self.hooks.run_before(&mut call).await {
            let error = ManagerError::Hook {
                operation: operation.to_owned(),
                message: error.message().to_owned(),
            };
            return Err(self.fail(&call, &route, error).await);
        }
        tracing::debug!(operation, method = %call.method, route = %redact_url(&route), "codex-manager request");
        let started = Instant::now();
        let body = call.json_body.as_ref().map(|body| body.to_string().into_bytes());
        let sent = self
            .send(
                operation,
                call.method.clone(),
                call.url.as_str(),
                call.headers.clone(),
                body,
                read,
            )
            .await;
        let (response, unreadable) = match sent {
            Ok(sent) => sent,
            Err(error) => return Err(self.fail(&call, &route, error).await),
        };
        log_response(operation, &route, &response, started);
        match decode(&response.body, unreadable) {
            Ok(value) => {
                self.hooks.run_after(&call, &response).await;
                Ok(value)
            }
            Err(message) => {
                let error = ManagerError::Decode {
                    operation: operation.to_owned(),
                    message,
                };
                Err(self.fail(&call, &route, error).await)
            }
        }
    }

    /// [`execute`](Self::execute) when no hook is registered: nobody can look at a [`RequestCall`], so none is
    /// built; the body is serialized straight to bytes and the URL is not parsed from text.
    async fn execute_unhooked<T, B: Serialize + ?Sized>(
        &self,
        operation: &str,
        method: Method,
        route: &str,
        body: Option<&B>,
        read: Read,
        decode: impl FnOnce(&Value, Vec<UnreadableRow>) -> Result<T, String>,
    ) -> Result<T, ManagerError> {
        let body = body.map(|body| serialize_body(operation, body)).transpose()?;
        let headers = match body {
            Some(_) => self.shared.json_headers.clone(),
            None => self.shared.headers.clone(),
        };
        tracing::debug!(operation, method = %method, route = %redact_url(route), "codex-manager request");
        let started = Instant::now();
        let sent = match self.send_to_route(operation, method, route, headers, body).await {
            Ok((status, headers, bytes)) => read_response(operation, status, headers, &bytes, read),
            Err(error) => Err(error),
        };
        let failed = |error: ManagerError| {
            tracing::debug!(operation, route = %redact_url(route), error = %error, "codex-manager call failed");
            error
        };
        let (response, unreadable) = sent.map_err(failed)?;
        log_response(operation, route, &response, started);
        decode(&response.body, unreadable).map_err(|message| {
            failed(ManagerError::Decode {
                operation: operation.to_owned(),
                message,
            })
        })
    }

    async fn fail(&self, call: &RequestCall, route: &str, error: ManagerError) -> ManagerError {
        tracing::debug!(operation = %call.operation, route = %redact_url(route), error = %error, "codex-manager call failed");
        self.hooks.run_on_error(call, &error).await;
        error
    }

    /// A `GET` of `route` when no hook is registered, its 2xx body read by `decode` straight from the bytes.
    async fn get_unhooked<T>(
        &self,
        operation: &str,
        route: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, ManagerError> {
        tracing::debug!(operation, method = %Method::GET, route = %redact_url(route), "codex-manager request");
        let started = Instant::now();
        let headers = self.shared.headers.clone();
        let sent = self.send_to_route(operation, Method::GET, route, headers, None).await;
        let failed = |error: ManagerError| {
            tracing::debug!(operation, route = %redact_url(route), error = %error, "codex-manager call failed");
            error
        };
        let (status, _, bytes) = sent.map_err(failed)?;
        log_status(operation, route, status, started);
        decode(&bytes).map_err(|message| {
            failed(ManagerError::Decode {
                operation: operation.to_owned(),
                message: format!("{status} body {message}"),
            })
        })
    }

    /// Sends one request and reads a 2xx body as `read` says: the body as JSON and the rows that could not be
    /// read. Any other status is [`ManagerError::Status`].
    async fn send(
        &self,
        operation: &str,
        method: Method,
        url: impl reqwest::IntoUrl,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        read: Read,
    ) -> Result<(CallResponse, Vec<UnreadableRow>), ManagerError> {
        let (status, headers, bytes) = self.send_bytes(operation, method, url, headers, body).await?;
        read_response(operation, status, headers, &bytes, read)
    }

    /// [`send_bytes`](Self::send_bytes) to `route` below the prefix, without parsing a URL when the route allows.
    async fn send_to_route(
        &self,
        operation: &str,
        method: Method,
        route: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ManagerError> {
        match self.shared.route_url(route) {
            Some(url) => self.send_bytes(operation, method, url, headers, body).await,
            None => {
                let url = self.shared.config.url(route);
                self.send_bytes(operation, method, url.as_str(), headers, body).await
            }
        }
    }
    /// Sends one request and returns a 2xx answer's status, headers and body. Any other status is
    /// [`ManagerError::Status`].
    async fn send_bytes(
        &self,
        operation: &str,
        method: Method,
        url: impl reqwest::IntoUrl,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ManagerError> {
        let transport = |source| ManagerError::Transport {
            operation: operation.to_owned(),
            source,
        };
        let mut request = self.shared.http.request(method, url).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ManagerError::Status {
                operation: operation.to_owned(),
                status,
                body: parse_body(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
            });
        }
        Ok((status, headers, bytes))
    }
}

/// A 2xx answer's body read as `read` says: the body as JSON and the rows that could not be read.
fn read_response(
    operation: &str,
    status: StatusCode,
    headers: HeaderMap,
    bytes: &[u8],
    read: Read,
) -> Result<(CallResponse, Vec<UnreadableRow>), ManagerError> {
    let read = match parse_body(bytes) {
        Ok(body) => Ok((body, Vec::new())),
        Err(error) => match read {
            Read::Rows => read_rows(bytes).ok_or(error),
            Read::Whole => Err(error),
        },
    };
    match read {
        Ok((body, unreadable)) => Ok((CallResponse { status, headers, body }, unreadable)),
        Err(error) => Err(ManagerError::Decode {
            operation: operation.to_owned(),
            message: format!(
                "{status} body {}: {}",
                unreadable_json(&error),
                excerpt(&String::from_utf8_lossy(bytes))
            ),
        }),
    }
}

/// How a 2xx body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// As one JSON value.
    Whole,
    /// As one JSON value, or when it nests too deep for that, as an object whose `data` rows are read one by one
    /// ([`read_rows`]).
    Rows,
}

fn log_response(operation: &str, route: &str, response: &CallResponse, started: Instant) {
    log_status(operation, route, response.status, started);
}

fn log_status(operation: &str, route: &str, status: StatusCode, started: Instant) {
    tracing::debug!(
        operation,
        route = %redact_url(route),
        status = status.as_u16(),
        elapsed_ms = elapsed_ms(started.elapsed()),
        "codex-manager response"
    );
}

/// The `None` body of a request without one.
const NO_BODY: Option<&Value> = None;

/// Idle connections kept for reuse, at most: as many as the bridge's default concurrency, so a steady load reuses
/// its connections while a burst of a library user's own requests does not leave thousands of sockets open.
const MAX_IDLE_CONNECTIONS: usize = 64;

/// Builds a [`CodexManager`]: configuration (defaults, or a whole [`ManagerConfig`]), hooks, middleware.
///
/// ```
/// use std::time::Duration;
/// use skillbridge::manager::{CodexManager, Hook};
///
/// let cm = CodexManager::builder()
///     .base_url("http://127.0.0.1:3001")
///     .bearer_token("token")
///     .timeout(Duration::from_secs(5))
///     .before("*", |call| println!("calling {}", call.operation))
///     .hook(Hook::after("tool_calls.respond", |_call, response| println!("{}", response.status)))
///     .build()?;
/// assert_eq!(cm.config().url("/sessions"), "http://127.0.0.1:3001/api/sessions");
/// # Ok::<(), skillbridge::manager::ManagerError>(())
/// ```
#[derive(Default)]
pub struct CodexManagerBuilder {
    config: ManagerConfigBuilder,
    hooks: HookSet,
}

impl fmt::Debug for CodexManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodexManagerBuilder")
            .field("config", &self.config)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl CodexManagerBuilder {
    /// Replaces the whole configuration (e.g. one from [`ManagerConfig::from_env`]).
    pub fn config(mut self, config: ManagerConfig) -> Self {
        self.config = config.into();
        self
    }

    /// The base URL, e.g. `http://127.0.0.1:3001`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config = self.config.base_url(url);
        self
    }

    /// The route prefix, e.g. `/api`; empty for none.
    pub fn api_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config = self.config.api_prefix(prefix);
        self
    }

    /// The per-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.timeout(timeout);
        self
    }

    /// A bearer token (`Authorization: Bearer ..`).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config = self.config.bearer_token(token);
        self
    }

    /// The RBAC token, role and actor headers; `None` leaves a field as it is.
    pub fn rbac(mut self, token: Option<String>, role: Option<String>, actor: Option<String>) -> Self {
        self.config = self.config.rbac(token, role, actor);
        self
    }

    /// An extra header sent on every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config = self.config.header(name, value);
        self
    }

    /// Trusts the CA certificates of this PEM file besides the system's (see [`ManagerConfigBuilder::ca_file`]).
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config = self.config.ca_file(path);
        self
    }

    /// Trusts the CA certificates of this PEM text besides the system's (see [`ManagerConfigBuilder::ca_pem`]).
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.config = self.config.ca_pem(pem);
        self
    }

    /// Registers a hook built with [`Hook`].
    pub fn hook(mut self, hook: Hook) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Registers a sync `before` hook (see [`CodexManager::before`]).
    pub fn before<F, R>(self, operation: impl Into<String>, hook: F) -> Self
    where
        F: Fn(&mut RequestCall) -> R + Send + Sync + 'static,
        R: HookOutcome,
    {
        self.hook(Hook::before(operation, hook))
    }

    /// Registers an async `before` hook (see [`CodexManager::before_async`]).
    pub fn before_async<F>(self, operation: impl Into<String>, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut RequestCall) -> BoxFuture<'a, Result<(), super::HookError>> + Send + Sync + 'static,
    {
        self.hook(Hook::before_async(operation, hook))
    }

    /// Registers a sync `after` hook.
    pub fn after<F>(self, operation: impl Into<String>, hook: F) -> Self
    where
        F: Fn(&RequestCall, &CallResponse) + Send + Sync + 'static,
    {
        self.hook(Hook::after(operation, hook))
    }

    /// Registers an async `after` hook.
    pub fn after_async<F>(self, operation: impl Into<String>, hook: F) -> Self
    where
        F: for<'a> Fn(&'a RequestCall, &'a CallResponse) -> BoxFuture<'a, ()> + Send + Sync + 'static,
    {
        self.hook(Hook::after_async(operation, hook))
    }

    /// Registers a sync `on_error` hook.
    pub fn on_error<F>(self, operation: impl Into<String>, hook: F) -> Self
    where
        F: Fn(&RequestCall, &ManagerError) + Send + Sync + 'static,
    {
        self.hook(Hook::on_error(operation, hook))
    }

    /// Registers an async `on_error` hook.
    pub fn on_error_async<F>(self, operation: impl Into<String>, hook: F) -> Self
    where
        F: for<'a> Fn(&'a RequestCall, &'a ManagerError) -> BoxFuture<'a, ()> + Send + Sync + 'static,
    {
        self.hook(Hook::on_error_async(operation, hook))
    }

    /// Registers a sync middleware (its hooks run as `"*"` hooks, in this position).
    pub fn middleware<M: Middleware>(mut self, middleware: M) -> Self {
        for hook in middleware_hooks(middleware) {
            self.hooks.push(hook);
        }
        self
    }

    /// Registers an async middleware (its hooks run as `"*"` hooks, in this position).
    pub fn async_middleware<M: AsyncMiddleware>(mut self, middleware: M) -> Self {
        for hook in async_middleware_hooks(middleware) {
            self.hooks.push(hook);
        }
        self
    }

    /// Checks the configuration and builds the async client.
    pub fn build(self) -> Result<CodexManager, ManagerError> {
        CodexManager::with_hooks(self.config.build()?, self.hooks)
    }

    /// Checks the configuration and builds the [blocking](super::blocking) client.
    pub fn build_blocking(self) -> Result<super::blocking::CodexManager, ManagerError> {
        super::blocking::CodexManager::from_async(&self.build()?)
    }
}

fn to_body(operation: &str, value: &(impl Serialize + ?Sized)) -> Result<Value, ManagerError> {
    serde_json::to_value(value).map_err(|e| body_error(operation, e))
}

fn serialize_body(operation: &str, value: &(impl Serialize + ?Sized)) -> Result<Vec<u8>, ManagerError> {
    serde_json::to_vec(value).map_err(|e| body_error(operation, e))
}

fn body_error(operation: &str, error: serde_json::Error) -> ManagerError {
    ManagerError::Decode {
        operation: operation.to_owned(),
        message: format!("request body could not be serialized: {error}"),
    }
}

fn decode<T: DeserializeOwned>(body: &Value) -> Result<T, String> {
    T::deserialize(body).map_err(|e| format!("{e} in {}", excerpt(&body.to_string())))
}

/// The rows of a listing body `{"data": [..]}` read from its bytes, each on its own: a row that cannot be read (too
/// deep, wrong shape) is reported with its request id and why, and the others are served.
fn read_listing<T: DeserializeOwned>(bytes: &[u8]) -> Result<(Vec<T>, Vec<UnreadableRow>), String> {
    #[derive(serde::Deserialize)]
    struct Listing<'a> {
        #[serde(borrow)]
        data: Vec<&'a RawValue>,
    }
    let listing: Listing<'_> = serde_json::from_slice(bytes).map_err(|error| {
        let text = String::from_utf8_lossy(bytes);
        if error.is_data() {
            format!("is not {{\"data\": [..]}} ({error}): {}", excerpt(&text))
        } else {
            format!("{}: {}", unreadable_json(&error), excerpt(&text))
        }
    })?;
    let (mut rows, mut unreadable) = (Vec::with_capacity(listing.data.len()), Vec::new());
    for row in listing.data {
        if let Some(too_deep) = too_deep_row(row.get()) {
            unreadable.push(too_deep);
            continue;
        }
        let mut reader = serde_json::Deserializer::from_str(row.get());
        match serde_path_to_error::deserialize::<_, T>(&mut reader) {
            Ok(read) => rows.push(read),
            Err(error) => unreadable.push(UnreadableRow {
                request_id: request_id_of(row.get()),
                reason: error.to_string(),
            }),
        }
    }
    Ok((rows, unreadable))
}

/// The calls of a listing body `{"data": [..]}`, and its rows that are not pending calls added to those that could
/// not be read at all.
fn pending_calls(body: &Value, mut unreadable: Vec<UnreadableRow>) -> Result<PendingCalls, String> {
    let rows = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("expected {{\"data\": [..]}}, got {}", excerpt(&body.to_string())))?;
    let mut calls = Vec::with_capacity(rows.len());
    for row in rows {
        match serde_path_to_error::deserialize::<_, PendingToolCall>(row) {
            Ok(call) => calls.push(call),
            Err(error) => unreadable.push(UnreadableRow {
                request_id: row.get("requestId").and_then(crate::util::request_id_string),
                reason: error.to_string(),
            }),
        }
    }
    Ok(PendingCalls { calls, unreadable })
}

/// The deepest a pending-call row may nest: serde_json reads JSON to a depth of 128, exclusive.
const MAX_ROW_DEPTH: usize = 127;

/// A listing body that could not be read whole, read row by row: an object whose `data` array is split into raw
/// rows (which takes no recursion, so any depth), each row then read on its own as far as serde_json's limit goes.
/// Returns the body with the rows that could be read, and the others; `None` when it is not such an object, or
/// something besides a row cannot be read.
fn read_rows(bytes: &[u8]) -> Option<(Value, Vec<UnreadableRow>)> {
    let top: BTreeMap<String, &RawValue> = serde_json::from_slice(bytes).ok()?;
    let mut body = Map::new();
    let mut unreadable = Vec::new();
    for (key, raw) in top {
        let value = if key == "data" {
            let rows: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
            let mut readable = Vec::with_capacity(rows.len());
            for row in rows {
                match serde_json::from_str::<Value>(row.get()) {
                    Ok(row) => readable.push(row),
                    Err(error) => unreadable.push(unreadable_row(row.get(), &error)),
                }
            }
            Value::Array(readable)
        } else {
            serde_json::from_str(raw.get()).ok()?
        };
        body.insert(key, value);
    }
    Some((Value::Object(body), unreadable))
}

/// What can be said about a row that serde_json could not read: its request id, when that field alone reads, and
/// how deep it nests, naming the deepest field (`arguments` rather than `details`, which holds a copy of them one
/// level down).
fn unreadable_row(row: &str, error: &serde_json::Error) -> UnreadableRow {
    too_deep_row(row).unwrap_or_else(|| UnreadableRow {
        request_id: request_id_of(row),
        reason: error.to_string(),
    })
}

/// A row nesting deeper than [`MAX_ROW_DEPTH`], reported as [`unreadable_row`] says; `None` for any other row. Rows
/// are measured whole, whatever fields a reader keeps, so a row is readable or not whoever reads it.
fn too_deep_row(row: &str) -> Option<UnreadableRow> {
    let depth = nesting(row);
    if depth <= MAX_ROW_DEPTH {
        return None;
    }
    let fields = serde_json::from_str::<BTreeMap<String, &RawValue>>(row).unwrap_or_default();
    let depths: Vec<(usize, &str)> = fields.iter().map(|(k, v)| (nesting(v.get()), k.as_str())).collect();
    let deepest = depths.iter().max().copied();
    let arguments = depths.iter().find(|(_, k)| *k == "arguments").copied();
    let reason = match (deepest, arguments) {
        (Some((most, _)), Some((d, _))) if d + 1 >= most => {
            format!("`arguments` nests {d} levels deep (the row {depth}): rows are read to a depth of {MAX_ROW_DEPTH}")
        }
        (Some((d, field)), _) => {
            format!("`{field}` nests {d} levels deep (the row {depth}): rows are read to a depth of {MAX_ROW_DEPTH}")
        }
        (None, _) => format!("the row nests {depth} levels deep: rows are read to a depth of {MAX_ROW_DEPTH}"),
    };
    Some(UnreadableRow {
        request_id: request_id_in(&fields),
        reason,
    })
}

/// The request id of a row, when that field alone reads.
fn request_id_of(row: &str) -> Option<String> {
    request_id_in(&serde_json::from_str::<BTreeMap<String, &RawValue>>(row).unwrap_or_default())
}

fn request_id_in(fields: &BTreeMap<String, &RawValue>) -> Option<String> {
    fields
        .get("requestId")
        .and_then(|id| serde_json::from_str::<Value>(id.get()).ok())
        .and_then(|id| crate::util::request_id_string(&id))
}

/// How deep a JSON text nests: 0 for a scalar, 1 for `[]` or `{"a": 1}`. Scanned rather than parsed, so it measures
/// any depth without recursion.
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Empty → `Null`; JSON → its value.
fn parse_body(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes)
}

/// Why a body could not be read, for an error message.
fn unreadable_json(error: &serde_json::Error) -> String {
    if is_too_deep(error) {
        format!("nests deeper than the 128 levels JSON is read to ({error})")
    } else {
        format!("is not JSON ({error})")
    }
}

/// `true` when serde_json gave up at its recursion limit.
pub(crate) fn is_too_deep(error: &serde_json::Error) -> bool {
    error.is_syntax() && error.to_string().starts_with("recursion limit exceeded")
}

fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    if text.chars().count() <= MAX_CHARS {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(MAX_CHARS).collect::<String>())
    }
}

fn elapsed_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(crate::util::percent_encode("01a20b31-f8aa_7.x~"), "01a20b31-f8aa_7.x~");
        assert_eq!(crate::util::percent_encode("a/b?c d"), "a%2Fb%3Fc%20d");
    }

    #[test]
    fn bodies_parse_as_json_or_null() {
        assert_eq!(parse_body(b"").unwrap(), Value::Null);
        assert_eq!(parse_body(b"{\"a\":1}").unwrap(), json!({"a": 1}));
        assert!(parse_body(b"Bad Gateway").is_err());
    }

    /// `depth` nested arrays around `1`.
    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    /// A pending row whose arguments (and their copy in `details`) nest `depth` levels.
    fn row(id: u32, depth: usize) -> String {
        let arguments = format!(r#"{{"a":{}}}"#, nested(depth - 1));
        format!(
            r#"{{"requestId":{id},"threadId":"t","callId":"c","tool":"echo","arguments":{arguments},"details":{{"arguments":{arguments}}},"status":"pending"}}"#
        )
    }

    #[test]
    fn nesting_is_measured_without_recursion_and_ignores_brackets_in_strings() {
        assert_eq!(nesting("1"), 0);
        assert_eq!(nesting(r#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(nesting(r#"{"a":"[[[\"{{"}"#), 1);
        assert_eq!(nesting(&nested(100_000)), 100_000);
    }

    #[test]
    fn a_body_too_deep_to_read_whole_is_read_row_by_row() {
        // The row nests one level more than its arguments (the object), `details` one more again.
        let fits = row(1, MAX_ROW_DEPTH - 2);
        let too_deep = row(2, MAX_ROW_DEPTH - 1);
        let far_too_deep = row(3, 100_000);
        let body = format!(
            r#"{{"data":[{fits},{too_deep},{{"requestId":"4","tool":5}},{far_too_deep},{}],"next":null}}"#,
            row(5, 1)
        );
        let whole = parse_body(body.as_bytes()).unwrap_err();
        assert!(is_too_deep(&whole), "{whole}");
        assert!(unreadable_json(&whole).starts_with("nests deeper than the 128 levels"));

        let (json, unreadable) = read_rows(body.as_bytes()).unwrap();
        assert_eq!(json["next"], Value::Null);
        let listing = pending_calls(&json, unreadable).unwrap();
        let ids: Vec<&str> = listing.calls.iter().map(|c| c.request_id.as_str()).collect();
        assert_eq!(ids, ["1", "5"]);
        let unreadable: Vec<(Option<&str>, &str)> = (listing.unreadable.iter())
            .map(|row| (row.request_id.as_deref(), row.reason.as_str()))
            .collect();
        assert_eq!(
            unreadable,
            [
                (
                    Some("2"),
                    "`arguments` nests 126 levels deep (the row 128): rows are read to a depth of 127"
                ),
                (
                    Some("3"),
                    "`arguments` nests 100000 levels deep (the row 100002): rows are read to a depth of 127"
                ),
                (Some("4"), "tool: invalid type: integer `5`, expected a string"),
            ]
        );
        assert!(read_rows(b"[1]").is_none() && read_rows(b"{\"data\":[1,}").is_none());
    }

    #[test]
    fn route_urls_are_what_the_whole_url_parses_to() {
        let routes = [
            "/tool-calls/0/response".to_owned(),
            format!("/tool-calls/{}/response", crate::util::percent_encode("a/b?c d#e%..")),
            format!("/sessions/{}", crate::util::percent_encode("..")),
            "/sessions".to_owned(),
        ];
        for (base, prefix) in [
            ("http://127.0.0.1:3001", "/api"),
            ("http://127.0.0.1:3001/", "/api"),
            ("http://localhost:8080/proxy", "/api"),
            ("http://[::1]:3001", ""),
        ] {
            let config = ManagerConfig::builder()
                .base_url(base)
                .api_prefix(prefix)
                .build()
                .unwrap();
            let shared = Shared::new(config.clone(), reqwest::Client::new());
            for route in &routes {
                let expected = reqwest::Url::parse(&config.url(route)).unwrap();
                assert_eq!(shared.route_url(route), Some(expected), "{base} {prefix} {route}");
            }
            assert_eq!(shared.route_url("/sessions?limit=5"), None, "a query goes the long way");
        }
    }

    #[test]
    fn client_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<CodexManager>();
    }
}
