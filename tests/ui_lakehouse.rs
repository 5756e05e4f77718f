//! The lakehouse pages of the web UI against a real lakehouse: `tmctl demo` (the binary) fills a
//! temporary home, a daemon started in-process serves it on port 0, and every `/lakehouse/...`
//! page is fetched with and without a course filter and a date range. Their figures and CSV
//! downloads are checked against `tmctl query` on the gold tables, an unknown (or hostile) course
//! is a 404 page with the value escaped, a bad date a 400, and a fresh install answers "no data
//! yet" with 200.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tmctl::config::{Overrides, Settings};
use tmctl::store::Store;
use tmctl::web::charts::{fmt_duration, fmt_int, fmt_num, fmt_pace};

const PAGES: &[&str] =
    &["overview", "course", "quality", "pace", "rounds", "validation", "topology", "devices", "tables"];

use common::tmctl_on as tmctl;

fn query(home: &Path, sql: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = tmctl(home, &["query", "--format", "json", sql]);
    assert_eq!(code, 0, "query failed: {sql}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    v.as_array().cloned().unwrap_or_default()
}

/// A daemon serving `home` in this process; its scheduler sees no DAGs, so nothing changes the
/// lake while the pages are read.
async fn serve(home: &Path) -> (tmctl::daemon::Running, PathBuf) {
    let empty_dags = home.join("no-dags");
    std::fs::create_dir_all(&empty_dags).unwrap();
    let overrides = Overrides { config_file: None, home: Some(home.to_path_buf()), dags_dir: Some(empty_dags.clone()) };
    let settings = Settings::load_with(&overrides, &BTreeMap::new()).expect("settings");
    let store = Store::connect(&settings.database_url, settings.database_max_connections).await.expect("state DB");
    let running =
        tmctl::daemon::start(Arc::new(settings), store, "127.0.0.1:0".parse().unwrap()).await.expect("daemon");
    (running, empty_dags)
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let resp = client.get(format!("{base}{path}")).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The text of the card `data-figure="key"` on a page.
fn figure(html: &str, key: &str) -> String {
    let marker = format!("data-figure=\"{key}\">");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no figure {key} in page")) + marker.len();
    html[start..].split('<').next().unwrap().to_string()
}

fn charts(html: &str) -> usize {
    html.matches("<svg class=\"chart\"").count()
}

/// The records of a CSV text (RFC 4180: quoted fields may hold commas, quotes and newlines).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}

/// `1,234` → 1234.
fn int_of(text: &str) -> i64 {
    text.replace(',', "").parse().unwrap_or_else(|_| panic!("not a number: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lakehouse_pages_show_the_gold_tables() {
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) =
        tmctl(home.path(), &["demo", "--days", "2", "--rounds", "20", "--courses", "2", "--start-date", "2025-06-02"]);
    assert_eq!(code, 0, "demo failed\n{out}\n{err}");
    let courses: Vec<String> = query(home.path(), "SELECT course_id FROM gold.dim_course ORDER BY course_id")
        .iter()
        .map(|r| r["course_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(courses.len(), 2, "{courses:?}");
    let course = &courses[0];

    let (running, _) = serve(home.path()).await;
    let base = format!("http://{}", running.addr);
    let client = common::authed(&running.daemon.token);

    // Every page, for all courses and for one: 200, SVG charts, no error, the course in the select.
    for page in PAGES {
        for q in ["".to_string(), "?course=all".to_string(), format!("?course={course}")] {
            let (status, html) = get(&client, &base, &format!("/lakehouse/{page}{q}")).await;
            assert_eq!(status, 200, "{page}{q}\n{html}");
            assert!(charts(&html) >= 1, "{page}{q} has no chart");
            assert!(!html.contains("class=\"error\""), "{page}{q} shows an error:\n{html}");
            assert!(!html.contains("No data yet"), "{page}{q}");
            assert!(html.contains(&format!("<option value=\"{course}\"")), "{page}{q}: no course option");
        }
    }
    let (status, _) = get(&client, &base, "/lakehouse").await;
    assert_eq!(status, 200, "/lakehouse redirects to the overview");

    // Overview figures = the gold tables.
    let n = |rows: Vec<serde_json::Value>| rows[0]["n"].as_i64().unwrap();
    let rounds_all = n(query(home.path(), "SELECT count(*) AS n FROM gold.fact_rounds"));
    let rounds_one =
        n(query(home.path(), &format!("SELECT count(*) AS n FROM gold.fact_rounds WHERE course_id = '{course}'")));
    assert!(rounds_one > 0 && rounds_one < rounds_all);
    let silver_all = n(query(home.path(), "SELECT count(*) AS n FROM silver.fact_telemetry_event"));
    let (_, html) = get(&client, &base, "/lakehouse/overview").await;
    assert_eq!(figure(&html, "rounds"), fmt_int(rounds_all));
    assert_eq!(figure(&html, "courses"), "2");
    assert_eq!(figure(&html, "silver_rows"), fmt_int(silver_all));
    let range = query(
        home.path(),
        "SELECT CAST(min(round_date_local) AS VARCHAR) AS a, CAST(max(round_date_local) AS VARCHAR) AS b \
         FROM gold.fact_rounds",
    );
    assert_eq!(
        figure(&html, "date_range").replace("&#8594;", "→"),
        format!("{} → {}", range[0]["a"].as_str().unwrap(), range[0]["b"].as_str().unwrap())
    );
    let (_, html) = get(&client, &base, &format!("/lakehouse/overview?course={course}")).await;
    assert_eq!(figure(&html, "rounds"), fmt_int(rounds_one));
    assert_eq!(figure(&html, "courses"), "1");
    // The course's silver rows (counted from the manifests' partitions) equal a scan's count.
    let silver_one = n(query(
        home.path(),
        &format!("SELECT count(*) AS n FROM silver.fact_telemetry_event WHERE course_id = '{course}'"),
    ));
    assert_eq!(figure(&html, "silver_rows"), fmt_int(silver_one));

    // Quality: each course's score from gold.data_quality_overview, and the silver quarantine.
    let (_, html) = get(&client, &base, "/lakehouse/quality").await;
    for r in query(home.path(), "SELECT course_id, data_quality_score FROM gold.data_quality_overview") {
        let score = fmt_num(r["data_quality_score"].as_f64().unwrap(), 1);
        assert!(html.contains(&format!(">{score}</td>")), "score {score} of {} missing", r["course_id"]);
    }
    assert!(html.contains("Quarantined rows by reason"), "{html}");
    assert!(html.contains("lh-cell"), "completeness heatmap");
    assert!(html.contains("Data tests per gold run") && html.contains(">success</td>"), "gold runs listed");

    // Pace: the average pace of the course's rounds, signed minutes:seconds.
    let avg = query(
        home.path(),
        &format!("SELECT avg(avg_pace) AS p FROM gold.pace_summary_by_round WHERE course_id = '{course}'"),
    );
    let (_, html) = get(&client, &base, &format!("/lakehouse/pace?course={course}")).await;
    assert_eq!(figure(&html, "avg_pace"), fmt_pace(avg[0]["p"].as_f64().unwrap()));
    assert!(html.contains("bottleneck &gt;") || html.contains("bottleneck >"), "threshold line");
    // Pace by hole reads the daily summary gold.course_hole_pace_daily: its rounds and times equal
    // those of the fact with one row per round and hole.
    let holes = query(
        home.path(),
        &format!(
            "SELECT hole_number AS h, count(DISTINCT round_id) AS n, avg(duration_sec) AS d \
             FROM gold.fact_round_hole_performance WHERE course_id = '{course}' AND duration_sec > 0 \
             GROUP BY hole_number ORDER BY hole_number"
        ),
    );
    let (status, csv) = get(&client, &base, &format!("/lakehouse/pace?course={course}&csv=by-hole")).await;
    assert_eq!(status, 200);
    let records = csv_records(&csv);
    assert_eq!(records.len(), 1 + holes.len(), "{csv}");
    for (record, h) in records[1..].iter().zip(&holes) {
        let expected = (h["h"].to_string(), h["n"].as_i64().unwrap(), fmt_duration(h["d"].as_f64().unwrap()));
        assert_eq!((record[0].clone(), int_of(&record[1]), record[2].clone()), expected, "{csv}");
    }

    // Rounds: weekday totals (ISO, Monday first) and the rounds with a duration.
    let (_, html) = get(&client, &base, "/lakehouse/rounds").await;
    let mon = html.find("<td class=\"\">Mon</td>").expect("Monday row");
    let sun = html.find("<td class=\"\">Sun</td>").expect("Sunday row");
    assert!(mon < sun, "Monday comes first");
    let timed = n(query(home.path(), "SELECT count(*) AS n FROM gold.fact_rounds WHERE round_duration_minutes > 0"));
    assert_eq!(figure(&html, "rounds"), fmt_int(timed));
    for r in query(
        home.path(),
        "SELECT weekday_name, sum(rounds) AS n FROM gold.course_rounds_by_weekday WHERE weekday_number > 0 GROUP BY weekday_name",
    ) {
        let short = &r["weekday_name"].as_str().unwrap()[..3];
        let cell = format!("<td class=\"\">{short}</td><td class=\"num \">{}</td>", fmt_int(r["n"].as_i64().unwrap()));
        assert!(html.contains(&cell), "{cell} missing");
    }

    // The round-length mix (summed per course and ingest date) counts every round once.
    for r in query(home.path(), "SELECT round_length AS l, count(*) AS n FROM gold.fact_rounds GROUP BY 1") {
        let l = r["l"].as_str().unwrap();
        let label = if l == "unknown" { l.to_string() } else { format!("{l} holes") };
        let cell = format!("<td class=\"\">{label}</td><td class=\"num \">{}</td>", fmt_int(r["n"].as_i64().unwrap()));
        assert!(html.contains(&cell), "{cell} missing");
    }

    // Devices: low-battery fixes from gold.device_health_errors.
    let low = n(query(
        home.path(),
        &format!("SELECT count(*) AS n FROM gold.device_health_errors WHERE course_id = '{course}'"),
    ));
    let (_, html) = get(&client, &base, &format!("/lakehouse/devices?course={course}")).await;
    assert_eq!(figure(&html, "low_battery_fixes"), fmt_int(low));

    // Tables: snapshots and partitions of silver, rows of a gold table.
    let (_, html) = get(&client, &base, "/lakehouse/tables?table=silver.fact_telemetry_event").await;
    assert!(html.contains("Snapshots of silver.fact_telemetry_event") && html.contains("(current)"), "{html}");
    assert!(html.contains("Partitions of silver.fact_telemetry_event") && html.contains("overwrite"));
    assert!(html.contains(&format!("<td class=\"num \">{}</td>", fmt_int(silver_all))), "silver row count");
    // Rows per partition (read from the manifests) equal what a scan counts, for the course asked.
    let parts = query(
        home.path(),
        &format!(
            "SELECT CAST(ingest_date AS VARCHAR) AS d, count(*) AS n FROM silver.fact_telemetry_event \
             WHERE course_id = '{course}' GROUP BY 1 ORDER BY 1"
        ),
    );
    let (_, html) =
        get(&client, &base, &format!("/lakehouse/tables?table=silver.fact_telemetry_event&course={course}")).await;
    assert!(html.contains(&format!("{} partitions, by course_id, ingest_date.", parts.len())), "{html}");
    for part in &parts {
        let cell = format!(
            "<td class=\"\">{}</td><td class=\"num \">{}</td>",
            part["d"].as_str().unwrap(),
            fmt_int(part["n"].as_i64().unwrap())
        );
        assert!(html.contains(&cell), "{cell} missing: {html}");
    }
    let (status, html) = get(&client, &base, "/lakehouse/tables?table=gold.fact_rounds").await;
    assert_eq!(status, 200);
    assert!(html.contains("Snapshots of gold.fact_rounds"));
    // An unknown table name falls back to the default table (names are never put into SQL).
    let (status, html) = get(&client, &base, "/lakehouse/tables?table=gold.x%3B%20DROP%20TABLE").await;
    assert_eq!(status, 200);
    assert!(html.contains("Snapshots of silver.fact_telemetry_event"));

    // Validation: the checks' rounds, the incomplete rounds and the rounds to review.
    let (_, html) = get(&client, &base, "/lakehouse/validation").await;
    assert_eq!(figure(&html, "rounds"), fmt_int(rounds_all));
    let incomplete = n(query(home.path(), "SELECT count(*) AS n FROM gold.fact_rounds WHERE NOT is_complete"));
    assert_eq!(figure(&html, "incomplete"), fmt_int(incomplete));
    let review = n(query(
        home.path(),
        "SELECT count(*) AS n FROM gold.round_progression WHERE progression_class = 'needs_review'",
    ));
    assert_eq!(figure(&html, "needs_review"), fmt_int(review));
    start_holes_match(home.path(), &html, "TRUE");
    // Its CSV is the checks table: one record per course, with the course's rounds.
    let (status, csv) = get(&client, &base, "/lakehouse/validation?csv=checks").await;
    assert_eq!(status, 200);
    let records = csv_records(&csv);
    assert_eq!(records[0][..2], ["course".to_string(), "rounds".to_string()], "{csv}");
    assert_eq!(records.len(), 1 + courses.len(), "{csv}");
    for (record, c) in records[1..].iter().zip(&courses) {
        let rounds =
            n(query(home.path(), &format!("SELECT count(*) AS n FROM gold.fact_rounds WHERE course_id = '{c}'")));
        assert_eq!((record[0].as_str(), int_of(&record[1])), (c.as_str(), rounds), "{csv}");
    }

    // Topology: the course's nines, and one map point per section with coordinates.
    let (_, html) = get(&client, &base, &format!("/lakehouse/topology?course={course}")).await;
    let nines =
        n(query(home.path(), &format!("SELECT count(*) AS n FROM gold.course_topology WHERE course_id = '{course}'")));
    assert_eq!(figure(&html, "nines"), fmt_int(nines));
    let located = n(query(
        home.path(),
        &format!(
            "SELECT count(*) AS n FROM gold.course_section_summary WHERE course_id = '{course}' \
             AND avg_latitude IS NOT NULL"
        ),
    ));
    assert!(located > 0);
    assert_eq!(html.matches("class=\"map-point\"").count() as i64, located, "one point per located section");

    // Course page: the profile's time zone, and the local weekday × hour table adds up to the
    // course's rounds with a timestamp (through its CSV download).
    let tz = query(home.path(), &format!("SELECT timezone FROM gold.dim_course WHERE course_id = '{course}'"));
    let (_, html) = get(&client, &base, &format!("/lakehouse/course?course={course}")).await;
    assert_eq!(figure(&html, "timezone"), tz[0]["timezone"].as_str().unwrap());
    // (askama writes `&` in attributes as `&#38;`)
    let link = format!("href=\"/lakehouse/course?course={course}&#38;csv=patterns\"");
    assert!(html.contains(&link), "no CSV link {link}: {:?}", html.split("csv-link").nth(1).map(|t| &t[..120]));
    let (status, csv) = get(&client, &base, &format!("/lakehouse/course?course={course}&csv=patterns")).await;
    assert_eq!(status, 200);
    let records = csv_records(&csv);
    assert_eq!(records.len(), 8, "header and seven weekdays: {csv}");
    let played: i64 = records[1..].iter().map(|r| int_of(r.last().unwrap())).sum();
    let timed_one = n(query(
        home.path(),
        &format!(
            "SELECT count(*) AS n FROM gold.fact_rounds WHERE course_id = '{course}' AND round_hour_local IS NOT NULL"
        ),
    ));
    assert_eq!(played, timed_one, "{csv}");
    let (status, _) = get(&client, &base, "/lakehouse/course?csv=no-such-table").await;
    assert_eq!(status, 404, "a CSV of a table the page does not have");

    // A date range: the rounds of the first local date only, on every page, kept by every tab.
    let first = query(home.path(), "SELECT CAST(min(round_date_local) AS VARCHAR) AS d FROM gold.fact_rounds");
    let first = first[0]["d"].as_str().unwrap().to_string();
    let in_range = n(query(
        home.path(),
        &format!("SELECT count(*) AS n FROM gold.fact_rounds WHERE round_date_local = DATE '{first}'"),
    ));
    assert!(in_range > 0 && in_range < rounds_all, "{in_range} of {rounds_all}");
    let dated = format!("from={first}&to={first}");
    let (_, html) = get(&client, &base, &format!("/lakehouse/overview?{dated}")).await;
    assert_eq!(figure(&html, "rounds"), fmt_int(in_range));
    for page in PAGES {
        let tab = format!("href=\"/lakehouse/{page}?from={first}&#38;to={first}\"");
        assert!(html.contains(&tab), "tab {page} keeps the dates: no {tab}");
    }
    for page in PAGES {
        let (status, html) = get(&client, &base, &format!("/lakehouse/{page}?course={course}&{dated}")).await;
        assert_eq!(status, 200, "{page} dated");
        assert!(!html.contains("class=\"error\""), "{page} dated shows an error:\n{html}");
        assert!(html.contains(&format!("value=\"{first}\"")), "{page}: the date inputs keep the range");
    }
    let (_, html) = get(&client, &base, &format!("/lakehouse/validation?{dated}")).await;
    assert_eq!(figure(&html, "rounds"), fmt_int(in_range));
    start_holes_match(home.path(), &html, &format!("round_date_local = DATE '{first}'"));
    // Low-battery fixes of the range's rounds only (the page reads the per-round counts of
    // gold.round_device_health; this counts the fixes themselves).
    let low_in_range = n(query(
        home.path(),
        &format!(
            "SELECT count(*) AS n FROM gold.device_health_errors e JOIN gold.fact_rounds f \
             ON f.course_id = e.course_id AND f.round_id = e.round_id \
             WHERE e.course_id = '{course}' AND f.round_date_local = DATE '{first}'"
        ),
    ));
    let (_, html) = get(&client, &base, &format!("/lakehouse/devices?course={course}&{dated}")).await;
    assert_eq!(figure(&html, "low_battery_fixes"), fmt_int(low_in_range));
    // A per-round table narrowed by the range: the average pace of those rounds only.
    let avg = query(
        home.path(),
        &format!(
            "SELECT avg(p.avg_pace) AS p FROM gold.pace_summary_by_round p JOIN gold.fact_rounds f \
             ON f.course_id = p.course_id AND f.round_id = p.round_id \
             WHERE p.course_id = '{course}' AND f.round_date_local = DATE '{first}'"
        ),
    );
    if let Some(avg) = avg[0]["p"].as_f64() {
        let (_, html) = get(&client, &base, &format!("/lakehouse/pace?course={course}&{dated}")).await;
        assert_eq!(figure(&html, "avg_pace"), fmt_pace(avg));
    }
    let (status, html) = get(&client, &base, "/lakehouse/overview?from=2025-13-01").await;
    assert_eq!(status, 400);
    assert!(html.contains("from=2025-13-01") && html.contains("YYYY-MM-DD"), "{html}");

    // An unknown course, hostile ones included: a 404 page, the value escaped, never run as SQL.
    for (raw, encoded) in [
        ("no-such-course", "no-such-course"),
        ("<script>alert(1)</script>", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        ("x' OR '1'='1", "x%27%20OR%20%271%27%3D%271"),
    ] {
        for page in PAGES {
            let (status, html) = get(&client, &base, &format!("/lakehouse/{page}?course={encoded}")).await;
            assert_eq!(status, 404, "{page} with {raw}");
            assert!(!html.contains("<script>alert"), "{page}: unescaped course");
            assert!(html.contains("There is no course"), "{page} with {raw}: {html}");
        }
    }
    let (_, html) = get(&client, &base, "/lakehouse/overview?course=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || html.contains("&#60;script&#62;"), "escaped");

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lakehouse_pages_on_an_empty_install_say_no_data_yet() {
    let home = tempfile::tempdir().unwrap();
    let (running, _) = serve(home.path()).await;
    let base = format!("http://{}", running.addr);
    let client = common::authed(&running.daemon.token);
    for page in PAGES {
        for q in ["", "?course=anything"] {
            let (status, html) = get(&client, &base, &format!("/lakehouse/{page}{q}")).await;
            assert_eq!(status, 200, "{page}{q}\n{html}");
            assert!(html.contains("No data yet"), "{page}{q}:\n{html}");
            assert!(html.contains("tmctl demo"), "{page}{q}");
            assert!(!html.contains("class=\"error\""), "{page}{q}:\n{html}");
        }
    }
    running.stop().await;
}

/// The validation page's start-hole table gives, per course and start hole, the rounds of
/// gold.fact_rounds that match `filter` (without a date range the page sums
/// gold.course_start_coverage instead of grouping the rounds).
fn start_holes_match(home: &Path, html: &str, filter: &str) {
    let rows = query(
        home,
        &format!(
            "SELECT course_id AS c, COALESCE(CAST(start_hole AS VARCHAR), 'unknown') AS h, count(*) AS n \
             FROM gold.fact_rounds WHERE {filter} GROUP BY 1, 2"
        ),
    );
    assert!(!rows.is_empty());
    for r in rows {
        let cell = format!(
            "<td class=\"\">{}</td><td class=\"\">{}</td><td class=\"num \">{}</td>",
            r["c"].as_str().unwrap(),
            r["h"].as_str().unwrap(),
            fmt_int(r["n"].as_i64().unwrap())
        );
        assert!(html.contains(&cell), "{cell} missing");
    }
}
