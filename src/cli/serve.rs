//! `skillbridge serve`: open sessions with the skills as dynamic tools, answer every tool call Codex makes to
//! them until SIGINT/SIGTERM, then shut down gracefully.
//!
//! This file holds the command line (flags, signals, output, exit code). The work is split so that tests can
//! run the whole loop in-process and either upstream slots in:
//! - `runtime.rs`: [`UpstreamRuntime`], the upstream-specific half (open sessions, feed calls, send a prompt,
//!   clean up): [`CodexManagerRuntime`] and [`AppServerRuntime`];
//! - `serving.rs`: [`Serving`], a running bridge: the dispatcher, admin endpoint and statistics every upstream
//!   shares; [`serve_with`] starts one and serves until a shutdown future completes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::settings::{AppServerArgs, ManagerArgs, Secret, ServeSettings, SessionArgs};
use crate::skill::Catalog;

pub use super::runtime::{
    APP_SERVER_SHUTDOWN_GRACE, AppServerRuntime, CodexManagerRuntime, SessionPlan, UpstreamRuntime, runtime_for,
};
pub use super::serving::{ANSWER_DEADLINE_AFTER_GRACE, BridgeSettings, ServeError, ServeReport, Serving, serve_with};

const SERVE_ABOUT: &str = "Serve the skills to Codex through codex-manager (or codex app-server) until SIGINT/SIGTERM";

const SERVE_LONG_ABOUT: &str = "\
Serve the skills to Codex through codex-manager (or a codex app-server it spawns) until SIGINT/SIGTERM.

Creates one session (or --sessions N) whose dynamic tools are this binary's skills, or attaches to existing sessions
(--session ID), and answers every tool call made in them: calls arrive on codex-manager's websocket stream and from
pending-call listing (after every (re)connect and every --poll-interval); each runs once, at most --concurrency at a
time, and is answered through codex-manager's REST API, with retries.

Prints `session <id>` on stdout for each session served, then `admin http://<addr>` when the admin endpoint is on;
logs go to stderr (RUST_LOG=debug for more).
On SIGINT/SIGTERM it stops taking calls, lets running ones finish for up to --grace, answers the rest with
success:false, deletes the sessions it created if --delete-on-exit, and exits 0.

With --app-server [PATH] there is no codex-manager: serve spawns `PATH app-server` (default `codex` on PATH, with
the CODEX_HOME and login of the environment, or --codex-home), starts --sessions threads with the skills as dynamic
tools and answers their calls over the child's stdio; `session <id>` lines name the threads. If the child exits,
serve says why and exits 1, or with --restart starts a new child with fresh threads after a backoff (200ms doubling
to 30s); the calls of the dead child are gone with it, and --prompt is not sent again. On exit the child is
terminated. --session, --all-sessions and --delete-on-exit do not apply to it.

Settings are layered: flag > environment variable > TOML file (--config) > codex-manager profile (--profile) >
default. The TOML file has the tables [codex_manager] (url, prefix, timeout, bearer_token, rbac_token, rbac_role,
rbac_actor, profile, profile_file), [session] (cwd, model, approval_policy, sandbox), [serve] (sessions, attach,
prompt, poll_interval, concurrency, all_sessions, grace, delete_on_exit), [admin] (enabled, addr, token) and
[app_server] (enabled, program, codex_home, restart).
Durations are written like 500ms, 5s or 2m. Tokens are never printed or logged.";

const SERVE_EXAMPLES: &str = "\
Examples:
  # one session on the local codex-manager, admin endpoint on 127.0.0.1:7878
  skillbridge serve

  # three sessions that start working right away, cleaned up on exit
  skillbridge serve --sessions 3 --prompt 'List the open tickets' --delete-on-exit

  # a remote codex-manager; the token comes from the environment
  CODEX_MANAGER_BEARER_TOKEN=... skillbridge serve --manager-url http://10.0.0.5:3001

  # serve sessions created elsewhere (their tool catalog was fixed when they were created)
  skillbridge serve --session 01a20b31-f8aa-7ee1-a8ed-f30e81e9ab3b

  # settings from a file, admin endpoint on all interfaces (requires a token)
  SKILLBRIDGE_ADMIN_TOKEN=... skillbridge serve --config skillbridge.toml --admin 0.0.0.0:7878

  # no codex-manager: spawn `codex app-server` (your Codex login), restart it if it dies
  skillbridge serve --app-server --restart --prompt 'Count the words of README.md'

  # a specific Codex build, two threads
  skillbridge serve --app-server ~/.cache/codex/bin/codex --sessions 2";

/// The flags of `skillbridge serve`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(about = SERVE_ABOUT, long_about = SERVE_LONG_ABOUT, after_long_help = SERVE_EXAMPLES)]
pub struct ServeArgs {
    /// codex-manager connection and settings file.
    #[command(flatten)]
    pub manager: ManagerArgs,

    /// How created sessions are set up.
    #[command(flatten)]
    pub session: SessionArgs,

    /// Serve through a spawned `codex app-server` instead of codex-manager.
    #[command(flatten)]
    pub app_server: AppServerArgs,

    /// With --app-server: when the child exits, start a new one (fresh threads) after a backoff of 200ms doubling
    /// to 30s, instead of exiting 1. [env: SKILLBRIDGE_RESTART]
    #[arg(long, help_heading = "codex app-server")]
    pub restart: bool,

    /// Create this many sessions with the skills as their dynamic tools. 0 is allowed with --session or
    /// --all-sessions. [env: SKILLBRIDGE_SESSIONS] [default: 1, or 0 when --session is given]
    #[arg(long, value_name = "N", help_heading = "Sessions")]
    pub sessions: Option<usize>,

