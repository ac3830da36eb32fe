//! The skills shipped with the `skillbridge` binary.
//!
//! Each module holds a few related `#[skill]` functions; together they use every feature of the macro:
//! sync and async skills, optional and documented parameters, a struct input ([`tickets`]), the injected
//! `SkillContext` ([`notes`], [`sql`]), text, JSON (with output schemas), `Result` and multi-item
//! (image) results ([`chart`]), and the `name`, `description` and `timeout` overrides.
//!
//! The binary links this library through [`link`]; a golden test pins every skill's schemas.

pub mod chart;
pub mod clock;
pub mod notes;
pub mod sql;
pub mod text;
pub mod tickets;

/// Makes the binary link this library, and with it every skill registered here.
///
/// A skill is registered by a static that the linker keeps only when the crate defining it is linked;
/// calling this from `main` guarantees that.
pub fn link() {}
