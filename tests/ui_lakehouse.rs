//! The lakehouse pages of the web UI against a real lakehouse: `tmctl demo` (the binary) fills a
//! temporary home, a daemon started in-process serves it on port 0, and every `/lakehouse/...`
//! page is fetched with and without a course filter. Their figures are checked against
//! `tmctl query` on the gold tables, hostile course values are shown escaped and match nothing,
//! and a fresh install answers "no data yet" with 200.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tmctl::config::{Overrides, Settings};
use tmctl::store::Store;
use tmctl::web::charts::{fmt_int, fmt_num, fmt_pace};

const PAGES: &[&str] = &["overview", "quality", "pace", "rounds", "devices", "tables"];

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
        "SELECT CAST(min(round_date) AS VARCHAR) AS a, CAST(max(round_date) AS VARCHAR) AS b FROM gold.fact_rounds",
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

    // Hostile course values: escaped on the page, bound as a parameter (matches nothing).
    for (raw, encoded) in [
        ("<script>alert(1)</script>", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        ("x' OR '1'='1", "x%27%20OR%20%271%27%3D%271"),
    ] {
        for page in PAGES {
            let (status, html) = get(&client, &base, &format!("/lakehouse/{page}?course={encoded}")).await;
            assert_eq!(status, 200, "{page} with {raw}");
            assert!(!html.contains("<script>alert"), "{page}: unescaped course");
            assert!(!html.contains("class=\"error\""), "{page} with {raw}: {html}");
            if *page == "overview" {
                assert_eq!(figure(&html, "rounds"), "0", "{raw} must match no course");
                assert!(html.contains("(unknown)"));
            }
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
