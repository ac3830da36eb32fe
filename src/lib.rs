//! skillbridge: typed Rust functions as Codex dynamic tools.

pub mod admin;
pub mod bridge;
pub mod cli;
pub mod manager;
pub mod skill;
pub mod stream;
pub mod upstream;

pub use skill::{ContentItem, SkillContext, ToolResult};
pub use skillbridge_macros::skill;
