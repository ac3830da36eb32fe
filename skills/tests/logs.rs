//! What `skillbridge` writes on stderr, through the shipped binary against the codex-manager double: no colour
//! codes in a pipe whatever the format, and `--log-format json` lines that parse and carry each call's ids.

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::{TurnScript, answer_text};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

/// A double whose turn calls `uppercase` once and replies with its answer.
async fn double() -> CodexManagerDouble {
    CodexManagerDouble::builder()
        .on_message(|_| {
            Some(
                TurnScript::new()
                    .tool_call("uppercase", json!({"text": "hello bridge"}))
                    .final_message_from(|answers| format!("Tool said: {}", answer_text(&answers[0]))),
            )
        })
        .start()
        .await
        .unwrap()
}

/// `RUST_LOG=debug skillbridge ARGS send .. --manager-url URL`, stderr a pipe, colour not turned off.
async fn send_with_debug_logs(double: &CodexManagerDouble, global: &[&str]) -> Output {
    let run = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(global)
        .args([
            "send",
            "Please uppercase 'hello bridge'.",
            "--manager-url",
            &double.base_url(),
        ])
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .env_remove("SKILLBRIDGE_LOG_FORMAT")
        .env_remove("SKILLBRIDGE_CONFIG")
        .env_remove("CODEX_MANAGER_API_BASE")
        .env_remove("CODEX_MANAGER_BEARER_TOKEN")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .expect("skillbridge finishes")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Tool said: HELLO BRIDGE\n");
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn stderr_through_a_pipe_has_no_escape_codes_in_any_format() {
    let double = double().await;
    for format in ["text", "compact", "pretty", "json"] {
        let out = send_with_debug_logs(&double, &["--log-format", format]).await;
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("answered"),
            "{format}: the debug lines are there:\n{stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "{format}: escape codes in a pipe:\n{stderr}"
        );
    }

    let out = send_with_debug_logs(&double, &[]).await;
    let stderr = text(&out.stderr);
    let answered = stderr
        .lines()
        .find(|line| line.ends_with("answered"))
        .unwrap_or_else(|| panic!("no `answered` line:\n{stderr}"));
    assert!(
        answered.contains(" DEBUG call{request_id=") && answered.contains(" tool=uppercase}"),
        "the default format is one line per event, with the call's span: {answered}"
    );
}

#[tokio::test]
async fn json_lines_parse_and_carry_the_call_ids() {
    let double = double().await;
    let out = send_with_debug_logs(&double, &["--log-format", "json"]).await;
    let stderr = text(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    assert!(lines.len() > 5, "{stderr}");
    for line in &lines {
        for key in ["timestamp", "level", "target", "fields"] {
            assert!(line.get(key).is_some(), "no {key}: {line}");
        }
    }

    let answered = lines
        .iter()
        .find(|line| line["fields"]["message"] == "answered")
        .unwrap_or_else(|| panic!("no `answered` event:\n{stderr}"));
    let call = &answered["span"];
    assert_eq!(call["name"], "call", "{answered}");
    assert_eq!(call["tool"], "uppercase", "{answered}");
    let session = &double.sessions()[0];
    assert_eq!(call["thread_id"], session.id.as_str(), "{answered}");
    let request_id = call["request_id"].as_str().expect("a request id");
    let answer_path = format!("/tool-calls/{request_id}/response");
    assert!(
        double
            .received()
            .iter()
            .any(|request| request.path.ends_with(&answer_path)),
        "the answer was posted for request {request_id}"
    );
    assert_eq!(answered["spans"][0], *call, "the span list holds the call's span");
}

#[tokio::test]
async fn with_json_logs_even_a_failed_start_writes_only_json_on_stderr() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args([
            "--log-format",
            "json",
            "send",
            "hi",
            "--manager-url",
            &format!("http://{closed}"),
        ])
        .env_remove("RUST_LOG")
        .env_remove("SKILLBRIDGE_CONFIG")
        .env_remove("CODEX_MANAGER_API_BASE")
        .env_remove("CODEX_MANAGER_BEARER_TOKEN")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run).await.expect("send finishes").unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect();
    let failure = lines
        .iter()
        .find(|line| line["fields"]["command"] == "send")
        .unwrap_or_else(|| panic!("no event for the failure:\n{stderr}"));
    assert_eq!(failure["level"], "ERROR");
    let message = failure["fields"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "cannot reach codex-manager at http://{closed}: connection refused"
        )),
        "{message}"
    );
}
