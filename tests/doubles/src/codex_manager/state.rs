//! The double's shared state: sessions, pending tool calls and their answers, what was received,
//! and the injected faults. Each area has its own short-lived lock, never held across an await.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::clock;
use super::fixtures::{self, CallView, SessionRef, SessionView, TurnView};
use super::hub::Hub;
use super::turns::{MessageHook, TurnScript};
use super::validate::CreateSession;

/// Locks a mutex, recovering the data if a panicking holder poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One HTTP request the double received under `/api` (including rejected ones and websocket
/// upgrades).
#[derive(Clone, PartialEq, Serialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/api/tool-calls/0/response`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Header names (lower case) and values, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Null` when empty, a JSON string when not JSON.
    pub body: Value,
}

/// Headers whose values are secrets: shown as `<redacted>` in Debug and admin output.
pub(crate) const SECRET_HEADERS: &[&str] = &["authorization", "x-codex-rbac-token", "cookie"];

impl RecordedRequest {
    /// The first value of a header (name matched case-insensitively).
    ///
    /// ```
    /// # use skillbridge_doubles::codex_manager::RecordedRequest;
    /// let request = RecordedRequest {
    ///     method: "GET".into(),
    ///     path: "/api/sessions/x".into(),
    ///     query: None,
    ///     headers: vec![("x-codex-rbac-role".into(), "admin".into())],
    ///     body: serde_json::Value::Null,
    /// };
    /// assert_eq!(request.header("X-Codex-Rbac-Role"), Some("admin"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A copy with secret header values replaced by `<redacted>`.
    pub fn redacted(&self) -> RecordedRequest {
        let mut copy = self.clone();
        for (name, value) in &mut copy.headers {
            if SECRET_HEADERS.contains(&name.as_str()) {
                *value = "<redacted>".into();
            }
        }
        copy
    }
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.redacted();
        f.debug_struct("RecordedRequest")
            .field("method", &shown.method)
            .field("path", &shown.path)
            .field("query", &shown.query)
            .field("headers", &shown.headers)
            .field("body", &shown.body)
            .finish()
    }
}

/// What a session looks like from the test's side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSnapshot {
    /// Session id, equal to its thread id.
    pub id: String,
    /// The dynamic tools as codex-manager keeps them (trimmed, unknown keys stripped).
    pub tools: Vec<Value>,
    /// Whether the session was deleted.
    pub deleted: bool,
    /// Texts of the messages sent to the session, in order.
    pub messages: Vec<String>,
    /// The turn in progress, if any.
    pub active_turn: Option<String>,
}

pub(crate) struct TurnRecord {
    pub id: String,
    pub status: &'static str,
    pub items: Vec<Value>,
    pub started_ms: i64,
    pub completed_ms: Option<i64>,
}

impl TurnRecord {
    pub(crate) fn value(&self) -> Value {
        fixtures::turn_value(&self.view())
    }

    pub(crate) fn view(&self) -> TurnView<'_> {
        TurnView {
            id: &self.id,
            status: self.status,
            items: &self.items,
            started_at: self.started_ms / 1000,
            completed_at: self.completed_ms.map(|ms| ms / 1000),
            duration_ms: self.completed_ms.map(|ms| ms - self.started_ms),
        }
    }
}

pub(crate) struct Session {
    pub id: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub settings: CreateSession,
    pub deleted_at: Option<String>,
    pub messages: Vec<String>,
    pub turns: Vec<TurnRecord>,
    pub transcript: Vec<Value>,
    pub active_turn: Option<(String, CancellationToken)>,
}

impl Session {
    pub(crate) fn view(&self) -> SessionView<'_> {
        SessionView {
            id: &self.id,
            title: &self.title,
            created_at: self.created_at,
            updated_at: self.updated_at,
            cwd: self.settings.cwd.as_deref(),
            model: self.settings.model.as_deref(),
            approval_policy: self.settings.approval_policy.as_deref(),
            network_access: self.settings.network_access.as_deref(),
            filesystem_sandbox: self.settings.filesystem_sandbox.as_deref(),
        }
    }

    pub(crate) fn reference(&self) -> SessionRef {
        SessionRef {
            id: self.id.clone(),
            title: self.title.clone(),
        }
    }

    pub(crate) fn deleted_body(&self) -> Option<Value> {
        self.deleted_at
            .as_deref()
            .map(|at| fixtures::deleted_session_body(&self.id, at))
    }
}

