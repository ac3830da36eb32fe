//! `skillbridge send "prompt"`: one turn in a new session that has the skills as dynamic tools; the tool calls
//! are answered while the turn runs, and the assistant's final reply is printed.
//!
//! The session is a codex-manager session, or with `--app-server` a thread of a `codex app-server` child that
//! send spawns for the turn and terminates afterwards. [`send_with`] does the work and returns a
//! [`SendOutcome`] (tests call it in-process); [`run`] is the command-line wrapper that prints the reply and
//! turns the outcome into the exit status.

use std::collections::HashMap;
use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::serve::APP_SERVER_SHUTDOWN_GRACE;
use super::settings::{AppServerArgs, AppServerSettings, ManagerArgs, SendSettings, SessionArgs, SettingsError};
use crate::bridge::{BridgeHealth, BridgeStats, DispatchConfig, Dispatcher, ServedSession};
use crate::manager::{CodexManager, ManagerError, SendMessage};
use crate::skill::{Catalog, ToolFlavor};
use crate::stream::{AppServerSignal, Frame, HandlerContext, Router};
use crate::sync::lock;
use crate::upstream::app_server::{AppServer, AppServerError, TurnOutcome, TurnStatus};
use crate::upstream::codex_manager::{CodexManagerFeed, CodexManagerUpstream, SessionScope};

/// How long running tool calls get to finish once the turn is over.
const CALLS_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for the turn to report its end after asking codex-manager to interrupt it.
const INTERRUPT_WAIT: Duration = Duration::from_secs(10);

const SEND_LONG_ABOUT: &str = "\
Send one message to Codex in a new codex-manager session whose dynamic tools are this binary's skills, answer the
tool calls the turn makes, and print the assistant's final reply on stdout.

With --app-server there is no codex-manager: send spawns `codex app-server` (with the CODEX_HOME and login of the
environment), runs the turn in a new thread and terminates the child at the end. `send --app-server <PROMPT>` runs
`codex` from PATH; `send --app-server <PATH> <PROMPT>` runs the Codex CLI at PATH.

Exit status: 0 when the turn completed, 1 when it failed, was interrupted (Ctrl-C interrupts it) or timed out, or
when codex-manager could not be used; 2 for unusable arguments or settings. The session is deleted at the end unless
--keep-session. Connection settings are layered like serve's: flag > environment variable > TOML file (--config) >
codex-manager profile (--profile) > default.";

const SEND_EXAMPLES: &str = "\
Examples:
  skillbridge send 'What time is it in Tokyo?'
  skillbridge send --timeout 30s --model gpt-5 'Uppercase the word bridge'
  skillbridge send --keep-session --manager-url http://127.0.0.1:3001 'Look up ticket 42'
  skillbridge send --app-server 'How many words are in \"to be or not to be\"?'
  skillbridge send --app-server ~/.cache/codex/bin/codex --model gpt-5 'Uppercase the word bridge'";

/// The flags of `skillbridge send`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(
    about = "Send one message to Codex with the skills as tools and print the reply",
    long_about = SEND_LONG_ABOUT,
    after_long_help = SEND_EXAMPLES
)]
pub struct SendArgs {
    /// The message to send.
    // Optional to clap only for `send --app-server "prompt"`, where clap reads the prompt as the PATH;
    // the settings sort that out and refuse an empty prompt.
    #[arg(
        value_name = "PROMPT",
        required_unless_present = "app_server",
        default_value = "",
        hide_default_value = true
    )]
    pub prompt: String,

    /// codex-manager connection and settings file.
    #[command(flatten)]
    pub manager: ManagerArgs,

    /// How the session is set up.
    #[command(flatten)]
    pub session: SessionArgs,

    /// Run the turn in a spawned `codex app-server` instead of codex-manager.
    #[command(flatten)]
    pub app_server: AppServerArgs,

    /// Give up (and interrupt the turn) after this long. [env: SKILLBRIDGE_SEND_TIMEOUT] [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = super::settings::parse_duration)]
    pub timeout: Option<Duration>,

    /// Keep the session instead of deleting it at the end. [env: SKILLBRIDGE_KEEP_SESSION]
    #[arg(long)]
    pub keep_session: bool,

    /// Skills running at once, at most. [env: SKILLBRIDGE_CONCURRENCY] [default: 64]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// How often to list pending tool calls besides after every (re)connect. [env: SKILLBRIDGE_POLL_INTERVAL]
    /// [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = super::settings::parse_duration)]
    pub poll_interval: Option<Duration>,
}

