//! `tmctl serve` end to end: the real binary as daemon processes (one or two, on SQLite or on the
//! machine's PostgreSQL), driven through its HTTP API and the CLI, checked through the state DB.
//! Covers cron scheduling, `dags next` across DST, the API's token rules, daemon-owned backfills,
//! data-aware chaining, graceful shutdown, kill -9 in the middle of a silver backfill, and two
//! daemons sharing the work on PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::serve::ServeProcess;

use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};
use tmctl::store::{RunFilter, RunState, Store};

const BIN: &str = env!("CARGO_BIN_EXE_tmctl");
const TOKEN: &str = "test-token-0123456789";

fn repo_dags() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dags")
}

/// A home directory, a DAG directory and a state DB shared by the daemons and CLI calls of a test.
struct Env {
    home: tempfile::TempDir,
    dags: PathBuf,
    db: common::TestDb,
    extra: Vec<(String, String)>,
}

impl Env {
    fn new(db: common::TestDb, dags: &[(&str, &str)]) -> Env {
        let home = tempfile::tempdir().expect("temp dir");
        let dir = home.path().join("dags");
        std::fs::create_dir_all(&dir).expect("dags dir");
        for (name, text) in dags {
            std::fs::write(dir.join(name), text).expect("write DAG");
        }
        Env { home, dags: dir, db, extra: Vec::new() }
    }

    fn with_dags_dir(mut self, dir: PathBuf) -> Env {
        self.dags = dir;
        self
    }

