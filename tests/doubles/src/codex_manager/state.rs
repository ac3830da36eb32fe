//! The double's shared state: sessions, pending tool calls and their answers, what was received,
//! and the injected faults. Each area has its own short-lived lock, never held across an await.

use std::borrow::Cow;
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
use super::conn::{ConnectionId, Connections};
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
    /// The call's id: unique, unlike request ids, which restart at 0 with the server.
    pub call_id: Arc<str>,
    pub body: Value,
    /// From emitting the signal frame to accepting the answer.
    pub latency: Duration,
}

struct PendingCall {
    /// Issue order (the call counter, which a restart does not reset).
    order: u64,
    call_id: Arc<str>,
    thread_id: Arc<str>,
    row: Value,
    /// The arguments carry the call id, so the answer can be checked against it.
    checked: bool,
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

/// The app-server side of the double: what a restart of the server forgets or renumbers.
#[derive(Default)]
struct Calls {
    pending: HashMap<String, PendingCall>,
    answers: Answers,
    /// The next JSON-RPC request id; back to 0 on a restart, like a new app-server process's.
    next_request_id: u64,
    /// Bumped by every restart: a call issued by the process before it is lost.
    generation: u64,
    /// Accepted answers whose text does not name the call they were accepted for.
    misdelivered: Vec<Misdelivery>,
    /// With answer identity checking on: every call some accepted answer named, and how.
    named: HashMap<Arc<str>, Named>,
}

/// How the accepted answers named one call.
#[derive(Default)]
struct Named {
    answers: u32,
    /// The call's own answer (one accepted for it that names it) is among them.
    own: bool,
}

/// Accepted answer bodies by request id: every one while recording, the newest
/// [`UNRECORDED_ANSWER_MEMORY`] otherwise. A forgotten answer only matters to `wait_answered`; a second answer to
/// the same call still gets 404, which comes from the call no longer being pending. A new call that reuses a
/// request id (after a restart) forgets the old call's answer, so the id always means the newest call.
#[derive(Default)]
struct Answers {
    bodies: HashMap<String, (Arc<str>, Value)>,
    /// Arrival order as `(request id, call id)`, kept only while bounded.
    order: VecDeque<(String, Arc<str>)>,
}

impl Answers {
    fn insert(&mut self, request_id: &str, call_id: &Arc<str>, body: Value, bounded: bool) {
        if bounded {
            while self.order.len() >= UNRECORDED_ANSWER_MEMORY {
                if let Some((oldest, call)) = self.order.pop_front()
                    && self.bodies.get(&oldest).is_some_and(|(kept, _)| *kept == call)
                {
                    self.bodies.remove(&oldest);
                }
            }
            self.order.push_back((request_id.to_owned(), Arc::clone(call_id)));
        }
        self.bodies.insert(request_id.to_owned(), (Arc::clone(call_id), body));
    }

    fn get(&self, request_id: &str) -> Option<&Value> {
        self.bodies.get(request_id).map(|(_, body)| body)
    }

    /// Forgets the answer kept under a request id that a new call now holds.
    fn forget(&mut self, request_id: &str) {
        self.bodies.remove(request_id);
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
    Started(Claimed),
}

/// A call claimed for answering: its thread, and its call id, which tells it apart from a later call that
/// reuses the request id after a restart.
pub(crate) struct Claimed {
    pub thread_id: Arc<str>,
    pub call_id: Arc<str>,
}

/// The ids of a tool call the double issued.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCall {
    /// The JSON-RPC request id in string form (`"0"`, `"1"`, ..): what an answer is posted to. A restart
    /// numbers them from 0 again.
    pub request_id: String,
    /// The model's call id (`call_<n>`), never reused: not across turns, sessions or restarts.
    pub call_id: String,
}

/// An answer the double accepted (200) for a call whose id its text does not contain: with
/// [`check_answer_identity`](super::CodexManagerDoubleBuilder::check_answer_identity), evidence that the
/// answer was meant for another call (typically one taken before a restart whose request id a new call
/// now holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Misdelivery {
    /// The request id the answer was posted to.
    pub request_id: String,
    /// The call id of the call pending under that request id, which accepted the answer.
    pub expected_call_id: String,
    /// The answer's text (see [`answer_text`](super::answer_text); the whole body as JSON when that is
    /// empty).
    pub answer_text: String,
}

