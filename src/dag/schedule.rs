//! Schedules: cron expressions evaluated in a DAG's IANA time zone, and the schedule slots
//! (logical date + data interval) that runs and backfills are made of.
//!
//! Cron follows local wall-clock time (SPEC §3): the pattern is matched against local naive times,
//! and each match is mapped to one instant. A local time inside a spring-forward gap fires once,
//! at the end of the gap; a local time that occurs twice fires once, at its first occurrence.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed 5-field cron expression or `@daily`-style preset.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expr: String,
    cron: croner::Cron,
}

/// One schedule slot: the run for it has this logical date and data interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub logical_date: DateTime<Utc>,
    /// The logical date's calendar date in the DAG's time zone.
    pub ds: NaiveDate,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
}

/// The presets we accept and the 5-field patterns they stand for.
const PRESETS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Name and allowed range of each of the five fields, in order.
const FIELDS: [(&str, u32, u32); 5] =
    [("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7)];

/// How far ahead a search for the next matching day goes. Ten years covers every pattern that
/// fires at all (the longest gap, `29 2` on a leap day across a skipped century leap year, is 8).
const SEARCH_DAYS: u32 = 3660;

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build()
}

impl Schedule {
    /// Parses a 5-field cron expression (`minute hour day-of-month month day-of-week`) or a preset
    /// (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`). The error says what is wrong.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let trimmed = expr.trim();
        let pattern = if trimmed.starts_with('@') {
            match PRESETS.iter().find(|(name, _)| name.eq_ignore_ascii_case(trimmed)) {
                Some((_, pattern)) => *pattern,
                None => {
                    return Err(format!(
                        "unknown schedule preset \"{trimmed}\"; known presets: @hourly, @daily, @weekly, \
                         @monthly, @yearly (omit `schedule` for a manual-only DAG)"
                    ));
                }
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        if fields.len() != 5 {
            let hint = if fields.len() > 5 { "; seconds and year fields are not supported" } else { "" };
            return Err(format!(
                "cron expression \"{expr}\" has {} field{}, expected 5 (minute hour day-of-month month \
                 day-of-week){hint}",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
            ));
        }
        let parser = parser();
        // Parse each field alone first, so that the error can name the field.
        for (i, field) in fields.iter().enumerate() {
            let mut probe = ["*"; 5];
            probe[i] = field;
            if let Err(e) = parser.parse(&probe.join(" ")) {
                let (name, min, max) = FIELDS[i];
                return Err(format!(
                    "invalid cron expression \"{expr}\": {name} field `{field}` {}",
                    describe_field_error(&e, min, max)
                ));
            }
        }
        let cron = parser.parse(pattern).map_err(|e| format!("invalid cron expression \"{expr}\": {e}"))?;
        let schedule = Schedule { expr: expr.to_string(), cron };
        let any_time = (0..24).any(|h| schedule.hour_ok(h)) && (0..60).any(|m| schedule.minute_ok(m));
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
        if !any_time || start.and_then(|s| schedule.next_local_after(s)).is_none() {
            return Err(format!("cron expression \"{expr}\" never fires"));
        }
        Ok(schedule)
    }

    /// The first fire time strictly after `after`, in time zone `tz`, per SPEC §3's DST policy.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        // Mapping local matches to instants is monotone (gaps collapse forward, repeated times
        // take their first occurrence), and no match at or before `after`'s local time can map
        // past `after`; so scan local matches from there and take the first that lands later.
        let mut cursor = after.with_timezone(&tz).naive_local();
        loop {
            let local = self.next_local_after(cursor)?;
            if let Some(fire) = local_to_utc(tz, local)
                && fire > after
            {
                return Some(fire);
            }
            cursor = local;
        }
    }

    /// The first local wall-clock time strictly after `after` that the pattern matches.
    fn next_local_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut date = after.date();
        for _ in 0..SEARCH_DAYS {
            if self.day_ok(date) {
                for hour in (0..24).filter(|&h| self.hour_ok(h)) {
                    for minute in (0..60).filter(|&m| self.minute_ok(m)) {
                        let t = date.and_hms_opt(hour, minute, 0)?;
                        if t > after {
                            return Some(t);
                        }
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    fn day_ok(&self, date: NaiveDate) -> bool {
        let p = &self.cron.pattern;
        p.month_match(date.month()).unwrap_or(false)
            && p.day_match(date.year(), date.month(), date.day()).unwrap_or(false)
    }

    fn hour_ok(&self, hour: u32) -> bool {
        self.cron.pattern.hour_match(hour).unwrap_or(false)
    }

    fn minute_ok(&self, minute: u32) -> bool {
        self.cron.pattern.minute_match(minute).unwrap_or(false)
    }
}

fn describe_field_error(e: &CronError, min: u32, max: u32) -> String {
    match e {
        CronError::ComponentError(m) if m.starts_with("Number out of bounds") => {
            format!("is out of range {min}-{max}")
        }
        CronError::ComponentError(m) if m.starts_with("Range out of bounds") => {
            format!("has a range outside {min}-{max} or with its start after its end")
        }
        CronError::ComponentError(m) if m.starts_with("Step cannot be zero") => "has a step of zero".to_string(),
        CronError::IllegalCharacters(_) => "contains an illegal character".to_string(),
        other => format!("is not valid ({other})"),
    }
}

/// Maps a local wall-clock time to an instant: a repeated time to its first occurrence, a time in
/// a spring-forward gap to the end of the gap (the first instant after it).
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => Some(first.min(second).with_timezone(&Utc)),
        LocalResult::None => {
            // Step to the first local minute that exists again; its instant is the transition.
            let mut t = local;
            for _ in 0..(48 * 60) {
                t += Duration::minutes(1);
                if let Some(first) = tz.from_local_datetime(&t).earliest() {
                    return Some(first.with_timezone(&Utc));
                }
            }
            None
        }
    }
}

/// The first instant of local calendar day `date` in `tz` (local midnight, or the end of the
/// DST gap when midnight does not exist that day).
pub fn start_of_day(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    local_to_utc(tz, midnight).unwrap_or_else(|| midnight.and_utc())
}

fn day_slot(tz: Tz, date: NaiveDate) -> Slot {
    let start = start_of_day(tz, date);
    let end = date.succ_opt().map(|next| start_of_day(tz, next)).unwrap_or(start + Duration::days(1));
    Slot { logical_date: start, ds: date, data_interval_start: start, data_interval_end: end }
}

fn fire_slot(schedule: &Schedule, tz: Tz, fire: DateTime<Utc>, next: Option<DateTime<Utc>>) -> Slot {
    Slot {
        logical_date: fire,
        ds: fire.with_timezone(&tz).date_naive(),
        data_interval_start: fire,
        data_interval_end: next.or_else(|| schedule.next_after(fire, tz)).unwrap_or(fire),
    }
}

/// The slots whose logical date falls on a local calendar date in `from..=to`.
/// A DAG without a schedule has one slot per day (local midnight to midnight).
pub fn slots_between(schedule: Option<&Schedule>, tz: Tz, from: NaiveDate, to: NaiveDate) -> Vec<Slot> {
    slots_between_at_most(schedule, tz, from, to, usize::MAX).unwrap_or_default()
}

/// [`slots_between`], but `None` as soon as there would be more than `limit` slots, so a range
/// like 2025-01-01..9999-12-31 costs `limit` steps, not millions.
pub fn slots_between_at_most(
    schedule: Option<&Schedule>,
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
    limit: usize,
) -> Option<Vec<Slot>> {
    let mut slots = Vec::new();
    if from > to {
        return Some(slots);
    }
    let Some(schedule) = schedule else {
        for d in from.iter_days().take_while(|d| *d <= to) {
            if slots.len() == limit {
                return None;
            }
            slots.push(day_slot(tz, d));
        }
        return Some(slots);
    };
    let mut fire = schedule.next_after(start_of_day(tz, from) - Duration::nanoseconds(1), tz);
    while let Some(current) = fire {
        let ds = current.with_timezone(&tz).date_naive();
        if ds > to {
            break;
        }
        let next = schedule.next_after(current, tz);
        if ds >= from {
            if slots.len() == limit {
                return None;
            }
            slots.push(fire_slot(schedule, tz, current, next));
        }
        fire = next;
    }
    Some(slots)
}

/// The slot a manual run for `date` belongs to: the first slot on that local date, or, when the
/// schedule does not fire that day (or there is none), local midnight to the next midnight.
pub fn slot_for_date(schedule: Option<&Schedule>, tz: Tz, date: NaiveDate) -> Slot {
    if let Some(schedule) = schedule
        && let Some(fire) = schedule.next_after(start_of_day(tz, date) - Duration::nanoseconds(1), tz)
        && fire.with_timezone(&tz).date_naive() == date
    {
        return fire_slot(schedule, tz, fire, None);
    }
    day_slot(tz, date)
}

/// The next `count` fire times strictly after `after` (what `tmctl dags next` prints).
pub fn next_fires(schedule: &Schedule, tz: Tz, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(count);
    let mut cursor = after;
    while out.len() < count {
        let Some(fire) = schedule.next_after(cursor, tz) else { break };
        out.push(fire);
        cursor = fire;
    }
    out
}

/// What a DAG's scheduler looks at.
#[derive(Debug, Clone, Copy)]
pub struct DueQuery {
    pub tz: Tz,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub catchup: bool,
    /// Logical date of the DAG's latest scheduled run.
    pub last: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    /// At most this many slots (the DAG's free `max_active_runs`).
    pub limit: usize,
}

/// The slots to create runs for at `q.now`, oldest first. A slot is due once its data interval
/// has ended (Airflow's rule: the run for an interval starts at the interval's end). With
/// `catchup`, every due slot after `last` (or from `start_date`); without, only the latest due
/// slot, if it is after `last`.
pub fn due_slots(schedule: &Schedule, q: &DueQuery) -> Vec<Slot> {
    if q.limit == 0 {
        return Vec::new();
    }
    let tz = q.tz;
    let start = q.start_date.map(|d| start_of_day(tz, d) - Duration::nanoseconds(1));
    let lower = match (start, q.last) {
        (Some(s), Some(l)) => Some(s.max(l)),
        (s, l) => s.or(l),
    };
    let within_end = |slot: &Slot| q.end_date.is_none_or(|end| slot.ds <= end);
    if q.catchup && lower.is_some() {
        let mut out = Vec::new();
        let mut fire = lower.and_then(|l| schedule.next_after(l, tz));
        while let Some(current) = fire {
            let Some(next) = schedule.next_after(current, tz) else { break };
            if next > q.now || out.len() >= q.limit {
                break;
            }
            let slot = fire_slot(schedule, tz, current, Some(next));
            if !within_end(&slot) {
                break;
            }
            out.push(slot);
            fire = Some(next);
        }
        return out;
    }
    // The latest due slot: look back over a window that grows until it holds one.
    let mut window = Duration::hours(1);
    loop {
        let from = match lower {
            Some(l) if l > q.now - window => l,
            _ => q.now - window,
        };
        let mut latest = None;
        let mut fire = schedule.next_after(from, tz);
        while let Some(current) = fire {
            let Some(next) = schedule.next_after(current, tz) else { break };
            if next > q.now {
                break;
            }
            latest = Some(fire_slot(schedule, tz, current, Some(next)));
            fire = Some(next);
        }
        let exhausted = lower.is_some_and(|l| from == l) || window > Duration::days(3660);
        if let Some(slot) = latest {
            return if within_end(&slot) { vec![slot] } else { Vec::new() };
        }
        if exhausted {
            return Vec::new();
        }
        window = window * 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHICAGO: Tz = chrono_tz::America::Chicago;
    const LONDON: Tz = chrono_tz::Europe::London;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("test timestamp").with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    /// Fires strictly after `after`, up to and including `until`, as RFC 3339 UTC strings.
    fn fires(expr: &str, tz: Tz, after: &str, until: &str) -> Vec<String> {
        let schedule = Schedule::parse(expr).expect("valid cron");
        let (mut t, until) = (utc(after), utc(until));
        let mut out = Vec::new();
        while let Some(next) = schedule.next_after(t, tz) {
            if next > until {
                break;
            }
            out.push(next.format("%Y-%m-%dT%H:%MZ").to_string());
            t = next;
        }
        out
    }

    #[test]
    fn parses_cron_and_presets() {
        for ok in ["30 2 * * *", "*/30 * * * *", "0 0 * * MON-FRI", "0 9 L * *", "@daily", "@HOURLY", "@yearly"] {
            assert!(Schedule::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(Schedule::parse("@daily").map(|s| s.expr).as_deref(), Ok("@daily"));
    }

    #[test]
    fn rejects_bad_cron_with_a_precise_message() {
        let err = |e: &str| Schedule::parse(e).err().unwrap_or_default();
        assert_eq!(err("61 * * * *"), "invalid cron expression \"61 * * * *\": minute field `61` is out of range 0-59");
        assert_eq!(err("0 24 * * *"), "invalid cron expression \"0 24 * * *\": hour field `24` is out of range 0-23");
        assert_eq!(
            err("0 0 * 1-13 *"),
            "invalid cron expression \"0 0 * 1-13 *\": month field `1-13` has a range outside 1-12 or with its start \
             after its end"
        );
        assert_eq!(
            err("*/0 * * * *"),
            "invalid cron expression \"*/0 * * * *\": minute field `*/0` has a step of zero"
        );
        assert_eq!(
            err("0 x * * *"),
            "invalid cron expression \"0 x * * *\": hour field `x` contains an illegal character"
        );
        assert_eq!(
            err("0 0 0 * * *"),
            "cron expression \"0 0 0 * * *\" has 6 fields, expected 5 (minute hour day-of-month month day-of-week); \
             seconds and year fields are not supported"
        );
        assert_eq!(
            err("0 0 * *"),
            "cron expression \"0 0 * *\" has 4 fields, expected 5 (minute hour day-of-month month day-of-week)"
        );
        assert_eq!(
            err("@sometimes"),
            "unknown schedule preset \"@sometimes\"; known presets: @hourly, @daily, @weekly, @monthly, @yearly \
             (omit `schedule` for a manual-only DAG)"
        );
        assert_eq!(err("0 0 30 2 *"), "cron expression \"0 0 30 2 *\" never fires");
        assert_eq!(
            err(""),
            "cron expression \"\" has 0 fields, expected 5 (minute hour day-of-month month day-of-week)"
        );
    }

    #[test]
    fn next_after_is_strictly_after() {
        let s = Schedule::parse("0 0 * * *").expect("cron");
        let t = utc("2025-01-02T00:00:00Z");
        assert_eq!(s.next_after(t, Tz::UTC), Some(utc("2025-01-03T00:00:00Z")));
        assert_eq!(s.next_after(t - Duration::seconds(1), Tz::UTC), Some(t));
        let leap = Schedule::parse("0 0 29 2 *").expect("cron");
        assert_eq!(leap.next_after(t, Tz::UTC), Some(utc("2028-02-29T00:00:00Z")));
    }

    // America/Chicago, 2025-03-09: 02:00 CST (-6) jumps to 03:00 CDT (-5) at 08:00Z.
    #[test]
    fn chicago_spring_forward() {
        let (a, b) = ("2025-03-07T12:00:00Z", "2025-03-11T00:00:00Z");
        assert_eq!(fires("30 2 * * *", CHICAGO, a, b), ["2025-03-08T08:30Z", "2025-03-09T08:00Z", "2025-03-10T07:30Z"]);
        assert_eq!(fires("0 0 * * *", CHICAGO, a, b), ["2025-03-08T06:00Z", "2025-03-09T06:00Z", "2025-03-10T05:00Z"]);
        let (a, b) = ("2025-03-09T05:30:00Z", "2025-03-09T09:00:00Z");
        assert_eq!(
            fires("0 * * * *", CHICAGO, a, b),
            ["2025-03-09T06:00Z", "2025-03-09T07:00Z", "2025-03-09T08:00Z", "2025-03-09T09:00Z"]
        );
        assert_eq!(
            fires("*/30 * * * *", CHICAGO, "2025-03-09T06:45:00Z", "2025-03-09T09:00:00Z"),
            ["2025-03-09T07:00Z", "2025-03-09T07:30Z", "2025-03-09T08:00Z", "2025-03-09T08:30Z", "2025-03-09T09:00Z"]
        );
    }

    // America/Chicago, 2025-11-02: 02:00 CDT (-5) falls back to 01:00 CST (-6) at 07:00Z.
    #[test]
    fn chicago_fall_back() {
        let (a, b) = ("2025-10-31T12:00:00Z", "2025-11-04T00:00:00Z");
        assert_eq!(fires("30 2 * * *", CHICAGO, a, b), ["2025-11-01T07:30Z", "2025-11-02T08:30Z", "2025-11-03T08:30Z"]);
        assert_eq!(fires("0 0 * * *", CHICAGO, a, b), ["2025-11-01T05:00Z", "2025-11-02T05:00Z", "2025-11-03T06:00Z"]);
        // A daily time inside the repeated hour fires at its first occurrence only.
        assert_eq!(fires("30 1 * * *", CHICAGO, a, b), ["2025-11-01T06:30Z", "2025-11-02T06:30Z", "2025-11-03T07:30Z"]);
        let (a, b) = ("2025-11-02T04:30:00Z", "2025-11-02T09:00:00Z");
        assert_eq!(
            fires("0 * * * *", CHICAGO, a, b),
            ["2025-11-02T05:00Z", "2025-11-02T06:00Z", "2025-11-02T08:00Z", "2025-11-02T09:00Z"]
        );
        assert_eq!(
            fires("*/30 * * * *", CHICAGO, a, b),
            [
                "2025-11-02T05:00Z",
                "2025-11-02T05:30Z",
                "2025-11-02T06:00Z",
                "2025-11-02T06:30Z",
                "2025-11-02T08:00Z",
                "2025-11-02T08:30Z",
                "2025-11-02T09:00Z"
            ]
        );
        // Asked from inside the second occurrence of the repeated hour: nothing fires until 02:00 CST.
        let s = Schedule::parse("*/30 * * * *").expect("cron");
        assert_eq!(s.next_after(utc("2025-11-02T07:10:00Z"), CHICAGO), Some(utc("2025-11-02T08:00:00Z")));
    }

    // Europe/London, 2025-03-30: 01:00 GMT jumps to 02:00 BST at 01:00Z.
    #[test]
    fn london_spring_forward() {
        let (a, b) = ("2025-03-28T12:00:00Z", "2025-03-31T12:00:00Z");
        // 02:30 exists in London on this night.
        assert_eq!(fires("30 2 * * *", LONDON, a, b), ["2025-03-29T02:30Z", "2025-03-30T01:30Z", "2025-03-31T01:30Z"]);
        // 01:30 does not: it fires at the end of the gap.
        assert_eq!(fires("30 1 * * *", LONDON, a, b), ["2025-03-29T01:30Z", "2025-03-30T01:00Z", "2025-03-31T00:30Z"]);
        assert_eq!(fires("0 0 * * *", LONDON, a, b), ["2025-03-29T00:00Z", "2025-03-30T00:00Z", "2025-03-30T23:00Z"]);
        let (a, b) = ("2025-03-29T23:30:00Z", "2025-03-30T02:00:00Z");
        assert_eq!(fires("0 * * * *", LONDON, a, b), ["2025-03-30T00:00Z", "2025-03-30T01:00Z", "2025-03-30T02:00Z"]);
        assert_eq!(
            fires("*/30 * * * *", LONDON, a, b),
            ["2025-03-30T00:00Z", "2025-03-30T00:30Z", "2025-03-30T01:00Z", "2025-03-30T01:30Z", "2025-03-30T02:00Z"]
        );
    }

    // Europe/London, 2025-10-26: 02:00 BST falls back to 01:00 GMT at 01:00Z.
    #[test]
    fn london_fall_back() {
        let (a, b) = ("2025-10-24T12:00:00Z", "2025-10-27T12:00:00Z");
        assert_eq!(fires("30 2 * * *", LONDON, a, b), ["2025-10-25T01:30Z", "2025-10-26T02:30Z", "2025-10-27T02:30Z"]);
        assert_eq!(fires("30 1 * * *", LONDON, a, b), ["2025-10-25T00:30Z", "2025-10-26T00:30Z", "2025-10-27T01:30Z"]);
        assert_eq!(fires("0 0 * * *", LONDON, a, b), ["2025-10-24T23:00Z", "2025-10-25T23:00Z", "2025-10-27T00:00Z"]);
        let (a, b) = ("2025-10-25T22:30:00Z", "2025-10-26T03:00:00Z");
        assert_eq!(
            fires("0 * * * *", LONDON, a, b),
            ["2025-10-25T23:00Z", "2025-10-26T00:00Z", "2025-10-26T02:00Z", "2025-10-26T03:00Z"]
        );
        assert_eq!(
            fires("*/30 * * * *", LONDON, a, b),
            [
                "2025-10-25T23:00Z",
                "2025-10-25T23:30Z",
                "2025-10-26T00:00Z",
                "2025-10-26T00:30Z",
                "2025-10-26T02:00Z",
                "2025-10-26T02:30Z",
                "2025-10-26T03:00Z"
            ]
        );
    }

    #[test]
    fn slots_between_a_normal_range() {
        let s = Schedule::parse("30 2 * * *").expect("cron");
        let tz: Tz = "America/New_York".parse().expect("tz");
        let slots = slots_between(Some(&s), tz, date("2025-01-01"), date("2025-01-03"));
        let want: Vec<(NaiveDate, DateTime<Utc>, DateTime<Utc>)> = vec![
            (date("2025-01-01"), utc("2025-01-01T07:30:00Z"), utc("2025-01-02T07:30:00Z")),
            (date("2025-01-02"), utc("2025-01-02T07:30:00Z"), utc("2025-01-03T07:30:00Z")),
            (date("2025-01-03"), utc("2025-01-03T07:30:00Z"), utc("2025-01-04T07:30:00Z")),
        ];
        let got: Vec<_> = slots.iter().map(|s| (s.ds, s.data_interval_start, s.data_interval_end)).collect();
        assert_eq!(got, want);
        assert!(slots.iter().all(|s| s.logical_date == s.data_interval_start));
        assert!(slots_between(Some(&s), tz, date("2025-01-03"), date("2025-01-01")).is_empty());

        // Manual-only: one slot per local day, midnight to midnight.
        let days = slots_between(None, tz, date("2025-01-01"), date("2025-01-02"));
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].logical_date, utc("2025-01-01T05:00:00Z"));
        assert_eq!(days[0].data_interval_end, utc("2025-01-02T05:00:00Z"));
        assert_eq!(days[1].ds, date("2025-01-02"));
    }

    #[test]
    fn slots_between_on_dst_days() {
        let hourly = Schedule::parse("0 * * * *").expect("cron");
        // Spring forward: 23 hourly slots; the collapsed 02:00 is the 03:00 CDT fire.
        let spring = slots_between(Some(&hourly), CHICAGO, date("2025-03-09"), date("2025-03-09"));
        assert_eq!(spring.len(), 23);
        assert_eq!(spring[0].logical_date, utc("2025-03-09T06:00:00Z"));
        assert_eq!(spring[1].data_interval_end, utc("2025-03-09T08:00:00Z"));
        assert_eq!(spring[2].logical_date, utc("2025-03-09T08:00:00Z"));
        assert_eq!(spring[22].data_interval_end, utc("2025-03-10T05:00:00Z"));
        assert!(spring.iter().all(|s| s.ds == date("2025-03-09")));
        // Fall back: 24 slots; the 01:00 CDT slot spans the repeated hour.
        let fall = slots_between(Some(&hourly), CHICAGO, date("2025-11-02"), date("2025-11-02"));
        assert_eq!(fall.len(), 24);
        assert_eq!(fall[1].data_interval_start, utc("2025-11-02T06:00:00Z"));
        assert_eq!(fall[1].data_interval_end, utc("2025-11-02T08:00:00Z"));
        // Days without a schedule are 23 and 25 hours long.
        let day = slots_between(None, CHICAGO, date("2025-03-09"), date("2025-03-09"));
        assert_eq!(
            (day[0].data_interval_start, day[0].data_interval_end),
            (utc("2025-03-09T06:00:00Z"), utc("2025-03-10T05:00:00Z"))
        );
        let day = slots_between(None, LONDON, date("2025-10-26"), date("2025-10-26"));
        assert_eq!(
            (day[0].data_interval_start, day[0].data_interval_end),
            (utc("2025-10-25T23:00:00Z"), utc("2025-10-27T00:00:00Z"))
        );
    }

    #[test]
    fn midnight_that_does_not_exist() {
        // America/Santiago, 2025-09-07: 00:00 (-04) jumps to 01:00 (-03); the day starts at 04:00Z.
        let tz: Tz = "America/Santiago".parse().expect("tz");
        assert_eq!(start_of_day(tz, date("2025-09-07")), utc("2025-09-07T04:00:00Z"));
        let daily = Schedule::parse("@daily").expect("cron");
        let slot = slot_for_date(Some(&daily), tz, date("2025-09-07"));
        assert_eq!(
            (slot.logical_date, slot.data_interval_end),
            (utc("2025-09-07T04:00:00Z"), utc("2025-09-08T03:00:00Z"))
        );
        let day = slot_for_date(None, tz, date("2025-09-07"));
        assert_eq!(
            (day.data_interval_start, day.data_interval_end),
            (utc("2025-09-07T04:00:00Z"), utc("2025-09-08T03:00:00Z"))
        );
    }

    #[test]
    fn slot_for_date_uses_the_first_fire_or_the_whole_day() {
        let s = Schedule::parse("0 6,18 * * *").expect("cron");
        let slot = slot_for_date(Some(&s), Tz::UTC, date("2025-05-01"));
        assert_eq!(slot.logical_date, utc("2025-05-01T06:00:00Z"));
        assert_eq!(slot.data_interval_end, utc("2025-05-01T18:00:00Z"));
        assert_eq!(slot.ds, date("2025-05-01"));
        // A weekday-only schedule does not fire on Saturday 2025-05-03: the slot is the whole day.
        let weekdays = Schedule::parse("0 6 * * 1-5").expect("cron");
        let slot = slot_for_date(Some(&weekdays), Tz::UTC, date("2025-05-03"));
        assert_eq!(
            (slot.logical_date, slot.data_interval_end),
            (utc("2025-05-03T00:00:00Z"), utc("2025-05-04T00:00:00Z"))
        );
    }

    fn due(expr: &str, q: DueQuery) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let schedule = Schedule::parse(expr).expect("cron");
        due_slots(&schedule, &q).into_iter().map(|s| (s.logical_date, s.data_interval_end)).collect()
    }

    fn query(now: &str) -> DueQuery {
        DueQuery {
            tz: chrono_tz::UTC,
            start_date: Some(date("2025-01-01")),
            end_date: None,
            catchup: false,
            last: None,
            now: utc(now),
            limit: 100,
        }
    }

    #[test]
    fn without_catchup_only_the_latest_ended_interval_is_due() {
        // 10:30 on Jan 5: the interval [Jan 4 02:30, Jan 5 02:30) ended; today's has not.
        let q = query("2025-01-05T10:30:00Z");
        assert_eq!(due("30 2 * * *", q), [(utc("2025-01-04T02:30:00Z"), utc("2025-01-05T02:30:00Z"))]);
        // Once that slot has a run, nothing is due until the next interval ends.
        let q = DueQuery { last: Some(utc("2025-01-04T02:30:00Z")), ..q };
        assert!(due("30 2 * * *", q).is_empty());
        let q = DueQuery { now: utc("2025-01-06T02:30:00Z"), ..q };
        assert_eq!(due("30 2 * * *", q), [(utc("2025-01-05T02:30:00Z"), utc("2025-01-06T02:30:00Z"))]);
        // A monthly schedule far in the past still finds its latest interval.
        let q = query("2025-06-15T00:00:00Z");
        assert_eq!(due("0 0 1 * *", q), [(utc("2025-05-01T00:00:00Z"), utc("2025-06-01T00:00:00Z"))]);
    }

    #[test]
    fn with_catchup_every_ended_interval_since_start_is_due_up_to_the_limit() {
        let q = DueQuery { catchup: true, ..query("2025-01-04T03:00:00Z") };
        assert_eq!(
            due("30 2 * * *", q),
            [
                (utc("2025-01-01T02:30:00Z"), utc("2025-01-02T02:30:00Z")),
                (utc("2025-01-02T02:30:00Z"), utc("2025-01-03T02:30:00Z")),
                (utc("2025-01-03T02:30:00Z"), utc("2025-01-04T02:30:00Z")),
            ]
        );
        let limited = DueQuery { limit: 1, ..q };
        assert_eq!(due("30 2 * * *", limited).len(), 1);
        let after = DueQuery { last: Some(utc("2025-01-02T02:30:00Z")), ..q };
        assert_eq!(due("30 2 * * *", after), [(utc("2025-01-03T02:30:00Z"), utc("2025-01-04T02:30:00Z"))]);
        // end_date stops the schedule; start_date in the future means nothing yet.
        let ended = DueQuery { end_date: Some(date("2025-01-01")), ..q };
        assert_eq!(due("30 2 * * *", ended).len(), 1);
        let early = DueQuery { start_date: Some(date("2025-02-01")), ..q };
        assert!(due("30 2 * * *", early).is_empty());
    }

    #[test]
    fn due_intervals_follow_local_time_across_dst() {
        // Chicago, spring forward on 2025-03-09: 02:30 does not exist and fires at 03:00 CDT.
        let q = DueQuery { tz: CHICAGO, catchup: true, ..query("2025-03-10T12:00:00Z") };
        let q = DueQuery { last: Some(utc("2025-03-07T08:30:00Z")), ..q };
        assert_eq!(
            due("30 2 * * *", q),
            [
                (utc("2025-03-08T08:30:00Z"), utc("2025-03-09T08:00:00Z")),
                (utc("2025-03-09T08:00:00Z"), utc("2025-03-10T07:30:00Z")),
            ]
        );
    }
}
