//! Row 7, a crash: `serve` is SIGKILLed mid-burst and a new one attaches to the same session (`--session`), once
//! without and once with `--journal`. Skill runs are counted across both processes from the run log.
//!
//! To make the kill land where the journal matters, every answer fails (500) until the kill: the first batch of
//! calls (one per worker) completes but cannot be answered, and no other call starts, since a worker keeps its call
//! until the answer is delivered. The kill comes once each of those calls' answers has reached the double, which
//! the bridge only sends after recording the result (with a journal). So at the kill every run has completed, and:
//! without a journal, the new process runs those calls again (the documented behaviour); with one, it answers them
//! from the journal, and no completed call may run twice.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{Measured, counts, exactly_once, wait_for};
use crate::plan::Plan;
use crate::report::Check;
use crate::rig::{Ctx, Rig, RigOptions};

/// How long the first batch may take to complete and try to answer.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Every answer fails until the kill; this only bounds the failures should the row stop early.
const FAILURE_WINDOW: Duration = Duration::from_secs(120);

pub fn fault(plan: &Plan, journal: bool) -> String {
    format!(
        "serve SIGKILLed after {} of {} calls, restarted on the session, {}",
        plan.crash_concurrency,
        plan.crash_calls,
        if journal { "with --journal" } else { "without a journal" }
    )
}

/// The call ids an answer's text items hold (`echo_call` answers its call's id).
fn answered_calls(bodies: &[Value]) -> HashSet<String> {
    bodies
        .iter()
        .filter_map(|body| body["contentItems"].as_array())
        .flatten()
        .filter_map(|item| item["text"].as_str())
        .map(str::to_owned)
        .collect()
}

pub async fn run(ctx: &Ctx, journal: bool) -> Result<Measured> {
    let plan = &ctx.plan;
    let name = if journal { "crash-journal" } else { "crash" };
    let mut flags = vec!["--concurrency".to_owned(), plan.crash_concurrency.to_string()];
    if journal {
        let path = ctx.log_dir.join(format!("{name}.redb"));
        flags.extend(["--journal".to_owned(), path.display().to_string()]);
    }
    let options = RigOptions {
        record: true,
        bridge_args: [vec!["--sessions".to_owned(), "1".to_owned()], flags.clone()].concat(),
        fd_limit: None,
    };
    let mut rig = Rig::start(ctx, name, options).await?;
    rig.double().fail_answers_for(FAILURE_WINDOW).await?;
    let burst = rig.burst(
        &json!({"sleep_ms": plan.crash_call_ms}),
        plan.crash_calls,
        plan.crash_calls,
    );
    tokio::pin!(burst);
    let batch = plan.crash_concurrency;
    let early = tokio::select! {
        burst = &mut burst => Some(burst),
        ready = wait_for("the first batch completed, its answers tried", BATCH_TIMEOUT, async || {
            let runs = rig.run_log().read()?;
            if runs.completed().len() < batch {
                return Ok(None);
            }
            let tried = answered_calls(&rig.double().answer_bodies().await?);
            Ok(runs.completed().iter().all(|call| tried.contains(*call)).then_some(()))
        }) => { ready?; None }
    };
    if let Some(burst) = early {
        bail!("the burst ended ({burst:?}) before the kill");
    }
    rig.kill_bridge().await?;
    let at_kill = rig.run_log().read()?;
    rig.double().fail_answers_for(Duration::ZERO).await?;
    let attach = [vec!["--session".to_owned(), rig.thread().to_owned()], flags].concat();
    rig.start_bridge(attach).await?;
    let burst = burst.await?;
    let ending = rig.finish().await?;

    let counts = counts(burst.count, burst.answered, 0, &ending);
    let completed = at_kill.completed().len();
    let running = at_kill.started() - completed;
    let completed_rerun = ending.runs.completed_then_rerun(at_kill.lines());
    let mut checks = vec![exactly_once(&counts)];
    let mut notes = vec![format!(
        "at the kill {} runs had started, {completed} completed (their answers refused with 500), {running} still \
         running; the new process ran {} of the completed calls again",
        at_kill.started(),
        completed_rerun.len()
    )];
    if journal {
        checks.push(Check::new(
            "no completed call ran twice",
            "0",
            match completed_rerun.first() {
                None => "0".to_owned(),
                Some(first) => format!("{} (first {first})", completed_rerun.len()),
            },
            completed_rerun.is_empty(),
        ));
        checks.push(Check::new(
            "the kill caught completed, unanswered calls",
            format!("{batch}"),
            completed.to_string(),
            completed >= batch,
        ));
    } else {
        notes.push(format!(
            "without a journal a call that completed but was not answered before a crash runs again (documented): {} \
             re-runs",
            counts.reruns
        ));
    }
    Ok(Measured {
        counts,
        calls_per_sec: burst.calls_per_sec,
        ending,
        checks,
        notes,
    })
}
