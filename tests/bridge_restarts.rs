//! codex-manager restarts: request ids start at 0 again (sessions survive), so a result computed before the restart
//! must never answer the new call that took its request id; a restart that loses the sessions makes the bridge
//! unready until it has created them again. Calls seen before any reconnect are answered once a current listing
//! shows them, and their answers share one listing of the thread rather than take one each.
//!
//! The double checks each accepted answer against the call it answers (`check_answer_identity`): every call's
//! arguments carry its `call_id`, the skills here quote it, and `misdelivered()` lists any answer that landed on
//! another call.

mod bridge_support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use std::time::Duration;

use bridge_support::{
    WAIT, answer_text, bridge_for, builder, client, eventually, listings, only_thread, start, upstream_of,
};
use serde_json::json;
use skillbridge::skill;
use skillbridge::telemetry::CallRecord;
use skillbridge::{Bridge, SkillContext};
use skillbridge_doubles::CodexManagerDouble;
use tokio::sync::Semaphore;

static GATES: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Default::default);

/// The gates a `gated` call waits at.
static WAITING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

fn gate(name: &str) -> Arc<Semaphore> {
    GATES
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(Semaphore::new(0)))
        .clone()
}

/// Waits until the test opens its gate, then answers with the call id it was given.
#[skill(timeout = "30s")]
async fn gated(
    ctx: SkillContext,
    /// The gate to wait for.
    gate_name: String,
    /// The call's id (the double adds it to every call).
    call_id: String,
) -> String {
    WAITING.lock().unwrap().insert(gate_name.clone());
    let _permit = gate(&gate_name).acquire_owned().await;
    assert_eq!(ctx.call_id, call_id, "the skill sees the call id it is called for");
    format!("{call_id} through {gate_name}")
}

/// Answers with the call id at once.
#[skill]
fn quote(
    /// The call's id (the double adds it to every call).
    call_id: String,
) -> String {
    format!("{call_id} quoted")
}

async fn wait_at_gate(name: &str) {
    eventually(&format!("a call at gate {name}"), || {
        WAITING.lock().unwrap().contains(name)
    })
    .await;
}

async fn checking_double() -> CodexManagerDouble {
    CodexManagerDouble::builder()
        .check_answer_identity(true)
        .start()
        .await
        .unwrap()
}

/// How many session creations the double was asked for.
fn creations(double: &CodexManagerDouble) -> usize {
    double
        .received()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/sessions")
        .count()
}

