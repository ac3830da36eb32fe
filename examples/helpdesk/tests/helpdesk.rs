//! The helpdesk example as its users run it: the `helpdesk` binary lists its macro and run-time skills, enforces
//! the bounds on `call`, serves two session groups with their own tools against the codex-manager double (sharing
//! one desk), and answers a `send` turn through a runbook skill.

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::{TurnScript, answer_text};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

fn helpdesk() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_helpdesk"));
    command
        .env_remove("SKILLBRIDGE_CONFIG")
        .env_remove("CODEX_MANAGER_API_BASE")
        .env_remove("CODEX_MANAGER_BEARER_TOKEN")
        .env_remove("HELPDESK_RUNBOOKS")
        .kill_on_drop(true);
    command
}

async fn run(command: &mut Command) -> Output {
    tokio::time::timeout(WAIT, command.output())
        .await
        .expect("helpdesk finishes")
        .unwrap()
}

async fn helpdesk_with(args: &[&str]) -> Output {
    run(helpdesk().args(args)).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn lists_macro_and_run_time_skills_with_their_tags_and_states() {
    let out = helpdesk_with(&["skills", "--json", "--details"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listing.iter().map(|skill| skill["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "close_ticket",
            "list_tickets",
            "open_ticket",
            "runbook_reset_password",
            "runbook_restart_service"
        ]
    );
    let restart = &listing[4];
    assert_eq!(restart["tags"], json!(["runbooks"]));
    assert_eq!(
        restart["annotations"],
        json!({"readOnlyHint": true, "openWorldHint": false})
    );
    assert_eq!(restart["inputSchema"]["required"], json!(["region", "service"]));
    assert!(
        restart["definedIn"]
            .as_str()
            .unwrap()
            .starts_with("run-time skill at examples/helpdesk/src/lib.rs:"),
        "{restart}"
    );
    assert_eq!(
        listing[1]["states"],
        json!([{"parameter": "desk", "type": "helpdesk::Desk"}])
    );
    assert_eq!(listing[1]["inputSchema"]["properties"]["limit"]["maximum"], 20);
}

#[tokio::test]
async fn call_enforces_the_bounds_of_macro_and_run_time_skills() {
    let out = helpdesk_with(&["call", "list_tickets", r#"{"limit": 50}"#]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: invalid arguments for `list_tickets`: limit: 50 is greater than the maximum of 20"
    );
    let out = helpdesk_with(&["call", "runbook_reset_password", r#"{"user": "ada.l"}"#]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("1. Confirm ada.l's identity by a call-back"),
        "{}",
        text(&out.stdout)
    );
    let out = helpdesk_with(&["call", "runbook_reset_password", r#"{"user": "Ada", "note": "x"}"#]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("user: \"Ada\" does not match \"^[a-z][a-z0-9.]{1,31}$\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("Additional properties are not allowed ('note' was unexpected)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn runbooks_that_make_no_valid_skill_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runbooks.json");
    let bad = json!([{"name": "bad name", "description": "x", "inputs": {}, "steps": []}]);
    std::fs::write(&path, bad.to_string()).unwrap();
    let out = run(helpdesk().env("HELPDESK_RUNBOOKS", &path).arg("skills")).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(
            "error: the runbooks do not make skills: skill `runbook_bad name` (run-time skill at \
             examples/helpdesk/src/lib.rs:"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_gives_each_session_group_its_tools_and_one_shared_desk() {
    let double = CodexManagerDouble::start().await.unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/helpdesk.toml");
    let mut child = helpdesk()
        .args([
            "serve",
            "--no-admin",
            "--manager-url",
            &double.base_url(),
            "--config",
            config,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut served = Vec::new();
    while served.len() < 2 {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("serve prints its sessions");
        match line.unwrap() {
            Some(line) => served.extend(line.strip_prefix("session ").map(|id| id.trim().to_owned())),
            None => panic!("serve exited after {served:?}"),
        }
    }
    let tools_of = |id: &str| -> Vec<String> {
        let session = double.sessions().into_iter().find(|s| s.id == id).unwrap();
        let mut tools: Vec<String> = session
            .tools
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        tools.sort_unstable();
        tools
    };
    let (triage, fixer) = if tools_of(&served[0]).contains(&"open_ticket".to_owned()) {
        (served[1].clone(), served[0].clone())
    } else {
        (served[0].clone(), served[1].clone())
    };
    assert_eq!(
        tools_of(&triage),
        ["list_tickets", "runbook_reset_password", "runbook_restart_service"]
    );
    assert_eq!(tools_of(&fixer), ["close_ticket", "list_tickets", "open_ticket"]);

    let answer = |thread: &str, tool: &str, arguments: Value| {
        let request = double.inject_tool_call(thread, tool, arguments);
        let double = &double;
        async move { double.wait_answered(&request, WAIT).await.expect("answered") }
    };
    let opened = answer(&fixer, "open_ticket", json!({"title": "VPN drops every hour"})).await;
    assert_eq!(
        answer_text(&opened),
        r#"{"id":"T-1","title":"VPN drops every hour","closed":false}"#
    );
    // The triage session sees the fixer's ticket: one desk.
    let listed = answer(&triage, "list_tickets", json!({"limit": 5})).await;
    assert_eq!(
        answer_text(&listed),
        r#"[{"id":"T-1","title":"VPN drops every hour","closed":false}]"#
    );
    // Not offered to triage: refused, and the ticket stays open.
    let refused = answer(&triage, "close_ticket", json!({"ticket_id": "T-1"})).await;
    assert_eq!(
        answer_text(&refused),
        "tool `close_ticket` is not offered in this session; its tools are: list_tickets, runbook_reset_password, \
         runbook_restart_service"
    );
    let runbook = answer(
        &triage,
        "runbook_restart_service",
        json!({"service": "vpn", "region": "eu-1"}),
    )
    .await;
    assert!(answer_text(&runbook).starts_with("1. Drain vpn in eu-1"), "{runbook}");
    let still_open = answer(&fixer, "list_tickets", json!({"limit": 1})).await;
    assert!(answer_text(&still_open).contains(r#""closed":false"#), "{still_open}");

    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test]
async fn send_answers_a_turn_through_a_run_time_skill() {
    let double = CodexManagerDouble::builder()
        .on_message(|_| {
            Some(
                TurnScript::new()
                    .tool_call("runbook_reset_password", json!({"user": "grace.h"}))
                    .final_message_from(|answers| answer_text(&answers[0]).to_owned()),
            )
        })
        .start()
        .await
        .unwrap();
    let out = helpdesk_with(&[
        "send",
        "How do I reset grace.h's password?",
        "--tools",
        "runbooks",
        "--manager-url",
        &double.base_url(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("1. Confirm grace.h's identity"),
        "{}",
        text(&out.stdout)
    );
    let tools: Vec<String> = double.sessions()[0]
        .tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tools, ["runbook_reset_password", "runbook_restart_service"]);
}