    /// Also serve this existing session (repeatable). Its tool catalog was fixed when it was created: skills
    /// added since then are not visible to its model.
    #[arg(long = "session", value_name = "ID", help_heading = "Sessions")]
    pub attach: Vec<String>,

    /// Send this message to each created session once the bridge is listening, so work starts right away.
    /// [env: SKILLBRIDGE_PROMPT]
    #[arg(long, value_name = "TEXT", help_heading = "Sessions")]
    pub prompt: Option<String>,

    /// Answer calls of every session on the codex-manager, not only the ones served here.
    /// [env: SKILLBRIDGE_ALL_SESSIONS]
    #[arg(long, help_heading = "Sessions")]
    pub all_sessions: bool,

    /// Delete the sessions this bridge created when it exits (attached ones are left alone).
    /// [env: SKILLBRIDGE_DELETE_ON_EXIT]
    #[arg(long, help_heading = "Sessions")]
    pub delete_on_exit: bool,

    /// How often to list pending tool calls, besides after every (re)connect: the safety net for calls
    /// published while no socket was connected. [env: SKILLBRIDGE_POLL_INTERVAL] [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = super::settings::parse_duration, help_heading = "Dispatch")]
    pub poll_interval: Option<Duration>,

    /// Skills running at once, at most; further calls wait for a slot without holding up the stream.
    /// [env: SKILLBRIDGE_CONCURRENCY] [default: 64]
    #[arg(long, value_name = "N", help_heading = "Dispatch")]
    pub concurrency: Option<usize>,

    /// On SIGINT/SIGTERM, how long running calls may finish before they are answered success:false.
    /// [env: SKILLBRIDGE_GRACE] [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = super::settings::parse_duration, help_heading = "Dispatch")]
    pub grace: Option<Duration>,

    /// Address of the admin endpoint (/healthz, /readyz, /metrics, /skills, /sessions, /calls). A non-loopback
    /// address requires --admin-token. [env: SKILLBRIDGE_ADMIN] [default: 127.0.0.1:7878]
    #[arg(long, value_name = "ADDR", value_parser = super::settings::parse_admin_addr, conflicts_with = "no_admin", help_heading = "Admin endpoint")]
    pub admin: Option<SocketAddr>,

    /// Do not start the admin endpoint. [env: SKILLBRIDGE_NO_ADMIN]
    #[arg(long, help_heading = "Admin endpoint")]
    pub no_admin: bool,

    /// Bearer token the admin endpoint requires (all routes but /healthz and /readyz); also enables
    /// POST /skills/{name}/invoke. Never printed or logged. [env: SKILLBRIDGE_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN", help_heading = "Admin endpoint")]
    pub admin_token: Option<Secret>,
}

pub struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

impl ServeArgs {
    /// Runs `skillbridge serve` (see [`run`]).
    pub async fn run(self) -> ExitCode {
        run(self).await
    }
}

/// `skillbridge serve`: exit 0 after a signal-initiated shutdown, 1 when startup fails or the upstream stops by
/// itself, 2 for unusable settings.
pub async fn run(args: ServeArgs) -> ExitCode {
    super::init_logging("info");
    let mut signals = match ShutdownSignals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("skillbridge serve: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let settings = match ServeSettings::resolve(&args, &|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("skillbridge serve: {error}");
            return ExitCode::from(2);
        }
    };
    let catalog = match Catalog::from_registry() {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("skillbridge serve: {error}");
            return ExitCode::FAILURE;
        }
    };
    match &settings.app_server {
        Some(app_server) => {
            tracing::info!(skills = catalog.len(), program = %app_server.program.display(), "starting codex app-server")
        }
        None => tracing::info!(skills = catalog.len(), manager = %settings.manager.base_url(), "starting"),
    }
    let runtime = match runtime_for(&settings) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("skillbridge serve: {error}");
            return ExitCode::FAILURE;
        }
    };
    let bridge_settings = BridgeSettings::from(&settings);
    let delete_on_exit = settings.delete_on_exit;
    let serving = tokio::select! {
        started = Serving::start_with(Arc::clone(&runtime), bridge_settings, catalog) => match started {
            Ok(serving) => serving,
            Err(error) => {
                eprintln!("skillbridge serve: {error}");
                return ExitCode::FAILURE;
            }
        },
        signal = signals.recv() => {
            // Startup is abandoned midway; sessions created so far are cleaned up as on a normal exit.
            eprintln!("skillbridge serve: {signal} during startup; stopping");
            runtime.close(delete_on_exit).await;
            return ExitCode::SUCCESS;
        }
    };
    print_started(&serving);
    let serving_name = serving.upstream_name();
    let report = serving
        .run_until(async {
            let signal = signals.recv().await;
            tracing::info!(signal, "received");
        })
        .await;
    if report.answers_abandoned {
        eprintln!("skillbridge serve: some answers could not be delivered before exit; those calls stay pending");
    }
    if report.upstream_ended {
        match &report.upstream_error {
            Some(reason) => eprintln!("skillbridge serve: the {serving_name} upstream stopped: {reason}"),
            None => eprintln!("skillbridge serve: the {serving_name} upstream stopped"),
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `session <id>` per served session, then `admin http://<addr>` when the endpoint is on (its real port, useful
/// with `--admin 127.0.0.1:0`).
fn print_started(serving: &Serving) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for session in serving.sessions() {
        let _ = writeln!(out, "session {}", session.id);
    }
    if let Some(addr) = serving.admin_addr() {
        let _ = writeln!(out, "admin http://{addr}");
    }
    let _ = out.flush();
}
