//! `GET /metrics` and `GET /api/v1/openapi.json` end to end, on an in-process daemon on port 0
//! (real HTTP). Metrics are scraped before and after a run of a DAG with a task that succeeds on
//! its third try and one that fails for good; the counters must move by exactly what the run did.
//! Also: the login rules of `/metrics`, and that the OpenAPI document and the router agree on
//! every path (and method) under `/api/v1`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tmctl::config::{Overrides, Settings};
use tmctl::store::Store;

const TOKEN: &str = "metrics-token-0123456789";

/// `start` once; `flaky` fails twice, then succeeds (3 tries); `boom` fails both its tries;
/// `after` is `upstream_failed` (no try). The failure is mailed to a recipient, so one alert
/// waits in the outbox (no SMTP host).
const DAG: &str = r#"
id = "metered"
[defaults]
retry_delay = "50ms"
retry_backoff = "fixed"
email = ["oncall@example.com"]

[[task]]
id = "start"
kind = "noop"

[[task]]
id = "flaky"
kind = "fail"
times = 2
retries = 2
depends_on = ["start"]

[[task]]
id = "boom"
kind = "fail"
times = 99
retries = 1
depends_on = ["start"]

[[task]]
id = "after"
kind = "noop"
depends_on = ["boom"]
"#;

