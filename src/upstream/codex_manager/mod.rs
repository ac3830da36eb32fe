//! The codex-manager upstream: sessions over REST (created with the skills as their dynamic tools, or attached
//! to), tool calls from the websocket stream and from pending-call listing (`feed.rs`), answers to
//! `POST /api/tool-calls/:requestId/response`, turns through `POST /api/sessions/:id/messages`.

mod calls;
mod feed;
mod sessions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{AnswerOutcome, Feed, SharedSession, ToolCall, Upstream, UpstreamError};
use crate::BoxFuture;
use crate::manager::{CodexManager, CreateSession, ManagerError, SendMessage};
use crate::skill::{Catalog, Offered, ToolFlavor, ToolResult, Toolset};
use crate::stream::StreamOptions;
use crate::telemetry::ServedSession;
use sessions::{NAME, Sessions};

/// The default interval of pending-call listing.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How long one answer (with its identity check) may take before it counts as failed and is retried: far shorter
/// than the client's request timeout, so that a hung answer does not hold a worker.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves tool calls of codex-manager sessions.
///
/// By default it creates one session whose dynamic tools are the catalog's skills, or none when it is told
/// to [`attach`](Self::attach) to existing ones. Calls arrive on the websocket stream and from listing the
/// sessions' pending calls after every (re)connect and every [`poll_interval`](Self::poll_interval); the
/// dispatcher drops the duplicates.
///
/// ```no_run
/// use skillbridge::manager::{CodexManager, CreateSession};
/// use skillbridge::upstream::CodexManagerUpstream;
///
/// # fn demo() -> Result<(), skillbridge::manager::ManagerError> {
/// let upstream = CodexManagerUpstream::new(CodexManager::from_env()?)
///     .sessions(3)
///     .session_template(CreateSession::new().cwd("/work/project"))
///     .delete_on_exit(true);
/// # Ok(()) }
/// ```
pub struct CodexManagerUpstream {
    client: CodexManager,
    create: Option<usize>,
    attach: Vec<String>,
    all_sessions: bool,
    template: CreateSession,
    poll_interval: Duration,
    delete_on_exit: bool,
    stream_options: StreamOptions,
    sessions: Arc<Sessions>,
    calls: Arc<calls::Calls>,
    toolset: Toolset,
    /// Further groups of sessions, each created with its own toolset.
    groups: Vec<(usize, Toolset)>,
    /// Whether the bridge belongs to a group of bridges, which serve each other's sessions.
    in_group: AtomicBool,
}

impl CodexManagerUpstream {
    /// Serves through `client`: one new session, pending calls listed every 5 s, sessions kept on exit.
    pub fn new(client: CodexManager) -> Self {
        Self {
            create: None,
            attach: Vec::new(),
            all_sessions: false,
            template: CreateSession::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            delete_on_exit: false,
            stream_options: StreamOptions::default(),
            sessions: Arc::new(Sessions::new(client.clone())),
            calls: Arc::default(),
            toolset: Toolset::all(),
            groups: Vec::new(),
            in_group: AtomicBool::new(false),
            client,
        }
    }

    /// Creates this many sessions (default 1, or 0 when attaching).
    pub fn sessions(mut self, count: usize) -> Self {
        self.create = Some(count);
        self
    }

    /// Also serves this existing session. Its tool catalog was fixed when it was created.
    pub fn attach(mut self, session_id: impl Into<String>) -> Self {
        self.attach.push(session_id.into());
        self
    }

    /// Answers calls of every session on the codex-manager, not only the ones served here.
    pub fn all_sessions(mut self, all: bool) -> Self {
        self.all_sessions = all;
        self
    }

    /// How created sessions are set up (cwd, model, approval policy, sandbox); its tools are replaced by the
    /// catalog's.
    pub fn session_template(mut self, template: CreateSession) -> Self {
        self.template = template;
        self
    }

    /// Which skills the sessions created here are offered (default: every skill of the catalog). A call in one of
    /// them to any other tool is answered "not offered in this session" and never runs. Attached sessions keep the
    /// tools they were created with.
    pub fn toolset(mut self, toolset: Toolset) -> Self {
        self.toolset = toolset;
        self
    }

