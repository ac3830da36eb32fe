//! The `codex app-server` child process: spawning it ([`AppServerCommand`]), its stderr into our logs, its
//! exit watched and reported ([`ExitReport`]), and its end on shutdown or drop ([`AppServerProcess`]).
//!
//! Graceful shutdown closes the child's stdin (the app-server exits on end of input) and kills it when the
//! grace period passes; dropping an [`AppServerProcess`] kills the child at once. It is never left running.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, watch};

/// How many of the child's last stderr lines an [`ExitReport`] keeps.
pub(crate) const STDERR_TAIL_LINES: usize = 20;

/// How to start `codex app-server`.
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
            // Codex colours its log lines unless told not to; ours are plain.
            .env("NO_COLOR", "1")
            // A group of its own: a terminal's Ctrl-C reaches us, and we interrupt the turn and stop the child
            // ourselves, instead of Codex dying under calls that are still being answered.
            .process_group(0)
            .kill_on_drop(true);
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        if let Some(home) = &self.codex_home {
            command.env("CODEX_HOME", home);
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
        tokio::spawn(watch_exit(child, pid, kill_rx, stderr_done, tail, exit_tx));
        Ok(AppServerProcess {
            pid,
            stdin: Some(stdin),
            stdout: Some(stdout),
            kill: Some(kill_tx),
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
    /// Its last stderr lines, oldest first: usually the reason for an unexpected exit.
    pub stderr_tail: Vec<String>,
}

impl ExitReport {
    /// `true` for exit code 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
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

    /// Ends the child: closes its stdin (the app-server exits on end of input), waits up to `grace`, then
    /// kills it. Returns how it ended. The stdin handed out by [`take_stdio`](Self::take_stdio) must be
    /// dropped by its holder for the graceful path to work.
    pub async fn shutdown(mut self, grace: Duration) -> ExitReport {
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
            stderr_tail: Vec::new(),
        },
    }
}

async fn watch_exit(
    mut child: Child,
    pid: Option<u32>,
    kill: oneshot::Receiver<()>,
    stderr_done: tokio::task::JoinHandle<()>,
    tail: Arc<Mutex<VecDeque<String>>>,
    exit: watch::Sender<Option<ExitReport>>,
) {
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
        stderr_tail: crate::util::lock(&tail).iter().cloned().collect(),
    };
    if killed_by_us || report.success() {
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
                if line.contains(" ERROR ") || line.contains(" WARN ") || line.starts_with("WARNING") {
                    tracing::warn!(target: "skillbridge::codex", pid, "{line}");
                } else {
                    tracing::info!(target: "skillbridge::codex", pid, "{line}");
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
