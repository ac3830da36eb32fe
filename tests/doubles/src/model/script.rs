//! [`ModelScript`]: what the scripted model says, and how it reads the tool outputs out of a request.

use serde_json::Value;

/// One function call the scripted model makes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// The namespace of the tool, as Codex offers an MCP server's tools (`mcp__SERVER`); `None` for a plain
    /// function tool.
    pub namespace: Option<String>,
    /// The tool name.
    pub name: String,
    /// The arguments, sent to Codex as a JSON string like the real API does.
    pub arguments: Value,
}

/// What the scripted model answers.
///
/// A turn starts with a user message. While the request holds no `function_call_output` after its last user
/// message for every scripted call, the answer is all the scripted `function_call` items in one response, with
/// call ids new to this model: each such response is a model turn `t` (0, 1, .. counted by the
/// [`ScriptedModel`](super::ScriptedModel), across every thread it serves) and names call `i` of the script
/// [`call_id(t, i)`](Self::call_id), `call_<t>_<i>`; real models never reuse call ids either. Once the outputs
/// are there, the answer is one assistant message: `final_prefix` followed by this turn's tool outputs,
/// verbatim, joined with `" | "` ([`final_text`](Self::final_text) of [`turn_outputs`]). A script without
/// calls answers every request with that final message straight away.
///
/// ```
/// use serde_json::json;
/// use skillbridge_doubles::model::ModelScript;
///
/// let script = ModelScript::new()
///     .call("uppercase", json!({"text": "hi"}))
///     .final_prefix("Tool said: ");
/// assert_eq!(script.calls.len(), 1);
/// assert_eq!(ModelScript::call_id(0, 0), "call_0_0");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ModelScript {
    /// The calls, made together in the first response of each turn; in model turn `t`, call `i` gets the call
    /// id [`call_id(t, i)`](Self::call_id).
    pub calls: Vec<ScriptedCall>,
    /// The start of the final message.
    pub final_prefix: String,
}

impl Default for ModelScript {
    fn default() -> Self {
        Self {
            calls: Vec::new(),
            final_prefix: "Tool said: ".to_owned(),
        }
    }
}

impl ModelScript {
    /// A script with no calls and the prefix `"Tool said: "`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a call to `name` with `arguments`.
    pub fn call(mut self, name: impl Into<String>, arguments: Value) -> Self {
        self.calls.push(ScriptedCall {
            namespace: None,
            name: name.into(),
            arguments,
        });
        self
    }

    /// Adds a call to tool `name` of `namespace` (Codex offers an MCP server `NAME`'s tools in the namespace
    /// `mcp__NAME`, and a call must name both).
    pub fn call_in(mut self, namespace: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        self.calls.push(ScriptedCall {
            namespace: Some(namespace.into()),
            name: name.into(),
            arguments,
        });
        self
    }

    /// Sets the start of the final message.
    pub fn final_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.final_prefix = prefix.into();
        self
    }

    /// The call id of scripted call `index` in model turn `turn`: `call_<turn>_<index>`. The model's first turn
    /// is 0, so a model that served one turn named its calls `call_0_0`, `call_0_1`, ..
    pub fn call_id(turn: u64, index: usize) -> String {
        format!("call_{turn}_{index}")
    }

    /// The model turn and script index a call id names, if it is one of [`call_id`](Self::call_id)'s.
    pub fn parse_call_id(call_id: &str) -> Option<(u64, usize)> {
        let (turn, index) = call_id.strip_prefix("call_")?.split_once('_')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(turn) || !digits(index) {
            return None;
        }
        Some((turn.parse().ok()?, index.parse().ok()?))
    }

    /// The script index of a call id this script could have made (any turn).
    fn scripted_index(&self, call_id: &str) -> Option<(u64, usize)> {
        Self::parse_call_id(call_id).filter(|(_, index)| *index < self.calls.len())
    }

    /// The text of the final message for these tool outputs (pass [`turn_outputs`]): scripted calls in script
    /// order (by turn, then index), then any other outputs in request order.
    pub fn final_text(&self, outputs: &[(String, String)]) -> String {
        let mut scripted: Vec<((u64, usize), &str)> = outputs
            .iter()
            .filter_map(|(call_id, text)| Some((self.scripted_index(call_id)?, text.as_str())))
            .collect();
        scripted.sort_by_key(|(position, _)| *position);
        let mut ordered: Vec<&str> = scripted.into_iter().map(|(_, text)| text).collect();
        ordered.extend(
            outputs
                .iter()
                .filter(|(call_id, _)| self.scripted_index(call_id).is_none())
                .map(|(_, text)| text.as_str()),
        );
        format!("{}{}", self.final_prefix, ordered.join(" | "))
    }

    /// `true` when `outputs` answers every scripted call of one model turn (whichever turn).
    pub fn all_answered(&self, outputs: &[(String, String)]) -> bool {
        let mut turns: Vec<u64> = outputs
            .iter()
            .filter_map(|(call_id, _)| Some(self.scripted_index(call_id)?.0))
            .collect();
        turns.dedup();
        turns.into_iter().any(|turn| {
            (0..self.calls.len()).all(|index| {
                let id = Self::call_id(turn, index);
                outputs.iter().any(|(call_id, _)| *call_id == id)
            })
        })
    }
}

