//! What the bridge did and how it stands, shared by the parts that write it (the dispatcher, the upstreams)
//! and the parts that read it (the admin endpoint, an embedder's own code):
//!
//! - [`BridgeStats`]: calls by skill and outcome, durations, answer attempts, the in-flight gauge and a bounded
//!   list of recent calls ([`CallRecord`]);
//! - [`BridgeHealth`]: readiness, from the upstream's link ([`LinkStatus`]), the sessions served
//!   ([`ServedSession`]) and, for a bridge in a group, the group's store ([`ClusterStatus`]).

mod cluster;
mod health;
mod stats;

pub use cluster::{ClaimResult, ClusterStatus, ClusterView, PeerStatus};
pub use health::{BridgeHealth, LinkStatus, ServedSession};
pub(crate) use stats::unix_ms;
pub use stats::{BridgeStats, CallRecord, CallSource, HistogramSnapshot, RunningCall, SkillCounts, StatsEvent};
pub(crate) use stats::{DURATION_BUCKETS, JOURNAL_CAPACITY};
