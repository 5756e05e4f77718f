//! Per-course freshness: is each course still delivering? A pure function over the course
//! profiles, the newest landed (`accepted`) ingest date per course and an as-of day gives each
//! course's status; the `courses.freshness` task (`tasks/freshness.rs`) mails stale courses
//! through the alert outbox and the quality page of the web UI shows the same table.
//!
//! The rule: in its season (the month of the as-of day in `season`), a course is *stale* when
//! its newest landed ingest date is more than `expected_cadence` before the as-of day, or when it
//! never delivered. Ages are whole days, because ingest dates are dates. Courses seen in the
//! registry without a profile get [`courses::DEFAULT_CADENCE`] and no season (all year).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};

use crate::courses::{self, CourseProfile};
use crate::store::{RunType, Store, StoreError};

/// The outbox `kind` of freshness alerts.
pub const ALERT_KIND: &str = "freshness";
/// Runs for dates more than this many days before today mail nothing by default (setting
/// `alert_within` of the `courses.freshness` task).
pub const DEFAULT_ALERT_WITHIN_DAYS: i64 = 7;

/// A course's freshness on the as-of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In season and delivered within its cadence.
    Fresh,
    /// In season, and the last delivery is older than its cadence (or there never was one).
    Stale,
    /// Out of season: not checked.
    OutOfSeason,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fresh => "fresh",
            Status::Stale => "stale",
            Status::OutOfSeason => "out of season",
        }
    }
}

/// One course's row of the check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CourseFreshness {
    pub course_id: String,
    /// The profile's name (the id without a profile).
    pub name: String,
    pub profile_missing: bool,
    /// Newest ingest date of a landed file (None: never delivered).
    pub last_landed: Option<NaiveDate>,
    /// Whole days from `last_landed` to the as-of day (0 when it is on or after it).
    pub age_days: Option<i64>,
    #[serde(rename = "expected_cadence_hours", serialize_with = "hours")]
    pub cadence: Duration,
    /// Months the course is open (first, last), may wrap the new year; None = all year.
    pub season: Option<(u32, u32)>,
    pub in_season: bool,
    pub status: Status,
}

fn hours<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs() / 3600)
}

/// The status of every course with a profile or a landed file, by course id, as of `as_of`.
/// `last_landed` holds the newest landed ingest date per course; callers count only dates up
/// to `as_of` (a later one counts as age 0).
pub fn evaluate(
    profiles: &[CourseProfile],
    last_landed: &BTreeMap<String, NaiveDate>,
    as_of: NaiveDate,
) -> Vec<CourseFreshness> {
    let by_id: BTreeMap<&str, &CourseProfile> = profiles.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut ids: Vec<&str> = by_id.keys().copied().chain(last_landed.keys().map(String::as_str)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let profile = by_id.get(id).copied();
            let cadence = profile.map_or(courses::DEFAULT_CADENCE, |p| p.expected_cadence);
            let season = profile.and_then(|p| p.season);
            let in_season = profile.is_none_or(|p| p.in_season(as_of.month()));
            let last = last_landed.get(id).copied();
            let age_days = last.map(|d| (as_of - d).num_days().max(0));
            let late = age_days.is_none_or(|age| age.saturating_mul(86_400) > cadence.as_secs() as i64);
            let status = match (in_season, late) {
                (false, _) => Status::OutOfSeason,
                (true, true) => Status::Stale,
                (true, false) => Status::Fresh,
            };
            CourseFreshness {
                course_id: id.to_string(),
                name: profile.map_or_else(|| id.to_string(), |p| p.name.clone()),
                profile_missing: profile.is_none(),
                last_landed: last,
                age_days,
                cadence,
                season,
                in_season,
                status,
            }
        })
        .collect()
}

/// Why [`check`] could not tell.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// `courses.toml` has problems (each with file, line and key).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Profiles(Vec<crate::dag::Diagnostic>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The check as of `as_of` (landed dates after it do not count), from the profiles next to the
/// DAGs and one registry query; only `course` when given. What `tmctl courses freshness` and
/// `GET /api/v1/courses/freshness` show.
pub async fn check(
    store: &Store,
    dags_dir: &std::path::Path,
    as_of: NaiveDate,
    course: Option<&str>,
) -> Result<Vec<CourseFreshness>, CheckError> {
    let profiles = courses::load_dir(dags_dir).map_err(CheckError::Profiles)?;
    let last = store.last_landed_per_course("bronze", Some(as_of), course).await?;
    let mut rows = evaluate(&profiles, &last, as_of);
    if let Some(c) = course {
        rows.retain(|r| r.course_id == c);
    }
    Ok(rows)
}

/// The quality page of the web UI at `base_url`, narrowed to one course (the alert's link).
pub fn quality_url(base_url: &str, course_id: &str) -> String {
    format!("{base_url}/lakehouse/quality?course={}", crate::util::url_encode(course_id))
}

