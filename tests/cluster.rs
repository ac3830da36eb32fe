//! Bridges of one group sharing the work through a real `redis-server` (started by the test on a free loopback
//! port), against the codex-manager double: each call runs once however many bridges see it, every bridge serves
//! the sessions any of them created, and while the store is down no call runs and readiness says why. (Three
//! processes, a SIGKILL and a Redis restart under load: `bench/tests/cluster_smoke.rs`.)

mod bridge_support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bridge_support::{POLL_INTERVAL, WAIT, answer_text, builder, eventually, start, upstream};
use serde_json::json;
use skillbridge::telemetry::ClaimResult;
use skillbridge::{Bridge, BridgeError, ClusterConfig, skill};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::redis::RedisServer;

/// Every run of [`tally`], by call id: a call that ran twice shows up twice.
static RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Held by the tests that count runs: each double numbers its calls alike.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Counts its runs, takes 40 ms, and answers the call's id (which the double adds to every call's arguments).
#[skill]
async fn tally(
    /// The call's id.
    call_id: String,
) -> String {
    RUNS.lock().unwrap().push(call_id.clone());
    tokio::time::sleep(Duration::from_millis(40)).await;
    call_id
}

fn runs_of(call_ids: &[String]) -> BTreeMap<String, usize> {
    let runs = RUNS.lock().unwrap();
    call_ids
        .iter()
        .map(|id| (id.clone(), runs.iter().filter(|run| *run == id).count()))
        .collect()
}

/// A double that adds each call's id to its arguments (which `tally` answers) and checks every answer names it.
async fn identity_checking_double() -> CodexManagerDouble {
    CodexManagerDouble::builder()
        .check_answer_identity(true)
        .start()
        .await
        .unwrap()
}

