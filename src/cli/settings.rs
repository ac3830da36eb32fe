//! Settings of `serve` and `send`, layered: command-line flag > environment variable > TOML file
//! (`--config skillbridge.toml`) > codex-manager CLI profile (`--profile NAME`, connection settings only) >
//! built-in defaults.
//!
//! [`ServeSettings::resolve`] and [`SendSettings::resolve`] take the parsed flags and an environment lookup
//! (pass `|name| std::env::var(name).ok()`), so the layering can be exercised without touching the process
//! environment. Secrets (codex-manager tokens, the admin token) are held in [`Secret`], whose `Debug` and
//! `Display` never show the value.
//!
//! The TOML file has these tables, every key optional:
//!
//! ```toml
//! [codex_manager]
//! url = "http://127.0.0.1:3001"   # CODEX_MANAGER_API_BASE
//! prefix = "/api"                 # CODEX_MANAGER_API_PREFIX
//! timeout = "30s"                 # CODEX_MANAGER_TIMEOUT_MS (milliseconds)
//! bearer_token = "..."            # CODEX_MANAGER_BEARER_TOKEN
//! rbac_token = "..."              # CODEX_MANAGER_RBAC_TOKEN
//! rbac_role = "operator"          # CODEX_MANAGER_RBAC_ROLE
//! rbac_actor = "skillbridge"      # CODEX_MANAGER_RBAC_ACTOR
//! profile = "local"               # a profile of the codex-manager CLI config file
//! profile_file = "/path/config.json"
//!
//! [session]                       # sessions created by serve and send
//! cwd = "/work/project"
//! model = "gpt-5"
//! approval_policy = "never"
//! sandbox = "read-only"
//!
//! [serve]
//! sessions = 1
//! attach = ["01a20b31-f8aa-7ee1-a8ed-f30e81e9ab3b"]
//! prompt = "Say hello"
//! poll_interval = "5s"
//! concurrency = 64
//! all_sessions = false
//! grace = "10s"
//! delete_on_exit = false
//!
//! [admin]
//! enabled = true
//! addr = "127.0.0.1:7878"
//! token = "..."                   # SKILLBRIDGE_ADMIN_TOKEN
//!
//! [send]
//! timeout = "5m"
//! keep_session = false
//!
//! [app_server]                    # drive `codex app-server` instead of codex-manager
//! enabled = true                  # SKILLBRIDGE_APP_SERVER (a path, or true/false)
//! program = "codex"               # SKILLBRIDGE_APP_SERVER
//! codex_home = "/home/me/.codex"  # CODEX_HOME
//! restart = true                  # serve only; SKILLBRIDGE_RESTART
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::send::SendArgs;
use super::serve::ServeArgs;
use crate::manager::{ConfigError, ManagerConfig, ManagerConfigBuilder, default_profile_path};
use crate::upstream::app_server::{AppServerCommand, ApprovalPolicy, SandboxMode, ThreadOptions};

/// Default pending-call listing interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default number of skills running at once.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default time in-flight calls get to finish on shutdown.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Default admin endpoint address.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:7878";
/// Default time `send` waits for the turn to finish.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(300);
/// The Codex CLI run by `--app-server` without a path: `codex`, looked up on `PATH`.
pub const DEFAULT_APP_SERVER_PROGRAM: &str = "codex";

/// A secret string (a token). `Debug` and `Display` print `<redacted>`; read it with [`expose`](Self::expose).
///
/// ```
/// use skillbridge::cli::settings::Secret;
///
/// let token: Secret = "hunter2".parse().unwrap();
/// assert_eq!(format!("{token:?} {token}"), "<redacted> <redacted>");
/// assert_eq!(token.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(Self(s.to_owned()))
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Parses a duration such as `500ms`, `5s`, `2m` or `1h 30m` (the `humantime` format).
///
/// ```
/// use std::time::Duration;
/// use skillbridge::cli::settings::parse_duration;
///
/// assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
/// assert!(parse_duration("5").unwrap_err().contains("unit"));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{text:?} needs a unit, e.g. {text}s or {text}ms"));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration like 500ms, 5s or 2m ({e})"))
}

/// Why settings could not be resolved. Each message names the layer (flag, variable or file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML file does not parse or has unknown keys.
    #[error("config file {path}: {message}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column included).
        message: String,
    },
    /// An environment variable holds something unusable.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The codex-manager connection settings are wrong (profile, URL, headers).
    #[error(transparent)]
    Manager(#[from] ConfigError),
    /// The settings contradict each other or a value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The current directory (the default `--cwd`) could not be read.
    #[error("cannot determine the current directory for --cwd: {0}")]
    CurrentDir(std::io::Error),
}

/// Connection flags shared by `serve` and `send`. `Debug` redacts the token.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ManagerArgs {
    /// TOML settings file (see `skillbridge serve --help` for its tables). [env: SKILLBRIDGE_CONFIG]
    #[arg(long, value_name = "FILE", help_heading = "Configuration")]
    pub config: Option<PathBuf>,

    /// Take the codex-manager connection from this profile of the codex-manager CLI config file
    /// ($XDG_CONFIG_HOME/codex-manager/cli/config.json). Flags, variables and the TOML file override it.
    #[arg(long, value_name = "NAME", help_heading = "Configuration")]
    pub profile: Option<String>,

    /// The codex-manager CLI config file to read `--profile` from, instead of the default location.
    #[arg(long, value_name = "FILE", help_heading = "Configuration")]
    pub profile_file: Option<PathBuf>,

    /// codex-manager base URL. [env: CODEX_MANAGER_API_BASE] [default: http://127.0.0.1:3001]
    #[arg(
        id = "manager_url",
        long = "manager-url",
        value_name = "URL",
        help_heading = "codex-manager"
    )]
    pub url: Option<String>,

    /// Route prefix of the codex-manager API. [env: CODEX_MANAGER_API_PREFIX] [default: /api]
    #[arg(
        id = "manager_prefix",
        long = "manager-prefix",
        value_name = "PREFIX",
        help_heading = "codex-manager"
    )]
    pub prefix: Option<String>,

    /// Timeout of each codex-manager request, e.g. 500ms, 30s. [env: CODEX_MANAGER_TIMEOUT_MS, in
    /// milliseconds] [default: 30s]
    #[arg(id = "manager_timeout", long = "manager-timeout", value_name = "DURATION", value_parser = parse_duration, help_heading = "codex-manager")]
    pub timeout: Option<Duration>,

    /// Bearer token sent to codex-manager. Prefer the variable: flags are visible to other users in `ps`.
    /// Never printed or logged. [env: CODEX_MANAGER_BEARER_TOKEN]
    #[arg(
        id = "manager_token",
        long = "manager-token",
        value_name = "TOKEN",
        help_heading = "codex-manager"
    )]
    pub token: Option<Secret>,
}

