//! Catalog diff: what changed between two tool catalogs (`dynamicTools` lists), tool by tool, and whether each
//! change breaks a Codex session created with the old one.
//!
//! A session's tools are fixed when it is created, so after a rollout the model keeps calling the old tools
//! with arguments shaped by the old schemas. A change is **breaking** when such a call can now fail: the tool is
//! gone, or the new input schema refuses arguments the old one accepted. It is **compatible** when every call the
//! old schema allowed is still allowed (an optional parameter or a tool added, a bound loosened, a description
//! reworded).
//!
//! This file owns reading a tool list ([`ToolList`]), the comparison ([`diff_tools`]) and its result
//! ([`CatalogDiff`], printed as text by `Display` and as JSON by [`CatalogDiff::to_json`]). The command line's
//! `skills diff` only reads files and prints.
//!
//! The comparison walks both input schemas together, keyword by keyword, into `properties` (path `a.b`),
//! `items` (`a[]`), tuple items (`a[0]`), `additionalProperties` schemas (`a.*`) and `anyOf`/`oneOf` branches
//! (`a.anyOf[1]`). Branches are matched by what they accept rather than by position: by their `const`, else by
//! their `type` when no other branch of the list has the same one, else by their order among the branches left.
//! A removed branch is breaking, an added one compatible, and matched branches are compared like any schema. A
//! schema that gains or loses `anyOf` is compared as if it were a list of one branch (so `T` → `T | null` is one
//! compatible "branch added"). The comparison is conservative: a keyword it does not know (`not`, `allOf`,
//! `if`, ..) that changed is reported as breaking, and a removed branch is breaking even when another branch
//! happens to accept its values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value, json};

use super::Catalog;

/// Keywords that document a schema without constraining it: a change to them is always compatible.
const DOCUMENTATION_KEYWORDS: &[&str] = &[
    "description",
    "title",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$schema",
    "$id",
];

/// Bounds that refuse more values the higher they are.
const LOWER_BOUNDS: &[&str] = &["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"];

/// Bounds that refuse more values the lower they are.
const UPPER_BOUNDS: &[&str] = &["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"];

/// Keywords whose value must match exactly: adding or changing one refuses values, removing one accepts more.
const EXACT_CONSTRAINTS: &[&str] = &["const", "pattern", "format"];

/// The keywords compared in detail; any other keyword that changed is reported as [`ChangeKind::KeywordChanged`].
const COMPARED_KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "uniqueItems",
    "multipleOf",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "anyOf",
];

/// The schema that accepts every value, which a missing subschema (`items`, say) stands for.
static ANY: Value = Value::Bool(true);

/// A list of tools to compare: each tool's name, description and input schema.
///
/// Read from what `skillbridge skills --json` prints ([`ToolList::from_json`]), with or without
/// `"type": "function"` (`--flavor app-server`), or the `{"dynamicTools": [..]}` object of `--states`; or taken
/// from a [`Catalog`] ([`ToolList::from_catalog`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolList {
    tools: BTreeMap<String, ListedTool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ListedTool {
    description: String,
    input_schema: Value,
}

/// Why a JSON document is not a tool list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolListError {
    /// The document is neither an array of tools nor an object with a `dynamicTools` array.
    #[error(
        "expected a JSON array of tools, as `skills --json` prints it, or an object with a `dynamicTools` array; \
         found {found}"
    )]
    NotAList {
        /// What the document is instead.
        found: &'static str,
    },
    /// An entry of the list is not an object.
    #[error("the tool at index {index} is {found}, not an object")]
    NotATool {
        /// The entry's position in the list, from 0.
        index: usize,
        /// What it is instead.
        found: &'static str,
    },
    /// An entry has no `name` string.
    #[error("the tool at index {index} has no `name` string")]
    MissingName {
        /// The entry's position in the list, from 0.
        index: usize,
    },
    /// A tool's `inputSchema` is missing or not an object.
    #[error("tool `{name}` has no `inputSchema` object")]
    MissingInputSchema {
        /// The tool's name.
        name: String,
    },
    /// A tool's `description` is not a string.
    #[error("tool `{name}` has a `description` that is not a string")]
    DescriptionNotText {
        /// The tool's name.
        name: String,
    },
    /// Two entries have the same name.
    #[error("tool `{name}` is listed twice")]
    Duplicate {
        /// The tool's name.
        name: String,
    },
}

impl ToolList {
    /// Reads a tool list: an array of `{name, description, inputSchema}` objects (other keys, such as
    /// `"type": "function"`, are ignored), or an object whose `dynamicTools` key holds one. A missing
    /// `description` reads as empty.
    pub fn from_json(document: &Value) -> Result<Self, ToolListError> {
        let entries = match document {
            Value::Array(entries) => entries,
            Value::Object(object) => match object.get("dynamicTools") {
                Some(Value::Array(entries)) => entries,
                _ => {
                    return Err(ToolListError::NotAList {
                        found: "an object without a `dynamicTools` array",
                    });
                }
            },
            other => {
                return Err(ToolListError::NotAList {
                    found: json_kind(other),
                });
            }
        };
        let mut tools = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let Value::Object(entry) = entry else {
                return Err(ToolListError::NotATool {
                    index,
                    found: json_kind(entry),
                });
            };
            let Some(Value::String(name)) = entry.get("name") else {
                return Err(ToolListError::MissingName { index });
            };
            let description = match entry.get("description") {
                None => String::new(),
                Some(Value::String(description)) => description.clone(),
                Some(_) => return Err(ToolListError::DescriptionNotText { name: name.clone() }),
            };
            let input_schema = match entry.get("inputSchema") {
                Some(schema @ Value::Object(_)) => schema.clone(),
                _ => return Err(ToolListError::MissingInputSchema { name: name.clone() }),
            };
            let tool = ListedTool {
                description,
                input_schema,
            };
            if tools.insert(name.clone(), tool).is_some() {
                return Err(ToolListError::Duplicate { name: name.clone() });
            }
        }
        Ok(Self { tools })
    }

    /// The tools of `catalog`, as its `dynamicTools` payload announces them.
    pub fn from_catalog(catalog: &Catalog) -> Self {
        let tools = catalog.iter().map(|skill| {
            let tool = ListedTool {
                description: skill.description().to_owned(),
                input_schema: skill.input_schema().clone(),
            };
            (skill.name().to_owned(), tool)
        });
        Self { tools: tools.collect() }
    }

    /// How many tools the list has.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// `true` when the list has no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tool names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }
}

/// What changed from one catalog to the next: the tools that differ, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogDiff {
    /// The tools added, removed or changed, sorted by name; tools that did not change are not listed.
    pub tools: Vec<ToolDiff>,
}

/// One tool that differs between the catalogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDiff {
    /// The tool's name.
    pub name: String,
    /// Whether it was added, removed or changed.
    pub status: ToolStatus,
    /// For a removed tool, the added tool with the same input schema (and the reverse): likely the same tool
    /// renamed, which sessions created with the old catalog still call by its old name.
    pub likely_rename: Option<String>,
    /// What changed; for an added or removed tool, that one fact.
    pub changes: Vec<Change>,
}

/// Whether a tool is new, gone, or in both catalogs with differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolStatus {
    /// Only in the new catalog.
    Added,
    /// Only in the old catalog.
    Removed,
    /// In both, with differences.
    Changed,
}

/// One difference, at one place of a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where in the arguments: `limit`, `filter.since`, `tags[]`, `status.anyOf[1]`; empty for the tool itself
    /// and its input schema's root.
    pub path: String,
    /// What kind of change it is.
    pub kind: ChangeKind,
    /// Whether a session created with the old catalog can now fail: a call it makes, valid before, is refused.
    pub breaking: bool,
    /// The change in words, e.g. `maximum lowered from 50 to 20`.
    pub message: String,
}

/// The kinds of change [`diff_tools`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A tool only the new catalog has (compatible).
    ToolAdded,
    /// A tool only the old catalog has, or renamed (breaking).
    ToolRemoved,
    /// A tool's or a schema's `description` changed (compatible).
    DescriptionChanged,
    /// Another documentation keyword changed: `title`, `default`, `examples`, .. (compatible).
    AnnotationChanged,
    /// An optional parameter (or property of a nested object) added (compatible).
    ParameterAdded,
    /// A required parameter added (breaking).
    RequiredParameterAdded,
    /// A parameter removed: breaking when the new schema refuses it (`additionalProperties: false`), compatible
    /// when it is still accepted.
    ParameterRemoved,
    /// An optional parameter made required (breaking).
    MadeRequired,
    /// A required parameter made optional (compatible).
    MadeOptional,
    /// Values of a type the old schema accepted are refused: `["string","null"]` → `string`, `number` →
    /// `integer` (breaking).
    TypeNarrowed,
    /// Only more types are accepted: `integer` → `number`, `string` → `["string","null"]` (compatible).
    TypeWidened,
    /// A value removed from an `enum` (breaking).
    EnumValueRemoved,
    /// A value added to an `enum` (compatible).
    EnumValueAdded,
    /// A bound raised or lowered so that fewer values pass, or a constraint added or changed: `minimum`,
    /// `maxLength`, `pattern`, `format`, `const`, `enum`, `uniqueItems`, `multipleOf`, a tuple element (breaking).
    ConstraintTightened,
    /// A bound moved so that more values pass, or a constraint removed (compatible).
    ConstraintLoosened,
    /// `additionalProperties` closed (`false`) or restricted to a schema: properties not listed are refused
    /// (breaking).
    AdditionalPropertiesClosed,
    /// `additionalProperties` opened (compatible).
    AdditionalPropertiesOpened,
    /// An `anyOf`/`oneOf` branch removed (breaking).
    BranchRemoved,
    /// An `anyOf`/`oneOf` branch added (compatible).
    BranchAdded,
    /// A keyword the comparison does not analyse (`not`, `allOf`, `if`, ..) changed; assumed breaking.
    KeywordChanged,
}