/// A call whose id more than one accepted answer contains: with
/// [`check_answer_identity`](super::CodexManagerDoubleBuilder::check_answer_identity), evidence that its result was
/// delivered twice (to itself and to another call holding a reused request id, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnsweredTwice {
    /// The call named.
    pub call_id: String,
    /// How many accepted answers name it.
    pub answers: u32,
    /// Whether one of them was accepted for the call itself (the others then went to other calls).
    pub own_answer_accepted: bool,
}

/// What a [`restart`](super::CodexManagerDouble::restart) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartReport {
    /// Websockets closed.
    pub sockets_closed: usize,
    /// TCP connections cut (websockets, requests in flight, idle keep-alive connections).
    pub connections_cut: usize,
    /// Pending calls forgotten (answering one now gets 404, unless a new call holds its request id).
    pub calls_forgotten: usize,
    /// Turns in progress that ended (status `interrupted`, no event: no socket was connected).
    pub turns_interrupted: usize,
    /// Sessions forgotten (only with `lose_sessions`).
    pub sessions_lost: usize,
}

/// Builder-level settings.
pub(crate) struct Config {
    pub bearer: Option<String>,
    pub record: bool,
    pub default_turn: Option<TurnScript>,
    pub on_message: Option<MessageHook>,
    pub check_identity: bool,
}

/// The key under which, with answer identity checking on, a call's arguments carry its call id.
pub const CALL_ID_ARGUMENT: &str = "call_id";

