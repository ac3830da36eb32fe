//! The MCP upstream: the catalog served as a Model Context Protocol server ([rmcp], the official Rust SDK), over
//! stdio or streamable HTTP, for Codex CLI, IDE agents and any other MCP client.
//!
//! It differs from codex-manager and `codex app-server` in who calls whom: the client sends `tools/call` and waits
//! for the response. So each call becomes a [`ToolCall`] of its own turn, submitted to the dispatcher like any other
//! (argument validation, deadlines, concurrency, metrics and the admin endpoint all apply), and the answer the
//! dispatcher gives through [`Upstream::answer`] is the response to that request. A client's
//! `notifications/cancelled` cancels the call's turn, which fires the skill's cancellation token.
//!
//! ```no_run
//! use skillbridge::upstream::McpUpstream;
//! use skillbridge::Bridge;
//!
//! # async fn demo() -> Result<(), skillbridge::BridgeError> {
//! // `[mcp_servers.tools] command = "my-tools", args = ["mcp"]` in Codex's config.toml runs this.
//! let bridge = Bridge::builder().upstream(McpUpstream::stdio()).build()?;
//! bridge.run(std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod convert;
mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{AnswerOutcome, Feed, ToolCall, Upstream, UpstreamError};
use crate::BoxFuture;
use rmcp::model::ProgressNotificationParam;

use crate::skill::{Catalog, Offered, ProgressSink, ToolResult, Toolset};
use crate::telemetry::{LinkStatus, ServedSession};
use crate::util::lock;

/// How the upstream is named in sessions, logs and metrics, and the one session it serves.
const NAME: &str = "mcp";

/// Where the MCP server listens.
#[derive(Debug, Clone)]
pub enum McpTransport {
    /// The process's stdin and stdout (stdout carries only protocol messages); the client started this process.
    Stdio,
    /// Streamable HTTP at `http://ADDR/mcp`, each request with `Authorization: Bearer TOKEN` when a token is set.
    Http {
        /// The address to listen on.
        addr: SocketAddr,
        /// The bearer token every request must carry.
        token: Option<secrecy::SecretString>,
    },
}

/// Serves the catalog to MCP clients; see the [module docs](self).
pub struct McpUpstream {
    transport: McpTransport,
    toolset: Toolset,
    shared: Arc<Shared>,
}

/// What the MCP server and the bridge's side of the upstream share.
#[derive(Default)]
struct Shared {
    /// The tools listed, rendered when the upstream opens.
    tools: OnceLock<Vec<rmcp::model::Tool>>,
    /// The skills offered, when the toolset leaves some out.
    offered: OnceLock<Option<Offered>>,
    /// Where calls go, once the upstream runs.
    feed: OnceLock<Feed>,
    /// The response each call in flight waits for, by request id.
    waiting: Mutex<HashMap<String, oneshot::Sender<ToolResult>>>,
    /// Numbers the calls: MCP request ids repeat across clients and HTTP sessions.
    next_call: AtomicU64,
    /// Whether the server is up (stdio: its client is connected; HTTP: it listens).
    up: AtomicBool,
    /// Where the HTTP server listens, once bound.
    bound: OnceLock<SocketAddr>,
    /// The HTTP listener, bound when the upstream opens (so that a taken port fails start-up) until it runs.
    listener: Mutex<Option<tokio::net::TcpListener>>,
    /// Where the progress of the calls whose client sent a progress token goes, by request id.
    progress: Mutex<HashMap<String, (rmcp::Peer<rmcp::RoleServer>, rmcp::model::ProgressToken)>>,
}

impl McpUpstream {
    /// Serves over the process's stdin and stdout.
    pub fn stdio() -> Self {
        Self::new(McpTransport::Stdio)
    }

    /// Serves streamable HTTP at `http://ADDR/mcp`; with a token, every request needs it as a bearer token.
    pub fn http(addr: SocketAddr, token: Option<secrecy::SecretString>) -> Self {
        Self::new(McpTransport::Http { addr, token })
    }

    fn new(transport: McpTransport) -> Self {
        Self {
            transport,
            toolset: Toolset::all(),
            shared: Arc::default(),
        }
    }

    /// Which skills are listed (default: every skill of the catalog); a call to any other is a protocol error, as
    /// for a tool that does not exist.
    pub fn toolset(mut self, toolset: Toolset) -> Self {
        self.toolset = toolset;
        self
    }

