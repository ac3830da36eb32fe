//! Schema generation and the rewrite that makes a schema survive Codex.
//!
//! Codex is not strict and rewrites tool schemas to a subset (see `tests/fixtures/SCHEMA-FINDINGS.md`),
//! and older versions dropped `$ref`, so every schema skillbridge publishes is portable:
//! - subschemas are inlined: no `$ref`, no `$defs` (a recursive type cannot be inlined and is rejected);
//! - no `$schema` and no root `title`;
//! - `oneOf` is lowered to `anyOf` (Codex keeps `oneOf`, but models and older versions handle `anyOf` better,
//!   and for the data skills accept the two mean the same);
//! - an input schema's root is `type: "object"` with `properties` present, even when empty.
//!
//! `format`, `minimum` and friends are kept in the published schema: they document the type for whoever reads it
//! (Codex 0.169 drops them before the model sees them). They are enforced on the skill side: every call's
//! arguments are validated against the schema as derived, before this rewrite, by [`super::validate`]; what
//! deserialization then checks (the Rust types) is a subset of it.

use schemars::generate::{Contract, SchemaSettings};
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value};

/// Keywords whose value is one subschema (or, for draft 7 `items`, an array of them).
const SUBSCHEMA_KEYWORDS: &[&str] = &[
    "additionalItems",
    "additionalProperties",
    "contains",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
];

/// Keywords whose value is an array of subschemas.
const SUBSCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];

/// Keywords whose value maps names to subschemas.
const SUBSCHEMA_MAP_KEYWORDS: &[&str] = &["dependentSchemas", "patternProperties", "properties"];

/// Where schemars puts shared definitions (2020-12 and draft 7 spellings).
const DEFINITION_KEYWORDS: &[&str] = &["$defs", "definitions"];

/// Why a schema cannot be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SchemaProblem {
    /// The type (named as schemars names it) refers to itself.
    Recursive { type_name: String },
    /// An input schema whose root is not an object; `found` describes what it is.
    NotObject { found: String },
}

/// A generator for the arguments a skill reads (deserialize contract), without `$schema`.
pub(crate) fn input_generator() -> SchemaGenerator {
    settings().for_deserialize().into_generator()
}

/// A generator for the values a skill returns (serialize contract), without `$schema`.
pub(crate) fn output_generator() -> SchemaGenerator {
    settings().for_serialize().into_generator()
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|settings| {
        settings.meta_schema = None;
        // Definitions are inlined by `portable` below, which also reports recursion by type name.
        settings.inline_subschemas = false;
        debug_assert!(matches!(settings.contract, Contract::Deserialize));
    })
}

/// The portable form of a skill's input schema; its root must be an object.
pub(crate) fn portable_input(schema: Schema) -> Result<Value, SchemaProblem> {
    let mut value = portable(schema.to_value())?;
    let Value::Object(root) = &mut value else {
        return Err(SchemaProblem::NotObject {
            found: format!("the schema `{value}`"),
        });
    };
    match root.get("type") {
        Some(Value::String(kind)) if kind == "object" => {}
        Some(other) => {
            return Err(SchemaProblem::NotObject {
                found: format!("type {other}"),
            });
        }
        None => {
            return Err(SchemaProblem::NotObject {
                found: "a schema without `type` (an enum or untagged type?)".to_owned(),
            });
        }
    }
    root.entry("properties").or_insert_with(|| Value::Object(Map::new()));
    Ok(value)
}

/// The portable form of a skill's output schema; a recursive output type keeps its `$defs`
/// (output schemas are documentation and are never sent to Codex).
pub(crate) fn portable_output(schema: Schema) -> Value {
    let original = schema.to_value();
    portable(original.clone()).unwrap_or_else(|_| {
        let mut value = original;
        if let Value::Object(root) = &mut value {
            root.remove("$schema");
            root.remove("title");
        }
        value
    })
}

