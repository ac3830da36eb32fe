//! The app-server protocol types (`upstream::app_server::protocol`) against the JSON Schema Codex 0.169 prints
//! (`tests/fixtures/app-server-0.169/schema/`, see its README) and against messages captured from it.
//!
//! - what we send, serialized from our types, validates against the schema of that method's params, also
//!   against a strict copy that rejects undeclared keys (Codex's schema allows any additional property);
//! - every captured message we read deserializes into our types with the expected values;
//! - the smallest shapes the schema allows for what we read (every item type, every turn status) deserialize;
//! - a misspelled field fails the check: the schema check is real.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use skillbridge::skill::{Catalog, ToolFlavor};
use skillbridge::upstream::app_server::protocol::{
    ApprovalPolicy, ByteRange, ConfigWarningNotification, DynamicTool, DynamicToolCallParams, DynamicToolCallResponse,
    ErrorNotification, INITIALIZED_METHOD, InitializeParams, InitializeResponse, ItemCompletedNotification,
    Notification, NotificationParams, RequestId, RequestParams, SandboxMode, ServerRequestParams,
    ServerRequestResolvedNotification, TextElement, ThreadArchiveParams, ThreadArchiveResponse, ThreadItem,
    ThreadStartParams, ThreadStartResponse, TurnCompletedNotification, TurnInterruptParams, TurnInterruptResponse,
    TurnStartParams, TurnStartResponse, TurnStartedNotification, TurnStatus, UserInput, WarningNotification,
};
use skillbridge::upstream::app_server::refusals::{Refusal, refusal};
use skillbridge::{ContentItem, ToolResult, skill};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/app-server-0.169");

// ---------------------------------------------------------------------------------------------------------------
// Helpers

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A kept schema file, e.g. `v2/ThreadStartParams.json`.
fn schema(file: &str) -> Value {
    read_json(&Path::new(FIXTURES).join("schema").join(file))
}

/// A captured message, e.g. `turn-completed.json`.
fn fixture(file: &str) -> Value {
    read_json(&Path::new(FIXTURES).join(file))
}

/// `methods.json`: method → params type, per direction.
fn methods() -> Value {
    schema("methods.json")
}

/// The schema errors of `instance`, one line each.
fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

#[track_caller]
fn assert_valid(schema: &Value, instance: &Value) {
    let errors = errors(schema, instance);
    assert!(
        errors.is_empty(),
        "{instance:#} does not fit {}:\n{}",
        schema["title"],
        errors.join("\n")
    );
}

#[track_caller]
fn assert_invalid(schema: &Value, instance: &Value) -> Vec<String> {
    let errors = errors(schema, instance);
    assert!(!errors.is_empty(), "{instance:#} unexpectedly fits {}", schema["title"]);
    errors
}

