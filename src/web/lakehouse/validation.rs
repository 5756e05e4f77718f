//! The round validation page (REFERENCE §6 "Round insights: Validation, Progression"): per course,
//! how many rounds pass each plausibility check, how rounds moved over the course (hole and
//! section steps, `gold.round_progression`), the rounds to review, and where rounds start.
//! Everything is keyed by round, so the date filter applies throughout.

use std::collections::{BTreeMap, BTreeSet};

use super::common::{blank_page, fail, no_data};
use super::data::{Gold, Row};
use super::{Card, Cell, Grid, Page, Section};
use crate::web::charts::{BarChart, GREEN, GREY, PALETTE, RED, Series, fmt_int, fmt_pct};

/// Round durations a round of each kind plausibly takes, in minutes (REFERENCE §6 Validation).
pub const NINE_HOLE_MINUTES: (i64, i64) = (45, 200);
pub const FULL_ROUND_MINUTES: (i64, i64) = (90, 400);
/// Fixes a round needs at least: 10, and one per hole it should have played.
pub const MIN_FIXES: i64 = 10;
/// Share of a round's fixes that must carry a pace.
pub const MIN_PACE_SHARE: f64 = 0.5;

/// The checks of one course's rounds.
struct CourseChecks {
    course_id: String,
    rounds: i64,
    complete: i64,
    duration_ok: i64,
    fixes_ok: i64,
    pace_ok: i64,
    clean: i64,
    minor: i64,
    review: i64,
    no_positions: i64,
}

impl CourseChecks {
    fn from_row(r: &Row) -> CourseChecks {
        CourseChecks {
            course_id: r.s(0),
            rounds: r.i(1),
            complete: r.i(2),
            duration_ok: r.i(3),
            fixes_ok: r.i(4),
            pace_ok: r.i(5),
            clean: r.i(6),
            minor: r.i(7),
            review: r.i(8),
            no_positions: r.i(9),
        }
    }

    fn pct(&self, n: i64) -> f64 {
        100.0 * n as f64 / self.rounds.max(1) as f64
    }
}

/// One figure of a course's checks.
type Count = fn(&CourseChecks) -> i64;

fn checks_sql() -> String {
    let (n0, n1) = NINE_HOLE_MINUTES;
    let (f0, f1) = FULL_ROUND_MINUTES;
    format!(
        "SELECT f.course_id, count(*), \
         sum(CASE WHEN f.is_complete THEN 1 ELSE 0 END), \
         sum(CASE WHEN (f.is_nine_hole AND f.round_duration_minutes BETWEEN {n0} AND {n1}) \
                    OR (NOT f.is_nine_hole AND f.round_duration_minutes BETWEEN {f0} AND {f1}) THEN 1 ELSE 0 END), \
         sum(CASE WHEN f.fix_count >= {MIN_FIXES} AND f.fix_count >= CASE WHEN f.is_nine_hole THEN 9 ELSE 18 END \
                  THEN 1 ELSE 0 END), \
         sum(CASE WHEN q.non_padding_rows > 0 \
                   AND CAST(q.non_padding_rows - q.n_missing_pace AS DOUBLE) >= {MIN_PACE_SHARE} * q.non_padding_rows \
                  THEN 1 ELSE 0 END), \
         sum(CASE WHEN p.progression_class = 'clean' THEN 1 ELSE 0 END), \
         sum(CASE WHEN p.progression_class = 'minor_issues' THEN 1 ELSE 0 END), \
         sum(CASE WHEN p.progression_class = 'needs_review' THEN 1 ELSE 0 END), \
         sum(CASE WHEN p.progression_class = 'no_positions' OR p.progression_class IS NULL THEN 1 ELSE 0 END) \
         FROM gold.fact_rounds f \
         LEFT JOIN gold.round_progression p ON p.course_id = f.course_id AND p.round_id = f.round_id \
         LEFT JOIN gold.round_fix_profile q ON q.course_id = f.course_id AND q.round_id = f.round_id \
         WHERE ($1 = '' OR f.course_id = $1) GROUP BY f.course_id ORDER BY f.course_id"
    )
}

pub async fn page(g: &Gold) -> Page {
    const T: &str = "Round validation";
    if !g.has_all(&["gold.fact_rounds", "gold.round_progression", "gold.round_fix_profile"]) {
        return no_data(T);
    }
    let mut p = blank_page(T);
    checks_section(g, &mut p).await;
    review_section(g, &mut p).await;
    start_holes_section(g, &mut p).await;
    p
}

