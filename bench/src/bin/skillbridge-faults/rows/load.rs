//! Row 1, load: a baseline at 1,000 calls outstanding, then 50,000 calls issued at once, on one session. The bridge
//! must answer every call exactly once with no more sockets to the upstream than its concurrency allows, within its
//! memory budget, and about as fast as at the baseline.

use anyhow::Result;
use serde_json::json;

use super::{Measured, counts, exactly_once, no_reruns};
use crate::plan::Plan;
use crate::report::Check;
use crate::rig::{Ctx, Rig, RigOptions};

pub fn fault(plan: &Plan) -> String {
    format!(
        "load: {} calls at once (baseline {} at {} outstanding)",
        plan.load_calls, plan.baseline_calls, plan.baseline_outstanding
    )
}

pub async fn run(ctx: &Ctx) -> Result<Measured> {
    let plan = &ctx.plan;
    let rig = Rig::start(ctx, "load", RigOptions::default()).await?;
    let arguments = json!({});
    let warmup = rig
        .burst(&arguments, plan.warmup_calls, plan.baseline_outstanding)
        .await?;
    let baseline = rig
        .burst(&arguments, plan.baseline_calls, plan.baseline_outstanding)
        .await?;
    let at_once = rig.burst(&arguments, plan.load_calls, plan.load_calls).await?;
    let ending = rig.finish().await?;

    let bursts = [warmup, baseline, at_once];
    let calls = bursts.iter().map(|b| b.count).sum();
    let answered = bursts.iter().map(|b| b.answered).sum();
    let counts = counts(calls, answered, 0, &ending);
    let usage = ending.usage;
    let max_sockets = plan.concurrency + plan.socket_slack;
    let rss_mib = usage.peak_rss_kib as f64 / 1024.0;
    let ratio = at_once.calls_per_sec / baseline.calls_per_sec.max(f64::MIN_POSITIVE);
    let checks = vec![
        exactly_once(&counts),
        no_reruns(&counts),
        Check::new(
            "peak sockets to the upstream",
            format!(
                "≤ {max_sockets} (concurrency {} + {})",
                plan.concurrency, plan.socket_slack
            ),
            usage.peak_sockets.to_string(),
            usage.peak_sockets <= max_sockets,
        ),
        Check::new(
            "peak RSS",
            format!("≤ {:.0} MiB", plan.max_rss_mib),
            format!("{rss_mib:.1} MiB"),
            rss_mib <= plan.max_rss_mib,
        ),
        Check::new(
            "calls/s at once vs baseline",
            format!("≥ {:.0}%", plan.min_throughput_ratio * 100.0),
            format!(
                "{:.0}% ({:.0} vs {:.0})",
                ratio * 100.0,
                at_once.calls_per_sec,
                baseline.calls_per_sec
            ),
            ratio >= plan.min_throughput_ratio,
        ),
    ];
    let notes = bursts
        .iter()
        .zip(["warm-up", "baseline", "at once"])
        .map(|(burst, name)| {
            format!(
                "{name}: {} of {} calls @{} in {} ms, {:.0} calls/s, latency p50 {} µs p99 {} µs max {} µs{}",
                burst.answered,
                burst.count,
                if name == "at once" {
                    burst.count
                } else {
                    plan.baseline_outstanding
                },
                burst.elapsed_ms,
                burst.calls_per_sec,
                burst.latency_us.p50,
                burst.latency_us.p99,
                burst.latency_us.max,
                if burst.timed_out { " (timed out)" } else { "" }
            )
        })
        .collect();
    Ok(Measured {
        counts,
        calls_per_sec: at_once.calls_per_sec,
        ending,
        checks,
        notes,
    })
}