/// How new sessions are created, shared by `serve` and `send`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SessionArgs {
    /// Working directory of created sessions. [env: SKILLBRIDGE_CWD] [default: the current directory]
    #[arg(long, value_name = "DIR", help_heading = "Sessions")]
    pub cwd: Option<PathBuf>,

    /// Model of created sessions (codex-manager's default when unset). [env: SKILLBRIDGE_MODEL]
    #[arg(long, value_name = "MODEL", help_heading = "Sessions")]
    pub model: Option<String>,

    /// Approval policy of created sessions: untrusted, on-failure, on-request or never.
    /// [env: SKILLBRIDGE_APPROVAL_POLICY]
    #[arg(long, value_name = "POLICY", help_heading = "Sessions")]
    pub approval_policy: Option<String>,

    /// Filesystem sandbox of created sessions: read-only, workspace-write or danger-full-access.
    /// [env: SKILLBRIDGE_SANDBOX]
    #[arg(long, value_name = "MODE", help_heading = "Sessions")]
    pub sandbox: Option<String>,
}

/// The `codex app-server` upstream flags, shared by `serve` and `send`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AppServerArgs {
    /// Spawn `codex app-server` and serve the skills over its stdio instead of through codex-manager. PATH is
    /// the Codex CLI (default: `codex` on PATH). Threads take the --cwd, --model, --approval-policy and --sandbox
    /// of sessions. [env: SKILLBRIDGE_APP_SERVER, a path or true/false]
    #[arg(long, value_name = "PATH", num_args = 0..=1, help_heading = "codex app-server")]
    pub app_server: Option<Option<PathBuf>>,

    /// CODEX_HOME of the spawned Codex (its config, login and thread history). [env: CODEX_HOME, inherited]
    /// [default: Codex's own, ~/.codex]
    #[arg(long, value_name = "DIR", help_heading = "codex app-server")]
    pub codex_home: Option<PathBuf>,
}

/// How `codex app-server` is run, when it is the upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct AppServerSettings {
    /// The Codex CLI (a path, or a name looked up on `PATH`).
    pub program: PathBuf,
    /// `CODEX_HOME` for the child; `None` leaves the inherited environment alone.
    pub codex_home: Option<PathBuf>,
    /// Restart the child with backoff when it exits (serve only).
    pub restart: bool,
    /// The `thread/start` parameters (the dynamic tools are added from the catalog).
    pub thread_options: ThreadOptions,
}

impl AppServerSettings {
    /// The command that spawns the child.
    pub fn command(&self) -> AppServerCommand {
        let command = AppServerCommand::new(&self.program);
        match &self.codex_home {
            Some(home) => command.codex_home(home),
            None => command,
        }
    }
}

/// How created sessions are set up (the `sessions.create` body minus the tools, which come from the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTemplate {
    /// Working directory.
    pub cwd: String,
    /// Model, when set.
    pub model: Option<String>,
    /// Approval policy, when set.
    pub approval_policy: Option<String>,
    /// Filesystem sandbox, when set.
    pub sandbox: Option<String>,
}

impl SessionTemplate {
    /// The `sessions.create` request with `tools` as its `dynamicTools`.
    pub fn request(&self, tools: Vec<serde_json::Value>) -> crate::manager::CreateSession {
        let mut request = crate::manager::CreateSession::new()
            .cwd(self.cwd.clone())
            .dynamic_tools(tools);
        request.model = self.model.clone();
        request.approval_policy = self.approval_policy.clone();
        request.filesystem_sandbox = self.sandbox.clone();
        request
    }

    /// The app-server `thread/start` parameters (without tools); fails on an approval policy or sandbox that
    /// `codex app-server` does not take.
    ///
    /// ```
    /// use skillbridge::cli::settings::SessionTemplate;
    ///
    /// let template = SessionTemplate { cwd: "/work".into(), model: None,
    ///                                  approval_policy: Some("never".into()), sandbox: Some("read-only".into()) };
    /// let params = template.thread_options().unwrap().params();
    /// assert_eq!((params["approvalPolicy"].as_str(), params["sandbox"].as_str()), (Some("never"), Some("read-only")));
    /// ```
    pub fn thread_options(&self) -> Result<ThreadOptions, SettingsError> {
        let mut options = ThreadOptions::new(&self.cwd);
        if let Some(model) = &self.model {
            options = options.model(model.clone());
        }
        if let Some(policy) = &self.approval_policy {
            options = options.approval_policy(match policy.as_str() {
                "untrusted" => ApprovalPolicy::Untrusted,
                "on-request" => ApprovalPolicy::OnRequest,
                "never" => ApprovalPolicy::Never,
                other => {
                    return Err(SettingsError::Invalid(format!(
                        "approval policy {other:?} is not one codex app-server takes: use untrusted, on-request or never"
                    )));
                }
            });
        }
        if let Some(sandbox) = &self.sandbox {
            options = options.sandbox(match sandbox.as_str() {
                "read-only" => SandboxMode::ReadOnly,
                "workspace-write" => SandboxMode::WorkspaceWrite,
                "danger-full-access" => SandboxMode::DangerFullAccess,
                other => {
                    return Err(SettingsError::Invalid(format!(
                        "sandbox {other:?} is not one codex app-server takes: use read-only, workspace-write or \
                         danger-full-access"
                    )));
                }
            });
        }
        Ok(options)
    }
}

