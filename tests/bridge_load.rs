//! Load: many concurrent calls to a slow skill are each executed once and answered, within the concurrency
//! bound, in the time that bound allows; while more than a thousand calls wait, the periodic listing of pending
//! calls waits too (at most 30 s); shutting down with a backlog answers it without a listing per answer.
//!
//! On Tokio's paused clock (the double and the bridge share the test's runtime over loopback): only the skill's
//! naps move the clock, so the bound is observed exactly, however loaded the machine. (How fast it really is
//! belongs in the benchmarks.)

mod bridge_support;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use bridge_support::{
    POLL_INTERVAL, WAIT, answer_success, answer_text, bridge_for, eventually, listings, only_thread, start,
};
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

/// Released by the test: a skill that holds its worker until then.
static HELD: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

/// Runs once the test lets it.
#[skill]
async fn held() -> &'static str {
    let _ = HELD.acquire().await.map(tokio::sync::SemaphorePermit::forget);
    "released"
}

/// Calls waiting for a worker from which the bridge is behind, and the longest a periodic listing waits for it to
/// catch up (the dispatcher's low-water mark and the feed's deferral).
const BEHIND: usize = 1024;
const LONGEST_DEFERRAL: Duration = Duration::from_secs(30);

/// How often [`next_listing`] looks: listings are seen within this much of the paused clock.
const LOOK: Duration = Duration::from_millis(10);

/// Waits (on the paused clock) until the thread has been listed more than `seen` times.
async fn next_listing(double: &CodexManagerDouble, thread: &str, seen: usize, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    while listings(double, thread) <= seen {
        assert!(Instant::now() < deadline, "no listing within {timeout:?}");
        tokio::time::sleep(LOOK).await;
    }
    Instant::now()
}

/// A bridge with one worker on its own session of a new double, right after a periodic listing (so that the next is
/// a poll interval away and none of the start is under way), given `calls` calls: `tool` with `arguments(i)`.
async fn one_worker_given(
    calls: usize,
    tool: &str,
    arguments: impl Fn(usize) -> serde_json::Value,
) -> (CodexManagerDouble, skillbridge::Bridge, String) {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double).concurrency(1)).await;
    let thread = only_thread(&bridge);
    next_listing(&double, &thread, listings(&double, &thread), WAIT).await;
    for i in 0..calls {
        double.inject_tool_call(&thread, tool, arguments(i));
    }
    (double, bridge, thread)
}

#[tokio::test(start_paused = true)]
async fn a_periodic_listing_waits_until_the_bridge_has_caught_up_with_its_backlog() {
    let calls = BEHIND + 300;
    let (double, bridge, thread) =
        one_worker_given(calls, "nap", |i| json!({"group": "backlog", "label": i.to_string()})).await;
    let seen = listings(&double, &thread);

    // One nap at a time: the backlog falls below the mark after `calls - BEHIND` naps, and only then is it listed.
    let listed_at = next_listing(&double, &thread, seen, LONGEST_DEFERRAL).await;
    let answered = calls - double.pending(&thread).len();
    assert!(
        answered + BEHIND >= calls,
        "listed with {} calls waiting, {answered} answered",
        calls - answered
    );
    // Caught up, the listings come every poll interval again.
    let next = next_listing(&double, &thread, seen + 1, POLL_INTERVAL * 2).await;
    assert!(next - listed_at <= POLL_INTERVAL + NAP + LOOK, "{:?}", next - listed_at);
    assert!(
        double.wait_all_answered(NAP * calls as u32).await,
        "every call is answered"
    );
    bridge.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_backlog_that_does_not_drain_delays_the_periodic_listing_by_thirty_seconds_at_most() {
    let calls = BEHIND + 100;
    let (double, bridge, thread) = one_worker_given(calls, "held", |_| json!({})).await;
    let seen = listings(&double, &thread);
    let injected = Instant::now();

    let listed_at = next_listing(&double, &thread, seen, LONGEST_DEFERRAL + POLL_INTERVAL * 2).await;
    let waited = listed_at - injected;
    assert!(
        waited >= LONGEST_DEFERRAL && waited <= LONGEST_DEFERRAL + POLL_INTERVAL + LOOK,
        "listed {waited:?} after the backlog arrived"
    );
    HELD.add_permits(calls);
    assert!(
        double.wait_all_answered(WAIT).await,
        "every call is answered once released"
    );
    bridge.shutdown().await;
}

/// Never returns: cancelled when the bridge shuts down.
#[skill]
async fn stuck() -> &'static str {
    std::future::pending::<()>().await;
    "never"
}

#[tokio::test(start_paused = true)]
async fn shutting_down_with_a_backlog_answers_it_without_a_listing_per_answer() {
    let double = CodexManagerDouble::start().await.unwrap();
    let concurrency = 16;
    let bridge = start(bridge_for(&double).concurrency(concurrency)).await;
    let thread = only_thread(&bridge);
    let calls = 400;
    for _ in 0..calls {
        double.inject_tool_call(&thread, "stuck", json!({}));
    }
    eventually("every call taken", || bridge.stats().in_flight() == calls as i64).await;
    let before = listings(&double, &thread);

    // The stream stops first, so no answer stands for a live connection: each is checked against a listing.
    let report = bridge.shutdown().await;
    assert_eq!((report.cancelled, report.answered), (calls, calls), "{report:?}");
    assert!(double.pending(&thread).is_empty(), "every call answered");
    let taken = listings(&double, &thread) - before;
    // The answers waiting while one listing is taken all use it: about one listing per `concurrency` answers.
    assert!(
        taken <= calls / 4,
        "{taken} listings to answer {calls} calls with {concurrency} workers"
    );
}
