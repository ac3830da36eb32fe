//! A fault run's results: a row per fault with its measured columns and the checks it was judged by, serialized as
//! the JSON report and rendered as a terminal table and as Markdown.

use std::fmt::Write;

use serde::Serialize;
use skillbridge_bench::procfs::Machine;
use skillbridge_bench::table::{Table, thousands};

use crate::sampler::Usage;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `full` or `quick`.
    pub mode: &'static str,
    /// Seconds since the Unix epoch when the run finished.
    pub finished_at_unix: u64,
    /// Wall time of the rows, in seconds (builds excluded).
    pub duration_s: f64,
    /// The machine.
    pub machine: Machine,
    /// One per fault, in order.
    pub rows: Vec<Row>,
}

/// How the calls of a row fared. `calls` = `answered_once` + `lost` + `lost_by_restart` when all is well; a call
/// answered twice or by another call's result shows in the other columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Calls issued.
    pub calls: usize,
    /// Calls whose own result the double accepted, once.
    pub answered_once: usize,
    /// Calls the double never accepted an answer for (those forgotten by a restart apart).
    pub lost: usize,
    /// Calls the double forgot in a restart: their answers cannot be delivered, by design.
    pub lost_by_restart: usize,
    /// Calls whose result the double accepted more than once (for themselves and for another call).
    pub answered_twice: usize,
    /// Answers the double accepted for a call they do not name.
    pub misdelivered: usize,
    /// Runs of the skill beyond each call's first.
    pub reruns: usize,
}

pub use skillbridge_bench::check::Check;

/// One fault.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `1` to `8` (row 7 twice: `7a` without the journal, `7b` with it).
    pub id: &'static str,
    /// What was done.
    pub fault: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// Answered calls per second in the row's main burst.
    pub calls_per_sec: f64,
    /// The bridge's peaks (of every bridge process of the row).
    #[serde(flatten)]
    pub usage: Usage,
    /// The thresholds.
    pub checks: Vec<Check>,
    /// Other measurements worth reading next to the columns.
    pub notes: Vec<String>,
    /// Why the row could not run to its end, if it could not.
    pub error: Option<String>,
}

impl Row {
    /// A row that could not run to its end.
    pub fn failed(id: &'static str, fault: &str, error: &anyhow::Error) -> Row {
        Row {
            id,
            fault: fault.to_owned(),
            counts: Counts::default(),
            calls_per_sec: 0.0,
            usage: Usage::default(),
            checks: Vec::new(),
            notes: Vec::new(),
            error: Some(format!("{error:#}")),
        }
    }

    /// Every check met, and the row ran to its end.
    pub fn met(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|check| check.met)
    }

    fn verdict(&self) -> String {
        if self.error.is_some() {
            return "ERROR".into();
        }
        let missed: Vec<&str> = self
            .checks
            .iter()
            .filter(|check| !check.met)
            .map(|check| check.what.as_str())
            .collect();
        if missed.is_empty() {
            "met".into()
        } else {
            format!("MISSED: {}", missed.join("; "))
        }
    }
}

impl Report {
    /// Every row met its thresholds.
    pub fn met(&self) -> bool {
        self.rows.iter().all(Row::met)
    }

    fn summary_table(&self) -> Table {
        let mut table = Table::new(&[
            "row",
            "fault",
            "calls",
            "answered once",
            "lost",
            "lost by restart",
            "answered twice",
            "misdelivered",
            "skills re-run",
            "calls/s",
            "peak RSS MiB",
            "peak fds",
            "peak sockets",
            "verdict",
        ]);
        for row in &self.rows {
            let c = &row.counts;
            table.row(vec![
                row.id.to_owned(),
                row.fault.clone(),
                thousands(c.calls as f64),
                thousands(c.answered_once as f64),
                thousands(c.lost as f64),
                thousands(c.lost_by_restart as f64),
                thousands(c.answered_twice as f64),
                thousands(c.misdelivered as f64),
                thousands(c.reruns as f64),
                thousands(row.calls_per_sec),
                format!("{:.1}", row.usage.peak_rss_kib as f64 / 1024.0),
                row.usage.peak_fds.to_string(),
                row.usage.peak_sockets.to_string(),
                row.verdict(),
            ]);
        }
        table
    }

    fn checks_table(&self) -> Table {
        let mut table = Table::new(&["row", "check", "goal", "measured", "met"]);
        for row in &self.rows {
            if let Some(error) = &row.error {
                table.row(vec![
                    row.id.to_owned(),
                    "ran to its end".into(),
                    "yes".into(),
                    error.clone(),
                    "NO".into(),
                ]);
            }
            for check in &row.checks {
                table.row(vec![
                    row.id.to_owned(),
                    check.what.clone(),
                    check.goal.clone(),
                    check.measured.clone(),
                    if check.met { "yes" } else { "NO" }.into(),
                ]);
            }
        }
        table
    }

    fn header(&self) -> String {
        let m = &self.machine;
        format!(
            "Fault suite ({} mode), {:.0} s. Machine: {} CPUs ({}), {} MiB RAM, {}, Linux {}.",
            self.mode, self.duration_s, m.nproc, m.cpu_model, m.memory_mib, m.rustc, m.kernel
        )
    }

    fn notes(&self, bullet: &str) -> String {
        let mut out = String::new();
        for row in self.rows.iter().filter(|row| !row.notes.is_empty()) {
            for note in &row.notes {
                let _ = writeln!(out, "{bullet}row {}: {note}", row.id);
            }
        }
        out
    }

    /// The tables for a terminal.
    pub fn text(&self) -> String {
        format!(
            "{}\n\n{}\n{}\n{}",
            self.header(),
            self.summary_table().text(),
            self.checks_table().text(),
            self.notes("  ")
        )
    }

    /// The tables as Markdown.
    pub fn markdown(&self) -> String {
        format!(
            "{}\n\nCommand: `cargo run --release -p skillbridge-bench --bin skillbridge-faults`.\n\n{}\n{}\n{}",
            self.header(),
            self.summary_table().markdown(),
            self.checks_table().markdown(),
            self.notes("- ")
        )
    }
}