/// Inlines definitions, lowers `oneOf`, and drops `$schema` and the root `title`.
fn portable(mut value: Value) -> Result<Value, SchemaProblem> {
    let Value::Object(root) = &mut value else {
        return Ok(value);
    };
    root.remove("$schema");
    let root_name = root.remove("title").and_then(|title| title.as_str().map(str::to_owned));
    let mut definitions = Map::new();
    for keyword in DEFINITION_KEYWORDS {
        if let Some(Value::Object(defs)) = root.remove(*keyword) {
            definitions.extend(defs);
        }
    }
    let mut inliner = Inliner {
        definitions: &definitions,
        root_name: root_name.as_deref().unwrap_or("the input type"),
        expanding: Vec::new(),
    };
    inliner.rewrite(&mut value)?;
    Ok(value)
}

struct Inliner<'a> {
    definitions: &'a Map<String, Value>,
    root_name: &'a str,
    /// Definitions being expanded on the path from the root to the current subschema.
    expanding: Vec<String>,
}

impl Inliner<'_> {
    fn rewrite(&mut self, schema: &mut Value) -> Result<(), SchemaProblem> {
        let Value::Object(object) = schema else {
            return Ok(());
        };
        let depth = self.expanding.len();
        while let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            let Some(name) = self.local_definition(reference)? else {
                break;
            };
            if self.expanding.contains(&name) {
                return Err(SchemaProblem::Recursive { type_name: name });
            }
            let Some(target) = self.definitions.get(&name) else {
                break;
            };
            object.remove("$ref");
            let mut merged = match target {
                Value::Object(target) => target.clone(),
                Value::Bool(true) => Map::new(),
                other => {
                    // `false` (nothing validates) has no object form; keep it under `allOf`.
                    Map::from_iter([("allOf".to_owned(), Value::Array(vec![other.clone()]))])
                }
            };
            // Keywords next to the `$ref` (a field's description) win over the definition's.
            merged.extend(std::mem::take(object));
            *object = merged;
            self.expanding.push(name);
        }
        lower_one_of(object);
        for (keyword, child) in object.iter_mut() {
            let keyword = keyword.as_str();
            if SUBSCHEMA_KEYWORDS.contains(&keyword) {
                match child {
                    Value::Array(items) => items.iter_mut().try_for_each(|item| self.rewrite(item))?,
                    other => self.rewrite(other)?,
                }
            } else if SUBSCHEMA_ARRAY_KEYWORDS.contains(&keyword) {
                if let Value::Array(items) = child {
                    items.iter_mut().try_for_each(|item| self.rewrite(item))?;
                }
            } else if SUBSCHEMA_MAP_KEYWORDS.contains(&keyword)
                && let Value::Object(map) = child
            {
                map.values_mut().try_for_each(|item| self.rewrite(item))?;
            }
        }
        self.expanding.truncate(depth);
        Ok(())
    }

    /// The definition a local `$ref` names; `None` for references this rewrite leaves alone.
    fn local_definition(&self, reference: &str) -> Result<Option<String>, SchemaProblem> {
        if reference == "#" {
            return Err(SchemaProblem::Recursive {
                type_name: self.root_name.to_owned(),
            });
        }
        let name = DEFINITION_KEYWORDS
            .iter()
            .find_map(|keyword| reference.strip_prefix(&format!("#/{keyword}/")));
        // JSON pointer escapes: `~1` is `/`, `~0` is `~` (in this order).
        Ok(name.map(|name| name.replace("~1", "/").replace("~0", "~")))
    }
}

