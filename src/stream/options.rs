//! [`StreamOptions`]: what to subscribe to, keep-alive timing, reconnect backoff, buffering and the stop token.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Default interval between `{"type":"ping"}` commands.
pub(crate) const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// Default time to wait for a `pong` before the socket counts as dead.
pub(crate) const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first reconnect delay.
pub(crate) const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(200);
/// Default longest reconnect delay.
pub(crate) const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Default number of frames that may wait for the handlers.
pub(crate) const DEFAULT_EVENT_BUFFER: usize = 1024;

/// How [`StreamClient::run`](super::StreamClient::run) behaves. `Default` gives the documented defaults; the setters
/// chain:
///
/// ```
/// use std::time::Duration;
/// use skillbridge::stream::StreamOptions;
/// use tokio_util::sync::CancellationToken;
///
/// let stop = CancellationToken::new();
/// let options = StreamOptions::new()
///     .thread_id("01a20b39-6909-7682-9b44-1cd5afff9d3c")
///     .ping_interval(Duration::from_secs(5))
///     .stop(stop.clone());
/// assert_eq!(options.pong_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Subscribe to this thread (`/stream?threadId=..` plus a `subscribe` command); `None` receives every event.
    pub thread_id: Option<String>,
    /// Interval between pings (15 s).
    pub ping_interval: Duration,
    /// A ping unanswered for this long means a dead socket: the stream reconnects (10 s).
    pub pong_timeout: Duration,
    /// First reconnect delay (200 ms); doubles per failed attempt, with jitter, and resets after a healthy connection.
    pub backoff_initial: Duration,
    /// Longest reconnect delay (10 s).
    pub backoff_max: Duration,
    /// Frames that may queue for the handlers (1024). When full the socket is not read until the handlers make
    /// room; if they make none within `pong_timeout`, the stream drops the frame, counts it and reconnects once the
    /// handlers catch up (see the module docs on slow handlers).
    pub event_buffer: usize,
    /// Fires to end `run`: the socket is closed with a close frame and `run` returns `Ok`.
    pub stop: CancellationToken,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            thread_id: None,
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            event_buffer: DEFAULT_EVENT_BUFFER,
            stop: CancellationToken::new(),
        }
    }
}

impl StreamOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes to one thread.
    pub fn thread_id(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// The ping interval.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// The pong timeout.
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }

    /// The first and the longest reconnect delay.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// How many frames may wait for the handlers.
    pub fn event_buffer(mut self, frames: usize) -> Self {
        self.event_buffer = frames;
        self
    }

    /// The token that stops the stream.
    pub fn stop(mut self, token: CancellationToken) -> Self {
        self.stop = token;
        self
    }

    /// Checks the values that would otherwise misbehave (zero intervals, an empty buffer, `initial > max`).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.ping_interval.is_zero() {
            return Err("ping_interval must be greater than zero".into());
        }
        if self.pong_timeout.is_zero() {
            return Err("pong_timeout must be greater than zero".into());
        }
        if self.event_buffer == 0 {
            return Err("event_buffer must be at least 1".into());
        }
        if self.backoff_initial > self.backoff_max {
            return Err(format!(
                "backoff_initial ({:?}) must not exceed backoff_max ({:?})",
                self.backoff_initial, self.backoff_max
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let options = StreamOptions::default();
        assert_eq!(options.ping_interval, Duration::from_secs(15));
        assert_eq!(options.pong_timeout, Duration::from_secs(10));
        assert_eq!(options.backoff_initial, Duration::from_millis(200));
        assert_eq!(options.backoff_max, Duration::from_secs(10));
        assert!(options.validate().is_ok());
        assert!(StreamOptions::new().ping_interval(Duration::ZERO).validate().is_err());
        assert!(StreamOptions::new().pong_timeout(Duration::ZERO).validate().is_err());
        assert!(StreamOptions::new().event_buffer(0).validate().is_err());
        let inverted = StreamOptions::new().backoff(Duration::from_secs(2), Duration::from_secs(1));
        assert!(inverted.validate().unwrap_err().contains("backoff_initial"));
    }
}
