//! Settings of `serve` and `send`, layered: command-line flag > environment variable > TOML file
//! (`--config skillbridge.toml`) > codex-manager CLI profile (`--profile NAME`, connection settings only) >
//! built-in defaults. `--print-config` prints the result as a TOML file of the same shape (tokens redacted).
//!
//! Each TOML table is one struct here, and the same struct holds its flags: clap reads the flag or its variable
//! (`env = ..`, each name written once), serde reads the file, and [`Layer::or`] stacks the two. The
//! `CODEX_MANAGER_*` variables are read by [`ManagerConfigBuilder::env_overrides`], as every codex-manager
//! client reads them. Blank variables count as unset. The tables are `[codex_manager]`, `[session]`, `[serve]`,
//! `[admin]`, `[send]` and `[app_server]`, with the keys of their structs below, and `[skills.<name>]`, read (from
//! the file only) by the states the binary builds from them ([`App`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::App;
use crate::admin::AdminToken;
use crate::bridge::{Bridge, BridgeBuilder, ClusterConfig};
use crate::manager::{
    CodexManager, ConfigError, CreateSession, ManagerConfig, ManagerConfigBuilder, default_profile_path,
};
use crate::skill::Toolset;
use crate::upstream::app_server::{AppServerCommand, RestartPolicy, ThreadStartParams};
use crate::upstream::{AppServerUpstream, CodexManagerUpstream};

/// Default pending-call listing interval.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long `serve` waits for codex-manager at start-up.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Default admin endpoint address.
pub(crate) const DEFAULT_ADMIN_ADDR: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 7878));
/// Default time `send` waits for the turn to finish.
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long running tool calls get to finish once `send`'s turn is over.
const SEND_CALLS_GRACE: Duration = Duration::from_secs(5);
/// The Codex CLI run by `--app-server` without a path: `codex`, looked up on `PATH`.
const DEFAULT_APP_SERVER_PROGRAM: &str = "codex";

/// The variables two commands read.
const CONCURRENCY_ENV: &str = "SKILLBRIDGE_CONCURRENCY";
const POLL_INTERVAL_ENV: &str = "SKILLBRIDGE_POLL_INTERVAL";

/// Why settings could not be resolved; the message names the flag, variable or file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SettingsError(String);

impl SettingsError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<ConfigError> for SettingsError {
    fn from(error: ConfigError) -> Self {
        Self(error.to_string())
    }
}

fn invalid(message: impl Into<String>) -> SettingsError {
    SettingsError(message.into())
}

/// Parses a duration such as `500ms`, `5s`, `2m` or `1h 30m` (the `humantime` format); a bare number is refused.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{text:?} needs a unit, e.g. {text}s or {text}ms"));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration like 500ms, 5s or 2m ({e})"))
}

pub(crate) fn parse_secret(text: &str) -> Result<SecretString, String> {
    if text.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(SecretString::from(text))
    }
}

fn parse_log_filter(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty (leave it out for Codex's own defaults)".into())
    } else {
        Ok(text.trim().to_owned())
    }
}

/// A switch: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean (true/false, 1/0, yes/no, on/off)")),
    }
}

/// `--no-admin` and its variable say the opposite of `[admin] enabled`.
fn parse_disabled(text: &str) -> Result<bool, String> {
    parse_bool(text).map(|disabled| !disabled)
}

/// Durations in the file are text: `"5s"`.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
    }

    pub(super) fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        value
            .map(|duration| humantime::format_duration(duration).to_string())
            .serialize(serializer)
    }
}

/// Tokens are read from the file, and printed redacted.
fn redacted<S: serde::Serializer>(value: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    value.as_ref().map(|_| "<redacted>").serialize(serializer)
}

/// One layer over another: the upper value where it has one.
pub(crate) trait Layer {
    fn or(self, lower: Self) -> Self;
}

impl<T> Layer for Option<T> {
    fn or(self, lower: Self) -> Self {
        Option::or(self, lower)
    }
}

impl<T> Layer for Vec<T> {
    fn or(self, lower: Self) -> Self {
        if self.is_empty() { lower } else { self }
    }
}