    fn env(mut self, key: &str, value: &str) -> Env {
        self.extra.push((key.into(), value.into()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("TM_HOME", self.home.path())
            .env("TM_DAGS_DIR", &self.dags)
            .env("TM_API_TOKEN", TOKEN)
            .env("TM_DAEMON_LEASE", "3s")
            .env("TM_SHUTDOWN_GRACE", "2s")
            .env("TM_LOG", "info");
        if self.db.backend == "postgres" {
            c.env("TM_DATABASE_URL", &self.db.url);
        }
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    /// Runs `tmctl ARGS` to the end; returns (exit code, stdout, stderr).
    fn tmctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command().args(args).output().expect("run tmctl");
        common::outcome(out)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.tmctl(args);
        assert_eq!(code, 0, "tmctl {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
        out
    }

    fn serve(&self) -> Daemon {
        let log = self.home.path().join(format!("serve-{}.log", SERVES.fetch_add(1, Ordering::SeqCst)));
        ServeProcess::spawn(self.command(), log)
    }

    async fn store(&self) -> Store {
        let url = if self.db.backend == "postgres" {
            self.db.url.clone()
        } else {
            tmctl::config::sqlite_url(&self.home.path().join("tm.db"))
        };
        Store::connect(&url, 4).await.expect("state DB")
    }
}

type Daemon = ServeProcess;

/// Numbers the log files of the daemons a test starts.
static SERVES: AtomicUsize = AtomicUsize::new(0);

/// How often `eventually` polls.
const POLL: Duration = Duration::from_millis(100);

/// Triggers a run of `dag` for `date` through the API (asserting 201); returns the run's id.
async fn trigger(http: &reqwest::Client, base: &str, dag: &str, date: &str) -> i64 {
    let r = http
        .post(format!("{base}/api/v1/dags/{dag}/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({ "logical_date": date }))
        .send()
        .await
        .expect("trigger");
    assert_eq!(r.status(), 201, "trigger {dag} {date}");
    r.json::<Value>().await.expect("run JSON")["id"].as_i64().expect("run id")
}

/// A client sending the test's API token (the config admin's) with every request.
fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {TOKEN}").parse().expect("header"));
    reqwest::Client::builder().timeout(Duration::from_secs(10)).default_headers(headers).build().expect("http client")
}

const NOOP_DAG: &str = r#"
id = "hello"
[params]
k = 0
[[task]]
id = "a"
kind = "noop"
[[task]]
id = "b"
kind = "sleep"
duration = "200ms"
depends_on = ["a"]
"#;

// ---- dags next across DST -----------------------------------------------------------------------

fn next(env: &Env, dag: &str, after: &str, count: usize) -> Vec<String> {
    env.ok(&["dags", "next", dag, "--after", after, "--count", &count.to_string()])
        .lines()
        .map(str::to_string)
        .collect()
}

fn dst_dag(id: &str, schedule: &str, tz: &str) -> String {
    format!("id = \"{id}\"\nschedule = \"{schedule}\"\ntimezone = \"{tz}\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\n")
}

#[test]
fn dags_next_follows_the_dst_policy() {
    let dags = [
        ("chi_daily.toml", dst_dag("chi_daily", "30 2 * * *", "America/Chicago")),
        ("chi_daily_fb.toml", dst_dag("chi_daily_fb", "30 1 * * *", "America/Chicago")),
        ("chi_hourly.toml", dst_dag("chi_hourly", "0 * * * *", "America/Chicago")),
        ("chi_30.toml", dst_dag("chi_30", "*/30 * * * *", "America/Chicago")),
        ("lon_hourly.toml", dst_dag("lon_hourly", "0 * * * *", "Europe/London")),
        ("lon_30.toml", dst_dag("lon_30", "*/30 * * * *", "Europe/London")),
        ("lon_daily.toml", dst_dag("lon_daily", "30 1 * * *", "Europe/London")),
    ];
    let refs: Vec<(&str, &str)> = dags.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let env = Env::new(common::sqlite_db(), &refs);
    // Chicago spring forward (2025-03-09 02:00 CST -> 03:00 CDT): 02:30 does not exist, fires at 03:00.
    assert_eq!(
        next(&env, "chi_daily", "2025-03-08T00:00:00Z", 3),
        ["2025-03-08T08:30:00Z", "2025-03-09T08:00:00Z", "2025-03-10T07:30:00Z"]
    );
    // Chicago fall back (2025-11-02 02:00 CDT -> 01:00 CST): 01:30 happens twice, fires at the first.
    assert_eq!(
        next(&env, "chi_daily_fb", "2025-11-01T00:00:00Z", 3),
        ["2025-11-01T06:30:00Z", "2025-11-02T06:30:00Z", "2025-11-03T07:30:00Z"]
    );
    assert_eq!(
        next(&env, "chi_hourly", "2025-11-02T04:30:00Z", 4),
        ["2025-11-02T05:00:00Z", "2025-11-02T06:00:00Z", "2025-11-02T08:00:00Z", "2025-11-02T09:00:00Z"]
    );
    assert_eq!(
        next(&env, "chi_30", "2025-03-09T06:45:00Z", 4),
        ["2025-03-09T07:00:00Z", "2025-03-09T07:30:00Z", "2025-03-09T08:00:00Z", "2025-03-09T08:30:00Z"]
    );
    // London spring forward (2025-03-30 01:00 GMT -> 02:00 BST) and fall back (2025-10-26 02:00 BST -> 01:00 GMT).
    assert_eq!(
        next(&env, "lon_hourly", "2025-03-29T23:30:00Z", 3),
        ["2025-03-30T00:00:00Z", "2025-03-30T01:00:00Z", "2025-03-30T02:00:00Z"]
    );
    assert_eq!(
        next(&env, "lon_30", "2025-10-25T23:15:00Z", 5),
        [
            "2025-10-25T23:30:00Z",
            "2025-10-26T00:00:00Z",
            "2025-10-26T00:30:00Z",
            "2025-10-26T02:00:00Z",
            "2025-10-26T02:30:00Z"
        ]
    );
    assert_eq!(next(&env, "lon_daily", "2025-10-25T00:00:00Z", 2), ["2025-10-25T00:30:00Z", "2025-10-26T00:30:00Z"]);
    // Strictly after: a fire time given as --after is not repeated.
    assert_eq!(next(&env, "chi_daily", "2025-03-08T08:30:00Z", 1), ["2025-03-09T08:00:00Z"]);
    let (code, _, err) = env.tmctl(&["dags", "next", "chi_daily", "--after", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--after `yesterday` is not an RFC 3339 instant"), "{err}");
}

// ---- scheduling, API, chaining ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_dag_is_scheduled_by_the_daemon_and_paused_dags_are_not() {
    let today = Utc::now().date_naive();
    let every_minute = format!(
        "id = \"tick\"\nschedule = \"* * * * *\"\nstart_date = \"{}\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\n",
        today - chrono::Duration::days(1)
    );
    let paused = every_minute.replace("id = \"tick\"", "id = \"quiet\"");
    let env = Env::new(common::sqlite_db(), &[("tick.toml", &every_minute), ("quiet.toml", &paused)]);
    env.ok(&["dags", "pause", "quiet"]);
    let _daemon = env.serve();
    let store = env.store().await;
    // catchup = false: only the latest due interval (the minute that just ended) gets a run.
    let run = common::eventually(POLL, Duration::from_secs(20), "the scheduled run to succeed", || async {
        let runs = store.list_runs(&RunFilter { dag_id: Some("tick"), state: None, limit: 10 }).await.ok()?;
        runs.into_iter().find(|r| r.state == RunState::Success)
    })
    .await;
    assert_eq!(run.run_type.as_str(), "scheduled");
    assert!(run.data_interval_end <= run.started_at.expect("started"), "ran before its interval ended: {run:?}");
    assert_eq!(run.data_interval_end - run.data_interval_start, chrono::Duration::minutes(1));
    let all = store.list_runs(&RunFilter { dag_id: Some("tick"), state: None, limit: 100 }).await.unwrap();
    assert!(all.len() <= 2, "catchup = false created {} runs", all.len());
    let quiet = store.list_runs(&RunFilter { dag_id: Some("quiet"), state: None, limit: 10 }).await.unwrap();
    assert!(quiet.is_empty(), "a paused DAG was scheduled: {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_reads_and_mutations_need_the_token() {
    let env = Env::new(common::sqlite_db(), &[("hello.toml", NOOP_DAG)]);
    let daemon = env.serve();
    let http = client();
    let anonymous = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
    let health: Value = anonymous.get(format!("{}/health", daemon.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["dags"], 1);
    let refused = anonymous.get(format!("{}/api/v1/dags", daemon.url)).send().await.unwrap();
    assert_eq!(refused.status(), 401, "reads need a token too");
    let dags: Value = http.get(format!("{}/api/v1/dags", daemon.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(dags["dags"][0]["dag_id"], "hello");

    let trigger = |token: Option<&str>| {
        let mut req = anonymous
            .post(format!("{}/api/v1/dags/hello/runs", daemon.url))
            .json(&json!({"logical_date": "2025-02-03", "conf": {"k": 1}}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(trigger(None).await.unwrap().status(), 401);
    assert_eq!(trigger(Some("wrong")).await.unwrap().status(), 401);
    let store = env.store().await;
    assert!(store.list_runs(&RunFilter::default()).await.unwrap().is_empty(), "a refused call created a run");
    let created = trigger(Some(TOKEN)).await.unwrap();
    assert_eq!(created.status(), 201);
    let run: Value = created.json().await.unwrap();
    assert_eq!(run["ds"], "2025-02-03");
    let id = run["id"].as_i64().unwrap();
    let done: Value = common::eventually(POLL, Duration::from_secs(20), "the triggered run to succeed", || async {
        let v: Value = http.get(format!("{}/api/v1/runs/{id}", daemon.url)).send().await.ok()?.json().await.ok()?;
        (v["state"] == "success").then_some(v)
    })
    .await;
    assert_eq!(done["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(done["conf"]["k"], 1);
    // Bad input gets a 400 that names the value; an unknown DAG a 404.
    let bad = http
        .post(format!("{}/api/v1/dags/hello/runs", daemon.url))
        .bearer_auth(TOKEN)
        .json(&json!({"logical_date": "03/02/2025"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("03/02/2025"));
    let missing = http.post(format!("{}/api/v1/dags/nope/pause", daemon.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let paused = http.post(format!("{}/api/v1/dags/hello/pause", daemon.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(paused.status(), 200);
    assert!(store.is_paused("hello").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_dag_starts_as_soon_as_the_upstream_run_succeeds() {
    let up = "id = \"up\"\n[[task]]\nid = \"work\"\nkind = \"sleep\"\nduration = \"1500ms\"\n";
    let down = "id = \"down\"\n[[task]]\nid = \"wait\"\nkind = \"wait.dag_run\"\ndag = \"up\"\n\
                [[task]]\nid = \"after\"\nkind = \"noop\"\ndepends_on = [\"wait\"]\n";
    let env = Env::new(common::sqlite_db(), &[("up.toml", up), ("down.toml", down)]);
    let daemon = env.serve();
    let http = client();
    for dag in ["down", "up"] {
        trigger(&http, &daemon.url, dag, "2025-05-05").await;
    }
    let store = env.store().await;
    let down_run = common::eventually(POLL, Duration::from_secs(20), "the downstream run to succeed", || async {
        let r = store.find_run_by_ds("down", NaiveDate::from_ymd_opt(2025, 5, 5).unwrap()).await.ok()??;
        (r.state == RunState::Success).then_some(r)
    })
    .await;
    let up_run = store.find_run_by_ds("up", NaiveDate::from_ymd_opt(2025, 5, 5).unwrap()).await.unwrap().unwrap();
    let wait = &store.list_attempts(down_run.id, "wait").await.unwrap()[0];
    let up_end = up_run.ended_at.expect("up ended");
    let wait_end = wait.ended_at.expect("wait ended");
    assert!(wait.started_at < up_end, "the wait should have been waiting while `up` ran");
    let lag = (wait_end - up_end).num_milliseconds();
    assert!((0..1000).contains(&lag), "the wait ended {lag} ms after the upstream run (no polling > 1 s)");
}

// ---- backfills handed to the daemon -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_is_handed_to_the_daemon_and_survives_the_cli() {
    let env = Env::new(common::sqlite_db(), &[("hello.toml", NOOP_DAG)]);
    let _daemon = env.serve();
    // The CLI finds the daemon, submits, follows to the end and prints the per-date table.
    let out = env.ok(&["backfill", "hello", "--from", "2025-01-01", "--to", "2025-01-04"]);
    assert!(out.contains("4 succeeded, 0 failed, 0 skipped"), "{out}");
    let store = env.store().await;
    let b = store.list_backfills(Some("hello"), 1).await.unwrap().remove(0);
    assert_eq!(b.state, "completed");
    assert!(b.owner.is_none(), "a finished backfill keeps no owner");
    let runs = store.list_runs(&RunFilter { dag_id: Some("hello"), state: None, limit: 0 }).await.unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r.backfill_id == Some(b.id) && r.state == RunState::Success));

    // A CLI that stops following (killed here) does not stop the backfill.
    let mut follower = env
        .command()
        .args(["backfill", "hello", "--from", "2025-02-01", "--to", "2025-02-03"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = common::eventually(POLL, Duration::from_secs(10), "the second backfill to be submitted", || async {
        let b = store.list_backfills(Some("hello"), 1).await.ok()?.remove(0);
        (b.from_date == NaiveDate::from_ymd_opt(2025, 2, 1).unwrap()).then_some(b.id)
    })
    .await;
    follower.kill().unwrap();
    let _ = follower.wait();
    common::eventually(POLL, Duration::from_secs(20), "the detached backfill to complete", || async {
        let b = store.get_backfill(id).await.ok()??;
        (b.state == "completed").then_some(())
    })
    .await;
    let status = env.ok(&["backfill", "status", &id.to_string(), "--json"]);
    let v: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["counts"]["succeeded"], 3);

    // Pause holds new dates back; resume lets them run; cancel skips what has not started.
    let paused_env = Env::new(common::sqlite_db(), &[("hello.toml", NOOP_DAG)]);
    let out = paused_env.ok(&["backfill", "hello", "--from", "2025-03-01", "--to", "2025-03-03", "--in-process"]);
    assert!(out.contains("3 succeeded"), "{out}");
    let (code, _, err) = env.tmctl(&["backfill", "pause", "9999"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("backfill 9999 does not exist"), "{err}");
    let (code, _, err) = env.tmctl(&["backfill", "resume", &id.to_string()]);
    assert_eq!(code, 2);
    assert!(err.contains("is completed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_backfill_starts_nothing_until_resumed_and_cancel_skips_the_rest() {
    let slow = NOOP_DAG.replace("200ms", "1s");
    let tick = "id = \"tick\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\n";
    let env = Env::new(common::sqlite_db(), &[("hello.toml", &slow), ("tick.toml", tick)]);
    let _daemon = env.serve();
    let store = env.store().await;
    let http = client();
    let url = &_daemon.url;
    let submit = http
        .post(format!("{url}/api/v1/backfills"))
        .bearer_auth(TOKEN)
        .json(&json!({"dag_id": "hello", "from": "2025-04-01", "to": "2025-04-06", "max_active_runs": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(submit.status(), 201);
    let id = submit.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let act =
        |action: &'static str| http.post(format!("{url}/api/v1/backfills/{id}/{action}")).bearer_auth(TOKEN).send();
    // Wait for the first date to run, then pause: the running date finishes, nothing new starts.
    common::eventually(POLL, Duration::from_secs(10), "a date to start", || async {
        let dates = store.list_backfill_dates(id).await.ok()?;
        dates.iter().any(|d| d.outcome == "running").then_some(())
    })
    .await;
    assert_eq!(act("pause").await.unwrap().status(), 200);
    // The running date finishes and no other starts. The observable later event: a second
    // backfill, submitted after that, runs to its end; the driver steps every backfill it holds on
    // each of its passes, the paused one first (lower id).
    common::eventually(POLL, Duration::from_secs(10), "the running date to finish", || async {
        let dates = store.list_backfill_dates(id).await.ok()?;
        dates.iter().all(|d| d.outcome != "running").then_some(())
    })
    .await;
    let later = http
        .post(format!("{url}/api/v1/backfills"))
        .bearer_auth(TOKEN)
        .json(&json!({"dag_id": "tick", "from": "2025-04-01", "to": "2025-04-02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(later.status(), 201);
    let later = later.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    common::eventually(POLL, Duration::from_secs(15), "the later backfill to end", || async {
        store.get_backfill(later).await.ok()??.completed_at.map(|_| ())
    })
    .await;
    let dates = store.list_backfill_dates(id).await.unwrap();
    let started = dates.iter().filter(|d| d.outcome != "pending").count();
    assert!(started <= 2, "a paused backfill kept starting dates: {dates:?}");
    assert!(dates.iter().all(|d| d.outcome != "running"), "the running date should have finished: {dates:?}");
    assert_eq!(act("resume").await.unwrap().status(), 200);
    common::eventually(POLL, Duration::from_secs(10), "another date to start after resume", || async {
        let n = store.list_backfill_dates(id).await.ok()?.iter().filter(|d| d.outcome != "pending").count();
        (n > started).then_some(())
    })
    .await;
    assert_eq!(act("cancel").await.unwrap().status(), 200);
    let b = common::eventually(POLL, Duration::from_secs(15), "the cancelled backfill to end", || async {
        let b = store.get_backfill(id).await.ok()??;
        b.completed_at.is_some().then_some(b)
    })
    .await;
    assert_eq!(b.state, "cancelled");
    let dates = store.list_backfill_dates(id).await.unwrap();
    assert!(
        dates
            .iter()
            .any(|d| d.outcome == "skipped"
                && d.reason.as_deref() == Some("backfill cancelled before this date started"))
    );
    assert!(dates.iter().all(|d| d.outcome != "pending" && d.outcome != "running"), "{dates:?}");
    assert_eq!(act("resume").await.unwrap().status(), 409);
}

// ---- shutdown and crashes -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_a_long_try_and_the_next_daemon_finishes_the_run() {
    let long = "id = \"long\"\n[defaults]\nretries = 1\n[[task]]\nid = \"nap\"\nkind = \"sleep\"\nduration = \"20s\"\n";
    let env = Env::new(common::sqlite_db(), &[("long.toml", long)]).env("TM_SHUTDOWN_GRACE", "1s");
    let mut daemon = env.serve();
    let http = client();
    let run_pk = trigger(&http, &daemon.url, "long", "2025-01-01").await;
    let store = env.store().await;
    common::eventually(POLL, Duration::from_secs(10), "the try to start", || async {
        let a = store.list_attempts(run_pk, "nap").await.ok()?;
        (!a.is_empty()).then_some(())
    })
    .await;
    let started = Instant::now();
    let status = daemon.sigterm();
    assert!(status.success(), "tmctl serve should exit 0 on SIGTERM: {status:?}\n{}", daemon.log());
    assert!(started.elapsed() < Duration::from_secs(8), "shutdown took {:?}", started.elapsed());
    let run = store.get_run(run_pk).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Queued, "the released run goes back to the queue");
    assert!(run.owner.is_none());
    let tries = store.list_attempts(run_pk, "nap").await.unwrap();
    assert_eq!(tries.len(), 1);
    assert!(tries[0].error.as_deref().unwrap_or("").starts_with("released"), "{tries:?}");
    // Another daemon takes the run and finishes it (the released try counted; one is left).
    let shorter = long.replace("20s", "100ms");
    std::fs::write(env.dags.join("long.toml"), shorter).unwrap();
    let _next = env.serve();
    let done = common::eventually(POLL, Duration::from_secs(20), "the resumed run to succeed", || async {
        let r = store.get_run(run_pk).await.ok()??;
        r.state.is_finished().then_some(r)
    })
    .await;
    assert_eq!(done.state, RunState::Success);
    assert_eq!(store.list_attempts(run_pk, "nap").await.unwrap().len(), 2);
}

/// The silver table as a comparable summary: rows per partition and a checksum of the rows.
async fn silver_fingerprint(env: &Env) -> String {
    env.ok(&[
        "query",
        "--format",
        "csv",
        "SELECT course_id, CAST(ingest_date AS VARCHAR) AS d, COUNT(*) AS n, \
         SUM(CAST(location_index AS BIGINT)) AS li, COUNT(DISTINCT round_id) AS rounds \
         FROM silver.fact_telemetry_event GROUP BY 1, 2 ORDER BY 1, 2",
    ])
}

fn lakehouse_env(db: common::TestDb, data: &Path) -> Env {
    let env = Env::new(db, &[]).with_dags_dir(repo_dags());
    for dag in ["bronze", "silver", "gold", "example", "maintenance"] {
        env.ok(&["dags", "pause", dag]);
    }
    // The generated exports include deliberately bad files: ingest lands the rest and exits 1.
    let (code, out, err) = env.tmctl(&["ingest", data.to_str().unwrap()]);
    assert!(code == 0 || code == 1, "ingest failed ({code})\n{out}\n{err}");
    assert!(out.contains("accepted"), "{out}");
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_silver_backfill_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let generator = Env::new(common::sqlite_db(), &[]);
    generator.ok(&[
        "generate",
        "--out",
        data.path().to_str().unwrap(),
        "--courses",
        "3",
        "--days",
        "7",
        "--rounds",
        "400",
        "--start-date",
        "2025-06-01",
    ]);
    // The reference: the same backfill, uninterrupted, in-process.
    let reference = lakehouse_env(common::sqlite_db(), data.path());
    reference.ok(&["backfill", "silver", "--from", "2025-06-01", "--to", "2025-06-07"]);
    let expected = silver_fingerprint(&reference).await;
    assert_eq!(expected.lines().filter(|l| !l.is_empty()).count(), 1 + 3 * 7, "{expected}");

    let env = lakehouse_env(common::sqlite_db(), data.path()).env("TM_EXECUTOR_SLOTS", "1");
    let mut first = env.serve();
    let store = env.store().await;
    let mut follower = env
        .command()
        .args(["backfill", "silver", "--from", "2025-06-01", "--to", "2025-06-07", "--max-active-runs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill the daemon while a date's transform try is running, after at least one date finished.
    common::eventually(POLL, Duration::from_secs(120), "a date done and the next one's try running", || async {
        let b = store.list_backfills(Some("silver"), 1).await.ok()?.into_iter().next()?;
        let dates = store.list_backfill_dates(b.id).await.ok()?;
        let done = dates.iter().filter(|d| d.outcome == "succeeded").count();
        let mut trying = false;
        for d in dates.iter().filter(|d| d.outcome == "running") {
            let tries = store.list_attempts(d.run_pk?, "transform").await.ok()?;
            trying |= tries.iter().any(|a| a.state.as_str() == "running");
        }
        (done >= 1 && trying).then_some(())
    })
    .await;
    first.kill9();
    let _ = follower.kill();
    let _ = follower.wait();
    let b = store.list_backfills(Some("silver"), 1).await.unwrap().remove(0);
    assert_ne!(b.state, "completed", "the kill came too late to test anything");

    let _second = env.serve();
    let b =
        common::eventually(POLL, Duration::from_secs(180), "the backfill to complete after the restart", || async {
            let b = store.get_backfill(b.id).await.ok()??;
            b.completed_at.is_some().then_some(b)
        })
        .await;
    assert_eq!(b.state, "completed");
    let dates = store.list_backfill_dates(b.id).await.unwrap();
    assert_eq!(dates.len(), 7);
    assert!(dates.iter().all(|d| d.outcome == "succeeded"), "{dates:?}");
    // The killed try is on record as abandoned, and the table equals the uninterrupted one.
    let mut abandoned = 0;
    for d in &dates {
        for a in store.list_attempts(d.run_pk.unwrap(), "transform").await.unwrap() {
            abandoned += usize::from(a.error.as_deref().is_some_and(|e| e.starts_with("abandoned")));
        }
    }
    assert_eq!(abandoned, 1, "the try running at the kill is recorded as abandoned (and retried)");
    assert_eq!(silver_fingerprint(&env).await, expected);
}

/// A `command` task that says `idempotent = true` is run again after its daemon is killed without
/// using a retry (it has none), but only `executor.crash_restarts` times: a try that keeps dying
/// with its process is a crash loop, and the next death counts as the failed try it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_command_survives_kill_9_up_to_the_crash_restart_bound() {
    let dag = "id = \"nap\"\n[[task]]\nid = \"long\"\nkind = \"command\"\nprogram = \"sleep\"\n\
               args = [\"30\"]\nidempotent = true\n";
    let env = Env::new(common::sqlite_db(), &[("nap.toml", dag)])
        .env("TM_EXECUTOR_CRASH_RESTARTS", "2")
        .env("TM_DAEMON_LEASE", "2s");
    let mut daemon = env.serve();
    let run_pk = trigger(&client(), &daemon.url, "nap", "2025-01-01").await;
    let store = env.store().await;
    for kill in 1..=3usize {
        let what = format!("try {kill} to run");
        common::eventually(POLL, Duration::from_secs(60), &what, || async {
            let tries = store.list_attempts(run_pk, "long").await.ok()?;
            (tries.len() == kill && tries.last()?.state.as_str() == "running").then_some(())
        })
        .await;
        daemon.kill9();
        daemon = env.serve();
    }
    let run = common::eventually(POLL, Duration::from_secs(60), "the run to end", || async {
        let r = store.get_run(run_pk).await.ok()??;
        r.state.is_finished().then_some(r)
    })
    .await;
    assert_eq!(run.state, RunState::Failed, "{}", daemon.log());
    let tries = store.list_attempts(run_pk, "long").await.unwrap();
    assert_eq!(tries.len(), 3, "{tries:?}");
    for (i, t) in tries.iter().take(2).enumerate() {
        let error = t.error.as_deref().unwrap_or_default();
        assert!(error.contains(&format!("crash restart {} of 2", i + 1)), "try {}: {error}", i + 1);
    }
    let ti = store.list_task_instances(run_pk).await.unwrap().remove(0);
    assert_eq!(ti.crash_restarts, 2);
    assert!(ti.error.as_deref().unwrap_or_default().contains("try 3 was abandoned"), "{ti:?}");
}

/// SPEC §4 and issue 15: a crash of tmctl never fails a run whose work is safe to repeat. The
/// daemon is killed with SIGKILL up to ten times, at moments drawn from a seeded generator, while
/// it drives a silver and a gold backfill (gold's `wait_for_silver`, `retries = 0`, waiting on
/// silver through the first kill). Every date ends succeeded, no abandoned try used a retry, and
/// silver and every gold table equal an uninterrupted run's, row for row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_ten_times_during_silver_and_gold_backfills_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let generator = Env::new(common::sqlite_db(), &[]);
    generator.ok(&[
        "generate",
        "--out",
        data.path().to_str().unwrap(),
        "--courses",
        "3",
        "--days",
        "4",
        "--rounds",
        "300",
        "--start-date",
        "2025-06-01",
    ]);
    let (from, to) = ("2025-06-01", "2025-06-04");
    let reference = lakehouse_env(common::sqlite_db(), data.path());
    reference.ok(&["backfill", "silver", "--from", from, "--to", to]);
    reference.ok(&["backfill", "gold", "--from", from, "--to", to]);
    let expected_silver = silver_fingerprint(&reference).await;
    let expected_gold = common::table_rows(reference.home.path(), "gold");
    assert!(expected_gold.len() > 20, "{:?}", expected_gold.keys());

    // A bound above the number of kills: the kills here come at random moments, whatever runs,
    // so one long model may be hit again and again (the bound has its own test above).
    let env = lakehouse_env(common::sqlite_db(), data.path())
        .env("TM_DAEMON_LEASE", "2s")
        .env("TM_EXECUTOR_CRASH_RESTARTS", "10");
    let mut daemon = env.serve();
    let store = env.store().await;
    let follow = |args: &[&str]| env.command().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Silver one date at a time, so gold's sensors wait on it.
    let followers = [
        follow(&["backfill", "silver", "--from", from, "--to", to, "--max-active-runs", "1"]),
        follow(&["backfill", "gold", "--from", from, "--to", to]),
    ];
    let backfills =
        common::eventually(POLL, Duration::from_secs(60), "both backfills handed to the daemon", || async {
            let b = store.list_backfills(None, 10).await.ok()?;
            (b.len() == 2).then_some(b)
        })
        .await;
    for mut f in followers {
        let _ = f.kill();
        let _ = f.wait();
    }
    let all_attempts = || async {
        let mut out = Vec::new();
        for dag in ["silver", "gold"] {
            let runs = store.list_runs(&RunFilter { dag_id: Some(dag), state: None, limit: 0 }).await.ok()?;
            for r in runs {
                out.extend(store.list_run_attempts(r.id).await.ok()?);
            }
        }
        Some(out)
    };
    let done = || async {
        let mut all = true;
        for b in &backfills {
            all &= store.get_backfill(b.id).await.ok()??.completed_at.is_some();
        }
        Some(all)
    };
    // xorshift, seeded: the kill moments differ from kill to kill but not from run to run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_delay = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Duration::from_millis(seed % 1500)
    };
    let mut kills = 0;
    while kills < 10 && done().await != Some(true) {
        let pid = i64::from(daemon.pid());
        if kills == 0 {
            // The first kill lands while a gold run's sensor waits for silver.
            common::eventually(POLL, Duration::from_secs(120), "gold's sensor waiting", || async {
                let tries = all_attempts().await?;
                tries.iter().any(|a| a.task_id == "wait_for_silver" && a.state.as_str() == "running").then_some(())
            })
            .await;
        } else {
            // Later kills come after this daemon finished some try (so the backfills move on),
            // plus a random delay.
            common::eventually(POLL, Duration::from_secs(180), "a try of this daemon to end", || async {
                if done().await == Some(true) {
                    return Some(());
                }
                let tries = all_attempts().await?;
                tries.iter().any(|a| a.pid == pid && a.state.as_str() == "success").then_some(())
            })
            .await;
            tokio::time::sleep(next_delay()).await;
        }
        daemon.kill9();
        kills += 1;
        daemon = env.serve();
    }
    assert!(kills >= 5, "only {kills} kills happened before the backfills completed");
    common::eventually(POLL, Duration::from_secs(600), "both backfills to complete", || async {
        done().await?.then_some(())
    })
    .await;
    for b in &backfills {
        let b = store.get_backfill(b.id).await.unwrap().unwrap();
        assert_eq!(b.state, "completed", "{b:?}");
        let dates = store.list_backfill_dates(b.id).await.unwrap();
        assert_eq!(dates.len(), 4);
        assert!(dates.iter().all(|d| d.outcome == "succeeded"), "{}: {dates:?}\n{}", b.dag_id, daemon.log());
    }
    let tries = all_attempts().await.unwrap();
    let abandoned: Vec<_> =
        tries.iter().filter(|a| a.error.as_deref().is_some_and(|e| e.starts_with("abandoned"))).collect();
    assert!(
        abandoned.iter().any(|a| a.task_id == "wait_for_silver"),
        "the sensor was killed while waiting and run again: {abandoned:#?}"
    );
    assert!(
        abandoned.iter().all(|a| a.error.as_deref().unwrap_or_default().contains("without counting against retries")),
        "every abandoned try was given back: {abandoned:#?}"
    );
    assert_eq!(silver_fingerprint(&env).await, expected_silver);
    let gold = common::table_rows(env.home.path(), "gold");
    assert_eq!(gold.keys().collect::<Vec<_>>(), expected_gold.keys().collect::<Vec<_>>());
    for (table, rows) in &gold {
        assert!(rows == &expected_gold[table], "gold.{table} differs from the uninterrupted run");
    }
}

// ---- two daemons on PostgreSQL ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_the_work_and_take_over_from_a_killed_one() {
    let dag = "id = \"work\"\n[defaults]\nretries = 2\n\
               [[task]]\nid = \"a\"\nkind = \"sleep\"\nduration = \"300ms\"\n\
               [[task]]\nid = \"b\"\nkind = \"sleep\"\nduration = \"300ms\"\ndepends_on = [\"a\"]\n";
    let env = Env::new(common::postgres_db().await, &[("work.toml", dag)])
        .env("TM_DAEMON_MAX_RUNS", "4")
        .env("TM_DAEMON_LEASE", "2s");
    let mut one = env.serve();
    let two = env.serve();
    let http = client();
    let n_runs = 24;
    for i in 0..n_runs {
        let date = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Duration::days(i);
        let url = if i % 2 == 0 { &one.url } else { &two.url };
        trigger(&http, url, "work", &date.to_string()).await;
    }
    let store = env.store().await;
    // Kill one daemon once some runs are done: its runs in flight are taken over by the other.
    common::eventually(POLL, Duration::from_secs(60), "a few runs to finish", || async {
        let runs = store
            .list_runs(&RunFilter { dag_id: Some("work"), state: Some(RunState::Success), limit: 0 })
            .await
            .ok()?;
        (runs.len() >= 6).then_some(())
    })
    .await;
    let killed_pid = one.pid();
    one.kill9();
    let runs = common::eventually(POLL, Duration::from_secs(120), "every run to finish", || async {
        let runs = store.list_runs(&RunFilter { dag_id: Some("work"), state: None, limit: 0 }).await.ok()?;
        runs.iter().all(|r| r.state.is_finished()).then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), n_runs as usize);
    assert!(
        runs.iter().all(|r| r.state == RunState::Success),
        "{:?}",
        runs.iter().map(|r| r.state).collect::<Vec<_>>()
    );
    let mut by_pid: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &runs {
        for task in ["a", "b"] {
            let tries = store.list_attempts(r.id, task).await.unwrap();
            for a in &tries {
                *by_pid.entry(a.pid).or_default() += 1;
            }
            // Never two tries of one task at once: each ends before the next starts.
            for w in tries.windows(2) {
                let end = w[0].ended_at.expect("earlier try ended");
                assert!(end <= w[1].started_at, "tries of {}.{task} overlap: {tries:?}", r.id);
            }
            assert_eq!(tries.last().unwrap().state.as_str(), "success");
        }
    }
    assert!(by_pid.len() >= 2, "both daemons should have run tries: {by_pid:?}");
    assert!(by_pid.contains_key(&i64::from(killed_pid)), "the killed daemon ran some tries: {by_pid:?}");
    assert!(two.log().contains("claimed run"), "{}", two.log());
}

// ---- alert e-mail from the CLI and the daemon -------------------------------------------------

const FAILING_DAG: &str = r#"
id = "broken"
[defaults]
email = ["oncall@example.com"]
[[task]]
id = "boom"
kind = "fail"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_run_failure_is_mailed_before_exit_or_left_for_the_daemon_exactly_once() {
    let smtp = common::smtp::SmtpServer::start();
    let port = smtp.port.to_string();
    let env = Env::new(common::sqlite_db(), &[("broken.toml", FAILING_DAG)])
        .env("TM_SMTP_HOST", "127.0.0.1")
        .env("TM_SMTP_PORT", &port)
        .env("TM_SMTP_TIMEOUT", "3s")
        .env("TM_WEB_BASE_URL", "http://tm.example:8080");
    // SMTP up: the failure is mailed before `tmctl run` exits.
    let (code, _, err) = env.tmctl(&["run", "broken", "--date", "2025-01-01"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("alerts: 1 e-mailed, 0 left"), "{err}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].subject.contains("broken.boom failed for 2025-01-01"), "{}", mails[0].subject);
    assert_eq!(mails[0].rcpt_to, ["oncall@example.com"]);
    assert!(mails[0].body.contains("http://tm.example:8080/runs/1/tasks/boom?try=1"), "{}", mails[0].body);

    // SMTP down: the CLI gives up within the timeout and leaves the alert in the outbox ...
    drop(smtp);
    let started = Instant::now();
    let (code, _, err) = env.tmctl(&["run", "broken", "--date", "2025-01-02"]);
    assert_eq!(code, 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "the CLI waited {:?} on SMTP", started.elapsed());
    assert!(err.contains("0 e-mailed, 1 left in the outbox"), "{err}");
    let store = env.store().await;
    let pending = store.list_alerts(Some("pending"), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].subject.contains("2025-01-02"));
    // ... and once SMTP is back, the daemon's sender mails it exactly once.
    let smtp = common::smtp::SmtpServer::start_on(port.parse().unwrap());
    let _daemon = env.serve();
    let mails = smtp.wait_for(1, Duration::from_secs(60));
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].subject.contains("2025-01-02"), "{}", mails[0].subject);
    common::eventually(POLL, Duration::from_secs(10), "the alert to be marked sent", || async {
        let sent = store.list_alerts(Some("sent"), 10).await.ok()?;
        (sent.len() == 2).then_some(())
    })
    .await;
    // Not mailed again. The observable later event: the failure of a run the daemon executes now
    // is recorded after that alert was marked sent, so the sender mails it on a later pass.
    let run_pk = trigger(&client(), &_daemon.url, "broken", "2025-01-03").await;
    let mails = common::eventually(POLL, Duration::from_secs(60), "the later failure to be mailed", || async {
        let mails = smtp.messages();
        mails.iter().any(|m| m.subject.contains("2025-01-03")).then_some(mails)
    })
    .await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(mails.len(), 2, "run {run_pk}: mailed more than once: {subjects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_try_shows_its_log_so_far() {
    let dag = "id = \"chatty\"\n[[task]]\nid = \"talk\"\nkind = \"command\"\nprogram = \"/bin/sh\"\n\
               args = [\"-c\", \"echo one-$((40+2)); sleep 4; echo two-$((40+2))\"]\n";
    let env = Env::new(common::sqlite_db(), &[("chatty.toml", dag)]);
    let daemon = env.serve();
    let http = client();
    let run_pk = trigger(&http, &daemon.url, "chatty", "2025-01-01").await;
    let url = format!("{}/api/v1/runs/{run_pk}/tasks/talk", daemon.url);
    let try1: Value =
        common::eventually(POLL, Duration::from_secs(10), "the first line while the try runs", || async {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let t = v["tries"].get(0)?.clone();
            (t["state"] == "running" && t["log"].as_str()?.contains("one-42")).then_some(t)
        })
        .await;
    assert!(!try1["log"].as_str().unwrap().contains("two-42"), "{try1}");
    common::eventually(POLL, Duration::from_secs(15), "the full log at the end", || async {
        let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        let t = &v["tries"][0];
        (t["state"] == "success" && t["log"].as_str()?.contains("two-42")).then_some(())
    })
    .await;
}

/// Regression: on a fresh home the shipped `bronze` DAG found no inbox folder and failed every
/// day. The daemon creates `<home>/inbox`, so the run succeeds with nothing to ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_home_gets_an_inbox_and_the_bronze_run_succeeds() {
    let env = Env::new(common::sqlite_db(), &[]).with_dags_dir(repo_dags());
    let inbox = env.home.path().join("inbox");
    assert!(!inbox.exists());
    let daemon = env.serve();
    assert!(inbox.is_dir(), "the daemon did not create {}", inbox.display());
    let http = client();
    let run_pk = trigger(&http, &daemon.url, "bronze", "2025-03-10").await;
    let store = env.store().await;
    let run = common::eventually(POLL, Duration::from_secs(30), "the bronze run to finish", || async {
        let run = store.get_run(run_pk).await.ok()??;
        run.state.is_finished().then_some(run)
    })
    .await;
    let attempts = store.list_attempts(run_pk, "ingest").await.unwrap();
    assert_eq!(run.state, RunState::Success, "{attempts:#?}\n{}", daemon.log());
    let out = attempts[0].output.clone().unwrap();
    assert_eq!((&out["files"], &out["accepted"]), (&json!(0), &json!(0)), "{out}");
}
