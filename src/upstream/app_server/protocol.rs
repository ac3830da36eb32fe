//! The `codex app-server` messages skillbridge sends and reads, as serde types (Codex 0.169, PROTOCOL.md §2).
//!
//! This file owns the wire shape of exactly those messages, and nothing else (no I/O, no state):
//!
//! - requests we send, each a params type implementing [`RequestParams`] (its method and result type):
//!   [`InitializeParams`] → [`InitializeResponse`], [`ThreadStartParams`] → [`ThreadStartResponse`],
//!   [`TurnStartParams`] → [`TurnStartResponse`], [`TurnInterruptParams`] → [`TurnInterruptResponse`],
//!   [`ThreadArchiveParams`] → [`ThreadArchiveResponse`]; and the [`INITIALIZED_METHOD`] notification, which has
//!   no params;
//! - the one server request we handle, `item/tool/call` ([`DynamicToolCallParams`], implementing
//!   [`ServerRequestParams`]), and the result we answer it with ([`DynamicToolCallResponse`]);
//! - the notifications we consume, each a params type implementing [`NotificationParams`], gathered in
//!   [`Notification`], which [`Notification::parse`] builds from a method and its params so the event loop can
//!   `match` on it.
//!
//! Reading tolerates what Codex adds: unknown fields are ignored, item types other than `agentMessage` read as
//! [`ThreadItem::Other`], unknown turn statuses as [`TurnStatus::Other`]. Writing emits only fields the schema
//! declares, and leaves unset options out. `tests/app_server_protocol.rs` checks both directions against the
//! JSON Schema the pinned Codex prints (`tests/fixtures/app-server-0.169/schema/`).
//!
//! ```
//! use serde_json::json;
//! use skillbridge::upstream::app_server::protocol::{Notification, RequestParams, TurnStartParams, TurnStatus};
//!
//! let params = TurnStartParams::text("thread-1", "Say hello");
//! assert_eq!(TurnStartParams::METHOD, "turn/start");
//! assert_eq!(
//!     serde_json::to_value(&params).unwrap(),
//!     json!({"threadId": "thread-1", "input": [{"type": "text", "text": "Say hello", "text_elements": []}]})
//! );
//!
//! let completed = json!({"threadId": "thread-1", "turn": {"id": "turn-1", "status": "completed", "items": [
//!     {"type": "agentMessage", "id": "m", "text": "Hello"}, {"type": "reasoning", "id": "r"}]}});
//! match Notification::parse("turn/completed", completed).unwrap() {
//!     Notification::TurnCompleted(done) => {
//!         assert_eq!(done.turn.status, TurnStatus::Completed);
//!         assert_eq!(done.turn.last_agent_message(), Some("Hello"));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request skillbridge sends: the params type names its method and the result type it reads back.
pub trait RequestParams: Serialize {
    /// The JSON-RPC method.
    const METHOD: &'static str;
    /// The `result` of a successful response.
    type Response: DeserializeOwned;
}

/// A request the server sends skillbridge: the params type names its method and the result we answer with.
pub trait ServerRequestParams: DeserializeOwned {
    /// The JSON-RPC method.
    const METHOD: &'static str;
    /// The `result` we answer with.
    type Response: Serialize;
}

/// A notification the server sends skillbridge: the params type names its method.
pub trait NotificationParams: DeserializeOwned {
    /// The JSON-RPC method.
    const METHOD: &'static str;
}

/// The notification we send right after the `initialize` response; it has no params.
pub const INITIALIZED_METHOD: &str = "initialized";

// ---------------------------------------------------------------------------------------------------------------
// initialize

/// `initialize` params: who we are, and the experimental API (dynamic tools need it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// Our name and version.
    pub client_info: ClientInfo,
    /// What we opt into.
    pub capabilities: InitializeCapabilities,
}

impl InitializeParams {
    /// Introduces the client `name` `version`, with the experimental API enabled.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            client_info: ClientInfo {
                name: name.into(),
                version: version.into(),
            },
            capabilities: InitializeCapabilities { experimental_api: true },
        }
    }
}

impl RequestParams for InitializeParams {
    const METHOD: &'static str = "initialize";
    type Response = InitializeResponse;
}

/// `initialize` `clientInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client's name; Codex puts it in its user agent and `originator`.
    pub name: String,
    /// The client's version.
    pub version: String,
}

/// `initialize` `capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeCapabilities {
    /// Opts into experimental methods and fields, among them `thread/start` `dynamicTools`.
    #[serde(default)]
    pub experimental_api: bool,
}

