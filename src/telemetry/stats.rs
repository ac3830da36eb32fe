//! [`BridgeStats`]: what the bridge has done, for the admin endpoint: counters by skill and outcome, a
//! duration histogram, answer attempts, the in-flight gauge, the calls running now, a bounded journal of recent
//! calls, and a live feed of calls starting and finishing ([`StatsEvent`], for the dashboard).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::lock;
use serde::Serialize;
use tokio::sync::broadcast;

/// Upper bounds (seconds) of the call duration histogram buckets.
pub(crate) const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];

/// The skill label of calls to tools that are not in the catalog (the journal keeps the real name).
pub(crate) const UNKNOWN_TOOL_LABEL: &str = "(unknown)";

/// How many recent calls the journal keeps.
pub(crate) const JOURNAL_CAPACITY: usize = 10_000;

/// The longest failure message a [`CallRecord`] keeps, in bytes.
const MAX_ERROR_LEN: usize = 500;

/// The largest arguments a [`CallRecord`] keeps, in bytes of JSON: with [`JOURNAL_CAPACITY`] records, recorded
/// arguments take at most 40 MB.
pub(crate) const MAX_RECORDED_ARGUMENTS: usize = 4096;

/// Events a slow subscriber may fall behind by before it misses some (it is told how many).
const EVENT_BUFFER: usize = 256;

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallSource {
    /// The codex-manager websocket stream.
    Stream,
    /// Pending-call listing.
    Poll,
    /// `codex app-server` over stdio.
    AppServer,
    /// The admin endpoint's invoke route.
    Admin,
    /// An MCP client's `tools/call`.
    Mcp,
}

/// One finished call, as `GET /calls` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// Upstream request id.
    pub request_id: String,
    /// The model's id of the call (unique within its turn; empty for the admin endpoint's calls).
    pub call_id: String,
    /// Tool name.
    pub tool: String,
    /// Thread (session) id.
    pub session: String,
    /// Where the call came from.
    pub source: CallSource,
    /// When it was taken, Unix milliseconds.
    pub started_at_ms: u64,
    /// How long the skill ran, milliseconds.
    pub duration_ms: f64,
    /// Skill outcome label (`success`, `skill_error`, `timed_out`, ..).
    pub outcome: &'static str,
    /// Last answer attempt's label (`delivered`, `already_answered`, `retry`, `rejected`, `lost`).
    pub submit_status: &'static str,
    /// How many answer attempts were made.
    pub attempts: u32,
    /// What the call answered when it did not succeed (cut to a few hundred bytes); `None` on success.
    pub error: Option<String>,
    /// The turn the call belongs to, when known.
    pub turn_id: Option<String>,
    /// The call's arguments, when the bridge records them (`--record-arguments`), each redacted parameter's value
    /// replaced by `"<redacted>"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    /// Why recorded arguments were left out (larger than the 4 KiB a record keeps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments_omitted: Option<String>,
}

impl CallRecord {
    /// `message`, cut at a character boundary to the length a record keeps.
    pub(crate) fn error_text(message: &str) -> String {
        if message.len() <= MAX_ERROR_LEN {
            return message.to_owned();
        }
        let mut end = MAX_ERROR_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &message[..end])
    }

    /// `arguments` as a record keeps them (already redacted): the arguments, or why they were left out.
    pub(crate) fn kept_arguments(arguments: serde_json::Value) -> (Option<serde_json::Value>, Option<String>) {
        let size = serde_json::to_vec(&arguments).map_or(usize::MAX, |bytes| bytes.len());
        if size <= MAX_RECORDED_ARGUMENTS {
            (Some(arguments), None)
        } else {
            let reason = format!(
                "the arguments were {size} bytes of JSON, more than the {MAX_RECORDED_ARGUMENTS} a record keeps"
            );
            (None, Some(reason))
        }
    }
}

/// A call whose skill is running or whose answer is being delivered now.
#[derive(Debug, Clone, Serialize)]
pub struct RunningCall {
    /// Upstream request id.
    pub request_id: String,
    /// Tool name.
    pub tool: String,
    /// Thread (session) id.
    pub session: String,
    /// When its skill started, Unix milliseconds.
    pub started_at_ms: u64,
}

