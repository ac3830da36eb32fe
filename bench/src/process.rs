//! The processes a benchmark runs (the double and the clients): spawned with a clean environment (plus the variables
//! and descriptor limit a run asks for), stdout read line by line, stderr kept in a log file, stopped with SIGTERM
//! (then SIGKILL) or killed outright. Also the harness's own descriptor limit.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Environment variables that would change what a process under test does; they are removed for every child so
/// that a run does not depend on the shell it was started from.
const CLEARED_PREFIXES: &[&str] = &["CODEX_MANAGER_", "SKILLBRIDGE_", "RUST_LOG"];

/// How a child is started besides its program and arguments.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// Variables set for the child, after the [cleared](CLEARED_PREFIXES) ones are removed: a run passes the
    /// `SKILLBRIDGE_*` variables it means explicitly.
    pub env: Vec<(String, OsString)>,
    /// The child's `RLIMIT_NOFILE`, soft and hard.
    pub fd_limit: Option<u64>,
}

/// A running child process.
pub struct Process {
    name: String,
    child: tokio::process::Child,
    pid: u32,
    spawned_at: Instant,
    lines: mpsc::UnboundedReceiver<String>,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with `args`; stderr goes to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log_dir: &Path) -> Result<Process> {
        Process::spawn_with(name, program, args, log_dir, &SpawnOptions::default())
    }

    /// [`spawn`](Self::spawn) with variables and a descriptor limit.
    pub fn spawn_with(
        name: &str,
        program: &Path,
        args: &[String],
        log_dir: &Path,
        options: &SpawnOptions,
    ) -> Result<Process> {
        let log = log_dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if let Some(key) = key.to_str()
                && CLEARED_PREFIXES.iter().any(|prefix| key.starts_with(prefix))
            {
                command.env_remove(key);
            }
        }
        command.envs(options.env.iter().map(|(key, value)| (key, value)));
        if let Some(limit) = options.fd_limit {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: between fork and exec the closure only calls setrlimit, which is async-signal-safe, and
            // reads `limit`, a copy it owns.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} (is it built?)", program.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Process {
            name: name.to_owned(),
            child,
            pid,
            spawned_at,
            lines,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// When `spawn` started it.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Reads stdout lines until `pick` returns `Some`, at most `timeout`.
    pub async fn wait_line<T>(&mut self, timeout: Duration, mut pick: impl FnMut(&str) -> Option<T>) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some(found) = pick(&line) {
                        return Ok(found);
                    }
                }
                Ok(None) => bail!("{} closed its stdout{}", self.name, self.log_tail()),
                Err(_) => bail!(
                    "{} printed nothing expected within {timeout:?}{}",
                    self.name,
                    self.log_tail()
                ),
            }
        }
    }

    /// Fails when the process has already exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("{} exited ({status}){}", self.name, self.log_tail()),
        }
    }

    /// Sends SIGTERM and waits for the exit; kills the process if it does not exit within 15 s.
    pub async fn stop(mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if signalled && let Ok(status) = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            return Ok(status?);
        }
        self.child.kill().await?;
        let status = self.child.wait().await?;
        bail!(
            "{} did not exit on SIGTERM within {STOP_TIMEOUT:?}; killed ({status})",
            self.name
        )
    }

    /// Kills the process (SIGKILL: no chance to clean up) and waits for it.
    pub async fn kill(mut self) -> Result<ExitStatus> {
        self.child.kill().await?;
        Ok(self.child.wait().await?)
    }

    /// The last lines of the stderr log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            format!(" (stderr log {} is empty)", self.log.display())
        } else {
            format!("; stderr ({}):\n{tail}", self.log.display())
        }
    }
}

/// A loopback port that was free a moment ago (for a child that must be told its port up front).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Raises this process's soft descriptor limit to its hard limit (for a harness that opens thousands of sockets);
/// returns the new limit.
pub fn raise_fd_limit() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("reading RLIMIT_NOFILE");
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("raising RLIMIT_NOFILE");
        }
    }
    Ok(limit.rlim_cur)
}

/// Runs the harness `program` with `--quick --no-build --out <dir>/<out_name>` to its end, its output in files of
/// `dir`, killing it after `deadline`: how the smoke tests run a harness. Returns its exit status and what it
/// printed (stdout, then stderr).
pub fn run_quick(program: &Path, dir: &Path, out_name: &str, deadline: Duration) -> Result<(ExitStatus, String)> {
    std::fs::create_dir_all(dir)?;
    let (stdout_path, stderr_path) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let mut child = std::process::Command::new(program)
        .args(["--quick", "--no-build", "--out"])
        .arg(dir.join(out_name))
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > deadline {
            child.kill()?;
            bail!(
                "the quick run did not finish within {deadline:?}; output in {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let printed = std::fs::read_to_string(&stdout_path)? + &std::fs::read_to_string(&stderr_path)?;
    Ok((status, printed))
}