/// The `initialize` result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    /// The server's user agent, e.g. `skillbridge/0.1.0 (Debian 12.0.0; x86_64) ..`.
    pub user_agent: String,
    /// The server's `$CODEX_HOME`.
    #[serde(default)]
    pub codex_home: Option<String>,
    /// `unix` or `windows`.
    #[serde(default)]
    pub platform_family: Option<String>,
    /// `linux`, `macos`, `windows`, ..
    #[serde(default)]
    pub platform_os: Option<String>,
}

// ---------------------------------------------------------------------------------------------------------------
// thread/start

/// `thread/start` params: the working folder, the dynamic tools and optional overrides.
///
/// `cwd` and `dynamicTools` are always sent (an empty tool list as `[]`); unset overrides are left out, so
/// Codex's configuration decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStartParams {
    /// The thread's working folder.
    pub cwd: PathBuf,
    /// The tools the model may call through `item/tool/call`.
    #[serde(default)]
    pub dynamic_tools: Vec<DynamicTool>,
    /// Overrides the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Overrides when Codex asks before running commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<ApprovalPolicy>,
    /// Overrides what Codex's own shell commands may touch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxMode>,
}

impl ThreadStartParams {
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
}

impl ThreadStartParams {
    /// The dynamic tools (see [`DynamicTool::of`]).
    pub fn dynamic_tools(mut self, tools: Vec<DynamicTool>) -> Self {
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
}

impl RequestParams for ThreadStartParams {
    const METHOD: &'static str = "thread/start";
    type Response = ThreadStartResponse;
}

/// One `thread/start` `dynamicTools` entry: `{"type": "function", name, description, inputSchema}`.
///
/// Deserializes from the skill catalog's `dynamic_tools(ToolFlavor::AppServer)` entries; an entry whose `type`
/// is missing or not `function` (a namespace, codex-manager's untyped shape) is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "function", rename_all = "camelCase", try_from = "TypedTool")]
pub struct DynamicTool {
    /// The tool name the model calls (and `item/tool/call` `tool` carries).
    pub name: String,
    /// What the model is told the tool does.
    pub description: String,
    /// The JSON Schema of the arguments.
    pub input_schema: Value,
}

impl DynamicTool {
    /// The tool announcing `skill`.
    pub fn of(skill: &crate::skill::SkillInfo) -> Self {
        Self {
            name: skill.name().to_owned(),
            description: skill.description().to_owned(),
            input_schema: skill.input_schema().clone(),
        }
    }
}

/// A [`DynamicTool`] as read, before its `type` is checked (serde does not check a struct's tag).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedTool {
    r#type: String,
    name: String,
    description: String,
    input_schema: Value,
}

impl TryFrom<TypedTool> for DynamicTool {
    type Error = String;

    fn try_from(tool: TypedTool) -> Result<Self, Self::Error> {
        if tool.r#type != "function" {
            return Err(format!("a dynamic tool of type `{}`, not `function`", tool.r#type));
        }
        Ok(Self {
            name: tool.name,
            description: tool.description,
            input_schema: tool.input_schema,
        })
    }
}

/// When Codex asks before running commands (`thread/start` `approvalPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    /// Ask for anything not known to be safe.
    Untrusted,
    /// The model decides when to ask.
    OnRequest,
    /// Never ask; failures go back to the model.
    Never,
}

impl std::str::FromStr for ApprovalPolicy {
    type Err = String;

    /// `untrusted`, `on-request` or `never`, as the wire spells them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "untrusted" => Ok(Self::Untrusted),
            "on-request" => Ok(Self::OnRequest),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "approval policy {other:?} is not one codex app-server takes: use untrusted, on-request or never"
            )),
        }
    }
}

/// What Codex's own shell commands may touch (`thread/start` `sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Read anywhere, write nowhere.
    ReadOnly,
    /// Write inside the workspace.
    WorkspaceWrite,
    /// No sandbox.
    DangerFullAccess,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;

    /// `read-only`, `workspace-write` or `danger-full-access`, as the wire spells them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "read-only" => Ok(Self::ReadOnly),
            "workspace-write" => Ok(Self::WorkspaceWrite),
            "danger-full-access" => Ok(Self::DangerFullAccess),
            other => Err(format!(
                "sandbox {other:?} is not one codex app-server takes: use read-only, workspace-write or \
                 danger-full-access"
            )),
        }
    }
}

/// The `thread/start` result; we read only the thread id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ThreadStartResponse {
    /// The new thread.
    pub thread: Thread,
}

/// A thread, as far as skillbridge reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Thread {
    /// The thread id (a UUIDv7).
    pub id: String,
}

// ---------------------------------------------------------------------------------------------------------------
// turn/start, turn/interrupt

/// `turn/start` params: the thread and the user input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartParams {
    /// The thread to run the turn in.
    pub thread_id: String,
    /// What the user says.
    pub input: Vec<UserInput>,
}

