//! Hooks around every codex-manager REST call: `before` (may change the call), `after` (sees the
//! response) and `on_error` (sees the failure), for one operation or for all (`"*"`), sync or async,
//! and [`Middleware`] objects that bundle the three.
//!
//! Order: for each stage, the hooks registered for `"*"` run first, then those registered for the
//! exact operation, each group in registration order. A middleware registers its three methods as
//! `"*"` hooks at the point where it is added. The first `before` hook that fails aborts the call
//! with [`ManagerError::Hook`] (the request is not sent; `on_error` hooks still run). `after` and
//! `on_error` hooks observe only; a panicking hook is caught, logged and skipped, and in a `before`
//! hook it aborts the call like an error.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::BoxFuture;
use futures::FutureExt;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use super::config::is_secret_header;
use super::error::ManagerError;

/// The operation pattern that matches every operation.
pub const ANY_OPERATION: &str = "*";

/// One REST call about to be sent. `before` hooks get it `&mut` and may change anything; the request
/// is built from what they leave. `Debug` redacts secret headers (see [`is_secret_header`]) and the URL's
/// credentials and secret query values ([`redact_url`](super::redact_url)).
#[derive(Clone)]
pub struct RequestCall {
    /// The operation name, e.g. `"sessions.send_message"`.
    pub operation: String,
    /// The HTTP method.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// The headers, auth headers included.
    pub headers: HeaderMap,
    /// The JSON body, if the call has one.
    pub json_body: Option<Value>,
}

impl fmt::Debug for RequestCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestCall")
            .field("operation", &self.operation)
            .field("method", &self.method)
            .field("url", &super::config::redact_url(&self.url))
            .field("headers", &RedactedHeaders(&self.headers))
            .field("json_body", &self.json_body)
            .finish()
    }
}

/// A successful response, as `after` hooks see it.
#[derive(Clone)]
pub struct CallResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
}

impl fmt::Debug for CallResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallResponse")
            .field("status", &self.status)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("body", &self.body)
            .finish()
    }
}

struct RedactedHeaders<'a>(&'a HeaderMap);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if value.is_sensitive() || is_secret_header(name.as_str()) || name == http::header::SET_COOKIE {
                map.entry(&name.as_str(), &"<redacted>");
            } else {
                map.entry(&name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
            }
        }
        map.finish()
    }
}

/// Why a `before` hook refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    message: String,
}

impl HookError {
    /// An error with this message; any `Display` works, so `.map_err(HookError::new)` converts errors.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for HookError {
    fn from(message: String) -> Self {
        Self { message }
    }
}

impl From<&str> for HookError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// What a sync `before` hook may return: `()` (always proceeds) or `Result<(), E>` with a
/// displayable error (`Err` aborts the call).
pub trait HookOutcome {
    /// The outcome as a result.
    fn into_hook_result(self) -> Result<(), HookError>;
}

impl HookOutcome for () {
    fn into_hook_result(self) -> Result<(), HookError> {
        Ok(())
    }
}

impl<E: fmt::Display> HookOutcome for Result<(), E> {
    fn into_hook_result(self) -> Result<(), HookError> {
        self.map_err(HookError::new)
    }
}

/// Sync hooks for every operation, bundled. Every method defaults to doing nothing.
///
/// ```
/// use skillbridge::manager::{CallResponse, CodexManager, ManagerError, Middleware, RequestCall};
///
/// struct AuditMiddleware;
///
/// impl Middleware for AuditMiddleware {
///     fn before(&self, call: &mut RequestCall) -> Result<(), skillbridge::manager::HookError> {
///         println!("before {}", call.operation);
///         Ok(())
///     }
///     fn after(&self, call: &RequestCall, _response: &CallResponse) {
///         println!("after {}", call.operation);
///     }
///     fn on_error(&self, call: &RequestCall, error: &ManagerError) {
///         println!("error {} {error}", call.operation);
///     }
/// }
///
/// let mut cm = CodexManager::builder().base_url("http://127.0.0.1:3001").build()?;
/// cm.use_middleware(AuditMiddleware);
/// # Ok::<(), ManagerError>(())
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Runs before the request is sent; may change it; an error aborts the call.
    fn before(&self, call: &mut RequestCall) -> Result<(), HookError> {
        let _ = call;
        Ok(())
    }

    /// Runs after a successful response.
    fn after(&self, call: &RequestCall, response: &CallResponse) {
        let _ = (call, response);
    }

    /// Runs when the call failed.
    fn on_error(&self, call: &RequestCall, error: &ManagerError) {
        let _ = (call, error);
    }
}

