//! The content of each lakehouse page: queries of the gold tables (course filter bound as `$1`),
//! run summaries and Iceberg metadata turned into cards, charts and tables.

use std::collections::{BTreeMap, BTreeSet};

use super::data::{COURSE, Gold, Row, Val, is_identifier};
use super::{Card, Cell, Grid, NO_DATA, Page, Section, filter_query, url_encode};
use crate::daemon::Daemon;
use crate::store::{IngestStatus, IngestionFilter, RunFilter};
use crate::web::charts::{
    BarChart, GREEN, GREY, Heatmap, Histogram, LineChart, PALETTE, RED, Series, fmt_axis, fmt_duration, fmt_int,
    fmt_num, fmt_pace, fmt_pct,
};

pub(super) fn page(title: &str) -> Page {
    Page { title: title.into(), ..Page::default() }
}

pub(super) fn no_data(title: &str) -> Page {
    Page { title: title.into(), no_data: Some(NO_DATA.into()), ..Page::default() }
}

pub(super) fn fail(p: &mut Page, e: String) {
    tracing::warn!(error = %e, page = %p.title, "lakehouse query failed");
    let msg = match p.error.take() {
        Some(prev) => format!("{prev}; {e}"),
        None => e,
    };
    p.error = Some(msg);
}

/// Says on a section built from a per-course summary (not keyed by round) that a date filter does
/// not narrow it.
pub fn all_dates_note(g: &Gold, s: &mut Section) {
    if g.dated() {
        if !s.note.is_empty() {
            s.note.push(' ');
        }
        s.note.push_str("This summary covers all dates: the date filter narrows the tables keyed by round.");
    }
}

fn opt_pct(x: Option<f64>) -> String {
    x.map(fmt_pct).unwrap_or_else(|| "—".into())
}

/// The date part of a timestamp text (`2025-06-01T07:00:00Z` → `2025-06-01`).
fn date_of(ts: &str) -> String {
    ts.get(..10).unwrap_or(ts).to_string()
}

fn score_class(score: f64) -> &'static str {
    if score >= 80.0 {
        "good"
    } else if score >= 60.0 {
        "warn"
    } else {
        "bad"
    }
}

fn score_color(score: f64) -> &'static str {
    if score >= 80.0 {
        GREEN
    } else if score >= 60.0 {
        "#f0a202"
    } else {
        RED
    }
}

// ---------------------------------------------------------------------------------------------
// Overview

/// The rows of the filtered course in table `t`, from its manifests, when `t` is partitioned by
/// `course_id` (exact, and no data file is opened); `None` otherwise.
async fn course_rows_from_manifests(g: &Gold, t: &str) -> Option<i64> {
    let ident = crate::lake::parse_ident(t).ok()?;
    let table = g.lake.load_table(&ident).await.ok()?;
    let at = crate::lake::iceberg::identity_partition_columns(&table).iter().position(|c| c == "course_id")?;
    let parts = crate::lake::iceberg::partition_rows(&ident, &table).await.ok()?;
    Some(
        parts.iter().filter(|(values, _)| values.get(at).is_some_and(|v| *v == g.course)).map(|(_, n)| *n as i64).sum(),
    )
}

