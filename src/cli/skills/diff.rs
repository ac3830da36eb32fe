//! `skills diff OLD.json [NEW.json]`: reads two tool lists (NEW defaults to this binary's own catalog), prints
//! what changed for sessions created with OLD, as text or `--json`, and exits 1 when a change breaks them. The
//! comparison itself is [`crate::skill::diff_tools`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::{App, exit, load_catalog, pretty, print_stdout};
use crate::skill::{ToolList, diff_tools};

/// `skillbridge skills diff`.
#[derive(Debug, Args)]
#[command(
    after_help = "A Codex session's tools are fixed when it is created: after a rollout, sessions created \
    with OLD keep calling\nthe old tools with arguments shaped by the old schemas. Each change is classified:\n  \
    breaking    such a call can now fail: tool removed (a rename is a removal + an addition), required\n              \
    parameter added, optional one made required, parameter removed and refused\n              \
    (additionalProperties: false), type narrowed, enum value or anyOf branch removed, bound\n              \
    tightened (minimum, maxLength, pattern, format, const, ..), additionalProperties closed\n  \
    compatible  every such call still passes: tool or optional parameter added, description changed, bound\n              \
    loosened or removed, enum value or branch added, type widened, required made optional\n\n\
    Exit status: 0 no change or only compatible ones, 1 a breaking change, 2 usage error (a file\n\
    unreadable, not JSON or not a tool list; this binary's catalog unusable).\n\n\
    --json prints {\"breaking\": bool, \"tools\": [{\"name\", \"status\": \"added\"|\"removed\"|\"changed\", \"breaking\",\n\
    \"likelyRename\", \"changes\": [{\"path\", \"kind\", \"breaking\", \"message\"}]}]}.\n\n\
    Examples:\n  \
    skillbridge skills diff released/skills.json         # the released catalog against this binary's\n  \
    skillbridge skills diff old.json new.json --json\n  \
    # CI: fail the pipeline (exit 1) when the new build would break running sessions\n  \
    skillbridge skills --json > new.json && skillbridge skills diff released/skills.json new.json"
)]
pub struct DiffArgs {
    /// The catalog sessions were created with: a file of `skillbridge skills --json` output (the released
    /// `skills.json`, say); `--flavor app-server` and `--states` outputs are read too.
    #[arg(value_name = "OLD.json")]
    pub old: PathBuf,

    /// The catalog to roll out, in the same form. Default: this binary's own skills, as `skills --json` prints
    /// them.
    #[arg(value_name = "NEW.json")]
    pub new: Option<PathBuf>,

    /// Print the changes as JSON instead of the text report.
    #[arg(long)]
    pub json: bool,
}

impl DiffArgs {
    /// Compares the catalogs and prints the changes; `config` configures this binary's states when NEW is
    /// its own catalog.
    pub(super) fn run(&self, app: &App, config: Option<&PathBuf>) -> ExitCode {
        let old = match read_tool_list(&self.old) {
            Ok(old) => old,
            Err(message) => return usage_error(&message),
        };
        let new = match &self.new {
            Some(path) => match read_tool_list(path) {
                Ok(new) => new,
                Err(message) => return usage_error(&message),
            },
            // The reason is on stderr already; a catalog that cannot be built is no verdict on the change.
            None => match load_catalog(app, config) {
                Ok(catalog) => ToolList::from_catalog(&catalog),
                Err(_) => return ExitCode::from(exit::USAGE),
            },
        };
        let diff = diff_tools(&old, &new);
        let report = if self.json {
            pretty(&diff.to_json())
        } else {
            diff.to_string()
        };
        let verdict = if diff.is_breaking() {
            exit::FAILURE
        } else {
            exit::SUCCESS
        };
        ExitCode::from(verdict.max(print_stdout(&report)))
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(exit::USAGE)
}

/// The tool list in the file at `path`, or why it is not one, naming the file.
fn read_tool_list(path: &Path) -> Result<ToolList, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    let document: Value = serde_json::from_str(&text).map_err(|error| format!("{shown} is not JSON: {error}"))?;
    ToolList::from_json(&document).map_err(|error| format!("{shown} is not a tool list: {error}"))
}
