//! The course page: one course with its profile (dags/courses.toml via `gold.dim_course_profile`
//! and `gold.dim_course`), its rounds, when people play (local weekday × hour), its layout, pace
//! by section and validation; without a course, the list of courses. Also the play-patterns
//! heatmap the rounds page shows.

use super::common::{WEEKDAYS, blank_page, fail, no_data, round_cards};
use super::data::{Gold, ReadModel, read_model};
use super::{Card, Cell, Grid, Page, Section, filter_query};
use crate::web::charts::{BarChart, Heatmap, Series, fmt_int, fmt_pace, fmt_pct};

read_model! {
    /// A course as `gold.dim_course` describes it, with its profile's fields.
    struct Course {
        course_id: String,
        course_name: String,
        timezone: String,
        profile_course_type: String,
        likely_course_type: String,
        volume_profile: String,
        peak_season_start_month: Option<f64>,
        peak_season_end_month: Option<f64>,
        is_loop_course: bool,
        profile_missing: bool,
        rounds_observed: i64,
        unit_count: i64,
        data_quality_score: Option<f64>,
    }
}

read_model! {
    /// The rounds of the course, for its cards.
    struct RoundTotals { rounds: i64, first_date: String, last_date: String, avg_pace: Option<f64>, complete: i64 }
}

read_model! {
    /// The rounds that started on one local weekday and hour.
    struct WeekdayHour { round_weekday: i64, round_hour_local: i64, rounds: i64 }
}

impl Course {
    /// The first and last month of the peak season, when the profile gives both.
    fn peak_season(&self) -> Option<(i64, i64)> {
        self.peak_season_start_month.zip(self.peak_season_end_month).map(|(a, b)| (a as i64, b as i64))
    }

