//! The clients under test, each a separate process answering the double's tool calls:
//! - `floor`: `bench-floor`, the least work that can answer a call;
//! - `bridge`: `bench-bridge serve`, the skillbridge bridge with the benchmark skills (started with the flags,
//!   variables and descriptor limit of [`BridgeOptions`]);
//! - `bridge+journal`: the same with `--journal` (each result on disk before its answer);
//! - `blocking`: `bench-blocking`, the blocking facade's stream-handler path (W4).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::double::Double;
use crate::process::{Process, SpawnOptions, free_port};

/// The variable naming the file where the bridge's `echo_call` skill notes `start <call_id>` and `done <call_id>`
/// for each run (unset: nowhere).
pub const RUN_LOG_ENV: &str = "SKILLBRIDGE_BENCH_RUN_LOG";

/// How long a client may take to become ready before the run fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `/readyz` is asked while a bridge starts (the resolution of start-to-ready).
const READY_POLL: Duration = Duration::from_millis(1);

/// Which client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The floor client.
    Floor,
    /// The skillbridge bridge.
    Bridge,
    /// The bridge recording each result in a journal file before answering.
    Journaled,
    /// The blocking facade's handler path.
    Blocking,
}

impl Kind {
    /// The name used in tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Bridge => "bridge",
            Kind::Journaled => "bridge+journal",
            Kind::Blocking => "blocking",
        }
    }
}

/// Where the benchmark's binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// Binaries in `dir` (a cargo target profile directory).
    pub fn new(dir: impl Into<PathBuf>) -> Bins {
        Bins { dir: dir.into() }
    }

    /// Binaries next to the running executable (a harness built with them).
    pub fn beside_this_executable() -> Result<Bins> {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().context("this executable has no directory")?;
        Ok(Bins::new(dir))
    }

    /// The binaries in `dir` (default: beside this executable), built first unless `build` is false, and checked
    /// to be there: what every harness does before it runs.
    pub fn ready(dir: Option<PathBuf>, build: bool) -> Result<Bins> {
        let bins = match dir {
            Some(dir) => Bins::new(dir),
            None => Bins::beside_this_executable()?,
        };
        if build {
            bins.build()?;
        }
        bins.check()?;
        Ok(bins)
    }

    /// Builds the benchmark binaries with the profile of their directory (`target/release` → `--release`).
    pub fn build(&self) -> Result<()> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = std::process::Command::new(cargo);
        command.args(["build", "-p", "skillbridge-bench", "--bins"]);
        match self.dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") => {}
            Some("release") => {
                command.arg("--release");
            }
            Some(profile) => {
                command.args(["--profile", profile]);
            }
            None => bail!(
                "cannot tell the build profile of {}; pass --no-build",
                self.dir.display()
            ),
        }
        println!("building the benchmark binaries: {command:?}");
        let status = command.status().context("running cargo build")?;
        if !status.success() {
            bail!("cargo build failed ({status})");
        }
        Ok(())
    }

    /// The path of binary `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Fails with the missing binaries' names.
    pub fn check(&self) -> Result<()> {
        let missing: Vec<&str> = ["bench-double", "bench-bridge", "bench-floor", "bench-blocking"]
            .into_iter()
            .filter(|name| !self.path(name).is_file())
            .collect();
        if !missing.is_empty() {
            bail!(
                "missing binaries in {}: {} (build them with `cargo build --release -p skillbridge-bench --bins`)",
                self.dir.display(),
                missing.join(", ")
            );
        }
        Ok(())
    }
}

/// How a bridge is started: `bench-bridge serve --manager-url <double> --admin 127.0.0.1:<free port>`, then these.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// The flags after the upstream and admin ones.
    pub args: Vec<String>,
    /// Variables and descriptor limit of the process.
    pub spawn: SpawnOptions,
    /// Whether the bridge creates or attaches to sessions (and prints `session <id>`); one that serves only the
    /// sessions of its group prints none.
    pub own_sessions: bool,
}

impl Default for BridgeOptions {
    /// One session of its own.
    fn default() -> Self {
        BridgeOptions {
            args: vec!["--sessions".into(), "1".into()],
            spawn: SpawnOptions::default(),
            own_sessions: true,
        }
    }
}

/// A running, ready client.
pub struct Client {
    kind: Kind,
    process: Process,
    thread_id: String,
    admin_url: Option<String>,
    start_to_ready: Duration,
    http: reqwest::Client,
}