/// A TOML table whose struct also holds the table's flags, and stacks one layer of it over another.
macro_rules! table {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, clap::Args, Deserialize, Serialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name { $($(#[$field_meta])* pub $field: $ty,)* }

        impl Layer for $name {
            fn or(self, lower: Self) -> Self {
                Self { $($field: Layer::or(self.$field, lower.$field),)* }
            }
        }
    };
}

table! {
    /// `[codex_manager]`: the connection.
    pub struct ManagerTable {
        /// codex-manager base URL. [env: CODEX_MANAGER_API_BASE] [default: http://127.0.0.1:3001]
        #[arg(id = "manager_url", long = "manager-url", value_name = "URL", help_heading = "codex-manager")]
        pub url: Option<String>,
        /// Route prefix of the codex-manager API. [env: CODEX_MANAGER_API_PREFIX] [default: /api]
        #[arg(id = "manager_prefix", long = "manager-prefix", value_name = "PREFIX", help_heading = "codex-manager")]
        pub prefix: Option<String>,
        /// Timeout of each codex-manager request, e.g. 500ms, 30s. [env: CODEX_MANAGER_TIMEOUT_MS, in
        /// milliseconds] [default: 30s]
        #[arg(id = "manager_timeout", long = "manager-timeout", value_name = "DURATION", value_parser = parse_duration, help_heading = "codex-manager")]
        #[serde(with = "duration_text")]
        pub timeout: Option<Duration>,
        /// PEM file of the CA (one or several certificates) that signed an https:// codex-manager's certificate,
        /// trusted besides the system's CAs. [env: CODEX_MANAGER_CA]
        #[arg(id = "manager_ca", long = "manager-ca", value_name = "FILE", help_heading = "codex-manager")]
        pub ca: Option<PathBuf>,
        /// Bearer token sent to codex-manager. Prefer the variable: flags are visible to other users in `ps`.
        /// Never printed or logged. [env: CODEX_MANAGER_BEARER_TOKEN]
        #[arg(id = "manager_bearer_token", long = "manager-token", value_name = "TOKEN", value_parser = parse_secret, help_heading = "codex-manager")]
        #[serde(serialize_with = "redacted")]
        pub bearer_token: Option<SecretString>,
        /// RBAC token header (file or CODEX_MANAGER_RBAC_TOKEN).
        #[arg(skip)]
        #[serde(serialize_with = "redacted")]
        pub rbac_token: Option<SecretString>,
        /// RBAC role header (file or CODEX_MANAGER_RBAC_ROLE).
        #[arg(skip)]
        pub rbac_role: Option<String>,
        /// RBAC actor header (file or CODEX_MANAGER_RBAC_ACTOR).
        #[arg(skip)]
        pub rbac_actor: Option<String>,
        /// Take the codex-manager connection from this profile of the codex-manager CLI config file
        /// ($XDG_CONFIG_HOME/codex-manager/cli/config.json). Flags, variables and the TOML file override it.
        #[arg(long, value_name = "NAME", help_heading = "Configuration")]
        pub profile: Option<String>,
        /// The codex-manager CLI config file to read `--profile` from, instead of the default location.
        #[arg(long, value_name = "FILE", help_heading = "Configuration")]
        pub profile_file: Option<PathBuf>,
    }
}

table! {
    /// `[session]`: how created sessions (and app-server threads) are set up.
    pub struct SessionTable {
        /// Working directory of created sessions. [default: the current directory]
        #[arg(long, env = "SKILLBRIDGE_CWD", value_name = "DIR", help_heading = "Sessions")]
        pub cwd: Option<PathBuf>,
        /// Model of created sessions (Codex's default when unset).
        #[arg(long, env = "SKILLBRIDGE_MODEL", value_name = "MODEL", help_heading = "Sessions")]
        pub model: Option<String>,
        /// Approval policy of created sessions: untrusted, on-failure, on-request or never.
        #[arg(long, env = "SKILLBRIDGE_APPROVAL_POLICY", value_name = "POLICY", help_heading = "Sessions")]
        pub approval_policy: Option<String>,
        /// Filesystem sandbox of created sessions: read-only, workspace-write or danger-full-access.
        #[arg(long, env = "SKILLBRIDGE_SANDBOX", value_name = "MODE", help_heading = "Sessions")]
        pub sandbox: Option<String>,
        /// Offer created sessions only these skills and the skills with these tags (comma separated); a call to
        /// any other tool is answered "not offered in this session". [default: every skill]
        #[arg(long, env = "SKILLBRIDGE_TOOLS", value_name = "NAME_OR_TAG,..", value_delimiter = ',',
              help_heading = "Sessions")]
        pub tools: Option<Vec<String>>,
        /// Leave these skills, and the skills with these tags, out of created sessions (comma separated).
        #[arg(long, env = "SKILLBRIDGE_EXCLUDE_TOOLS", value_name = "NAME_OR_TAG,..", value_delimiter = ',',
              help_heading = "Sessions")]
        pub exclude_tools: Option<Vec<String>>,
        /// Offer created sessions only the skills annotated `read_only`.
        #[arg(long, env = "SKILLBRIDGE_READ_ONLY", num_args = 0, default_missing_value = "true",
              value_parser = parse_bool, help_heading = "Sessions")]
        pub read_only: Option<bool>,
    }
}

