//! How calls and turn events reach the [`Feed`] from codex-manager: the websocket stream
//! (`app_server.request.item.tool.call`, `app_server.item.completed`, `app_server.turn.completed`) and pending-call
//! listing, after every ready frame and on an interval.
//!
//! Both paths submit to the same sink, which drops duplicates, so a call seen twice runs once and a call
//! published while no socket was connected is still found by the next listing. So is a call whose stream signal was
//! a malformed frame (nested too deep to read, say). A pending row that cannot be read either is reported once (warn,
//! with its request id and why; counted in `BridgeHealth::unreadable_calls`) and the listing goes on with the
//! others. Turn events published while no socket was connected are lost as well: after a reconnect, the turns
//! somebody waits for are read from their session instead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::calls::{Calls, NO_CONNECTION};
use super::sessions::Sessions;
use crate::manager::{CodexManager, ManagerError, PendingRow, UnreadableRow};
use crate::stream::{AppServerSignal, Frame, HandlerContext, Router, StreamClient, StreamOptions, StreamStats};
use crate::telemetry::{CallSource, LinkStatus};
use crate::upstream::app_server::protocol::{ItemCompletedNotification, Turn, TurnCompletedNotification};
use crate::upstream::{Feed, InvalidToolCall, ToolCall, ToolCallParams, TurnStatus};
use crate::util::{format_duration_approx, lock};

/// The longest a periodic listing waits for the bridge to catch up with its backlog: under a lasting overload a
/// call the stream missed is still found.
const BEHIND_DEFERRAL: Duration = Duration::from_secs(30);

/// Which threads' calls this bridge takes.
#[derive(Debug, Clone)]
pub(super) enum SessionScope {
    /// Only these sessions (the ones it created or was told to attach to).
    Only(BTreeSet<String>),
    /// Every session on the codex-manager; listing covers the given ones plus every thread a call has been
    /// seen on.
    All(BTreeSet<String>),
}

impl SessionScope {
    /// `new` is served instead of `lost` (`None`: nothing replaces it).
    fn replace(&mut self, lost: &str, new: Option<&str>) {
        let (Self::Only(ids) | Self::All(ids)) = self;
        ids.remove(lost);
        ids.extend(new.map(str::to_owned));
    }

    fn serves(&self, thread_id: &str) -> bool {
        match self {
            Self::Only(ids) => ids.contains(thread_id),
            Self::All(_) => true,
        }
    }

    /// The stream's thread filter: one served session can be filtered server-side.
    fn stream_filter(&self) -> Option<String> {
        match self {
            Self::Only(ids) if ids.len() == 1 => ids.iter().next().cloned(),
            _ => None,
        }
    }
}

/// A tool call from a stream signal.
fn tool_call_from_signal(signal: AppServerSignal) -> Result<ToolCall, InvalidToolCall> {
    let request_id = signal.request_id.ok_or(InvalidToolCall::Missing("requestId"))?;
    ToolCall::from_params(request_id, signal.params)
}

/// A tool call from a pending-call row, by the same rules as a signal's.
fn tool_call_from_row(row: PendingRow) -> Result<ToolCall, InvalidToolCall> {
    let params = ToolCallParams {
        thread_id: Some(row.thread_id),
        turn_id: row.turn_id,
        call_id: Some(row.call_id),
        namespace: None,
        tool: Some(row.tool),
        arguments: row.arguments,
    };
    ToolCall::from_parts(row.request_id, params)
}

/// One listing of a thread's pending calls (see [`take_listing`]).
pub(super) struct ThreadListing {
    /// The pending calls it shows.
    pub(super) pending: Vec<ToolCall>,
    /// Rows that could not be read, and pending rows that are no usable tool call (why).
    pub(super) unreadable: Vec<UnreadableRow>,
    pub(super) unusable: Vec<InvalidToolCall>,
    /// The stream connection it was taken on ([`NO_CONNECTION`] when none was up); `None` when the connection
    /// changed while it was taken, so its rows may predate a restart.
    pub(super) connection: Option<u64>,
}

