//! The sizes, durations and thresholds of a run: the full suite as issue 10 specifies it, and the quick one that CI
//! runs against a debug build (counts scaled down about fifty times; every row still runs).

use std::time::Duration;

/// Everything a run's rows are sized and judged by.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `quick` or `full`.
    pub mode: &'static str,
    /// Skills running at once in the bridge (its `--concurrency`; the default).
    pub concurrency: usize,
    /// The ceiling of sockets from the bridge to the double: `concurrency` + this.
    pub socket_slack: usize,
    /// Row 1: calls answered before measuring, at the baseline's outstanding count.
    pub warmup_calls: usize,
    /// Row 1: the baseline's calls and how many are kept outstanding.
    pub baseline_calls: usize,
    pub baseline_outstanding: usize,
    /// Row 1: the calls issued at once.
    pub load_calls: usize,
    /// Row 1: rounds of a baseline burst then a burst at once, taken in turn; their medians are compared (on a
    /// shared 2-core machine one burst's rate varies by a fifth from run to run).
    pub load_rounds: usize,
    /// Row 1: the bridge's peak RSS, at most.
    pub max_rss_mib: f64,
    /// Row 1: calls/s at once as a share of the baseline's, at least.
    pub min_throughput_ratio: f64,
    /// Rows 2 and 3: the bridge's `RLIMIT_NOFILE`.
    pub fd_limit: u64,
    /// Rows 2 and 3: calls issued at once.
    pub limited_calls: usize,
    /// Row 3: idle connections kept open to the admin endpoint.
    pub idle_admin_connections: usize,
    /// Rows 2 and 3: how often `/healthz` is probed, and how long a probe may take before it counts as failed.
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// Row 4: calls, outstanding at most, and how often the sockets are dropped.
    pub drop_calls: usize,
    pub drop_outstanding: usize,
    pub drop_interval: Duration,
    /// Row 5: calls at once, and how long every answer fails.
    pub failing_calls: usize,
    pub failure_window: Duration,
    /// Row 6: slow calls in flight at the restart (how long each takes), and the new calls after it.
    pub restart_slow_calls: usize,
    pub restart_slow_ms: u64,
    pub restart_new_calls: usize,
    /// Row 7: the bridge's concurrency (one batch of calls completes before the kill), the calls issued (several
    /// batches) and how long each takes.
    pub crash_concurrency: usize,
    pub crash_calls: usize,
    pub crash_call_ms: u64,
    /// Row 8: normal calls after the bad inputs.
    pub calls_after_bad_input: usize,
    /// The longest a burst may take before it is given up.
    pub burst_timeout: Duration,
}

impl Plan {
    /// The suite as specified, for a release build.
    pub fn full() -> Plan {
        Plan {
            mode: "full",
            concurrency: 64,
            socket_slack: 8,
            warmup_calls: 5_000,
            baseline_calls: 50_000,
            baseline_outstanding: 1_000,
            load_calls: 50_000,
            load_rounds: 3,
            max_rss_mib: 150.0,
            min_throughput_ratio: 0.8,
            fd_limit: 1024,
            limited_calls: 10_000,
            idle_admin_connections: 2_000,
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_secs(2),
            drop_calls: 30_000,
            // After each drop a call seen before it is answered once a listing taken on an unbroken connection shows
            // it; listing 30,000 pending calls takes the double 0.5-1 s, longer than the 200 ms between drops.
            drop_outstanding: 1_000,
            drop_interval: Duration::from_millis(200),
            failing_calls: 10_000,
            failure_window: Duration::from_secs(5),
            restart_slow_calls: 64,
            restart_slow_ms: 1_500,
            restart_new_calls: 1_000,
            crash_concurrency: 64,
            crash_calls: 256,
            crash_call_ms: 300,
            calls_after_bad_input: 1_000,
            burst_timeout: Duration::from_secs(120),
        }
    }

    /// About a fiftieth of the counts, for a debug build in CI. Only the resource and speed thresholds are looser (a
    /// debug build allocates more and runs several times slower, and tiny bursts measure throughput poorly); the
    /// correctness ones (lost, answered twice, misdelivered, re-runs with the journal) are the same.
    pub fn quick() -> Plan {
        Plan {
            mode: "quick",
            warmup_calls: 100,
            baseline_calls: 400,
            baseline_outstanding: 20,
            load_calls: 1_000,
            max_rss_mib: 300.0,
            min_throughput_ratio: 0.25,
            limited_calls: 200,
            // Above the admin endpoint's cap of 128 connections, so that eviction is exercised.
            idle_admin_connections: 300,
            drop_calls: 600,
            drop_outstanding: 20,
            // The quick burst is over in tens of milliseconds.
            drop_interval: Duration::from_millis(5),
            failing_calls: 200,
            failure_window: Duration::from_secs(2),
            restart_slow_calls: 16,
            restart_slow_ms: 1_000,
            restart_new_calls: 50,
            crash_concurrency: 8,
            crash_calls: 32,
            calls_after_bad_input: 50,
            burst_timeout: Duration::from_secs(60),
            ..Plan::full()
        }
    }
}
