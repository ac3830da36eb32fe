//! One benchmark run: start the double, measure start-up, run W1 (floor and bridge alternating), W2, W3 and W4,
//! stop everything, and judge the figures against the targets.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use skillbridge_bench::clients::{Bins, Client, Kind};
use skillbridge_bench::double::{Burst, Double};
use skillbridge_bench::procfs::{Machine, cpu_micros, load_average, machine_busy_micros, status_kib};
use skillbridge_bench::stats::median;

use crate::report::{
    CpuPerCall, Footprint, JournalCost, PlanSummary, Report, Series, Target, ValidationCost, W4, Workload,
};

/// How long the W2 skill sleeps.
const W2_SKILL_TIME: Duration = Duration::from_millis(50);

/// Sizes and limits of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Calls each client answers before measuring starts.
    pub warmup_calls: usize,
    /// Calls per W1 round.
    pub w1_calls: usize,
    /// W1 rounds per client.
    pub w1_rounds: usize,
    /// Calls per W2 round.
    pub w2_calls: usize,
    /// W2 rounds.
    pub w2_rounds: usize,
    /// Calls kept unanswered at most.
    pub outstanding: usize,
    /// Calls of the serial W1 diagnostic (one outstanding: latency without queueing).
    pub serial_calls: usize,
    /// Separate bridge starts measured for start-to-ready (the main bridge's start is one more).
    pub start_runs: usize,
    /// Calls of the W4 round.
    pub w4_calls: usize,
    /// How long one burst may take before it is given up.
    pub burst_timeout: Duration,
    /// How long a client sits idle after becoming ready before its RSS is read.
    pub idle_settle: Duration,
}

impl Plan {
    /// The benchmark as specified: W1 10,000 calls, W2 2,000 calls, 64 outstanding.
    pub fn full() -> Plan {
        Plan {
            warmup_calls: 2_000,
            w1_calls: 10_000,
            w1_rounds: 5,
            w2_calls: 2_000,
            w2_rounds: 3,
            outstanding: 64,
            serial_calls: 2_000,
            start_runs: 5,
            w4_calls: 10_000,
            burst_timeout: Duration::from_secs(60),
            idle_settle: Duration::from_millis(500),
        }
    }

    /// Tiny sizes that exercise every step in seconds (the smoke test's run).
    pub fn quick() -> Plan {
        Plan {
            warmup_calls: 50,
            w1_calls: 300,
            w1_rounds: 1,
            w2_calls: 128,
            w2_rounds: 1,
            outstanding: 64,
            serial_calls: 50,
            start_runs: 1,
            w4_calls: 200,
            burst_timeout: Duration::from_secs(20),
            idle_settle: Duration::from_millis(100),
        }
    }

    fn summary(&self) -> PlanSummary {
        PlanSummary {
            warmup_calls: self.warmup_calls,
            w1_calls: self.w1_calls,
            w1_rounds: self.w1_rounds,
            w2_calls: self.w2_calls,
            w2_rounds: self.w2_rounds,
            outstanding: self.outstanding,
            serial_calls: self.serial_calls,
            start_runs: self.start_runs,
            w4_calls: self.w4_calls,
        }
    }
}

/// The rounds of one client on one workload, with the CPU and outcome counts gathered around them.
struct Rounds {
    workload: Workload,
    arguments: Value,
    bursts: Vec<Burst>,
    client_cpu_us: u64,
    double_cpu_us: u64,
    other_cpu_us: u64,
    wall_us: u64,
    outcomes: BTreeMap<String, u64>,
}

impl Rounds {
    fn new(name: &'static str, skill: &'static str, arguments: Value, calls: usize, outstanding: usize) -> Rounds {
        Rounds {
            workload: Workload {
                name,
                skill,
                calls,
                outstanding,
            },
            arguments,
            bursts: Vec::new(),
            client_cpu_us: 0,
            double_cpu_us: 0,
            other_cpu_us: 0,
            wall_us: 0,
            outcomes: BTreeMap::new(),
        }
    }

