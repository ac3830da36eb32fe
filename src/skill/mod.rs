//! Skills: typed Rust functions registered with `#[skill]`, their schemas, and the catalog that runs them.

mod context;
mod result;

pub use context::SkillContext;
pub use result::{ContentItem, ToolResult};