/// Where the admin endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// The address; `None` when the endpoint is off (`--no-admin`).
    pub addr: Option<SocketAddr>,
    /// The token that guards it.
    pub token: Option<Secret>,
}

/// Everything `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// The codex-manager connection.
    pub manager: ManagerConfig,
    /// Sessions to create with the catalog as their tools.
    pub create_sessions: usize,
    /// Existing sessions to serve as well.
    pub attach: Vec<String>,
    /// How created sessions are set up.
    pub session: SessionTemplate,
    /// First message sent to each created session.
    pub prompt: Option<String>,
    /// Interval of pending-call listing.
    pub poll_interval: Duration,
    /// Skills running at once, at most.
    pub concurrency: usize,
    /// Serve calls of every session on the codex-manager, not only ours.
    pub all_sessions: bool,
    /// Time in-flight calls get to finish on shutdown.
    pub grace: Duration,
    /// Delete the created sessions on exit.
    pub delete_on_exit: bool,
    /// The admin endpoint.
    pub admin: AdminSettings,
    /// `Some` when serving through a spawned `codex app-server` instead of codex-manager.
    pub app_server: Option<AppServerSettings>,
}

/// Everything `send` runs with.
#[derive(Debug, Clone)]
pub struct SendSettings {
    /// The codex-manager connection.
    pub manager: ManagerConfig,
    /// How the session is set up.
    pub session: SessionTemplate,
    /// The message.
    pub prompt: String,
    /// How long to wait for the turn to finish.
    pub timeout: Duration,
    /// Keep the session instead of deleting it at the end.
    pub keep_session: bool,
    /// Skills running at once, at most.
    pub concurrency: usize,
    /// Interval of pending-call listing.
    pub poll_interval: Duration,
    /// `Some` when the turn runs in a spawned `codex app-server` instead of codex-manager.
    pub app_server: Option<AppServerSettings>,
}

/// The TOML settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    #[serde(default)]
    codex_manager: FileManager,
    #[serde(default)]
    session: FileSession,
    #[serde(default)]
    serve: FileServe,
    #[serde(default)]
    admin: FileAdmin,
    #[serde(default)]
    send: FileSend,
    #[serde(default)]
    app_server: FileAppServer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAppServer {
    enabled: Option<bool>,
    program: Option<PathBuf>,
    codex_home: Option<PathBuf>,
    restart: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileManager {
    url: Option<String>,
    prefix: Option<String>,
    timeout: Option<FileDuration>,
    bearer_token: Option<Secret>,
    rbac_token: Option<Secret>,
    rbac_role: Option<String>,
    rbac_actor: Option<String>,
    profile: Option<String>,
    profile_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSession {
    cwd: Option<PathBuf>,
    model: Option<String>,
    approval_policy: Option<String>,
    sandbox: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServe {
    sessions: Option<usize>,
    #[serde(default)]
    attach: Vec<String>,
    prompt: Option<String>,
    poll_interval: Option<FileDuration>,
    concurrency: Option<usize>,
    all_sessions: Option<bool>,
    grace: Option<FileDuration>,
    delete_on_exit: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    enabled: Option<bool>,
    addr: Option<String>,
    token: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSend {
    timeout: Option<FileDuration>,
    keep_session: Option<bool>,
    concurrency: Option<usize>,
    poll_interval: Option<FileDuration>,
}

/// A duration in the file: `"5s"`.
#[derive(Debug, Clone, Copy)]
struct FileDuration(Duration);

impl<'de> Deserialize<'de> for FileDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(Self).map_err(serde::de::Error::custom)
    }
}

/// The environment layer: a lookup that ignores empty values and parses with the variable's name in errors.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn parse<T>(&self, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Option<T>, SettingsError> {
        match self.get(name) {
            Some(value) => parse(value.trim()).map(Some).map_err(|message| SettingsError::Env {
                name: name.to_owned(),
                message,
            }),
            None => Ok(None),
        }
    }

    fn flag(&self, name: &str) -> Result<Option<bool>, SettingsError> {
        self.parse(name, parse_bool)
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean (true/false, 1/0, yes/no, on/off)")),
    }
}

fn parse_count(text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| format!("{text:?} is not a whole number"))
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a socket address like 127.0.0.1:7878"))
}

/// Parses `--admin`: an `IP:PORT` address.
pub fn parse_admin_addr(text: &str) -> Result<SocketAddr, String> {
    parse_addr(text.trim())
}