    /// Also creates `count` sessions offered `toolset`, besides those of [`sessions`](Self::sessions) and
    /// [`toolset`](Self::toolset) (which then default to none unless set). Repeatable: one group per call.
    pub fn session_group(mut self, count: usize, toolset: Toolset) -> Self {
        self.groups.push((count, toolset));
        self
    }

    /// How often pending calls are listed besides after every (re)connect.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Deletes the sessions it created when the bridge shuts down (attached ones are left alone).
    pub fn delete_on_exit(mut self, delete: bool) -> Self {
        self.delete_on_exit = delete;
        self
    }

    /// Stream settings (ping interval, backoff, buffer); the thread filter and stop token are set when it runs.
    pub fn stream_options(mut self, options: StreamOptions) -> Self {
        self.stream_options = options;
        self
    }

    /// The REST client.
    pub fn client(&self) -> &CodexManager {
        &self.client
    }

    fn unreachable_or(&self, error: ManagerError, other: impl FnOnce(ManagerError) -> UpstreamError) -> UpstreamError {
        if matches!(error, ManagerError::Transport { .. }) {
            UpstreamError::Unreachable {
                url: self.client.config().base_url().to_owned(),
                source: error,
            }
        } else {
            other(error)
        }
    }

    async fn open_sessions(&self, catalog: &Catalog) -> Result<Vec<ServedSession>, UpstreamError> {
        let create = self
            .create
            .unwrap_or(if self.attach.is_empty() && self.groups.is_empty() {
                1
            } else {
                0
            });
        let grouped: usize = self.groups.iter().map(|(count, _)| count).sum();
        let in_group = self.in_group.load(Ordering::Relaxed);
        if create + grouped == 0 && self.attach.is_empty() && !self.all_sessions && !in_group {
            return Err(UpstreamError::Invalid(
                "nothing to serve: create a session, attach to one, or serve all sessions".into(),
            ));
        }
        let mut groups = vec![(create, &self.toolset)];
        groups.extend(self.groups.iter().map(|(count, toolset)| (*count, toolset)));
        let mut plans = Vec::new();
        for (count, toolset) in groups {
            let offered = toolset
                .select(catalog)
                .map_err(|error| UpstreamError::Invalid(format!("toolset ({toolset}): {error}")))?;
            let mut template = self.template.clone();
            template.dynamic_tools = catalog.dynamic_tools_of(&offered, ToolFlavor::CodexManager);
            if count > 0 && template.dynamic_tools.is_empty() {
                tracing::warn!("no skills are registered: the created sessions have no dynamic tools");
            }
            let offered = (!toolset.is_all()).then_some(offered);
            plans.push((count, Arc::new(sessions::Plan { template, offered })));
        }
        let mut sessions = Vec::new();
        for (count, plan) in &plans {
            for _ in 0..*count {
                match self.sessions.create(plan).await {
                    Ok(session) => sessions.push(session),
                    Err(error) => {
                        self.sessions.delete_created().await;
                        return Err(self.unreachable_or(error, |source| UpstreamError::Refused {
                            action: "create a session",
                            source,
                        }));
                    }
                }
            }
        }
        for id in &self.attach {
            let detail = match self.client.get_session(id).await {
                Ok(detail) => detail,
                Err(error) => {
                    self.sessions.delete_created().await;
                    return Err(self.unreachable_or(error, |error| UpstreamError::Attach {
                        id: id.clone(),
                        reason: match error.status().map(|s| s.as_u16()) {
                            Some(404) => "codex-manager has no such session (404)".to_owned(),
                            Some(410) => "the session was deleted (410)".to_owned(),
                            _ => error.to_string(),
                        },
                    }));
                }
            };
            let ours = catalog.dynamic_tools(ToolFlavor::CodexManager);
            match session_tools(&detail).and_then(|theirs| tools_difference(&ours, theirs)) {
                Some(difference) => tracing::warn!(
                    session = %id,
                    "attached to a session whose tools differ from this bridge's skills ({difference}); its tools \
                     were fixed when it was created"
                ),
                None => tracing::info!(session = %id, "attached to an existing session"),
            }
            sessions.push(self.sessions.attached(id));
        }
        Ok(sessions)
    }
}

