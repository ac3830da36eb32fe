//! The schema keywords the bridge enforces because Codex does not: Codex checks no arguments, and hides most bounds
//! from the model (`tests/fixtures/SCHEMA-FINDINGS.md`; of these it shows only `minItems` and `enum`, and `const` as
//! an `enum`). They make one table of cases shared by every path a call takes (`Catalog::invoke`, `call`, the
//! bridge, the real Codex): each [`KeywordCase`] names the keyword, a skill bounded by it, arguments that break the
//! bound with the violation the answer names, and arguments within the bound. The skills count their runs in
//! [`RUNS`] and answer `ran <skill>: ..`, so a test can tell that a refused call never ran and that a valid one did.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use skillbridge::skill;

/// Runs of the skills below, so a test can tell a refused call never ran.
pub static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Held by a test while it counts [`RUNS`], so that no other test's run lands in between.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs so far.
pub fn runs() -> usize {
    RUNS.load(Ordering::SeqCst)
}

/// Looks tickets up, bounded on plain parameters.
#[skill]
fn bounded_lookup(
    /// Stable id, like T-123.
    #[schemars(regex(pattern = r"^T-[0-9]+$"))]
    ticket_id: String,
    /// How many results, 1 to 50.
    #[schemars(range(min = 1, max = 50))]
    limit: u32,
    /// A short code.
    #[schemars(length(min = 2, max = 4))]
    code: Option<String>,
) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("ran bounded_lookup: {ticket_id} {limit} {code:?}")
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Priority {
    Low,
    High,
}

/// Every other keyword, on the fields of a struct input.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[expect(dead_code, reason = "the fields are read through `Debug`, into the answer")]
struct Order {
    /// exclusiveMinimum / exclusiveMaximum.
    #[schemars(extend("exclusiveMinimum" = 0, "exclusiveMaximum" = 1))]
    share: Option<f64>,
    /// minItems / maxItems.
    #[schemars(length(min = 1, max = 3))]
    items: Option<Vec<String>>,
    /// uniqueItems (a set).
    tags: Option<HashSet<String>>,
    /// format: uint32.
    count: Option<u32>,
    /// format: double.
    ratio: Option<f64>,
    /// format: date-time.
    #[schemars(extend("format" = "date-time"))]
    due: Option<String>,
    /// format: email.
    #[schemars(email)]
    contact: Option<String>,
    /// format: uri.
    #[schemars(url)]
    link: Option<String>,
    /// const.
    #[schemars(extend("const" = "v1"))]
    version: Option<String>,
    /// enum.
    priority: Option<Priority>,
}

/// Places an order.
#[skill]
fn place_order(#[skill(input)] order: Order) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("ran place_order: {order:?}")
}

/// One keyword, broken and kept.
#[derive(Debug, Clone)]
pub struct KeywordCase {
    /// The keyword the violating arguments break, as JSON Schema names it (`format: uint32` for a format).
    pub keyword: &'static str,
    /// The skill bounded by it.
    pub skill: &'static str,
    /// Arguments that break the bound (and no other).
    pub violating: Value,
    /// The violation the answer names, `path: message`.
    pub violation: &'static str,
    /// Arguments within the bound, at or near its edge.
    pub valid: Value,
}

impl KeywordCase {
    /// The whole answer to the violating call: what `call` prints after `error: `, what the bridge answers and what
    /// the model reads.
    pub fn refusal(&self) -> String {
        format!("invalid arguments for `{}`: {}", self.skill, self.violation)
    }

    /// How the answer of a call that ran the skill starts.
    pub fn ran(&self) -> String {
        format!("ran {}: ", self.skill)
    }
}

fn case(
    keyword: &'static str,
    skill: &'static str,
    violating: Value,
    violation: &'static str,
    valid: Value,
) -> KeywordCase {
    KeywordCase {
        keyword,
        skill,
        violating,
        violation,
        valid,
    }
}

