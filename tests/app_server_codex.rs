//! The app-server upstream against the REAL `codex app-server` (0.169.0), offline: Codex talks to a scripted
//! Responses-API model on loopback (`skillbridge_doubles::model`), and a test handler stands in for the
//! dispatcher: it is the [`CallSink`] of the event loop's [`Feed`] and answers through the child's
//! [`PendingAnswers`]. Needs `scripts/install-codex.sh` (or `SKILLBRIDGE_CODEX_BIN`); `SKILLBRIDGE_SKIP_CODEX=1` skips.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use skillbridge::ToolResult;
use skillbridge::skill;
use skillbridge::skill::{Catalog, RuntimeSkill, SkillContext, ToolFlavor};
use skillbridge::telemetry::{BridgeHealth, CallSource};
use skillbridge::upstream::app_server::{
    AppServer, AppServerCommand, AppServerError, PendingAnswers, ThreadStartParams,
};
use skillbridge::upstream::{AnswerOutcome, CallSink, Feed, Submitted, ToolCall, TurnOutcome, TurnStatus, TurnTracker};
use skillbridge_doubles::model::{CodexHome, ModelScript, ScriptedModel, require_codex, tool_outputs};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Generous bounds for a loop that takes ~100 ms: they only matter when something is broken.
const TURN_TIMEOUT: Duration = Duration::from_secs(30);
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

type Skill = Arc<dyn Fn(ToolCall, CancellationToken) -> BoxFuture<'static, ToolResult> + Send + Sync>;

/// Stands in for the dispatcher: runs `skill` for each call on its own task and answers through the child.
struct TestHandler {
    pending: Arc<PendingAnswers>,
    skill: Skill,
    calls: mpsc::UnboundedSender<ToolCall>,
    answers: mpsc::UnboundedSender<AnswerOutcome>,
    cancelled: mpsc::UnboundedSender<String>,
    turn_tokens: Mutex<HashMap<String, CancellationToken>>,
}

struct HandlerEvents {
    calls: mpsc::UnboundedReceiver<ToolCall>,
    answers: mpsc::UnboundedReceiver<AnswerOutcome>,
    cancelled: mpsc::UnboundedReceiver<String>,
}

impl CallSink for TestHandler {
    fn submit(&self, call: ToolCall, _source: CallSource) -> Submitted {
        let token = self
            .turn_tokens
            .lock()
            .unwrap()
            .entry(call.turn_id.clone().unwrap_or_default())
            .or_default()
            .clone();
        self.calls.send(call.clone()).unwrap();
        let (pending, skill, answers) = (self.pending.clone(), self.skill.clone(), self.answers.clone());
        tokio::spawn(async move {
            let result = skill(call.clone(), token).await;
            let _ = answers.send(pending.answer(&call, &result).await);
        });
        Submitted::Accepted
    }

    fn cancel_turn(&self, turn_id: &str) {
        if let Some(token) = self.turn_tokens.lock().unwrap().get(turn_id) {
            token.cancel();
        }
        let _ = self.cancelled.send(turn_id.to_owned());
    }
}

/// One real Codex wired to one scripted model, each with its own CODEX_HOME.
struct Rig {
    app: AppServer,
    turns: Arc<TurnTracker>,
    model: ScriptedModel,
    events: HandlerEvents,
    workdir: PathBuf,
    _home: CodexHome,
}