/// Lists `thread`'s pending calls and records the listing in `calls` ([`Calls::listed`]), for the connection that
/// stayed up while it was taken, else for none: the feed's listings and the answers' identity checks are one kind.
/// The caller holds the thread's [`listing gate`](Calls::listing_gate).
pub(super) async fn take_listing(
    client: &CodexManager,
    calls: &Calls,
    thread: &str,
) -> Result<ThreadListing, ManagerError> {
    let connection = calls.connection();
    let number = calls.begin_listing();
    let (rows, unreadable) = client.list_pending_rows(thread).await?;
    let mut pending = Vec::new();
    let mut unusable = Vec::new();
    for row in rows.into_iter().filter(|r| r.status == "pending") {
        match tool_call_from_row(row) {
            Ok(call) => pending.push(call),
            Err(reason) => unusable.push(reason),
        }
    }
    let connection = (connection == calls.connection()).then_some(connection);
    calls.listed(
        thread,
        connection.unwrap_or(NO_CONNECTION),
        number,
        pending.iter().cloned(),
    );
    Ok(ThreadListing {
        pending,
        unreadable,
        unusable,
        connection,
    })
}

/// Feeds codex-manager's calls and turn events into a [`Feed`]: the stream plus pending-call listing.
pub(super) struct CodexManagerFeed {
    client: CodexManager,
    feed: Feed,
    calls: Arc<Calls>,
    sessions: Arc<Sessions>,
    scope: Arc<Mutex<SessionScope>>,
    poll_interval: Duration,
    stream_options: StreamOptions,
    known_threads: Arc<Mutex<BTreeSet<String>>>,
    poll_now: Arc<Notify>,
    /// Fired when the stream's thread filter must change (a lost session was replaced).
    resubscribe: Notify,
    /// Sessions codex-manager lost that were not replaced yet.
    lost: Mutex<BTreeSet<String>>,
    /// The unreadable pending calls of each thread in its latest listing, so that each is reported (logged and
    /// counted) once rather than on every listing.
    unreadable: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl CodexManagerFeed {
    pub(super) fn new(
        client: CodexManager,
        feed: Feed,
        calls: Arc<Calls>,
        sessions: Arc<Sessions>,
        scope: SessionScope,
        poll_interval: Duration,
    ) -> Self {
        let known = match &scope {
            SessionScope::Only(ids) | SessionScope::All(ids) => ids.clone(),
        };
        Self {
            client,
            feed,
            calls,
            sessions,
            scope: Arc::new(Mutex::new(scope)),
            poll_interval,
            stream_options: StreamOptions::default(),
            known_threads: Arc::new(Mutex::new(known)),
            poll_now: Arc::new(Notify::new()),
            resubscribe: Notify::new(),
            lost: Mutex::default(),
            unreadable: Mutex::default(),
        }
    }

    pub(super) fn stream_options(mut self, options: StreamOptions) -> Self {
        self.stream_options = options;
        self
    }

    fn router(&self) -> Router {
        let mut router = Router::new();
        let (feed, scope, known) = (
            self.feed.clone(),
            Arc::clone(&self.scope),
            Arc::clone(&self.known_threads),
        );
        let calls = Arc::clone(&self.calls);
        router.on_app_server_request("item.tool.call", move |signal: AppServerSignal, ctx: HandlerContext| {
            let (feed, scope, known, calls) =
                (feed.clone(), Arc::clone(&scope), Arc::clone(&known), Arc::clone(&calls));
            async move {
                let call =
                    tool_call_from_signal(signal).map_err(|reason| format!("unusable tool call signal: {reason}"))?;
                if !lock(&scope).serves(&call.thread_id) {
                    tracing::trace!(thread_id = %call.thread_id, "tool call for a session this bridge does not serve");
                    return Ok::<(), String>(());
                }
                // A burst waits on codex-manager (the stream is not read meanwhile) rather than in this process.
                feed.room().await;
                lock(&known).insert(call.thread_id.clone());
                calls.seen(&call, ctx.connection);
                feed.submit(call, CallSource::Stream);
                Ok(())
            }
        });
        let feed = self.feed.clone();
        router.on_app_server(
            "item.completed",
            move |signal: AppServerSignal, _ctx: HandlerContext| {
                let read = serde_json::from_value::<ItemCompletedNotification>(signal.params)
                    .map(|params| drop(feed.turns().item_completed(&params)))
                    .map_err(|error| format!("unreadable item/completed: {error}"));
                async move { read }
            },
        );
        // An interrupted turn cancels its running skills (their calls are answered `success:false`).
        let feed = self.feed.clone();
        router.on_app_server(
            "turn.completed",
            move |signal: AppServerSignal, _ctx: HandlerContext| {
                let read = serde_json::from_value::<TurnCompletedNotification>(signal.params)
                    .map(|params| {
                        if let Some(outcome) = feed.turns().turn_completed(&params)
                            && outcome.status == TurnStatus::Interrupted
                        {
                            feed.cancel_turn(&outcome.turn_id);
                        }
                    })
                    .map_err(|error| format!("unreadable turn/completed: {error}"));
                async move { read }
            },
        );
        let (feed, poll_now) = (self.feed.clone(), Arc::clone(&self.poll_now));
        router.on_control(move |frame: Frame, _ctx: HandlerContext| {
            if let Frame::Ready { .. } = frame {
                poll_now.notify_one();
                feed.link_up();
            }
            async {}
        });
        router
    }

    /// Runs the stream and the poller until `stop` fires.
    pub(super) async fn run(self, stop: CancellationToken) {
        let router = self.router();
        let stream = StreamClient::new(self.client.config().clone());
        self.feed.health().attach_link(stream.stats());
        self.calls.attach_link(stream.stats());
        let streaming = async {
            // One run per thread filter: a replaced session needs the stream subscribed to its new thread.
            loop {
                let mut options = self.stream_options.clone();
                options.thread_id = lock(&self.scope).stream_filter();
                options.stop = stop.child_token();
                let this_filter = options.stop.clone();
                let run = stream.run(router.clone(), options);
                tokio::pin!(run);
                tokio::select! {
                    ended = &mut run => {
                        if let Err(error) = ended {
                            tracing::error!(%error, "codex-manager stream ended");
                        }
                        return;
                    }
                    _ = self.resubscribe.notified() => {
                        this_filter.cancel();
                        let _ = run.await;
                    }
                }
            }
        };
        let polling = self.poll_loop(stream.stats(), stop.clone());
        tokio::join!(streaming, polling);
    }

    /// Lists pending calls at once, after every reconnect, and every `poll_interval`, or less often while listings
    /// are slow: a listing of tens of thousands of pending calls keeps codex-manager busy for a second or more, so
    /// periodic listings take at most a tenth of the time. A periodic listing also waits while the bridge is behind
    /// (for up to [`BEHIND_DEFERRAL`]): the calls it exists to find would queue behind the backlog anyway, and
    /// listing the backlog itself costs codex-manager and the bridge the most exactly when they are busiest.
    async fn poll_loop(&self, stream: Arc<StreamStats>, stop: CancellationToken) {
        const SLOWDOWN: u32 = 10;
        let mut next = tokio::time::Instant::now();
        loop {
            let reconnected = tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.periodic_listing_due(next) => false,
                _ = self.poll_now.notified() => true,
                adopted = self.sessions.newly_adopted() => {
                    self.serve_adopted(adopted);
                    false
                }
            };
            if reconnected {
                self.check_sessions().await;
            }
            self.replace_lost_sessions().await;
            let started = tokio::time::Instant::now();
            let pending = self.poll_once().await;
            if reconnected && let Some(outage) = stream.take_outage() {
                tracing::info!(
                    "stream reconnected after {} ({pending} {} pending)",
                    format_duration_approx(outage),
                    if pending == 1 { "call was" } else { "calls were" }
                );
            }
            next = tokio::time::Instant::now() + self.poll_interval.max(started.elapsed() * SLOWDOWN);
        }
    }

