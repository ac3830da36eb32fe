//! The figures of one run (serialized as the JSON report), the targets they are judged against, and the table
//! printed on the terminal and written as Markdown.

use std::collections::BTreeMap;

use serde::Serialize;

use skillbridge_bench::clients::Kind;
use skillbridge_bench::double::{Burst, Latency};
use skillbridge_bench::procfs::Machine;
use skillbridge_bench::stats::median;
use skillbridge_bench::table::{Table, thousands};

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seconds since the Unix epoch when the run finished.
    pub finished_at_unix: u64,
    /// Wall time of the whole run, in seconds (builds excluded).
    pub duration_s: f64,
    /// The machine.
    pub machine: Machine,
    /// 1/5/15-minute load averages before and after the run (other work on the machine skews the figures).
    pub load_before: Option<[f64; 3]>,
    /// See `load_before`.
    pub load_after: Option<[f64; 3]>,
    /// The sizes used.
    pub plan: PlanSummary,
    /// W1: the trivial skill, floor vs bridge (plus the async variant of the skill as a diagnostic).
    pub w1: Vec<Series>,
    /// W2: the 50 ms skill through the bridge.
    pub w2: Series,
    /// The W2 bound: outstanding calls / 50 ms.
    pub w2_bound_calls_per_sec: f64,
    /// W3: memory and start-up, per client.
    pub w3: Vec<Footprint>,
    /// W4: the blocking facade's handler path, when it differs from the bridge's.
    pub w4: W4,
    /// What `--journal` costs per call.
    pub journal: JournalCost,
    /// What validating a bounded struct input costs per call.
    pub validation: ValidationCost,
    /// Every target, with the measured value.
    pub targets: Vec<Target>,
}

/// What recording each result in the journal (`serve --journal`) costs, from the W1 `noop` rounds of the bridge
/// with and without it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct JournalCost {
    /// Calls/s with the journal as a fraction of calls/s without, at the W1 load.
    pub throughput_ratio: f64,
    /// Bridge CPU time added per call, in microseconds, at the W1 load.
    pub cpu_us_per_call: f64,
    /// Median latency added to a call answered alone (`@1`: one commit, one fsync per call), in microseconds.
    pub serial_p50_us: f64,
}

impl JournalCost {
    /// From the W1 series of the bridge and the journaled bridge, loaded and one call at a time.
    pub fn between(
        plain: &Series,
        journaled: &Series,
        plain_serial: &Series,
        journaled_serial: &Series,
    ) -> JournalCost {
        JournalCost {
            throughput_ratio: journaled.calls_per_sec / plain.calls_per_sec.max(f64::MIN_POSITIVE),
            cpu_us_per_call: journaled.cpu_us_per_call.client - plain.cpu_us_per_call.client,
            serial_p50_us: journaled_serial.latency_us.p50 as f64 - plain_serial.latency_us.p50 as f64,
        }
    }

    fn line(&self) -> String {
        format!(
            "Journal (`serve --journal`): {:.1}% of the calls/s without it at @64 (results of concurrent calls share \
             a commit), {:+.1} µs bridge CPU per call, {:+.0} µs median latency per call answered alone (one commit \
             and fsync each).",
            self.throughput_ratio * 100.0,
            self.cpu_us_per_call,
            self.serial_p50_us
        )
    }
}

/// What checking a call's arguments against a bounded schema costs, from the W1 rounds of `bounded_order` (a
/// struct input of six bounded fields) next to those of `noop_async` (one string), both `async fn` skills on the
/// same bridge.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ValidationCost {
    /// Calls/s of `bounded_order` as a fraction of `noop_async`'s.
    pub throughput_ratio: f64,
    /// Bridge CPU time added per call, in microseconds: validating six bounds and reading the larger input.
    pub cpu_us_per_call: f64,
}

impl ValidationCost {
    /// From the W1 series of the trivial and the bounded skill.
    pub fn between(trivial: &Series, bounded: &Series) -> ValidationCost {
        ValidationCost {
            throughput_ratio: bounded.calls_per_sec / trivial.calls_per_sec.max(f64::MIN_POSITIVE),
            cpu_us_per_call: bounded.cpu_us_per_call.client - trivial.cpu_us_per_call.client,
        }
    }

    fn line(&self) -> String {
        format!(
            "Validation (`bounded_order`, six bounded fields checked before the skill runs, vs `noop_async`): {:.1}% \
             of the calls/s at @64, {:+.1} µs bridge CPU per call (validating and reading the larger input).",
            self.throughput_ratio * 100.0,
            self.cpu_us_per_call
        )
    }
}

