//! [`ArgumentCheck`]: a skill's arguments checked against its whole input schema before they are deserialized.
//!
//! Codex drops most bounds from the schemas the model sees (`minimum`, `maxLength`, `pattern`, `format`, ...; see
//! `tests/fixtures/SCHEMA-FINDINGS.md`), so the model is never told them and the skill side is the only place they
//! can hold. Each skill's input schema, as derived (before the rewrite for Codex), is compiled once when the
//! catalog is built (with the [`jsonschema`] crate, draft 2020-12, formats asserted), and every call's arguments
//! are validated against it before deserialization. A call that breaks it is answered `success:false` with each
//! violation (up to [`MAX_REPORTED`]) as `path: message`, e.g. `limit: 80 is greater than the maximum of 50`.
//!
//! schemars names the width of numbers in `format` (`uint32`, `int8`, `double`, ...). JSON Schema applies `format`
//! to strings only, so the integer formats are turned into the `minimum`/`maximum` they mean before compiling
//! (`count: 4294967296 is greater than the maximum of 4294967295`); `float` and `double` admit every JSON number.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::{Map, Value, json};

/// Violations named in one answer, at most; the rest are counted.
pub(crate) const MAX_REPORTED: usize = 5;

/// A compiled input schema.
pub(crate) struct ArgumentCheck {
    validator: Validator,
}

impl ArgumentCheck {
    /// Compiles `schema`; the error says why it cannot be (an invalid `pattern`, say).
    pub(crate) fn compile(schema: &Value) -> Result<Self, String> {
        let mut schema = schema.clone();
        bound_integer_formats(&mut schema);
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|error| format!("its input schema cannot be compiled: {error}"))?;
        Ok(Self { validator })
    }

    /// `Ok` when `arguments` satisfy the schema; otherwise every violation as `path: message`, in schema order,
    /// at most [`MAX_REPORTED`] of them and then how many more there are.
    pub(crate) fn check(&self, arguments: &Value) -> Result<(), String> {
        let mut violations = self.validator.iter_errors(arguments).flat_map(|error| {
            let mut lines = Vec::new();
            describe(&error, &mut lines);
            lines
        });
        let reported: Vec<String> = violations.by_ref().take(MAX_REPORTED).collect();
        if reported.is_empty() {
            return Ok(());
        }
        let more = violations.count();
        let mut message = reported.join("; ");
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        Err(message)
    }
}

/// `error` as `path: message` lines. An `anyOf`/`oneOf` that no branch satisfies is told through the branch that
/// was meant: the one left besides an `Option`'s `null`, or else the one that got furthest into the value (for an
/// `Option<Filter>`, the filter's own violations rather than "not null"); as itself when none stands out.
fn describe(error: &ValidationError<'_>, lines: &mut Vec<String>) {
    let branches = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => Some(context),
        _ => None,
    };
    let own_depth = depth(error);
    let furthest = branches.and_then(|branches| {
        // The `null` branch of an `Option` says nothing about what the value was meant to be.
        let meant: Vec<_> = branches
            .iter()
            .filter(|branch| !branch.is_empty() && !branch.iter().all(only_not_null))
            .collect();
        if let [only] = meant.as_slice() {
            return Some(*only);
        }
        meant
            .into_iter()
            .max_by_key(|branch| branch.iter().map(depth).max().unwrap_or(0))
            .filter(|branch| branch.iter().map(depth).max().unwrap_or(0) > own_depth)
    });
    let path = readable_path(error.instance_path().as_str());
    let line = |message: String| {
        if path.is_empty() {
            message
        } else {
            format!("{path}: {message}")
        }
    };
    if let Some(branch) = furthest {
        branch.iter().for_each(|error| describe(error, lines));
    } else if let Some(values) = branches.and_then(|branches| constants(branches)) {
        // A documented enum: one `const` per variant.
        lines.push(line(format!("{} is not one of {}", error.instance(), one_of(&values))));
    } else {
        lines.push(line(error.to_string()));
    }
}

