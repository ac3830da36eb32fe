//! The `codex app-server` child process: spawning it ([`AppServerCommand`]) with a log filter of its own, its
//! stderr into our logs at each line's own level, its exit watched and reported ([`ExitReport`]), and its end on
//! shutdown or drop ([`AppServerProcess`]).
//!
//! Graceful shutdown closes the child's stdin (the app-server exits on end of input) and kills it when the
//! grace period passes; dropping an [`AppServerProcess`] kills the child at once. It is never left running.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, watch};
use tracing::Level;

/// How many of the child's last stderr lines an [`ExitReport`] keeps.
pub(crate) const STDERR_TAIL_LINES: usize = 20;

/// The target the child's stderr lines are logged under.
const CODEX_LOG_TARGET: &str = "codex";

/// How to start `codex app-server`.
///
/// The child's stderr lines are logged under the target `codex`, at their own level. Its log filter is its own:
/// our `RUST_LOG` is not passed on (Codex logs at its defaults) unless [`log_filter`](Self::log_filter) sets one.
///
/// ```
/// use skillbridge::upstream::app_server::AppServerCommand;
///
/// let command = AppServerCommand::new("codex")
///     .codex_home("/tmp/codex-home")
///     .arg("-c")
///     .arg("model=\"o3\"");
/// assert_eq!(command.program().to_str(), Some("codex"));
/// ```
#[derive(Debug, Clone)]
pub struct AppServerCommand {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    codex_home: Option<PathBuf>,
    current_dir: Option<PathBuf>,
    log_filter: Option<String>,
}

impl AppServerCommand {
    /// Runs `<program> app-server`; `program` is a path or a name looked up on `PATH`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            codex_home: None,
            current_dir: None,
            log_filter: None,
        }
    }

    /// Adds an argument after `app-server` (e.g. `-c key=value`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable for the child (the rest of our environment is inherited).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets `CODEX_HOME` for the child (its config, auth and sessions directory).
    pub fn codex_home(mut self, path: impl Into<PathBuf>) -> Self {
        self.codex_home = Some(path.into());
        self
    }

    /// The child's log filter, its `RUST_LOG` (e.g. `debug`, or `warn,codex_core=info`). Without one the child
    /// gets no `RUST_LOG`, whatever ours is, and logs at Codex's defaults.
    pub fn log_filter(mut self, filter: impl Into<String>) -> Self {
        self.log_filter = Some(filter.into());
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(path.into());
        self
    }

    /// The program to run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Starts the child with piped stdin/stdout/stderr. Must be called inside a Tokio runtime.
    pub fn spawn(&self) -> Result<AppServerProcess, SpawnError> {
        let mut command = Command::new(&self.program);
        command
            .arg("app-server")
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Codex colours its log lines unless told not to; its lines are re-logged, in our colours if any.
            .env("NO_COLOR", "1")
            // Our filter is for our lines: Codex's DEBUG would flood them (hundreds of lines per turn).
            .env_remove("RUST_LOG")
            // A group of its own: a terminal's Ctrl-C reaches us, and we interrupt the turn and stop the child
            // ourselves, instead of Codex dying under calls that are still being answered.
            .process_group(0)
            .kill_on_drop(true);
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        if let Some(home) = &self.codex_home {
            command.env("CODEX_HOME", home);
        }
        if let Some(filter) = &self.log_filter {
            command.env("RUST_LOG", filter);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|source| SpawnError {
            program: self.program.clone(),
            source,
        })?;
        let pid = child.id();
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tracing::info!(program = %self.program.display(), pid, "codex app-server started");

        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        let stderr_done = tokio::spawn(log_stderr(stderr, pid, tail.clone()));
        let (exit_tx, exit_rx) = watch::channel(None);
        let (kill_tx, kill_rx) = oneshot::channel();
        let stop_requested = Arc::new(AtomicBool::new(false));
        let watched = Watched {
            pid,
            kill: kill_rx,
            stderr_done,
            tail,
            stop_requested: stop_requested.clone(),
            exit: exit_tx,
        };
        tokio::spawn(watch_exit(child, watched));
        Ok(AppServerProcess {
            pid,
            stdin: Some(stdin),
            stdout: Some(stdout),
            kill: Some(kill_tx),
            stop_requested,
            exit: exit_rx,
        })
    }
}

