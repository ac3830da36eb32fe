//! A clock with time zones: the current time anywhere, and wall-clock conversions between zones.
//!
//! Time zone rules come from the IANA database bundled into the binary (jiff's `tzdb-bundle-always`), so the
//! answers do not depend on the host's `/usr/share/zoneinfo`.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use schemars::JsonSchema;
use serde::Serialize;
use skillbridge::skill;
use skillbridge::skill::SkillError;

/// A moment as read on a clock in one time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ClockReading {
    /// The IANA time zone name.
    pub time_zone: String,
    /// Local date and time with its UTC offset (RFC 3339), like `2026-11-24T09:30:00+01:00`.
    pub local_time: String,
    /// The day of the week, like `Tuesday`.
    pub weekday: String,
    /// The UTC offset, like `+01:00`.
    pub utc_offset: String,
    /// The zone's abbreviation at that moment, like `CET` (may be a numeric offset for some zones).
    pub abbreviation: String,
    /// Whether daylight saving time is in effect.
    pub daylight_saving: bool,
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix_seconds: i64,
}

/// The current date and time in a time zone.
#[skill(timeout = "5s", title = "Current time", read_only, open_world = false, tags = ["time"])]
pub async fn current_time(
    /// IANA time zone name, like `Europe/Paris` or `America/New_York` (default `UTC`).
    time_zone: Option<String>,
) -> Result<ClockReading, SkillError> {
    let zone = time_zone_named(time_zone.as_deref().unwrap_or("UTC"))?;
    Ok(reading(&Timestamp::now().to_zoned_datetime(zone)))
}

/// Converts a wall-clock time from one time zone to another.
///
/// Times that do not exist (skipped by a daylight-saving jump) move forward; times that occur twice
/// take the earlier one.
#[skill(timeout = "5s", title = "Convert a time", read_only, open_world = false, tags = ["time"])]
pub fn convert_time(
    /// The local date and time in `from_zone`, like `2026-03-29T14:30` or `2026-03-29 14:30:00`.
    time: String,
    /// IANA time zone name the time is given in, like `Asia/Tokyo`.
    from_zone: String,
    /// IANA time zone name to convert to, like `Europe/Berlin`.
    to_zone: String,
) -> Result<ClockReading, SkillError> {
    let local: DateTime = time.trim().parse().map_err(|error| {
        SkillError::new(format!(
            "time: `{time}` is not a date and time like 2026-03-29T14:30 ({error})"
        ))
    })?;
    let from = time_zone_named(&from_zone)?;
    let to = time_zone_named(&to_zone)?;
    let zoned = local
        .to_zoned_datetime(from)
        .map_err(|error| SkillError::new(format!("time: {error}")))?;
    Ok(reading(&zoned.timestamp().to_zoned_datetime(to)))
}

fn time_zone_named(name: &str) -> Result<TimeZone, SkillError> {
    TimeZone::get(name.trim()).map_err(|_| {
        SkillError::new(format!(
            "unknown time zone `{name}`: give an IANA name like `Europe/Paris`, `America/New_York` or `UTC`"
        ))
    })
}

fn reading(zoned: &ZonedDateTime) -> ClockReading {
    let info = zoned.time_zone().to_offset_info(zoned.timestamp());
    ClockReading {
        time_zone: zoned.time_zone().iana_name().unwrap_or("UTC").to_owned(),
        local_time: zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        weekday: format!("{:?}", zoned.weekday()),
        utc_offset: zoned.strftime("%:z").to_string(),
        abbreviation: info.abbreviation().to_owned(),
        daylight_saving: info.dst().is_dst(),
        unix_seconds: zoned.timestamp().as_second(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_across_zones_with_daylight_saving() {
        let reading = convert_time(
            "2026-07-01T09:00".into(),
            "America/New_York".into(),
            "Europe/Paris".into(),
        )
        .unwrap();
        assert_eq!(reading.local_time, "2026-07-01T15:00:00+02:00");
        assert_eq!(reading.abbreviation, "CEST");
        assert!(reading.daylight_saving);
        assert_eq!(reading.weekday, "Wednesday");
    }

    #[test]
    fn a_skipped_time_moves_forward() {
        // 02:30 does not exist in Paris on 2026-03-29; the clocks jump from 02:00 to 03:00.
        let reading = convert_time("2026-03-29 02:30".into(), "Europe/Paris".into(), "UTC".into()).unwrap();
        assert_eq!(reading.local_time, "2026-03-29T01:30:00+00:00");
    }

    #[test]
    fn unknown_zones_and_bad_times_explain() {
        let error = convert_time("2026-01-01T00:00".into(), "Mars/Olympus".into(), "UTC".into()).unwrap_err();
        assert!(
            error.to_string().starts_with("unknown time zone `Mars/Olympus`"),
            "{error}"
        );
        let error = convert_time("tomorrow".into(), "UTC".into(), "UTC".into()).unwrap_err();
        assert!(
            error.to_string().starts_with("time: `tomorrow` is not a date and time"),
            "{error}"
        );
    }
}