/// How the turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEnd {
    /// `turn.status == "completed"`.
    Completed,
    /// `turn.status == "failed"`, with the turn's error message when it had one.
    Failed(Option<String>),
    /// The turn was interrupted (by Ctrl-C here, or by someone else).
    Interrupted,
    /// The turn did not finish within `--timeout`; it was interrupted.
    TimedOut,
}

impl TurnEnd {
    /// The exit status `send` gives for this end: 0 for completed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            TurnEnd::Completed => 0,
            _ => 1,
        }
    }
}

/// What `send` saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// The session used.
    pub session_id: String,
    /// The turn the message started.
    pub turn_id: String,
    /// How the turn ended.
    pub end: TurnEnd,
    /// The assistant's final reply (the last `agentMessage` item of the turn), if there was one.
    pub reply: Option<String>,
    /// `true` when the session was deleted at the end.
    pub deleted: bool,
}

/// Why `send` could not run the turn.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The settings are unusable.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The registered skills do not form a catalog.
    #[error("the skills cannot be served: {0}")]
    Catalog(#[from] crate::skill::CatalogError),
    /// codex-manager could not be reached.
    #[error(
        "cannot reach codex-manager at {url}: {source}\n(is it running? set --manager-url or CODEX_MANAGER_API_BASE)"
    )]
    Unreachable {
        /// The base URL.
        url: String,
        /// The failure.
        source: ManagerError,
    },
    /// A codex-manager operation failed.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// The stream did not connect in time, so the turn's events could not be followed.
    #[error("the codex-manager stream did not connect within {0:?}")]
    StreamNotReady(Duration),
    /// The `codex app-server` child could not be spawned.
    #[error("{source}\n(is the Codex CLI installed? give its path with --app-server PATH or SKILLBRIDGE_APP_SERVER)")]
    AppServerSpawn {
        /// The failure.
        source: AppServerError,
    },
    /// The `codex app-server` child failed (did not start, exited, or refused a request).
    #[error("codex app-server: {0}")]
    AppServer(AppServerError),
}

impl From<AppServerError> for SendError {
    fn from(error: AppServerError) -> Self {
        match error {
            AppServerError::Spawn(_) => Self::AppServerSpawn { source: error },
            other => Self::AppServer(other),
        }
    }
}

/// What the stream has told about turns: the last agent message and the end of each turn, by turn id. Events
/// may arrive before `send_message` returns the turn id, so everything is recorded and looked up afterwards.
#[derive(Default)]
struct TurnLog {
    replies: HashMap<String, String>,
    ends: HashMap<String, (String, Option<String>, Option<String>)>,
}

impl TurnLog {
    fn record_item(&mut self, params: &Value) {
        let item = &params["item"];
        if item["type"] == "agentMessage"
            && let (Some(turn), Some(text)) = (params["turnId"].as_str(), item["text"].as_str())
        {
            self.replies.insert(turn.to_owned(), text.to_owned());
        }
    }

    fn record_end(&mut self, turn: &Value) {
        if let Some(id) = turn["id"].as_str() {
            let status = turn["status"].as_str().unwrap_or("unknown").to_owned();
            let error = error_message(&turn["error"]);
            self.ends
                .insert(id.to_owned(), (status, error, last_agent_message(turn)));
        }
    }
}

/// The text of the last `agentMessage` item of a turn object.
fn last_agent_message(turn: &Value) -> Option<String> {
    turn["items"]
        .as_array()?
        .iter()
        .rev()
        .find(|item| item["type"] == "agentMessage")
        .and_then(|item| item["text"].as_str())
        .map(str::to_owned)
}

fn error_message(error: &Value) -> Option<String> {
    match error {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => other["message"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| Some(other.to_string())),
    }
}

fn turn_end(status: &str, error: Option<String>) -> Option<TurnEnd> {
    match status {
        "completed" => Some(TurnEnd::Completed),
        "failed" => Some(TurnEnd::Failed(error)),
        "interrupted" | "cancelled" => Some(TurnEnd::Interrupted),
        _ => None,
    }
}

