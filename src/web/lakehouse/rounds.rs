//! The rounds page: rounds by weekday and month (local), when people play (`super::course`),
//! the round-length mix and durations with IQR outliers.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::scalar::ScalarValue;

use super::common::{WEEKDAYS, blank_page, fail, iqr_bounds, median, no_data};
use super::data::{COURSE, Gold, read_model};
use super::{Card, Cell, Grid, Page, Section};
use crate::web::charts::{BarChart, Histogram, LineChart, Series, fmt_axis, fmt_duration, fmt_int, fmt_pct};

read_model! {
    /// The rounds of one course on one weekday (`wd`, ISO; 0 = unknown).
    struct WeekdayRounds { course_id: String, wd: i64, rounds: Option<f64> }
}

read_model! {
    /// The rounds of one course in one month (`month`, its first day; 1900-01-01 = unknown).
    struct MonthRounds { course_id: String, month: String, n: Option<f64> }
}

read_model! {
    /// The rounds of one course of one length.
    struct LengthRounds { course_id: String, round_length: String, rounds: Option<f64> }
}

read_model! {
    /// The duration of one round.
    struct RoundDuration { round_duration_minutes: Option<f64> }
}

read_model! {
    /// A round whose duration is an outlier.
    struct Outlier { course_id: String, round_id: String, round_duration_minutes: Option<f64>, round_length: String }
}