/// Every keyword Codex drops (and `const`, which it turns into a string `enum`, and `enum`), each broken once per
/// direction it can be broken in.
pub fn cases() -> Vec<KeywordCase> {
    let lookup = "bounded_lookup";
    let order = "place_order";
    vec![
        case(
            "minimum",
            lookup,
            json!({"ticket_id": "T-1", "limit": 0}),
            "limit: 0 is less than the minimum of 1",
            json!({"ticket_id": "T-1", "limit": 1}),
        ),
        case(
            "maximum",
            lookup,
            json!({"ticket_id": "T-1", "limit": 80}),
            "limit: 80 is greater than the maximum of 50",
            json!({"ticket_id": "T-1", "limit": 50}),
        ),
        case(
            "exclusiveMinimum",
            order,
            json!({"share": 0}),
            "share: 0 is less than or equal to the minimum of 0",
            json!({"share": 0.01}),
        ),
        case(
            "exclusiveMaximum",
            order,
            json!({"share": 1}),
            "share: 1 is greater than or equal to the maximum of 1",
            json!({"share": 0.99}),
        ),
        case(
            "minLength",
            lookup,
            json!({"ticket_id": "T-1", "limit": 1, "code": "a"}),
            "code: \"a\" is shorter than 2 characters",
            json!({"ticket_id": "T-1", "limit": 1, "code": "ab"}),
        ),
        case(
            "maxLength",
            lookup,
            json!({"ticket_id": "T-1", "limit": 1, "code": "abcde"}),
            "code: \"abcde\" is longer than 4 characters",
            json!({"ticket_id": "T-1", "limit": 1, "code": "abcd"}),
        ),
        case(
            "pattern",
            lookup,
            json!({"ticket_id": "x", "limit": 1}),
            "ticket_id: \"x\" does not match \"^T-[0-9]+$\"",
            json!({"ticket_id": "T-12", "limit": 1}),
        ),
        case(
            "minItems",
            order,
            json!({"items": []}),
            "items: [] has less than 1 item",
            json!({"items": ["a"]}),
        ),
        case(
            "maxItems",
            order,
            json!({"items": ["a", "b", "c", "d"]}),
            "items: [\"a\",\"b\",\"c\",\"d\"] has more than 3 items",
            json!({"items": ["a", "b", "c"]}),
        ),
        case(
            "uniqueItems",
            order,
            json!({"tags": ["x", "x"]}),
            "tags: [\"x\",\"x\"] has non-unique elements",
            json!({"tags": ["x", "y"]}),
        ),
        // schemars' integer formats stand for their range.
        case(
            "format: uint32",
            order,
            json!({"count": 4_294_967_296u64}),
            "count: 4294967296 is greater than the maximum of 4294967295",
            json!({"count": 4_294_967_295u64}),
        ),
        case(
            "format: uint32",
            order,
            json!({"count": -1}),
            "count: -1 is less than the minimum of 0",
            json!({"count": 0}),
        ),
        // `double` admits every JSON number, so only a value that is no number breaks it.
        case(
            "format: double",
            order,
            json!({"ratio": "half"}),
            "ratio: \"half\" is not of types \"null\", \"number\"",
            json!({"ratio": 0.25}),
        ),
        case(
            "format: date-time",
            order,
            json!({"due": "tomorrow"}),
            "due: \"tomorrow\" is not a \"date-time\"",
            json!({"due": "2026-12-01T10:00:00Z"}),
        ),
        case(
            "format: email",
            order,
            json!({"contact": "nobody"}),
            "contact: \"nobody\" is not a \"email\"",
            json!({"contact": "a@example.com"}),
        ),
        case(
            "format: uri",
            order,
            json!({"link": "not a link"}),
            "link: \"not a link\" is not a \"uri\"",
            json!({"link": "https://example.com/a"}),
        ),
        case(
            "const",
            order,
            json!({"version": "v2"}),
            "version: \"v1\" was expected",
            json!({"version": "v1"}),
        ),
        case(
            "enum",
            order,
            json!({"priority": "urgent"}),
            "priority: \"urgent\" is not one of \"low\" or \"high\"",
            json!({"priority": "high"}),
        ),
    ]
}

/// A problem unless the skills ran once per valid call since `before` (from [`runs`]): each valid call answered
/// what its skill returned, so each ran; no more runs than those means no refused one did.
pub fn runs_problem(before: usize, valid_calls: usize) -> Option<String> {
    let ran = runs() - before;
    (ran != valid_calls).then(|| format!("{ran} skill runs, expected {valid_calls}: one per valid call"))
}

/// Panics listing every problem, when there are any: a table test reports all its failing cases at once.
#[track_caller]
pub fn assert_no_problems(path: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} of the keyword cases failed {path}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
