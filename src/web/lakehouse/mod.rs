//! The lakehouse pages (`/lakehouse/...`), the replacement of the Streamlit dashboard: overview,
//! one course, data quality, pace, rounds, round validation, course topology, devices and the
//! table browser. Figures come from the gold tables (never recomputed from silver), the run
//! summaries and the Iceberg metadata; charts are inline SVG from [`super::charts`].
//!
//! Every page takes `?course=ID` (bound as a query parameter; an unknown course is a 404) and
//! `&from=YYYY-MM-DD&to=YYYY-MM-DD` (the rounds' local dates, applied to the session's
//! round-keyed tables, see [`data::Gold::open`]); every link between the pages keeps both. Every
//! table of every page is also a CSV download (`&csv=<section id>`) of exactly what is shown.
//! A lake without gold tables shows "no data yet" instead of an error.
//!
//! `data.rs` reads the lake; one file per page (`overview.rs`, `course.rs`, `quality.rs`,
//! `pace.rs`, `rounds.rs`, `validation.rs`, `topology.rs`, `devices.rs`, `tables.rs`, what they
//! share in `common.rs`) turns results into a [`Page`]; the handlers only extract, call and
//! render.

pub mod common;
pub mod course;
pub mod data;
pub mod devices;
pub mod overview;
pub mod pace;
pub mod quality;
pub mod rounds;
pub mod tables;
pub mod topology;
pub mod validation;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use serde::Deserialize;

use self::data::DateRange;
use super::{Chrome, Viewer, error_page, render};
use crate::daemon::Daemon;

/// The message of a page whose tables do not exist yet.
pub const NO_DATA: &str = "the gold tables are not there yet. Run `tmctl demo` for a sample lakehouse, or let the \
                           silver and gold DAGs run (`tmctl run gold --date YYYY-MM-DD`).";

/// One tab of the lakehouse sub-navigation.
pub struct Tab {
    pub href: String,
    pub label: &'static str,
    pub active: bool,
}

/// A headline figure.
#[derive(Debug, Clone)]
pub struct Card {
    /// Stable name of the figure (`data-figure` attribute, for tests and scripts).
    pub key: &'static str,
    pub label: String,
    pub value: String,
    pub note: String,
}

impl Card {
    pub fn new(key: &'static str, label: impl Into<String>, value: impl Into<String>) -> Card {
        Card { key, label: label.into(), value: value.into(), note: String::new() }
    }

    pub fn note(mut self, note: impl Into<String>) -> Card {
        self.note = note.into();
        self
    }
}

/// One table cell.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub text: String,
    pub num: bool,
    /// Extra CSS class (`bad`, `good`, `warn`, `mono`).
    pub class: &'static str,
    pub href: Option<String>,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell { text: s.into(), ..Cell::default() }
    }

    pub fn num(s: impl Into<String>) -> Cell {
        Cell { text: s.into(), num: true, ..Cell::default() }
    }

    pub fn class(mut self, class: &'static str) -> Cell {
        self.class = class;
        self
    }

    pub fn link(mut self, href: String) -> Cell {
        self.href = Some(href);
        self
    }
}

/// A table: header cells (their `num` aligns the column right) and rows.
#[derive(Debug, Clone, Default)]
pub struct Grid {
    pub head: Vec<Cell>,
    pub rows: Vec<Vec<Cell>>,
}

impl Grid {
    /// Header from names; a name starting with `#` is a numeric column (the `#` is dropped).
    pub fn new(head: &[&str]) -> Grid {
        let head = head
            .iter()
            .map(|h| match h.strip_prefix('#') {
                Some(h) => Cell::num(h),
                None => Cell::text(*h),
            })
            .collect();
        Grid { head, rows: Vec::new() }
    }
}

/// A titled part of a page: a note, charts (SVG), a table.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub id: String,
    pub title: String,
    pub note: String,
    pub charts: Vec<String>,
    pub table: Option<Grid>,
}

impl Section {
    pub fn new(id: &str, title: impl Into<String>) -> Section {
        Section { id: id.into(), title: title.into(), ..Section::default() }
    }
}

/// What a lakehouse page shows.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub title: String,
    pub no_data: Option<String>,
    pub error: Option<String>,
    pub cards: Vec<Card>,
    pub sections: Vec<Section>,
    /// Extra query parameters the filter form and CSV links keep (`table` on the table browser).
    pub keep: Vec<(String, String)>,
}

impl Page {
    /// The section `id`, if the page has it.
    pub fn section(&self, id: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.id == id)
    }
}

#[derive(Template)]
#[template(path = "lakehouse/page.html")]
struct PageView {
    chrome: Chrome,
    tabs: Vec<Tab>,
    courses: Vec<String>,
    course: String,
    from: String,
    to: String,
    /// `<page path>?<filters>&csv=`: a section's CSV link appends its id.
    csv_href: String,
    keep: Vec<(String, String)>,
    no_data: Option<String>,
    error: Option<String>,
    cards: Vec<Card>,
    sections: Vec<Section>,
}