async fn start(home: &Path, db: &common::TestDb, anonymous_read: bool) -> tmctl::daemon::Running {
    let dags = home.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(dags.join("metered.toml"), DAG).unwrap();
    let overrides = Overrides { config_file: None, home: Some(home.to_path_buf()), dags_dir: Some(dags) };
    let env: BTreeMap<String, String> = [
        ("TM_DATABASE_URL", db.url.as_str()),
        ("TM_API_TOKEN", TOKEN),
        ("TM_SMTP_HOST", ""),
        ("TM_WEB_ANONYMOUS_READ", if anonymous_read { "true" } else { "false" }),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::load_with(&overrides, &env).expect("settings");
    let store = Store::connect(&settings.database_url, 4).await.expect("state DB");
    tmctl::daemon::start(Arc::new(settings), store, "127.0.0.1:0".parse().unwrap()).await.expect("daemon")
}

/// The samples of an exposition text: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(http: &reqwest::Client, base: &str) -> BTreeMap<String, f64> {
    let resp = http.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    samples(&text)
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, key: &str) -> f64 {
    let a = after.get(key).copied().unwrap_or_else(|| panic!("no sample `{key}` in {after:#?}"));
    a - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_moves_the_counters_by_exactly_what_it_did() {
    for db in common::both().await {
        let home = tempfile::tempdir().unwrap();
        let daemon = start(home.path(), &db, false).await;
        let base = format!("http://{}", daemon.addr);
        let http = reqwest::Client::new();

        // No caller, no metrics: a 401 (not a redirect to the login page).
        let anon = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(anon.status().as_u16(), 401, "{}", db.backend);
        let bad = http.get(format!("{base}/metrics")).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(bad.status().as_u16(), 401, "{}", db.backend);

        let before = scrape(&http, &base).await;
        assert_eq!(before.get("tmctl_runs_queued"), Some(&0.0), "{}", db.backend);
        for kind in ["get", "put", "list", "delete"] {
            assert!(before.contains_key(&format!("tmctl_s3_requests_total{{kind=\"{kind}\"}}")), "{before:#?}");
        }

        let resp = http
            .post(format!("{base}/api/v1/dags/metered/runs"))
            .bearer_auth(TOKEN)
            .json(&json!({ "logical_date": "2025-03-04" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{}", db.backend);
        let run: Value = resp.json().await.unwrap();
        let run_id = run["id"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r: Value = http
                .get(format!("{base}/api/v1/runs/{run_id}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["state"] == "failed" {
                break;
            }
            assert!(Instant::now() < deadline, "{}: run did not finish: {r}", db.backend);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let after = scrape(&http, &base).await;
        let d = |key: &str| delta(&before, &after, key);
        assert_eq!(d("tmctl_runs_total{dag=\"metered\",state=\"failed\"}"), 1.0, "{}", db.backend);
        assert!(!after.contains_key("tmctl_runs_total{dag=\"metered\",state=\"success\"}"), "{after:#?}");
        // start 1 + flaky's third try; flaky's first two and boom's first; boom's second.
        assert_eq!(d("tmctl_task_tries_total{dag=\"metered\",state=\"success\"}"), 2.0, "{}", db.backend);
        assert_eq!(d("tmctl_task_tries_total{dag=\"metered\",state=\"up_for_retry\"}"), 3.0, "{}", db.backend);
        assert_eq!(d("tmctl_task_tries_total{dag=\"metered\",state=\"failed\"}"), 1.0, "{}", db.backend);
        assert_eq!(d("tmctl_task_try_duration_seconds_count{dag=\"metered\",kind=\"noop\"}"), 1.0);
        assert_eq!(d("tmctl_task_try_duration_seconds_count{dag=\"metered\",kind=\"fail\"}"), 5.0);
        let took = d("tmctl_task_try_duration_seconds_sum{dag=\"metered\",kind=\"fail\"}");
        assert!((0.0..30.0).contains(&took), "{took}");
        // Nothing waits in the queue; boom's failure waits in the outbox (no SMTP host).
        assert_eq!(after.get("tmctl_runs_queued"), Some(&0.0), "{}", db.backend);
        assert_eq!(d("tmctl_alert_outbox{state=\"pending\"}"), 1.0, "{}", db.backend);
        assert_eq!(after.get("tmctl_alert_outbox{state=\"failed\"}"), Some(&0.0), "{}", db.backend);
        // A manual run is not scheduled and no lease was taken over.
        assert!(!after.keys().any(|k| k.starts_with("tmctl_scheduler_lag_seconds_count")), "{after:#?}");
        assert_eq!(after.get("tmctl_lease_takeovers_total"), Some(&0.0));
        daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_read_opens_metrics_to_anyone() {
    let db = common::sqlite_db();
    let home = tempfile::tempdir().unwrap();
    let daemon = start(home.path(), &db, true).await;
    let http = reqwest::Client::new();
    let resp = http.get(format!("http://{}/metrics", daemon.addr)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("tmctl_runs_queued 0"));
    // Reads only: a POST is still refused.
    let post = http.post(format!("http://{}/metrics", daemon.addr)).send().await.unwrap();
    assert_eq!(post.status().as_u16(), 401);
    daemon.stop().await;
}

/// The paths the daemon's real router serves, read from its `Debug` form (axum prints the path
/// of every route it holds), so a route added beside the documented ones would show up here.
fn served_paths(router: &axum::Router) -> std::collections::BTreeSet<String> {
    let text = format!("{router:?}");
    text.split('"').skip(1).step_by(2).filter(|s| s.starts_with('/')).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_the_router_agree_on_every_api_path() {
    let db = common::sqlite_db();
    let home = tempfile::tempdir().unwrap();
    let daemon = start(home.path(), &db, false).await;
    let base = format!("http://{}", daemon.addr);
    let http = reqwest::Client::new();

    // The document is a read like any other: 401 without a caller.
    let anon = http.get(format!("{base}/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    let resp = http.get(format!("{base}/api/v1/openapi.json")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object(), "{doc}");
    let documented: BTreeMap<String, Vec<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, ops)| (path.clone(), ops.as_object().unwrap().keys().cloned().collect()))
        .collect();

    // Every path the router serves under /api/v1 is documented, and every documented one served.
    let router = tmctl::daemon::api::router(daemon.daemon.clone());
    let served: std::collections::BTreeSet<String> =
        served_paths(&router).into_iter().filter(|p| p.starts_with("/api/v1/") || p == "/api/v1").collect();
    assert!(served.len() >= 18, "the Debug walk found too few routes: {served:?}");
    let documented_paths: std::collections::BTreeSet<String> = documented.keys().cloned().collect();
    assert_eq!(served, documented_paths, "served (left) and documented (right) /api/v1 paths differ");

    // Every documented method answers on its path: a handler's own answer (JSON, even for 4xx),
    // never the router's 404 or 405. Path parameters get values that exist or are harmlessly
    // missing; bodies are empty objects (so mutations are refused as bad requests).
    let mut calls = 0;
    for (path, methods) in &documented {
        let url = path
            .replace("{dag_id}", "metered")
            .replace("{run_pk}", "999999")
            .replace("{task_id}", "start")
            .replace("{id}", "999999")
            .replace("{action}", "pause")
            .replace("{username}", "nobody");
        assert!(!url.contains('{'), "a path parameter of {path} has no test value");
        for method in methods {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = http.request(m.clone(), format!("{base}{url}")).bearer_auth(TOKEN);
            if m == reqwest::Method::POST && !url.ends_with("/pause") && !url.ends_with("/unpause") {
                req = req.json(&json!({}));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let json_answer = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("application/json"));
            assert_ne!(status, 405, "{method} {url}: the router does not serve this documented method");
            assert!(status != 404 || json_answer, "{method} {url}: the router has no such documented path");
            calls += 1;
        }
    }
    assert!(calls >= 20, "{calls}");
    daemon.stop().await;
}
