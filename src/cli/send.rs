//! `skillbridge send "prompt"`: a [`Bridge`] with the binary's skills and one session, one turn in it, the reply
//! printed.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::logging::{self, Tone};
use super::settings::{AppServerTable, ConfigArgs, ManagerTable, SendSettings, SendTable, SessionTable};
use super::{App, Failure, exit, write_catalog};
use crate::bridge::TurnEnd;

const SEND_LONG_ABOUT: &str = "\
Send one message to Codex in a new codex-manager session whose dynamic tools are this binary's skills, answer the
tool calls the turn makes, and print the assistant's final reply on stdout.

With --app-server there is no codex-manager: send spawns `codex app-server` (with the CODEX_HOME and login of the
environment), runs the turn in a new thread, archives the thread (unless --keep-thread) and terminates the child at
the end. `send --app-server <PROMPT>` runs `codex` from PATH; `send --app-server <PATH> <PROMPT>` runs the Codex CLI
at PATH. Codex logs at its own defaults, not at our RUST_LOG (--codex-log sets its filter).

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
  skillbridge send --app-server ~/.cache/codex/bin/codex --model gpt-5 'Uppercase the word bridge'
  RUST_LOG=debug skillbridge send --app-server --codex-log info --keep-thread 'Look up ticket 42'
  skillbridge --log-format json send 'Look up ticket 42' 2> send.log.jsonl";

/// The flags of `skillbridge send`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(
    about = "Send one message to Codex with the skills as tools and print the reply",
    long_about = SEND_LONG_ABOUT,
    after_long_help = SEND_EXAMPLES
)]
pub struct SendArgs {
    /// The message to send.
    // Optional to clap only for `send --app-server "prompt"`, where clap reads the prompt as the PATH; the
    // settings sort that out and refuse an empty prompt.
    #[arg(
        value_name = "PROMPT",
        required_unless_present = "command_line",
        default_value = "",
        hide_default_value = true
    )]
    pub(super) prompt: String,
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    #[command(flatten)]
    pub(super) manager: ManagerTable,
    #[command(flatten)]
    pub(super) session: SessionTable,
    #[command(flatten)]
    pub(super) send: SendTable,
    #[command(flatten)]
    pub(super) app_server: AppServerTable,
}

impl SendArgs {
    /// Runs `skillbridge send`: prints the reply on stdout; exit 0 when the turn completed, 1 when it failed, was
    /// interrupted or timed out, or the upstream could not be used, 2 for unusable settings.
    pub async fn run(self) -> ExitCode {
        self.run_with(&App::new()).await
    }

    /// Runs `skillbridge send` with the states of `app`.
    pub async fn run_with(self, app: &App) -> ExitCode {
        self.send(app).await.unwrap_or_else(|failure| failure.exit("send"))
    }

    async fn send(self, app: &App) -> Result<ExitCode, Failure> {
        let settings = SendSettings::resolve(&self, app)?;
        if self.config.print_config {
            settings.config.print();
            return Ok(ExitCode::SUCCESS);
        }
        let bridge = settings.bridge.build()?;
        write_catalog(&self.config, &settings.config, &bridge)?;
        let interrupt = CancellationToken::new();
        let on_ctrl_c = interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        let turn = bridge
            .send(settings.prompt.clone())
            .timeout(settings.timeout)
            .interrupt_on(interrupt)
            .await;
        let report = bridge.shutdown().await;
        let reply = turn?;
        if let Some(text) = &reply.reply {
            println!("{text}");
        }
        let ended = match &reply.end {
            TurnEnd::Completed => None,
            TurnEnd::Failed(error) => Some(format!(
                "the turn failed{}",
                error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            )),
            TurnEnd::Interrupted => Some("the turn was interrupted".to_owned()),
            TurnEnd::TimedOut => Some("the turn did not finish in time and was interrupted".to_owned()),
        };
        if let Some(ended) = ended {
            logging::say("send", Tone::Problem, &ended);
        }
        if !report.deleted.contains(&reply.session_id) {
            let kept = match settings.config.app_server.enabled {
                Some(true) => "thread",
                _ => "session",
            };
            logging::say("send", Tone::Notice, &format!("{kept} {} kept", reply.session_id));
        }
        let code = if reply.end.is_completed() {
            exit::SUCCESS
        } else {
            exit::FAILURE
        };
        Ok(ExitCode::from(code))
    }
}