table! {
    /// `[serve]`: what `serve` serves and how.
    pub struct ServeTable {
        /// Create this many sessions with the skills as their dynamic tools. 0 is allowed with --session or
        /// --all-sessions. [default: 1, or 0 when --session is given]
        #[arg(long, env = "SKILLBRIDGE_SESSIONS", value_name = "N", help_heading = "Sessions")]
        pub sessions: Option<usize>,
        /// Also serve this existing session (repeatable). Its tool catalog was fixed when it was created: skills
        /// added since then are not visible to its model.
        #[arg(long = "session", value_name = "ID", help_heading = "Sessions")]
        pub attach: Vec<String>,
        /// Send this message to each created session once the bridge is listening, so work starts right away.
        #[arg(long, env = "SKILLBRIDGE_PROMPT", value_name = "TEXT", help_heading = "Sessions")]
        pub prompt: Option<String>,
        /// How often to list pending tool calls, besides after every (re)connect: the safety net for calls
        /// published while no socket was connected. A periodic listing waits (30 s at most) while 1,024 or more
        /// calls wait to run. [default: 5s]
        #[arg(long, env = POLL_INTERVAL_ENV, value_name = "DURATION", value_parser = parse_duration, help_heading = "Dispatch")]
        #[serde(with = "duration_text")]
        pub poll_interval: Option<Duration>,
        /// Skills running at once, at most; further calls wait for a slot without holding up the stream.
        /// [default: 64]
        #[arg(long, env = CONCURRENCY_ENV, value_name = "N", help_heading = "Dispatch")]
        pub concurrency: Option<NonZeroUsize>,
        /// Answer calls of every session on the codex-manager, not only the ones served here.
        #[arg(long, env = "SKILLBRIDGE_ALL_SESSIONS", num_args = 0, default_missing_value = "true",
              value_parser = parse_bool, help_heading = "Sessions")]
        pub all_sessions: Option<bool>,
        /// On SIGINT/SIGTERM, how long running calls may finish before they are answered success:false.
        /// [default: 10s]
        #[arg(long, env = "SKILLBRIDGE_GRACE", value_name = "DURATION", value_parser = parse_duration, help_heading = "Dispatch")]
        #[serde(with = "duration_text")]
        pub grace: Option<Duration>,
        /// How long to keep trying, with backoff, while codex-manager cannot be reached at start-up (refused,
        /// unresolvable, answering 5xx); meanwhile /healthz answers and /readyz says what serve waits for. 0 fails at
        /// once. [default: 60s]
        #[arg(long, env = "SKILLBRIDGE_STARTUP_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, help_heading = "Dispatch")]
        #[serde(with = "duration_text")]
        pub startup_timeout: Option<Duration>,
        /// Keep each recent call's arguments (4 KiB at most; parameters marked redact as "<redacted>") for the
        /// admin endpoint's /calls/ID, so that `skillbridge call --replay URL` can run it again.
        #[arg(long, env = "SKILLBRIDGE_RECORD_ARGUMENTS", num_args = 0, default_missing_value = "true",
              value_parser = parse_bool, help_heading = "Dispatch")]
        pub record_arguments: Option<bool>,
        /// Record each call's result in this file before answering it, so that after a crash a restarted serve
        /// answers completed calls from it instead of running them again.
        #[arg(long, env = "SKILLBRIDGE_JOURNAL", value_name = "FILE", help_heading = "Dispatch")]
        pub journal: Option<PathBuf>,
        /// Delete the sessions this bridge created when it exits (attached ones are left alone); with --app-server,
        /// archive its threads (`thread/archive`), so that they no longer show in its CODEX_HOME.
        #[arg(long, env = "SKILLBRIDGE_DELETE_ON_EXIT", num_args = 0, default_missing_value = "true",
              value_parser = parse_bool, help_heading = "Sessions")]
        pub delete_on_exit: Option<bool>,
        /// Groups of sessions created with toolsets of their own: `[[serve.session]]` tables of the settings
        /// file only. With any, `--sessions` defaults to 0.
        #[arg(skip)]
        pub session: Vec<SessionGroup>,
    }
}

table! {
    /// `[cluster]`: bridges on several machines sharing the work through Redis.
    pub struct ClusterTable {
        /// Share calls and sessions with the other bridges of the group through this Redis (or Valkey) store:
        /// redis://[:PASSWORD@]HOST:PORT/DB, rediss:// for TLS. Each call runs on one bridge of the group, its
        /// result stored before it is answered; the calls of a bridge that dies are taken over once their lease
        /// runs out; every bridge serves the sessions any of them created (so --sessions 0 is allowed). While the
        /// store cannot be reached no new call runs and /readyz says why. Prefer the variable for a URL with a
        /// password; it is printed and logged redacted.
        #[arg(id = "cluster_url", long = "cluster", env = "SKILLBRIDGE_CLUSTER", hide_env_values = true,
              value_name = "URL", help_heading = "Cluster")]
        #[serde(serialize_with = "redacted_url")]
        pub url: Option<String>,
        /// The group: bridges of one group share calls and sessions, groups on one store are independent.
        /// [default: skillbridge]
        #[arg(id = "cluster_group", long = "cluster-group", env = "SKILLBRIDGE_CLUSTER_GROUP", value_name = "NAME",
              help_heading = "Cluster")]
        pub group: Option<String>,
        /// This bridge's name in the group, unique in it (shown by /cluster). [default: HOST-PID]
        #[arg(id = "cluster_name", long = "cluster-name", env = "SKILLBRIDGE_CLUSTER_NAME", value_name = "NAME",
              help_heading = "Cluster")]
        pub name: Option<String>,
        /// How long a claim on a call lasts unless renewed (every third of it while the skill runs): how long the
        /// calls of a bridge that died wait before another bridge runs them. [default: 10s]
        #[arg(id = "cluster_lease", long = "cluster-lease", env = "SKILLBRIDGE_CLUSTER_LEASE", value_name = "DURATION",
              value_parser = parse_duration, help_heading = "Cluster")]
        #[serde(with = "duration_text")]
        pub lease: Option<Duration>,
    }
}

impl ClusterTable {
    /// The group to join, when a store is named.
    fn config(&self) -> Option<ClusterConfig> {
        let url = self.url.as_deref().map(str::trim).filter(|url| !url.is_empty())?;
        let mut config = ClusterConfig::new(url);
        if let Some(group) = &self.group {
            config = config.group(group.trim());
        }
        if let Some(name) = self.name.as_deref().map(str::trim).filter(|name| !name.is_empty()) {
            config = config.name(name);
        }
        if let Some(lease) = self.lease {
            config = config.lease(lease);
        }
        Some(config)
    }
}

fn redacted_url<S: serde::Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    value
        .as_deref()
        .map(|url| crate::manager::redact_url(url).into_owned())
        .serialize(serializer)
}

/// `[[serve.session]]`: `count` sessions (default 1) offered the skills `tools` names (skills or tags; every
/// skill when empty) less `exclude_tools`, only the `read_only` ones if set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionGroup {
    /// How many sessions of this group to create (default 1).
    pub count: Option<usize>,
    /// Skills and tags to offer (every skill when empty).
    pub tools: Vec<String>,
    /// Skills and tags to leave out.
    pub exclude_tools: Vec<String>,
    /// Offer only the skills annotated `read_only`.
    pub read_only: bool,
}