/// A call starting or finishing, as `GET /events` streams them.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StatsEvent {
    /// A call's skill started; the call is running until its `Finished`.
    Started {
        /// Identifies the call until it finishes.
        run: u64,
        /// The call.
        #[serde(flatten)]
        call: RunningCall,
    },
    /// A call was answered (or its answer given up).
    Finished {
        /// The `run` of its `Started`.
        run: u64,
        /// The call as `GET /calls` shows it.
        #[serde(flatten)]
        record: CallRecord,
    },
}
/// Cumulative counts of observations (seconds) per bucket upper bound.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::with_bounds(&DURATION_BUCKETS)
    }
}

impl Histogram {
    pub(crate) fn with_bounds(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            buckets: self.buckets.clone(),
            count: self.count,
            sum: self.sum,
        }
    }

    pub(crate) fn observe(&mut self, seconds: f64) {
        for (bucket, &bound) in self.buckets.iter_mut().zip(self.bounds) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// A consistent copy of the per-skill numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SkillCounts {
    /// Calls by outcome label.
    pub by_outcome: BTreeMap<&'static str, u64>,
    /// Calls in all.
    pub total: u64,
}

/// A histogram copy for rendering.
#[derive(Debug, Clone)]
pub struct HistogramSnapshot {
    /// The buckets' upper bounds in seconds (for call durations: 0.001, 0.0025, .. 30, 60).
    pub bounds: &'static [f64],
    /// Cumulative counts per bucket.
    pub buckets: Vec<u64>,
    /// Observations.
    pub count: u64,
    /// Sum of observed seconds.
    pub sum: f64,
}

impl HistogramSnapshot {
    /// The `q` quantile (0 < q ≤ 1) as the upper bound in seconds of the bucket it falls in: at most that long,
    /// which is as precise as buckets allow. `None` with no observations; infinity past the last bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let bucket = self.buckets.iter().position(|&cumulative| cumulative >= rank);
        Some(bucket.map_or(f64::INFINITY, |index| self.bounds[index]))
    }
}

/// One skill's counts by outcome and its duration histogram.
#[derive(Debug, Default)]
struct SkillStats {
    by_outcome: BTreeMap<&'static str, u64>,
    durations: Histogram,
}

/// Shared, lock-light statistics of one bridge.
#[derive(Debug)]
pub struct BridgeStats {
    /// By skill name; a name is allocated once, when the skill first runs.
    skills: Mutex<BTreeMap<String, SkillStats>>,
    answer_attempts: Mutex<BTreeMap<&'static str, u64>>,
    journal: Mutex<VecDeque<CallRecord>>,
    /// How long calls waited for a worker before they ran.
    queue_waits: Mutex<Histogram>,
    in_flight: AtomicI64,
    duplicates: AtomicU64,
    /// The calls running now, by run number.
    running: Mutex<BTreeMap<u64, RunningCall>>,
    next_run: AtomicU64,
    events: broadcast::Sender<StatsEvent>,
}

impl Default for BridgeStats {
    fn default() -> Self {
        Self {
            skills: Mutex::default(),
            answer_attempts: Mutex::default(),
            journal: Mutex::default(),
            queue_waits: Mutex::default(),
            in_flight: AtomicI64::default(),
            duplicates: AtomicU64::default(),
            running: Mutex::default(),
            next_run: AtomicU64::default(),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }
}

impl BridgeStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn call_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn call_dequeued(&self, waited: Duration) {
        lock(&self.queue_waits).observe(waited.as_secs_f64());
    }

