//! `tmctl bench --ui`: how fast the UI's pages and the JSON API answer over a long history.
//!
//! A fresh state DB (SQLite by default, or a throwaway PostgreSQL database) is seeded with
//! 2,000 finished daily runs of a 50-task DAG — 100,000 task instances with one try each and its
//! log — plus a few backfills and ingestion registry rows (`store::seed`). A daemon is started
//! in-process on a free port, and every page is requested `--requests` times by `--concurrency`
//! concurrent HTTP clients (reqwest, in this process: no `oha`/`wrk` is needed). Each latency is
//! from sending the request to having read the whole body; p50/p99 are reported per page against
//! the 200 ms target. Pages that answer 404 (not built yet) are listed as skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;

use crate::config::Settings;
use crate::store::Store;
use crate::store::seed::{SeedCounts, SeedSpec};

/// Each page must answer within this (p99) on this machine (issue 5, item 6).
pub const TARGET_MS: f64 = 200.0;

const DAG_ID: &str = "ui_bench";
const LEVELS: usize = 5;
const WIDTH: usize = 10;

/// What to measure.
#[derive(Debug, Clone)]
pub struct UiBenchOptions {
    /// `sqlite` or `postgres`.
    pub db: String,
    /// PostgreSQL server for `--db postgres` (a throwaway database is created and dropped).
    pub pg_url: String,
    /// Requests per page (after 3 warm-up requests).
    pub requests: usize,
    /// Concurrent HTTP clients.
    pub concurrency: usize,
    /// Runs to seed (50 task instances and tries each).
    pub runs: usize,
    /// How the clients are let in.
    pub session: SessionMode,
    pub json: bool,
}

/// How `bench --ui` gets past the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// Logged in through the login form; the session is checked as every daemon does.
    #[default]
    Login,
    /// Logged in, with the daemon's session cache off: every request reads its session from
    /// the state DB (what a login cost before the cache).
    LoginNoCache,
    /// No login, `web.anonymous_read = true`: no session at all, the cost of a page before
    /// logins existed.
    Anonymous,
}

impl SessionMode {
    fn describe(self) -> &'static str {
        match self {
            SessionMode::Login => "logged in",
            SessionMode::LoginNoCache => "logged in, session cache off",
            SessionMode::Anonymous => "anonymous read, no session",
        }
    }
}

impl Default for UiBenchOptions {
    fn default() -> Self {
        UiBenchOptions {
            db: "sqlite".into(),
            pg_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            requests: 200,
            concurrency: 4,
            runs: 2_000,
            session: SessionMode::Login,
            json: false,
        }
    }
}

/// The figures of one page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageTiming {
    pub page: String,
    pub path: String,
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub bytes: usize,
    pub under_target: bool,
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UiBenchReport {
    pub db: String,
    pub build: &'static str,
    pub seeded: SeedCounts,
    pub seed_seconds: f64,
    pub concurrency: usize,
    pub session: SessionMode,
    pub pages: Vec<PageTiming>,
    /// `(page, path, status)` of pages not measured (404: not there; others: failing).
    pub skipped: Vec<(String, String, u16)>,
}

/// The 50-task DAG: `LEVELS` levels of `WIDTH` `noop` tasks, each depending on two of the level
/// above. Returns the TOML and the `(task_id, kind)` list in topological order.
fn bench_dag() -> (String, Vec<(String, String)>) {
    let mut toml =
        format!("id = \"{DAG_ID}\"\ndescription = \"tmctl bench --ui: 50 noop tasks\"\ntimezone = \"UTC\"\n");
    let mut tasks = Vec::new();
    for l in 0..LEVELS {
        for i in 0..WIDTH {
            let id = format!("l{l}_t{i:02}");
            toml.push_str(&format!("\n[[task]]\nid = \"{id}\"\nkind = \"noop\"\n"));
            if l > 0 {
                let (a, b) = (format!("l{}_t{i:02}", l - 1), format!("l{}_t{:02}", l - 1, (i + 1) % WIDTH));
                toml.push_str(&format!("depends_on = [\"{a}\", \"{b}\"]\n"));
            }
            tasks.push((id, "noop".to_string()));
        }
    }
    (toml, tasks)
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// An HTTP client that sends the session cookie `cookie` (if any) with every request.
fn client_with(cookie: &str) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if !cookie.is_empty() {
        headers.insert(reqwest::header::COOKIE, reqwest::header::HeaderValue::from_str(cookie)?);
    }
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(60)).default_headers(headers).build()?)
}