/// Compares two catalogs as a session created with `old` would see `new`.
///
/// ```
/// use serde_json::json;
/// use skillbridge::skill::{ToolList, diff_tools};
///
/// let old = ToolList::from_json(&json!([{
///     "name": "search",
///     "description": "Searches tickets.",
///     "inputSchema": {"type": "object", "properties": {"limit": {"type": "integer", "maximum": 50}}}
/// }]))?;
/// let new = ToolList::from_json(&json!([{
///     "name": "search",
///     "description": "Searches tickets.",
///     "inputSchema": {"type": "object", "properties": {"limit": {"type": "integer", "maximum": 20}}}
/// }]))?;
///
/// let diff = diff_tools(&old, &new);
/// assert!(diff.is_breaking());
/// assert_eq!(diff.tools[0].changes[0].path, "limit");
/// assert_eq!(diff.tools[0].changes[0].message, "maximum lowered from 50 to 20");
/// assert!(diff.to_string().starts_with("search\n  breaking    limit: maximum lowered from 50 to 20\n"));
/// assert_eq!(diff.to_json()["breaking"], true);
/// # Ok::<(), skillbridge::skill::ToolListError>(())
/// ```
pub fn diff_tools(old: &ToolList, new: &ToolList) -> CatalogDiff {
    let names: BTreeSet<&String> = old.tools.keys().chain(new.tools.keys()).collect();
    let same_schema = |tool: &ListedTool, others: &ToolList, other_side: &ToolList| {
        others
            .tools
            .iter()
            .find(|(name, other)| !other_side.tools.contains_key(*name) && other.input_schema == tool.input_schema)
            .map(|(name, _)| name.clone())
    };
    let mut tools = Vec::new();
    for name in names {
        let tool = match (old.tools.get(name), new.tools.get(name)) {
            (Some(before), None) => {
                let likely_rename = same_schema(before, new, old);
                let message = match &likely_rename {
                    Some(renamed) => format!("tool removed; likely renamed to `{renamed}` (same input schema)"),
                    None => "tool removed".to_owned(),
                };
                ToolDiff {
                    name: name.clone(),
                    status: ToolStatus::Removed,
                    likely_rename,
                    changes: vec![Change::new("", ChangeKind::ToolRemoved, true, message)],
                }
            }
            (None, Some(after)) => {
                let likely_rename = same_schema(after, old, new);
                let message = match &likely_rename {
                    Some(renamed) => format!("tool added; likely `{renamed}` renamed (same input schema)"),
                    None => "tool added".to_owned(),
                };
                ToolDiff {
                    name: name.clone(),
                    status: ToolStatus::Added,
                    likely_rename,
                    changes: vec![Change::new("", ChangeKind::ToolAdded, false, message)],
                }
            }
            (Some(before), Some(after)) => {
                let mut differ = Differ::default();
                if before.description != after.description {
                    differ.compatible("", ChangeKind::DescriptionChanged, "description changed".to_owned());
                }
                differ.schema("", &before.input_schema, &after.input_schema);
                if differ.changes.is_empty() {
                    continue;
                }
                ToolDiff {
                    name: name.clone(),
                    status: ToolStatus::Changed,
                    likely_rename: None,
                    changes: differ.changes,
                }
            }
            (None, None) => continue,
        };
        tools.push(tool);
    }
    CatalogDiff { tools }
}

impl CatalogDiff {
    /// `true` when any change is breaking.
    pub fn is_breaking(&self) -> bool {
        self.tools.iter().any(ToolDiff::is_breaking)
    }

    /// `true` when the catalogs offer the same tools with the same descriptions and schemas.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The machine form: `{"breaking": bool, "tools": [{"name", "status": "added"|"removed"|"changed",
    /// "breaking", "likelyRename": name|null, "changes": [{"path", "kind", "breaking", "message"}]}]}`, with
    /// `kind` one of [`ChangeKind::as_str`].
    pub fn to_json(&self) -> Value {
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|tool| {
                let changes: Vec<Value> = tool
                    .changes
                    .iter()
                    .map(|change| {
                        json!({
                            "path": change.path,
                            "kind": change.kind.as_str(),
                            "breaking": change.breaking,
                            "message": change.message,
                        })
                    })
                    .collect();
                json!({
                    "name": tool.name,
                    "status": tool.status.as_str(),
                    "breaking": tool.is_breaking(),
                    "likelyRename": tool.likely_rename,
                    "changes": changes,
                })
            })
            .collect();
        json!({"breaking": self.is_breaking(), "tools": tools})
    }

    /// The last line of the text report: how many tools differ, how many changes break, and the verdict.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no changes".to_owned();
        }
        let count = |status| self.tools.iter().filter(|tool| tool.status == status).count();
        let changes = self.tools.iter().flat_map(|tool| &tool.changes);
        let breaking = changes.clone().filter(|change| change.breaking).count();
        let compatible = changes.count() - breaking;
        let verdict = if breaking > 0 {
            "BREAKING for sessions created with the old catalog"
        } else {
            "compatible with sessions created with the old catalog"
        };
        format!(
            "{} ({} changed, {} removed, {} added): {breaking} breaking, {compatible} compatible; {verdict}",
            plural(self.tools.len(), "tool differs", "tools differ"),
            count(ToolStatus::Changed),
            count(ToolStatus::Removed),
            count(ToolStatus::Added),
        )
    }
}

/// The text report: per tool its changes, each with its verdict, then [`CatalogDiff::summary`].
impl fmt::Display for CatalogDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for tool in &self.tools {
            let verdict = |breaking: bool| if breaking { "breaking" } else { "compatible" };
            if tool.status == ToolStatus::Changed {
                writeln!(f, "{}", tool.name)?;
                for change in &tool.changes {
                    let place = if change.path.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", change.path)
                    };
                    writeln!(f, "  {:<12}{place}{}", verdict(change.breaking), change.message)?;
                }
                continue;
            }
            write!(
                f,
                "{} ({})  {}",
                tool.name,
                tool.status.as_str(),
                verdict(tool.is_breaking())
            )?;
            match (&tool.likely_rename, tool.status) {
                (Some(renamed), ToolStatus::Removed) => writeln!(f, "  (likely renamed to {renamed})")?,
                (Some(renamed), _) => writeln!(f, "  (likely {renamed} renamed)")?,
                (None, _) => writeln!(f)?,
            }
        }
        if !self.is_empty() {
            writeln!(f)?;
        }
        write!(f, "{}", self.summary())?;
        if self.tools.iter().any(|tool| tool.status == ToolStatus::Removed) {
            write!(
                f,
                "\nnote: a renamed tool shows as removed + added; sessions created with the old catalog still call it \
                 by its old name"
            )?;
        }
        Ok(())
    }
}

impl ToolDiff {
    /// `true` when any of its changes is breaking.
    pub fn is_breaking(&self) -> bool {
        self.changes.iter().any(|change| change.breaking)
    }
}

impl ToolStatus {
    /// `added`, `removed` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolStatus::Added => "added",
            ToolStatus::Removed => "removed",
            ToolStatus::Changed => "changed",
        }
    }
}

impl ChangeKind {
    /// The kind in snake case, as `--json` prints it: `tool_removed`, `constraint_tightened`, ..
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::ToolAdded => "tool_added",
            ChangeKind::ToolRemoved => "tool_removed",
            ChangeKind::DescriptionChanged => "description_changed",
            ChangeKind::AnnotationChanged => "annotation_changed",
            ChangeKind::ParameterAdded => "parameter_added",
            ChangeKind::RequiredParameterAdded => "required_parameter_added",
            ChangeKind::ParameterRemoved => "parameter_removed",
            ChangeKind::MadeRequired => "made_required",
            ChangeKind::MadeOptional => "made_optional",
            ChangeKind::TypeNarrowed => "type_narrowed",
            ChangeKind::TypeWidened => "type_widened",
            ChangeKind::EnumValueRemoved => "enum_value_removed",
            ChangeKind::EnumValueAdded => "enum_value_added",
            ChangeKind::ConstraintTightened => "constraint_tightened",
            ChangeKind::ConstraintLoosened => "constraint_loosened",
            ChangeKind::AdditionalPropertiesClosed => "additional_properties_closed",
            ChangeKind::AdditionalPropertiesOpened => "additional_properties_opened",
            ChangeKind::BranchRemoved => "branch_removed",
            ChangeKind::BranchAdded => "branch_added",
            ChangeKind::KeywordChanged => "keyword_changed",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Change {
    fn new(path: &str, kind: ChangeKind, breaking: bool, message: String) -> Self {
        Self {
            path: path.to_owned(),
            kind,
            breaking,
            message,
        }
    }
}

/// Which side of a branch comparison was a plain schema, compared as a list of one branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifted {
    Neither,
    Old,
    New,
}

/// An `anyOf` or `oneOf` list.
struct Branches {
    keyword: &'static str,
    list: Vec<Value>,
}

/// What a schema says about properties it does not list.
enum Additional<'a> {
    /// Absent or `true`: accepted.
    Open,
    /// `false`: refused.
    Closed,
    /// Accepted when they match this schema.
    Schema(&'a Value),
}

