//! Resilience: dropped sockets lose no call and answer none twice; a 500 on respond is retried; 404 and 409 mean
//! somebody already answered and are not retried.

mod bridge_support;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use bridge_support::{WAIT, answer_text, bridge_for, eventually, only_thread, start};
use serde_json::json;
use skillbridge::skill;
use skillbridge::telemetry::CallRecord;
use skillbridge::{Bridge, SkillContext};
use skillbridge_doubles::CodexManagerDouble;
use tokio::sync::Semaphore;

static EXECUTIONS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

/// Echoes a text after a short pause, counting executions per call.
#[skill]
async fn echo(
    ctx: SkillContext,
    /// The text.
    text: String,
) -> String {
    *EXECUTIONS
        .lock()
        .unwrap()
        .entry(format!("{}/{}", ctx.thread_id, ctx.request_id))
        .or_default() += 1;
    tokio::time::sleep(Duration::from_millis(10)).await;
    format!("echo {text}")
}

/// Gates of the `gated` skill, by name; a call waits until its gate has a permit.
static GATES: LazyLock<Mutex<HashMap<String, std::sync::Arc<Semaphore>>>> = LazyLock::new(Default::default);

fn gate(name: &str) -> std::sync::Arc<Semaphore> {
    GATES
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_insert_with(|| std::sync::Arc::new(Semaphore::new(0)))
        .clone()
}

/// Waits until the test opens its gate, then answers.
#[skill(timeout = "30s")]
async fn gated(
    /// The gate to wait for.
    gate_name: String,
) -> String {
    let _permit = gate(&gate_name).acquire_owned().await;
    format!("through {gate_name}")
}

fn executions_of(thread: &str, id: &str) -> usize {
    EXECUTIONS
        .lock()
        .unwrap()
        .get(&format!("{thread}/{id}"))
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_sockets_lose_no_call_and_answer_none_twice() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);

    let mut ids = Vec::new();
    for round in 0..4 {
        // A batch while connected: most are still pending or running when the sockets drop.
        for i in 0..40 {
            ids.push(double.inject_tool_call(&thread, "echo", json!({"text": format!("{round}-{i}")})));
        }
        assert!(double.drop_sockets() >= 1, "the bridge was connected");
        // A batch while disconnected: their stream events are lost; only listing can find them.
        for i in 40..50 {
            ids.push(double.inject_tool_call(&thread, "echo", json!({"text": format!("{round}-{i}")})));
        }
        assert!(double.wait_for_sockets(1, WAIT).await, "the bridge reconnects");
    }
    assert!(
        double.wait_all_answered(WAIT).await,
        "every call answered after the reconnects"
    );
    for id in &ids {
        let responses = double.responses_for(id);
        assert_eq!(responses.len(), 1, "call {id} answered exactly once: {responses:?}");
        assert_eq!(executions_of(&thread, id), 1, "call {id} executed exactly once");
    }
    assert_eq!(ids.len(), 200);
    eventually("four reconnects counted", || bridge.health().reconnects() >= 4).await;
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_failed_respond_is_retried_and_delivered() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);

    double.fail_next_responds(1);
    let id = double.inject_tool_call(&thread, "echo", json!({"text": "again"}));
    let body = double.wait_answered(&id, WAIT).await.expect("delivered on retry");
    assert_eq!(answer_text(&body), "echo again");
    assert_eq!(double.responses_for(&id).len(), 2, "one failed attempt, one delivered");
    assert_eq!(
        executions_of(&thread, &id),
        1,
        "the skill ran once; its result was re-sent"
    );
    eventually("the call's record", || !bridge.stats().recent(1).is_empty()).await;
    let record = &bridge.stats().recent(1)[0];
    assert_eq!((record.submit_status, record.attempts), ("delivered", 2));
    bridge.shutdown().await;
}

/// Answers the call directly, as another client would.
async fn answer_elsewhere(double: &CodexManagerDouble, id: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{}/api/tool-calls/{id}/response", double.base_url()))
        .json(&json!({"success": true, "contentItems": [{"type": "inputText", "text": "answered elsewhere"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn record_of(bridge: &Bridge, id: &str) -> CallRecord {
    let mut found = None;
    eventually("the call's record", || {
        found = bridge.stats().recent(100).into_iter().find(|r| r.request_id == id);
        found.is_some()
    })
    .await;
    found.unwrap()
}

#[tokio::test]
async fn already_answered_404_is_not_retried() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);

    let id = double.inject_tool_call(&thread, "gated", json!({"gate_name": "g404"}));
    eventually("the skill to start", || bridge.stats().in_flight() == 1).await;
    assert_eq!(answer_elsewhere(&double, &id).await, 200);
    gate("g404").add_permits(1);

    let record = record_of(&bridge, &id).await;
    assert_eq!((record.submit_status, record.attempts), ("already_answered", 1));
    let responses = double.responses_for(&id);
    assert_eq!(
        responses.len(),
        2,
        "the other client's answer and ours, once: {responses:?}"
    );
    assert_eq!(answer_text(&responses[0]), "answered elsewhere");
    bridge.shutdown().await;
}

// On the paused clock (the double, the bridge and the other client share this runtime over loopback), so the
// other answer is in flight for exactly the double's delay, however slow the machine.
#[tokio::test(start_paused = true)]
async fn in_flight_409_is_not_retried() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);

    let id = double.inject_tool_call(&thread, "gated", json!({"gate_name": "g409"}));
    eventually("the skill to start", || bridge.stats().in_flight() == 1).await;
    // Another client's answer is held in flight by the double's delay while ours arrives.
    let delay = Duration::from_secs(2);
    double.set_response_delay(delay);
    let sent = tokio::time::Instant::now();
    let other = {
        let double = double.clone();
        let id = id.clone();
        tokio::spawn(async move { answer_elsewhere(&double, &id).await })
    };
    eventually("the other answer to be in flight", || {
        double.responses_for(&id).len() == 1
    })
    .await;
    gate("g409").add_permits(1);

    let record = record_of(&bridge, &id).await;
    assert_eq!((record.submit_status, record.attempts), ("already_answered", 1));
    assert!(
        sent.elapsed() < delay,
        "ours was answered while the other was in flight"
    );
    assert_eq!(other.await.unwrap(), 200);
    assert_eq!(sent.elapsed(), delay, "the other answer was held for the delay");
    assert_eq!(double.responses_for(&id).len(), 2);
    double.set_response_delay(Duration::ZERO);
    bridge.shutdown().await;
}
