//! The tool result as the upstream receives it: `{contentItems: [..], success}`.
//!
//! Both upstreams (codex-manager's `POST /api/tool-calls/:requestId/response` and `codex app-server`'s
//! `item/tool/call` JSON-RPC result) take exactly this shape.

use serde::{Deserialize, Serialize};

/// One content item of a tool result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ContentItem {
    /// Plain text shown to the model.
    InputText {
        /// The text.
        text: String,
    },
    /// An image, usually a `data:` URL.
    InputImage {
        /// The image URL (`data:image/png;base64,..` or `https://..`).
        #[serde(rename = "imageUrl")]
        image_url: String,
    },
}

impl ContentItem {
    /// A text item.
    pub fn text(text: impl Into<String>) -> Self {
        Self::InputText { text: text.into() }
    }

    /// An image item from a URL (typically a `data:` URL).
    pub fn image_url(url: impl Into<String>) -> Self {
        Self::InputImage { image_url: url.into() }
    }
}

/// The answer to one tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    /// What the model is shown.
    pub content_items: Vec<ContentItem>,
    /// `false` tells the model the call failed; the content then says why.
    pub success: bool,
}

impl ToolResult {
    /// A successful result with one text item.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content_items: vec![ContentItem::text(text)],
            success: true,
        }
    }

    /// A failed result whose one text item explains the failure to the model.
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            content_items: vec![ContentItem::text(message)],
            success: false,
        }
    }

    /// All text items joined with newlines (images are left out).
    pub fn text_content(&self) -> String {
        self.content_items
            .iter()
            .filter_map(|item| match item {
                ContentItem::InputText { text } => Some(text.as_str()),
                ContentItem::InputImage { .. } => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_in_the_upstream_wire_shape() {
        let result = ToolResult {
            content_items: vec![
                ContentItem::text("hi"),
                ContentItem::image_url("data:image/png;base64,AA=="),
            ],
            success: true,
        };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            json!({"contentItems": [
                {"type": "inputText", "text": "hi"},
                {"type": "inputImage", "imageUrl": "data:image/png;base64,AA=="}
            ], "success": true})
        );
    }
}
