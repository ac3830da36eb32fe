//! `skillbridge serve`: a [`Bridge`] with the binary's skills, its settings from the command line, served until
//! SIGINT/SIGTERM.

use std::process::ExitCode;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::logging::{self, Tone};
use super::settings::{
    AdminTable, AppServerTable, ClusterTable, ConfigArgs, ManagerTable, ServeSettings, ServeTable, SessionTable,
};
use super::{App, Failure, exit, write_catalog};
use crate::bridge::Bridge;

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
default. --print-config prints them as such a TOML file: the tables [codex_manager], [session], [serve], [admin],
[app_server] and [cluster] with every key, and the [skills.NAME] tables the skills' states are built from (file only, e.g.
[skills.sql] databases = { main = \"/srv/main.db\" }). Durations are written like 500ms, 5s or 2m. Blank variables count as unset.
Tokens are never printed or logged.";

const SERVE_EXAMPLES: &str = "\
Examples:
  # one session on the local codex-manager, admin endpoint on 127.0.0.1:7878
  skillbridge serve

  # three sessions that start working right away, cleaned up on exit
  skillbridge serve --sessions 3 --prompt 'List the open tickets' --delete-on-exit

  # a remote codex-manager; the token comes from the environment
  CODEX_MANAGER_BEARER_TOKEN=... skillbridge serve --manager-url http://10.0.0.5:3001

  # codex-manager over TLS (https://, and wss:// for the stream), its certificate signed by a private CA
  skillbridge serve --manager-url https://cm.internal:8443 --manager-ca /etc/ssl/cm-ca.pem

  # serve sessions created elsewhere (their tool catalog was fixed when they were created)
  skillbridge serve --session 01a20b31-f8aa-7ee1-a8ed-f30e81e9ab3b

  # settings from a file, admin endpoint on all interfaces (requires a token)
  SKILLBRIDGE_ADMIN_TOKEN=... skillbridge serve --config skillbridge.toml --admin 0.0.0.0:7878

  # no codex-manager: spawn `codex app-server` (your Codex login), restart it if it dies
  skillbridge serve --app-server --restart --prompt 'Count the words of README.md'

  # a specific Codex build, two threads
  skillbridge serve --app-server ~/.cache/codex/bin/codex --sessions 2

  # one of several bridges sharing the work (run it on each machine); the others serve its session too
  SKILLBRIDGE_CLUSTER=redis://:secret@10.0.0.9:6379/0 skillbridge serve --cluster-group tickets";

/// The flags of `skillbridge serve`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(about = SERVE_ABOUT, long_about = SERVE_LONG_ABOUT, after_long_help = SERVE_EXAMPLES)]
pub struct ServeArgs {
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    #[command(flatten)]
    pub(super) manager: ManagerTable,
    #[command(flatten)]
    pub(super) session: SessionTable,
    #[command(flatten)]
    pub(super) serve: ServeTable,
    #[command(flatten)]
    pub(super) admin: AdminTable,
    #[command(flatten)]
    pub(super) app_server: AppServerTable,
    #[command(flatten)]
    pub(super) cluster: ClusterTable,
    /// With --app-server: when the child exits, start a new one (fresh threads) after a backoff of 200ms doubling
    /// to 30s, instead of exiting 1.
    #[arg(long, env = "SKILLBRIDGE_RESTART", num_args = 0, default_missing_value = "true",
          value_parser = super::settings::parse_bool, help_heading = "codex app-server")]
    pub(super) restart: Option<bool>,
}

/// SIGINT and SIGTERM, installed before the bridge starts so that neither is lost meanwhile.
pub(super) struct ShutdownSignals(Signal, Signal);

impl ShutdownSignals {
    pub(super) fn install() -> std::io::Result<Self> {
        Ok(Self(signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
    }

    /// Waits for the next signal and returns its name.
    pub(super) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.0.recv() => "SIGINT",
            _ = self.1.recv() => "SIGTERM",
        }
    }
}

impl ServeArgs {
    /// Runs `skillbridge serve`: exit 0 after a signal-initiated shutdown, 1 when startup fails or the upstream
    /// stops by itself, 2 for unusable settings.
    pub async fn run(self) -> ExitCode {
        self.run_with(&App::new()).await
    }

    /// Runs `skillbridge serve` with the states of `app`.
    pub async fn run_with(self, app: &App) -> ExitCode {
        self.serve(app).await.unwrap_or_else(|failure| failure.exit("serve"))
    }

    async fn serve(self, app: &App) -> Result<ExitCode, Failure> {
        let settings = ServeSettings::resolve(&self, app)?;
        if self.config.print_config {
            settings.config.print();
            return Ok(ExitCode::SUCCESS);
        }
        let mut signals = ShutdownSignals::install().map_err(|error| Failure {
            message: format!("cannot install signal handlers: {error}"),
            code: exit::FAILURE,
        })?;
        let bridge = settings.bridge.build()?;
        write_catalog(&self.config, &settings.config, &bridge)?;
        tracing::info!(
            upstream = bridge.upstream_name(),
            skills = bridge.catalog().len(),
            "starting"
        );
        tokio::select! {
            started = bridge.start() => started?,
            signal = signals.recv() => {
                // Startup is abandoned midway; what was created so far is cleaned up as on a normal exit.
                logging::say("serve", Tone::Notice, &format!("{signal} during startup; stopping"));
                bridge.shutdown().await;
                return Ok(ExitCode::SUCCESS);
            }
        }
        print_started(&bridge).await;
        let shutdown = async {
            let signal = signals.recv().await;
            tracing::info!(signal, "received");
        };
        let report = bridge.run(shutdown).await?;
        if !report.all_answered() {
            let message = "some answers could not be delivered before exit; those calls stay pending";
            logging::say("serve", Tone::Problem, message);
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `session <id>` per served session, then `admin http://<addr>` when the endpoint is on (its real port, useful
/// with `--admin 127.0.0.1:0`).
async fn print_started(bridge: &Bridge) {
    use std::io::Write;
    let admin = bridge.admin_addr().await;
    let mut out = std::io::stdout().lock();
    for session in bridge.sessions() {
        let _ = writeln!(out, "session {}", session.id);
    }
    if let Some(addr) = admin {
        let _ = writeln!(out, "admin http://{addr}");
    }
    let _ = out.flush();
}
