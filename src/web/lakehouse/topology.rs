//! The course topology page (REFERENCE §6 "Course topology"): each course's nines and their
//! section ranges (`gold.course_topology`), the sections of each hole and a map of where their
//! fixes lie (`gold.course_section_summary`); and the pace-by-section heatmap the pace and course
//! pages show. Rows are read into the small read models below, by column name.

use std::collections::BTreeMap;

use super::common::{all_dates_note, blank_page, fail, no_data};
use super::data::{COURSE, Gold, ReadModel, read_model};
use super::{Card, Cell, Grid, Page, Section};
use crate::web::charts::{BarChart, Heatmap, MapPoint, PointMap, Series, fmt_int, fmt_num, fmt_pace};

read_model! {
    /// One nine (a unit of sections) of a course, from `gold.course_topology`.
    struct Nine {
        course_id: String,
        nine_number: i64,
        unit_name: String,
        section_start: i64,
        section_end: i64,
        holes_observed: i64,
        rounds_observed: i64,
    }
}

read_model! {
    /// One section of one hole of a course, from `gold.course_section_summary`.
    pub struct SectionStat {
        nine_number: Option<i64>,
        hole_number: i64,
        section_number: i64,
        rounds: i64,
        fix_count: i64,
        avg_pace_sec: Option<f64>,
        median_pace_sec: Option<f64>,
        avg_latitude: Option<f64>,
        avg_longitude: Option<f64>,
    }
}

impl SectionStat {
    /// `N2 · 7` (nine 2, hole 7), or `7` without a nine.
    fn hole_label(&self) -> String {
        match self.nine_number {
            Some(n) => format!("N{n} · {}", self.hole_number),
            None => self.hole_number.to_string(),
        }
    }
}

/// The sections of `course`, ordered by nine, hole and section.
pub async fn sections_of(g: &Gold, course: &str) -> Result<Vec<SectionStat>, String> {
    g.read_for::<SectionStat>(
        &format!(
            "SELECT {} FROM gold.course_section_summary WHERE {COURSE} \
             ORDER BY nine_number, hole_number, section_number",
            SectionStat::COLUMNS.join(", ")
        ),
        course,
    )
    .await
}

/// The course a one-course section shows: the filtered one, else the first (with a note).
pub async fn one_course(g: &Gold, s: &mut Section) -> Option<String> {
    if !g.course.is_empty() {
        return Some(g.course.clone());
    }
    let first = g.courses().await.into_iter().next();
    if let Some(c) = &first {
        s.note = format!("Showing {c}; choose a course above for another. ");
    } else {
        s.note = "No courses yet.".into();
    }
    first
}

pub async fn page(g: &Gold) -> Page {
    const T: &str = "Course topology";
    if !g.has_all(&["gold.course_topology", "gold.course_section_summary"]) {
        return no_data(T);
    }
    let mut p = blank_page(T);
    match g
        .read::<Nine>(&format!(
            "SELECT {} FROM gold.course_topology WHERE {COURSE} ORDER BY 1, 2",
            Nine::COLUMNS.join(", ")
        ))
        .await
    {
        Ok(nines) => {
            p.cards.push(Card::new("nines", "Nines", fmt_int(nines.len() as i64)));
            p.cards.push(Card::new(
                "sections",
                "Sections",
                fmt_int(nines.iter().map(|n| n.section_end - n.section_start + 1).sum()),
            ));
            p.sections.push(nines_section(&nines));
        }
        Err(e) => fail(&mut p, e),
    }
    let mut holes = Section::new("holes", "Sections per hole");
    let mut map = Section::new("map", "Map of the sections");
    if let Some(course) = one_course(g, &mut holes).await {
        map.note = holes.note.clone();
        match sections_of(g, &course).await {
            Ok(stats) => {
                holes_section(&course, &stats, &mut holes);
                map_section(&course, &stats, &mut map);
            }
            Err(e) => fail(&mut p, e),
        }
    }
    p.sections.push(holes);
    p.sections.push(map);
    for s in p.sections.iter_mut() {
        all_dates_note(g, s);
    }
    p
}