/// The child could not be started.
#[derive(Debug, thiserror::Error)]
#[error("could not start `{} app-server`: {source}", program.display())]
pub struct SpawnError {
    /// The program we tried to run.
    pub program: PathBuf,
    /// Why it failed (e.g. not found).
    #[source]
    pub source: std::io::Error,
}

/// How the child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    /// The exit status; `None` when waiting for the child failed.
    pub status: Option<ExitStatus>,
    /// `true` when we killed it (shutdown past its grace period, or drop).
    pub killed_by_us: bool,
    /// `true` when we had asked it to stop (closed its input) before it ended.
    pub stop_requested: bool,
    /// Its last stderr lines, oldest first: usually the reason for an unexpected exit.
    pub stderr_tail: Vec<String>,
}

impl ExitReport {
    /// `true` for exit code 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// `true` when the child ended as we asked: it exited 0 after we closed its input, or we killed it.
    pub fn expected(&self) -> bool {
        self.killed_by_us || (self.stop_requested && self.success())
    }

    /// The stderr line that most likely says why: the last `Error: ..` line (Codex follows it with a
    /// backtrace), else the last non-empty one.
    pub fn reason(&self) -> Option<&str> {
        let lines = || {
            self.stderr_tail
                .iter()
                .rev()
                .map(|line| line.trim())
                .filter(|line| !line.is_empty())
        };
        // Codex ends on a fatal `Error: ..` line; its `ERROR` log lines (say, a missing sandbox tool at start-up)
        // are rarely why the process ended.
        lines()
            .find(|line| line.starts_with("Error"))
            .or_else(|| lines().next())
    }
}

impl fmt::Display for ExitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whatever Codex last wrote (an ERROR line, often) is not why a child we asked to stop stopped.
        if self.stop_requested && self.success() {
            return write!(f, "codex app-server stopped");
        }
        match self.status {
            Some(status) => write!(f, "codex app-server exited ({status})")?,
            None => write!(f, "codex app-server ended (status unknown)")?,
        }
        if self.killed_by_us {
            write!(f, ", killed by skillbridge")?;
        }
        if let Some(reason) = self.reason() {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// A running `codex app-server`. Take its pipes once with [`take_stdio`](Self::take_stdio).
#[derive(Debug)]
pub struct AppServerProcess {
    pid: Option<u32>,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    kill: Option<oneshot::Sender<()>>,
    stop_requested: Arc<AtomicBool>,
    exit: watch::Receiver<Option<ExitReport>>,
}

impl AppServerProcess {
    /// The child's process id (`None` once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The child's stdout (read it) and stdin (write to it); `None` after the first call.
    pub fn take_stdio(&mut self) -> Option<(ChildStdout, ChildStdin)> {
        Some((self.stdout.take()?, self.stdin.take()?))
    }

    /// The exit report, if the child has ended.
    pub fn exit_report(&self) -> Option<ExitReport> {
        self.exit.borrow().clone()
    }

    /// Waits until the child ends, for whatever reason, and reports how.
    pub async fn exited(&self) -> ExitReport {
        wait_report(self.exit.clone()).await
    }

    /// A cloneable future-maker for the exit, for tasks that do not own the process.
    pub fn exit_watch(&self) -> ExitWatch {
        ExitWatch(self.exit.clone())
    }

    /// Marks the end that follows as asked for: call it before closing the stdin handed out by
    /// [`take_stdio`](Self::take_stdio), so that the exit it causes is reported as a stop, not as a failure.
    pub fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Relaxed);
    }

    /// Ends the child: closes its stdin (the app-server exits on end of input), waits up to `grace`, then
    /// kills it. Returns how it ended. The stdin handed out by [`take_stdio`](Self::take_stdio) must be
    /// dropped by its holder for the graceful path to work.
    pub async fn shutdown(mut self, grace: Duration) -> ExitReport {
        self.request_stop();
        self.stdin.take();
        let exit = self.exit.clone();
        if let Ok(report) = tokio::time::timeout(grace, wait_report(exit.clone())).await {
            return report;
        }
        tracing::warn!(
            pid = self.pid,
            ?grace,
            "codex app-server ignored end of input; killing it"
        );
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        wait_report(exit).await
    }
}

