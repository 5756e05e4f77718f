//! Issue 12, items 5–10, end to end: the real `tmctl` binary on a temp home, a real daemon on a
//! free port and real HTTP. Each test is one of the issue's pokes: the environment of a command
//! task, secrets in logs / errors / API output / `config show` / `doctor`, conf injection, `COPY`
//! through `tmctl query`, an endless backfill, the security headers and body limit, and the modes
//! of the files in the home directory.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::serve::ServeProcess;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_tmctl");
const TOKEN: &str = "hardening-token-0123456789";
const SMTP_PASSWORD: &str = "smtp-pw-hunter2-77";
const POLL: Duration = Duration::from_millis(100);

/// A home directory with its own DAG directory; SQLite state DB inside the home.
struct Env {
    home: tempfile::TempDir,
    dags: PathBuf,
    extra: Vec<(String, String)>,
}

impl Env {
    fn new(dags: &[(&str, &str)]) -> Env {
        let home = tempfile::tempdir().expect("temp dir");
        let dir = home.path().join("dags");
        std::fs::create_dir_all(&dir).expect("dags dir");
        for (name, text) in dags {
            std::fs::write(dir.join(name), text).expect("write DAG");
        }
        Env { home, dags: dir, extra: Vec::new() }
    }

    fn env(mut self, key: &str, value: &str) -> Env {
        self.extra.push((key.into(), value.into()));
        self
    }

    fn path(&self) -> &Path {
        self.home.path()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("TM_HOME", self.path())
            .env("TM_DAGS_DIR", &self.dags)
            .env("TM_API_TOKEN", TOKEN)
            .env("TM_SMTP_PASSWORD", SMTP_PASSWORD)
            .env("TM_LOG", "info")
            .current_dir(self.path());
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    fn tmctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command().args(args).output().expect("run tmctl");
        common::outcome(out)
    }

