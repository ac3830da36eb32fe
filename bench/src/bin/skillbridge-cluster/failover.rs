//! The failover run: three bridges of one group serve eight sessions (created by the first) while bursts of a
//! 5 ms `echo_call` run on all of them; a bridge holding claims (the one that created the sessions when it does) is
//! SIGKILLed once a third of the calls ran, and Redis is stopped for 2 s once two thirds did. Counted by the double and the run logs: every call
//! answered exactly once; no call completed on a bridge that lived ran again; the killed bridge's calls in flight
//! ran once more elsewhere (after their lease ran out); the remaining bridges served all eight sessions and said
//! they were not ready while Redis was down.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use skillbridge_bench::double::Burst;
use skillbridge_bench::metrics::Metrics;
use skillbridge_bench::runs::Runs;

use crate::group::{BridgeSettings, Ctx, Group, SESSIONS, admin_get, ready, served};
use skillbridge_bench::check::Check;

/// The sizes of a failover run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub calls: usize,
    pub skill_ms: u64,
    pub bridges: usize,
    pub concurrency: usize,
    pub lease_ms: u64,
    pub poll_ms: u64,
    pub outage_ms: u64,
    /// Calls each session's burst keeps unanswered, at most.
    pub outstanding: usize,
    pub timeout_s: u64,
}

impl Plan {
    pub fn new() -> Plan {
        Plan {
            calls: 30_000,
            skill_ms: 5,
            bridges: 3,
            concurrency: 32,
            lease_ms: 5_000,
            poll_ms: 1_000,
            outage_ms: 2_000,
            outstanding: 32,
            timeout_s: 600,
        }
    }
}

/// What a failover run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub plan: Plan,
    pub answered: usize,
    pub calls_per_sec: f64,
    pub elapsed_s: f64,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

/// How often progress is read from the run logs.
const PROGRESS_POLL: Duration = Duration::from_millis(50);