impl TurnStartParams {
    /// A turn whose input is one text.
    pub fn text(thread_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            thread_id: thread_id.into(),
            input: vec![UserInput::text(text)],
        }
    }
}

impl RequestParams for TurnStartParams {
    const METHOD: &'static str = "turn/start";
    type Response = TurnStartResponse;
}

/// One `turn/start` `input` entry; skillbridge sends text only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserInput {
    /// `{"type": "text", text, text_elements}` (this one field is snake_case on the wire).
    Text {
        /// The text.
        text: String,
        /// UI spans inside `text`; skillbridge sends none (`[]`).
        #[serde(default)]
        text_elements: Vec<TextElement>,
    },
}

impl UserInput {
    /// A plain text input, with no text elements.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            text_elements: Vec::new(),
        }
    }
}

/// A UI span inside a text input (`text_elements` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextElement {
    /// Where in the text's bytes the element sits.
    pub byte_range: ByteRange,
    /// A human-readable placeholder shown for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
}

/// A byte range `start..end` in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// The `turn/start` result: the turn, `inProgress`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TurnStartResponse {
    /// The started turn.
    pub turn: Turn,
}

/// `turn/interrupt` params: asks Codex to stop a turn, which then completes as `interrupted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnInterruptParams {
    /// The turn's thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
}

impl RequestParams for TurnInterruptParams {
    const METHOD: &'static str = "turn/interrupt";
    type Response = TurnInterruptResponse;
}

/// The `turn/interrupt` result: an empty object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TurnInterruptResponse {}

// ---------------------------------------------------------------------------------------------------------------
// thread/archive

/// `thread/archive` params: Codex moves the thread's history (its rollout in CODEX_HOME) to the archived threads,
/// which `thread/list` shows only when asked for archived ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadArchiveParams {
    /// The thread.
    pub thread_id: String,
}

impl RequestParams for ThreadArchiveParams {
    const METHOD: &'static str = "thread/archive";
    type Response = ThreadArchiveResponse;
}

/// The `thread/archive` result: an empty object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ThreadArchiveResponse {}

// ---------------------------------------------------------------------------------------------------------------
// item/tool/call

/// `item/tool/call` params: the model called one of our dynamic tools. They are the port's
/// [`ToolCallParams`](crate::upstream::ToolCallParams), read by the same rules as codex-manager's tool calls.
pub use crate::upstream::ToolCallParams as DynamicToolCallParams;

impl ServerRequestParams for DynamicToolCallParams {
    const METHOD: &'static str = "item/tool/call";
    type Response = DynamicToolCallResponse;
}

/// The `item/tool/call` result: `{contentItems: [{type: inputText, text} | {type: inputImage, imageUrl}],
/// success}`, which is exactly [`ToolResult`](crate::ToolResult)'s serialization.
pub type DynamicToolCallResponse = crate::ToolResult;

// ---------------------------------------------------------------------------------------------------------------
// Notifications

/// A turn (`turn/started`, `turn/completed`, `turn/start` result), as far as skillbridge reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Turn {
    /// The turn id (a UUIDv7).
    pub id: String,
    /// Where the turn is.
    pub status: TurnStatus,
    /// Why a failed or interrupted turn ended, when Codex says.
    #[serde(default)]
    pub error: Option<TurnError>,
    /// The turn's items as Codex includes them (often none, or a summary).
    #[serde(default)]
    pub items: Vec<ThreadItem>,
}

impl Turn {
    /// The text of the turn's last `agentMessage` item, if any.
    pub fn last_agent_message(&self) -> Option<&str> {
        self.items.iter().rev().find_map(ThreadItem::agent_message_text)
    }
}

/// A turn's status (`Turn.status`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnStatus {
    /// The model finished.
    Completed,
    /// Interrupted (`turn/interrupt`, or Codex stopped it).
    Interrupted,
    /// Failed; [`Turn::error`] says why.
    Failed,
    /// Still running (`turn/started`, the `turn/start` result).
    InProgress,
    /// A status this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl TurnStatus {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Completed => "completed",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
            Self::InProgress => "inProgress",
            Self::Other(other) => other,
        }
    }
}

/// A turn's error (`Turn.error`, `error` notification).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TurnError {
    /// What went wrong.
    pub message: String,
}

/// A thread item; skillbridge reads only agent messages, every other type reads as [`Other`](Self::Other).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ThreadItem {
    /// `{"type": "agentMessage", id, text}`: what the model said.
    AgentMessage {
        /// The item id.
        id: String,
        /// The message.
        text: String,
    },
    /// Any other item type (`userMessage`, `reasoning`, `dynamicToolCall`, ..).
    #[serde(other)]
    Other,
}

