//! Request-body validation the way codex-manager does it (zod): every problem becomes an issue
//! `{code, path, message, ..}`, all issues are reported at once, and unknown keys are stripped.

use serde_json::{Value, json};

use super::fixtures;

/// The most dynamic tools a session may declare.
pub const MAX_DYNAMIC_TOOLS: usize = 128;

const APPROVAL_POLICIES: &[&str] = &["untrusted", "on-failure", "on-request", "never"];
const NETWORK_ACCESS: &[&str] = &["restricted", "enabled"];
const FILESYSTEM_SANDBOXES: &[&str] = &["read-only", "workspace-write", "danger-full-access"];
const EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];

/// A path into the request body, as zod reports it.
#[derive(Clone, Default)]
struct Path(Vec<Value>);

impl Path {
    fn key(&self, key: &str) -> Path {
        let mut p = self.0.clone();
        p.push(json!(key));
        Path(p)
    }
    fn index(&self, index: usize) -> Path {
        let mut p = self.0.clone();
        p.push(json!(index));
        Path(p)
    }
}

/// zod's name for the kind of a JSON value (`undefined` when absent).
fn received(value: Option<&Value>) -> &'static str {
    match value {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

#[derive(Default)]
struct Issues(Vec<Value>);

impl Issues {
    fn invalid_type(&mut self, path: &Path, expected: &str, value: Option<&Value>) {
        self.0.push(json!({
            "expected": expected,
            "code": "invalid_type",
            "path": path.0,
            "message": format!("Invalid input: expected {expected}, received {}", received(value)),
        }));
    }

    fn too_small_string(&mut self, path: &Path) {
        self.0.push(json!({
            "origin": "string",
            "code": "too_small",
            "minimum": 1,
            "inclusive": true,
            "path": path.0,
            "message": "Too small: expected string to have >=1 characters",
        }));
    }

    fn too_big_array(&mut self, path: &Path, maximum: usize) {
        self.0.push(json!({
            "origin": "array",
            "code": "too_big",
            "maximum": maximum,
            "inclusive": true,
            "path": path.0,
            "message": format!("Too big: expected array to have <={maximum} items"),
        }));
    }

    fn invalid_value(&mut self, path: &Path, values: &[&str]) {
        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        self.0.push(json!({
            "code": "invalid_value",
            "values": values,
            "path": path.0,
            "message": format!("Invalid option: expected one of {}", quoted.join("|")),
        }));
    }

    /// An optional string field.
    fn optional_string(&mut self, object: &serde_json::Map<String, Value>, key: &str, path: &Path) {
        if let Some(value) = object.get(key)
            && !value.is_string()
        {
            self.invalid_type(&path.key(key), "string", Some(value));
        }
    }

    /// A required string that must be non-empty after trimming; returns the trimmed text.
    fn trimmed_non_empty(&mut self, object: &serde_json::Map<String, Value>, key: &str, path: &Path) -> Option<String> {
        match object.get(key) {
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            Some(Value::String(_)) => {
                self.too_small_string(&path.key(key));
                None
            }
            other => {
                self.invalid_type(&path.key(key), "string", other);
                None
            }
        }
    }

    fn optional_enum(&mut self, object: &serde_json::Map<String, Value>, key: &str, values: &[&str], path: &Path) {
        if let Some(value) = object.get(key)
            && !value.as_str().is_some_and(|v| values.contains(&v))
        {
            self.invalid_value(&path.key(key), values);
        }
    }

    fn into_result<T>(self, ok: T) -> Result<T, Value> {
        if self.0.is_empty() {
            Ok(ok)
        } else {
            Err(fixtures::validation_error_body(self.0))
        }
    }
}

/// A body that must be a JSON object (an absent body counts as `fallback`).
fn object_body<'a>(
    body: Option<&'a Value>,
    absent_ok: bool,
    issues: &mut Issues,
) -> Option<&'a serde_json::Map<String, Value>> {
    match body {
        Some(Value::Object(object)) => Some(object),
        None if absent_ok => None,
        other => {
            issues.invalid_type(&Path::default(), "object", other);
            None
        }
    }
}