/// The arguments with the call id merged in, and whether it was (objects and null take it; other JSON is
/// left alone and its answer is not checked).
fn with_call_id(arguments: &Value, call_id: &str) -> (Value, bool) {
    match arguments {
        Value::Object(map) => {
            let mut map = map.clone();
            map.insert(CALL_ID_ARGUMENT.into(), Value::from(call_id));
            (Value::Object(map), true)
        }
        Value::Null => (serde_json::json!({ CALL_ID_ARGUMENT: call_id }), true),
        other => (other.clone(), false),
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `text` contains `id` as a whole token: not preceded or followed by a letter, digit or `_`, so
/// `call_1` is not found in `call_12`.
pub(crate) fn contains_token(text: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    text.match_indices(id).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + id.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The call ids (`call_<n>`, whole tokens) that `text` contains, each once.
fn call_ids_in(text: &str) -> Vec<&str> {
    let mut ids: Vec<&str> = text
        .match_indices("call_")
        .filter(|(at, _)| !text[..*at].chars().next_back().is_some_and(is_word))
        .filter_map(|(at, prefix)| {
            let rest = &text[at + prefix.len()..];
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let id = &text[at..at + prefix.len() + digits];
            let whole = digits > 0 && !rest[digits..].chars().next().is_some_and(is_word);
            whole.then_some(id)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

pub(crate) struct State {
    pub config: Config,
    pub hub: Arc<Hub>,
    pub connections: Arc<Connections>,
    pub shutdown: CancellationToken,
    sessions: Mutex<HashMap<String, Session>>,
    scripts: Mutex<HashMap<String, VecDeque<TurnScript>>>,
    /// Lock order: `calls` before `sessions` and before the hub's lock; never the other way round.
    calls: Mutex<Calls>,
    /// Numbers call ids; unlike request ids, never reset.
    next_call: AtomicU64,
    recorded: Mutex<Vec<RecordedRequest>>,
    respond_bodies: Mutex<HashMap<String, Vec<Value>>>,
    ws_received: Mutex<Vec<String>>,
    fail_next: AtomicUsize,
    /// Tool-call responses fail until then.
    fail_until: Mutex<Option<Instant>>,
    fail_next_creates: AtomicUsize,
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
            connections: Arc::default(),
            shutdown,
            sessions: Mutex::default(),
            scripts: Mutex::default(),
            calls: Mutex::default(),
            next_call: AtomicU64::new(0),
            recorded: Mutex::default(),
            respond_bodies: Mutex::default(),
            ws_received: Mutex::default(),
            fail_next: AtomicUsize::new(0),
            fail_until: Mutex::new(None),
            fail_next_creates: AtomicUsize::new(0),
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
    /// signal (numeric `requestId`) and `tool_call_requested` (the row). With answer identity checking on,
    /// the arguments carry the call id under [`CALL_ID_ARGUMENT`]. A call issued while the server restarts
    /// belongs to the old process and is lost (neither listed nor emitted).
    pub(crate) fn inject_tool_call(
        &self,
        thread_id: &str,
        turn_id: Option<&str>,
        tool: &str,
        arguments: &Value,
        watcher: Option<mpsc::UnboundedSender<Answer>>,
    ) -> IssuedCall {
        let order = self.next_call.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("call_{order}");
        let (seq, generation) = {
            let mut calls = lock(&self.calls);
            let seq = calls.next_request_id;
            calls.next_request_id += 1;
            (seq, calls.generation)
        };
        let request_id = seq.to_string();
        let (arguments, checked) = if self.config.check_identity {
            let (merged, checked) = with_call_id(arguments, &call_id);
            (Cow::Owned(merged), checked)
        } else {
            (Cow::Borrowed(arguments), false)
        };
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
            arguments: &arguments,
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
        let issued = IssuedCall {
            request_id: request_id.clone(),
            call_id: call_id.clone(),
        };
        let mut calls = lock(&self.calls);
        if calls.generation != generation {
            return issued;
        }
        calls.answers.forget(&request_id);
        let pending = PendingCall {
            order,
            call_id: Arc::from(call_id),
            thread_id: Arc::from(thread_id),
            row,
            checked,
            in_flight: false,
            orphaned,
            emitted_at: Instant::now(),
            watcher,
        };
        calls.pending.insert(request_id, pending);
        // The row is listed before its frames go out, so a client reacting to them finds it; both happen
        // under the calls lock, so a restart cannot come between them.
        self.publish_text(Some(thread_id), signal);
        self.publish_text(Some(thread_id), requested);
        drop(calls);
        issued
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
        rows.sort_by_key(|c| c.order);
        rows.into_iter().map(|c| c.row.clone()).collect()
    }

    /// Claims a pending call for answering.
    pub(crate) fn begin_response(&self, request_id: &str) -> Begin {
        let (thread_id, call_id) = match lock(&self.calls).pending.get(request_id) {
            None => return Begin::NotFound,
            Some(call) => (Arc::clone(&call.thread_id), Arc::clone(&call.call_id)),
        };
        if let Some(body) = self.deleted_body(&thread_id) {
            return Begin::SessionDeleted(body);
        }
        match lock(&self.calls).pending.get_mut(request_id) {
            Some(call) if call.call_id != call_id => Begin::NotFound,
            None => Begin::NotFound,
            Some(call) if call.in_flight => Begin::InFlight,
            Some(call) => {
                call.in_flight = true;
                Begin::Started(Claimed { thread_id, call_id })
            }
        }
    }

    /// Releases a claimed call unanswered (an injected failure): it stays pending. Does nothing if a restart
    /// forgot it meanwhile.
    pub(crate) fn abandon_response(&self, request_id: &str, call_id: &str) {
        if let Some(call) = lock(&self.calls).pending.get_mut(request_id)
            && &*call.call_id == call_id
        {
            call.in_flight = false;
        }
    }

    /// Accepts the answer to a claimed call: removes it, emits `tool_call_resolved`, checks the answer's
    /// identity (when on), and wakes whoever waits for it. False when a restart forgot the call while its
    /// answer was in flight: nothing is accepted then.
    pub(crate) fn complete_response(&self, request_id: &str, claimed: &Claimed, body: Value, success: bool) -> bool {
        let mut calls = lock(&self.calls);
        if calls
            .pending
            .get(request_id)
            .is_none_or(|call| call.call_id != claimed.call_id)
        {
            return false;
        }
        let Some(call) = calls.pending.remove(request_id) else {
            return false;
        };
        if call.checked {
            let mut text = super::turns::answer_text(&body);
            if text.is_empty() {
                text = body.to_string();
            }
            for named in call_ids_in(&text) {
                let entry = calls.named.entry(Arc::from(named)).or_default();
                entry.answers += 1;
                entry.own |= named == &*call.call_id;
            }
            if !contains_token(&text, &call.call_id) {
                calls.misdelivered.push(Misdelivery {
                    request_id: request_id.to_owned(),
                    expected_call_id: call.call_id.to_string(),
                    answer_text: text,
                });
            }
        }
        calls
            .answers
            .insert(request_id, &call.call_id, body.clone(), !self.config.record);
        self.publish_text(
            Some(&claimed.thread_id),
            fixtures::tool_call_resolved_text(&claimed.thread_id, request_id, success),
        );
        drop(calls);
        self.answered.send_modify(|n| *n += 1);
        if let Some(watcher) = call.watcher {
            let latency = call.emitted_at.elapsed();
            let _ = watcher.send(Answer {
                call_id: call.call_id,
                body,
                latency,
            });
        }
        true
    }

    /// Every answer accepted for a call whose id its text does not contain, oldest first.
    pub(crate) fn misdelivered(&self) -> Vec<Misdelivery> {
        lock(&self.calls).misdelivered.clone()
    }

    /// The calls more than one accepted answer named, by call id.
    pub(crate) fn answered_twice(&self) -> Vec<AnsweredTwice> {
        let calls = lock(&self.calls);
        let mut twice: Vec<AnsweredTwice> = calls
            .named
            .iter()
            .filter(|(_, named)| named.answers > 1)
            .map(|(call_id, named)| AnsweredTwice {
                call_id: call_id.to_string(),
                answers: named.answers,
                own_answer_accepted: named.own,
            })
            .collect();
        twice.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        twice
    }

    /// Restarts the server as codex-manager restarts: every connection is cut but `keep` (websockets drop
    /// without a close handshake, requests in flight get no response), pending calls and answers in flight
    /// are forgotten, request ids start at 0 again, turns in progress end `interrupted` (their scripts stop);
    /// sessions, their turns and transcripts stay, unless `lose_sessions`. Call ids keep counting. All of it
    /// happens at once: no socket can join, and no call be issued, halfway through.
    pub(crate) fn restart(&self, lose_sessions: bool, keep: Option<ConnectionId>) -> RestartReport {
        let mut calls = lock(&self.calls);
        let calls_forgotten = calls.pending.len();
        // Dropping the rows drops their watchers: a burst waiting on them sees no answer.
        calls.pending.clear();
        calls.next_request_id = 0;
        calls.generation += 1;
        let now_ms = clock::unix_millis();
        let mut cancels = Vec::new();
        let sessions_lost = {
            let mut sessions = self.sessions();
            for session in sessions.values_mut() {
                let Some((turn_id, cancel)) = session.active_turn.take() else {
                    continue;
                };
                if let Some(turn) = session
                    .turns
                    .iter_mut()
                    .find(|t| t.id == turn_id && t.status == "inProgress")
                {
                    turn.status = "interrupted";
                    turn.completed_ms = Some(now_ms);
                }
                cancels.push(cancel);
            }
            if lose_sessions {
                let lost = sessions.len();
                sessions.clear();
                lost
            } else {
                0
            }
        };
        let sockets_closed = self.hub.drop_all();
        let connections_cut = self.connections.kill_all_except(keep);
        drop(calls);
        for cancel in &cancels {
            cancel.cancel();
        }
        self.answered.send_modify(|n| *n += 1);
        RestartReport {
            sockets_closed,
            connections_cut,
            calls_forgotten,
            turns_interrupted: cancels.len(),
            sessions_lost,
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

    /// Fails every tool-call response for `window` from now (zero: none); replaces the window left over.
    pub(crate) fn fail_for(&self, window: Duration) {
        *lock(&self.fail_until) = (!window.is_zero()).then(|| Instant::now() + window);
    }

    /// Whether this tool-call response fails: within the failure window, or consuming one of the next-n failures.
    pub(crate) fn take_failure(&self) -> bool {
        if lock(&self.fail_until).is_some_and(|until| Instant::now() < until) {
            return true;
        }
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    pub(crate) fn fail_next_creates(&self, n: usize) {
        self.fail_next_creates.store(n, Ordering::SeqCst);
    }

    /// Consumes one injected session-creation failure, if any are left.
    pub(crate) fn take_create_failure(&self) -> bool {
        self.fail_next_creates
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
            check_identity: false,
        };
        State::new(config, CancellationToken::new())
    }

    /// Issues and answers `n` calls on one thread, as the respond route does.
    fn answer_calls(state: &State, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let id = state
                    .inject_tool_call("t", Some("u"), "echo", &Value::Null, None)
                    .request_id;
                let Begin::Started(claimed) = state.begin_response(&id) else {
                    panic!("call {id} not claimable")
                };
                assert!(state.complete_response(&id, &claimed, serde_json::json!({ "n": i }), true));
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

    #[test]
    fn answers_name_the_call_ids_they_contain_as_whole_words() {
        assert_eq!(
            call_ids_in(r#"{"call_id":"call_1","text":"call_12 call_1"}"#),
            ["call_1", "call_12"]
        );
        assert_eq!(call_ids_in("call_ call_x xcall_3 call_4b"), Vec::<&str>::new());
        assert_eq!(call_ids_in("(call_7)"), ["call_7"]);
    }

    #[test]
    fn call_ids_are_found_only_as_whole_words() {
        assert!(contains_token(r#"{"call_id":"call_1","text":"x"}"#, "call_1"));
        assert!(contains_token("call_1", "call_1"));
        assert!(contains_token("for call_12 and call_1.", "call_1"));
        assert!(!contains_token("call_12", "call_1"));
        assert!(!contains_token("xcall_1", "call_1"));
        assert!(!contains_token("anything", ""));
        assert!(contains_token("é call_1 é", "call_1"));
    }

    #[tokio::test]
    async fn an_answer_claimed_before_a_restart_never_completes_the_call_after_it() {
        let state = state(true);
        let old = state.inject_tool_call("t", Some("u"), "echo", &Value::Null, None);
        let Begin::Started(claimed) = state.begin_response(&old.request_id) else {
            panic!("the call is claimable")
        };
        state.restart(false, None);
        let new = state.inject_tool_call("t", Some("u"), "echo", &Value::Null, None);
        assert_eq!(new.request_id, old.request_id);
        assert_ne!(new.call_id, old.call_id);
        // The old claim neither releases nor completes the new call that holds its request id.
        state.abandon_response(&old.request_id, &claimed.call_id);
        assert!(!state.complete_response(&old.request_id, &claimed, serde_json::json!({"text": "old"}), true));
        assert_eq!(state.pending_rows("t").len(), 1);
        assert_eq!(state.answer(&new.request_id), None);
        let Begin::Started(fresh) = state.begin_response(&new.request_id) else {
            panic!("the new call is claimable")
        };
        assert!(matches!(state.begin_response(&new.request_id), Begin::InFlight));
        assert!(state.complete_response(&new.request_id, &fresh, serde_json::json!({"text": "new"}), true));
        assert_eq!(state.answer(&new.request_id), Some(serde_json::json!({"text": "new"})));
    }

    #[tokio::test]
    async fn a_new_call_under_an_old_request_id_forgets_the_old_answer() {
        let state = state(false);
        let ids = answer_calls(&state, 1);
        assert!(state.answer(&ids[0]).is_some());
        state.restart(false, None);
        let again = state.inject_tool_call("t", Some("u"), "echo", &Value::Null, None);
        assert_eq!(again.request_id, ids[0]);
        assert_eq!(state.answer(&again.request_id), None, "the id now means the new call");
    }

    #[tokio::test]
    async fn the_tool_call_signal_keeps_codex_managers_key_order() {
        let state = state(false);
        let mut socket = state.hub.join(None);
        let id = state
            .inject_tool_call("t", Some("u"), "echo", &serde_json::json!({"text": "hi"}), None)
            .request_id;
        let Some(axum::extract::ws::Message::Text(signal)) = socket.frames.recv().await else {
            panic!("a text frame")
        };
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
