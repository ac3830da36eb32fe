//! Skills: typed Rust functions registered with [`#[skill]`](macro@skill), their schemas, and the
//! [`Catalog`] that announces and runs them.
//!
//! - [`skill`](macro@skill) turns a free function into a Codex dynamic tool and registers it;
//! - [`Catalog::from_registry`] collects every registered skill of the binary; [`Catalog::builder`] adds
//!   [`RuntimeSkill`]s, built from code at start-up (`runtime.rs`);
//! - [`Catalog::dynamic_tools`] renders the `dynamicTools` payload, [`Catalog::invoke`] runs a call;
//! - [`Annotations`] and tags describe a skill to people and tooling (they are not part of that payload);
//! - [`ToolResult`], [`ContentItem`], [`Content`] and [`IntoToolResult`] describe what a call answers;
//! - [`SkillContext`] is what a skill may know about the call, [`SkillError`] how it can fail;
//! - [`State`] is shared state a skill takes as a parameter, supplied through [`States`] (`state.rs`);
//! - [`diff_tools`] compares two catalogs ([`ToolList`]s) and says which changes break sessions created with the
//!   old one (`diff.rs`).

mod annotations;
mod catalog;
mod content;
mod context;
mod diff;
mod error;
mod invoke;
mod result;
mod runtime;
mod schema;
mod state;
mod toolset;
mod validate;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use annotations::{Annotations, is_valid_tag};
pub use catalog::{
    Catalog, CatalogBuilder, CatalogError, REDACTED, SkillInfo, SkillLocation, ToolFlavor, is_valid_name,
};
pub use content::{Content, IntoToolResult};
pub use context::{Progress, ProgressSink, SkillContext};
pub use diff::{CatalogDiff, Change, ChangeKind, ToolDiff, ToolList, ToolListError, ToolStatus, diff_tools};
pub use error::SkillError;
pub use invoke::{Invocation, Outcome, format_duration};
pub use result::{ContentItem, ToolResult};
pub use runtime::{RuntimeSkill, RuntimeSkillBuilder};
pub use skillbridge_macros::skill;
pub use state::{State, StateRequirement, States};
pub use toolset::{Offered, SelectionError, Toolset};