/// `schema` with `additionalProperties: false` on every object schema that declares `properties` and says
/// nothing about other keys: a key the schema does not declare (a misspelled optional field) then fails.
fn strict(mut schema: Value) -> Value {
    fn visit(schema: &mut Value) {
        let Value::Object(object) = schema else { return };
        if object.contains_key("properties") && !object.contains_key("additionalProperties") {
            object.insert("additionalProperties".into(), false.into());
        }
        for key in ["properties", "definitions"] {
            if let Some(Value::Object(children)) = object.get_mut(key) {
                children.values_mut().for_each(visit);
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(child) = object.get_mut(key) {
                visit(child);
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(children)) = object.get_mut(key) {
                children.iter_mut().for_each(visit);
            }
        }
    }
    visit(&mut schema);
    schema
}

/// Serializes what we send and checks it against the params schema `file`, plainly and strictly.
#[track_caller]
fn assert_sends(file: &str, value: &impl Serialize) -> Value {
    let sent = serde_json::to_value(value).unwrap();
    let schema = schema(file);
    assert_valid(&schema, &sent);
    assert_valid(&strict(schema), &sent);
    sent
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Checks that our request type's method is the one whose params the schema file describes, and that the
/// response file is that method's response.
#[track_caller]
fn assert_request_files<T: RequestParams>(params_file: &str, response_file: &str) {
    let params_title = schema(params_file)["title"].clone();
    assert_eq!(methods()["clientRequests"][T::METHOD], params_title, "{}", T::METHOD);
    let response_title = params_title.as_str().unwrap().replace("Params", "Response");
    assert_eq!(schema(response_file)["title"], response_title.as_str());
}

// ---------------------------------------------------------------------------------------------------------------
// The method names

#[test]
fn our_method_names_are_the_schemas() {
    assert_request_files::<InitializeParams>("v1/InitializeParams.json", "v1/InitializeResponse.json");
    assert_request_files::<ThreadStartParams>("v2/ThreadStartParams.json", "v2/ThreadStartResponse.json");
    assert_request_files::<TurnStartParams>("v2/TurnStartParams.json", "v2/TurnStartResponse.json");
    assert_request_files::<TurnInterruptParams>("v2/TurnInterruptParams.json", "v2/TurnInterruptResponse.json");
    assert_request_files::<ThreadArchiveParams>("v2/ThreadArchiveParams.json", "v2/ThreadArchiveResponse.json");

    let methods = methods();
    assert_eq!(
        methods["serverRequests"][DynamicToolCallParams::METHOD],
        "DynamicToolCallParams"
    );
    assert_eq!(schema("DynamicToolCallParams.json")["title"], "DynamicToolCallParams");
    assert_eq!(
        schema("DynamicToolCallResponse.json")["title"],
        "DynamicToolCallResponse"
    );

    // `initialized` exists and takes no params.
    assert_eq!(
        methods["clientNotifications"].get(INITIALIZED_METHOD),
        Some(&Value::Null)
    );
    assert_valid(
        &schema("ClientNotification.json"),
        &json!({"method": INITIALIZED_METHOD}),
    );

    let notifications = [
        (ItemCompletedNotification::METHOD, "ItemCompletedNotification"),
        (TurnStartedNotification::METHOD, "TurnStartedNotification"),
        (TurnCompletedNotification::METHOD, "TurnCompletedNotification"),
        (
            ServerRequestResolvedNotification::METHOD,
            "ServerRequestResolvedNotification",
        ),
        (ErrorNotification::METHOD, "ErrorNotification"),
        (WarningNotification::METHOD, "WarningNotification"),
        (ConfigWarningNotification::METHOD, "ConfigWarningNotification"),
    ];
    for (method, title) in notifications {
        assert_eq!(methods["serverNotifications"][method], title, "{method}");
        assert_eq!(schema(&format!("v2/{title}.json"))["title"], title);
    }
    let mut listed: Vec<&str> = notifications.iter().map(|(method, _)| *method).collect();
    let mut consumed = Notification::METHODS.to_vec();
    listed.sort_unstable();
    consumed.sort_unstable();
    assert_eq!(listed, consumed, "every consumed notification is checked here");
}

// ---------------------------------------------------------------------------------------------------------------
// (a) What we send fits the schema

#[test]
fn initialize_params_fit_the_schema() {
    let sent = assert_sends(
        "v1/InitializeParams.json",
        &InitializeParams::new("skillbridge", "0.1.0"),
    );
    assert_eq!(
        sent,
        json!({"clientInfo": {"name": "skillbridge", "version": "0.1.0"}, "capabilities": {"experimentalApi": true}})
    );
}

/// A tool declared the way skills are.
fn echo_tool() -> DynamicTool {
    DynamicTool {
        name: "echo".into(),
        description: "Echoes its text.".into(),
        input_schema: json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
    }
}

#[test]
fn thread_start_params_fit_the_schema_with_and_without_the_optional_fields() {
    let bare = assert_sends("v2/ThreadStartParams.json", &ThreadStartParams::new("/work/project"));
    assert_eq!(bare, json!({"cwd": "/work/project", "dynamicTools": []}));

    let full = ThreadStartParams {
        dynamic_tools: vec![echo_tool(), echo_tool()],
        model: Some("gpt-5.1-codex".into()),
        approval_policy: Some(ApprovalPolicy::Never),
        sandbox: Some(SandboxMode::WorkspaceWrite),
        ..ThreadStartParams::new("/work/project")
    };
    let sent = assert_sends("v2/ThreadStartParams.json", &full);
    assert_eq!(
        keys(&sent),
        ["approvalPolicy", "cwd", "dynamicTools", "model", "sandbox"]
    );
    assert_eq!(
        keys(&sent["dynamicTools"][0]),
        ["description", "inputSchema", "name", "type"]
    );
    assert_eq!(sent["dynamicTools"][0]["type"], "function");
    assert_eq!(sent["approvalPolicy"], "never");
    assert_eq!(sent["sandbox"], "workspace-write");

    for policy in [
        ApprovalPolicy::Untrusted,
        ApprovalPolicy::OnRequest,
        ApprovalPolicy::Never,
    ] {
        for sandbox in [
            SandboxMode::ReadOnly,
            SandboxMode::WorkspaceWrite,
            SandboxMode::DangerFullAccess,
        ] {
            let params = ThreadStartParams {
                approval_policy: Some(policy),
                sandbox: Some(sandbox),
                ..ThreadStartParams::new("/tmp")
            };
            assert_sends("v2/ThreadStartParams.json", &params);
        }
    }
    let only_model = ThreadStartParams {
        model: Some("m".into()),
        ..ThreadStartParams::new("/tmp")
    };
    assert_eq!(
        keys(&assert_sends("v2/ThreadStartParams.json", &only_model)),
        ["cwd", "dynamicTools", "model"]
    );
}

/// Names a thing.
#[skill]
fn name_thing(
    /// What to name.
    thing: Thing,
    /// How many names.
    count: Option<u8>,
) -> String {
    format!("{} [{}] x{}", thing.kind, thing.tags.join(", "), count.unwrap_or(1))
}

/// Something to name.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct Thing {
    /// What kind of thing.
    kind: String,
    /// Its tags.
    tags: Vec<String>,
}

#[test]
fn the_catalogs_dynamic_tools_read_as_ours_and_fit_the_schema() {
    let catalog = Catalog::from_registry().expect("the test's skills are valid");
    let tools = catalog.dynamic_tools(ToolFlavor::AppServer);
    let ours: Vec<DynamicTool> = serde_json::from_value(Value::Array(tools.clone())).unwrap();
    assert_eq!(ours[0].name, "name_thing");
    assert_eq!(serde_json::to_value(&ours).unwrap(), Value::Array(tools));
    // Only function tools read as ours: a namespace, or codex-manager's untyped shape, does not.
    let tool = json!({"name": "n", "description": "d", "inputSchema": {"type": "object"}});
    assert!(serde_json::from_value::<DynamicTool>(tool.clone()).is_err());
    let mut namespace = tool.clone();
    namespace["type"] = "namespace".into();
    assert!(serde_json::from_value::<DynamicTool>(namespace).is_err());
    let params = ThreadStartParams {
        dynamic_tools: ours,
        ..ThreadStartParams::new("/work/project")
    };
    assert_sends("v2/ThreadStartParams.json", &params);
}

#[test]
fn turn_start_params_fit_the_schema() {
    let sent = assert_sends(
        "v2/TurnStartParams.json",
        &TurnStartParams::text("thread-1", "Say hello"),
    );
    assert_eq!(
        sent,
        json!({"threadId": "thread-1", "input": [{"type": "text", "text": "Say hello", "text_elements": []}]})
    );

    let with_elements = TurnStartParams {
        thread_id: "thread-1".into(),
        input: vec![
            UserInput::Text {
                text: "see @file".into(),
                text_elements: vec![
                    TextElement {
                        byte_range: ByteRange { start: 4, end: 9 },
                        placeholder: Some("@file".into()),
                    },
                    TextElement {
                        byte_range: ByteRange { start: 0, end: 3 },
                        placeholder: None,
                    },
                ],
            },
            UserInput::text(""),
        ],
    };
    let sent = assert_sends("v2/TurnStartParams.json", &with_elements);
    assert_eq!(
        sent["input"][0]["text_elements"],
        json!([{"byteRange": {"start": 4, "end": 9}, "placeholder": "@file"}, {"byteRange": {"start": 0, "end": 3}}])
    );
}

#[test]
fn turn_interrupt_params_fit_the_schema() {
    let params = TurnInterruptParams {
        thread_id: "thread-1".into(),
        turn_id: "turn-1".into(),
    };
    let sent = assert_sends("v2/TurnInterruptParams.json", &params);
    assert_eq!(sent, json!({"threadId": "thread-1", "turnId": "turn-1"}));
}

#[test]
fn thread_archive_params_fit_the_schema() {
    let params = ThreadArchiveParams {
        thread_id: "thread-1".into(),
    };
    let sent = assert_sends("v2/ThreadArchiveParams.json", &params);
    assert_eq!(sent, json!({"threadId": "thread-1"}));
}

#[test]
fn tool_call_answers_fit_the_schema() {
    let answers: [DynamicToolCallResponse; 4] = [
        ToolResult::text("HELLO BRIDGE"),
        ToolResult::failure("no ticket ABC-999"),
        ToolResult {
            content_items: vec![
                ContentItem::text("a chart"),
                ContentItem::image_url("data:image/png;base64,iVBORw0KGgo="),
            ],
            success: true,
        },
        ToolResult {
            content_items: Vec::new(),
            success: true,
        },
    ];
    for answer in &answers {
        assert_sends("DynamicToolCallResponse.json", answer);
    }
    assert_eq!(
        serde_json::to_value(&answers[2]).unwrap(),
        json!({"contentItems": [{"type": "inputText", "text": "a chart"},
                                {"type": "inputImage", "imageUrl": "data:image/png;base64,iVBORw0KGgo="}],
               "success": true})
    );
}

// ---------------------------------------------------------------------------------------------------------------
// (b) What Codex 0.169 sent reads into our types

/// Reads a captured message's `key` (`params` or `result`) as `T`, after checking it fits `schema_file`.
#[track_caller]
fn read_captured<T: DeserializeOwned>(file: &str, key: &str, schema_file: &str) -> T {
    let part = fixture(file)[key].clone();
    assert_valid(&schema(schema_file), &part);
    serde_json::from_value(part).unwrap_or_else(|error| panic!("{file}: {error}"))
}

#[test]
fn the_captured_initialize_response_reads() {
    let response: InitializeResponse =
        read_captured("initialize-response.json", "result", "v1/InitializeResponse.json");
    assert_eq!(
        response.user_agent,
        "skillbridge-demo/0.169.0 (Debian 12.0.0; x86_64) xterm (skillbridge-demo; 0)"
    );
    assert_eq!(response.codex_home.as_deref(), Some("/home/user/.codex"));
    assert_eq!(response.platform_family.as_deref(), Some("unix"));
    assert_eq!(response.platform_os.as_deref(), Some("linux"));
}

#[test]
fn the_captured_thread_start_response_reads() {
    let response: ThreadStartResponse =
        read_captured("thread-start-response.json", "result", "v2/ThreadStartResponse.json");
    assert_eq!(response.thread.id, "01a20b43-f59e-76e1-b744-ec988f57fac3");
}

#[test]
fn the_captured_turn_start_response_reads() {
    let response: TurnStartResponse = read_captured("turn-start-response.json", "result", "v2/TurnStartResponse.json");
    assert_eq!(response.turn.id, "01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01");
    assert_eq!(response.turn.status, TurnStatus::InProgress);
    assert_eq!(response.turn.error, None);
    assert!(response.turn.items.is_empty());
}

#[test]
fn the_turn_interrupt_response_reads() {
    let empty = json!({});
    assert_valid(&schema("v2/TurnInterruptResponse.json"), &empty);
    let _: TurnInterruptResponse = serde_json::from_value(empty).unwrap();
}

#[test]
fn the_thread_archive_response_reads() {
    let empty = json!({});
    assert_valid(&schema("v2/ThreadArchiveResponse.json"), &empty);
    let _: ThreadArchiveResponse = serde_json::from_value(empty).unwrap();
}

#[test]
fn the_captured_tool_call_reads() {
    let captured = fixture("item-tool-call.json");
    assert_eq!(captured["method"], DynamicToolCallParams::METHOD);
    let params: DynamicToolCallParams = read_captured("item-tool-call.json", "params", "DynamicToolCallParams.json");
    assert_eq!(
        params,
        DynamicToolCallParams {
            thread_id: Some("01a20b43-f59e-76e1-b744-ec988f57fac3".into()),
            turn_id: Some("01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01".into()),
            call_id: Some("call_0".into()),
            namespace: None,
            tool: Some("uppercase".into()),
            arguments: json!({"text": "hello bridge"}),
        }
    );
    let namespaced: DynamicToolCallParams = serde_json::from_value(json!({
        "threadId": "t", "turnId": "u", "callId": "c", "namespace": "mcp__demo", "tool": "shout", "arguments": null
    }))
    .unwrap();
    assert_eq!(namespaced.namespace.as_deref(), Some("mcp__demo"));
    assert_eq!(namespaced.arguments, Value::Null);
}

/// Parses a captured notification through [`Notification::parse`].
fn parse_captured(file: &str) -> Notification {
    let captured = fixture(file);
    Notification::parse(captured["method"].as_str().unwrap(), captured["params"].clone())
        .unwrap_or_else(|error| panic!("{file}: {error}"))
}

#[test]
fn the_captured_notifications_read() {
    let item_completed: ItemCompletedNotification =
        read_captured("item-completed.json", "params", "v2/ItemCompletedNotification.json");
    assert_eq!(item_completed.thread_id, "01a20b43-f59e-76e1-b744-ec988f57fac3");
    assert_eq!(item_completed.turn_id, "01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01");
    assert_eq!(item_completed.item, ThreadItem::Other, "a userMessage item");
    assert_eq!(item_completed.item.agent_message_text(), None);
    assert_eq!(
        parse_captured("item-completed.json"),
        Notification::ItemCompleted(item_completed)
    );

    let turn_completed: TurnCompletedNotification =
        read_captured("turn-completed.json", "params", "v2/TurnCompletedNotification.json");
    assert_eq!(turn_completed.thread_id, "01a20b43-f59e-76e1-b744-ec988f57fac3");
    assert_eq!(turn_completed.turn.id, "01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01");
    assert_eq!(turn_completed.turn.status, TurnStatus::Completed);
    assert_eq!(turn_completed.turn.error, None);
    assert_eq!(
        turn_completed.turn.items,
        [ThreadItem::AgentMessage {
            id: "msg_resp_2".into(),
            text: "Tool said: HELLO BRIDGE".into()
        }]
    );
    assert_eq!(
        turn_completed.turn.last_agent_message(),
        Some("Tool said: HELLO BRIDGE")
    );
    assert_eq!(
        parse_captured("turn-completed.json"),
        Notification::TurnCompleted(turn_completed)
    );

    let turn_started: TurnStartedNotification =
        read_captured("turn-started.json", "params", "v2/TurnStartedNotification.json");
    assert_eq!(turn_started.turn.id, "01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01");
    assert_eq!(turn_started.turn.status, TurnStatus::InProgress);
    assert_eq!(
        parse_captured("turn-started.json"),
        Notification::TurnStarted(turn_started)
    );

    let warning: WarningNotification = read_captured("warning.json", "params", "v2/WarningNotification.json");
    assert_eq!(
        warning.thread_id.as_deref(),
        Some("01a20b43-f59e-76e1-b744-ec988f57fac3")
    );
    assert!(
        warning
            .message
            .starts_with("Model metadata for `fake-model` not found.")
    );
    assert_eq!(parse_captured("warning.json"), Notification::Warning(warning));

    let config: ConfigWarningNotification =
        read_captured("configWarning.json", "params", "v2/ConfigWarningNotification.json");
    assert!(config.summary.starts_with("Codex could not find bubblewrap on PATH."));
    assert_eq!(config.details, None);
    assert_eq!(
        parse_captured("configWarning.json"),
        Notification::ConfigWarning(config)
    );
}

#[test]
fn captured_notifications_we_do_not_consume_read_as_other() {
    for file in [
        "account-rateLimits-updated.json",
        "item-started.json",
        "remoteControl-status-changed.json",
        "thread-readState-changed.json",
        "thread-started.json",
        "thread-status-changed.json",
        "thread-tokenUsage-updated.json",
    ] {
        assert_eq!(parse_captured(file), Notification::Other, "{file}");
    }
}

/// The other notifications we consume were not captured; these are the shapes the schema describes.
#[test]
fn uncaptured_notifications_read() {
    let error = json!({"threadId": "t", "turnId": "u", "willRetry": true,
                       "error": {"message": "stream disconnected", "codexErrorInfo": null, "additionalDetails": null}});
    assert_valid(&schema("v2/ErrorNotification.json"), &error);
    let Notification::Error(error) = Notification::parse("error", error).unwrap() else {
        panic!("not an error")
    };
    assert_eq!(error.error.message, "stream disconnected");
    assert!(error.will_retry);
    assert_eq!(error.turn_id, "u");

    for (id, expected) in [
        (json!(0), RequestId::Integer(0)),
        (json!(17), RequestId::Integer(17)),
        (json!("abc"), RequestId::String("abc".into())),
    ] {
        let params = json!({"threadId": "t", "requestId": id});
        assert_valid(&schema("v2/ServerRequestResolvedNotification.json"), &params);
        let Notification::ServerRequestResolved(resolved) =
            Notification::parse("serverRequest/resolved", params).unwrap()
        else {
            panic!("not serverRequest/resolved")
        };
        assert_eq!(resolved.request_id, expected);
    }
    assert_eq!(RequestId::Integer(0).to_string(), "0");
    assert_eq!(RequestId::String("abc".into()).to_string(), "abc");

    let config = json!({"summary": "bad key", "details": "line 3", "path": "/c.toml",
                        "range": {"start": {"line": 3, "column": 1}, "end": {"line": 3, "column": 9}}});
    assert_valid(&schema("v2/ConfigWarningNotification.json"), &config);
    let Notification::ConfigWarning(config) = Notification::parse("configWarning", config).unwrap() else {
        panic!("not configWarning")
    };
    assert_eq!(config.details.as_deref(), Some("line 3"));

    let failed = json!({"threadId": "t", "turn": {"id": "u", "status": "failed", "items": [],
                                                  "error": {"message": "quota exceeded"}}});
    assert_valid(&schema("v2/TurnCompletedNotification.json"), &failed);
    let Notification::TurnCompleted(failed) = Notification::parse("turn/completed", failed).unwrap() else {
        panic!("not turn/completed")
    };
    assert_eq!(failed.turn.status, TurnStatus::Failed);
    assert_eq!(failed.turn.error.unwrap().message, "quota exceeded");
}

#[test]
fn what_codex_may_add_later_still_reads() {
    let later = json!({"threadId": "t", "newField": 1, "turn": {"id": "u", "status": "paused", "items": [
        {"type": "agentMessage", "id": "a", "text": "first", "newField": true},
        {"type": "somethingNew", "id": "n"},
        {"type": "agentMessage", "id": "b", "text": "last"},
        {"type": "reasoning", "id": "r"}
    ]}});
    let Notification::TurnCompleted(completed) = Notification::parse("turn/completed", later).unwrap() else {
        panic!("not turn/completed")
    };
    assert_eq!(completed.turn.status, TurnStatus::Other("paused".into()));
    assert_eq!(completed.turn.status.as_str(), "paused");
    assert_eq!(completed.turn.last_agent_message(), Some("last"));
    assert_eq!(completed.turn.items[1], ThreadItem::Other);

    assert_eq!(
        Notification::parse("thread/new", Value::Null).unwrap(),
        Notification::Other
    );
    assert!(Notification::parse("turn/completed", json!({"threadId": "t"})).is_err());
}

// ---------------------------------------------------------------------------------------------------------------
// (c) The smallest shapes the schema allows read into our types

/// The smallest instance `schema` allows: required properties only, `null` where allowed, the first branch of a
/// `oneOf`/`anyOf` otherwise, the first `enum` value, `"x"`, `0`, `false`, `[]`.
fn minimal(schema: &Value, definitions: &Map<String, Value>) -> Value {
    let Value::Object(schema) = schema else {
        return Value::Null; // `true`: anything goes
    };
    if let Some(Value::String(reference)) = schema.get("$ref") {
        let name = reference.strip_prefix("#/definitions/").expect("a local reference");
        return minimal(&definitions[name], definitions);
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        return values[0].clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = schema.get(key) {
            if branches.iter().any(|branch| branch["type"] == "null") {
                return Value::Null;
            }
            let branch = minimal(&branches[0], definitions);
            if !schema.contains_key("properties") {
                return branch;
            }
            // An object whose branches add required keys (e.g. `ImageGenerationThreadItem`: `fileId` or
            // `result`): the object's own required keys plus the first branch's.
            let mut object = schema.clone();
            object.remove(key);
            let mut value = minimal(&Value::Object(object), definitions);
            if let (Value::Object(value), Value::Object(branch)) = (&mut value, branch) {
                value.extend(branch);
            }
            return value;
        }
    }
    if let Some(Value::Array(parts)) = schema.get("allOf") {
        return minimal(&parts[0], definitions);
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ if schema.contains_key("properties") => vec!["object"],
        _ => return Value::Null,
    };
    match types.as_slice() {
        types if types.contains(&"null") => Value::Null,
        ["string", ..] => "x".into(),
        ["integer" | "number", ..] => 0.into(),
        ["boolean", ..] => false.into(),
        ["array", ..] => json!([]),
        ["object", ..] => {
            let mut object = Map::new();
            for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = name.as_str().unwrap();
                object.insert(name.into(), minimal(&schema["properties"][name], definitions));
            }
            Value::Object(object)
        }
        other => panic!("no minimal value for types {other:?}"),
    }
}

