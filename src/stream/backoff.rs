//! Reconnect delays: exponential backoff with jitter, reset after a healthy connection.

use std::time::Duration;

use rand::Rng;

/// Delays between reconnect attempts: `initial`, doubling up to `max`, each scaled by a random factor in
/// `[0.5, 1.0]` so that many clients dropped at once do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The next delay; the one after it is twice as long (up to `max`).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        base.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Back to `initial`, after a connection that worked.
    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_max_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(500));
        let bases = [100, 200, 400, 500, 500];
        for base in bases {
            let delay = backoff.next_delay();
            assert!(
                delay >= ms(base / 2) && delay <= ms(base),
                "{delay:?} not within jitter of {base} ms"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= ms(100));
    }
}
