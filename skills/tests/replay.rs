//! Replaying a recorded call: `serve --record-arguments` keeps each call's arguments (up to 4 KiB of JSON; larger
//! ones are left out with the reason), `GET /calls/{id}` shows them, and `skillbridge call --replay URL` runs the
//! call again here with one command and gives the same result. That a replay runs with the recorded call's ids is
//! tested in the root crate's `tests/recorded_calls.rs`: no shipped skill shows its context.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_over_the_record_cap_are_left_out_with_the_reason_and_the_replay_says_so() {
    let double = CodexManagerDouble::start().await.unwrap();
    let admin = free_addr();
    let mut bridge = serve_with_admin(&double, admin, TOKEN, &["--record-arguments"]).await;
    let thread = double.sessions()[0].id.clone();
    let arguments = json!({"text": "word ".repeat(1000)});
    let size = serde_json::to_vec(&arguments).unwrap().len();
    assert!(size > 4096, "more than a record keeps");
    let request = double.inject_tool_call(&thread, "word_count", arguments);
    let answer = double.wait_answered(&request, WAIT).await.expect("answered");
    assert!(
        answer_text(&answer).contains("1000"),
        "the skill ran on the whole text: {answer}"
    );

    // The record is written just after the answer was delivered.
    let url = format!("http://{admin}/calls/{request}");
    let read = async {
        loop {
            let response = reqwest::Client::new()
                .get(&url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                break response.json::<serde_json::Value>().await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let record = tokio::time::timeout(WAIT, read).await.expect("the call is recorded");
    assert_eq!(record["tool"], "word_count");
    assert_eq!(record.get("arguments"), None, "{record}");
    let reason = format!("the arguments were {size} bytes of JSON, more than the 4096 a record keeps");
    assert_eq!(record["arguments_omitted"], reason.as_str());

    let out = replay(&url).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("error: call {request} was recorded without its arguments: {reason}\n")
    );
    bridge.start_kill().unwrap();
    let _ = bridge.wait().await;
}
