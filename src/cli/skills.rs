//! `skills` (table, `--json`, `--json --details`, `show NAME`, `diff OLD [NEW]` in `skills/diff.rs`) and
//! `call NAME JSON|-`: the local view of a binary's skills.
//!
//! `--json` is exactly the `dynamicTools` payload Codex receives; annotations and tags, which that payload has
//! no place for, are in the table, in `show`, and in `--json --details` (the catalog as the admin `/skills` route
//! shows it, without the call counts).

mod diff;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::replay::RecordedCall;
use super::{App, exit};

use crate::skill::{
    Annotations, Catalog, ContentItem, Outcome, SkillContext, SkillInfo, ToolFlavor, ToolResult, format_duration,
};
pub use diff::DiffArgs;

/// The longest description shown in the table, in characters.
const TABLE_DESCRIPTION_CHARS: usize = 72;

/// `skillbridge skills`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    skillbridge skills\n  \
    skillbridge skills --json --flavor app-server\n  \
    skillbridge skills --json --details\n  \
    skillbridge skills show word_count\n  \
    skillbridge skills diff released/skills.json")]
pub struct SkillsArgs {
    /// Print the exact `dynamicTools` payload (a JSON array) instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Which upstream the `--json` payload is for: codex-manager takes `{name, description, inputSchema}`,
    /// `codex app-server` also wants `"type": "function"`.
    #[arg(long, value_enum, default_value_t = ToolFlavor::CodexManager, requires = "json")]
    pub flavor: ToolFlavor,

    /// With --json: print `{"dynamicTools": [the payload], "states": {"<skill>": [{"parameter", "type"}]}}`, the
    /// `State<T>` parameters of each skill next to the payload (they are never sent to Codex).
    #[arg(long, requires = "json")]
    pub states: bool,

    /// TOML settings file whose `[skills.<name>]` tables configure the skills' states (as serve's --config).
    #[arg(long, env = "SKILLBRIDGE_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// With `--json`: print every skill in detail instead of the `dynamicTools` payload: name, title,
    /// description, annotations (MCP hints), tags, timeout, location and schemas, as the admin `/skills` route
    /// shows them.
    #[arg(long, requires = "json", conflicts_with_all = ["flavor", "states"])]
    pub details: bool,

    /// Show one skill in detail, or compare two catalogs, instead.
    #[command(subcommand)]
    pub command: Option<SkillsCommand>,
}

/// `skillbridge skills show` and `skillbridge skills diff`.
#[derive(Debug, Subcommand)]
pub enum SkillsCommand {
    /// Show one skill: title, description, hints, tags, timeout, where it is defined, and its input and output
    /// schemas.
    Show {
        /// The skill's name, as listed by `skillbridge skills`.
        name: String,
    },
    /// Compare two catalogs (`skills --json` outputs; NEW defaults to this binary's) and say which changes break
    /// sessions created with the old one; exit 1 when one does.
    Diff(DiffArgs),
}

/// `skillbridge call`.
#[derive(Debug, Args)]
#[command(
    after_help = "The result's text goes to stdout; a failure's message goes to stderr.\n\
    Exit status: 0 the skill succeeded, 1 it failed (error, bad arguments, panic, timeout),\n\
    2 usage error (unknown skill, arguments that are not JSON).\n\n\
    Examples:\n  \
    skillbridge call word_count '{\"text\": \"one two three\"}'\n  \
    echo '{\"ticket_id\": \"T-1001\"}' | skillbridge call ticket_lookup -"
)]
pub struct CallArgs {
    /// The skill to run, as listed by `skillbridge skills`.
    #[arg(required_unless_present = "replay")]
    pub name: Option<String>,

    /// The arguments as a JSON object, or `-` to read them from stdin. Default: `{}`.
    pub arguments: Option<String>,

    /// Print the whole tool result as JSON (`{"contentItems": [..], "success": ..}`), exactly as the upstream
    /// receives it, instead of its text.
    #[arg(long)]
    pub json: bool,

    /// TOML settings file whose `[skills.<name>]` tables configure the skills' states (as serve's --config).
    #[arg(long, env = "SKILLBRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Run a call a bridge recorded again, here, with the same arguments and ids: URL is its admin endpoint's
    /// `/calls/{request_id}` (the bridge must run with --record-arguments), e.g.
    /// http://127.0.0.1:7878/calls/42.
    #[arg(long, value_name = "URL", conflicts_with_all = ["name", "arguments"])]
    pub replay: Option<String>,

