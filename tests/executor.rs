//! The executor and in-process backfills on real state DBs (SQLite and PostgreSQL): parallelism
//! within slots, retries and their timing, upstream_failed propagation, timeouts, logs, alerts,
//! cancellation and the backfill reprocess modes.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tmctl::backfill::{self, Action, Outcome, Reprocess};
use tmctl::config::{Overrides, Settings};
use tmctl::dag::{self, Dag, schedule};
use tmctl::executor::{Executor, Prepared, prepare_run};
use tmctl::store::{AttemptState, RunState, RunType, Store, TaskState};

fn dag(src: &str) -> Dag {
    dag::load_str(src, Path::new("test.toml")).unwrap_or_else(|d| panic!("{d:?}"))
}

fn settings(slots: usize) -> Arc<Settings> {
    let mut s = Settings::load_with(&Overrides::default(), &Default::default()).unwrap();
    s.executor_slots = slots;
    Arc::new(s)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Creates the run for `ds` and executes it.
async fn run_once(exec: &Executor, dag: &Dag, ds: &str) -> (i64, RunState) {
    let slot = schedule::slot_for_date(dag.schedule.as_ref(), dag.timezone, date(ds));
    let prepared =
        prepare_run(exec.store(), dag, &slot, RunType::Manual, &serde_json::json!({}), None, None).await.unwrap();
    let run = prepared.run().clone();
    let state = exec.execute(dag, run.id).await.unwrap();
    (run.id, state)
}

async fn states(store: &Store, run: i64) -> Vec<(String, Option<TaskState>, u32)> {
    store.list_task_instances(run).await.unwrap().into_iter().map(|t| (t.task_id, t.state, t.try_number)).collect()
}

fn state_of(all: &[(String, Option<TaskState>, u32)], task: &str) -> (Option<TaskState>, u32) {
    let (_, s, n) = all.iter().find(|(t, _, _)| t == task).unwrap_or_else(|| panic!("no task {task}"));
    (*s, *n)
}

const DIAMOND_WITH_FAILURE: &str = r#"
id = "diamond"
start_date = "2025-01-01"
[defaults]
retries = 1
retry_delay = "50ms"
[[task]]
id = "a"
kind = "noop"
[[task]]
id = "b"
kind = "fail"
times = 99
depends_on = ["a"]
[[task]]
id = "c"
kind = "noop"
depends_on = ["a"]
[[task]]
id = "d"
kind = "noop"
depends_on = ["b", "c"]
[[task]]
id = "e"
kind = "noop"
depends_on = ["d"]
[[task]]
id = "side"
kind = "sleep"
duration = "100ms"
depends_on = ["c"]
"#;

#[tokio::test]
async fn failure_propagates_upstream_failed_and_fails_the_run() {
    for db in common::both().await {
        let store = common::open(&db).await;
        let exec = Executor::new(store.clone(), settings(4));
        let d = dag(DIAMOND_WITH_FAILURE);
        let (run, state) = run_once(&exec, &d, "2025-01-05").await;
        assert_eq!(state, RunState::Failed, "{}", db.backend);
        let all = states(&store, run).await;
        assert_eq!(state_of(&all, "a"), (Some(TaskState::Success), 1));
        assert_eq!(state_of(&all, "b"), (Some(TaskState::Failed), 2), "{}: both tries used", db.backend);
        assert_eq!(state_of(&all, "c"), (Some(TaskState::Success), 1));
        assert_eq!(state_of(&all, "d"), (Some(TaskState::UpstreamFailed), 0));
        assert_eq!(state_of(&all, "e"), (Some(TaskState::UpstreamFailed), 0), "{}: transitively", db.backend);
        assert_eq!(state_of(&all, "side"), (Some(TaskState::Success), 1), "{}: other branch runs on", db.backend);
        let run_row = store.get_run(run).await.unwrap().unwrap();
        assert_eq!(run_row.state, RunState::Failed);
        assert!(run_row.ended_at.is_some());
        assert!(store.list_attempts(run, "d").await.unwrap().is_empty(), "upstream_failed tasks never start a try");
    }
}

#[tokio::test]
async fn retries_until_success_with_fixed_delay_between_tries() {
    for db in common::both().await {
        let store = common::open(&db).await;
        let exec = Executor::new(store.clone(), settings(2));
        let d = dag(r#"
id = "flaky"
[[task]]
id = "t"
kind = "fail"
times = 2
retries = 2
retry_delay = "300ms"
retry_backoff = "fixed"
"#);
        let (run, state) = run_once(&exec, &d, "2025-01-01").await;
        assert_eq!(state, RunState::Success, "{}", db.backend);
        let attempts = store.list_attempts(run, "t").await.unwrap();
        let outcome: Vec<(u32, AttemptState)> = attempts.iter().map(|a| (a.try_number, a.state)).collect();
        assert_eq!(outcome, [(1, AttemptState::Failed), (2, AttemptState::Failed), (3, AttemptState::Success)]);
        for pair in attempts.windows(2) {
            let gap = pair[1].started_at - pair[0].ended_at.unwrap();
            assert!(gap >= chrono::Duration::milliseconds(300), "{}: gap {gap} < retry_delay", db.backend);
            assert!(gap < chrono::Duration::milliseconds(1500), "{}: gap {gap} far above retry_delay", db.backend);
        }
        assert!(attempts[0].log.contains("retrying in 300ms (try 2 of 3)"), "{}", attempts[0].log);
        assert!(attempts[0].log.contains("failing on purpose"), "the task's own tracing output is in the log");
    }
}

#[tokio::test]
async fn exponential_backoff_doubles_between_tries() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let exec = Executor::new(store.clone(), settings(2));
    let d = dag(r#"
id = "backoff"
[[task]]
id = "t"
kind = "fail"
times = 3
retries = 3
retry_delay = "150ms"
retry_backoff = "exponential"
max_retry_delay = "10s"
"#);
    let (run, state) = run_once(&exec, &d, "2025-01-01").await;
    assert_eq!(state, RunState::Success);
    let attempts = store.list_attempts(run, "t").await.unwrap();
    assert_eq!(attempts.len(), 4);
    // delay(try) = 150 ms · 2^(try-1) + jitter in [0, that): try 1 → [150, 300), 2 → [300, 600), 3 → [600, 1200).
    for (i, pair) in attempts.windows(2).enumerate() {
        let base = 150 * (1 << i);
        let gap = (pair[1].started_at - pair[0].ended_at.unwrap()).num_milliseconds();
        assert!(gap >= base, "gap after try {} = {gap} ms < {base} ms", i + 1);
        assert!(gap < 2 * base + 400, "gap after try {} = {gap} ms, expected below {} ms", i + 1, 2 * base);
    }
}

#[tokio::test]
async fn a_timeout_kills_the_try_and_counts_as_a_failed_try() {
    for db in common::both().await {
        let store = common::open(&db).await;
        let exec = Executor::new(store.clone(), settings(2));
        let d = dag(r#"
id = "slow"
[[task]]
id = "t"
kind = "sleep"
duration = "30s"
timeout = "200ms"
retries = 1
retry_delay = "10ms"
"#);
        let started = Instant::now();
        let (run, state) = run_once(&exec, &d, "2025-01-01").await;
        assert!(started.elapsed() < Duration::from_secs(5), "timeouts did not fire: {:?}", started.elapsed());
        assert_eq!(state, RunState::Failed, "{}", db.backend);
        let attempts = store.list_attempts(run, "t").await.unwrap();
        assert_eq!(attempts.len(), 2, "{}: the timed-out try was retried once", db.backend);
        for a in &attempts {
            assert_eq!(a.state, AttemptState::Failed);
            assert_eq!(a.error.as_deref(), Some("timed out after 200ms"));
            assert!(a.duration_ms.unwrap() < 2000);
            assert!(a.log.contains("sleeping"), "log kept up to the timeout: {}", a.log);
        }
    }
}

#[tokio::test]
async fn fatal_errors_are_not_retried() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let exec = Executor::new(store.clone(), settings(2));
    let d = dag(r#"
id = "fatal"
[[task]]
id = "t"
kind = "command"
program = "/nonexistent/tmctl-test-binary"
retries = 3
retry_delay = "10ms"
"#);
    let (run, state) = run_once(&exec, &d, "2025-01-01").await;
    assert_eq!(state, RunState::Failed);
    let attempts = store.list_attempts(run, "t").await.unwrap();
    assert_eq!(attempts.len(), 1, "a program that cannot start is not retried");
    assert!(attempts[0].error.as_deref().unwrap().starts_with("cannot start `/nonexistent/tmctl-test-binary`"));
}

#[tokio::test]
async fn independent_tasks_run_in_parallel_within_the_slot_limit() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let mut src = String::from("id = \"wide\"\n");
    for i in 0..6 {
        src.push_str(&format!("[[task]]\nid = \"t{i}\"\nkind = \"sleep\"\nduration = \"300ms\"\n"));
    }
    let d = dag(&src);
    let exec = Executor::new(store.clone(), settings(2));
    let started = Instant::now();
    let (run, state) = run_once(&exec, &d, "2025-01-01").await;
    let took = started.elapsed();
    assert_eq!(state, RunState::Success);
    assert!(took >= Duration::from_millis(900), "6 × 300 ms on 2 slots took only {took:?}");
    assert!(took < Duration::from_millis(1700), "6 × 300 ms on 2 slots took {took:?}: not parallel");
    // At no instant were more than 2 tries running.
    let attempts = store.list_run_attempts(run).await.unwrap();
    for a in &attempts {
        let overlapping =
            attempts.iter().filter(|b| b.started_at <= a.started_at && b.ended_at.unwrap() > a.started_at).count();
        assert!(overlapping <= 2, "{overlapping} tries overlapped at {}", a.started_at);
    }
}

#[tokio::test]
async fn a_freed_slot_goes_to_the_task_with_the_most_work_downstream() {
    // One slot; four leaves first in file order, then `hub`, which two tasks wait on. Whichever
    // task takes the free slot first, `hub` (priority weight 3) is next, ahead of the leaves
    // (weight 1) that asked before it: Airflow's `weight_rule = downstream`.
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let mut src = String::from("id = \"weights\"\n");
    for id in ["leaf0", "leaf1", "leaf2", "leaf3", "hub"] {
        src.push_str(&format!("[[task]]\nid = \"{id}\"\nkind = \"sleep\"\nduration = \"100ms\"\n"));
    }
    src.push_str("[[task]]\nid = \"x\"\nkind = \"noop\"\ndepends_on = [\"hub\"]\n");
    src.push_str("[[task]]\nid = \"y\"\nkind = \"noop\"\ndepends_on = [\"hub\"]\n");
    let d = dag(&src);
    let exec = Executor::new(store.clone(), settings(1));
    let (run, state) = run_once(&exec, &d, "2025-01-01").await;
    assert_eq!(state, RunState::Success);
    let mut attempts = store.list_run_attempts(run).await.unwrap();
    attempts.sort_by_key(|a| a.started_at);
    let order: Vec<&str> = attempts.iter().map(|a| a.task_id.as_str()).collect();
    let hub = order.iter().position(|t| *t == "hub").unwrap();
    assert!(hub <= 1, "hub should take the first slot that frees, started as #{}: {order:?}", hub + 1);
}

#[tokio::test]
async fn each_try_keeps_its_own_log() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let d = dag(r#"
id = "logs"
[[task]]
id = "one"
kind = "command"
program = "/bin/sh"
args = ["-c", "for i in 1 2 3; do echo one-$i; sleep 0.05; done"]
[[task]]
id = "two"
kind = "command"
program = "/bin/sh"
args = ["-c", "for i in 1 2 3; do echo two-$i >&2; sleep 0.05; done; echo ds={{ ds }}"]
"#);
    let exec = Executor::new(store.clone(), settings(4));
    let (run, state) = run_once(&exec, &d, "2025-03-04").await;
    assert_eq!(state, RunState::Success);
    let one = &store.list_attempts(run, "one").await.unwrap()[0].log;
    let two = &store.list_attempts(run, "two").await.unwrap()[0].log;
    assert_eq!(one.matches("command: one-").count(), 3, "{one}");
    assert!(!one.contains("two-"), "logs mixed: {one}");
    assert_eq!(two.matches("command: two-").count(), 3, "{two}");
    assert!(two.contains("stream=\"stderr\""), "{two}");
    assert!(two.contains("ds=2025-03-04"), "{two}");
    assert!(!two.contains("one-"), "logs mixed: {two}");
}

#[tokio::test]
async fn final_failures_and_optionally_retries_land_in_the_alert_outbox() {
    for db in common::both().await {
        let store = common::open(&db).await;
        let d = dag(r#"
id = "alerting"
[defaults]
email = ["ops@example.com"]
retries = 1
retry_delay = "10ms"
[[task]]
id = "quiet"
kind = "fail"
times = 9
[[task]]
id = "chatty"
kind = "fail"
times = 9
email_on_retry = true
[[task]]
id = "nobody"
kind = "fail"
times = 9
email = []
"#);
        let exec = Executor::new(store.clone(), settings(4));
        let (run, _) = run_once(&exec, &d, "2025-01-01").await;
        let mut alerts: Vec<(String, String, Option<u32>)> = store
            .list_alerts(None, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.task_id.unwrap_or_default(), a.kind, a.try_number))
            .collect();
        alerts.sort();
        assert_eq!(
            alerts,
            [
                ("chatty".into(), "failure".into(), Some(2)),
                ("chatty".into(), "retry".into(), Some(1)),
                ("quiet".into(), "failure".into(), Some(2)),
            ],
            "{}",
            db.backend
        );
        let failure = store.list_alerts(None, 50).await.unwrap().into_iter().find(|a| a.kind == "failure").unwrap();
        assert_eq!(failure.recipients, ["ops@example.com"]);
        assert!(failure.subject.starts_with("[tmctl] FAILED: alerting."), "{}", failure.subject);
        assert!(failure.subject.ends_with("failed for 2025-01-01 (try 2 of 2)"), "{}", failure.subject);
        assert!(failure.body.contains(&format!("/runs/{run}/tasks/")), "{}", failure.body);
        assert!(failure.body.contains("failing on purpose"), "last log lines in the body: {}", failure.body);
        // Running the same run again (cleared) does not duplicate the alerts of earlier tries.
        let n = store.list_alerts(None, 50).await.unwrap().len();
        assert_eq!(n, 3);
    }
}

#[tokio::test]
async fn cancelling_kills_running_tries_and_fails_the_run() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let d = dag(r#"
id = "cancel"
[[task]]
id = "long"
kind = "sleep"
duration = "30s"
retries = 3
[[task]]
id = "after"
kind = "noop"
depends_on = ["long"]
"#);
    let exec = Executor::new(store.clone(), settings(2));
    let slot = schedule::slot_for_date(d.schedule.as_ref(), d.timezone, date("2025-01-01"));
    let run = prepare_run(&store, &d, &slot, RunType::Manual, &serde_json::json!({}), None, None).await.unwrap();
    let run = run.run().id;
    let running = tokio::spawn({
        let (exec, d) = (exec.clone(), d.clone());
        async move { exec.execute(&d, run).await.unwrap() }
    });
    // Cancel once the long try runs.
    common::eventually(Duration::from_millis(20), Duration::from_secs(10), "`long` to run", || async {
        let all = states(&store, run).await;
        all.iter().any(|(t, s, _)| t == "long" && *s == Some(TaskState::Running)).then_some(())
    })
    .await;
    let started = Instant::now();
    exec.cancel_token().cancel();
    let state = running.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(state, RunState::Failed);
    let all = states(&store, run).await;
    assert_eq!(state_of(&all, "long"), (Some(TaskState::Failed), 1));
    assert_eq!(state_of(&all, "after"), (Some(TaskState::UpstreamFailed), 0), "never started");
    let a = &store.list_attempts(run, "long").await.unwrap()[0];
    assert_eq!(a.error.as_deref(), Some("cancelled while running"));
}

#[tokio::test]
async fn params_reach_the_task_and_bad_conf_is_refused() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let d = dag(r#"
id = "params"
[params]
course = { type = "string", default = "americanfalls" }
limit = { type = "integer", default = 5 }
[[task]]
id = "echo"
kind = "command"
program = "/bin/echo"
args = ["course={{ params.course }}", "limit={{ params.limit }}"]
"#);
    let slot = schedule::slot_for_date(None, d.timezone, date("2025-01-01"));
    let bad = prepare_run(&store, &d, &slot, RunType::Manual, &serde_json::json!({"limit": "many"}), None, None)
        .await
        .unwrap_err();
    assert_eq!(bad.to_string(), "param `limit` must be an integer, found \"many\"");
    let conf = serde_json::json!({"course": "pinehurst"});
    let run = prepare_run(&store, &d, &slot, RunType::Manual, &conf, None, None).await.unwrap().run().clone();
    let exec = Executor::new(store.clone(), settings(1));
    assert_eq!(exec.execute(&d, run.id).await.unwrap(), RunState::Success);
    let log = &store.list_attempts(run.id, "echo").await.unwrap()[0].log;
    assert!(log.contains("course=pinehurst limit=5"), "{log}");
}

#[tokio::test]
async fn rerunning_a_finished_run_clears_it_and_keeps_counting_tries() {
    for db in common::both().await {
        let store = common::open(&db).await;
        let d = dag("id = \"again\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\nretries = 1\n");
        let exec = Executor::new(store.clone(), settings(1));
        let (run, _) = run_once(&exec, &d, "2025-01-01").await;
        let (run2, state) = run_once(&exec, &d, "2025-01-01").await;
        assert_eq!((run2, state), (run, RunState::Success), "{}", db.backend);
        let tries: Vec<u32> = store.list_attempts(run, "t").await.unwrap().iter().map(|a| a.try_number).collect();
        assert_eq!(tries, [1, 2], "{}: history kept, try numbers continue", db.backend);
        let ti = &store.list_task_instances(run).await.unwrap()[0];
        assert_eq!((ti.try_number, ti.max_tries), (2, 3));
    }
}

// ---- backfill ----------------------------------------------------------------------------------

/// A daily DAG whose only task fails on the dates listed in `FAIL_ON` (a run param).
const PICKY: &str = r#"
id = "picky"
schedule = "@daily"
timezone = "Europe/London"
start_date = "2025-01-01"
max_active_runs = 2
[params]
fail_on = { type = "string", default = "" }
[[task]]
id = "check"
kind = "command"
program = "/bin/sh"
args = ["-c", "case \" $1 \" in *\" $0 \"*) echo bad day $0; exit 3;; esac; echo ok $0", "{{ ds }}", "{{ params.fail_on }}"]
"#;

fn request(from: &str, to: &str, reprocess: Reprocess, fail_on: &str) -> backfill::Request {
    backfill::Request {
        from: date(from),
        to: date(to),
        reprocess,
        max_active_runs: None,
        run_backwards: false,
        conf: serde_json::json!({ "fail_on": fail_on }),
        max_slots: backfill::DEFAULT_MAX_SLOTS,
    }
}

async fn backfill_once(exec: &Executor, d: &Dag, req: &backfill::Request) -> Vec<(String, Outcome)> {
    let planned = backfill::plan(exec.store(), d, req).await.unwrap();
    let report = backfill::execute(exec, d, req, planned, &|_| {}).await.unwrap();
    report.dates.iter().map(|x| (x.ds.to_string(), x.outcome)).collect()
}

fn o(ds: &str, outcome: Outcome) -> (String, Outcome) {
    (ds.to_string(), outcome)
}

#[tokio::test]
async fn backfill_reprocess_modes_follow_airflow() {
    use Outcome::*;
    for db in common::both().await {
        let store = common::open(&db).await;
        let d = dag(PICKY);
        let exec = Executor::new(store.clone(), settings(4));
        let first = backfill_once(&exec, &d, &request("2025-01-01", "2025-01-04", Reprocess::None, "2025-01-02")).await;
        assert_eq!(
            first,
            [
                o("2025-01-01", Succeeded),
                o("2025-01-02", Failed),
                o("2025-01-03", Succeeded),
                o("2025-01-04", Succeeded)
            ],
            "{}",
            db.backend
        );
        // none: every date has a run → all skipped, nothing re-run, range may extend.
        let none = backfill_once(&exec, &d, &request("2025-01-01", "2025-01-05", Reprocess::None, "")).await;
        assert_eq!(
            none,
            [
                o("2025-01-01", Skipped),
                o("2025-01-02", Skipped),
                o("2025-01-03", Skipped),
                o("2025-01-04", Skipped),
                o("2025-01-05", Succeeded)
            ],
            "{}",
            db.backend
        );
        // failed: only the failed date runs again (and now succeeds).
        let failed = backfill_once(&exec, &d, &request("2025-01-01", "2025-01-05", Reprocess::Failed, "")).await;
        assert_eq!(
            failed,
            [
                o("2025-01-01", Skipped),
                o("2025-01-02", Succeeded),
                o("2025-01-03", Skipped),
                o("2025-01-04", Skipped),
                o("2025-01-05", Skipped)
            ],
            "{}",
            db.backend
        );
        // completed: everything finished runs again; a date failing now is reported failed.
        let completed =
            backfill_once(&exec, &d, &request("2025-01-02", "2025-01-03", Reprocess::Completed, "2025-01-03")).await;
        assert_eq!(completed, [o("2025-01-02", Succeeded), o("2025-01-03", Failed)], "{}", db.backend);
        // One run per date, whatever happened.
        let runs =
            store.list_runs(&tmctl::store::RunFilter { dag_id: Some("picky"), state: None, limit: 0 }).await.unwrap();
        assert_eq!(runs.len(), 5, "{}", db.backend);
        let backfills = store.list_backfills(Some("picky"), 10).await.unwrap();
        assert_eq!(backfills.len(), 4);
        assert_eq!(backfills[0].state, "failed");
        assert_eq!(backfills[1].state, "completed");
        let dates = store.list_backfill_dates(backfills[0].id).await.unwrap();
        assert_eq!(dates[1].outcome, "failed");
        assert!(
            dates[1].reason.as_deref().unwrap().starts_with("task `check` failed: `/bin/sh` exited with code 3"),
            "{:?}",
            dates[1].reason
        );
    }
}

#[tokio::test]
async fn dry_run_plans_without_touching_the_db() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let d = dag(PICKY);
    let exec = Executor::new(store.clone(), settings(2));
    backfill_once(&exec, &d, &request("2025-01-02", "2025-01-02", Reprocess::None, "2025-01-02")).await;
    let plan = backfill::plan(&store, &d, &request("2025-01-01", "2025-01-03", Reprocess::Failed, "")).await.unwrap();
    let actions: Vec<(String, Action)> = plan.iter().map(|p| (p.ds.to_string(), p.action.clone())).collect();
    assert_eq!(actions[0], ("2025-01-01".into(), Action::Create));
    assert!(matches!(&actions[1].1, Action::Rerun { previous, .. } if previous == "failed"));
    assert_eq!(actions[2], ("2025-01-03".into(), Action::Create));
    // Europe/London in winter: local midnight is 00:00 UTC.
    assert_eq!(plan[0].logical_date.to_rfc3339(), "2025-01-01T00:00:00+00:00");
    assert_eq!(store.list_runs(&Default::default()).await.unwrap().len(), 1, "planning created nothing");
    assert_eq!(store.list_backfills(None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn backfill_refuses_bad_ranges() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let d = dag(PICKY);
    let err = |from: &str, to: &str| {
        let store = store.clone();
        let d = d.clone();
        let req = request(from, to, Reprocess::None, "");
        async move { backfill::plan(&store, &d, &req).await.unwrap_err().to_string() }
    };
    assert_eq!(err("2025-01-05", "2025-01-01").await, "--from 2025-01-05 is after --to 2025-01-01");
    assert_eq!(
        err("2024-12-31", "2025-01-01").await,
        "--from 2024-12-31 is before DAG `picky`'s start_date 2025-01-01"
    );
}

#[tokio::test]
async fn backfill_runs_backwards_and_respects_max_active_runs() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let d = dag(PICKY);
    let exec = Executor::new(store.clone(), settings(8));
    let mut req = request("2025-01-01", "2025-01-03", Reprocess::None, "");
    req.run_backwards = true;
    req.max_active_runs = Some(1);
    let order = backfill_once(&exec, &d, &req).await;
    let days: Vec<&str> = order.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(days, ["2025-01-03", "2025-01-02", "2025-01-01"]);
    let runs = store.list_runs(&Default::default()).await.unwrap();
    // Run ids were handed out newest date first.
    let mut by_id: Vec<(i64, String)> = runs.iter().map(|r| (r.id, r.ds.to_string())).collect();
    by_id.sort();
    assert_eq!(by_id.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(), ["2025-01-03", "2025-01-02", "2025-01-01"]);
    // With one active run at a time, runs did not overlap.
    let mut spans: Vec<_> = runs.iter().map(|r| (r.started_at.unwrap(), r.ended_at.unwrap())).collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "runs overlapped with --max-active-runs 1");
    }
}

