//! The pace page: pace by course, by hole with the bottleneck threshold, loop courses' second
//! nine against the first, and pace by section (`super::topology`).

use std::collections::{BTreeMap, BTreeSet};

use super::common::{blank_page, fail, no_data};
use super::data::{COURSE, Gold, read_model};
use super::{Card, Cell, Grid, Page, Section};
use crate::web::charts::{BarChart, GREEN, GREY, PALETTE, RED, Series, fmt_duration, fmt_int, fmt_pace, fmt_pct};

/// A hole is a bottleneck when groups spend more than this times the course's average time per
/// hole on it (and fast below `FAST`).
pub const BOTTLENECK: f64 = 1.15;
pub const FAST: f64 = 0.85;

read_model! {
    /// The pace of one course's rounds.
    struct CoursePace {
        course_id: String,
        rounds: i64,
        avg_pace: Option<f64>,
        best_pace: Option<f64>,
        worst_pace: Option<f64>,
        avg_pace_gap: Option<f64>,
    }
}

read_model! {
    /// The average pace of all the filter's rounds.
    struct AllPace { avg_pace: Option<f64> }
}

read_model! {
    /// The time spent and the pace on one hole of a course.
    struct HolePace { hole_number: String, rounds: i64, duration: Option<f64>, pace: Option<f64>, worst: Option<f64> }
}

read_model! {
    /// The time spent and the pace on one hole of a loop course, on one of its nines.
    struct LoopHole { course_id: String, hole_number: i64, nine_number: i64, duration: Option<f64>, pace: Option<f64> }
}

