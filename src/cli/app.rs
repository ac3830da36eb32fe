//! [`App`]: the entry point of a skills binary, with the states its skills take. It holds the states given in
//! code and the ones built from `[skills.<name>]` tables of the settings file, and hands the resolved
//! [`States`] to every command (`skills`, `call`, `serve`, `send`), so that each checks them before it starts.

use std::collections::BTreeMap;
use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::settings::{self, SettingsError};
use super::{Cli, Command, exit};
use crate::skill::{RuntimeSkill, States};

/// Reads one `[skills.<name>]` table (`None` when the file has none) into the states; returns the table as
/// read, defaults filled in, for `--print-config`.
type LoadFn = dyn Fn(Option<toml::Value>) -> Result<(States, toml::Value), String> + Send + Sync;

/// The `skillbridge` command line of a skills binary, with the states its skills take.
///
/// ```no_run,standalone_crate
/// use std::sync::Mutex;
///
/// use skillbridge::{State, skill};
///
/// /// Visits, counted across calls.
/// #[derive(Default)]
/// struct Visits(Mutex<u64>);
///
/// /// Counts a visit.
/// #[skill]
/// async fn visit(visits: State<Visits>) -> u64 {
///     let mut count = visits.0.lock().unwrap();
///     *count += 1;
///     *count
/// }
///
/// /// What `[skills.greeting]` in the settings file holds.
/// #[derive(Default, serde::Deserialize, serde::Serialize)]
/// struct Greeting {
///     text: String,
/// }
///
/// fn main() -> std::process::ExitCode {
///     skillbridge::cli::App::new()
///         .state(Visits::default())
///         .state_from_config("greeting", |greeting: Greeting| {
///             let mut states = skillbridge::States::new();
///             states.insert(greeting);
///             Ok::<_, String>(states)
///         })
///         .run()
/// }
/// ```
#[derive(Clone)]
pub struct App {
    /// What `--version` and `--help` call the binary.
    name: &'static str,
    version: &'static str,
    states: States,
    skills: Vec<RuntimeSkill>,
    from_config: BTreeMap<&'static str, Arc<LoadFn>>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("states", &self.states)
            .field("skills", &self.skills)
            .field("from_config", &self.from_config.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for App {
    fn default() -> Self {
        Self {
            name: "skillbridge",
            version: env!("CARGO_PKG_VERSION"),
            states: States::new(),
            skills: Vec::new(),
            from_config: BTreeMap::new(),
        }
    }
}

impl App {
    /// No states, named `skillbridge` (for `--version` and `--help`): enough for skills that take none. A binary
    /// of your own names itself with [`app!`](crate::app!) (or [`named`](Self::named)).
    pub fn new() -> Self {
        Self::default()
    }

    /// What `--version` and `--help` call the binary: `name version`. [`app!`](crate::app!) passes the calling
    /// crate's `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`.
    pub fn named(mut self, name: &'static str, version: &'static str) -> Self {
        self.name = name;
        self.version = version;
        self
    }

    /// The command line, named as this app.
    fn command(&self) -> clap::Command {
        Cli::command().name(self.name).version(self.version)
    }

    /// Supplies `value` to every skill that takes `State<T>`.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Adds a skill built at run time (see [`RuntimeSkill`]) to every command, beside the binary's `#[skill]`s. A
    /// name another skill has stops every command at start-up, naming both.
    pub fn skill(mut self, skill: RuntimeSkill) -> Self {
        self.skills.push(skill);
        self
    }

    /// Adds skills built at run time (see [`skill`](Self::skill)).
    pub fn skills(mut self, skills: impl IntoIterator<Item = RuntimeSkill>) -> Self {
        self.skills.extend(skills);
        self
    }

    /// The skills built at run time, in the order added.
    pub(crate) fn runtime_skills(&self) -> &[RuntimeSkill] {
        &self.skills
    }

    /// Supplies every state of `states` (shared [`State`](crate::State)s, [`States::choices`]).
    pub fn states(mut self, states: States) -> Self {
        self.states.extend(states);
        self
    }

    /// Builds states from the table `[skills.<table>]` of the settings file (`--config`), read as a `C` (its
    /// `Default` when the file has no such table). `--print-config` shows the table as read. A table that does
    /// not read as a `C`, or that `build` refuses, is a usage error naming it; so is a `[skills.<name>]` table
    /// that no `state_from_config` reads.
    pub fn state_from_config<C, E, F>(mut self, table: &'static str, build: F) -> Self
    where
        C: DeserializeOwned + Serialize + Default,
        E: fmt::Display,
        F: Fn(C) -> Result<States, E> + Send + Sync + 'static,
    {
        let load = move |value: Option<toml::Value>| {
            let config: C = match value {
                Some(value) => value.try_into().map_err(|error| error.to_string())?,
                None => C::default(),
            };
            let shown = toml::Value::try_from(&config).map_err(|error| error.to_string())?;
            let states = build(config).map_err(|error| error.to_string())?;
            Ok((states, shown))
        };
        self.from_config.insert(table, Arc::new(load));
        self
    }

    /// The states of this app with those built from `tables` (the `[skills]` tables of the settings file), and
    /// the tables as `--print-config` shows them.
    pub(crate) fn resolve(
        &self,
        mut tables: BTreeMap<String, toml::Value>,
    ) -> Result<(States, BTreeMap<String, toml::Value>), SettingsError> {
        if let Some(unknown) = tables.keys().find(|name| !self.from_config.contains_key(name.as_str())) {
            let known: Vec<&str> = self.from_config.keys().copied().collect();
            let expected = if known.is_empty() {
                "this binary reads none".to_owned()
            } else {
                format!("this binary reads {}", known.join(", "))
            };
            return Err(SettingsError::new(format!(
                "config file: [skills.{unknown}] configures no skill: {expected}"
            )));
        }
        let mut states = self.states.clone();
        let mut shown = BTreeMap::new();
        for (name, load) in &self.from_config {
            let (built, table) = load(tables.remove(*name))
                .map_err(|error| SettingsError::new(format!("config file: [skills.{name}]: {error}")))?;
            states.extend(built);
            shown.insert((*name).to_owned(), table);
        }
        Ok((states, shown))
    }

    /// Parses `std::env::args`, starts logging (stderr, `RUST_LOG`) and a Tokio runtime, and runs the command
    /// with these states: the whole `main` of a skills binary. [`main`](super::main) is `App::new().run()`.
    pub fn run(self) -> ExitCode {
        settings::ignore_blank_variables(&self.command());
        let parsed = self
            .command()
            .try_get_matches()
            .and_then(|matches| Cli::from_arg_matches(&matches));
        let cli = match parsed {
            Ok(cli) => cli,
            Err(error) => {
                // `--help` and `--version` arrive here too, with exit code 0.
                let _ = error.print();
                let given: Vec<String> = std::env::args().collect();
                if let Some(variable) = settings::variable_behind(&error, &self.command(), &given) {
                    eprintln!("(that value comes from the environment variable {variable})");
                }
                return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(exit::USAGE));
            }
        };
        super::logging::init(cli.log_format, cli.command.default_log_level());
        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                return ExitCode::from(exit::FAILURE);
            }
        };
        runtime.block_on(self.run_parsed(cli))
    }

    /// Runs a parsed command line with these states (in a Tokio runtime of the caller's).
    pub async fn run_parsed(&self, cli: Cli) -> ExitCode {
        match cli.command {
            Command::Skills(args) => args.run_with(self).await,
            Command::Call(args) => args.run_with(self).await,
            Command::Serve(args) => (*args).run_with(self).await,
            Command::Send(args) => (*args).run_with(self).await,
            Command::Mcp(args) => (*args).run_with(self).await,
        }
    }
}
