//! Every `#[skill]` feature, observed the way the bridge sees it: through the real registry
//! (`Catalog::from_registry`), the published schemas and `Catalog::invoke`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skillbridge::skill;
use skillbridge::skill::{Catalog, Content, ContentItem, Outcome, SkillContext, SkillError, ToolFlavor, ToolResult};
use tokio_util::sync::CancellationToken;

// ---- skills under test -------------------------------------------------------------------------------

/// Adds two integers.
///
/// This second paragraph is documentation only, not part of the tool description.
#[skill]
fn add(
    /// The first term.
    a: i64,
    /// The second term; multi-line
    /// docs are joined.
    b: i64,
) -> i64 {
    a + b
}

/// Greets someone, politely if asked.
#[skill]
async fn greet(
    /// Who to greet.
    name: String,
    /// Add a "please"?
    polite: Option<bool>,
) -> String {
    if polite.unwrap_or(false) {
        format!("Hello, {name}, please come in.")
    } else {
        format!("Hi {name}")
    }
}

#[skill(
    name = "renamed-tool",
    description = "  Described by the attribute.  ",
    timeout = "1500ms"
)]
fn described_by_attribute() -> &'static str {
    "static text"
}

/// Does its work and says nothing.
#[skill(timeout = "2m")]
fn quiet() {}

/// A filter for orders.
#[derive(Debug, Deserialize, JsonSchema)]
struct OrderQuery {
    /// Customer id.
    customer: String,
    /// Only orders above this amount.
    min_total: Option<f64>,
    /// Shipping address constraint.
    address: Option<Address>,
}

/// A postal address.
#[derive(Debug, Deserialize, JsonSchema)]
struct Address {
    /// The city.
    city: String,
    /// ISO country code.
    country: String,
}

/// Finds orders; the whole input is one struct.
#[skill]
fn find_orders(#[skill(input)] query: OrderQuery, ctx: SkillContext) -> String {
    format!(
        "{} over {:?} in {:?} (call {})",
        query.customer,
        query.min_total,
        query.address.map(|a| format!("{}/{}", a.city, a.country)),
        ctx.call_id
    )
}

/// Echoes the call's context.
#[skill]
async fn whoami(ctx: SkillContext, suffix: String) -> String {
    format!(
        "{}|{:?}|{}|{}|{}|{}",
        ctx.thread_id, ctx.turn_id, ctx.call_id, ctx.request_id, ctx.tool, suffix
    )
}

/// A shape, tagged by kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Shape {
    /// A circle.
    Circle { radius: f64 },
    /// A rectangle.
    Rectangle { width: f64, height: f64 },
}

/// The area of a shape, with a label.
#[derive(Debug, Serialize, JsonSchema)]
struct Area {
    /// The label echoed back.
    label: String,
    /// Square units.
    area: f64,
}

/// Computes the area of a shape.
#[skill]
fn area(
    /// The shape.
    shape: Shape,
    /// A label echoed back.
    label: String,
) -> Result<Area, SkillError> {
    let area = match shape {
        Shape::Circle { radius } if radius < 0.0 => return Err("radius must not be negative".into()),
        Shape::Circle { radius } => std::f64::consts::PI * radius * radius,
        Shape::Rectangle { width, height } => width * height,
    };
    Ok(Area { label, area })
}

/// A rename request; serde and schemars attributes shape a struct input.
#[derive(Debug, Deserialize, JsonSchema)]
struct Rename {
    /// The new name, also accepted as `name`.
    #[serde(alias = "name")]
    #[schemars(length(max = 20))]
    label: String,
    /// How many copies, 1 to 9 (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 9))]
    copies: u8,
}

fn one() -> u8 {
    1
}

/// Renames, with attributes on the input struct.
#[skill]
fn rename(#[skill(input)] request: Rename) -> String {
    format!("{} x{}", request.label, request.copies)
}

/// Serializable but without a schema.
#[derive(Serialize)]
struct Opaque {
    value: u8,
}