pub async fn page(g: &Gold) -> Page {
    const T: &str = "Pace of play";
    if !g.has_all(&["gold.pace_summary_by_round", "gold.course_hole_pace_daily", "gold.dim_course"]) {
        return no_data(T);
    }
    let mut p = blank_page(T);

    // Pace by course.
    let mut s = Section::new("by-course", "Pace by course");
    s.note =
        "Average pace of a round versus its goal time (from gold.pace_summary_by_round): + behind, − ahead.".into();
    match g
        .read::<CoursePace>(&format!(
            "SELECT course_id, count(*) AS rounds, avg(avg_pace) AS avg_pace, min(avg_pace) AS best_pace, \
             max(avg_pace) AS worst_pace, avg(avg_pace_gap) AS avg_pace_gap \
             FROM gold.pace_summary_by_round WHERE {COURSE} GROUP BY course_id ORDER BY course_id"
        ))
        .await
    {
        Ok(rows) => {
            let all = g
                .read::<AllPace>(&format!(
                    "SELECT avg(avg_pace) AS avg_pace, count(*) AS rounds FROM gold.pace_summary_by_round \
                     WHERE {COURSE}"
                ))
                .await
                .ok()
                .and_then(|r| r.first().and_then(|r| r.avg_pace));
            if let Some(avg) = all {
                p.cards.push(
                    Card::new("avg_pace", "Average pace vs goal", fmt_pace(avg)).note("minutes:seconds per round"),
                );
            }
            let mut chart = BarChart::new(
                "Average pace per round by course (min:sec vs goal)",
                "course",
                "pace",
                rows.iter().map(|r| r.course_id.clone()).collect(),
                vec![Series::new("pace", rows.iter().map(|r| r.avg_pace).collect())],
            )
            .with_time_fmt(fmt_pace);
            if let Some(avg) = all {
                chart = chart.line(avg, format!("all courses {}", fmt_pace(avg)), GREY);
            }
            s.charts.push(chart.to_svg());
            let mut grid =
                Grid::new(&["course", "#rounds", "#avg pace", "#best round", "#worst round", "#avg pace gap"]);
            for r in &rows {
                let pc = |x: Option<f64>| Cell::num(x.map(fmt_pace).unwrap_or_else(|| "—".into()));
                grid.rows.push(vec![
                    Cell::text(&r.course_id),
                    Cell::num(fmt_int(r.rounds)),
                    pc(r.avg_pace),
                    pc(r.best_pace),
                    pc(r.worst_pace),
                    pc(r.avg_pace_gap),
                ]);
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
            .read_for::<HolePace>(
                // gold.course_hole_pace_daily: a few rows per hole and day instead of one per
                // round and hole; a hole's rounds are counted once per day over its nines.
                &format!(
                    "SELECT a.hole_number, r.rounds, a.duration, a.pace, a.worst FROM \
                     (SELECT hole_number, CAST(sum(duration_ms_sum) AS DOUBLE) / sum(duration_count) / 1000.0 \
                       AS duration, CAST(sum(pace_ms_sum) AS DOUBLE) / NULLIF(sum(pace_count), 0) / 1000.0 AS pace, \
                       max(max_pace_sec) AS worst \
                      FROM gold.course_hole_pace_daily WHERE {COURSE} GROUP BY hole_number) a \
                     JOIN (SELECT hole_number, sum(hole_rounds) AS rounds FROM (SELECT DISTINCT round_date_local, \
                       hole_number, hole_rounds FROM gold.course_hole_pace_daily WHERE {COURSE}) GROUP BY hole_number) r \
                     ON r.hole_number = a.hole_number ORDER BY a.hole_number"
                ),
                &course,
            )
            .await
        {
            Ok(rows) => {
                let times: Vec<Option<f64>> = rows.iter().map(|r| r.duration).collect();
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
                let holes: Vec<String> = rows.iter().map(|r| r.hole_number.clone()).collect();
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
                        vec![Series::new("pace", rows.iter().map(|r| r.pace).collect())],
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
                        Cell::text(&r.hole_number),
                        Cell::num(fmt_int(r.rounds)),
                        Cell::num(t.map(fmt_duration).unwrap_or_else(|| "—".into())),
                        Cell::num(t.map(|t| fmt_pct(100.0 * t / avg.max(1e-9))).unwrap_or_else(|| "—".into())),
                        Cell::num(r.pace.map(fmt_pace).unwrap_or_else(|| "—".into())),
                        Cell::num(r.worst.map(fmt_pace).unwrap_or_else(|| "—".into())),
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
              on loop 1 and loop 2, from gold.course_hole_pace_daily."
        .into();
    let rows = match g
        .read::<LoopHole>(
            "SELECT h.course_id, h.hole_number, h.nine_number, \
             CAST(sum(h.duration_ms_sum) AS DOUBLE) / sum(h.duration_count) / 1000.0 AS duration, \
             CAST(sum(h.pace_ms_sum) AS DOUBLE) / NULLIF(sum(h.pace_count), 0) / 1000.0 AS pace, sum(h.rounds) \
             FROM gold.course_hole_pace_daily h JOIN gold.dim_course c ON c.course_id = h.course_id \
             WHERE c.is_loop_course AND h.multi_nine AND ($1 = '' OR h.course_id = $1) \
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
    let mut by_course: BTreeMap<String, Vec<&LoopHole>> = BTreeMap::new();
    for r in &rows {
        by_course.entry(r.course_id.clone()).or_default().push(r);
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
        let nines: BTreeSet<i64> = rows.iter().map(|r| r.nine_number).collect();
        let holes: BTreeSet<i64> = rows.iter().map(|r| r.hole_number).collect();
        let nines: Vec<i64> = nines.into_iter().take(2).collect();
        let at = |hole: i64, nine: i64| rows.iter().find(|r| r.hole_number == hole && r.nine_number == nine);
        let series = nines
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Series::new(
                    format!("loop {}", i + 1),
                    holes.iter().map(|h| at(*h, *n).and_then(|r| r.duration)).collect(),
                )
            })
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
                let (a, b) = (at(*h, first).and_then(|r| r.duration), at(*h, second).and_then(|r| r.duration));
                let delta = a.zip(b).map(|(a, b)| b - a);
                grid.rows.push(vec![
                    Cell::text(course.clone()),
                    Cell::text(h.to_string()),
                    Cell::num(a.map(fmt_duration).unwrap_or_else(|| "—".into())),
                    Cell::num(b.map(fmt_duration).unwrap_or_else(|| "—".into())),
                    Cell::num(delta.map(fmt_pace).unwrap_or_else(|| "—".into()))
                        .class(if delta.is_some_and(|d| d > 0.0) { "bad" } else { "good" }),
                    Cell::num(at(*h, first).and_then(|r| r.pace).map(fmt_pace).unwrap_or_else(|| "—".into())),
                    Cell::num(at(*h, second).and_then(|r| r.pace).map(fmt_pace).unwrap_or_else(|| "—".into())),
                ]);
            }
        }
    }
    if !grid.rows.is_empty() {
        s.table = Some(grid);
    }
    p.sections.push(s);
}