impl Rig {
    /// `None` when the real-Codex tests are skipped.
    async fn start(test: &str, script: ModelScript, skill: Skill) -> Option<Self> {
        let codex = require_codex(test)?;
        let model = ScriptedModel::start(script).await;
        let home = CodexHome::new(&model.base_url()).unwrap();
        let app = AppServer::start(AppServerCommand::new(codex).codex_home(home.path()))
            .await
            .unwrap();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let (cancelled_tx, cancelled) = mpsc::unbounded_channel();
        let handler = TestHandler {
            pending: app.answers().clone(),
            skill,
            calls: calls_tx,
            answers: answers_tx,
            cancelled: cancelled_tx,
            turn_tokens: Mutex::new(HashMap::new()),
        };
        let turns = Arc::new(TurnTracker::new());
        let feed = Feed::new(Arc::new(handler), Arc::new(BridgeHealth::new()), turns.clone());
        app.start_event_loop(feed).unwrap();
        let workdir = home.path().join("work");
        std::fs::create_dir(&workdir).unwrap();
        Some(Self {
            app,
            turns,
            model,
            events: HandlerEvents {
                calls,
                answers,
                cancelled,
            },
            workdir,
            _home: home,
        })
    }

    async fn thread(&self, tools: Vec<Value>) -> String {
        let tools = tools
            .into_iter()
            .map(|tool| serde_json::from_value(tool).expect("a function tool"))
            .collect();
        let options = ThreadStartParams::new(&self.workdir).dynamic_tools(tools);
        self.app.start_thread(&options).await.unwrap()
    }

    /// Starts a turn on a new thread with `tools` and waits for it to complete.
    async fn run_turn(&self, tools: Vec<Value>, prompt: &str) -> TurnOutcome {
        let thread = self.thread(tools).await;
        let turn = self.app.start_turn(&thread, prompt).await.unwrap();
        self.wait_turn(&thread, &turn).await.unwrap()
    }