    fn serve(&self) -> ServeProcess {
        ServeProcess::spawn(self.command(), self.path().join("serve.log"))
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client")
}

/// Triggers `dag` for `date` with `conf` (the token on every call, reads included).
async fn trigger(http: &reqwest::Client, base: &str, dag: &str, conf: Value) -> reqwest::Response {
    http.post(format!("{base}/api/v1/dags/{dag}/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({ "logical_date": "2025-03-01", "conf": conf }))
        .send()
        .await
        .expect("trigger")
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    http.get(url).bearer_auth(TOKEN).send().await.expect("GET").json().await.expect("JSON")
}

/// Waits for run `id` to finish; returns it with its tasks.
async fn finished(http: &reqwest::Client, base: &str, id: i64) -> Value {
    common::eventually(POLL, Duration::from_secs(30), "the run to finish", || async {
        let v = get(http, format!("{base}/api/v1/runs/{id}")).await;
        matches!(v["state"].as_str(), Some("success" | "failed")).then_some(v)
    })
    .await
}

async fn task_log(http: &reqwest::Client, base: &str, id: i64, task: &str) -> (String, Value) {
    let v = get(http, format!("{base}/api/v1/runs/{id}/tasks/{task}")).await;
    let last = v["tries"].as_array().and_then(|t| t.last()).cloned().unwrap_or_default();
    (last["log"].as_str().unwrap_or_default().to_string(), last)
}

// ---- item 6: secrets ----------------------------------------------------------------------------

const LEAK_DAG: &str = r#"
id = "leak"
[params]
api_key = { type = "string", default = "" }
[[task]]
id = "env"
kind = "command"
program = "/usr/bin/env"
[[task]]
id = "echo"
kind = "command"
program = "/bin/sh"
args = ["-c", "echo smtp password is smtp-pw-hunter2-77; echo conf key is $0", "{{ params.api_key }}"]
[[task]]
id = "broken"
kind = "command"
program = "/nonexistent/smtp-pw-hunter2-77"
[[task]]
id = "own_env"
kind = "command"
program = "/bin/sh"
args = ["-c", "echo mine=$MINE ds=$TM_DS"]
env = { MINE = "declared-by-the-task" }
"#;

/// A command task sees no `TM_*` setting of the daemon (the poke: `env` printed
/// `TM_SMTP_PASSWORD`), and a configured secret or a secret-looking conf value printed by a task,
/// or inside an error text, is `***` in the try log and the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_tasks_get_no_settings_and_secrets_are_masked_in_logs_errors_and_api() {
    let env = Env::new(&[("leak.toml", LEAK_DAG)]);
    let daemon = env.serve();
    let http = client();
    let r = trigger(&http, &daemon.url, "leak", json!({"api_key": "conf-secret-4242"})).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let run = finished(&http, &daemon.url, id).await;
    assert_eq!(run["conf"]["api_key"], "***", "API output masks secret-looking conf keys: {run}");

    let (log, _) = task_log(&http, &daemon.url, id, "env").await;
    assert!(log.contains("PATH="), "{log}");
    assert!(log.contains("TM_DS=2025-03-01"), "run variables are given: {log}");
    for leaked in ["TM_SMTP_PASSWORD", "TM_API_TOKEN", "TM_HOME", "TM_DAGS_DIR", SMTP_PASSWORD, TOKEN] {
        assert!(!log.contains(leaked), "`env` shows {leaked}:\n{log}");
    }

    let (log, _) = task_log(&http, &daemon.url, id, "echo").await;
    assert!(log.contains("smtp password is ***"), "{log}");
    assert!(log.contains("conf key is ***"), "{log}");
    assert!(!log.contains(SMTP_PASSWORD) && !log.contains("conf-secret-4242"), "{log}");

    let (log, attempt) = task_log(&http, &daemon.url, id, "broken").await;
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(error.contains("/nonexistent/***"), "error text masked: {error}");
    assert!(!log.contains(SMTP_PASSWORD) && !error.contains(SMTP_PASSWORD), "{log}\n{error}");
    let shown = get(&http, format!("{}/api/v1/runs/{id}", daemon.url)).await.to_string();
    assert!(!shown.contains(SMTP_PASSWORD), "{shown}");

    let (log, _) = task_log(&http, &daemon.url, id, "own_env").await;
    assert!(log.contains("mine=declared-by-the-task ds=2025-03-01"), "{log}");
    assert!(!daemon.log().contains(SMTP_PASSWORD), "the daemon's own log:\n{}", daemon.log());
}

/// The failure alert of a CLI run carries no secret (its last log lines and error are masked).
#[test]
fn alert_mail_bodies_are_masked() {
    let dag = r#"
id = "mailer"
[defaults]
email = ["ops@example.com"]
[[task]]
id = "fail"
kind = "command"
program = "/bin/sh"
args = ["-c", "echo the password is smtp-pw-hunter2-77; exit 3"]
"#;
    let env = Env::new(&[("mailer.toml", dag)]);
    let (code, _, _) = env.tmctl(&["run", "mailer", "--date", "2025-03-01"]);
    assert_eq!(code, 1);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let alerts = rt.block_on(async {
        let store =
            tmctl::store::Store::connect(&tmctl::config::sqlite_url(&env.path().join("tm.db")), 1).await.unwrap();
        store.list_alerts(None, 10).await.unwrap()
    });
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].body.contains("the password is ***"), "{}", alerts[0].body);
    assert!(!alerts[0].body.contains(SMTP_PASSWORD), "{}", alerts[0].body);
}

