//! Arguments are checked against the skill's whole input schema, one test per keyword Codex drops from the schema the
//! model sees (`tests/fixtures/SCHEMA-FINDINGS.md`): a call that breaks a bound is answered `success:false` with
//! `path: message` and the skill never runs; a call within every bound runs. Through `Catalog::invoke` (what `call`
//! runs) and through the bridge against the codex-manager double; the real Codex path is in `app_server_codex.rs`.

mod bridge_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use bridge_support::{WAIT, answer_success, answer_text, bridge_for, only_thread, start};
use serde_json::{Value, json};
use skillbridge::skill;
use skillbridge::skill::{Catalog, Invocation, Outcome, SkillContext};
use skillbridge_doubles::CodexManagerDouble;

/// Skill runs, so a test can tell a refused call never ran.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Held around each invocation, so that no other test's run lands between reading `RUNS` and checking it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    format!("{ticket_id} {limit} {code:?}")
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
    format!("{order:?}")
}

async fn invoke(name: &str, arguments: Value) -> Invocation {
    let catalog = Catalog::from_registry().expect("the test skills form a catalog");
    catalog
        .invoke_detailed(name, arguments, SkillContext::detached(name))
        .await
}

/// Asserts `arguments` are refused with exactly `violation` and that the skill did not run.
async fn refused(name: &str, arguments: Value, violation: &str) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let runs = RUNS.load(Ordering::SeqCst);
    let invocation = invoke(name, arguments.clone()).await;
    assert_eq!(
        invocation.outcome,
        Outcome::InvalidArguments,
        "{arguments}: {:?}",
        invocation.result
    );
    assert_eq!(
        invocation.result.text_content(),
        format!("invalid arguments for `{name}`: {violation}"),
        "{arguments}"
    );
    assert_eq!(RUNS.load(Ordering::SeqCst), runs, "`{name}` ran with {arguments}");
}

async fn accepted(name: &str, arguments: Value) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let invocation = invoke(name, arguments.clone()).await;
    assert_eq!(
        invocation.outcome,
        Outcome::Success,
        "{arguments}: {:?}",
        invocation.result
    );
}

#[tokio::test]
async fn bounds_on_plain_parameters_land_in_the_schema() {
    let catalog = Catalog::from_registry().unwrap();
    let properties = &catalog.get("bounded_lookup").unwrap().input_schema()["properties"];
    assert_eq!(properties["limit"]["minimum"], 1);
    assert_eq!(properties["limit"]["maximum"], 50);
    assert_eq!(properties["limit"]["description"], "How many results, 1 to 50.");
    assert_eq!(properties["ticket_id"]["pattern"], "^T-[0-9]+$");
    assert_eq!(properties["code"]["minLength"], 2);
    assert_eq!(
        catalog.get("bounded_lookup").unwrap().input_schema()["required"],
        json!(["ticket_id", "limit"])
    );
}

#[tokio::test]
async fn minimum_and_maximum() {
    accepted("bounded_lookup", json!({"ticket_id": "T-1", "limit": 50})).await;
    refused(
        "bounded_lookup",
        json!({"ticket_id": "T-1", "limit": 80}),
        "limit: 80 is greater than the maximum of 50",
    )
    .await;
    refused(
        "bounded_lookup",
        json!({"ticket_id": "T-1", "limit": 0}),
        "limit: 0 is less than the minimum of 1",
    )
    .await;
}

#[tokio::test]
async fn exclusive_minimum_and_maximum() {
    accepted("place_order", json!({"share": 0.5})).await;
    refused(
        "place_order",
        json!({"share": 0}),
        "share: 0 is less than or equal to the minimum of 0",
    )
    .await;
    refused(
        "place_order",
        json!({"share": 1}),
        "share: 1 is greater than or equal to the maximum of 1",
    )
    .await;
}