/// Async hooks for every operation, bundled. Every method defaults to doing nothing.
///
/// ```
/// use skillbridge::BoxFuture;
/// use skillbridge::manager::{AsyncMiddleware, CodexManager, HookError, RequestCall};
///
/// /// Fetches a fresh token before every call.
/// struct TokenRefresh;
///
/// impl AsyncMiddleware for TokenRefresh {
///     fn before<'a>(&'a self, call: &'a mut RequestCall) -> BoxFuture<'a, Result<(), HookError>> {
///         Box::pin(async move {
///             let token = async { "fresh-token" }.await;
///             let value = format!("Bearer {token}").parse().map_err(HookError::new)?;
///             call.headers.insert("authorization", value);
///             Ok(())
///         })
///     }
/// }
///
/// let mut cm = CodexManager::builder().build()?;
/// cm.use_async_middleware(TokenRefresh);
/// # Ok::<(), skillbridge::manager::ManagerError>(())
/// ```
pub trait AsyncMiddleware: Send + Sync + 'static {
    /// Runs before the request is sent; may change it; an error aborts the call.
    fn before<'a>(&'a self, call: &'a mut RequestCall) -> BoxFuture<'a, Result<(), HookError>> {
        let _ = call;
        Box::pin(async { Ok(()) })
    }

    /// Runs after a successful response.
    fn after<'a>(&'a self, call: &'a RequestCall, response: &'a CallResponse) -> BoxFuture<'a, ()> {
        let _ = (call, response);
        Box::pin(async {})
    }

    /// Runs when the call failed.
    fn on_error<'a>(&'a self, call: &'a RequestCall, error: &'a ManagerError) -> BoxFuture<'a, ()> {
        let _ = (call, error);
        Box::pin(async {})
    }
}

type BeforeFn = Arc<dyn for<'a> Fn(&'a mut RequestCall) -> BoxFuture<'a, Result<(), HookError>> + Send + Sync>;
type AfterFn = Arc<dyn for<'a> Fn(&'a RequestCall, &'a CallResponse) -> BoxFuture<'a, ()> + Send + Sync>;
type ErrorFn = Arc<dyn for<'a> Fn(&'a RequestCall, &'a ManagerError) -> BoxFuture<'a, ()> + Send + Sync>;

#[derive(Clone)]
enum Stage {
    Before(BeforeFn),
    After(AfterFn),
    OnError(ErrorFn),
}

/// One hook: a stage (`before`, `after`, `on_error`), the operation it applies to (`"*"` for all) and
/// the function. Register it with [`CodexManager::add_hook`](super::CodexManager::add_hook) or
/// [`CodexManagerBuilder::hook`](super::CodexManagerBuilder::hook); the `before`/`after`/`on_error`
/// shortcuts there build one for you.
#[derive(Clone)]
pub struct Hook {
    operation: String,
    stage: Stage,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Before(_) => "before",
            Stage::After(_) => "after",
            Stage::OnError(_) => "on_error",
        };
        f.debug_struct("Hook")
            .field("stage", &stage)
            .field("operation", &self.operation)
            .finish()
    }
}

impl Hook {
    /// A sync `before` hook; it returns `()` or `Result<(), impl Display>`.
    pub fn before<F, R>(operation: impl Into<String>, hook: F) -> Self
    where
        F: Fn(&mut RequestCall) -> R + Send + Sync + 'static,
        R: HookOutcome,
    {
        let f: BeforeFn = Arc::new(move |call: &mut RequestCall| {
            let outcome = hook(call).into_hook_result();
            Box::pin(async move { outcome })
        });
        Self::new(operation, Stage::Before(f))
    }