fn load_file(flag: Option<&Path>, env: &Env<'_>) -> Result<FileSettings, SettingsError> {
    let path = match flag {
        Some(path) => path.to_owned(),
        None => match env.get("SKILLBRIDGE_CONFIG") {
            Some(path) => PathBuf::from(path),
            None => return Ok(FileSettings::default()),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|source| SettingsError::ReadFile {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| SettingsError::ParseFile {
        path,
        message: e.to_string(),
    })
}

/// profile < file < env < flags, for the connection.
fn resolve_manager(args: &ManagerArgs, file: &FileManager, env: &Env<'_>) -> Result<ManagerConfig, SettingsError> {
    let mut builder: ManagerConfigBuilder = ManagerConfig::builder();
    let profile = args.profile.clone().or_else(|| file.profile.clone());
    if let Some(name) = profile {
        let path = args
            .profile_file
            .clone()
            .or_else(|| file.profile_file.clone())
            .unwrap_or_else(default_profile_path);
        builder = builder.profile_file(&path, Some(&name))?;
    }
    if let Some(url) = &file.url {
        builder = builder.base_url(url.clone());
    }
    if let Some(prefix) = &file.prefix {
        builder = builder.api_prefix(prefix.clone());
    }
    if let Some(timeout) = file.timeout {
        builder = builder.timeout(timeout.0);
    }
    if let Some(token) = &file.bearer_token {
        builder = builder.bearer_token(token.expose());
    }
    builder = builder.rbac(
        file.rbac_token.as_ref().map(|t| t.expose().to_owned()),
        file.rbac_role.clone(),
        file.rbac_actor.clone(),
    );
    builder = builder.env_overrides(|name| (env.lookup)(name))?;
    if let Some(url) = &args.url {
        builder = builder.base_url(url.clone());
    }
    if let Some(prefix) = &args.prefix {
        builder = builder.api_prefix(prefix.clone());
    }
    if let Some(timeout) = args.timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(token) = &args.token {
        builder = builder.bearer_token(token.expose());
    }
    let config = builder.build()?;
    if config.timeout().is_zero() {
        return Err(SettingsError::Invalid(
            "the codex-manager timeout must be greater than zero".into(),
        ));
    }
    Ok(config)
}

fn resolve_session(args: &SessionArgs, file: &FileSession, env: &Env<'_>) -> Result<SessionTemplate, SettingsError> {
    let cwd = match args
        .cwd
        .clone()
        .or_else(|| env.get("SKILLBRIDGE_CWD").map(PathBuf::from))
        .or_else(|| file.cwd.clone())
    {
        Some(cwd) => cwd,
        None => std::env::current_dir().map_err(SettingsError::CurrentDir)?,
    };
    let pick = |flag: &Option<String>, var: &str, file: &Option<String>| {
        flag.clone().or_else(|| env.get(var)).or_else(|| file.clone())
    };
    Ok(SessionTemplate {
        cwd: cwd.to_string_lossy().into_owned(),
        model: pick(&args.model, "SKILLBRIDGE_MODEL", &file.model),
        approval_policy: pick(
            &args.approval_policy,
            "SKILLBRIDGE_APPROVAL_POLICY",
            &file.approval_policy,
        ),
        sandbox: pick(&args.sandbox, "SKILLBRIDGE_SANDBOX", &file.sandbox),
    })
}

fn positive(name: &str, value: Duration) -> Result<Duration, SettingsError> {
    if value.is_zero() {
        Err(SettingsError::Invalid(format!("{name} must be greater than zero")))
    } else {
        Ok(value)
    }
}

fn at_least_one(name: &str, value: usize) -> Result<usize, SettingsError> {
    if value == 0 {
        Err(SettingsError::Invalid(format!("{name} must be at least 1")))
    } else {
        Ok(value)
    }
}

/// Whether (and how) `codex app-server` is the upstream: `--app-server [PATH]` > `SKILLBRIDGE_APP_SERVER` (a path,
/// or true/false) > `[app_server]` (`enabled`, or a `program`) > off. The program, `CODEX_HOME` and restart
/// setting layer the same way.
fn resolve_app_server(
    args: &AppServerArgs,
    restart_flag: bool,
    file: &FileAppServer,
    env: &Env<'_>,
    session: &SessionTemplate,
) -> Result<Option<AppServerSettings>, SettingsError> {
    // SKILLBRIDGE_APP_SERVER holds a switch or a program path.
    let (env_enabled, env_program) = match env.get("SKILLBRIDGE_APP_SERVER") {
        Some(value) => match parse_bool(value.trim()) {
            Ok(enabled) => (Some(enabled), None),
            Err(_) => (Some(true), Some(PathBuf::from(value.trim()))),
        },
        None => (None, None),
    };
    let enabled = args.app_server.is_some() || env_enabled.or(file.enabled).unwrap_or(file.program.is_some());
    if !enabled {
        if restart_flag {
            return Err(SettingsError::Invalid(
                "--restart restarts the codex app-server child: it needs --app-server".into(),
            ));
        }
        if args.codex_home.is_some() {
            return Err(SettingsError::Invalid(
                "--codex-home sets CODEX_HOME of the codex app-server child: it needs --app-server".into(),
            ));
        }
        return Ok(None);
    }
    let program = args
        .app_server
        .clone()
        .flatten()
        .or(env_program)
        .or_else(|| file.program.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_APP_SERVER_PROGRAM));
    if program.as_os_str().is_empty() {
        return Err(SettingsError::Invalid(
            "--app-server: the Codex CLI path is empty".into(),
        ));
    }
    let codex_home = args
        .codex_home
        .clone()
        .or_else(|| env.get("CODEX_HOME").map(PathBuf::from))
        .or_else(|| file.codex_home.clone());
    let restart = restart_flag || env.flag("SKILLBRIDGE_RESTART")?.or(file.restart).unwrap_or(false);
    Ok(Some(AppServerSettings {
        program,
        codex_home,
        restart,
        thread_options: session.thread_options()?,
    }))
}

/// With `--app-server` the codex-manager connection is not used: its flags are a mistake worth saying so.
fn refuse_manager_flags(args: &ManagerArgs) -> Result<(), SettingsError> {
    let given = [
        ("--manager-url", args.url.is_some()),
        ("--manager-prefix", args.prefix.is_some()),
        ("--manager-timeout", args.timeout.is_some()),
        ("--manager-token", args.token.is_some()),
        ("--profile", args.profile.is_some()),
        ("--profile-file", args.profile_file.is_some()),
    ];
    match given.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(app_server_conflict(flag, "it configures the codex-manager connection")),
        None => Ok(()),
    }
}

fn app_server_conflict(setting: &str, why: &str) -> SettingsError {
    SettingsError::Invalid(format!("{setting} cannot be used with --app-server: {why}"))
}

