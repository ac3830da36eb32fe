//! The rows of the suite, in order. Each starts its own double and bridge ([`Rig`](crate::rig::Rig)), applies its
//! fault while calls run, and judges what it measured: every row checks that each call was answered exactly once
//! and that no skill ran twice (row 7 without a journal excepted), plus its own thresholds.

mod bad_input;
mod crash;
mod limits;
mod load;
mod upstream;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::report::{Check, Counts, Row};
use crate::rig::{Ctx, Ending};

/// Runs the rows `only` names (every row when it is empty); a row that cannot run to its end is reported as such
/// and the others still run.
pub async fn run_all(ctx: &Ctx, only: &[String]) -> Vec<Row> {
    let plan = &ctx.plan;
    // `7` names both 7a and 7b.
    let wanted = |id: &str| only.is_empty() || only.iter().any(|o| o == id || o == id.trim_end_matches(['a', 'b']));
    let mut rows = Vec::new();
    if wanted("1") {
        rows.push(row("1", load::fault(plan), load::run(ctx)).await);
    }
    if wanted("2") {
        rows.push(row("2", limits::fd_limit_fault(plan), limits::fd_limit(ctx)).await);
    }
    if wanted("3") {
        rows.push(row("3", limits::idle_admin_fault(plan), limits::idle_admin(ctx)).await);
    }
    if wanted("4") {
        rows.push(row("4", upstream::drops_fault(plan), upstream::drops(ctx)).await);
    }
    if wanted("5") {
        rows.push(row("5", upstream::failures_fault(plan), upstream::failures(ctx)).await);
    }
    if wanted("6") {
        rows.push(row("6", upstream::restart_fault(plan), upstream::restart(ctx)).await);
    }
    if wanted("7a") {
        rows.push(row("7a", crash::fault(plan, false), crash::run(ctx, false)).await);
    }
    if wanted("7b") {
        rows.push(row("7b", crash::fault(plan, true), crash::run(ctx, true)).await);
    }
    if wanted("8") {
        rows.push(row("8", bad_input::fault(plan), bad_input::run(ctx)).await);
    }
    rows
}

/// What a row measured, before it is judged.
pub struct Measured {
    pub counts: Counts,
    pub calls_per_sec: f64,
    pub ending: Ending,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

/// Runs one row and prints its verdict as it ends.
async fn row(id: &'static str, fault: String, run: impl Future<Output = Result<Measured>>) -> Row {
    println!("row {id}: {fault}");
    let started = Instant::now();
    let row = match run.await {
        Ok(mut measured) => {
            let exit = measured.ending.bridge_exit;
            if !exit.success() {
                measured.notes.push(format!("the bridge exited with {exit} on SIGTERM"));
            }
            Row {
                id,
                fault,
                counts: measured.counts,
                calls_per_sec: measured.calls_per_sec,
                usage: measured.ending.usage,
                checks: measured.checks,
                notes: measured.notes,
                error: None,
            }
        }
        Err(error) => Row::failed(id, &fault, &error),
    };
    let verdict = if row.met() { "met" } else { "NOT MET" };
    println!("  {verdict} in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(error) = &row.error {
        println!("  error: {error}");
    }
    row
}

/// The counts of a row whose `calls` the double accepted `answered` answers for, `lost_by_restart` of them
/// forgotten by a restart of the double.
pub fn counts(calls: usize, answered: usize, lost_by_restart: usize, ending: &Ending) -> Counts {
    let misdelivered = ending.misdelivered.len();
    let twice_with_own = ending
        .answered_twice
        .iter()
        .filter(|twice| twice.own_answer_accepted)
        .count();
    Counts {
        calls,
        answered_once: answered.saturating_sub(misdelivered + twice_with_own),
        lost: calls.saturating_sub(answered + lost_by_restart),
        lost_by_restart,
        answered_twice: ending.answered_twice.len(),
        misdelivered,
        reruns: ending.runs.reruns(),
    }
}

/// Every call answered with its own result, once: none lost, none answered twice, none misdelivered (calls
/// forgotten by a restart apart).
pub fn exactly_once(counts: &Counts) -> Check {
    let expected = counts.calls - counts.lost_by_restart;
    Check::new(
        "every call answered exactly once",
        format!("{expected} once; 0 lost, twice, misdelivered"),
        format!(
            "{} once; {} lost, {} twice, {} misdelivered",
            counts.answered_once, counts.lost, counts.answered_twice, counts.misdelivered
        ),
        counts.answered_once == expected && counts.lost == 0 && counts.answered_twice == 0 && counts.misdelivered == 0,
    )
}

/// No call's skill ran more than once.
pub fn no_reruns(counts: &Counts) -> Check {
    Check::new(
        "no skill ran twice",
        "0 re-runs",
        format!("{} re-runs", counts.reruns),
        counts.reruns == 0,
    )
}

/// Polls `ready` every 20 ms until it returns `Some`; fails after `timeout` saying what was awaited.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut ready: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = ready().await? {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
