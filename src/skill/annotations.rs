//! [`Annotations`] and tags: what a skill says about itself beyond its schema, for people and tooling.
//!
//! The annotations are the vocabulary of MCP's tool annotations (`title`, `readOnlyHint`, `destructiveHint`,
//! `idempotentHint`, `openWorldHint`); tags are short lower-case words that group skills (`tickets`, `admin`).
//! Both come from `#[skill(..)]` and show in `skillbridge skills`, `skills show`, `skills --json --details` and
//! the admin `/skills` routes. Neither is part of the `dynamicTools` payload: Codex's dynamic tools have no place
//! for them, so what Codex receives does not change.

use std::borrow::Cow;

use serde::Serialize;

use super::__private::RawAnnotations;

/// The longest tag, in bytes.
const MAX_TAG_LEN: usize = 32;

/// A skill's MCP tool annotations: a display title and four hints about its behaviour.
///
/// Each hint is an `Option<bool>`: `None` when the skill does not say (the attribute leaves the flag out),
/// `Some(true)` for the bare flag (`read_only`), `Some(false)` for `flag = false` (`open_world = false`). A
/// hint left out is reported as absent, never as `false`, because MCP gives absent hints their own defaults
/// (`readOnlyHint` false, `destructiveHint` true, `idempotentHint` false, `openWorldHint` true): a client reading
/// `false` where the skill said nothing would be told something the author never claimed.
///
/// The hints are hints: they describe the skill to people and tools and are not enforced. `destructive` and
/// `idempotent` are meaningful only for a skill that is not read-only.
///
/// Serialized, it is MCP's `ToolAnnotations` object: `title`, `readOnlyHint`, `destructiveHint`,
/// `idempotentHint`, `openWorldHint`, each left out when absent.
///
/// ```
/// use skillbridge::skill;
/// use skillbridge::skill::Catalog;
///
/// /// Reads a ticket.
/// #[skill(title = "Read a ticket", read_only, open_world = false, tags = ["tickets"])]
/// fn read_ticket(id: String) -> String {
///     id
/// }
///
/// let catalog = Catalog::from_registry().unwrap();
/// let tool = catalog.get("read_ticket").unwrap();
/// let annotations = tool.annotations();
/// assert_eq!(annotations.title(), Some("Read a ticket"));
/// assert_eq!(annotations.read_only(), Some(true));
/// assert_eq!(annotations.open_world(), Some(false));
/// assert_eq!(annotations.destructive(), None); // not said, so absent
/// assert_eq!(tool.tags(), ["tickets"]);
/// assert_eq!(
///     serde_json::to_value(annotations).unwrap(),
///     serde_json::json!({"title": "Read a ticket", "readOnlyHint": true, "openWorldHint": false}),
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<Cow<'static, str>>,
    #[serde(rename = "readOnlyHint", skip_serializing_if = "Option::is_none")]
    read_only: Option<bool>,
    #[serde(rename = "destructiveHint", skip_serializing_if = "Option::is_none")]
    destructive: Option<bool>,
    #[serde(rename = "idempotentHint", skip_serializing_if = "Option::is_none")]
    idempotent: Option<bool>,
    #[serde(rename = "openWorldHint", skip_serializing_if = "Option::is_none")]
    open_world: Option<bool>,
}

impl Annotations {
    /// No title and no hints; add them with the `with_*` methods (for a [`RuntimeSkill`](super::RuntimeSkill)).
    pub fn new() -> Self {
        Self::default()
    }

