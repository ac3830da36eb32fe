//! Rows 2 and 3, the descriptor limit: the bridge runs with `RLIMIT_NOFILE` at 1,024 and takes a burst of calls at
//! once, alone (row 2) and while 2,000 idle connections press on its admin endpoint (row 3). Every call must be
//! answered once, the bridge must never run out of descriptors ("Too many open files" in its log), and `/healthz`,
//! probed every 100 ms on a fresh connection, must answer throughout.

use anyhow::{Context, Result};
use serde_json::json;

use super::{Measured, counts, exactly_once, no_reruns};
use crate::admin::{Flood, Probe};
use crate::plan::Plan;
use crate::report::Check;
use crate::rig::{Ctx, Rig, RigOptions};

/// How the kernel reports running out of descriptors (EMFILE), as the bridge would log it.
const EMFILE: &str = "Too many open files";

pub fn fd_limit_fault(plan: &Plan) -> String {
    format!(
        "fd limit {}: {} calls at once, /healthz probed",
        plan.fd_limit, plan.limited_calls
    )
}

pub fn idle_admin_fault(plan: &Plan) -> String {
    format!(
        "fd limit {}: {} idle admin connections, {} calls at once",
        plan.fd_limit, plan.idle_admin_connections, plan.limited_calls
    )
}

/// Row 2.
pub async fn fd_limit(ctx: &Ctx) -> Result<Measured> {
    limited(ctx, "fd-limit", 0).await
}

/// Row 3.
pub async fn idle_admin(ctx: &Ctx) -> Result<Measured> {
    limited(ctx, "idle-admin", ctx.plan.idle_admin_connections).await
}

async fn limited(ctx: &Ctx, name: &str, idle_connections: usize) -> Result<Measured> {
    let plan = &ctx.plan;
    let options = RigOptions {
        fd_limit: Some(plan.fd_limit),
        ..RigOptions::default()
    };
    let rig = Rig::start(ctx, name, options).await?;
    let admin_url = rig
        .bridge()?
        .admin_url()
        .context("the bridge has no admin endpoint")?
        .to_owned();
    let admin_addr = admin_url.trim_start_matches("http://").to_owned();
    let flood = match idle_connections {
        0 => None,
        n => Some(Flood::start(&admin_addr, n).await),
    };
    let probe = Probe::start(&admin_url, plan.probe_interval, plan.probe_timeout)?;
    let burst = rig.burst(&json!({}), plan.limited_calls, plan.limited_calls).await;
    let probes = probe.stop().await?;
    let flooded = match flood {
        Some(flood) => Some(flood.stop().await?),
        None => None,
    };
    let burst = burst?;
    let ending = rig.finish().await?;

    let counts = counts(burst.count, burst.answered, 0, &ending);
    let emfile = ending.bridge_log.matches(EMFILE).count();
    let mut checks = vec![
        exactly_once(&counts),
        no_reruns(&counts),
        Check::new(
            "never out of descriptors",
            format!("no \"{EMFILE}\" in the bridge's log"),
            format!("{emfile} lines"),
            emfile == 0,
        ),
        Check::new(
            "/healthz answered throughout",
            format!("every probe 200 within {} ms", plan.probe_timeout.as_millis()),
            format!(
                "{} of {} failed{}; slowest {:.1} ms",
                probes.failures,
                probes.probes,
                probes
                    .first_failure
                    .as_ref()
                    .map(|failure| format!(" (first: {failure})"))
                    .unwrap_or_default(),
                probes.max_latency_ms
            ),
            probes.failures == 0 && probes.probes > 0,
        ),
    ];
    let mut notes = vec![format!(
        "{} calls at once answered in {} ms; peak fds {} of {}",
        burst.answered, burst.elapsed_ms, ending.usage.peak_fds, plan.fd_limit
    )];
    if let Some(flooded) = flooded {
        checks.push(Check::new(
            "idle connections held against the admin endpoint",
            format!("{idle_connections} opened"),
            format!("{} opened", flooded.opened),
            flooded.opened >= idle_connections,
        ));
        notes.push(format!(
            "idle admin connections: {} opened (re-openings included), {} closed by the bridge, {} failed to connect",
            flooded.opened, flooded.closed_by_bridge, flooded.connect_failures
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