/// The `dynamicTools` a session detail (`GET /api/sessions/:id`) shows, if it shows them: codex-manager 0.x does
/// not, so an attached session's tools can only be compared when a version does.
fn session_tools(detail: &Value) -> Option<&[Value]> {
    ["/dynamicTools", "/session/dynamicTools", "/thread/dynamicTools"]
        .iter()
        .find_map(|pointer| detail.pointer(pointer)?.as_array())
        .map(Vec::as_slice)
}

/// How a session's tools differ from the catalog's, in words (`skills it lacks: a, b; tools that are no skill here:
/// c; changed since: d`); `None` when they are the same.
fn tools_difference(ours: &[Value], theirs: &[Value]) -> Option<String> {
    let by_name = |tools: &[Value]| -> BTreeMap<String, Value> {
        tools
            .iter()
            .filter_map(|tool| Some((tool["name"].as_str()?.to_owned(), tool.clone())))
            .collect()
    };
    let (ours, theirs) = (by_name(ours), by_name(theirs));
    let lacking: Vec<&str> = ours
        .keys()
        .filter(|name| !theirs.contains_key(*name))
        .map(String::as_str)
        .collect();
    let foreign: Vec<&str> = theirs
        .keys()
        .filter(|name| !ours.contains_key(*name))
        .map(String::as_str)
        .collect();
    let changed: Vec<&str> = ours
        .iter()
        .filter(|(name, tool)| {
            theirs.get(*name).is_some_and(|their| {
                (their["description"] != tool["description"]) || (their["inputSchema"] != tool["inputSchema"])
            })
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let parts: Vec<String> = [
        ("skills it lacks", lacking),
        ("tools that are no skill here", foreign),
        ("changed since", changed),
    ]
    .into_iter()
    .filter(|(_, names)| !names.is_empty())
    .map(|(what, names)| format!("{what}: {}", names.join(", ")))
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

impl CodexManagerUpstream {
    /// `None` when `call` may be answered; otherwise why not (see [`calls`]): a call not seen on the current
    /// stream connection is answered only while a current pending-call listing shows it under its request id.
    async fn check_identity(&self, call: &ToolCall) -> Option<AnswerOutcome> {
        match self.calls.standing(call) {
            calls::Standing::Current => return None,
            calls::Standing::Replaced => return Some(lost(call, "stands for another call")),
            calls::Standing::Earlier => {}
        }
        if let Some(pending) = self.calls.listed_pending(call) {
            return self.answerable(call, pending);
        }
        let asked = self.calls.last_listing_begun();
        let gate = self.calls.listing_gate(&call.thread_id);
        let _listing = gate.lock().await;
        // Listed while this call waited for the gate: on the current connection, or just now. (With no connection
        // up, as while shutting down, the answers waiting share one listing instead of each taking its own.)
        let listed = self
            .calls
            .listed_pending(call)
            .or_else(|| self.calls.listed_since(call, asked));
        let pending = match listed {
            Some(pending) => pending,
            // The feed reports unreadable and unusable rows; this listing only looks for `call`.
            None => match feed::take_listing(&self.client, &self.calls, &call.thread_id).await {
                Ok(listing) => calls::shows_pending(&listing.pending, call),
                Err(error) => return Some(classify(&error)),
            },
        };
        self.answerable(call, pending)
    }

    /// `None` when `call`, seen on an earlier connection, is `pending` in a current listing (it is then taken as
    /// seen on the current connection); otherwise it is lost.
    fn answerable(&self, call: &ToolCall, pending: bool) -> Option<AnswerOutcome> {
        if pending {
            self.calls.seen(call, self.calls.connection());
            None
        } else {
            Some(lost(call, "is no longer pending"))
        }
    }
}

/// Why the result of a call seen before codex-manager reconnected cannot be delivered.
fn lost(call: &ToolCall, what: &str) -> AnswerOutcome {
    AnswerOutcome::Lost {
        reason: format!(
            "request {} {what} since codex-manager reconnected (it restarts its request ids at 0)",
            call.request_id
        ),
    }
}

impl Upstream for CodexManagerUpstream {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open<'a>(&'a self, catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, UpstreamError>> {
        Box::pin(self.open_sessions(catalog))
    }

    fn offered(&self, thread: &str) -> Option<Offered> {
        self.sessions.offered(thread)
    }

    fn join_group(&self) -> bool {
        self.in_group.store(true, Ordering::Relaxed);
        true
    }

    fn shared_sessions(&self) -> Vec<SharedSession> {
        self.sessions.shared()
    }

    fn adopt(&self, sessions: &[SharedSession]) -> Vec<ServedSession> {
        self.sessions.adopt(sessions)
    }

    fn run<'a>(&'a self, feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>> {
        let served = self.sessions.served();
        let scope = if self.all_sessions {
            feed::SessionScope::All(served)
        } else {
            feed::SessionScope::Only(served)
        };
        let feeder = feed::CodexManagerFeed::new(
            self.client.clone(),
            feed,
            Arc::clone(&self.calls),
            Arc::clone(&self.sessions),
            scope,
            self.poll_interval,
        )
        .stream_options(self.stream_options.clone());
        Box::pin(async move {
            feeder.run(stop).await;
            Ok(())
        })
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        let answer = async move {
            if let Some(refused) = self.check_identity(call).await {
                return refused;
            }
            match self.client.respond_tool_call(&call.request_id, result).await {
                Ok(_) => AnswerOutcome::Delivered,
                Err(error) => classify(&error),
            }
        };
        Box::pin(async move {
            tokio::time::timeout(ANSWER_TIMEOUT, answer)
                .await
                .unwrap_or_else(|_| AnswerOutcome::Retry {
                    reason: format!("codex-manager did not take the answer within {ANSWER_TIMEOUT:?}"),
                })
        })
    }

    fn start_turn<'a>(&'a self, session: &'a str, text: &'a str) -> BoxFuture<'a, Result<String, UpstreamError>> {
        Box::pin(async move {
            let accepted = self
                .client
                .send_message(session, &SendMessage::new(text))
                .await
                .map_err(|error| {
                    self.unreachable_or(error, |source| UpstreamError::Refused {
                        action: "take a message",
                        source,
                    })
                })?;
            Ok(accepted.turn_id)
        })
    }

    fn interrupt_turn<'a>(&'a self, session: &'a str, turn: &'a str) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            self.client
                .interrupt(session, Some(turn))
                .await
                .map(drop)
                .map_err(|source| UpstreamError::Refused {
                    action: "interrupt the turn",
                    source,
                })
        })
    }

    fn close(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            if self.delete_on_exit {
                self.sessions.delete_created().await
            } else {
                Vec::new()
            }
        })
    }
}

