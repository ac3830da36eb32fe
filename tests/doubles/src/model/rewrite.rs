//! What Codex 0.169 shows the model of a dynamic tool's `inputSchema`, as observed by the tests against the
//! real binary (`tests/app_server_codex.rs` pins the cases; `tests/fixtures/SCHEMA-FINDINGS.md` lists them).

use serde_json::{Map, Value, json};

/// What Codex 0.169 does to an `inputSchema` before the model sees it: only the keywords below survive, a `const`
/// becomes a
/// string-typed one-value `enum`, and an object without `properties` gets empty ones.
pub fn codex_rewrite(node: &Value) -> Value {
    const KEPT: [&str; 8] = [
        "type",
        "description",
        "required",
        "enum",
        "$ref",
        "minItems",
        "properties",
        "$defs",
    ];
    let Some(object) = node.as_object() else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "const" => {
                out.insert("type".into(), json!("string"));
                out.insert("enum".into(), json!([value]));
            }
            "properties" | "$defs" => {
                let children = value.as_object().into_iter().flatten();
                let rewritten = children
                    .map(|(name, child)| (name.clone(), codex_rewrite(child)))
                    .collect();
                out.insert(key.clone(), Value::Object(rewritten));
            }
            "items" | "additionalProperties" => {
                out.insert(key.clone(), codex_rewrite(value));
            }
            "anyOf" | "oneOf" | "allOf" => {
                let branches = value.as_array().into_iter().flatten().map(codex_rewrite).collect();
                out.insert(key.clone(), Value::Array(branches));
            }
            keyword if KEPT.contains(&keyword) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    if out.get("type") == Some(&json!("object")) && !out.contains_key("properties") {
        out.insert("properties".into(), json!({}));
    }
    Value::Object(out)
}