/// The sizes of a run.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    /// Calls each client answers before measuring starts.
    pub warmup_calls: usize,
    /// Calls per W1 round.
    pub w1_calls: usize,
    /// W1 rounds per client (floor and bridge alternate); figures are medians over rounds.
    pub w1_rounds: usize,
    /// Calls per W2 round.
    pub w2_calls: usize,
    /// W2 rounds.
    pub w2_rounds: usize,
    /// Calls kept unanswered at most, every workload but the serial diagnostic.
    pub outstanding: usize,
    /// Calls of the serial W1 diagnostic (one outstanding).
    pub serial_calls: usize,
    /// Separate bridge starts measured for start-to-ready.
    pub start_runs: usize,
    /// Calls of the W4 round.
    pub w4_calls: usize,
}

/// One client on one workload: every round as the double measured it, and the medians.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// What ran, e.g. `W1`.
    pub workload: String,
    /// The client.
    pub client: Kind,
    /// The skill called.
    pub skill: String,
    /// Calls per round.
    pub calls: usize,
    /// Calls kept unanswered at most.
    pub outstanding: usize,
    /// Every round.
    pub rounds: Vec<Burst>,
    /// Median over rounds.
    pub calls_per_sec: f64,
    /// Median over rounds of each percentile.
    pub latency_us: Latency,
    /// Every call of every round was answered in time.
    pub complete: bool,
    /// CPU time per answered call over all rounds, in microseconds.
    pub cpu_us_per_call: CpuPerCall,
    /// For the bridge: its own count of executed calls by outcome over the rounds (from `/metrics`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes: BTreeMap<String, u64>,
}

/// CPU time spent per call, and how busy the rest of the machine was meanwhile.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuPerCall {
    /// By the client process, in microseconds.
    pub client: f64,
    /// By the double, in microseconds.
    pub double: f64,
    /// CPU used by every other process (the harness included) during the rounds, in percent of the machine:
    /// work from outside the benchmark competes for the same cores and skews its figures.
    pub other_percent: f64,
}

/// What a series ran: the workload's name, the skill, and the burst size.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// `W1`, `W2`, ..
    pub name: &'static str,
    /// The skill called.
    pub skill: &'static str,
    /// Calls per round.
    pub calls: usize,
    /// Calls kept unanswered at most.
    pub outstanding: usize,
}

impl Series {
    /// Builds the medians from the rounds.
    pub fn new(
        workload: Workload,
        client: Kind,
        rounds: Vec<Burst>,
        cpu_us_per_call: CpuPerCall,
        outcomes: BTreeMap<String, u64>,
    ) -> Series {
        let median_u64 = |pick: fn(&Burst) -> u64| median(rounds.iter().map(|r| pick(r) as f64).collect()) as u64;
        Series {
            workload: workload.name.to_owned(),
            client,
            skill: workload.skill.to_owned(),
            calls: workload.calls,
            outstanding: workload.outstanding,
            calls_per_sec: median(rounds.iter().map(|r| r.calls_per_sec).collect()),
            latency_us: Latency {
                p50: median_u64(|r| r.latency_us.p50),
                p99: median_u64(|r| r.latency_us.p99),
                max: median_u64(|r| r.latency_us.max),
            },
            complete: rounds.iter().all(|r| r.answered == r.count && !r.timed_out),
            rounds,
            cpu_us_per_call,
            outcomes,
        }
    }

    /// Calls that the bridge reported with an outcome other than `success`.
    pub fn failed_outcomes(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(outcome, _)| outcome.as_str() != "success")
            .map(|(_, n)| n)
            .sum()
    }
}

/// W3 figures of one client.
#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    /// The client.
    pub client: Kind,
    /// VmRSS shortly after it became ready, in KiB.
    pub idle_rss_kib: u64,
    /// VmHWM after W1, in KiB.
    pub peak_rss_kib: u64,
    /// Every measured start, process spawn to ready, in milliseconds.
    pub start_to_ready_ms: Vec<f64>,
    /// Their median.
    pub start_to_ready_median_ms: f64,
}

/// W4: measured, or why not.
#[derive(Debug, Clone, Serialize)]
pub struct W4 {
    /// What the path is and why it differs (or why it was not measured).
    pub note: String,
    /// The measurement.
    pub series: Option<Series>,
    /// Its calls/s as a fraction of the floor's W1 calls/s.
    pub fraction_of_floor: Option<f64>,
}

