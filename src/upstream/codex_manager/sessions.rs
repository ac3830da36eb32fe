//! [`Sessions`]: the sessions a codex-manager upstream serves — those it created (which it may delete on exit,
//! and re-creates when codex-manager loses them), those it attached to, and those another bridge of its group
//! created (adopted) — shared by the upstream and its feed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::manager::{CodexManager, CreateSession, ManagerError};
use crate::skill::Offered;
use crate::telemetry::ServedSession;
use crate::upstream::SharedSession;
use crate::util::lock;

/// How the upstream is named in sessions, logs and metrics.
pub(super) const NAME: &str = "codex-manager";

pub(super) struct Sessions {
    client: CodexManager,
    state: Mutex<State>,
    /// Fired when sessions were adopted, for the feed to subscribe to and list them.
    adopted_some: Notify,
}

#[derive(Default)]
struct State {
    /// Each session created here, with how it was created.
    created: Vec<Created>,
    /// Thread ids of every session served.
    served: BTreeSet<String>,
    /// Sessions another bridge of the group created, with the tools they offer (`None`: every skill).
    adopted: BTreeMap<String, Option<Offered>>,
    /// Adopted sessions the feed has not taken up yet.
    newly_adopted: Vec<String>,
    /// Adopted sessions codex-manager no longer has: never adopted again.
    gone: BTreeSet<String>,
}

/// A session created here: what to create again should codex-manager lose it, and the tools it was offered when
/// its toolset left some skills out.
struct Created {
    session_id: String,
    thread_id: String,
    plan: Arc<Plan>,
}

/// How a group of sessions is created: the request (`dynamicTools` included), and the tools offered when the
/// group's toolset leaves some skills out (`None`: every skill).
pub(super) struct Plan {
    pub(super) template: CreateSession,
    pub(super) offered: Option<Offered>,
}

impl Sessions {
    pub(super) fn new(client: CodexManager) -> Self {
        Self {
            client,
            state: Mutex::default(),
            adopted_some: Notify::new(),
        }
    }

    /// Creates a session as `plan` says and serves it.
    pub(super) async fn create(&self, plan: &Arc<Plan>) -> Result<ServedSession, ManagerError> {
        let created = self.client.create_session(&plan.template).await?;
        let tools = plan.template.dynamic_tools.len();
        tracing::info!(session = %created.session_id, tools, "created session");
        let mut state = lock(&self.state);
        state.created.push(Created {
            session_id: created.session_id,
            thread_id: created.thread_id.clone(),
            plan: Arc::clone(plan),
        });
        state.served.insert(created.thread_id.clone());
        let names = plan
            .template
            .dynamic_tools
            .iter()
            .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
            .collect();
        Ok(session(created.thread_id, Some(names)))
    }

    /// Serves an existing session too.
    pub(super) fn attached(&self, thread_id: &str) -> ServedSession {
        lock(&self.state).served.insert(thread_id.to_owned());
        session(thread_id.to_owned(), None)
    }

    /// The tools offered in `thread`, when it was created (here or by another bridge of the group) by a toolset that
    /// leaves some skills out.
    pub(super) fn offered(&self, thread: &str) -> Option<Offered> {
        let state = lock(&self.state);
        match state.created.iter().find(|created| created.thread_id == thread) {
            Some(created) => created.plan.offered.clone(),
            None => state.adopted.get(thread).cloned().flatten(),
        }
    }

    /// The sessions created here, as the group's registry lists them.
    pub(super) fn shared(&self) -> Vec<SharedSession> {
        let state = lock(&self.state);
        state
            .created
            .iter()
            .map(|created| SharedSession {
                thread_id: created.thread_id.clone(),
                tools: created
                    .plan
                    .offered
                    .as_ref()
                    .map(|offered| offered.iter().cloned().collect()),
            })
            .collect()
    }

    /// Serves the sessions of `shared` not served yet (nor known to be gone); returns them.
    pub(super) fn adopt(&self, shared: &[SharedSession]) -> Vec<ServedSession> {
        let mut state = lock(&self.state);
        let mut adopted = Vec::new();
        for session in shared {
            let thread = &session.thread_id;
            if state.served.contains(thread) || state.gone.contains(thread) {
                continue;
            }
            let offered = session.tools.clone().map(|tools| Arc::new(tools.into_iter().collect()));
            state.adopted.insert(thread.clone(), offered);
            state.served.insert(thread.clone());
            state.newly_adopted.push(thread.clone());
            adopted.push(ServedSession {
                id: thread.clone(),
                upstream: NAME,
                created: false,
                tools: session.tools.clone(),
            });
        }
        if !adopted.is_empty() {
            self.adopted_some.notify_one();
        }
        adopted
    }

    /// Waits until sessions were adopted, then hands them over.
    pub(super) async fn newly_adopted(&self) -> Vec<String> {
        loop {
            let fresh = std::mem::take(&mut lock(&self.state).newly_adopted);
            if !fresh.is_empty() {
                return fresh;
            }
            self.adopted_some.notified().await;
        }
    }

    /// Whether `thread` was created by another bridge of the group.
    pub(super) fn is_adopted(&self, thread: &str) -> bool {
        lock(&self.state).adopted.contains_key(thread)
    }

    /// An adopted session codex-manager no longer has: its creator makes a new one (which the registry then
    /// lists), so this one is no longer served, nor adopted again.
    pub(super) fn adopted_gone(&self, thread: &str) {
        let mut state = lock(&self.state);
        state.adopted.remove(thread);
        state.served.remove(thread);
        state.gone.insert(thread.to_owned());
    }

    /// The threads served.
    pub(super) fn served(&self) -> BTreeSet<String> {
        lock(&self.state).served.clone()
    }

    /// codex-manager lost `thread` (it restarted without it): a session created here is created again and its
    /// replacement returned; an attached one cannot be, and is no longer served (`None`).
    pub(super) async fn replace_lost(&self, thread: &str) -> Result<Option<ServedSession>, ManagerError> {
        let lost = {
            let mut state = lock(&self.state);
            state.served.remove(thread);
            let position = state.created.iter().position(|created| created.thread_id == thread);
            position.map(|at| state.created.remove(at))
        };
        let Some(lost) = lost else {
            return Ok(None);
        };
        match self.create(&lost.plan).await {
            Ok(session) => Ok(Some(session)),
            Err(error) => {
                // Still ours to re-create: the next listing finds it missing again and retries.
                let mut state = lock(&self.state);
                state.served.insert(thread.to_owned());
                state.created.push(lost);
                Err(error)
            }
        }
    }

    /// Deletes the sessions created here; returns the ones that are gone.
    pub(super) async fn delete_created(&self) -> Vec<String> {
        let created = std::mem::take(&mut lock(&self.state).created);
        let mut deleted = Vec::new();
        for Created { session_id: id, .. } in created {
            match self.client.delete_session(&id).await {
                Ok(_) => {
                    tracing::info!(session = %id, "deleted session");
                    deleted.push(id);
                }
                Err(error) if matches!(error.status().map(|s| s.as_u16()), Some(404 | 410)) => {
                    tracing::info!(session = %id, "session was already gone");
                    deleted.push(id);
                }
                Err(error) => tracing::error!(session = %id, %error, "could not delete session"),
            }
        }
        deleted
    }
}

/// A served session: created here with `tools`, or attached to (`None`).
fn session(id: String, tools: Option<Vec<String>>) -> ServedSession {
    ServedSession {
        id,
        upstream: NAME,
        created: tools.is_some(),
        tools,
    }
}
