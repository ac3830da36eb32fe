//! `skillbridge skills diff`, run as the built binary: the golden files of the shipped skills (`tests/golden/`)
//! are the released catalog, edited copies the candidate rollouts; exit 0 compatible, 1 breaking, 2 usage error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn skillbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SKILLBRIDGE_CONFIG")
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The shipped catalog as `skills --json` prints it, built from the golden files (which `golden.rs` checks
/// against the skills): `{name, description, inputSchema}` per skill, in name order.
fn golden_catalog() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let golden: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            json!({"name": golden["name"], "description": golden["description"], "inputSchema": golden["inputSchema"]})
        })
        .collect()
}

/// `tools` written to `name` in `dir`; its path as a string.
fn write(dir: &Path, name: &str, tools: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(tools).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The golden catalog with `ticket_search`'s `limit` at most 20 (it was 50) and `note_save` gone.
fn edited_catalog() -> Value {
    let mut tools = golden_catalog();
    let names: Vec<&str> = tools.iter().map(|tool| tool["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"note_save") && names.contains(&"ticket_search"),
        "{names:?}"
    );
    tools.retain(|tool| tool["name"] != "note_save");
    let search = tools.iter_mut().find(|tool| tool["name"] == "ticket_search").unwrap();
    assert_eq!(search["inputSchema"]["properties"]["limit"]["maximum"], 50);
    search["inputSchema"]["properties"]["limit"]["maximum"] = json!(20);
    Value::Array(tools)
}

#[test]
fn the_golden_catalog_diffed_with_itself_has_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    let golden = write(dir.path(), "golden.json", &Value::Array(golden_catalog()));
    let output = skillbridge(&["skills", "diff", &golden, &golden]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "no changes\n");
}

#[test]
fn new_defaults_to_the_binary_s_own_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let golden = write(dir.path(), "golden.json", &Value::Array(golden_catalog()));
    let output = skillbridge(&["skills", "diff", &golden]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "no changes\n");

    // Against the binary, the edited copy as OLD: the bound was raised and a tool added, both compatible.
    let edited = write(dir.path(), "edited.json", &edited_catalog());
    let output = skillbridge(&["skills", "diff", &edited]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(report.starts_with("note_save (added)  compatible\n"), "{report}");
    assert!(
        report.contains("ticket_search\n  compatible  limit: maximum raised from 20 to 50\n"),
        "{report}"
    );
    assert!(
        report.ends_with("compatible with sessions created with the old catalog\n"),
        "{report}"
    );
}

#[test]
fn a_breaking_edit_is_reported_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let golden = write(dir.path(), "golden.json", &Value::Array(golden_catalog()));
    let edited = write(dir.path(), "edited.json", &edited_catalog());
    let output = skillbridge(&["skills", "diff", &golden, &edited]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "note_save (removed)  breaking\n\
         ticket_search\n\
         \x20 breaking    limit: maximum lowered from 50 to 20\n\
         \n\
         2 tools differ (1 changed, 1 removed, 0 added): 2 breaking, 0 compatible; BREAKING for sessions created \
         with the old catalog\n\
         note: a renamed tool shows as removed + added; sessions created with the old catalog still call it by its \
         old name\n"
    );
}

#[test]
fn json_prints_the_machine_form_with_the_same_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let golden = write(dir.path(), "golden.json", &Value::Array(golden_catalog()));
    let edited = write(dir.path(), "edited.json", &edited_catalog());
    let output = skillbridge(&["skills", "diff", "--json", &golden, &edited]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        report,
        json!({
            "breaking": true,
            "tools": [
                {
                    "name": "note_save",
                    "status": "removed",
                    "breaking": true,
                    "likelyRename": null,
                    "changes": [{"path": "", "kind": "tool_removed", "breaking": true, "message": "tool removed"}],
                },
                {
                    "name": "ticket_search",
                    "status": "changed",
                    "breaking": true,
                    "likelyRename": null,
                    "changes": [{
                        "path": "limit",
                        "kind": "constraint_tightened",
                        "breaking": true,
                        "message": "maximum lowered from 50 to 20",
                    }],
                },
            ],
        })
    );

    let output = skillbridge(&["skills", "diff", "--json", &golden, &golden]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report, json!({"breaking": false, "tools": []}));
}

#[test]
fn every_form_skills_json_prints_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let forms = [
        ("app-server.json", vec!["skills", "--json", "--flavor", "app-server"]),
        ("states.json", vec!["skills", "--json", "--states"]),
    ];
    let mut files = Vec::new();
    for (name, args) in forms {
        let output = skillbridge(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let path = dir.path().join(name);
        std::fs::write(&path, output.stdout).unwrap();
        files.push(path.to_str().unwrap().to_owned());
    }
    for file in &files {
        let output = skillbridge(&["skills", "diff", file]);
        assert_eq!(
            (output.status.code(), stdout(&output).as_str()),
            (Some(0), "no changes\n"),
            "{file}"
        );
    }
    let output = skillbridge(&["skills", "diff", &files[0], &files[1]]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn unusable_inputs_exit_2_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let golden = write(dir.path(), "golden.json", &Value::Array(golden_catalog()));
    let missing = dir.path().join("missing.json").to_str().unwrap().to_owned();
    let not_json = dir.path().join("not-json.json");
    std::fs::write(&not_json, "name: ticket_search\n").unwrap();
    let not_json = not_json.to_str().unwrap().to_owned();
    let not_a_list = write(dir.path(), "not-a-list.json", &json!({"tools": []}));
    let no_schema = write(
        dir.path(),
        "no-schema.json",
        &json!([{"name": "ticket_search", "description": ""}]),
    );
    let cases = [
        (vec![missing.as_str()], format!("error: cannot read {missing}: ")),
        (
            vec![golden.as_str(), missing.as_str()],
            format!("error: cannot read {missing}: "),
        ),
        (vec![not_json.as_str()], format!("error: {not_json} is not JSON: ")),
        (
            vec![golden.as_str(), not_a_list.as_str()],
            format!(
                "error: {not_a_list} is not a tool list: expected a JSON array of tools, as `skills --json` prints \
                 it, or an object with a `dynamicTools` array; found an object without a `dynamicTools` array"
            ),
        ),
        (
            vec![no_schema.as_str()],
            format!("error: {no_schema} is not a tool list: tool `ticket_search` has no `inputSchema` object"),
        ),
    ];
    for (files, expected) in cases {
        let mut args = vec!["skills", "diff"];
        args.extend(files);
        let output = skillbridge(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stdout(&output));
        assert!(stderr(&output).starts_with(&expected), "{args:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), "", "{args:?}");
    }
    let output = skillbridge(&["skills", "diff"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("<OLD.json>"), "{}", stderr(&output));
}

#[test]
fn diff_help_explains_the_verdicts_exit_statuses_and_ci_use() {
    let output = skillbridge(&["skills", "diff", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    for expected in [
        "Usage: skillbridge skills diff [OPTIONS] <OLD.json> [NEW.json]",
        "  breaking    such a call can now fail",
        "  compatible  every such call still passes",
        "Exit status: 0 no change or only compatible ones, 1 a breaking change, 2 usage error",
        "skillbridge skills --json > new.json && skillbridge skills diff released/skills.json new.json",
    ] {
        assert!(help.contains(expected), "missing {expected:?} in:\n{help}");
    }
}