    /// Resolves at `due`, or once the bridge has caught up with its backlog if it is behind then (at most
    /// [`BEHIND_DEFERRAL`] later).
    async fn periodic_listing_due(&self, due: tokio::time::Instant) {
        tokio::time::sleep_until(due).await;
        let _ = tokio::time::timeout(BEHIND_DEFERRAL, self.feed.caught_up()).await;
    }

    /// Lists pending calls of every known session and submits them (the sink drops duplicates); returns how many
    /// were listed.
    async fn poll_once(&self) -> usize {
        let mut listed = 0;
        let threads: Vec<String> = lock(&self.known_threads).iter().cloned().collect();
        for thread in threads {
            // Answers of calls seen on an earlier connection wait for this listing rather than take their own.
            let gate = self.calls.listing_gate(&thread);
            let _listing = gate.lock().await;
            match take_listing(&self.client, &self.calls, &thread).await {
                Ok(listing) => {
                    self.report_unreadable(&thread, &listing.unreadable);
                    for reason in &listing.unusable {
                        tracing::warn!(thread_id = %thread, %reason, "unusable pending call row");
                    }
                    // Rows listed while the connection changed may predate a restart; the listing after the new
                    // connection's `ready` frame lists them again.
                    let Some(connection) = listing.connection else {
                        continue;
                    };
                    listed += listing.pending.len();
                    for call in listing.pending {
                        self.calls.seen(&call, connection);
                        self.feed.submit(call, CallSource::Poll);
                    }
                }
                Err(error) if is_gone(&error) => self.session_lost(&thread, &error),
                Err(error) => tracing::warn!(%error, thread_id = %thread, "listing pending tool calls failed"),
            }
        }
        listed
    }