/// Creates a session with `catalog`'s skills, sends the prompt, answers tool calls until the turn ends (or
/// `interrupt` completes, or the timeout passes), and returns how it went. With `settings.app_server` the
/// session is a thread of a `codex app-server` child, terminated at the end.
pub async fn send_with(
    settings: SendSettings,
    catalog: Catalog,
    interrupt: impl Future<Output = ()>,
) -> Result<SendOutcome, SendError> {
    match settings.app_server.clone() {
        Some(app_server) => send_app_server(&settings, &app_server, catalog, interrupt).await,
        None => send_codex_manager(settings, catalog, interrupt).await,
    }
}

async fn send_codex_manager(
    settings: SendSettings,
    catalog: Catalog,
    interrupt: impl Future<Output = ()>,
) -> Result<SendOutcome, SendError> {
    let client = CodexManager::new(settings.manager.clone())?;
    let tools = catalog.dynamic_tools(ToolFlavor::CodexManager);
    let created = client
        .create_session(&settings.session.request(tools))
        .await
        .map_err(|error| unreachable_or(&client, error))?;
    let session_id = created.session_id.clone();
    tracing::info!(session = %session_id, skills = catalog.len(), "created session");

    let log = Arc::new(Mutex::new(TurnLog::default()));
    let changed = Arc::new(Notify::new());
    let ready = Arc::new(Notify::new());
    let router = turn_router(&log, &changed, &ready);

    let health = Arc::new(BridgeHealth::new());
    health.add_session(ServedSession {
        id: created.thread_id.clone(),
        upstream: "codex-manager",
        created: true,
    });
    let config = DispatchConfig {
        concurrency: settings.concurrency,
        ..DispatchConfig::default()
    };
    let upstream = Arc::new(CodexManagerUpstream::new(client.clone()));
    let dispatcher = Dispatcher::with_stats(catalog, upstream, config, Arc::new(BridgeStats::new()));
    let scope = SessionScope::Only([created.thread_id.clone()].into());
    let feed = CodexManagerFeed::new(
        client.clone(),
        dispatcher.clone(),
        Arc::clone(&health),
        scope,
        settings.poll_interval,
    );
    let stop = CancellationToken::new();
    let first_ready = Arc::clone(&ready).notified_owned();
    let feed_task = tokio::spawn(feed.run(router, stop.clone()));

    let result = drive_turn(
        &client,
        &settings,
        &session_id,
        &log,
        &changed,
        &ready,
        first_ready,
        interrupt,
    )
    .await;

    stop.cancel();
    let report = dispatcher.shutdown(CALLS_GRACE).await;
    if report.cancelled > 0 {
        tracing::warn!(
            cancelled = report.cancelled,
            "tool calls still running at the end were answered success:false"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), feed_task).await;
    let deleted = if settings.keep_session {
        false
    } else {
        match client.delete_session(&session_id).await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(session = %session_id, %error, "could not delete the session");
                false
            }
        }
    };
    let (turn_id, end, reply) = result?;
    Ok(SendOutcome {
        session_id,
        turn_id,
        end,
        reply,
        deleted,
    })
}

/// `send --app-server`: spawn the child, start a thread with the skills, run the turn, answer its calls, and
/// terminate the child whatever happened.
async fn send_app_server(
    settings: &SendSettings,
    app_server: &AppServerSettings,
    catalog: Catalog,
    interrupt: impl Future<Output = ()>,
) -> Result<SendOutcome, SendError> {
    let app = AppServer::start(app_server.command()).await?;
    let config = DispatchConfig {
        concurrency: settings.concurrency,
        ..DispatchConfig::default()
    };
    let options = app_server
        .thread_options
        .clone()
        .dynamic_tools(catalog.dynamic_tools(ToolFlavor::AppServer));
    let dispatcher = Dispatcher::with_stats(catalog, app.upstream(), config, Arc::new(BridgeStats::new()));
    app.start_event_loop(Arc::new(dispatcher.clone()))?;

    let result = run_app_server_turn(&app, &dispatcher, &options, settings, interrupt).await;

    // Answers go through the child, so running calls finish (or are answered success:false) before it ends.
    let report = dispatcher.shutdown(CALLS_GRACE).await;
    if report.cancelled > 0 {
        tracing::warn!(
            cancelled = report.cancelled,
            "tool calls still running at the end were answered success:false"
        );
    }
    let exit = app.shutdown(APP_SERVER_SHUTDOWN_GRACE).await;
    tracing::debug!("{exit}");
    result
}