impl Client {
    /// Starts a client of `kind` against `double` and waits until it is ready: the bridge when `/readyz` answers
    /// 200 (it creates its own session), the others when they print `ready` (their session is created first).
    pub async fn start(kind: Kind, bins: &Bins, double: &Double, log_dir: &Path, tag: &str) -> Result<Client> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let name = format!("{}-{tag}", kind.name());
        match kind {
            Kind::Floor | Kind::Blocking => {
                let thread_id = double.create_session().await?;
                let bin = bins.path(if kind == Kind::Floor {
                    "bench-floor"
                } else {
                    "bench-blocking"
                });
                let args = [double.base_url().to_owned(), thread_id.clone()];
                let mut process = Process::spawn(&name, &bin, &args, log_dir)?;
                process
                    .wait_line(READY_TIMEOUT, |line| (line.trim() == "ready").then_some(()))
                    .await?;
                let start_to_ready = process.spawned_at().elapsed();
                Ok(Client {
                    kind,
                    process,
                    thread_id,
                    admin_url: None,
                    start_to_ready,
                    http,
                })
            }
            Kind::Bridge | Kind::Journaled => {
                let mut options = BridgeOptions::default();
                if kind == Kind::Journaled {
                    let journal = log_dir.join(format!("{}-{tag}.redb", kind.name()));
                    // A journal left by an earlier run would answer from its results instead of running skills.
                    let _ = std::fs::remove_file(&journal);
                    options.args.push("--journal".into());
                    options.args.push(journal.display().to_string());
                }
                Client::start_bridge(kind, bins, double, log_dir, tag, &options).await
            }
        }
    }

    /// Starts a bridge with `options` and waits until `/readyz` answers 200.
    pub async fn start_bridge(
        kind: Kind,
        bins: &Bins,
        double: &Double,
        log_dir: &Path,
        tag: &str,
        options: &BridgeOptions,
    ) -> Result<Client> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let name = format!("{}-{tag}", kind.name());
        let admin = format!("127.0.0.1:{}", free_port()?);
        let mut args = ["serve", "--manager-url", double.base_url(), "--admin", &admin]
            .map(String::from)
            .to_vec();
        args.extend(options.args.iter().cloned());
        let mut process = Process::spawn_with(&name, &bins.path("bench-bridge"), &args, log_dir, &options.spawn)?;
        let admin_url = format!("http://{admin}");
        let start_to_ready = wait_ready(&mut process, &http, &format!("{admin_url}/readyz")).await?;
        let thread_id = if options.own_sessions {
            process
                .wait_line(READY_TIMEOUT, |line| {
                    line.strip_prefix("session ").map(|id| id.trim().to_owned())
                })
                .await?
        } else {
            String::new()
        };
        Ok(Client {
            kind,
            process,
            thread_id,
            admin_url: Some(admin_url),
            start_to_ready,
            http,
        })
    }

    /// Which client this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The session (thread) it serves.
    pub fn thread_id(&self) -> &str {
        &self.thread_id
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `http://127.0.0.1:PORT` of the bridge's admin endpoint; `None` for other clients.
    pub fn admin_url(&self) -> Option<&str> {
        self.admin_url.as_deref()
    }

    /// The stderr log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// From spawning the process until it was ready.
    pub fn start_to_ready(&self) -> Duration {
        self.start_to_ready
    }

    /// Fails when the process has died.
    pub fn check_running(&mut self) -> Result<()> {
        self.process.check_running()
    }

    /// The bridge's `skillbridge_calls_total` counters by `(skill, outcome)`; empty for other clients.
    pub async fn call_counts(&self) -> Result<BTreeMap<(String, String), u64>> {
        Ok(parse_call_counts(&self.metrics().await?))
    }

    /// The bridge's `/metrics` (Prometheus text); empty for other clients.
    pub async fn metrics(&self) -> Result<String> {
        let Some(admin) = &self.admin_url else {
            return Ok(String::new());
        };
        let response = self.http.get(format!("{admin}/metrics")).send().await?;
        Ok(response.error_for_status()?.text().await?)
    }

    /// Stops the client (SIGTERM).
    pub async fn stop(self) -> Result<ExitStatus> {
        self.process.stop().await
    }

    /// Kills the client (SIGKILL): it gets no chance to answer, record or clean up anything.
    pub async fn kill(self) -> Result<ExitStatus> {
        self.process.kill().await
    }
}

/// Polls `/readyz` until it answers 200; returns the time since the process was spawned.
async fn wait_ready(process: &mut Process, http: &reqwest::Client, url: &str) -> Result<Duration> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            return Ok(process.spawned_at().elapsed());
        }
        process.check_running()?;
        if Instant::now() >= deadline {
            bail!(
                "{url} did not answer 200 within {READY_TIMEOUT:?}{}",
                process.log_tail()
            );
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Reads `skillbridge_calls_total{skill="..",outcome=".."} N` samples from Prometheus text.
fn parse_call_counts(text: &str) -> BTreeMap<(String, String), u64> {
    let label = |labels: &str, key: &str| -> Option<String> {
        let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
        let end = labels[start..].find('"')? + start;
        Some(labels[start..end].to_owned())
    };
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("skillbridge_calls_total{")?;
            let (labels, value) = rest.split_once("} ")?;
            let key = (label(labels, "skill")?, label(labels, "outcome")?);
            Some((key, value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_counts_come_from_the_calls_total_family() {
        let text = "# HELP skillbridge_calls_total x\n# TYPE skillbridge_calls_total counter\n\
                    skillbridge_calls_total{skill=\"noop\",outcome=\"success\"} 12\n\
                    skillbridge_calls_total{skill=\"noop\",outcome=\"panicked\"} 1\n\
                    skillbridge_calls_in_flight 0\n";
        let counts = parse_call_counts(text);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[&("noop".into(), "success".into())], 12);
        assert_eq!(counts[&("noop".into(), "panicked".into())], 1);
    }
}