/// Why a run's freshness check mails nothing (its statuses are still recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A backfill run: it re-processes the past, whose staleness is history, not news.
    Backfill,
    /// The run's date is more than `within_days` before today (a catch-up or a late re-run).
    TooOld { within_days: i64 },
    /// The run's date is after tomorrow: nothing can have been delivered for it yet.
    Future,
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Backfill => f.write_str("a backfill run mails no freshness alerts"),
            Hold::TooOld { within_days } => {
                write!(f, "the run's date is more than {within_days} day(s) before today (alert_within)")
            }
            Hold::Future => f.write_str("the run's date is after tomorrow"),
        }
    }
}

/// Whether a run of `run_type` for `as_of` may mail stale courses, `today` being the current
/// date (UTC): not for backfill runs, nor for dates outside `today - within_days ..= today + 1`
/// (the day of slack covers DAG time zones ahead of UTC).
pub fn hold_mail(run_type: RunType, as_of: NaiveDate, today: NaiveDate, within_days: i64) -> Option<Hold> {
    if run_type == RunType::Backfill {
        Some(Hold::Backfill)
    } else if (today - as_of).num_days() > within_days {
        Some(Hold::TooOld { within_days })
    } else if (as_of - today).num_days() > 1 {
        Some(Hold::Future)
    } else {
        None
    }
}

/// The outbox key of a course's freshness alert for a day: one e-mail per course and day,
/// however many runs, tries or daemons record it.
pub fn dedup_key(course_id: &str, as_of: NaiveDate) -> String {
    format!("{ALERT_KIND}:{course_id}:{as_of}")
}

/// `48h` as "2 days", `36h` as "36 h".
pub fn fmt_cadence(d: Duration) -> String {
    let h = d.as_secs() / 3600;
    match h {
        24 => "1 day".into(),
        h if h % 24 == 0 => format!("{} days", h / 24),
        h => format!("{h} h"),
    }
}

/// The season as text: "all year" or "months 11–2".
pub fn fmt_season(season: Option<(u32, u32)>) -> String {
    season.map_or_else(|| "all year".into(), |(from, to)| format!("months {from}–{to}"))
}

