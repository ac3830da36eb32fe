//! One group's processes: a `redis-server` of the run's own, the codex-manager double (checking that every answer
//! names its own call), and bridges (`bench-bridge serve --cluster ..`), each noting its skill runs in a run log of
//! its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use skillbridge_bench::clients::{Bins, BridgeOptions, Client, Kind, RUN_LOG_ENV};
use skillbridge_bench::double::{Burst, Double, DoubleOptions};
use skillbridge_bench::process::SpawnOptions;
use skillbridge_bench::runs::RunLog;
use skillbridge_doubles::redis::RedisServer;

/// The skill the harness calls: it answers its call's id, after `sleep_ms`.
pub const TOOL: &str = "echo_call";

/// The sessions of a group, all created by its first bridge.
pub const SESSIONS: usize = 8;

/// How long a bridge may take to serve every session of the group.
const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// What every run needs.
pub struct Ctx {
    pub bins: Bins,
    /// Where the processes' logs and the run logs go.
    pub log_dir: PathBuf,
}

/// How the bridges of a group run.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// `--concurrency`.
    pub concurrency: usize,
    /// `--cluster-lease`, and whether to join the group at all (`None`: a bridge on its own).
    pub lease: Option<Duration>,
    /// `--poll-interval`.
    pub poll_interval: Duration,
}

/// One bridge of the group.
pub struct Member {
    pub name: String,
    pub client: Client,
    pub run_log: RunLog,
}

/// A store, a double and the bridges of one group.
pub struct Group<'a> {
    ctx: &'a Ctx,
    tag: String,
    pub redis: RedisServer,
    /// Shared with the bursts in flight, which outlive a bridge that is killed.
    pub double: Arc<Double>,
    pub members: Vec<Member>,
    settings: BridgeSettings,
    pub threads: Vec<String>,
}

impl<'a> Group<'a> {
    /// Starts the store and the double; no bridge yet.
    pub async fn start(ctx: &'a Ctx, tag: &str, settings: BridgeSettings) -> Result<Group<'a>> {
        let redis = RedisServer::start().await.context("starting redis-server")?;
        let options = DoubleOptions {
            record: false,
            check_answer_identity: true,
        };
        let double = Double::start_with(
            &ctx.bins.path("bench-double"),
            &ctx.log_dir,
            &format!("double-{tag}"),
            options,
        )
        .await?;
        Ok(Group {
            ctx,
            tag: tag.to_owned(),
            redis,
            double: Arc::new(double),
            members: Vec::new(),
            settings,
            threads: Vec::new(),
        })
    }

    /// Starts `count` bridges: the first creates the group's sessions, the others create none and serve the
    /// group's. Returns once every bridge serves all of them.
    pub async fn start_bridges(&mut self, count: usize) -> Result<()> {
        for _ in 0..count {
            let index = self.members.len();
            let sessions = if index == 0 { SESSIONS } else { 0 };
            self.start_bridge(sessions).await?;
        }
        for member in &self.members {
            wait_serving(member, SESSIONS).await?;
        }
        Ok(())
    }

    async fn start_bridge(&mut self, sessions: usize) -> Result<()> {
        let name = format!("{}-b{}", self.tag, self.members.len() + 1);
        let run_log = RunLog::new(self.ctx.log_dir.join(format!("runs-{name}.log")));
        let settings = &self.settings;
        let mut args: Vec<String> = vec![
            "--sessions".into(),
            sessions.to_string(),
            "--concurrency".into(),
            settings.concurrency.to_string(),
            "--poll-interval".into(),
            format!("{}ms", settings.poll_interval.as_millis()),
        ];
        if let Some(lease) = settings.lease {
            args.extend([
                "--cluster".into(),
                self.redis.url(),
                "--cluster-group".into(),
                self.tag.clone(),
                "--cluster-name".into(),
                name.clone(),
                "--cluster-lease".into(),
                format!("{}ms", lease.as_millis()),
            ]);
        }
        let options = BridgeOptions {
            args,
            spawn: SpawnOptions {
                env: vec![(RUN_LOG_ENV.to_owned(), run_log.path().into())],
                fd_limit: None,
            },
            own_sessions: sessions > 0,
        };
        let client = Client::start_bridge(
            Kind::Bridge,
            &self.ctx.bins,
            &self.double,
            &self.ctx.log_dir,
            &name,
            &options,
        )
        .await?;
        if sessions > 0 {
            let member = Member {
                name: name.clone(),
                client,
                run_log,
            };
            self.threads = served(&member).await?;
            self.members.push(member);
        } else {
            self.members.push(Member { name, client, run_log });
        }
        Ok(())
    }

    /// Starts one burst per session: `per_session` calls of [`TOOL`] taking `skill_ms` each, at most `outstanding`
    /// unanswered, giving up after `timeout`. The bursts outlive a bridge that is killed meanwhile.
    pub fn bursts(
        &self,
        skill_ms: u64,
        per_session: usize,
        outstanding: usize,
        timeout: Duration,
    ) -> Vec<tokio::task::JoinHandle<Result<Burst>>> {
        let arguments = serde_json::json!({"sleep_ms": skill_ms});
        self.threads
            .iter()
            .map(|thread| {
                let (double, thread, arguments) = (Arc::clone(&self.double), thread.clone(), arguments.clone());
                tokio::spawn(async move {
                    double
                        .burst(&thread, TOOL, &arguments, per_session, outstanding, timeout)
                        .await
                })
            })
            .collect()
    }

    /// Kills bridge `index` (SIGKILL) and returns its name and run log.
    pub async fn kill(&mut self, index: usize) -> Result<(String, RunLog)> {
        let member = self.members.remove(index);
        member.client.kill().await?;
        Ok((member.name, member.run_log))
    }

    /// Stops every bridge (SIGTERM) and the double.
    pub async fn stop(self) -> Result<()> {
        for member in self.members {
            member.client.stop().await?;
        }
        let double = Arc::into_inner(self.double).context("a burst still holds the double")?;
        double.stop().await
    }
}

/// The sessions a bridge serves now, from its `/sessions`.
pub async fn served(member: &Member) -> Result<Vec<String>> {
    let body = admin_get(member, "/sessions").await?;
    let sessions = body.as_array().context("/sessions is not a list")?;
    Ok(sessions
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect())
}

/// GET an admin route of a bridge as JSON.
pub async fn admin_get(member: &Member, route: &str) -> Result<Value> {
    let admin = member
        .client
        .admin_url()
        .context("a bridge without an admin endpoint")?;
    let response = reqwest::get(format!("{admin}{route}")).await?;
    Ok(response.error_for_status()?.json().await?)
}

/// Whether a bridge's `/readyz` says 200.
pub async fn ready(member: &Member) -> Result<bool> {
    let admin = member
        .client
        .admin_url()
        .context("a bridge without an admin endpoint")?;
    Ok(reqwest::get(format!("{admin}/readyz")).await?.status() == reqwest::StatusCode::OK)
}

async fn wait_serving(member: &Member, sessions: usize) -> Result<()> {
    let deadline = Instant::now() + SERVE_TIMEOUT;
    loop {
        let served = served(member).await?.len();
        if served >= sessions {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} serves {served} of the group's {sessions} sessions after {SERVE_TIMEOUT:?}",
                member.name
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