impl ThreadItem {
    /// The text of an agent message; `None` for other items.
    pub fn agent_message_text(&self) -> Option<&str> {
        match self {
            Self::AgentMessage { text, .. } => Some(text),
            Self::Other => None,
        }
    }
}

/// `item/completed` params: an item of a turn is final.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCompletedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The item.
    pub item: ThreadItem,
}

impl NotificationParams for ItemCompletedNotification {
    const METHOD: &'static str = "item/completed";
}

/// `turn/started` params.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn, `inProgress`.
    pub turn: Turn,
}

impl NotificationParams for TurnStartedNotification {
    const METHOD: &'static str = "turn/started";
}

/// `turn/completed` params: the turn ended (completed, interrupted or failed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnCompletedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn, with its final status.
    pub turn: Turn,
}

impl NotificationParams for TurnCompletedNotification {
    const METHOD: &'static str = "turn/completed";
}

/// `serverRequest/resolved` params: Codex no longer waits for the answer to one of its requests.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRequestResolvedNotification {
    /// The thread.
    pub thread_id: String,
    /// The JSON-RPC id of the request.
    pub request_id: RequestId,
}

impl NotificationParams for ServerRequestResolvedNotification {
    const METHOD: &'static str = "serverRequest/resolved";
}

/// A JSON-RPC request id: a number (Codex's own requests, from `0`) or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A number.
    Integer(i64),
    /// A string.
    String(String),
}

impl fmt::Display for RequestId {
    /// The string form skillbridge keys requests by: `0` for the number 0, the string itself for a string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(id) => write!(f, "{id}"),
            Self::String(id) => f.write_str(id),
        }
    }
}

/// `error` params: a turn hit an error (Codex may retry).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// What went wrong.
    pub error: TurnError,
    /// Whether Codex retries on its own.
    pub will_retry: bool,
}

impl NotificationParams for ErrorNotification {
    const METHOD: &'static str = "error";
}

/// `warning` params.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningNotification {
    /// The warning.
    pub message: String,
    /// The thread it concerns, if one.
    #[serde(default)]
    pub thread_id: Option<String>,
}

impl NotificationParams for WarningNotification {
    const METHOD: &'static str = "warning";
}

/// `configWarning` params: something in Codex's configuration (or environment) is off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigWarningNotification {
    /// The warning.
    pub summary: String,
    /// More detail, if any.
    #[serde(default)]
    pub details: Option<String>,
}

impl NotificationParams for ConfigWarningNotification {
    const METHOD: &'static str = "configWarning";
}

/// A notification skillbridge consumes, read from its method and params by [`parse`](Self::parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `item/completed`.
    ItemCompleted(ItemCompletedNotification),
    /// `turn/started`.
    TurnStarted(TurnStartedNotification),
    /// `turn/completed`.
    TurnCompleted(TurnCompletedNotification),
    /// `serverRequest/resolved`.
    ServerRequestResolved(ServerRequestResolvedNotification),
    /// `error`.
    Error(ErrorNotification),
    /// `warning`.
    Warning(WarningNotification),
    /// `configWarning`.
    ConfigWarning(ConfigWarningNotification),
    /// Any other method: skillbridge ignores it (its params are not read).
    Other,
}

impl Notification {
    /// The methods read into a variant other than [`Other`](Self::Other).
    pub const METHODS: [&'static str; 7] = [
        ItemCompletedNotification::METHOD,
        TurnStartedNotification::METHOD,
        TurnCompletedNotification::METHOD,
        ServerRequestResolvedNotification::METHOD,
        ErrorNotification::METHOD,
        WarningNotification::METHOD,
        ConfigWarningNotification::METHOD,
    ];

    /// Reads the notification `method` with its `params` (`null` when absent). Fails only when a method we
    /// consume comes with params that do not fit its type; unknown methods are [`Other`](Self::Other).
    pub fn parse(method: &str, params: Value) -> Result<Self, serde_json::Error> {
        Ok(match method {
            ItemCompletedNotification::METHOD => Self::ItemCompleted(serde_json::from_value(params)?),
            TurnStartedNotification::METHOD => Self::TurnStarted(serde_json::from_value(params)?),
            TurnCompletedNotification::METHOD => Self::TurnCompleted(serde_json::from_value(params)?),
            ServerRequestResolvedNotification::METHOD => Self::ServerRequestResolved(serde_json::from_value(params)?),
            ErrorNotification::METHOD => Self::Error(serde_json::from_value(params)?),
            WarningNotification::METHOD => Self::Warning(serde_json::from_value(params)?),
            ConfigWarningNotification::METHOD => Self::ConfigWarning(serde_json::from_value(params)?),
            _ => Self::Other,
        })
    }
}
