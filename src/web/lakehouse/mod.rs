//! The lakehouse pages (`/lakehouse/...`), the replacement of the Streamlit dashboard: overview,
//! data quality, pace, rounds, devices and the table browser. Figures come from the gold tables
//! (never recomputed from silver), the run summaries and the Iceberg metadata; charts are inline
//! SVG from [`super::charts`]. Every page takes `?course=ID` (bound as a query parameter) and
//! shows "no data yet" instead of an error on a lake without gold tables.
//!
//! `data.rs` reads the lake, `pages.rs` turns results into [`Page`]s; the handlers only extract,
//! call and render.

pub mod data;
pub mod pages;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{Chrome, Viewer, render};
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
    /// Extra query parameters the course form keeps (`table` on the table browser).
    pub keep: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "lakehouse/page.html")]
struct PageView {
    chrome: Chrome,
    tabs: Vec<Tab>,
    courses: Vec<String>,
    course: String,
    unknown_course: bool,
    keep: Vec<(String, String)>,
    no_data: Option<String>,
    error: Option<String>,
    cards: Vec<Card>,
    sections: Vec<Section>,
}

const TABS: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("quality", "Data quality"),
    ("pace", "Pace"),
    ("rounds", "Rounds"),
    ("devices", "Devices"),
    ("tables", "Tables"),
];

/// Query parameters of every page.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    pub course: Option<String>,
    pub table: Option<String>,
}

impl Filter {
    /// The course filter; `""` means all courses.
    pub fn course(&self) -> String {
        match self.course.as_deref().map(str::trim) {
            None | Some("") | Some("all") => String::new(),
            Some(c) => c.chars().take(200).collect(),
        }
    }
}

/// `?course=…` to append to a lakehouse link (URL-encoded).
pub fn course_query(course: &str) -> String {
    if course.is_empty() { String::new() } else { format!("?course={}", url_encode(course)) }
}

pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn show(d: Arc<Daemon>, viewer: Viewer, filter: Filter, slug: &'static str) -> Response {
    let course = filter.course();
    let (page, courses) = match data::Gold::open(&d, &course).await {
        Ok(gold) => {
            let courses = gold.courses().await;
            let page = match slug {
                "overview" => pages::overview(&d, &gold).await,
                "quality" => pages::quality(&d, &gold).await,
                "pace" => pages::pace(&gold).await,
                "rounds" => pages::rounds(&gold).await,
                "devices" => pages::devices(&gold).await,
                _ => pages::tables(&gold, filter.table.as_deref()).await,
            };
            (page, courses)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the lake");
            (Page { title: title_of(slug).into(), error: Some(e), ..Page::default() }, Vec::new())
        }
    };
    let q = course_query(&course);
    let tabs =
        TABS.iter().map(|(s, label)| Tab { href: format!("/lakehouse/{s}{q}"), label, active: *s == slug }).collect();
    let unknown_course = !course.is_empty() && !courses.contains(&course);
    let view = PageView {
        chrome: Chrome::new(page.title.clone(), &viewer),
        tabs,
        courses,
        course,
        unknown_course,
        keep: page.keep,
        no_data: page.no_data,
        error: page.error,
        cards: page.cards,
        sections: page.sections,
    };
    render(&view)
}

fn title_of(slug: &str) -> &'static str {
    TABS.iter().find(|(s, _)| *s == slug).map(|(_, l)| *l).unwrap_or("Lakehouse")
}

async fn overview(State(d): State<Arc<Daemon>>, v: Viewer, Query(f): Query<Filter>) -> Response {
    show(d, v, f, "overview").await
}
async fn quality(State(d): State<Arc<Daemon>>, v: Viewer, Query(f): Query<Filter>) -> Response {
    show(d, v, f, "quality").await
}
async fn pace(State(d): State<Arc<Daemon>>, v: Viewer, Query(f): Query<Filter>) -> Response {
    show(d, v, f, "pace").await
}
async fn rounds(State(d): State<Arc<Daemon>>, v: Viewer, Query(f): Query<Filter>) -> Response {
    show(d, v, f, "rounds").await
}
async fn devices(State(d): State<Arc<Daemon>>, v: Viewer, Query(f): Query<Filter>) -> Response {
    show(d, v, f, "devices").await
}
async fn tables(State(d): State<Arc<Daemon>>, v: Viewer, Query(f): Query<Filter>) -> Response {
    show(d, v, f, "tables").await
}

async fn index(Query(f): Query<Filter>) -> axum::response::Redirect {
    axum::response::Redirect::to(&format!("/lakehouse/overview{}", course_query(&f.course())))
}

pub fn router() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/lakehouse", get(index))
        .route("/lakehouse/overview", get(overview))
        .route("/lakehouse/quality", get(quality))
        .route("/lakehouse/pace", get(pace))
        .route("/lakehouse/rounds", get(rounds))
        .route("/lakehouse/devices", get(devices))
        .route("/lakehouse/tables", get(tables))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn course_filter_all_means_none() {
        let f = |c: &str| Filter { course: Some(c.into()), table: None }.course();
        assert_eq!(f("all"), "");
        assert_eq!(f(""), "");
        assert_eq!(f(" x "), "x");
        assert_eq!(Filter::default().course(), "");
        assert_eq!(course_query("a b&<"), "?course=a%20b%26%3C");
    }
}