async fn run_app_server_turn(
    app: &AppServer,
    dispatcher: &Dispatcher,
    options: &crate::upstream::app_server::ThreadOptions,
    settings: &SendSettings,
    interrupt: impl Future<Output = ()>,
) -> Result<SendOutcome, SendError> {
    let thread_id = app.start_thread(options).await?;
    tracing::info!(thread = %thread_id, "started thread");
    let turn_id = app.start_turn(&thread_id, &settings.prompt).await?;
    tracing::info!(turn = %turn_id, "message sent; waiting for the turn to finish");
    let outcome = |end: TurnEnd, reply: Option<String>| SendOutcome {
        session_id: thread_id.clone(),
        turn_id: turn_id.clone(),
        end,
        reply,
        deleted: false,
    };

    let finished = tokio::select! {
        finished = app.wait_turn(&turn_id, settings.timeout) => finished,
        _ = interrupt => {
            tracing::info!(turn = %turn_id, "interrupting the turn");
            interrupt_app_server_turn(app, &thread_id, &turn_id).await;
            let end = match app.wait_turn(&turn_id, INTERRUPT_WAIT).await {
                Ok(done) if done.status == TurnStatus::Completed => {
                    return Ok(outcome(TurnEnd::Completed, done.final_reply));
                }
                Ok(done) => outcome(TurnEnd::Interrupted, done.final_reply),
                Err(AppServerError::TurnTimeout { .. }) => outcome(TurnEnd::Interrupted, None),
                // A Ctrl-C typed in a terminal also reaches the child when it shares our process group.
                Err(AppServerError::Exited(report)) => {
                    tracing::warn!("the turn's codex app-server ended while it was interrupted: {report}");
                    outcome(TurnEnd::Interrupted, None)
                }
                Err(error) => return Err(error.into()),
            };
            // The event loop cancels the turn's skills when Codex reports the turn interrupted; one it never
            // reported (no answer in time, child gone) is cancelled here.
            dispatcher.cancel_turn(&turn_id);
            return Ok(end);
        }
    };
    match finished {
        Ok(done) => {
            let end = app_server_turn_end(&done);
            Ok(outcome(end, done.final_reply))
        }
        Err(AppServerError::TurnTimeout { .. }) => {
            tracing::warn!(turn = %turn_id, timeout = ?settings.timeout, "the turn did not finish in time; interrupting it");
            interrupt_app_server_turn(app, &thread_id, &turn_id).await;
            let reply = app
                .wait_turn(&turn_id, INTERRUPT_WAIT)
                .await
                .ok()
                .and_then(|done| done.final_reply);
            dispatcher.cancel_turn(&turn_id);
            Ok(outcome(TurnEnd::TimedOut, reply))
        }
        Err(error) => Err(error.into()),
    }
}

async fn interrupt_app_server_turn(app: &AppServer, thread_id: &str, turn_id: &str) {
    if let Err(error) = app.interrupt_turn(thread_id, turn_id).await {
        // The turn may have ended meanwhile.
        tracing::debug!(%error, "turn/interrupt failed");
    }
}

fn app_server_turn_end(outcome: &TurnOutcome) -> TurnEnd {
    match &outcome.status {
        TurnStatus::Completed => TurnEnd::Completed,
        TurnStatus::Interrupted => TurnEnd::Interrupted,
        TurnStatus::Failed => TurnEnd::Failed(outcome.error.clone()),
        TurnStatus::Other(status) => TurnEnd::Failed(Some(format!("the turn ended with status {status:?}"))),
    }
}

fn unreachable_or(client: &CodexManager, error: ManagerError) -> SendError {
    if matches!(error, ManagerError::Transport { .. }) {
        SendError::Unreachable {
            url: client.config().base_url().to_owned(),
            source: error,
        }
    } else {
        SendError::Manager(error)
    }
}

fn turn_router(log: &Arc<Mutex<TurnLog>>, changed: &Arc<Notify>, ready: &Arc<Notify>) -> Router {
    let mut router = Router::new();
    let (items_log, items_changed) = (Arc::clone(log), Arc::clone(changed));
    router.on_app_server(
        "item.completed",
        move |signal: AppServerSignal, _ctx: HandlerContext| {
            lock(&items_log).record_item(&signal.params);
            items_changed.notify_waiters();
            async {}
        },
    );
    let (ends_log, ends_changed) = (Arc::clone(log), Arc::clone(changed));
    router.on_app_server(
        "turn.completed",
        move |signal: AppServerSignal, _ctx: HandlerContext| {
            lock(&ends_log).record_end(&signal.params["turn"]);
            ends_changed.notify_waiters();
            async {}
        },
    );
    let ready = Arc::clone(ready);
    router.on_control(move |frame: Frame, _ctx: HandlerContext| {
        if matches!(frame, Frame::Ready { .. }) {
            ready.notify_waiters();
        }
        async {}
    });
    router
}

