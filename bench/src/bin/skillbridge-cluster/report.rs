//! What a run found, as checks and tables, for the terminal, Markdown and JSON.

use serde::Serialize;
use skillbridge_bench::check::Check;
use skillbridge_bench::table::Table;

use crate::failover::Failover;
use crate::scale::Scale;

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub failover: Option<Failover>,
    pub scale: Option<Scale>,
}

impl Report {
    pub fn met(&self) -> bool {
        self.all_checks().all(|check| check.met)
    }

    /// The failover run's checks, then the scale run's.
    fn all_checks(&self) -> impl Iterator<Item = &Check> {
        let failover = self.failover.iter().flat_map(|failover| &failover.checks);
        failover.chain(self.scale.iter().flat_map(|scale| &scale.checks))
    }

    fn checks(&self) -> Option<Table> {
        let checks: Vec<&Check> = self.all_checks().collect();
        if checks.is_empty() {
            return None;
        }
        let mut table = Table::new(&["check", "goal", "measured", "met"]);
        for check in checks {
            table.row(vec![
                check.what.clone(),
                check.goal.clone(),
                check.measured.clone(),
                if check.met { "yes" } else { "NO" }.to_owned(),
            ]);
        }
        Some(table)
    }

    fn summary(&self) -> Option<String> {
        let failover = self.failover.as_ref()?;
        let plan = &failover.plan;
        let mut text = format!(
            "Failover: {} calls of a {} ms skill over 8 sessions, {} bridges (--concurrency {}, --cluster-lease {} ms, \
             --poll-interval {} ms), Redis down {} ms: {} answered in {:.1} s ({:.0} calls/s).\n",
            plan.calls,
            plan.skill_ms,
            plan.bridges,
            plan.concurrency,
            plan.lease_ms,
            plan.poll_ms,
            plan.outage_ms,
            failover.answered,
            failover.elapsed_s,
            failover.calls_per_sec
        );
        for note in &failover.notes {
            text.push_str(&format!("- {note}\n"));
        }
        Some(text)
    }

    /// For the terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(summary) = self.summary() {
            out.push_str(&summary);
            out.push('\n');
        }
        if let Some(checks) = self.checks() {
            out.push_str(&checks.text());
        }
        if let Some(scale) = &self.scale {
            out.push_str(&format!(
                "\nScale: {} calls of a {} ms skill per setup, --concurrency {} per bridge\n",
                scale.plan.calls, scale.plan.skill_ms, scale.plan.concurrency
            ));
            out.push_str(&scale.table().text());
        }
        out
    }

    /// For `cluster.md`.
    pub fn markdown(&self) -> String {
        let mut out = format!("# Several bridges over Redis ({} run)\n\n", self.mode);
        if let Some(summary) = self.summary() {
            out.push_str("## Failover\n\n");
            out.push_str(&summary);
            out.push('\n');
        }
        if let Some(checks) = self.checks() {
            out.push_str(&checks.markdown());
        }
        if let Some(scale) = &self.scale {
            out.push_str(&format!(
                "\n## Scale\n\n{} calls of a {} ms skill per setup, `--concurrency {}` per bridge, 8 sessions.\n\n",
                scale.plan.calls, scale.plan.skill_ms, scale.plan.concurrency
            ));
            out.push_str(&scale.table().markdown());
        }
        out
    }
}
