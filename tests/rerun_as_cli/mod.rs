//! A test binary run again as a skills binary of its own `#[skill]`s: a test re-runs the binary as only one child
//! test ([`rerun`]), which finds the command line it was given ([`child_args`]) and runs it through
//! `skillbridge::cli::App` ([`run`]), then exits with its status. So `call`, `skills` and `send` run as a user's
//! binary would, from argument parsing to exit status, with the test file's skills.

#![allow(dead_code)] // each test binary uses a different subset

use std::process::{ExitCode, Output};
use std::time::Duration;

/// Where the child finds its command line: the arguments, as a JSON array.
const ARGS: &str = "SKILLBRIDGE_TEST_CHILD_ARGS";

/// Runs this test binary again as only its test `child` with the command line `args` (and `env`); its output.
pub async fn rerun(child: &str, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(ARGS, serde_json::to_string(args).unwrap())
        .envs(env.iter().copied())
        .env_remove("SKILLBRIDGE_CONFIG")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    tokio::time::timeout(timeout, command.output())
        .await
        .expect("the command finishes")
        .unwrap()
}

/// In the child test: the command line it was re-run with; `None` in a normal test run.
pub fn child_args() -> Option<Vec<String>> {
    let args = std::env::var(ARGS).ok()?;
    Some(serde_json::from_str(&args).expect("the arguments as a JSON array"))
}

/// Runs `args` through `app` as the binary `skillbridge`; its exit status (3 for one other than 0, 1 or 2).
pub fn run(app: skillbridge::cli::App, args: Vec<String>) -> i32 {
    let cli =
        <skillbridge::cli::Cli as clap::Parser>::try_parse_from(std::iter::once("skillbridge".to_owned()).chain(args))
            .expect("valid arguments");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let code = runtime.block_on(app.run_parsed(cli));
    let status = [0, 1, 2]
        .into_iter()
        .find(|&status| code == ExitCode::from(status))
        .unwrap_or(3);
    i32::from(status)
}