    fn kind(&self) -> String {
        if !self.profile_course_type.is_empty() {
            self.profile_course_type.clone()
        } else if !self.likely_course_type.is_empty() {
            format!("{} (inferred)", self.likely_course_type)
        } else {
            "—".into()
        }
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn month(m: i64) -> &'static str {
    MONTHS.get((m - 1).clamp(0, 11) as usize).copied().unwrap_or("?")
}

pub async fn page(g: &Gold) -> Page {
    const T: &str = "Course";
    if !g.has_all(&["gold.dim_course", "gold.fact_rounds"]) {
        return no_data(T);
    }
    let mut p = blank_page(T);
    let courses = match g
        .read::<Course>(&format!(
            "SELECT {} FROM gold.dim_course WHERE ($1 = '' OR course_id = $1) ORDER BY course_id",
            Course::COLUMNS.join(", ")
        ))
        .await
    {
        Ok(courses) => courses,
        Err(e) => {
            fail(&mut p, e);
            return p;
        }
    };
    if g.course.is_empty() {
        course_list(g, &courses, &mut p);
        return p;
    }
    let Some(c) = courses.first() else { return p };
    p.title =
        if c.course_name.is_empty() { c.course_id.clone() } else { format!("{} ({})", c.course_name, c.course_id) };
    p.cards.push(Card::new("timezone", "Time zone", c.timezone.clone()).note(if c.profile_missing {
        "no profile in dags/courses.toml: UTC"
    } else {
        "local dates and hours below are of this zone"
    }));
    p.cards.push(Card::new("course_type", "Course type", c.kind()).note(if c.is_loop_course {
        "loop course: 18-hole rounds play the nine twice"
    } else {
        ""
    }));
    match g
        .read_one::<RoundTotals>(
            "SELECT count(*) AS rounds, CAST(min(round_date_local) AS VARCHAR) AS first_date, \
             CAST(max(round_date_local) AS VARCHAR) AS last_date, avg(avg_pace_sec) AS avg_pace, \
             sum(CASE WHEN is_complete THEN 1 ELSE 0 END) AS complete FROM gold.fact_rounds \
             WHERE course_id = $1",
        )
        .await
    {
        Ok(t) => {
            round_cards(&mut p, t.rounds, t.complete, (&t.first_date, &t.last_date), "Played (local dates)");
            if let Some(pace) = t.avg_pace {
                p.cards.push(Card::new("avg_pace", "Average pace vs goal", fmt_pace(pace)));
            }
        }
        Err(e) => fail(&mut p, e),
    }
    profile_section(c, &mut p);
    p.sections.push(play_patterns(g).await.unwrap_or_else(|e| {
        let mut s = Section::new("patterns", "When people play");
        s.note = e;
        s
    }));
    super::validation::checks_section(g, &mut p).await;
    super::topology::pace_by_section(g, &mut p).await;
    let links = ["pace", "rounds", "validation", "topology", "quality", "devices"]
        .iter()
        .map(|slug| format!("/lakehouse/{slug}{}", g.query()))
        .collect::<Vec<_>>();
    let mut more = Section::new("more", "More on this course");
    let mut grid = Grid::new(&["page"]);
    for (slug, href) in ["Pace", "Rounds", "Validation", "Topology", "Data quality", "Devices"].iter().zip(links) {
        grid.rows.push(vec![Cell::text(*slug).link(href)]);
    }
    more.table = Some(grid);
    p.sections.push(more);
    p
}

/// Without a course: every course with its profile, linked to its page.
fn course_list(g: &Gold, courses: &[Course], p: &mut Page) {
    p.title = "Courses".into();
    p.cards.push(Card::new("courses", "Courses", fmt_int(courses.len() as i64)));
    let missing = courses.iter().filter(|c| c.profile_missing).count();
    p.cards.push(Card::new("profile_missing", "Without a profile", fmt_int(missing as i64)).note("reported in UTC"));
    let mut s = Section::new("courses", "Courses and their profiles");
    s.note = "Profiles come from dags/courses.toml (gold.dim_course_profile); choose a course for its page. \
              Rounds observed count all dates."
        .into();
    s.charts.push(
        BarChart::new(
            "Rounds per course",
            "course",
            "rounds",
            courses.iter().map(|c| c.course_id.clone()).collect(),
            vec![Series::new("rounds", courses.iter().map(|c| Some(c.rounds_observed as f64)).collect())],
        )
        .to_svg(),
    );
    let mut grid = Grid::new(&[
        "course",
        "name",
        "time zone",
        "type",
        "volume",
        "peak season",
        "#nines",
        "#rounds",
        "#quality score",
    ]);
    for c in courses {
        grid.rows.push(vec![
            Cell::text(c.course_id.clone()).link(format!("/lakehouse/course{}", filter_query(&c.course_id, g.dates))),
            Cell::text(c.course_name.clone()),
            Cell::text(if c.profile_missing { format!("{} (no profile)", c.timezone) } else { c.timezone.clone() })
                .class(if c.profile_missing { "warn" } else { "" }),
            Cell::text(c.kind()),
            Cell::text(if c.volume_profile.is_empty() { "—".into() } else { c.volume_profile.clone() }),
            Cell::text(
                c.peak_season().map(|(a, b)| format!("{}–{}", month(a), month(b))).unwrap_or_else(|| "—".into()),
            ),
            Cell::num(fmt_int(c.unit_count)),
            Cell::num(fmt_int(c.rounds_observed)),
            Cell::num(c.data_quality_score.map(fmt_pct).unwrap_or_else(|| "—".into())),
        ]);
    }
    s.table = Some(grid);
    p.sections.push(s);
}

fn profile_section(c: &Course, p: &mut Page) {
    let mut s = Section::new("profile", "Profile");
    s.note = if c.profile_missing {
        format!(
            "{} has no profile in dags/courses.toml: its rounds are reported in UTC and the course_has_profile data \
             test warns about it. Add a [[course]] with its time zone.",
            c.course_id
        )
    } else {
        "From dags/courses.toml (gold.dim_course_profile) and what the data shows (gold.dim_course). Rounds \
         observed count all dates."
            .into()
    };
    let mut grid = Grid::new(&["key", "value"]);
    let mut kv = |k: &str, v: String| grid.rows.push(vec![Cell::text(k), Cell::text(v)]);
    kv("id", c.course_id.clone());
    kv("name", if c.course_name.is_empty() { "—".into() } else { c.course_name.clone() });
    kv("time zone", c.timezone.clone());
    kv("course type", c.kind());
    kv("loop course", if c.is_loop_course { "yes".into() } else { "no".into() });
    kv("volume profile", if c.volume_profile.is_empty() { "—".into() } else { c.volume_profile.clone() });
    kv(
        "peak season",
        c.peak_season().map(|(a, b)| format!("{} – {}", month(a), month(b))).unwrap_or_else(|| "—".into()),
    );
    kv("nines seen", fmt_int(c.unit_count));
    kv("rounds observed", fmt_int(c.rounds_observed));
    s.table = Some(grid);
    p.sections.push(s);
}

/// When rounds start: rounds by local weekday × local hour of their first fix, as a heatmap and a
/// table (one row per weekday, one column per hour that has rounds).
pub async fn play_patterns(g: &Gold) -> Result<Section, String> {
    let mut s = Section::new("patterns", "When people play (local weekday × hour)");
    s.note = "Rounds by the weekday and hour their first fix was sent, in the course's local time \
              (gold.fact_rounds.round_weekday and round_hour_local; rounds without a timestamp are left out)."
        .into();
    let rows = g
        .read::<WeekdayHour>(
            "SELECT round_weekday, round_hour_local, count(*) AS rounds FROM gold.fact_rounds \
             WHERE ($1 = '' OR course_id = $1) AND round_weekday IS NOT NULL AND round_hour_local IS NOT NULL \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await?;
    let mut counts = [[0i64; 24]; 7];
    for r in &rows {
        let (wd, h) = (r.round_weekday, r.round_hour_local);
        if (1..=7).contains(&wd) && (0..24).contains(&h) {
            counts[(wd - 1) as usize][h as usize] += r.rounds;
        }
    }
    let used: Vec<usize> = (0..24).filter(|h| counts.iter().any(|d| d[*h] > 0)).collect();
    let (first, last) = (used.first().copied().unwrap_or(6), used.last().copied().unwrap_or(18));
    let hours: Vec<usize> = (first..=last).collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(0) as f64;
    s.charts.push(
        Heatmap {
            title: "Rounds by local weekday and hour".into(),
            rows: WEEKDAYS.iter().map(|d| (*d).to_string()).collect(),
            cols: hours.iter().map(|h| format!("{h:02}:00")).collect(),
            values: counts
                .iter()
                .map(|d| hours.iter().map(|h| if d[*h] > 0 { Some(d[*h] as f64) } else { None }).collect())
                .collect(),
            min: 0.0,
            max: max.max(1.0),
            high_is_bad: false,
            fmt: |x| fmt_int(x as i64),
        }
        .to_svg(),
    );
    let mut grid = Grid { head: vec![Cell::text("weekday")], rows: Vec::new() };
    grid.head.extend(hours.iter().map(|h| Cell::num(format!("{h:02}"))));
    grid.head.push(Cell::num("all"));
    for (i, day) in WEEKDAYS.iter().enumerate() {
        let mut row = vec![Cell::text(*day)];
        row.extend(hours.iter().map(|h| Cell::num(fmt_int(counts[i][*h]))));
        row.push(Cell::num(fmt_int(counts[i].iter().sum())));
        grid.rows.push(row);
    }
    s.table = Some(grid);
    Ok(s)
}