#[allow(clippy::too_many_arguments)]
async fn drive_turn(
    client: &CodexManager,
    settings: &SendSettings,
    session_id: &str,
    log: &Arc<Mutex<TurnLog>>,
    changed: &Arc<Notify>,
    ready: &Arc<Notify>,
    first_ready: tokio::sync::futures::OwnedNotified,
    interrupt: impl Future<Output = ()>,
) -> Result<(String, TurnEnd, Option<String>), SendError> {
    let deadline = Instant::now() + settings.timeout;
    // Sending before the stream listens could lose the turn's events.
    if tokio::time::timeout_at(deadline, first_ready).await.is_err() {
        return Err(SendError::StreamNotReady(settings.timeout));
    }
    let accepted = client
        .send_message(session_id, &SendMessage::new(settings.prompt.clone()))
        .await?;
    let turn_id = accepted.turn_id;
    tracing::info!(turn = %turn_id, "message sent; waiting for the turn to finish");

    tokio::pin!(interrupt);
    let mut interrupted = false;
    let mut wait_until = deadline;
    loop {
        let (changed_now, reconnected) = (changed.notified(), ready.notified());
        if let Some((end, reply)) = finished(log, &turn_id) {
            let end = if interrupted && end != TurnEnd::Completed {
                TurnEnd::Interrupted
            } else {
                end
            };
            return Ok((turn_id, end, reply));
        }
        tokio::select! {
            _ = changed_now => {}
            // Events published while the socket was down are lost: read the turn from the session instead.
            _ = reconnected => {
                if let Ok(detail) = client.get_session(session_id).await {
                    record_from_detail(log, &detail);
                }
            }
            _ = &mut interrupt, if !interrupted => {
                tracing::info!(turn = %turn_id, "interrupting the turn");
                interrupted = true;
                request_interrupt(client, session_id, &turn_id).await;
                wait_until = Instant::now() + INTERRUPT_WAIT;
            }
            _ = tokio::time::sleep_until(wait_until) => {
                let reply = reply_of(log, &turn_id);
                if interrupted {
                    return Ok((turn_id, TurnEnd::Interrupted, reply));
                }
                tracing::warn!(turn = %turn_id, timeout = ?settings.timeout, "the turn did not finish in time; interrupting it");
                request_interrupt(client, session_id, &turn_id).await;
                return Ok((turn_id, TurnEnd::TimedOut, reply));
            }
        }
    }
}

async fn request_interrupt(client: &CodexManager, session_id: &str, turn_id: &str) {
    if let Err(error) = client.interrupt(session_id, Some(turn_id)).await {
        // 409 no_active_turn: it ended meanwhile.
        tracing::debug!(%error, "interrupt request failed");
    }
}

fn finished(log: &Mutex<TurnLog>, turn_id: &str) -> Option<(TurnEnd, Option<String>)> {
    let log = lock(log);
    let (status, error, turn_reply) = log.ends.get(turn_id)?;
    let end = turn_end(status, error.clone())?;
    let reply = log.replies.get(turn_id).cloned().or_else(|| turn_reply.clone());
    Some((end, reply))
}

fn reply_of(log: &Mutex<TurnLog>, turn_id: &str) -> Option<String> {
    lock(log).replies.get(turn_id).cloned()
}

/// Records the finished turns of a `sessions.get` detail (`thread.turns`).
fn record_from_detail(log: &Mutex<TurnLog>, detail: &Value) {
    let Some(turns) = detail.pointer("/thread/turns").and_then(Value::as_array) else {
        return;
    };
    let mut log = lock(log);
    for turn in turns {
        if turn["status"].as_str().and_then(|s| turn_end(s, None)).is_some() {
            log.record_end(turn);
        }
    }
}

impl SendArgs {
    /// Runs `skillbridge send` (see [`run`]).
    pub async fn run(self) -> ExitCode {
        run(self).await
    }
}