/// Maps a respond error to what the dispatcher should do: 404/409 mean somebody answered; 410 means the
/// session is gone; 5xx, 429 and transport errors pass; anything else (400) is final.
fn classify(error: &ManagerError) -> AnswerOutcome {
    let status = error.status().map(|s| s.as_u16());
    if error.is_already_answered() {
        AnswerOutcome::AlreadyAnswered {
            status: status.unwrap_or_default(),
        }
    } else if error.is_retryable() {
        AnswerOutcome::Retry {
            reason: error.to_string(),
        }
    } else {
        AnswerOutcome::Rejected {
            reason: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &str, description: &str) -> Value {
        json!({"name": name, "description": description, "inputSchema": {"type": "object", "properties": {}}})
    }

    #[test]
    fn an_attached_session_is_compared_only_when_its_detail_shows_its_tools() {
        let ours = [tool("a", "A."), tool("b", "B."), tool("c", "C.")];
        assert_eq!(
            session_tools(&json!({"session": {"sessionId": "s"}})),
            None,
            "0.x shows none: say nothing"
        );
        let detail = json!({"session": {"dynamicTools": [tool("a", "A."), tool("b", "Bee."), tool("z", "Z.")]}});
        let theirs = session_tools(&detail).unwrap();
        assert_eq!(
            tools_difference(&ours, theirs).unwrap(),
            "skills it lacks: c; tools that are no skill here: z; changed since: b"
        );
        assert_eq!(tools_difference(&ours, &ours), None);
    }
}