/// Walks two schemas together and collects the changes.
#[derive(Default)]
struct Differ {
    changes: Vec<Change>,
}

impl Differ {
    fn breaking(&mut self, path: &str, kind: ChangeKind, message: String) {
        self.changes.push(Change::new(path, kind, true, message));
    }

    fn compatible(&mut self, path: &str, kind: ChangeKind, message: String) {
        self.changes.push(Change::new(path, kind, false, message));
    }

    /// `true` when comparing `old` with `new` at `path` finds a breaking change (nothing is recorded).
    fn would_break(path: &str, old: &Value, new: &Value) -> bool {
        let mut probe = Differ::default();
        probe.schema(path, old, new);
        probe.changes.iter().any(|change| change.breaking)
    }

    fn schema(&mut self, path: &str, old: &Value, new: &Value) {
        if old == new {
            return;
        }
        let (old_map, new_map) = match (schema_map(old), schema_map(new)) {
            (Some(old_map), Some(new_map)) => (old_map, new_map),
            _ => return self.not_both_objects(path, old, new),
        };
        self.documentation(path, &old_map, &new_map);
        match (branches(&old_map), branches(&new_map)) {
            (None, None) => self.constraints(path, &old_map, &new_map),
            (Some(old_branches), Some(new_branches)) => {
                self.constraints(path, &old_map, &new_map);
                self.branch_lists(path, old_branches, new_branches, Lifted::Neither);
            }
            (None, Some(new_branches)) => {
                let lifted = single_branch(&old_map, new_branches.keyword);
                self.lifted(path, lifted, effective_branches(&new_map, new_branches), Lifted::Old);
            }
            (Some(old_branches), None) => {
                let lifted = single_branch(&new_map, old_branches.keyword);
                self.lifted(path, effective_branches(&old_map, old_branches), lifted, Lifted::New);
            }
        }
    }

    /// Boolean schemas (`false` refuses everything) and values that are not schemas at all.
    fn not_both_objects(&mut self, path: &str, old: &Value, new: &Value) {
        match (old, new) {
            (Value::Bool(false), _) => self.compatible(
                path,
                ChangeKind::ConstraintLoosened,
                format!(
                    "accepts values now (was the schema `false`, which refuses all); now {}",
                    compact(new)
                ),
            ),
            (_, Value::Bool(false)) => self.breaking(
                path,
                ChangeKind::ConstraintTightened,
                "refuses every value now (the schema `false`)".to_owned(),
            ),
            _ => self.breaking(
                path,
                ChangeKind::KeywordChanged,
                format!(
                    "schema changed from {} to {} (not a schema object; assumed breaking)",
                    compact(old),
                    compact(new)
                ),
            ),
        }
    }

    fn documentation(&mut self, path: &str, old: &Map<String, Value>, new: &Map<String, Value>) {
        for &keyword in DOCUMENTATION_KEYWORDS {
            if old.get(keyword) == new.get(keyword) {
                continue;
            }
            let kind = if keyword == "description" {
                ChangeKind::DescriptionChanged
            } else {
                ChangeKind::AnnotationChanged
            };
            let message = if path.is_empty() {
                format!("input schema {keyword} changed")
            } else {
                format!("{keyword} changed")
            };
            self.compatible(path, kind, message);
        }
    }

    /// Every keyword but the documentation and the `anyOf`/`oneOf` branches.
    fn constraints(&mut self, path: &str, old: &Map<String, Value>, new: &Map<String, Value>) {
        self.types(path, old, new);
        self.enums(path, old.get("enum"), new.get("enum"));
        for &keyword in EXACT_CONSTRAINTS {
            self.exact(path, keyword, old.get(keyword), new.get(keyword));
        }
        for &keyword in LOWER_BOUNDS {
            self.bound(path, keyword, old.get(keyword), new.get(keyword), true);
        }
        for &keyword in UPPER_BOUNDS {
            self.bound(path, keyword, old.get(keyword), new.get(keyword), false);
        }
        self.unique_items(path, old.get("uniqueItems"), new.get("uniqueItems"));
        self.multiple_of(path, old.get("multipleOf"), new.get("multipleOf"));
        self.object(path, old, new);
        self.array(path, old, new);
        self.other_keywords(path, old, new);
    }

    fn types(&mut self, path: &str, old: &Map<String, Value>, new: &Map<String, Value>) {
        // Types known only from the branches on both sides are compared with the branches.
        if !old.contains_key("type") && !new.contains_key("type") {
            return;
        }
        let (old_types, new_types) = (type_set(old), type_set(new));
        if old_types == new_types {
            return;
        }
        let shown = format!(
            "from {} to {}",
            show_types(old_types.as_deref()),
            show_types(new_types.as_deref())
        );
        let covered = |kind: &String, by: &Option<Vec<String>>| match by {
            None => true,
            Some(by) => by.contains(kind) || kind == "integer" && by.iter().any(|other| other == "number"),
        };
        let lost = match &old_types {
            None => true,
            Some(old_types) => old_types.iter().any(|kind| !covered(kind, &new_types)),
        };
        let gained = match &new_types {
            None => true,
            Some(new_types) => new_types.iter().any(|kind| !covered(kind, &old_types)),
        };
        match (lost, gained) {
            (true, true) => self.breaking(path, ChangeKind::TypeNarrowed, format!("type changed {shown}")),
            (true, false) => self.breaking(path, ChangeKind::TypeNarrowed, format!("type narrowed {shown}")),
            (false, true) => self.compatible(path, ChangeKind::TypeWidened, format!("type widened {shown}")),
            // The same types, spelled differently (`["string","null"]` and `["null","string"]`).
            (false, false) => {}
        }
    }

    fn enums(&mut self, path: &str, old: Option<&Value>, new: Option<&Value>) {
        match (old, new) {
            (None, None) => {}
            (None, Some(new)) => self.breaking(
                path,
                ChangeKind::ConstraintTightened,
                format!("enum added: only {} accepted", compact(new)),
            ),
            (Some(old), None) => self.compatible(
                path,
                ChangeKind::ConstraintLoosened,
                format!("enum {} removed: any value of the type accepted", compact(old)),
            ),
            (Some(Value::Array(old)), Some(Value::Array(new))) => {
                let removed: Vec<&Value> = old.iter().filter(|value| !new.contains(value)).collect();
                let added: Vec<&Value> = new.iter().filter(|value| !old.contains(value)).collect();
                if !removed.is_empty() {
                    self.breaking(path, ChangeKind::EnumValueRemoved, enum_message(&removed, "removed"));
                }
                if !added.is_empty() {
                    self.compatible(path, ChangeKind::EnumValueAdded, enum_message(&added, "added"));
                }
            }
            (Some(old), Some(new)) => self.keyword_changed(path, "enum", old, new),
        }
    }

    /// `const`, `pattern`, `format`: added or changed is breaking, removed compatible.
    fn exact(&mut self, path: &str, keyword: &str, old: Option<&Value>, new: Option<&Value>) {
        match (old, new) {
            (Some(old), Some(new)) if old == new => {}
            (None, None) => {}
            (None, Some(new)) => self.breaking(
                path,
                ChangeKind::ConstraintTightened,
                format!("{keyword} {} added", compact(new)),
            ),
            (Some(old), None) => self.compatible(
                path,
                ChangeKind::ConstraintLoosened,
                format!("{keyword} {} removed", compact(old)),
            ),
            (Some(old), Some(new)) => self.breaking(
                path,
                ChangeKind::ConstraintTightened,
                format!("{keyword} changed from {} to {}", compact(old), compact(new)),
            ),
        }
    }

    /// A numeric bound; `lower` when raising it refuses more values (`minimum`), otherwise lowering does.
    fn bound(&mut self, path: &str, keyword: &str, old: Option<&Value>, new: Option<&Value>, lower: bool) {
        match (old, new) {
            (None, None) => {}
            (Some(old), Some(new)) if old == new => {}
            (None, Some(new)) => self.breaking(
                path,
                ChangeKind::ConstraintTightened,
                format!("{keyword} {} added", compact(new)),
            ),
            (Some(old), None) => self.compatible(
                path,
                ChangeKind::ConstraintLoosened,
                format!("{keyword} {} removed", compact(old)),
            ),
            (Some(old_value), Some(new_value)) => match (old_value.as_f64(), new_value.as_f64()) {
                (Some(before), Some(after)) if before == after => {}
                (Some(before), Some(after)) => {
                    let raised = after > before;
                    let verb = if raised { "raised" } else { "lowered" };
                    let message = format!("{keyword} {verb} from {old_value} to {new_value}");
                    if raised == lower {
                        self.breaking(path, ChangeKind::ConstraintTightened, message);
                    } else {
                        self.compatible(path, ChangeKind::ConstraintLoosened, message);
                    }
                }
                // Draft 4's boolean `exclusiveMinimum`, or a value that is not a number.
                _ => self.keyword_changed(path, keyword, old_value, new_value),
            },
        }
    }

    fn unique_items(&mut self, path: &str, old: Option<&Value>, new: Option<&Value>) {
        let (before, after) = (old == Some(&Value::Bool(true)), new == Some(&Value::Bool(true)));
        match (before, after) {
            (false, true) => self.breaking(path, ChangeKind::ConstraintTightened, "uniqueItems added".to_owned()),
            (true, false) => self.compatible(path, ChangeKind::ConstraintLoosened, "uniqueItems removed".to_owned()),
            _ => {}
        }
    }