    /// Logs (warn) and counts the unreadable rows of a thread's listing that its previous listing did not have: a
    /// row nobody can read stays pending, and is listed again every time.
    fn report_unreadable(&self, thread: &str, rows: &[UnreadableRow]) {
        let key = |row: &UnreadableRow| match &row.request_id {
            Some(id) => format!("id {id}"),
            None => format!("? {}", row.reason),
        };
        let listed: BTreeSet<String> = rows.iter().map(key).collect();
        let previous = {
            let mut unreadable = lock(&self.unreadable);
            if listed.is_empty() {
                unreadable.remove(thread)
            } else {
                unreadable.insert(thread.to_owned(), listed)
            }
        }
        .unwrap_or_default();
        let mut reported = BTreeSet::new();
        for row in rows {
            let key = key(row);
            if !previous.contains(&key) && reported.insert(key) {
                tracing::warn!(
                    thread_id = %thread,
                    request_id = %row.request_id.as_deref().unwrap_or("?"),
                    reason = %row.reason,
                    "a pending tool call cannot be read; it stays unanswered"
                );
            }
        }
        if !reported.is_empty() {
            self.feed.health().unreadable_calls_found(reported.len() as u64);
        }
    }

    /// After a reconnect: reads every served session, since codex-manager may have restarted without them, and
    /// the turns of those somebody waits on (their end may have been published while the socket was down).
    async fn check_sessions(&self) {
        let awaited = self.feed.turns().awaited_threads();
        let mut threads = lock(&self.known_threads).clone();
        threads.extend(awaited.iter().cloned());
        for thread in threads {
            match self.client.get_session(&thread).await {
                Ok(detail) if awaited.contains(&thread) => {
                    let turns = detail.pointer("/thread/turns").cloned().unwrap_or_default();
                    match serde_json::from_value::<Vec<Turn>>(turns) {
                        Ok(turns) => turns
                            .iter()
                            .for_each(|turn| drop(self.feed.turns().finished(&thread, turn))),
                        Err(error) => tracing::warn!(%error, session = %thread, "unreadable turns in the session"),
                    }
                }
                Ok(_) => {}
                Err(error) if is_gone(&error) => self.session_lost(&thread, &error),
                Err(error) => tracing::debug!(%error, session = %thread, "could not read the session"),
            }
        }
    }

    /// Takes up sessions another bridge of the group created: subscribes to them and lists them at once.
    fn serve_adopted(&self, threads: Vec<String>) {
        let filter_changed = {
            let mut scope = lock(&self.scope);
            let before = scope.stream_filter();
            for thread in &threads {
                scope.replace(thread, Some(thread));
            }
            before != scope.stream_filter()
        };
        lock(&self.known_threads).extend(threads);
        if filter_changed {
            self.resubscribe.notify_one();
        }
    }

    /// codex-manager no longer has `thread` (it restarted without its sessions): the bridge is not ready until a
    /// session created here is created again ([`replace_lost_sessions`](Self::replace_lost_sessions)); an
    /// attached one stays reported lost; one of the group's is left to the bridge that created it.
    fn session_lost(&self, thread: &str, error: &ManagerError) {
        let status = error.status().map_or(0, |s| s.as_u16());
        let reason = format!("codex-manager no longer has it ({status})");
        if self.sessions.is_adopted(thread) {
            tracing::warn!(
                session = thread,
                "a session of the group is gone: {reason}; no longer serving it"
            );
            self.sessions.adopted_gone(thread);
            self.feed.health().session_gone(thread);
            lock(&self.known_threads).remove(thread);
            lock(&self.scope).replace(thread, None);
            return;
        }
        tracing::error!(session = thread, "session lost: {reason}");
        self.feed.health().session_lost(thread, reason);
        lock(&self.known_threads).remove(thread);
        lock(&self.lost).insert(thread.to_owned());
    }

