//! Timestamps as the state DB stores them: RFC 3339 in UTC with microseconds and a `Z`, so that
//! text order is time order on SQLite and PostgreSQL alike.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

pub fn to_db(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn from_db(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Parses a `YYYY-MM-DD` date given by a user, naming the flag in the error.
pub fn parse_date(flag: &str, value: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| format!("{flag} `{value}` is not a date; expected YYYY-MM-DD, e.g. 2025-01-31"))
}

/// `1.234s`, `12m 03s`, `250ms`: a duration for people.
pub fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn db_format_round_trips_and_sorts_as_text() {
        let a = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let b = a + chrono::Duration::microseconds(1);
        assert_eq!(to_db(a), "2025-01-02T03:04:05.000000Z");
        assert_eq!(from_db(&to_db(b)), Some(b));
        assert!(to_db(a) < to_db(b));
    }

    #[test]
    fn dates_name_the_flag() {
        assert_eq!(
            parse_date("--from", "2025-13-01").unwrap_err(),
            "--from `2025-13-01` is not a date; expected YYYY-MM-DD, e.g. 2025-01-31"
        );
    }

    #[test]
    fn durations_read_well() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_secs(723)), "12m 03s");
    }
}
