//! The web UI's run views and actions against a daemon started in-process (port 0), on SQLite and
//! PostgreSQL, driven over HTTP with a hand-kept cookie jar: log in, trigger through the generated
//! form, see the run in the grid, open a task's log, clear (+ downstream) and mark tasks,
//! pause/unpause, cancel a backfill; every action answers 401 without a session and 403 with a
//! bad CSRF token; DAG text, params and task ids from users come out escaped.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use tmctl::config::{Overrides, Settings};
use tmctl::store::{IngestStatus, NewIngestion, RunState, Store};

const TOKEN: &str = "ui-test-token-0123456789";

const DAG: &str = r#"
id = "web"
description = "runs for the <b>UI</b> test"
timezone = "Europe/Berlin"
schedule = "0 6 * * *"
start_date = "2025-01-01"

[params]
label = { type = "string", default = "plain", description = "echoed by the tasks" }
n = { type = "integer", default = 1 }
ratio = { type = "number", default = 0.5 }
loud = { type = "boolean", default = false }
day = { type = "date", default = "2025-01-01" }

[[task]]
id = "start"
kind = "noop"

[[task]]
id = "mid"
kind = "command"
program = "/bin/sh"
args = ["-c", "echo label is $0", "{{ params.label }}"]
depends_on = ["start"]

[[task]]
id = "end"
kind = "noop"
depends_on = ["mid"]
"#;

/// A client that follows no redirects and keeps the cookies it is given, by hand.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(base: String) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Browser { http, base, cookies: BTreeMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep_cookies(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(SET_COOKIE) {
            let text = v.to_str().expect("cookie text");
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        self.keep_cookies(&resp);
        let status = resp.status();
        let location = resp.headers().get(LOCATION).map(|v| v.to_str().unwrap_or_default().to_string());
        Page { status, location, body: resp.text().await.expect("body") }
    }

    async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.finish(resp).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.finish(resp).await
    }
}

/// `s` as askama escapes it for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&#38;").replace('<', "&#60;").replace('>', "&#62;").replace('"', "&#34;").replace('\'', "&#39;")
}

/// The value of the first `name="csrf" value="…"` input in a page.
fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf input");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end of value")].to_string()
}