impl SessionGroup {
    fn toolset(&self) -> Toolset {
        toolset_of(&self.tools, &self.exclude_tools, self.read_only)
    }
}

/// The toolset of `--tools`, `--exclude-tools` and `--read-only` (blank names left out).
pub(crate) fn toolset_of<'a>(
    only: impl IntoIterator<Item = &'a String>,
    exclude: impl IntoIterator<Item = &'a String>,
    read_only: bool,
) -> Toolset {
    fn non_blank<'a>(names: impl IntoIterator<Item = &'a String>) -> impl Iterator<Item = &'a str> {
        names
            .into_iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
    }
    Toolset::all()
        .only(non_blank(only))
        .exclude(non_blank(exclude))
        .read_only(read_only)
}

table! {
    /// `[admin]`: the admin endpoint.
    pub struct AdminTable {
        /// Do not start the admin endpoint.
        #[arg(long = "no-admin", env = "SKILLBRIDGE_NO_ADMIN", num_args = 0, default_missing_value = "true",
              value_parser = parse_disabled, conflicts_with = "admin_addr", help_heading = "Admin endpoint")]
        pub enabled: Option<bool>,
        /// Address of the admin endpoint (/healthz, /readyz, /metrics, /skills, /sessions, /calls). A non-loopback
        /// address requires --admin-token. [default: 127.0.0.1:7878]
        #[arg(id = "admin_addr", long = "admin", env = "SKILLBRIDGE_ADMIN", value_name = "ADDR", help_heading = "Admin endpoint")]
        pub addr: Option<SocketAddr>,
        /// Bearer token the admin endpoint requires (all routes but /healthz and /readyz); also enables
        /// POST /skills/{name}/invoke. Never printed or logged.
        #[arg(long = "admin-token", env = "SKILLBRIDGE_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN",
              value_parser = parse_secret, help_heading = "Admin endpoint")]
        #[serde(serialize_with = "redacted")]
        pub token: Option<SecretString>,
    }
}

table! {
    /// `[send]`: the one turn of `send`.
    pub struct SendTable {
        /// Give up (and interrupt the turn) after this long. [default: 5m]
        #[arg(long, env = "SKILLBRIDGE_SEND_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
        #[serde(with = "duration_text")]
        pub timeout: Option<Duration>,
        /// Keep the session instead of deleting it at the end.
        #[arg(long, env = "SKILLBRIDGE_KEEP_SESSION", num_args = 0, default_missing_value = "true",
              value_parser = parse_bool)]
        pub keep_session: Option<bool>,
        /// With --app-server: keep the thread in CODEX_HOME instead of archiving it at the end.
        #[arg(long, env = "SKILLBRIDGE_KEEP_THREAD", num_args = 0, default_missing_value = "true",
              value_parser = parse_bool)]
        pub keep_thread: Option<bool>,
        /// Skills running at once, at most. [default: 64]
        #[arg(long, env = CONCURRENCY_ENV, value_name = "N")]
        pub concurrency: Option<NonZeroUsize>,
        /// How often to list pending tool calls besides after every (re)connect. [default: 5s]
        #[arg(long, env = POLL_INTERVAL_ENV, value_name = "DURATION", value_parser = parse_duration)]
        #[serde(with = "duration_text")]
        pub poll_interval: Option<Duration>,
    }
}

table! {
    /// `[app_server]`: driving `codex app-server` instead of codex-manager.
    pub struct AppServerTable {
        /// Spawn `codex app-server` and serve the skills over its stdio instead of through codex-manager. PATH is
        /// the Codex CLI (default: `codex` on PATH); the variable also takes true/false. Threads take the --cwd,
        /// --model, --approval-policy and --sandbox of sessions.
        #[arg(long = "app-server", env = "SKILLBRIDGE_APP_SERVER", value_name = "PATH", num_args = 0..=1,
              help_heading = "codex app-server")]
        #[serde(skip)]
        pub command_line: Option<Option<PathBuf>>,
        #[arg(skip)]
        pub enabled: Option<bool>,
        #[arg(skip)]
        pub program: Option<PathBuf>,
        /// CODEX_HOME of the spawned Codex (its config, login and thread history). [env: CODEX_HOME, inherited]
        /// [default: Codex's own, ~/.codex]
        #[arg(long, value_name = "DIR", help_heading = "codex app-server")]
        pub codex_home: Option<PathBuf>,
        /// Log filter of the spawned Codex (its RUST_LOG, e.g. info or warn,codex_core=debug); our RUST_LOG is not
        /// passed on. Its stderr lines are logged under the target `codex` at their own level (with RUST_LOG set,
        /// add codex=debug to it to see Codex's debug lines). [default: Codex's own]
        #[arg(id = "codex_log", long = "codex-log", env = "SKILLBRIDGE_CODEX_LOG", value_name = "FILTER",
              value_parser = parse_log_filter, help_heading = "codex app-server")]
        pub log: Option<String>,
        #[arg(skip)] // serve's --restart
        pub restart: Option<bool>,
    }
}

impl AppServerTable {
    /// The flags over the variables `--codex-home` stands for and over the file: CODEX_HOME, which the child
    /// would inherit anyway, beats the file's `codex_home`.
    fn layered(flags: &Self, file: Self) -> Self {
        let inherited = Self {
            codex_home: std::env::var_os("CODEX_HOME")
                .filter(|home| !home.is_empty())
                .map(PathBuf::from),
            ..Self::default()
        };
        flags.clone().with_command_line_read().or(inherited).or(file)
    }

