//! `skillbridge serve` at `RUST_LOG=trace` never writes a credential: not the codex-manager bearer or RBAC token (sent
//! on every REST call and on the websocket upgrade), not the admin token (checked on every admin request), not the
//! password of a manager URL with credentials in it, which serve refuses before connecting anywhere.
//!
//! These run the shipped binary against the codex-manager double on loopback, on the real clock; every wait is a
//! fail-safe bound far from what the test needs.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::json;
use skillbridge_doubles::CodexManagerDouble;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);
const BEARER: &str = "cm-bearer-7d3f9a";
const RBAC: &str = "cm-rbac-51c0e2";
const ADMIN: &str = "admin-token-e48b7c";
const PASSWORD: &str = "url-password-0a9d6f";

/// `skillbridge serve` with every credential set and every log line on, against `manager_url` (`None`: the one in
/// the environment).
fn serve(manager_url: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skillbridge"));
    command.arg("serve");
    if let Some(url) = manager_url {
        command
            .args(["--manager-url", url])
            .env_remove("CODEX_MANAGER_API_BASE");
    }
    command
        .args([
            "--admin",
            "127.0.0.1:0",
            "--poll-interval",
            "200ms",
            "--grace",
            "10s",
            "--delete-on-exit",
        ])
        .env("CODEX_MANAGER_BEARER_TOKEN", BEARER)
        .env("CODEX_MANAGER_RBAC_TOKEN", RBAC)
        .env("SKILLBRIDGE_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "trace")
        .env_remove("SKILLBRIDGE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Everything the process writes to stderr, read as it comes (at trace level it would fill the pipe otherwise).
fn drain_stderr(child: &mut Child) -> JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("piped stderr");
    tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    })
}

/// Reads stdout up to the `admin` line; returns the session id, the admin address and what was read.
async fn started(child: &mut Child) -> (String, String, BufReader<tokio::process::ChildStdout>, String) {
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut seen = String::new();
    let (mut session, mut admin) = (None, None);
    let read = async {
        while admin.is_none() {
            let mut line = String::new();
            if stdout.read_line(&mut line).await.unwrap() == 0 {
                panic!("serve exited early; stdout:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(id) = line.trim().strip_prefix("session ") {
                session = Some(id.to_owned());
            }
            if let Some(url) = line.trim().strip_prefix("admin http://") {
                admin = Some(url.to_owned());
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("serve prints its session and admin address");
    (session.expect("a session line"), admin.unwrap(), stdout, seen)
}

/// `GET path` on the admin endpoint with the admin token, over a plain socket; returns the whole answer.
async fn admin_get(addr: &str, path: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, socket.read_to_string(&mut answer))
        .await
        .expect("the admin endpoint answers")
        .unwrap();
    answer
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn exit_of(child: &mut Child) -> ExitStatus {
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("serve exits")
        .unwrap()
}

#[track_caller]
fn assert_no_secret(output: &str) {
    for secret in [BEARER, RBAC, ADMIN, PASSWORD] {
        if let Some(at) = output.find(secret) {
            let line_start = output[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = output[at..].find('\n').map_or(output.len(), |i| at + i);
            panic!("{secret} was written: {}", &output[line_start..line_end]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_is_written_at_trace_level() {
    let double = CodexManagerDouble::builder()
        .require_bearer(BEARER)
        .start()
        .await
        .unwrap();
    let mut child = serve(Some(&double.base_url())).spawn().unwrap();
    let stderr = drain_stderr(&mut child);
    let (thread, admin, mut stdout, mut out) = started(&mut child).await;
    assert!(
        double.wait_for_sockets(1, WAIT).await,
        "serve connects its stream with the token"
    );

    let id = double.inject_tool_call(&thread, "uppercase", json!({"text": "quiet please"}));
    let body = double.wait_answered(&id, WAIT).await.expect("the call is answered");
    assert_eq!(body["contentItems"][0]["text"], "QUIET PLEASE");
    let metrics = admin_get(&admin, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("skillbridge_calls_total{skill=\"uppercase\",outcome=\"success\"} 1"));

    sigterm(&child);
    let status = exit_of(&mut child).await;
    stdout.read_to_string(&mut out).await.unwrap();
    let err = tokio::time::timeout(WAIT, stderr).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status:?}\n{err}");
    // Trace really was on, for our code and the HTTP and websocket stacks under it.
    for target in [
        "TRACE",
        "skillbridge::manager::client",
        "hyper_util",
        "skillbridge::stream",
    ] {
        assert!(err.contains(target), "no {target} line in the log");
    }
    assert_no_secret(&out);
    assert_no_secret(&err);
    assert!(
        double.sessions().iter().all(|s| s.deleted),
        "--delete-on-exit deleted the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_url_with_credentials_is_refused_without_echoing_them() {
    let double = CodexManagerDouble::builder()
        .require_bearer(BEARER)
        .start()
        .await
        .unwrap();
    let with_password = format!("http://bridge:{PASSWORD}@{}", double.addr());
    let mut print_config = serve(Some(&with_password));
    print_config.arg("--print-config");
    let mut from_env = serve(None);
    from_env.env("CODEX_MANAGER_API_BASE", &with_password);
    for (i, mut command) in [serve(Some(&with_password)), print_config, from_env]
        .into_iter()
        .enumerate()
    {
        let output = tokio::time::timeout(WAIT, command.output())
            .await
            .expect("serve exits at once")
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "run {i}: a settings error\n{out}\n{err}");
        assert!(
            err.contains("must not carry credentials") && err.contains("<redacted>@127.0.0.1"),
            "run {i}: {err}"
        );
        assert_no_secret(&out);
        assert_no_secret(&err);
    }
    assert!(double.received().is_empty(), "nothing was sent to codex-manager");
}