async fn get_json(bridge: &Bridge, route: &str) -> serde_json::Value {
    use tower::ServiceExt;
    let request = axum::http::Request::get(route).body(axum::body::Body::empty()).unwrap();
    let response = bridge.admin_router().oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn group(redis: &RedisServer, name: &str) -> ClusterConfig {
    ClusterConfig::new(redis.url())
        .group(name)
        .name(format!("{name}-bridge"))
        .lease(Duration::from_secs(2))
}

#[tokio::test]
async fn bridges_of_a_group_run_each_call_once_and_serve_each_others_sessions() {
    let _counting = COUNTING.lock().await;
    RUNS.lock().unwrap().clear();
    let double = identity_checking_double().await;
    let redis = RedisServer::start().await.unwrap();
    let creator = start(
        builder()
            .upstream(upstream(&double))
            .concurrency(2)
            .cluster(group(&redis, "once").name("creator")),
    )
    .await;
    // Creates no session of its own: it serves the group's.
    let helper = start(
        builder()
            .upstream(upstream(&double).sessions(0))
            .concurrency(2)
            .cluster(group(&redis, "once").name("helper")),
    )
    .await;
    let thread = creator.sessions()[0].id.clone();
    eventually("the helper serves the creator's session", || {
        helper
            .sessions()
            .iter()
            .any(|session| session.id == thread && !session.created)
    })
    .await;
    assert!(helper.health().readiness().is_ok(), "{:?}", helper.health().readiness());

    // Both bridges see every call on the stream; two workers each, so the work has to spread.
    let calls: Vec<_> = (0..20)
        .map(|_| double.inject_call(&thread, "tally", json!({})))
        .collect();
    for call in &calls {
        let body = double.wait_answered(&call.request_id, WAIT).await.expect("answered");
        assert_eq!(answer_text(&body), call.call_id, "each answer is its own call's");
    }
    let call_ids: Vec<String> = calls.iter().map(|call| call.call_id.clone()).collect();
    let runs = runs_of(&call_ids);
    assert!(runs.values().all(|n| *n == 1), "every call ran once: {runs:?}");
    assert!(double.answered_twice().is_empty(), "{:?}", double.answered_twice());
    assert!(double.misdelivered().is_empty(), "{:?}", double.misdelivered());
    let ran = |bridge: &Bridge| bridge.stats().skill_counts("tally").total;
    assert_eq!(ran(&creator) + ran(&helper), 20);
    assert!(
        ran(&creator) > 0 && ran(&helper) > 0,
        "the calls spread over both bridges: {} and {}",
        ran(&creator),
        ran(&helper)
    );
    let claimed = |bridge: &Bridge, results: &[ClaimResult]| -> u64 {
        let counts = bridge.health().cluster().unwrap().claim_counts();
        let labels: Vec<&str> = results.iter().map(|result| result.label()).collect();
        counts
            .iter()
            .filter(|(label, _)| labels.contains(label))
            .map(|(_, n)| n)
            .sum()
    };
    let won = [ClaimResult::Won, ClaimResult::TakenOver];
    assert_eq!(
        claimed(&creator, &won) + claimed(&helper, &won),
        20,
        "each call was won once in the group"
    );
    let lost = [ClaimResult::Held, ClaimResult::Completed];
    assert!(
        claimed(&creator, &lost) + claimed(&helper, &lost) > 0,
        "the bridges saw the same calls, and found them claimed by each other"
    );
    eventually("each bridge sees both at its heartbeat", || {
        [&creator, &helper]
            .iter()
            .all(|bridge| bridge.health().cluster().unwrap().peers().len() == 2)
    })
    .await;
    let view = get_json(&helper, "/cluster").await;
    assert_eq!(view["this"], "helper");
    assert_eq!(view["reachable"], true);
    let names: Vec<&str> = view["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["creator", "helper"]);
    assert_eq!(view["sessions"], 1, "the group's registry");

    helper.shutdown().await;
    creator.shutdown().await;
}

#[tokio::test]
async fn while_the_store_is_down_no_call_runs_readyz_says_why_and_the_call_runs_once_it_is_back() {
    let _counting = COUNTING.lock().await;
    RUNS.lock().unwrap().clear();
    let double = identity_checking_double().await;
    let mut redis = RedisServer::start().await.unwrap();
    let bridge = start(builder().upstream(upstream(&double)).cluster(group(&redis, "outage"))).await;
    let thread = bridge.sessions()[0].id.clone();
    let before = double.inject_call(&thread, "tally", json!({}));
    double
        .wait_answered(&before.request_id, WAIT)
        .await
        .expect("answered while the store is up");

    redis.stop().await.unwrap();
    eventually("the bridge notices the store is gone", || {
        bridge.health().readiness().is_err()
    })
    .await;
    let reasons = bridge.health().readiness().unwrap_err();
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("cluster store") && reason.contains("no new call")),
        "{reasons:?}"
    );
    let during = double.inject_call(&thread, "tally", json!({}));
    // Several listings go by: the call is seen, and left pending, each time.
    tokio::time::sleep(POLL_INTERVAL * 4).await;
    assert_eq!(
        runs_of(std::slice::from_ref(&during.call_id))[&during.call_id],
        0,
        "never run unclaimed"
    );
    assert!(double.responses_for(&during.request_id).is_empty());
    assert_eq!(double.pending(&thread).len(), 1, "it waits upstream");

    redis.resume().await.unwrap();
    let body = double
        .wait_answered(&during.request_id, WAIT)
        .await
        .expect("answered once the store is back");
    assert_eq!(answer_text(&body), during.call_id);
    assert_eq!(runs_of(std::slice::from_ref(&during.call_id))[&during.call_id], 1);
    eventually("ready again", || bridge.health().readiness().is_ok()).await;
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_group_needs_a_store_that_answers_and_an_upstream_that_shares_sessions() {
    let double = CodexManagerDouble::start().await.unwrap();
    // Nothing listens on port 1.
    let unreachable = builder()
        .upstream(upstream(&double))
        .cluster(ClusterConfig::new("redis://:hunter2@127.0.0.1:1/0"))
        .build()
        .unwrap();
    let error = unreachable.start().await.unwrap_err();
    assert!(matches!(error, BridgeError::ClusterNotReady { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("redis://<redacted>@127.0.0.1:1/0"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(double.sessions().is_empty(), "no session is created without the store");

    for (url, expected) in [
        ("http://127.0.0.1:6379", "must be a redis:// or rediss:// URL"),
        ("redis://127.0.0.1:6379/zero", "cannot be used"),
    ] {
        let error = builder()
            .upstream(upstream(&double))
            .cluster(ClusterConfig::new(url))
            .build()
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{url}: {error}");
    }
    let error = builder()
        .upstream(upstream(&double))
        .cluster(ClusterConfig::new("redis://127.0.0.1:6379/0").group("a:b"))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("cluster group"), "{error}");
}
