//! End-to-end tests of the `tmctl` binary: every test runs the real executable with its own
//! `--home` (a temp dir) and the DAGs in `tests/fixtures/cli_dags/` (or a temp dir it writes DAG
//! files into), and checks exit codes (0 ok, 1 a run/task failed, 2 bad input, 3 bad config),
//! the text that matters on stdout/stderr, and the state read back through `--json` output or
//! the `tmctl::store::Store` library.
//!
//! The state DB is SQLite (`<home>/tm.db`, `TM_DATABASE_URL` removed from the environment) unless
//! a test says `Tm::postgres()`, which points `TM_DATABASE_URL` at a fresh PostgreSQL database
//! from `common::postgres_db()`. The scenarios shared by both backends are the `scenario_*`
//! functions.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tmctl::store::{RunFilter, Store};

const BIN: &str = env!("CARGO_BIN_EXE_tmctl");

fn fixture_dags() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli_dags")
}

fn fixture_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli_config").join(name)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}

// ---- running the binary -------------------------------------------------------------------------

/// What one invocation of `tmctl` did.
struct Out {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn from_output(args: String, o: Output) -> Out {
        Out {
            args,
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics (showing everything) unless the exit code is `code`.
    #[track_caller]
    fn code(self, code: i32) -> Out {
        assert_eq!(self.code, code, "exit code of `tmctl {}`\n{}", self.args, self.dump());
        self
    }

    #[track_caller]
    fn stdout_has(self, fragment: &str) -> Out {
        assert!(self.stdout.contains(fragment), "stdout of `tmctl {}` lacks {fragment:?}\n{}", self.args, self.dump());
        self
    }

    #[track_caller]
    fn stderr_has(self, fragment: &str) -> Out {
        assert!(self.stderr.contains(fragment), "stderr of `tmctl {}` lacks {fragment:?}\n{}", self.args, self.dump());
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout of `tmctl {}` is not JSON: {e}\n{}", self.args, self.dump()))
    }

    fn dump(&self) -> String {
        format!("--- exit {} ---\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }

    /// The event line `run` printed for `task` entering `state` (`  HH:MM:SS.mmm  task  state  try a/b  error`).
    fn event(&self, task: &str, state: &str) -> Option<&str> {
        self.stdout.lines().find(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() >= 3 && words[1] == task && words[2] == state
        })
    }

    #[track_caller]
    fn expect_event(&self, task: &str, state: &str) -> &str {
        self.event(task, state)
            .unwrap_or_else(|| panic!("`tmctl {}` printed no `{task} {state}` line\n{}", self.args, self.dump()))
    }
}

/// One isolated tmctl installation: a home dir, a DAGs dir and a state DB.
struct Tm {
    home: tempfile::TempDir,
    dags: PathBuf,
    /// The PostgreSQL database (dropped with the guard), or `None` for SQLite in the home dir.
    pg: Option<common::TestDb>,
}

impl Tm {
    fn sqlite() -> Tm {
        Tm { home: tempfile::tempdir().expect("temp home"), dags: fixture_dags(), pg: None }
    }

    fn postgres() -> Tm {
        let db = block_on(common::postgres_db());
        Tm { home: tempfile::tempdir().expect("temp home"), dags: fixture_dags(), pg: Some(db) }
    }

    fn with_dags(mut self, dir: &Path) -> Tm {
        self.dags = dir.to_path_buf();
        self
    }

    fn backend(&self) -> &'static str {
        if self.pg.is_some() { "postgres" } else { "sqlite" }
    }

    fn db_url(&self) -> String {
        match &self.pg {
            Some(db) => db.url.clone(),
            None => tmctl::config::sqlite_url(&self.home.path().join("tm.db")),
        }
    }

    /// The command with a clean environment: no inherited `TM_*` variables (so a developer's
    /// settings cannot leak in), `TM_DATABASE_URL` only for PostgreSQL.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TM_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env_remove("CLI_BAD_DATE");
        if let Some(db) = &self.pg {
            cmd.env("TM_DATABASE_URL", &db.url);
        }
        cmd.arg("--home").arg(self.home.path()).arg("--dags").arg(&self.dags).args(args);
        cmd.current_dir(self.home.path()).stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run tmctl");
        Out::from_output(format!("{} [{}]", args.join(" "), self.backend()), out)
    }

    /// `runs list --json` as parsed JSON rows.
    fn runs(&self) -> Vec<Value> {
        self.run(&["runs", "list", "--json", "--limit", "1000"])
            .code(0)
            .json()
            .as_array()
            .expect("runs list is an array")
            .clone()
    }

    /// `runs show N --json`.
    fn show(&self, run: i64) -> Value {
        self.run(&["runs", "show", &run.to_string(), "--json"]).code(0).json()
    }

    fn store(&self) -> Store {
        block_on(Store::connect(&self.db_url(), 2)).unwrap_or_else(|e| panic!("{}: {e}", self.backend()))
    }
}

/// The task entry `task_id` of a `runs show --json` document.
#[track_caller]
fn task<'a>(run: &'a Value, task_id: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["task_id"] == task_id))
        .unwrap_or_else(|| panic!("run has no task `{task_id}`: {run:#}"))
}