pub async fn run(ctx: &Ctx, plan: Plan) -> Result<Failover> {
    let settings = BridgeSettings {
        concurrency: plan.concurrency,
        lease: Some(Duration::from_millis(plan.lease_ms)),
        poll_interval: Duration::from_millis(plan.poll_ms),
    };
    let mut group = Group::start(ctx, "failover", settings).await?;
    group.start_bridges(plan.bridges).await?;
    let started = Instant::now();
    let per_session = plan.calls / SESSIONS;
    let calls = per_session * SESSIONS;
    let bursts = group.bursts(
        plan.skill_ms,
        per_session,
        plan.outstanding,
        Duration::from_secs(plan.timeout_s),
    );

    // The kill, a third of the way: a bridge that holds claims now, the one that created the sessions if it does.
    wait_for_done(&group, calls / 3, 0).await?;
    let victim = busy_member(&group).await?;
    let (killed, killed_log) = group.kill(victim).await?;
    let at_kill = Instant::now();
    let killed_runs = killed_log.read()?;

    // The store goes away for a while, two thirds of the way.
    wait_for_done(&group, calls * 2 / 3, killed_runs.completed().len()).await?;
    group.redis.stop().await?;
    let outage = Instant::now();
    let mut unready_seen = vec![false; group.members.len()];
    while outage.elapsed() < Duration::from_millis(plan.outage_ms) {
        for (seen, member) in unready_seen.iter_mut().zip(&group.members) {
            if !ready(member).await? {
                *seen = true;
            }
        }
        tokio::time::sleep(PROGRESS_POLL).await;
    }
    group.redis.resume().await?;

    let mut answered = 0;
    let mut timed_out = false;
    for burst in bursts {
        let burst: Burst = burst.await??;
        answered += burst.answered;
        timed_out |= burst.timed_out;
    }
    let elapsed = started.elapsed();
    let answered_twice = group.double.answered_twice().await?;
    let misdelivered = group.double.misdelivered().await?;

    let survivors: Vec<Runs> = group.members.iter().map(|m| m.run_log.read()).collect::<Result<_>>()?;
    let mut checks = vec![Check::new(
        "every call answered exactly once",
        format!("{calls} answered, none twice, none misdelivered"),
        format!(
            "{answered} answered{}, {} twice, {} misdelivered",
            if timed_out { " (a burst timed out)" } else { "" },
            answered_twice.len(),
            misdelivered.len()
        ),
        answered == calls && !timed_out && answered_twice.is_empty() && misdelivered.is_empty(),
    )];

    let mut starts_elsewhere: HashMap<&str, usize> = HashMap::new();
    for runs in &survivors {
        for (call, n) in runs.starts() {
            *starts_elsewhere.entry(call).or_default() += n;
        }
    }
    let ran_twice_on_survivors: Vec<&&str> = starts_elsewhere
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(call, _)| call)
        .collect();
    checks.push(Check::new(
        "no call ran twice on the bridges that lived (Redis restart included)",
        "0",
        ran_twice_on_survivors.len().to_string(),
        ran_twice_on_survivors.is_empty(),
    ));
    let killed_starts = killed_runs.starts();
    let killed_done = killed_runs.completed();
    let in_flight: Vec<&str> = killed_starts
        .keys()
        .copied()
        .filter(|call| !killed_done.contains(call))
        .collect();
    let taken_over = in_flight
        .iter()
        .filter(|call| starts_elsewhere.get(*call) == Some(&1))
        .count();
    checks.push(Check::new(
        "the killed bridge's runs in flight ran once more elsewhere",
        "all",
        format!("{taken_over} of {}", in_flight.len()),
        taken_over == in_flight.len(),
    ));
    let completed_then_rerun: Vec<&&str> = killed_done
        .iter()
        .filter(|call| starts_elsewhere.contains_key(**call))
        .collect();
    let mut taken_over_claims = 0.0;
    let mut delivered_for_it = 0.0;
    let mut notes = Vec::new();
    for member in &group.members {
        let metrics = Metrics::parse(&member.client.metrics().await?);
        taken_over_claims += metrics.get("skillbridge_cluster_claims_total{result=\"taken_over\"}");
        delivered_for_it += metrics.get("skillbridge_cluster_claims_total{result=\"completed_elsewhere\"}");
        let sessions = served(member).await?.len();
        checks.push(Check::new(
            format!("{} served every session after the kill", member.name),
            SESSIONS.to_string(),
            sessions.to_string(),
            sessions == SESSIONS,
        ));
    }
    // A claim of the killed bridge is finished elsewhere once its lease runs out: run again when it had no result
    // (taken over), or its stored result delivered when the skill had returned and the answer had not gone out.
    checks.push(Check::new(
        "the killed bridge's claims finished elsewhere once their lease ran out",
        format!(">= 1, of them run again >= its runs in flight ({})", in_flight.len()),
        format!(
            "{} ({taken_over_claims} run again, {delivered_for_it} delivered from their stored result)",
            taken_over_claims + delivered_for_it
        ),
        taken_over_claims + delivered_for_it >= 1.0 && taken_over_claims >= in_flight.len() as f64,
    ));
    checks.push(Check::new(
        "the bridges that lived were not ready while Redis was down",
        format!("{} of {}", unready_seen.len(), unready_seen.len()),
        format!(
            "{} of {}",
            unready_seen.iter().filter(|seen| **seen).count(),
            unready_seen.len()
        ),
        unready_seen.iter().all(|seen| *seen),
    ));
    let cluster = admin_get(&group.members[0], "/cluster").await?;
    let live = cluster["bridges"].as_array().map_or(0, Vec::len);
    checks.push(Check::new(
        "/cluster lists the bridges alive",
        (plan.bridges - 1).to_string(),
        live.to_string(),
        live == plan.bridges - 1,
    ));
    notes.push(format!(
        "{killed} (the {} bridge) was killed {:.1} s in with {} skills running; {taken_over_claims} of its claims (calls it had won \
         and not settled) were taken over and {delivered_for_it} answered from the result it had stored; {} of its calls had returned from the skill in the instant before their \
         result was stored, so they ran again elsewhere (no bridge can tell such a run from one that never finished)",
        if victim == 0 { "first" } else { "second or third" },
        at_kill.duration_since(started).as_secs_f64(),
        in_flight.len(),
        completed_then_rerun.len()
    ));
    group.stop().await?;
    Ok(Failover {
        answered,
        calls_per_sec: answered as f64 / elapsed.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        plan,
        checks,
        notes,
    })
}

/// Runs a bridge must have in flight to be killed: enough that some still are when the kill lands.
const BUSY: usize = 8;

/// A bridge with at least [`BUSY`] skills running now (by its run log), the first one (which created the sessions)
/// if it does; after 30 s without one, the first bridge.
async fn busy_member(group: &Group<'_>) -> Result<usize> {
    let mut tails: Vec<RunningTail> = group.members.iter().map(|_| RunningTail::default()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for (index, (member, tail)) in group.members.iter().zip(&mut tails).enumerate() {
            if tail.update(member.run_log.path())? >= BUSY {
                return Ok(index);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(0)
}

/// The runs begun and not returned of a run log, read from where the last read stopped.
#[derive(Default)]
struct RunningTail {
    offset: u64,
    running: HashSet<String>,
}

impl RunningTail {
    /// Reads the lines added since the last call; returns how many runs are in flight.
    fn update(&mut self, path: &std::path::Path) -> Result<usize> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(path) else {
            return Ok(0);
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut added = String::new();
        file.read_to_string(&mut added)?;
        // Only whole lines: a line being written is read next time.
        let whole = added.rfind('\n').map_or(0, |end| end + 1);
        for line in added[..whole].lines() {
            match line.split_once(' ') {
                Some(("start", call)) => self.running.insert(call.to_owned()),
                Some(("done", call)) => self.running.remove(call),
                _ => false,
            };
        }
        self.offset += whole as u64;
        Ok(self.running.len())
    }
}

/// Waits until the runs that returned reach `count`: `already` of bridges gone, and the group's.
async fn wait_for_done(group: &Group<'_>, count: usize, already: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut done = already;
        for member in &group.members {
            done += member.run_log.read()?.completed().len();
        }
        if done >= count {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("only {done} of {count} calls ran in time");
        }
        tokio::time::sleep(PROGRESS_POLL).await;
    }
}