/// Returns JSON without an output schema.
#[skill]
fn opaque() -> Opaque {
    Opaque { value: 7 }
}

/// Fails with an anyhow error.
#[skill]
fn anyhow_failure(fail: bool) -> anyhow::Result<String> {
    if fail {
        Err(anyhow::anyhow!("disk full").context("saving the report"))
    } else {
        Ok("saved".into())
    }
}

/// Returns text and an image.
#[skill]
fn picture() -> Content {
    Content::new().text("a red pixel").image_data("image/png", &[1, 2, 3])
}

/// Returns a tool result as is.
#[skill]
fn raw_result(success: bool) -> ToolResult {
    ToolResult {
        content_items: vec![ContentItem::text("raw")],
        success,
    }
}

/// Returns items.
#[skill]
fn items() -> Vec<ContentItem> {
    vec![
        ContentItem::text("one"),
        ContentItem::image_url("https://example.invalid/a.png"),
    ]
}

/// Keyword-named and mutable parameters.
#[skill]
fn keywords(r#type: String, mut count: u32) -> String {
    count += 1;
    format!("{type}:{count}", type = r#type)
}

/// Returns a map.
#[skill]
fn tally(words: Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for word in words {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

// ---- helpers -----------------------------------------------------------------------------------------

fn catalog() -> Catalog {
    Catalog::from_registry().expect("the skills of this test are valid")
}

async fn call(name: &str, arguments: Value) -> ToolResult {
    catalog().invoke(name, arguments, SkillContext::detached(name)).await
}

fn text(result: &ToolResult) -> String {
    assert!(result.success, "expected success, got {result:?}");
    result.text_content()
}

fn failure(result: &ToolResult) -> String {
    assert!(!result.success, "expected a failure, got {result:?}");
    result.text_content()
}

/// Every `$ref`, `$defs`, `$schema`, `oneOf` key anywhere in a schema.
fn forbidden_keys(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if ["$ref", "$defs", "definitions", "$schema", "oneOf"].contains(&key.as_str()) {
                    found.push(key.clone());
                }
                if key != "properties" {
                    forbidden_keys(child, found);
                } else if let Value::Object(properties) = child {
                    properties.values().for_each(|schema| forbidden_keys(schema, found));
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| forbidden_keys(item, found)),
        _ => {}
    }
}

/// Archives a record: read-write, destructive, idempotent, reaching an outside archive.
#[skill(
    title = "  Archive a record  ",
    read_only = false,
    destructive,
    idempotent,
    open_world,
    tags = ["records", "admin"]
)]
fn archive_record(id: String) -> String {
    id
}

/// Appends a line: says it adds (not destructive) and is not idempotent, nothing else.
#[skill(destructive = false, idempotent = false, tags = ["records"])]
async fn append_line(line: String) -> String {
    line
}

// ---- tests -------------------------------------------------------------------------------------------