/// A tool call's answer, reported to whoever injected it (a scripted turn or a burst).
pub(crate) struct Answer {
    pub request_id: String,
    pub body: Value,
    /// From emitting the signal frame to accepting the answer.
    pub latency: Duration,
}

struct PendingCall {
    seq: u64,
    thread_id: Arc<str>,
    row: Value,
    in_flight: bool,
    /// Its session was deleted: answers get 410, and waits for "all answered" skip it.
    orphaned: bool,
    emitted_at: Instant,
    watcher: Option<mpsc::UnboundedSender<Answer>>,
}

/// How many accepted answers the double remembers when recording is off
/// ([`record_requests(false)`](super::CodexManagerDoubleBuilder::record_requests)): enough for any test that
/// waits on a recent call, while a long benchmark's memory stays flat.
pub(crate) const UNRECORDED_ANSWER_MEMORY: usize = 4096;

#[derive(Default)]
struct Calls {
    pending: HashMap<String, PendingCall>,
    answers: Answers,
}

/// Accepted answer bodies by request id: every one while recording, the newest
/// [`UNRECORDED_ANSWER_MEMORY`] otherwise. A forgotten answer only matters to `wait_answered`; a second answer to
/// the same call still gets 404, which comes from the call no longer being pending.
#[derive(Default)]
struct Answers {
    bodies: HashMap<String, Value>,
    /// Arrival order, kept only while bounded.
    order: VecDeque<String>,
}

impl Answers {
    fn insert(&mut self, request_id: &str, body: Value, bounded: bool) {
        if bounded {
            while self.order.len() >= UNRECORDED_ANSWER_MEMORY {
                if let Some(oldest) = self.order.pop_front() {
                    self.bodies.remove(&oldest);
                }
            }
            self.order.push_back(request_id.to_owned());
        }
        self.bodies.insert(request_id.to_owned(), body);
    }

    fn get(&self, request_id: &str) -> Option<&Value> {
        self.bodies.get(request_id)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.bodies.len()
    }
}

/// How `begin_response` found a tool call.
pub(crate) enum Begin {
    NotFound,
    SessionDeleted(Value),
    InFlight,
    /// The caller now owns the response and must `complete_response` or `abandon_response`.
    Started(Arc<str>),
}

/// Builder-level settings.
pub(crate) struct Config {
    pub bearer: Option<String>,
    pub record: bool,
    pub default_turn: Option<TurnScript>,
    pub on_message: Option<MessageHook>,
}

pub(crate) struct State {
    pub config: Config,
    pub hub: Arc<Hub>,
    pub shutdown: CancellationToken,
    sessions: Mutex<HashMap<String, Session>>,
    scripts: Mutex<HashMap<String, VecDeque<TurnScript>>>,
    calls: Mutex<Calls>,
    next_request_id: AtomicU64,
    recorded: Mutex<Vec<RecordedRequest>>,
    respond_bodies: Mutex<HashMap<String, Vec<Value>>>,
    ws_received: Mutex<Vec<String>>,
    fail_next: AtomicUsize,
    delay_micros: AtomicU64,
    pong_enabled: AtomicBool,
    /// Bumped whenever a call leaves the pending set (answered or orphaned).
    answered: watch::Sender<u64>,
}

impl State {
    pub(crate) fn new(config: Config, shutdown: CancellationToken) -> State {
        State {
            config,
            hub: Hub::new(shutdown.clone()),
            shutdown,
            sessions: Mutex::default(),
            scripts: Mutex::default(),
            calls: Mutex::default(),
            next_request_id: AtomicU64::new(0),
            recorded: Mutex::default(),
            respond_bodies: Mutex::default(),
            ws_received: Mutex::default(),
            fail_next: AtomicUsize::new(0),
            delay_micros: AtomicU64::new(0),
            pong_enabled: AtomicBool::new(true),
            answered: watch::channel(0).0,
        }
    }

    // ---- events -------------------------------------------------------------------------

