//! One row's processes: a codex-manager double that checks answer identity, a bridge serving it whose `echo_call`
//! runs are noted in the row's run log, and the sampler watching that bridge; then how a row ends: the bridge idle,
//! the double's findings read, the processes stopped.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use skillbridge_bench::clients::{Bins, BridgeOptions, Client, Kind, RUN_LOG_ENV};
use skillbridge_bench::double::{AnsweredTwice, Burst, Double, DoubleOptions, Misdelivery};
use skillbridge_bench::process::SpawnOptions;

use crate::plan::Plan;
use crate::sampler::{Sampler, Usage};
use skillbridge_bench::metrics::Metrics;
use skillbridge_bench::runs::{RunLog, Runs};

/// The skill every row calls: it answers its call's id.
pub const TOOL: &str = "echo_call";

/// How long a row waits for the bridge to finish the calls it holds before reading the results.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What every row needs.
pub struct Ctx {
    pub plan: Plan,
    pub bins: Bins,
    /// Where the processes' logs and the rows' run logs and journals go.
    pub log_dir: PathBuf,
}

/// How a row's processes run.
#[derive(Debug, Clone, Default)]
pub struct RigOptions {
    /// The double records every request (for rows that read the answers posted).
    pub record: bool,
    /// The bridge's flags besides upstream and admin; empty: one session of its own.
    pub bridge_args: Vec<String>,
    /// The bridge's descriptor limit.
    pub fd_limit: Option<u64>,
}

/// A row's double and bridge.
pub struct Rig<'a> {
    ctx: &'a Ctx,
    name: String,
    /// Shared with the bursts in flight, which outlive a bridge that is killed and replaced.
    double: Arc<Double>,
    bridge: Option<Client>,
    sampler: Option<Sampler>,
    /// The peaks of bridges already gone.
    usage: Usage,
    thread: String,
    run_log: RunLog,
    fd_limit: Option<u64>,
    bridges_started: usize,
}

/// What a row's processes left behind.
pub struct Ending {
    /// The peaks of the row's bridges.
    pub usage: Usage,
    /// Answers accepted for a call they do not name.
    pub misdelivered: Vec<Misdelivery>,
    /// Calls named by more than one accepted answer.
    pub answered_twice: Vec<AnsweredTwice>,
    /// The runs of `echo_call`.
    pub runs: Runs,
    /// The last bridge's stderr.
    pub bridge_log: String,
    /// How the last bridge exited on SIGTERM.
    pub bridge_exit: ExitStatus,
}

