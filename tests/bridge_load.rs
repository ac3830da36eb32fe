//! Load: many concurrent calls to a slow skill are each executed once and answered, within the concurrency
//! bound, in the time that bound allows.
//!
//! On Tokio's paused clock (the double and the bridge share the test's runtime over loopback): only the skill's
//! naps move the clock, so the bound is observed exactly, however loaded the machine. (How fast it really is
//! belongs in the benchmarks.)

mod bridge_support;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use bridge_support::{WAIT, answer_success, answer_text, bridge_for, only_thread, start};
use serde_json::json;
use skillbridge::SkillContext;
use skillbridge::skill;
use skillbridge_doubles::CodexManagerDouble;
use tokio::time::Instant;

const NAP: Duration = Duration::from_millis(50);

/// What the `nap` skill saw, per test group.
#[derive(Default, Debug)]
struct Group {
    running: usize,
    peak: usize,
    executions: HashMap<String, usize>,
}

static GROUPS: LazyLock<Mutex<HashMap<String, Group>>> = LazyLock::new(Default::default);

fn with_group<T>(group: &str, f: impl FnOnce(&mut Group) -> T) -> T {
    f(GROUPS.lock().unwrap().entry(group.to_owned()).or_default())
}

/// Naps for 50 ms, then answers with its label.
#[skill]
async fn nap(
    ctx: SkillContext,
    /// Which test is calling (keeps parallel tests apart).
    group: String,
    /// Echoed back.
    label: String,
) -> String {
    with_group(&group, |g| {
        g.running += 1;
        g.peak = g.peak.max(g.running);
        *g.executions.entry(ctx.request_id.clone()).or_default() += 1;
    });
    tokio::time::sleep(NAP).await;
    with_group(&group, |g| g.running -= 1);
    format!("rested {label}")
}

async fn burst(group: &str, calls: usize, concurrency: usize) {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double).concurrency(concurrency)).await;
    let thread = only_thread(&bridge);

    let started = Instant::now();
    let ids: Vec<String> = (0..calls)
        .map(|i| double.inject_tool_call(&thread, "nap", json!({"group": group, "label": i.to_string()})))
        .collect();
    assert!(double.wait_all_answered(WAIT).await, "every call is answered");
    let elapsed = started.elapsed();
    let ideal = NAP * calls.div_ceil(concurrency) as u32;

    for (i, id) in ids.iter().enumerate() {
        let responses = double.responses_for(id);
        assert_eq!(responses.len(), 1, "call {id} answered once: {responses:?}");
        assert!(answer_success(&responses[0]));
        assert_eq!(answer_text(&responses[0]), format!("rested {i}"));
    }
    let (peak, executions) = with_group(group, |g| (g.peak, std::mem::take(&mut g.executions)));
    assert_eq!(executions.len(), calls, "every call executed");
    assert!(
        executions.values().all(|&n| n == 1),
        "none executed twice: {executions:?}"
    );
    // Every call arrives before the first nap ends, so the bound is always full: rounds of `concurrency` calls,
    // one nap each, no more and no idle slot in between.
    assert_eq!(peak, concurrency, "exactly {concurrency} ran at once");
    assert!(
        elapsed >= ideal && elapsed <= ideal + Duration::from_millis(1),
        "{calls} calls at concurrency {concurrency} took {elapsed:?}, the bound allows {ideal:?}"
    );
    bridge.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn two_hundred_concurrent_calls_run_once_each_within_the_bound() {
    burst("wide", 200, 64).await;
}

#[tokio::test(start_paused = true)]
async fn a_small_concurrency_bound_is_respected() {
    burst("narrow", 40, 4).await;
}