    pub(crate) fn call_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate_seen(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn skill_ran(&self, tool: &str, outcome: &'static str, duration: Duration) {
        // The model picks tool names freely; one label for every name we don't know keeps the metrics bounded.
        let tool = if outcome == "unknown_tool" {
            UNKNOWN_TOOL_LABEL
        } else {
            tool
        };
        let mut skills = lock(&self.skills);
        let skill = match skills.get_mut(tool) {
            Some(skill) => skill,
            None => skills.entry(tool.to_owned()).or_default(),
        };
        *skill.by_outcome.entry(outcome).or_default() += 1;
        skill.durations.observe(duration.as_secs_f64());
    }

    pub(crate) fn answer_attempted(&self, label: &'static str) {
        *lock(&self.answer_attempts).entry(label).or_default() += 1;
    }

    /// A call's skill starts; returns the run number that [`record`](Self::record) ends it with.
    pub(crate) fn run_started(&self, call: RunningCall) -> u64 {
        let run = self.next_run.fetch_add(1, Ordering::Relaxed);
        // Copies for watchers only when someone watches: this runs for every call.
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(StatsEvent::Started {
                run,
                call: call.clone(),
            });
        }
        lock(&self.running).insert(run, call);
        run
    }

    /// Records a finished call in the journal; `run` (from [`run_started`](Self::run_started)) is no longer running.
    pub(crate) fn record(&self, run: Option<u64>, record: CallRecord) {
        if let Some(run) = run {
            lock(&self.running).remove(&run);
            if self.events.receiver_count() > 0 {
                let _ = self.events.send(StatsEvent::Finished {
                    run,
                    record: record.clone(),
                });
            }
        }
        let mut journal = lock(&self.journal);
        if journal.len() == JOURNAL_CAPACITY {
            journal.pop_front();
        }
        journal.push_back(record);
    }

    /// The calls running now, oldest first.
    pub fn running(&self) -> Vec<(u64, RunningCall)> {
        lock(&self.running)
            .iter()
            .map(|(run, call)| (*run, call.clone()))
            .collect()
    }

    /// Calls starting and finishing from now on. A subscriber that falls more than 256 events behind
    /// misses the oldest (its receiver says how many).
    pub fn subscribe(&self) -> broadcast::Receiver<StatsEvent> {
        self.events.subscribe()
    }

    /// Calls running or being answered now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Calls ignored because they had been seen before.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Counts for one skill.
    pub fn skill_counts(&self, tool: &str) -> SkillCounts {
        match lock(&self.skills).get(tool) {
            Some(skill) => SkillCounts {
                by_outcome: skill.by_outcome.clone(),
                total: skill.by_outcome.values().sum(),
            },
            None => SkillCounts::default(),
        }
    }

    /// `(tool, outcome, count)` for every pair seen.
    pub fn call_counts(&self) -> Vec<(String, &'static str, u64)> {
        lock(&self.skills)
            .iter()
            .flat_map(|(tool, skill)| skill.by_outcome.iter().map(|(outcome, n)| (tool.clone(), *outcome, *n)))
            .collect()
    }

    /// The duration histogram of every skill that ran.
    pub fn durations(&self) -> Vec<(String, HistogramSnapshot)> {
        lock(&self.skills)
            .iter()
            .map(|(tool, skill)| (tool.clone(), skill.durations.snapshot()))
            .collect()
    }

    /// The duration histogram of one skill, once it has run.
    pub fn durations_of(&self, tool: &str) -> Option<HistogramSnapshot> {
        lock(&self.skills).get(tool).map(|skill| skill.durations.snapshot())
    }

    /// How long calls waited for a worker (the skill's own duration is in [`durations`](Self::durations)).
    pub fn queue_waits(&self) -> HistogramSnapshot {
        lock(&self.queue_waits).snapshot()
    }