impl<'a> Rig<'a> {
    /// Starts the double and a bridge serving one session of its own (or as `options` say), and starts sampling the
    /// bridge.
    pub async fn start(ctx: &'a Ctx, name: &str, options: RigOptions) -> Result<Rig<'a>> {
        let double_options = DoubleOptions {
            record: options.record,
            check_answer_identity: true,
        };
        let double = Double::start_with(
            &ctx.bins.path("bench-double"),
            &ctx.log_dir,
            &format!("double-{name}"),
            double_options,
        )
        .await?;
        let run_log = RunLog::new(ctx.log_dir.join(format!("runs-{name}.log")));
        let mut rig = Rig {
            ctx,
            name: name.to_owned(),
            double: Arc::new(double),
            bridge: None,
            sampler: None,
            usage: Usage::default(),
            thread: String::new(),
            run_log,
            fd_limit: options.fd_limit,
            bridges_started: 0,
        };
        let args = if options.bridge_args.is_empty() {
            BridgeOptions::default().args
        } else {
            options.bridge_args
        };
        rig.start_bridge(args).await?;
        Ok(rig)
    }

    /// Starts a bridge with `args` (the previous one must be gone) and samples it; the session it serves becomes
    /// the row's thread.
    pub async fn start_bridge(&mut self, args: Vec<String>) -> Result<()> {
        if self.bridge.is_some() {
            bail!("{}: a bridge is already running", self.name);
        }
        let options = BridgeOptions {
            args,
            spawn: SpawnOptions {
                env: vec![(RUN_LOG_ENV.to_owned(), self.run_log.path().into())],
                fd_limit: self.fd_limit,
            },
            own_sessions: true,
        };
        let tag = match self.bridges_started {
            0 => self.name.clone(),
            n => format!("{}-{}", self.name, n + 1),
        };
        self.bridges_started += 1;
        let bridge = Client::start_bridge(
            Kind::Bridge,
            &self.ctx.bins,
            &self.double,
            &self.ctx.log_dir,
            &tag,
            &options,
        )
        .await?;
        self.sampler = Some(Sampler::start(bridge.pid(), self.double.port()?));
        self.thread = bridge.thread_id().to_owned();
        self.bridge = Some(bridge);
        Ok(())
    }

    /// Kills the bridge (SIGKILL) and waits for it.
    pub async fn kill_bridge(&mut self) -> Result<()> {
        let bridge = self.bridge.take().context("no bridge to kill")?;
        let usage = self.sampler.take().context("no sampler")?.stop()?;
        self.usage = self.usage.max(usage);
        bridge.kill().await?;
        Ok(())
    }

    /// The double.
    pub fn double(&self) -> &Double {
        &self.double
    }

    /// The bridge running now.
    pub fn bridge(&self) -> Result<&Client> {
        self.bridge.as_ref().context("the bridge is not running")
    }

    /// The session the bridge serves.
    pub fn thread(&self) -> &str {
        &self.thread
    }

    /// The run log.
    pub fn run_log(&self) -> &RunLog {
        &self.run_log
    }

    /// Issues `count` calls of [`TOOL`] with `arguments` on the row's thread, at most `outstanding` unanswered. The
    /// future holds what it needs, so the bridge may be killed and replaced while it runs.
    pub fn burst(
        &self,
        arguments: &Value,
        count: usize,
        outstanding: usize,
    ) -> impl Future<Output = Result<Burst>> + use<> {
        let double = Arc::clone(&self.double);
        let (thread, arguments) = (self.thread.clone(), arguments.clone());
        let timeout = self.ctx.plan.burst_timeout;
        async move {
            double
                .burst(&thread, TOOL, &arguments, count, outstanding, timeout)
                .await
        }
    }

    /// The bridge's `/metrics`.
    pub async fn metrics(&self) -> Result<Metrics> {
        Ok(Metrics::parse(&self.bridge()?.metrics().await?))
    }

    /// Waits until the bridge holds no call (running, queued or being answered).
    pub async fn wait_idle(&self) -> Result<()> {
        let deadline = Instant::now() + IDLE_TIMEOUT;
        loop {
            if self.metrics().await?.get("skillbridge_calls_in_flight") == 0.0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{}: the bridge still holds calls after {IDLE_TIMEOUT:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the row: waits for the bridge to be idle, reads what the double found and the runs, stops both.
    pub async fn finish(mut self) -> Result<Ending> {
        self.wait_idle().await?;
        let misdelivered = self.double.misdelivered().await?;
        let answered_twice = self.double.answered_twice().await?;
        let mut bridge = self.bridge.take().context("the bridge is not running")?;
        bridge.check_running()?;
        let usage = self.sampler.take().context("no sampler")?.stop()?;
        let log_path = bridge.log_path().to_owned();
        let bridge_exit = bridge.stop().await?;
        let bridge_log =
            std::fs::read_to_string(&log_path).with_context(|| format!("reading {}", log_path.display()))?;
        let double = Arc::into_inner(self.double).context("a burst still holds the double")?;
        double.stop().await?;
        Ok(Ending {
            usage: self.usage.max(usage),
            misdelivered,
            answered_twice,
            runs: self.run_log.read()?,
            bridge_log,
            bridge_exit,
        })
    }
}
