//! The handler [`Router`]: which handler runs for which frame, in what order, and what happens when one fails.
//!
//! Every route whose matcher accepts a frame runs, in registration order, one after the other (fan-out, not
//! first-match). A handler that returns `Err` or panics is reported to the [`Router::on_handler_error`] callbacks and
//! to `tracing::warn!`, and the remaining handlers still run. Control frames (`ready`, `pong`, `error`) reach only
//! [`Router::on_control`] handlers; event envelopes never do.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;

use super::frame::{Frame, StreamEvent};
use super::signal::{APP_SERVER_PREFIX, APP_SERVER_REQUEST_PREFIX, AppServerSignal, normalize_method};

/// What a handler learns besides the frame itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandlerContext {
    /// The thread the stream subscribed to ([`StreamOptions::thread_id`](super::StreamOptions::thread_id)), `None`
    /// for an unfiltered stream. The event's own thread is `event.thread_id` / `signal.context.thread_id`.
    pub thread_id: Option<String>,
    /// How many times the stream had reconnected when the frame arrived (0 on the first connection).
    pub reconnect_count: u64,
    /// Which connection of the [`StreamClient`](super::StreamClient) the frame arrived on, counted over the
    /// client's life and across its runs (1 for the first). Frames are handled after they are read, so this can
    /// lag [`StreamStats::connects`](super::StreamStats::connects).
    pub connection: u64,
}

/// What a handler's future may resolve to: `()` for infallible handlers, or `Result<(), E>` for any displayable
/// error (`anyhow::Error`, `String`, your own `thiserror` type, ..).
pub trait HandlerOutput: Send + 'static {
    /// The outcome, with the error rendered as text.
    fn into_outcome(self) -> Result<(), String>;
}

impl HandlerOutput for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display + Send + 'static> HandlerOutput for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Adapts a synchronous function into a handler. It runs inline on the dispatch task, so keep it short (see the
/// module docs on slow handlers). Name the first parameter's type (`StreamEvent`, `AppServerSignal` or `Frame`):
/// it cannot be inferred through the adapter. A plain closure returning `std::future::ready(..)` works as well.
///
/// ```
/// use skillbridge::stream::{Router, StreamEvent, sync_handler};
///
/// let mut router = Router::new();
/// router.on_event("transcript_updated", sync_handler(|event: StreamEvent, _ctx| {
///     println!("transcript update {:?}", event.thread_id);
/// }));
/// ```
pub fn sync_handler<T, R, F>(f: F) -> impl Fn(T, HandlerContext) -> std::future::Ready<R> + Send + Sync + 'static
where
    F: Fn(T, HandlerContext) -> R + Send + Sync + 'static,
{
    move |value, ctx| std::future::ready(f(value, ctx))
}

/// How a handler failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerFailureKind {
    /// It returned `Err`.
    Error,
    /// It panicked.
    Panic,
}

/// A handler failure, as given to [`Router::on_handler_error`] callbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerFailure {
    /// The route that failed, e.g. `on_app_server_request("item.tool.call")`.
    pub route: String,
    /// The frame it was handling: the event type, or `ready` / `pong` / `error`.
    pub event_type: String,
    /// Error or panic.
    pub kind: HandlerFailureKind,
    /// The error text or panic message.
    pub message: String,
}

impl fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            HandlerFailureKind::Error => "failed",
            HandlerFailureKind::Panic => "panicked",
        };
        write!(
            f,
            "handler {} {what} on {}: {}",
            self.route, self.event_type, self.message
        )
    }
}

/// How many handlers ran for one frame and how many of them failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatchSummary {
    /// Handlers that ran.
    pub handled: usize,
    /// Of those, how many returned `Err` or panicked.
    pub failed: usize,
}

type BoxedOutcome = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Handler<T> = Arc<dyn Fn(T, HandlerContext) -> BoxedOutcome + Send + Sync>;
type FailureCallback = Arc<dyn Fn(&HandlerFailure) + Send + Sync>;

#[derive(Clone)]
enum Route {
    Event {
        label: String,
        exact: bool,
        pattern: String,
        handler: Handler<StreamEvent>,
    },
    Signal {
        label: String,
        event_type: String,
        handler: Handler<AppServerSignal>,
    },
    Control {
        handler: Handler<Frame>,
    },
}