/// `ds -> (outcome, run_pk, reason)` of a `backfill --json` report, in report order.
fn backfill_dates(report: &Value) -> Vec<(String, String, Option<i64>, String)> {
    report["dates"]
        .as_array()
        .expect("dates")
        .iter()
        .map(|d| {
            (
                d["ds"].as_str().unwrap_or_default().to_string(),
                d["outcome"].as_str().unwrap_or_default().to_string(),
                d["run_pk"].as_i64(),
                d["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The row of a printed table that has a cell equal to `cell` (empty if none).
fn table_row(text: &str, cell: &str) -> String {
    text.lines()
        .find(|l| l.starts_with('│') && l.split(['│', '┆']).any(|c| c.trim() == cell))
        .unwrap_or_default()
        .to_string()
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    backfill_dates(report).into_iter().map(|(ds, o, _, _)| (ds, o)).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// `ds -> run id` of every run of `dag`.
fn run_ids_by_ds(tm: &Tm, dag: &str) -> BTreeMap<String, i64> {
    tm.runs()
        .iter()
        .filter(|r| r["dag_id"] == dag)
        .map(|r| (r["ds"].as_str().unwrap().to_string(), r["id"].as_i64().unwrap()))
        .collect()
}

// ---- shared scenarios (SQLite and PostgreSQL) ---------------------------------------------------

/// `run` of a DAG that succeeds: exit 0, "succeeded", every task success after one try; a second
/// `run` of the same date re-runs the same run.
fn scenario_run_succeeds(tm: &Tm) {
    let out = tm
        .run(&["run", "ok", "--date", "2025-01-01"])
        .code(0)
        .stdout_has("created run 1 of `ok` for 2025-01-01 (manual__2025-01-01T00:00:00+00:00)")
        .stdout_has("run 1 succeeded in ");
    for t in ["start", "nap", "echo_ds", "finish"] {
        assert!(out.expect_event(t, "success").contains("try 1/1"), "{}", out.dump());
    }

    let run = tm.show(1);
    assert_eq!(run["state"], "success");
    assert_eq!(run["dag_id"], "ok");
    assert_eq!(run["ds"], "2025-01-01");
    assert_eq!(run["run_type"], "manual");
    assert_eq!(run["data_interval_start"], "2025-01-01T00:00:00+00:00");
    assert_eq!(run["data_interval_end"], "2025-01-02T00:00:00+00:00");
    assert_eq!(run["tasks"].as_array().map(Vec::len), Some(4));
    for t in run["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "success", "{t}");
        assert_eq!((t["try_number"].as_i64(), t["max_tries"].as_i64()), (Some(1), Some(1)), "{t}");
        assert!(t["error"].is_null(), "{t}");
    }
    // The command saw the run's date.
    tm.run(&["logs", "1", "echo_ds"]).code(0).stdout_has("ok for 2025-01-01").stderr_has("try 1 (success)");

    // The same date again: the existing run is re-run (try numbers keep counting), not duplicated.
    tm.run(&["run", "ok", "--date", "2025-01-01"])
        .code(0)
        .stdout_has("re-running existing run 1 of `ok` for 2025-01-01")
        .stdout_has("run 1 succeeded in ");
    assert_eq!(tm.runs().len(), 1);
    assert_eq!(task(&tm.show(1), "finish")["try_number"], 2);

    // The library reads the same state.
    let store = tm.store();
    let runs = block_on(store.list_runs(&RunFilter { dag_id: Some("ok"), state: None, limit: 10 })).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, tmctl::store::RunState::Success);
    let attempts = block_on(store.list_attempts(1, "echo_ds")).unwrap();
    assert_eq!(attempts.iter().map(|a| a.try_number).collect::<Vec<_>>(), vec![1, 2]);
    assert!(attempts.iter().all(|a| a.log.contains("ok for 2025-01-01")), "{attempts:#?}");
}

/// `run` of a DAG with a task that fails every try: exit 1, try 2/2, downstream upstream_failed,
/// the independent branch still succeeds.
fn scenario_run_fails(tm: &Tm) {
    let out = tm.run(&["run", "failing", "--date", "2025-01-01"]).code(1).stdout_has("run 1 failed after ");
    assert!(!out.stdout.contains("succeeded in"), "{}", out.dump());
    assert!(out.expect_event("boom", "up_for_retry").contains("try 1/2"), "{}", out.dump());
    let failed = out.expect_event("boom", "failed");
    assert!(failed.contains("try 2/2"), "{}", out.dump());
    assert!(failed.contains("boom goes the task (try 2 of the first 99 that fail)"), "{}", out.dump());
    out.expect_event("after_boom", "upstream_failed");
    out.expect_event("side", "success");
    out.expect_event("side_after", "success");
    assert!(out.event("after_boom", "running").is_none(), "a task downstream of a failure ran\n{}", out.dump());

    let run = tm.show(1);
    assert_eq!(run["state"], "failed");
    let boom = task(&run, "boom");
    assert_eq!(boom["state"], "failed");
    assert_eq!((boom["try_number"].as_i64(), boom["max_tries"].as_i64()), (Some(2), Some(2)));
    assert_eq!(boom["error"], "boom goes the task (try 2 of the first 99 that fail)");
    let after = task(&run, "after_boom");
    assert_eq!(after["state"], "upstream_failed");
    assert_eq!(after["try_number"], 0);
    for t in ["start", "side", "side_after"] {
        assert_eq!(task(&run, t)["state"], "success", "{t}: {run:#}");
    }

    // The human table says the same.
    let table = tm.run(&["runs", "show", "1"]).code(0).stdout_has("run 1 of `failing`: failed").stdout;
    let row = |name: &str| table_row(&table, name);
    assert!(row("boom").contains("failed") && row("boom").contains("2/2"), "{table}");
    assert!(row("after_boom").contains("upstream_failed") && row("after_boom").contains("0/1"), "{table}");
    assert!(row("side_after").contains("success"), "{table}");

    // A task that never started has no log; the failed one has two.
    tm.run(&["logs", "1", "after_boom"]).code(2).stderr_has("task `after_boom` of run 1 has not started a try yet");
    tm.run(&["logs", "1", "boom", "--try", "1"])
        .code(0)
        .stdout_has("boom goes the task (try 1 of the first 99 that fail)");
    tm.run(&["logs", "1", "boom"])
        .code(0)
        .stdout_has("boom goes the task (try 2 of the first 99 that fail)")
        .stdout_has("no tries left, task failed")
        .stderr_has("try 2 (failed)");
}

/// Backfill of three days of `ok`, then the same range again (everything skipped).
fn scenario_backfill(tm: &Tm) {
    let first = tm.run(&["backfill", "ok", "--from", "2025-01-01", "--to", "2025-01-03", "--json"]).code(0).json();
    assert_eq!(
        (first["succeeded"].as_i64(), first["failed"].as_i64(), first["skipped"].as_i64()),
        (Some(3), Some(0), Some(0))
    );
    assert_eq!(first["dag_id"], "ok");
    assert_eq!(first["dry_run"], false);
    assert_eq!(
        outcomes(&first),
        pairs(&[("2025-01-01", "succeeded"), ("2025-01-02", "succeeded"), ("2025-01-03", "succeeded")])
    );
    let backfill_id = first["backfill_id"].as_i64().expect("backfill_id");

    let runs = tm.runs();
    assert_eq!(runs.len(), 3);
    for r in &runs {
        assert_eq!(r["state"], "success", "{r}");
        assert_eq!(r["run_type"], "backfill", "{r}");
        assert_eq!(r["backfill_id"].as_i64(), Some(backfill_id), "{r}");
    }
    // Every date's run is the one the report names.
    let by_ds = run_ids_by_ds(tm, "ok");
    for (ds, _, run_pk, _) in backfill_dates(&first) {
        assert_eq!(run_pk, by_ds.get(&ds).copied(), "{ds}");
    }

    // Again, default --reprocess none: every date skipped, nothing new, exit 0.
    let second = tm.run(&["backfill", "ok", "--from", "2025-01-01", "--to", "2025-01-03", "--json"]).code(0).json();
    assert_eq!(
        (second["succeeded"].as_i64(), second["failed"].as_i64(), second["skipped"].as_i64()),
        (Some(0), Some(0), Some(3))
    );
    for (ds, outcome, run_pk, reason) in backfill_dates(&second) {
        assert_eq!(outcome, "skipped", "{ds}");
        assert_eq!(run_pk, by_ds.get(&ds).copied(), "{ds}");
        assert!(reason.contains("already has run"), "{ds}: {reason}");
    }
    assert_ne!(second["backfill_id"], first["backfill_id"]);
    assert_eq!(tm.runs().len(), 3);

    // The store keeps the per-date outcomes of both backfills.
    let store = tm.store();
    let dates = block_on(store.list_backfill_dates(backfill_id)).unwrap();
    assert_eq!(dates.iter().map(|d| d.outcome.as_str()).collect::<Vec<_>>(), vec!["succeeded"; 3]);
    let bf = block_on(store.get_backfill(backfill_id)).unwrap().expect("backfill row");
    assert_eq!(bf.state, "completed");
}

/// The conf under which `picky` fails on no date.
const NO_BAD_DATE: &str = r#"{"bad_date": ""}"#;

/// `picky` fails on 2025-01-02: the backfill exits 1; `--reprocess failed` re-runs that date only,
/// `--reprocess completed` every date.
fn scenario_backfill_reprocess(tm: &Tm) {
    let args = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec!["backfill", "picky", "--from", "2025-01-01", "--to", "2025-01-03", "--json"];
        a.extend_from_slice(extra);
        a
    };
    let first = tm.run(&args(&[])).code(1).json();
    assert_eq!(
        (first["succeeded"].as_i64(), first["failed"].as_i64(), first["skipped"].as_i64()),
        (Some(2), Some(1), Some(0))
    );
    assert_eq!(
        outcomes(&first),
        pairs(&[("2025-01-01", "succeeded"), ("2025-01-02", "failed"), ("2025-01-03", "succeeded")])
    );
    let reason = &backfill_dates(&first)[1].3;
    assert_eq!(reason, "task `check` failed: `/bin/sh` exited with code 1");
    let ids = run_ids_by_ds(tm, "picky");
    assert_eq!(ids.len(), 3);
    let failed_run = tm.show(ids["2025-01-02"]);
    assert_eq!(failed_run["state"], "failed");
    assert_eq!(task(&failed_run, "check")["state"], "failed");
    assert_eq!(task(&failed_run, "publish")["state"], "upstream_failed");

    // --reprocess failed: only 2025-01-02 runs again (and fails again), the others are skipped.
    let again = tm.run(&args(&["--reprocess", "failed"])).code(1).json();
    let dates = backfill_dates(&again);
    assert_eq!(
        outcomes(&again),
        pairs(&[("2025-01-01", "skipped"), ("2025-01-02", "failed"), ("2025-01-03", "skipped")])
    );
    assert!(dates[0].3.contains("succeeded"), "{:?}", dates[0]);
    assert_eq!(dates[1].2, Some(ids["2025-01-02"]), "the failed date re-uses its run");
    assert_eq!(task(&tm.show(ids["2025-01-02"]), "check")["try_number"], 2);
    assert_eq!(task(&tm.show(ids["2025-01-01"]), "check")["try_number"], 1);

    // The cause gone (bad_date empty: no date fails), --reprocess failed repairs the date.
    let fixed = tm.run(&args(&["--reprocess", "failed", "--conf", NO_BAD_DATE])).code(0).json();
    assert_eq!(
        outcomes(&fixed),
        pairs(&[("2025-01-01", "skipped"), ("2025-01-02", "succeeded"), ("2025-01-03", "skipped")])
    );
    assert_eq!(tm.show(ids["2025-01-02"])["state"], "success");
    assert_eq!(task(&tm.show(ids["2025-01-02"]), "publish")["state"], "success");

    // Nothing failed any more: --reprocess failed skips all.
    let none_left = tm.run(&args(&["--reprocess", "failed", "--conf", NO_BAD_DATE])).code(0).json();
    assert_eq!(none_left["skipped"], 3);

    // --reprocess completed re-runs every date, in the same runs.
    let all = tm.run(&args(&["--reprocess", "completed", "--conf", NO_BAD_DATE])).code(0).json();
    assert_eq!(all["succeeded"], 3);
    assert_eq!(
        backfill_dates(&all).iter().map(|d| d.2).collect::<Vec<_>>(),
        ids.values().map(|&i| Some(i)).collect::<Vec<_>>()
    );
    assert_eq!(task(&tm.show(ids["2025-01-01"]), "check")["try_number"], 2);
    assert_eq!(task(&tm.show(ids["2025-01-02"]), "check")["try_number"], 4);
    assert_eq!(tm.runs().len(), 3);

    // A completed re-run that fails makes the backfill exit 1 again.
    let broke = tm.run(&args(&["--reprocess", "completed", "--conf", r#"{"bad_date": "2025-01-03"}"#])).code(1).json();
    assert_eq!(
        outcomes(&broke),
        pairs(&[("2025-01-01", "succeeded"), ("2025-01-02", "succeeded"), ("2025-01-03", "failed")])
    );
}

// ---- run ----------------------------------------------------------------------------------------

#[test]
fn run_succeeds_sqlite() {
    scenario_run_succeeds(&Tm::sqlite());
}

#[test]
fn run_succeeds_postgres() {
    scenario_run_succeeds(&Tm::postgres());
}

#[test]
fn run_with_always_failing_task_sqlite() {
    scenario_run_fails(&Tm::sqlite());
}

#[test]
fn run_with_always_failing_task_postgres() {
    scenario_run_fails(&Tm::postgres());
}

#[test]
fn run_rejects_bad_dates_and_unknown_dags() {
    let tm = Tm::sqlite();
    tm.run(&["run", "ok", "--date", "2025-13-01"])
        .code(2)
        .stderr_has("--date `2025-13-01` is not a date; expected YYYY-MM-DD");
    tm.run(&["run", "ok", "--date", "yesterday"]).code(2).stderr_has("--date `yesterday` is not a date");
    tm.run(&["run", "nope", "--date", "2025-01-01"])
        .code(2)
        .stderr_has("unknown DAG `nope` in ")
        .stderr_has("(DAGs: ")
        .stderr_has("failing, flaky, killgroup, ny, ok, params, picky, slow, timeout");
    let missing = tm.home.path().join("no-such-dir");
    Tm::sqlite()
        .with_dags(&missing)
        .run(&["run", "ok", "--date", "2025-01-01"])
        .code(2)
        .stderr_has("does not exist (set --dags or TM_DAGS_DIR)");
    assert!(tm.runs().is_empty(), "bad input created a run");
}

// ---- --conf -------------------------------------------------------------------------------------

#[test]
fn conf_params_reach_the_command_and_its_log() {
    let tm = Tm::sqlite();
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", r#"{"x": "hello conf", "n": 42}"#])
        .code(0)
        .stdout_has("run 1 succeeded");
    tm.run(&["logs", "1", "show"]).code(0).stdout_has("param x is [hello conf], n is [42]");
    let run = tm.show(1);
    assert_eq!(run["conf"], json!({"x": "hello conf", "n": 42}));

    // Without --conf the declared defaults apply.
    tm.run(&["run", "params", "--date", "2025-01-02"]).code(0);
    tm.run(&["logs", "2", "show"]).code(0).stdout_has("param x is [default-x], n is [1]");

    // runs show prints the conf.
    tm.run(&["runs", "show", "1"]).code(0).stdout_has("conf ").stdout_has("hello conf");
}

#[test]
fn bad_conf_is_bad_input_and_creates_nothing() {
    let tm = Tm::sqlite();
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", "{x"])
        .code(2)
        .stderr_has("error: --conf is not valid JSON");
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", "[1, 2]"])
        .code(2)
        .stderr_has("error: --conf must be a JSON object, found [1,2]");
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", "\"x\""])
        .code(2)
        .stderr_has("--conf must be a JSON object");
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", r#"{"n": "abc"}"#])
        .code(2)
        .stderr_has("param `n` must be a")
        .stderr_has("integer, found \"abc\"");
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", r#"{"x": 5}"#])
        .code(2)
        .stderr_has("param `x` must be a string");
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", r#"{"x": "a", "extra": true}"#])
        .code(2)
        .stderr_has("conf key `extra` is not a param of DAG `params` (declared: n, x;");
    tm.run(&["backfill", "params", "--from", "2025-01-01", "--to", "2025-01-02", "--conf", "{x"])
        .code(2)
        .stderr_has("--conf is not valid JSON");
    tm.run(&["backfill", "params", "--from", "2025-01-01", "--to", "2025-01-02", "--conf", r#"{"n": 1.5}"#])
        .code(2)
        .stderr_has("param `n` must be a");
    assert!(tm.runs().is_empty(), "bad --conf created a run");
}

/// Re-running an existing date takes the new `--conf` (the run's conf is replaced), for `run`
/// and for a reprocessing backfill alike.
#[test]
fn rerun_takes_the_new_conf() {
    let tm = Tm::sqlite();
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", r#"{"x": "first"}"#]).code(0);
    tm.run(&["run", "params", "--date", "2025-01-01", "--conf", r#"{"x": "second"}"#])
        .code(0)
        .stdout_has("re-running existing run 1 of `params`");
    tm.run(&["logs", "1", "show"]).code(0).stdout_has("param x is [second], n is [1]");
    tm.run(&["logs", "1", "show", "--try", "1"]).code(0).stdout_has("param x is [first], n is [1]");
    assert_eq!(tm.show(1)["conf"], json!({"x": "second"}));

    let range =
        ["backfill", "params", "--from", "2025-01-01", "--to", "2025-01-02", "--json", "--reprocess", "completed"];
    let report = tm.run(&[&range[..], &["--conf", r#"{"x": "third", "n": 3}"#]].concat()).code(0).json();
    assert_eq!(report["succeeded"], 2);
    let ids = run_ids_by_ds(&tm, "params");
    assert_eq!(ids.len(), 2);
    for (ds, id) in &ids {
        assert_eq!(tm.show(*id)["conf"], json!({"x": "third", "n": 3}), "{ds}");
        tm.run(&["logs", &id.to_string(), "show"]).code(0).stdout_has("param x is [third], n is [3]");
    }
}

// ---- logs ---------------------------------------------------------------------------------------

#[test]
fn logs_per_try() {
    let tm = Tm::sqlite();
    let out = tm.run(&["run", "flaky", "--date", "2025-01-01"]).code(0).stdout_has("run 1 succeeded");
    assert!(out.expect_event("flaky", "up_for_retry").contains("try 1/3"), "{}", out.dump());
    assert!(out.expect_event("flaky", "success").contains("try 2/3"), "{}", out.dump());

    let try1 = tm
        .run(&["logs", "1", "flaky", "--try", "1"])
        .code(0)
        .stdout_has("tmctl: starting try 1 of 3 for flaky.flaky")
        .stdout_has("upstream API answered 503 (try 1 of the first 1 that fail)")
        .stdout_has("tmctl: try 1 failed; retrying in 100ms (try 2 of 3)")
        .stderr_has("--- flaky.flaky run 1 try 1 (failed)");
    assert!(!try1.stdout.contains("succeeded"), "{}", try1.dump());

    let latest = tm
        .run(&["logs", "1", "flaky"])
        .code(0)
        .stdout_has("tmctl: starting try 2 of 3 for flaky.flaky")
        .stdout_has("tmctl: try 2 succeeded in ")
        .stderr_has("--- flaky.flaky run 1 try 2 (success)");
    assert!(!latest.stdout.contains("upstream API answered 503"), "{}", latest.dump());
    let try2 = tm.run(&["logs", "1", "flaky", "--try", "2"]).code(0);
    assert_eq!(try2.stdout, latest.stdout);

    tm.run(&["logs", "999", "flaky"]).code(2).stderr_has("run 999 does not exist");
    tm.run(&["logs", "1", "nope"])
        .code(2)
        .stderr_has("run 1 of `flaky` has no task `nope` (tasks: ")
        .stderr_has("flaky")
        .stderr_has("after");
    tm.run(&["logs", "1", "flaky", "--try", "3"])
        .code(2)
        .stderr_has("task `flaky` of run 1 has no try 3 (tries: 1, 2)");
    tm.run(&["logs", "1", "flaky", "--try", "0"]).code(2).stderr_has("has no try 0");
    tm.run(&["logs", "1", "flaky", "--try", "x"]).code(2);
}

// ---- backfill -----------------------------------------------------------------------------------

#[test]
fn backfill_bad_input() {
    let tm = Tm::sqlite();
    let out = tm.run(&["backfill", "ok", "--from", "2025-01-05", "--to", "2025-01-01"]).code(2);
    assert_eq!(out.stderr.trim_end(), "error: --from 2025-01-05 is after --to 2025-01-01", "{}", out.dump());
    assert!(out.stdout.is_empty(), "{}", out.dump());

    tm.run(&["backfill", "nope", "--from", "2025-01-01", "--to", "2025-01-02"])
        .code(2)
        .stderr_has("unknown DAG `nope`");
    tm.run(&["backfill", "ok", "--from", "2024-12-30", "--to", "2025-01-02"])
        .code(2)
        .stderr_has("--from 2024-12-30 is before DAG `ok`'s start_date 2025-01-01");
    tm.run(&["backfill", "ok", "--from", "2025-01-xx", "--to", "2025-01-02"])
        .code(2)
        .stderr_has("--from `2025-01-xx` is not a date; expected YYYY-MM-DD");
    tm.run(&["backfill", "ok", "--from", "2025-01-01", "--to", "2025-02-30"])
        .code(2)
        .stderr_has("--to `2025-02-30` is not a date");
    tm.run(&["backfill", "ok", "--from", "2025-01-01", "--to", "2025-01-02", "--reprocess", "x"])
        .code(2)
        .stderr_has("--reprocess `x` is not one of none, failed, completed");
    tm.run(&["backfill", "ok", "--from", "2025-01-01", "--to", "2025-01-02", "--max-active-runs", "0"])
        .code(2)
        .stderr_has("--max-active-runs must be at least 1");
    // Bad input records nothing: no runs, no backfills.
    assert!(tm.runs().is_empty());
    assert!(block_on(tm.store().list_backfills(None, 10)).unwrap().is_empty());
}

#[test]
fn backfill_three_days_then_all_skipped_sqlite() {
    scenario_backfill(&Tm::sqlite());
}

#[test]
fn backfill_three_days_then_all_skipped_postgres() {
    scenario_backfill(&Tm::postgres());
}

#[test]
fn backfill_reprocess_sqlite() {
    scenario_backfill_reprocess(&Tm::sqlite());
}

#[test]
fn backfill_reprocess_postgres() {
    scenario_backfill_reprocess(&Tm::postgres());
}

#[test]
fn backfill_table_output() {
    let tm = Tm::sqlite();
    let out = tm
        .run(&["backfill", "picky", "--from", "2025-01-01", "--to", "2025-01-03"])
        .code(1)
        .stdout_has("of `picky` from 2025-01-01 to 2025-01-03:")
        .stdout_has("2 succeeded, 1 failed, 0 skipped");
    let row = |ds: &str| table_row(&out.stdout, ds);
    assert!(row("2025-01-01").contains("succeeded"), "{}", out.dump());
    assert!(
        row("2025-01-02").contains("failed") && row("2025-01-02").contains("task `check` failed"),
        "{}",
        out.dump()
    );
    // Without a terminal, progress goes to stderr one date per line.
    let progress: Vec<&str> =
        out.stderr.lines().filter(|l| l.starts_with('[') && l.contains("/3] 2025-01-0")).collect();
    assert_eq!(progress.len(), 3, "{}", out.dump());

    let out = tm
        .run(&["backfill", "picky", "--from", "2025-01-01", "--to", "2025-01-03"])
        .code(0)
        .stdout_has("0 succeeded, 0 failed, 3 skipped")
        .stdout_has("already has run");
    assert!(out.stdout.contains("use --reprocess to run it again"), "{}", out.dump());
}

#[test]
fn backfill_dry_run_changes_nothing() {
    let tm = Tm::sqlite();
    // A dry run on an empty state DB creates nothing.
    let plan =
        tm.run(&["backfill", "ok", "--from", "2025-01-01", "--to", "2025-01-02", "--dry-run", "--json"]).code(0).json();
    assert_eq!(plan["dry_run"], true);
    let actions: Vec<&str> = plan["dates"].as_array().unwrap().iter().map(|d| d["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "create"]);
    assert!(tm.runs().is_empty());

    tm.run(&["backfill", "ok", "--from", "2025-01-01", "--to", "2025-01-02", "--json"]).code(0);
    let before = tm.runs();
    assert_eq!(before.len(), 2);
    let store = tm.store();
    let backfills_before = block_on(store.list_backfills(None, 100)).unwrap().len();

    let out = tm
        .run(&["backfill", "ok", "--from", "2025-01-01", "--to", "2025-01-04", "--dry-run"])
        .code(0)
        .stdout_has("dry run: backfill of `ok` from 2025-01-01 to 2025-01-04 (reprocess none) would:")
        .stdout_has("2 of 4 date(s) would run; nothing was changed");
    let row = |ds: &str| table_row(&out.stdout, ds);
    assert!(row("2025-01-01").contains("skip") && row("2025-01-01").contains("already has run"), "{}", out.dump());
    assert!(row("2025-01-02").contains("skip"), "{}", out.dump());
    assert!(row("2025-01-03").contains("create run"), "{}", out.dump());
    assert!(row("2025-01-04").contains("create run"), "{}", out.dump());

    let plan = tm
        .run(&[
            "backfill",
            "ok",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-03",
            "--dry-run",
            "--json",
            "--reprocess",
            "completed",
        ])
        .code(0)
        .json();
    let dates = plan["dates"].as_array().unwrap();
    let actions: Vec<&str> = dates.iter().map(|d| d["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["rerun", "rerun", "create"]);
    assert_eq!(dates[0]["previous"], "success");
    assert_eq!(dates[0]["run_pk"], before.iter().find(|r| r["ds"] == "2025-01-01").unwrap()["id"]);
    assert_eq!(
        dates.iter().map(|d| d["ds"].as_str().unwrap()).collect::<Vec<_>>(),
        ["2025-01-01", "2025-01-02", "2025-01-03"]
    );

    // --run-backwards changes the order of the plan too.
    let plan = tm
        .run(&[
            "backfill",
            "ok",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-03",
            "--dry-run",
            "--json",
            "--run-backwards",
        ])
        .code(0)
        .json();
    let order: Vec<&str> = plan["dates"].as_array().unwrap().iter().map(|d| d["ds"].as_str().unwrap()).collect();
    assert_eq!(order, ["2025-01-03", "2025-01-02", "2025-01-01"]);

    // Nothing changed: same runs (same states, same tries), no new backfill record.
    assert_eq!(tm.runs(), before);
    assert_eq!(block_on(store.list_backfills(None, 100)).unwrap().len(), backfills_before);
}

#[test]
fn backfill_run_backwards_creates_newest_first() {
    let tm = Tm::sqlite();
    let report = tm
        .run(&[
            "backfill",
            "ok",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-03",
            "--run-backwards",
            "--max-active-runs",
            "1",
            "--json",
        ])
        .code(0)
        .json();
    assert_eq!(
        outcomes(&report),
        pairs(&[("2025-01-03", "succeeded"), ("2025-01-02", "succeeded"), ("2025-01-01", "succeeded")])
    );
    let ids = run_ids_by_ds(&tm, "ok");
    assert!(
        ids["2025-01-03"] < ids["2025-01-02"] && ids["2025-01-02"] < ids["2025-01-01"],
        "newest date should get the lowest run id: {ids:?}"
    );
    // The runs also started newest first.
    let started = |ds: &str| tm.show(ids[ds])["started_at"].as_str().unwrap().to_string();
    assert!(started("2025-01-03") < started("2025-01-02") && started("2025-01-02") < started("2025-01-01"));

    // Forwards (the default), the oldest date of the next range comes first.
    tm.run(&["backfill", "ok", "--from", "2025-01-04", "--to", "2025-01-06", "--max-active-runs", "1", "--json"])
        .code(0);
    let ids = run_ids_by_ds(&tm, "ok");
    assert!(ids["2025-01-04"] < ids["2025-01-05"] && ids["2025-01-05"] < ids["2025-01-06"], "{ids:?}");
}

#[test]
fn backfill_of_a_failing_dag_exits_1() {
    let tm = Tm::sqlite();
    let report =
        tm.run(&["backfill", "failing", "--from", "2025-01-01", "--to", "2025-01-02", "--json"]).code(1).json();
    assert_eq!(report["failed"], 2);
    for (ds, outcome, _, reason) in backfill_dates(&report) {
        assert_eq!(outcome, "failed", "{ds}");
        assert_eq!(reason, "task `boom` failed: boom goes the task (try 2 of the first 99 that fail)", "{ds}");
    }
    let bf = block_on(tm.store().get_backfill(report["backfill_id"].as_i64().unwrap())).unwrap().unwrap();
    assert_eq!(bf.state, "failed");
}

// ---- runs ---------------------------------------------------------------------------------------

#[test]
fn runs_list_and_show() {
    let tm = Tm::sqlite();
    tm.run(&["runs", "list"]).code(0).stdout_has("no runs");
    tm.run(&["runs", "list", "--dag", "ok"]).code(0).stdout_has("no runs of `ok`");
    tm.run(&["run", "ok", "--date", "2025-01-01"]).code(0);
    tm.run(&["run", "ok", "--date", "2025-01-03"]).code(0);
    tm.run(&["run", "failing", "--date", "2025-01-02"]).code(1);

    let all = tm.runs();
    let summary: Vec<(i64, &str, &str, &str)> = all
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["dag_id"].as_str().unwrap(),
                r["ds"].as_str().unwrap(),
                r["state"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest logical date first.
    assert_eq!(
        summary,
        [
            (2, "ok", "2025-01-03", "success"),
            (3, "failing", "2025-01-02", "failed"),
            (1, "ok", "2025-01-01", "success")
        ]
    );
    for r in &all {
        assert_eq!(r["run_type"], "manual");
        assert!(r["started_at"].is_string() && r["ended_at"].is_string(), "{r}");
    }

    let ok_only = tm.run(&["runs", "list", "--dag", "ok", "--json"]).code(0).json();
    let ok_ids: Vec<i64> = ok_only.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ok_ids, [2, 1]);
    let limited = tm.run(&["runs", "list", "--json", "--limit", "1"]).code(0).json();
    assert_eq!(limited.as_array().map(Vec::len), Some(1));

    let table = tm.run(&["runs", "list"]).code(0).stdout;
    for fragment in ["ok", "failing", "2025-01-03", "manual__2025-01-02T00:00:00+00:00", "success", "failed"] {
        assert!(table.contains(fragment), "runs list lacks {fragment}:\n{table}");
    }

    let show = tm
        .run(&["runs", "show", "3"])
        .code(0)
        .stdout_has("run 3 of `failing`: failed (manual__2025-01-02T00:00:00+00:00, manual)")
        .stdout_has("logs: tmctl logs 3 TASK [--try N]");
    for fragment in ["boom", "after_boom", "upstream_failed", "side_after", "success", "boom goes the task"] {
        assert!(show.stdout.contains(fragment), "runs show lacks {fragment}\n{}", show.dump());
    }
    tm.run(&["runs", "show", "1"]).code(0).stdout_has("run 1 of `ok`: success").stdout_has("echo_ds");
    tm.run(&["runs", "show", "999"]).code(2).stderr_has("run 999 does not exist");
    tm.run(&["runs", "show", "999", "--json"]).code(2).stderr_has("run 999 does not exist");
}

// ---- dags ---------------------------------------------------------------------------------------

fn fixture_dag_count() -> usize {
    std::fs::read_dir(fixture_dags())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count()
}

#[test]
fn dags_validate_good_and_broken() {
    let n = fixture_dag_count();
    Tm::sqlite().run(&["dags", "validate"]).code(0).stdout_has(&format!("ok: {n} DAG(s) in {n} file(s) are valid"));
    Tm::sqlite()
        .run(&["dags", "validate", fixture_dags().join("ok.toml").to_str().unwrap()])
        .code(0)
        .stdout_has("ok: 1 DAG(s) in 1 file(s) are valid");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_dags().join("ok.toml"), dir.path().join("ok.toml")).unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "id = \"broken\"\nschedul = \"@daily\"\n\n[[task]]\nid = \"a\"\nkind = \"slep\"\n\n[[task]]\nid = \"b\"\nkind = \"noop\"\ndepends_on = [\"zzz\"]\n",
    )
    .unwrap();
    let tm = Tm::sqlite().with_dags(dir.path());
    let out = tm.run(&["dags", "validate"]).code(2).stderr_has("problem(s) in 1 of 2 file(s)");
    let prefix = format!("{}:", broken.display());
    let diags: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(diags.len(), 3, "every problem reported at once\n{}", out.dump());
    for d in &diags {
        // file:line:col: message
        let rest = &d[prefix.len()..];
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().unwrap_or_else(|_| panic!("no line number in {d}"));
        let col: usize = parts.next().unwrap().parse().unwrap_or_else(|_| panic!("no column in {d}"));
        assert!(line >= 1 && col >= 1, "{d}");
        assert!(parts.next().is_some_and(|m| m.starts_with(' ') && m.len() > 1), "{d}");
    }
    assert!(
        out.stdout.contains(&format!("{}:2:1: unknown key `schedul`; did you mean `schedule`?", broken.display())),
        "{}",
        out.dump()
    );
    assert!(out.stdout.contains("unknown task kind `slep`"), "{}", out.dump());
    assert!(out.stdout.contains("depends on `zzz`"), "{}", out.dump());
    assert!(!out.stdout.contains("ok.toml"), "the good file has no problems\n{}", out.dump());

    // Validating just the broken file, and a path that does not exist.
    tm.run(&["dags", "validate", broken.to_str().unwrap()]).code(2).stderr_has("3 problem(s) in 1 of 1 file(s)");
    // The course profiles beside the DAGs are checked as profiles, not as a DAG.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dags/courses.toml");
    tm.run(&["dags", "validate", shipped.to_str().unwrap()]).code(0).stdout_has("ok: 0 DAG(s) in 1 file(s)");
    let courses = dir.path().join("courses.toml");
    std::fs::write(&courses, "[[course]]\nid = \"x\"\ntimezone = \"Mars/Olympus\"\n").unwrap();
    tm.run(&["dags", "validate", courses.to_str().unwrap()])
        .code(2)
        .stdout_has(&format!("{}:3:12: unknown time zone `Mars/Olympus`", courses.display()));
    std::fs::remove_file(&courses).unwrap();
    tm.run(&["dags", "validate", "/no/such/dag.toml"]).code(2).stderr_has("/no/such/dag.toml does not exist");

    // Other commands still work with the good DAG and warn about the broken file.
    tm.run(&["run", "ok", "--date", "2025-01-01"])
        .code(0)
        .stderr_has("warning: 3 problem(s) in ")
        .stderr_has("broken.toml")
        .stdout_has("run 1 succeeded");
    tm.run(&["run", "broken", "--date", "2025-01-01"]).code(2).stderr_has("unknown DAG `broken`");
}

#[test]
fn dags_list_show_pause_unpause() {
    let tm = Tm::sqlite();
    let list = tm.run(&["dags", "list"]).code(0);
    for dag in ["ok", "failing", "flaky", "params", "picky", "timeout", "killgroup", "slow", "ny", "bytes"] {
        assert!(list.stdout.contains(&format!(" {dag} ")), "dags list lacks {dag}\n{}", list.dump());
    }
    assert!(list.stdout.contains("@daily") && list.stdout.contains("manual"), "{}", list.dump());

    let json = tm.run(&["dags", "list", "--json"]).code(0).json();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), fixture_dag_count());
    let row = |json: &Value, id: &str| json.as_array().unwrap().iter().find(|r| r["dag_id"] == id).cloned().unwrap();
    let ok = row(&json, "ok");
    assert_eq!(ok["schedule"], "@daily");
    assert_eq!(ok["timezone"], "UTC");
    assert_eq!(ok["tasks"], 4);
    assert_eq!(ok["paused"], false);
    assert!(ok["next_run"].is_string());
    let failing = row(&json, "failing");
    assert!(failing["schedule"].is_null());
    assert!(failing["next_run"].is_null());

    // Tasks in topological order (the file declares them out of order).
    let show = tm.run(&["dags", "show", "failing"]).code(0).stdout_has("DAG failing (").stdout_has("schedule: manual");
    let order: Vec<&str> = show
        .stdout
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).collect();
            (cells.len() > 3 && cells[1].parse::<usize>().is_ok()).then(|| cells[2])
        })
        .collect();
    assert_eq!(order.len(), 5, "{}", show.dump());
    let pos = |t: &str| order.iter().position(|x| *x == t).unwrap_or_else(|| panic!("{t} missing from {order:?}"));
    assert_eq!(order[0], "start");
    for (up, down) in [("start", "boom"), ("start", "side"), ("boom", "after_boom"), ("side", "side_after")] {
        assert!(pos(up) < pos(down), "{up} must come before {down}: {order:?}");
    }
    let boom_line = table_row(&show.stdout, "boom");
    assert!(boom_line.contains("fail") && boom_line.contains("100ms"), "{boom_line}");
    tm.run(&["dags", "show", "params"]).code(0).stdout_has("params: n: integer = 1, x: string = \"default-x\"");
    tm.run(&["dags", "show", "nope"]).code(2).stderr_has("unknown DAG `nope`");

    // Pause and unpause.
    tm.run(&["dags", "pause", "failing"]).code(0).stdout_has("DAG `failing` is now paused");
    let json = tm.run(&["dags", "list", "--json"]).code(0).json();
    assert_eq!(row(&json, "failing")["paused"], true);
    assert_eq!(row(&json, "ok")["paused"], false);
    let text = tm.run(&["dags", "list"]).code(0).stdout;
    assert!(text.lines().any(|l| l.contains(" failing ") && l.contains("yes")), "{text}");
    assert!(block_on(tm.store().is_paused("failing")).unwrap());

    tm.run(&["dags", "pause", "failing"]).code(0).stdout_has("is now paused");
    tm.run(&["dags", "unpause", "failing"]).code(0).stdout_has("DAG `failing` is now unpaused");
    let json = tm.run(&["dags", "list", "--json"]).code(0).json();
    assert_eq!(row(&json, "failing")["paused"], false);
    tm.run(&["dags", "pause", "nope"]).code(2).stderr_has("unknown DAG `nope`");
    tm.run(&["dags", "unpause", "nope"]).code(2).stderr_has("unknown DAG `nope`");
}

// ---- configuration ------------------------------------------------------------------------------

#[test]
fn bad_configuration_exits_3() {
    let tm = Tm::sqlite();
    let out = tm.run_env(&["runs", "list"], &[("TM_EXECUTOR_SLOTS", "abc")]).code(3);
    assert_eq!(
        out.stderr.trim_end(),
        "error: config error: `executor.slots` = \"abc\" must be a positive integer (from TM_EXECUTOR_SLOTS=abc)",
        "{}",
        out.dump()
    );
    tm.run_env(&["run", "ok", "--date", "2025-01-01"], &[("TM_EXECUTOR_SLOTS", "0")])
        .code(3)
        .stderr_has("`executor.slots`")
        .stderr_has("TM_EXECUTOR_SLOTS=0");

    let file = fixture_config("unknown_key.toml");
    tm.run(&["--config", file.to_str().unwrap(), "runs", "list"])
        .code(3)
        .stderr_has("`executor.slotz` is not a setting (known: ")
        .stderr_has(&file.display().to_string());
    tm.run_env(&["runs", "list"], &[("TM_CONFIG", file.to_str().unwrap())]).code(3).stderr_has("`executor.slotz`");
    tm.run(&["--config", "/no/such/config.toml", "runs", "list"]).code(3).stderr_has("file cannot be read");
    tm.run_env(&["runs", "list"], &[("TM_DATABASE_URL", "mysql://db/x")])
        .code(3)
        .stderr_has("`database.url` must start with sqlite:, postgres:// or postgresql://");
    // Nothing ran.
    assert!(tm.runs().is_empty());
}

// ---- timeouts and process groups ----------------------------------------------------------------

#[test]
fn timeout_kills_a_sleep() {
    let tm = Tm::sqlite();
    let started = Instant::now();
    let out = tm.run(&["run", "timeout", "--date", "2025-01-01"]).code(1).stdout_has("run 1 failed after");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "the 5 s sleep should be cut at 300 ms, took {took:?}\n{}", out.dump());
    let failed = out.expect_event("slow", "failed");
    assert!(failed.contains("try 1/1") && failed.contains("timed out after 300ms"), "{}", out.dump());
    let run = tm.show(1);
    let slow = task(&run, "slow");
    assert_eq!(slow["state"], "failed");
    assert_eq!(slow["error"], "timed out after 300ms");
    assert!(slow["duration_ms"].as_i64().is_some_and(|ms| (250..2000).contains(&ms)), "{slow}");
    tm.run(&["logs", "1", "slow"]).code(0).stdout_has("timed out after 300ms");
}

static MARKER: AtomicU32 = AtomicU32::new(0);

/// Pids of processes whose command line contains `pattern`.
fn pgrep(pattern: &str) -> Vec<i32> {
    let out = Command::new("pgrep").arg("-f").arg(pattern).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let tm = Tm::sqlite();
    // A sleep length nobody else uses: 30.<pid><n> seconds.
    let secs = format!("30.{}{}", std::process::id(), MARKER.fetch_add(1, Ordering::SeqCst));
    let pattern = format!("sleep {secs}");
    assert!(pgrep(&pattern).is_empty(), "marker {secs} already in use");
    let conf = json!({ "secs": secs }).to_string();
    let child = tm
        .command(&["run", "killgroup", "--date", "2025-01-01", "--conf", &conf])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tmctl");

    // The grandchild `sleep` does start (so the check below is not vacuous)...
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    while Instant::now() < deadline && !seen {
        seen = !pgrep(&pattern).is_empty();
        if !seen {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let out = Out::from_output("run killgroup".into(), child.wait_with_output().expect("wait for tmctl"));
    assert!(seen, "`{pattern}` never showed up\n{}", out.dump());
    let out = out.code(1);
    assert!(out.expect_event("hang", "failed").contains("timed out after 500ms"), "{}", out.dump());

    // ...and is gone once the run failed: the process group was killed, not just the shell.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = pgrep(&pattern);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = pgrep(&pattern);
    }
    if !left.is_empty() {
        for pid in &left {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        panic!("`{pattern}` (pids {left:?}) outlived its timed-out task\n{}", out.dump());
    }
    let run = tm.show(1);
    assert_eq!(task(&run, "hang")["error"], "timed out after 500ms");
    tm.run(&["logs", "1", "hang"]).code(0).stdout_has(&secs).stdout_has("timed out after 500ms");
}

// ---- interrupting, concurrent runs, crashed runs --------------------------------------------------

/// A `tmctl` started in the background whose stdout is read line by line as it comes.
struct Background {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    fn start(tm: &Tm, args: &[&str]) -> Background {
        let mut child = tm.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start tmctl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Background { child, lines, seen: Vec::new() }
    }

    /// Waits (up to 10 s) for a stdout line for which `pred` holds.
    #[track_caller]
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.child.kill();
        panic!("tmctl never printed {what}; stdout so far:\n{}", self.seen.join("\n"));
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).expect("signal tmctl");
    }

    /// Waits for the exit; stdout is what was read plus the rest.
    fn finish(mut self, label: &str) -> Out {
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        let status = self.child.wait().expect("wait for tmctl");
        self.seen.extend(self.lines.iter());
        Out { args: label.into(), code: status.code().unwrap_or(-1), stdout: self.seen.join("\n") + "\n", stderr }
    }
}

/// A `secs` value for `sleep` that no other process uses, and the pgrep pattern for it.
fn sleep_marker() -> (String, String) {
    let secs = format!("30.{}{}", std::process::id(), MARKER.fetch_add(1, Ordering::SeqCst));
    let pattern = format!("sleep {secs}");
    assert!(pgrep(&pattern).is_empty(), "marker {secs} already in use");
    (secs, pattern)
}

/// Waits (up to 2 s) for no process to match `pattern`; kills leftovers (by pid) and fails if any.
#[track_caller]
fn assert_gone(pattern: &str, context: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = pgrep(pattern);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = pgrep(pattern);
    }
    if !left.is_empty() {
        kill_pids(&left);
        panic!("`{pattern}` (pids {left:?}) is still running\n{context}");
    }
}

fn kill_pids(pids: &[i32]) {
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn concurrent_run_is_refused_and_ctrl_c_cancels() {
    let tm = Tm::sqlite();
    let (secs, pattern) = sleep_marker();
    let conf = json!({ "secs": secs }).to_string();
    let started = Instant::now();
    let mut bg = Background::start(&tm, &["run", "slow", "--date", "2025-01-01", "--conf", &conf]);
    bg.wait_for("`long running`", |l| l.split_whitespace().nth(1) == Some("long") && l.contains("running"));

    // While it runs, the same date cannot be run again, and a backfill leaves it alone.
    tm.run(&["run", "slow", "--date", "2025-01-01"])
        .code(2)
        .stderr_has("run 1 of `slow` for 2025-01-01 is running already");
    let report = tm
        .run(&["backfill", "slow", "--from", "2025-01-01", "--to", "2025-01-01", "--json", "--reprocess", "completed"])
        .code(0)
        .json();
    assert_eq!(
        backfill_dates(&report),
        vec![("2025-01-01".into(), "skipped".into(), Some(1), "run 1 is running already".into())]
    );
    assert_eq!(tm.show(1)["state"], "running");
    assert_eq!(task(&tm.show(1), "long")["state"], "running");

    // Ctrl-C: the running try is killed (with its child process) and recorded as failed.
    bg.signal(nix::sys::signal::Signal::SIGINT);
    let out = bg
        .finish("run slow (SIGINT)")
        .code(1)
        .stderr_has("interrupted: cancelling running tasks")
        .stdout_has("run 1 failed after");
    assert!(started.elapsed() < Duration::from_secs(8), "Ctrl-C did not stop the 30 s command\n{}", out.dump());
    assert!(out.expect_event("long", "failed").contains("cancelled while running"), "{}", out.dump());
    assert!(out.event("after", "running").is_none(), "{}", out.dump());
    assert_gone(&pattern, &out.dump());

    let run = tm.show(1);
    assert_eq!(run["state"], "failed");
    assert_eq!(task(&run, "long")["state"], "failed");
    assert_eq!(task(&run, "long")["error"], "cancelled while running");
    assert_ne!(task(&run, "after")["state"], "success");
    tm.run(&["logs", "1", "long"]).code(0).stdout_has("started").stderr_has("try 1 (failed)");

    // The cancelled run is finished, so it can be run again.
    let quick = json!({ "secs": "0.05" }).to_string();
    tm.run(&["run", "slow", "--date", "2025-01-01", "--conf", &quick]).code(0).stdout_has("re-running existing run 1");
}

/// `kill -9` of a `tmctl run` (no daemon) leaves its run `running`. Running the date again must
/// recover it (the owning process is gone: its attempts are abandoned and retried, SPEC §4), not
/// refuse it forever.
#[test]
fn run_of_a_killed_cli_can_be_recovered() {
    let tm = Tm::sqlite();
    let (secs, pattern) = sleep_marker();
    let conf = json!({ "secs": secs }).to_string();
    let mut bg = Background::start(&tm, &["run", "slow", "--date", "2025-01-01", "--conf", &conf]);
    bg.wait_for("`long running`", |l| l.split_whitespace().nth(1) == Some("long") && l.contains("running"));
    bg.signal(nix::sys::signal::Signal::SIGKILL);
    let out = bg.finish("run slow (SIGKILL)");
    assert_eq!(out.code, -1, "killed by a signal\n{}", out.dump());
    // The orphaned `sleep` is not the point of this test: end it.
    kill_pids(&pgrep(&pattern));
    assert_eq!(tm.show(1)["state"], "running");

    let quick = json!({ "secs": "0.05" }).to_string();
    // `long` has no retries: the killed try was its only one, so resuming the run fails it, as
    // its retry policy says (Airflow does the same with a zombie task that has no retries left).
    tm.run(&["run", "slow", "--date", "2025-01-01", "--conf", &quick])
        .code(1)
        .stdout_has("resuming abandoned run 1")
        .stdout_has("was abandoned (its process stopped) and no tries are left");
    // Running the date again clears the failed run and runs it afresh.
    tm.run(&["run", "slow", "--date", "2025-01-01", "--conf", &quick])
        .code(0)
        .stdout_has("re-running existing run 1")
        .stdout_has("run 1 succeeded");
    let run = tm.show(1);
    assert_eq!(task(&run, "long")["state"], "success");
    let attempts = block_on(tm.store().list_attempts(1, "long")).unwrap();
    assert!(attempts.iter().all(|a| a.state != tmctl::store::AttemptState::Running), "{attempts:#?}");
}

// ---- time zones, templates, odd output ------------------------------------------------------------

#[test]
fn backfill_follows_local_time_across_dst() {
    let tm = Tm::sqlite();
    let report = tm.run(&["backfill", "ny", "--from", "2025-03-08", "--to", "2025-03-10", "--json"]).code(0).json();
    let got: Vec<(&str, &str)> = report["dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["ds"].as_str().unwrap(), d["logical_date"].as_str().unwrap()))
        .collect();
    // 02:30 EST = 07:30Z; 02:30 does not exist on 2025-03-09 and fires at 03:00 EDT = 07:00Z; then 02:30 EDT = 06:30Z.
    assert_eq!(
        got,
        [
            ("2025-03-08", "2025-03-08T07:30:00Z"),
            ("2025-03-09", "2025-03-09T07:00:00Z"),
            ("2025-03-10", "2025-03-10T06:30:00Z")
        ]
    );
    let ids = run_ids_by_ds(&tm, "ny");
    let run = tm.show(ids["2025-03-09"]);
    assert_eq!(run["run_type"], "backfill");
    assert_eq!(run["run_id"], "backfill__2025-03-09T07:00:00+00:00");
    assert_eq!(run["data_interval_start"], "2025-03-09T07:00:00+00:00");
    assert_eq!(run["data_interval_end"], "2025-03-10T06:30:00+00:00");
    tm.run(&["logs", &ids["2025-03-09"].to_string(), "echo"]).code(0).stdout_has(
        "ds=2025-03-09 nodash=20250309 start=2025-03-09T07:00:00+00:00 end=2025-03-10T06:30:00+00:00 run=backfill__2025-03-09T07:00:00+00:00",
    );
    // A manual run for a local date lands on that date's slot: the same run the backfill made.
    tm.run(&["run", "ny", "--date", "2025-03-09"])
        .code(0)
        .stdout_has(&format!("re-running existing run {}", ids["2025-03-09"]));
    assert_eq!(tm.runs().len(), 3);
}

fn scenario_odd_bytes_in_output(tm: &Tm) {
    let out = tm.run(&["run", "bytes", "--date", "2025-01-01"]);
    let out = out.code(0).stdout_has("run 1 succeeded");
    let run = tm.show(1);
    assert_eq!(task(&run, "emit")["state"], "success", "{}", out.dump());
    let log = tm
        .run(&["logs", "1", "emit"])
        .code(0)
        .stdout_has("nul:a")
        .stdout_has("bad:")
        .stdout_has("done")
        .stderr_has("(success)");
    assert!(log.stdout.contains('\u{FFFD}'), "invalid UTF-8 is replaced, not dropped\n{}", log.dump());
}

#[test]
fn nul_and_invalid_utf8_output_sqlite() {
    scenario_odd_bytes_in_output(&Tm::sqlite());
}

#[test]
fn nul_and_invalid_utf8_output_postgres() {
    scenario_odd_bytes_in_output(&Tm::postgres());
}

// ---- doctor ---------------------------------------------------------------------------------------

/// `tmctl doctor` on the embedded defaults (SQLite, local buckets, SQL catalog) with a real SMTP
/// server: every check passes; the same with the SMTP port closed fails that row (and exit 1);
/// `--json` carries the same checks. (S3 and the REST catalog: tests/s3_rest.rs.)
#[test]
fn doctor_checks_db_catalog_buckets_and_smtp() {
    let tm = Tm::sqlite();
    let smtp = common::smtp::SmtpServer::start();
    let port = smtp.port.to_string();
    let good = [("TM_SMTP_HOST", "127.0.0.1"), ("TM_SMTP_PORT", port.as_str())];
    let out = tm.run_env(&["doctor", "--json"], &good).code(0);
    let checks = out.json();
    let rows = checks.as_array().expect("an array of checks");
    let names: Vec<&str> = rows.iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "state DB",
            "Iceberg catalog",
            "bucket landing",
            "bucket quarantine",
            "bucket observability",
            "bucket source",
            "bucket serve",
            "SMTP"
        ],
        "{}",
        out.dump()
    );
    assert!(rows.iter().all(|c| c["status"] == "ok"), "{}", out.dump());
    // The probes cleaned up after themselves.
    let landing = tm.home.path().join("buckets/tm-lakehouse-landing");
    assert_eq!(std::fs::read_dir(landing.join("_tmctl_doctor")).map(|d| d.count()).unwrap_or(0), 0);

    let closed = common::smtp::free_port().to_string();
    let bad = [("TM_SMTP_HOST", "127.0.0.1"), ("TM_SMTP_PORT", closed.as_str()), ("TM_SMTP_TIMEOUT", "2s")];
    let out = tm.run_env(&["doctor"], &bad).code(1).stderr_has("1 check(s) failed");
    let smtp_row = out.stdout.lines().find(|l| l.contains("SMTP")).expect("an SMTP row").to_string();
    assert!(smtp_row.contains("FAILED") && smtp_row.contains(&format!("127.0.0.1:{closed}")), "{}", out.dump());
    assert_eq!(out.stdout.matches(" ok ").count(), 7, "{}", out.dump());
    drop(smtp);
}
