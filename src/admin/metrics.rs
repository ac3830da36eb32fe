//! Prometheus text exposition of the bridge's statistics.

use std::fmt::Write;

use crate::telemetry::{BridgeHealth, BridgeStats, HistogramSnapshot};

/// Renders every metric in Prometheus text format (version 0.0.4).
pub fn render(stats: &BridgeStats, health: &BridgeHealth) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "skillbridge_calls_total",
        "counter",
        "Tool calls executed, by skill and outcome.",
    );
    for (tool, outcome, n) in stats.call_counts() {
        let _ = writeln!(
            out,
            "skillbridge_calls_total{{skill=\"{}\",outcome=\"{outcome}\"}} {n}",
            escape(&tool)
        );
    }
    family(
        &mut out,
        "skillbridge_call_duration_seconds",
        "histogram",
        "How long skills ran, by skill (waiting for a worker not included).",
    );
    for (tool, h) in stats.durations() {
        histogram(
            &mut out,
            "skillbridge_call_duration_seconds",
            &format!("skill=\"{}\",", escape(&tool)),
            &h,
        );
    }
    family(
        &mut out,
        "skillbridge_call_queue_seconds",
        "histogram",
        "How long calls waited for a worker before they ran.",
    );
    histogram(&mut out, "skillbridge_call_queue_seconds", "", &stats.queue_waits());
    family(
        &mut out,
        "skillbridge_answer_attempts_total",
        "counter",
        "Attempts at delivering answers upstream, by result.",
    );
    for (label, n) in stats.answer_attempts() {
        let _ = writeln!(out, "skillbridge_answer_attempts_total{{result=\"{label}\"}} {n}");
    }
    gauge(
        &mut out,
        "skillbridge_calls_in_flight",
        "Calls running or being answered.",
        stats.in_flight(),
    );
    counter(
        &mut out,
        "skillbridge_duplicate_calls_total",
        "Calls ignored because they were already taken.",
        stats.duplicates(),
    );
    counter(
        &mut out,
        "skillbridge_reconnects_total",
        "Upstream reconnects since start.",
        health.reconnects(),
    );
    let by_kind = health.malformed_frames_by_kind();
    if by_kind.is_empty() {
        counter(
            &mut out,
            "skillbridge_malformed_frames_total",
            "Malformed upstream frames skipped.",
            health.malformed_frames(),
        );
    } else {
        family(
            &mut out,
            "skillbridge_malformed_frames_total",
            "counter",
            "Malformed upstream frames skipped, by kind.",
        );
        for (kind, n) in by_kind {
            let _ = writeln!(
                out,
                "skillbridge_malformed_frames_total{{kind=\"{}\"}} {n}",
                escape(kind)
            );
        }
    }
    counter(
        &mut out,
        "skillbridge_unusable_signals_total",
        "Well-formed upstream signals that could not be used (a tool call without a usable requestId, say); a call \
         among them stays pending.",
        health.unusable_signals(),
    );
    counter(
        &mut out,
        "skillbridge_unreadable_calls_total",
        "Tool calls found but unreadable (each counted once); they stay unanswered.",
        health.unreadable_calls(),
    );
    gauge(
        &mut out,
        "skillbridge_upstream_connected",
        "1 while the upstream connection is up.",
        i64::from(health.connected()),
    );
    gauge(
        &mut out,
        "skillbridge_sessions",
        "Sessions served.",
        health.sessions().len() as i64,
    );
    if let Some(cluster) = health.cluster() {
        family(
            &mut out,
            "skillbridge_cluster_claims_total",
            "counter",
            "Calls this bridge claimed from its group, by result: won, taken_over (its bridge died), held_elsewhere \
             (a conflict: another bridge runs it), answered_elsewhere (seen late), completed_elsewhere (run \
             elsewhere but not delivered: its stored result delivered here), store_unavailable (left pending).",
        );
        for (result, n) in cluster.claim_counts() {
            let _ = writeln!(out, "skillbridge_cluster_claims_total{{result=\"{result}\"}} {n}");
        }
        gauge(
            &mut out,
            "skillbridge_cluster_claims_held",
            "Claims this bridge holds (skills it runs for the group).",
            cluster.claims_held(),
        );
        family(
            &mut out,
            "skillbridge_cluster_store_seconds",
            "histogram",
            "Round trips to the group's store (claims, results, heartbeats).",
        );
        histogram(
            &mut out,
            "skillbridge_cluster_store_seconds",
            "",
            &cluster.round_trips(),
        );
        gauge(
            &mut out,
            "skillbridge_cluster_store_up",
            "1 while the group's store answers.",
            i64::from(cluster.reachable()),
        );
        gauge(
            &mut out,
            "skillbridge_cluster_bridges",
            "Live bridges of the group at the last heartbeat, this one included.",
            cluster.peers().len() as i64,
        );
    }
    out
}

/// The samples of one histogram; `labels` is empty or ends with a comma.
fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    for (bound, count) in h.bounds.iter().zip(&h.buckets) {
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", h.count);
    let labels = match labels.trim_end_matches(',') {
        "" => String::new(),
        labels => format!("{{{labels}}}"),
    };
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum);
    let _ = writeln!(out, "{name}_count{labels} {}", h.count);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
