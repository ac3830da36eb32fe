//! [`ModelScript`]: what the scripted model says, and how it reads the tool outputs out of a request.

use serde_json::Value;

/// One function call the scripted model makes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// The tool name.
    pub name: String,
    /// The arguments, sent to Codex as a JSON string like the real API does.
    pub arguments: Value,
}

/// What the scripted model answers.
///
/// While a request holds no `function_call_output` for every scripted call (`call_0`, `call_1`, ..), the
/// answer is all the scripted `function_call` items in one response; once it does, the answer is one
/// assistant message: `final_prefix` followed by every tool output, verbatim, joined with `" | "`.
/// A script without calls answers every request with that final message straight away.
///
/// ```
/// use serde_json::json;
/// use skillbridge_doubles::model::ModelScript;
///
/// let script = ModelScript::new()
///     .call("uppercase", json!({"text": "hi"}))
///     .final_prefix("Tool said: ");
/// assert_eq!(script.calls.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ModelScript {
    /// The calls, made together in the first response; call `i` gets the call id `call_i`.
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

    /// The call id of scripted call `index`.
    pub fn call_id(index: usize) -> String {
        format!("call_{index}")
    }

    /// The text of the final message for these tool outputs: scripted calls in script order, then any other
    /// outputs in request order.
    pub fn final_text(&self, outputs: &[(String, String)]) -> String {
        let scripted: Vec<String> = (0..self.calls.len()).map(Self::call_id).collect();
        let mut ordered: Vec<&str> = scripted
            .iter()
            .filter_map(|id| outputs.iter().find(|(call_id, _)| call_id == id))
            .map(|(_, text)| text.as_str())
            .collect();
        ordered.extend(
            outputs
                .iter()
                .filter(|(call_id, _)| !scripted.contains(call_id))
                .map(|(_, text)| text.as_str()),
        );
        format!("{}{}", self.final_prefix, ordered.join(" | "))
    }

    /// `true` when `outputs` answers every scripted call.
    pub fn all_answered(&self, outputs: &[(String, String)]) -> bool {
        (0..self.calls.len()).all(|index| {
            let id = Self::call_id(index);
            outputs.iter().any(|(call_id, _)| *call_id == id)
        })
    }
}

/// Every `function_call_output` in a Responses-API request body, as `(call_id, output text)` in request order.
///
/// The output may be a string, a list of content parts (their `text`s are concatenated) or an object with
/// a string `content`; any other object is rendered as JSON.
pub fn tool_outputs(body: &Value) -> Vec<(String, String)> {
    let Some(input) = body.get("input").and_then(Value::as_array) else {
        return Vec::new();
    };
    input
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
            {"type": "function_call_output", "call_id": "call_0", "output": "plain"},
            {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"type": "function_call_output", "call_id": "call_2", "output": {"content": "inner", "success": false}},
        ]});
        assert_eq!(
            tool_outputs(&body),
            vec![
                ("call_0".to_owned(), "plain".to_owned()),
                ("call_1".to_owned(), "ab".to_owned()),
                ("call_2".to_owned(), "inner".to_owned()),
            ]
        );
    }

    #[test]
    fn final_text_follows_script_order() {
        let script = ModelScript::new().call("a", json!({})).call("b", json!({}));
        let outputs = vec![
            ("call_1".to_owned(), "second".to_owned()),
            ("call_0".to_owned(), "first".to_owned()),
        ];
        assert!(script.all_answered(&outputs));
        assert!(!script.all_answered(&outputs[..1]));
        assert_eq!(script.final_text(&outputs), "Tool said: first | second");
    }
}