    /// Answer attempts by label.
    pub fn answer_attempts(&self) -> Vec<(&'static str, u64)> {
        lock(&self.answer_attempts).iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// The most recent calls, newest first, at most `limit`.
    pub fn recent(&self, limit: usize) -> Vec<CallRecord> {
        lock(&self.journal).iter().rev().take(limit).cloned().collect()
    }

    /// A page of the recent calls that `keep` accepts, newest first: `limit` of them after skipping `offset`,
    /// and how many it accepts in all.
    pub fn recent_page(
        &self,
        keep: impl Fn(&CallRecord) -> bool,
        offset: usize,
        limit: usize,
    ) -> (Vec<CallRecord>, usize) {
        let journal = lock(&self.journal);
        let mut total = 0;
        let mut page = Vec::new();
        for record in journal.iter().rev().filter(|record| keep(record)) {
            if total >= offset && page.len() < limit {
                page.push(record.clone());
            }
            total += 1;
        }
        (page, total)
    }

    /// When the latest call of each of `sessions` in the journal started (Unix milliseconds), in their order;
    /// `None` for a session without one. Reads the journal from its newest end until every session is found.
    pub fn last_calls(&self, sessions: &[&str]) -> Vec<Option<u64>> {
        let mut last = vec![None; sessions.len()];
        let mut missing = sessions.len();
        for record in lock(&self.journal).iter().rev() {
            if missing == 0 {
                break;
            }
            if let Some(index) = sessions.iter().position(|id| *id == record.session)
                && last[index].is_none()
            {
                last[index] = Some(record.started_at_ms);
                missing -= 1;
            }
        }
        last
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tools_share_one_label() {
        let stats = BridgeStats::new();
        for name in ["nope", "also_nope"] {
            stats.skill_ran(name, "unknown_tool", Duration::from_millis(1));
        }
        assert_eq!(stats.skill_counts(UNKNOWN_TOOL_LABEL).total, 2);
        assert_eq!(stats.skill_counts("nope").total, 0);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let stats = BridgeStats::new();
        stats.skill_ran("echo", "success", Duration::from_millis(3));
        stats.skill_ran("echo", "success", Duration::from_millis(300));
        stats.skill_ran("echo", "timed_out", Duration::from_secs(61));
        let (_, h) = stats.durations().pop().unwrap();
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], 0); // <= 1ms
        assert_eq!(h.buckets[2], 1); // <= 5ms
        assert_eq!(h.buckets[8], 2); // <= 500ms
        assert_eq!(*h.buckets.last().unwrap(), 2); // <= 60s; the 61 s call is only in +Inf
        let counts = stats.skill_counts("echo");
        assert_eq!(counts.total, 3);
        assert_eq!(counts.by_outcome["success"], 2);
    }

    #[test]
    fn call_counts_are_sorted_by_skill_then_outcome() {
        let stats = BridgeStats::new();
        for (tool, outcome) in [
            ("zeta", "success"),
            ("echo", "timed_out"),
            ("echo", "success"),
            ("echo", "success"),
        ] {
            stats.skill_ran(tool, outcome, Duration::from_millis(1));
        }
        assert_eq!(
            stats.call_counts(),
            [
                ("echo".to_owned(), "success", 2),
                ("echo".to_owned(), "timed_out", 1),
                ("zeta".to_owned(), "success", 1)
            ]
        );
        let names: Vec<String> = stats.durations().into_iter().map(|(tool, _)| tool).collect();
        assert_eq!(names, ["echo", "zeta"]);
        assert_eq!(stats.skill_counts("unknown").total, 0);
    }

    #[test]
    fn journal_keeps_the_newest_calls() {
        let stats = BridgeStats::new();
        for i in 0..(JOURNAL_CAPACITY + 5) {
            stats.record(
                None,
                CallRecord {
                    request_id: i.to_string(),
                    call_id: format!("call_{i}"),
                    tool: "echo".into(),
                    session: "t".into(),
                    source: CallSource::Stream,
                    started_at_ms: 0,
                    duration_ms: 0.0,
                    outcome: "success",
                    submit_status: "delivered",
                    attempts: 1,
                    error: None,
                    turn_id: None,
                    arguments: None,
                    arguments_omitted: None,
                },
            );
        }
        let recent = stats.recent(2);
        assert_eq!(recent[0].request_id, (JOURNAL_CAPACITY + 4).to_string());
        assert_eq!(recent[1].request_id, (JOURNAL_CAPACITY + 3).to_string());
        assert_eq!(stats.recent(usize::MAX).len(), JOURNAL_CAPACITY);
    }
}