impl Drop for AppServerProcess {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// Waits for the child's exit without owning the [`AppServerProcess`].
#[derive(Debug, Clone)]
pub struct ExitWatch(watch::Receiver<Option<ExitReport>>);

impl ExitWatch {
    /// Waits until the child ends and reports how.
    pub async fn exited(&self) -> ExitReport {
        wait_report(self.0.clone()).await
    }
}

async fn wait_report(mut exit: watch::Receiver<Option<ExitReport>>) -> ExitReport {
    match exit.wait_for(Option::is_some).await {
        Ok(report) => report.clone().expect("waited for Some"),
        // The watcher task is gone without a report: only when the runtime is shutting down.
        Err(_) => ExitReport {
            status: None,
            killed_by_us: true,
            stop_requested: false,
            stderr_tail: Vec::new(),
        },
    }
}

/// What [`watch_exit`] needs besides the child.
struct Watched {
    pid: Option<u32>,
    kill: oneshot::Receiver<()>,
    stderr_done: tokio::task::JoinHandle<()>,
    tail: Arc<Mutex<VecDeque<String>>>,
    stop_requested: Arc<AtomicBool>,
    exit: watch::Sender<Option<ExitReport>>,
}

async fn watch_exit(mut child: Child, watched: Watched) {
    let Watched {
        pid,
        kill,
        stderr_done,
        tail,
        stop_requested,
        exit,
    } = watched;
    let (status, killed_by_us) = tokio::select! {
        status = child.wait() => (status, false),
        _ = kill => {
            if let Err(error) = child.start_kill() {
                tracing::warn!(pid, %error, "could not kill codex app-server");
            }
            (child.wait().await, true)
        }
    };
    // Let the stderr reader drain what the child wrote before it died: that is the reason for the exit.
    // Bounded, because a grandchild could hold the pipe open.
    let _ = tokio::time::timeout(Duration::from_secs(2), stderr_done).await;
    let status = match status {
        Ok(status) => Some(status),
        Err(error) => {
            tracing::warn!(pid, %error, "waiting for codex app-server failed");
            None
        }
    };
    let report = ExitReport {
        status,
        killed_by_us,
        stop_requested: stop_requested.load(Ordering::Relaxed),
        stderr_tail: crate::util::lock(&tail).iter().cloned().collect(),
    };
    if report.expected() {
        tracing::info!(pid, "{report}");
    } else {
        tracing::error!(pid, "{report}");
    }
    exit.send_replace(Some(report));
}

async fn log_stderr(stderr: ChildStderr, pid: Option<u32>, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let (level, text) = parse_stderr_line(&line);
                match level {
                    Level::ERROR => tracing::error!(target: CODEX_LOG_TARGET, pid, "{text}"),
                    Level::WARN => tracing::warn!(target: CODEX_LOG_TARGET, pid, "{text}"),
                    Level::INFO => tracing::info!(target: CODEX_LOG_TARGET, pid, "{text}"),
                    Level::DEBUG => tracing::debug!(target: CODEX_LOG_TARGET, pid, "{text}"),
                    Level::TRACE => tracing::trace!(target: CODEX_LOG_TARGET, pid, "{text}"),
                }
                let mut tail = crate::util::lock(&tail);
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(pid, %error, "reading codex app-server stderr failed");
                break;
            }
        }
    }
}

/// The level of one line of Codex's stderr and the text to log: a tracing line
/// (`2026-05-02T10:00:00.000000Z  WARN codex_core::x: message`) keeps its level and loses its timestamp (ours
/// replaces it); Codex's own `WARNING: ..` and `Error: ..` lines (written before its logging starts, or as it
/// dies) are warnings and errors; any other line (a backtrace, say) is logged whole at INFO.
fn parse_stderr_line(line: &str) -> (Level, &str) {
    if let Some((timestamp, rest)) = line.split_once(' ')
        && looks_like_a_timestamp(timestamp)
    {
        let rest = rest.trim_start();
        let (word, text) = rest.split_once(' ').unwrap_or((rest, ""));
        if let Some(level) = level_named(word) {
            return (level, text.trim_start());
        }
    }
    if line.starts_with("WARNING") {
        (Level::WARN, line)
    } else if line.starts_with("Error:") {
        (Level::ERROR, line)
    } else {
        (Level::INFO, line)
    }
}

