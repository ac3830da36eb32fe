//! `skillbridge send --app-server` and `serve --app-server` through the shipped binary, with the REAL
//! `codex app-server` (0.169.0) offline: CODEX_HOME points Codex at a scripted model on loopback, whose script
//! calls shipped skills. Needs `scripts/install-codex.sh` (or `SKILLBRIDGE_CODEX_BIN`);
//! `SKILLBRIDGE_SKIP_CODEX=1` skips.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use skillbridge_doubles::model::{CodexHome, ModelScript, ScriptedModel, codex_rewrite, require_codex, tool_outputs};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Upper bound of every wait; only reached when something is broken.
const WAIT: Duration = Duration::from_secs(30);

/// The real codex, a scripted model and a CODEX_HOME pointing the one at the other.
struct Rig {
    codex: PathBuf,
    model: ScriptedModel,
    home: CodexHome,
    workdir: PathBuf,
}

impl Rig {
    async fn start(test: &str, script: ModelScript) -> Option<Self> {
        let codex = require_codex(test)?;
        let model = ScriptedModel::start(script).await;
        let home = CodexHome::new(&model.base_url()).unwrap();
        let workdir = home.path().join("work");
        std::fs::create_dir(&workdir).unwrap();
        Some(Self {
            codex,
            model,
            home,
            workdir,
        })
    }

    fn codex(&self) -> &str {
        self.codex.to_str().unwrap()
    }

    fn workdir(&self) -> &str {
        self.workdir.to_str().unwrap()
    }

    /// `skillbridge ARGS` with this rig's CODEX_HOME and nothing else from the environment that could steer it.
    fn skillbridge(&self, args: &[&str]) -> Command {
        let mut command = skillbridge(args);
        command.env("CODEX_HOME", self.home.path());
        command
    }
}

fn skillbridge(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skillbridge"));
    command.args(args).kill_on_drop(true);
    for name in [
        "SKILLBRIDGE_CONFIG",
        "SKILLBRIDGE_APP_SERVER",
        "SKILLBRIDGE_RESTART",
        "SKILLBRIDGE_ADMIN",
        "SKILLBRIDGE_DELETE_ON_EXIT",
        "SKILLBRIDGE_KEEP_SESSION",
        "SKILLBRIDGE_KEEP_THREAD",
        "SKILLBRIDGE_CODEX_LOG",
        "SKILLBRIDGE_LOG_FORMAT",
        "CODEX_HOME",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command
}

async fn output(mut command: Command) -> Output {
    tokio::time::timeout(WAIT, command.output())
        .await
        .expect("skillbridge finishes")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn send_prints_the_reply_quoting_both_skills_and_the_model_saw_every_skill() {
    let script = ModelScript::new()
        .call("uppercase", json!({"text": "hello bridge"}))
        .call("word_count", json!({"text": "to be or not to be", "unique": true}));
    let Some(rig) = Rig::start("send_prints_the_reply_quoting_both_skills", script.clone()).await else {
        return;
    };

    let out = output(rig.skillbridge(&[
        "send",
        "--app-server",
        rig.codex(),
        "--cwd",
        rig.workdir(),
        "Uppercase 'hello bridge' and count the words of 'to be or not to be'.",
    ]))
    .await;

    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let requests = rig.model.requests();
    let outputs = requests
        .iter()
        .map(tool_outputs)
        .find(|outputs| !outputs.is_empty())
        .expect("the tool outputs reached the model");
    assert_eq!(outputs.len(), 2, "both calls of one response answered: {outputs:?}");
    assert_eq!(outputs[0], ("call_0_0".to_owned(), "HELLO BRIDGE".to_owned()));
    assert_eq!(outputs[1].0, "call_0_1");
    let counts: Value = serde_json::from_str(&outputs[1].1).unwrap();
    assert_eq!(
        counts,
        json!({"words": 6, "characters": 18, "lines": 1, "unique_words": 4})
    );
    assert_eq!(text(&out.stdout), format!("{}\n", script.final_text(&outputs)));

    // Every shipped skill, with the schema `skills --json --flavor app-server` says we announce.
    let listed = output(skillbridge(&["skills", "--json", "--flavor", "app-server"])).await;
    assert!(listed.status.success());
    let emitted: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(emitted.len() >= 12, "{} skills", emitted.len());
    let shown = requests[0]["tools"].as_array().expect("the model request lists tools");
    for tool in &emitted {
        let name = tool["name"].as_str().unwrap();
        let seen = shown
            .iter()
            .find(|shown| shown["name"] == name)
            .unwrap_or_else(|| panic!("the model was not shown the skill `{name}`"));
        assert_eq!(seen["type"], "function", "{name}");
        assert_eq!(seen["description"], tool["description"], "{name}");
        assert_eq!(
            seen["parameters"],
            codex_rewrite(&tool["inputSchema"]),
            "the schema of `{name}` (we sent {})",
            tool["inputSchema"]
        );
    }
}

/// `skillbridge send --app-server` with the rig's Codex, working in its workdir, with `extra` flags, asking for one
/// `uppercase` call; exits 0.
async fn send_uppercase(rig: &Rig, extra: &[&str], rust_log: Option<&str>) -> Output {
    let mut args = vec!["send", "--app-server", rig.codex(), "--cwd", rig.workdir()];
    args.extend_from_slice(extra);
    args.push("Uppercase 'hello bridge'.");
    let mut command = rig.skillbridge(&args);
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let out = output(command).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    out
}

/// The rollout files of CODEX_HOME/`folder` (Codex's thread histories) whose name holds `thread`.
fn rollouts(home: &Path, folder: &str, thread: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, thread: &str, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, thread, found);
            } else if path.file_name().unwrap().to_string_lossy().contains(thread) {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&home.join(folder), thread, &mut found);
    found
}