/// The nines of each course: a bar per nine of its sections, and the ranges as a table.
fn nines_section(nines: &[Nine]) -> Section {
    let mut s = Section::new("nines", "Nines and their section ranges");
    s.note = "A nine (unit) is a run of consecutive section numbers; holes 1–9 repeat on each nine of a facility \
              (gold.course_topology, from the fixes seen)."
        .into();
    let labels: Vec<String> = nines.iter().map(|n| format!("{} · {}", n.course_id, n.unit_name)).collect();
    s.charts.push(
        BarChart::new(
            "Sections per nine",
            "course · nine",
            "sections",
            labels,
            vec![Series::new(
                "sections",
                nines.iter().map(|n| Some((n.section_end - n.section_start + 1) as f64)).collect(),
            )],
        )
        .to_svg(),
    );
    let mut grid =
        Grid::new(&["course", "#nine", "unit", "#first section", "#last section", "#holes seen", "#rounds seen"]);
    for n in nines {
        grid.rows.push(vec![
            Cell::text(n.course_id.clone()),
            Cell::num(n.nine_number.to_string()),
            Cell::text(n.unit_name.clone()),
            Cell::num(n.section_start.to_string()),
            Cell::num(n.section_end.to_string()),
            Cell::num(fmt_int(n.holes_observed)),
            Cell::num(fmt_int(n.rounds_observed)),
        ]);
    }
    s.table = Some(grid);
    s
}

/// Per (nine, hole): its sections, first to last, and the fixes seen on it.
fn holes_section(course: &str, stats: &[SectionStat], s: &mut Section) {
    s.title = format!("Sections per hole — {course}");
    s.note.push_str("Sections seen on each hole of the course (gold.course_section_summary).");
    // (nine, hole) → (first section, last section, sections, fixes)
    type Span = (i64, i64, i64, i64);
    let mut per: BTreeMap<(Option<i64>, i64), Span> = BTreeMap::new();
    for st in stats {
        let e = per.entry((st.nine_number, st.hole_number)).or_insert((i64::MAX, i64::MIN, 0, 0));
        e.0 = e.0.min(st.section_number);
        e.1 = e.1.max(st.section_number);
        e.2 += 1;
        e.3 += st.fix_count;
    }
    let label = |nine: Option<i64>, hole: i64| match nine {
        Some(n) => format!("N{n} · {hole}"),
        None => hole.to_string(),
    };
    s.charts.push(
        BarChart::new(
            "Sections per hole",
            "nine · hole",
            "sections",
            per.keys().map(|(n, h)| label(*n, *h)).collect(),
            vec![Series::new("sections", per.values().map(|v| Some(v.2 as f64)).collect())],
        )
        .to_svg(),
    );
    let mut grid = Grid::new(&["#nine", "#hole", "#first section", "#last section", "#sections", "#fixes"]);
    for ((nine, hole), (lo, hi, n, fixes)) in &per {
        grid.rows.push(vec![
            Cell::num(nine.map(|n| n.to_string()).unwrap_or_else(|| "—".into())),
            Cell::num(hole.to_string()),
            Cell::num(lo.to_string()),
            Cell::num(hi.to_string()),
            Cell::num(n.to_string()),
            Cell::num(fmt_int(*fixes)),
        ]);
    }
    s.table = Some(grid);
}