    /// An async `before` hook: `|call| Box::pin(async move { ..; Ok(()) })`.
    pub fn before_async<F>(operation: impl Into<String>, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut RequestCall) -> BoxFuture<'a, Result<(), HookError>> + Send + Sync + 'static,
    {
        Self::new(operation, Stage::Before(Arc::new(hook)))
    }

    /// A sync `after` hook.
    pub fn after<F>(operation: impl Into<String>, hook: F) -> Self
    where
        F: Fn(&RequestCall, &CallResponse) + Send + Sync + 'static,
    {
        let f: AfterFn = Arc::new(move |call: &RequestCall, response: &CallResponse| {
            hook(call, response);
            Box::pin(async {})
        });
        Self::new(operation, Stage::After(f))
    }

    /// An async `after` hook: `|call, response| Box::pin(async move { .. })`.
    pub fn after_async<F>(operation: impl Into<String>, hook: F) -> Self
    where
        F: for<'a> Fn(&'a RequestCall, &'a CallResponse) -> BoxFuture<'a, ()> + Send + Sync + 'static,
    {
        Self::new(operation, Stage::After(Arc::new(hook)))
    }

    /// A sync `on_error` hook.
    pub fn on_error<F>(operation: impl Into<String>, hook: F) -> Self
    where
        F: Fn(&RequestCall, &ManagerError) + Send + Sync + 'static,
    {
        let f: ErrorFn = Arc::new(move |call: &RequestCall, error: &ManagerError| {
            hook(call, error);
            Box::pin(async {})
        });
        Self::new(operation, Stage::OnError(f))
    }

    /// An async `on_error` hook: `|call, error| Box::pin(async move { .. })`.
    pub fn on_error_async<F>(operation: impl Into<String>, hook: F) -> Self
    where
        F: for<'a> Fn(&'a RequestCall, &'a ManagerError) -> BoxFuture<'a, ()> + Send + Sync + 'static,
    {
        Self::new(operation, Stage::OnError(Arc::new(hook)))
    }

    /// The operation this hook applies to (`"*"` for all).
    pub fn operation(&self) -> &str {
        &self.operation
    }

    fn new(operation: impl Into<String>, stage: Stage) -> Self {
        Self {
            operation: operation.into(),
            stage,
        }
    }
}

/// The three hooks of a sync middleware, as `"*"` hooks.
pub(crate) fn middleware_hooks<M: Middleware>(middleware: M) -> [Hook; 3] {
    let m = Arc::new(middleware);
    let (m1, m2, m3) = (m.clone(), m.clone(), m);
    [
        Hook::before(ANY_OPERATION, move |call: &mut RequestCall| m1.before(call)),
        Hook::after(ANY_OPERATION, move |call: &RequestCall, response: &CallResponse| {
            m2.after(call, response)
        }),
        Hook::on_error(ANY_OPERATION, move |call: &RequestCall, error: &ManagerError| {
            m3.on_error(call, error)
        }),
    ]
}

/// The three hooks of an async middleware, as `"*"` hooks.
pub(crate) fn async_middleware_hooks<M: AsyncMiddleware>(middleware: M) -> [Hook; 3] {
    let m = Arc::new(middleware);
    let (m1, m2, m3) = (m.clone(), m.clone(), m);
    [
        Hook::before_async(ANY_OPERATION, move |call| {
            let m = m1.clone();
            Box::pin(async move { m.before(call).await })
        }),
        Hook::after_async(ANY_OPERATION, move |call, response| {
            let m = m2.clone();
            Box::pin(async move { m.after(call, response).await })
        }),
        Hook::on_error_async(ANY_OPERATION, move |call, error| {
            let m = m3.clone();
            Box::pin(async move { m.on_error(call, error).await })
        }),
    ]
}

/// The registered hooks of one client handle.
#[derive(Clone, Default)]
pub(crate) struct HookSet {
    hooks: Vec<Hook>,
}

impl HookSet {
    pub(crate) fn push(&mut self, hook: Hook) {
        self.hooks.push(hook);
    }

