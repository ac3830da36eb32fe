//! Load: many concurrent calls to a slow skill are each executed once and answered, within the concurrency
//! bound, in a wall time near what that bound allows.

mod bridge_support;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use bridge_support::{WAIT, answer_success, answer_text, args, only_thread, start};
use serde_json::json;
use skillbridge::SkillContext;
use skillbridge::skill;
use skillbridge_doubles::CodexManagerDouble;

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
    let mut args = args(&double);
    args.concurrency = Some(concurrency);
    let serving = start(&args).await;
    let thread = only_thread(&serving);

    let started = Instant::now();
    let ids: Vec<String> = (0..calls)
        .map(|i| double.inject_tool_call(&thread, "nap", json!({"group": group, "label": i.to_string()})))
        .collect();
    assert!(double.wait_all_answered(WAIT).await, "every call is answered");
    let elapsed = started.elapsed();
    let ideal = NAP * calls.div_ceil(concurrency) as u32;
    println!(
        "{calls} calls to a {NAP:?} skill at concurrency {concurrency}: {elapsed:?} (ideal {ideal:?}, {:.2}x)",
        elapsed.as_secs_f64() / ideal.as_secs_f64()
    );

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
    assert!(peak <= concurrency, "at most {concurrency} ran at once, saw {peak}");
    assert!(peak > 1, "calls ran concurrently (peak {peak})");
    // Loose: a timing goal belongs in the benchmarks; this only catches calls being serialised.
    assert!(elapsed < ideal * 10, "{elapsed:?} is far from the bound's {ideal:?}");
    serving.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_run_once_each_within_the_bound() {
    burst("wide", 200, 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_concurrency_bound_is_respected() {
    burst("narrow", 40, 4).await;
}