    /// The command line's `--app-server [PATH]` (or its variable) as `enabled` and `program`: a value that reads
    /// as a boolean switches, any other is the program.
    fn with_command_line_read(mut self) -> Self {
        if let Some(value) = self.command_line.take() {
            let text = value.as_deref().map(|path| path.to_string_lossy().into_owned());
            match text.as_deref().map(parse_bool) {
                None => self.enabled = Some(true),
                Some(Ok(enabled)) => self.enabled = Some(enabled),
                Some(Err(_)) => (self.enabled, self.program) = (Some(true), value),
            }
        }
        self
    }
}

/// The settings file, and what `--print-config` prints.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) codex_manager: ManagerTable,
    pub(crate) session: SessionTable,
    pub(crate) serve: ServeTable,
    pub(crate) admin: AdminTable,
    pub(crate) send: SendTable,
    pub(crate) app_server: AppServerTable,
    pub(crate) cluster: ClusterTable,
    /// `[skills.<name>]`: the settings of skills, read by the states the binary builds from them
    /// ([`App::state_from_config`](super::App::state_from_config)).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) skills: BTreeMap<String, toml::Value>,
}

/// Where the settings file is and whether to print the result; shared by `serve` and `send`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML settings file (see `skillbridge serve --help` for its tables).
    #[arg(
        long,
        env = "SKILLBRIDGE_CONFIG",
        value_name = "FILE",
        help_heading = "Configuration"
    )]
    pub config: Option<PathBuf>,
    /// Print the settings this command would run with, as a TOML settings file (tokens redacted), and exit.
    #[arg(long, help_heading = "Configuration")]
    pub print_config: bool,
    /// Before connecting, write the tools this command offers to FILE: the `dynamicTools` JSON, as `skills --json`
    /// prints it for the upstream in use, so a deployment can review the exact tools before a rollout. Only the
    /// tools the sessions it creates are offered (--tools, --exclude-tools, --read-only; every group's, with
    /// [[serve.session]] groups).
    #[arg(long, value_name = "FILE", help_heading = "Configuration")]
    pub write_catalog: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self) -> Result<Config, SettingsError> {
        load_config(self.config.as_deref())
    }
}

/// The settings file at `path`, or the defaults of none.
pub(crate) fn load_config(path: Option<&Path>) -> Result<Config, SettingsError> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| invalid(format!("cannot read config file {}: {error}", path.display())))?;
    toml::from_str(&text).map_err(|error| invalid(format!("config file {}: {error}", path.display())))
}

/// The connection: profile < file < `CODEX_MANAGER_*` < flags. Returns it and the table `--print-config` shows.
fn manager(flags: &ManagerTable, file: &ManagerTable) -> Result<(ManagerConfig, ManagerTable), SettingsError> {
    let mut builder = ManagerConfig::builder();
    let profile = flags.profile.clone().or_else(|| file.profile.clone());
    let profile_file = flags.profile_file.clone().or_else(|| file.profile_file.clone());
    if let Some(name) = &profile {
        let path = profile_file.clone().unwrap_or_else(default_profile_path);
        builder = builder.profile_file(&path, Some(name))?;
    }
    builder = apply(builder, file);
    builder = builder.env_overrides(|name| std::env::var(name).ok())?;
    let config = apply(builder, flags).build()?;
    if config.timeout().is_zero() {
        return Err(invalid("the codex-manager timeout must be greater than zero"));
    }
    let auth = config.auth();
    let shown = ManagerTable {
        url: Some(config.base_url().to_owned()),
        prefix: Some(config.api_prefix().to_owned()),
        timeout: Some(config.timeout()),
        ca: config.ca_file().map(Path::to_path_buf),
        bearer_token: auth.bearer.clone(),
        rbac_token: auth.rbac_token.clone(),
        rbac_role: auth.rbac_role.clone(),
        rbac_actor: auth.rbac_actor.clone(),
        profile,
        profile_file,
    };
    Ok((config, shown))
}

fn apply(mut builder: ManagerConfigBuilder, table: &ManagerTable) -> ManagerConfigBuilder {
    if let Some(url) = &table.url {
        builder = builder.base_url(url.clone());
    }
    if let Some(prefix) = &table.prefix {
        builder = builder.api_prefix(prefix.clone());
    }
    if let Some(timeout) = table.timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(ca) = &table.ca {
        builder = builder.ca_file(ca);
    }
    if let Some(token) = &table.bearer_token {
        builder = builder.bearer_token(token.expose_secret());
    }
    let rbac_token = table.rbac_token.as_ref().map(|t| t.expose_secret().to_owned());
    builder.rbac(rbac_token, table.rbac_role.clone(), table.rbac_actor.clone())
}

/// The `sessions.create` body (without tools) of `session`.
fn session_template(session: &SessionTable) -> CreateSession {
    let mut template = CreateSession::new();
    template.cwd = session.cwd.as_ref().map(|cwd| cwd.to_string_lossy().into_owned());
    template.model = session.model.clone();
    template.approval_policy = session.approval_policy.clone();
    template.filesystem_sandbox = session.sandbox.clone();
    template
}

/// The app-server `thread/start` parameters of `session`; refuses an approval policy or sandbox `codex app-server`
/// does not take.
fn thread_options(session: &SessionTable) -> Result<ThreadStartParams, SettingsError> {
    let mut options = ThreadStartParams::new(session.cwd.clone().unwrap_or_default());
    options.model = session.model.clone();
    options.approval_policy = session
        .approval_policy
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(invalid)?;
    options.sandbox = session
        .sandbox
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(invalid)?;
    Ok(options)
}

/// How `codex app-server` is run, when it is the upstream.
struct AppServerSettings {
    command: AppServerCommand,
    thread_options: ThreadStartParams,
    toolset: Toolset,
    restart: bool,
}