/// Logs in through the login form like a browser and returns the session cookie (`name=value`),
/// so pages are measured as a logged-in user sees them (session lookup included).
async fn login_cookie(base_url: &str, user: &str, password: &str) -> Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = client.get(format!("{base_url}/login")).send().await?;
    let cookie_of = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|kv| kv.starts_with(&format!("{name}=")))
            .map(str::to_string)
    };
    let login_cookie = cookie_of(&page, "tm_login_csrf").context("the login page set no tm_login_csrf cookie")?;
    let csrf = login_cookie.split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default();
    let resp = client
        .post(format!("{base_url}/login"))
        .header(reqwest::header::COOKIE, &login_cookie)
        .form(&[("username", user), ("password", password), ("csrf", &csrf), ("next", "/")])
        .send()
        .await?;
    cookie_of(&resp, "tm_session").with_context(|| format!("login as {user} failed: {}", resp.status()))
}

/// Requests `url` `n` times from `concurrency` clients; latencies in ms (sorted) and body size.
async fn hammer(url: &str, cookie: &str, n: usize, concurrency: usize) -> Result<(Vec<f64>, usize)> {
    let concurrency = concurrency.clamp(1, n.max(1));
    let mut set = tokio::task::JoinSet::new();
    for c in 0..concurrency {
        let share = n / concurrency + usize::from(c < n % concurrency);
        let url = url.to_string();
        let client = client_with(cookie)?;
        set.spawn(async move {
            let mut times = Vec::with_capacity(share);
            let mut bytes = 0;
            for _ in 0..share {
                let started = Instant::now();
                let resp = client.get(&url).send().await?;
                let status = resp.status();
                let body = resp.bytes().await?;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                if !status.is_success() {
                    bail!("GET {url}: {status}");
                }
                bytes = body.len();
            }
            Ok::<_, anyhow::Error>((times, bytes))
        });
    }
    let mut all = Vec::with_capacity(n);
    let mut bytes = 0;
    while let Some(r) = set.join_next().await {
        let (times, b) = r.context("bench client panicked")??;
        all.extend(times);
        bytes = bytes.max(b);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    Ok((all, bytes))
}

/// Seeds, serves, measures; returns the report (also printed unless `json`).
pub async fn run(base: &Settings, opts: &UiBenchOptions) -> Result<UiBenchReport> {
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    let stamp = format!("{}_{}", std::process::id(), chrono::Utc::now().timestamp_subsec_nanos());
    let home = std::env::temp_dir().join(format!("tmctl-bench-ui-{stamp}"));
    let _cleanup = TempDir(home.clone());
    let dags_dir = home.join("dags");
    std::fs::create_dir_all(&dags_dir).with_context(|| format!("cannot create {}", dags_dir.display()))?;
    let (dag_toml, tasks) = bench_dag();
    std::fs::write(dags_dir.join(format!("{DAG_ID}.toml")), dag_toml)?;

    let (url, pg) = match opts.db.as_str() {
        "sqlite" => (crate::config::sqlite_url(&home.join("tm.db")), None),
        "postgres" => {
            let name = format!("tmbench_ui_{stamp}");
            let url = crate::store::admin::create_postgres_database(&opts.pg_url, &name).await?;
            (url, Some(name))
        }
        other => bail!("--db `{other}` is not one of sqlite, postgres (bench --ui measures one)"),
    };
    let result = measure(base, opts, &home, &dags_dir, &url, &tasks, build).await;
    if let Some(name) = pg {
        let _ = crate::store::admin::drop_postgres_database(&opts.pg_url, &name).await;
    }
    let report = result?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(report)
}

async fn measure(
    base: &Settings,
    opts: &UiBenchOptions,
    home: &std::path::Path,
    dags_dir: &std::path::Path,
    url: &str,
    tasks: &[(String, String)],
    build: &'static str,
) -> Result<UiBenchReport> {
    let mut settings = base.clone();
    settings.home = home.to_path_buf();
    settings.dags_dir = dags_dir.to_path_buf();
    settings.database_url = url.to_string();
    if settings.api_token.is_empty() {
        settings.api_token = "bench-ui-token".into();
    }
    // The config admin logs in with the API token as password.
    settings.web_password_hash = String::new();
    settings.web_anonymous_read = opts.session == SessionMode::Anonymous;
    let settings = Arc::new(settings);
    let store = Store::connect(url, settings.database_max_connections).await?;
    if opts.session == SessionMode::LoginNoCache {
        store.set_session_cache_ttl(Duration::ZERO);
    }

    eprintln!("seeding {} runs x {} tasks ...", opts.runs, tasks.len());
    let started = Instant::now();
    let spec = SeedSpec {
        dag_id: DAG_ID,
        tasks,
        runs: opts.runs,
        first_date: NaiveDate::from_ymd_opt(2020, 1, 1).context("date")?,
        fail_every: 37,
        backfills: 4,
        backfill_len: 25,
        ingestions: 5_000,
    };
    let seeded = store.seed_history(&spec).await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} runs, {} task instances, {} tries, {} backfills, {} registry rows in {seed_seconds:.1} s",
        seeded.runs, seeded.task_instances, seeded.attempts, seeded.backfills, seeded.ingestions
    );

    let running = crate::daemon::start(settings.clone(), store.clone(), "127.0.0.1:0".parse()?).await?;
    let base_url = format!("http://{}", running.addr);
    let cookie = match opts.session {
        SessionMode::Anonymous => Ok(String::new()),
        SessionMode::Login | SessionMode::LoginNoCache => {
            login_cookie(&base_url, &settings.web_user, &settings.api_token).await
        }
    };
    let result = match cookie {
        Ok(cookie) => {
            measure_pages(&base_url, &cookie, &store, tasks, seeded.backfill_ids.first().copied(), opts).await
        }
        Err(e) => Err(e),
    };
    running.stop().await;
    store.close().await;
    let (pages, skipped) = result?;
    Ok(UiBenchReport {
        db: opts.db.clone(),
        build,
        seeded,
        seed_seconds,
        concurrency: opts.concurrency,
        session: opts.session,
        pages,
        skipped,
    })
}

