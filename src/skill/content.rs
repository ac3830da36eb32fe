//! What a skill may return: [`IntoToolResult`] for the text-like and content types, and [`Content`],
//! the explicit several-items output (text and images).
//!
//! Return values that are not [`IntoToolResult`] but implement `serde::Serialize` become JSON text; the
//! `#[skill]` macro picks the conversion (see `skill::__private::returns`).

use std::borrow::Cow;
use std::fmt::Display;

use base64::Engine as _;

use super::{ContentItem, ToolResult};

/// Turns a skill's return value into the tool result the model receives.
///
/// Implemented for text (`String`, `&str`, `Cow<str>`), for the result types themselves ([`ToolResult`],
/// [`Content`], [`ContentItem`], `Vec<ContentItem>`), for `()` (the text `ok`), and for
/// `Result<T, E>` with `T: IntoToolResult, E: Display` (`Err` becomes `success: false` with the message,
/// written with `{:#}` so that `anyhow::Error` shows its causes).
/// Any other `T: Serialize` return type is sent as JSON text without implementing this trait.
///
/// Implement it for your own type to control exactly what the model sees:
///
/// ```
/// use skillbridge::skill::{IntoToolResult, ToolResult};
///
/// struct Temperature(f64);
///
/// impl IntoToolResult for Temperature {
///     fn into_tool_result(self) -> ToolResult {
///         ToolResult::text(format!("{:.1} °C", self.0))
///     }
/// }
///
/// assert_eq!(Temperature(21.04).into_tool_result().text_content(), "21.0 °C");
/// ```
pub trait IntoToolResult {
    /// The tool result for this value.
    fn into_tool_result(self) -> ToolResult;
}

impl IntoToolResult for ToolResult {
    fn into_tool_result(self) -> ToolResult {
        self
    }
}

impl IntoToolResult for String {
    fn into_tool_result(self) -> ToolResult {
        ToolResult::text(self)
    }
}

impl IntoToolResult for &str {
    fn into_tool_result(self) -> ToolResult {
        ToolResult::text(self)
    }
}

impl IntoToolResult for Cow<'_, str> {
    fn into_tool_result(self) -> ToolResult {
        ToolResult::text(self)
    }
}

/// A skill that returns nothing answers `ok`, so the model sees that the call did its work.
impl IntoToolResult for () {
    fn into_tool_result(self) -> ToolResult {
        ToolResult::text("ok")
    }
}

impl IntoToolResult for ContentItem {
    fn into_tool_result(self) -> ToolResult {
        ToolResult {
            content_items: vec![self],
            success: true,
        }
    }
}

impl IntoToolResult for Vec<ContentItem> {
    fn into_tool_result(self) -> ToolResult {
        ToolResult {
            content_items: self,
            success: true,
        }
    }
}

impl IntoToolResult for Content {
    fn into_tool_result(self) -> ToolResult {
        self.items.into_tool_result()
    }
}

impl<T: IntoToolResult, E: Display> IntoToolResult for Result<T, E> {
    fn into_tool_result(self) -> ToolResult {
        match self {
            Ok(value) => value.into_tool_result(),
            Err(error) => ToolResult::failure(error_message(&error)),
        }
    }
}

/// The message of a skill's error. The alternate form (`{:#}`) is used because error types that have a cause
/// chain print it there (`anyhow::Error`: `context: cause`); for the others it is the plain message.
pub(crate) fn error_message(error: &impl Display) -> String {
    format!("{error:#}")
}

/// Several content items in one successful result: text and images, in order.
///
/// ```
/// use skillbridge::skill::{Content, ContentItem, IntoToolResult};
///
/// let content = Content::new()
///     .text("Sales by quarter (chart below)")
///     .image_data("image/png", &[0x89, b'P', b'N', b'G']);
/// let result = content.into_tool_result();
/// assert!(result.success);
/// assert_eq!(result.content_items[0], ContentItem::text("Sales by quarter (chart below)"));
/// assert_eq!(result.content_items[1], ContentItem::image_url("data:image/png;base64,iVBORw=="));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    items: Vec<ContentItem>,
}

impl Content {
    /// No items yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a text item.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.items.push(ContentItem::text(text));
        self
    }

    /// Appends an image item by URL (a `data:` URL or an `https://` URL the model can fetch).
    pub fn image_url(mut self, url: impl Into<String>) -> Self {
        self.items.push(ContentItem::image_url(url));
        self
    }

    /// Appends an image item holding `bytes` as a base64 `data:` URL of type `mime_type`
    /// (`image/png`, `image/jpeg`, `image/webp` or `image/gif` are what models accept).
    pub fn image_data(self, mime_type: &str, bytes: &[u8]) -> Self {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.image_url(format!("data:{mime_type};base64,{encoded}"))
    }

    /// Appends any item.
    pub fn push(&mut self, item: ContentItem) {
        self.items.push(item);
    }

    /// The items so far.
    pub fn items(&self) -> &[ContentItem] {
        &self.items
    }

    /// The items, consuming the content.
    pub fn into_items(self) -> Vec<ContentItem> {
        self.items
    }
}

impl From<Content> for Vec<ContentItem> {
    fn from(content: Content) -> Self {
        content.items
    }
}

impl FromIterator<ContentItem> for Content {
    fn from_iter<I: IntoIterator<Item = ContentItem>>(iter: I) -> Self {
        Self {
            items: iter.into_iter().collect(),
        }
    }
}

impl Extend<ContentItem> for Content {
    fn extend<I: IntoIterator<Item = ContentItem>>(&mut self, iter: I) {
        self.items.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_answers_ok() {
        assert_eq!(().into_tool_result(), ToolResult::text("ok"));
    }

    #[test]
    fn err_becomes_a_failure_with_the_message() {
        let result: Result<String, String> = Err("no such ticket".into());
        assert_eq!(result.into_tool_result(), ToolResult::failure("no such ticket"));
    }

    #[test]
    fn ok_keeps_the_inner_conversion() {
        let result: Result<Content, std::fmt::Error> = Ok(Content::new().text("a").text("b"));
        let result = result.into_tool_result();
        assert!(result.success);
        assert_eq!(
            result.content_items,
            vec![ContentItem::text("a"), ContentItem::text("b")]
        );
    }
}