const TABS: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("course", "Course"),
    ("quality", "Data quality"),
    ("pace", "Pace"),
    ("rounds", "Rounds"),
    ("validation", "Validation"),
    ("topology", "Topology"),
    ("devices", "Devices"),
    ("tables", "Tables"),
];

/// Query parameters of every page.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    pub course: Option<String>,
    /// First local round date shown (`YYYY-MM-DD`; empty = open).
    pub from: Option<String>,
    /// Last local round date shown.
    pub to: Option<String>,
    pub table: Option<String>,
    /// `csv=<section id>`: that section's table as CSV instead of the page.
    pub csv: Option<String>,
}

impl Filter {
    /// The course filter; `""` means all courses.
    pub fn course(&self) -> String {
        match self.course.as_deref().map(str::trim) {
            None | Some("") | Some("all") => String::new(),
            Some(c) => c.chars().take(200).collect(),
        }
    }

    /// The date filter; an error names the parameter and the value it could not read.
    pub fn dates(&self) -> Result<DateRange, String> {
        let day = |name: &str, v: &Option<String>| -> Result<Option<NaiveDate>, String> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d").map(Some).map_err(|_| {
                    let shown: String = t.chars().take(40).collect();
                    format!("`{name}={shown}` is not a date: write it as YYYY-MM-DD, e.g. {name}=2025-06-01")
                }),
            }
        };
        let range = DateRange { from: day("from", &self.from)?, to: day("to", &self.to)? };
        if let (Some(f), Some(t)) = (range.from, range.to)
            && f > t
        {
            return Err(format!("the date range is empty: from={f} is after to={t}"));
        }
        Ok(range)
    }
}

/// The query string (`?course=…&from=…&to=…`, URL-encoded, empty for no filter) that keeps a
/// course and a date range on a lakehouse link.
pub fn filter_query(course: &str, dates: DateRange) -> String {
    let mut parts = Vec::new();
    if !course.is_empty() {
        parts.push(format!("course={}", url_encode(course)));
    }
    if let Some(f) = dates.from {
        parts.push(format!("from={f}"));
    }
    if let Some(t) = dates.to {
        parts.push(format!("to={t}"));
    }
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// `base` (a query string from [`filter_query`], maybe empty) plus `key=value`.
pub fn with_param(base: &str, key: &str, value: &str) -> String {
    let sep = if base.is_empty() { '?' } else { '&' };
    format!("{base}{sep}{key}={}", url_encode(value))
}

pub use crate::util::url_encode;

async fn show(d: Arc<Daemon>, viewer: Viewer, filter: Filter, slug: &'static str) -> Response {
    let course = filter.course();
    let dates = match filter.dates() {
        Ok(dates) => dates,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &viewer, e),
    };
    let (page, courses) = match data::Gold::open(&d, &course, dates).await {
        Ok(gold) => {
            let courses = gold.courses().await;
            if !course.is_empty() && gold.has("gold.dim_course") && !courses.contains(&course) {
                let shown: String = course.chars().take(80).collect();
                return error_page(
                    StatusCode::NOT_FOUND,
                    &viewer,
                    format!("There is no course `{shown}` in gold.dim_course. Choose one of the lakehouse's courses."),
                );
            }
            let page = match slug {
                "overview" => overview::page(&d, &gold).await,
                "course" => course::page(&gold).await,
                "quality" => quality::page(&d, &gold).await,
                "pace" => pace::page(&gold).await,
                "rounds" => rounds::page(&gold).await,
                "validation" => validation::page(&gold).await,
                "topology" => topology::page(&gold).await,
                "devices" => devices::page(&gold).await,
                _ => tables::page(&gold, filter.table.as_deref()).await,
            };
            (page, courses)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the lake");
            (Page { title: title_of(slug).into(), error: Some(e), ..Page::default() }, Vec::new())
        }
    };
    let q = filter_query(&course, dates);
    if let Some(id) = filter.csv.as_deref() {
        return match page.section(id).and_then(|s| s.table.as_ref()) {
            Some(grid) => csv_download(&format!("{slug}-{id}"), grid),
            None => error_page(StatusCode::NOT_FOUND, &viewer, format!("This page has no table `{id}` to download.")),
        };
    }
    let tabs =
        TABS.iter().map(|(s, label)| Tab { href: format!("/lakehouse/{s}{q}"), label, active: *s == slug }).collect();
    let mut csv_base = q.clone();
    for (k, v) in &page.keep {
        csv_base = with_param(&csv_base, k, v);
    }
    let csv_href = format!("/lakehouse/{slug}{}", with_param(&csv_base, "csv", ""));
    let view = PageView {
        chrome: Chrome::new(page.title.clone(), &viewer),
        tabs,
        courses,
        course,
        from: dates.from.map(|d| d.to_string()).unwrap_or_default(),
        to: dates.to.map(|d| d.to_string()).unwrap_or_default(),
        csv_href,
        keep: page.keep,
        no_data: page.no_data,
        error: page.error,
        cards: page.cards,
        sections: page.sections,
    };
    render(&view)
}