/// Cards and the per-course share of rounds passing each check (also used by the course page).
pub async fn checks_section(g: &Gold, p: &mut Page) {
    let mut s = Section::new("checks", "Checks per course");
    let (n0, n1) = NINE_HOLE_MINUTES;
    let (f0, f1) = FULL_ROUND_MINUTES;
    s.note = format!(
        "Share of rounds passing each check: complete (the device marked the round complete); duration \
         ({n0}–{n1} min for a 9-hole round, {f0}–{f1} for a full one); fixes (at least {MIN_FIXES} and one per \
         hole); pace (at least {:.0} % of its fixes carry a pace); progression clean (no hole went backwards or \
         skipped, no section went backwards within a hole; gold.round_progression).",
        100.0 * MIN_PACE_SHARE
    );
    match g.rows(&checks_sql()).await {
        Ok(rows) => {
            let courses: Vec<CourseChecks> = rows.iter().map(CourseChecks::from_row).collect();
            let total = |f: fn(&CourseChecks) -> i64| courses.iter().map(f).sum::<i64>();
            let rounds = total(|c| c.rounds);
            let share = |n: i64| fmt_pct(100.0 * n as f64 / rounds.max(1) as f64);
            p.cards.push(Card::new("rounds", "Rounds", fmt_int(rounds)));
            let incomplete = rounds - total(|c| c.complete);
            p.cards.push(Card::new("incomplete", "Incomplete rounds", fmt_int(incomplete)).note(share(incomplete)));
            let review = total(|c| c.review);
            p.cards.push(Card::new("needs_review", "Rounds to review", fmt_int(review)).note(format!(
                "{} of rounds; {} with minor issues",
                share(review),
                fmt_int(total(|c| c.minor))
            )));
            let checks: [(&str, Count); 5] = [
                ("complete", |c| c.complete),
                ("duration", |c| c.duration_ok),
                ("fixes", |c| c.fixes_ok),
                ("pace", |c| c.pace_ok),
                ("progression clean", |c| c.clean),
            ];
            let series = checks
                .iter()
                .map(|(name, f)| Series::new(*name, courses.iter().map(|c| Some(c.pct(f(c)))).collect()))
                .collect();
            s.charts.push(
                BarChart::new(
                    "Rounds passing each check (%)",
                    "course",
                    "% of rounds",
                    courses.iter().map(|c| c.course_id.clone()).collect(),
                    series,
                )
                .with_fmt(|x| format!("{x:.0} %"))
                .to_svg(),
            );
            let mut progression = Section::new("progression", "Progression over the course");
            progression.note = "Rounds by how they moved from fix to fix: clean, minor issues (at most 2 hole and 5 \
                                section anomalies), needs review (more), no positions (fewer than two fixes with \
                                a hole and a section)."
                .into();
            let classes: [(&str, Count); 4] = [
                ("clean", |c| c.clean),
                ("minor issues", |c| c.minor),
                ("needs review", |c| c.review),
                ("no positions", |c| c.no_positions),
            ];
            progression.charts.push(
                BarChart::new(
                    "Rounds by progression class",
                    "course",
                    "rounds",
                    courses.iter().map(|c| c.course_id.clone()).collect(),
                    classes
                        .iter()
                        .map(|(name, f)| Series::new(*name, courses.iter().map(|c| Some(f(c) as f64)).collect()))
                        .collect(),
                )
                .stacked()
                .with_colors(vec![GREEN, PALETTE[5], RED, GREY])
                .to_svg(),
            );
            let mut grid = Grid::new(&[
                "course",
                "#rounds",
                "#complete",
                "#duration ok",
                "#fixes ok",
                "#pace ok",
                "#progression clean",
            ]);
            let mut pgrid =
                Grid::new(&["course", "#rounds", "#clean", "#minor issues", "#needs review", "#no positions"]);
            for c in &courses {
                let pc = |n: i64| Cell::num(fmt_pct(c.pct(n)));
                grid.rows.push(vec![
                    Cell::text(c.course_id.clone()),
                    Cell::num(fmt_int(c.rounds)),
                    pc(c.complete),
                    pc(c.duration_ok),
                    pc(c.fixes_ok),
                    pc(c.pace_ok),
                    pc(c.clean),
                ]);
                pgrid.rows.push(vec![
                    Cell::text(c.course_id.clone()),
                    Cell::num(fmt_int(c.rounds)),
                    Cell::num(fmt_int(c.clean)),
                    Cell::num(fmt_int(c.minor)),
                    Cell::num(fmt_int(c.review)).class(if c.review > 0 { "warn" } else { "" }),
                    Cell::num(fmt_int(c.no_positions)),
                ]);
            }
            s.table = Some(grid);
            progression.table = Some(pgrid);
            p.sections.push(s);
            p.sections.push(progression);
        }
        Err(e) => {
            fail(p, e);
            p.sections.push(s);
        }
    }
}