/// `tmctl config show` says where each setting came from and never prints a secret; neither do
/// `tmctl doctor` and error messages, also for `?password=` in a URL.
#[test]
fn config_show_doctor_and_errors_redact_passwords() {
    let env = Env::new(&[]).env("TM_EXECUTOR_SLOTS", "3");
    let (code, out, err) = env.tmctl(&["config", "show", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let row = |k: &str| rows.iter().find(|r| r["key"] == k).cloned().unwrap_or_else(|| panic!("no {k} in {out}"));
    assert_eq!(
        (row("smtp.password")["value"].clone(), row("smtp.password")["source"].clone()),
        (json!("***"), json!("env TM_SMTP_PASSWORD"))
    );
    assert_eq!(row("executor.slots")["source"], "env TM_EXECUTOR_SLOTS");
    assert_eq!(row("daemon.lease")["source"], "default");
    assert!(!out.contains(SMTP_PASSWORD) && !out.contains(TOKEN), "{out}");
    let (code, table, _) = env.tmctl(&["config", "show"]);
    assert_eq!(code, 0);
    assert!(table.contains("smtp.password") && table.contains("***") && !table.contains(SMTP_PASSWORD), "{table}");

    // A database URL with passwords in both places: doctor, config show and the error of a run.
    // The local server answers at once (no such role), so nothing waits for a retry.
    let url = "postgres://tm_nobody:db-pw-hunter3@127.0.0.1:5432/tm?password=db-pw-hunter4&sslmode=disable";
    let env = env.env("TM_DATABASE_URL", url);
    let (_, out, err) = env.tmctl(&["config", "show"]);
    assert!(out.contains("postgres://tm_nobody:***@127.0.0.1:5432/tm?password=***&sslmode=disable"), "{out}");
    let (code, out, err2) = env.tmctl(&["doctor", "--json"]);
    assert_eq!(code, 1, "{out}{err2}");
    let (code, _, err3) = env.tmctl(&["runs", "list"]);
    assert_eq!(code, 1);
    for text in [&out, &err, &err2, &err3] {
        assert!(!text.contains("hunter3") && !text.contains("hunter4"), "{text}");
    }
    assert!(out.contains("postgres://tm_nobody:***@127.0.0.1:5432/tm?password=***"), "{out}");
    // A bad value of a secret setting is named, its value is not shown.
    let env = env.env("TM_DATABASE_URL", "mysql://tm:db-pw-hunter5@db/x");
    let (code, _, err) = env.tmctl(&["runs", "list"]);
    assert_eq!(code, 3);
    assert!(err.contains("`database.url`") && err.contains("mysql://tm:***@db/x") && !err.contains("hunter5"), "{err}");
}

// ---- item 7: params -----------------------------------------------------------------------------

fn poke_dag(dir: &Path) -> String {
    format!(
        r#"
id = "poke"
[[task]]
id = "hi"
kind = "command"
program = "/bin/sh"
args = ["-c", "echo hi {{{{ params.who }}}}"]
cwd = "{}"
"#,
        dir.display()
    )
}

fn quoted_dag(dir: &Path) -> String {
    format!(
        r#"
id = "quoted"
[params]
who = "world"
[[task]]
id = "hi"
kind = "command"
program = "/bin/sh"
args = ["-c", "echo hi {{{{ params.who | shell_quote }}}}"]
cwd = "{}"
"#,
        dir.display()
    )
}

/// The poke: `sh -c "echo hi {{ params.who }}"` with conf `{"who": "x; id > pwned.txt"}` must not
/// run `id`. An undeclared key is refused (400 / exit 2, naming it and the declared ones); a
/// declared one rendered with `| shell_quote` stays one word; `dags validate` warns about the
/// unquoted form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_cannot_inject_shell_code() {
    let work = tempfile::tempdir().unwrap();
    let env = Env::new(&[("poke.toml", &poke_dag(work.path())), ("quoted.toml", &quoted_dag(work.path()))]);
    let evil = json!({"who": "x; id > pwned.txt"});
    let daemon = env.serve();
    let http = client();
    let r = trigger(&http, &daemon.url, "poke", evil.clone()).await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("conf key `who` is not a param of DAG `poke` (declared: none"), "{body}");
    let (code, _, err) = env.tmctl(&["run", "poke", "--date", "2025-03-01", "--conf", &evil.to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("conf key `who` is not a param"), "{err}");
    let (code, _, err) =
        env.tmctl(&["backfill", "poke", "--from", "2025-03-01", "--to", "2025-03-02", "--conf", &evil.to_string()]);
    assert_eq!(code, 2, "{err}");

    let r = trigger(&http, &daemon.url, "quoted", evil.clone()).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(finished(&http, &daemon.url, id).await["state"], "success");
    let (log, _) = task_log(&http, &daemon.url, id, "hi").await;
    assert!(log.contains("hi x; id > pwned.txt"), "{log}");
    assert!(!work.path().join("pwned.txt").exists(), "the conf ran `id`");

    let (code, out, _) = env.tmctl(&["dags", "validate"]);
    assert_eq!(code, 0, "a warning does not fail validation: {out}");
    assert!(
        out.contains("poke.toml: warning: task `hi`: `{{ params.who }}` is rendered unquoted into a shell `-c` script"),
        "{out}"
    );
    assert!(out.contains("{{ params.who | shell_quote }}"), "{out}");
    assert!(!out.contains("quoted.toml: warning"), "{out}");
}

/// `allow_undeclared_params = true` restores Airflow's pass-through of other conf keys.
#[test]
fn allow_undeclared_params_lets_other_keys_through() {
    let dag = r#"
id = "open"
allow_undeclared_params = true
[[task]]
id = "t"
kind = "command"
program = "/bin/echo"
args = ["extra={{ params.extra }}"]
"#;
    let env = Env::new(&[("open.toml", dag)]);
    let (code, out, err) = env.tmctl(&["run", "open", "--date", "2025-03-01", "--conf", r#"{"extra": "yes"}"#]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, log, _) = env.tmctl(&["logs", "1", "t"]);
    assert!(log.contains("extra=yes"), "{log}");
}

// ---- item 8: read-only SQL ----------------------------------------------------------------------

/// The poke: `tmctl query "COPY (SELECT 1) TO 'x.csv' STORED AS CSV"` refuses and writes nothing;
/// other writing statements are refused by name; a SELECT still answers.
#[test]
fn query_is_read_only() {
    let env = Env::new(&[]);
    let (code, _, err) = env.tmctl(&["query", "COPY (SELECT 1) TO 'x.csv' STORED AS CSV"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("COPY is refused; only SELECT, WITH, EXPLAIN, SHOW and DESCRIBE are allowed"), "{err}");
    assert!(!env.path().join("x.csv").exists(), "COPY wrote a file");
    for (sql, what) in [
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'y.csv'", "COPY"),
        ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'", "CREATE EXTERNAL TABLE"),
        ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
        ("INSERT INTO gold.x VALUES (1)", "INSERT"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
    ] {
        let (code, _, err) = env.tmctl(&["query", sql]);
        assert_eq!(code, 2, "{sql}: {err}");
        assert!(err.contains(&format!("{what} is refused")), "{sql}: {err}");
    }
    assert!(!env.path().join("y.csv").exists());
    let (code, out, err) = env.tmctl(&["query", "SELECT 40 + 2 AS answer", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "answer\n42");
}

// ---- item 9: bounded work -----------------------------------------------------------------------

/// The poke: a backfill to 9999-12-31 returns at once with an error naming the limit (before:
/// it never returned); `--max-slots` moves the limit; the API refuses the same; list limits are
/// clamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_backfills_are_refused_promptly() {
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dags/example.toml")).unwrap();
    let env = Env::new(&[("example.toml", &example)]);
    let started = Instant::now();
    let (code, _, err) = env.tmctl(&["backfill", "example", "--from", "2025-01-01", "--to", "9999-12-31", "--dry-run"]);
    assert_eq!(code, 2, "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(
        err.contains("--from 2025-01-01 --to 9999-12-31 holds more than 3660 schedule slots of DAG `example`"),
        "{err}"
    );
    assert!(err.contains("--max-slots"), "{err}");
    let (code, _, err) = env.tmctl(&[
        "backfill",
        "example",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-31",
        "--max-slots",
        "10",
        "--dry-run",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("more than 10 schedule slots"), "{err}");
    let (code, out, err) = env.tmctl(&[
        "backfill",
        "example",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-10",
        "--max-slots",
        "10",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10 of 10 date(s) would run"), "{out}");

    let daemon = env.serve();
    let http = client();
    let started = Instant::now();
    let r = http
        .post(format!("{}/api/v1/backfills", daemon.url))
        .bearer_auth(TOKEN)
        .json(&json!({"dag_id": "example", "from": "2025-01-01", "to": "9999-12-31"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(r.text().await.unwrap().contains("more than 3660 schedule slots"));
    let r = http
        .get(format!("{}/api/v1/dags/example/runs?limit=99999999999", daemon.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

// ---- item 5: HTTP hardening ---------------------------------------------------------------------

/// Pages, the API, static files and errors carry the security headers (CSP without inline
/// script); a body over `web.max_body` gets 413 before anything reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_and_body_limit() {
    let env = Env::new(&[("leak.toml", LEAK_DAG)]).env("TM_WEB_MAX_BODY", "4KiB");
    let daemon = env.serve();
    let http = client();
    for path in ["/health", "/api/v1/dags", "/static/app.js", "/login", "/", "/api/v1/runs/999"] {
        let r = http.get(format!("{}{path}", daemon.url)).bearer_auth(TOKEN).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{path}");
        assert_eq!(h.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{path}");
        assert_eq!(h.get("referrer-policy").map(|v| v.to_str().unwrap()), Some("same-origin"), "{path}");
        let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{path}: {csp}");
    }
    // No page carries inline script (the CSP would block it).
    let page = http.get(format!("{}/login", daemon.url)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("<script>") && !page.contains(" onclick="), "{page}");

    let big = json!({"logical_date": "2025-03-01", "conf": {"api_key": "x".repeat(8 * 1024)}});
    let r =
        http.post(format!("{}/api/v1/dags/leak/runs", daemon.url)).bearer_auth(TOKEN).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let runs = get(&http, format!("{}/api/v1/dags/leak/runs", daemon.url)).await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
}

/// A client that never finishes its headers is cut after `web.header_read_timeout`, and more
/// than `web.max_connections` connections at once get 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_and_connections_are_capped() {
    use std::io::{Read, Write};
    let env = Env::new(&[]).env("TM_WEB_HEADER_READ_TIMEOUT", "1s").env("TM_WEB_MAX_CONNECTIONS", "2");
    let daemon = env.serve();
    let addr = daemon.url.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    // A kept-alive connection that has had its answer: the server has accepted it, and `slow`
    // (accepted in connection order) before it, so both hold a place.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && idle.read(&mut byte).unwrap() == 1 {
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&head));
    let mut third = std::net::TcpStream::connect(&addr).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    third.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").ok();
    let mut answer = String::new();
    let _ = third.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    let started = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(5), "slow client held for {:?}", started.elapsed());
    // Its place is given back once the server has closed its side.
    let http = client();
    common::eventually(Duration::from_millis(50), Duration::from_secs(5), "a free place after the cut", || async {
        let r = http.get(format!("{}/health", daemon.url)).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

// ---- item 10: files -----------------------------------------------------------------------------

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// The home is 0700, the state DB and its WAL/SHM and `api-token` 0600; a daemon refuses to
/// start (exit 3, saying how to fix it) when `api-token` is readable by others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_files_are_private_and_an_open_token_file_stops_the_daemon() {
    let env = Env::new(&[]);
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The token comes from the file this time.
    let mut command = env.command();
    command.env_remove("TM_API_TOKEN");
    let mut daemon = ServeProcess::spawn(command, env.path().join("serve.log"));
    let r = client().get(format!("{}/health", daemon.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(mode(env.path()), 0o700, "home");
    assert_eq!(mode(&env.path().join("api-token")), 0o600, "api-token");
    for f in ["tm.db", "tm.db-wal", "tm.db-shm"] {
        assert_eq!(mode(&env.path().join(f)), 0o600, "{f}");
    }
    daemon.sigterm();

    let token = env.path().join("api-token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.command().env_remove("TM_API_TOKEN").args(["serve", "--bind", "127.0.0.1:0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("is readable by group or others (mode 0644)"), "{err}");
    assert!(err.contains(&format!("chmod 600 {}", token.display())), "{err}");
}