type Measured = (Vec<PageTiming>, Vec<(String, String, u16)>);

async fn measure_pages(
    base_url: &str,
    cookie: &str,
    store: &Store,
    tasks: &[(String, String)],
    backfill: Option<i64>,
    opts: &UiBenchOptions,
) -> Result<Measured> {
    // The latest run (the grid's first column) and a task in its middle.
    let runs = store.list_runs(&crate::store::RunFilter { dag_id: Some(DAG_ID), state: None, limit: 1 }).await?;
    let run = runs.first().context("no seeded run")?;
    let task = &tasks[tasks.len() / 2].0;
    let mut pages: Vec<(&str, String)> = vec![
        ("DAG list", "/".into()),
        ("grid", format!("/dags/{DAG_ID}")),
        ("graph", format!("/dags/{DAG_ID}/graph")),
        ("run detail", format!("/runs/{}", run.id)),
        ("task attempts + log", format!("/runs/{}/tasks/{task}", run.id)),
        ("backfills", "/backfills".into()),
        ("ingestion", "/ingestion".into()),
        ("API dags", "/api/v1/dags".into()),
        ("API runs", format!("/api/v1/dags/{DAG_ID}/runs")),
    ];
    if let Some(id) = backfill {
        pages.insert(6, ("backfill detail", format!("/backfills/{id}")));
    }
    let client = client_with(cookie)?;
    // Deep history: the grid's next page (its "older runs" link) and the oldest run.
    let grid = client.get(format!("{base_url}/dags/{DAG_ID}")).send().await?.text().await.unwrap_or_default();
    let older_prefix = format!("href=\"/dags/{DAG_ID}?before=");
    if let Some(at) = grid.find(&older_prefix) {
        let rest = &grid[at + "href=\"".len()..];
        let href = rest.split('"').next().unwrap_or_default().replace("&amp;", "&");
        pages.insert(2, ("grid, older runs", href));
    } else {
        eprintln!("the grid has no \"older runs\" link: its second page is not measured");
    }
    let all = store
        .list_runs(&crate::store::RunFilter { dag_id: Some(DAG_ID), state: None, limit: opts.runs as i64 })
        .await?;
    if let Some(oldest) = all.iter().min_by_key(|r| r.logical_date) {
        let at = pages.iter().position(|(n, _)| *n == "task attempts + log").map_or(pages.len(), |i| i + 1);
        pages.insert(at, ("run detail, oldest run", format!("/runs/{}", oldest.id)));
    }
    let mut timings = Vec::new();
    let mut skipped = Vec::new();
    for (name, path) in pages {
        let url = format!("{base_url}{path}");
        let status = client.get(&url).send().await?.status();
        if !status.is_success() {
            eprintln!("{name} ({path}): {status}, not measured");
            skipped.push((name.to_string(), path, status.as_u16()));
            continue;
        }
        hammer(&url, cookie, 3, 1).await?;
        let (times, bytes) = hammer(&url, cookie, opts.requests.max(1), opts.concurrency).await?;
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let t = PageTiming {
            page: name.to_string(),
            path,
            requests: times.len(),
            p50_ms: percentile(&times, 50.0),
            p99_ms: percentile(&times, 99.0),
            max_ms: times.last().copied().unwrap_or(0.0),
            mean_ms: mean,
            bytes,
            under_target: percentile(&times, 99.0) < TARGET_MS,
        };
        if !opts.json {
            eprintln!("{name}: p50 {:.1} ms, p99 {:.1} ms", t.p50_ms, t.p99_ms);
        }
        timings.push(t);
    }
    Ok((timings, skipped))
}