    /// Creates a session in place of each lost one that was created here; one that fails is tried again at the
    /// next poll.
    async fn replace_lost_sessions(&self) {
        let lost: Vec<String> = lock(&self.lost).iter().cloned().collect();
        for thread in lost {
            match self.sessions.replace_lost(&thread).await {
                Ok(Some(replacement)) => {
                    tracing::info!(lost = %thread, session = %replacement.id, "created a new session in place of the lost one");
                    let new_thread = replacement.id.clone();
                    let filter_changed = {
                        let mut scope = lock(&self.scope);
                        let before = scope.stream_filter();
                        scope.replace(&thread, Some(&new_thread));
                        before != scope.stream_filter()
                    };
                    lock(&self.known_threads).insert(new_thread);
                    self.feed.health().replace_session(&thread, replacement);
                    if filter_changed {
                        self.resubscribe.notify_one();
                    }
                }
                Ok(None) => {
                    tracing::error!(session = %thread, "an attached session was lost; it cannot be created again");
                    lock(&self.scope).replace(&thread, None);
                }
                Err(error) => {
                    tracing::error!(session = %thread, %error, "could not create a session in place of the lost one; retrying at the next poll");
                    continue;
                }
            }
            lock(&self.lost).remove(&thread);
        }
    }
}

/// codex-manager answers 404 or 410 for a session it does not have (any more).
fn is_gone(error: &ManagerError) -> bool {
    matches!(error.status().map(|s| s.as_u16()), Some(404 | 410))
}

impl LinkStatus for StreamStats {
    fn connected(&self) -> bool {
        StreamStats::connected(self)
    }

    fn reconnects(&self) -> u64 {
        StreamStats::reconnects(self)
    }

    fn malformed_frames(&self) -> u64 {
        StreamStats::malformed_frames(self)
    }

    fn malformed_frames_by_kind(&self) -> Vec<(&'static str, u64)> {
        StreamStats::malformed_frames_by_kind(self)
    }

    /// The feed's handlers fail only on signals they cannot use.
    fn unusable_signals(&self) -> u64 {
        StreamStats::handler_failures(self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn a_signal_and_a_row_become_the_same_call() {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/codex-manager/ws-app_server-request-item-tool-call.json"
        ))
        .unwrap();
        let signal =
            AppServerSignal::from_owned_payload("app_server.request.item.tool.call", None, fixture["payload"].clone())
                .unwrap();
        let from_signal = tool_call_from_signal(signal).unwrap();
        let row: PendingRow = serde_json::from_value(json!({
            "requestId": from_signal.request_id, "threadId": from_signal.thread_id, "turnId": from_signal.turn_id,
            "callId": from_signal.call_id, "tool": from_signal.tool, "arguments": from_signal.arguments,
            "status": "pending"
        }))
        .unwrap();
        assert_eq!(tool_call_from_row(row).unwrap(), from_signal);
        assert!(!from_signal.call_id.is_empty());
    }

    #[test]
    fn unusable_signals_and_rows_say_why() {
        let payload = json!({"method": "item/tool/call", "requestId": 7, "params": {"threadId": "t", "arguments": {}}});
        let signal = AppServerSignal::from_owned_payload("app_server.request.item.tool.call", None, payload).unwrap();
        assert_eq!(
            tool_call_from_signal(signal).unwrap_err(),
            InvalidToolCall::Missing("tool")
        );
        let payload = json!({"method": "item/tool/call", "params": {"threadId": "t", "tool": "echo"}});
        let signal = AppServerSignal::from_owned_payload("app_server.request.item.tool.call", None, payload).unwrap();
        assert_eq!(
            tool_call_from_signal(signal).unwrap_err(),
            InvalidToolCall::Missing("requestId")
        );
        let row: PendingRow =
            serde_json::from_value(json!({"requestId": 1, "threadId": "", "tool": "echo", "status": "pending"}))
                .unwrap();
        assert_eq!(
            tool_call_from_row(row).unwrap_err(),
            InvalidToolCall::Missing("threadId")
        );
    }
}