    fn multiple_of(&mut self, path: &str, old: Option<&Value>, new: Option<&Value>) {
        match (old, new) {
            (None, None) => {}
            (Some(old), Some(new)) if old == new => {}
            (None, Some(new)) => {
                self.breaking(path, ChangeKind::ConstraintTightened, format!("multipleOf {new} added"))
            }
            (Some(old), None) => self.compatible(
                path,
                ChangeKind::ConstraintLoosened,
                format!("multipleOf {old} removed"),
            ),
            (Some(old), Some(new)) => {
                let message = format!("multipleOf changed from {old} to {new}");
                // Every multiple of 4 is a multiple of 2: a new divisor that divides the old one accepts more.
                let divides = match (old.as_f64(), new.as_f64()) {
                    (Some(before), Some(after)) if after != 0.0 => {
                        let quotient = before / after;
                        quotient != 0.0 && (quotient - quotient.round()).abs() < 1e-9
                    }
                    _ => false,
                };
                if divides {
                    self.compatible(path, ChangeKind::ConstraintLoosened, message);
                } else {
                    self.breaking(path, ChangeKind::ConstraintTightened, message);
                }
            }
        }
    }

    /// `properties`, `required` and `additionalProperties`.
    fn object(&mut self, path: &str, old: &Map<String, Value>, new: &Map<String, Value>) {
        let properties = |schema: &Map<String, Value>| schema.get("properties").and_then(Value::as_object).cloned();
        let (old_properties, new_properties) =
            (properties(old).unwrap_or_default(), properties(new).unwrap_or_default());
        let (old_required, new_required) = (required(old), required(new));
        let new_additional = additional(new);
        self.additional_properties(path, &additional(old), &new_additional);
        let word = if path.is_empty() { "parameter" } else { "property" };
        let names: BTreeSet<&str> = old_properties
            .keys()
            .chain(new_properties.keys())
            .map(String::as_str)
            .chain(old_required.iter().copied())
            .chain(new_required.iter().copied())
            .collect();
        for name in names {
            let child = child_path(path, name);
            let (was_required, is_required) = (old_required.contains(name), new_required.contains(name));
            match (old_properties.get(name), new_properties.get(name)) {
                (None, Some(_)) if is_required => {
                    self.breaking(
                        &child,
                        ChangeKind::RequiredParameterAdded,
                        format!("required {word} added"),
                    );
                    continue;
                }
                (None, Some(_)) => {
                    self.compatible(&child, ChangeKind::ParameterAdded, format!("optional {word} added"));
                    continue;
                }
                (Some(old_schema), None) => {
                    let refused = match &new_additional {
                        Additional::Open => None,
                        Additional::Closed => Some("additionalProperties is false"),
                        Additional::Schema(rest) => Self::would_break(&child, old_schema, rest)
                            .then_some("its old values do not all match additionalProperties"),
                    };
                    match refused {
                        Some(why) => self.breaking(
                            &child,
                            ChangeKind::ParameterRemoved,
                            format!("{word} removed, and refused now: {why}"),
                        ),
                        None => self.compatible(
                            &child,
                            ChangeKind::ParameterRemoved,
                            format!("{word} removed; still accepted (additionalProperties is not false)"),
                        ),
                    }
                    continue;
                }
                (Some(old_schema), Some(new_schema)) => self.schema(&child, old_schema, new_schema),
                // Named only by `required`, without a schema.
                (None, None) => {}
            }
            match (was_required, is_required) {
                (false, true) => self.breaking(
                    &child,
                    ChangeKind::MadeRequired,
                    format!("optional {word} made required"),
                ),
                (true, false) => self.compatible(
                    &child,
                    ChangeKind::MadeOptional,
                    format!("required {word} made optional"),
                ),
                _ => {}
            }
        }
    }

    fn additional_properties(&mut self, path: &str, old: &Additional<'_>, new: &Additional<'_>) {
        match (old, new) {
            (Additional::Open, Additional::Open) | (Additional::Closed, Additional::Closed) => {}
            (Additional::Schema(old), Additional::Schema(new)) => self.schema(&child_path(path, "*"), old, new),
            (Additional::Open | Additional::Schema(_), Additional::Closed) => self.breaking(
                path,
                ChangeKind::AdditionalPropertiesClosed,
                "additionalProperties closed: properties not listed are refused now".to_owned(),
            ),
            (Additional::Open, Additional::Schema(_)) => self.breaking(
                path,
                ChangeKind::AdditionalPropertiesClosed,
                "additionalProperties restricted: properties not listed must match its schema now".to_owned(),
            ),
            (Additional::Closed | Additional::Schema(_), Additional::Open) => self.compatible(
                path,
                ChangeKind::AdditionalPropertiesOpened,
                "additionalProperties opened: properties not listed are accepted".to_owned(),
            ),
            (Additional::Closed, Additional::Schema(_)) => self.compatible(
                path,
                ChangeKind::AdditionalPropertiesOpened,
                "additionalProperties opened to a schema: properties not listed are accepted when they match it"
                    .to_owned(),
            ),
        }
    }

    /// `items` (one schema for every element, `a[]`) and tuples (`prefixItems`, draft 7's array `items`, `a[0]`).
    fn array(&mut self, path: &str, old: &Map<String, Value>, new: &Map<String, Value>) {
        match (old.get("items"), new.get("items")) {
            (None, None) => {}
            (Some(Value::Array(old)), Some(Value::Array(new))) => self.tuple(path, old, new),
            // One side a tuple, the other one schema for every element: not compared element by element.
            (old @ Some(Value::Array(_)), new) | (old, new @ Some(Value::Array(_))) => {
                self.keyword_changed(path, "items", old.unwrap_or(&ANY), new.unwrap_or(&ANY))
            }
            (old, new) => self.schema(&format!("{path}[]"), old.unwrap_or(&ANY), new.unwrap_or(&ANY)),
        }
        match (old.get("prefixItems"), new.get("prefixItems")) {
            (None, None) => {}
            (old, new) => {
                let as_list = |value: Option<&Value>| match value {
                    Some(Value::Array(list)) => list.clone(),
                    _ => Vec::new(),
                };
                self.tuple(path, &as_list(old), &as_list(new));
            }
        }
    }

    fn tuple(&mut self, path: &str, old: &[Value], new: &[Value]) {
        for index in 0..old.len().max(new.len()) {
            let element = format!("{path}[{index}]");
            match (old.get(index), new.get(index)) {
                (Some(old), Some(new)) => self.schema(&element, old, new),
                (None, Some(_)) => self.breaking(
                    &element,
                    ChangeKind::ConstraintTightened,
                    "tuple element added".to_owned(),
                ),
                (Some(_), None) => self.compatible(
                    &element,
                    ChangeKind::ConstraintLoosened,
                    "tuple element removed".to_owned(),
                ),
                (None, None) => {}
            }
        }
    }

    /// Keywords the walk does not analyse: any change is assumed breaking.
    fn other_keywords(&mut self, path: &str, old: &Map<String, Value>, new: &Map<String, Value>) {
        // `oneOf` is compared as the branch list unless the schema also has `anyOf` (then it is left to this).
        let both_lists = |schema: &Map<String, Value>| schema.contains_key("anyOf") && schema.contains_key("oneOf");
        let keywords: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for keyword in keywords {
            let keyword = keyword.as_str();
            let compared = COMPARED_KEYWORDS.contains(&keyword)
                || DOCUMENTATION_KEYWORDS.contains(&keyword)
                || EXACT_CONSTRAINTS.contains(&keyword)
                || LOWER_BOUNDS.contains(&keyword)
                || UPPER_BOUNDS.contains(&keyword)
                || keyword == "oneOf" && !both_lists(old) && !both_lists(new);
            if compared {
                continue;
            }
            let (before, after) = (old.get(keyword), new.get(keyword));
            if before != after {
                self.keyword_changed(
                    path,
                    keyword,
                    before.unwrap_or(&Value::Null),
                    after.unwrap_or(&Value::Null),
                );
            }
        }
    }

    fn keyword_changed(&mut self, path: &str, keyword: &str, old: &Value, new: &Value) {
        self.breaking(
            path,
            ChangeKind::KeywordChanged,
            format!(
                "{keyword} changed from {} to {} (not analysed; assumed breaking)",
                compact(old),
                compact(new)
            ),
        );
    }

    /// A plain schema against a branch list: compared as a list of one branch, unless it accepts any value.
    fn lifted(&mut self, path: &str, old: Branches, new: Branches, lifted: Lifted) {
        let keyword = if lifted == Lifted::Old {
            new.keyword
        } else {
            old.keyword
        };
        let accepts_anything = |branches: &Branches| branches.list == [Value::Object(Map::new())];
        if lifted == Lifted::Old && accepts_anything(&old) {
            return self.breaking(
                path,
                ChangeKind::ConstraintTightened,
                format!(
                    "{keyword} added: values must match one of its {} branches now",
                    new.list.len()
                ),
            );
        }
        if lifted == Lifted::New && accepts_anything(&new) {
            return self.compatible(
                path,
                ChangeKind::ConstraintLoosened,
                format!("{keyword} removed: any value is accepted now"),
            );
        }
        self.branch_lists(path, old, new, lifted);
    }