impl AppServerSettings {
    fn upstream(self) -> AppServerUpstream {
        AppServerUpstream::new(self.command)
            .thread_options(self.thread_options)
            .toolset(self.toolset)
    }
}

/// The codex-manager upstream over `manager`, creating sessions set up as `session` says.
fn codex_manager(
    manager: Option<ManagerConfig>,
    session: &SessionTable,
) -> Result<CodexManagerUpstream, SettingsError> {
    let client = CodexManager::new(manager.unwrap_or_default())
        .map_err(|error| invalid(format!("cannot set up the client: {error}")))?;
    Ok(CodexManagerUpstream::new(client)
        .session_template(session_template(session))
        .toolset(toolset(session)))
}

/// The skills `session` says created sessions are offered.
fn toolset(session: &SessionTable) -> Toolset {
    toolset_of(
        session.tools.iter().flatten(),
        session.exclude_tools.iter().flatten(),
        session.read_only.unwrap_or(false),
    )
}

/// `Some` when `codex app-server` is the upstream: the command line's `--app-server`, else the file's `enabled`,
/// else whether the file names a `program`.
fn app_server(table: &AppServerTable, session: &SessionTable) -> Result<Option<AppServerSettings>, SettingsError> {
    if !table.enabled.unwrap_or(table.program.is_some()) {
        return Ok(None);
    }
    let program = table
        .program
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_APP_SERVER_PROGRAM));
    if program.as_os_str().is_empty() {
        return Err(invalid("--app-server: the Codex CLI path is empty"));
    }
    let mut command = AppServerCommand::new(program);
    if let Some(home) = &table.codex_home {
        command = command.codex_home(home);
    }
    if let Some(filter) = &table.log {
        command = command.log_filter(filter);
    }
    Ok(Some(AppServerSettings {
        command,
        thread_options: thread_options(session)?,
        toolset: toolset(session),
        restart: table.restart.unwrap_or(false),
    }))
}

/// The codex-manager connection, or none with `--app-server`, where its flags are a mistake worth saying so.
fn connection(
    flags: &ManagerTable,
    file: &ManagerTable,
    app_server: &Option<AppServerSettings>,
) -> Result<(Option<ManagerConfig>, ManagerTable), SettingsError> {
    if app_server.is_some() {
        refuse_manager_flags(flags)?;
        return Ok((None, ManagerTable::default()));
    }
    let (config, shown) = manager(flags, file)?;
    Ok((Some(config), shown))
}

/// With `--app-server` the codex-manager connection is not used: its settings are a mistake worth saying so.
fn refuse_manager_flags(flags: &ManagerTable) -> Result<(), SettingsError> {
    let given = [
        ("--manager-url", flags.url.is_some()),
        ("--manager-prefix", flags.prefix.is_some()),
        ("--manager-timeout", flags.timeout.is_some()),
        ("--manager-ca", flags.ca.is_some()),
        ("--manager-token", flags.bearer_token.is_some()),
        ("--profile", flags.profile.is_some()),
        ("--profile-file", flags.profile_file.is_some()),
    ];
    match given.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(app_server_conflict(flag, "it configures the codex-manager connection")),
        None => Ok(()),
    }
}

fn app_server_conflict(setting: &str, why: &str) -> SettingsError {
    invalid(format!("{setting} cannot be used with --app-server: {why}"))
}

fn positive(name: &str, value: Duration) -> Result<Duration, SettingsError> {
    if value.is_zero() {
        Err(invalid(format!("{name} must be greater than zero")))
    } else {
        Ok(value)
    }
}

impl Config {
    /// The bottom layer: every setting that has a default. (`serve.sessions` defaults to 1 without `--session`
    /// and 0 with it.)
    fn defaults() -> Result<Self, SettingsError> {
        let cwd = std::env::current_dir().map_err(|e| invalid(format!("cannot read the current directory: {e}")))?;
        let concurrency = NonZeroUsize::new(crate::bridge::DEFAULT_CONCURRENCY);
        Ok(Self {
            codex_manager: ManagerTable::default(),
            session: SessionTable {
                cwd: Some(cwd),
                ..SessionTable::default()
            },
            serve: ServeTable {
                poll_interval: Some(DEFAULT_POLL_INTERVAL),
                concurrency,
                all_sessions: Some(false),
                grace: Some(crate::bridge::DEFAULT_GRACE),
                startup_timeout: Some(DEFAULT_STARTUP_TIMEOUT),
                record_arguments: Some(false),
                delete_on_exit: Some(false),
                ..ServeTable::default()
            },
            admin: AdminTable {
                enabled: Some(true),
                addr: Some(DEFAULT_ADMIN_ADDR),
                token: None,
            },
            send: SendTable {
                timeout: Some(DEFAULT_SEND_TIMEOUT),
                keep_session: Some(false),
                keep_thread: Some(false),
                concurrency,
                poll_interval: Some(DEFAULT_POLL_INTERVAL),
            },
            app_server: AppServerTable {
                restart: Some(false),
                ..AppServerTable::default()
            },
            cluster: ClusterTable {
                group: Some(crate::bridge::DEFAULT_GROUP.to_owned()),
                lease: Some(crate::bridge::DEFAULT_LEASE),
                ..ClusterTable::default()
            },
            skills: BTreeMap::new(),
        })
    }
}

/// Everything `serve` runs with: the resolved tables (as `--print-config` shows them) and the bridge.
pub(crate) struct ServeSettings {
    pub(crate) config: Config,
    pub(crate) bridge: BridgeBuilder,
}