#[tokio::test]
async fn with_rust_log_debug_send_logs_our_debug_lines_not_codexs_and_a_clean_stop_is_no_error() {
    let script = ModelScript::new().call("uppercase", json!({"text": "hello bridge"}));
    let Some(rig) = Rig::start("with_rust_log_debug_send_logs_our_debug_lines", script).await else {
        return;
    };

    let out = send_uppercase(&rig, &[], Some("debug")).await;

    let stderr = text(&out.stderr);
    let level_and_target = |line: &str| -> Option<(String, String)> {
        let mut words = line.split_whitespace().skip(1);
        let level = words.next()?.to_owned();
        let target = words.find(|word| word.ends_with(':'))?.trim_end_matches(':').to_owned();
        Some((level, target))
    };
    let lines: Vec<(String, String)> = stderr.lines().filter_map(level_and_target).collect();
    assert!(
        lines
            .iter()
            .any(|(level, target)| level == "DEBUG" && target.starts_with("skillbridge::")),
        "our debug lines:\n{stderr}"
    );
    let codex_debug: Vec<&str> = stderr
        .lines()
        .filter(|line| ["DEBUG codex", "TRACE codex"].iter().any(|codex| line.contains(codex)))
        .collect();
    assert!(codex_debug.is_empty(), "Codex got our RUST_LOG: {codex_debug:#?}");
    assert!(
        stderr.lines().count() < 200,
        "{} lines:\n{stderr}",
        stderr.lines().count()
    );

    let stop = stderr
        .lines()
        .find(|line| line.contains("codex app-server stopped"))
        .unwrap_or_else(|| panic!("no stop line:\n{stderr}"));
    assert!(stop.contains(" INFO ") && !stop.contains("ERROR"), "{stop}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(" ERROR ") && !line.contains(" ERROR codex: "))
        .collect();
    assert!(errors.is_empty(), "a clean run logs no error of ours: {errors:#?}");
    assert!(!stderr.contains("exited (exit status: 0)"), "{stderr}");
}

#[tokio::test]
async fn codex_log_sets_codexs_filter_its_lines_keep_their_level_and_send_archives_its_thread() {
    let script = ModelScript::new().call("uppercase", json!({"text": "hello bridge"}));
    let Some(rig) = Rig::start("codex_log_sets_codexs_filter", script).await else {
        return;
    };

    let out = send_uppercase(&rig, &["--codex-log", "debug", "--log-format", "json"], None).await;

    let stderr = text(&out.stderr);
    let events: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let codex_levels: Vec<&str> = events
        .iter()
        .filter(|event| event["target"] == "codex")
        .filter_map(|event| event["level"].as_str())
        .collect();
    for level in ["DEBUG", "INFO"] {
        assert!(codex_levels.contains(&level), "no Codex {level} line: {codex_levels:?}");
    }
    let codex_messages = events
        .iter()
        .filter(|event| event["target"] == "codex" && event["level"] == "DEBUG")
        .filter_map(|event| event["fields"]["message"].as_str());
    for message in codex_messages {
        let first = message.split_whitespace().next().unwrap_or_default();
        assert!(
            !first.starts_with("20") && !first.ends_with('Z') && first != "DEBUG",
            "the line without its timestamp and level, from Codex's target on: {message}"
        );
    }
    let thread = events
        .iter()
        .find(|event| event["fields"]["message"] == "started thread")
        .and_then(|event| event["fields"]["thread"].as_str())
        .unwrap_or_else(|| panic!("no `started thread` event:\n{stderr}"))
        .to_owned();
    assert!(
        events.iter().any(
            |event| event["fields"]["message"] == "archived thread" && event["fields"]["thread"] == thread.as_str()
        ),
        "{stderr}"
    );
    assert_eq!(rollouts(rig.home.path(), "sessions", &thread), Vec::<PathBuf>::new());
    assert_eq!(
        rollouts(rig.home.path(), "archived_sessions", &thread).len(),
        1,
        "Codex moved the thread to its archived ones"
    );
}

#[tokio::test]
async fn keep_thread_leaves_the_thread_where_codex_lists_it() {
    let script = ModelScript::new().call("uppercase", json!({"text": "hello bridge"}));
    let Some(rig) = Rig::start("keep_thread_leaves_the_thread", script).await else {
        return;
    };

    let out = send_uppercase(&rig, &["--keep-thread"], None).await;

    let stderr = text(&out.stderr);
    let thread = stderr
        .lines()
        .find_map(|line| line.strip_prefix("skillbridge send: thread "))
        .and_then(|rest| rest.strip_suffix(" kept"))
        .unwrap_or_else(|| panic!("send names the thread it kept:\n{stderr}"));
    assert_eq!(rollouts(rig.home.path(), "sessions", thread).len(), 1, "{stderr}");
    assert_eq!(
        rollouts(rig.home.path(), "archived_sessions", thread),
        Vec::<PathBuf>::new()
    );
    assert!(!stderr.contains("archived thread"), "{stderr}");
}

/// A running `skillbridge serve --app-server`, its stderr collected, its first `session` line read.
struct Serve {
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
    session: String,
}

impl Serve {
    async fn start(rig: &Rig, extra: &[&str]) -> Self {
        let mut args = vec![
            "serve",
            "--app-server",
            rig.codex(),
            "--cwd",
            rig.workdir(),
            "--no-admin",
        ];
        args.extend_from_slice(extra);
        let mut command = rig.skillbridge(&args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, stdout.next_line())
            .await
            .expect("serve prints its session")
            .unwrap()
            .unwrap_or_default();
        let session = line
            .strip_prefix("session ")
            .unwrap_or_else(|| panic!("expected `session <id>`, got {line:?}"))
            .to_owned();
        Self { child, stderr, session }
    }

    /// The one `codex app-server` child of serve.
    fn codex_pid(&self) -> u32 {
        let pid = self.child.id().unwrap();
        let mut children = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let listed = std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
            children.extend(listed.split_whitespace().map(|child| child.parse::<u32>().unwrap()));
        }
        assert_eq!(children.len(), 1, "serve should have one child, codex: {children:?}");
        children[0]
    }

    async fn exit(mut self) -> (ExitStatus, String) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("serve exits")
            .unwrap();
        (status, self.stderr.await.unwrap())
    }
}