/// Validates `dynamicTools` and returns the tools as codex-manager keeps them (trimmed
/// name and description, unknown keys stripped).
fn dynamic_tools(value: Option<&Value>, path: &Path, issues: &mut Issues) -> Option<Vec<Value>> {
    let value = value?;
    let Value::Array(tools) = value else {
        issues.invalid_type(path, "array", Some(value));
        return None;
    };
    if tools.len() > MAX_DYNAMIC_TOOLS {
        issues.too_big_array(path, MAX_DYNAMIC_TOOLS);
    }
    let mut kept = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        let tool_path = path.index(index);
        let Value::Object(tool) = tool else {
            issues.invalid_type(&tool_path, "object", Some(tool));
            continue;
        };
        let name = issues.trimmed_non_empty(tool, "name", &tool_path);
        let description = issues.trimmed_non_empty(tool, "description", &tool_path);
        let schema = match tool.get("inputSchema") {
            Some(schema @ Value::Object(_)) => Some(schema.clone()),
            other => {
                issues.invalid_type(&tool_path.key("inputSchema"), "record", other);
                None
            }
        };
        if let (Some(name), Some(description), Some(schema)) = (name, description, schema) {
            kept.push(json!({ "name": name, "description": description, "inputSchema": schema }));
        }
    }
    Some(kept)
}

/// A valid `POST /api/sessions` body.
#[derive(Debug, Default)]
pub(crate) struct CreateSession {
    pub tools: Vec<Value>,
    pub cwd: Option<String>,
    pub model: Option<String>,
    pub approval_policy: Option<String>,
    pub network_access: Option<String>,
    pub filesystem_sandbox: Option<String>,
}