#[tokio::test]
async fn prepare_run_refuses_a_run_in_progress() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let d = dag(PICKY);
    let slot = schedule::slot_for_date(d.schedule.as_ref(), d.timezone, date("2025-01-01"));
    let first = prepare_run(&store, &d, &slot, RunType::Manual, &serde_json::json!({}), None, None).await.unwrap();
    assert!(matches!(first, Prepared::Created(_)));
    let err = prepare_run(&store, &d, &slot, RunType::Manual, &serde_json::json!({}), None, None).await.unwrap_err();
    assert_eq!(err.to_string(), format!("run {} of `picky` for 2025-01-01 is queued already", first.run().id));
}

/// Records the runs a backfill driver launches.
#[derive(Default)]
struct Launches(std::sync::Mutex<Vec<i64>>);

impl backfill::Launcher for Launches {
    fn holder(&self) -> Option<&Executor> {
        None
    }
    fn launch(&self, _dag: &Arc<Dag>, run: tmctl::store::RunRow) {
        self.0.lock().unwrap().push(run.id);
    }
}

/// A driver killed after it created a date's run but before it marked the date leaves the date
/// `pending` with the run queued (or already claimed by a worker). The driver that takes over
/// follows that run instead of skipping the date as "running already"; a run of the same date
/// made by someone else is still a skip.
#[tokio::test]
async fn a_taken_over_backfill_follows_the_run_its_dead_driver_created() {
    let db = common::sqlite_db();
    let store = common::open(&db).await;
    let d = Arc::new(dag(PICKY));
    let req = request("2025-01-01", "2025-01-03", Reprocess::None, "");
    let b = store
        .create_backfill(&tmctl::store::NewBackfill {
            dag_id: &d.id,
            from_date: req.from,
            to_date: req.to,
            reprocess: "none",
            max_active_runs: 3,
            run_backwards: false,
            conf: &req.conf,
            holder: None,
        })
        .await
        .unwrap();
    let planned = backfill::plan(&store, &d, &req).await.unwrap();
    assert!(planned.iter().all(|p| matches!(p.action, Action::Create)), "{planned:?}");
    backfill::driver::record_plan(&store, b.id, &planned).await.unwrap();
    // The dead driver created 2025-01-01's run, and a worker claimed it; 2025-01-02 has a manual
    // run queued by a user in the meantime.
    let slot = |ds| schedule::slot_for_date(d.schedule.as_ref(), d.timezone, date(ds));
    let ours = prepare_run(&store, &d, &slot("2025-01-01"), RunType::Backfill, &req.conf, Some(b.id), None)
        .await
        .unwrap()
        .run()
        .clone();
    assert!(store.claim_run(ours.id, "elsewhere:1", Duration::from_secs(60)).await.unwrap());
    let manual = prepare_run(&store, &d, &slot("2025-01-02"), RunType::Manual, &req.conf, None, None)
        .await
        .unwrap()
        .run()
        .clone();

    let launches = Launches::default();
    let b = store.get_backfill(b.id).await.unwrap().unwrap();
    let stepped = backfill::driver::step(&store, &b, &d, &launches).await.unwrap();
    assert!(!stepped.finished);
    let dates = store.list_backfill_dates(b.id).await.unwrap();
    let row = |ds: &str| dates.iter().find(|x| x.ds == date(ds)).unwrap().clone();
    let first = row("2025-01-01");
    assert_eq!((first.outcome.as_str(), first.run_pk, first.reason), ("running", Some(ours.id), None));
    let second = row("2025-01-02");
    assert_eq!((second.outcome.as_str(), second.run_pk), ("skipped", None));
    let reason = second.reason.unwrap_or_default();
    assert!(reason.contains(&format!("run {} of `picky` for 2025-01-02", manual.id)), "{reason}");
    let third = row("2025-01-03");
    assert_eq!(third.outcome, "running");
    // Only the date whose run this driver created was launched; the claimed run has its worker.
    assert_eq!(*launches.0.lock().unwrap(), vec![third.run_pk.unwrap()]);
}
