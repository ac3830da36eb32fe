//! Shared state: skills that take `State<T>` get the value supplied to the catalog or the bridge, on every path a
//! call takes (`Catalog::invoke`, a served session, a `send` turn); a state that was not supplied stops the
//! catalog and the bridge before any session is created, naming the skill, the parameter and the type.

mod bridge_support;
mod rerun_as_cli;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bridge_support::{WAIT, answer_success, answer_text, client, only_thread, send, start, upstream_of};
use serde_json::json;
use skillbridge::skill::{Catalog, CatalogError, SkillContext, States};
use skillbridge::{Bridge, BridgeError, State, skill};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::TurnScript;
use tokio_util::sync::CancellationToken;

/// A stand-in for a connection pool: it hands out numbered connections and counts them.
#[derive(Debug, Default)]
struct Pool {
    name: String,
    checked_out: AtomicUsize,
}

impl Pool {
    fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    fn connection(&self) -> String {
        let number = self.checked_out.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{}#{number}", self.name)
    }
}

/// An audit log, a second state type.
#[derive(Debug, Default)]
struct Audit(Mutex<Vec<String>>);

/// Runs a query on a pooled connection (a blocking skill).
#[skill]
fn pooled_query(
    /// The query.
    query: String,
    pool: State<Pool>,
) -> String {
    format!("{} ran {query}", pool.connection())
}