    /// Waits for a turn to complete, as a bridge does: the turn tracker's wait, ended early by the child's exit.
    async fn wait_turn(&self, thread: &str, turn: &str) -> Result<TurnOutcome, AppServerError> {
        tokio::select! {
            outcome = self.turns.wait(thread, turn, TURN_TIMEOUT) => outcome.ok_or_else(|| AppServerError::TurnTimeout {
                turn_id: turn.to_owned(),
                after: TURN_TIMEOUT,
            }),
            report = self.app.exited() => Err(AppServerError::Exited(report)),
        }
    }
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(EVENT_TIMEOUT, receiver.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {EVENT_TIMEOUT:?}"))
        .unwrap_or_else(|| panic!("{what} channel closed"))
}

fn tool(name: &str, description: &str, schema: Value) -> Value {
    json!({"type": "function", "name": name, "description": description, "inputSchema": schema})
}

fn uppercase_tool() -> Value {
    tool(
        "uppercase",
        "Uppercase a text.",
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
    )
}

fn skill(run: impl Fn(&ToolCall) -> ToolResult + Send + Sync + 'static) -> Skill {
    let run = Arc::new(run);
    Arc::new(move |call, _token| {
        let result = run(&call);
        Box::pin(async move { result })
    })
}

fn uppercase_skill() -> Skill {
    skill(|call| ToolResult::text(call.arguments["text"].as_str().unwrap_or_default().to_uppercase()))
}

/// The `function_call_output`s in the model request that carried them.
fn outputs_seen_by_model(requests: &[Value]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(tool_outputs)
        .find(|outputs| !outputs.is_empty())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_tool_call_reaches_the_handler_and_its_output_reaches_the_model() {
    let script = ModelScript::new().call("uppercase", json!({"text": "hello bridge"}));
    let Some(mut rig) = Rig::start("a_tool_call_reaches_the_handler", script, uppercase_skill()).await else {
        return;
    };

    let outcome = rig.run_turn(vec![uppercase_tool()], "uppercase it").await;

    let call = next(&mut rig.events.calls, "tool call").await;
    assert_eq!(call.tool, "uppercase");
    assert_eq!(call.call_id, "call_0_0");
    assert_eq!(call.arguments, json!({"text": "hello bridge"}));
    assert_eq!(call.request_id, "0", "Codex numbers its requests from 0");
    assert_eq!(call.turn_id.as_deref(), Some(outcome.turn_id.as_str()));
    assert_eq!(next(&mut rig.events.answers, "answer").await, AnswerOutcome::Delivered);

    assert_eq!(outcome.status, TurnStatus::Completed);
    assert_eq!(outcome.final_reply.as_deref(), Some("Tool said: HELLO BRIDGE"));
    let requests = rig.model.requests();
    assert_eq!(
        outputs_seen_by_model(&requests),
        vec![("call_0_0".to_owned(), "HELLO BRIDGE".to_owned())]
    );
}

#[tokio::test]
async fn a_failed_answer_reaches_the_model() {
    let script = ModelScript::new().call("forecast", json!({"city": "Atlantis"}));
    let failing =
        skill(|call| ToolResult::failure(format!("no such city: {}", call.arguments["city"].as_str().unwrap())));
    let Some(mut rig) = Rig::start("a_failed_answer_reaches_the_model", script, failing).await else {
        return;
    };
    let forecast = tool(
        "forecast",
        "Weather forecast for a city.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    );

    let outcome = rig.run_turn(vec![forecast], "weather in Atlantis?").await;

    assert_eq!(next(&mut rig.events.answers, "answer").await, AnswerOutcome::Delivered);
    assert_eq!(
        outcome.final_reply.as_deref(),
        Some("Tool said: no such city: Atlantis")
    );
    // Codex forwards only the text: the failure must be explained in it.
    assert_eq!(
        outputs_seen_by_model(&rig.model.requests()),
        vec![("call_0_0".to_owned(), "no such city: Atlantis".to_owned())]
    );
}

/// A rig skill that runs each call through `catalog`, as the bridge would.
fn through(catalog: &Catalog) -> Skill {
    let catalog = catalog.clone();
    Arc::new(move |call, _token| {
        let catalog = catalog.clone();
        Box::pin(async move {
            let ctx = SkillContext::detached(&call.tool);
            catalog.invoke(&call.tool, call.arguments, ctx).await
        })
    })
}

/// Lists items, 1 to 50 of them.
#[skill]
fn bounded_list(
    /// How many items.
    #[schemars(range(min = 1, max = 50))]
    limit: u32,
) -> String {
    format!("{limit} items")
}

#[tokio::test]
async fn a_bound_codex_hides_from_the_model_is_enforced_and_the_model_reads_why() {
    let script = ModelScript::new().call("bounded_list", json!({"limit": 80}));
    let catalog = Catalog::from_registry().expect("the test skills form a catalog");
    let through_catalog = through(&catalog);
    let Some(mut rig) = Rig::start("a_bound_codex_hides", script, through_catalog).await else {
        return;
    };
    let tool = catalog.get("bounded_list").unwrap().dynamic_tool(ToolFlavor::AppServer);

    let outcome = rig.run_turn(vec![tool], "list 80 items").await;

    assert_eq!(next(&mut rig.events.answers, "answer").await, AnswerOutcome::Delivered);
    let requests = rig.model.requests();
    // Codex dropped the bound from what the model saw ...
    let shown = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bounded_list")
        .unwrap();
    assert!(
        shown["parameters"]["properties"]["limit"].get("maximum").is_none(),
        "{shown}"
    );
    // ... so the skill side refused the call, and the model reads why.
    let refusal = "invalid arguments for `bounded_list`: limit: 80 is greater than the maximum of 50";
    assert_eq!(
        outputs_seen_by_model(&requests),
        vec![("call_0_0".to_owned(), refusal.to_owned())]
    );
    assert_eq!(
        outcome.final_reply.as_deref(),
        Some(format!("Tool said: {refusal}").as_str())
    );
}

#[tokio::test]
async fn a_run_time_skill_is_announced_called_and_checked_like_a_macro_skill() {
    let script = ModelScript::new().call("ticket_lookup", json!({"ticket_id": "T-x"}));
    let lookup = RuntimeSkill::builder("ticket_lookup", "Looks up a ticket by id.")
        .input_schema(json!({
            "type": "object",
            "properties": {"ticket_id": {"type": "string", "pattern": "^T-[0-9]+$"}},
            "required": ["ticket_id"],
        }))
        .handler(|arguments, _| async move { format!("ticket {} is open", arguments["ticket_id"]) })
        .build()
        .unwrap();
    let catalog = Catalog::builder().without_registry().skill(lookup).build().unwrap();
    let through_catalog = through(&catalog);
    let Some(mut rig) = Rig::start("a_run_time_skill", script, through_catalog).await else {
        return;
    };
    let tools = catalog.dynamic_tools(ToolFlavor::AppServer);

    rig.run_turn(tools, "look up ticket T-x").await;

    assert_eq!(next(&mut rig.events.answers, "answer").await, AnswerOutcome::Delivered);
    let requests = rig.model.requests();
    let shown = requests[0]["tools"].as_array().unwrap();
    assert!(shown.iter().any(|t| t["name"] == "ticket_lookup"), "{shown:?}");
    assert_eq!(
        outputs_seen_by_model(&requests),
        vec![(
            "call_0_0".to_owned(),
            "invalid arguments for `ticket_lookup`: ticket_id: \"T-x\" does not match \"^T-[0-9]+$\"".to_owned()
        )]
    );
}

#[tokio::test]
async fn two_calls_in_one_response_are_both_answered() {
    let script = ModelScript::new()
        .call("uppercase", json!({"text": "first"}))
        .call("count", json!({"text": "second"}));
    let both = skill(|call| {
        let text = call.arguments["text"].as_str().unwrap_or_default();
        match call.tool.as_str() {
            "uppercase" => ToolResult::text(text.to_uppercase()),
            _ => ToolResult::text(text.chars().count().to_string()),
        }
    });
    let Some(mut rig) = Rig::start("two_calls_in_one_response_are_both_answered", script, both).await else {
        return;
    };
    let count = tool(
        "count",
        "Count the characters of a text.",
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
    );

    let outcome = rig.run_turn(vec![uppercase_tool(), count], "do both").await;

    let mut calls = [
        next(&mut rig.events.calls, "first call").await,
        next(&mut rig.events.calls, "second call").await,
    ];
    calls.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    assert_eq!(
        (calls[0].tool.as_str(), &calls[0].arguments),
        ("uppercase", &json!({"text": "first"}))
    );
    assert_eq!(
        (calls[1].tool.as_str(), &calls[1].arguments),
        ("count", &json!({"text": "second"}))
    );
    assert_ne!(calls[0].request_id, calls[1].request_id);
    for _ in 0..2 {
        assert_eq!(next(&mut rig.events.answers, "answer").await, AnswerOutcome::Delivered);
    }
    assert_eq!(outcome.final_reply.as_deref(), Some("Tool said: FIRST | 6"));
}

/// What the model is shown for each tool: `(name, inputSchema we send, parameters the model sees)`, the
/// latter per tests/fixtures/SCHEMA-FINDINGS.md (observed through codex-manager; checked here directly), plus
/// the `bounds` case: Codex keeps only the keywords it knows, so every bound but `minItems` is dropped, a
/// `const` of any type becomes a string-typed `enum`, and an object without `properties` gets empty ones.
fn schema_cases() -> Vec<(&'static str, Value, Value)> {
    let plain = json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
    vec![
        ("plain", plain.clone(), plain),
        (
            "annotated",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Args", "type": "object",
                "properties": {"days": {"type": "integer", "format": "uint32", "minimum": 0},
                               "when": {"type": "string", "format": "date-time"}},
                "required": ["days"], "additionalProperties": false
            }),
            json!({
                "type": "object",
                "properties": {"days": {"type": "integer"}, "when": {"type": "string"}},
                "required": ["days"], "additionalProperties": false
            }),
        ),
        (
            "choices",
            json!({"type": "object", "properties": {
                "unit": {"type": "string", "enum": ["c", "f"]},
                "note": {"type": ["string", "null"]},
                "target": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "places": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
            }}),
            json!({"type": "object", "properties": {
                "unit": {"type": "string", "enum": ["c", "f"]},
                "note": {"type": ["string", "null"]},
                "target": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "places": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
            }}),
        ),
        (
            "referenced",
            json!({"type": "object", "properties": {"place": {"$ref": "#/$defs/Place"}},
                   "$defs": {"Place": {"type": "object", "properties": {"name": {"type": "string"}}}}}),
            json!({"type": "object", "properties": {"place": {"$ref": "#/$defs/Place"}},
                   "$defs": {"Place": {"type": "object", "properties": {"name": {"type": "string"}}}}}),
        ),
        (
            "bounds",
            json!({"type": "object", "required": ["a"], "description": "Root.", "properties": {
                "a": {"type": "integer", "minimum": 1, "maximum": 9, "exclusiveMaximum": 10, "multipleOf": 2, "default": 4},
                "s": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^x", "title": "S", "examples": ["x"]},
                "v": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3, "uniqueItems": true},
                "o": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
                "n": {"const": 3}
            }}),
            json!({"type": "object", "required": ["a"], "description": "Root.", "properties": {
                "a": {"type": "integer"},
                "s": {"type": "string"},
                "v": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                "o": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
                "n": {"type": "string", "enum": [3]}
            }}),
        ),
        (
            "tagged",
            json!({"type": "object", "properties": {"shape": {"oneOf": [
                {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}}},
                {"type": "object", "properties": {"kind": {"const": "square"}, "side": {"type": "number"}}}
            ]}}}),
            json!({"type": "object", "properties": {"shape": {"oneOf": [
                {"type": "object", "properties": {"kind": {"type": "string", "enum": ["circle"]}, "r": {"type": "number"}}},
                {"type": "object", "properties": {"kind": {"type": "string", "enum": ["square"]}, "side": {"type": "number"}}}
            ]}}}),
        ),
    ]
}