impl ServeSettings {
    /// Layers `flags` over the environment (`lookup`), the TOML file, the profile and the defaults.
    ///
    /// ```
    /// use skillbridge::cli::serve::ServeArgs;
    /// use skillbridge::cli::settings::ServeSettings;
    ///
    /// let env = |name: &str| match name {
    ///     "CODEX_MANAGER_API_BASE" => Some("http://127.0.0.1:4001".to_owned()),
    ///     "SKILLBRIDGE_CONCURRENCY" => Some("8".to_owned()),
    ///     _ => None,
    /// };
    /// let flags = ServeArgs { concurrency: Some(16), ..ServeArgs::default() };
    /// let settings = ServeSettings::resolve(&flags, &env).unwrap();
    /// assert_eq!(settings.manager.base_url(), "http://127.0.0.1:4001");
    /// assert_eq!(settings.concurrency, 16); // the flag beats the variable
    /// assert_eq!(settings.create_sessions, 1);
    /// ```
    pub fn resolve(flags: &ServeArgs, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env { lookup };
        let file = load_file(flags.manager.config.as_deref(), &env)?;
        let session = resolve_session(&flags.session, &file.session, &env)?;
        let app_server = resolve_app_server(&flags.app_server, flags.restart, &file.app_server, &env, &session)?;
        let manager = match app_server {
            Some(_) => {
                refuse_manager_flags(&flags.manager)?;
                ManagerConfig::default()
            }
            None => resolve_manager(&flags.manager, &file.codex_manager, &env)?,
        };
        let serve = &file.serve;

        let mut attach = flags.attach.clone();
        if attach.is_empty() {
            attach = serve.attach.clone();
        }
        attach.retain(|id| !id.trim().is_empty());
        attach.dedup();
        let default_sessions = if attach.is_empty() { 1 } else { 0 };
        let create_sessions = match flags.sessions {
            Some(n) => n,
            None => env
                .parse("SKILLBRIDGE_SESSIONS", parse_count)?
                .or(serve.sessions)
                .unwrap_or(default_sessions),
        };
        let all_sessions = flags.all_sessions
            || env
                .flag("SKILLBRIDGE_ALL_SESSIONS")?
                .or(serve.all_sessions)
                .unwrap_or(false);
        let delete_on_exit = flags.delete_on_exit
            || env
                .flag("SKILLBRIDGE_DELETE_ON_EXIT")?
                .or(serve.delete_on_exit)
                .unwrap_or(false);
        if app_server.is_some() {
            let threads_are_ours = "the threads live in the codex app-server child this bridge starts";
            if !attach.is_empty() {
                return Err(app_server_conflict(
                    "--session",
                    &format!("{threads_are_ours}; there are no existing sessions to attach to"),
                ));
            }
            if all_sessions {
                return Err(app_server_conflict(
                    "--all-sessions",
                    &format!("{threads_are_ours}, and every one of them is served"),
                ));
            }
            if delete_on_exit {
                return Err(app_server_conflict(
                    "--delete-on-exit",
                    &format!("{threads_are_ours} and end with it"),
                ));
            }
            if create_sessions == 0 {
                return Err(SettingsError::Invalid(
                    "nothing to serve: --sessions must be at least 1 with --app-server".into(),
                ));
            }
        }
        if create_sessions == 0 && attach.is_empty() && !all_sessions {
            return Err(SettingsError::Invalid(
                "nothing to serve: --sessions 0 needs --session ID or --all-sessions".into(),
            ));
        }
        let prompt = flags
            .prompt
            .clone()
            .or_else(|| env.get("SKILLBRIDGE_PROMPT"))
            .or_else(|| serve.prompt.clone())
            .filter(|p| !p.trim().is_empty());
        let poll_interval = match flags.poll_interval {
            Some(d) => d,
            None => env
                .parse("SKILLBRIDGE_POLL_INTERVAL", parse_duration)?
                .or(serve.poll_interval.map(|d| d.0))
                .unwrap_or(DEFAULT_POLL_INTERVAL),
        };
        let concurrency = match flags.concurrency {
            Some(n) => n,
            None => env
                .parse("SKILLBRIDGE_CONCURRENCY", parse_count)?
                .or(serve.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY),
        };
        let grace = match flags.grace {
            Some(d) => d,
            None => env
                .parse("SKILLBRIDGE_GRACE", parse_duration)?
                .or(serve.grace.map(|d| d.0))
                .unwrap_or(DEFAULT_GRACE),
        };
        let admin = resolve_admin(flags, &file.admin, &env)?;
        Ok(Self {
            manager,
            create_sessions,
            attach,
            session,
            prompt,
            poll_interval: positive("--poll-interval", poll_interval)?,
            concurrency: at_least_one("--concurrency", concurrency)?,
            all_sessions,
            grace,
            delete_on_exit,
            admin,
            app_server,
        })
    }
}

fn resolve_admin(flags: &ServeArgs, file: &FileAdmin, env: &Env<'_>) -> Result<AdminSettings, SettingsError> {
    let token = match &flags.admin_token {
        Some(token) => Some(token.clone()),
        None => env
            .get("SKILLBRIDGE_ADMIN_TOKEN")
            .map(Secret)
            .or_else(|| file.token.clone()),
    };
    let enabled = !flags.no_admin
        && (flags.admin.is_some()
            || env
                .flag("SKILLBRIDGE_NO_ADMIN")?
                .map(|off| !off)
                .or(file.enabled)
                .unwrap_or(true));
    if !enabled {
        return Ok(AdminSettings { addr: None, token });
    }
    let addr = match flags.admin {
        Some(addr) => addr,
        None => match env.parse("SKILLBRIDGE_ADMIN", parse_addr)? {
            Some(addr) => addr,
            None => match &file.addr {
                Some(text) => {
                    parse_addr(text).map_err(|message| SettingsError::Invalid(format!("[admin] addr: {message}")))?
                }
                None => parse_addr(DEFAULT_ADMIN_ADDR).map_err(SettingsError::Invalid)?,
            },
        },
    };
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(SettingsError::Invalid(format!(
            "refusing to serve the admin endpoint on non-loopback address {addr} without an admin token \
             (--admin-token or SKILLBRIDGE_ADMIN_TOKEN)"
        )));
    }
    Ok(AdminSettings {
        addr: Some(addr),
        token,
    })
}

