//! `serve --app-server` and `send --app-server` in-process, through the functions the CLI calls (settings
//! resolution, [`AppServerRuntime::from_settings`], [`Serving::start_with`], [`send_with`]), with the REAL
//! `codex app-server` (0.169.0) offline against a scripted model, each test in its own CODEX_HOME.
//! Needs `scripts/install-codex.sh` (or `SKILLBRIDGE_CODEX_BIN`); `SKILLBRIDGE_SKIP_CODEX=1` skips.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use skillbridge::cli::send::{SendArgs, TurnEnd, send_with};
use skillbridge::cli::serve::{AppServerRuntime, BridgeSettings, ServeArgs, Serving, UpstreamRuntime};
use skillbridge::cli::settings::{AppServerArgs, SendSettings, ServeSettings, SessionArgs};
use skillbridge::skill::Catalog;
use skillbridge::upstream::app_server::ChildState;
use skillbridge::{SkillContext, SkillError, skill};
use skillbridge_doubles::model::{CodexHome, ModelScript, ScriptedModel, require_codex, tool_outputs};
use tokio::sync::Notify;

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

    fn app_server_args(&self) -> AppServerArgs {
        AppServerArgs {
            app_server: Some(Some(self.codex.clone())),
            codex_home: None,
        }
    }

    /// The environment the CLI would read: only CODEX_HOME.
    fn env(&self) -> impl Fn(&str) -> Option<String> + use<> {
        let home = self.home.path().to_string_lossy().into_owned();
        move |name| (name == "CODEX_HOME").then(|| home.clone())
    }

    fn serve_args(&self, restart: bool) -> ServeArgs {
        ServeArgs {
            app_server: self.app_server_args(),
            restart,
            session: SessionArgs {
                cwd: Some(self.workdir.clone()),
                ..SessionArgs::default()
            },
            admin: Some("127.0.0.1:0".parse().unwrap()),
            grace: Some(Duration::from_secs(2)),
            ..ServeArgs::default()
        }
    }

    /// Starts serving as `skillbridge serve` does; returns the bridge and its runtime.
    async fn serve(&self, args: &ServeArgs) -> (Serving, Arc<AppServerRuntime>) {
        let settings = ServeSettings::resolve(args, &self.env()).expect("valid settings");
        let runtime = Arc::new(AppServerRuntime::from_settings(&settings).unwrap());
        let catalog = Catalog::from_registry().unwrap();
        let serving = Serving::start_with(runtime.clone(), BridgeSettings::from(&settings), catalog)
            .await
            .expect("serve starts");
        (serving, runtime)
    }
}

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn wait_state(runtime: &AppServerRuntime, what: &str, done: impl Fn(&ChildState) -> bool) -> ChildState {
    let mut state = runtime.supervisor().state();
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
    let args = ServeArgs {
        prompt: Some("shout it".into()),
        ..rig.serve_args(false)
    };

    let (serving, runtime) = rig.serve(&args).await;

    assert_eq!(serving.sessions().len(), 1);
    let thread = serving.sessions()[0].id.clone();
    assert_eq!(serving.sessions()[0].upstream, "app-server");
    let requests = rig.model.wait_requests(2, WAIT).await.unwrap();
    assert_eq!(
        tool_outputs(&requests[1]),
        vec![("call_0".to_owned(), "HELLO BRIDGE".to_owned())],
        "the skill's output reached the model"
    );
    let admin = serving.admin_addr().unwrap();
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);
    let (_, sessions) = get(format!("http://{admin}/sessions")).await;
    assert!(sessions.contains(&thread), "{sessions}");
    let (_, metrics) = get(format!("http://{admin}/metrics")).await;
    assert!(
        metrics.contains(r#"skillbridge_calls_total{skill="shout",outcome="success"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("skillbridge_upstream_connected 1"), "{metrics}");

    let pid = runtime.supervisor().state().borrow().pid.unwrap();
    assert!(running(pid));
    let report = serving.run_until(async {}).await;
    assert!(!report.upstream_ended);
    assert!(!running(pid), "the codex app-server child {pid} outlived serve");
}

#[tokio::test]
async fn a_killed_child_ends_serve_with_the_reason() {
    let Some(rig) = Rig::start("a_killed_child_ends_serve", ModelScript::new()).await else {
        return;
    };
    let (serving, runtime) = rig.serve(&rig.serve_args(false)).await;
    assert!(serving.wait_connected(WAIT).await);
    let pid = runtime.supervisor().state().borrow().pid.unwrap();

    kill(pid);

    let report = tokio::time::timeout(WAIT, serving.run_until(std::future::pending()))
        .await
        .expect("serve stops by itself when its child dies");
    assert!(report.upstream_ended);
    let reason = report.upstream_error.unwrap_or_default();
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
    let (serving, runtime) = rig.serve(&rig.serve_args(true)).await;
    let first = wait_state(&runtime, "first child up", |state| state.up).await;
    let admin = serving.admin_addr().unwrap();
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);

    kill(first.pid.unwrap());

    let second = wait_state(&runtime, "restarted child up", |state| {
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
    runtime.send_prompt(&second.threads[0], "shout").await.unwrap();
    let requests = rig.model.wait_requests(2, WAIT).await.unwrap();
    assert_eq!(
        tool_outputs(&requests[1]),
        vec![("call_0".to_owned(), "BACK AGAIN".to_owned())]
    );

    let report = serving.run_until(async {}).await;
    assert!(!report.upstream_ended);
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
    let args = SendArgs {
        prompt: "wait".into(),
        app_server: rig.app_server_args(),
        session: SessionArgs {
            cwd: Some(rig.workdir.clone()),
            ..SessionArgs::default()
        },
        timeout: Some(WAIT),
        ..SendArgs::default()
    };
    let settings = SendSettings::resolve(&args, &rig.env()).unwrap();
    let catalog = Catalog::from_registry().unwrap();

    // The interrupt (Ctrl-C in the CLI) comes once the skill runs.
    let outcome = send_with(settings, catalog, WAITER_STARTED.notified()).await.unwrap();

    assert_eq!(outcome.end, TurnEnd::Interrupted);
    tokio::time::timeout(WAIT, WAITER_CANCELLED.notified())
        .await
        .expect("the skill's cancellation token never fired");
}