    /// Runs one measured burst against `client`.
    async fn round(&mut self, double: &Double, client: &mut Client, plan: &Plan) -> Result<()> {
        let counts_before = client.call_counts().await?;
        let client_cpu = cpu_micros(client.pid()).unwrap_or(0);
        let double_cpu = cpu_micros(double.pid()).unwrap_or(0);
        let machine_busy = machine_busy_micros().unwrap_or(0);
        let started = Instant::now();
        let burst = double
            .burst(
                client.thread_id(),
                self.workload.skill,
                &self.arguments,
                self.workload.calls,
                self.workload.outstanding,
                plan.burst_timeout,
            )
            .await?;
        self.wall_us += started.elapsed().as_micros() as u64;
        let client_cpu = cpu_micros(client.pid()).unwrap_or(0).saturating_sub(client_cpu);
        let double_cpu = cpu_micros(double.pid()).unwrap_or(0).saturating_sub(double_cpu);
        let machine_busy = machine_busy_micros().unwrap_or(0).saturating_sub(machine_busy);
        self.client_cpu_us += client_cpu;
        self.double_cpu_us += double_cpu;
        self.other_cpu_us += machine_busy.saturating_sub(client_cpu + double_cpu);
        let counts_after = client.call_counts().await?;
        for ((skill, outcome), n) in &counts_after {
            let before = counts_before
                .get(&(skill.clone(), outcome.clone()))
                .copied()
                .unwrap_or(0);
            if skill == self.workload.skill && *n > before {
                *self.outcomes.entry(outcome.clone()).or_default() += n - before;
            }
        }
        client.check_running()?;
        println!(
            "  {} {:<8} {:<10} {:>6} calls @{:<2} {:>8.0} calls/s  p50 {:>6} µs  p99 {:>6} µs{}",
            self.workload.name,
            client.kind().name(),
            self.workload.skill,
            burst.answered,
            self.workload.outstanding,
            burst.calls_per_sec,
            burst.latency_us.p50,
            burst.latency_us.p99,
            if burst.timed_out { "  TIMED OUT" } else { "" }
        );
        self.bursts.push(burst);
        Ok(())
    }

    fn series(self, client: Kind) -> Series {
        let answered: usize = self.bursts.iter().map(|b| b.answered).sum::<usize>().max(1);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let cpu = CpuPerCall {
            client: self.client_cpu_us as f64 / answered as f64,
            double: self.double_cpu_us as f64 / answered as f64,
            other_percent: 100.0 * self.other_cpu_us as f64 / (self.wall_us.max(1) as f64 * cpus),
        };
        Series::new(self.workload, client, self.bursts, cpu, self.outcomes)
    }
}

/// Answers `calls` calls of `skill` without measuring them.
async fn warm_up(
    double: &Double,
    client: &Client,
    skill: &str,
    arguments: &Value,
    calls: usize,
    plan: &Plan,
) -> Result<()> {
    let burst = double
        .burst(
            client.thread_id(),
            skill,
            arguments,
            calls,
            plan.outstanding,
            plan.burst_timeout,
        )
        .await?;
    ensure!(
        burst.answered == calls,
        "{} answered {} of {calls} warm-up calls",
        client.kind().name(),
        burst.answered
    );
    Ok(())
}