#[test]
fn all_skills_are_registered_sorted_by_name() {
    let names: Vec<String> = catalog().names().map(str::to_owned).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for expected in [
        "add",
        "greet",
        "renamed-tool",
        "find_orders",
        "whoami",
        "area",
        "picture",
        "keywords",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(!names.iter().any(|name| name == "described_by_attribute"));
}

#[test]
fn descriptions_come_from_the_first_doc_paragraph_or_the_attribute() {
    let catalog = catalog();
    assert_eq!(catalog.get("add").unwrap().description(), "Adds two integers.");
    assert_eq!(
        catalog.get("renamed-tool").unwrap().description(),
        "Described by the attribute."
    );
}

#[test]
fn parameters_become_documented_properties() {
    let catalog = catalog();
    let schema = catalog.get("add").unwrap().input_schema();
    assert_eq!(
        schema,
        &json!({
            "type": "object",
            "properties": {
                "a": {"type": "integer", "format": "int64", "description": "The first term."},
                "b": {"type": "integer", "format": "int64", "description": "The second term; multi-line\ndocs are joined."}
            },
            "required": ["a", "b"]
        })
    );
}

#[test]
fn option_parameters_are_not_required() {
    let catalog = catalog();
    let schema = catalog.get("greet").unwrap().input_schema();
    assert_eq!(schema["required"], json!(["name"]));
    assert_eq!(schema["properties"]["polite"]["type"], json!(["boolean", "null"]));
}

#[tokio::test]
async fn option_parameters_accept_missing_null_and_values() {
    assert_eq!(text(&call("greet", json!({"name": "Ada"})).await), "Hi Ada");
    assert_eq!(
        text(&call("greet", json!({"name": "Ada", "polite": null})).await),
        "Hi Ada"
    );
    assert_eq!(
        text(&call("greet", json!({"name": "Ada", "polite": true})).await),
        "Hello, Ada, please come in."
    );
}

#[tokio::test]
async fn attribute_overrides_name_description_and_timeout() {
    let catalog = catalog();
    let tool = catalog.get("renamed-tool").unwrap();
    assert_eq!(tool.timeout().as_millis(), 1500);
    assert_eq!(catalog.get("quiet").unwrap().timeout().as_secs(), 120);
    assert_eq!(
        catalog.get("add").unwrap().timeout().as_secs(),
        60,
        "the default timeout"
    );
    assert_eq!(text(&call("renamed-tool", Value::Null).await), "static text");
}

#[tokio::test]
async fn a_skill_without_parameters_has_an_empty_object_schema_and_unit_answers_ok() {
    let catalog = catalog();
    assert_eq!(
        catalog.get("quiet").unwrap().input_schema(),
        &json!({"type": "object", "properties": {}})
    );
    assert_eq!(text(&call("quiet", json!({})).await), "ok");
}

#[tokio::test]
async fn a_struct_input_is_the_whole_schema() {
    let catalog = catalog();
    let schema = catalog.get("find_orders").unwrap().input_schema();
    assert_eq!(schema["required"], json!(["customer"]));
    assert_eq!(schema["description"], "A filter for orders.");
    assert!(schema.get("title").is_none());
    let address = &schema["properties"]["address"]["anyOf"][0];
    assert_eq!(
        address["properties"]["city"],
        json!({"type": "string", "description": "The city."})
    );
    assert!(schema["properties"].get("ctx").is_none());

    let ctx = SkillContext::new("th", None, "call_7", "1", "find_orders", CancellationToken::new());
    let arguments = json!({"customer": "c1", "address": {"city": "Lyon", "country": "FR"}});
    let result = catalog.invoke("find_orders", arguments, ctx).await;
    assert_eq!(text(&result), r#"c1 over None in Some("Lyon/FR") (call call_7)"#);
}

#[tokio::test]
async fn the_context_is_injected_and_not_in_the_schema() {
    let catalog = catalog();
    let schema = catalog.get("whoami").unwrap().input_schema();
    assert_eq!(
        schema["properties"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["suffix"]
    );
    let ctx = SkillContext::new(
        "thread-1",
        Some("turn-2".into()),
        "call_3",
        "4",
        "whoami",
        CancellationToken::new(),
    );
    let result = catalog.invoke("whoami", json!({"suffix": "!"}), ctx).await;
    assert_eq!(text(&result), r#"thread-1|Some("turn-2")|call_3|4|whoami|!"#);
}

#[tokio::test]
async fn serializable_returns_are_json_text_with_an_output_schema() {
    let catalog = catalog();
    let tool = catalog.get("area").unwrap();
    let output = tool.output_schema().expect("Area implements JsonSchema");
    assert_eq!(output["required"], json!(["label", "area"]));
    assert!(output.get("title").is_none());

    let result = call(
        "area",
        json!({"shape": {"kind": "rectangle", "width": 2.0, "height": 3.0}, "label": "r"}),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&text(&result)).unwrap(),
        json!({"label": "r", "area": 6.0})
    );

    assert_eq!(text(&call("opaque", json!({})).await), r#"{"value":7}"#);
    assert!(catalog.get("opaque").unwrap().output_schema().is_none());
    assert!(
        catalog.get("greet").unwrap().output_schema().is_none(),
        "text has no output schema"
    );
    assert_eq!(
        text(&call("tally", json!({"words": ["a", "b", "a"]})).await),
        r#"{"a":2,"b":1}"#
    );
}

#[tokio::test]
async fn err_results_answer_failure_with_the_message() {
    let result = call(
        "area",
        json!({"shape": {"kind": "circle", "radius": -1.0}, "label": "c"}),
    )
    .await;
    assert_eq!(failure(&result), "radius must not be negative");
    let result = call("anyhow_failure", json!({"fail": true})).await;
    assert_eq!(failure(&result), "saving the report: disk full");
    assert_eq!(text(&call("anyhow_failure", json!({"fail": false})).await), "saved");
}

#[tokio::test]
async fn content_and_tool_result_returns_keep_every_item() {
    let result = call("picture", json!({})).await;
    assert_eq!(
        result,
        ToolResult {
            content_items: vec![
                ContentItem::text("a red pixel"),
                ContentItem::image_url("data:image/png;base64,AQID")
            ],
            success: true
        }
    );
    let result = call("items", json!({})).await;
    assert_eq!(result.content_items.len(), 2);

    let catalog = catalog();
    let failed = catalog
        .invoke_detailed(
            "raw_result",
            json!({"success": false}),
            SkillContext::detached("raw_result"),
        )
        .await;
    assert_eq!(failed.outcome, Outcome::SkillError);
    assert_eq!(failed.result.text_content(), "raw");
}

#[tokio::test]
async fn serde_and_schemars_attributes_of_a_struct_input_apply() {
    let catalog = catalog();
    let schema = catalog.get("rename").unwrap().input_schema();
    assert_eq!(schema["properties"]["label"]["maxLength"], 20);
    assert_eq!(schema["properties"]["copies"]["maximum"], 9);
    assert_eq!(schema["required"], json!(["label"]));
    // The schema is the contract: a serde alias it does not describe is refused before serde could accept it.
    assert_eq!(
        failure(&call("rename", json!({"name": "via alias"})).await),
        "invalid arguments for `rename`: \"label\" is a required property"
    );
    assert_eq!(text(&call("rename", json!({"label": "l"})).await), "l x1");
    assert_eq!(text(&call("rename", json!({"label": "l", "copies": 3})).await), "l x3");
}

#[tokio::test]
async fn keyword_and_mutable_parameters_use_their_plain_names() {
    let catalog = catalog();
    let schema = catalog.get("keywords").unwrap().input_schema();
    assert_eq!(schema["required"], json!(["type", "count"]));
    assert_eq!(text(&call("keywords", json!({"type": "x", "count": 1})).await), "x:2");
}

#[test]
fn schemas_are_portable() {
    for skill in catalog().iter() {
        let schema = skill.input_schema();
        assert_eq!(schema["type"], "object", "{}", skill.name());
        assert!(schema["properties"].is_object(), "{}", skill.name());
        assert!(schema.get("title").is_none(), "{}", skill.name());
        let mut found = Vec::new();
        forbidden_keys(schema, &mut found);
        assert!(found.is_empty(), "{} has {found:?}", skill.name());
    }
    // The tagged enum was a `oneOf`; it arrives as `anyOf`, each variant inlined.
    let catalog = catalog();
    let shape = &catalog.get("area").unwrap().input_schema()["properties"]["shape"];
    assert_eq!(shape["anyOf"].as_array().unwrap().len(), 2);
    assert_eq!(shape["anyOf"][0]["properties"]["kind"]["const"], "circle");
}

#[test]
fn dynamic_tools_have_the_shape_of_each_upstream() {
    let catalog = catalog();
    let manager = catalog.dynamic_tools(ToolFlavor::CodexManager);
    let app_server = catalog.dynamic_tools(ToolFlavor::AppServer);
    assert_eq!(manager.len(), catalog.len());
    let add_manager = manager.iter().find(|tool| tool["name"] == "add").unwrap();
    assert_eq!(
        add_manager.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["description", "inputSchema", "name"]
    );
    let add_app = app_server.iter().find(|tool| tool["name"] == "add").unwrap();
    assert_eq!(add_app["type"], "function");
    assert_eq!(add_app["inputSchema"], add_manager["inputSchema"]);
}

#[test]
fn annotations_and_tags_land_in_the_skill_info() {
    let catalog = catalog();
    let archive = catalog.get("archive_record").unwrap();
    let annotations = archive.annotations();
    assert_eq!(annotations.title(), Some("Archive a record"), "trimmed");
    assert_eq!(annotations.read_only(), Some(false));
    assert_eq!(annotations.destructive(), Some(true));
    assert_eq!(annotations.idempotent(), Some(true));
    assert_eq!(annotations.open_world(), Some(true));
    assert_eq!(archive.tags(), ["records", "admin"], "in the order written");
    assert_eq!(
        serde_json::to_value(annotations).unwrap(),
        json!({"title": "Archive a record", "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true,
               "openWorldHint": true})
    );

    // Only what the attribute says is reported; the rest is absent, not `false`.
    let append = catalog.get("append_line").unwrap().annotations();
    assert_eq!(
        (
            append.title(),
            append.read_only(),
            append.destructive(),
            append.idempotent(),
            append.open_world()
        ),
        (None, None, Some(false), Some(false), None)
    );
    assert_eq!(
        serde_json::to_value(append).unwrap(),
        json!({"destructiveHint": false, "idempotentHint": false})
    );
    let add = catalog.get("add").unwrap();
    assert!(add.annotations().is_empty());
    assert!(add.tags().is_empty());
    assert_eq!(serde_json::to_value(add.annotations()).unwrap(), json!({}));
}

#[test]
fn annotations_and_tags_stay_out_of_the_dynamic_tools_payload() {
    let catalog = catalog();
    let archive = catalog.get("archive_record").unwrap();
    assert_eq!(
        archive.dynamic_tool(ToolFlavor::CodexManager),
        json!({"name": "archive_record", "description": archive.description(), "inputSchema": archive.input_schema()})
    );
    let app_server = archive.dynamic_tool(ToolFlavor::AppServer);
    assert_eq!(
        app_server.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["description", "inputSchema", "name", "type"]
    );
    let text = serde_json::to_string(&catalog.dynamic_tools(ToolFlavor::AppServer)).unwrap();
    for word in ["Archive a record", "records", "Hint", "annotations", "tags"] {
        assert!(!text.contains(word), "{word} leaked into the payload");
    }
}

#[test]
fn skills_stay_ordinary_functions() {
    assert_eq!(add(2, 3), 5);
    assert_eq!(keywords("k".into(), 0), "k:1");
}

/// Logs in.
#[skill]
fn log_in(
    /// Who.
    user: String,
    /// Never recorded.
    #[skill(redact)]
    password: String,
) -> String {
    format!("{user}:{}", password.len())
}

#[test]
fn a_redacted_parameter_is_in_the_schema_and_left_out_of_recorded_arguments() {
    let catalog = Catalog::from_registry().unwrap();
    let log_in = catalog.get("log_in").unwrap();
    assert_eq!(log_in.redacted_parameters(), ["password"]);
    assert_eq!(log_in.listing()["redacted"], json!(["password"]));
    assert_eq!(
        log_in.input_schema()["required"],
        json!(["user", "password"]),
        "the model still sends it"
    );
    assert_eq!(
        log_in.redact(&json!({"user": "ada", "password": "s3cret"})),
        json!({"user": "ada", "password": "<redacted>"})
    );
}