    fn branch_lists(&mut self, path: &str, old: Branches, new: Branches, lifted: Lifted) {
        match (old.keyword, new.keyword) {
            ("oneOf", "anyOf") if lifted == Lifted::Neither => self.compatible(
                path,
                ChangeKind::ConstraintLoosened,
                "oneOf became anyOf: a value may match several branches".to_owned(),
            ),
            ("anyOf", "oneOf") if lifted == Lifted::Neither => self.breaking(
                path,
                ChangeKind::ConstraintTightened,
                "anyOf became oneOf: a value matching several branches is refused".to_owned(),
            ),
            _ => {}
        }
        let old_keys = branch_keys(&old.list);
        let new_keys = branch_keys(&new.list);
        let branch_path = |keyword: &str, index: usize| child_path(path, &format!("{keyword}[{index}]"));
        for (old_index, key) in old_keys.iter().enumerate() {
            let old_branch = &old.list[old_index];
            match new_keys.iter().position(|other| other == key) {
                Some(new_index) => {
                    let at = match lifted {
                        Lifted::New => branch_path(old.keyword, old_index),
                        Lifted::Neither | Lifted::Old => branch_path(new.keyword, new_index),
                    };
                    self.schema(&at, old_branch, &new.list[new_index]);
                }
                None => {
                    let what = describe_branch(old_branch, key);
                    if lifted == Lifted::Old {
                        let message = match what {
                            Some(what) => {
                                format!("now {} with no branch for {what}: such values are refused", new.keyword)
                            }
                            None => format!(
                                "now {} with no branch like the old schema: its values may be refused",
                                new.keyword
                            ),
                        };
                        self.breaking(path, ChangeKind::BranchRemoved, message);
                    } else {
                        let message = match what {
                            Some(what) => format!("{} branch removed: {what}", old.keyword),
                            None => format!("{} branch removed", old.keyword),
                        };
                        self.breaking(&branch_path(old.keyword, old_index), ChangeKind::BranchRemoved, message);
                    }
                }
            }
        }
        for (new_index, key) in new_keys.iter().enumerate() {
            if old_keys.contains(key) {
                continue;
            }
            let what = describe_branch(&new.list[new_index], key);
            if lifted == Lifted::New {
                let message = match what {
                    Some(what) => format!("{} replaced by one schema, which also accepts {what}", old.keyword),
                    None => format!("{} replaced by one schema, unlike any of its branches", old.keyword),
                };
                self.compatible(path, ChangeKind::BranchAdded, message);
            } else {
                let message = match what {
                    Some(what) => format!("{} branch added: {what}", new.keyword),
                    None => format!("{} branch added", new.keyword),
                };
                self.compatible(&branch_path(new.keyword, new_index), ChangeKind::BranchAdded, message);
            }
        }
    }
}

/// A schema as an object: `true` is the empty schema; `None` for `false` and for values that are not schemas.
fn schema_map(schema: &Value) -> Option<Map<String, Value>> {
    match schema {
        Value::Object(map) => Some(map.clone()),
        Value::Bool(true) => Some(Map::new()),
        _ => None,
    }
}

/// The schema's `anyOf` list, else its `oneOf` list.
fn branches(schema: &Map<String, Value>) -> Option<Branches> {
    ["anyOf", "oneOf"]
        .into_iter()
        .find_map(|keyword| match schema.get(keyword) {
            Some(Value::Array(list)) => Some(Branches {
                keyword,
                list: list.clone(),
            }),
            _ => None,
        })
}

/// `schema` as a list of one branch: its constraints, without its documentation.
fn single_branch(schema: &Map<String, Value>, keyword: &'static str) -> Branches {
    Branches {
        keyword,
        list: vec![Value::Object(without_documentation(schema))],
    }
}

/// The branches as they apply: each with the constraints of the schema around it (the branch's own keywords
/// win; an approximation of "both hold"), without documentation.
fn effective_branches(schema: &Map<String, Value>, branches: Branches) -> Branches {
    let mut around = without_documentation(schema);
    around.remove("anyOf");
    around.remove("oneOf");
    let list = branches
        .list
        .into_iter()
        .map(|branch| match branch {
            Value::Object(branch) => {
                let mut merged = around.clone();
                merged.extend(without_documentation(&branch));
                Value::Object(merged)
            }
            Value::Bool(true) => Value::Object(around.clone()),
            other => other,
        })
        .collect();
    Branches {
        keyword: branches.keyword,
        list,
    }
}

fn without_documentation(schema: &Map<String, Value>) -> Map<String, Value> {
    let mut schema = schema.clone();
    schema.retain(|keyword, _| !DOCUMENTATION_KEYWORDS.contains(&keyword.as_str()));
    schema
}

/// What matches a branch with its counterpart: `const:<value>`, else `type:<type>` when no other branch of the
/// list has that type, else `position:<n>`, its order among the branches with neither.
fn branch_keys(list: &[Value]) -> Vec<String> {
    let identity = |branch: &Value| {
        let branch = branch.as_object()?;
        match (branch.get("const"), branch.get("type")) {
            (Some(value), _) => Some(format!("const:{value}")),
            (None, Some(kind)) => Some(format!("type:{kind}")),
            (None, None) => None,
        }
    };
    let identities: Vec<Option<String>> = list.iter().map(identity).collect();
    let mut unkeyed = 0;
    identities
        .iter()
        .map(|identity| match identity {
            Some(key) if identities.iter().filter(|other| other.as_ref() == Some(key)).count() == 1 => key.clone(),
            _ => {
                unkeyed += 1;
                format!("position:{}", unkeyed - 1)
            }
        })
        .collect()
}

/// A branch in words, from its key: `const "closed"`, `type "null"`; `None` for one matched by position.
fn describe_branch(branch: &Value, key: &str) -> Option<String> {
    if key.starts_with("const:") {
        return branch.get("const").map(|value| format!("const {value}"));
    }
    if key.starts_with("type:") {
        return branch.get("type").map(|kind| format!("type {kind}"));
    }
    None
}

/// The types a schema accepts: its `type`, else the union of its branches' when they all say; `None` for any.
fn type_set(schema: &Map<String, Value>) -> Option<Vec<String>> {
    match schema.get("type") {
        Some(Value::String(kind)) => Some(vec![kind.clone()]),
        Some(Value::Array(kinds)) => Some(
            kinds
                .iter()
                .filter_map(|kind| kind.as_str().map(str::to_owned))
                .collect(),
        ),
        Some(_) => None,
        None => {
            let branches = branches(schema)?;
            let mut union: Vec<String> = Vec::new();
            for branch in &branches.list {
                for kind in type_set(branch.as_object()?)? {
                    if !union.contains(&kind) {
                        union.push(kind);
                    }
                }
            }
            Some(union)
        }
    }
}

fn show_types(types: Option<&[String]>) -> String {
    match types {
        None => "any".to_owned(),
        Some([single]) => single.clone(),
        Some(many) => Value::from(many.to_vec()).to_string(),
    }
}

fn required(schema: &Map<String, Value>) -> BTreeSet<&str> {
    match schema.get("required") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    }
}

fn additional(schema: &Map<String, Value>) -> Additional<'_> {
    match schema.get("additionalProperties") {
        None | Some(Value::Bool(true)) => Additional::Open,
        Some(Value::Bool(false)) => Additional::Closed,
        Some(rest) => Additional::Schema(rest),
    }
}

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn enum_message(values: &[&Value], verb: &str) -> String {
    let list: Vec<String> = values.iter().map(|value| compact(value)).collect();
    match list.as_slice() {
        [one] => format!("enum value {one} {verb}"),
        many => format!("enum values {} {verb}", many.join(", ")),
    }
}