pub async fn page(g: &Gold) -> Page {
    const T: &str = "Rounds";
    if !g.has_all(&["gold.fact_rounds", "gold.course_rounds_by_weekday", "gold.course_rounds_by_month"]) {
        return no_data(T);
    }
    let mut p = blank_page(T);

    // By weekday (ISO, Monday first), one series per course.
    let mut s = Section::new("weekday", "Rounds by weekday");
    s.note = "Weekday of the round's first fix in the course's local time, ISO: Monday = 1 … Sunday = 7 \
              (gold.course_rounds_by_weekday; with a date filter, the rounds of gold.fact_rounds in the range)."
        .into();
    let sql = if g.dated() {
        format!(
            "SELECT course_id, COALESCE(round_weekday, 0) AS wd, count(*) AS rounds FROM gold.fact_rounds \
             WHERE {COURSE} \
             GROUP BY course_id, COALESCE(round_weekday, 0) ORDER BY course_id, wd"
        )
    } else {
        format!(
            "SELECT course_id, weekday_number AS wd, sum(rounds) AS rounds FROM gold.course_rounds_by_weekday \
             WHERE {COURSE} \
             GROUP BY course_id, weekday_number ORDER BY course_id, weekday_number"
        )
    };
    match g.read::<WeekdayRounds>(&sql).await {
        Ok(rows) => {
            let mut per: BTreeMap<String, [f64; 8]> = BTreeMap::new();
            for r in &rows {
                let wd = r.wd.clamp(0, 7) as usize;
                per.entry(r.course_id.clone()).or_insert([0.0; 8])[wd] += r.rounds.unwrap_or(0.0);
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
    match g.read::<MonthRounds>(&sql).await {
        Ok(rows) => {
            let months: BTreeSet<String> = rows.iter().map(|r| r.month.clone()).collect();
            let months: Vec<String> = months.into_iter().collect();
            let label = |m: &str| {
                if m.starts_with("1900") { "unknown".to_string() } else { m.get(..7).unwrap_or(m).to_string() }
            };
            let mut per: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
            for r in &rows {
                *per.entry(r.course_id.clone()).or_default().entry(r.month.clone()).or_insert(0.0) +=
                    r.n.unwrap_or(0.0);
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
    // Without a date filter, the per-(course, ingest date, …) counts of gold.course_round_calendar
    // add up to the same figures as grouping every round.
    let table = if g.dated() || !g.has("gold.course_round_calendar") {
        "SELECT course_id, round_length, count(*) AS rounds FROM gold.fact_rounds"
    } else {
        "SELECT course_id, round_length, sum(rounds) AS rounds FROM gold.course_round_calendar"
    };
    match g
        .read::<LengthRounds>(&format!("{table} WHERE {COURSE} GROUP BY course_id, round_length ORDER BY course_id"))
        .await
    {
        Ok(rows) => {
            let courses: Vec<String> =
                rows.iter().map(|r| r.course_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
            let lengths = ["9", "18", "27", "unknown"];
            let get = |c: &str, l: &str| {
                rows.iter().find(|r| r.course_id == c && r.round_length == l).map(|r| r.rounds.unwrap_or(0.0))
            };
            let series = lengths
                .iter()
                .filter(|l| rows.iter().any(|r| r.round_length == **l))
                .map(|l| {
                    Series::new(format!("{l} holes"), courses.iter().map(|c| Some(get(c, l).unwrap_or(0.0))).collect())
                })
                .collect();
            s.charts.push(
                BarChart::new("Rounds by length", "course", "rounds", courses.clone(), series).stacked().to_svg(),
            );
            let total: f64 = rows.iter().filter_map(|r| r.rounds).sum();
            let mut grid = Grid::new(&["length", "#rounds", "#share"]);
            for l in lengths {
                let n: f64 = rows.iter().filter(|r| r.round_length == l).filter_map(|r| r.rounds).sum();
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
    // The durations alone (one number per round) for the statistics; then only the outliers
    // shown (at most 50) with their round ids.
    match g
        .read::<RoundDuration>(&format!(
            "SELECT round_duration_minutes FROM gold.fact_rounds WHERE {COURSE} AND round_duration_minutes > 0 \
             ORDER BY round_duration_minutes"
        ))
        .await
    {
        Ok(rows) => {
            let mins: Vec<f64> = rows.iter().filter_map(|r| r.round_duration_minutes).collect();
            let bounds = iqr_bounds(&mins);
            let n_outliers = match bounds {
                Some((l, u)) => mins.iter().filter(|&&m| m < l || m > u).count(),
                None => 0,
            };
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
                Card::new("outliers", "Outliers", fmt_int(n_outliers as i64))
                    .note(fmt_pct(100.0 * n_outliers as f64 / mins.len().max(1) as f64)),
            );
            s.charts.push(
                Histogram {
                    title: "Round duration (minutes)".into(),
                    x_label: "minutes".into(),
                    values: mins,
                    bins: 30,
                    bounds,
                    fmt: fmt_axis,
                }
                .to_svg(),
            );
            if let (Some((l, u)), true) = (bounds, n_outliers > 0) {
                let listed = g
                    .read_bound::<Outlier>(
                        &format!(
                            "SELECT course_id, round_id, round_duration_minutes, round_length FROM gold.fact_rounds \
                             WHERE {COURSE} AND round_duration_minutes > 0 \
                               AND (round_duration_minutes < $2 OR round_duration_minutes > $3) \
                             ORDER BY round_duration_minutes, course_id, round_id LIMIT 50"
                        ),
                        vec![ScalarValue::Float64(Some(l)), ScalarValue::Float64(Some(u))],
                    )
                    .await;
                match listed {
                    Ok(outliers) => {
                        let mut grid = Grid::new(&["course", "round", "length", "#duration", "kind"]);
                        for r in &outliers {
                            let m = r.round_duration_minutes.unwrap_or(0.0);
                            let kind = if m < l { "too short" } else { "too long" };
                            grid.rows.push(vec![
                                Cell::text(&r.course_id),
                                Cell::text(&r.round_id).class("mono"),
                                Cell::text(&r.round_length),
                                Cell::num(fmt_duration(m * 60.0)),
                                Cell::text(kind).class("bad"),
                            ]);
                        }
                        s.table = Some(grid);
                    }
                    Err(e) => fail(&mut p, e),
                }
            }
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);
    p
}
