//! The command line of a skillbridge binary: the clap [`Cli`], its [`Command`]s, and [`main`].
//!
//! Each command lives in a file of its own (`skills.rs` holds `skills` and `call`) and exposes a clap `Args`
//! struct with an `async fn run(self) -> ExitCode`; adding a command is one variant of [`Command`] and one
//! arm in [`Cli::run`].

mod runtime;
pub mod send;
pub mod serve;
mod serving;
pub mod settings;
mod skills;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use skills::{CallArgs, SkillsArgs, SkillsCommand};

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
    after_help = "Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to see more.\n\
                  Exit status: 0 success, 1 failure (the skill failed), 2 usage error."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the skills of this binary as a table, as the exact `dynamicTools` JSON, or one in detail.
    Skills(SkillsArgs),
    /// Run one skill with JSON arguments and print its result, as the bridge would answer Codex.
    Call(CallArgs),
    // No doc comments here: they would replace the about texts and examples the Args structs declare.
    Serve(serve::ServeArgs),
    Send(send::SendArgs),
}

impl Cli {
    /// Runs the parsed command.
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Skills(args) => args.run().await,
            Command::Call(args) => args.run().await,
            Command::Serve(args) => args.run().await,
            Command::Send(args) => args.run().await,
        }
    }
}

/// Parses `std::env::args`, starts logging (stderr, `RUST_LOG`) and a Tokio runtime, and runs the command.
///
/// The whole `main` of a skills binary:
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     skillbridge::cli::main()
/// }
/// ```
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // `--help` and `--version` arrive here too, with exit code 0.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(exit::USAGE));
        }
    };
    init_logging(cli.command.default_log_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    runtime.block_on(cli.run())
}

impl Command {
    /// The long-running commands report what they do at `info`; one-shot ones only warn.
    fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve(_) | Command::Send(_) => "info",
            Command::Skills(_) | Command::Call(_) => "warn",
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default_level`).
pub(crate) fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Fails only when a subscriber is already set (an embedding program's); keep that one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn call_takes_a_name_and_optional_json() {
        let cli = Cli::try_parse_from(["skillbridge", "call", "word_count", r#"{"text":"a b"}"#]).unwrap();
        let Command::Call(args) = cli.command else {
            panic!("expected call");
        };
        assert_eq!(args.name, "word_count");
        assert_eq!(args.arguments.as_deref(), Some(r#"{"text":"a b"}"#));
    }

    #[test]
    fn usage_errors_exit_with_two() {
        let error = Cli::try_parse_from(["skillbridge", "call"]).unwrap_err();
        assert_eq!(error.exit_code(), i32::from(exit::USAGE));
    }
}