async fn wait_for_run(store: &Store, run_pk: i64, want: RunState) -> tmctl::store::RunRow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = store.get_run(run_pk).await.expect("read run").expect("run exists");
        if run.state == want {
            return run;
        }
        assert!(Instant::now() < deadline, "run {run_pk} is {} after 30 s, expected {want}", run.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn task_state(store: &Store, run_pk: i64, task: &str) -> (Option<String>, u32) {
    let tis = store.list_task_instances(run_pk).await.expect("task instances");
    match tis.iter().find(|t| t.task_id == task) {
        Some(ti) => (ti.state.map(|s| s.as_str().to_string()), ti.try_number),
        None => (None, 0),
    }
}

/// Settings of a daemon on `home` whose DAGs directory holds one file `name` with `text`, with
/// the test API token and `extra` settings.
fn settings_with_dag(home: &std::path::Path, name: &str, text: &str, extra: &[(&str, &str)]) -> Arc<Settings> {
    let dags = home.join("dags");
    std::fs::create_dir_all(&dags).expect("dags dir");
    std::fs::write(dags.join(name), text).expect("write DAG");
    let env: BTreeMap<String, String> =
        [("TM_API_TOKEN", TOKEN)].iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let overrides = Overrides { home: Some(home.to_path_buf()), dags_dir: Some(dags), ..Overrides::default() };
    Arc::new(Settings::load_with(&overrides, &env).expect("settings"))
}

/// A run of `dag_id` for `ds` (logical date at `hour`, a one-day interval), written straight to
/// the store and left `running`.
async fn seed_running_run(
    store: &Store,
    dag_id: &str,
    run_type: tmctl::store::RunType,
    ds: chrono::NaiveDate,
    hour: u32,
) -> tmctl::store::RunRow {
    let t = ds.and_hms_opt(hour, 0, 0).unwrap().and_utc();
    let conf = serde_json::json!({});
    let run = store
        .create_run(&tmctl::store::NewRun {
            dag_id,
            run_type,
            logical_date: t,
            ds,
            data_interval_start: t,
            data_interval_end: t + chrono::Duration::days(1),
            conf: &conf,
            backfill_id: None,
            hold: None,
        })
        .await
        .unwrap();
    store.set_run_state(run.id, RunState::Running).await.unwrap();
    run
}

async fn run_views_and_actions(db: common::TestDb) {
    let home = tempfile::tempdir().expect("home");
    let settings =
        settings_with_dag(home.path(), "web.toml", DAG, &[("TM_DAEMON_LEASE", "3s"), ("TM_SHUTDOWN_GRACE", "1s")]);
    let store = common::open(&db).await;
    let running = tmctl::daemon::start(settings, store.clone(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("daemon starts");
    let mut b = Browser::new(format!("http://{}", running.addr));
    let be = db.backend;

    // Pages need a login: the DAG list sends an anonymous visitor to the login page.
    let anonymous = b.get("/").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER, "{be}: {}", anonymous.body);
    assert_eq!(anonymous.location.as_deref(), Some("/login?next=%2F"), "{be}");

    // Every action: 401 without a session.
    let actions: [(&str, Vec<(&str, &str)>); 7] = [
        ("/dags/web/trigger", vec![("logical_date", "2025-03-01")]),
        ("/dags/web/pause", vec![]),
        ("/dags/web/unpause", vec![]),
        ("/runs/1/tasks/mid/clear", vec![("downstream", "true")]),
        ("/runs/1/tasks/mid/mark", vec![("state", "success")]),
        ("/runs/1/tasks/mid/mark", vec![("state", "failed")]),
        ("/backfills/1/cancel", vec![]),
    ];
    for (path, fields) in &actions {
        let mut form = fields.clone();
        form.push(("csrf", "whatever"));
        let p = b.post(path, &form).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{be}: POST {path} without login: {}", p.body);
    }

    // Log in: the login form's double-submit cookie, the API token as password.
    let login = b.get("/login").await;
    let login_csrf = csrf_of(&login.body);
    assert!(b.cookies.contains_key("tm_login_csrf"));
    let p = b.post("/login", &[("username", "admin"), ("password", TOKEN), ("csrf", &login_csrf), ("next", "/")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{be}: login: {}", p.body);
    assert!(b.cookies.contains_key("tm_session"), "{be}: a session cookie after login");
    let home_page = b.get("/").await;
    assert_eq!(home_page.status, StatusCode::OK, "{be}: {}", home_page.body);
    assert!(home_page.body.contains(r#"href="/dags/web""#), "{be}: DAG list links the grid");
    assert!(
        home_page.body.contains(&esc("runs for the <b>UI</b> test")),
        "{be}: description is escaped: {}",
        home_page.body
    );
    assert!(home_page.body.contains("0 6 * * *") && home_page.body.contains("Europe/Berlin"));
    assert!(home_page.body.contains("CET") || home_page.body.contains("CEST"), "{be}: next run in the DAG's zone");
    let csrf = csrf_of(&home_page.body);
    assert!(home_page.body.contains(">Pause</button>"), "{be}: pause buttons once logged in");

    // Every action: 403 with a bad CSRF token.
    for (path, fields) in &actions {
        let mut form = fields.clone();
        form.push(("csrf", "not-the-token"));
        let p = b.post(path, &form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{be}: POST {path} with a bad CSRF token: {}", p.body);
    }

    // The trigger form is generated from the params.
    let form = b.get("/dags/web/trigger").await;
    assert_eq!(form.status, StatusCode::OK);
    for needle in [
        r#"type="date" name="logical_date""#,
        r#"type="text" name="param.label" value="plain""#,
        r#"type="number" name="param.n" value="1" step="1""#,
        r#"type="number" name="param.ratio" value="0.5" step="any""#,
        r#"name="param.loud""#,
        r#"type="date" name="param.day" value="2025-01-01""#,
    ] {
        assert!(form.body.contains(needle), "{be}: trigger form lacks {needle}:\n{}", form.body);
    }

    // Bad input re-renders the form naming the param, keeping what was typed.
    let bad = b
        .post(
            "/dags/web/trigger",
            &[("csrf", &csrf), ("logical_date", "2025-03-01"), ("param.n", "lots"), ("param.label", "kept")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{be}: {}", bad.body);
    assert!(bad.body.contains("param `n` must be an integer, found `lots`"), "{be}: {}", bad.body);
    assert!(bad.body.contains(r#"value="kept""#), "{be}: the form keeps the typed values");
    let bad = b.post("/dags/web/trigger", &[("csrf", &csrf), ("logical_date", "2025-02-30")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("logical date `2025-02-30` is not a date"), "{be}: {}", bad.body);

    // Trigger: a param value with markup.
    let evil = "<script>alert(1)</script>";
    let p = b
        .post(
            "/dags/web/trigger",
            &[
                ("csrf", &csrf),
                ("logical_date", "2025-03-01"),
                ("param.label", evil),
                ("param.n", "7"),
                ("param.ratio", ""),
                ("param.loud", "true"),
                ("param.day", "2025-02-02"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{be}: trigger: {}", p.body);
    let location = p.location.expect("redirect to the run");
    let run_pk: i64 = location.strip_prefix("/runs/").expect("a run URL").parse().expect("run id");
    let run = wait_for_run(&store, run_pk, RunState::Success).await;
    assert_eq!(run.conf["n"], 7);
    assert_eq!(run.conf["ratio"], 0.5, "an empty field takes the default");
    assert_eq!(run.conf["loud"], true);
    assert_eq!(run.conf["label"], evil);
    assert_eq!(run.ds.to_string(), "2025-03-01");

    // The grid shows it, cells link to the task pages.
    let grid = b.get("/dags/web").await;
    assert_eq!(grid.status, StatusCode::OK);
    for task in ["start", "mid", "end"] {
        assert!(
            grid.body.contains(&format!(r#"class="sq success" href="/runs/{run_pk}/tasks/{task}""#)),
            "{be}: {task} cell"
        );
    }
    assert!(grid.body.find(">start<") < grid.body.find(">mid<") && grid.body.find(">mid<") < grid.body.find(">end<"));

    // Run detail: task table, gantt, conf escaped.
    let detail = b.get(&location).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains(r#"<svg class="gantt""#), "{be}: a gantt chart");
    assert!(detail.body.contains(&esc(evil)), "{be}: conf escaped");
    assert!(!detail.body.contains(evil), "{be}: raw markup from a param must not reach the page");

    // The task page: tries and the log.
    let task = b.get(&format!("/runs/{run_pk}/tasks/mid")).await;
    assert_eq!(task.status, StatusCode::OK);
    assert!(task.body.contains("try 1"), "{be}: {}", task.body);
    assert!(task.body.contains(&esc(&format!("label is {evil}"))), "{be}: log escaped:\n{}", task.body);
    assert!(!task.body.contains(evil));
    assert!(task.body.contains(r#"name="downstream""#), "{be}: clear form on a finished run");

    // A task id with markup: escaped in the 404 page.
    let missing = b.get(&format!("/runs/{run_pk}/tasks/%3Cscript%3Ex%3C%2Fscript%3E")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains(&esc("<script>x</script>")), "{be}: {}", missing.body);
    assert!(!missing.body.contains("<script>x"));

    // The graph, coloured by the run.
    let graph = b.get(&format!("/dags/web/graph?run={run_pk}")).await;
    assert_eq!(graph.status, StatusCode::OK);
    assert!(graph.body.contains(r#"<g class="node success">"#), "{be}: {}", graph.body);
    assert_eq!(graph.body.matches(r#"class="edge""#).count(), 2, "{be}: two edges");

    // Clear `mid` and downstream: they run again (try 2), `start` keeps its one try.
    let p = b.post(&format!("/runs/{run_pk}/tasks/mid/clear"), &[("csrf", &csrf), ("downstream", "true")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{be}: clear: {}", p.body);
    assert_eq!(p.location.as_deref(), Some(location.as_str()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_state(&store, run_pk, "end").await.1 < 2
        || store.get_run(run_pk).await.unwrap().unwrap().state != RunState::Success
    {
        assert!(Instant::now() < deadline, "{be}: the cleared run did not finish again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(task_state(&store, run_pk, "start").await, (Some("success".into()), 1));
    assert_eq!(task_state(&store, run_pk, "mid").await, (Some("success".into()), 2));
    let task = b.get(&format!("/runs/{run_pk}/tasks/mid?try=1")).await;
    assert!(task.body.contains("Log of try 1") && task.body.contains("try 2"), "{be}: both tries listed");

    // Clear without downstream: only that task.
    let p = b.post(&format!("/runs/{run_pk}/tasks/end/clear"), &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_state(&store, run_pk, "end").await.1 < 3
        || store.get_run(run_pk).await.unwrap().unwrap().state != RunState::Success
    {
        assert!(Instant::now() < deadline, "{be}: the cleared task did not run again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(task_state(&store, run_pk, "mid").await.1, 2);

    // Mark failed, then success: the finished run's state follows.
    let p = b.post(&format!("/runs/{run_pk}/tasks/end/mark"), &[("csrf", &csrf), ("state", "failed")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{be}: mark: {}", p.body);
    assert_eq!(task_state(&store, run_pk, "end").await.0.as_deref(), Some("failed"));
    assert_eq!(store.get_run(run_pk).await.unwrap().unwrap().state, RunState::Failed);
    let p = b.post(&format!("/runs/{run_pk}/tasks/end/mark"), &[("csrf", &csrf), ("state", "success")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(store.get_run(run_pk).await.unwrap().unwrap().state, RunState::Success);
    let p = b.post(&format!("/runs/{run_pk}/tasks/end/mark"), &[("csrf", &csrf), ("state", "running")]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{be}: only success/failed can be set");

    // The same through the JSON API (bearer token).
    let api = reqwest::Client::new();
    let r = api
        .post(format!("{}/api/v1/runs/{run_pk}/tasks/end/mark", b.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"state": "failed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["run_state"], "failed");
    let r = api.post(format!("{}/api/v1/runs/{run_pk}/tasks/end/clear", b.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = api
        .post(format!("{}/api/v1/runs/{run_pk}/tasks/end/clear", b.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"downstream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["cleared"], serde_json::json!(["end"]));
    wait_for_run(&store, run_pk, RunState::Success).await;

    // Pause and unpause.
    let p = b.post("/dags/web/pause", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(store.is_paused("web").await.unwrap());
    assert!(b.get("/").await.body.contains(">Unpause</button>"));
    let p = b.post("/dags/web/unpause", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(!store.is_paused("web").await.unwrap());

    // The ingestion registry page, with a filter and a file name with markup.
    store
        .record_ingestion(&NewIngestion {
            layer: "bronze",
            course_id: Some("erinhills"),
            ingest_date: chrono::NaiveDate::from_ymd_opt(2025, 6, 1),
            filename: "<img src=x>.csv",
            sha256: None,
            size_bytes: Some(1_234_567),
            row_count: Some(12_345),
            status: IngestStatus::Rejected,
            reason: Some("bad header"),
            landing_key: None,
            quarantine_key: None,
            run_pk: None,
            task_id: None,
        })
        .await
        .unwrap();
    let reg = b.get("/ingestion?status=rejected&course=erinhills").await;
    assert_eq!(reg.status, StatusCode::OK);
    assert!(reg.body.contains(&esc("<img src=x>.csv")) && !reg.body.contains("<img src=x>"), "{be}: {}", reg.body);
    assert!(reg.body.contains("1.2 MB") && reg.body.contains("12,345"), "{be}: numbers for people");
    assert!(!b.get("/ingestion?status=accepted").await.body.contains("img src"), "{be}: the status filter");
    assert_eq!(b.get("/ingestion?status=bogus").await.status, StatusCode::BAD_REQUEST);

    // A daemon-owned backfill: listed, then cancelled from its page.
    let r = api
        .post(format!("{}/api/v1/backfills", b.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"dag_id": "web", "from": "2025-01-02", "to": "2025-12-31", "max_active_runs": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{be}: {:?}", r.text().await);
    let bf: i64 = r.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap();
    let list = b.get("/backfills").await;
    assert!(list.body.contains(&format!(r#"href="/backfills/{bf}""#)), "{be}: {}", list.body);
    let p = b.post(&format!("/backfills/{bf}/cancel"), &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{be}: cancel: {}", p.body);
    assert_eq!(store.get_backfill(bf).await.unwrap().unwrap().state, "cancelled");
    let page = b.get(&format!("/backfills/{bf}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("cancelled"));
    let p = b.post(&format!("/backfills/{bf}/cancel"), &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{be}: a cancelled backfill cannot be cancelled again");

    // Unknown things are 404 pages, not 500s.
    assert_eq!(b.get("/dags/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/runs/999999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/backfills/999999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/dags/web?before=yesterday").await.status, StatusCode::BAD_REQUEST);

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_views_and_actions_on_sqlite() {
    run_views_and_actions(common::sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_views_and_actions_on_postgres() {
    run_views_and_actions(common::postgres_db().await).await;
}

/// Grid pages are 25 runs long, newest first, and page with `?before=`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_grid_pages_through_runs() {
    let db = common::sqlite_db();
    let home = tempfile::tempdir().expect("home");
    let settings = settings_with_dag(home.path(), "web.toml", DAG, &[]);
    let store = common::open(&db).await;
    // 30 finished runs, written straight to the store.
    for day in 1..=30 {
        let ds = chrono::NaiveDate::from_ymd_opt(2025, 4, day).unwrap();
        let run = seed_running_run(&store, "web", tmctl::store::RunType::Backfill, ds, 4).await;
        store.set_run_state(run.id, RunState::Success).await.unwrap();
    }
    store.set_paused("web", true).await.unwrap();
    let running = tmctl::daemon::start(settings, store.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut b = Browser::new(format!("http://{}", running.addr));
    log_in(&mut b).await;
    let first = b.get("/dags/web").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body.matches(r#"class="ds""#).count(), 25);
    assert!(first.body.contains(">04-30<") && !first.body.contains(">04-05<"));
    let at = first.body.find("?before=").expect("an older-runs link");
    let rest = &first.body[at..];
    let link = format!("/dags/web{}", &rest[..rest.find('"').unwrap()]);
    let second = b.get(&link).await;
    assert_eq!(second.status, StatusCode::OK, "{link}");
    assert_eq!(second.body.matches(r#"class="ds""#).count(), 5);
    assert!(second.body.contains(">04-05<") && second.body.contains(">04-01<") && !second.body.contains(">04-06<"));
    assert!(!second.body.contains("?before="), "no page after the last");
    // The DAG list shows the ten most recent runs as dots.
    let home_page = b.get("/").await;
    assert_eq!(home_page.body.matches(r#"class="dot success""#).count(), 10);
    running.stop().await;
}

/// With 2,000 runs of a 50-task DAG (100,000 task instances and tries, each try with a 2 KB log)
/// every run view renders in well under 200 ms. Seeding takes a while, so it runs on demand:
/// `cargo nextest run --test ui_runs --run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "seeds 100k tries and times pages; the speed target is measured by `tmctl bench --ui`: cargo nextest run --test ui_runs --run-ignored only"]
async fn pages_stay_fast_with_a_long_history() {
    let db = common::sqlite_db();
    let home = tempfile::tempdir().expect("home");
    let mut dag = String::from(
        "id = \"big\"\ndescription = \"50 tasks\"\ntimezone = \"UTC\"\nschedule = \"@daily\"\nstart_date = \"2020-01-01\"\n",
    );
    for i in 0..50 {
        dag.push_str(&format!("\n[[task]]\nid = \"t{i:02}\"\nkind = \"noop\"\n"));
        if i > 0 {
            dag.push_str(&format!("depends_on = [\"t{:02}\"]\n", (i - 1) / 2));
        }
    }
    let settings = settings_with_dag(home.path(), "big.toml", &dag, &[]);
    let store = common::open(&db).await;
    let tasks: Vec<(String, String)> = (0..50).map(|i| (format!("t{i:02}"), "noop".to_string())).collect();
    let spec: Vec<(&str, &str, u32)> = tasks.iter().map(|(t, k)| (t.as_str(), k.as_str(), 1)).collect();
    let log = "a log line of a task try, long enough to matter\n".repeat(40);
    let started = Instant::now();
    let first = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let mut last_run = 0;
    for day in 0..2000 {
        let ds = first + chrono::Duration::days(day);
        let run = seed_running_run(&store, "big", tmctl::store::RunType::Scheduled, ds, 0).await;
        for ti in store.ensure_task_instances(run.id, &spec).await.unwrap() {
            let a = store.start_attempt(&ti, 1, "host", 1).await.unwrap();
            let finish = tmctl::store::AttemptFinish {
                attempt: tmctl::store::AttemptState::Success,
                task: tmctl::store::TaskState::Success,
                error: None,
                output: None,
                log: &log,
                next_retry_at: None,
            };
            store.finish_attempt(a, ti.id, &finish).await.unwrap();
        }
        store.set_run_state(run.id, RunState::Success).await.unwrap();
        last_run = run.id;
    }
    store.set_paused("big", true).await.unwrap();
    eprintln!("seeded 2,000 runs and 100,000 tries in {:?}", started.elapsed());
    let running = tmctl::daemon::start(settings, store.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut b = Browser::new(format!("http://{}", running.addr));
    log_in(&mut b).await;
    let before = "2023-01-01T00:00:00.000000Z";
    let pages = [
        "/".to_string(),
        "/dags/big".into(),
        format!("/dags/big?before={before}"),
        "/dags/big/graph".into(),
        format!("/runs/{last_run}"),
        format!("/runs/{last_run}/tasks/t49"),
        "/dags/big/trigger".into(),
        "/backfills".into(),
        "/ingestion".into(),
    ];
    for page in &pages {
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let p = b.get(page).await;
            times.push(t.elapsed());
            assert_eq!(p.status, StatusCode::OK, "{page}");
        }
        times.sort();
        eprintln!("{page:40} p50 {:>8.1?} max {:>8.1?}", times[10], times[19]);
        assert!(times[10] < Duration::from_millis(200), "{page} takes {:?} (p50)", times[10]);
    }
    running.stop().await;
}

/// Logs in through the form (the API token is the password) and returns the session's CSRF token.
async fn log_in(b: &mut Browser) -> String {
    let login = b.get("/login").await;
    let login_csrf = csrf_of(&login.body);
    let p = b.post("/login", &[("username", "admin"), ("password", TOKEN), ("csrf", &login_csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "login: {}", p.body);
    csrf_of(&b.get("/").await.body)
}

/// While a task runs, its page tails the log (app.js) and offers no clear/mark; the actions are
/// refused with 409 until the run has finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_task_is_tailed_and_cannot_be_cleared_yet() {
    let db = common::sqlite_db();
    let home = tempfile::tempdir().expect("home");
    let dag = "id = \"slow\"\ntimezone = \"UTC\"\nstart_date = \"2025-01-01\"\n\n[[task]]\nid = \"nap\"\nkind = \"sleep\"\n\
               duration = \"3s\"\n\n[[task]]\nid = \"after\"\nkind = \"noop\"\ndepends_on = [\"nap\"]\n";
    let settings = settings_with_dag(home.path(), "slow.toml", dag, &[]);
    let store = common::open(&db).await;
    let running = tmctl::daemon::start(settings, store.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut b = Browser::new(format!("http://{}", running.addr));
    let csrf = log_in(&mut b).await;
    let p = b.post("/dags/slow/trigger", &[("csrf", &csrf), ("logical_date", "2025-05-05")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let run_pk: i64 = p.location.unwrap().trim_start_matches("/runs/").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while task_state(&store, run_pk, "nap").await.0.as_deref() != Some("running") {
        assert!(Instant::now() < deadline, "the task did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = b.get(&format!("/runs/{run_pk}/tasks/nap")).await;
    assert!(
        page.body.contains(&format!(r#"data-tail="/api/v1/runs/{run_pk}/tasks/nap" data-try="1""#)),
        "{}",
        page.body
    );
    assert!(page.body.contains("once the run has finished") && !page.body.contains(">Clear</button>"));
    assert!(b.get("/dags/slow").await.body.contains(r#"class="sq running""#));
    let p = b.post(&format!("/runs/{run_pk}/tasks/nap/clear"), &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    let p = b.post(&format!("/runs/{run_pk}/tasks/nap/mark"), &[("csrf", &csrf), ("state", "success")]).await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    // Triggering the same date again while it runs is a conflict shown on the form.
    let p = b.post("/dags/slow/trigger", &[("csrf", &csrf), ("logical_date", "2025-05-05")]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("already"), "{}", p.body);
    wait_for_run(&store, run_pk, RunState::Success).await;
    let page = b.get(&format!("/runs/{run_pk}/tasks/nap")).await;
    assert!(!page.body.contains("data-tail") && page.body.contains(">Clear</button>"));
    running.stop().await;
}
