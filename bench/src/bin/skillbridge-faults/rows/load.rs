//! Row 1, load: rounds of a baseline at 1,000 calls outstanding and then 50,000 calls issued at once, on one session.
//! The bridge must answer every call exactly once with no more sockets to the upstream than its concurrency allows,
//! within its memory budget, and about as fast at once as at the baseline (their median rates compared).

use anyhow::Result;
use serde_json::json;
use skillbridge_bench::double::Burst;
use skillbridge_bench::procfs;
use skillbridge_bench::stats::median;

use super::{Measured, counts, exactly_once, no_reruns};
use crate::plan::Plan;
use crate::report::Check;
use crate::rig::{Ctx, Rig, RigOptions};

pub fn fault(plan: &Plan) -> String {
    format!(
        "load: {} calls at once (baseline {} at {} outstanding), {} rounds",
        plan.load_calls, plan.baseline_calls, plan.baseline_outstanding, plan.load_rounds
    )
}

/// One burst and what it cost the bridge and the double.
struct Phase {
    /// `warm-up`, `baseline` or `at once`.
    kind: &'static str,
    /// Which round of its kind (from 1; the warm-up has none).
    round: Option<usize>,
    outstanding: usize,
    burst: Burst,
    /// CPU time per call of the bridge and of the double, µs.
    cpu_per_call: [f64; 2],
}

pub async fn run(ctx: &Ctx) -> Result<Measured> {
    let plan = &ctx.plan;
    let rig = Rig::start(ctx, "load", RigOptions::default()).await?;
    let pids = [rig.bridge()?.pid(), rig.double().pid()];
    let cpu = || pids.map(|pid| procfs::cpu_micros(pid).unwrap_or(0));
    let arguments = json!({});
    let mut schedule = vec![("warm-up", None, plan.warmup_calls, plan.baseline_outstanding)];
    for round in 1..=plan.load_rounds {
        schedule.push(("baseline", Some(round), plan.baseline_calls, plan.baseline_outstanding));
        schedule.push(("at once", Some(round), plan.load_calls, plan.load_calls));
    }
    let mut phases = Vec::new();
    for (kind, round, count, outstanding) in schedule {
        let before = cpu();
        let burst = rig.burst(&arguments, count, outstanding).await?;
        let after = cpu();
        let cpu_per_call = [0, 1].map(|i| after[i].saturating_sub(before[i]) as f64 / count.max(1) as f64);
        phases.push(Phase {
            kind,
            round,
            outstanding,
            burst,
            cpu_per_call,
        });
    }
    let ending = rig.finish().await?;

    let calls = phases.iter().map(|p| p.burst.count).sum();
    let answered = phases.iter().map(|p| p.burst.answered).sum();
    let counts = counts(calls, answered, 0, &ending);
    let usage = ending.usage;
    let max_sockets = plan.concurrency + plan.socket_slack;
    let rss_mib = usage.peak_rss_kib as f64 / 1024.0;
    let median_rate = |kind: &str| {
        median(
            phases
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.burst.calls_per_sec)
                .collect(),
        )
    };
    let (at_once, baseline) = (median_rate("at once"), median_rate("baseline"));
    let ratio = at_once / baseline.max(f64::MIN_POSITIVE);
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
            "calls/s at once vs baseline (medians)",
            format!("≥ {:.0}%", plan.min_throughput_ratio * 100.0),
            format!("{:.0}% ({at_once:.0} vs {baseline:.0})", ratio * 100.0),
            ratio >= plan.min_throughput_ratio,
        ),
    ];
    let notes = phases
        .iter()
        .map(|Phase { kind, round, outstanding, burst, cpu_per_call: [bridge_cpu, double_cpu] }| {
            let name = round.map_or_else(|| kind.to_string(), |round| format!("{kind} {round}"));
            format!(
                "{name}: {} of {} calls @{outstanding} in {} ms, {:.0} calls/s, latency p50 {} µs p99 {} µs max {} µs, \
                 CPU per call {bridge_cpu:.1} µs bridge, {double_cpu:.1} µs double{}",
                burst.answered,
                burst.count,
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
        calls_per_sec: at_once,
        ending,
        checks,
        notes,
    })
}