    /// Publishes a serialized envelope to the sockets interested in `thread_id`.
    pub(crate) fn publish_text(&self, thread_id: Option<&str>, text: String) {
        self.hub.publish(thread_id, Utf8Bytes::from(text));
    }

    /// Publishes an envelope value (its own `threadId` decides who gets it).
    pub(crate) fn publish_envelope(&self, envelope: &Value) {
        self.publish_text(envelope["threadId"].as_str(), envelope.to_string());
    }

    /// Publishes an `app_server.*` notification followed by its raw `notification` twin.
    pub(crate) fn publish_notification(&self, envelope: &Value) {
        self.publish_envelope(envelope);
        self.publish_envelope(&fixtures::raw_notification(envelope));
    }

    // ---- sessions -----------------------------------------------------------------------

    pub(crate) fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        lock(&self.sessions)
    }

    /// Creates a session and returns its id and the 200 body.
    pub(crate) fn create_session(&self, settings: CreateSession) -> (String, Value) {
        let id = clock::new_id();
        let now = clock::unix_secs();
        let session = Session {
            id: id.clone(),
            title: "New chat".into(),
            created_at: now,
            updated_at: now,
            settings,
            deleted_at: None,
            messages: Vec::new(),
            turns: Vec::new(),
            transcript: Vec::new(),
            active_turn: None,
        };
        let body = fixtures::create_session_body(&session.view());
        self.sessions().insert(id.clone(), session);
        (id, body)
    }

    /// Marks a session deleted; its pending calls now answer 410.
    pub(crate) fn mark_deleted(&self, id: &str) {
        let cancelled = {
            let mut sessions = self.sessions();
            let Some(session) = sessions.get_mut(id) else { return };
            session.deleted_at = Some(clock::iso_now());
            session.active_turn.take()
        };
        if let Some((_, cancel)) = cancelled {
            cancel.cancel();
        }
        let mut calls = lock(&self.calls);
        calls
            .pending
            .values_mut()
            .filter(|c| &*c.thread_id == id)
            .for_each(|c| c.orphaned = true);
        drop(calls);
        self.answered.send_modify(|n| *n += 1);
    }

    fn deleted_body(&self, thread_id: &str) -> Option<Value> {
        self.sessions().get(thread_id).and_then(Session::deleted_body)
    }

    pub(crate) fn snapshots(&self) -> Vec<SessionSnapshot> {
        let mut snapshots: Vec<_> = self
            .sessions()
            .values()
            .map(|s| SessionSnapshot {
                id: s.id.clone(),
                tools: s.settings.tools.clone(),
                deleted: s.deleted_at.is_some(),
                messages: s.messages.clone(),
                active_turn: s.active_turn.as_ref().map(|(id, _)| id.clone()),
            })
            .collect();
        snapshots.sort_by_key(|s| s.id.clone());
        snapshots
    }

    pub(crate) fn queue_script(&self, thread_id: &str, script: TurnScript) {
        lock(&self.scripts)
            .entry(thread_id.to_owned())
            .or_default()
            .push_back(script);
    }

    pub(crate) fn next_script(&self, thread_id: &str) -> Option<TurnScript> {
        lock(&self.scripts).get_mut(thread_id).and_then(VecDeque::pop_front)
    }

    // ---- tool calls ---------------------------------------------------------------------

    /// Issues a tool call: stores the pending row, then emits the `app_server.request.item.tool.call`
    /// signal (numeric `requestId`) and `tool_call_requested` (the row). Returns the string id.
    pub(crate) fn inject_tool_call(
        &self,
        thread_id: &str,
        turn_id: Option<&str>,
        tool: &str,
        arguments: &Value,
        watcher: Option<mpsc::UnboundedSender<Answer>>,
    ) -> String {
        let seq = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let request_id = seq.to_string();
        let call_id = format!("call_{seq}");
        let (session, active_turn, orphaned) = self.thread_info(thread_id);
        let turn_id = turn_id.map(str::to_owned).or(active_turn).unwrap_or_else(clock::new_id);
        let created_at = clock::iso_now();
        let call = CallView {
            request_id: seq,
            request_id_text: &request_id,
            thread_id,
            turn_id: &turn_id,
            call_id: &call_id,
            tool,
            arguments,
            session: session.as_ref(),
            created_at: &created_at,
        };
        let signal = fixtures::tool_call_signal(&call);
        // In codex-manager's key order (type, threadId, payload), as captured; a `Value` would sort the keys.
        let signal = fixtures::envelope_text(
            signal["type"].as_str().unwrap_or_default(),
            signal["threadId"].as_str(),
            &signal["payload"],
        );
        let row = fixtures::pending_row(&call);
        let requested = fixtures::tool_call_requested_text(thread_id, &row);
        let thread: Arc<str> = Arc::from(thread_id);
        {
            let mut calls = lock(&self.calls);
            let pending = PendingCall {
                seq,
                thread_id: Arc::clone(&thread),
                row,
                in_flight: false,
                orphaned,
                emitted_at: Instant::now(),
                watcher,
            };
            calls.pending.insert(request_id.clone(), pending);
        }
        // The row is listed before its frames go out, so a client reacting to them finds it.
        self.publish_text(Some(thread_id), signal);
        self.publish_text(Some(thread_id), requested);
        request_id
    }

    /// The session a thread belongs to (if known), its turn in progress, and whether it was deleted.
    fn thread_info(&self, thread_id: &str) -> (Option<SessionRef>, Option<String>, bool) {
        match self.sessions().get(thread_id) {
            None => (None, None, false),
            Some(s) => (
                Some(s.reference()),
                s.active_turn.as_ref().map(|(id, _)| id.clone()),
                s.deleted_at.is_some(),
            ),
        }
    }

    /// The pending rows of a thread, oldest first.
    pub(crate) fn pending_rows(&self, thread_id: &str) -> Vec<Value> {
        let calls = lock(&self.calls);
        let mut rows: Vec<_> = calls.pending.values().filter(|c| &*c.thread_id == thread_id).collect();
        rows.sort_by_key(|c| c.seq);
        rows.into_iter().map(|c| c.row.clone()).collect()
    }

    /// Claims a pending call for answering.
    pub(crate) fn begin_response(&self, request_id: &str) -> Begin {
        let thread = match lock(&self.calls).pending.get(request_id) {
            None => return Begin::NotFound,
            Some(call) => Arc::clone(&call.thread_id),
        };
        if let Some(body) = self.deleted_body(&thread) {
            return Begin::SessionDeleted(body);
        }
        match lock(&self.calls).pending.get_mut(request_id) {
            None => Begin::NotFound,
            Some(call) if call.in_flight => Begin::InFlight,
            Some(call) => {
                call.in_flight = true;
                Begin::Started(thread)
            }
        }
    }

    /// Releases a claimed call unanswered (an injected failure): it stays pending.
    pub(crate) fn abandon_response(&self, request_id: &str) {
        if let Some(call) = lock(&self.calls).pending.get_mut(request_id) {
            call.in_flight = false;
        }
    }

    /// Accepts the answer to a claimed call: removes it, emits `tool_call_resolved`, and wakes
    /// whoever waits for it.
    pub(crate) fn complete_response(&self, request_id: &str, thread_id: &str, body: Value, success: bool) {
        let call = {
            let mut calls = lock(&self.calls);
            let call = calls.pending.remove(request_id);
            calls.answers.insert(request_id, body.clone(), !self.config.record);
            call
        };
        self.publish_text(
            Some(thread_id),
            fixtures::tool_call_resolved_text(thread_id, request_id, success),
        );
        self.answered.send_modify(|n| *n += 1);
        if let Some(call) = call
            && let Some(watcher) = call.watcher
        {
            let latency = call.emitted_at.elapsed();
            let _ = watcher.send(Answer {
                request_id: request_id.to_owned(),
                body,
                latency,
            });
        }
    }

    /// The accepted answer to a call, if any (with recording off, only a recent one: see
    /// [`UNRECORDED_ANSWER_MEMORY`]).
    pub(crate) fn answer(&self, request_id: &str) -> Option<Value> {
        lock(&self.calls).answers.get(request_id).cloned()
    }

    pub(crate) fn all_answered(&self) -> bool {
        lock(&self.calls).pending.values().all(|c| c.orphaned)
    }

    /// Waits until `done` holds, re-checking after every answer.
    pub(crate) async fn wait_answers<T>(&self, timeout: Duration, mut done: impl FnMut() -> Option<T>) -> Option<T> {
        let mut changes = self.answered.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = done() {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    // ---- faults -------------------------------------------------------------------------

    pub(crate) fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Consumes one injected failure, if any are left.
    pub(crate) fn take_failure(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    pub(crate) fn set_delay(&self, delay: Duration) {
        self.delay_micros
            .store(delay.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    pub(crate) fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_micros.load(Ordering::Relaxed))
    }

    pub(crate) fn set_pong_enabled(&self, enabled: bool) {
        self.pong_enabled.store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn pong_enabled(&self) -> bool {
        self.pong_enabled.load(Ordering::Relaxed)
    }

    // ---- recording ----------------------------------------------------------------------

    pub(crate) fn record_request(&self, request: RecordedRequest) {
        lock(&self.recorded).push(request);
    }

    pub(crate) fn received(&self) -> Vec<RecordedRequest> {
        lock(&self.recorded).clone()
    }

    pub(crate) fn record_respond_body(&self, request_id: &str, body: Value) {
        if self.config.record {
            lock(&self.respond_bodies)
                .entry(request_id.to_owned())
                .or_default()
                .push(body);
        }
    }

    pub(crate) fn responses_for(&self, request_id: &str) -> Vec<Value> {
        lock(&self.respond_bodies).get(request_id).cloned().unwrap_or_default()
    }

    pub(crate) fn record_ws_text(&self, text: &str) {
        if self.config.record {
            lock(&self.ws_received).push(text.to_owned());
        }
    }

    pub(crate) fn ws_received(&self) -> Vec<String> {
        lock(&self.ws_received).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(record: bool) -> State {
        let config = Config {
            bearer: None,
            record,
            default_turn: None,
            on_message: None,
        };
        State::new(config, CancellationToken::new())
    }

    /// Issues and answers `n` calls on one thread, as the respond route does.
    fn answer_calls(state: &State, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let id = state.inject_tool_call("t", Some("u"), "echo", &Value::Null, None);
                let Begin::Started(thread) = state.begin_response(&id) else {
                    panic!("call {id} not claimable")
                };
                state.complete_response(&id, &thread, serde_json::json!({ "n": i }), true);
                id
            })
            .collect()
    }

    #[tokio::test]
    async fn unrecorded_answers_are_bounded_and_still_answer_404_once_answered() {
        let state = state(false);
        let ids = answer_calls(&state, UNRECORDED_ANSWER_MEMORY + 100);
        assert_eq!(lock(&state.calls).answers.len(), UNRECORDED_ANSWER_MEMORY);
        let newest = ids.last().unwrap();
        assert_eq!(
            state.answer(newest),
            Some(serde_json::json!({ "n": UNRECORDED_ANSWER_MEMORY + 99 }))
        );
        assert_eq!(state.answer(&ids[0]), None, "the oldest answer body is forgotten");
        // A second answer to an old call is still refused: it is no longer pending.
        assert!(matches!(state.begin_response(&ids[0]), Begin::NotFound));
        assert!(state.all_answered());
    }

    #[tokio::test]
    async fn recorded_answers_are_all_kept() {
        let state = state(true);
        let ids = answer_calls(&state, UNRECORDED_ANSWER_MEMORY + 10);
        assert_eq!(state.answer(&ids[0]), Some(serde_json::json!({ "n": 0 })));
        assert_eq!(lock(&state.calls).answers.len(), UNRECORDED_ANSWER_MEMORY + 10);
    }

    #[tokio::test]
    async fn the_tool_call_signal_keeps_codex_managers_key_order() {
        let state = state(false);
        let mut socket = state.hub.join(None);
        let id = state.inject_tool_call("t", Some("u"), "echo", &serde_json::json!({"text": "hi"}), None);
        let signal = socket.frames.recv().await.unwrap();
        assert!(
            signal
                .as_str()
                .starts_with(r#"{"type":"app_server.request.item.tool.call","threadId":"t","payload":{"#),
            "{}",
            signal.as_str()
        );
        let signal: Value = serde_json::from_str(signal.as_str()).unwrap();
        assert_eq!(signal["payload"]["requestId"].to_string(), id);
        assert_eq!(signal["payload"]["params"]["arguments"]["text"], "hi");
    }
}
