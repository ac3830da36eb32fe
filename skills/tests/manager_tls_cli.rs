//! `serve` and `send` through the shipped binary against the codex-manager double served over TLS, with a
//! certificate made here: `--manager-ca` makes `https://` (REST) and `wss://` (the stream) work; a certificate from
//! another CA, for another name, or a CA file that cannot be used fail with the cause in plain words.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::json;
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::{TurnScript, answer_text};
use skillbridge_doubles::tls::{ServerIdentity, TestCa};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

/// The binary with none of the settings' variables of the environment the tests run in.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skillbridge"));
    command
        .args(args)
        .env_remove("SKILLBRIDGE_CONFIG")
        .env_remove("CODEX_MANAGER_API_BASE")
        .env_remove("CODEX_MANAGER_BEARER_TOKEN")
        .env_remove("CODEX_MANAGER_CA")
        .kill_on_drop(true);
    command
}

async fn skillbridge(args: &[&str]) -> Output {
    tokio::time::timeout(WAIT, command(args).output())
        .await
        .expect("skillbridge finishes")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ca`'s certificate in a PEM file of `dir`, as `--manager-ca` takes it.
fn ca_file(dir: &Path, ca: &TestCa) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.cert_pem()).unwrap();
    path
}

/// A double over TLS whose turns call `uppercase` once and reply with what it returned.
async fn tls_double(identity: ServerIdentity) -> CodexManagerDouble {
    CodexManagerDouble::builder()
        .tls(identity)
        .on_message(|_| {
            Some(
                TurnScript::new()
                    .tool_call("uppercase", json!({"text": "over tls"}))
                    .final_message_from(|answers| format!("Tool said: {}", answer_text(&answers[0]))),
            )
        })
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn send_over_https_and_wss_with_the_private_ca() {
    let ca = TestCa::new("skillbridge test CA");
    let double = tls_double(ca.issue(&["127.0.0.1"])).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = ca_file(dir.path(), &ca);
    let url = double.base_url();
    assert!(url.starts_with("https://"), "{url}");

    let out = skillbridge(&[
        "send",
        "Uppercase 'over tls'.",
        "--manager-url",
        &url,
        "--manager-ca",
        ca_path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Tool said: OVER TLS\n");
    assert!(double.sessions()[0].deleted, "the session was deleted over https");
    assert!(double.sockets_opened() >= 1, "the stream connected over wss://");
}

#[tokio::test]
async fn serve_answers_calls_from_the_wss_stream_with_the_ca_from_the_variable() {
    let ca = TestCa::new("skillbridge test CA");
    let double = tls_double(ca.issue(&["localhost", "127.0.0.1"])).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = ca_file(dir.path(), &ca);
    let mut child = command(&[
        "serve",
        "--no-admin",
        "--manager-url",
        &double.base_url(),
        // Calls can only come from the stream (and the listing each connect of it makes).
        "--poll-interval",
        "1h",
    ])
    .env("CODEX_MANAGER_CA", &ca_path)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("serve prints its session")
        .unwrap();
    let Some(session) = line.as_deref().and_then(|line| line.strip_prefix("session ")) else {
        let mut stderr = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).await;
        panic!("serve printed {line:?}: {stderr}");
    };
    assert!(
        double.wait_for_sockets(1, WAIT).await,
        "the stream connects over wss://"
    );

    let request_id = double.inject_tool_call(session.trim(), "uppercase", json!({"text": "streamed"}));
    let answer = double
        .wait_answered(&request_id, WAIT)
        .await
        .expect("the call is answered over https");
    assert!(answer.to_string().contains("STREAMED"), "{answer}");
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_saying_so_and_exits_one() {
    let trusted = TestCa::new("trusted CA");
    let double = tls_double(TestCa::new("unknown CA").issue(&["127.0.0.1"])).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = ca_file(dir.path(), &trusted);
    let url = double.base_url();
    // `serve` waits for a codex-manager it cannot reach, but not for one whose certificate it does not trust: the
    // start-up timeout is far longer than the test's patience.
    for command in [
        &["send", "hi"][..],
        &["serve", "--no-admin", "--startup-timeout", "10m"],
    ] {
        let args = [
            command,
            &["--manager-url", &url, "--manager-ca", ca_path.to_str().unwrap()],
        ]
        .concat();
        let out = skillbridge(&args).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "cannot reach codex-manager at {url}: TLS handshake failed: the server's certificate is not signed by \
                 a trusted CA; pass its CA with --manager-ca"
            )),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("is codex-manager running?"),
            "the server is up: {stderr}"
        );
    }
    assert!(double.sessions().is_empty());
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_naming_both() {
    let ca = TestCa::new("skillbridge test CA");
    let double = tls_double(ca.issue(&["example.invalid"])).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = ca_file(dir.path(), &ca);
    let url = double.base_url().replace("127.0.0.1", "localhost");
    let out = skillbridge(&[
        "send",
        "hi",
        "--manager-url",
        &url,
        "--manager-ca",
        ca_path.to_str().unwrap(),
    ])
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS handshake failed: the certificate is for example.invalid, not localhost"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_ca_file_that_cannot_be_used_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let out = skillbridge(&["send", "hi", "--manager-ca", missing.to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("codex-manager CA file {}: cannot be read", missing.display())),
        "{stderr}"
    );

    let not_a_certificate = dir.path().join("key.pem");
    std::fs::write(
        &not_a_certificate,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let config = dir.path().join("skillbridge.toml");
    std::fs::write(
        &config,
        format!("[codex_manager]\nca = {:?}\n", not_a_certificate.display().to_string()),
    )
    .unwrap();
    let out = skillbridge(&["serve", "--config", config.to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "codex-manager CA file {}: holds no certificate",
            not_a_certificate.display()
        )),
        "{stderr}"
    );
}
