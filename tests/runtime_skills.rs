//! Skills built at run time ([`RuntimeSkill`]) behave like `#[skill]`s: their arguments are validated against the
//! schema before the handler runs, they answer by their deadline with their token fired, a cancelled call is
//! cancelled, they show in every listing, toolsets select them by tag, and through the bridge (codex-manager
//! double) they are announced, run, counted in the metrics and listed by the admin routes. A name taken by a macro
//! skill stops start-up naming both.

mod bridge_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bridge_support::{
    WAIT, answer_success, answer_text, builder, client_at, only_thread, sample, start, upstream, upstream_of,
};
use serde_json::{Value, json};
use skillbridge::skill::{Annotations, Catalog, CatalogError, Outcome, RuntimeSkill, SkillContext, Toolset};
use skillbridge::{BridgeError, skill};
use skillbridge_doubles::CodexManagerDouble;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Reads a ticket.
#[skill(read_only, tags = ["tickets"])]
fn ticket_read(id: String) -> String {
    format!("ticket {id}")
}

/// One skill per "endpoint" of a configuration read at start-up, as a program would generate them.
fn endpoint_skills(runs: &Arc<AtomicUsize>) -> Vec<RuntimeSkill> {
    [("billing_status", "billing"), ("search_status", "search")]
        .into_iter()
        .map(|(name, service)| {
            let runs = Arc::clone(runs);
            RuntimeSkill::builder(name, format!("Says whether {service} is up."))
                .input_schema(json!({
                    "type": "object",
                    "properties": {
                        "region": {"type": "string", "pattern": "^[a-z]{2}-[0-9]$"},
                        "samples": {"type": "integer", "minimum": 1, "maximum": 10},
                    },
                    "required": ["region"],
                }))
                .annotations(
                    Annotations::new()
                        .with_title(format!("{service} status"))
                        .with_read_only(true),
                )
                .tags(["ops"])
                .handler(move |arguments: Value, ctx: SkillContext| {
                    let runs = Arc::clone(&runs);
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        format!(
                            "{service} is up in {} (call {})",
                            arguments["region"].as_str().unwrap(),
                            ctx.call_id
                        )
                    }
                })
                .build()
                .expect("a valid run-time skill")
        })
        .collect()
}

fn catalog(runs: &Arc<AtomicUsize>) -> Catalog {
    Catalog::builder()
        .skills(endpoint_skills(runs))
        .build()
        .expect("no name is taken twice")
}

#[tokio::test]
async fn arguments_are_validated_before_the_handler_runs() {
    let runs = Arc::new(AtomicUsize::new(0));
    let catalog = catalog(&runs);
    let ctx = || SkillContext::detached("billing_status");

    let ok = catalog
        .invoke_detailed("billing_status", json!({"region": "eu-1"}), ctx())
        .await;
    assert_eq!(ok.outcome, Outcome::Success);
    assert_eq!(ok.result.text_content(), "billing is up in eu-1 (call )");

    let refused = catalog
        .invoke_detailed("billing_status", json!({"region": "Europe", "samples": 80}), ctx())
        .await;
    assert_eq!(refused.outcome, Outcome::InvalidArguments);
    assert_eq!(
        refused.result.text_content(),
        "invalid arguments for `billing_status`: region: \"Europe\" does not match \"^[a-z]{2}-[0-9]$\"; samples: 80 \
         is greater than the maximum of 10"
    );
    let missing = catalog.invoke_detailed("billing_status", Value::Null, ctx()).await;
    assert_eq!(
        missing.result.text_content(),
        "invalid arguments for `billing_status`: \"region\" is a required property"
    );
    let not_object = catalog.invoke_detailed("billing_status", json!([1]), ctx()).await;
    assert_eq!(
        not_object.result.text_content(),
        "invalid arguments for `billing_status`: the arguments must be a JSON object, not an array"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "only the valid call ran");
}

