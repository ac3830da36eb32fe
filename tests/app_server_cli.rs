//! `serve --app-server` and `send --app-server` in-process: the [`Bridge`] the CLI builds for them (an
//! [`AppServerUpstream`] running the given Codex with the thread's cwd, `--restart`'s [`RestartPolicy`], the admin
//! endpoint, the grace period), driven as `serve` ([`Bridge::start`], [`Bridge::run`]) and `send`
//! ([`Bridge::send`] interrupted like Ctrl-C, then [`Bridge::shutdown`]) drive it, with the REAL
//! `codex app-server` (0.169.0) offline against a scripted model, each test in its own CODEX_HOME.
//! Needs `scripts/install-codex.sh` (or `SKILLBRIDGE_CODEX_BIN`); `SKILLBRIDGE_SKIP_CODEX=1` skips.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use skillbridge::skill::Catalog;
use skillbridge::upstream::app_server::{AppServerCommand, ChildState, RestartPolicy, ThreadStartParams};
use skillbridge::upstream::{AppServerUpstream, Upstream};
use skillbridge::{Bridge, BridgeError, SkillContext, SkillError, TurnEnd, skill};
use skillbridge_doubles::model::{CodexHome, ModelScript, ScriptedModel, require_codex, tool_outputs};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Upper bound of every wait; only reached when something is broken.
const WAIT: Duration = Duration::from_secs(30);

/// Uppercases a text.
#[skill]
fn shout(
    /// The text.
    text: String,
) -> String {
    text.to_uppercase()
}

static WAITER_STARTED: Notify = Notify::const_new();
static WAITER_CANCELLED: Notify = Notify::const_new();

/// Waits until its turn is interrupted.
#[skill]
async fn wait_for_interrupt(ctx: SkillContext) -> Result<String, SkillError> {
    WAITER_STARTED.notify_one();
    ctx.cancelled().await;
    WAITER_CANCELLED.notify_one();
    Err("stopped: the turn was interrupted".into())
}

static HANGER_STARTED: Notify = Notify::const_new();

