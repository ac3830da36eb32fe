//! The built `skillbridge` binary: it lists the skills of `skills/` and runs them, with the documented exit
//! statuses (0 success, 1 skill failure, 2 usage error).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use skillbridge::skill::{Catalog, ToolFlavor};

fn skillbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn shipped() -> Catalog {
    skillbridge_skills::link();
    Catalog::from_registry_with(skillbridge_skills::states(Default::default()).unwrap()).unwrap()
}

#[test]
fn skills_lists_every_shipped_skill_in_a_table() {
    let output = skillbridge(&["skills"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let table = stdout(&output);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("NAME") && header.contains("PARAMETERS") && header.contains("DESCRIPTION"));
    let listed: Vec<&str> = lines.map(|line| line.split_whitespace().next().unwrap()).collect();
    let catalog = shipped();
    assert_eq!(listed, catalog.names().collect::<Vec<_>>());
    assert!(listed.len() >= 10, "{listed:?}");
    let slugify = table.lines().find(|line| line.starts_with("slugify ")).unwrap();
    assert!(
        slugify.contains("max_length?, separator?, text"),
        "optional parameters are marked: {slugify}"
    );
    // A long description is cut on a character boundary, on one line.
    let uppercase = table.lines().find(|line| line.starts_with("uppercase ")).unwrap();
    assert!(
        uppercase.ends_with('…') && uppercase.contains("`straße`"),
        "{uppercase}"
    );
}

#[test]
fn the_command_line_definition_is_consistent() {
    use clap::CommandFactory;
    skillbridge::cli::Cli::command().debug_assert();
}

#[test]
fn an_image_result_is_shown_as_a_placeholder() {
    let output = skillbridge(&["call", "bar_chart", r#"{"title": "t", "labels": ["a"], "values": [1]}"#]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let placeholder = text.lines().last().unwrap();
    assert!(
        placeholder.starts_with("[image: image/png, ") && placeholder.ends_with(" characters; --json prints it]"),
        "{text}"
    );
}

#[test]
fn skills_json_is_the_exact_dynamic_tools_payload() {
    let catalog = shipped();
    let output = skillbridge(&["skills", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let payload: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(payload, Value::Array(catalog.dynamic_tools(ToolFlavor::CodexManager)));

    let output = skillbridge(&["skills", "--json", "--flavor", "app-server"]);
    let payload: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(payload, Value::Array(catalog.dynamic_tools(ToolFlavor::AppServer)));
    assert!(
        payload
            .as_array()
            .unwrap()
            .iter()
            .all(|tool| tool["type"] == "function")
    );
}

#[test]
fn skills_show_prints_the_schemas_of_one_skill() {
    let output = skillbridge(&["skills", "show", "ticket_lookup"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with("name:        ticket_lookup\n"), "{text}");
    assert!(
        text.contains("defined in:  skillbridge_skills::tickets at skills/src/tickets.rs:"),
        "{text}"
    );
    assert!(text.contains("\"ticket_id\""), "{text}");
    assert!(text.contains("output schema:\n{"), "{text}");

    let unknown = skillbridge(&["skills", "show", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("unknown skill `nope`; the skills are: bar_chart,"));
}

#[test]
fn call_prints_the_result_and_exits_zero() {
    let output = skillbridge(&["call", "word_count", r#"{"text": "one two two", "unique": true}"#]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stats: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(
        stats,
        json!({"words": 3, "characters": 11, "lines": 1, "unique_words": 2})
    );

    let output = with_stdin(&["call", "ticket_lookup", "-"], r#"{"ticket_id": "T-1002"}"#);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(r#""title":"Export to CSV drops the last row""#));

    let output = skillbridge(&["call", "uppercase", r#"{"text": "straße"}"#, "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        result,
        json!({"contentItems": [{"type": "inputText", "text": "STRASSE"}], "success": true})
    );
}

#[test]
fn call_exits_one_when_the_skill_fails() {
    let output = skillbridge(&["call", "ticket_lookup", r#"{"ticket_id": "T-42"}"#]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: no ticket `T-42`; known tickets:"),
        "{}",
        stderr(&output)
    );

    let output = skillbridge(&["call", "ticket_lookup", r#"{"ticket_id": 42}"#]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("ticket_id: 42 is not of type \"string\""),
        "{}",
        stderr(&output)
    );

    let output = skillbridge(&["call", "ticket_lookup", r#"{"ticket_id": "T-42"}"#, "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["success"], false);
}

#[test]
fn call_exits_two_on_usage_errors() {
    let unknown = skillbridge(&["call", "no_such_skill", "{}"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("unknown skill `no_such_skill`; the skills are:"));

    let bad_json = skillbridge(&["call", "word_count", "{text: 1"]);
    assert_eq!(bad_json.status.code(), Some(2));
    assert!(
        stderr(&bad_json).contains("the arguments are not valid JSON"),
        "{}",
        stderr(&bad_json)
    );

    let missing_name = skillbridge(&["call"]);
    assert_eq!(missing_name.status.code(), Some(2));
}

#[test]
fn help_explains_the_commands_and_exit_statuses() {
    let help = skillbridge(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = stdout(&help);
    assert!(text.contains("skills") && text.contains("call"), "{text}");
    assert!(text.contains("RUST_LOG"), "{text}");
    assert!(text.contains("--log-format") && text.contains("NO_COLOR"), "{text}");

    let call_help = stdout(&skillbridge(&["call", "--help"]));
    assert!(
        call_help.contains("Exit status: 0 the skill succeeded, 1 it failed"),
        "{call_help}"
    );
    assert!(call_help.contains("`-` to read them from stdin"), "{call_help}");
    assert!(
        call_help.contains("--log-format"),
        "a flag of every command: {call_help}"
    );
}

/// What the shipped skills say about themselves, as `skills --json --details` prints it.
fn details() -> Vec<Value> {
    let output = skillbridge(&["skills", "--json", "--details"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_str::<Value>(&stdout(&output))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn skills_json_stays_the_dynamic_tools_payload_the_golden_files_pin() {
    // Annotations and tags are not part of what Codex receives: each tool is exactly its golden name,
    // description and input schema.
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let expected: Vec<Value> = shipped()
        .names()
        .map(|name| {
            let text = std::fs::read_to_string(golden.join(format!("{name}.json"))).unwrap();
            let golden: Value = serde_json::from_str(&text).unwrap();
            json!({"name": golden["name"], "description": golden["description"], "inputSchema": golden["inputSchema"]})
        })
        .collect();
    let output = skillbridge(&["skills", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), serde_json::to_string_pretty(&expected).unwrap() + "\n");
    let payload: Value = serde_json::from_str(&stdout(&output)).unwrap();
    for tool in payload.as_array().unwrap() {
        let keys: Vec<&String> = tool.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["description", "inputSchema", "name"], "{tool}");
    }
}

#[test]
fn skills_json_details_gives_each_skill_its_annotations_and_tags() {
    let details = details();
    let catalog = shipped();
    assert_eq!(
        details
            .iter()
            .map(|skill| skill["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        catalog.names().collect::<Vec<_>>()
    );
    let by_name = |name: &str| details.iter().find(|skill| skill["name"] == name).unwrap().clone();
    let note_save = by_name("note_save");
    assert_eq!(
        note_save["annotations"],
        json!({"title": "Save a note", "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true,
               "openWorldHint": false})
    );
    assert_eq!(note_save["tags"], json!(["notes"]));
    assert_eq!(note_save["timeoutMs"], 60_000);
    assert_eq!(
        by_name("sql_query")["states"],
        json!([{"parameter": "databases", "type": "skillbridge_skills::sql::SqlDatabases"}])
    );
    assert_eq!(by_name("word_count")["states"], json!([]));
    assert!(
        note_save["definedIn"]
            .as_str()
            .unwrap()
            .starts_with("skillbridge_skills::notes at skills/src/notes.rs:"),
        "{note_save}"
    );
    let sql_query = by_name("sql_query");
    assert_eq!(
        sql_query["annotations"],
        json!({"title": "SQL query", "readOnlyHint": true, "openWorldHint": false})
    );
    assert_eq!(
        sql_query["inputSchema"],
        *catalog.get("sql_query").unwrap().input_schema()
    );
    // Every shipped skill has a title, tags, and says whether it writes and whether its world is open.
    for skill in &details {
        let annotations = &skill["annotations"];
        assert!(annotations["title"].is_string(), "{skill}");
        assert!(annotations["readOnlyHint"].is_boolean(), "{skill}");
        assert_eq!(annotations["openWorldHint"], false, "{skill}");
        assert!(!skill["tags"].as_array().unwrap().is_empty(), "{skill}");
    }

    // `--details` describes skills, not a payload: it needs `--json` and takes no `--flavor`.
    let output = skillbridge(&["skills", "--details"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = skillbridge(&["skills", "--json", "--details", "--flavor", "app-server"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn the_table_and_show_give_hints_and_tags() {
    let output = skillbridge(&["skills"]);
    let table = stdout(&output);
    let header = table.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "PARAMETERS", "STATE", "TIMEOUT", "HINTS", "TAGS", "DESCRIPTION"]
    );
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap();
        line.split("  ")
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("note_save")[4..6],
        ["rw,destructive,idempotent,closed-world", "notes"]
    );
    assert_eq!(row("ticket_lookup")[4..6], ["ro,closed-world", "tickets"]);

    let output = skillbridge(&["skills", "show", "note_save"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(
        text.starts_with(
            "name:        note_save\ntitle:       Save a note\ndescription: Saves a short note under a key for later \
             in this conversation (replacing a note with the same key).\nhints:       read-write, destructive, \
             idempotent, closed-world\ntags:        notes\ntimeout:     1m\n"
        ),
        "{text}"
    );
}
