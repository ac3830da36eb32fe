//! helpdesk: a tool server built on skillbridge, as a team would write one.
//!
//! - **Shared state.** The tickets live in a [`Desk`] that every call shares; skills take it as `State<Desk>`
//!   and the entry point supplies it ([`app`]).
//! - **Bounded parameters.** `list_tickets` takes 1 to 20 tickets, `open_ticket` a title of 3 to 120 characters,
//!   `close_ticket` an id like `T-7`. Codex does not show the model these bounds; skillbridge checks every call
//!   against them before the skill runs.
//! - **Skills built at run time.** Each runbook of a JSON file read at start-up becomes a tool of its own
//!   (`runbook_reset_password`, ...), with an input schema built from the runbook's inputs ([`runbook_skills`]).
//! - **Toolsets.** The skills carry tags (`tickets`, `runbooks`, `admin`) and annotations (`read_only`,
//!   `destructive`); `helpdesk.toml` gives triage sessions and fixer sessions different tools.
//!
//! ```sh
//! cargo run -p helpdesk -- skills
//! cargo run -p helpdesk -- call list_tickets '{"limit": 5}'
//! cargo run -p helpdesk -- serve --config examples/helpdesk/helpdesk.toml
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use skillbridge::cli::App;
use skillbridge::skill::{Annotations, RuntimeSkill};
use skillbridge::{SkillError, State, skill};

/// The runbooks the binary offers when `HELPDESK_RUNBOOKS` names no file of its own.
pub const DEFAULT_RUNBOOKS: &str = include_str!("../runbooks.json");

/// The tickets, shared by every call of every skill that takes `State<Desk>`.
#[derive(Debug, Default)]
pub struct Desk {
    tickets: Mutex<BTreeMap<u32, Ticket>>,
}

/// One ticket, as the skills return it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ticket {
    /// `T-1`, `T-2`, ...
    pub id: String,
    /// What is wrong, in a line.
    pub title: String,
    /// `true` once closed.
    pub closed: bool,
}

/// Opens a ticket and answers it with its id.
#[skill(tags = ["tickets"])]
async fn open_ticket(
    desk: State<Desk>,
    /// What is wrong, in a line.
    #[schemars(length(min = 3, max = 120))]
    title: String,
) -> Ticket {
    let mut tickets = desk.tickets.lock().expect("no skill panics while holding the desk");
    let number = tickets.keys().next_back().map_or(1, |last| last + 1);
    let ticket = Ticket {
        id: format!("T-{number}"),
        title,
        closed: false,
    };
    tickets.insert(number, ticket.clone());
    ticket
}

/// Lists the newest open tickets, newest first.
#[skill(read_only, open_world = false, tags = ["tickets"])]
async fn list_tickets(
    desk: State<Desk>,
    /// How many tickets, 1 to 20.
    #[schemars(range(min = 1, max = 20))]
    limit: u32,
) -> Vec<Ticket> {
    let tickets = desk.tickets.lock().expect("no skill panics while holding the desk");
    tickets
        .values()
        .rev()
        .filter(|ticket| !ticket.closed)
        .take(limit as usize)
        .cloned()
        .collect()
}

/// Closes a ticket.
#[skill(destructive, idempotent, tags = ["tickets", "admin"])]
async fn close_ticket(
    desk: State<Desk>,
    /// The ticket's id, like T-7.
    #[schemars(regex(pattern = r"^T-[0-9]+$"))]
    ticket_id: String,
) -> Result<Ticket, SkillError> {
    let number: u32 = ticket_id[2..]
        .parse()
        .map_err(|_| SkillError::new(format!("{ticket_id} is not a ticket number")))?;
    let mut tickets = desk.tickets.lock().expect("no skill panics while holding the desk");
    let ticket = tickets
        .get_mut(&number)
        .ok_or_else(|| SkillError::new(format!("there is no ticket {ticket_id}")))?;
    ticket.closed = true;
    Ok(ticket.clone())
}

/// A runbook as the JSON file describes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Runbook {
    name: String,
    description: String,
    /// Each input: the pattern its value must match and what it is.
    inputs: BTreeMap<String, RunbookInput>,
    /// The steps, with `{input}` placeholders.
    steps: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunbookInput {
    pattern: String,
    description: String,
}

/// One skill per runbook of `json` (a list of `{name, description, inputs, steps}`): `runbook_<name>`, whose
/// parameters are the runbook's inputs (each a string matching its pattern, all required), answering the steps
/// with the inputs filled in. Fails on JSON that is not such a list, or on a runbook that does not make a valid
/// skill (a bad name, a pattern that does not compile).
pub fn runbook_skills(json: &str) -> Result<Vec<RuntimeSkill>, Box<dyn Error + Send + Sync>> {
    let runbooks: Vec<Runbook> = serde_json::from_str(json)?;
    runbooks.into_iter().map(runbook_skill).collect()
}

fn runbook_skill(runbook: Runbook) -> Result<RuntimeSkill, Box<dyn Error + Send + Sync>> {
    let properties: Map<String, Value> = runbook
        .inputs
        .iter()
        .map(|(name, input)| {
            let schema = json!({"type": "string", "pattern": input.pattern, "description": input.description});
            (name.clone(), schema)
        })
        .collect();
    let required: Vec<&String> = runbook.inputs.keys().collect();
    let steps = runbook.steps;
    let skill = RuntimeSkill::builder(format!("runbook_{}", runbook.name), runbook.description)
        .input_schema(json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        }))
        .annotations(Annotations::new().with_read_only(true).with_open_world(false))
        .tags(["runbooks"])
        .handler(move |arguments: Value, _ctx| {
            // The arguments were checked against the schema: every input is there, as a string.
            let filled: Vec<String> = steps
                .iter()
                .enumerate()
                .map(|(index, step)| {
                    let step = arguments
                        .as_object()
                        .into_iter()
                        .flatten()
                        .fold(step.clone(), |step, (name, value)| {
                            step.replace(&format!("{{{name}}}"), value.as_str().unwrap_or_default())
                        });
                    format!("{}. {step}", index + 1)
                })
                .collect();
            std::future::ready(filled.join("\n"))
        })
        .build()?;
    Ok(skill)
}

/// The helpdesk command line: the `#[skill]`s above with a fresh [`Desk`], and one skill per runbook of
/// `runbooks` (JSON, see [`runbook_skills`]).
pub fn app(runbooks: &str) -> Result<App, Box<dyn Error + Send + Sync>> {
    Ok(App::new().state(Desk::default()).skills(runbook_skills(runbooks)?))
}
