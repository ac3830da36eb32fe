//! Calls that cannot succeed still get an answer: a panicking skill, a skill past its deadline, an unknown
//! tool and bad arguments are each answered `success:false` with a message the model can act on, and the bridge
//! keeps serving.

mod bridge_support;

use std::time::Duration;

use bridge_support::{WAIT, answer_success, answer_text, bridge_for, eventually, only_thread, start};
use serde_json::{Value, json};
use skillbridge::{SkillContext, skill};
use skillbridge_doubles::CodexManagerDouble;

/// Always panics.
#[skill]
fn explode(
    /// Ignored.
    reason: String,
) -> String {
    panic!("kaboom: {reason}");
}

/// Sleeps far past its 200 ms deadline.
#[skill(timeout = "200ms")]
async fn dawdle() -> String {
    tokio::time::sleep(Duration::from_secs(60)).await;
    "too late".into()
}

/// Adds two integers.
#[skill]
fn add(
    /// The first.
    a: i64,
    /// The second.
    b: i64,
) -> i64 {
    a + b
}

/// Runs until its call is cancelled.
#[skill(timeout = "30s")]
async fn wait_for_cancel(ctx: SkillContext) -> String {
    ctx.cancelled().await;
    "saw the cancellation".into()
}

async fn answer(double: &CodexManagerDouble, thread: &str, tool: &str, arguments: Value) -> Value {
    let id = double.inject_tool_call(thread, tool, arguments);
    let body = double
        .wait_answered(&id, WAIT)
        .await
        .unwrap_or_else(|| panic!("{tool} call answered"));
    assert_eq!(double.responses_for(&id).len(), 1, "answered once");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_answered_success_false_and_the_bridge_keeps_serving() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);

    let cases = [
        (
            "explode",
            json!({"reason": "test"}),
            vec!["explode", "panicked", "kaboom: test"],
        ),
        ("dawdle", json!({}), vec!["dawdle", "200ms"]),
        (
            "no_such_tool",
            json!({}),
            vec!["no_such_tool", "add", "dawdle", "explode"],
        ),
        ("add", json!({"a": "one", "b": 2}), vec!["add", "a"]),
        ("add", json!({"a": 1}), vec!["add", "b"]),
    ];
    for (tool, arguments, expected) in cases {
        let body = answer(&double, &thread, tool, arguments.clone()).await;
        assert!(!answer_success(&body), "{tool} {arguments}: {body}");
        let text = answer_text(&body);
        for needle in expected {
            assert!(
                text.contains(needle),
                "{tool} {arguments}: {text:?} should mention {needle:?}"
            );
        }
        // After every failure, a good call still works.
        let body = answer(&double, &thread, "add", json!({"a": 2, "b": 3})).await;
        assert!(answer_success(&body));
        assert_eq!(answer_text(&body), "5");
    }

    // Each call is recorded once its answer is delivered, in whatever order the answers complete.
    eventually("every call's record", || bridge.stats().recent(100).len() == 10).await;
    let mut outcomes: Vec<&str> = bridge.stats().recent(100).iter().map(|r| r.outcome).collect();
    outcomes.sort_unstable();
    let mut expected = [
        "panicked",
        "timed_out",
        "unknown_tool",
        "invalid_arguments",
        "invalid_arguments",
    ]
    .to_vec();
    expected.extend(["success"; 5]);
    expected.sort_unstable();
    assert_eq!(outcomes, expected);
    bridge.shutdown().await;
}

#[tokio::test]
async fn an_interrupted_turn_cancels_its_running_skills() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);

    let id = double.inject_tool_call(&thread, "wait_for_cancel", json!({}));
    let row = double
        .pending(&thread)
        .into_iter()
        .find(|r| r["requestId"] == id.as_str())
        .unwrap();
    let turn = row["turnId"].as_str().expect("the call has a turn").to_owned();
    eventually("the skill to run", || bridge.stats().in_flight() == 1).await;
    double.emit_event(
        Some(&thread),
        "app_server.turn.completed",
        json!({
            "source": "app_server", "signalType": "notification", "eventType": "app_server.turn.completed",
            "method": "turn/completed", "context": {"threadId": thread, "turnId": turn},
            "params": {"threadId": thread, "turn": {"id": turn, "status": "interrupted", "items": [], "error": null}},
        }),
    );
    let body = double
        .wait_answered(&id, WAIT)
        .await
        .expect("answered once the turn is interrupted");
    assert!(!answer_success(&body));
    assert!(answer_text(&body).contains("cancel"), "{}", answer_text(&body));
    bridge.shutdown().await;
}
