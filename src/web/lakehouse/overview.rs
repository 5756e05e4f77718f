//! The overview page: headline figures (courses, rounds, local date range, bronze records,
//! silver rows), the courses with their quality, and rows per layer and table.

use std::collections::HashMap;

use super::common::{all_dates_note, blank_page, date_of, fail, no_data, round_cards, score_class};
use super::data::{COURSE, Gold, is_identifier, read_model};
use super::{Card, Cell, Grid, Page, Section, filter_query, url_encode};
use crate::daemon::Daemon;
use crate::store::{IngestStatus, IngestionFilter};
use crate::web::charts::{BarChart, Series, fmt_int, fmt_num};

read_model! {
    /// The rounds of the filter, for the cards.
    struct RoundTotals { rounds: i64, first_date: String, last_date: String, complete: i64 }
}

read_model! {
    /// The rows a `count(*)` counted.
    struct Count { n: i64 }
}

read_model! {
    /// The rows a `count(*)` of the `i`-th table counted.
    struct IndexedCount { i: i64, n: i64 }
}

read_model! {
    /// One course as `gold.dim_course` sums it up.
    struct CourseSummary {
        course_id: String,
        likely_course_type: String,
        is_loop_course: bool,
        // Both charted (NULL is no bar) and counted in the table (NULL is 0).
        rounds_observed: Option<i64>,
        complete_rounds_observed: Option<i64>,
        total_rows: i64,
        data_quality_score: Option<f64>,
        first_round_start_ts: String,
        last_round_start_ts: String,
    }
}

/// The rows of the filtered course in table `t`, from its manifests, when `t` is partitioned by
/// `course_id` (exact, and no data file is opened); `None` otherwise.
async fn course_rows_from_manifests(g: &Gold, t: &str) -> Option<i64> {
    let ident = crate::lake::parse_ident(t).ok()?;
    let table = g.lake.load_table(&ident).await.ok()?;
    let at = crate::lake::iceberg::identity_partition_columns(&table).iter().position(|c| c == "course_id")?;
    let parts = g.lake.partition_rows(&ident).await.ok()?;
    Some(
        parts.iter().filter(|(values, _)| values.get(at).is_some_and(|v| *v == g.course)).map(|(_, n)| *n as i64).sum(),
    )
}

/// The rows of table `t` from its current snapshot's summary (`total-records`, which every
/// tmctl commit writes): one metadata read, no manifest. `None` when the summary lacks it.
async fn rows_from_snapshot(g: &Gold, t: &str) -> Option<i64> {
    let ident = crate::lake::parse_ident(t).ok()?;
    let table = g.lake.load_table(&ident).await.ok()?;
    match table.metadata().current_snapshot() {
        None => Some(0),
        Some(s) => s.summary().additional_properties.get("total-records")?.parse().ok(),
    }
}