/// A target and whether the run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The goal, as text.
    pub goal: String,
    /// The measured value, as text.
    pub measured: String,
    /// Whether the goal was met.
    pub met: bool,
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// What the rows of the calls table are.
const LEGEND: &str = "`noop` is a plain `fn` skill (handed to Tokio's blocking pool: a thread wake-up there and back per \
                      call), `noop_async` the same as an `async fn` (polled in the call's own task); `@64` keeps 64 \
                      calls outstanding, `@1` one at a time (the latency a client adds to one call, without queueing). \
                      The targets are judged on the `noop` rows at `@64`.\n";

impl Report {
    fn tables(&self) -> [Table; 3] {
        let mut calls = Table::new(&[
            "workload",
            "client",
            "calls/s",
            "p50 µs",
            "p99 µs",
            "max µs",
            "CPU µs/call client",
            "CPU µs/call double",
            "other load %",
            "complete",
        ])
        .right_aligned_from(2);
        let w4 = self.w4.series.iter();
        for series in self.w1.iter().chain(std::iter::once(&self.w2)).chain(w4) {
            let label = format!(
                "{} {} ×{} @{} ({} round{})",
                series.workload,
                series.skill,
                thousands(series.calls as f64),
                series.outstanding,
                series.rounds.len(),
                if series.rounds.len() == 1 { "" } else { "s" }
            );
            let complete = if !series.complete {
                "NO".to_owned()
            } else if series.failed_outcomes() > 0 {
                format!("{} failed", series.failed_outcomes())
            } else {
                "yes".to_owned()
            };
            calls.row(vec![
                label,
                series.client.name().to_owned(),
                thousands(series.calls_per_sec),
                thousands(series.latency_us.p50 as f64),
                thousands(series.latency_us.p99 as f64),
                thousands(series.latency_us.max as f64),
                format!("{:.1}", series.cpu_us_per_call.client),
                format!("{:.1}", series.cpu_us_per_call.double),
                format!("{:.0}", series.cpu_us_per_call.other_percent),
                complete,
            ]);
        }
        let mut footprint = Table::new(&[
            "W3",
            "client",
            "idle RSS MiB",
            "peak RSS MiB (W1)",
            "start-to-ready ms (median)",
            "runs",
        ])
        .right_aligned_from(2);
        for f in &self.w3 {
            footprint.row(vec![
                "memory, start".to_owned(),
                f.client.name().to_owned(),
                mib(f.idle_rss_kib),
                mib(f.peak_rss_kib),
                format!("{:.1}", f.start_to_ready_median_ms),
                f.start_to_ready_ms.len().to_string(),
            ]);
        }
        let mut targets = Table::new(&["target", "goal", "measured", "met"]).right_aligned_from(2);
        for t in &self.targets {
            targets.row(vec![
                t.name.clone(),
                t.goal.clone(),
                t.measured.clone(),
                if t.met { "yes" } else { "NO" }.to_owned(),
            ]);
        }
        [calls, footprint, targets]
    }

    fn machine_line(&self) -> String {
        let load =
            |l: &Option<[f64; 3]>| l.map_or_else(|| "?".to_owned(), |l| format!("{:.2}/{:.2}/{:.2}", l[0], l[1], l[2]));
        format!(
            "{} CPUs ({}), {} MiB RAM, {}, Linux {}; load before {} after {}; run took {:.0} s",
            self.machine.nproc,
            self.machine.cpu_model,
            thousands(self.machine.memory_mib as f64),
            self.machine.rustc,
            self.machine.kernel,
            load(&self.load_before),
            load(&self.load_after),
            self.duration_s
        )
    }

    /// The tables for the terminal.
    pub fn text(&self) -> String {
        let [calls, footprint, targets] = self.tables();
        format!(
            "{}\n\n{}\n{}\n{}\n{}\n\n{}\n{}\nW4: {}\n",
            self.machine_line(),
            calls.text(),
            LEGEND,
            self.journal.line(),
            self.validation.line(),
            footprint.text(),
            targets.text(),
            self.w4.note
        )
    }

    /// The tables as Markdown, for BENCHMARKS-style documents.
    pub fn markdown(&self) -> String {
        let [calls, footprint, targets] = self.tables();
        format!(
            "Machine: {}\n\nLatency is measured by the double, from emitting the tool-call event to accepting the \
             answer. Figures are medians over rounds. Command: `cargo run --release -p skillbridge-bench`.\n\n{}\n{}\n\
             {}\n{}\n\n{}\n{}\nW4: {}\n",
            self.machine_line(),
            calls.markdown(),
            LEGEND,
            self.journal.line(),
            self.validation.line(),
            footprint.markdown(),
            targets.markdown(),
            self.w4.note
        )
    }
}
