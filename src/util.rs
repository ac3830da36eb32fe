//! Small helpers the crate needs in several places, each written once: the message of a panic, and for the
//! bridge a poison-tolerant lock, exponential backoff, durations for log lines, the string form of a JSON-RPC request id,
//! percent-encoding, and bearer tokens (the admin endpoint's, the MCP server's).

use std::any::Any;

/// The message a panic was raised with, for logs and failure answers.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "a panic without a message"
    }
}

#[cfg(feature = "bridge")]
pub(crate) use bridge::*;

#[cfg(feature = "bridge")]
mod bridge {
    use std::sync::{Mutex, MutexGuard};
    use std::time::Duration;

    use serde_json::Value;

    /// The credentials of an `Authorization` value with the `Bearer` scheme (in any case: RFC 9110 §11.1 makes
    /// schemes case-insensitive), without the spaces or tabs around them; `None` for another scheme or none.
    pub(crate) fn bearer_credentials(value: &str) -> Option<&str> {
        let is_space = |c: char| c == ' ' || c == '\t';
        let (scheme, credentials) = value.trim_matches(is_space).split_once(is_space)?;
        let credentials = credentials.trim_start_matches(is_space);
        (scheme.eq_ignore_ascii_case("Bearer") && !credentials.is_empty()).then_some(credentials)
    }

    /// `true` when `presented` equals the secret, compared in constant time for equal lengths.
    pub(crate) fn secret_matches(secret: &secrecy::SecretString, presented: &str) -> bool {
        use secrecy::ExposeSecret;
        let (a, b) = (secret.expose_secret().as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Locks `mutex`, recovering it when poisoned: every value the crate guards (counters, maps of calls and
    /// sessions) stays valid when a holder panics, and a panicking skill must not take the bridge down with it.
    pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `1.2s`, `350ms`: a duration to a tenth of a second (milliseconds below one second), for log lines.
    pub(crate) fn format_duration_approx(duration: Duration) -> String {
        if duration < Duration::from_secs(1) {
            format!("{}ms", duration.as_millis())
        } else {
            format!("{:.1}s", duration.as_secs_f64())
        }
    }

    /// Exponential backoff: `initial` before the first retry, doubling up to `max`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Backoff {
        pub(crate) initial: Duration,
        pub(crate) max: Duration,
    }

    impl Backoff {
        /// The wait before retry number `attempt` (1 for the first).
        pub(crate) fn delay(&self, attempt: u32) -> Duration {
            let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
            self.initial.saturating_mul(factor).min(self.max)
        }

        /// [`delay`](Self::delay) scaled by a random factor in `[0.5, 1.0]`, so that many clients dropped at once
        /// do not retry in lockstep.
        pub(crate) fn jittered(&self, attempt: u32) -> Duration {
            use rand::Rng;
            self.delay(attempt).mul_f64(rand::rng().random_range(0.5..=1.0))
        }
    }

    /// The string form of a JSON-RPC request id: a string as itself, a number as its digits (`0` → `"0"`). Codex
    /// numbers its requests; codex-manager passes them on as numbers in stream signals but as strings in
    /// pending-call rows and REST paths, so calls are keyed by this form. `None` for any other JSON type.
    pub(crate) fn request_id_string(id: &Value) -> Option<String> {
        match id {
            Value::String(id) => Some(id.clone()),
            Value::Number(id) => Some(id.to_string()),
            _ => None,
        }
    }

    /// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');

    /// Percent-encodes `text` for a URL path segment or query value: an id with `/`, `?` or `&` in it stays one
    /// value.
    pub(crate) fn percent_encode(text: &str) -> String {
        percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages() {
        let text = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(&*text), "boom 1");
        let literal = std::panic::catch_unwind(|| std::panic::panic_any("static")).unwrap_err();
        assert_eq!(panic_message(&*literal), "static");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7)).unwrap_err();
        assert_eq!(panic_message(&*other), "a panic without a message");
    }

    #[cfg(feature = "bridge")]
    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_within_half() {
        use std::time::Duration;
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (1..=5).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(500));
        for attempt in 1..=5 {
            let jittered = backoff.jittered(attempt);
            assert!(jittered >= backoff.delay(attempt) / 2 && jittered <= backoff.delay(attempt));
        }
    }

    #[cfg(feature = "bridge")]
    #[test]
    fn request_ids_number_or_string() {
        assert_eq!(request_id_string(&serde_json::json!(0)).as_deref(), Some("0"));
        assert_eq!(request_id_string(&serde_json::json!("7")).as_deref(), Some("7"));
        assert_eq!(request_id_string(&serde_json::json!(null)), None);
    }

    #[cfg(feature = "bridge")]
    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        assert_eq!(percent_encode("a-b.c_d~e9"), "a-b.c_d~e9");
        assert_eq!(percent_encode("../x?y=1&z"), "..%2Fx%3Fy%3D1%26z");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
