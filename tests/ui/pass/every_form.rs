//! Every accepted form of `#[skill]` compiles and registers.

use std::borrow::Cow;

use skillbridge::skill;
use skillbridge::skill::{Catalog, Content, ContentItem, SkillContext, SkillError, ToolResult};

/// Sync, documented parameters, an optional one.
#[skill]
pub fn sync_skill(
    /// Documented.
    text: String,
    count: Option<u32>,
) -> String {
    text.repeat(count.unwrap_or(1) as usize)
}

/// Async with the context anywhere in the list.
#[skill]
pub(crate) async fn async_skill(first: u8, ctx: SkillContext, second: Vec<String>) -> Result<String, SkillError> {
    Ok(format!("{first} {second:?} {}", ctx.tool))
}

#[skill(name = "Custom-Name_1", description = "Given by the attribute.", timeout = "250ms")]
fn attribute_form() {}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Input {
    a: i32,
}

/// Struct input, context first.
#[skill(timeout = "1h")]
fn struct_input(ctx: SkillContext, #[skill(input)] input: Input) -> i32 {
    let _ = ctx;
    input.a
}

/// Struct input alone.
#[skill]
async fn struct_input_alone(#[skill(input)] mut input: Input) -> Cow<'static, str> {
    input.a += 1;
    Cow::Owned(input.a.to_string())
}

/// Returns every result type.
#[skill]
fn returns_content() -> Content {
    Content::new().text("t")
}

/// ToolResult.
#[skill]
fn returns_tool_result() -> ToolResult {
    ToolResult::text("t")
}

/// Items.
#[skill]
fn returns_items() -> Vec<ContentItem> {
    Vec::new()
}

/// A static str.
#[skill]
fn returns_str() -> &'static str {
    "s"
}

/// JSON.
#[skill]
fn returns_json() -> Result<Vec<u32>, String> {
    Ok(vec![1])
}

/// Raw identifiers, `mut` and lint attributes on parameters.
#[skill]
fn parameter_forms(r#type: String, level: u8, #[allow(unused_mut)] mut other: bool) -> String {
    format!("{type} {level} {other}", type = r#type)
}

/// Every annotation, and tags.
#[skill(
    title = "Every annotation",
    read_only,
    idempotent,
    open_world = false,
    tags = ["forms", "a-tag_9"]
)]
fn annotated() -> &'static str {
    "a"
}

/// The opposite hints, written `= false`; `destructive` without `read_only`.
#[skill(read_only = false, destructive, idempotent = false, open_world, tags = [])]
fn annotated_otherwise() {}

fn main() {
    let catalog = Catalog::from_registry().expect("valid skills");
    let names: Vec<&str> = catalog.names().collect();
    assert_eq!(names.len(), 13, "{names:?}");
    assert!(names.contains(&"Custom-Name_1"));
    assert_eq!(catalog.get("Custom-Name_1").unwrap().timeout().as_millis(), 250);
    assert_eq!(sync_skill("ab".into(), Some(2)), "abab");

    let annotated = catalog.get("annotated").unwrap();
    let annotations = annotated.annotations();
    assert_eq!(annotations.title(), Some("Every annotation"));
    assert_eq!(
        (annotations.read_only(), annotations.destructive(), annotations.idempotent(), annotations.open_world()),
        (Some(true), None, Some(true), Some(false))
    );
    assert_eq!(annotated.tags(), ["forms", "a-tag_9"]);
    let otherwise = catalog.get("annotated_otherwise").unwrap().annotations();
    assert_eq!(
        (otherwise.read_only(), otherwise.destructive(), otherwise.idempotent(), otherwise.open_world()),
        (Some(false), Some(true), Some(false), Some(true))
    );
    assert!(catalog.get("sync_skill").unwrap().annotations().is_empty());
}