/// A table as a CSV download: the header and the cells' text exactly as the page shows them.
fn csv_download(name: &str, grid: &Grid) -> Response {
    let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.csv\"")),
        ],
        to_csv(grid),
    )
        .into_response()
}

/// RFC 4180 CSV of a grid. A cell that a spreadsheet would run as a formula (`=`, `@`, a tab, or
/// `+`/`-` not starting a number such as `-5` or a pace `+1:05`) gets a leading `'`, so a course or device name cannot smuggle a
/// formula into the analyst's spreadsheet.
pub fn to_csv(grid: &Grid) -> String {
    fn field(t: &str) -> String {
        let risky = match t.chars().next() {
            Some('=' | '@' | '\t' | '\r') => true,
            Some('-' | '+') => !t[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.'),
            _ => false,
        };
        let t = if risky { format!("'{t}") } else { t.to_string() };
        if t.contains([',', '"', '\n', '\r']) { format!("\"{}\"", t.replace('"', "\"\"")) } else { t }
    }
    let mut out = String::new();
    for row in std::iter::once(&grid.head).chain(&grid.rows) {
        let line: Vec<String> = row.iter().map(|c| field(&c.text)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn title_of(slug: &str) -> &'static str {
    TABS.iter().find(|(s, _)| *s == slug).map(|(_, l)| *l).unwrap_or("Lakehouse")
}

/// `/lakehouse/{page}` for every page of [`TABS`]; any other name is a 404.
async fn page(State(d): State<Arc<Daemon>>, v: Viewer, Path(slug): Path<String>, Query(f): Query<Filter>) -> Response {
    match TABS.iter().find(|(s, _)| *s == slug) {
        Some((slug, _)) => show(d, v, f, slug).await,
        None => error_page(StatusCode::NOT_FOUND, &v, "There is no such lakehouse page."),
    }
}

async fn index(Query(f): Query<Filter>) -> axum::response::Redirect {
    let dates = f.dates().unwrap_or_default();
    axum::response::Redirect::to(&format!("/lakehouse/overview{}", filter_query(&f.course(), dates)))
}

pub fn router() -> Router<Arc<Daemon>> {
    Router::new().route("/lakehouse", get(index)).route("/lakehouse/{page}", get(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn course_filter_all_means_none() {
        let f = |c: &str| Filter { course: Some(c.into()), ..Filter::default() }.course();
        assert_eq!(f("all"), "");
        assert_eq!(f(""), "");
        assert_eq!(f(" x "), "x");
        assert_eq!(Filter::default().course(), "");
        assert_eq!(filter_query("a b&<", DateRange::default()), "?course=a%20b%26%3C");
        assert_eq!(crate::freshness::quality_url("http://h", "a b&<"), "http://h/lakehouse/quality?course=a%20b%26%3C");
    }

    #[test]
    fn dates_are_read_strictly_and_kept_in_links() {
        let f =
            |from: &str, to: &str| Filter { from: Some(from.into()), to: Some(to.into()), ..Filter::default() }.dates();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(f("", "").unwrap(), DateRange::default());
        assert_eq!(f("2025-06-01", "").unwrap(), DateRange { from: Some(d("2025-06-01")), to: None });
        let e = f("2025-13-01", "").unwrap_err();
        assert!(e.contains("from=2025-13-01") && e.contains("YYYY-MM-DD"), "{e}");
        let e = f("2025-06-02", "2025-06-01").unwrap_err();
        assert!(e.contains("after"), "{e}");
        let range = f("2025-06-01", "2025-06-30").unwrap();
        assert_eq!(filter_query("a&b", range), "?course=a%26b&from=2025-06-01&to=2025-06-30");
        assert_eq!(filter_query("", DateRange::default()), "");
        assert_eq!(with_param("", "csv", "x y"), "?csv=x%20y");
        assert_eq!(with_param("?course=a", "csv", "t"), "?course=a&csv=t");
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut g = Grid::new(&["name", "#n"]);
        g.rows.push(vec![Cell::text("a,b"), Cell::num("1,234")]);
        g.rows.push(vec![Cell::text("=HYPERLINK(\"x\")"), Cell::num("-5")]);
        g.rows.push(vec![Cell::text("-x"), Cell::num("+1:05")]);
        g.rows.push(vec![Cell::text("+SUM(A1)"), Cell::num("")]);
        assert_eq!(
            to_csv(&g),
            "name,n\r\n\"a,b\",\"1,234\"\r\n\"'=HYPERLINK(\"\"x\"\")\",-5\r\n'-x,+1:05\r\n'+SUM(A1),\r\n"
        );
    }
}
