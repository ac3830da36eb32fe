//! The log of malformed frames: a peer that sends garbage must be visible at the default level without flooding the
//! log. The first frame of each [kind](FrameError::kind) is logged at warn at once; after that, at most one line per
//! kind per [`REPORT_PERIOD`], carrying how many frames of that kind were skipped since the previous line. The rest
//! go to debug. Every frame is counted in [`StreamStats`](super::StreamStats) either way.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::frame::FrameError;
use crate::util::lock;

/// At most one warn line per kind of malformed frame this often.
pub(crate) const REPORT_PERIOD: Duration = Duration::from_secs(60);

/// When each kind was last reported, and how many frames of it were skipped since. Shared by the connections of one
/// run.
#[derive(Debug, Default)]
pub(crate) struct MalformedLog {
    kinds: Mutex<[Option<Reported>; FrameError::KINDS.len()]>,
}

#[derive(Debug, Clone, Copy)]
struct Reported {
    at: Instant,
    /// Frames of the kind skipped after that line.
    since: u64,
}

/// What to do with one malformed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// The first of its kind.
    First,
    /// The first after a quiet period: `count` frames of its kind since the previous line, this one included.
    Again { count: u64 },
    /// Within the period: debug only.
    Quiet,
}

impl MalformedLog {
    /// Logs one malformed frame (`frame` is its preview).
    pub(crate) fn skipped(&self, error: &FrameError, frame: &str) {
        let kind = error.kind();
        match self.line(error.kind_index(), Instant::now()) {
            Line::First => tracing::warn!(
                kind,
                %error,
                frame,
                "skipping a malformed stream frame (further ones of this kind are reported at most once a minute)"
            ),
            Line::Again { count } => tracing::warn!(
                kind,
                %error,
                frame,
                count,
                "skipping malformed stream frames: {count} of this kind since the last report"
            ),
            Line::Quiet => tracing::debug!(kind, %error, frame, "skipping a malformed stream frame"),
        }
    }

    fn line(&self, kind: usize, now: Instant) -> Line {
        let mut kinds = lock(&self.kinds);
        match &mut kinds[kind] {
            slot @ None => {
                *slot = Some(Reported { at: now, since: 0 });
                Line::First
            }
            Some(reported) if now.duration_since(reported.at) >= REPORT_PERIOD => {
                let count = reported.since + 1;
                *reported = Reported { at: now, since: 0 };
                Line::Again { count }
            }
            Some(reported) => {
                reported.since += 1;
                Line::Quiet
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_period_with_the_count_since() {
        let log = MalformedLog::default();
        let start = Instant::now();
        assert_eq!(log.line(0, start), Line::First);
        assert_eq!(log.line(1, start), Line::First, "kinds are limited separately");
        for _ in 0..3 {
            assert_eq!(log.line(0, start + Duration::from_secs(10)), Line::Quiet);
        }
        let later = start + REPORT_PERIOD;
        assert_eq!(log.line(0, later), Line::Again { count: 4 });
        assert_eq!(log.line(0, later + Duration::from_secs(59)), Line::Quiet);
        assert_eq!(log.line(0, later + REPORT_PERIOD), Line::Again { count: 2 });
        assert_eq!(log.line(1, later), Line::Again { count: 1 });
    }
}
