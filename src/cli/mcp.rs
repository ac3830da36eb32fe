//! `skillbridge mcp`: the skills served as an MCP server, over stdio (for a client that starts this binary, as
//! Codex does for `[mcp_servers.NAME]`) or streamable HTTP (`--http ADDR`), through the same [`Bridge`] as `serve`.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;

use secrecy::SecretString;

use super::settings::{self, AdminTable, ConfigArgs, Layer};
use super::{App, Failure};
use crate::admin::AdminToken;
use crate::bridge::Bridge;
use crate::upstream::McpUpstream;

const MCP_ABOUT: &str = "Serve the skills as an MCP server, on stdio or streamable HTTP";

const MCP_LONG_ABOUT: &str = "\
Serve the skills as an MCP (Model Context Protocol) server, for Codex CLI, IDE agents and any other MCP client.

On stdio by default: the client starts this command and speaks MCP on its stdin and stdout (stdout carries only
protocol messages; logs go to stderr), and it ends when the client closes stdin. With --http ADDR it serves
streamable HTTP at http://ADDR/mcp instead, until SIGINT/SIGTERM; an address other than loopback needs --token,
which every request must then send as `Authorization: Bearer <token>`.

tools/list gives each skill's name, description, input schema, title and hints (readOnlyHint, destructiveHint,
idempotentHint, openWorldHint) and, for a skill returning typed JSON, its output schema. tools/call runs the skill
as `serve` does: arguments checked against its schema, its deadline, at most --concurrency at once, counted in
/metrics. A failure is a result with isError: true; an unknown tool is a protocol error; a cancelled request
(notifications/cancelled) fires the skill's cancellation token.

The admin endpoint (/healthz, /readyz, /metrics, /skills, /calls, the dashboard) listens beside the HTTP server on
--admin (default 127.0.0.1:7878); on stdio only when --admin is given, since a client may start one server per
session. Skills' states are read from [skills.NAME] tables of --config, as for serve.";

const MCP_EXAMPLES: &str = "\
Examples:
  # in Codex's config.toml (CODEX_HOME/config.toml):
  #   [mcp_servers.tools]
  #   command = \"/usr/local/bin/skillbridge\"
  #   args = [\"mcp\"]
  skillbridge mcp

  # only the read-only skills (Codex runs readOnlyHint tools without asking)
  skillbridge mcp --read-only

  # streamable HTTP on loopback, the admin endpoint beside it
  skillbridge mcp --http 127.0.0.1:8808

  # on every interface, behind a token
  SKILLBRIDGE_MCP_TOKEN=... skillbridge mcp --http 0.0.0.0:8808";

/// The flags of `skillbridge mcp`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(about = MCP_ABOUT, long_about = MCP_LONG_ABOUT, after_long_help = MCP_EXAMPLES)]
pub struct McpArgs {
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio. An address other than loopback needs --token.
    #[arg(long, env = "SKILLBRIDGE_MCP_HTTP", value_name = "ADDR", help_heading = "MCP")]
    http: Option<SocketAddr>,
    /// Bearer token every HTTP request must carry. Never printed or logged.
    #[arg(id = "mcp_token", long = "token", env = "SKILLBRIDGE_MCP_TOKEN", hide_env_values = true, value_name = "TOKEN",
          value_parser = settings::parse_secret, requires = "http", help_heading = "MCP")]
    token: Option<SecretString>,
    /// List only these skills and the skills with these tags (comma separated); a call to any other is a protocol
    /// error. [default: every skill]
    #[arg(
        long,
        env = "SKILLBRIDGE_TOOLS",
        value_name = "NAME_OR_TAG,..",
        value_delimiter = ',',
        help_heading = "MCP"
    )]
    tools: Vec<String>,
    /// Leave these skills, and the skills with these tags, out (comma separated).
    #[arg(
        long,
        env = "SKILLBRIDGE_EXCLUDE_TOOLS",
        value_name = "NAME_OR_TAG,..",
        value_delimiter = ',',
        help_heading = "MCP"
    )]
    exclude_tools: Vec<String>,
    /// List only the skills annotated read_only.
    #[arg(long, env = "SKILLBRIDGE_READ_ONLY", num_args = 0, default_missing_value = "true",
          value_parser = settings::parse_bool, help_heading = "MCP")]
    read_only: Option<bool>,
    /// Skills running at once, at most; further calls wait for a slot. [default: 64]
    #[arg(long, env = "SKILLBRIDGE_CONCURRENCY", value_name = "N", help_heading = "MCP")]
    concurrency: Option<NonZeroUsize>,
    #[command(flatten)]
    admin: AdminTable,
    #[command(flatten)]
    config: ConfigArgs,
}