/// The centroid of each section's fixes, on a map coloured by nine and labelled hole-section.
fn map_section(course: &str, stats: &[SectionStat], s: &mut Section) {
    s.title = format!("Map of the sections — {course}");
    s.note.push_str(
        "Each point is the average position of the fixes seen on one section, labelled hole-section and \
         coloured by nine; larger points had more fixes. Hover a point for its figures.",
    );
    let nines: Vec<Option<i64>> = {
        let mut v: Vec<Option<i64>> = stats.iter().map(|st| st.nine_number).collect();
        v.sort();
        v.dedup();
        v
    };
    let max_fixes = stats.iter().map(|st| st.fix_count).max().unwrap_or(1).max(1) as f64;
    let points: Vec<MapPoint> = stats
        .iter()
        .filter_map(|st| {
            Some(MapPoint {
                lat: st.avg_latitude?,
                lon: st.avg_longitude?,
                label: format!("{}-{}", st.hole_number, st.section_number),
                tip: format!(
                    "hole {} ({}), section {}: {} fixes, {} rounds",
                    st.hole_number,
                    st.hole_label(),
                    st.section_number,
                    fmt_int(st.fix_count),
                    fmt_int(st.rounds)
                ),
                group: nines.iter().position(|n| *n == st.nine_number).unwrap_or(0),
                weight: st.fix_count as f64 / max_fixes,
            })
        })
        .collect();
    let groups = nines.iter().map(|n| n.map(|n| format!("nine {n}")).unwrap_or_else(|| "no nine".into())).collect();
    s.charts.push(PointMap { title: format!("Section centroids of {course}"), points, groups }.to_svg());
    let mut grid = Grid::new(&["#nine", "#hole", "#section", "#latitude", "#longitude", "#fixes"]);
    for st in stats {
        grid.rows.push(vec![
            Cell::num(st.nine_number.map(|n| n.to_string()).unwrap_or_else(|| "—".into())),
            Cell::num(st.hole_number.to_string()),
            Cell::num(st.section_number.to_string()),
            Cell::num(st.avg_latitude.map(|x| fmt_num(x, 5)).unwrap_or_else(|| "—".into())),
            Cell::num(st.avg_longitude.map(|x| fmt_num(x, 5)).unwrap_or_else(|| "—".into())),
            Cell::num(fmt_int(st.fix_count)),
        ]);
    }
    s.table = Some(grid);
}

/// Pace by section: a heatmap of the average pace versus goal, holes down, the sections of each
/// hole across (1st, 2nd … of the hole), and the figures as a table.
pub async fn pace_by_section(g: &Gold, p: &mut Page) {
    let mut s = Section::new("by-section", "Pace by section");
    if !g.has("gold.course_section_summary") {
        return;
    }
    let Some(course) = one_course(g, &mut s).await else {
        p.sections.push(s);
        return;
    };
    s.title = format!("Pace by section — {course}");
    s.note.push_str(
        "Average pace versus goal of the fixes on each section (+ behind, red), holes down and the hole's \
         sections across in playing order (gold.course_section_summary).",
    );
    match sections_of(g, &course).await {
        Ok(stats) => {
            let mut rows: Vec<String> = Vec::new();
            let mut cells: Vec<Vec<Option<f64>>> = Vec::new();
            let mut last: Option<(Option<i64>, i64)> = None;
            for st in &stats {
                if last != Some((st.nine_number, st.hole_number)) {
                    rows.push(st.hole_label());
                    cells.push(Vec::new());
                    last = Some((st.nine_number, st.hole_number));
                }
                if let Some(row) = cells.last_mut() {
                    row.push(st.avg_pace_sec);
                }
            }
            let width = cells.iter().map(Vec::len).max().unwrap_or(0);
            for row in &mut cells {
                row.resize(width, None);
            }
            let known: Vec<f64> = stats.iter().filter_map(|st| st.avg_pace_sec).collect();
            let (min, max) = known.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            s.charts.push(
                Heatmap {
                    title: format!("Average pace vs goal by section — {course}"),
                    rows,
                    cols: (1..=width).map(|i| format!("section {i} of hole")).collect(),
                    values: cells,
                    min: if known.is_empty() { 0.0 } else { min },
                    max: if known.is_empty() { 1.0 } else { max },
                    high_is_bad: true,
                    fmt: fmt_pace,
                }
                .to_svg(),
            );
            let mut grid = Grid::new(&["#nine", "#hole", "#section", "#rounds", "#fixes", "#avg pace", "#median pace"]);
            for st in &stats {
                let pace = |x: Option<f64>| Cell::num(x.map(fmt_pace).unwrap_or_else(|| "—".into()));
                grid.rows.push(vec![
                    Cell::num(st.nine_number.map(|n| n.to_string()).unwrap_or_else(|| "—".into())),
                    Cell::num(st.hole_number.to_string()),
                    Cell::num(st.section_number.to_string()),
                    Cell::num(fmt_int(st.rounds)),
                    Cell::num(fmt_int(st.fix_count)),
                    pace(st.avg_pace_sec),
                    pace(st.median_pace_sec),
                ]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(p, e),
    }
    all_dates_note(g, &mut s);
    p.sections.push(s);
}