#[tokio::test]
async fn a_toolset_limits_what_codex_shows_the_model_and_a_call_outside_it_never_runs() {
    let script = ModelScript::new()
        .call("uppercase", json!({"text": "shown"}))
        .call("note_save", json!({"key": "k", "text": "not shown"}));
    let Some(rig) = Rig::start("a_toolset_limits_what_codex_shows_the_model", script).await else {
        return;
    };

    let out = output(rig.skillbridge(&[
        "send",
        "--app-server",
        rig.codex(),
        "--cwd",
        rig.workdir(),
        "--tools",
        "text",
        "--read-only",
        "Uppercase 'shown' and save a note.",
    ]))
    .await;

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let requests = rig.model.requests();
    let mut shown: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .filter(|name| ["uppercase", "slugify", "word_count", "note_save", "current_time"].contains(name))
        .collect();
    shown.sort_unstable();
    assert_eq!(
        shown,
        ["slugify", "uppercase", "word_count"],
        "what the model was shown"
    );
    let outputs = requests
        .iter()
        .map(tool_outputs)
        .find(|outputs| !outputs.is_empty())
        .expect("the tool outputs reached the model");
    assert_eq!(outputs[0], ("call_0_0".to_owned(), "SHOWN".to_owned()));
    // Codex 0.169 refuses a call to a tool it did not declare before it reaches the bridge (whose own check,
    // "not offered in this session", is the second line: tests/toolsets.rs and serve_cli.rs).
    assert_eq!(
        outputs[1],
        ("call_0_1".to_owned(), "unsupported call: note_save".to_owned())
    );
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

fn running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn serve_exits_one_and_says_why_when_its_codex_is_killed() {
    let Some(rig) = Rig::start("serve_exits_one_and_says_why", ModelScript::new()).await else {
        return;
    };
    let serve = Serve::start(&rig, &[]).await;
    assert!(!serve.session.is_empty());

    signal(serve.codex_pid(), "KILL");

    let (status, stderr) = serve.exit().await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the app-server upstream stopped: codex app-server exited") && stderr.contains("SIGKILL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_terminates_its_codex_on_sigterm() {
    let Some(rig) = Rig::start("serve_terminates_its_codex_on_sigterm", ModelScript::new()).await else {
        return;
    };
    let serve = Serve::start(&rig, &[]).await;
    let codex = serve.codex_pid();

    signal(serve.child.id().unwrap(), "TERM");

    let (status, stderr) = serve.exit().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!running(codex), "codex app-server {codex} outlived serve");
}

#[tokio::test]
async fn serve_delete_on_exit_archives_its_threads() {
    let Some(rig) = Rig::start("serve_delete_on_exit_archives_its_threads", ModelScript::new()).await else {
        return;
    };
    let serve = Serve::start(&rig, &["--delete-on-exit", "--prompt", "Say hello."]).await;
    let thread = serve.session.clone();
    let recorded = async {
        while rollouts(rig.home.path(), "sessions", &thread).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, recorded)
        .await
        .expect("Codex records the thread");

    signal(serve.child.id().unwrap(), "TERM");

    let (status, stderr) = serve.exit().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(rollouts(rig.home.path(), "sessions", &thread).is_empty(), "{stderr}");
    assert_eq!(
        rollouts(rig.home.path(), "archived_sessions", &thread).len(),
        1,
        "{stderr}"
    );
}

#[tokio::test]
async fn app_server_usage_errors_exit_two_and_a_missing_codex_exits_one() {
    for (args, says) in [
        (
            &["serve", "--app-server", "--session", "abc"][..],
            "--session cannot be used with --app-server",
        ),
        (
            &["serve", "--app-server", "--all-sessions"][..],
            "--all-sessions cannot be used with --app-server",
        ),
        (&["serve", "--restart"][..], "--restart"),
        (&["send", "--app-server"][..], "prompt"),
    ] {
        let out = output(skillbridge(args)).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    let missing = std::env::temp_dir().join("skillbridge-no-such-dir/codex");
    let out = output(skillbridge(&["send", "--app-server", missing.to_str().unwrap(), "hi"])).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not start") && stderr.contains("--app-server PATH"),
        "{stderr}"
    );
}
