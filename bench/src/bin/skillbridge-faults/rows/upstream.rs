//! Rows 4 to 6, an unreliable upstream while calls run: websockets dropped every 200 ms (row 4), every answer
//! failing with 500 for a while (row 5), and a restart of the double that forgets the calls in flight and numbers
//! request ids from 0 again (row 6).

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use super::{Measured, counts, exactly_once, no_reruns, wait_for};
use crate::plan::Plan;
use crate::report::Check;
use crate::rig::{Ctx, Rig, RigOptions};

/// How long a row waits for the calls it needs running before it applies its fault.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(30);

pub fn drops_fault(plan: &Plan) -> String {
    format!(
        "sockets dropped every {} ms during {} calls",
        plan.drop_interval.as_millis(),
        plan.drop_calls
    )
}

pub fn failures_fault(plan: &Plan) -> String {
    format!(
        "every answer 500 for {} s during {} calls",
        plan.failure_window.as_secs_f64(),
        plan.failing_calls
    )
}

pub fn restart_fault(plan: &Plan) -> String {
    format!(
        "upstream restart under {} slow calls, then {} new calls (reused ids)",
        plan.restart_slow_calls, plan.restart_new_calls
    )
}

/// Row 4: the double drops every websocket every 200 ms while the burst runs.
pub async fn drops(ctx: &Ctx) -> Result<Measured> {
    let plan = &ctx.plan;
    let rig = Rig::start(ctx, "drops", RigOptions::default()).await?;
    let before = rig.metrics().await?;
    let burst = rig.burst(&json!({}), plan.drop_calls, plan.drop_outstanding);
    tokio::pin!(burst);
    let mut tick = tokio::time::interval(plan.drop_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let (mut drops, mut sockets_dropped) = (0, 0);
    let burst = loop {
        tokio::select! {
            burst = &mut burst => break burst?,
            _ = tick.tick() => {
                sockets_dropped += rig.double().drop_sockets().await?;
                drops += 1;
            }
        }
    };
    rig.wait_idle().await?;
    let after = rig.metrics().await?;
    let ending = rig.finish().await?;

    let counts = counts(burst.count, burst.answered, 0, &ending);
    let reconnects = after.get("skillbridge_reconnects_total") - before.get("skillbridge_reconnects_total");
    let checks = vec![
        exactly_once(&counts),
        no_reruns(&counts),
        Check::new(
            "sockets dropped while calls ran",
            "≥ 1",
            format!("{drops} drops, {sockets_dropped} sockets"),
            sockets_dropped > 0,
        ),
    ];
    let notes = vec![format!(
        "{} calls in {} ms; {drops} drops ({sockets_dropped} sockets), {reconnects} bridge reconnects, {} duplicate \
         sightings ignored",
        burst.answered,
        burst.elapsed_ms,
        after.get("skillbridge_duplicate_calls_total") - before.get("skillbridge_duplicate_calls_total"),
    )];
    Ok(Measured {
        counts,
        calls_per_sec: burst.calls_per_sec,
        ending,
        checks,
        notes,
    })
}

/// Row 5: once a tenth of the burst has run, every answer fails with 500 for the failure window.
pub async fn failures(ctx: &Ctx) -> Result<Measured> {
    let plan = &ctx.plan;
    let rig = Rig::start(ctx, "failures", RigOptions::default()).await?;
    let before = rig.metrics().await?;
    let burst = rig.burst(&json!({}), plan.failing_calls, plan.failing_calls);
    tokio::pin!(burst);
    let underway = plan.failing_calls / 10;
    let early = tokio::select! {
        burst = &mut burst => Some(burst),
        ran = wait_for("a tenth of the calls running", RUNNING_TIMEOUT, async || {
            Ok((rig.run_log().read()?.started() >= underway).then_some(()))
        }) => { ran?; None }
    };
    if let Some(burst) = early {
        bail!("the burst ended ({burst:?}) before a tenth of its calls were seen running");
    }
    rig.double().fail_answers_for(plan.failure_window).await?;
    let burst = burst.await?;
    rig.wait_idle().await?;
    let after = rig.metrics().await?;
    let ending = rig.finish().await?;

    let counts = counts(burst.count, burst.answered, 0, &ending);
    let retried = after.get("skillbridge_answer_attempts_total{result=\"retry\"}")
        - before.get("skillbridge_answer_attempts_total{result=\"retry\"}");
    let checks = vec![
        exactly_once(&counts),
        no_reruns(&counts),
        Check::new(
            "answers failed during the window",
            "≥ 1 failed attempt",
            format!("{retried} attempts failed and were retried"),
            retried > 0.0,
        ),
    ];
    let notes = vec![format!(
        "{} calls in {} ms; the window opened after {underway} runs had started",
        burst.answered, burst.elapsed_ms
    )];
    Ok(Measured {
        counts,
        calls_per_sec: burst.calls_per_sec,
        ending,
        checks,
        notes,
    })
}

/// Row 6: slow calls run when the double restarts (forgetting them, and their burst's request with its
/// connection); new calls follow, holding the same request ids while the slow calls finish and try to answer.
pub async fn restart(ctx: &Ctx) -> Result<Measured> {
    let plan = &ctx.plan;
    let rig = Rig::start(ctx, "restart", RigOptions::default()).await?;
    let before = rig.metrics().await?;
    let slow = plan.restart_slow_calls;
    let old = rig.burst(&json!({"sleep_ms": plan.restart_slow_ms}), slow, slow);
    tokio::pin!(old);
    let early = tokio::select! {
        burst = &mut old => Some(burst),
        ran = wait_for("the slow calls running", RUNNING_TIMEOUT, async || {
            Ok((rig.run_log().read()?.started() >= slow).then_some(()))
        }) => { ran?; None }
    };
    if let Some(burst) = early {
        bail!("the slow burst ended ({burst:?}) before its calls were all running");
    }
    let restarted = rig.double().restart().await?;
    // The restart cut the slow burst's own request: its report is lost with it, as intended.
    let old_report = old.await.ok();
    let new = rig
        .burst(&json!({}), plan.restart_new_calls, plan.restart_new_calls)
        .await?;
    // The slow calls finish after the new ones: their answers are refused only then.
    rig.wait_idle().await?;
    let after = rig.metrics().await?;
    let ending = rig.finish().await?;

    let forgotten = restarted.calls_forgotten;
    let answered_before = slow - forgotten;
    let counts = counts(slow + new.count, answered_before + new.answered, forgotten, &ending);
    let refused = after.get("skillbridge_answer_attempts_total{result=\"lost\"}")
        - before.get("skillbridge_answer_attempts_total{result=\"lost\"}");
    let checks = vec![
        exactly_once(&counts),
        no_reruns(&counts),
        Check::new(
            "the restart caught calls in flight",
            format!("{slow} slow calls forgotten"),
            format!("{forgotten} forgotten"),
            forgotten == slow,
        ),
    ];
    let mut notes = vec![format!(
        "the restart forgot {forgotten} calls and cut {} connections; the bridge dropped {refused} results as lost by \
         the restart (never delivered to the new calls holding their request ids); {} new calls in {} ms",
        restarted.connections_cut, new.answered, new.elapsed_ms
    )];
    if let Some(report) = old_report {
        notes.push(format!("the slow burst's request survived the restart: {report:?}"));
    }
    Ok(Measured {
        counts,
        calls_per_sec: new.calls_per_sec,
        ending,
        checks,
        notes,
    })
}