/// An event's values for its handlers, with how many handlers still need each.
struct Uses {
    event: Option<StreamEvent>,
    event_uses: usize,
    signal: Option<AppServerSignal>,
    signal_uses: usize,
}

/// What the handlers of an event type need, which decides how much of such a frame the stream builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// No handler takes it: the frame is dropped unbuilt.
    None,
    /// Only app-server signal handlers: the payload is read straight into the signal.
    Signals,
    /// Some handler takes the event itself, with its payload as a `Value`.
    Events,
}

impl Route {
    /// Whether this route runs for an event of this type (never for control frames).
    fn takes_event(&self, event_type: &str) -> bool {
        match self {
            Route::Event { exact, pattern, .. } => matches_event(*exact, pattern, event_type),
            Route::Signal {
                event_type: route_type, ..
            } => route_type == event_type,
            Route::Control { .. } => false,
        }
    }
}

/// Handlers for stream frames. Cheap to clone (handlers are shared).
///
/// ```
/// use skillbridge::stream::Router;
///
/// let mut router = Router::new();
/// router
///     .on_event("transcript_updated", |event, _ctx| async move {
///         println!("transcript update {:?}", event.thread_id);
///     })
///     .on_app_server("item.started", |signal, _ctx| async move {
///         println!("turn {:?}", signal.context.turn_id);
///     })
///     .on_app_server_request("item.tool.call", |signal, _ctx| async move {
///         println!("tool call request {:?}", signal.request_id);
///         Ok::<(), anyhow::Error>(())
///     });
/// assert_eq!(router.len(), 3);
/// ```
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    failure_callbacks: Vec<FailureCallback>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<String> = self
            .routes
            .iter()
            .map(|r| match r {
                Route::Event { label, .. } | Route::Signal { label, .. } => label.clone(),
                Route::Control { .. } => "on_control".to_owned(),
            })
            .collect();
        f.debug_struct("Router")
            .field("routes", &labels)
            .field("failure_callbacks", &self.failure_callbacks.len())
            .finish()
    }
}

fn boxed<T, F, Fut>(handler: F) -> Handler<T>
where
    T: Send + 'static,
    F: Fn(T, HandlerContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    Arc::new(move |value, ctx| {
        let future = handler(value, ctx);
        Box::pin(async move { future.await.into_outcome() })
    })
}