/// The smallest instance of a kept schema file, checked to fit it.
fn minimal_of(file: &str) -> (Value, Value) {
    let schema = schema(file);
    let empty = Map::new();
    let definitions = schema.get("definitions").and_then(Value::as_object).unwrap_or(&empty);
    let instance = minimal(&schema, definitions);
    assert_valid(&schema, &instance);
    (schema, instance)
}

#[track_caller]
fn reads_minimal<T: DeserializeOwned>(file: &str) -> T {
    let (_, instance) = minimal_of(file);
    serde_json::from_value(instance.clone()).unwrap_or_else(|error| panic!("{file}: {instance}: {error}"))
}

#[test]
fn the_smallest_shapes_of_what_we_read_deserialize() {
    let init: InitializeResponse = reads_minimal("v1/InitializeResponse.json");
    assert_eq!(init.user_agent, "x");
    let thread: ThreadStartResponse = reads_minimal("v2/ThreadStartResponse.json");
    assert_eq!(thread.thread.id, "x");
    let turn: TurnStartResponse = reads_minimal("v2/TurnStartResponse.json");
    assert_eq!(turn.turn.id, "x");
    let _: TurnInterruptResponse = reads_minimal("v2/TurnInterruptResponse.json");
    let call: DynamicToolCallParams = reads_minimal("DynamicToolCallParams.json");
    assert_eq!((call.tool.as_deref(), &call.arguments), (Some("x"), &Value::Null));

    fn reads_as_notification<T: NotificationParams>(file: &str) -> Notification {
        let (_, instance) = minimal_of(file);
        reads_minimal::<T>(file);
        Notification::parse(T::METHOD, instance).unwrap()
    }
    let parsed = [
        reads_as_notification::<ItemCompletedNotification>("v2/ItemCompletedNotification.json"),
        reads_as_notification::<TurnStartedNotification>("v2/TurnStartedNotification.json"),
        reads_as_notification::<TurnCompletedNotification>("v2/TurnCompletedNotification.json"),
        reads_as_notification::<ServerRequestResolvedNotification>("v2/ServerRequestResolvedNotification.json"),
        reads_as_notification::<ErrorNotification>("v2/ErrorNotification.json"),
        reads_as_notification::<WarningNotification>("v2/WarningNotification.json"),
        reads_as_notification::<ConfigWarningNotification>("v2/ConfigWarningNotification.json"),
    ];
    assert!(parsed.iter().all(|notification| *notification != Notification::Other));
}

