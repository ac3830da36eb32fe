//! The command line of a skillbridge binary: the clap [`Cli`], its [`Command`]s, and [`main`].
//!
//! Each command lives in a file of its own (`skills.rs` holds `skills` and `call`) and exposes a clap `Args`
//! struct with an `async fn run_with(self, &App) -> ExitCode`; adding a command is one variant of [`Command`] and
//! one arm in [`App::run_parsed`]. [`App`] (`app.rs`) holds the states the binary's skills take. `serve` and `send` only turn their settings (`settings.rs`) into a
//! [`Bridge`](crate::Bridge) and print what it did.

mod app;
mod logging;
mod mcp;
mod replay;
mod send;
mod serve;
mod settings;
mod skills;

use std::collections::BTreeSet;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bridge::{Bridge, BridgeError};
use crate::skill::ToolFlavor;
use crate::upstream::UpstreamError;
use crate::upstream::app_server::AppServerError;

pub use app::App;
pub use logging::LogFormat;
pub use mcp::McpArgs;
pub use send::SendArgs;
pub use serve::ServeArgs;
pub use skills::{CallArgs, DiffArgs, SkillsArgs, SkillsCommand};

/// Exit statuses shared by every command.
pub mod exit {
    /// The command did what was asked.
    pub const SUCCESS: u8 = 0;
    /// The work failed: the skill answered `success: false`, or the binary's skills are invalid.
    pub const FAILURE: u8 = 1;
    /// The command line was wrong: bad flags, an unknown skill, arguments that are not JSON.
    pub const USAGE: u8 = 2;
}

/// Typed Rust functions as Codex dynamic tools.
///
/// This binary holds skills (functions annotated with `#[skill]`). List them with `skills`, run one locally
/// with `call`, exactly as the bridge runs it when Codex calls the tool.
#[derive(Debug, Parser)]
#[command(
    name = "skillbridge",
    version,
    after_help = "Logs go to stderr, coloured only on a terminal and never with NO_COLOR set; set RUST_LOG \
                  (e.g. RUST_LOG=debug) to see more.\n\
                  Exit status: 0 success, 1 failure (the skill failed), 2 usage error."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How log lines on stderr look. Every event about a tool call carries the call's request id, thread and
    /// tool.
    #[arg(long, global = true, env = "SKILLBRIDGE_LOG_FORMAT", value_name = "FORMAT", value_enum,
          default_value_t = LogFormat::Text, help_heading = "Logging")]
    pub log_format: LogFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the skills of this binary as a table, as the exact `dynamicTools` JSON, or one in detail.
    Skills(SkillsArgs),
    /// Run one skill with JSON arguments and print its result, as the bridge would answer Codex.
    Call(CallArgs),
    // No doc comments here: they would replace the about texts and examples the Args structs declare. Boxed: their
    // flags make them the largest variants by far.
    #[allow(missing_docs)]
    Serve(Box<ServeArgs>),
    #[allow(missing_docs)]
    Send(Box<SendArgs>),
    #[allow(missing_docs)]
    Mcp(Box<McpArgs>),
}

impl Cli {
    /// Runs the parsed command, without states (see [`App::run_parsed`]).
    pub async fn run(self) -> ExitCode {
        App::new().run_parsed(self).await
    }
}

/// Parses `std::env::args`, starts logging (stderr, `RUST_LOG`) and a Tokio runtime, and runs the command.
///
/// It names the command line `skillbridge` (`--version`, `--help`) and supplies no states; the `main` of a
/// binary of your own is `skillbridge::app!().run()` ([`app!`](crate::app!)), which names it after your crate
/// and takes states with `.state(..)`. Under the name `skillbridge`:
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     skillbridge::cli::main()
/// }
/// ```
pub fn main() -> ExitCode {
    App::new().run()
}

impl Command {
    /// The long-running commands report what they do at `info`; one-shot ones only warn.
    fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve(_) | Command::Send(_) | Command::Mcp(_) => "info",
            Command::Skills(_) | Command::Call(_) => "warn",
        }
    }
}

/// `--write-catalog FILE`: the tools of `bridge`, as its upstream receives them, written before it connects.
fn write_catalog(flags: &settings::ConfigArgs, config: &settings::Config, bridge: &Bridge) -> Result<(), Failure> {
    let Some(path) = &flags.write_catalog else {
        return Ok(());
    };
    let flavor = if config.app_server.enabled == Some(true) {
        ToolFlavor::AppServer
    } else {
        ToolFlavor::CodexManager
    };
    let mut offered = BTreeSet::new();
    for toolset in config.created_toolsets() {
        let selected = toolset
            .select(bridge.catalog())
            .map_err(|error| Failure::usage(error.to_string()))?;
        offered.extend(selected.iter().cloned());
    }
    skills::write_catalog(bridge.catalog(), &offered, flavor, path).map_err(|message| Failure {
        message,
        code: exit::FAILURE,
    })
}

/// Why `serve` or `send` stopped early: the message for stderr and the exit status.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// Settings that cannot work: exit status 2.
    fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: exit::USAGE,
        }
    }

    /// Says why `command` failed, on stderr, and exits with the failure's status.
    fn exit(self, command: &str) -> ExitCode {
        logging::say(command, logging::Tone::Problem, &self.message);
        ExitCode::from(self.code)
    }
}

impl From<settings::SettingsError> for Failure {
    fn from(error: settings::SettingsError) -> Self {
        Self {
            message: error.to_string(),
            code: exit::USAGE,
        }
    }
}

impl From<BridgeError> for Failure {
    /// The error's message, with a hint at the setting to check when the cause is one the user can fix.
    fn from(error: BridgeError) -> Self {
        let upstream_error = match &error {
            BridgeError::Upstream(source) => Some(source),
            BridgeError::UpstreamNotReady { source, .. } => Some(&**source),
            _ => None,
        };
        let hint = match upstream_error {
            // A TLS failure says what to do itself; the server is up.
            Some(UpstreamError::Unreachable { source, .. }) if source.tls_failure().is_none() => {
                "\n(is codex-manager running? set --manager-url or CODEX_MANAGER_API_BASE, or run Codex directly with \
                 --app-server)"
            }
            Some(UpstreamError::AppServer(AppServerError::Spawn(_))) => {
                "\n(is the Codex CLI installed? give its path with --app-server PATH or SKILLBRIDGE_APP_SERVER)"
            }
            _ => "",
        };
        Self {
            message: format!("{error}{hint}"),
            code: exit::FAILURE,
        }
    }
}