/// The full event type for an app-server route name. Accepts the normalized name (`item.tool.call`), the full type
/// (`app_server.request.item.tool.call`) or the raw method (`item/tool/call`).
fn app_server_route_type(name: &str, request: bool) -> String {
    let name = name
        .strip_prefix(APP_SERVER_REQUEST_PREFIX)
        .or_else(|| name.strip_prefix(APP_SERVER_PREFIX))
        .unwrap_or(name);
    let normalized = if name.contains('/') {
        normalize_method(name)
    } else {
        name.to_owned()
    };
    let prefix = if request {
        APP_SERVER_REQUEST_PREFIX
    } else {
        APP_SERVER_PREFIX
    };
    format!("{prefix}{normalized}")
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of registered handlers (failure callbacks not counted).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// `true` when no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    fn add_event_route<F, Fut>(&mut self, label: String, exact: bool, pattern: String, handler: F) -> &mut Self
    where
        F: Fn(StreamEvent, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.routes.push(Route::Event {
            label,
            exact,
            pattern,
            handler: boxed(handler),
        });
        self
    }

    fn add_signal_route<F, Fut>(&mut self, label: String, event_type: String, handler: F) -> &mut Self
    where
        F: Fn(AppServerSignal, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.routes.push(Route::Signal {
            label,
            event_type,
            handler: boxed(handler),
        });
        self
    }

    /// Runs `handler` for events of exactly this type, e.g. `transcript_updated` or `tool_call_requested`.
    pub fn on_event<F, Fut>(&mut self, event_type: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(StreamEvent, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        let event_type = event_type.into();
        self.add_event_route(format!("on_event({event_type:?})"), true, event_type, handler)
    }

    /// Runs `handler` for events whose type starts with `prefix`, e.g. `app_server.` (an empty prefix matches every
    /// event, but never a control frame).
    pub fn on_event_prefix<F, Fut>(&mut self, prefix: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(StreamEvent, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        let prefix = prefix.into();
        self.add_event_route(format!("on_event_prefix({prefix:?})"), false, prefix, handler)
    }

    /// Runs `handler` with the parsed [`AppServerSignal`] of app-server *notifications* of this method, given
    /// normalized (`item.started` matches `app_server.item.started`); the raw method (`item/started`) works too.
    /// Events whose payload is not a signal are skipped with a warning.
    pub fn on_app_server<F, Fut>(&mut self, normalized_method: &str, handler: F) -> &mut Self
    where
        F: Fn(AppServerSignal, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        let event_type = app_server_route_type(normalized_method, false);
        self.add_signal_route(format!("on_app_server({normalized_method:?})"), event_type, handler)
    }

    /// Runs `handler` with the parsed [`AppServerSignal`] of app-server *requests* of this method, given normalized
    /// (`item.tool.call` matches `app_server.request.item.tool.call`, the dynamic-tool call).
    pub fn on_app_server_request<F, Fut>(&mut self, normalized_method: &str, handler: F) -> &mut Self
    where
        F: Fn(AppServerSignal, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        let event_type = app_server_route_type(normalized_method, true);
        self.add_signal_route(
            format!("on_app_server_request({normalized_method:?})"),
            event_type,
            handler,
        )
    }

    /// Runs `handler` for `app_server.item.started` events. This is the reference SDK's alias and, like it, fires
    /// per started *item*; use `on_event("app_server.turn.started", ..)` for the start of a turn itself.
    pub fn on_turn_started<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(StreamEvent, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.add_event_route(
            "on_turn_started()".to_owned(),
            true,
            "app_server.item.started".to_owned(),
            handler,
        )
    }

    /// Runs `handler` for control frames: [`Frame::Ready`], [`Frame::Pong`] and [`Frame::Error`] (never
    /// [`Frame::Event`]). A `Ready` arrives after every (re)connect: the moment to list pending tool calls, since
    /// events published while no socket was connected are lost.
    pub fn on_control<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(Frame, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.routes.push(Route::Control {
            handler: boxed(handler),
        });
        self
    }

    /// Calls `callback` for every handler that returns `Err` or panics (in addition to `tracing::warn!`).
    pub fn on_handler_error(&mut self, callback: impl Fn(&HandlerFailure) + Send + Sync + 'static) -> &mut Self {
        self.failure_callbacks.push(Arc::new(callback));
        self
    }

    /// `true` when some handler runs for events of this type ([`on_event`](Self::on_event),
    /// [`on_event_prefix`](Self::on_event_prefix) or an app-server route). The stream drops the events nobody
    /// handles as soon as it has read their type, without building their payload; control frames are always
    /// delivered.
    ///
    /// ```
    /// use skillbridge::stream::Router;
    ///
    /// let mut router = Router::new();
    /// router.on_app_server_request("item.tool.call", |_signal, _ctx| async {});
    /// assert!(router.handles_event("app_server.request.item.tool.call"));
    /// assert!(!router.handles_event("tool_call_requested"));
    /// ```
    pub fn handles_event(&self, event_type: &str) -> bool {
        self.interest(event_type) != Interest::None
    }

    /// What the handlers of this event type need.
    pub(crate) fn interest(&self, event_type: &str) -> Interest {
        let mut interest = Interest::None;
        for route in self.routes.iter().filter(|route| route.takes_event(event_type)) {
            match route {
                Route::Event { .. } => return Interest::Events,
                _ => interest = Interest::Signals,
            }
        }
        interest
    }

    /// Runs every matching handler for one frame, in registration order, isolating failures. The stream calls this
    /// for each frame; it is public so handlers can be exercised without a socket.
    pub async fn dispatch(&self, frame: &Frame, ctx: &HandlerContext) -> DispatchSummary {
        self.dispatch_owned(frame.clone(), ctx).await
    }

    /// [`dispatch`](Self::dispatch) for a frame the caller gives away: the last handler that needs the event (or its
    /// signal) gets it by value, the others get copies.
    pub(crate) async fn dispatch_owned(&self, frame: Frame, ctx: &HandlerContext) -> DispatchSummary {
        match frame {
            Frame::Event(event) => self.dispatch_event(event, ctx).await,
            control => self.dispatch_control(&control, ctx).await,
        }
    }

    async fn dispatch_control(&self, frame: &Frame, ctx: &HandlerContext) -> DispatchSummary {
        let mut summary = DispatchSummary::default();
        for route in &self.routes {
            if let Route::Control { handler } = route {
                let result = run(handler, frame.clone(), ctx).await;
                self.count(&mut summary, "on_control", frame_type(frame), result);
            }
        }
        summary
    }

    async fn dispatch_event(&self, event: StreamEvent, ctx: &HandlerContext) -> DispatchSummary {
        let event_uses = self.uses(&event.event_type, |r| matches!(r, Route::Event { .. }));
        let signal_uses = self.uses(&event.event_type, |r| matches!(r, Route::Signal { .. }));
        if event_uses + signal_uses == 0 {
            return DispatchSummary::default();
        }
        // Kept for failure reports once the event itself has gone to its last handler.
        let event_type = event.event_type.clone();
        let mut event = Some(event);
        let signal = match (signal_uses, &mut event) {
            (0, _) | (_, None) => None,
            // Nobody else needs the payload: the signal takes it over instead of copying its params.
            (_, Some(event)) if event_uses == 0 => parsed_signal(
                AppServerSignal::from_owned_payload(
                    &event.event_type,
                    event.thread_id.as_deref(),
                    std::mem::take(&mut event.payload),
                ),
                &event.event_type,
            ),
            (_, Some(event)) => parsed_signal(event.app_server_signal(), &event.event_type),
        };
        let uses = Uses {
            event,
            event_uses,
            signal,
            signal_uses,
        };
        self.run_routes(&event_type, uses, ctx).await
    }

    /// Runs the signal handlers of an event that only they take, read by the stream straight into its signal
    /// (`None`: the payload is not a signal, so they are skipped with a warning).
    pub(crate) async fn dispatch_signal(
        &self,
        event_type: &str,
        signal: Option<AppServerSignal>,
        ctx: &HandlerContext,
    ) -> DispatchSummary {
        let signal_uses = self.uses(event_type, |r| matches!(r, Route::Signal { .. }));
        if signal_uses == 0 {
            return DispatchSummary::default();
        }
        let uses = Uses {
            event: None,
            event_uses: 0,
            signal: parsed_signal(signal, event_type),
            signal_uses,
        };
        self.run_routes(event_type, uses, ctx).await
    }

    /// How many routes of a kind take this event type.
    fn uses(&self, event_type: &str, kind: impl Fn(&Route) -> bool) -> usize {
        self.routes
            .iter()
            .filter(|r| kind(r) && r.takes_event(event_type))
            .count()
    }

    async fn run_routes(&self, event_type: &str, mut uses: Uses, ctx: &HandlerContext) -> DispatchSummary {
        let mut summary = DispatchSummary::default();
        for route in &self.routes {
            if !route.takes_event(event_type) {
                continue;
            }
            let (label, result) = match route {
                Route::Event { label, handler, .. } => {
                    let Some(value) = take_or_clone(&mut uses.event, &mut uses.event_uses) else {
                        continue;
                    };
                    (label.as_str(), run(handler, value, ctx).await)
                }
                Route::Signal { label, handler, .. } => {
                    let Some(value) = take_or_clone(&mut uses.signal, &mut uses.signal_uses) else {
                        continue;
                    };
                    (label.as_str(), run(handler, value, ctx).await)
                }
                Route::Control { .. } => continue,
            };
            self.count(&mut summary, label, event_type, result);
        }
        summary
    }

    fn count(
        &self,
        summary: &mut DispatchSummary,
        label: &str,
        event_type: &str,
        result: Result<(), (HandlerFailureKind, String)>,
    ) {
        summary.handled += 1;
        if let Err(failure) = result {
            summary.failed += 1;
            self.report(label, event_type, failure);
        }
    }

    fn report(&self, route: &str, event_type: &str, (kind, message): (HandlerFailureKind, String)) {
        let failure = HandlerFailure {
            route: route.to_owned(),
            event_type: event_type.to_owned(),
            kind,
            message,
        };
        tracing::warn!(route = %failure.route, event_type = %failure.event_type, "{failure}");
        for callback in &self.failure_callbacks {
            if std::panic::catch_unwind(AssertUnwindSafe(|| callback(&failure))).is_err() {
                tracing::warn!("a handler-error callback panicked");
            }
        }
    }
}

fn matches_event(exact: bool, pattern: &str, event_type: &str) -> bool {
    if exact {
        event_type == pattern
    } else {
        event_type.starts_with(pattern)
    }
}

/// Logs a payload that is not a signal (its signal handlers are skipped).
fn parsed_signal(signal: Option<AppServerSignal>, event_type: &str) -> Option<AppServerSignal> {
    if signal.is_none() {
        tracing::warn!(
            event_type,
            "app-server event without a signal payload; signal handlers skipped"
        );
    }
    signal
}

/// The value for the next of `uses` handlers: a copy while more handlers need it, the value itself for the last.
fn take_or_clone<T: Clone>(slot: &mut Option<T>, uses: &mut usize) -> Option<T> {
    *uses = uses.saturating_sub(1);
    if *uses == 0 { slot.take() } else { slot.clone() }
}

/// The `type` of a frame, for reports.
pub(crate) fn frame_type(frame: &Frame) -> &str {
    match frame {
        Frame::Ready { .. } => "ready",
        Frame::Pong => "pong",
        Frame::Error { .. } => "error",
        Frame::Event(event) => &event.event_type,
    }
}

async fn run<T>(handler: &Handler<T>, value: T, ctx: &HandlerContext) -> Result<(), (HandlerFailureKind, String)> {
    // A synchronous handler body runs inside the call itself, so the call is guarded as well as the future.
    let future = std::panic::catch_unwind(AssertUnwindSafe(|| handler(value, ctx.clone()))).map_err(|panic| {
        (
            HandlerFailureKind::Panic,
            crate::util::panic_message(&*panic).to_owned(),
        )
    })?;
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err((HandlerFailureKind::Error, message)),
        Err(panic) => Err((
            HandlerFailureKind::Panic,
            crate::util::panic_message(&*panic).to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_server_route_names() {
        assert_eq!(app_server_route_type("item.started", false), "app_server.item.started");
        assert_eq!(app_server_route_type("item/started", false), "app_server.item.started");
        assert_eq!(
            app_server_route_type("app_server.item.started", false),
            "app_server.item.started"
        );
        assert_eq!(
            app_server_route_type("item.tool.call", true),
            "app_server.request.item.tool.call"
        );
        assert_eq!(
            app_server_route_type("item/fileChange/requestApproval", true),
            "app_server.request.item.file_change.request_approval"
        );
        assert_eq!(
            app_server_route_type("app_server.request.item.tool.call", true),
            "app_server.request.item.tool.call"
        );
    }

    #[tokio::test]
    async fn every_handler_gets_the_whole_event_or_signal_and_failures_name_the_event() {
        use std::sync::Mutex;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut router = Router::new();
        for n in 0..2 {
            let signals = Arc::clone(&seen);
            router.on_app_server_request("item.tool.call", move |signal: AppServerSignal, _ctx| {
                signals
                    .lock()
                    .unwrap()
                    .push(format!("signal{n} {} {}", signal.params["tool"], signal.method));
                std::future::ready(())
            });
            let events = Arc::clone(&seen);
            router.on_event("app_server.request.item.tool.call", move |event: StreamEvent, _ctx| {
                events
                    .lock()
                    .unwrap()
                    .push(format!("event{n} {}", event.payload["params"]["tool"]));
                std::future::ready(Err::<(), _>("refused"))
            });
        }
        let failures_seen = Arc::clone(&failures);
        router.on_handler_error(move |failure| failures_seen.lock().unwrap().push(failure.event_type.clone()));
        let payload = serde_json::json!({"method": "item/tool/call", "params": {"tool": "echo"}, "requestId": 0});
        let frame = Frame::Event(StreamEvent::new("app_server.request.item.tool.call", None, payload));
        let summary = router.dispatch_owned(frame, &HandlerContext::default()).await;
        assert_eq!(summary, DispatchSummary { handled: 4, failed: 2 });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "signal0 \"echo\" item/tool/call",
                "event0 \"echo\"",
                "signal1 \"echo\" item/tool/call",
                "event1 \"echo\""
            ]
        );
        assert_eq!(*failures.lock().unwrap(), ["app_server.request.item.tool.call"; 2]);
    }
}