/// The `function_call_output`s of the request's current turn: those after its last user message, as
/// `(call_id, output text)` in request order. Earlier turns' outputs, which Codex resends as history, are left
/// out.
pub fn turn_outputs(body: &Value) -> Vec<(String, String)> {
    let Some(input) = body.get("input").and_then(Value::as_array) else {
        return Vec::new();
    };
    let turn_start = input
        .iter()
        .rposition(|item| item.get("role").and_then(Value::as_str) == Some("user"))
        .map_or(0, |last_user| last_user + 1);
    outputs_of(&input[turn_start..])
}

/// Every `function_call_output` in a Responses-API request body, as `(call_id, output text)` in request order:
/// those of earlier turns, which Codex resends as history, too ([`turn_outputs`] has the current turn's only).
///
/// The output may be a string, a list of content parts (their `text`s are concatenated) or an object with
/// a string `content`; any other object is rendered as JSON.
pub fn tool_outputs(body: &Value) -> Vec<(String, String)> {
    let Some(input) = body.get("input").and_then(Value::as_array) else {
        return Vec::new();
    };
    outputs_of(input)
}

fn outputs_of(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .map(|item| {
            let call_id = item
                .get("call_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (call_id, output_text(item.get("output").unwrap_or(&Value::Null)))
        })
        .collect()
}

fn output_text(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        Value::Object(object) => match object.get("content") {
            Some(Value::String(content)) => content.clone(),
            _ => output.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_output_form() {
        let body = json!({"input": [
            {"type": "message", "role": "user", "content": []},
            {"type": "function_call_output", "call_id": "call_0_0", "output": "plain"},
            {"type": "function_call_output", "call_id": "call_0_1", "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"type": "function_call_output", "call_id": "call_0_2", "output": {"content": "inner", "success": false}},
        ]});
        assert_eq!(
            tool_outputs(&body),
            vec![
                ("call_0_0".to_owned(), "plain".to_owned()),
                ("call_0_1".to_owned(), "ab".to_owned()),
                ("call_0_2".to_owned(), "inner".to_owned()),
            ]
        );
    }

    #[test]
    fn final_text_follows_script_order() {
        let script = ModelScript::new().call("a", json!({})).call("b", json!({}));
        let outputs = vec![
            ("call_4_1".to_owned(), "second".to_owned()),
            ("call_4_0".to_owned(), "first".to_owned()),
            ("other".to_owned(), "last".to_owned()),
        ];
        assert!(script.all_answered(&outputs));
        assert!(!script.all_answered(&outputs[..1]));
        assert_eq!(script.final_text(&outputs), "Tool said: first | second | last");
    }

    #[test]
    fn all_answered_needs_every_call_of_one_turn() {
        let script = ModelScript::new().call("a", json!({})).call("b", json!({}));
        let mixed = vec![
            ("call_0_0".to_owned(), "x".to_owned()),
            ("call_1_1".to_owned(), "y".to_owned()),
        ];
        assert!(
            !script.all_answered(&mixed),
            "two turns' halves are not one turn answered"
        );
        assert!(!script.all_answered(&[("call_0".to_owned(), "x".to_owned())]));
    }

    #[test]
    fn call_ids_name_turn_and_index() {
        assert_eq!(ModelScript::call_id(3, 1), "call_3_1");
        assert_eq!(ModelScript::parse_call_id("call_3_1"), Some((3, 1)));
        for foreign in ["call_3", "call__1", "call_3_x", "call_3_1_2", "fc_3_1", "call_+3_1"] {
            assert_eq!(ModelScript::parse_call_id(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn turn_outputs_are_those_after_the_last_user_message() {
        let body = json!({"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
            {"type": "function_call", "call_id": "call_0_0", "name": "a", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_0_0", "output": "first turn"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Tool said: first turn"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]},
            {"type": "function_call", "call_id": "call_1_0", "name": "a", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1_0", "output": "second turn"},
        ]});
        assert_eq!(tool_outputs(&body).len(), 2);
        assert_eq!(
            turn_outputs(&body),
            vec![("call_1_0".to_owned(), "second turn".to_owned())]
        );
        let fresh = json!({"input": [
            {"type": "function_call_output", "call_id": "call_0_0", "output": "old"},
            {"type": "message", "role": "user", "content": []},
        ]});
        assert!(turn_outputs(&fresh).is_empty(), "a new turn has no outputs yet");
    }
}
