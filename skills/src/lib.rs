//! The skills shipped with the `skillbridge` binary.
//!
//! Each module holds a few related `#[skill]` functions; together they use every feature of the macro:
//! sync and async skills, optional and documented parameters, a struct input ([`tickets`]), the injected
//! `SkillContext` ([`notes`], [`sql`]), shared `State<T>` (the ticket store, the notes' scratchpads, the
//! configured SQL databases), text, JSON (with output schemas), `Result` and multi-item (image) results
//! ([`chart`]), and the `name`, `description` and `timeout` overrides.
//!
//! The binary runs [`app`], the command line with every state supplied; a golden test pins every skill's schemas.

pub mod chart;
pub mod clock;
pub mod notes;
pub mod sql;
pub mod text;
pub mod tickets;

use skillbridge::cli::App;
use skillbridge::skill::States;

/// The `skillbridge` command line with the states of the shipped skills: the sample ticket store, empty
/// scratchpads, and the SQL databases of `[skills.sql]` in the settings file.
pub fn app() -> App {
    App::new()
        .state(tickets::TicketStore::sample())
        .state(notes::Scratchpads::default())
        .state_from_config("sql", sql::states)
}

/// The states [`app`] supplies, with `sql` as the SQL settings: for tests and programs that run the shipped
/// skills from code (`Catalog::from_registry_with`, `Bridge::builder().states(..)`).
pub fn states(sql: sql::SqlSettings) -> Result<States, sql::SqlSettingsError> {
    let mut states = sql::states(sql)?;
    states
        .insert(tickets::TicketStore::sample())
        .insert(notes::Scratchpads::default());
    Ok(states)
}

/// Makes the binary link this library, and with it every skill registered here.
///
/// A skill is registered by a static that the linker keeps only when the crate defining it is linked;
/// calling this from `main` guarantees that.
pub fn link() {}
