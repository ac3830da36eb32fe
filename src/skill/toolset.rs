//! [`Toolset`]: which skills of a [`Catalog`] one session is offered, by name, tag and annotation.
//!
//! A toolset names skills or tags to offer (all skills when it names none), skills or tags to leave out, and
//! whether to keep only `read_only` skills. [`Toolset::select`] resolves it against a catalog into the names
//! offered; a name that is neither a skill nor a tag of the catalog is an error (a typo must not silently offer
//! nothing, or everything). The surface renders only the offered skills, and a call to any other tool is refused
//! below it ("not offered in this session"), since a model may name a tool it was never shown.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Catalog;

/// A selection of skills. The default offers every skill.
///
/// ```
/// use skillbridge::skill::Toolset;
///
/// let support = Toolset::all().only(["tickets", "current_time"]).exclude(["ticket_assign"]).read_only(true);
/// assert!(!support.is_all());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toolset {
    only: Vec<String>,
    exclude: Vec<String>,
    read_only: bool,
}

/// The names of the skills a session is offered.
pub type Offered = Arc<BTreeSet<String>>;

/// Why a toolset cannot be resolved against a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectionError {
    /// A name is neither a skill nor a tag of the catalog.
    #[error("`{name}` is neither a skill nor a tag; the skills are: {skills}; the tags: {tags}")]
    Unknown {
        /// The name as given.
        name: String,
        /// The catalog's skill names, comma separated.
        skills: String,
        /// The catalog's tags, comma separated (`(none)` without any).
        tags: String,
    },
    /// The toolset leaves no skill to offer.
    #[error("the toolset offers no skill ({toolset})")]
    Empty {
        /// The toolset, described.
        toolset: String,
    },
}

impl Toolset {
    /// Every skill.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these skills and the skills with these tags (added to any given before).
    pub fn only(mut self, names_or_tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.only.extend(names_or_tags.into_iter().map(Into::into));
        self
    }

    /// Leaves out these skills and the skills with these tags.
    pub fn exclude(mut self, names_or_tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.exclude.extend(names_or_tags.into_iter().map(Into::into));
        self
    }

    /// Keeps only skills annotated `read_only` (when `true`).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether this offers every skill of any catalog.
    pub fn is_all(&self) -> bool {
        self == &Self::default()
    }

    /// The names of `catalog`'s skills this toolset offers.
    pub fn select(&self, catalog: &Catalog) -> Result<Offered, SelectionError> {
        for name in self.only.iter().chain(&self.exclude) {
            if catalog.get(name).is_none() && !catalog.iter().any(|skill| skill.has_tag(name)) {
                return Err(unknown(catalog, name));
            }
        }
        let matches = |names: &[String], skill: &super::SkillInfo| {
            names.iter().any(|name| name == skill.name() || skill.has_tag(name))
        };
        let offered: BTreeSet<String> = catalog
            .iter()
            .filter(|skill| self.only.is_empty() || matches(&self.only, skill))
            .filter(|skill| !matches(&self.exclude, skill))
            .filter(|skill| !self.read_only || skill.annotations().read_only() == Some(true))
            .map(|skill| skill.name().to_owned())
            .collect();
        if offered.is_empty() && !catalog.is_empty() {
            return Err(SelectionError::Empty {
                toolset: self.to_string(),
            });
        }
        Ok(Arc::new(offered))
    }
}

impl std::fmt::Display for Toolset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.only.is_empty() {
            parts.push(format!("tools {}", self.only.join(",")));
        }
        if !self.exclude.is_empty() {
            parts.push(format!("excluding {}", self.exclude.join(",")));
        }
        if self.read_only {
            parts.push("read-only".to_owned());
        }
        if parts.is_empty() {
            parts.push("every skill".to_owned());
        }
        f.write_str(&parts.join(", "))
    }
}

fn unknown(catalog: &Catalog, name: &str) -> SelectionError {
    let skills: Vec<&str> = catalog.names().collect();
    let tags: BTreeSet<&str> = catalog
        .iter()
        .flat_map(|skill| skill.tags().iter().map(String::as_str))
        .collect();
    SelectionError::Unknown {
        name: name.to_owned(),
        skills: skills.join(", "),
        tags: if tags.is_empty() {
            "(none)".to_owned()
        } else {
            tags.into_iter().collect::<Vec<_>>().join(", ")
        },
    }
}