/// `skillbridge send`: prints the reply on stdout; exit 0 completed, 1 failed/interrupted/timed out or
/// codex-manager unusable, 2 unusable settings.
pub async fn run(args: SendArgs) -> ExitCode {
    super::init_logging("info");
    let settings = match SendSettings::resolve(&args, &|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("skillbridge send: {error}");
            return ExitCode::from(2);
        }
    };
    let catalog = match Catalog::from_registry() {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("skillbridge send: {error}");
            return ExitCode::FAILURE;
        }
    };
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let via_app_server = settings.app_server.is_some();
    match send_with(settings, catalog, interrupt).await {
        Ok(outcome) => {
            if let Some(reply) = &outcome.reply {
                println!("{reply}");
            }
            match &outcome.end {
                TurnEnd::Completed => {}
                TurnEnd::Failed(error) => eprintln!(
                    "skillbridge send: the turn failed{}",
                    error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
                TurnEnd::Interrupted => eprintln!("skillbridge send: the turn was interrupted"),
                TurnEnd::TimedOut => eprintln!("skillbridge send: the turn did not finish in time and was interrupted"),
            }
            if !via_app_server && (args.keep_session || !outcome.deleted) {
                eprintln!("skillbridge send: session {} kept", outcome.session_id);
            }
            ExitCode::from(outcome.end.exit_code())
        }
        Err(error) => {
            eprintln!("skillbridge send: {error}");
            let code = if matches!(error, SendError::Settings(_)) { 2 } else { 1 };
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reply_is_the_last_agent_message_of_the_turn() {
        let mut log = TurnLog::default();
        log.record_item(&json!({"turnId": "t1", "item": {"type": "userMessage", "content": []}}));
        log.record_item(&json!({"turnId": "t1", "item": {"type": "agentMessage", "text": "first"}}));
        log.record_item(&json!({"turnId": "t1", "item": {"type": "agentMessage", "text": "Tool said: HI"}}));
        log.record_item(&json!({"turnId": "t2", "item": {"type": "agentMessage", "text": "other turn"}}));
        log.record_end(&json!({"id": "t1", "status": "completed", "error": null, "items": []}));
        let log = Mutex::new(log);
        assert_eq!(
            finished(&log, "t1"),
            Some((TurnEnd::Completed, Some("Tool said: HI".into())))
        );
        assert_eq!(finished(&log, "t2"), None);
    }

    #[test]
    fn turn_items_stand_in_for_missed_item_events() {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/codex-manager/ws-app_server-turn-completed.json"
        ))
        .unwrap();
        let mut log = TurnLog::default();
        log.record_end(&fixture["payload"]["params"]["turn"]);
        let log = Mutex::new(log);
        let turn = fixture["payload"]["params"]["turn"]["id"].as_str().unwrap();
        assert_eq!(
            finished(&log, turn),
            Some((TurnEnd::Completed, Some("Tool said: HELLO BRIDGE".into())))
        );
    }

    #[test]
    fn failed_and_interrupted_turns() {
        let mut log = TurnLog::default();
        log.record_end(&json!({"id": "f", "status": "failed", "error": {"message": "model overloaded"}}));
        log.record_end(&json!({"id": "i", "status": "interrupted", "error": null}));
        log.record_end(&json!({"id": "p", "status": "inProgress"}));
        let log = Mutex::new(log);
        assert_eq!(
            finished(&log, "f"),
            Some((TurnEnd::Failed(Some("model overloaded".into())), None))
        );
        assert_eq!(finished(&log, "i").map(|f| f.0), Some(TurnEnd::Interrupted));
        assert_eq!(finished(&log, "p"), None);
        assert_eq!(TurnEnd::Completed.exit_code(), 0);
        assert_eq!(TurnEnd::TimedOut.exit_code(), 1);
    }

    #[test]
    fn session_detail_fills_in_lost_turn_events() {
        let log = Mutex::new(TurnLog::default());
        record_from_detail(
            &log,
            &json!({"thread": {"turns": [
                {"id": "t1", "status": "completed", "items": [{"type": "agentMessage", "text": "done"}]},
                {"id": "t2", "status": "inProgress", "items": []}
            ]}}),
        );
        assert_eq!(finished(&log, "t1"), Some((TurnEnd::Completed, Some("done".into()))));
        assert_eq!(finished(&log, "t2"), None);
    }
}