/// The values of branches that are each one `const`, when all of them are.
fn constants(branches: &[Vec<ValidationError<'_>>]) -> Option<Vec<String>> {
    branches
        .iter()
        .map(|branch| match branch.as_slice() {
            [only] => match only.kind() {
                ValidationErrorKind::Constant { expected_value } => Some(expected_value.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// `"a", "b" or "c"`.
fn one_of(values: &[String]) -> String {
    match values {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn only_not_null(error: &ValidationError<'_>) -> bool {
    matches!(error.kind(), ValidationErrorKind::Type { .. }) && error.to_string().ends_with("is not of type \"null\"")
}

/// How many steps into the arguments an error points.
fn depth(error: &ValidationError<'_>) -> usize {
    error.instance_path().as_str().split('/').skip(1).count()
}

/// A JSON Pointer to an argument as a model reads it: `/items/0/name` is `items[0].name`.
fn readable_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
    }
    path
}

/// Adds the bounds schemars' integer formats stand for (`uint32` is 0 to 4,294,967,295), everywhere in `schema`,
/// keeping tighter bounds the schema already has.
fn bound_integer_formats(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if let Some((min, max)) = object.get("format").and_then(Value::as_str).and_then(integer_range) {
                tighten(object, "minimum", min, |new, old| new > old);
                tighten(object, "maximum", max, |new, old| new < old);
            }
            object.values_mut().for_each(bound_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integer_formats),
        _ => {}
    }
}

fn tighten(object: &mut Map<String, Value>, keyword: &str, bound: i128, tighter: impl Fn(f64, f64) -> bool) {
    let bound_json = json!(bound);
    match object.get(keyword).and_then(Value::as_f64) {
        Some(existing) if !tighter(bound as f64, existing) => {}
        _ => {
            object.insert(keyword.to_owned(), bound_json);
        }
    }
}

/// The range of one of schemars' integer formats.
fn integer_range(format: &str) -> Option<(i128, i128)> {
    Some(match format {
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" | "int" => (i64::MIN.into(), i64::MAX.into()),
        "uint8" => (0, u8::MAX.into()),
        "uint16" => (0, u16::MAX.into()),
        "uint32" => (0, u32::MAX.into()),
        "uint64" | "uint" => (0, u64::MAX.into()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(schema: Value, arguments: Value) -> Result<(), String> {
        ArgumentCheck::compile(&schema).unwrap().check(&arguments)
    }

    #[test]
    fn names_each_violation_by_its_path() {
        let schema = json!({
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "maximum": 50},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"minLength": 2}}}}
            },
            "required": ["limit"]
        });
        assert_eq!(
            check(schema.clone(), json!({"limit": 50, "items": [{"name": "ab"}]})),
            Ok(())
        );
        let error = check(
            schema.clone(),
            json!({"limit": 80, "items": [{"name": "ab"}, {"name": "x"}]}),
        )
        .unwrap_err();
        assert!(error.contains("limit: 80 is greater than the maximum of 50"), "{error}");
        assert!(
            error.contains("items[1].name: \"x\" is shorter than 2 characters"),
            "{error}"
        );
        let error = check(schema, json!({})).unwrap_err();
        assert_eq!(error, "\"limit\" is a required property");
    }

    #[test]
    fn an_optional_object_is_told_by_its_own_violations() {
        let filter = json!({"type": "object", "properties": {"limit": {"type": "integer", "minimum": 0}}});
        let schema = json!({"type": "object", "properties": {"filter": {"anyOf": [filter, {"type": "null"}]}}});
        let error = check(schema.clone(), json!({"filter": {"limit": -2}})).unwrap_err();
        assert_eq!(error, "filter.limit: -2 is less than the minimum of 0");
        let error = check(schema, json!({"filter": 3})).unwrap_err();
        assert_eq!(error, "filter: 3 is not of type \"object\"");
        let status = json!({"anyOf": [{"enum": ["open", "closed"]}, {"type": "null"}]});
        let schema = json!({"type": "object", "properties": {"status": status}});
        let error = check(schema, json!({"status": "lost"})).unwrap_err();
        assert_eq!(error, "status: \"lost\" is not one of \"open\" or \"closed\"");
        // Documented variants: schemars writes one `const` per variant under `oneOf`.
        let variants = json!([{"const": "open"}, {"const": "pending"}, {"const": "closed"}]);
        let status = json!({"anyOf": [{"oneOf": variants}, {"type": "null"}]});
        let schema = json!({"type": "object", "properties": {"status": status}});
        let error = check(schema, json!({"status": "lost"})).unwrap_err();
        assert_eq!(
            error,
            "status: \"lost\" is not one of \"open\", \"pending\" or \"closed\""
        );
    }

    #[test]
    fn reports_a_handful_and_counts_the_rest() {
        let properties: Map<String, Value> = (0..8).map(|i| (format!("p{i}"), json!({"type": "string"}))).collect();
        let arguments: Map<String, Value> = (0..8).map(|i| (format!("p{i}"), json!(i))).collect();
        let error = check(
            json!({"type": "object", "properties": properties}),
            Value::Object(arguments),
        )
        .unwrap_err();
        assert_eq!(error.matches("is not of type").count(), MAX_REPORTED, "{error}");
        assert!(error.ends_with("; and 3 more"), "{error}");
    }

    #[test]
    fn integer_formats_bound_their_values_and_keep_tighter_bounds() {
        let schema = json!({"type": "object", "properties": {
            "count": {"type": "integer", "format": "uint32", "minimum": 0},
            "small": {"type": "integer", "format": "int8", "maximum": 10},
            "ratio": {"type": "number", "format": "double"}
        }});
        assert_eq!(
            check(
                schema.clone(),
                json!({"count": 4_294_967_295u64, "small": -128, "ratio": 1e300})
            ),
            Ok(())
        );
        let error = check(schema.clone(), json!({"count": 4_294_967_296u64})).unwrap_err();
        assert_eq!(error, "count: 4294967296 is greater than the maximum of 4294967295");
        let error = check(schema.clone(), json!({"small": 11})).unwrap_err();
        assert_eq!(error, "small: 11 is greater than the maximum of 10");
        let error = check(schema, json!({"small": -129})).unwrap_err();
        assert_eq!(error, "small: -129 is less than the minimum of -128");
    }

    #[test]
    fn string_formats_are_asserted() {
        let schema = json!({"type": "object", "properties": {
            "at": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "format": "email"},
            "link": {"type": "string", "format": "uri"}
        }});
        let good = json!({"at": "2026-12-01T10:00:00Z", "mail": "a@example.com", "link": "https://example.com/x"});
        assert_eq!(check(schema.clone(), good), Ok(()));
        let error = check(
            schema,
            json!({"at": "yesterday", "mail": "nobody", "link": "not a uri"}),
        )
        .unwrap_err();
        for field in [
            "at: \"yesterday\" is not a \"date-time\"",
            "mail: \"nobody\" is not a \"email\"",
            "link:",
        ] {
            assert!(error.contains(field), "{field} in {error}");
        }
    }

    #[test]
    fn an_invalid_pattern_is_a_compile_error() {
        let error = ArgumentCheck::compile(&json!({"type": "object", "properties": {"x": {"pattern": "("}}}))
            .err()
            .unwrap();
        assert!(error.starts_with("its input schema cannot be compiled"), "{error}");
    }

    #[test]
    fn paths_read_like_code() {
        assert_eq!(readable_path(""), "");
        assert_eq!(readable_path("/a/0/b~1c"), "a[0].b/c");
    }
}