    /// The admin token of the bridge --replay reads from.
    #[arg(
        long,
        env = "SKILLBRIDGE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        requires = "replay"
    )]
    pub admin_token: Option<String>,
}

impl SkillsArgs {
    /// Runs `skills`, without states.
    pub async fn run(self) -> ExitCode {
        self.run_with(&App::new()).await
    }

    /// Runs `skills` with the states of `app`.
    pub async fn run_with(self, app: &App) -> ExitCode {
        let show = match &self.command {
            Some(SkillsCommand::Diff(diff)) => return diff.run(app, self.config.as_ref()),
            Some(SkillsCommand::Show { name }) => Some(name),
            None => None,
        };
        let catalog = match load_catalog(app, self.config.as_ref()) {
            Ok(catalog) => catalog,
            Err(code) => return ExitCode::from(code),
        };
        let output = match show {
            Some(name) => match catalog.get(name) {
                Some(skill) => render_skill(skill),
                None => {
                    eprintln!("error: {}", unknown_skill(&catalog, name));
                    return ExitCode::from(exit::USAGE);
                }
            },
            None if self.json && self.states => pretty(&json!({
                "dynamicTools": catalog.dynamic_tools(self.flavor),
                "states": state_listing(&catalog),
            })),
            None if self.json && self.details => pretty(&Value::Array(catalog.iter().map(details).collect())),
            None if self.json => pretty(&Value::Array(catalog.dynamic_tools(self.flavor))),
            None if catalog.is_empty() => {
                eprintln!("no skills are linked into this binary");
                return ExitCode::from(exit::SUCCESS);
            }
            None => render_table(&catalog),
        };
        ExitCode::from(print_stdout(&output))
    }
}

impl CallArgs {
    /// Runs `call`, without states.
    pub async fn run(self) -> ExitCode {
        self.run_with(&App::new()).await
    }

    /// Runs `call` with the states of `app`.
    pub async fn run_with(self, app: &App) -> ExitCode {
        let catalog = match load_catalog(app, self.config.as_ref()) {
            Ok(catalog) => catalog,
            Err(code) => return ExitCode::from(code),
        };
        let cancellation = CancellationToken::new();
        let prepared = match &self.replay {
            Some(url) => self.recorded(&catalog, url, &cancellation).await,
            None => self.given(&catalog, &cancellation),
        };
        let (name, arguments, ctx) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(exit::USAGE);
            }
        };
        let interrupt = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancellation.cancel();
            }
        });
        let invocation = catalog.invoke_detailed(&name, arguments, ctx).await;
        interrupt.abort();
        tracing::debug!(skill = %name, outcome = invocation.outcome.as_str(), "call finished");
        let code = if invocation.outcome == Outcome::Success {
            exit::SUCCESS
        } else {
            exit::FAILURE
        };
        if self.json {
            let printed = print_stdout(&pretty(&serde_json::to_value(&invocation.result).unwrap_or_default()));
            return ExitCode::from(code.max(printed));
        }
        let text = render_result(&invocation.result);
        if invocation.result.success {
            ExitCode::from(print_stdout(&text))
        } else {
            eprintln!("error: {text}");
            ExitCode::from(code)
        }
    }

    /// The skill named on the command line, its arguments, and a context without ids.
    fn given(
        &self,
        catalog: &Catalog,
        cancellation: &CancellationToken,
    ) -> Result<(String, Value, SkillContext), String> {
        let name = self.name.clone().unwrap_or_default();
        if catalog.get(&name).is_none() {
            return Err(unknown_skill(catalog, &name));
        }
        let arguments = self.read_arguments()?;
        let ctx = SkillContext::new("", None, "", "", name.clone(), cancellation.clone());
        Ok((name, arguments, ctx))
    }

    /// The recorded call at `url`: its skill, its arguments, and a context with its ids.
    async fn recorded(
        &self,
        catalog: &Catalog,
        url: &str,
        cancellation: &CancellationToken,
    ) -> Result<(String, Value, SkillContext), String> {
        let call = RecordedCall::fetch(url, self.admin_token.as_deref()).await?;
        if catalog.get(&call.tool).is_none() {
            return Err(format!(
                "the recorded call is to {}",
                unknown_skill(catalog, &call.tool)
            ));
        }
        let arguments = call.arguments(catalog)?;
        let ctx = SkillContext::new(
            call.session,
            call.turn_id,
            call.call_id,
            call.request_id,
            call.tool.clone(),
            cancellation.clone(),
        );
        Ok((call.tool, arguments, ctx))
    }

    fn read_arguments(&self) -> Result<Value, String> {
        let text = match self.arguments.as_deref() {
            None => return Ok(Value::Object(Default::default())),
            Some("-") => {
                let mut text = String::new();
                io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|error| format!("cannot read the arguments from stdin: {error}"))?;
                text
            }
            Some(text) => text.to_owned(),
        };
        serde_json::from_str(&text).map_err(|error| format!("the arguments are not valid JSON: {error}"))
    }
}

