//! The scale run: a 50 ms skill, `--concurrency 16` per bridge, one bridge on its own (the baseline), then one, two
//! and three bridges of a group over the same eight sessions; calls per second (close to 1×, 2×, 3×: judged in the
//! full run), the answer latency the double measured (p50, p99), and what the claims cost: round trips to the store
//! per call, their mean, and their p50 and p99 as the bridges' `/cluster` gives them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use skillbridge_bench::check::Check;
use skillbridge_bench::metrics::Metrics;
use skillbridge_bench::table::Table;

use crate::group::{BridgeSettings, Ctx, Group, SESSIONS, admin_get};

/// The sizes of a scale run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Calls per setup.
    pub calls: usize,
    pub skill_ms: u64,
    pub concurrency: usize,
    pub timeout_s: u64,
    /// N bridges of a group must serve at least this share of N times one bridge's calls/s; `None` prints the
    /// figures without judging them (a debug build's scale means little).
    pub min_scaling: Option<f64>,
}

impl Plan {
    pub fn new(calls: usize, min_scaling: Option<f64>) -> Plan {
        Plan {
            calls,
            skill_ms: 50,
            concurrency: 16,
            timeout_s: 300,
            min_scaling,
        }
    }
}

/// One setup's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Bridges serving.
    pub bridges: usize,
    /// Whether they formed a group (`--cluster`).
    pub cluster: bool,
    pub answered: usize,
    pub calls_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Round trips to the store per call answered (claims, results, heartbeats).
    pub round_trips_per_call: f64,
    /// Their mean, in milliseconds.
    pub round_trip_mean_ms: f64,
    /// Their median and 99th percentile, the highest any bridge's `/cluster` gives (bucket bounds), milliseconds.
    pub round_trip_p50_ms: f64,
    pub round_trip_p99_ms: f64,
}

/// What a scale run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    pub plan: Plan,
    pub steps: Vec<Step>,
    /// Whether N bridges served close to N times one bridge's calls/s (none when the plan does not judge).
    pub checks: Vec<Check>,
}

pub async fn run(ctx: &Ctx, plan: Plan) -> Result<Scale> {
    let mut steps = Vec::new();
    for (bridges, cluster) in [(1, false), (1, true), (2, true), (3, true)] {
        let step = measure(ctx, &plan, bridges, cluster).await?;
        println!(
            "  {bridges} bridge{}{}: {:.0} calls/s",
            if bridges == 1 { "" } else { "s" },
            if cluster { " in a group" } else { " on its own" },
            step.calls_per_sec
        );
        steps.push(step);
    }
    let checks = scaling_checks(&plan, &steps);
    Ok(Scale { plan, steps, checks })
}

async fn measure(ctx: &Ctx, plan: &Plan, bridges: usize, cluster: bool) -> Result<Step> {
    let settings = BridgeSettings {
        concurrency: plan.concurrency,
        lease: cluster.then_some(Duration::from_secs(10)),
        poll_interval: Duration::from_secs(5),
    };
    let tag = format!("scale{bridges}{}", if cluster { "c" } else { "" });
    let mut group = Group::start(ctx, &tag, settings).await?;
    group.start_bridges(bridges).await?;
    let per_session = plan.calls / SESSIONS;
    // Twice what the bridges can run at once, so that none waits for work.
    let outstanding = (2 * plan.concurrency * bridges).div_ceil(SESSIONS);
    let started = Instant::now();
    let bursts = group.bursts(
        plan.skill_ms,
        per_session,
        outstanding,
        Duration::from_secs(plan.timeout_s),
    );
    let mut answered = 0;
    let (mut p50s, mut p99) = (Vec::new(), 0u64);
    for burst in bursts {
        let burst = burst.await??;
        answered += burst.answered;
        p50s.push(burst.latency_us.p50);
        p99 = p99.max(burst.latency_us.p99);
    }
    let elapsed = started.elapsed();
    p50s.sort_unstable();
    let (mut trips, mut trip_seconds, mut trip_p50, mut trip_p99) = (0.0, 0.0, 0.0f64, 0.0f64);
    for member in &group.members {
        let metrics = Metrics::parse(&member.client.metrics().await?);
        trips += metrics.get("skillbridge_cluster_store_seconds_count");
        trip_seconds += metrics.get("skillbridge_cluster_store_seconds_sum");
        if cluster {
            let view = admin_get(member, "/cluster").await?;
            let quantile = |key: &str| {
                view[key]
                    .as_f64()
                    .with_context(|| format!("/cluster has no {key}: {view}"))
            };
            trip_p50 = trip_p50.max(quantile("roundTripP50Ms")?);
            trip_p99 = trip_p99.max(quantile("roundTripP99Ms")?);
        }
    }
    group.stop().await?;
    Ok(Step {
        bridges,
        cluster,
        answered,
        calls_per_sec: answered as f64 / elapsed.as_secs_f64(),
        p50_ms: p50s.get(p50s.len() / 2).copied().unwrap_or_default() as f64 / 1000.0,
        p99_ms: p99 as f64 / 1000.0,
        round_trips_per_call: if answered == 0 { 0.0 } else { trips / answered as f64 },
        round_trip_mean_ms: if trips == 0.0 {
            0.0
        } else {
            trip_seconds / trips * 1000.0
        },
        round_trip_p50_ms: trip_p50,
        round_trip_p99_ms: trip_p99,
    })
}

/// The calls/s of one bridge in a group: what the others are measured against.
fn one_bridge(steps: &[Step]) -> f64 {
    steps
        .iter()
        .find(|step| step.cluster && step.bridges == 1)
        .map_or(1.0, |step| step.calls_per_sec)
}

/// Whether N bridges served close to N times one bridge's calls/s (none when the plan does not judge).
fn scaling_checks(plan: &Plan, steps: &[Step]) -> Vec<Check> {
    let Some(share) = plan.min_scaling else {
        return Vec::new();
    };
    let one = one_bridge(steps);
    steps
        .iter()
        .filter(|step| step.cluster && step.bridges > 1)
        .map(|step| {
            let goal = share * step.bridges as f64;
            let times = step.calls_per_sec / one;
            Check::new(
                format!(
                    "{} bridges in a group serve about {}× one bridge",
                    step.bridges, step.bridges
                ),
                format!(">= {goal:.2}×"),
                format!("{times:.2}×"),
                times >= goal,
            )
        })
        .collect()
}

impl Scale {
    /// The table: one row per setup, calls/s also as a multiple of one bridge in a group.
    pub fn table(&self) -> Table {
        let one = one_bridge(&self.steps);
        let mut table = Table::new(&[
            "bridges",
            "calls",
            "calls/s",
            "× one bridge",
            "p50 ms",
            "p99 ms",
            "store round trips per call",
            "round trip mean / p50 / p99 ms",
        ])
        .right_aligned_from(1);
        for step in &self.steps {
            let setup = if step.cluster {
                format!("{} (--cluster)", step.bridges)
            } else {
                format!("{} (on its own)", step.bridges)
            };
            let store = |value: String| if step.cluster { value } else { "–".to_owned() };
            table.row(vec![
                setup,
                step.answered.to_string(),
                format!("{:.0}", step.calls_per_sec),
                format!("{:.2}", step.calls_per_sec / one),
                format!("{:.1}", step.p50_ms),
                format!("{:.1}", step.p99_ms),
                store(format!("{:.2}", step.round_trips_per_call)),
                store(format!(
                    "{:.3} / {} / {}",
                    step.round_trip_mean_ms, step.round_trip_p50_ms, step.round_trip_p99_ms
                )),
            ]);
        }
        table
    }
}
