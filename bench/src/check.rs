//! [`Check`]: one judged measurement of a harness run (a threshold, what was measured, and whether it was met),
//! as the fault suite and the cluster runs report them.

use serde::Serialize;

/// One threshold and how a run did against it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub what: String,
    /// The threshold.
    pub goal: String,
    /// The measurement.
    pub measured: String,
    /// Whether the measurement meets the threshold.
    pub met: bool,
}

impl Check {
    /// A check of `what`: `measured` against `goal`.
    pub fn new(what: impl Into<String>, goal: impl Into<String>, measured: impl Into<String>, met: bool) -> Check {
        Check {
            what: what.into(),
            goal: goal.into(),
            measured: measured.into(),
            met,
        }
    }
}