    pub(crate) fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Wildcard hooks first, then the operation's own, each in registration order.
    fn matching<'s>(&'s self, operation: &'s str) -> impl Iterator<Item = &'s Stage> + 's {
        let wildcard = self.hooks.iter().filter(|h| h.operation == ANY_OPERATION);
        let exact = self
            .hooks
            .iter()
            .filter(move |h| h.operation != ANY_OPERATION && h.operation == operation);
        wildcard.chain(exact).map(|h| &h.stage)
    }

    /// Runs the `before` hooks; the first failure (error or panic) stops the chain.
    pub(crate) async fn run_before(&self, call: &mut RequestCall) -> Result<(), HookError> {
        let operation = call.operation.clone();
        for stage in self.matching(&operation) {
            let Stage::Before(hook) = stage else { continue };
            let outcome = match catch_panic(|| hook(call)) {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(error),
                Err(panic) => {
                    return Err(HookError::new(format!(
                        "before hook panicked: {}",
                        crate::util::panic_message(&*panic)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs the `after` hooks; a panicking hook is logged and skipped.
    pub(crate) async fn run_after(&self, call: &RequestCall, response: &CallResponse) {
        for stage in self.matching(&call.operation) {
            let Stage::After(hook) = stage else { continue };
            observe(&call.operation, "after", || hook(call, response)).await;
        }
    }

    /// Runs the `on_error` hooks; a panicking hook is logged and skipped.
    pub(crate) async fn run_on_error(&self, call: &RequestCall, error: &ManagerError) {
        for stage in self.matching(&call.operation) {
            let Stage::OnError(hook) = stage else { continue };
            observe(&call.operation, "on_error", || hook(call, error)).await;
        }
    }
}

async fn observe<'a>(operation: &str, stage: &str, start: impl FnOnce() -> BoxFuture<'a, ()>) {
    let outcome = match catch_panic(start) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    if let Err(panic) = outcome {
        tracing::error!(operation, stage, panic = %crate::util::panic_message(&*panic), "codex-manager hook panicked; skipped");
    }
}

fn catch_panic<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn call(operation: &str) -> RequestCall {
        RequestCall {
            operation: operation.into(),
            method: Method::POST,
            url: "http://127.0.0.1:1/api/x".into(),
            headers: HeaderMap::new(),
            json_body: None,
        }
    }

    #[tokio::test]
    async fn wildcards_run_first_then_exact_each_in_registration_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut set = HookSet::default();
        for (op, tag) in [("a", "a1"), ("*", "w1"), ("b", "b1"), ("a", "a2"), ("*", "w2")] {
            let log = log.clone();
            set.push(Hook::before(op, move |_: &mut RequestCall| {
                log.lock().unwrap().push(tag)
            }));
        }
        set.run_before(&mut call("a")).await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["w1", "w2", "a1", "a2"]);
    }

    #[tokio::test]
    async fn a_failing_or_panicking_before_hook_stops_the_chain() {
        let reached = Arc::new(Mutex::new(false));
        let mut set = HookSet::default();
        set.push(Hook::before("*", |_: &mut RequestCall| -> Result<(), String> {
            Err("denied".into())
        }));
        let r = reached.clone();
        set.push(Hook::before("*", move |_: &mut RequestCall| *r.lock().unwrap() = true));
        assert_eq!(set.run_before(&mut call("x")).await.unwrap_err().message(), "denied");
        assert!(!*reached.lock().unwrap());

        let mut set = HookSet::default();
        set.push(Hook::before("*", |_: &mut RequestCall| -> Result<(), String> {
            panic!("boom")
        }));
        let err = set.run_before(&mut call("x")).await.unwrap_err();
        assert!(err.message().contains("boom"), "{err}");
    }

    #[test]
    fn debug_redacts_secret_headers() {
        let mut c = call("x");
        c.headers.insert("authorization", "Bearer s3cret".parse().unwrap());
        c.headers.insert("x-codex-rbac-token", "rb4c".parse().unwrap());
        c.headers.insert("x-codex-rbac-role", "operator".parse().unwrap());
        let text = format!("{c:?}");
        assert!(!text.contains("s3cret") && !text.contains("rb4c"), "{text}");
        assert!(text.contains("operator"), "{text}");
    }
}