/// Runs a query and records it (an async skill with two states and the context).
#[skill]
async fn audited_query(query: String, audit: State<Audit>, ctx: SkillContext, pool: State<Pool>) -> String {
    let connection = pool.connection();
    audit.0.lock().unwrap().push(format!("{} {query}", ctx.tool));
    connection
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Search {
    /// Words to find.
    words: String,
}

/// Searches the audit log (a struct input next to a state).
#[skill]
async fn audit_search(#[skill(input)] search: Search, audit: State<Audit>) -> Vec<String> {
    let entries = audit.0.lock().unwrap();
    entries
        .iter()
        .filter(|entry| entry.contains(&search.words))
        .cloned()
        .collect()
}

/// The states every test supplies, and the pool inside them.
fn states() -> (States, State<Pool>, State<Audit>) {
    let pool = State::new(Pool::named("main"));
    let audit = State::new(Audit::default());
    let mut states = States::new();
    states.insert_state(pool.clone()).insert_state(audit.clone());
    (states, pool, audit)
}

#[tokio::test]
async fn skills_get_the_supplied_states_and_their_schemas_leave_them_out() {
    let (states, pool, audit) = states();
    let catalog = Catalog::from_registry_with(states).expect("every state is supplied");

    let pooled = catalog.get("pooled_query").unwrap();
    assert_eq!(
        pooled.input_schema(),
        &json!({"type": "object", "properties": {"query": {"type": "string", "description": "The query."}},
                "required": ["query"]})
    );
    let needs: Vec<_> = pooled
        .state_parameters()
        .iter()
        .map(|need| (need.parameter(), need.type_name()))
        .collect();
    assert_eq!(needs, [("pool", "skill_state::Pool")]);
    let audited = catalog.get("audited_query").unwrap();
    let needs: Vec<_> = audited.state_parameters().iter().map(|need| need.parameter()).collect();
    assert_eq!(needs, ["audit", "pool"]);
    assert_eq!(audited.parameters(), [("query", true)]);
    for tool in catalog.dynamic_tools(skillbridge::skill::ToolFlavor::CodexManager) {
        let properties = tool["inputSchema"]["properties"].as_object().unwrap();
        assert!(
            !properties.contains_key("pool") && !properties.contains_key("audit"),
            "{tool}"
        );
    }

    let result = catalog
        .invoke(
            "pooled_query",
            json!({"query": "q1"}),
            SkillContext::detached("pooled_query"),
        )
        .await;
    assert_eq!(result.text_content(), "main#1 ran q1");
    let result = catalog
        .invoke(
            "audited_query",
            json!({"query": "q2"}),
            SkillContext::detached("audited_query"),
        )
        .await;
    assert_eq!(result.text_content(), "main#2");
    let result = catalog
        .invoke(
            "audit_search",
            json!({"words": "q2"}),
            SkillContext::detached("audit_search"),
        )
        .await;
    assert_eq!(result.text_content(), r#"["audited_query q2"]"#);
    assert_eq!(
        pool.checked_out.load(Ordering::SeqCst),
        2,
        "the caller's pool is the one used"
    );
    assert_eq!(audit.0.lock().unwrap().len(), 1);
}

#[test]
fn a_missing_state_stops_the_catalog_naming_the_skill_the_parameter_and_the_type() {
    let error = Catalog::from_registry().expect_err("no state is supplied");
    let CatalogError::MissingState {
        skill,
        parameter,
        type_name,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    // Skills are checked in name order: `audit_search` comes first.
    assert_eq!(
        (skill.as_str(), parameter.as_str(), type_name.as_str()),
        ("audit_search", "audit", "skill_state::Audit")
    );
    assert!(
        error
            .to_string()
            .starts_with("skill `audit_search` needs State<skill_state::Audit>, which was not provided"),
        "{error}"
    );

    let mut only_audit = States::new();
    only_audit.insert(Audit::default());
    let error = Catalog::from_registry_with(only_audit.clone()).expect_err("no pool");
    assert!(
        error.to_string().starts_with(
            "skill `audited_query` needs State<skill_state::Pool>, which was not provided (parameter `pool`"
        ),
        "{error}"
    );
    let mut pool = States::new();
    pool.insert(Pool::named("late"));
    let (complete, _, _) = states();
    let catalog = Catalog::from_registry_with(complete).unwrap();
    let replaced = catalog
        .with_states(pool)
        .expect("states added to a catalog are checked too");
    assert_eq!(replaced.states().get::<Pool>().unwrap().name, "late");
}

#[tokio::test]
async fn a_bridge_without_a_state_is_refused_before_any_session_is_created() {
    let double = CodexManagerDouble::start().await.unwrap();
    let error = Bridge::builder()
        .upstream(upstream_of(client(&double)))
        .state(Audit::default())
        .build()
        .expect_err("the pool is missing");
    assert!(
        matches!(&error, BridgeError::Catalog(CatalogError::MissingState { skill, parameter, .. })
            if skill == "audited_query" && parameter == "pool"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("the skills cannot be served: skill `audited_query` needs State<skill_state::Pool>"),
        "{error}"
    );
    assert!(double.sessions().is_empty(), "no session was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_session_runs_skills_with_the_bridges_states() {
    let double = CodexManagerDouble::start().await.unwrap();
    let pool = State::new(Pool::named("served"));
    let mut states = States::new();
    states.insert_state(pool.clone());
    let bridge = start(
        Bridge::builder()
            .upstream(upstream_of(client(&double)))
            .state(Audit::default())
            .states(states)
            .grace(bridge_support::GRACE),
    )
    .await;
    let thread = only_thread(&bridge);
    let id = double.inject_tool_call(&thread, "audited_query", json!({"query": "select 1"}));
    let answer = double.wait_answered(&id, WAIT).await.expect("the call is answered");
    assert!(answer_success(&answer), "{answer}");
    assert_eq!(answer_text(&answer), "served#1");
    let id = double.inject_tool_call(&thread, "audit_search", json!({"words": "select"}));
    let answer = double.wait_answered(&id, WAIT).await.expect("the call is answered");
    assert_eq!(answer_text(&answer), r#"["audited_query select 1"]"#);
    assert_eq!(pool.checked_out.load(Ordering::SeqCst), 1);
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_send_turn_runs_skills_with_the_bridges_states() {
    let double = CodexManagerDouble::builder()
        .on_message(|message| {
            Some(
                TurnScript::new()
                    .tool_call("pooled_query", json!({"query": message.text}))
                    .final_message_from(|answers| {
                        format!(
                            "Pool said: {}",
                            skillbridge_doubles::codex_manager::answer_text(&answers[0])
                        )
                    }),
            )
        })
        .start()
        .await
        .unwrap();
    let (states, pool, _) = states();
    let bridge = Bridge::builder()
        .upstream(upstream_of(client(&double)).sessions(1).delete_on_exit(true))
        .states(states)
        .grace(bridge_support::SEND_GRACE)
        .build()
        .expect("every state is supplied");
    let sent = send(&bridge, "count rows", WAIT, CancellationToken::new())
        .await
        .expect("the turn runs");
    assert_eq!(sent.reply.reply.as_deref(), Some("Pool said: main#1 ran count rows"));
    assert_eq!(pool.checked_out.load(Ordering::SeqCst), 1);
}

/// Set: the child's `App` supplies the states; unset: it supplies none.
const CHILD_STATES: &str = "SKILL_STATE_CHILD_STATES";

/// Runs this test binary as a skills binary (`skillbridge::cli::App` with this file's skills) with `args`.
async fn command_line(args: &[&str], with_states: bool) -> std::process::Output {
    let env: &[(&str, &str)] = if with_states { &[(CHILD_STATES, "1")] } else { &[] };
    rerun_as_cli::rerun("child_cli", args, env, WAIT).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn call_runs_a_skill_with_the_apps_states() {
    let out = command_line(&["call", "pooled_query", r#"{"query": "q"}"#], true).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("main#1 ran q"), "{}", text(&out.stdout));

    let out = command_line(&["skills"], true).await;
    let table = text(&out.stdout);
    let row = table.lines().find(|line| line.starts_with("audited_query ")).unwrap();
    assert!(row.contains("audit: State<Audit>, pool: State<Pool>"), "{table}");

    let out = command_line(&["skills", "--json", "--states"], true).await;
    let stdout = text(&out.stdout);
    let listing: serde_json::Value = serde_json::from_str(&stdout[stdout.find('{').unwrap()..]).unwrap();
    assert_eq!(
        listing["states"]["pooled_query"],
        json!([{"parameter": "pool", "type": "skill_state::Pool"}])
    );
    let (states, _, _) = states();
    let catalog = Catalog::from_registry_with(states).unwrap();
    assert_eq!(
        listing["dynamicTools"],
        json!(catalog.dynamic_tools(skillbridge::skill::ToolFlavor::CodexManager)),
        "the payload is the one sent to Codex, without states"
    );
}

#[tokio::test]
async fn a_missing_state_stops_every_command_before_it_starts() {
    let expected = "skill `audit_search` needs State<skill_state::Audit>, which was not provided";
    for args in [vec!["call", "pooled_query", r#"{"query": "q"}"#], vec!["skills"]] {
        let out = command_line(&args, false).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("error: this binary's skills cannot run: {expected}")),
            "{args:?}: {stderr}"
        );
    }

    let double = CodexManagerDouble::start().await.unwrap();
    let url = double.base_url();
    for command in ["serve", "send"] {
        let mut args = vec![command, "--manager-url", &url];
        args.extend(if command == "serve" {
            vec!["--no-admin"]
        } else {
            vec!["hello"]
        });
        let out = command_line(&args, false).await;
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "skillbridge {command}: the skills cannot be served: {expected}"
            )),
            "{command}: {stderr}"
        );
    }
    assert!(double.sessions().is_empty(), "no session was created");
}

#[tokio::test]
async fn send_runs_a_turn_with_the_apps_states() {
    let double = CodexManagerDouble::builder()
        .on_message(|message| {
            Some(
                TurnScript::new()
                    .tool_call("audited_query", json!({"query": message.text}))
                    .final_message_from(|answers| {
                        format!(
                            "Connection: {}",
                            skillbridge_doubles::codex_manager::answer_text(&answers[0])
                        )
                    }),
            )
        })
        .start()
        .await
        .unwrap();
    let out = command_line(&["send", "--manager-url", &double.base_url(), "select 2"], true).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Connection: main#1"),
        "{}",
        text(&out.stdout)
    );
}

/// The command line run by the tests above; does nothing unless started by them.
#[test]
fn child_cli() {
    let Some(args) = rerun_as_cli::child_args() else {
        return;
    };
    let mut app = skillbridge::cli::App::new();
    if std::env::var_os(CHILD_STATES).is_some() {
        app = app.states(states().0);
    }
    std::process::exit(rerun_as_cli::run(app, args));
}
