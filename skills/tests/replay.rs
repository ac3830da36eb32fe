//! Replaying a recorded call: `serve --record-arguments` keeps each call's arguments, `GET /calls/{id}` shows them,
//! and `skillbridge call --replay URL` runs the call again here with one command and gives the same result.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::answer_text;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "replay-t0ken";

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `serve` with the admin endpoint on `admin`, and `flags`; returns once it serves.
async fn serve(double: &CodexManagerDouble, admin: std::net::SocketAddr, flags: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args([
            "serve",
            "--manager-url",
            &double.base_url(),
            "--admin",
            &admin.to_string(),
        ])
        .args(flags)
        .env("SKILLBRIDGE_ADMIN_TOKEN", TOKEN)
        .env_remove("SKILLBRIDGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("serve starts");
        match line.unwrap() {
            Some(line) if line.starts_with("admin ") => return child,
            Some(_) => {}
            None => panic!("serve exited"),
        }
    }
}

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
    let mut bridge = serve(&double, admin, &["--record-arguments"]).await;
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
    let mut bridge = serve(&double, admin, &[]).await;
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