/// Idle RSS: VmRSS after the client has sat idle for the settle time.
async fn idle_rss(client: &Client, plan: &Plan) -> u64 {
    tokio::time::sleep(plan.idle_settle).await;
    status_kib(client.pid(), "VmRSS").unwrap_or(0)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Runs every workload with the binaries in `bins`, writing the children's stderr to `log_dir`.
pub async fn run(plan: &Plan, bins: &Bins, log_dir: &Path) -> Result<Report> {
    let started = Instant::now();
    let load_before = load_average();
    let machine = Machine::detect();
    let trivial = json!({"text": "ping"});
    let double = Double::start(&bins.path("bench-double"), log_dir).await?;
    println!("double listening on {}", double.base_url());

    // W3 start-to-ready first, while nothing else runs.
    let mut bridge_starts = Vec::new();
    for run in 0..plan.start_runs {
        let client = Client::start(Kind::Bridge, bins, &double, log_dir, &format!("start{run}")).await?;
        bridge_starts.push(millis(client.start_to_ready()));
        let status = client.stop().await?;
        ensure!(status.success(), "the bridge exited with {status} after SIGTERM");
    }

    let mut floor = Client::start(Kind::Floor, bins, &double, log_dir, "w1").await?;
    let floor_idle = idle_rss(&floor, plan).await;
    let floor_start = millis(floor.start_to_ready());
    let mut bridge = Client::start(Kind::Bridge, bins, &double, log_dir, "w1").await?;
    bridge_starts.push(millis(bridge.start_to_ready()));
    let bridge_idle = idle_rss(&bridge, plan).await;
    let mut journaled = Client::start(Kind::Journaled, bins, &double, log_dir, "w1").await?;
    println!(
        "bridge start-to-ready: {:?} ms",
        bridge_starts.iter().map(|ms| format!("{ms:.1}")).collect::<Vec<_>>()
    );

    // W1: floor and bridge alternate rounds, so drift on a shared machine hits both alike.
    warm_up(&double, &floor, "noop", &trivial, plan.warmup_calls, plan).await?;
    warm_up(&double, &bridge, "noop", &trivial, plan.warmup_calls, plan).await?;
    warm_up(&double, &journaled, "noop", &trivial, plan.warmup_calls, plan).await?;
    let mut w1_floor = Rounds::new("W1", "noop", trivial.clone(), plan.w1_calls, plan.outstanding);
    let mut w1_bridge = Rounds::new("W1", "noop", trivial.clone(), plan.w1_calls, plan.outstanding);
    let mut w1_journaled = Rounds::new("W1", "noop", trivial.clone(), plan.w1_calls, plan.outstanding);
    for _ in 0..plan.w1_rounds {
        w1_floor.round(&double, &mut floor, plan).await?;
        w1_bridge.round(&double, &mut bridge, plan).await?;
        w1_journaled.round(&double, &mut journaled, plan).await?;
    }
    let floor_peak = status_kib(floor.pid(), "VmHWM").unwrap_or(0);
    let bridge_peak = status_kib(bridge.pid(), "VmHWM").unwrap_or(0);

    // One call at a time: the latency each client adds to a call, without queueing behind 63 others.
    let mut serial_floor = Rounds::new("W1", "noop", trivial.clone(), plan.serial_calls, 1);
    let mut serial_bridge = Rounds::new("W1", "noop", trivial.clone(), plan.serial_calls, 1);
    let mut serial_journaled = Rounds::new("W1", "noop", trivial.clone(), plan.serial_calls, 1);
    serial_floor.round(&double, &mut floor, plan).await?;
    serial_bridge.round(&double, &mut bridge, plan).await?;
    serial_journaled.round(&double, &mut journaled, plan).await?;
    let journaled_exit = journaled.stop().await?;
    ensure!(
        journaled_exit.success(),
        "the journaled bridge exited with {journaled_exit} after SIGTERM"
    );

    // The same with an `async fn` skill: shows what running a plain `fn` skill on the blocking pool costs.
    warm_up(&double, &bridge, "noop_async", &trivial, plan.warmup_calls, plan).await?;
    let mut w1_async = Rounds::new("W1", "noop_async", trivial.clone(), plan.w1_calls, plan.outstanding);
    for _ in 0..plan.w1_rounds {
        w1_async.round(&double, &mut bridge, plan).await?;
    }

    // A bounded struct input (six fields, each checked against its schema before the skill runs), next to the
    // trivial `async fn`: what validating and reading a real input costs per call.
    let order = json!({"ticket_id": "T-42", "quantity": 3, "items": ["a", "b"], "contact": "ops@example.com",
                       "share": 0.5, "priority": "high"});
    warm_up(&double, &bridge, "bounded_order", &order, plan.warmup_calls, plan).await?;
    let mut w1_bounded = Rounds::new("W1", "bounded_order", order, plan.w1_calls, plan.outstanding);
    for _ in 0..plan.w1_rounds {
        w1_bounded.round(&double, &mut bridge, plan).await?;
    }

    // W2: the 50 ms skill; at most `outstanding` run at once, so the bound is outstanding / 50 ms.
    let idle = json!({});
    warm_up(&double, &bridge, "sleep_50ms", &idle, plan.outstanding, plan).await?;
    let mut w2 = Rounds::new("W2", "sleep_50ms", idle, plan.w2_calls, plan.outstanding);
    for _ in 0..plan.w2_rounds {
        w2.round(&double, &mut bridge, plan).await?;
    }
    floor.stop().await?;
    let bridge_exit = bridge.stop().await?;
    ensure!(
        bridge_exit.success(),
        "the bridge exited with {bridge_exit} after SIGTERM"
    );

    // W4: the blocking facade's handler path.
    let mut blocking = Client::start(Kind::Blocking, bins, &double, log_dir, "w4").await?;
    warm_up(
        &double,
        &blocking,
        "noop",
        &trivial,
        plan.warmup_calls.min(plan.w4_calls),
        plan,
    )
    .await?;
    let mut w4 = Rounds::new("W4", "noop", trivial.clone(), plan.w4_calls, plan.outstanding);
    w4.round(&double, &mut blocking, plan).await?;
    blocking.stop().await?;
    double.stop().await?;

    let (w1_bridge, serial_bridge) = (w1_bridge.series(Kind::Bridge), serial_bridge.series(Kind::Bridge));
    let (w1_journaled, serial_journaled) = (
        w1_journaled.series(Kind::Journaled),
        serial_journaled.series(Kind::Journaled),
    );
    let journal = JournalCost::between(&w1_bridge, &w1_journaled, &serial_bridge, &serial_journaled);
    let (w1_async, w1_bounded) = (w1_async.series(Kind::Bridge), w1_bounded.series(Kind::Bridge));
    let validation = ValidationCost::between(&w1_async, &w1_bounded);
    let w1 = vec![
        w1_floor.series(Kind::Floor),
        w1_bridge,
        w1_async,
        w1_bounded,
        serial_floor.series(Kind::Floor),
        serial_bridge,
        w1_journaled,
        serial_journaled,
    ];
    let w2 = w2.series(Kind::Bridge);
    let w4 = w4.series(Kind::Blocking);
    let w2_bound = plan.outstanding as f64 / W2_SKILL_TIME.as_secs_f64();
    let w3 = vec![
        Footprint {
            client: Kind::Floor,
            idle_rss_kib: floor_idle,
            peak_rss_kib: floor_peak,
            start_to_ready_ms: vec![floor_start],
            start_to_ready_median_ms: floor_start,
        },
        Footprint {
            client: Kind::Bridge,
            idle_rss_kib: bridge_idle,
            peak_rss_kib: bridge_peak,
            start_to_ready_median_ms: median(bridge_starts.clone()),
            start_to_ready_ms: bridge_starts,
        },
    ];
    let fraction = w4.calls_per_sec / w1[0].calls_per_sec.max(f64::MIN_POSITIVE);
    let w4 = W4 {
        note: format!(
            "the blocking facade (`manager::blocking::CodexManager`) has no stream of its own; a program without an \
             async runtime follows the stream with `StreamClient::run_blocking` + `sync_handler` and answers with the \
             blocking `respond_tool_call`. Stream handlers run one frame at a time, so that path answers one call \
             at a time: {:.0} calls/s, {:.1}% of the floor.",
            w4.calls_per_sec,
            fraction * 100.0
        ),
        series: Some(w4),
        fraction_of_floor: Some(fraction),
    };
    let targets = judge(&w1, &w2, w2_bound, &w3, &w4);
    Ok(Report {
        finished_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_s: started.elapsed().as_secs_f64(),
        machine,
        load_before,
        load_after: load_average(),
        plan: plan.summary(),
        w1,
        w2,
        w2_bound_calls_per_sec: w2_bound,
        w3,
        w4,
        journal,
        validation,
        targets,
    })
}

/// The targets of the issue, judged on the medians.
fn judge(w1: &[Series], w2: &Series, w2_bound: f64, w3: &[Footprint], w4: &W4) -> Vec<Target> {
    let (floor, bridge) = (&w1[0], &w1[1]);
    let ratio = bridge.calls_per_sec / floor.calls_per_sec.max(f64::MIN_POSITIVE);
    let overhead = bridge.latency_us.p99 as i64 - floor.latency_us.p99 as i64;
    let w2_fraction = w2.calls_per_sec / w2_bound;
    let bridge_w3 = &w3[1];
    let idle_mib = bridge_w3.idle_rss_kib as f64 / 1024.0;
    let all_series = w1.iter().chain(std::iter::once(w2)).chain(w4.series.iter());
    let incomplete: Vec<String> = all_series
        .filter(|s| !s.complete || s.failed_outcomes() > 0)
        .map(|s| format!("{} {} {}", s.workload, s.client.name(), s.skill))
        .collect();
    vec![
        Target {
            name: "W1 bridge calls/s vs floor".into(),
            goal: "≥ 90%".into(),
            measured: format!(
                "{:.1}% ({:.0} vs {:.0})",
                ratio * 100.0,
                bridge.calls_per_sec,
                floor.calls_per_sec
            ),
            met: ratio >= 0.90,
        },
        Target {
            name: "W1 p99 overhead (bridge − floor)".into(),
            goal: "< 1,000 µs".into(),
            measured: format!("{overhead} µs ({} vs {})", bridge.latency_us.p99, floor.latency_us.p99),
            met: overhead < 1_000,
        },
        Target {
            name: "W2 calls/s vs bound".into(),
            goal: format!("≥ 90% of {w2_bound:.0}/s"),
            measured: format!("{:.1}% ({:.0}/s)", w2_fraction * 100.0, w2.calls_per_sec),
            met: w2_fraction >= 0.90,
        },
        Target {
            name: "W3 bridge idle RSS".into(),
            goal: "< 15 MiB".into(),
            measured: format!("{idle_mib:.1} MiB"),
            met: idle_mib < 15.0,
        },
        Target {
            name: "W3 bridge start-to-ready (median)".into(),
            goal: "< 100 ms".into(),
            measured: format!("{:.1} ms", bridge_w3.start_to_ready_median_ms),
            met: bridge_w3.start_to_ready_median_ms < 100.0,
        },
        Target {
            name: "every call answered, successfully".into(),
            goal: "all".into(),
            measured: if incomplete.is_empty() {
                "all".into()
            } else {
                format!("not in: {}", incomplete.join(", "))
            },
            met: incomplete.is_empty(),
        },
    ]
}