/// A JSON value on one line.
fn compact(value: &Value) -> String {
    value.to_string()
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skill::{RuntimeSkill, ToolFlavor, ToolResult};
    use ChangeKind::*;

    /// What one tool's schema change gives: `(path, kind, breaking)` per change, in report order.
    fn changes(old: Value, new: Value) -> Vec<(String, ChangeKind, bool)> {
        let list = |schema: Value| {
            ToolList::from_json(&json!([{"name": "tool", "description": "A tool.", "inputSchema": schema}])).unwrap()
        };
        let diff = diff_tools(&list(old), &list(new));
        diff.tools
            .into_iter()
            .flat_map(|tool| tool.changes)
            .map(|change| (change.path, change.kind, change.breaking))
            .collect()
    }

    /// An input schema with these properties.
    fn params(properties: Value) -> Value {
        json!({"type": "object", "properties": properties})
    }

    /// An input schema with these properties, `required` and any other root keywords.
    fn params_with(properties: Value, rest: Value) -> Value {
        let mut schema = params(properties);
        schema
            .as_object_mut()
            .unwrap()
            .extend(rest.as_object().unwrap().clone());
        schema
    }

    /// An input schema with one parameter `x` of this schema.
    fn x(schema: Value) -> Value {
        params(json!({"x": schema}))
    }

    type Expected = &'static [(&'static str, ChangeKind, bool)];

    fn check(cases: Vec<(&str, Value, Value, Expected)>) {
        let mut failures = Vec::new();
        for (name, old, new, expected) in cases {
            let found = changes(old, new);
            let expected: Vec<(String, ChangeKind, bool)> = expected
                .iter()
                .map(|(path, kind, breaking)| (path.to_string(), *kind, *breaking))
                .collect();
            if found != expected {
                failures.push(format!("{name}:\n  expected {expected:?}\n  found    {found:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn parameters_added_removed_and_made_required_or_optional() {
        let string = json!({"type": "string"});
        let a = json!({"a": string});
        let ab = json!({"a": string, "b": string});
        check(vec![
            (
                "required parameter added",
                params(a.clone()),
                params_with(ab.clone(), json!({"required": ["b"]})),
                &[("b", RequiredParameterAdded, true)],
            ),
            (
                "optional parameter added",
                params(a.clone()),
                params(ab.clone()),
                &[("b", ParameterAdded, false)],
            ),
            (
                "parameter removed, the new schema still accepts it",
                params(ab.clone()),
                params(a.clone()),
                &[("b", ParameterRemoved, false)],
            ),
            (
                "required parameter removed, the new schema still accepts it",
                params_with(ab.clone(), json!({"required": ["b"]})),
                params(a.clone()),
                &[("b", ParameterRemoved, false)],
            ),
            (
                "parameter removed and additionalProperties closed",
                params(ab.clone()),
                params_with(a.clone(), json!({"additionalProperties": false})),
                &[("", AdditionalPropertiesClosed, true), ("b", ParameterRemoved, true)],
            ),
            (
                "parameter removed from a closed schema",
                params_with(ab.clone(), json!({"additionalProperties": false})),
                params_with(a.clone(), json!({"additionalProperties": false})),
                &[("b", ParameterRemoved, true)],
            ),
            (
                "parameter removed, its values do not match the new additionalProperties",
                params(ab.clone()),
                params_with(a.clone(), json!({"additionalProperties": {"type": "integer"}})),
                &[("", AdditionalPropertiesClosed, true), ("b", ParameterRemoved, true)],
            ),
            (
                "optional parameter made required",
                params(a.clone()),
                params_with(a.clone(), json!({"required": ["a"]})),
                &[("a", MadeRequired, true)],
            ),
            (
                "required parameter made optional",
                params_with(a.clone(), json!({"required": ["a"]})),
                params(a.clone()),
                &[("a", MadeOptional, false)],
            ),
            (
                "additionalProperties closed",
                params(a.clone()),
                params_with(a.clone(), json!({"additionalProperties": false})),
                &[("", AdditionalPropertiesClosed, true)],
            ),
            (
                "additionalProperties opened",
                params_with(a.clone(), json!({"additionalProperties": false})),
                params_with(a.clone(), json!({"additionalProperties": true})),
                &[("", AdditionalPropertiesOpened, false)],
            ),
            (
                "additionalProperties restricted to a schema",
                params(a.clone()),
                params_with(a.clone(), json!({"additionalProperties": {"type": "string"}})),
                &[("", AdditionalPropertiesClosed, true)],
            ),
            ("nothing changed", params(ab.clone()), params(ab.clone()), &[]),
        ]);
    }

    #[test]
    fn types_narrowed_and_widened() {
        check(vec![
            (
                "nullable made non-null",
                x(json!({"type": ["string", "null"]})),
                x(json!({"type": "string"})),
                &[("x", TypeNarrowed, true)],
            ),
            (
                "number to integer",
                x(json!({"type": "number"})),
                x(json!({"type": "integer"})),
                &[("x", TypeNarrowed, true)],
            ),
            (
                "integer to number",
                x(json!({"type": "integer"})),
                x(json!({"type": "number"})),
                &[("x", TypeWidened, false)],
            ),
            (
                "made nullable",
                x(json!({"type": "string"})),
                x(json!({"type": ["string", "null"]})),
                &[("x", TypeWidened, false)],
            ),
            (
                "string to integer",
                x(json!({"type": "string"})),
                x(json!({"type": "integer"})),
                &[("x", TypeNarrowed, true)],
            ),
            (
                "any to string",
                x(json!({})),
                x(json!({"type": "string"})),
                &[("x", TypeNarrowed, true)],
            ),
            (
                "string to any",
                x(json!({"type": "string"})),
                x(json!({})),
                &[("x", TypeWidened, false)],
            ),
            (
                "the same types in another order",
                x(json!({"type": ["string", "null"]})),
                x(json!({"type": ["null", "string"]})),
                &[],
            ),
        ]);
    }

    #[test]
    fn enums_and_exact_constraints() {
        let abc = json!({"type": "string", "enum": ["a", "b", "c"]});
        check(vec![
            (
                "enum value removed",
                x(abc.clone()),
                x(json!({"type": "string", "enum": ["a", "b"]})),
                &[("x", EnumValueRemoved, true)],
            ),
            (
                "enum value added",
                x(abc.clone()),
                x(json!({"type": "string", "enum": ["a", "b", "c", "d"]})),
                &[("x", EnumValueAdded, false)],
            ),
            (
                "enum value replaced",
                x(abc.clone()),
                x(json!({"type": "string", "enum": ["a", "b", "d"]})),
                &[("x", EnumValueRemoved, true), ("x", EnumValueAdded, false)],
            ),
            (
                "enum added",
                x(json!({"type": "string"})),
                x(abc.clone()),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "enum removed",
                x(abc.clone()),
                x(json!({"type": "string"})),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "const added",
                x(json!({"type": "string"})),
                x(json!({"type": "string", "const": "a"})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "const changed",
                x(json!({"type": "string", "const": "a"})),
                x(json!({"type": "string", "const": "b"})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "const removed",
                x(json!({"type": "string", "const": "a"})),
                x(json!({"type": "string"})),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "pattern added",
                x(json!({"type": "string"})),
                x(json!({"type": "string", "pattern": "^[a-z]+$"})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "pattern changed",
                x(json!({"type": "string", "pattern": "^[a-z]+$"})),
                x(json!({"type": "string", "pattern": "^[a-z0-9]+$"})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "pattern removed",
                x(json!({"type": "string", "pattern": "^[a-z]+$"})),
                x(json!({"type": "string"})),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "format added",
                x(json!({"type": "string"})),
                x(json!({"type": "string", "format": "email"})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "format removed",
                x(json!({"type": "string", "format": "email"})),
                x(json!({"type": "string"})),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "uniqueItems added",
                x(json!({"type": "array"})),
                x(json!({"type": "array", "uniqueItems": true})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "uniqueItems removed",
                x(json!({"type": "array", "uniqueItems": true})),
                x(json!({"type": "array", "uniqueItems": false})),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "multipleOf to a multiple of it",
                x(json!({"type": "integer", "multipleOf": 2})),
                x(json!({"type": "integer", "multipleOf": 4})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "multipleOf to a divisor of it",
                x(json!({"type": "integer", "multipleOf": 4})),
                x(json!({"type": "integer", "multipleOf": 2})),
                &[("x", ConstraintLoosened, false)],
            ),
        ]);
    }

    #[test]
    fn bounds_tightened_and_loosened() {
        let bounded = |keyword: &str, value: i64| x(json!({"type": "integer", keyword: value}));
        let plain = x(json!({"type": "integer"}));
        check(vec![
            (
                "minimum raised",
                bounded("minimum", 1),
                bounded("minimum", 5),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "minimum lowered",
                bounded("minimum", 5),
                bounded("minimum", 1),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "minimum added",
                plain.clone(),
                bounded("minimum", 0),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "minimum removed",
                bounded("minimum", 0),
                plain.clone(),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "maximum lowered",
                bounded("maximum", 50),
                bounded("maximum", 20),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "maximum raised",
                bounded("maximum", 20),
                bounded("maximum", 50),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "exclusiveMinimum added",
                plain.clone(),
                bounded("exclusiveMinimum", 0),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "exclusiveMinimum raised",
                bounded("exclusiveMinimum", 0),
                bounded("exclusiveMinimum", 3),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "exclusiveMaximum lowered",
                bounded("exclusiveMaximum", 10),
                bounded("exclusiveMaximum", 9),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "exclusiveMaximum raised",
                bounded("exclusiveMaximum", 9),
                bounded("exclusiveMaximum", 10),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "minLength raised",
                bounded("minLength", 0),
                bounded("minLength", 1),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "maxLength lowered",
                bounded("maxLength", 80),
                bounded("maxLength", 40),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "maxLength removed",
                bounded("maxLength", 80),
                plain.clone(),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "minItems raised",
                bounded("minItems", 1),
                bounded("minItems", 2),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "minItems lowered",
                bounded("minItems", 2),
                bounded("minItems", 1),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "maxItems lowered",
                bounded("maxItems", 10),
                bounded("maxItems", 5),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "maxItems raised",
                bounded("maxItems", 5),
                bounded("maxItems", 10),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "the same bound written as a float",
                bounded("maximum", 50),
                x(json!({"type": "integer", "maximum": 50.0})),
                &[],
            ),
        ]);
    }

    #[test]
    fn documentation_changes_are_compatible() {
        check(vec![
            (
                "parameter description",
                x(json!({"type": "string", "description": "old"})),
                x(json!({"type": "string", "description": "new"})),
                &[("x", DescriptionChanged, false)],
            ),
            (
                "input schema description",
                params_with(json!({}), json!({"description": "old"})),
                params_with(json!({}), json!({"description": "new"})),
                &[("", DescriptionChanged, false)],
            ),
            (
                "title and default",
                x(json!({"type": "integer", "title": "X", "default": 1})),
                x(json!({"type": "integer", "title": "Y", "default": 2})),
                &[("x", AnnotationChanged, false), ("x", AnnotationChanged, false)],
            ),
        ]);
    }

    #[test]
    fn nested_objects_and_arrays_are_walked() {
        let filter = |properties: Value, rest: Value| {
            let mut schema = json!({"type": "object", "properties": properties});
            schema
                .as_object_mut()
                .unwrap()
                .extend(rest.as_object().unwrap().clone());
            params(json!({"filter": schema}))
        };
        let rows = |item: Value| params(json!({"rows": {"type": "array", "items": item}}));
        check(vec![
            (
                "required property added to a nested object",
                filter(json!({"since": {"type": "string"}}), json!({})),
                filter(
                    json!({"since": {"type": "string"}, "until": {"type": "string"}}),
                    json!({"required": ["until"]}),
                ),
                &[("filter.until", RequiredParameterAdded, true)],
            ),
            (
                "bound tightened in a nested object",
                filter(json!({"limit": {"type": "integer", "maximum": 50}}), json!({})),
                filter(json!({"limit": {"type": "integer", "maximum": 20}}), json!({})),
                &[("filter.limit", ConstraintTightened, true)],
            ),
            (
                "nested object closed",
                filter(json!({"since": {"type": "string"}}), json!({})),
                filter(
                    json!({"since": {"type": "string"}}),
                    json!({"additionalProperties": false}),
                ),
                &[("filter", AdditionalPropertiesClosed, true)],
            ),
            (
                "nested additionalProperties schema tightened",
                filter(json!({}), json!({"additionalProperties": {"type": "string"}})),
                filter(
                    json!({}),
                    json!({"additionalProperties": {"type": "string", "maxLength": 3}}),
                ),
                &[("filter.*", ConstraintTightened, true)],
            ),
            (
                "array items narrowed",
                rows(json!({"type": "number"})),
                rows(json!({"type": "integer"})),
                &[("rows[]", TypeNarrowed, true)],
            ),
            (
                "required property added to array items",
                rows(json!({"type": "object", "properties": {"id": {"type": "string"}}})),
                rows(json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]})),
                &[("rows[].id", MadeRequired, true)],
            ),
            (
                "items schema added",
                params(json!({"rows": {"type": "array"}})),
                rows(json!({"type": "string"})),
                &[("rows[]", TypeNarrowed, true)],
            ),
            (
                "items schema removed",
                rows(json!({"type": "string"})),
                params(json!({"rows": {"type": "array"}})),
                &[("rows[]", TypeWidened, false)],
            ),
            (
                "items made impossible",
                rows(json!(true)),
                rows(json!(false)),
                &[("rows[]", ConstraintTightened, true)],
            ),
            (
                "tuple element added",
                x(json!({"type": "array", "prefixItems": [{"type": "string"}]})),
                x(json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]})),
                &[("x[1]", ConstraintTightened, true)],
            ),
            (
                "tuple element narrowed",
                x(json!({"type": "array", "prefixItems": [{"type": "number"}]})),
                x(json!({"type": "array", "prefixItems": [{"type": "integer"}]})),
                &[("x[0]", TypeNarrowed, true)],
            ),
        ]);
    }

    #[test]
    fn any_of_branches_are_matched_by_const_then_type_then_position() {
        let status = |values: &[&str]| {
            let branches: Vec<Value> = values
                .iter()
                .map(|value| json!({"const": value, "type": "string"}))
                .collect();
            x(json!({"anyOf": branches}))
        };
        let object = |properties: Value, required: Value| json!({"type": "object", "properties": properties, "required": required});
        check(vec![
            (
                "const branch removed",
                status(&["open", "closed"]),
                status(&["open"]),
                &[("x.anyOf[1]", BranchRemoved, true)],
            ),
            (
                "const branch added",
                status(&["open"]),
                status(&["open", "closed"]),
                &[("x.anyOf[1]", BranchAdded, false)],
            ),
            (
                "const branches reordered",
                status(&["open", "closed"]),
                status(&["closed", "open"]),
                &[],
            ),
            (
                "const branch renamed",
                status(&["open", "closed"]),
                status(&["open", "done"]),
                &[("x.anyOf[1]", BranchRemoved, true), ("x.anyOf[1]", BranchAdded, false)],
            ),
            (
                "branch matched by type, tightened",
                x(json!({"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]})),
                x(json!({"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 5}]})),
                &[("x.anyOf[1]", ConstraintTightened, true)],
            ),
            (
                "branches of one type matched by position",
                x(json!({"anyOf": [object(json!({"a": {}}), json!([])), object(json!({"b": {}}), json!([]))]})),
                x(json!({"anyOf": [object(json!({"a": {}}), json!([])), object(json!({"b": {}}), json!(["b"]))]})),
                &[("x.anyOf[1].b", MadeRequired, true)],
            ),
            (
                "nested anyOf: a value of an optional enum removed",
                x(json!({"anyOf": [{"anyOf": [{"const": "open"}, {"const": "closed"}]}, {"type": "null"}]})),
                x(json!({"anyOf": [{"anyOf": [{"const": "open"}]}, {"type": "null"}]})),
                &[("x.anyOf[0].anyOf[1]", BranchRemoved, true)],
            ),
            (
                "made nullable with anyOf",
                x(json!({"type": "object", "properties": {}})),
                x(json!({"anyOf": [{"type": "object", "properties": {}}, {"type": "null"}]})),
                &[("x.anyOf[1]", BranchAdded, false)],
            ),
            (
                "made non-null by dropping anyOf",
                x(json!({"anyOf": [{"type": "object", "properties": {}}, {"type": "null"}], "description": "d"})),
                x(json!({"type": "object", "properties": {}, "description": "d"})),
                &[("x.anyOf[1]", BranchRemoved, true)],
            ),
            (
                "a plain schema replaced by branches that do not accept it",
                x(json!({"type": "string"})),
                x(json!({"anyOf": [{"type": "integer"}, {"type": "null"}]})),
                &[
                    ("x", BranchRemoved, true),
                    ("x.anyOf[0]", BranchAdded, false),
                    ("x.anyOf[1]", BranchAdded, false),
                ],
            ),
            (
                "anyOf added to a schema that accepted anything",
                x(json!({})),
                x(json!({"anyOf": [{"type": "string"}, {"type": "null"}]})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "anyOf removed, anything accepted",
                x(json!({"anyOf": [{"type": "string"}, {"type": "null"}]})),
                x(json!({})),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "oneOf became anyOf",
                x(json!({"oneOf": [{"type": "string"}, {"type": "integer"}]})),
                x(json!({"anyOf": [{"type": "string"}, {"type": "integer"}]})),
                &[("x", ConstraintLoosened, false)],
            ),
            (
                "anyOf became oneOf",
                x(json!({"anyOf": [{"type": "string"}, {"type": "integer"}]})),
                x(json!({"oneOf": [{"type": "string"}, {"type": "integer"}]})),
                &[("x", ConstraintTightened, true)],
            ),
            (
                "oneOf branch removed",
                x(json!({"oneOf": [{"type": "string"}, {"type": "integer"}]})),
                x(json!({"oneOf": [{"type": "string"}]})),
                &[("x.oneOf[1]", BranchRemoved, true)],
            ),
        ]);
    }

    #[test]
    fn keywords_not_analysed_are_breaking_when_they_change() {
        check(vec![
            (
                "not added",
                x(json!({"type": "string"})),
                x(json!({"type": "string", "not": {"const": ""}})),
                &[("x", KeywordChanged, true)],
            ),
            (
                "allOf changed",
                x(json!({"allOf": [{"type": "string"}]})),
                x(json!({"allOf": [{"type": "integer"}]})),
                &[("x", KeywordChanged, true)],
            ),
        ]);
    }

    #[test]
    fn messages_say_what_changed_from_what_to_what() {
        let message = |old: Value, new: Value| {
            let list = |schema: Value| {
                ToolList::from_json(&json!([{"name": "t", "description": "", "inputSchema": schema}])).unwrap()
            };
            diff_tools(&list(old), &list(new)).tools[0].changes[0].message.clone()
        };
        let cases = [
            (
                x(json!({"maximum": 50})),
                x(json!({"maximum": 20})),
                "maximum lowered from 50 to 20",
            ),
            (
                x(json!({"minLength": 1})),
                x(json!({"minLength": 2})),
                "minLength raised from 1 to 2",
            ),
            (x(json!({})), x(json!({"pattern": "^a"})), r#"pattern "^a" added"#),
            (
                x(json!({"type": ["string", "null"]})),
                x(json!({"type": "string"})),
                r#"type narrowed from ["string","null"] to string"#,
            ),
            (
                x(json!({"type": "integer"})),
                x(json!({"type": "number"})),
                "type widened from integer to number",
            ),
            (
                x(json!({"enum": ["a", "b", "c"]})),
                x(json!({"enum": ["a"]})),
                r#"enum values "b", "c" removed"#,
            ),
            (
                x(json!({"anyOf": [{"const": "a"}, {"const": "b"}]})),
                x(json!({"anyOf": [{"const": "a"}]})),
                r#"anyOf branch removed: const "b""#,
            ),
            (
                params(json!({"a": {}})),
                params_with(json!({"a": {}, "b": {}}), json!({"required": ["b"]})),
                "required parameter added",
            ),
            (
                params(json!({"a": {}, "b": {}})),
                params_with(json!({"a": {}}), json!({"additionalProperties": false})),
                "additionalProperties closed: properties not listed are refused now",
            ),
        ];
        for (old, new, expected) in cases {
            assert_eq!(message(old, new), expected);
        }
    }

    fn tool(name: &str, description: &str, schema: Value) -> Value {
        json!({"name": name, "description": description, "inputSchema": schema})
    }

    #[test]
    fn tools_added_removed_renamed_and_redescribed() {
        let search = params(json!({"text": {"type": "string"}}));
        let save = params(json!({"key": {"type": "string"}, "text": {"type": "string"}}));
        let old = ToolList::from_json(&json!([
            tool("search", "Searches.", search.clone()),
            tool("note_save", "Saves a note.", save.clone()),
            tool("stats", "Counts.", params(json!({}))),
        ]))
        .unwrap();
        let new = ToolList::from_json(&json!([
            tool("search", "Searches tickets.", search.clone()),
            tool("note_store", "Saves a note.", save.clone()),
            tool("ping", "Answers pong.", params(json!({"echo": {"type": "boolean"}}))),
        ]))
        .unwrap();
        let diff = diff_tools(&old, &new);
        let summary: Vec<(&str, ToolStatus, Option<&str>, bool)> = diff
            .tools
            .iter()
            .map(|tool| {
                (
                    tool.name.as_str(),
                    tool.status,
                    tool.likely_rename.as_deref(),
                    tool.is_breaking(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("note_save", ToolStatus::Removed, Some("note_store"), true),
                ("note_store", ToolStatus::Added, Some("note_save"), false),
                ("ping", ToolStatus::Added, None, false),
                ("search", ToolStatus::Changed, None, false),
                ("stats", ToolStatus::Removed, None, true),
            ]
        );
        assert_eq!(diff.tools[3].changes[0].kind, DescriptionChanged);
        assert!(diff.is_breaking());

        assert_eq!(
            diff.to_string(),
            "note_save (removed)  breaking  (likely renamed to note_store)\n\
             note_store (added)  compatible  (likely note_save renamed)\n\
             ping (added)  compatible\n\
             search\n\
             \x20 compatible  description changed\n\
             stats (removed)  breaking\n\
             \n\
             5 tools differ (1 changed, 2 removed, 2 added): 2 breaking, 3 compatible; BREAKING for sessions created \
             with the old catalog\n\
             note: a renamed tool shows as removed + added; sessions created with the old catalog still call it by \
             its old name"
        );
        let machine = diff.to_json();
        assert_eq!(machine["breaking"], true);
        assert_eq!(
            machine["tools"][0],
            json!({
                "name": "note_save",
                "status": "removed",
                "breaking": true,
                "likelyRename": "note_store",
                "changes": [{
                    "path": "",
                    "kind": "tool_removed",
                    "breaking": true,
                    "message": "tool removed; likely renamed to `note_store` (same input schema)",
                }],
            })
        );
        assert_eq!(machine["tools"][3]["changes"][0]["kind"], "description_changed");
    }

    #[test]
    fn identical_catalogs_have_no_changes() {
        let list = ToolList::from_json(&json!([tool("a", "A.", params(json!({"x": {"type": "string"}})))])).unwrap();
        let diff = diff_tools(&list, &list);
        assert!(diff.is_empty() && !diff.is_breaking());
        assert_eq!(diff.to_string(), "no changes");
        assert_eq!(diff.to_json(), json!({"breaking": false, "tools": []}));
    }

    #[test]
    fn only_compatible_changes_are_not_breaking() {
        let old = ToolList::from_json(&json!([tool("a", "A.", params(json!({"x": {"type": "integer"}})))])).unwrap();
        let new = ToolList::from_json(&json!([
            tool(
                "a",
                "A.",
                params(json!({"x": {"type": "number"}, "y": {"type": "string"}}))
            ),
            tool("b", "B.", params(json!({}))),
        ]))
        .unwrap();
        let diff = diff_tools(&old, &new);
        assert!(!diff.is_empty() && !diff.is_breaking());
        assert!(
            diff.summary()
                .ends_with("0 breaking, 3 compatible; compatible with sessions created with the old catalog")
        );
    }

    #[test]
    fn tool_lists_are_read_in_every_form_skills_json_prints() {
        let codex_manager = json!([tool("a", "A.", params(json!({})))]);
        let app_server =
            json!([{"type": "function", "name": "a", "description": "A.", "inputSchema": params(json!({}))}]);
        let with_states = json!({"dynamicTools": codex_manager, "states": {}});
        let expected = ToolList::from_json(&codex_manager).unwrap();
        assert_eq!(expected.names().collect::<Vec<_>>(), ["a"]);
        assert_eq!(ToolList::from_json(&app_server).unwrap(), expected);
        assert_eq!(ToolList::from_json(&with_states).unwrap(), expected);
    }

    #[test]
    fn a_catalog_reads_as_its_dynamic_tools() {
        let skill = RuntimeSkill::builder("echo_back", "Echoes.")
            .input_schema(params(json!({"text": {"type": "string"}})))
            .handler(|_arguments, _ctx| async { ToolResult::text("") })
            .build()
            .unwrap();
        let catalog = Catalog::builder().skill(skill).build().unwrap();
        let from_catalog = ToolList::from_catalog(&catalog);
        assert!(from_catalog.names().any(|name| name == "echo_back"));
        let payload = Value::Array(catalog.dynamic_tools(ToolFlavor::AppServer));
        assert_eq!(ToolList::from_json(&payload).unwrap(), from_catalog);
    }

    #[test]
    fn documents_that_are_not_tool_lists_are_refused_with_the_reason() {
        let cases = [
            (json!("tools"), ToolListError::NotAList { found: "a string" }),
            (
                json!({"tools": []}),
                ToolListError::NotAList {
                    found: "an object without a `dynamicTools` array",
                },
            ),
            (
                json!([1]),
                ToolListError::NotATool {
                    index: 0,
                    found: "a number",
                },
            ),
            (
                json!([tool("a", "", json!({})), {"description": "x"}]),
                ToolListError::MissingName { index: 1 },
            ),
            (
                json!([{"name": "a"}]),
                ToolListError::MissingInputSchema { name: "a".into() },
            ),
            (
                json!([{"name": "a", "inputSchema": "{}"}]),
                ToolListError::MissingInputSchema { name: "a".into() },
            ),
            (
                json!([{"name": "a", "description": 3, "inputSchema": {}}]),
                ToolListError::DescriptionNotText { name: "a".into() },
            ),
            (
                json!([tool("a", "", json!({})), tool("a", "", json!({}))]),
                ToolListError::Duplicate { name: "a".into() },
            ),
        ];
        for (document, expected) in cases {
            assert_eq!(ToolList::from_json(&document), Err(expected), "{document}");
        }
        assert_eq!(
            ToolList::from_json(&json!(null)).unwrap_err().to_string(),
            "expected a JSON array of tools, as `skills --json` prints it, or an object with a `dynamicTools` array; \
             found null"
        );
    }

    /// A copy of the shipped `ticket_search` skill's input schema (`skills/tests/golden/ticket_search.json`).
    fn ticket_search() -> Value {
        json!({
            "description": "What to search tickets for; every given filter must match.",
            "properties": {
                "assignee": {
                    "description": "Only tickets assigned to this person; `\"\"` finds unassigned tickets.",
                    "type": ["string", "null"]
                },
                "limit": {
                    "description": "At most this many tickets, 1 to 50 (default 10), newest first.",
                    "format": "uint32",
                    "maximum": 50,
                    "minimum": 1,
                    "type": ["integer", "null"]
                },
                "status": {
                    "anyOf": [
                        {
                            "anyOf": [
                                {"const": "open", "description": "Waiting for someone to pick it up.", "type": "string"},
                                {"const": "in_progress", "description": "Someone is working on it.", "type": "string"},
                                {"const": "resolved", "description": "Fixed, waiting for the reporter to confirm.", "type": "string"},
                                {"const": "closed", "description": "Done.", "type": "string"}
                            ],
                            "description": "Where a ticket stands."
                        },
                        {"type": "null"}
                    ],
                    "description": "Only tickets with this status."
                },
                "text": {
                    "description": "Words that must all appear in the title or tags (case-insensitive).",
                    "type": ["string", "null"]
                }
            },
            "type": "object"
        })
    }

    #[test]
    fn the_shipped_ticket_search_schema_against_edited_copies() {
        let description = "Searches support tickets by words, status and assignee, newest first.";
        let list = |schema: Value| ToolList::from_json(&json!([tool("ticket_search", description, schema)])).unwrap();
        let golden = list(ticket_search());
        assert!(diff_tools(&golden, &golden).is_empty());

        let mut edited = ticket_search();
        edited["properties"]["limit"]["maximum"] = json!(20);
        edited["properties"]["status"]["anyOf"][0]["anyOf"]
            .as_array_mut()
            .unwrap()
            .remove(1);
        edited["properties"]["text"]["type"] = json!("string");
        edited["required"] = json!(["text"]);
        edited["properties"]["priority"] = json!({"type": ["string", "null"], "enum": ["low", "high", null]});
        let diff = diff_tools(&golden, &list(edited.clone()));
        assert_eq!(
            diff.to_string(),
            "ticket_search\n\
             \x20 breaking    limit: maximum lowered from 50 to 20\n\
             \x20 compatible  priority: optional parameter added\n\
             \x20 breaking    status.anyOf[0].anyOf[1]: anyOf branch removed: const \"in_progress\"\n\
             \x20 breaking    text: type narrowed from [\"string\",\"null\"] to string\n\
             \x20 breaking    text: optional parameter made required\n\
             \n\
             1 tool differs (1 changed, 0 removed, 0 added): 4 breaking, 1 compatible; BREAKING for sessions \
             created with the old catalog"
        );

        // The other way round, every one of these changes is compatible.
        let reverse = diff_tools(&list(edited), &golden);
        assert!(!reverse.is_breaking(), "{reverse}");
        assert_eq!(reverse.tools[0].changes.len(), 5, "{reverse}");
    }
}
