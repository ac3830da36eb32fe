//! `skillbridge serve` and `send` through the shipped binary: help text, exit statuses of failed starts, waiting for
//! a codex-manager that comes up late, toolsets (`--tools`, `--exclude-tools`, `--read-only`, session groups),
//! `--write-catalog`, and a whole `send` turn against the codex-manager double.

mod support;

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::json;
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::{TurnScript, answer_text};
use support::free_addr;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

async fn skillbridge(args: &[&str]) -> Output {
    let run = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(args)
        .env_remove("SKILLBRIDGE_CONFIG")
        .env_remove("CODEX_MANAGER_API_BASE")
        .env_remove("CODEX_MANAGER_BEARER_TOKEN")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(WAIT, run)
        .await
        .expect("skillbridge finishes")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `skillbridge serve` with `args` (at its default log level), its stdout and stderr piped for the test to read.
fn spawn_serve(args: &[&str]) -> tokio::process::Child {
    Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .arg("serve")
        .args(args)
        .env_remove("SKILLBRIDGE_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A URL where nothing listens.
fn closed_url() -> String {
    format!("http://{}", free_addr())
}

#[tokio::test]
async fn help_explains_every_option_with_examples() {
    let out = skillbridge(&["serve", "--help"]).await;
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "--manager-url",
        "CODEX_MANAGER_API_BASE",
        "--manager-ca <FILE>",
        "CODEX_MANAGER_CA",
        "--sessions",
        "--session <ID>",
        "fixed when it was created",
        "--prompt",
        "--poll-interval",
        "--concurrency",
        "--all-sessions",
        "--grace",
        "--delete-on-exit",
        "--admin <ADDR>",
        "--no-admin",
        "SKILLBRIDGE_ADMIN_TOKEN",
        "--config",
        "--profile",
        "flag > environment variable > TOML file",
        "--codex-log <FILTER>",
        "SKILLBRIDGE_CODEX_LOG",
        "--log-format <FORMAT>",
        "SKILLBRIDGE_LOG_FORMAT",
        "One JSON object per line",
        "Examples:",
    ] {
        assert!(help.contains(needle), "serve --help lacks {needle:?}:\n{help}");
    }
    let out = skillbridge(&["send", "--help"]).await;
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "<PROMPT>",
        "--timeout",
        "--keep-session",
        "--keep-thread",
        "archives the thread",
        "--codex-log",
        "--log-format",
        "Exit status",
        "Examples:",
    ] {
        assert!(help.contains(needle), "send --help lacks {needle:?}:\n{help}");
    }
}

#[tokio::test]
async fn failed_starts_exit_one_and_bad_settings_exit_two() {
    let url = closed_url();
    let out = skillbridge(&["serve", "--no-admin", "--startup-timeout", "1s", "--manager-url", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "skillbridge serve: gave up after waiting 1s for codex-manager: cannot reach codex-manager at {url}: \
             connection refused"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("or run Codex directly with --app-server"), "{stderr}");
    assert!(out.stdout.is_empty(), "no session is printed");

    let guarded = CodexManagerDouble::builder()
        .require_bearer("b34rer")
        .start()
        .await
        .unwrap();
    let out = skillbridge(&["serve", "--no-admin", "--manager-url", &guarded.base_url()]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refused to create a session") && stderr.contains("401"),
        "{stderr}"
    );

    let out = skillbridge(&["serve", "--sessions", "0"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nothing to serve"));
    let out = skillbridge(&["serve", "--grace", "ten"]).await;
    assert_eq!(out.status.code(), Some(2));

    // `send` is interactive: it does not wait.
    let out = skillbridge(&["send", "hi", "--manager-url", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "skillbridge send: cannot reach codex-manager at {url}: connection refused\n"
        )),
        "{}",
        text(&out.stderr)
    );
}

/// `GET path` on `addr`: the status code and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The wait a `trying again in 400ms` / `trying again in 1.6s` log line announces.
fn announced_wait(line: &str) -> Duration {
    let (_, rest) = line
        .split_once("trying again in ")
        .expect("the line says when it tries again");
    let wait = rest.split_whitespace().next().unwrap();
    match wait.strip_suffix("ms") {
        Some(millis) => Duration::from_millis(millis.parse().unwrap()),
        None => Duration::from_secs_f64(wait.strip_suffix('s').unwrap().parse().unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_started_before_codex_manager_waits_for_it_and_becomes_ready() {
    let (manager, admin) = (free_addr(), free_addr());
    let spawned = std::time::Instant::now();
    let mut child = spawn_serve(&[
        "--manager-url",
        &format!("http://{manager}"),
        "--admin",
        &admin.to_string(),
    ]);
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    // codex-manager comes up only once serve has spent at least 5 s waiting between attempts, by its own account:
    // each refusal is logged with the wait before the next attempt (200 ms doubling), so a refusal logged after
    // waits adding up to 5 s or more means serve has been waiting that long.
    let (mut refusals, mut waited) = (0, Duration::ZERO);
    loop {
        let line = tokio::time::timeout(WAIT, errors.next_line())
            .await
            .expect("serve keeps trying");
        let line = line.unwrap().expect("serve is still running");
        if !line.contains("connection refused") {
            continue;
        }
        assert!(line.contains("WARN") && line.contains("trying again in"), "{line}");
        refusals += 1;
        if waited >= Duration::from_secs(5) {
            break;
        }
        waited += announced_wait(&line);
    }
    assert!(
        refusals >= 6,
        "200+400+800+1600+3200 ms before the sixth attempt: {refusals}"
    );
    assert!(spawned.elapsed() >= Duration::from_secs(5), "{:?}", spawned.elapsed());
    // Meanwhile it is alive, and says why it is not ready.
    assert_eq!(get(admin, "/healthz").await.0, 200);
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!(status, 503);
    assert!(
        body.contains(&format!(
            "waiting for the upstream: cannot reach codex-manager at http://{manager}: connection refused"
        )),
        "{body}"
    );

    let double = CodexManagerDouble::builder().bind(manager).start().await.unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("serve starts")
        .unwrap();
    let session = line
        .as_deref()
        .and_then(|line| line.strip_prefix("session "))
        .expect("a session line")
        .trim()
        .to_owned();
    let up = loop {
        let line = tokio::time::timeout(WAIT, errors.next_line())
            .await
            .expect("serve says codex-manager is up");
        let line = line.unwrap().expect("serve is still running");
        if line.contains("codex-manager is up after") {
            break line;
        }
    };
    let failed: u32 = up
        .split_once(" and ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{up}"));
    assert!(failed >= refusals, "{up}");
    // Drain the rest of stderr so that serve never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = errors.next_line().await {} });

    let ready = async {
        while get(admin, "/readyz").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, ready)
        .await
        .expect("ready without a restart");
    // The same process serves the session it created: a call is answered.
    let sessions = double.sessions();
    assert_eq!(sessions.len(), 1, "one session, created once");
    assert_eq!(sessions[0].id, session);
    let request = double.inject_tool_call(&session, "uppercase", json!({"text": "late start"}));
    let answer = double
        .wait_answered(&request, WAIT)
        .await
        .expect("the call is answered");
    assert_eq!(answer_text(&answer), "LATE START");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the process that waited is the one that answered, still running"
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test]
async fn send_prints_the_reply_and_exits_zero() {
    let double = CodexManagerDouble::builder()
        .on_message(|_| {
            Some(
                TurnScript::new()
                    .tool_call("uppercase", json!({"text": "hello bridge"}))
                    .final_message_from(|answers| format!("Tool said: {}", answer_text(&answers[0]))),
            )
        })
        .start()
        .await
        .unwrap();
    let out = skillbridge(&[
        "send",
        "Please uppercase 'hello bridge'.",
        "--manager-url",
        &double.base_url(),
    ])
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "Tool said: HELLO BRIDGE\n");
    let sessions = double.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].deleted, "send deletes its session");
    let tools: Vec<&str> = sessions[0].tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(
        tools.contains(&"uppercase"),
        "the shipped skills are the tools: {tools:?}"
    );
}

#[tokio::test]
async fn tools_selects_what_the_session_offers_and_a_call_outside_it_never_runs() {
    let double = CodexManagerDouble::builder()
        .on_message(|_| {
            Some(
                TurnScript::new()
                    .tool_call("note_save", json!({"key": "k", "text": "secret plan"}))
                    .final_message_from(|answers| answer_text(&answers[0]).to_owned()),
            )
        })
        .start()
        .await
        .unwrap();
    let out = skillbridge(&[
        "send",
        "Save a note.",
        "--tools",
        "text",
        "--read-only",
        "--manager-url",
        &double.base_url(),
    ])
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let sessions = double.sessions();
    let mut tools: Vec<&str> = sessions[0].tools.iter().filter_map(|t| t["name"].as_str()).collect();
    tools.sort_unstable();
    assert_eq!(tools, ["slugify", "uppercase", "word_count"]);
    assert_eq!(
        text(&out.stdout),
        "tool `note_save` is not offered in this session; its tools are: slugify, uppercase, word_count\n"
    );

    let out = skillbridge(&["send", "x", "--tools", "txet", "--manager-url", &double.base_url()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("`txet` is neither a skill nor a tag"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(double.sessions().len(), 1, "no session was created for the bad toolset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_groups_in_the_settings_file_each_get_their_toolset() {
    let double = CodexManagerDouble::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skillbridge.toml");
    std::fs::write(
        &config,
        "[[serve.session]]\ntools = [\"text\"]\n\n[[serve.session]]\ncount = 2\ntools = [\"time\"]\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(["serve", "--manager-url", &double.base_url(), "--no-admin", "--config"])
        .arg(&config)
        .env_remove("SKILLBRIDGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut served = Vec::new();
    while served.len() < 3 {
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
    let mut groups: Vec<Vec<String>> = served.iter().map(|id| tools_of(id)).collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            vec!["convert_time", "current_time"],
            vec!["convert_time", "current_time"],
            vec!["slugify", "uppercase", "word_count"]
        ]
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// The shipped skills' `dynamicTools` as `skills --json` prints them, by name.
async fn listed_tools() -> std::collections::BTreeMap<String, serde_json::Value> {
    let listed = skillbridge(&["skills", "--json"]).await;
    let tools: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    tools
        .into_iter()
        .map(|tool| (tool["name"].as_str().unwrap().to_owned(), tool))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tools_flags_select_what_its_sessions_offer_and_a_call_outside_them_never_runs() {
    let double = CodexManagerDouble::start().await.unwrap();
    let admin = free_addr();
    let token = "toolset-t0ken";
    // --tools picks the text, notes and time tags; --exclude-tools drops convert_time; --read-only drops
    // note_save (annotated read_only = false).
    let mut child = support::serve_with_admin(
        &double,
        admin,
        token,
        &[
            "--tools",
            "text,notes,time",
            "--exclude-tools",
            "convert_time",
            "--read-only",
        ],
    )
    .await;
    let offered = ["current_time", "note_read", "slugify", "uppercase", "word_count"];

    let sessions = double.sessions();
    assert_eq!(sessions.len(), 1);
    let thread = sessions[0].id.clone();
    let mut received = sessions[0].tools.clone();
    received.sort_by_key(|tool| tool["name"].as_str().unwrap().to_owned());
    let listed = listed_tools().await;
    let expected: Vec<serde_json::Value> = offered.iter().map(|name| listed[*name].clone()).collect();
    assert_eq!(
        received, expected,
        "the session's dynamicTools are exactly the selected skills"
    );

    let admin_sessions: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{admin}/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin_sessions[0]["id"], thread.as_str());
    assert_eq!(admin_sessions[0]["tools"], json!(offered));

    let not_offered = "is not offered in this session; its tools are: current_time, note_read, slugify, uppercase, \
                       word_count";
    for (tool, arguments) in [
        ("note_save", json!({"key": "plan", "text": "secret plan"})),
        (
            "convert_time",
            json!({"time": "2026-03-29T14:30", "from_zone": "Asia/Tokyo", "to_zone": "Europe/Berlin"}),
        ),
    ] {
        let request = double.inject_tool_call(&thread, tool, arguments);
        let answer = double.wait_answered(&request, WAIT).await.expect("answered");
        assert_eq!(answer["success"], false, "{tool}: {answer}");
        assert_eq!(answer_text(&answer), format!("tool `{tool}` {not_offered}"));
    }
    // note_save never ran: the thread has no notes.
    let request = double.inject_tool_call(&thread, "note_read", json!({}));
    let answer = double.wait_answered(&request, WAIT).await.expect("answered");
    assert_ne!(answer["success"], false, "{answer}");
    assert_eq!(answer_text(&answer), "{}");

    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_write_catalog_writes_the_tools_its_sessions_receive_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("catalog.json");
    let manager = free_addr();
    let (url, written_path) = (format!("http://{manager}"), written.to_str().unwrap());
    let mut child = spawn_serve(&[
        "--no-admin",
        "--manager-url",
        &url,
        "--tools",
        "text",
        "--write-catalog",
        written_path,
    ]);
    // Before it ever reached codex-manager, the catalog is there: the `text` toolset's tools.
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(WAIT, errors.next_line())
            .await
            .expect("serve tries to connect");
        if line
            .unwrap()
            .expect("serve is still running")
            .contains("connection refused")
        {
            break;
        }
    }
    let catalog = std::fs::read_to_string(&written).expect("the catalog is written before connecting");
    // Only the `text` toolset, each tool exactly as `skills --json` lists it.
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&skillbridge(&["skills", "--json"]).await.stdout).unwrap();
    let offered: Vec<serde_json::Value> = serde_json::from_str(&catalog).unwrap();
    assert!(!offered.is_empty() && offered.len() < listed.len(), "{catalog}");
    for tool in &offered {
        assert!(listed.contains(tool), "{tool} is not as `skills --json` lists it");
    }
    tokio::spawn(async move { while let Ok(Some(_)) = errors.next_line().await {} });

    // Once codex-manager is up, the session receives exactly those tools: the catalog is what it is offered.
    let double = CodexManagerDouble::builder().bind(manager).start().await.unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("serve starts")
        .unwrap()
        .expect("a session line");
    let session = line.strip_prefix("session ").expect("a session line").trim();
    let received = double.sessions().into_iter().find(|s| s.id == session).unwrap().tools;
    let written: Vec<serde_json::Value> = serde_json::from_str(&catalog).unwrap();
    assert_eq!(received, written);
    child.start_kill().unwrap();
    let _ = child.wait().await;

    // For codex app-server, the app-server flavor, even when Codex cannot be started.
    let path = dir.path().join("app-server.json");
    let out = skillbridge(&[
        "serve",
        "--no-admin",
        "--app-server",
        "/nonexistent/codex",
        "--write-catalog",
        path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let listed = skillbridge(&["skills", "--json", "--flavor", "app-server"]).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text(&listed.stdout));
}

#[tokio::test]
async fn send_exits_one_when_the_turn_does_not_finish() {
    // The double's turn without a script stays in progress until interrupted.
    let double = CodexManagerDouble::start().await.unwrap();
    let out = skillbridge(&[
        "send",
        "never ends",
        "--timeout",
        "1s",
        "--manager-url",
        &double.base_url(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("did not finish in time"),
        "{}",
        text(&out.stderr)
    );
    assert!(double.received().iter().any(|r| r.path.ends_with("/interrupt")));
}

#[tokio::test]
async fn write_catalog_writes_the_tools_the_upstream_would_receive_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("catalog.json");
    let path = written.to_str().unwrap();
    let out = skillbridge(&["send", "hi", "--manager-url", &closed_url(), "--write-catalog", path]).await;
    assert_eq!(out.status.code(), Some(1), "nothing listens: {}", text(&out.stderr));
    let listed = skillbridge(&["skills", "--json"]).await;
    assert_eq!(std::fs::read_to_string(&written).unwrap(), text(&listed.stdout));

    let out = skillbridge(&[
        "send",
        "hi",
        "--app-server",
        "/nonexistent/codex",
        "--write-catalog",
        path,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let listed = skillbridge(&["skills", "--json", "--flavor", "app-server"]).await;
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        text(&listed.stdout),
        "the app-server flavor for an app-server upstream"
    );

    let out = skillbridge(&[
        "send",
        "hi",
        "--manager-url",
        &closed_url(),
        "--write-catalog",
        "/nonexistent/dir/c.json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot write the catalog to /nonexistent/dir/c.json: "),
        "{}",
        text(&out.stderr)
    );
}