#[tokio::test]
async fn the_model_is_shown_every_declared_tool_with_our_schema_or_its_documented_rewrite() {
    let Some(rig) = Rig::start(
        "the_model_is_shown_every_declared_tool",
        ModelScript::new(),
        uppercase_skill(),
    )
    .await
    else {
        return;
    };
    let cases = schema_cases();
    let tools = cases
        .iter()
        .map(|(name, schema, _)| tool(name, &format!("The {name} tool."), schema.clone()))
        .collect();

    let outcome = rig.run_turn(tools, "just answer").await;
    assert_eq!(outcome.status, TurnStatus::Completed);

    let requests = rig.model.requests();
    let shown = requests[0]["tools"].as_array().expect("the model request lists tools");
    for (name, _, expected) in &cases {
        let tool = shown
            .iter()
            .find(|tool| tool["name"] == *name)
            .unwrap_or_else(|| panic!("the model was not shown `{name}`"));
        assert_eq!(tool["type"], "function", "{name}");
        assert_eq!(tool["description"], format!("The {name} tool."), "{name}");
        assert_eq!(tool["strict"], false, "{name}");
        assert_eq!(&tool["parameters"], expected, "parameters of `{name}`");
    }
}

#[tokio::test]
async fn a_child_that_exits_at_startup_is_reported_with_its_reason() {
    let Some(codex) = require_codex("a_child_that_exits_at_startup") else {
        return;
    };
    let home = CodexHome::new("http://127.0.0.1:9/v1").unwrap();
    let config = home.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.insert_str(0, "no_such_setting = 1\n");
    std::fs::write(&config, text).unwrap();

    let started = AppServer::start(
        AppServerCommand::new(codex)
            .codex_home(home.path())
            .arg("--strict-config"),
    )
    .await;

    let Err(AppServerError::Exited(report)) = started else {
        panic!("expected the exit to be reported, got {started:?}");
    };
    assert!(!report.success() && !report.killed_by_us, "{report:?}");
    assert!(report.reason().unwrap().contains("no_such_setting"), "{report:?}");
    assert!(report.to_string().contains("no_such_setting"), "{report}");
}

