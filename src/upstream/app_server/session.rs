//! The app-server calls skillbridge makes: `initialize` (+ `initialized`), `thread/start` with the dynamic
//! tools, `turn/start` and `turn/interrupt` ([`AppServerClient`]), each bounded by a timeout.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::error::AppServerError;
use super::rpc::RpcConnection;

/// How long a call to the app-server may take before [`AppServerError::Timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The `clientInfo.name` skillbridge introduces itself with.
pub const CLIENT_NAME: &str = "skillbridge";

/// When Codex asks before running commands (`thread/start` `approvalPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    /// Ask for anything not known to be safe.
    Untrusted,
    /// The model decides when to ask.
    OnRequest,
    /// Never ask; failures go back to the model.
    Never,
}

/// What Codex's own shell commands may touch (`thread/start` `sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Read anywhere, write nowhere.
    ReadOnly,
    /// Write inside the workspace.
    WorkspaceWrite,
    /// No sandbox.
    DangerFullAccess,
}

/// The `thread/start` parameters skillbridge sets.
///
/// ```
/// use serde_json::json;
/// use skillbridge::upstream::app_server::{ApprovalPolicy, ThreadOptions};
///
/// let options = ThreadOptions::new("/work/project")
///     .dynamic_tools(vec![json!({"type": "function", "name": "echo", "description": "Echo.",
///                                "inputSchema": {"type": "object"}})])
///     .approval_policy(ApprovalPolicy::Never);
/// assert_eq!(options.params()["approvalPolicy"], "never");
/// assert_eq!(options.params()["dynamicTools"][0]["name"], "echo");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadOptions {
    cwd: PathBuf,
    dynamic_tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_policy: Option<ApprovalPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<SandboxMode>,
}

impl ThreadOptions {
    /// A thread working in `cwd`, with no tools and Codex's configured model, approvals and sandbox.
    pub fn new(cwd: impl Into<PathBuf>) -> Self {
        Self {
            cwd: cwd.into(),
            dynamic_tools: Vec::new(),
            model: None,
            approval_policy: None,
            sandbox: None,
        }
    }

    /// The dynamic tools, each `{type:"function", name, description, inputSchema}` (the skill catalog's
    /// `dynamic_tools(ToolFlavor::AppServer)`).
    pub fn dynamic_tools(mut self, tools: Vec<Value>) -> Self {
        self.dynamic_tools = tools;
        self
    }

    /// Overrides the model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Overrides the approval policy.
    pub fn approval_policy(mut self, policy: ApprovalPolicy) -> Self {
        self.approval_policy = Some(policy);
        self
    }

    /// Overrides the sandbox.
    pub fn sandbox(mut self, sandbox: SandboxMode) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// The `thread/start` params as sent.
    pub fn params(&self) -> Value {
        serde_json::to_value(self).expect("thread options serialize")
    }
}

/// Typed calls over one [`RpcConnection`].
#[derive(Debug, Clone)]
pub struct AppServerClient {
    rpc: RpcConnection,
    timeout: Duration,
}

impl AppServerClient {
    /// Calls over `rpc`, each bounded by [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn new(rpc: RpcConnection) -> Self {
        Self {
            rpc,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The underlying connection.
    pub fn rpc(&self) -> &RpcConnection {
        &self.rpc
    }

    /// `initialize` with the experimental API enabled (dynamic tools need it), then the `initialized`
    /// notification. Returns the server's `initialize` result (`userAgent`, `codexHome`, ..).
    pub async fn initialize(&self, client_version: &str) -> Result<Value, AppServerError> {
        let params = json!({
            "clientInfo": {"name": CLIENT_NAME, "version": client_version},
            "capabilities": {"experimentalApi": true},
        });
        let result = self.call("initialize", params).await?;
        self.rpc.notify("initialized", None).await?;
        Ok(result)
    }

    /// `thread/start`; returns the thread id.
    pub async fn start_thread(&self, options: &ThreadOptions) -> Result<String, AppServerError> {
        let result = self.call("thread/start", options.params()).await?;
        string_at(&result, "/thread/id", "thread/start")
    }

    /// `turn/start` with one text input; returns the turn id.
    pub async fn start_turn(&self, thread_id: &str, text: &str) -> Result<String, AppServerError> {
        let params = json!({
            "threadId": thread_id,
            "input": [{"type": "text", "text": text, "text_elements": []}],
        });
        let result = self.call("turn/start", params).await?;
        string_at(&result, "/turn/id", "turn/start")
    }

    /// `turn/interrupt`: asks Codex to stop the turn; it then completes with status `interrupted`.
    pub async fn interrupt_turn(&self, thread_id: &str, turn_id: &str) -> Result<(), AppServerError> {
        self.call("turn/interrupt", json!({"threadId": thread_id, "turnId": turn_id}))
            .await
            .map(drop)
    }

    async fn call(&self, method: &'static str, params: Value) -> Result<Value, AppServerError> {
        match tokio::time::timeout(self.timeout, self.rpc.request(method, params)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(AppServerError::Timeout {
                method,
                after: self.timeout,
            }),
        }
    }
}

fn string_at(result: &Value, pointer: &str, method: &'static str) -> Result<String, AppServerError> {
    result
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| AppServerError::UnexpectedResponse {
            method,
            detail: format!("no string at `{pointer}` in {result}"),
        })
}