pub async fn page(d: &Daemon, g: &Gold) -> Page {
    const T: &str = "Lakehouse overview";
    if !g.has_all(&["gold.dim_course", "gold.fact_rounds"]) {
        return no_data(T);
    }
    let mut p = blank_page(T);
    let course = (!g.course.is_empty()).then_some(g.course.as_str());

    match g
        .read_one::<RoundTotals>(&format!(
            "SELECT count(*) AS rounds, min(round_date_local) AS first_date, max(round_date_local) AS last_date, \
             sum(CASE WHEN is_complete THEN 1 ELSE 0 END) AS complete FROM gold.fact_rounds WHERE {COURSE}"
        ))
        .await
    {
        Ok(t) => {
            let courses = g
                .read_one::<Count>(&format!("SELECT count(*) AS n FROM gold.dim_course WHERE {COURSE}"))
                .await
                .map(|c| c.n)
                .unwrap_or(0);
            p.cards.push(Card::new("courses", "Courses", fmt_int(courses)));
            round_cards(&mut p, t.rounds, t.complete, (&t.first_date, &t.last_date), "Date range (local round dates)");
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
    // Rows per table without a scan where the metadata knows them: a whole table's from its
    // snapshot summary, one course's from the manifests of a table partitioned by course (all
    // tables at once; each is a metadata read).
    let known = futures::future::join_all(ordered.iter().map(|(t, _)| async move {
        let by_course = g.columns(t).await.iter().any(|c| c == "course_id");
        let known = if by_course && !g.course.is_empty() {
            course_rows_from_manifests(g, t).await
        } else {
            rows_from_snapshot(g, t).await
        };
        (by_course, known)
    }))
    .await;
    // The others (one course's rows of a small per-course table that is not partitioned by
    // course) in one `count(*) … UNION ALL …` query: 13 separate queries at once took 100 ms
    // each on 2 cores, contending for the same threads, where one query plans them together.
    let to_count: Vec<String> = ordered
        .iter()
        .zip(&known)
        .enumerate()
        .filter(|(_, (_, (_, n)))| n.is_none())
        .map(|(i, ((t, _), (by_course, _)))| {
            let filter = if *by_course { format!(" WHERE {COURSE}") } else { String::new() };
            format!("SELECT CAST({i} AS BIGINT) AS i, count(*) AS n FROM {t}{filter}")
        })
        .collect();
    let counted: HashMap<usize, i64> = if to_count.is_empty() {
        HashMap::new()
    } else {
        match g.read::<IndexedCount>(&to_count.join(" UNION ALL ")).await {
            Ok(rows) => rows.into_iter().filter_map(|r| Some((usize::try_from(r.i).ok()?, r.n))).collect(),
            // Said once; those tables are left out of the list.
            Err(e) => {
                fail(&mut p, e);
                HashMap::new()
            }
        }
    };
    for (i, ((t, name), (by_course, known))) in ordered.into_iter().zip(known).enumerate() {
        let Some(n) = known.or_else(|| counted.get(&i).copied()) else { continue };
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
    let gold_total: i64 = table_rows.iter().map(|t| t.1).sum();
    p.cards.push(
        Card::new("gold_tables", "Gold tables", fmt_int(table_rows.len() as i64))
            .note(format!("{} rows", fmt_int(gold_total))),
    );

    // Courses.
    let mut s = Section::new("courses", "Courses");
    all_dates_note(g, &mut s);
    match g
        .read::<CourseSummary>(&format!(
            "SELECT course_id, likely_course_type, is_loop_course, rounds_observed, complete_rounds_observed, \
             total_rows, data_quality_score, first_round_start_ts, last_round_start_ts \
             FROM gold.dim_course WHERE {COURSE} ORDER BY course_id"
        ))
        .await
    {
        Ok(rows) => {
            let cats: Vec<String> = rows.iter().map(|r| r.course_id.clone()).collect();
            let as_f64 = |n: Option<i64>| n.map(|n| n as f64);
            let complete: Vec<Option<f64>> = rows.iter().map(|r| as_f64(r.complete_rounds_observed)).collect();
            let other: Vec<Option<f64>> = rows
                .iter()
                .map(|r| {
                    Some(as_f64(r.rounds_observed).unwrap_or(0.0) - as_f64(r.complete_rounds_observed).unwrap_or(0.0))
                })
                .collect();
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
                let score = r.data_quality_score;
                grid.rows.push(vec![
                    Cell::text(&r.course_id).link(format!("/lakehouse/course{}", filter_query(&r.course_id, g.dates))),
                    Cell::text(&r.likely_course_type),
                    Cell::text(if r.is_loop_course { "yes" } else { "no" }),
                    Cell::num(fmt_int(r.rounds_observed.unwrap_or(0))),
                    Cell::num(fmt_int(r.complete_rounds_observed.unwrap_or(0))),
                    Cell::num(fmt_int(r.total_rows)),
                    Cell::num(score.map(|s| fmt_num(s, 1)).unwrap_or_else(|| "—".into()))
                        .class(score.map(score_class).unwrap_or("")),
                    Cell::text(date_of(&r.first_round_start_ts)),
                    Cell::text(date_of(&r.last_round_start_ts)),
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
