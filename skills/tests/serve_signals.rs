//! `skillbridge serve` as a real process receiving SIGTERM with calls in flight: the calls finish (or, past the
//! grace period, are answered `success:false`), created sessions are deleted, and the process exits 0 in time.
//!
//! The first test runs the shipped binary. The second needs a skill slower than the grace period, which the
//! shipped binary does not have, so it runs this test binary itself as the serve process (`child_serve` below,
//! which only acts when its environment variable is set) with the `linger` skill registered.
//!
//! These drive real processes, so they stay on the real clock; every time bound is a fail-safe far from what the
//! test expects (seconds of slack), and what happened is read from the answers and the logs, not from timings.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use skillbridge::SkillContext;
use skillbridge::skill;
use skillbridge_doubles::CodexManagerDouble;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "cm-bearer-s3cret";
const CHILD_ENV: &str = "SKILLBRIDGE_TEST_SERVE_CHILD_URL";
const STARTED_LOG_ENV: &str = "SKILLBRIDGE_TEST_LINGER_LOG";

/// How long `linger` runs unless cancelled.
const LINGER: Duration = Duration::from_secs(60);

/// Lingers for a minute, or until cancelled.
#[skill(timeout = "120s")]
async fn linger(ctx: SkillContext) -> String {
    // Tells the test (another process) that this call is running.
    if let Ok(path) = std::env::var(STARTED_LOG_ENV) {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(log, "{}", ctx.request_id).unwrap();
    }
    tokio::select! {
        _ = tokio::time::sleep(LINGER) => "lingered".into(),
        _ = ctx.cancelled() => "cancelled".into(),
    }
}

/// Reads stdout until the `session <id>` line; returns the id. (In the self-run child the test harness has
/// already written `test child_serve ... ` on the same line.)
async fn served_session(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, id)) = line.rsplit_once("session ") {
                return id.trim().to_owned();
            }
        }
        panic!("serve exited without printing a session");
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("serve prints its session")
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the exit, returning the status and how long it took after `since`.
async fn exit_of(child: &mut Child, since: Instant) -> (std::process::ExitStatus, Duration) {
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("serve exits")
        .unwrap();
    (status, since.elapsed())
}

async fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text).await;
    }
    text
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_calls_finish_and_exits_zero() {
    let double = CodexManagerDouble::builder()
        .require_bearer(TOKEN)
        .start()
        .await
        .unwrap();
    // Far longer than the answers need (a second), so that they finish within it even on a loaded machine.
    let grace = Duration::from_secs(20);
    let mut child = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args([
            "serve",
            "--manager-url",
            &double.base_url(),
            "--no-admin",
            "--delete-on-exit",
        ])
        .args(["--grace", "20s", "--poll-interval", "1s"])
        .env("CODEX_MANAGER_BEARER_TOKEN", TOKEN)
        .env("RUST_LOG", "debug")
        .env_remove("SKILLBRIDGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let thread = served_session(&mut child).await;
    assert!(double.wait_for_sockets(1, WAIT).await, "serve connects its stream");

    // Answers are held in flight by the double for a second each.
    double.set_response_delay(Duration::from_secs(1));
    let ids: Vec<String> = (0..5)
        .map(|i| double.inject_tool_call(&thread, "uppercase", json!({"text": format!("call {i}")})))
        .collect();
    wait_until("every answer in flight", || {
        ids.iter().all(|id| double.responses_for(id).len() == 1)
    })
    .await;

    let signalled = Instant::now();
    sigterm(&child);
    let (status, took) = exit_of(&mut child, signalled).await;
    let stderr = stderr_of(&mut child).await;
    assert!(status.success(), "exit status {status:?}\n{stderr}");
    // Serve exits once the calls are answered: the grace is not waited out, let alone passed.
    assert!(
        !stderr.contains("grace period over"),
        "the calls were cut at the grace\n{stderr}"
    );
    assert!(took < grace, "exited after {took:?}, grace {grace:?}\n{stderr}");
    for (i, id) in ids.iter().enumerate() {
        let body = double
            .wait_answered(id, Duration::from_millis(1))
            .await
            .expect("answered before exit");
        assert_eq!(body["success"], true);
        assert_eq!(body["contentItems"][0]["text"], format!("CALL {i}"));
        assert_eq!(double.responses_for(id).len(), 1);
    }
    let session = double.sessions().into_iter().find(|s| s.id == thread).unwrap();
    assert!(session.deleted, "--delete-on-exit deleted the session");
    assert!(!stderr.contains(TOKEN), "the token leaked into the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_running_past_the_grace_are_answered_success_false() {
    let double = CodexManagerDouble::start().await.unwrap();
    let started_log = std::env::temp_dir().join(format!("skillbridge-linger-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&started_log);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_serve", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, double.base_url())
        .env(STARTED_LOG_ENV, &started_log)
        .env_remove("SKILLBRIDGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let thread = served_session(&mut child).await;
    assert!(double.wait_for_sockets(1, WAIT).await);

    let lingering: Vec<String> = (0..3)
        .map(|_| double.inject_tool_call(&thread, "linger", json!({})))
        .collect();
    let started = || std::fs::read_to_string(&started_log).map_or(0, |log| log.lines().count());
    wait_until("the three calls to run", || started() == 3).await;

    let signalled = Instant::now();
    sigterm(&child);
    let (status, took) = exit_of(&mut child, signalled).await;
    let stderr = stderr_of(&mut child).await;
    assert!(status.success(), "exit status {status:?}\n{stderr}");
    // A fail-safe: the grace (1 s) and the bridge's own stop limits (2 s to deliver the cancelled calls' answers,
    // 5 s for the stream to stop) come to 8 s at most; the skills alone would have run for a minute.
    assert!(
        took < LINGER / 3,
        "exited after {took:?}: the skills were not cancelled at the grace"
    );
    for id in &lingering {
        let body = double
            .wait_answered(id, Duration::from_millis(1))
            .await
            .expect("answered before exit");
        assert_eq!(body["success"], false, "{body}");
        let text = body["contentItems"][0]["text"].as_str().unwrap();
        assert!(text.contains("linger") && text.contains("shut down"), "{text}");
        assert_eq!(double.responses_for(id).len(), 1);
    }
    let _ = std::fs::remove_file(&started_log);
}

/// The serve process of the test above; does nothing unless started by it. It runs `skillbridge serve` through
/// the library's command line, as the shipped binary does, with this test binary's skills.
#[test]
fn child_serve() {
    let Ok(url) = std::env::var(CHILD_ENV) else { return };
    let cli = skillbridge::cli::Cli::try_parse_from([
        "skillbridge",
        "serve",
        "--manager-url",
        &url,
        "--grace",
        "1s",
        "--poll-interval",
        "200ms",
        "--no-admin",
    ])
    .expect("valid serve flags");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let code = runtime.block_on(cli.run());
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}
