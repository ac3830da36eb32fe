//! The bridge: tool calls from an upstream, deduplicated and executed by the [`Dispatcher`], answered back.
//!
//! Flow: upstream (stream, pending listing, app-server) → [`Dispatcher::submit`] → skill → [`Upstream::answer`]
//! (with retries) → upstream.
//!
//! [`Upstream::answer`]: crate::upstream::Upstream::answer

mod dispatcher;
mod health;
mod ledger;
mod stats;

pub use dispatcher::{DispatchConfig, Dispatcher, RetryPolicy, ShutdownReport, Submitted};
pub use health::{BridgeHealth, LinkStatus, ServedSession};
pub(crate) use stats::unix_ms;
pub use stats::{
    BridgeStats, CallRecord, CallSource, DURATION_BUCKETS, HistogramSnapshot, SkillCounts, UNKNOWN_TOOL_LABEL,
};
