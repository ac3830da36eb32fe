//! The catalog in MCP's terms: a skill as a `tools/list` entry, a [`ToolResult`] as a `tools/call` result.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

use crate::skill::{ContentItem, SkillInfo, ToolResult};

/// A skill as MCP lists it: name, description, the catalog's input schema (which MCP clients take as it is), its
/// title and hints when it has them, and its output schema when it returns typed JSON.
pub(super) fn tool(skill: &SkillInfo) -> Tool {
    let mut tool = Tool::new(
        skill.name().to_owned(),
        skill.description().to_owned(),
        Arc::new(object(skill.input_schema())),
    );
    let annotations = skill.annotations();
    if let Some(title) = annotations.title() {
        tool = tool.with_title(title);
    }
    let mut hints = ToolAnnotations::new();
    hints.title = annotations.title().map(str::to_owned);
    hints.read_only_hint = annotations.read_only();
    hints.destructive_hint = annotations.destructive();
    hints.idempotent_hint = annotations.idempotent();
    hints.open_world_hint = annotations.open_world();
    if hints != ToolAnnotations::new() {
        tool = tool.with_annotations(hints);
    }
    if let Some(output) = skill.output_schema() {
        tool = tool.with_raw_output_schema(Arc::new(object(output)));
    }
    tool
}

fn object(schema: &Value) -> JsonObject {
    schema.as_object().cloned().unwrap_or_default()
}

/// A result as MCP returns it: text and images as content; a failure as `isError: true` with the same text the
/// bridge gives Codex; for a skill with an output schema, its JSON also as `structuredContent`.
pub(super) fn result(result: &ToolResult, structured: bool) -> CallToolResult {
    let content: Vec<ContentBlock> = result.content_items.iter().map(content).collect();
    if !result.success {
        return CallToolResult::error(content);
    }
    let mut answer = CallToolResult::success(content);
    if structured && let [ContentItem::InputText { text }] = result.content_items.as_slice() {
        answer.structured_content = serde_json::from_str::<Value>(text).ok();
    }
    answer
}

/// An image with a `data:` URL becomes MCP image content; any other image is named by its URL in text.
fn content(item: &ContentItem) -> ContentBlock {
    match item {
        ContentItem::InputText { text } => ContentBlock::text(text.clone()),
        ContentItem::InputImage { image_url } => match data_url(image_url) {
            Some((mime_type, data)) => ContentBlock::image(data, mime_type),
            None => ContentBlock::text(format!("image: {image_url}")),
        },
    }
}

/// `data:MIME;base64,DATA` as its MIME type and base64 data.
fn data_url(url: &str) -> Option<(&str, &str)> {
    let (header, data) = url.strip_prefix("data:")?.split_once(',')?;
    let mime_type = header.strip_suffix(";base64")?;
    Some((mime_type, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_become_images_and_other_urls_text() {
        assert_eq!(data_url("data:image/png;base64,iVBOR"), Some(("image/png", "iVBOR")));
        assert_eq!(data_url("data:text/plain,hello"), None);
        assert_eq!(data_url("https://example.com/a.png"), None);
        let value = serde_json::to_value(content(&ContentItem::image_url("https://example.com/a.png"))).unwrap();
        assert_eq!(value["text"], "image: https://example.com/a.png");
    }

    #[test]
    fn a_failure_is_an_error_result_and_typed_json_is_also_structured() {
        let failed = serde_json::to_value(result(&ToolResult::failure("no such ticket"), true)).unwrap();
        assert_eq!(failed["isError"], true);
        assert_eq!(failed["content"][0]["text"], "no such ticket");
        assert!(failed.get("structuredContent").is_none());
        let json = ToolResult::text(r#"{"id":"T-1"}"#);
        let typed = serde_json::to_value(result(&json, true)).unwrap();
        assert_eq!(typed["structuredContent"], serde_json::json!({"id": "T-1"}));
        assert_eq!(typed["content"][0]["text"], r#"{"id":"T-1"}"#);
        let untyped = serde_json::to_value(result(&json, false)).unwrap();
        assert!(untyped.get("structuredContent").is_none());
    }
}