#[test]
fn every_item_type_of_the_schema_reads() {
    let (schema, mut notification) = minimal_of("v2/ItemCompletedNotification.json");
    let definitions = schema["definitions"].as_object().unwrap();
    let branches = schema["definitions"]["ThreadItem"]["oneOf"].as_array().unwrap();
    assert!(branches.len() > 10, "{} item types", branches.len());
    let mut seen_agent_message = false;
    for branch in branches {
        let item_type = branch["properties"]["type"]["enum"][0].as_str().unwrap();
        notification["item"] = minimal(branch, definitions);
        assert_valid(&schema, &notification);
        let read: ItemCompletedNotification = serde_json::from_value(notification.clone())
            .unwrap_or_else(|error| panic!("{item_type}: {notification}: {error}"));
        if item_type == "agentMessage" {
            seen_agent_message = true;
            assert_eq!(read.item.agent_message_text(), Some("x"));
        } else {
            assert_eq!(read.item, ThreadItem::Other, "{item_type}");
        }
    }
    assert!(seen_agent_message);
}

#[test]
fn every_turn_status_of_the_schema_is_known() {
    let (schema, mut notification) = minimal_of("v2/TurnCompletedNotification.json");
    let statuses = schema["definitions"]["TurnStatus"]["enum"].as_array().unwrap();
    assert_eq!(statuses.len(), 4);
    for status in statuses {
        notification["turn"]["status"] = status.clone();
        assert_valid(&schema, &notification);
        let read: TurnCompletedNotification = serde_json::from_value(notification.clone()).unwrap();
        assert!(!matches!(read.turn.status, TurnStatus::Other(_)), "{status}");
        assert_eq!(read.turn.status.as_str(), status);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (d) The check is real: a misspelled field fails it

/// `value` with the key at `path` (the last element) renamed to `to`.
fn renamed(value: &Value, path: &[&str], to: &str) -> Value {
    let mut value = value.clone();
    let (last, parents) = path.split_last().unwrap();
    let mut object = &mut value;
    for parent in parents {
        object = match parent.parse::<usize>() {
            Ok(index) => &mut object[index],
            Err(_) => &mut object[*parent],
        };
    }
    let object = object.as_object_mut().expect("an object");
    let moved = object.remove(*last).unwrap_or_else(|| panic!("no key {last}"));
    object.insert(to.into(), moved);
    value
}

#[test]
fn a_misspelled_field_fails_the_check() {
    let thread_start = serde_json::to_value(ThreadStartParams {
        dynamic_tools: vec![echo_tool()],
        model: Some("m".into()),
        approval_policy: Some(ApprovalPolicy::OnRequest),
        sandbox: Some(SandboxMode::ReadOnly),
        ..ThreadStartParams::new("/work/project")
    })
    .unwrap();
    let plain = schema("v2/ThreadStartParams.json");
    let strict_schema = strict(plain.clone());

    // Codex's schema allows undeclared keys: a misspelled optional field passes it, and only the strict copy
    // (or the exact key sets asserted above) catches it.
    for (path, to) in [
        (&["dynamicTools"][..], "dynamic_tools"),
        (&["approvalPolicy"][..], "approval_policy"),
        (&["model"][..], "modelName"),
    ] {
        let misspelled = renamed(&thread_start, path, to);
        assert_valid(&plain, &misspelled);
        let errors = assert_invalid(&strict_schema, &misspelled);
        assert!(errors.iter().any(|error| error.contains(to)), "{errors:?}");
    }
    // A misspelled required field fails even the plain schema.
    let misspelled = renamed(&thread_start, &["dynamicTools", "0", "inputSchema"], "input_schema");
    assert_invalid(&plain, &misspelled);
    assert_invalid(&strict_schema, &misspelled);
    // So does a wrong value.
    let mut wrong = thread_start.clone();
    wrong["approvalPolicy"] = "on_request".into();
    assert_invalid(&plain, &wrong);
    wrong = thread_start.clone();
    wrong["dynamicTools"][0]["type"] = "tool".into();
    assert_invalid(&plain, &wrong);

    let turn_start = serde_json::to_value(TurnStartParams::text("t", "hi")).unwrap();
    let plain = schema("v2/TurnStartParams.json");
    assert_invalid(&plain, &renamed(&turn_start, &["threadId"], "thread_id"));
    assert_invalid(&plain, &renamed(&turn_start, &["input", "0", "text"], "content"));
    let misspelled = renamed(&turn_start, &["input", "0", "text_elements"], "textElements");
    assert_valid(&plain, &misspelled);
    assert_invalid(&strict(plain), &misspelled);

    let interrupt = serde_json::to_value(TurnInterruptParams {
        thread_id: "t".into(),
        turn_id: "u".into(),
    })
    .unwrap();
    assert_invalid(
        &schema("v2/TurnInterruptParams.json"),
        &renamed(&interrupt, &["turnId"], "turn_id"),
    );

    let initialize = serde_json::to_value(InitializeParams::new("skillbridge", "1")).unwrap();
    let plain = schema("v1/InitializeParams.json");
    assert_invalid(&plain, &renamed(&initialize, &["clientInfo"], "client_info"));
    let misspelled = renamed(&initialize, &["capabilities", "experimentalApi"], "experimentalAPI");
    assert_valid(&plain, &misspelled);
    assert_invalid(&strict(plain), &misspelled);

    let answer = serde_json::to_value(ToolResult::text("hi")).unwrap();
    let plain = schema("DynamicToolCallResponse.json");
    assert_invalid(&plain, &renamed(&answer, &["contentItems"], "content_items"));
    assert_invalid(&plain, &renamed(&answer, &["contentItems", "0", "text"], "content"));
    let image = serde_json::to_value(ToolResult {
        content_items: vec![ContentItem::image_url("data:,")],
        success: true,
    })
    .unwrap();
    assert_invalid(
        &plain,
        &renamed(&image, &["contentItems", "0", "imageUrl"], "image_url"),
    );
}

#[test]
fn the_strict_copy_rejects_only_undeclared_keys() {
    // The tool call Codex sent declares every key it uses, so it fits the strict copy; one more key does not.
    let strict_schema = strict(schema("DynamicToolCallParams.json"));
    assert_eq!(strict_schema["additionalProperties"], false);
    assert_valid(&strict_schema, &fixture("item-tool-call.json")["params"]);
    let extra = json!({"threadId": "t", "turnId": "u", "callId": "c", "tool": "x", "arguments": {}, "extra": 1});
    assert_valid(&schema("DynamicToolCallParams.json"), &extra);
    assert_invalid(&strict_schema, &extra);
}

#[test]
fn our_no_to_each_request_we_do_not_handle_fits_its_response_schema() {
    let answered = [
        (
            "item/commandExecution/requestApproval",
            "CommandExecutionRequestApprovalResponse.json",
        ),
        (
            "item/fileChange/requestApproval",
            "FileChangeRequestApprovalResponse.json",
        ),
        ("execCommandApproval", "ExecCommandApprovalResponse.json"),
        ("applyPatchApproval", "ApplyPatchApprovalResponse.json"),
        (
            "mcpServer/elicitation/request",
            "McpServerElicitationRequestResponse.json",
        ),
        (
            "item/permissions/requestApproval",
            "PermissionsRequestApprovalResponse.json",
        ),
    ];
    for (method, file) in answered {
        assert!(
            methods()["serverRequests"].get(method).is_some(),
            "{method} is a server request"
        );
        match refusal(method) {
            Refusal::Decline(result) => assert_valid(&strict(schema(file)), &result),
            other => panic!("{method}: {other:?}"),
        }
    }
    assert!(matches!(
        refusal("account/chatgptAuthTokens/refresh"),
        Refusal::Error { code: -32601, .. }
    ));
}