/// The binary's skills with the states of `app` (and of the settings file at `config`); the exit status, the
/// reason said on stderr, when the settings are unusable (2) or the skills do not form a catalog (1), e.g.
/// because a state was not provided.
fn load_catalog(app: &App, config: Option<&PathBuf>) -> Result<Catalog, u8> {
    let file = super::settings::load_config(config.map(PathBuf::as_path)).map_err(|error| {
        eprintln!("error: {error}");
        exit::USAGE
    })?;
    let (states, _) = app.resolve(file.skills).map_err(|error| {
        eprintln!("error: {error}");
        exit::USAGE
    })?;
    let skills = app.runtime_skills().iter().cloned();
    Catalog::builder()
        .states(states)
        .skills(skills)
        .build()
        .map_err(|error| {
            eprintln!("error: this binary's skills cannot run: {error}");
            exit::FAILURE
        })
}

/// The `State<T>` parameters of each skill that takes some: `{"<skill>": [{"parameter": .., "type": ..}]}`.
fn state_listing(catalog: &Catalog) -> Value {
    let skills = catalog
        .iter()
        .filter(|skill| !skill.state_parameters().is_empty())
        .map(|skill| {
            let states: Vec<Value> = skill
                .state_parameters()
                .iter()
                .map(|need| json!({"parameter": need.parameter(), "type": need.type_name()}))
                .collect();
            (skill.name().to_owned(), Value::Array(states))
        });
    Value::Object(skills.collect())
}

/// `name: State<T>` for each state parameter, comma separated.
fn state_text(skill: &SkillInfo) -> String {
    skill
        .state_parameters()
        .iter()
        .map(|need| format!("{}: State<{}>", need.parameter(), short_type_name(need.type_name())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A type name without its module paths (`a::b::Pool<c::D>` → `Pool<D>`), to keep the table narrow.
fn short_type_name(name: &str) -> String {
    let mut short = String::new();
    let mut word = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            short.push_str(word.rsplit("::").next().unwrap_or_default());
            word.clear();
            short.push(c);
        }
    }
    short.push_str(word.rsplit("::").next().unwrap_or_default());
    short
}

fn unknown_skill(catalog: &Catalog, name: &str) -> String {
    let known: Vec<&str> = catalog.names().collect();
    if known.is_empty() {
        format!("unknown skill `{name}`; this binary has no skills")
    } else {
        format!("unknown skill `{name}`; the skills are: {}", known.join(", "))
    }
}

/// Writes `text` and a newline to stdout and returns the exit status; a closed pipe (`| head`) is not an error.
fn print_stdout(text: &str) -> u8 {
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => exit::SUCCESS,
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => exit::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot write to stdout: {error}");
            exit::FAILURE
        }
    }
}