    /// The same annotations with a display title.
    pub fn with_title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The same annotations with `readOnlyHint`.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = Some(read_only);
        self
    }

    /// The same annotations with `destructiveHint`.
    pub fn with_destructive(mut self, destructive: bool) -> Self {
        self.destructive = Some(destructive);
        self
    }

    /// The same annotations with `idempotentHint`.
    pub fn with_idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// The same annotations with `openWorldHint`.
    pub fn with_open_world(mut self, open_world: bool) -> Self {
        self.open_world = Some(open_world);
        self
    }

    pub(crate) fn from_raw(raw: &RawAnnotations) -> Self {
        Self {
            title: raw.title.map(Cow::Borrowed),
            read_only: raw.read_only,
            destructive: raw.destructive,
            idempotent: raw.idempotent,
            open_world: raw.open_world,
        }
    }

    /// A human-readable title for the skill (`#[skill(title = "..")]`); the tool name stays the identifier.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// MCP `readOnlyHint`: `Some(true)` when the skill does not modify its environment.
    pub fn read_only(&self) -> Option<bool> {
        self.read_only
    }

    /// MCP `destructiveHint`: `Some(true)` when the skill may destroy or overwrite data, `Some(false)` when it
    /// only adds.
    pub fn destructive(&self) -> Option<bool> {
        self.destructive
    }

    /// MCP `idempotentHint`: `Some(true)` when calling it again with the same arguments has no further effect.
    pub fn idempotent(&self) -> Option<bool> {
        self.idempotent
    }

    /// MCP `openWorldHint`: `Some(true)` when the skill reaches an open world of outside entities (the web,
    /// other services), `Some(false)` when its domain is closed (its own data, the clock, its input).
    pub fn open_world(&self) -> Option<bool> {
        self.open_world
    }

    /// `true` when the skill gave no title and no hint.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Why these annotations contradict themselves, if they do: a read-only skill cannot be destructive.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.title.as_deref().is_some_and(|title| title.trim().is_empty()) {
            return Some("the title is empty".to_owned());
        }
        (self.read_only == Some(true) && self.destructive == Some(true))
            .then(|| "a read-only skill cannot be destructive".to_owned())
    }
}

/// `^[a-z0-9][a-z0-9_-]{0,31}$`, the tags `#[skill(tags = [..])]` accepts.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let lower_or_digit = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    (1..=MAX_TAG_LEN).contains(&bytes.len())
        && lower_or_digit(&bytes[0])
        && bytes[1..]
            .iter()
            .all(|byte| lower_or_digit(byte) || *byte == b'_' || *byte == b'-')
}

/// Why a list of tags is not valid, if it is not: a tag that breaks the rule, or one given twice.
pub(crate) fn tags_problem(tags: &[&str]) -> Option<String> {
    if let Some(bad) = tags.iter().find(|tag| !is_valid_tag(tag)) {
        return Some(format!(
            "invalid tag {bad:?}: a tag must match ^[a-z0-9][a-z0-9_-]{{0,{}}}$",
            MAX_TAG_LEN - 1
        ));
    }
    let duplicate = tags
        .iter()
        .enumerate()
        .find(|(index, tag)| tags[..*index].contains(tag));
    duplicate.map(|(_, tag)| format!("the tag {tag:?} is given twice"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tag_rule() {
        for good in ["a", "tickets", "0", "a-b_c", &"a".repeat(32)] {
            assert!(is_valid_tag(good), "{good}");
        }
        for bad in ["", "-a", "_a", "Tickets", "a b", "a.b", "é", &"a".repeat(33)] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn tag_lists_refuse_bad_and_repeated_tags() {
        assert_eq!(tags_problem(&["a", "b"]), None);
        assert_eq!(
            tags_problem(&["a", "B"]).unwrap(),
            "invalid tag \"B\": a tag must match ^[a-z0-9][a-z0-9_-]{0,31}$"
        );
        assert_eq!(tags_problem(&["a", "b", "a"]).unwrap(), "the tag \"a\" is given twice");
    }

    #[test]
    fn absent_hints_are_left_out_of_the_json() {
        assert_eq!(serde_json::to_value(Annotations::default()).unwrap(), json!({}));
        let annotations = Annotations::from_raw(&RawAnnotations {
            title: None,
            read_only: Some(false),
            destructive: Some(true),
            idempotent: None,
            open_world: Some(false),
        });
        assert_eq!(
            serde_json::to_value(&annotations).unwrap(),
            json!({"readOnlyHint": false, "destructiveHint": true, "openWorldHint": false})
        );
        assert!(!annotations.is_empty());
        assert_eq!(annotations.problem(), None);
    }

    #[test]
    fn read_only_and_destructive_contradict() {
        let raw = RawAnnotations {
            read_only: Some(true),
            destructive: Some(true),
            ..RawAnnotations::NONE
        };
        assert_eq!(
            Annotations::from_raw(&raw).problem().unwrap(),
            "a read-only skill cannot be destructive"
        );
        let raw = RawAnnotations {
            title: Some(" "),
            ..RawAnnotations::NONE
        };
        assert_eq!(Annotations::from_raw(&raw).problem().unwrap(), "the title is empty");
    }
}