fn print_report(r: &UiBenchReport) {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["page", "path", "requests", "p50", "p99", "max", "size", "p99 < 200 ms"]);
    for p in &r.pages {
        t.add_row([
            p.page.clone(),
            p.path.clone(),
            p.requests.to_string(),
            format!("{:.1} ms", p.p50_ms),
            format!("{:.1} ms", p.p99_ms),
            format!("{:.1} ms", p.max_ms),
            format!("{:.1} KiB", p.bytes as f64 / 1024.0),
            if p.under_target { "yes".into() } else { "NO".into() },
        ]);
    }
    println!("{t}");
    println!(
        "state DB {} ({} build): {} runs, {} task instances, {} tries (with logs), {} backfills, {} registry rows, \
         seeded in {:.1} s; {} concurrent clients, {}; latency = request sent to body read, measured in-process with \
         reqwest (no oha/wrk on this machine).",
        r.db,
        r.build,
        r.seeded.runs,
        r.seeded.task_instances,
        r.seeded.attempts,
        r.seeded.backfills,
        r.seeded.ingestions,
        r.seed_seconds,
        r.concurrency,
        r.session.describe()
    );
    for (name, path, status) in &r.skipped {
        println!("not measured: {name} ({path}) answered {status}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_dag_has_fifty_tasks_in_topological_order() {
        let (toml, tasks) = bench_dag();
        assert_eq!(tasks.len(), 50);
        assert!(toml.contains("depends_on = [\"l3_t09\", \"l3_t00\"]"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}
