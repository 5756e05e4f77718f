//! Shared test plumbing: a fresh state DB on each backend. SQLite is a file in a temp dir;
//! PostgreSQL is a throwaway database on the machine's server (`TM_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the guard goes.
#![allow(dead_code)]

pub mod browser;
pub mod seaweed;
pub mod serve;
pub mod smtp;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tmctl::store::Store;

pub fn pg_admin_url() -> String {
    std::env::var("TM_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub struct TestDb {
    pub backend: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = pg_admin_url();
            // A thread with its own runtime: Drop may run inside or outside a tokio runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(tmctl::store::admin::drop_postgres_database(&admin, &name)).ok()
            })
            .join();
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = tmctl::config::sqlite_url(&dir.path().join("tm.db"));
    TestDb { backend: "sqlite", url, _dir: Some(dir), pg_name: None }
}

pub async fn postgres_db() -> TestDb {
    let admin = pg_admin_url();
    let name = format!(
        "tmtest_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_subsec_nanos()
    );
    let url = tmctl::store::admin::create_postgres_database(&admin, &name)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for these tests (set TM_TEST_PG_URL): {e}"));
    TestDb { backend: "postgres", url, _dir: None, pg_name: Some(name) }
}

/// One fresh DB per backend: SQLite and PostgreSQL.
pub async fn both() -> Vec<TestDb> {
    vec![sqlite_db(), postgres_db().await]
}

pub async fn open(db: &TestDb) -> Store {
    Store::connect(&db.url, 4).await.unwrap_or_else(|e| panic!("{}: {e}", db.backend))
}

/// Runs the tmctl binary on `home` with the shipped DAGs and the embedded defaults (a
/// `TM_DATABASE_URL` or `TM_CONFIG` of the caller's environment is left out): exit code, stdout,
/// stderr.
pub fn tmctl_on(home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tmctl"))
        .args(args)
        .env_remove("TM_DATABASE_URL")
        .env_remove("TM_CONFIG")
        .env("TM_HOME", home)
        .env("TM_DAGS_DIR", Path::new(env!("CARGO_MANIFEST_DIR")).join("dags"))
        .output()
        .expect("run tmctl");
    outcome(out)
}

/// A finished process as (exit code, or -1 when killed by a signal; stdout; stderr).
pub fn outcome(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cmd` with `stdin` written to it: (exit code, stdout, stderr), as [`outcome`].
pub fn run_with_stdin(mut cmd: std::process::Command, stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run tmctl");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    outcome(child.wait_with_output().expect("wait for tmctl"))
}

/// `tmctl query --format json` on `home`: the result rows (panics with the error text if the
/// query fails).
pub fn query_rows(home: &Path, sql: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = tmctl_on(home, &["query", "--format", "json", sql]);
    assert_eq!(code, 0, "query failed: {sql}\n{err}");
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every table of namespace `ns` in `home`'s lake: its rows as JSON texts, sorted.
pub fn table_rows(home: &Path, ns: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let tables = query_rows(
        home,
        &format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{ns}' AND table_name NOT LIKE '%$%'"
        ),
    );
    let mut out = std::collections::BTreeMap::new();
    for t in tables {
        let name = t["table_name"].as_str().unwrap().to_string();
        let mut rows: Vec<String> =
            query_rows(home, &format!("SELECT * FROM {ns}.{name}")).iter().map(|r| r.to_string()).collect();
        rows.sort();
        out.insert(name, rows);
    }
    out
}

/// What PyIceberg (an independent Iceberg client, tests/pyiceberg_read.py) reads of `table` in
/// `home`'s lake on the embedded defaults, and at `snapshot` (an id, or `all`).
pub fn pyiceberg_on(home: &Path, table: &str, snapshot: Option<&str>) -> serde_json::Value {
    require_python(&["pyiceberg", "pyarrow", "sqlalchemy"], "pip install \"pyiceberg[sql-sqlite,pyarrow]\"");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyiceberg_read.py");
    let url = format!("sqlite://{}?mode=rwc", home.join("tm.db").display());
    let warehouse = format!("file://{}/buckets/tm-lakehouse-source/warehouse", home.display());
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(&url).arg(&warehouse).arg(table);
    if let Some(s) = snapshot {
        cmd.arg(s);
    }
    let out = cmd.output().expect("python3 is needed (pip install \"pyiceberg[sql-sqlite,pyarrow]\")");
    assert!(
        out.status.success(),
        "PyIceberg cannot read {table}@{snapshot:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from pyiceberg_read.py")
}

/// Polls `check` every `every` until it returns Some, or panics after `limit` with `what`.
pub async fn eventually<T, F, Fut>(every: Duration, limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// An HTTP client that sends `Authorization: Bearer <token>` with every request (every route
/// but `/health`, `/login` and `/static/` needs a login).
pub fn authed(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("token header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("http client")
}

/// Panics with the install command unless `python3` runs and imports every one of `modules`: a
/// test whose tool is missing fails saying what to install, it does not pass.
pub fn require_python(modules: &[&str], install: &str) {
    let import = format!("import {}", modules.join(", "));
    let out = Command::new("python3").args(["-c", &import]).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "this test needs the Python modules {modules:?}: {install} (or run .ci/run, which installs them)\n{}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("this test needs python3 ({e}) with the modules {modules:?}: {install}"),
    }
}
