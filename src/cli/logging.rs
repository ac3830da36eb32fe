//! The log output of the command line: stderr, filtered by `RUST_LOG`, in the `--log-format` chosen
//! ([`LogFormat`]), coloured only for a terminal and never with `NO_COLOR`.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

/// How log lines on stderr look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event: time, level, the call's span (request id, thread, tool), target, message, fields.
    #[default]
    Text,
    /// Like text, shorter: the span's name only before the target, its fields at the end of the line.
    Compact,
    /// Several lines per event, indented, with the source location: for reading by eye.
    Pretty,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, and `span`/`spans` with the call's
    /// `request_id`, `thread_id` and `tool`): for log shippers. Never coloured.
    Json,
}

/// Whether stderr carries JSON lines only (`--log-format json`), so that [`say`] logs instead of printing.
static JSON_ONLY: AtomicBool = AtomicBool::new(false);

/// How serious what a command tells its operator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    /// The command failed, or its work did.
    Problem,
    /// Worth knowing (a session kept).
    Notice,
}

/// Tells the operator `message` about `command` on stderr: `skillbridge COMMAND: message`, or with
/// `--log-format json` an event (`error` for a problem, `info` for a notice), so that every stderr line stays JSON.
pub(super) fn say(command: &str, tone: Tone, message: &str) {
    if !JSON_ONLY.load(Ordering::Relaxed) {
        eprintln!("skillbridge {command}: {message}");
        return;
    }
    match tone {
        Tone::Problem => tracing::error!(command, "{message}"),
        Tone::Notice => tracing::info!(command, "{message}"),
    }
}

/// Colour only for a terminal, and never when `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>).
fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Logs to stderr in `format`, filtered by `RUST_LOG`, else at `default_level` with Codex's lines (target `codex`)
/// let through at every level: the `codex app-server` child's own filter (`--codex-log`) decides which it writes.
pub(super) fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default_level},codex=trace")));
    let ansi =
        format != LogFormat::Json && colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // Fails only when a subscriber is already set (an embedding program's); keep that one.
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Compact => builder.compact().try_init(),
        LogFormat::Pretty => builder.pretty().try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
    };
    JSON_ONLY.store(format == LogFormat::Json && installed.is_ok(), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR does not count");
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(true, Some(OsStr::new("false"))), "any value turns colour off");
        assert!(!colour(false, None), "a pipe or a file gets no escape codes");
    }
}