/// The level tracing writes as `word`.
fn level_named(word: &str) -> Option<Level> {
    match word {
        "ERROR" => Some(Level::ERROR),
        "WARN" => Some(Level::WARN),
        "INFO" => Some(Level::INFO),
        "DEBUG" => Some(Level::DEBUG),
        "TRACE" => Some(Level::TRACE),
        _ => None,
    }
}

/// `2026-05-02T10:00:00.123456Z`: a date, then a time.
fn looks_like_a_timestamp(word: &str) -> bool {
    let bytes = word.as_bytes();
    bytes.len() >= 20
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn codex_lines_keep_their_level_and_lose_their_timestamp() {
        // As Codex 0.169 writes them with NO_COLOR=1 (and RUST_LOG=debug for the DEBUG one).
        let lines = [
            (
                "2026-12-02T04:17:58.909753Z  WARN codex_core_plugins::startup_sync: git sync failed error=exit 128",
                Level::WARN,
                "codex_core_plugins::startup_sync: git sync failed error=exit 128",
            ),
            (
                "2026-12-02T04:18:01.570483Z ERROR codex_app_server: Codex could not find bubblewrap on PATH.",
                Level::ERROR,
                "codex_app_server: Codex could not find bubblewrap on PATH.",
            ),
            (
                "2026-12-02T04:17:52.414210Z  INFO fs.read_file{sandboxed=false}: codex_exec_server::local_file_system: new",
                Level::INFO,
                "fs.read_file{sandboxed=false}: codex_exec_server::local_file_system: new",
            ),
            (
                "2026-12-02T04:17:58.793945Z DEBUG codex_config::loader::layer_io: /etc/codex/managed_config.toml not found",
                Level::DEBUG,
                "codex_config::loader::layer_io: /etc/codex/managed_config.toml not found",
            ),
            (
                "2026-12-02T04:17:58.793945Z TRACE codex_core::codex: polled",
                Level::TRACE,
                "codex_core::codex: polled",
            ),
        ];
        for (line, level, text) in lines {
            assert_eq!(parse_stderr_line(line), (level, text), "{line}");
        }
    }

    #[test]
    fn lines_without_a_level_are_read_by_their_prefix_or_logged_whole_at_info() {
        let warning = "WARNING: proceeding, even though we could not create PATH aliases";
        assert_eq!(parse_stderr_line(warning), (Level::WARN, warning));
        let fatal = "Error: unknown configuration field `no_such_setting`";
        assert_eq!(parse_stderr_line(fatal), (Level::ERROR, fatal));
        for plain in [
            "   0: std::backtrace::Backtrace::create",
            "2026-12-02 happened",
            "2026-12-02T04:17:58.793945Z NOTICE not a level",
            "",
        ] {
            assert_eq!(parse_stderr_line(plain), (Level::INFO, plain), "{plain:?}");
        }
    }

    fn report(code: i32, stop_requested: bool) -> ExitReport {
        ExitReport {
            status: Some(ExitStatus::from_raw(code << 8)),
            killed_by_us: false,
            stop_requested,
            stderr_tail: vec!["2026-12-02T04:18:01.570483Z ERROR codex_app_server: no bubblewrap".into()],
        }
    }

    #[test]
    fn a_stop_we_asked_for_is_a_stop_and_any_other_exit_says_why() {
        let stopped = report(0, true);
        assert!(stopped.expected());
        assert_eq!(stopped.to_string(), "codex app-server stopped");

        let unasked = report(0, false);
        assert!(!unasked.expected());
        assert!(
            unasked
                .to_string()
                .ends_with("(exit status: 0): 2026-12-02T04:18:01.570483Z ERROR codex_app_server: no bubblewrap"),
            "{unasked}"
        );

        let failed = report(1, true);
        assert!(!failed.expected(), "asked to stop, it failed");
        assert!(failed.to_string().contains("(exit status: 1): "), "{failed}");
    }
}