impl McpArgs {
    /// Runs `skillbridge mcp`: exit 0 when the stdio client disconnects or after SIGINT/SIGTERM, 1 when the
    /// server cannot start, 2 for unusable settings.
    pub async fn run_with(self, app: &App) -> ExitCode {
        self.serve(app).await.unwrap_or_else(|failure| failure.exit("mcp"))
    }

    async fn serve(self, app: &App) -> Result<ExitCode, Failure> {
        let (bridge, upstream) = self.bridge(app)?;
        let stdio = self.http.is_none();
        bridge.start().await?;
        if !stdio {
            print_started(&bridge, &upstream).await;
        }
        let shutdown = async {
            let mut signals = super::serve::ShutdownSignals::install().ok();
            match signals.as_mut() {
                Some(signals) => tracing::info!(signal = signals.recv().await, "received"),
                None => std::future::pending().await,
            }
        };
        bridge.run(shutdown).await?;
        Ok(ExitCode::SUCCESS)
    }

    fn bridge(&self, app: &App) -> Result<(Bridge, Arc<McpUpstream>), Failure> {
        let mut file = settings::load_config(self.config.config.as_deref())?;
        let (states, _) = app.resolve(std::mem::take(&mut file.skills))?;
        let toolset = settings::toolset_of(&self.tools, &self.exclude_tools, self.read_only.unwrap_or(false));
        let upstream = match self.http {
            Some(addr) => {
                if !addr.ip().is_loopback() && self.token.is_none() {
                    return Err(Failure::usage(format!(
                        "--http {addr} is not a loopback address: it needs --token (or SKILLBRIDGE_MCP_TOKEN)"
                    )));
                }
                McpUpstream::http(addr, self.token.clone())
            }
            None => McpUpstream::stdio(),
        };
        let admin = self.admin.clone().or(file.admin);
        let admin_addr = match (admin.enabled, admin.addr) {
            (Some(false), _) => None,
            (_, Some(addr)) => Some(addr),
            // Beside an HTTP server as for serve; a stdio server is one of many a client may start.
            (_, None) => self.http.map(|_| settings::DEFAULT_ADMIN_ADDR),
        };
        if let Some(addr) = admin_addr {
            crate::admin::check_exposure(addr, admin.token.is_some())
                .map_err(|error| Failure::usage(error.to_string()))?;
        }
        let upstream = Arc::new(upstream.toolset(toolset));
        let mut bridge = Bridge::builder()
            .states(states)
            .skills(app.runtime_skills().iter().cloned())
            .upstream(Arc::clone(&upstream))
            .concurrency(
                self.concurrency
                    .map_or(crate::bridge::DEFAULT_CONCURRENCY, NonZeroUsize::get),
            );
        if let Some(addr) = admin_addr {
            bridge = bridge.admin_addr(addr);
        }
        if let Some(token) = &admin.token {
            bridge = bridge.admin_token(AdminToken::from(token.clone()));
        }
        Ok((bridge.build()?, upstream))
    }
}

/// Over HTTP: `mcp http://<addr>/mcp`, then `admin http://<addr>` when the endpoint is on (their real ports, useful
/// with port 0). Nothing on stdio, where stdout is the protocol's.
async fn print_started(bridge: &Bridge, upstream: &McpUpstream) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Some(addr) = upstream.local_addr() {
        let _ = writeln!(out, "mcp http://{addr}/mcp");
    }
    if let Some(addr) = bridge.admin_addr().await {
        let _ = writeln!(out, "admin http://{addr}");
    }
    let _ = out.flush();
}
