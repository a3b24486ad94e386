//! Time rules: the precision timestamps are kept at, and how an execution's creation time
//! is written for callers (RFC 3339 in a zone, for people, and in UTC).

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use chrono_tz::Tz;

/// Truncates to whole microseconds, the precision both databases store, so that what a
/// write returns is exactly what a later read returns.
pub fn to_stored_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// Parses an IANA zone name such as `America/New_York` or `UTC`.
pub fn parse_time_zone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// RFC 3339 with the zone's offset, to the second: `2025-10-05T23:49:44-04:00`.
pub fn format_in_zone(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// For people, in the zone: `Oct 05, 2025 11:49 pm EDT`.
pub fn format_for_people(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%b %d, %Y %I:%M %P %Z")
        .to_string()
}

/// RFC 3339 in UTC, to the second: `2025-10-06T03:49:44Z`.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_time() -> DateTime<Utc> {
        "2025-10-06T03:49:44.123456789Z".parse().unwrap()
    }

    #[test]
    fn formats_the_seed_example() {
        let zone = parse_time_zone("America/New_York").unwrap();
        assert_eq!(
            format_in_zone(seed_time(), zone),
            "2025-10-05T23:49:44-04:00"
        );
        assert_eq!(
            format_for_people(seed_time(), zone),
            "Oct 05, 2025 11:49 pm EDT"
        );
        assert_eq!(format_utc(seed_time()), "2025-10-06T03:49:44Z");
    }

    #[test]
    fn formats_morning_hours_in_utc() {
        let t: DateTime<Utc> = "2025-01-02T09:05:00Z".parse().unwrap();
        assert_eq!(format_for_people(t, Tz::UTC), "Jan 02, 2025 09:05 am UTC");
        assert_eq!(format_in_zone(t, Tz::UTC), "2025-01-02T09:05:00+00:00");
    }

    #[test]
    fn refuses_unknown_zones_and_truncates_to_micros() {
        assert!(parse_time_zone("Mars/Olympus").is_none());
        assert_eq!(to_stored_precision(seed_time()).nanosecond(), 123_456_000);
    }
}
