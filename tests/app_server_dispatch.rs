//! The whole app-server path with the REAL `codex app-server` (0.169.0) offline: `#[skill]` functions in a
//! [`Catalog`], announced as `dynamicTools`, called by the scripted model, run by a [`Bridge`] serving an
//! [`AppServerUpstream`] and answered back. Needs `scripts/install-codex.sh` (or `SKILLBRIDGE_CODEX_BIN`);
//! `SKILLBRIDGE_SKIP_CODEX=1` skips.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use skillbridge::skill::{Catalog, SkillError};
use skillbridge::upstream::AppServerUpstream;
use skillbridge::upstream::app_server::{AppServerCommand, ThreadStartParams};
use skillbridge::{Bridge, SkillContext, TurnEnd, TurnReply, skill};
use skillbridge_doubles::model::{CodexHome, ModelScript, ScriptedModel, codex_rewrite, require_codex, tool_outputs};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const TURN_TIMEOUT: Duration = Duration::from_secs(30);

/// Uppercases a text.
#[skill]
fn shout(
    /// The text.
    text: String,
) -> String {
    text.to_uppercase()
}

/// The weather forecast for a city.
#[skill]
fn forecast(city: String, days: Option<u32>) -> Result<String, SkillError> {
    Err(format!("no forecast for {city} ({} days): unknown city", days.unwrap_or(1)).into())
}

/// A temperature scale.
#[derive(Deserialize, JsonSchema)]
enum Scale {
    Celsius,
    Fahrenheit,
}

/// Where the readings were taken.
#[derive(Deserialize, JsonSchema)]
struct Station {
    /// The station name.
    name: String,
    /// The height above sea level, in metres.
    altitude: Option<u16>,
}

/// Averages temperature readings.
#[skill]
fn average(station: Station, scale: Scale, readings: Vec<f64>) -> String {
    let unit = match scale {
        Scale::Celsius => "C",
        Scale::Fahrenheit => "F",
    };
    let mean = readings.iter().sum::<f64>() / readings.len().max(1) as f64;
    match station.altitude {
        Some(altitude) => format!("{} ({altitude} m): {mean:.1} {unit}", station.name),
        None => format!("{}: {mean:.1} {unit}", station.name),
    }
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

struct Rig {
    bridge: Bridge,
    model: ScriptedModel,
    catalog: Catalog,
    _home: CodexHome,
}

impl Rig {
    /// A started bridge serving the catalog in one thread of a real `codex app-server`.
    async fn start(test: &str, script: ModelScript) -> Option<Self> {
        let codex = require_codex(test)?;
        let model = ScriptedModel::start(script).await;
        let home = CodexHome::new(&model.base_url()).unwrap();
        let workdir = home.path().join("work");
        std::fs::create_dir(&workdir).unwrap();
        let catalog = Catalog::from_registry().unwrap();
        let upstream = AppServerUpstream::new(AppServerCommand::new(codex).codex_home(home.path()))
            .thread_options(ThreadStartParams::new(&workdir));
        let bridge = Bridge::builder()
            .catalog(catalog.clone())
            .upstream(upstream)
            .build()
            .unwrap();
        bridge.start().await.unwrap();
        Some(Self {
            bridge,
            model,
            catalog,
            _home: home,
        })
    }

    /// Sends `prompt` in the bridge's thread and waits for the turn to end.
    async fn run_turn(&self, prompt: &str) -> TurnReply {
        self.bridge.send(prompt).timeout(TURN_TIMEOUT).await.unwrap()
    }

    fn outputs_seen_by_model(&self) -> Vec<(String, String)> {
        self.model
            .requests()
            .iter()
            .map(tool_outputs)
            .find(|outputs| !outputs.is_empty())
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn the_model_is_shown_every_skill_of_the_catalog_with_its_schema() {
    let Some(rig) = Rig::start("the_model_is_shown_every_skill", ModelScript::new()).await else {
        return;
    };

    let outcome = rig.run_turn("just answer").await;
    assert_eq!(outcome.end, TurnEnd::Completed);

    let requests = rig.model.requests();
    let shown = requests[0]["tools"].as_array().expect("the model request lists tools");
    assert_eq!(rig.catalog.len(), 4);
    for skill in rig.catalog.iter() {
        let tool = shown
            .iter()
            .find(|tool| tool["name"] == skill.name())
            .unwrap_or_else(|| panic!("the model was not shown the skill `{}`", skill.name()));
        assert_eq!(tool["type"], "function");
        assert_eq!(tool["description"], skill.description());
        assert_eq!(
            tool["parameters"],
            codex_rewrite(skill.input_schema()),
            "the schema of `{}` (we sent {})",
            skill.name(),
            skill.input_schema()
        );
    }
}

#[tokio::test]
async fn a_skill_called_by_the_model_gets_its_arguments_and_its_output_reaches_the_model() {
    let script = ModelScript::new().call(
        "average",
        json!({"station": {"name": "Zugspitze", "altitude": 2962}, "scale": "Celsius", "readings": [-3.0, -5.0, -4.0]}),
    );
    let Some(rig) = Rig::start("a_skill_called_by_the_model", script).await else {
        return;
    };

    let outcome = rig.run_turn("average these").await;

    assert_eq!(outcome.reply.as_deref(), Some("Tool said: Zugspitze (2962 m): -4.0 C"));
    assert_eq!(
        rig.outputs_seen_by_model(),
        vec![("call_0_0".to_owned(), "Zugspitze (2962 m): -4.0 C".to_owned())]
    );
}

#[tokio::test]
async fn a_failing_skill_and_bad_arguments_both_reach_the_model_as_explanations() {
    let script = ModelScript::new()
        .call("forecast", json!({"city": "Atlantis", "days": 3}))
        .call("shout", json!({"text": 42}));
    let Some(rig) = Rig::start("a_failing_skill_and_bad_arguments", script).await else {
        return;
    };

    let outcome = rig.run_turn("try both").await;

    let outputs = rig.outputs_seen_by_model();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert_eq!(outputs[0].1, "no forecast for Atlantis (3 days): unknown city");
    let bad_arguments = &outputs[1].1;
    assert!(
        bad_arguments.contains("shout") && bad_arguments.contains("text") && bad_arguments.contains("42"),
        "the model should learn which argument was wrong and why: {bad_arguments}"
    );
    let reply = outcome.reply.unwrap();
    assert!(
        reply.starts_with("Tool said: no forecast for Atlantis") && reply.contains(&outputs[1].1),
        "{reply}"
    );
}

#[tokio::test]
async fn interrupting_a_turn_cancels_the_running_skill() {
    let script = ModelScript::new().call("wait_for_interrupt", json!({}));
    let Some(rig) = Rig::start("interrupting_a_turn_cancels_the_running_skill", script).await else {
        return;
    };
    let interrupt = CancellationToken::new();
    let turn = tokio::spawn({
        let (bridge, interrupt) = (rig.bridge.clone(), interrupt.clone());
        async move { bridge.send("wait").timeout(TURN_TIMEOUT).interrupt_on(interrupt).await }
    });
    tokio::time::timeout(TURN_TIMEOUT, WAITER_STARTED.notified())
        .await
        .expect("the skill never started");

    interrupt.cancel();

    let outcome = tokio::time::timeout(TURN_TIMEOUT, turn)
        .await
        .expect("the interrupted turn never ended")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.end, TurnEnd::Interrupted);
    tokio::time::timeout(TURN_TIMEOUT, WAITER_CANCELLED.notified())
        .await
        .expect("the skill's cancellation token never fired");
}