pub async fn overview(d: &Daemon, g: &Gold) -> Page {
    const T: &str = "Lakehouse overview";
    if !g.has_all(&["gold.dim_course", "gold.fact_rounds"]) {
        return no_data(T);
    }
    let mut p = page(T);
    let course = (!g.course.is_empty()).then_some(g.course.as_str());

    match g
        .rows(&format!(
            "SELECT count(*), min(round_date_local), max(round_date_local), \
             sum(CASE WHEN is_complete THEN 1 ELSE 0 END) FROM gold.fact_rounds WHERE {COURSE}"
        ))
        .await
    {
        Ok(rows) => {
            let r = &rows[0];
            let courses = g
                .rows(&format!("SELECT count(*) FROM gold.dim_course WHERE {COURSE}"))
                .await
                .map(|r| r[0].i(0))
                .unwrap_or(0);
            p.cards.push(Card::new("courses", "Courses", fmt_int(courses)));
            p.cards.push(Card::new("rounds", "Rounds", fmt_int(r.i(0))).note(format!("{} complete", fmt_int(r.i(3)))));
            let range = if r.s(1).is_empty() { "—".to_string() } else { format!("{} → {}", r.s(1), r.s(2)) };
            p.cards.push(Card::new("date_range", "Date range (local round dates)", range));
        }
        Err(e) => fail(&mut p, e),
    }

    // Rows per layer.
    let mut layers = Grid::new(&["layer", "table", "#rows"]);
    let filter = IngestionFilter {
        layer: Some("bronze"),
        course_id: course,
        status: Some(IngestStatus::Accepted),
        limit: 1_000_000,
        ..IngestionFilter::default()
    };
    match d.store.list_ingestions(&filter).await {
        Ok(files) => {
            let records: i64 = files.iter().filter_map(|f| f.row_count).sum();
            p.cards.push(
                Card::new("bronze_records", "Bronze records landed", fmt_int(records))
                    .note(format!("{} files accepted", fmt_int(files.len() as i64))),
            );
            layers.rows.push(vec![
                Cell::text("bronze"),
                Cell::text("landing zone (accepted files, records)"),
                Cell::num(fmt_int(records)),
            ]);
        }
        Err(e) => fail(&mut p, format!("ingestion registry: {e}")),
    }
    let mut table_rows: Vec<(String, i64)> = Vec::new();
    let ordered: Vec<(&String, &str)> = g
        .tables
        .iter()
        .filter(|t| t.starts_with("silver."))
        .chain(g.tables.iter().filter(|t| t.starts_with("gold.")))
        .filter_map(|t| t.split_once('.').map(|(_, name)| (t, name)))
        .filter(|(_, name)| is_identifier(name))
        .collect();
    // One count per table, planned and run concurrently (each plans its table's files from the
    // Iceberg metadata; one after another they added up to most of the page's time).
    let counts = futures::future::join_all(ordered.iter().map(|(t, _)| async move {
        let by_course = g.columns(t).await.iter().any(|c| c == "course_id");
        if by_course
            && !g.course.is_empty()
            && let Some(n) = course_rows_from_manifests(g, t).await
        {
            return (by_course, Ok(vec![Row(vec![Val::Int(n)])]));
        }
        let sql = if by_course {
            format!("SELECT count(*) FROM {t} WHERE {COURSE}")
        } else {
            format!("SELECT count(*) FROM {t}")
        };
        (by_course, g.rows(&sql).await)
    }))
    .await;
    for ((t, name), (by_course, counted)) in ordered.into_iter().zip(counts) {
        match counted {
            Ok(rows) => {
                let n = rows[0].i(0);
                let layer = t.split('.').next().unwrap_or_default().to_string();
                if layer == "silver" && name == "fact_telemetry_event" {
                    p.cards.push(Card::new("silver_rows", "Silver rows", fmt_int(n)).note("fact_telemetry_event"));
                }
                let mut label = Cell::text(t.clone()).link(format!(
                    "/lakehouse/tables?table={}{}",
                    url_encode(t),
                    g.query().replacen('?', "&", 1)
                ));
                if !by_course && !g.course.is_empty() {
                    label.text.push_str(" (all courses)");
                }
                layers.rows.push(vec![Cell::text(layer), label, Cell::num(fmt_int(n))]);
                if t.starts_with("gold.") {
                    table_rows.push((name.to_string(), n));
                }
            }
            Err(e) => fail(&mut p, e),
        }
    }
    let gold_total: i64 = table_rows.iter().map(|t| t.1).sum();
    p.cards.push(
        Card::new("gold_tables", "Gold tables", fmt_int(table_rows.len() as i64))
            .note(format!("{} rows", fmt_int(gold_total))),
    );

    // Courses.
    let mut s = Section::new("courses", "Courses");
    all_dates_note(g, &mut s);
    match g
        .rows(&format!(
            "SELECT course_id, likely_course_type, is_loop_course, rounds_observed, complete_rounds_observed, \
             total_rows, data_quality_score, first_round_start_ts, last_round_start_ts \
             FROM gold.dim_course WHERE {COURSE} ORDER BY course_id"
        ))
        .await
    {
        Ok(rows) => {
            let cats: Vec<String> = rows.iter().map(|r| r.s(0)).collect();
            let complete: Vec<Option<f64>> = rows.iter().map(|r| r.f(4)).collect();
            let other: Vec<Option<f64>> =
                rows.iter().map(|r| Some(r.f(3).unwrap_or(0.0) - r.f(4).unwrap_or(0.0))).collect();
            s.charts.push(
                BarChart::new(
                    "Rounds per course",
                    "course",
                    "rounds",
                    cats,
                    vec![Series::new("complete", complete), Series::new("incomplete", other)],
                )
                .stacked()
                .to_svg(),
            );
            let mut grid = Grid::new(&[
                "course",
                "type",
                "loop",
                "#rounds",
                "#complete",
                "#silver rows",
                "#quality score",
                "first round",
                "last round",
            ]);
            for r in &rows {
                let score = r.f(6);
                grid.rows.push(vec![
                    Cell::text(r.s(0)).link(format!("/lakehouse/course{}", filter_query(&r.s(0), g.dates))),
                    Cell::text(r.s(1)),
                    Cell::text(if r.b(2) { "yes" } else { "no" }),
                    Cell::num(fmt_int(r.i(3))),
                    Cell::num(fmt_int(r.i(4))),
                    Cell::num(fmt_int(r.i(5))),
                    Cell::num(score.map(|s| fmt_num(s, 1)).unwrap_or_else(|| "—".into()))
                        .class(score.map(score_class).unwrap_or("")),
                    Cell::text(date_of(&r.s(7))),
                    Cell::text(date_of(&r.s(8))),
                ]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    let mut s = Section::new("layers", "Rows per layer");
    s.note = "Bronze counts the records of accepted landing files (ingestion registry); silver and gold count \
              table rows at their current snapshot."
        .into();
    if g.dated() {
        s.note.push_str(
            " With a date filter, gold tables keyed by round count the rows of the rounds in the range; bronze, \
             silver and the per-course summaries count all dates.",
        );
    }
    table_rows.sort_by_key(|t| std::cmp::Reverse(t.1));
    s.charts.push(
        BarChart::new(
            "Rows per gold table",
            "table",
            "rows",
            table_rows.iter().map(|t| t.0.clone()).collect(),
            vec![Series::new("rows", table_rows.iter().map(|t| Some(t.1 as f64)).collect())],
        )
        .to_svg(),
    );
    s.table = Some(layers);
    p.sections.push(s);
    p
}

// ---------------------------------------------------------------------------------------------
// Data quality

/// Columns of the completeness heatmap: label and `data_quality_overview` column.
const COMPLETENESS: &[(&str, &str)] = &[
    ("pace", "pct_missing_pace"),
    ("pace_gap", "pct_missing_pace_gap"),
    ("positional_gap", "pct_missing_positional_gap"),
    ("goal_time", "pct_missing_goal_time"),
    ("coordinates", "pct_missing_coordinates"),
    ("fix_timestamp", "pct_missing_fix_timestamp"),
    ("hole_number", "pct_missing_hole_number"),
    ("section_number", "pct_missing_section_number"),
    ("hole_section", "pct_missing_hole_section"),
    ("nine_number", "pct_missing_nine_number"),
    ("battery", "pct_missing_battery"),
    ("is_cache", "pct_missing_is_cache"),
    ("is_projected", "pct_missing_is_projected"),
    ("start_hole", "pct_missing_start_hole"),
    ("start_section", "pct_missing_start_section"),
    ("is_nine_hole", "pct_missing_is_nine_hole"),
    ("is_complete", "pct_missing_is_complete"),
];

pub async fn quality(d: &Daemon, g: &Gold) -> Page {
    const T: &str = "Data quality";
    // Freshness comes from the registry and the profiles, so it shows before gold exists too.
    if !g.has("gold.data_quality_overview") {
        let mut p = no_data(T);
        freshness_section(d, g, &mut p).await;
        return p;
    }
    let mut p = page(T);
    freshness_section(d, g, &mut p).await;

    // Completeness heatmap.
    let cols: Vec<String> = COMPLETENESS.iter().map(|(_, c)| (*c).to_string()).collect();
    let sql = format!(
        "SELECT course_id, events, data_quality_score, tier1_pace_score, tier2_position_score, tier3_device_score, \
         tier4_round_context_score, {} FROM gold.data_quality_overview WHERE {COURSE} ORDER BY course_id",
        cols.join(", ")
    );
    let mut heat = Section::new("completeness", "Column completeness (course × column)");
    heat.note =
        "Share of non-padding fixes with a value, from gold.data_quality_overview (100 % − pct_missing).".into();
    let mut scores = Section::new("scores", "Quality score per course");
    scores.note = "data_quality_score = mean of four tier scores (pace, position, device, round context), each \
                   100 − the mean missing % of its columns."
        .into();
    match g.rows(&sql).await {
        Ok(rows) => {
            if rows.is_empty() {
                p.no_data = Some(NO_DATA.into());
            }
            let courses: Vec<String> = rows.iter().map(|r| r.s(0)).collect();
            let values =
                rows.iter().map(|r| (0..COMPLETENESS.len()).map(|i| r.f(7 + i).map(|m| 100.0 - m)).collect()).collect();
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
            let sc: Vec<Option<f64>> = rows.iter().map(|r| r.f(2)).collect();
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
                let cell = |i: usize| Cell::num(r.f(i).map(|v| fmt_num(v, 1)).unwrap_or_else(|| "—".into()));
                let score = r.f(2).unwrap_or(0.0);
                grid.rows.push(vec![
                    Cell::text(r.s(0)),
                    Cell::num(fmt_int(r.i(1))),
                    cell(3),
                    cell(4),
                    cell(5),
                    cell(6),
                    cell(2).class(score_class(score)),
                ]);
            }
            scores.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    if g.has("gold.critical_column_gaps")
        && let Ok(rows) = g
            .rows(&format!(
                "SELECT course_id, usability_score, pace_data_status, top_recommendation \
                 FROM gold.critical_column_gaps WHERE {COURSE} ORDER BY course_id"
            ))
            .await
        && let Some(t) = scores.table.as_mut()
    {
        let by_course: BTreeMap<String, &Row> = rows.iter().map(|r| (r.s(0), r)).collect();
        t.head.push(Cell::num("usability"));
        t.head.push(Cell::text("recommendation"));
        for row in &mut t.rows {
            let r = by_course.get(&row[0].text);
            row.push(Cell::num(r.and_then(|r| r.f(1)).map(|v| fmt_num(v, 1)).unwrap_or_else(|| "—".into())));
            row.push(Cell::text(r.map(|r| r.s(3)).unwrap_or_default()));
        }
    }
    p.sections.push(heat);
    p.sections.push(scores);

    if g.has("gold.telemetry_completeness_summary") {
        let mut s = Section::new("padding", "Padding and missing timestamps");
        match g
            .rows(&format!(
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
                        rows.iter().map(|r| r.s(0)).collect(),
                        vec![
                            Series::new("real", rows.iter().map(|r| r.f(1)).collect()),
                            Series::new("padding", rows.iter().map(|r| r.f(2)).collect()),
                        ],
                    )
                    .stacked()
                    .to_svg(),
                );
                let mut grid = Grid::new(&["course", "#real", "#padding", "#padding %", "#no timestamp (real) %"]);
                for r in &rows {
                    grid.rows.push(vec![
                        Cell::text(r.s(0)),
                        Cell::num(fmt_int(r.i(1))),
                        Cell::num(fmt_int(r.i(2))),
                        Cell::num(opt_pct(r.f(3))),
                        Cell::num(opt_pct(r.f(4))),
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

// ---------------------------------------------------------------------------------------------
// Pace

/// A hole is a bottleneck when groups spend more than this times the course's average time per
/// hole on it (and fast below `FAST`).
pub const BOTTLENECK: f64 = 1.15;
pub const FAST: f64 = 0.85;

pub async fn pace(g: &Gold) -> Page {
    const T: &str = "Pace of play";
    if !g.has_all(&["gold.pace_summary_by_round", "gold.fact_round_hole_performance", "gold.dim_course"]) {
        return no_data(T);
    }
    let mut p = page(T);

    // Pace by course.
    let mut s = Section::new("by-course", "Pace by course");
    s.note =
        "Average pace of a round versus its goal time (from gold.pace_summary_by_round): + behind, − ahead.".into();
    match g
        .rows(&format!(
            "SELECT course_id, count(*), avg(avg_pace), min(avg_pace), max(avg_pace), avg(avg_pace_gap) \
             FROM gold.pace_summary_by_round WHERE {COURSE} GROUP BY course_id ORDER BY course_id"
        ))
        .await
    {
        Ok(rows) => {
            let all = g
                .rows(&format!("SELECT avg(avg_pace), count(*) FROM gold.pace_summary_by_round WHERE {COURSE}"))
                .await
                .ok()
                .and_then(|r| r.first().and_then(|r| r.f(0)));
            if let Some(avg) = all {
                p.cards.push(
                    Card::new("avg_pace", "Average pace vs goal", fmt_pace(avg)).note("minutes:seconds per round"),
                );
            }
            let mut chart = BarChart::new(
                "Average pace per round by course (min:sec vs goal)",
                "course",
                "pace",
                rows.iter().map(|r| r.s(0)).collect(),
                vec![Series::new("pace", rows.iter().map(|r| r.f(2)).collect())],
            )
            .with_time_fmt(fmt_pace);
            if let Some(avg) = all {
                chart = chart.line(avg, format!("all courses {}", fmt_pace(avg)), GREY);
            }
            s.charts.push(chart.to_svg());
            let mut grid =
                Grid::new(&["course", "#rounds", "#avg pace", "#best round", "#worst round", "#avg pace gap"]);
            for r in &rows {
                let pc = |i: usize| Cell::num(r.f(i).map(fmt_pace).unwrap_or_else(|| "—".into()));
                grid.rows.push(vec![Cell::text(r.s(0)), Cell::num(fmt_int(r.i(1))), pc(2), pc(3), pc(4), pc(5)]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    // Pace by hole, for one course (holes of different courses are different holes).
    let course = if g.course.is_empty() { g.courses().await.into_iter().next() } else { Some(g.course.clone()) };
    let mut s = Section::new("by-hole", "Pace by hole");
    if let Some(course) = course {
        s.title = format!("Pace by hole — {course}");
        if g.course.is_empty() {
            s.note = format!("Showing {course}; choose a course above for another. ");
        }
        s.note.push_str(&format!(
            "A hole is a bottleneck (red) when groups spend more than {BOTTLENECK}× the course's average time per \
             hole on it, fast (green) below {FAST}×; the dashed lines are the average and the threshold. Pace is the \
             average pace versus goal at the hole (+ behind)."
        ));
        match g
            .rows_for(
                &format!(
                    "SELECT hole_number, count(DISTINCT round_id), avg(duration_sec), avg(avg_pace_sec), \
                     max(max_pace_sec) FROM gold.fact_round_hole_performance WHERE {COURSE} AND duration_sec > 0 \
                     GROUP BY hole_number ORDER BY hole_number"
                ),
                &course,
            )
            .await
        {
            Ok(rows) => {
                let times: Vec<Option<f64>> = rows.iter().map(|r| r.f(2)).collect();
                let known: Vec<f64> = times.iter().flatten().copied().collect();
                let avg = if known.is_empty() { 0.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
                let threshold = avg * BOTTLENECK;
                let status = |t: Option<f64>| match t {
                    Some(t) if t > threshold => "bottleneck",
                    Some(t) if t < avg * FAST => "fast",
                    _ => "normal",
                };
                let colors = times
                    .iter()
                    .map(|t| match status(*t) {
                        "bottleneck" => RED,
                        "fast" => GREEN,
                        _ => PALETTE[0],
                    })
                    .collect();
                let holes: Vec<String> = rows.iter().map(|r| r.s(0)).collect();
                s.charts.push(
                    BarChart::new(
                        "Average time on each hole (min:sec)",
                        "hole",
                        "time on hole",
                        holes.clone(),
                        vec![Series::new("time on hole", times.clone())],
                    )
                    .with_colors(colors)
                    .with_time_fmt(fmt_duration)
                    .line(avg, format!("course average {}", fmt_duration(avg)), GREY)
                    .line(threshold, format!("bottleneck > {} ({BOTTLENECK}×)", fmt_duration(threshold)), RED)
                    .to_svg(),
                );
                s.charts.push(
                    BarChart::new(
                        "Average pace vs goal at each hole (min:sec)",
                        "hole",
                        "pace",
                        holes,
                        vec![Series::new("pace", rows.iter().map(|r| r.f(3)).collect())],
                    )
                    .with_time_fmt(fmt_pace)
                    .to_svg(),
                );
                let n_bottleneck = times.iter().filter(|t| status(**t) == "bottleneck").count();
                p.cards.push(
                    Card::new("bottleneck_holes", format!("Bottleneck holes ({course})"), fmt_int(n_bottleneck as i64))
                        .note(format!("threshold {}", fmt_duration(threshold))),
                );
                let mut grid =
                    Grid::new(&["hole", "#rounds", "#avg time", "#vs average", "#avg pace", "#worst pace", "status"]);
                for (r, t) in rows.iter().zip(&times) {
                    let st = status(*t);
                    grid.rows.push(vec![
                        Cell::text(r.s(0)),
                        Cell::num(fmt_int(r.i(1))),
                        Cell::num(t.map(fmt_duration).unwrap_or_else(|| "—".into())),
                        Cell::num(t.map(|t| fmt_pct(100.0 * t / avg.max(1e-9))).unwrap_or_else(|| "—".into())),
                        Cell::num(r.f(3).map(fmt_pace).unwrap_or_else(|| "—".into())),
                        Cell::num(r.f(4).map(fmt_pace).unwrap_or_else(|| "—".into())),
                        Cell::text(st).class(match st {
                            "bottleneck" => "bad",
                            "fast" => "good",
                            _ => "",
                        }),
                    ]);
                }
                s.table = Some(grid);
            }
            Err(e) => fail(&mut p, e),
        }
    } else {
        s.note = "No courses yet.".into();
    }
    p.sections.push(s);

    loop_section(g, &mut p).await;
    super::topology::pace_by_section(g, &mut p).await;
    p
}

/// Loop courses (a 9-hole course played around twice): time per hole, first loop versus second.
async fn loop_section(g: &Gold, p: &mut Page) {
    let mut s = Section::new("loops", "Loop courses: second nine versus first");
    s.note = "Rounds that played at least two nines on a loop course (dim_course.is_loop_course); the same hole \
              on loop 1 and loop 2, from gold.fact_round_hole_performance."
        .into();
    if !g.has("gold.fact_rounds") {
        p.sections.push(s);
        return;
    }
    let rows = match g
        .rows(
            "SELECT h.course_id, h.hole_number, h.nine_number, avg(h.duration_sec), avg(h.avg_pace_sec), \
             count(DISTINCT h.round_id) \
             FROM gold.fact_round_hole_performance h \
             JOIN gold.fact_rounds r ON r.course_id = h.course_id AND r.round_id = h.round_id \
             JOIN gold.dim_course c ON c.course_id = h.course_id \
             WHERE c.is_loop_course AND r.nines_played >= 2 AND h.duration_sec > 0 \
               AND ($1 = '' OR h.course_id = $1) \
             GROUP BY h.course_id, h.hole_number, h.nine_number ORDER BY 1, 2, 3",
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            fail(p, e);
            p.sections.push(s);
            return;
        }
    };
    let mut by_course: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_course.entry(r.s(0)).or_default().push(r);
    }
    if by_course.is_empty() {
        s.note.push_str(" No loop course matches the filter.");
    }
    let mut grid = Grid::new(&[
        "course",
        "hole",
        "#loop 1 time",
        "#loop 2 time",
        "#second − first",
        "#loop 1 pace",
        "#loop 2 pace",
    ]);
    for (course, rows) in &by_course {
        let nines: BTreeSet<i64> = rows.iter().map(|r| r.i(2)).collect();
        let holes: BTreeSet<i64> = rows.iter().map(|r| r.i(1)).collect();
        let nines: Vec<i64> = nines.into_iter().take(2).collect();
        let get = |hole: i64, nine: i64, col: usize| {
            rows.iter().find(|r| r.i(1) == hole && r.i(2) == nine).and_then(|r| r.f(col))
        };
        let series = nines
            .iter()
            .enumerate()
            .map(|(i, n)| Series::new(format!("loop {}", i + 1), holes.iter().map(|h| get(*h, *n, 3)).collect()))
            .collect();
        s.charts.push(
            BarChart::new(
                &format!("{course}: average time per hole, loop 1 vs loop 2 (min:sec)"),
                "hole",
                "time on hole",
                holes.iter().map(|h| h.to_string()).collect(),
                series,
            )
            .with_time_fmt(fmt_duration)
            .to_svg(),
        );
        if let [first, second] = nines[..] {
            for h in &holes {
                let (a, b) = (get(*h, first, 3), get(*h, second, 3));
                let delta = a.zip(b).map(|(a, b)| b - a);
                grid.rows.push(vec![
                    Cell::text(course.clone()),
                    Cell::text(h.to_string()),
                    Cell::num(a.map(fmt_duration).unwrap_or_else(|| "—".into())),
                    Cell::num(b.map(fmt_duration).unwrap_or_else(|| "—".into())),
                    Cell::num(delta.map(fmt_pace).unwrap_or_else(|| "—".into()))
                        .class(if delta.is_some_and(|d| d > 0.0) { "bad" } else { "good" }),
                    Cell::num(get(*h, first, 4).map(fmt_pace).unwrap_or_else(|| "—".into())),
                    Cell::num(get(*h, second, 4).map(fmt_pace).unwrap_or_else(|| "—".into())),
                ]);
            }
        }
    }
    if !grid.rows.is_empty() {
        s.table = Some(grid);
    }
    p.sections.push(s);
}

// ---------------------------------------------------------------------------------------------
// Rounds

pub(super) const WEEKDAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `(lower, upper)` IQR outlier bounds of sorted values: max(0, Q1 − 1.5·IQR), Q3 + 1.5·IQR.
pub fn iqr_bounds(sorted: &[f64]) -> Option<(f64, f64)> {
    if sorted.is_empty() {
        return None;
    }
    let q = |p: f64| {
        let pos = p * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    };
    let (q1, q3) = (q(0.25), q(0.75));
    let iqr = q3 - q1;
    Some(((q1 - 1.5 * iqr).max(0.0), q3 + 1.5 * iqr))
}

pub fn median(sorted: &[f64]) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    Some(if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 })
}

pub async fn rounds(g: &Gold) -> Page {
    const T: &str = "Rounds";
    if !g.has_all(&["gold.fact_rounds", "gold.course_rounds_by_weekday", "gold.course_rounds_by_month"]) {
        return no_data(T);
    }
    let mut p = page(T);

    // By weekday (ISO, Monday first), one series per course.
    let mut s = Section::new("weekday", "Rounds by weekday");
    s.note = "Weekday of the round's first fix in the course's local time, ISO: Monday = 1 … Sunday = 7 \
              (gold.course_rounds_by_weekday; with a date filter, the rounds of gold.fact_rounds in the range)."
        .into();
    let sql = if g.dated() {
        format!(
            "SELECT course_id, COALESCE(round_weekday, 0) AS wd, count(*) FROM gold.fact_rounds WHERE {COURSE} \
             GROUP BY course_id, COALESCE(round_weekday, 0) ORDER BY course_id, wd"
        )
    } else {
        format!(
            "SELECT course_id, weekday_number, sum(rounds) FROM gold.course_rounds_by_weekday WHERE {COURSE} \
             GROUP BY course_id, weekday_number ORDER BY course_id, weekday_number"
        )
    };
    match g.rows(&sql).await {
        Ok(rows) => {
            let mut per: BTreeMap<String, [f64; 8]> = BTreeMap::new();
            for r in &rows {
                let wd = r.i(1).clamp(0, 7) as usize;
                per.entry(r.s(0)).or_insert([0.0; 8])[wd] += r.f(2).unwrap_or(0.0);
            }
            let unknown: f64 = per.values().map(|v| v[0]).sum();
            let series =
                per.iter().map(|(c, v)| Series::new(c.clone(), (1..=7).map(|d| Some(v[d])).collect())).collect();
            s.charts.push(
                BarChart::new(
                    "Rounds per weekday",
                    "weekday",
                    "rounds",
                    WEEKDAYS.iter().map(|d| (*d).to_string()).collect(),
                    series,
                )
                .stacked()
                .to_svg(),
            );
            let mut grid = Grid::new(&["weekday", "#rounds"]);
            for (i, name) in WEEKDAYS.iter().enumerate() {
                let n: f64 = per.values().map(|v| v[i + 1]).sum();
                grid.rows.push(vec![Cell::text(*name), Cell::num(fmt_int(n as i64))]);
            }
            if unknown > 0.0 {
                grid.rows.push(vec![Cell::text("unknown (no timestamp)"), Cell::num(fmt_int(unknown as i64))]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    // By month.
    let mut s = Section::new("month", "Rounds by month");
    s.note = "Month of the round's start in the course's local time (gold.course_rounds_by_month; with a date \
              filter, the rounds of gold.fact_rounds in the range)."
        .into();
    let sql = if g.dated() {
        format!(
            "SELECT course_id, CAST(m AS VARCHAR) AS month, count(*) AS n FROM (SELECT course_id, \
             COALESCE(CAST(date_trunc('month', round_start_local) AS DATE), DATE '1900-01-01') AS m \
             FROM gold.fact_rounds WHERE {COURSE}) GROUP BY course_id, m ORDER BY m, course_id"
        )
    } else {
        format!(
            "SELECT course_id, CAST(month_start AS VARCHAR) AS month, sum(rounds) AS n FROM gold.course_rounds_by_month \
             WHERE {COURSE} GROUP BY course_id, month_start ORDER BY month_start, course_id"
        )
    };
    match g.rows(&sql).await {
        Ok(rows) => {
            let months: BTreeSet<String> = rows.iter().map(|r| r.s(1)).collect();
            let months: Vec<String> = months.into_iter().collect();
            let label = |m: &str| {
                if m.starts_with("1900") { "unknown".to_string() } else { m.get(..7).unwrap_or(m).to_string() }
            };
            let mut per: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
            for r in &rows {
                *per.entry(r.s(0)).or_default().entry(r.s(1)).or_insert(0.0) += r.f(2).unwrap_or(0.0);
            }
            let series: Vec<Series> = per
                .iter()
                .map(|(c, m)| Series::new(c.clone(), months.iter().map(|x| Some(*m.get(x).unwrap_or(&0.0))).collect()))
                .collect();
            let cats: Vec<String> = months.iter().map(|m| label(m)).collect();
            if months.len() > 1 {
                s.charts
                    .push(LineChart::new("Rounds per month", "month", "rounds", cats.clone(), series.clone()).to_svg());
            } else {
                s.charts
                    .push(BarChart::new("Rounds per month", "month", "rounds", cats.clone(), series.clone()).to_svg());
            }
            let mut grid = Grid::new(&["month", "#rounds"]);
            for (i, m) in cats.iter().enumerate() {
                let n: f64 = series.iter().filter_map(|s| s.values[i]).sum();
                grid.rows.push(vec![Cell::text(m.clone()), Cell::num(fmt_int(n as i64))]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    match super::course::play_patterns(g).await {
        Ok(s) => p.sections.push(s),
        Err(e) => fail(&mut p, e),
    }

    // Round-length mix.
    let mut s = Section::new("length", "Round-length mix (9 / 18 / 27 holes)");
    match g
        .rows(&format!(
            "SELECT course_id, round_length, count(*) FROM gold.fact_rounds WHERE {COURSE} \
             GROUP BY course_id, round_length ORDER BY course_id"
        ))
        .await
    {
        Ok(rows) => {
            let courses: Vec<String> = rows.iter().map(|r| r.s(0)).collect::<BTreeSet<_>>().into_iter().collect();
            let lengths = ["9", "18", "27", "unknown"];
            let get =
                |c: &str, l: &str| rows.iter().find(|r| r.s(0) == c && r.s(1) == l).map(|r| r.f(2).unwrap_or(0.0));
            let series = lengths
                .iter()
                .filter(|l| rows.iter().any(|r| r.s(1) == **l))
                .map(|l| {
                    Series::new(format!("{l} holes"), courses.iter().map(|c| Some(get(c, l).unwrap_or(0.0))).collect())
                })
                .collect();
            s.charts.push(
                BarChart::new("Rounds by length", "course", "rounds", courses.clone(), series).stacked().to_svg(),
            );
            let total: f64 = rows.iter().filter_map(|r| r.f(2)).sum();
            let mut grid = Grid::new(&["length", "#rounds", "#share"]);
            for l in lengths {
                let n: f64 = rows.iter().filter(|r| r.s(1) == l).filter_map(|r| r.f(2)).sum();
                if n > 0.0 {
                    grid.rows.push(vec![
                        Cell::text(if l == "unknown" { "unknown".to_string() } else { format!("{l} holes") }),
                        Cell::num(fmt_int(n as i64)),
                        Cell::num(fmt_pct(100.0 * n / total.max(1.0))),
                    ]);
                }
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    // Durations.
    let mut s = Section::new("duration", "Round durations");
    s.note = "Minutes from a round's first to its last fix (gold.fact_rounds.round_duration_minutes, rounds with a \
              positive duration). Outliers (red) lie outside max(0, Q1 − 1.5·IQR) … Q3 + 1.5·IQR."
        .into();
    match g
        .rows(&format!(
            "SELECT course_id, round_id, round_duration_minutes, round_length FROM gold.fact_rounds \
             WHERE {COURSE} AND round_duration_minutes > 0 ORDER BY round_duration_minutes"
        ))
        .await
    {
        Ok(rows) => {
            let mins: Vec<f64> = rows.iter().filter_map(|r| r.f(2)).collect();
            let bounds = iqr_bounds(&mins);
            let outliers: Vec<&Row> =
                rows.iter().filter(|r| bounds.is_some_and(|(l, u)| r.f(2).is_some_and(|m| m < l || m > u))).collect();
            let avg = if mins.is_empty() { None } else { Some(mins.iter().sum::<f64>() / mins.len() as f64) };
            p.cards.push(Card::new("rounds", "Rounds with a duration", fmt_int(mins.len() as i64)));
            p.cards.push(
                Card::new("avg_minutes", "Average duration", avg.map(|a| fmt_duration(a * 60.0)).unwrap_or("—".into()))
                    .note("h:mm:ss"),
            );
            p.cards.push(Card::new(
                "median_minutes",
                "Median duration",
                median(&mins).map(|m| fmt_duration(m * 60.0)).unwrap_or("—".into()),
            ));
            p.cards.push(
                Card::new("outliers", "Outliers", fmt_int(outliers.len() as i64))
                    .note(fmt_pct(100.0 * outliers.len() as f64 / mins.len().max(1) as f64)),
            );
            s.charts.push(
                Histogram {
                    title: "Round duration (minutes)".into(),
                    x_label: "minutes".into(),
                    values: mins.clone(),
                    bins: 30,
                    bounds,
                    fmt: fmt_axis,
                }
                .to_svg(),
            );
            let mut grid = Grid::new(&["course", "round", "length", "#duration", "kind"]);
            for r in outliers.iter().take(50) {
                let m = r.f(2).unwrap_or(0.0);
                let kind = if bounds.is_some_and(|(l, _)| m < l) { "too short" } else { "too long" };
                grid.rows.push(vec![
                    Cell::text(r.s(0)),
                    Cell::text(r.s(1)).class("mono"),
                    Cell::text(r.s(3)),
                    Cell::num(fmt_duration(m * 60.0)),
                    Cell::text(kind).class("bad"),
                ]);
            }
            if !grid.rows.is_empty() {
                s.table = Some(grid);
            }
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);
    p
}

// ---------------------------------------------------------------------------------------------
// Devices

pub async fn devices(g: &Gold) -> Page {
    const T: &str = "Devices and battery health";
    if !g.has_all(&["gold.device_health_errors", "gold.fact_rounds"]) {
        return no_data(T);
    }
    let mut p = page(T);

    match g
        .rows(&format!(
            "SELECT count(*), sum(CASE WHEN health_flag = 'battery_critical' THEN 1 ELSE 0 END), \
             count(DISTINCT device_id), count(DISTINCT round_id) FROM gold.device_health_errors WHERE {COURSE}"
        ))
        .await
    {
        Ok(rows) => {
            let r = &rows[0];
            p.cards.push(Card::new("low_battery_fixes", "Low-battery fixes (< 20 %)", fmt_int(r.i(0))));
            p.cards.push(Card::new("critical_fixes", "Critical (< 10 %)", fmt_int(r.i(1))));
            p.cards.push(Card::new("devices_affected", "Devices with low battery", fmt_int(r.i(2))));
            p.cards.push(Card::new("rounds_affected", "Rounds affected", fmt_int(r.i(3))));
        }
        Err(e) => fail(&mut p, e),
    }

    let mut s = Section::new("battery-by-course", "Battery by course");
    s.note = "From gold.fact_rounds (non-padding fixes): average and lowest battery, share of fixes below 20 %.".into();
    match g
        .rows(&format!(
            "SELECT course_id, avg(avg_battery_pct), min(min_battery_pct), sum(low_battery_fix_count), \
             sum(critical_battery_fix_count), sum(fix_count) FROM gold.fact_rounds WHERE {COURSE} \
             GROUP BY course_id ORDER BY course_id"
        ))
        .await
    {
        Ok(rows) => {
            s.charts.push(
                BarChart::new(
                    "Average and lowest battery per course (%)",
                    "course",
                    "battery %",
                    rows.iter().map(|r| r.s(0)).collect(),
                    vec![
                        Series::new("average", rows.iter().map(|r| r.f(1)).collect()),
                        Series::new("lowest", rows.iter().map(|r| r.f(2)).collect()),
                    ],
                )
                .line(20.0, "low < 20 %", RED)
                .to_svg(),
            );
            let mut grid =
                Grid::new(&["course", "#avg battery", "#lowest", "#fixes < 20 %", "#fixes < 10 %", "#share < 20 %"]);
            for r in &rows {
                grid.rows.push(vec![
                    Cell::text(r.s(0)),
                    Cell::num(opt_pct(r.f(1))),
                    Cell::num(opt_pct(r.f(2))),
                    Cell::num(fmt_int(r.i(3))),
                    Cell::num(fmt_int(r.i(4))),
                    Cell::num(fmt_pct(100.0 * r.i(3) as f64 / r.i(5).max(1) as f64)),
                ]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    let mut s = Section::new("health-over-time", "Low-battery fixes over time");
    s.note = "gold.device_health_errors by day of the fix (UTC): battery_low 10–20 %, battery_critical < 10 %.".into();
    match g
        .rows(&format!(
            "SELECT CAST(CAST(fix_timestamp AS DATE) AS VARCHAR) AS day, health_flag, count(*) \
             FROM gold.device_health_errors WHERE {COURSE} AND fix_timestamp IS NOT NULL \
             GROUP BY 1, 2 ORDER BY 1"
        ))
        .await
    {
        Ok(rows) => {
            let days: Vec<String> = rows.iter().map(|r| r.s(0)).collect::<BTreeSet<_>>().into_iter().collect();
            let series = ["battery_low", "battery_critical"]
                .iter()
                .map(|f| {
                    Series::new(
                        *f,
                        days.iter()
                            .map(|d| {
                                Some(rows.iter().find(|r| r.s(0) == *d && r.s(1) == *f).map(|r| r.i(2)).unwrap_or(0)
                                    as f64)
                            })
                            .collect(),
                    )
                })
                .collect();
            if days.len() > 1 {
                s.charts.push(LineChart::new("Low-battery fixes per day", "day", "fixes", days, series).to_svg());
            } else {
                s.charts
                    .push(BarChart::new("Low-battery fixes per day", "day", "fixes", days, series).stacked().to_svg());
            }
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    if g.has_all(&["gold.dim_device", "gold.dim_round"]) {
        let mut s = Section::new("devices", "Devices with the most low-battery fixes");
        match g
            .rows(&format!(
                "SELECT d.device_id, d.rounds_seen, d.courses_seen, d.min_battery_pct, d.avg_battery_pct, \
                 COALESCE(e.n, 0) AS low_fixes, d.last_seen_ts \
                 FROM gold.dim_device d \
                 LEFT JOIN (SELECT device_id, count(*) AS n FROM gold.device_health_errors WHERE {COURSE} \
                            GROUP BY device_id) e ON e.device_id = d.device_id \
                 WHERE $1 = '' OR d.device_id IN (SELECT device_id FROM gold.dim_round WHERE course_id = $1) \
                 ORDER BY low_fixes DESC, d.min_battery_pct ASC, d.device_id LIMIT 25"
            ))
            .await
        {
            Ok(rows) => {
                let mut grid = Grid::new(&[
                    "device",
                    "#rounds",
                    "#courses",
                    "#lowest battery",
                    "#avg battery",
                    "#fixes < 20 %",
                    "last seen",
                ]);
                for r in &rows {
                    let low = r.f(3).unwrap_or(100.0);
                    grid.rows.push(vec![
                        Cell::text(r.s(0)).class("mono"),
                        Cell::num(fmt_int(r.i(1))),
                        Cell::num(fmt_int(r.i(2))),
                        Cell::num(opt_pct(r.f(3))).class(if low < 10.0 {
                            "bad"
                        } else if low < 20.0 {
                            "warn"
                        } else {
                            ""
                        }),
                        Cell::num(opt_pct(r.f(4))),
                        Cell::num(fmt_int(r.i(5))),
                        Cell::text(date_of(&r.s(6))),
                    ]);
                }
                s.table = Some(grid);
            }
            Err(e) => fail(&mut p, e),
        }
        p.sections.push(s);
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Table browser

/// The snapshot summary properties the browser shows (the rest is per-partition detail).
const SNAPSHOT_KEYS: &[&str] = &[
    "added-records",
    "deleted-records",
    "added-data-files",
    "deleted-data-files",
    "changed-partition-count",
    "total-data-files",
    "tm.run-key",
    "tm.logical-date",
];

pub async fn tables(g: &Gold, selected: Option<&str>) -> Page {
    const T: &str = "Tables";
    let mut p = page(T);
    let names: Vec<String> = g
        .tables
        .iter()
        .filter(|t| t.starts_with("silver."))
        .chain(g.tables.iter().filter(|t| t.starts_with("gold.")))
        .cloned()
        .collect();
    if !names.iter().any(|t| t.starts_with("gold.")) {
        p.no_data = Some(NO_DATA.into());
    }
    if names.is_empty() {
        return p;
    }
    let selected = selected
        .filter(|s| names.iter().any(|n| n == s))
        .map(str::to_string)
        .unwrap_or_else(|| names.iter().find(|n| *n == "silver.fact_telemetry_event").unwrap_or(&names[0]).clone());
    p.keep.push(("table".into(), selected.clone()));
    let cq = g.query().replacen('?', "&", 1);

    let mut list = Section::new("tables", "Tables in the catalog");
    list.note = "Rows and data files of each table's current snapshot (its Iceberg summary), all courses; the \
                 course filter applies to the partitions below."
        .into();
    let mut grid = Grid::new(&["table", "#rows", "#data files", "#snapshots", "last commit (UTC)", "partitioned by"]);
    let mut chosen = None;
    // The tables' metadata, loaded concurrently (one after another it was most of the page).
    let loaded = futures::future::join_all(names.iter().map(|name| async move {
        let ident = crate::lake::parse_ident(name)?;
        g.lake.load_table(&ident).await
    }))
    .await;
    for (name, table) in names.iter().zip(loaded) {
        let table = match table {
            Ok(t) => t,
            Err(e) => {
                fail(&mut p, e.to_string());
                continue;
            }
        };
        let snaps = crate::lake::iceberg::snapshot_infos(&table);
        let current = snaps.iter().find(|s| s.current);
        let md = table.metadata();
        let schema = md.current_schema();
        let parts: Vec<String> = md
            .default_partition_spec()
            .fields()
            .iter()
            .map(|f| {
                let col = schema.name_by_field_id(f.source_id).unwrap_or(&f.name).to_string();
                let t = f.transform.to_string();
                if t == "identity" { col } else { format!("{t}({col})") }
            })
            .collect();
        let get = |k: &str| current.and_then(|s| s.summary.get(k)).and_then(|v| v.parse::<i64>().ok());
        grid.rows.push(vec![
            Cell::text(name.clone()).link(format!("/lakehouse/tables?table={}{cq}", url_encode(name))),
            Cell::num(get("total-records").map(fmt_int).unwrap_or_else(|| "—".into())),
            Cell::num(get("total-data-files").map(fmt_int).unwrap_or_else(|| "—".into())),
            Cell::num(fmt_int(snaps.len() as i64)),
            Cell::text(
                current.map(|s| s.timestamp.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "—".into()),
            ),
            Cell::text(if parts.is_empty() { "—".into() } else { parts.join(", ") }),
        ]);
        if *name == selected {
            let identity: Vec<String> = md
                .default_partition_spec()
                .fields()
                .iter()
                .filter(|f| f.transform.to_string() == "identity")
                .filter_map(|f| schema.name_by_field_id(f.source_id).map(str::to_string))
                .collect();
            chosen = Some((snaps, identity));
        }
    }
    list.table = Some(grid);
    p.sections.push(list);

    let Some((snaps, partition_cols)) = chosen else { return p };
    let mut s = Section::new("snapshots", format!("Snapshots of {selected}"));
    s.note = "Newest first. Every snapshot stays readable: `tmctl query --snapshot ID`.".into();
    let records: Vec<Option<f64>> =
        snaps.iter().map(|s| s.summary.get("total-records").and_then(|v| v.parse::<f64>().ok())).collect();
    if snaps.len() > 1 {
        s.charts.push(
            LineChart::new(
                &format!("Rows of {selected} per snapshot"),
                "snapshot (commit time)",
                "rows",
                snaps.iter().map(|s| s.timestamp.format("%m-%d %H:%M:%S").to_string()).collect(),
                vec![Series::new("rows", records)],
            )
            .to_svg(),
        );
    }
    let mut grid = Grid::new(&["snapshot id", "committed (UTC)", "operation", "#rows", "summary"]);
    for snap in snaps.iter().rev().take(100) {
        let summary: Vec<String> =
            SNAPSHOT_KEYS.iter().filter_map(|k| snap.summary.get(*k).map(|v| format!("{k}={v}"))).collect();
        grid.rows.push(vec![
            Cell::text(format!("{}{}", snap.id, if snap.current { " (current)" } else { "" })).class("mono"),
            Cell::text(snap.timestamp.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
            Cell::text(snap.operation.clone()),
            Cell::num(
                snap.summary.get("total-records").and_then(|v| v.parse::<i64>().ok()).map(fmt_int).unwrap_or_default(),
            ),
            Cell::text(summary.join(", ")).class("mono small"),
        ]);
    }
    s.table = Some(grid);
    p.sections.push(s);

    // Partitions and their row counts (identity partition columns from the table's spec).
    let mut s = Section::new("partitions", format!("Partitions of {selected}"));
    let cols: Vec<&String> = partition_cols.iter().filter(|c| is_identifier(c)).collect();
    if cols.is_empty() {
        s.note = "The table is not partitioned (one full-refresh snapshot per model run).".into();
        p.sections.push(s);
        return p;
    }
    let by_course = cols.iter().any(|c| c.as_str() == "course_id");
    // Rows per partition from the manifests (exact, and no data file is read), as rows of
    // (partition values…, rows) in the partition columns' order, filtered by the course.
    let course_at = partition_cols.iter().position(|c| c == "course_id");
    let counted = match crate::lake::parse_ident(&selected) {
        Ok(ident) => match g.lake.load_table(&ident).await {
            Ok(table) => crate::lake::iceberg::partition_rows(&ident, &table).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    let counted = counted.map(|parts| {
        parts
            .into_iter()
            .filter(|(values, _)| match (course_at, g.course.as_str()) {
                (Some(i), course) if !course.is_empty() => values.get(i).is_some_and(|v| v == course),
                _ => true,
            })
            .take(1000)
            .map(|(values, rows)| {
                let mut cells: Vec<Val> = values.into_iter().map(Val::Str).collect();
                cells.push(Val::Int(rows as i64));
                Row(cells)
            })
            .collect::<Vec<Row>>()
    });
    match counted {
        Ok(rows) => {
            s.note = format!(
                "{} partitions, by {}.",
                fmt_int(rows.len() as i64),
                cols.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
            );
            if !by_course && !g.course.is_empty() {
                s.note.push_str(" (Not partitioned by course: all courses shown.)");
            }
            let n = cols.len();
            if rows.len() <= 60 {
                s.charts.push(
                    BarChart::new(
                        "Rows per partition",
                        "partition",
                        "rows",
                        rows.iter().map(|r| (0..n).map(|i| r.s(i)).collect::<Vec<_>>().join(" / ")).collect(),
                        vec![Series::new("rows", rows.iter().map(|r| r.f(n)).collect())],
                    )
                    .to_svg(),
                );
            }
            let mut head: Vec<&str> = cols.iter().map(|c| c.as_str()).collect();
            head.push("#rows");
            let mut grid = Grid::new(&head);
            for r in &rows {
                let mut row: Vec<Cell> = (0..n).map(|i| Cell::text(r.s(i))).collect();
                row.push(Cell::num(fmt_int(r.i(n))));
                grid.rows.push(row);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqr_bounds_and_median() {
        let v: Vec<f64> = (1..=9).map(f64::from).collect();
        assert_eq!(median(&v), Some(5.0));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
        assert_eq!(median(&[]), None);
        // Q1 = 3, Q3 = 7, IQR = 4 → (max(0, -3), 13).
        assert_eq!(iqr_bounds(&v), Some((0.0, 13.0)));
        let v = [100.0, 110.0, 120.0, 130.0, 140.0];
        assert_eq!(iqr_bounds(&v), Some((80.0, 160.0)));
    }

    #[test]
    fn dates_and_scores() {
        assert_eq!(date_of("2025-06-01T07:00:00Z"), "2025-06-01");
        assert_eq!(date_of(""), "");
        assert_eq!(score_class(85.0), "good");
        assert_eq!(score_class(65.0), "warn");
        assert_eq!(score_class(10.0), "bad");
    }
}