/// The rounds with the most progression anomalies, and incomplete rounds, worst first.
async fn review_section(g: &Gold, p: &mut Page) {
    const LIMIT: usize = 50;
    let mut s = Section::new("review", "Rounds to review");
    s.note = format!(
        "The {LIMIT} rounds with the most anomalies (holes backwards or skipped, sections backwards within a \
         hole), then incomplete ones; local round date."
    );
    match g
        .rows(&format!(
            "SELECT f.course_id, f.round_id, CAST(f.round_date_local AS VARCHAR), f.holes_played, f.fix_count, \
             p.hole_backward_steps, p.hole_skip_steps, p.section_backward_steps, p.progression_class, f.is_complete \
             FROM gold.fact_rounds f JOIN gold.round_progression p \
               ON p.course_id = f.course_id AND p.round_id = f.round_id \
             WHERE ($1 = '' OR f.course_id = $1) \
               AND (p.progression_class IN ('needs_review', 'minor_issues') OR NOT f.is_complete) \
             ORDER BY p.hole_backward_steps + p.hole_skip_steps + p.section_backward_steps DESC, \
                      f.is_complete, f.course_id, f.round_id \
             LIMIT {LIMIT}"
        ))
        .await
    {
        Ok(rows) => {
            let mut grid = Grid::new(&[
                "course",
                "round",
                "date (local)",
                "#holes",
                "#fixes",
                "#holes back",
                "#holes skipped",
                "#sections back",
                "progression",
                "complete",
            ]);
            for r in &rows {
                let class = r.s(8);
                grid.rows.push(vec![
                    Cell::text(r.s(0)),
                    Cell::text(r.s(1)).class("mono"),
                    Cell::text(r.s(2)),
                    Cell::num(fmt_int(r.i(3))),
                    Cell::num(fmt_int(r.i(4))),
                    Cell::num(fmt_int(r.i(5))),
                    Cell::num(fmt_int(r.i(6))),
                    Cell::num(fmt_int(r.i(7))),
                    Cell::text(class.replace('_', " ")).class(if class == "needs_review" { "bad" } else { "" }),
                    Cell::text(if r.b(9) { "yes" } else { "no" }).class(if r.b(9) { "" } else { "warn" }),
                ]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(p, e),
    }
    p.sections.push(s);
}

/// Where rounds start: the start-hole mix per course (a shotgun start or a back-nine start shows here).
pub async fn start_holes_section(g: &Gold, p: &mut Page) {
    let mut s = Section::new("start-holes", "Start holes");
    s.note = "Rounds by the hole they started on (gold.fact_rounds.start_hole).".into();
    match g
        .rows(
            "SELECT course_id, COALESCE(CAST(start_hole AS VARCHAR), 'unknown'), count(*), \
             sum(CASE WHEN is_complete THEN 1 ELSE 0 END) FROM gold.fact_rounds \
             WHERE ($1 = '' OR course_id = $1) GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await
    {
        Ok(rows) => {
            let courses: BTreeSet<String> = rows.iter().map(|r| r.s(0)).collect();
            let mut holes: Vec<String> = rows.iter().map(|r| r.s(1)).collect::<BTreeSet<_>>().into_iter().collect();
            holes.sort_by_key(|h| h.parse::<i64>().unwrap_or(i64::MAX));
            let mut per: BTreeMap<(String, String), f64> = BTreeMap::new();
            for r in &rows {
                per.insert((r.s(0), r.s(1)), r.f(2).unwrap_or(0.0));
            }
            let series = holes
                .iter()
                .map(|h| {
                    Series::new(
                        format!("hole {h}"),
                        courses.iter().map(|c| Some(*per.get(&(c.clone(), h.clone())).unwrap_or(&0.0))).collect(),
                    )
                })
                .collect();
            s.charts.push(
                BarChart::new("Rounds by start hole", "course", "rounds", courses.iter().cloned().collect(), series)
                    .stacked()
                    .to_svg(),
            );
            let totals: BTreeMap<String, i64> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.s(0)).or_insert(0) += r.i(2);
                m
            });
            let mut grid = Grid::new(&["course", "start hole", "#rounds", "#share", "#complete"]);
            for r in &rows {
                let total = totals.get(&r.s(0)).copied().unwrap_or(0).max(1);
                grid.rows.push(vec![
                    Cell::text(r.s(0)),
                    Cell::text(r.s(1)),
                    Cell::num(fmt_int(r.i(2))),
                    Cell::num(fmt_pct(100.0 * r.i(2) as f64 / total as f64)),
                    Cell::num(fmt_int(r.i(3))),
                ]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(p, e),
    }
    p.sections.push(s);
}