/// `oneOf` → `anyOf`; when both are present, both constraints are kept under `allOf`.
fn lower_one_of(object: &mut Map<String, Value>) {
    let Some(one_of) = object.remove("oneOf") else {
        return;
    };
    match object.remove("anyOf") {
        None => {
            object.insert("anyOf".to_owned(), one_of);
        }
        Some(any_of) => {
            let all_of = object.entry("allOf").or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(all_of) = all_of {
                all_of.push(serde_json::json!({ "anyOf": any_of }));
                all_of.push(serde_json::json!({ "anyOf": one_of }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(value: Value) -> Result<Value, SchemaProblem> {
        portable_input(Schema::try_from(value).unwrap())
    }

    #[test]
    fn inlines_definitions_and_keeps_field_descriptions() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Args",
            "type": "object",
            "properties": {
                "status": {"$ref": "#/$defs/Status", "description": "Filter by status."},
                "range": {"anyOf": [{"$ref": "#/$defs/Range"}, {"type": "null"}]}
            },
            "$defs": {
                "Status": {"oneOf": [{"const": "open"}, {"const": "closed"}], "description": "A status."},
                "Range": {"type": "object", "properties": {"from": {"$ref": "#/$defs/Status"}}}
            }
        });
        assert_eq!(
            input(schema).unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "status": {"anyOf": [{"const": "open"}, {"const": "closed"}], "description": "Filter by status."},
                    "range": {"anyOf": [
                        {"type": "object", "properties": {"from": {
                            "anyOf": [{"const": "open"}, {"const": "closed"}], "description": "A status."
                        }}},
                        {"type": "null"}
                    ]}
                }
            })
        );
    }

    #[test]
    fn property_names_are_not_mistaken_for_keywords() {
        let schema = json!({"type": "object", "properties": {
            "oneOf": {"type": "string"},
            "$ref": {"type": "string"}
        }});
        assert_eq!(input(schema.clone()).unwrap(), schema);
    }

    #[test]
    fn rejects_recursive_definitions_by_name() {
        let schema = json!({
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
            }}}
        });
        assert_eq!(
            input(schema),
            Err(SchemaProblem::Recursive {
                type_name: "Node".into()
            })
        );
    }

    #[test]
    fn a_definition_used_twice_side_by_side_is_not_recursion() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/P"}, "b": {"$ref": "#/$defs/P"}},
            "$defs": {"P": {"type": "integer"}}
        });
        assert_eq!(
            input(schema).unwrap(),
            json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}})
        );
    }

    #[test]
    fn rejects_a_root_that_refers_to_itself() {
        let schema = json!({"title": "Tree", "type": "object", "properties": {"next": {"$ref": "#"}}});
        assert_eq!(
            input(schema),
            Err(SchemaProblem::Recursive {
                type_name: "Tree".into()
            })
        );
    }

    #[test]
    fn adds_empty_properties_and_rejects_non_object_roots() {
        assert_eq!(
            input(json!({"type": "object"})).unwrap(),
            json!({"type": "object", "properties": {}})
        );
        assert!(matches!(
            input(json!({"type": "string"})),
            Err(SchemaProblem::NotObject { .. })
        ));
        assert!(matches!(
            input(json!({"oneOf": [{"type": "object"}]})),
            Err(SchemaProblem::NotObject { .. })
        ));
    }

    #[test]
    fn keeps_both_one_of_and_any_of_constraints() {
        let mut object = json!({"anyOf": [{"type": "string"}], "oneOf": [{"minLength": 1}]});
        lower_one_of(object.as_object_mut().unwrap());
        assert_eq!(
            object,
            json!({"allOf": [{"anyOf": [{"type": "string"}]}, {"anyOf": [{"minLength": 1}]}]})
        );
    }

    #[test]
    fn recursive_outputs_keep_their_definitions() {
        let schema = json!({
            "$schema": "x", "title": "Tree", "type": "object",
            "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Tree2"}}},
            "$defs": {"Tree2": {"type": "object", "properties": {"kids": {"$ref": "#/$defs/Tree2"}}}}
        });
        let output = portable_output(Schema::try_from(schema).unwrap());
        assert!(output.get("$defs").is_some());
        assert!(output.get("$schema").is_none() && output.get("title").is_none());
    }
}
