//! The round validation page (REFERENCE §6 "Round insights: Validation, Progression"): per course,
//! how many rounds pass each plausibility check, how rounds moved over the course (hole and
//! section steps, `gold.round_progression`), the rounds to review, and where rounds start. The
//! checks and the review list read `gold.round_validation` (what they need, one row per round);
//! everything is keyed by round, so the date filter applies throughout.

use std::collections::{BTreeMap, BTreeSet};

use super::common::{blank_page, fail, no_data};
use super::data::{Gold, read_model};
use super::{Card, Cell, Grid, Page, Section};
use crate::web::charts::{BarChart, GREEN, GREY, PALETTE, RED, Series, fmt_int, fmt_pct};

/// Round durations a round of each kind plausibly takes, in minutes (REFERENCE §6 Validation).
pub const NINE_HOLE_MINUTES: (i64, i64) = (45, 200);
pub const FULL_ROUND_MINUTES: (i64, i64) = (90, 400);
/// Fixes a round needs at least: 10, and one per hole it should have played.
pub const MIN_FIXES: i64 = 10;
/// Share of a round's fixes that must carry a pace.
pub const MIN_PACE_SHARE: f64 = 0.5;

read_model! {
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
}

read_model! {
    /// A round to review, with its progression anomalies.
    struct ReviewRound {
        course_id: String,
        round_id: String,
        round_date: String,
        holes_played: i64,
        fix_count: i64,
        hole_backward_steps: i64,
        hole_skip_steps: i64,
        section_backward_steps: i64,
        progression_class: String,
        is_complete: bool,
    }
}

read_model! {
    /// The rounds of one course that started on one hole (`start_hole`, or `unknown`).
    struct StartHole { course_id: String, start_hole: String, rounds: i64, complete: i64 }
}

impl CourseChecks {
    fn pct(&self, n: i64) -> f64 {
        100.0 * n as f64 / self.rounds.max(1) as f64
    }
}

/// One figure of a course's checks.
type Count = fn(&CourseChecks) -> i64;

/// The checks per course, from `gold.round_validation` (one row per round with what they read).
fn checks_sql() -> String {
    let (n0, n1) = NINE_HOLE_MINUTES;
    let (f0, f1) = FULL_ROUND_MINUTES;
    format!(
        "SELECT course_id, count(*) AS rounds, \
         sum(CASE WHEN is_complete THEN 1 ELSE 0 END) AS complete, \
         sum(CASE WHEN (is_nine_hole AND round_duration_minutes BETWEEN {n0} AND {n1}) \
                    OR (NOT is_nine_hole AND round_duration_minutes BETWEEN {f0} AND {f1}) THEN 1 ELSE 0 END) \
           AS duration_ok, \
         sum(CASE WHEN fix_count >= {MIN_FIXES} AND fix_count >= CASE WHEN is_nine_hole THEN 9 ELSE 18 END \
                  THEN 1 ELSE 0 END) AS fixes_ok, \
         sum(CASE WHEN non_padding_rows > 0 \
                   AND CAST(non_padding_rows - n_missing_pace AS DOUBLE) >= {MIN_PACE_SHARE} * non_padding_rows \
                  THEN 1 ELSE 0 END) AS pace_ok, \
         sum(CASE WHEN progression_class = 'clean' THEN 1 ELSE 0 END) AS clean, \
         sum(CASE WHEN progression_class = 'minor_issues' THEN 1 ELSE 0 END) AS minor, \
         sum(CASE WHEN progression_class = 'needs_review' THEN 1 ELSE 0 END) AS review, \
         sum(CASE WHEN progression_class = 'no_positions' OR progression_class IS NULL THEN 1 ELSE 0 END) \
           AS no_positions \
         FROM gold.round_validation \
         WHERE ($1 = '' OR course_id = $1) GROUP BY course_id ORDER BY course_id"
    )
}