#[tokio::test]
async fn a_child_killed_while_serving_is_reported_and_ends_the_wait_for_a_turn() {
    let script = ModelScript::new().call("uppercase", json!({"text": "never answered"}));
    let stuck = Arc::new(
        |_call: ToolCall, token: CancellationToken| -> BoxFuture<'static, ToolResult> {
            Box::pin(async move {
                token.cancelled().await;
                ToolResult::failure("cancelled")
            })
        },
    );
    let Some(mut rig) = Rig::start("a_child_killed_while_serving", script, stuck).await else {
        return;
    };
    let thread = rig.thread(vec![uppercase_tool()]).await;
    let turn = rig.app.start_turn(&thread, "go").await.unwrap();
    next(&mut rig.events.calls, "tool call").await;

    let pid = rig.app.pid().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let waited = rig.wait_turn(&thread, &turn).await;
    let Err(AppServerError::Exited(report)) = waited else {
        panic!("expected the exit, got {waited:?}");
    };
    assert!(!report.success() && !report.killed_by_us, "{report:?}");
    assert_eq!(rig.app.exited().await, report);
    assert!(report.to_string().contains("exited"), "{report}");
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn shutdown_ends_the_child_gracefully() {
    let Some(rig) = Rig::start(
        "shutdown_ends_the_child_gracefully",
        ModelScript::new(),
        uppercase_skill(),
    )
    .await
    else {
        return;
    };
    let pid = rig.app.pid().unwrap();
    assert!(process_exists(pid));

    let started = Instant::now();
    let report = rig.app.shutdown(Duration::from_secs(10)).await;

    assert!(report.success(), "closing stdin should end codex cleanly: {report:?}");
    assert!(!report.killed_by_us);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown should not need the kill"
    );
    assert!(!process_exists(pid), "codex app-server {pid} is still running");
}