async fn record_of(bridge: &Bridge, call_id: &str) -> CallRecord {
    let mut found = None;
    eventually(&format!("the record of {call_id}"), || {
        found = bridge.stats().recent(100).into_iter().find(|r| r.call_id == call_id);
        found.is_some()
    })
    .await;
    found.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_from_before_a_restart_never_answers_the_call_that_took_its_request_id() {
    let double = checking_double().await;
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);

    let old = double.inject_call(&thread, "gated", json!({"gate_name": "old"}));
    wait_at_gate("old").await;

    double.restart();
    assert!(double.wait_for_sockets(1, WAIT).await, "the bridge reconnects");
    let new = double.inject_call(&thread, "gated", json!({"gate_name": "new"}));
    assert_eq!(
        new.request_id, old.request_id,
        "the restarted server reused the request id"
    );
    assert_ne!(new.call_id, old.call_id);
    wait_at_gate("new").await;

    // The old run ends while the new call holds its request id.
    gate("old").add_permits(1);
    let old_record = record_of(&bridge, &old.call_id).await;
    assert_eq!(old_record.submit_status, "lost", "{old_record:?}");
    assert!(
        double.responses_for(&new.request_id).is_empty(),
        "nothing was posted for the old call"
    );

    gate("new").add_permits(1);
    let body = double
        .wait_answered(&new.request_id, WAIT)
        .await
        .expect("the new call is answered");
    assert_eq!(answer_text(&body), format!("{} through new", new.call_id));
    assert_eq!(record_of(&bridge, &new.call_id).await.submit_status, "delivered");
    assert!(double.misdelivered().is_empty(), "{:?}", double.misdelivered());
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_forgotten_by_the_restart_is_dropped_and_new_calls_with_old_ids_run() {
    let double = checking_double().await;
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);

    // Answered before the restart: its ids come back after it, for new calls.
    let mut before = Vec::new();
    for _ in 0..3 {
        let call = double.inject_call(&thread, "quote", json!({}));
        double.wait_answered(&call.request_id, WAIT).await.expect("answered");
        before.push(call);
    }
    let forgotten = double.inject_call(&thread, "gated", json!({"gate_name": "forgotten"}));
    wait_at_gate("forgotten").await;

    double.restart();
    assert!(double.wait_for_sockets(1, WAIT).await, "the bridge reconnects");
    // The restart forgot the gated call: its result has nowhere to go.
    gate("forgotten").add_permits(1);
    let record = record_of(&bridge, &forgotten.call_id).await;
    assert_eq!(record.submit_status, "lost", "{record:?}");

    let mut after = Vec::new();
    for _ in 0..5 {
        after.push(double.inject_call(&thread, "quote", json!({})));
    }
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.request_id, new.request_id, "request ids start at 0 again");
    }
    for call in &after {
        let body = double
            .wait_answered(&call.request_id, WAIT)
            .await
            .expect("each new call is answered");
        assert_eq!(answer_text(&body), format!("{} quoted", call.call_id));
    }
    assert!(double.misdelivered().is_empty(), "{:?}", double.misdelivered());
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_calls_seen_before_a_reconnect_share_one_listing() {
    const CALLS: usize = 20;
    let double = checking_double().await;
    // Only the listing after each `ready` frame, none on a timer.
    let upstream = upstream_of(client(&double)).poll_interval(Duration::from_secs(600));
    let bridge = start(builder().upstream(upstream)).await;
    let thread = only_thread(&bridge);
    let names: Vec<String> = (0..CALLS).map(|i| format!("before-reconnect-{i}")).collect();
    let calls: Vec<_> = names
        .iter()
        .map(|name| double.inject_call(&thread, "gated", json!({"gate_name": name})))
        .collect();
    for name in &names {
        wait_at_gate(name).await;
    }

    // A slow listing keeps every answer waiting for one while it is taken.
    double.set_response_delay(Duration::from_millis(300));
    let listed = listings(&double, &thread);
    assert_eq!(double.drop_sockets(), 1);
    assert!(double.wait_for_sockets(1, WAIT).await, "the bridge reconnects");
    assert!(bridge.wait_connected(WAIT).await, "the bridge sees its new connection");
    for name in &names {
        gate(name).add_permits(1);
    }
    for call in &calls {
        let body = double
            .wait_answered(&call.request_id, WAIT)
            .await
            .expect("each call seen before the reconnect is answered");
        assert!(answer_text(&body).starts_with(&call.call_id), "{body}");
    }
    // The feed's listing after `ready`, and at most one taken for an answer that came first: not one per answer.
    let taken = listings(&double, &thread) - listed;
    assert!((1..=2).contains(&taken), "{taken} listings for {CALLS} answers");
    assert!(double.misdelivered().is_empty(), "{:?}", double.misdelivered());
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_makes_the_bridge_unready_until_it_is_created_again() {
    let double = checking_double().await;
    let bridge = start(bridge_for(&double)).await;
    let lost = only_thread(&bridge);
    assert_eq!(bridge.health().readiness(), Ok(()));

    // Codex-manager refuses the first two attempts to replace it.
    double.fail_next_session_creations(2);
    double.restart_and_lose_sessions();
    eventually("the loss to show in readiness", || {
        bridge
            .health()
            .readiness()
            .is_err_and(|reasons| reasons.iter().any(|r| r.contains(&format!("session {lost} was lost"))))
    })
    .await;
    assert!(bridge.sessions().iter().all(|s| s.id != lost));

    eventually("a new session and readiness", || bridge.health().readiness().is_ok()).await;
    assert_eq!(
        creations(&double),
        4,
        "the first session, two refused attempts, the replacement"
    );
    let replacement = only_thread(&bridge);
    assert_ne!(replacement, lost);

    let call = double.inject_call(&replacement, "quote", json!({}));
    let body = double
        .wait_answered(&call.request_id, WAIT)
        .await
        .expect("calls on the new session are served");
    assert_eq!(answer_text(&body), format!("{} quoted", call.call_id));
    bridge.shutdown().await;
}