impl SendSettings {
    /// Layers `flags` over the environment (`lookup`), the TOML file, the profile and the defaults.
    pub fn resolve(flags: &SendArgs, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env { lookup };
        let file = load_file(flags.manager.config.as_deref(), &env)?;
        let session = resolve_session(&flags.session, &file.session, &env)?;
        // `send --app-server "text"` parses the text as the --app-server PATH; with no other argument, it is
        // the prompt, and the program is the default one.
        let mut prompt = flags.prompt.clone();
        let mut app_args = flags.app_server.clone();
        if prompt.is_empty()
            && let Some(Some(value)) = &app_args.app_server
        {
            prompt = value.to_string_lossy().into_owned();
            app_args.app_server = Some(None);
        }
        let app_server = resolve_app_server(&app_args, false, &file.app_server, &env, &session)?;
        if prompt.trim().is_empty() {
            return Err(SettingsError::Invalid("the prompt must not be empty".into()));
        }
        let manager = match app_server {
            Some(_) => {
                refuse_manager_flags(&flags.manager)?;
                ManagerConfig::default()
            }
            None => resolve_manager(&flags.manager, &file.codex_manager, &env)?,
        };
        let send = &file.send;
        let timeout = match flags.timeout {
            Some(d) => d,
            None => env
                .parse("SKILLBRIDGE_SEND_TIMEOUT", parse_duration)?
                .or(send.timeout.map(|d| d.0))
                .unwrap_or(DEFAULT_SEND_TIMEOUT),
        };
        let concurrency = match flags.concurrency {
            Some(n) => n,
            None => env
                .parse("SKILLBRIDGE_CONCURRENCY", parse_count)?
                .or(send.concurrency)
                .or(file.serve.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY),
        };
        let poll_interval = match flags.poll_interval {
            Some(d) => d,
            None => env
                .parse("SKILLBRIDGE_POLL_INTERVAL", parse_duration)?
                .or(send.poll_interval.map(|d| d.0))
                .or(file.serve.poll_interval.map(|d| d.0))
                .unwrap_or(DEFAULT_POLL_INTERVAL),
        };
        let keep_session = flags.keep_session
            || env
                .flag("SKILLBRIDGE_KEEP_SESSION")?
                .or(send.keep_session)
                .unwrap_or(false);
        if app_server.is_some() && keep_session {
            return Err(app_server_conflict(
                "--keep-session",
                "the thread lives in the codex app-server child, which ends with send",
            ));
        }
        Ok(Self {
            manager,
            session,
            prompt,
            timeout: positive("--timeout", timeout)?,
            keep_session,
            concurrency: at_least_one("--concurrency", concurrency)?,
            poll_interval: positive("--poll-interval", poll_interval)?,
            app_server,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::cli::send::SendArgs;
    use crate::cli::serve::ServeArgs;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    fn file(text: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::with(text)
    }

    /// A throwaway file under the target's temp dir (no extra dependency).
    mod tempfile_path {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicU64, Ordering};

        pub struct TempFile(PathBuf);

        impl TempFile {
            pub fn with(text: &str) -> Self {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let path = std::env::temp_dir().join(format!("skillbridge-settings-{}-{n}.toml", std::process::id()));
                std::fs::write(&path, text).unwrap();
                Self(path)
            }

            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn flags_with_config(path: &Path) -> ServeArgs {
        ServeArgs {
            manager: ManagerArgs {
                config: Some(path.to_owned()),
                ..ManagerArgs::default()
            },
            ..ServeArgs::default()
        }
    }

    #[test]
    fn defaults() {
        let s = ServeSettings::resolve(&ServeArgs::default(), &env(&[])).unwrap();
        assert_eq!(s.manager.base_url(), "http://127.0.0.1:3001");
        assert_eq!(s.create_sessions, 1);
        assert!(s.attach.is_empty());
        assert_eq!(s.poll_interval, Duration::from_secs(5));
        assert_eq!(s.concurrency, 64);
        assert_eq!(s.grace, Duration::from_secs(10));
        assert_eq!(s.admin.addr, Some("127.0.0.1:7878".parse().unwrap()));
        assert!(s.admin.token.is_none());
        assert_eq!(s.session.cwd, std::env::current_dir().unwrap().to_string_lossy());
    }

    #[test]
    fn flag_beats_env_beats_file_beats_profile() {
        let profile = file(
            r#"{"currentProfile":"x","profiles":{"local":{"baseUrl":"http://127.0.0.1:1","apiPrefix":"/p",
               "timeoutMs":1000,"auth":{"bearer":"from-profile","role":"viewer"}}}}"#,
        );
        // The profile file is JSON; its extension does not matter.
        let profile_path = profile.path().to_owned();
        let config = file(&format!(
            "[codex_manager]\nprofile = \"local\"\nprofile_file = {profile_path:?}\nprefix = \"/file\"\ntimeout = \"2s\"\n\
             [serve]\nconcurrency = 3\ngrace = \"1s\"\npoll_interval = \"250ms\"\n[session]\nmodel = \"file-model\"\n"
        ));
        let flags = ServeArgs {
            concurrency: Some(5),
            ..flags_with_config(config.path())
        };
        let s = ServeSettings::resolve(
            &flags,
            &env(&[
                ("CODEX_MANAGER_TIMEOUT_MS", "3000"),
                ("SKILLBRIDGE_GRACE", "4s"),
                ("SKILLBRIDGE_CONCURRENCY", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(s.manager.base_url(), "http://127.0.0.1:1"); // profile only
        assert_eq!(s.manager.api_prefix(), "/file"); // file over profile
        assert_eq!(s.manager.timeout(), Duration::from_secs(3)); // env over file
        assert_eq!(s.manager.auth().bearer.as_deref(), Some("from-profile"));
        assert_eq!(s.manager.auth().rbac_role.as_deref(), Some("viewer"));
        assert_eq!(s.concurrency, 5); // flag over env over file
        assert_eq!(s.grace, Duration::from_secs(4)); // env over file
        assert_eq!(s.poll_interval, Duration::from_millis(250)); // file over default
        assert_eq!(s.session.model.as_deref(), Some("file-model"));
    }

    #[test]
    fn attach_only_creates_nothing_by_default() {
        let flags = ServeArgs {
            attach: vec!["s1".into(), "s2".into()],
            ..ServeArgs::default()
        };
        let s = ServeSettings::resolve(&flags, &env(&[])).unwrap();
        assert_eq!(s.create_sessions, 0);
        assert_eq!(s.attach, ["s1", "s2"]);
    }

    #[test]
    fn nothing_to_serve_is_refused() {
        let flags = ServeArgs {
            sessions: Some(0),
            ..ServeArgs::default()
        };
        let err = ServeSettings::resolve(&flags, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("nothing to serve"), "{err}");
        let flags = ServeArgs {
            sessions: Some(0),
            all_sessions: true,
            ..ServeArgs::default()
        };
        assert!(ServeSettings::resolve(&flags, &env(&[])).is_ok());
    }

    #[test]
    fn bad_values_name_their_source() {
        let err = ServeSettings::resolve(&ServeArgs::default(), &env(&[("SKILLBRIDGE_GRACE", "ten")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SKILLBRIDGE_GRACE"), "{err}");
        let config = file("[serve]\nconcurency = 3\n");
        let err = ServeSettings::resolve(&flags_with_config(config.path()), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("concurency") && err.contains(&config.path().display().to_string()),
            "{err}"
        );
        let config = file("[serve]\ngrace = \"5\"\n");
        let err = ServeSettings::resolve(&flags_with_config(config.path()), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unit"), "{err}");
        let flags = ServeArgs {
            concurrency: Some(0),
            ..ServeArgs::default()
        };
        let err = ServeSettings::resolve(&flags, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("--concurrency"), "{err}");
    }

    #[test]
    fn admin_layers_and_public_address_needs_token() {
        let flags = ServeArgs {
            admin: Some("0.0.0.0:7878".parse().unwrap()),
            ..ServeArgs::default()
        };
        let err = ServeSettings::resolve(&flags, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("non-loopback"), "{err}");
        let s = ServeSettings::resolve(&flags, &env(&[("SKILLBRIDGE_ADMIN_TOKEN", "t0k3n")])).unwrap();
        assert_eq!(s.admin.token.as_ref().map(Secret::expose), Some("t0k3n"));
        assert!(!format!("{s:?}").contains("t0k3n"));

        let off = ServeArgs {
            no_admin: true,
            ..ServeArgs::default()
        };
        assert_eq!(ServeSettings::resolve(&off, &env(&[])).unwrap().admin.addr, None);
        let config = file("[admin]\naddr = \"127.0.0.1:9\"\n");
        let s = ServeSettings::resolve(&flags_with_config(config.path()), &env(&[])).unwrap();
        assert_eq!(s.admin.addr, Some("127.0.0.1:9".parse().unwrap()));
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let flags = ServeArgs {
            manager: ManagerArgs {
                token: Some(Secret::new("cm-secret")),
                ..ManagerArgs::default()
            },
            admin_token: Some(Secret::new("admin-secret")),
            ..ServeArgs::default()
        };
        let s = ServeSettings::resolve(&flags, &env(&[])).unwrap();
        assert_eq!(s.manager.auth().bearer.as_deref(), Some("cm-secret"));
        let shown = format!("{flags:?} {s:?}");
        assert!(
            !shown.contains("cm-secret") && !shown.contains("admin-secret"),
            "{shown}"
        );
    }

    #[test]
    fn send_settings() {
        let flags = SendArgs {
            prompt: "hi".into(),
            ..SendArgs::default()
        };
        let s = SendSettings::resolve(&flags, &env(&[])).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(300));
        assert!(!s.keep_session);
        let empty = SendArgs::default();
        assert!(
            SendSettings::resolve(&empty, &env(&[]))
                .unwrap_err()
                .to_string()
                .contains("prompt")
        );
    }

    #[derive(clap::Parser)]
    struct ServeCli {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[derive(clap::Parser)]
    struct SendCli {
        #[command(flatten)]
        args: SendArgs,
    }

    #[test]
    fn command_lines_parse() {
        use clap::{CommandFactory, Parser};
        ServeCli::command().debug_assert();
        SendCli::command().debug_assert();

        let serve = ServeCli::try_parse_from([
            "serve",
            "--manager-url",
            "http://127.0.0.1:9",
            "--manager-timeout",
            "2s",
            "--session",
            "a",
            "--session",
            "b",
            "--grace",
            "500ms",
            "--admin",
            "127.0.0.1:0",
            "--admin-token",
            "t0k3n",
            "--concurrency",
            "8",
        ])
        .unwrap()
        .args;
        assert_eq!(serve.attach, ["a", "b"]);
        assert_eq!(serve.grace, Some(Duration::from_millis(500)));
        let settings = ServeSettings::resolve(&serve, &env(&[])).unwrap();
        assert_eq!(settings.manager.timeout(), Duration::from_secs(2));
        assert_eq!(settings.create_sessions, 0);
        assert_eq!(settings.concurrency, 8);
        assert_eq!(settings.admin.addr, Some("127.0.0.1:0".parse().unwrap()));

        let send = SendCli::try_parse_from(["send", "hello there", "--timeout", "30s", "--manager-timeout", "1s"])
            .unwrap()
            .args;
        let settings = SendSettings::resolve(&send, &env(&[])).unwrap();
        assert_eq!(settings.prompt, "hello there");
        assert_eq!(settings.timeout, Duration::from_secs(30));
        assert_eq!(settings.manager.timeout(), Duration::from_secs(1));

        let error = ServeCli::try_parse_from(["serve", "--grace", "5"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("unit"), "{error}");
        assert!(ServeCli::try_parse_from(["serve", "--admin", "localhost"]).is_err());
        assert!(ServeCli::try_parse_from(["serve", "--admin", "127.0.0.1:1", "--no-admin"]).is_err());
        assert!(SendCli::try_parse_from(["send"]).is_err(), "the prompt is required");
    }

    fn app_server_flag(path: Option<&str>) -> AppServerArgs {
        AppServerArgs {
            app_server: Some(path.map(PathBuf::from)),
            ..AppServerArgs::default()
        }
    }

    #[test]
    fn app_server_is_chosen_by_flag_env_or_file_and_its_program_layers() {
        let off = ServeSettings::resolve(&ServeArgs::default(), &env(&[])).unwrap();
        assert_eq!(off.app_server, None);

        let flags = ServeArgs {
            app_server: app_server_flag(None),
            ..ServeArgs::default()
        };
        let s = ServeSettings::resolve(&flags, &env(&[("CODEX_HOME", "/home/me/.codex")])).unwrap();
        let app = s.app_server.unwrap();
        assert_eq!(app.program, PathBuf::from("codex"));
        assert_eq!(app.codex_home, Some(PathBuf::from("/home/me/.codex")));
        assert!(!app.restart);

        let config = file("[app_server]\nprogram = \"/opt/file/codex\"\nrestart = true\n");
        let s = ServeSettings::resolve(&flags_with_config(config.path()), &env(&[])).unwrap();
        let app = s.app_server.expect("a program in the file selects app-server");
        assert_eq!((app.program, app.restart), (PathBuf::from("/opt/file/codex"), true));

        let s = ServeSettings::resolve(
            &flags_with_config(config.path()),
            &env(&[("SKILLBRIDGE_APP_SERVER", "/opt/env/codex")]),
        )
        .unwrap();
        assert_eq!(s.app_server.unwrap().program, PathBuf::from("/opt/env/codex"));
        let s = ServeSettings::resolve(
            &flags_with_config(config.path()),
            &env(&[("SKILLBRIDGE_APP_SERVER", "off")]),
        )
        .unwrap();
        assert_eq!(s.app_server, None, "the variable switches the file's choice off");

        let flags = ServeArgs {
            app_server: app_server_flag(Some("/opt/flag/codex")),
            ..flags_with_config(config.path())
        };
        let s = ServeSettings::resolve(&flags, &env(&[("SKILLBRIDGE_APP_SERVER", "/opt/env/codex")])).unwrap();
        assert_eq!(s.app_server.unwrap().program, PathBuf::from("/opt/flag/codex"));
    }

    #[test]
    fn app_server_threads_take_the_session_settings() {
        let flags = ServeArgs {
            app_server: app_server_flag(None),
            session: SessionArgs {
                cwd: Some("/work/project".into()),
                model: Some("gpt-5".into()),
                approval_policy: Some("never".into()),
                sandbox: Some("workspace-write".into()),
            },
            sessions: Some(2),
            ..ServeArgs::default()
        };
        let s = ServeSettings::resolve(&flags, &env(&[])).unwrap();
        assert_eq!(s.create_sessions, 2);
        let params = s.app_server.unwrap().thread_options.params();
        assert_eq!(params["cwd"], "/work/project");
        assert_eq!(params["model"], "gpt-5");
        assert_eq!(params["approvalPolicy"], "never");
        assert_eq!(params["sandbox"], "workspace-write");

        let flags = ServeArgs {
            session: SessionArgs {
                approval_policy: Some("on-failure".into()),
                ..SessionArgs::default()
            },
            ..flags
        };
        let err = ServeSettings::resolve(&flags, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("on-failure") && err.contains("on-request"), "{err}");
    }

    #[test]
    fn options_that_mean_nothing_to_app_server_are_usage_errors() {
        let base = ServeArgs {
            app_server: app_server_flag(None),
            ..ServeArgs::default()
        };
        let cases = [
            (
                ServeArgs {
                    attach: vec!["s1".into()],
                    ..base.clone()
                },
                "--session",
            ),
            (
                ServeArgs {
                    all_sessions: true,
                    ..base.clone()
                },
                "--all-sessions",
            ),
            (
                ServeArgs {
                    delete_on_exit: true,
                    ..base.clone()
                },
                "--delete-on-exit",
            ),
            (
                ServeArgs {
                    manager: ManagerArgs {
                        url: Some("http://127.0.0.1:1".into()),
                        ..ManagerArgs::default()
                    },
                    ..base.clone()
                },
                "--manager-url",
            ),
            (
                ServeArgs {
                    sessions: Some(0),
                    ..base.clone()
                },
                "--sessions",
            ),
            (
                ServeArgs {
                    restart: true,
                    ..ServeArgs::default()
                },
                "--restart",
            ),
        ];
        for (flags, named) in cases {
            let err = ServeSettings::resolve(&flags, &env(&[])).unwrap_err().to_string();
            assert!(err.contains(named), "{named}: {err}");
        }
        let err = ServeSettings::resolve(&base, &env(&[("SKILLBRIDGE_DELETE_ON_EXIT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--delete-on-exit cannot be used with --app-server"),
            "{err}"
        );
    }

    #[test]
    fn send_app_server_reads_a_lone_value_as_the_prompt() {
        use clap::Parser;
        let parse = |line: &[&str]| SendSettings::resolve(&SendCli::try_parse_from(line).unwrap().args, &env(&[]));

        let s = parse(&["send", "--app-server", "count the words"]).unwrap();
        assert_eq!(s.prompt, "count the words");
        assert_eq!(s.app_server.unwrap().program, PathBuf::from("codex"));

        let s = parse(&["send", "--app-server", "/opt/codex", "count the words"]).unwrap();
        assert_eq!(s.prompt, "count the words");
        assert_eq!(s.app_server.unwrap().program, PathBuf::from("/opt/codex"));

        let s = parse(&["send", "count the words", "--app-server"]).unwrap();
        assert_eq!(s.prompt, "count the words");

        let err = parse(&["send", "--app-server"]).unwrap_err().to_string();
        assert!(err.contains("prompt"), "{err}");
        let err = parse(&["send", "--app-server", "hi", "--keep-session"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--keep-session"), "{err}");
        assert!(
            SendCli::try_parse_from(["send"]).is_err(),
            "the prompt is still required"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").is_err());
    }
}
