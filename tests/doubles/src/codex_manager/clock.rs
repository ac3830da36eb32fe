//! Ids and timestamps in the formats codex-manager uses: UUIDv7-style ids, ISO-8601 UTC
//! timestamps with milliseconds, and unix seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch.
pub(crate) fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the unix epoch.
pub(crate) fn unix_secs() -> i64 {
    unix_millis() / 1000
}

/// Now as `2026-11-24T01:44:01.603Z`.
pub(crate) fn iso_now() -> String {
    iso_from_millis(unix_millis())
}

/// A unix-milliseconds instant as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn iso_from_millis(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, ms) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A fresh UUIDv7-style id (`01a20b31-f8aa-7ee1-a8ed-f30e81e9ab3b`), like the session, thread
/// and turn ids codex-manager hands out.
pub(crate) fn new_id() -> String {
    let millis = unix_millis() as u128 & 0xffff_ffff_ffff;
    let random: u128 = rand::random();
    let rand_a = (random >> 64) & 0xfff;
    let rand_b = random & 0x3fff_ffff_ffff_ffff;
    let value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b;
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_iso_timestamps() {
        assert_eq!(iso_from_millis(0), "1970-01-01T00:00:00.000Z");
        // The instant of the captured tool-call row's createdAt.
        assert_eq!(iso_from_millis(1_795_484_641_603), "2026-11-24T01:44:01.603Z");
        assert_eq!(iso_from_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn ids_look_like_uuid_v7_and_differ() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('7'));
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
}
