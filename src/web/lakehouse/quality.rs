//! The data quality page: freshness per course, the completeness heatmap, quality scores,
//! padding, quarantined rows by reason and the data tests of the gold runs.

use std::collections::BTreeMap;

use super::common::{all_dates_note, blank_page, fail, no_data, opt_pct, score_class, score_color};
use super::data::{COURSE, Gold, ReadModel, read_model};
use super::{Card, Cell, Grid, NO_DATA, Page, Section, filter_query};
use crate::daemon::Daemon;
use crate::store::RunFilter;
use crate::web::charts::{BarChart, GREEN, Heatmap, Series, fmt_int, fmt_num};

read_model! {
    /// One course of `gold.data_quality_overview`: its scores and the missing share of each column.
    struct Overview {
        course_id: String,
        events: i64,
        data_quality_score: Option<f64>,
        tier1_pace_score: Option<f64>,
        tier2_position_score: Option<f64>,
        tier3_device_score: Option<f64>,
        tier4_round_context_score: Option<f64>,
        pct_missing_pace: Option<f64>,
        pct_missing_pace_gap: Option<f64>,
        pct_missing_positional_gap: Option<f64>,
        pct_missing_goal_time: Option<f64>,
        pct_missing_coordinates: Option<f64>,
        pct_missing_fix_timestamp: Option<f64>,
        pct_missing_hole_number: Option<f64>,
        pct_missing_section_number: Option<f64>,
        pct_missing_hole_section: Option<f64>,
        pct_missing_nine_number: Option<f64>,
        pct_missing_battery: Option<f64>,
        pct_missing_is_cache: Option<f64>,
        pct_missing_is_projected: Option<f64>,
        pct_missing_start_hole: Option<f64>,
        pct_missing_start_section: Option<f64>,
        pct_missing_is_nine_hole: Option<f64>,
        pct_missing_is_complete: Option<f64>,
    }
}

read_model! {
    /// One course of `gold.critical_column_gaps`.
    struct ColumnGaps { course_id: String, usability_score: Option<f64>, top_recommendation: String }
}

read_model! {
    /// One course's real fixes and padding, from `gold.telemetry_completeness_summary`.
    struct Padding {
        course_id: String,
        // Both charted (NULL is no bar) and counted in the table (NULL is 0).
        non_padding_rows: Option<i64>,
        padding_rows: Option<i64>,
        pct_padding_total: Option<f64>,
        pct_ts_missing_non_padding: Option<f64>,
    }
}

/// The missing share (%) of one column of a course.
type Missing = fn(&Overview) -> Option<f64>;

/// Columns of the completeness heatmap: label and the missing share of its column.
const COMPLETENESS: &[(&str, Missing)] = &[
    ("pace", |o| o.pct_missing_pace),
    ("pace_gap", |o| o.pct_missing_pace_gap),
    ("positional_gap", |o| o.pct_missing_positional_gap),
    ("goal_time", |o| o.pct_missing_goal_time),
    ("coordinates", |o| o.pct_missing_coordinates),
    ("fix_timestamp", |o| o.pct_missing_fix_timestamp),
    ("hole_number", |o| o.pct_missing_hole_number),
    ("section_number", |o| o.pct_missing_section_number),
    ("hole_section", |o| o.pct_missing_hole_section),
    ("nine_number", |o| o.pct_missing_nine_number),
    ("battery", |o| o.pct_missing_battery),
    ("is_cache", |o| o.pct_missing_is_cache),
    ("is_projected", |o| o.pct_missing_is_projected),
    ("start_hole", |o| o.pct_missing_start_hole),
    ("start_section", |o| o.pct_missing_start_section),
    ("is_nine_hole", |o| o.pct_missing_is_nine_hole),
    ("is_complete", |o| o.pct_missing_is_complete),
];