/// Runs until it is cancelled.
#[skill]
async fn hang(ctx: SkillContext) -> Result<String, SkillError> {
    HANGER_STARTED.notify_one();
    ctx.cancelled().await;
    Err("stopped".into())
}

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

    /// The upstream of `--app-server <codex> --cwd <workdir>` with this rig's CODEX_HOME (and `--restart`).
    fn upstream(&self, restart: bool) -> AppServerUpstream {
        let command = AppServerCommand::new(&self.codex).codex_home(self.home.path());
        let upstream = AppServerUpstream::new(command).thread_options(ThreadStartParams::new(&self.workdir));
        if restart {
            upstream.restart(RestartPolicy::default())
        } else {
            upstream
        }
    }

    /// Starts serving as `skillbridge serve --app-server --admin 127.0.0.1:0 --grace 2s [--prompt ..]` does;
    /// returns the bridge and (a clone of) its upstream.
    async fn serve(&self, restart: bool, prompt: Option<&str>) -> (Bridge, AppServerUpstream) {
        let upstream = self.upstream(restart);
        let mut builder = Bridge::builder()
            .catalog(Catalog::from_registry().unwrap())
            .upstream(upstream.clone())
            .admin_addr("127.0.0.1:0".parse().unwrap())
            .grace(Duration::from_secs(2));
        if let Some(prompt) = prompt {
            builder = builder.prompt(prompt);
        }
        let bridge = builder.build().expect("valid settings");
        bridge.start().await.expect("serve starts");
        (bridge, upstream)
    }
}

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn wait_state(upstream: &AppServerUpstream, what: &str, done: impl Fn(&ChildState) -> bool) -> ChildState {
    let mut state = upstream.state();
    let waited = tokio::time::timeout(WAIT, async {
        state
            .wait_for(|state| done(state))
            .await
            .expect("the supervisor lives")
            .clone()
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}, last state {:?}", *state.borrow()))
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

fn running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn serve_answers_the_models_call_and_reports_ready_and_counted() {
    let script = ModelScript::new().call("shout", json!({"text": "hello bridge"}));
    let Some(rig) = Rig::start("serve_answers_the_models_call", script).await else {
        return;
    };

    let (serving, upstream) = rig.serve(false, Some("shout it")).await;

    assert_eq!(serving.sessions().len(), 1);
    let thread = serving.sessions()[0].id.clone();
    assert_eq!(serving.sessions()[0].upstream, "app-server");
    let requests = rig.model.wait_requests(2, WAIT).await.unwrap();
    assert_eq!(
        tool_outputs(&requests[1]),
        vec![("call_0_0".to_owned(), "HELLO BRIDGE".to_owned())],
        "the skill's output reached the model"
    );
    let admin = serving.admin_addr().await.unwrap();
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);
    let (_, sessions) = get(format!("http://{admin}/sessions")).await;
    assert!(sessions.contains(&thread), "{sessions}");
    let (_, metrics) = get(format!("http://{admin}/metrics")).await;
    assert!(
        metrics.contains(r#"skillbridge_calls_total{skill="shout",outcome="success"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("skillbridge_upstream_connected 1"), "{metrics}");

    let pid = upstream.state().borrow().pid.unwrap();
    assert!(running(pid));
    let report = serving.run(async {}).await;
    assert!(report.is_ok(), "{report:?}");
    assert!(!running(pid), "the codex app-server child {pid} outlived serve");
}

#[tokio::test]
async fn a_killed_child_ends_serve_with_the_reason() {
    let Some(rig) = Rig::start("a_killed_child_ends_serve", ModelScript::new()).await else {
        return;
    };
    let (serving, upstream) = rig.serve(false, None).await;
    assert!(serving.wait_connected(WAIT).await);
    let pid = upstream.state().borrow().pid.unwrap();

    kill(pid);

    let report = tokio::time::timeout(WAIT, serving.run(std::future::pending()))
        .await
        .expect("serve stops by itself when its child dies");
    let Err(BridgeError::UpstreamStopped { reason, .. }) = report else {
        panic!("expected the upstream to have stopped, got {report:?}");
    };
    assert!(
        reason.contains("codex app-server exited") && reason.contains("SIGKILL"),
        "{reason}"
    );
}

#[tokio::test]
async fn with_restart_a_killed_child_is_replaced_with_fresh_threads() {
    let script = ModelScript::new().call("shout", json!({"text": "back again"}));
    let Some(rig) = Rig::start("with_restart_a_killed_child_is_replaced", script).await else {
        return;
    };
    let (serving, upstream) = rig.serve(true, None).await;
    let first = wait_state(&upstream, "first child up", |state| state.up).await;
    let admin = serving.admin_addr().await.unwrap();
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);

    kill(first.pid.unwrap());

    let second = wait_state(&upstream, "restarted child up", |state| {
        state.generation == 2 && state.up
    })
    .await;
    assert_ne!(second.pid, first.pid);
    assert_eq!(second.threads.len(), 1);
    assert_ne!(second.threads, first.threads, "a restarted child gets fresh threads");
    let exit = second.last_exit.expect("the first child's exit is reported");
    assert!(exit.to_string().contains("SIGKILL"), "{exit}");
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);
    assert_eq!(serving.health().reconnects(), 1);
    let (_, sessions) = get(format!("http://{admin}/sessions")).await;
    assert!(sessions.contains(&second.threads[0]), "{sessions}");

    // The new child serves: a turn in its thread gets its tool call answered.
    Upstream::start_turn(&upstream, &second.threads[0], "shout")
        .await
        .unwrap();
    let requests = rig.model.wait_requests(2, WAIT).await.unwrap();
    assert_eq!(
        tool_outputs(&requests[1]),
        vec![("call_0_0".to_owned(), "BACK AGAIN".to_owned())]
    );

    let report = serving.run(async {}).await;
    assert!(report.is_ok(), "{report:?}");
    for pid in [first.pid.unwrap(), second.pid.unwrap()] {
        assert!(!running(pid), "the codex app-server child {pid} outlived serve");
    }
}

#[tokio::test]
async fn send_interrupted_cancels_the_running_skill() {
    let script = ModelScript::new().call("wait_for_interrupt", json!({}));
    let Some(rig) = Rig::start("send_interrupted_cancels_the_running_skill", script).await else {
        return;
    };
    // As `skillbridge send --app-server <codex> --cwd <workdir> --timeout 30s wait` builds it.
    let bridge = Bridge::builder()
        .catalog(Catalog::from_registry().unwrap())
        .upstream(rig.upstream(false))
        .grace(Duration::from_secs(5))
        .build()
        .unwrap();
    // The interrupt (Ctrl-C in the CLI) comes once the skill runs.
    let interrupt = CancellationToken::new();
    tokio::spawn({
        let interrupt = interrupt.clone();
        async move {
            WAITER_STARTED.notified().await;
            interrupt.cancel();
        }
    });

    let outcome = bridge.send("wait").timeout(WAIT).interrupt_on(interrupt).await;
    bridge.shutdown().await;
    let outcome = outcome.unwrap();

    assert_eq!(outcome.end, TurnEnd::Interrupted);
    tokio::time::timeout(WAIT, WAITER_CANCELLED.notified())
        .await
        .expect("the skill's cancellation token never fired");
}

#[tokio::test]
async fn send_ends_with_the_reason_when_its_codex_is_killed_mid_turn() {
    let script = ModelScript::new().call("hang", json!({}));
    let Some(rig) = Rig::start("send_ends_with_the_reason_when_its_codex_is_killed", script).await else {
        return;
    };
    let upstream = rig.upstream(false);
    let bridge = Bridge::builder()
        .catalog(Catalog::from_registry().unwrap())
        .upstream(upstream.clone())
        .grace(Duration::from_millis(100))
        .build()
        .unwrap();
    let turn = tokio::spawn({
        let bridge = bridge.clone();
        async move { bridge.send("hang").timeout(WAIT).await }
    });
    tokio::time::timeout(WAIT, HANGER_STARTED.notified())
        .await
        .expect("the skill never started");

    kill(upstream.state().borrow().pid.unwrap());

    let outcome = tokio::time::timeout(WAIT, turn)
        .await
        .expect("the turn's wait ends when the child dies")
        .unwrap();
    let Err(BridgeError::UpstreamStopped { reason, .. }) = outcome else {
        panic!("expected the upstream to have stopped, got {outcome:?}");
    };
    assert!(
        reason.contains("codex app-server exited") && reason.contains("SIGKILL"),
        "{reason}"
    );
    bridge.shutdown().await;
}