#[tokio::test]
async fn min_length_and_max_length() {
    accepted("bounded_lookup", json!({"ticket_id": "T-1", "limit": 1, "code": "ab"})).await;
    refused(
        "bounded_lookup",
        json!({"ticket_id": "T-1", "limit": 1, "code": "a"}),
        "code: \"a\" is shorter than 2 characters",
    )
    .await;
    refused(
        "bounded_lookup",
        json!({"ticket_id": "T-1", "limit": 1, "code": "abcde"}),
        "code: \"abcde\" is longer than 4 characters",
    )
    .await;
}

#[tokio::test]
async fn pattern() {
    refused(
        "bounded_lookup",
        json!({"ticket_id": "x", "limit": 1}),
        "ticket_id: \"x\" does not match \"^T-[0-9]+$\"",
    )
    .await;
}

#[tokio::test]
async fn min_items_max_items_and_unique_items() {
    accepted("place_order", json!({"items": ["a"], "tags": ["x", "y"]})).await;
    refused("place_order", json!({"items": []}), "items: [] has less than 1 item").await;
    refused(
        "place_order",
        json!({"items": ["a", "b", "c", "d"]}),
        "items: [\"a\",\"b\",\"c\",\"d\"] has more than 3 items",
    )
    .await;
    refused(
        "place_order",
        json!({"tags": ["x", "x"]}),
        "tags: [\"x\",\"x\"] has non-unique elements",
    )
    .await;
}

#[tokio::test]
async fn formats() {
    accepted(
        "place_order",
        json!({"count": 4_294_967_295u64, "ratio": 0.25, "due": "2026-12-01T10:00:00Z", "contact": "a@example.com",
               "link": "https://example.com/a"}),
    )
    .await;
    refused(
        "place_order",
        json!({"count": 4_294_967_296u64}),
        "count: 4294967296 is greater than the maximum of 4294967295",
    )
    .await;
    refused(
        "place_order",
        json!({"count": -1}),
        "count: -1 is less than the minimum of 0",
    )
    .await;
    refused(
        "place_order",
        json!({"ratio": "half"}),
        "ratio: \"half\" is not of types \"null\", \"number\"",
    )
    .await;
    refused(
        "place_order",
        json!({"due": "tomorrow"}),
        "due: \"tomorrow\" is not a \"date-time\"",
    )
    .await;
    refused(
        "place_order",
        json!({"contact": "nobody"}),
        "contact: \"nobody\" is not a \"email\"",
    )
    .await;
    refused(
        "place_order",
        json!({"link": "not a link"}),
        "link: \"not a link\" is not a \"uri\"",
    )
    .await;
}

#[tokio::test]
async fn const_and_enum() {
    accepted("place_order", json!({"version": "v1", "priority": "high"})).await;
    refused("place_order", json!({"version": "v2"}), "version: \"v1\" was expected").await;
    refused(
        "place_order",
        json!({"priority": "urgent"}),
        "priority: \"urgent\" is not one of \"low\" or \"high\"",
    )
    .await;
}

#[tokio::test]
async fn every_violation_is_named_at_once() {
    refused(
        "bounded_lookup",
        json!({"ticket_id": "x", "limit": 80}),
        "limit: 80 is greater than the maximum of 50; ticket_id: \"x\" does not match \"^T-[0-9]+$\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_answers_a_violation_without_running_the_skill() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);
    let _alone = ONE_AT_A_TIME.lock().await;
    let runs = RUNS.load(Ordering::SeqCst);
    let refused = double.inject_tool_call(&thread, "bounded_lookup", json!({"ticket_id": "T-7", "limit": 80}));
    let body = double.wait_answered(&refused, WAIT).await.expect("answered");
    assert!(!answer_success(&body), "{body}");
    assert_eq!(
        answer_text(&body),
        "invalid arguments for `bounded_lookup`: limit: 80 is greater than the maximum of 50"
    );
    let ran = double.inject_tool_call(&thread, "bounded_lookup", json!({"ticket_id": "T-7", "limit": 5}));
    let body = double.wait_answered(&ran, WAIT).await.expect("answered");
    assert!(answer_success(&body), "{body}");
    assert_eq!(RUNS.load(Ordering::SeqCst), runs + 1, "only the call within bounds ran");
    bridge.shutdown().await;
}