pub async fn page(d: &Daemon, g: &Gold) -> Page {
    const T: &str = "Data quality";
    // Freshness comes from the registry and the profiles, so it shows before gold exists too.
    if !g.has("gold.data_quality_overview") {
        let mut p = no_data(T);
        freshness_section(d, g, &mut p).await;
        return p;
    }
    let mut p = blank_page(T);
    freshness_section(d, g, &mut p).await;

    // Completeness heatmap and scores: the scores, then the pct_missing_* columns of the heatmap.
    let sql = format!(
        "SELECT {} FROM gold.data_quality_overview WHERE {COURSE} ORDER BY course_id",
        Overview::COLUMNS.join(", ")
    );
    let mut heat = Section::new("completeness", "Column completeness (course × column)");
    heat.note =
        "Share of non-padding fixes with a value, from gold.data_quality_overview (100 % − pct_missing).".into();
    let mut scores = Section::new("scores", "Quality score per course");
    scores.note = "data_quality_score = mean of four tier scores (pace, position, device, round context), each \
                   100 − the mean missing % of its columns."
        .into();
    match g.read::<Overview>(&sql).await {
        Ok(rows) => {
            if rows.is_empty() {
                p.no_data = Some(NO_DATA.into());
            }
            let courses: Vec<String> = rows.iter().map(|r| r.course_id.clone()).collect();
            let values = rows
                .iter()
                .map(|r| COMPLETENESS.iter().map(|(_, missing)| missing(r).map(|m| 100.0 - m)).collect())
                .collect();
            heat.charts.push(
                Heatmap {
                    title: "Completeness of silver columns (% of non-padding fixes)".into(),
                    rows: courses.clone(),
                    cols: COMPLETENESS.iter().map(|(l, _)| (*l).to_string()).collect(),
                    values,
                    min: 0.0,
                    max: 100.0,
                    high_is_bad: false,
                    fmt: |v| format!("{v:.0}"),
                }
                .to_svg(),
            );
            let sc: Vec<Option<f64>> = rows.iter().map(|r| r.data_quality_score).collect();
            let colors = sc.iter().map(|s| score_color(s.unwrap_or(0.0))).collect();
            scores.charts.push(
                BarChart::new("Data quality score (0–100)", "course", "score", courses, vec![Series::new("score", sc)])
                    .with_colors(colors)
                    .line(80.0, "good ≥ 80", GREEN)
                    .line(60.0, "fair ≥ 60", "#f0a202")
                    .to_svg(),
            );
            let mut grid =
                Grid::new(&["course", "#fixes", "#pace", "#position", "#device", "#round context", "#score"]);
            for r in &rows {
                let cell = |x: Option<f64>| Cell::num(x.map(|v| fmt_num(v, 1)).unwrap_or_else(|| "—".into()));
                let score = r.data_quality_score.unwrap_or(0.0);
                grid.rows.push(vec![
                    Cell::text(&r.course_id),
                    Cell::num(fmt_int(r.events)),
                    cell(r.tier1_pace_score),
                    cell(r.tier2_position_score),
                    cell(r.tier3_device_score),
                    cell(r.tier4_round_context_score),
                    cell(r.data_quality_score).class(score_class(score)),
                ]);
            }
            scores.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    if g.has("gold.critical_column_gaps")
        && let Ok(rows) = g
            .read::<ColumnGaps>(&format!(
                "SELECT course_id, usability_score, pace_data_status, top_recommendation \
                 FROM gold.critical_column_gaps WHERE {COURSE} ORDER BY course_id"
            ))
            .await
        && let Some(t) = scores.table.as_mut()
    {
        let by_course: BTreeMap<String, &ColumnGaps> = rows.iter().map(|r| (r.course_id.clone(), r)).collect();
        t.head.push(Cell::num("usability"));
        t.head.push(Cell::text("recommendation"));
        for row in &mut t.rows {
            let r = by_course.get(&row[0].text);
            row.push(Cell::num(r.and_then(|r| r.usability_score).map(|v| fmt_num(v, 1)).unwrap_or_else(|| "—".into())));
            row.push(Cell::text(r.map(|r| r.top_recommendation.clone()).unwrap_or_default()));
        }
    }
    p.sections.push(heat);
    p.sections.push(scores);

    if g.has("gold.telemetry_completeness_summary") {
        let mut s = Section::new("padding", "Padding and missing timestamps");
        match g
            .read::<Padding>(&format!(
                "SELECT course_id, non_padding_rows, padding_rows, pct_padding_total, pct_ts_missing_non_padding \
                 FROM gold.telemetry_completeness_summary WHERE {COURSE} ORDER BY course_id"
            ))
            .await
        {
            Ok(rows) => {
                s.charts.push(
                    BarChart::new(
                        "Silver rows: real fixes and padding",
                        "course",
                        "rows",
                        rows.iter().map(|r| r.course_id.clone()).collect(),
                        vec![
                            Series::new("real", rows.iter().map(|r| r.non_padding_rows.map(|n| n as f64)).collect()),
                            Series::new("padding", rows.iter().map(|r| r.padding_rows.map(|n| n as f64)).collect()),
                        ],
                    )
                    .stacked()
                    .to_svg(),
                );
                let mut grid = Grid::new(&["course", "#real", "#padding", "#padding %", "#no timestamp (real) %"]);
                for r in &rows {
                    grid.rows.push(vec![
                        Cell::text(&r.course_id),
                        Cell::num(fmt_int(r.non_padding_rows.unwrap_or(0))),
                        Cell::num(fmt_int(r.padding_rows.unwrap_or(0))),
                        Cell::num(opt_pct(r.pct_padding_total)),
                        Cell::num(opt_pct(r.pct_ts_missing_non_padding)),
                    ]);
                }
                s.table = Some(grid);
            }
            Err(e) => fail(&mut p, e),
        }
        p.sections.push(s);
    }

    // (Freshness is as of today, whatever the dates asked.)
    for s in p.sections.iter_mut().filter(|s| s.id != "freshness") {
        all_dates_note(g, s);
    }
    quarantine_section(d, g, &mut p).await;
    data_tests_section(d, &mut p).await;
    p
}

/// Per-course freshness as of today (UTC): the newest landed file of each course against its
/// expected cadence, in season (`crate::freshness`), from one registry query and the profiles.
async fn freshness_section(d: &Daemon, g: &Gold, p: &mut Page) {
    let course = g.course.as_str();
    let today = chrono::Utc::now().date_naive();
    let mut s = Section::new("freshness", "Freshness");
    s.note = format!(
        "As of {today} (UTC): a course is stale when, in its season, its newest landed file's ingest date is more \
         than its expected cadence ago (dags/courses.toml; 2 days and all year without a profile), or it never \
         delivered. The bronze DAG's courses.freshness task e-mails each stale course once a day."
    );
    let profiles = match crate::courses::load_dir(&d.settings.dags_dir) {
        Ok(list) => list,
        Err(diags) => {
            fail(p, format!("courses.toml: {}", diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")));
            Vec::new()
        }
    };
    let filter = (!course.is_empty()).then_some(course);
    let last = match d.store.last_landed_per_course("bronze", None, filter).await {
        Ok(l) => l,
        Err(e) => {
            fail(p, format!("ingestion registry: {e}"));
            p.sections.push(s);
            return;
        }
    };
    let mut rows = crate::freshness::evaluate(&profiles, &last, today);
    rows.retain(|r| course.is_empty() || r.course_id == course);
    let stale = rows.iter().filter(|r| r.status == crate::freshness::Status::Stale).count();
    p.cards.push(Card::new("stale_courses", "Stale courses", fmt_int(stale as i64)));
    let mut grid = Grid::new(&["course", "name", "last landed", "cadence", "in season", "#age (days)", "status"]);
    for r in &rows {
        let status_class = match r.status {
            crate::freshness::Status::Stale => "bad",
            crate::freshness::Status::Fresh => "good",
            crate::freshness::Status::OutOfSeason => "",
        };
        let name = if r.profile_missing { format!("{} (no profile)", r.name) } else { r.name.clone() };
        grid.rows.push(vec![
            Cell::text(r.course_id.clone()).link(format!("/lakehouse/quality{}", filter_query(&r.course_id, g.dates))),
            Cell::text(name),
            Cell::text(r.last_landed.map_or_else(|| "never".into(), |d| d.to_string())),
            Cell::text(crate::freshness::fmt_cadence(r.cadence)),
            Cell::text(if r.in_season { "yes" } else { "no" }),
            Cell::num(r.age_days.map_or_else(|| "—".into(), fmt_int)),
            Cell::text(r.status.as_str()).class(status_class),
        ]);
    }
    if grid.rows.is_empty() {
        s.note.push_str(" No course profile and no landed file yet.");
    } else {
        s.table = Some(grid);
    }
    p.sections.push(s);
}

/// Quarantined silver rows by reason and ingest date, from the latest summary of each date.
async fn quarantine_section(d: &Daemon, g: &Gold, p: &mut Page) {
    let mut s = Section::new("quarantine", "Quarantined rows by reason over time");
    s.note = "From the run summaries of silver.transform (the latest try of each ingest date).".into();
    let summaries = match d.store.list_summaries(None, 5_000).await {
        Ok(s) => s,
        Err(e) => {
            fail(p, format!("run summaries: {e}"));
            return;
        }
    };
    let mut latest: BTreeMap<chrono::NaiveDate, &serde_json::Value> = BTreeMap::new();
    for row in summaries.iter().filter(|s| s.kind == "silver.transform") {
        latest.entry(row.ds).or_insert(&row.summary);
    }
    let mut counts: BTreeMap<String, BTreeMap<chrono::NaiveDate, u64>> = BTreeMap::new();
    for (ds, summary) in &latest {
        let per_reason: Vec<(String, u64)> = if g.course.is_empty() {
            summary["quarantined"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
                .unwrap_or_default()
        } else {
            summary["courses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["course_id"].as_str() == Some(g.course.as_str()))
                .flat_map(|c| {
                    c["stats"]["quarantined"]
                        .as_object()
                        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect::<Vec<_>>())
                        .unwrap_or_default()
                })
                .collect()
        };
        for (reason, n) in per_reason {
            *counts.entry(reason).or_default().entry(*ds).or_insert(0) += n;
        }
    }
    let dates: Vec<chrono::NaiveDate> = latest.keys().copied().collect();
    if dates.is_empty() {
        s.note = "No silver runs yet.".into();
    } else {
        let series = counts
            .iter()
            .map(|(reason, by_date)| {
                Series::new(reason.clone(), dates.iter().map(|d| Some(*by_date.get(d).unwrap_or(&0) as f64)).collect())
            })
            .collect();
        s.charts.push(
            BarChart::new(
                "Quarantined rows per ingest date",
                "ingest date",
                "rows",
                dates.iter().map(|d| d.to_string()).collect(),
                series,
            )
            .stacked()
            .to_svg(),
        );
        let mut grid = Grid::new(&["reason", "#rows", "#dates"]);
        for (reason, by_date) in &counts {
            let total: u64 = by_date.values().sum();
            grid.rows.push(vec![
                Cell::text(reason.clone()),
                Cell::num(fmt_int(total as i64)),
                Cell::num(fmt_int(by_date.values().filter(|n| **n > 0).count() as i64)),
            ]);
        }
        if grid.rows.is_empty() {
            grid.rows.push(vec![Cell::text("(none)"), Cell::num("0"), Cell::num("0")]);
        }
        s.table = Some(grid);
    }
    p.sections.push(s);
}

/// Data-test results of the latest gold runs (from each model task's last try).
async fn data_tests_section(d: &Daemon, p: &mut Page) {
    let mut s = Section::new("tests", "Data tests per gold run");
    s.note = "Each gold model's tests run on its staged result before it is published; a failing error test \
              keeps the previous table. Tests cover all courses."
        .into();
    let runs = match d.store.list_runs(&RunFilter { dag_id: Some("gold"), state: None, limit: 20 }).await {
        Ok(r) => r,
        Err(e) => {
            fail(p, format!("gold runs: {e}"));
            return;
        }
    };
    let mut grid =
        Grid::new(&["run", "logical date", "state", "#models", "#passed", "#warned", "#failed", "failing tests"]);
    let (mut dates, mut pass_s, mut warn_s, mut fail_s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in &runs {
        let attempts = match d.store.list_run_attempts(run.id).await {
            Ok(a) => a,
            Err(e) => {
                fail(p, format!("attempts of run {}: {e}", run.run_id));
                continue;
            }
        };
        let crate::gold::datatests::RunTests { models, pass, warn, failed, failing } =
            crate::gold::datatests::tests_of_run(&attempts);
        dates.push(run.ds.to_string());
        pass_s.push(Some(pass as f64));
        warn_s.push(Some(warn as f64));
        fail_s.push(Some(failed as f64));
        grid.rows.push(vec![
            Cell::text(run.run_id.clone()).link(format!("/runs/{}", run.id)).class("mono"),
            Cell::text(run.ds.to_string()),
            Cell::text(run.state.as_str()),
            Cell::num(fmt_int(models as i64)),
            Cell::num(fmt_int(pass as i64)).class("good"),
            Cell::num(fmt_int(warn as i64)).class(if warn > 0 { "warn" } else { "" }),
            Cell::num(fmt_int(failed as i64)).class(if failed > 0 { "bad" } else { "" }),
            Cell::text(if failing.is_empty() { "—".into() } else { failing.join("; ") }),
        ]);
    }
    if runs.is_empty() {
        s.note = "No gold runs yet.".into();
    } else {
        dates.reverse();
        pass_s.reverse();
        warn_s.reverse();
        fail_s.reverse();
        s.charts.push(
            BarChart::new(
                "Data-test outcomes per gold run",
                "logical date",
                "tests",
                dates,
                vec![Series::new("passed", pass_s), Series::new("warned", warn_s), Series::new("failed", fail_s)],
            )
            .stacked()
            .to_svg(),
        );
        s.table = Some(grid);
    }
    p.sections.push(s);
}