/// Writes the `dynamicTools` payload of the skills of `catalog` named in `offered`, for `flavor`, to `path`, as
/// `skills --json` prints them. The file appears whole or not at all: it is written beside `path` and renamed over
/// it.
pub(crate) fn write_catalog(
    catalog: &Catalog,
    offered: &BTreeSet<String>,
    flavor: ToolFlavor,
    path: &Path,
) -> Result<(), String> {
    let text = format!("{}\n", pretty(&Value::Array(catalog.dynamic_tools_of(offered, flavor))));
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|error| {
            let _ = std::fs::remove_file(&partial);
            format!("cannot write the catalog to {}: {error}", path.display())
        })
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// One row per skill: name, parameters (`?` marks optional ones), timeout, hints, tags, the description's start.
fn render_table(catalog: &Catalog) -> String {
    let mut table = tabwriter::TabWriter::new(Vec::new()).padding(2);
    let _ = writeln!(table, "NAME\tPARAMETERS\tSTATE\tTIMEOUT\tHINTS\tTAGS\tDESCRIPTION");
    for skill in catalog {
        let parameters: Vec<String> = skill
            .parameters()
            .into_iter()
            .map(|(name, required)| if required { name.to_owned() } else { format!("{name}?") })
            .collect();
        let description = shorten(&one_line(skill.description()), TABLE_DESCRIPTION_CHARS);
        let (name, timeout) = (skill.name(), format_duration(skill.timeout()));
        let states = match state_text(skill) {
            text if text.is_empty() => "-".to_owned(),
            text => text,
        };
        let hints = or_dash(hint_words(skill.annotations(), true).join(","));
        let tags = or_dash(skill.tags().join(","));
        let _ = writeln!(
            table,
            "{name}\t{}\t{states}\t{timeout}\t{hints}\t{tags}\t{description}",
            parameters.join(", ")
        );
    }
    // Writing to memory cannot fail.
    String::from_utf8_lossy(&table.into_inner().unwrap_or_default())
        .trim_end()
        .to_owned()
}

/// The hints a skill gives, as words (`read-only`, `closed-world`, ..; `short` writes `ro`/`rw` for the first), in
/// MCP's order. Hints it does not give are not listed.
fn hint_words(annotations: &Annotations, short: bool) -> Vec<&'static str> {
    let read_only = if short {
        ["ro", "rw"]
    } else {
        ["read-only", "read-write"]
    };
    [
        (annotations.read_only(), read_only),
        (annotations.destructive(), ["destructive", "non-destructive"]),
        (annotations.idempotent(), ["idempotent", "non-idempotent"]),
        (annotations.open_world(), ["open-world", "closed-world"]),
    ]
    .into_iter()
    .filter_map(|(hint, [yes, no])| hint.map(|hint| if hint { yes } else { no }))
    .collect()
}

/// `-` for an empty table cell.
fn or_dash(cell: String) -> String {
    if cell.is_empty() { "-".to_owned() } else { cell }
}

/// Whitespace runs (newlines included) as single spaces, so that a description stays on its table row.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max_chars - 1).collect();
    format!("{}…", cut.trim_end())
}

fn render_skill(skill: &SkillInfo) -> String {
    let output_schema = match skill.output_schema() {
        Some(schema) => pretty(schema),
        None => "(none: the skill answers text or content items)".to_owned(),
    };
    let hints = hint_words(skill.annotations(), false);
    format!(
        "name:        {}\ntitle:       {}\ndescription: {}\nhints:       {}\ntags:        {}\ntimeout:     {}\n\
         defined in:  {}\nstate:       {}\n\ninput schema:\n{}\n\noutput schema:\n{}",
        skill.name(),
        skill.annotations().title().unwrap_or("(none)"),
        skill.description(),
        if hints.is_empty() {
            "(none given)".to_owned()
        } else {
            hints.join(", ")
        },
        if skill.tags().is_empty() {
            "(none)".to_owned()
        } else {
            skill.tags().join(", ")
        },
        format_duration(skill.timeout()),
        skill.location(),
        match skill.state_parameters() {
            [] => "(none)".to_owned(),
            needs => needs
                .iter()
                .map(|need| format!("{}: State<{}>", need.parameter(), need.type_name()))
                .collect::<Vec<_>>()
                .join(", "),
        },
        pretty(skill.input_schema()),
        output_schema,
    )
}

/// One skill for `--json --details`: the keys of the admin `/skills` route (without `calls`), and where it is
/// defined. `annotations` is MCP's `ToolAnnotations` object, hints that are not given left out.
fn details(skill: &SkillInfo) -> Value {
    let mut listing = skill.listing();
    listing["definedIn"] = json!(skill.location().to_string());
    listing
}

/// Text items as they are; images as a short placeholder (use `--json` for the data).
fn render_result(result: &ToolResult) -> String {
    result
        .content_items
        .iter()
        .map(|item| match item {
            ContentItem::InputText { text } => text.clone(),
            ContentItem::InputImage { image_url } => {
                let kind = image_url
                    .strip_prefix("data:")
                    .and_then(|rest| rest.split([';', ',']).next())
                    .unwrap_or("url");
                format!("[image: {kind}, {} characters; --json prints it]", image_url.len())
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
