//! Assertions for timing tests on Tokio's paused clock, where time moves only when every task waits: a duration
//! is exact, give or take the timer's millisecond, and a jittered backoff lies within its range.

#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use tokio::time::Instant;

/// The longest a close frame may take on stop before the stream drops the socket (the stream's `CLOSE_GRACE`).
pub const CLOSE_GRACE: Duration = Duration::from_millis(50);

/// `since` is `expected` ago, give or take the timer's millisecond.
#[track_caller]
pub fn assert_took(since: Instant, expected: Duration, what: &str) {
    let took = since.elapsed();
    assert!(
        took >= expected && took <= expected + Duration::from_millis(2),
        "{what}: took {took:?}, expected {expected:?}"
    );
}

/// `gap` is a jittered backoff of `nominal`, i.e. within `[nominal / 2, nominal]`, give or take the timer's
/// millisecond.
#[track_caller]
pub fn assert_backoff(gap: Duration, nominal: Duration, what: &str) {
    assert!(
        gap >= nominal / 2 && gap <= nominal + Duration::from_millis(1),
        "{what}: waited {gap:?}, expected a backoff of {:?}..={nominal:?}",
        nominal / 2
    );
}