impl ServeSettings {
    pub(crate) fn resolve(flags: &super::ServeArgs, app: &App) -> Result<Self, SettingsError> {
        let (mut file, defaults) = (flags.config.load()?, Config::defaults()?);
        let (states, skills) = app.resolve(std::mem::take(&mut file.skills))?;
        let session = flags.session.clone().or(file.session).or(defaults.session);
        let mut app_table = AppServerTable::layered(&flags.app_server, file.app_server);
        app_table.restart = flags.restart.or(app_table.restart).or(defaults.app_server.restart);
        let app_server = app_server(&app_table, &session)?;
        let (manager, manager_table) = connection(&flags.manager, &file.codex_manager, &app_server)?;
        if flags.restart == Some(true) && app_server.is_none() {
            return Err(invalid(
                "--restart restarts the codex app-server child: it needs --app-server",
            ));
        }
        if flags.app_server.codex_home.is_some() && app_server.is_none() {
            return Err(invalid(
                "--codex-home sets CODEX_HOME of the codex app-server child: it needs --app-server",
            ));
        }

        let cluster_table = flags.cluster.clone().or(file.cluster);
        let cluster = cluster_table.config();
        let cluster_table = match &cluster {
            Some(_) => cluster_table.or(defaults.cluster),
            None => cluster_table,
        };
        if let Some(cluster) = &cluster {
            cluster.check().map_err(invalid)?;
        }
        if cluster.is_some() && app_server.is_some() {
            return Err(app_server_conflict(
                "--cluster",
                "a codex app-server child's threads are its own; bridges share sessions through codex-manager",
            ));
        }
        let mut serve = flags.serve.clone().or(file.serve).or(defaults.serve);
        serve.attach.retain(|id| !id.trim().is_empty());
        serve.attach.dedup();
        serve.prompt = serve.prompt.filter(|p| !p.trim().is_empty());
        let sessions = *serve
            .sessions
            .get_or_insert(usize::from(serve.attach.is_empty() && serve.session.is_empty()));
        let grouped: usize = serve.session.iter().map(|group| group.count.unwrap_or(1)).sum();
        let (all_sessions, delete_on_exit) = (serve.all_sessions == Some(true), serve.delete_on_exit == Some(true));
        if app_server.is_some() {
            let conflicts = [
                (
                    "--session",
                    !serve.attach.is_empty(),
                    "; there are no existing sessions to attach to",
                ),
                ("--all-sessions", all_sessions, ", and every one of them is served"),
                (
                    "[[serve.session]]",
                    !serve.session.is_empty(),
                    ", all offered every skill (session groups with toolsets of their own need codex-manager)",
                ),
            ];
            if let Some((setting, _, why)) = conflicts.iter().find(|(_, given, _)| *given) {
                let threads = "the threads live in the codex app-server child this bridge starts";
                return Err(app_server_conflict(setting, &format!("{threads}{why}")));
            }
            if sessions == 0 {
                return Err(invalid(
                    "nothing to serve: --sessions must be at least 1 with --app-server",
                ));
            }
        }
        if sessions + grouped == 0 && serve.attach.is_empty() && !all_sessions && cluster.is_none() {
            return Err(invalid(
                "nothing to serve: --sessions 0 needs --session ID, --all-sessions or --cluster (the group's sessions)",
            ));
        }
        let poll_interval = positive("--poll-interval", serve.poll_interval.unwrap_or_default())?;
        let admin = flags.admin.clone().or(file.admin).or(defaults.admin);
        let admin_addr = admin.addr.filter(|_| admin.enabled == Some(true));
        if let Some(addr) = admin_addr {
            crate::admin::check_exposure(addr, admin.token.is_some()).map_err(|e| invalid(e.to_string()))?;
        }

        let concurrency = serve.concurrency.map_or(1, NonZeroUsize::get);
        let mut bridge = Bridge::builder()
            .states(states)
            .skills(app.runtime_skills().iter().cloned())
            .concurrency(concurrency)
            .grace(serve.grace.unwrap_or_default())
            .startup_timeout(serve.startup_timeout.unwrap_or_default())
            .record_arguments(serve.record_arguments == Some(true));
        bridge = match (app_server, manager) {
            (Some(app_server), _) => {
                let restart = app_server.restart;
                let threads = (app_server.upstream().threads(sessions)).archive_threads_on_close(delete_on_exit);
                bridge.upstream(if restart {
                    threads.restart(RestartPolicy::default())
                } else {
                    threads
                })
            }
            (None, manager) => {
                let upstream = (serve.attach.iter()).fold(codex_manager(manager, &session)?, |upstream, id| {
                    upstream.attach(id.clone())
                });
                let upstream = (serve.session.iter()).fold(upstream, |upstream, group| {
                    upstream.session_group(group.count.unwrap_or(1), group.toolset())
                });
                let upstream = upstream
                    .sessions(sessions)
                    .all_sessions(all_sessions)
                    .poll_interval(poll_interval);
                bridge.upstream(upstream.delete_on_exit(delete_on_exit))
            }
        };
        if let Some(prompt) = &serve.prompt {
            bridge = bridge.prompt(prompt.clone());
        }
        if let Some(journal) = &serve.journal {
            bridge = bridge.journal(journal);
        }
        if let Some(cluster) = cluster {
            bridge = bridge.cluster(cluster);
        }
        if let Some(addr) = admin_addr {
            bridge = bridge.admin_addr(addr);
        }
        if let Some(token) = &admin.token {
            bridge = bridge.admin_token(AdminToken::from(token.clone()));
        }
        let config = Config {
            codex_manager: manager_table,
            session,
            serve,
            admin,
            send: SendTable::default(),
            app_server: app_table,
            cluster: cluster_table,
            skills,
        };
        Ok(Self { config, bridge })
    }
}