#[tokio::test(start_paused = true)]
async fn a_run_time_skill_answers_by_its_deadline_and_its_token_fires() {
    let (fired_tx, mut fired) = tokio::sync::mpsc::unbounded_channel();
    let slow = RuntimeSkill::builder("slow", "Waits for its cancellation.")
        .timeout(Duration::from_millis(50))
        .handler(move |_, ctx: SkillContext| {
            let fired_tx = fired_tx.clone();
            async move {
                ctx.cancelled().await;
                let _ = fired_tx.send(());
                "stopped"
            }
        })
        .build()
        .unwrap();
    let catalog = Catalog::builder().without_registry().skill(slow).build().unwrap();
    let started = tokio::time::Instant::now();
    let timed_out = catalog
        .invoke_detailed("slow", json!({}), SkillContext::detached("slow"))
        .await;
    assert_eq!(
        (timed_out.outcome, timed_out.result.text_content()),
        (Outcome::TimedOut, "skill slow timed out after 50ms".to_owned())
    );
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    tokio::time::timeout(Duration::from_secs(1), fired.recv())
        .await
        .expect("the skill saw its token fire");

    let token = CancellationToken::new();
    let ctx = SkillContext::new("thread", None, "call_1", "1", "slow", token.clone());
    let call = tokio::spawn({
        let catalog = catalog.clone();
        async move { catalog.invoke_detailed("slow", json!({}), ctx).await }
    });
    tokio::task::yield_now().await;
    token.cancel();
    let cancelled = call.await.unwrap();
    assert_eq!(cancelled.outcome, Outcome::Cancelled);
    assert_eq!(cancelled.result.text_content(), "skill slow was cancelled");
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_answer() {
    let boom = RuntimeSkill::builder("boom", "Panics.")
        .handler(|_, _| async { panic!("generated tool broke") as String })
        .build()
        .unwrap();
    let catalog = Catalog::builder().without_registry().skill(boom).build().unwrap();
    let answer = catalog
        .invoke_detailed("boom", json!({}), SkillContext::detached("boom"))
        .await;
    assert_eq!(answer.outcome, Outcome::Panicked);
    assert_eq!(
        answer.result.text_content(),
        "skill boom panicked: generated tool broke"
    );
}

#[test]
fn a_name_taken_by_a_macro_skill_stops_start_up_naming_both() {
    let line = line!() + 1;
    let clash = RuntimeSkill::builder("ticket_read", "Reads a ticket, generated.")
        .handler(|_, _| async { "" })
        .build()
        .unwrap();
    let error = Catalog::builder().skill(clash.clone()).build().unwrap_err();
    assert!(matches!(error, CatalogError::DuplicateName { .. }), "{error}");
    let message = error.to_string();
    assert!(message.starts_with("two skills are named `ticket_read`: "), "{message}");
    assert!(
        message.contains("runtime_skills at tests/runtime_skills.rs:"),
        "the #[skill]: {message}"
    );
    assert!(
        message.contains(&format!("run-time skill at tests/runtime_skills.rs:{line}")),
        "the run-time skill: {message}"
    );

    // The bridge refuses it the same way, before anything connects.
    let nowhere = upstream_of(client_at("http://127.0.0.1:9"));
    let error = builder().skill(clash).upstream(nowhere).build().unwrap_err();
    assert!(
        matches!(&error, BridgeError::Catalog(CatalogError::DuplicateName { .. })),
        "{error}"
    );
}

#[test]
fn listings_and_toolsets_treat_run_time_skills_like_macro_skills() {
    let catalog = catalog(&Arc::new(AtomicUsize::new(0)));
    let names: Vec<&str> = catalog.names().collect();
    assert_eq!(names, ["billing_status", "search_status", "ticket_read"]);
    let billing = catalog.get("billing_status").unwrap();
    assert!(billing.is_runtime() && !catalog.get("ticket_read").unwrap().is_runtime());
    let listing = billing.listing();
    assert_eq!(
        listing["annotations"],
        json!({"title": "billing status", "readOnlyHint": true})
    );
    assert_eq!(listing["tags"], json!(["ops"]));
    assert_eq!(listing["timeoutMs"], 60_000, "the default of #[skill]");
    assert_eq!(listing["inputSchema"]["required"], json!(["region"]));

    let ops: Vec<String> = Toolset::all()
        .only(["ops"])
        .select(&catalog)
        .unwrap()
        .iter()
        .cloned()
        .collect();
    assert_eq!(ops, ["billing_status", "search_status"]);
    let read_only: Vec<String> = Toolset::all()
        .read_only(true)
        .select(&catalog)
        .unwrap()
        .iter()
        .cloned()
        .collect();
    assert_eq!(read_only, ["billing_status", "search_status", "ticket_read"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_bridge_a_run_time_skill_is_announced_run_counted_and_listed() {
    let runs = Arc::new(AtomicUsize::new(0));
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(builder().skills(endpoint_skills(&runs)).upstream(upstream(&double))).await;
    let thread = only_thread(&bridge);

    let session = double.sessions().into_iter().find(|s| s.id == thread).unwrap();
    let announced: Vec<&Value> = session.tools.iter().filter(|t| t["name"] == "search_status").collect();
    assert_eq!(
        announced,
        [&json!({
            "name": "search_status",
            "description": "Says whether search is up.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "region": {"type": "string", "pattern": "^[a-z]{2}-[0-9]$"},
                    "samples": {"type": "integer", "minimum": 1, "maximum": 10},
                },
                "required": ["region"],
            },
        })]
    );

    let good = double.inject_tool_call(&thread, "search_status", json!({"region": "us-2"}));
    let body = double.wait_answered(&good, WAIT).await.expect("answered");
    assert!(answer_success(&body), "{body}");
    assert!(answer_text(&body).starts_with("search is up in us-2 (call "), "{body}");
    let bad = double.inject_tool_call(&thread, "search_status", json!({"region": "us-2", "samples": 0}));
    let body = double.wait_answered(&bad, WAIT).await.expect("answered");
    assert!(!answer_success(&body), "{body}");
    assert_eq!(
        answer_text(&body),
        "invalid arguments for `search_status`: samples: 0 is less than the minimum of 1"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let admin = bridge.admin_router();
    let metrics = get(&admin, "/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            r#"skillbridge_calls_total{skill="search_status",outcome="success"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"skillbridge_calls_total{skill="search_status",outcome="invalid_arguments"}"#
        ),
        1.0
    );
    let listed: Value = serde_json::from_str(&get(&admin, "/skills/search_status").await).unwrap();
    assert_eq!(listed["tags"], json!(["ops"]));
    assert_eq!(listed["annotations"]["title"], "search status");
    bridge.shutdown().await;
}

async fn get(router: &axum::Router, path: &str) -> String {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}