pub async fn page(g: &Gold) -> Page {
    const T: &str = "Round validation";
    if !g.has_all(&["gold.fact_rounds", "gold.round_validation"]) {
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
    if !g.has("gold.round_validation") {
        return; // a lake whose gold predates the model: the next gold run builds it
    }
    let mut s = Section::new("checks", "Checks per course");
    let (n0, n1) = NINE_HOLE_MINUTES;
    let (f0, f1) = FULL_ROUND_MINUTES;
    s.note = format!(
        "Share of rounds passing each check: complete (the device marked the round complete); duration \
         ({n0}–{n1} min for a 9-hole round, {f0}–{f1} for a full one); fixes (at least {MIN_FIXES} and one per \
         hole); pace (at least {:.0} % of its fixes carry a pace); progression clean (no hole went backwards or \
         skipped, no section went backwards within a hole). One row per round in gold.round_validation \
         (gold.fact_rounds, round_fix_profile and round_progression).",
        100.0 * MIN_PACE_SHARE
    );
    match g.read::<CourseChecks>(&checks_sql()).await {
        Ok(courses) => {
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
        .read::<ReviewRound>(&format!(
            "SELECT course_id, round_id, CAST(round_date_local AS VARCHAR) AS round_date, holes_played, \
             fix_count, hole_backward_steps, hole_skip_steps, section_backward_steps, progression_class, \
             is_complete \
             FROM gold.round_validation \
             WHERE ($1 = '' OR course_id = $1) AND progression_class IS NOT NULL \
               AND (progression_class IN ('needs_review', 'minor_issues') OR NOT is_complete) \
             ORDER BY hole_backward_steps + hole_skip_steps + section_backward_steps DESC, \
                      is_complete, course_id, round_id \
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
                let class = &r.progression_class;
                grid.rows.push(vec![
                    Cell::text(&r.course_id),
                    Cell::text(&r.round_id).class("mono"),
                    Cell::text(&r.round_date),
                    Cell::num(fmt_int(r.holes_played)),
                    Cell::num(fmt_int(r.fix_count)),
                    Cell::num(fmt_int(r.hole_backward_steps)),
                    Cell::num(fmt_int(r.hole_skip_steps)),
                    Cell::num(fmt_int(r.section_backward_steps)),
                    Cell::text(class.replace('_', " ")).class(if class == "needs_review" { "bad" } else { "" }),
                    Cell::text(if r.is_complete { "yes" } else { "no" }).class(if r.is_complete { "" } else { "warn" }),
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
    s.note = "Rounds by the hole they started on (gold.fact_rounds.start_hole; without a date filter, their counts \
              per course and ingest date in gold.course_start_coverage)."
        .into();
    // Without a date filter the per-(course, ingest date, start hole) counts add up to the same
    // figures as grouping every round (gold.course_start_coverage has no round date to filter by).
    let counts = if g.dated() || !g.has("gold.course_start_coverage") {
        "count(*) AS rounds, sum(CASE WHEN is_complete THEN 1 ELSE 0 END) AS complete FROM gold.fact_rounds"
    } else {
        "sum(rounds) AS rounds, sum(complete_rounds) AS complete FROM gold.course_start_coverage"
    };
    match g
        .read::<StartHole>(&format!(
            "SELECT course_id, COALESCE(CAST(start_hole AS VARCHAR), 'unknown') AS start_hole, {counts} \
             WHERE ($1 = '' OR course_id = $1) GROUP BY 1, 2 ORDER BY 1, 2"
        ))
        .await
    {
        Ok(rows) => {
            let courses: BTreeSet<String> = rows.iter().map(|r| r.course_id.clone()).collect();
            let mut holes: Vec<String> =
                rows.iter().map(|r| r.start_hole.clone()).collect::<BTreeSet<_>>().into_iter().collect();
            holes.sort_by_key(|h| h.parse::<i64>().unwrap_or(i64::MAX));
            let mut per: BTreeMap<(String, String), f64> = BTreeMap::new();
            for r in &rows {
                per.insert((r.course_id.clone(), r.start_hole.clone()), r.rounds as f64);
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
                *m.entry(r.course_id.clone()).or_insert(0) += r.rounds;
                m
            });
            let mut grid = Grid::new(&["course", "start hole", "#rounds", "#share", "#complete"]);
            for r in &rows {
                let total = totals.get(&r.course_id).copied().unwrap_or(0).max(1);
                grid.rows.push(vec![
                    Cell::text(&r.course_id),
                    Cell::text(&r.start_hole),
                    Cell::num(fmt_int(r.rounds)),
                    Cell::num(fmt_pct(100.0 * r.rounds as f64 / total as f64)),
                    Cell::num(fmt_int(r.complete)),
                ]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(p, e),
    }
    p.sections.push(s);
}