/// Everything `send` runs with: the resolved tables, the prompt, the turn's timeout and the bridge.
pub(crate) struct SendSettings {
    pub(crate) config: Config,
    pub(crate) prompt: String,
    pub(crate) timeout: Duration,
    pub(crate) bridge: BridgeBuilder,
}

impl SendSettings {
    /// `send --app-server "text"` reads the text as the --app-server PATH; with no other argument it is the
    /// prompt, and the program is the default one.
    pub(crate) fn resolve(flags: &super::SendArgs, app: &App) -> Result<Self, SettingsError> {
        let (mut file, defaults) = (flags.config.load()?, Config::defaults()?);
        let (states, skills) = app.resolve(std::mem::take(&mut file.skills))?;
        let session = flags.session.clone().or(file.session).or(defaults.session);
        let mut prompt = flags.prompt.clone();
        let mut app_flags = flags.app_server.clone();
        if prompt.is_empty()
            && let Some(Some(value)) = &app_flags.command_line
        {
            prompt = value.to_string_lossy().into_owned();
            app_flags.command_line = Some(None);
        }
        let mut app_table = AppServerTable::layered(&app_flags, file.app_server);
        app_table.restart = None;
        let app_server = app_server(&app_table, &session)?;
        if prompt.trim().is_empty() {
            return Err(invalid("the prompt must not be empty"));
        }
        let (manager, manager_table) = connection(&flags.manager, &file.codex_manager, &app_server)?;
        // `[send]` falls back on `[serve]` for what they share.
        let serve_fallback = SendTable {
            concurrency: file.serve.concurrency,
            poll_interval: file.serve.poll_interval,
            ..SendTable::default()
        };
        let send = flags.send.clone().or(file.send).or(serve_fallback).or(defaults.send);
        let (keep_session, keep_thread) = (send.keep_session == Some(true), send.keep_thread == Some(true));
        if app_server.is_some() && keep_session {
            return Err(app_server_conflict(
                "--keep-session",
                "it keeps a codex-manager session; --keep-thread keeps the thread",
            ));
        }
        if app_server.is_none() && keep_thread {
            return Err(invalid(
                "--keep-thread keeps the codex app-server thread: it needs --app-server (with codex-manager, \
                 --keep-session keeps the session)",
            ));
        }
        let timeout = positive("--timeout", send.timeout.unwrap_or_default())?;
        let poll_interval = positive("--poll-interval", send.poll_interval.unwrap_or_default())?;
        let concurrency = send.concurrency.map_or(1, NonZeroUsize::get);
        let bridge = Bridge::builder()
            .states(states)
            .skills(app.runtime_skills().iter().cloned())
            .concurrency(concurrency)
            .grace(SEND_CALLS_GRACE);
        let bridge = match (app_server, manager) {
            (Some(app_server), _) => bridge.upstream(app_server.upstream().archive_threads_on_close(!keep_thread)),
            (None, manager) => bridge.upstream(
                codex_manager(manager, &session)?
                    .poll_interval(poll_interval)
                    .delete_on_exit(!keep_session),
            ),
        };
        let config = Config {
            codex_manager: manager_table,
            session,
            send,
            app_server: app_table,
            skills,
            ..Config::default()
        };
        Ok(Self {
            prompt,
            timeout,
            bridge,
            config,
        })
    }
}

impl Config {
    /// The toolsets of the sessions this command creates: its `[session]` toolset unless `serve` creates no session
    /// of its own (`--sessions 0`), and each `[[serve.session]]` group's.
    pub(crate) fn created_toolsets(&self) -> Vec<Toolset> {
        let own = (self.serve.sessions.unwrap_or(1) > 0).then(|| toolset(&self.session));
        own.into_iter()
            .chain(self.serve.session.iter().map(SessionGroup::toolset))
            .collect()
    }

    /// Prints the settings as a TOML file, tokens redacted.
    pub(crate) fn print(&self) {
        print!(
            "{}",
            toml::to_string(self).unwrap_or_else(|error| format!("# not printable as TOML: {error}\n"))
        );
    }
}

/// Every argument of `command` and its subcommands.
fn arguments(command: &clap::Command) -> Vec<&clap::Arg> {
    let nested = command.get_subcommands().flat_map(arguments);
    command.get_arguments().chain(nested).collect()
}

/// Removes the variables of `command`'s arguments that are set but blank, so that they count as unset: clap
/// would read an empty value. Call it before anything else runs (it changes the process environment).
pub(crate) fn ignore_blank_variables(command: &clap::Command) {
    for name in arguments(command).into_iter().filter_map(clap::Arg::get_env) {
        if std::env::var_os(name).is_some_and(|value| value.to_string_lossy().trim().is_empty()) {
            // SAFETY: called by `main` before the runtime or any other thread starts.
            unsafe { std::env::remove_var(name) };
        }
    }
}

/// The variable behind an invalid value that did not come from the command line `given`: clap names the flag.
pub(crate) fn variable_behind(error: &clap::Error, command: &clap::Command, given: &[String]) -> Option<String> {
    let Some(clap::error::ContextValue::String(arg)) = error.get(clap::error::ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split_whitespace().next()?;
    let variable = arguments(command)
        .into_iter()
        .find(|arg| arg.get_long().is_some_and(|long| flag == format!("--{long}")))?
        .get_env()?;
    let typed = given
        .iter()
        .any(|word| word == flag || word.starts_with(&format!("{flag}=")));
    (!typed && std::env::var_os(variable).is_some()).then(|| variable.to_string_lossy().into_owned())
}