fn string_field(object: Option<&serde_json::Map<String, Value>>, key: &str) -> Option<String> {
    object
        .and_then(|o| o.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Validates a `POST /api/sessions` body (optional); `Err` is the 400 body.
pub(crate) fn create_session(body: Option<&Value>) -> Result<CreateSession, Value> {
    let mut issues = Issues::default();
    let root = Path::default();
    let object = object_body(body, true, &mut issues);
    let mut tools = None;
    if let Some(object) = object {
        issues.optional_string(object, "cwd", &root);
        issues.optional_string(object, "model", &root);
        issues.optional_enum(object, "approvalPolicy", APPROVAL_POLICIES, &root);
        issues.optional_enum(object, "networkAccess", NETWORK_ACCESS, &root);
        issues.optional_enum(object, "filesystemSandbox", FILESYSTEM_SANDBOXES, &root);
        tools = dynamic_tools(object.get("dynamicTools"), &root.key("dynamicTools"), &mut issues);
    }
    let parsed = CreateSession {
        tools: tools.unwrap_or_default(),
        cwd: string_field(object, "cwd"),
        model: string_field(object, "model"),
        approval_policy: string_field(object, "approvalPolicy"),
        network_access: string_field(object, "networkAccess"),
        filesystem_sandbox: string_field(object, "filesystemSandbox"),
    };
    issues.into_result(parsed)
}

/// A valid `POST /api/sessions/:id/messages` body.
#[derive(Debug)]
pub(crate) struct SendMessage {
    pub text: String,
    /// Replacement tools for the session, when the message declares them.
    pub tools: Option<Vec<Value>>,
}

/// Validates a `POST /api/sessions/:id/messages` body (required); `Err` is the 400 body.
pub(crate) fn send_message(body: Option<&Value>) -> Result<SendMessage, Value> {
    let mut issues = Issues::default();
    let root = Path::default();
    let Some(object) = object_body(body, false, &mut issues) else {
        return Err(fixtures::validation_error_body(issues.0));
    };
    let text = match object.get("text") {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(Value::String(_)) => {
            issues.too_small_string(&root.key("text"));
            None
        }
        other => {
            issues.invalid_type(&root.key("text"), "string", other);
            None
        }
    };
    issues.optional_string(object, "model", &root);
    issues.optional_enum(object, "effort", EFFORTS, &root);
    issues.optional_enum(object, "approvalPolicy", APPROVAL_POLICIES, &root);
    issues.optional_enum(object, "networkAccess", NETWORK_ACCESS, &root);
    issues.optional_enum(object, "filesystemSandbox", FILESYSTEM_SANDBOXES, &root);
    let tools = dynamic_tools(object.get("dynamicTools"), &root.key("dynamicTools"), &mut issues);
    issues.into_result(()).map(|()| SendMessage {
        text: text.unwrap_or_default(),
        tools,
    })
}

/// A valid `POST /api/tool-calls/:id/response` body.
#[derive(Debug)]
pub(crate) struct Respond {
    /// What `tool_call_resolved` reports: `success`, else `response.success`, else true.
    pub success: bool,
}

/// Validates a tool-call response body (required); `Err` is the 400 body.
pub(crate) fn respond(body: Option<&Value>) -> Result<Respond, Value> {
    let mut issues = Issues::default();
    let root = Path::default();
    let Some(object) = object_body(body, false, &mut issues) else {
        return Err(fixtures::validation_error_body(issues.0));
    };
    if let Some(value) = object.get("success")
        && !value.is_boolean()
    {
        issues.invalid_type(&root.key("success"), "boolean", Some(value));
    }
    issues.optional_string(object, "text", &root);
    if let Some(items) = object.get("contentItems") {
        let path = root.key("contentItems");
        match items {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, item)| content_item(item, &path.index(i), &mut issues)),
            other => issues.invalid_type(&path, "array", Some(other)),
        }
    }
    let success = object
        .get("success")
        .and_then(Value::as_bool)
        .or_else(|| {
            object
                .get("response")
                .and_then(|r| r.get("success"))
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    issues.into_result(Respond { success })
}

fn content_item(item: &Value, path: &Path, issues: &mut Issues) {
    let Value::Object(object) = item else {
        issues.invalid_type(path, "object", Some(item));
        return;
    };
    let field = match object.get("type").and_then(Value::as_str) {
        Some("inputText") => "text",
        Some("inputImage") => "imageUrl",
        _ => {
            issues.0.push(fixtures::invalid_union_issue(path.key("type").0));
            return;
        }
    };
    match object.get(field) {
        Some(Value::String(_)) => {}
        other => issues.invalid_type(&path.key(field), "string", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(err: Value) -> Vec<Value> {
        assert_eq!(err["status"], "error");
        assert_eq!(err["code"], "invalid_request");
        err["issues"].as_array().unwrap().clone()
    }

    #[test]
    fn blank_tool_name_is_too_small_at_its_path() {
        let body = json!({"dynamicTools": [
            {"name": "ok", "description": "fine", "inputSchema": {}},
            {"name": "  ", "description": "d", "inputSchema": {"type": "object"}},
        ]});
        let found = issues(create_session(Some(&body)).unwrap_err());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["code"], "too_small");
        assert_eq!(found[0]["path"], json!(["dynamicTools", 1, "name"]));
    }

    #[test]
    fn tools_are_trimmed_and_stripped() {
        let body = json!({"dynamicTools": [
            {"type": "function", "name": " up ", "description": " Upper ", "inputSchema": {"type": "object"}}
        ]});
        let parsed = create_session(Some(&body)).unwrap();
        assert_eq!(
            parsed.tools,
            vec![json!({"name": "up", "description": "Upper", "inputSchema": {"type": "object"}})]
        );
        assert!(create_session(None).unwrap().tools.is_empty());
    }

    #[test]
    fn respond_body_rules() {
        assert!(respond(Some(&json!({}))).unwrap().success);
        assert!(!respond(Some(&json!({"response": {"success": false}}))).unwrap().success);
        let ok = json!({"success": false, "contentItems": [{"type": "inputText", "text": "x"}, {"type": "inputImage", "imageUrl": "u"}]});
        assert!(!respond(Some(&ok)).unwrap().success);
        let found = issues(respond(Some(&json!({"contentItems": [{"type": "text", "text": "x"}]}))).unwrap_err());
        assert_eq!(found[0]["code"], "invalid_union");
        assert_eq!(found[0]["path"], json!(["contentItems", 0, "type"]));
        let found = issues(respond(Some(&json!({"success": "yes", "text": 3}))).unwrap_err());
        assert_eq!(found.len(), 2);
        assert_eq!(issues(respond(None).unwrap_err())[0]["path"], json!([]));
    }

    #[test]
    fn message_text_is_required() {
        let found = issues(send_message(Some(&json!({}))).unwrap_err());
        assert_eq!(found[0]["path"], json!(["text"]));
        assert_eq!(found[0]["code"], "invalid_type");
        assert_eq!(send_message(Some(&json!({"text": "hi"}))).unwrap().text, "hi");
    }
}
