//! Replaying a recorded call: `serve --record-arguments` keeps each call's arguments, `GET /calls/{id}` shows them,
//! and `skillbridge call --replay URL` runs the call again here with one command and gives the same result.

mod support;

use serde_json::json;
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::answer_text;
use support::{WAIT, free_addr, serve_with_admin};
use tokio::process::Command;

const TOKEN: &str = "replay-t0ken";

async fn replay(url: &str) -> std::process::Output {
    let run = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(["call", "--replay", url])
        .env("SKILLBRIDGE_ADMIN_TOKEN", TOKEN)
        .env_remove("SKILLBRIDGE_CONFIG")
        .output();
    tokio::time::timeout(WAIT, run).await.expect("call finishes").unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_replays_with_one_command_and_gives_the_same_result() {
    let double = CodexManagerDouble::start().await.unwrap();
    let admin = free_addr();
    let mut bridge = serve_with_admin(&double, admin, TOKEN, &["--record-arguments"]).await;
    let thread = double.sessions()[0].id.clone();
    let request = double.inject_tool_call(&thread, "slugify", json!({"text": "Replay Me, Please!"}));
    let answer = double.wait_answered(&request, WAIT).await.expect("answered");

    let out = replay(&format!("http://{admin}/calls/{request}")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim_end(), answer_text(&answer), "the same result");

    let out = replay(&format!("http://{admin}/calls/999")).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no recent call has request id 999"),
        "{}",
        text(&out.stderr)
    );
    bridge.start_kill().unwrap();
    let _ = bridge.wait().await;

    // Without --record-arguments there is nothing to replay, and the error says how to get it.
    let admin = free_addr();
    let mut bridge = serve_with_admin(&double, admin, TOKEN, &[]).await;
    let thread = double.sessions().last().unwrap().id.clone();
    let request = double.inject_tool_call(&thread, "slugify", json!({"text": "not kept"}));
    double.wait_answered(&request, WAIT).await.expect("answered");
    let out = replay(&format!("http://{admin}/calls/{request}")).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("serve with --record-arguments to replay calls"),
        "{}",
        text(&out.stderr)
    );
    bridge.start_kill().unwrap();
    let _ = bridge.wait().await;
}