    /// Where the HTTP server listens once the bridge started (the real port when the address had port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.bound.get().copied()
    }
}

impl Shared {
    /// Submits a call and waits for its answer; `None` when the bridge did not take it (it is shutting down).
    async fn call(&self, call: ToolCall) -> Option<ToolResult> {
        let feed = self.feed.get()?;
        let (answer, answered) = oneshot::channel();
        lock(&self.waiting).insert(call.request_id.clone(), answer);
        let request_id = call.request_id.clone();
        match feed.submit(call, crate::telemetry::CallSource::Mcp) {
            super::Submitted::Accepted | super::Submitted::Redelivering => answered.await.ok(),
            super::Submitted::Duplicate | super::Submitted::Closed => {
                lock(&self.waiting).remove(&request_id);
                None
            }
        }
    }

    fn cancel(&self, turn_id: &str) {
        if let Some(feed) = self.feed.get() {
            feed.cancel_turn(turn_id);
        }
    }
}

struct Link(Arc<Shared>);

impl LinkStatus for Link {
    fn connected(&self) -> bool {
        self.0.up.load(Ordering::Relaxed)
    }
}

impl Upstream for McpUpstream {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open<'a>(&'a self, catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, UpstreamError>> {
        Box::pin(async move {
            let offered = self
                .toolset
                .select(catalog)
                .map_err(|error| UpstreamError::Invalid(format!("toolset ({}): {error}", self.toolset)))?;
            let tools: Vec<rmcp::model::Tool> = catalog
                .iter()
                .filter(|skill| offered.contains(skill.name()))
                .map(convert::tool)
                .collect();
            let names = tools.iter().map(|tool| tool.name.to_string()).collect();
            if let McpTransport::Http { addr, .. } = &self.transport {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|error| UpstreamError::Invalid(format!("cannot listen on {addr} for MCP: {error}")))?;
                let _ = self.shared.bound.set(listener.local_addr().unwrap_or(*addr));
                *lock(&self.shared.listener) = Some(listener);
            }
            let _ = self.shared.tools.set(tools);
            let _ = self.shared.offered.set((!self.toolset.is_all()).then_some(offered));
            Ok(vec![ServedSession {
                id: NAME.to_owned(),
                upstream: NAME,
                created: true,
                tools: Some(names),
            }])
        })
    }

    fn offered(&self, _thread: &str) -> Option<Offered> {
        self.shared.offered.get().cloned().flatten()
    }

    fn run<'a>(&'a self, feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            feed.health().attach_link(Arc::new(Link(Arc::clone(&self.shared))));
            let _ = self.shared.feed.set(feed);
            let handler = server::Handler::new(Arc::clone(&self.shared));
            match &self.transport {
                McpTransport::Stdio => server::serve_stdio(handler, &self.shared, stop).await,
                McpTransport::Http { addr, token } => {
                    let listener = lock(&self.shared.listener).take();
                    let Some(listener) = listener else {
                        return Err(UpstreamError::Invalid(format!("the MCP server on {addr} runs already")));
                    };
                    server::serve_http(handler, &self.shared, listener, *addr, token.clone(), stop).await
                }
            }
        })
    }

    fn progress_sink(&self, call: &ToolCall) -> Option<ProgressSink> {
        let (peer, token) = lock(&self.shared.progress).get(&call.request_id).cloned()?;
        Some(ProgressSink::new(move |progress| {
            let mut notification = ProgressNotificationParam::new(token.clone(), progress.done);
            if let Some(total) = progress.total {
                notification = notification.with_total(total);
            }
            if let Some(message) = progress.message {
                notification = notification.with_message(message);
            }
            let peer = peer.clone();
            tokio::spawn(async move {
                if let Err(error) = peer.notify_progress(notification).await {
                    tracing::debug!(%error, "a progress notification was not sent");
                }
            });
        }))
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        let waiting = lock(&self.shared.waiting).remove(&call.request_id);
        let outcome = match waiting {
            Some(answer) => match answer.send(result.clone()) {
                Ok(()) => AnswerOutcome::Delivered,
                Err(_) => AnswerOutcome::Lost {
                    reason: "the MCP client is gone".into(),
                },
            },
            None => AnswerOutcome::Lost {
                reason: "no MCP request waits for this call".into(),
            },
        };
        Box::pin(std::future::ready(outcome))
    }
}