#[tokio::test]
async fn dropping_the_app_server_kills_the_child() {
    let Some(rig) = Rig::start(
        "dropping_the_app_server_kills_the_child",
        ModelScript::new(),
        uppercase_skill(),
    )
    .await
    else {
        return;
    };
    let pid = rig.app.pid().unwrap();
    let exit = rig.app.exit_watch();

    drop(rig);
    let report = tokio::time::timeout(EVENT_TIMEOUT, exit.exited())
        .await
        .expect("the child outlived its handle");

    assert!(report.killed_by_us, "{report:?}");
    assert!(!process_exists(pid), "codex app-server {pid} is still running");
}

#[tokio::test]
async fn interrupting_a_turn_cancels_its_running_call() {
    let script = ModelScript::new().call("uppercase", json!({"text": "slow"}));
    let waits_for_cancel = Arc::new(
        |_call: ToolCall, token: CancellationToken| -> BoxFuture<'static, ToolResult> {
            Box::pin(async move {
                token.cancelled().await;
                ToolResult::failure("cancelled: the turn was interrupted")
            })
        },
    );
    let Some(mut rig) = Rig::start("interrupting_a_turn_cancels_its_running_call", script, waits_for_cancel).await
    else {
        return;
    };
    let thread = rig.thread(vec![uppercase_tool()]).await;
    let turn = rig.app.start_turn(&thread, "go").await.unwrap();
    let call = next(&mut rig.events.calls, "tool call").await;

    rig.app.interrupt_turn(&thread, &turn).await.unwrap();

    let outcome = rig.wait_turn(&thread, &turn).await.unwrap();
    assert_eq!(outcome.status, TurnStatus::Interrupted);
    assert_eq!(next(&mut rig.events.cancelled, "turn cancellation").await, turn);
    assert_eq!(call.turn_id.as_deref(), Some(turn.as_str()));
    // The cancelled call still gets an answer attempt; Codex has usually resolved it by then.
    let answer = next(&mut rig.events.answers, "answer of the cancelled call").await;
    assert!(
        matches!(answer, AnswerOutcome::Delivered | AnswerOutcome::Rejected { .. }),
        "{answer:?}"
    );
}