/// Subject and body of the alert for a stale course. `quality_url` is the quality page's link.
pub fn alert_text(c: &CourseFreshness, as_of: NaiveDate, dag_id: &str, quality_url: &str) -> (String, String) {
    let since = match c.last_landed {
        Some(d) => format!("has no new data since {d}"),
        None => "has never delivered data".into(),
    };
    let subject = format!("[tmctl] STALE: course {} {since} (as of {as_of})", c.course_id);
    let last = match (c.last_landed, c.age_days) {
        (Some(d), Some(age)) => format!("{d} ({age} day(s) before {as_of})"),
        _ => "never".into(),
    };
    let profile = if c.profile_missing { "none (default cadence, all year)" } else { "dags/courses.toml" };
    let body = format!(
        "Course: {} ({})\nAs of: {as_of} (DAG {dag_id}; landed files with ingest dates up to this day)\n\
         Last landed file: {last}\nExpected cadence: {}\nSeason: {}\nProfile: {profile}\n\n\
         One e-mail per course and day; the quality page shows every course's freshness:\n{quality_url}\n",
        c.course_id,
        c.name,
        fmt_cadence(c.cadence),
        fmt_season(c.season),
    );
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn profile(id: &str, cadence_days: u64, season: Option<(u32, u32)>) -> CourseProfile {
        let source = format!(
            "[[course]]\nid = \"{id}\"\ntimezone = \"UTC\"\nexpected_cadence = \"{cadence_days}d\"\n{}",
            season.map(|(f, t)| format!("season = [{f}, {t}]\n")).unwrap_or_default()
        );
        courses::parse(&source, std::path::Path::new("courses.toml")).unwrap().remove(0)
    }

    fn landed(pairs: &[(&str, &str)]) -> BTreeMap<String, NaiveDate> {
        pairs.iter().map(|(c, s)| (c.to_string(), d(s))).collect()
    }

    fn status_of(rows: &[CourseFreshness], id: &str) -> Status {
        rows.iter().find(|r| r.course_id == id).unwrap_or_else(|| panic!("no row for {id}: {rows:#?}")).status
    }

    #[test]
    fn older_than_the_cadence_is_stale_and_exactly_the_cadence_is_not() {
        let profiles = [profile("a", 2, None), profile("b", 3, None)];
        let rows = evaluate(&profiles, &landed(&[("a", "2026-05-08"), ("b", "2026-05-06")]), d("2026-05-10"));
        assert_eq!(status_of(&rows, "a"), Status::Fresh, "2 days old, cadence 2 days");
        assert_eq!(status_of(&rows, "b"), Status::Stale, "4 days old, cadence 3 days");
        assert_eq!(rows[1].age_days, Some(4));
        let rows = evaluate(&profiles, &landed(&[("a", "2026-05-07")]), d("2026-05-10"));
        assert_eq!(status_of(&rows, "a"), Status::Stale, "3 days old, cadence 2 days");
    }

    #[test]
    fn a_course_that_never_delivered_is_stale_in_season_only() {
        let profiles = [profile("new", 2, None), profile("summer", 2, Some((6, 8)))];
        let rows = evaluate(&profiles, &BTreeMap::new(), d("2026-01-15"));
        let new = rows.iter().find(|r| r.course_id == "new").unwrap();
        assert_eq!((new.status, new.last_landed, new.age_days), (Status::Stale, None, None));
        assert_eq!(status_of(&rows, "summer"), Status::OutOfSeason);
        assert_eq!(status_of(&evaluate(&profiles, &BTreeMap::new(), d("2026-07-01")), "summer"), Status::Stale);
    }

    #[test]
    fn a_season_across_the_new_year_is_checked_in_winter_only() {
        let profiles = [profile("winter", 2, Some((11, 2)))];
        let old = landed(&[("winter", "2025-06-01")]);
        for (day, want) in [
            ("2025-11-01", Status::Stale),
            ("2025-12-31", Status::Stale),
            ("2026-01-10", Status::Stale),
            ("2026-02-28", Status::Stale),
            ("2026-03-01", Status::OutOfSeason),
            ("2026-10-31", Status::OutOfSeason),
        ] {
            let rows = evaluate(&profiles, &old, d(day));
            assert_eq!(status_of(&rows, "winter"), want, "{day}");
            assert_eq!(rows[0].in_season, want != Status::OutOfSeason, "{day}");
        }
    }

    #[test]
    fn a_course_without_a_profile_gets_two_days_all_year() {
        let rows = evaluate(&[], &landed(&[("stray", "2026-08-01")]), d("2026-08-03"));
        let r = &rows[0];
        assert_eq!((r.profile_missing, r.cadence, r.season, r.in_season), (true, courses::DEFAULT_CADENCE, None, true));
        assert_eq!((r.status, r.name.as_str()), (Status::Fresh, "stray"));
        let rows = evaluate(&[], &landed(&[("stray", "2026-08-01")]), d("2026-08-04"));
        assert_eq!(rows[0].status, Status::Stale);
    }

    #[test]
    fn rows_are_every_profiled_or_landed_course_in_id_order() {
        let rows = evaluate(
            &[profile("m", 2, None), profile("b", 2, None)],
            &landed(&[("z", "2026-01-01"), ("b", "2026-01-01")]),
            d("2026-01-01"),
        );
        let ids: Vec<&str> = rows.iter().map(|r| r.course_id.as_str()).collect();
        assert_eq!(ids, ["b", "m", "z"]);
        // A delivery dated after the as-of day counts as today's.
        let rows = evaluate(&[], &landed(&[("z", "2026-01-05")]), d("2026-01-01"));
        assert_eq!((rows[0].age_days, rows[0].status), (Some(0), Status::Fresh));
    }

    #[test]
    fn backfills_old_and_future_dates_mail_nothing() {
        let today = d("2026-12-06");
        assert_eq!(hold_mail(RunType::Scheduled, d("2026-12-05"), today, 7), None);
        assert_eq!(hold_mail(RunType::Manual, d("2026-11-29"), today, 7), None, "7 days back is still news");
        assert_eq!(hold_mail(RunType::Manual, d("2026-11-28"), today, 7), Some(Hold::TooOld { within_days: 7 }));
        assert_eq!(hold_mail(RunType::Manual, d("2026-12-07"), today, 7), None, "a zone ahead of UTC");
        assert_eq!(hold_mail(RunType::Manual, d("2026-12-08"), today, 7), Some(Hold::Future));
        assert_eq!(hold_mail(RunType::Backfill, d("2026-12-06"), today, 7), Some(Hold::Backfill));
    }

    #[test]
    fn the_alert_names_course_date_and_page() {
        let rows = evaluate(&[profile("b", 3, Some((11, 2)))], &landed(&[("b", "2026-12-01")]), d("2026-12-06"));
        let (subject, body) = alert_text(&rows[0], d("2026-12-06"), "bronze", "http://x/lakehouse/quality?course=b");
        assert_eq!(subject, "[tmctl] STALE: course b has no new data since 2026-12-01 (as of 2026-12-06)");
        assert!(body.contains("Last landed file: 2026-12-01 (5 day(s) before 2026-12-06)\n"), "{body}");
        assert!(body.contains("Expected cadence: 3 days\nSeason: months 11–2\n"), "{body}");
        assert!(body.ends_with("http://x/lakehouse/quality?course=b\n"), "{body}");
        assert_eq!(dedup_key("b", d("2026-12-06")), "freshness:b:2026-12-06");
        assert_eq!(fmt_cadence(Duration::from_secs(36 * 3600)), "36 h");
    }
}
