//! State-DB retention (`Store::clean`, `tmctl db clean`, the daemon's daily clean) on SQLite and
//! PostgreSQL: exactly the old finished rows go, in batches; running and queued runs, runs of
//! active backfills, runs with pending alerts and the newest run of each DAG and run type stay; a
//! dry run counts the same rows and deletes nothing.

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use tmctl::store::{
    AttemptFinish, AttemptState, BackfillDateRow, CleanCounts, CleanScope, NewAlert, NewBackfill, NewRun, RunState,
    RunType, Store, SummaryRow, TaskState,
};

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

/// Raw SQL on the test DB, to put rows back in time (the store stamps "now").
async fn raw(db: &common::TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&db.url).await.unwrap()
}

async fn exec(pool: &sqlx::AnyPool, sql: &str, text: &str, id: i64) {
    sqlx::query(sql).bind(text.to_string()).bind(id).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn ts(t: DateTime<Utc>) -> String {
    tmctl::timefmt::to_db(t)
}

async fn ids(pool: &sqlx::AnyPool, sql: &str) -> BTreeSet<i64> {
    use sqlx::Row;
    sqlx::query(sql).fetch_all(pool).await.unwrap().iter().map(|r| r.get::<i64, _>(0)).collect()
}

async fn count(pool: &sqlx::AnyPool, table: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await.unwrap().get::<i64, _>(0)
}

/// A run of `dag` for `day` of `run_type`, in `state`, that ended at `ended` (or, unfinished,
/// was created an hour before), with one task instance, one finished try with a log and a run summary.
async fn run(
    s: &Store,
    pool: &sqlx::AnyPool,
    dag: &str,
    day: DateTime<Utc>,
    run_type: RunType,
    (state, ended): (RunState, DateTime<Utc>),
    backfill_id: Option<i64>,
) -> i64 {
    let conf = serde_json::json!({});
    let r = s
        .create_run(&NewRun {
            dag_id: dag,
            run_type,
            logical_date: day,
            ds: day.date_naive(),
            data_interval_start: day,
            data_interval_end: day + chrono::Duration::days(1),
            conf: &conf,
            backfill_id,
            hold: None,
        })
        .await
        .unwrap();
    let tis = s.ensure_task_instances(r.id, &[("t", "noop", 1)]).await.unwrap();
    let attempt = s.start_attempt(&tis[0], 1, "host", 1).await.unwrap();
    if state.is_finished() {
        let (a, t) = if state == RunState::Success {
            (AttemptState::Success, TaskState::Success)
        } else {
            (AttemptState::Failed, TaskState::Failed)
        };
        let finish =
            AttemptFinish { attempt: a, task: t, error: None, output: None, log: "a log line\n", next_retry_at: None };
        s.finish_attempt(attempt, tis[0].id, &finish).await.unwrap();
    }
    s.record_summary(&SummaryRow {
        run_pk: r.id,
        dag_id: dag.into(),
        task_id: "t".into(),
        try_number: 1,
        ds: day.date_naive(),
        kind: "noop".into(),
        summary: serde_json::json!({"rows": 1}),
        object_key: None,
        created_at: ended,
    })
    .await
    .unwrap();
    if state != RunState::Queued {
        s.set_run_state(r.id, state).await.unwrap();
    }
    exec(pool, "UPDATE dag_runs SET created_at = $1 WHERE id = $2", &ts(ended - chrono::Duration::hours(1)), r.id)
        .await;
    if state.is_finished() {
        exec(pool, "UPDATE dag_runs SET ended_at = $1 WHERE id = $2", &ts(ended), r.id).await;
    }
    r.id
}

async fn alert(s: &Store, pool: &sqlx::AnyPool, key: &str, run_pk: Option<i64>, state: &str, sent: DateTime<Utc>) {
    let to = vec!["ops@example.com".to_string()];
    let new = NewAlert {
        dedup_key: key,
        kind: "failure",
        dag_id: "a",
        run_pk,
        task_id: None,
        try_number: None,
        recipients: &to,
        subject: key,
        body: key,
    };
    assert!(s.enqueue_alert(&new).await.unwrap());
    let id = ids(pool, &format!("SELECT id FROM alert_outbox WHERE dedup_key = '{key}'")).await;
    let id = *id.iter().next().unwrap();
    exec(pool, "UPDATE alert_outbox SET state = $1 WHERE id = $2", state, id).await;
    exec(pool, "UPDATE alert_outbox SET created_at = $1 WHERE id = $2", &ts(sent), id).await;
    if state == "sent" {
        exec(pool, "UPDATE alert_outbox SET sent_at = $1 WHERE id = $2", &ts(sent), id).await;
    }
}

async fn backfill(s: &Store, pool: &sqlx::AnyPool, state: &str, completed: DateTime<Utc>) -> i64 {
    let conf = serde_json::json!({});
    let b = s
        .create_backfill(&NewBackfill {
            dag_id: "a",
            from_date: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
            to_date: NaiveDate::from_ymd_opt(2023, 12, 31).unwrap(),
            reprocess: "none",
            max_active_runs: 1,
            run_backwards: false,
            conf: &conf,
            holder: Some(("test:1", std::time::Duration::from_secs(30))),
        })
        .await
        .unwrap();
    if state != "running" {
        s.finish_backfill(b.id, state).await.unwrap();
        exec(pool, "UPDATE backfills SET completed_at = $1 WHERE id = $2", &ts(completed), b.id).await;
    }
    exec(pool, "UPDATE backfills SET created_at = $1 WHERE id = $2", &ts(completed - chrono::Duration::days(1)), b.id)
        .await;
    b.id
}

async fn backfill_date(s: &Store, backfill_id: i64, day: DateTime<Utc>, run_pk: i64) {
    s.set_backfill_date(&BackfillDateRow {
        backfill_id,
        logical_date: day,
        ds: day.date_naive(),
        run_pk: Some(run_pk),
        outcome: "succeeded".into(),
        reason: None,
    })
    .await
    .unwrap();
}

/// Everything the scenario created, by what should happen to it.
struct World {
    gone_runs: BTreeSet<i64>,
    kept_runs: BTreeSet<i64>,
    gone_backfill: i64,
    kept_backfills: BTreeSet<i64>,
    b_runs: BTreeSet<i64>,
    /// The running and the queued run of DAG a (created long ago).
    unfinished: (i64, i64),
    /// DAG a's newest scheduled run.
    newest: i64,
}

/// The cut-off of the scenario: 2025-01-01.
fn before() -> DateTime<Utc> {
    at(2025, 1, 1)
}

async fn world(s: &Store, pool: &sqlx::AnyPool) -> World {
    use RunState::*;
    use RunType::*;
    let old = at(2024, 6, 1);
    // DAG a: old finished runs go (one failed, one successful, one manual)...
    let d1 = run(s, pool, "a", at(2024, 1, 1), Scheduled, (Success, old), None).await;
    let d2 = run(s, pool, "a", at(2024, 1, 2), Scheduled, (Failed, old), None).await;
    let m0 = run(s, pool, "a", at(2024, 1, 3), Manual, (Success, old), None).await;
    // ...but not one with an alert still pending, a running or a queued one (created long ago),
    let d3 = run(s, pool, "a", at(2024, 1, 4), Scheduled, (Failed, old), None).await;
    alert(s, pool, "pending-d3", Some(d3), "pending", old).await;
    let d4 = run(s, pool, "a", at(2024, 1, 5), Scheduled, (Running, old), None).await;
    let d5 = run(s, pool, "a", at(2024, 1, 6), Scheduled, (Queued, old), None).await;
    // a run that ended after the cut-off, the newest scheduled and the newest manual run.
    let d6 = run(s, pool, "a", at(2024, 12, 30), Scheduled, (Success, at(2025, 2, 1)), None).await;
    let d7 = run(s, pool, "a", at(2025, 3, 1), Scheduled, (Success, at(2025, 3, 2)), None).await;
    let m1 = run(s, pool, "a", at(2024, 2, 1), Manual, (Failed, old), None).await;
    // Backfills: a finished one whose runs all go (it goes, with its dates), a finished one whose
    // run is the newest backfill run (kept, so the backfill stays), an active one (its old
    // finished run stays).
    let bf_gone = backfill(s, pool, "succeeded", old).await;
    let br1 = run(s, pool, "a", at(2023, 3, 1), Backfill, (Success, old), Some(bf_gone)).await;
    let br2 = run(s, pool, "a", at(2023, 3, 2), Backfill, (Failed, old), Some(bf_gone)).await;
    backfill_date(s, bf_gone, at(2023, 3, 1), br1).await;
    backfill_date(s, bf_gone, at(2023, 3, 2), br2).await;
    let bf_newest = backfill(s, pool, "failed", old).await;
    let br3 = run(s, pool, "a", at(2023, 9, 1), Backfill, (Success, old), Some(bf_newest)).await;
    backfill_date(s, bf_newest, at(2023, 9, 1), br3).await;
    let bf_active = backfill(s, pool, "running", old).await;
    let br4 = run(s, pool, "a", at(2023, 4, 1), Backfill, (Success, old), Some(bf_active)).await;
    // DAG b: one old run goes, its newest stays.
    let b1 = run(s, pool, "b", at(2024, 1, 1), Scheduled, (Success, old), None).await;
    let b2 = run(s, pool, "b", at(2024, 1, 2), Scheduled, (Success, old), None).await;
    // Alerts: an old sent one goes; a recent sent one, an old given-up one stay.
    alert(s, pool, "sent-old", Some(d1), "sent", old).await;
    alert(s, pool, "sent-new", Some(d7), "sent", at(2025, 3, 2)).await;
    alert(s, pool, "failed-old", None, "failed", old).await;
    // Sessions: one past its expiry, one idle too long, one alive.
    let now = Utc::now();
    s.create_web_session("expired", "admin", "viewer", "c", now - chrono::Duration::hours(1)).await.unwrap();
    s.create_web_session("idle", "admin", "viewer", "c", now + chrono::Duration::hours(4)).await.unwrap();
    sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id_hash = 'idle'")
        .bind(ts(now - chrono::Duration::days(2)))
        .execute(pool)
        .await
        .unwrap();
    s.create_web_session("alive", "admin", "viewer", "c", now + chrono::Duration::hours(4)).await.unwrap();
    World {
        gone_runs: [d1, d2, m0, br1, br2, b1].into(),
        kept_runs: [d3, d4, d5, d6, d7, m1, br3, br4, b2].into(),
        gone_backfill: bf_gone,
        kept_backfills: [bf_newest, bf_active].into(),
        b_runs: [b1, b2].into(),
        unfinished: (d4, d5),
        newest: d7,
    }
}

fn scope(dag: Option<&str>) -> CleanScope {
    let now = Utc::now();
    CleanScope {
        before: before(),
        dag_id: dag.map(str::to_string),
        now,
        sessions_idle_before: now - chrono::Duration::hours(8),
    }
}

/// What the scenario's clean deletes: 6 runs, each with one task instance, try and summary; the
/// old sent alert; one backfill with its 2 dates; 2 web sessions.
const EXPECTED: CleanCounts = CleanCounts {
    runs: 6,
    task_instances: 6,
    task_attempts: 6,
    run_summaries: 6,
    alerts: 1,
    backfills: 1,
    backfill_dates: 2,
    sessions: 2,
};

#[tokio::test]
async fn clean_deletes_exactly_the_old_finished_rows_and_a_dry_run_nothing() {
    for db in common::both().await {
        let b = db.backend;
        let s = common::open(&db).await;
        let pool = raw(&db).await;
        let w = world(&s, &pool).await;
        let all_runs: BTreeSet<i64> = w.gone_runs.union(&w.kept_runs).copied().collect();
        let tables = ["dag_runs", "task_instances", "task_attempts", "run_summaries", "alert_outbox", "backfills"];
        let mut sizes = Vec::new();
        for t in tables {
            sizes.push(count(&pool, t).await);
        }

        // Dry run: the counts, and nothing deleted.
        assert_eq!(s.count_clean(&scope(None)).await.unwrap(), EXPECTED, "{b}");
        for (t, n) in tables.iter().zip(&sizes) {
            assert_eq!(count(&pool, t).await, *n, "{b}: the dry run deleted from {t}");
        }
        assert_eq!(count(&pool, "web_sessions").await, 3, "{b}");

        let done = s.clean(&scope(None)).await.unwrap();
        assert_eq!(done, EXPECTED, "{b}: deleted as counted");
        let left = ids(&pool, "SELECT id FROM dag_runs").await;
        assert_eq!(left, w.kept_runs, "{b}: runs left");
        assert!(all_runs.is_superset(&left));
        let with_tries = ids(&pool, "SELECT run_pk FROM task_attempts").await;
        assert_eq!(with_tries, w.kept_runs, "{b}: tries and logs go with their runs");
        assert_eq!(ids(&pool, "SELECT run_pk FROM task_instances").await, w.kept_runs, "{b}");
        assert_eq!(ids(&pool, "SELECT run_pk FROM run_summaries").await, w.kept_runs, "{b}");
        let backfills = ids(&pool, "SELECT id FROM backfills").await;
        assert_eq!(backfills, w.kept_backfills, "{b}");
        assert!(!backfills.contains(&w.gone_backfill));
        assert!(
            ids(&pool, &format!("SELECT backfill_id FROM backfill_dates WHERE backfill_id = {}", w.gone_backfill))
                .await
                .is_empty()
        );
        let keys = {
            use sqlx::Row;
            let rows = sqlx::query("SELECT dedup_key FROM alert_outbox ORDER BY dedup_key").fetch_all(&pool).await;
            rows.unwrap().iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>()
        };
        assert_eq!(keys, ["failed-old", "pending-d3", "sent-new"], "{b}");
        let sessions = {
            use sqlx::Row;
            let rows = sqlx::query("SELECT id_hash FROM web_sessions").fetch_all(&pool).await.unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>()
        };
        assert_eq!(sessions, ["alive"], "{b}");

        // Nothing more to do: a second clean deletes nothing.
        assert_eq!(s.clean(&scope(None)).await.unwrap(), CleanCounts::default(), "{b}");
        assert_eq!(s.count_clean(&scope(None)).await.unwrap(), CleanCounts::default(), "{b}");
    }
}

#[tokio::test]
async fn clean_of_one_dag_leaves_the_others_and_the_sessions() {
    for db in common::both().await {
        let b = db.backend;
        let s = common::open(&db).await;
        let pool = raw(&db).await;
        let w = world(&s, &pool).await;
        let counted = s.count_clean(&scope(Some("b"))).await.unwrap();
        let done = s.clean(&scope(Some("b"))).await.unwrap();
        let only_b =
            CleanCounts { runs: 1, task_instances: 1, task_attempts: 1, run_summaries: 1, ..Default::default() };
        assert_eq!((counted, done), (only_b, only_b), "{b}");
        let left = ids(&pool, "SELECT id FROM dag_runs").await;
        let b_left: BTreeSet<i64> = left.intersection(&w.b_runs).copied().collect();
        assert_eq!(b_left.len(), 1, "{b}");
        assert!(w.gone_runs.iter().filter(|r| !w.b_runs.contains(r)).all(|r| left.contains(r)), "{b}: DAG a untouched");
        assert_eq!(count(&pool, "web_sessions").await, 3, "{b}: sessions are not a DAG's");
    }
}

#[tokio::test]
async fn clean_works_in_batches_over_many_runs() {
    for db in common::both().await {
        let b = db.backend;
        let s = common::open(&db).await;
        let pool = raw(&db).await;
        // More than two batches of old runs, and the newest one kept.
        let n = tmctl::store::CLEAN_BATCH as usize * 2 + 7;
        let conf = serde_json::json!({});
        for i in 0..n {
            let day = at(2020, 1, 1) + chrono::Duration::days(i as i64);
            let r = s
                .create_run(&NewRun {
                    dag_id: "many",
                    run_type: RunType::Scheduled,
                    logical_date: day,
                    ds: day.date_naive(),
                    data_interval_start: day,
                    data_interval_end: day + chrono::Duration::days(1),
                    conf: &conf,
                    backfill_id: None,
                    hold: None,
                })
                .await
                .unwrap();
            s.set_run_state(r.id, RunState::Success).await.unwrap();
        }
        sqlx::query("UPDATE dag_runs SET ended_at = $1").bind(ts(at(2024, 1, 1))).execute(&pool).await.unwrap();
        let done = s.clean(&scope(None)).await.unwrap();
        assert_eq!(done.runs, n as u64 - 1, "{b}");
        assert_eq!(count(&pool, "dag_runs").await, 1, "{b}");
    }
}

/// The daemon's daily clean: one daemon job per day, whoever claims it first.
#[tokio::test]
async fn the_daily_clean_is_claimed_once_per_period() {
    for db in common::both().await {
        let b = db.backend;
        let s = common::open(&db).await;
        let day = std::time::Duration::from_secs(86_400);
        let lease = std::time::Duration::from_secs(3600);
        let t = at(2026, 1, 1);
        assert!(s.claim_daemon_job("retention", "d1", t, day, lease).await.unwrap(), "{b}");
        assert!(!s.claim_daemon_job("retention", "d2", t, day, lease).await.unwrap(), "{b}: held");
        s.finish_daemon_job("retention", "d1", t, true).await.unwrap();
        let later = t + chrono::Duration::hours(23);
        assert!(!s.claim_daemon_job("retention", "d2", later, day, lease).await.unwrap(), "{b}: done today");
        let next_day = t + chrono::Duration::hours(24);
        assert!(s.claim_daemon_job("retention", "d2", next_day, day, lease).await.unwrap(), "{b}");
        // A holder that dies: its lease runs out, then another daemon takes the job.
        assert!(
            !s.claim_daemon_job("retention", "d1", next_day + chrono::Duration::minutes(59), day, lease).await.unwrap()
        );
        assert!(
            s.claim_daemon_job("retention", "d1", next_day + chrono::Duration::minutes(61), day, lease).await.unwrap()
        );
        // A failed clean is not "done": it may be tried again at once.
        s.finish_daemon_job("retention", "d1", next_day, false).await.unwrap();
        assert!(
            s.claim_daemon_job("retention", "d2", next_day + chrono::Duration::hours(2), day, lease).await.unwrap()
        );
    }
}

/// `tmctl db clean` end to end on the embedded SQLite DB: the dry run prints the counts per kind
/// and deletes nothing; the clean deletes; a date in the future is refused.
#[tokio::test]
async fn the_cli_prints_counts_and_refuses_the_future() {
    let home = tempfile::tempdir().unwrap();
    let url = tmctl::config::sqlite_url(&home.path().join("tm.db"));
    let s = Store::connect(&url, 1).await.unwrap();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    world(&s, &pool).await;
    s.close().await;
    pool.close().await;

    let (code, out, err) = common::tmctl_on(home.path(), &["db", "clean", "--before", "2025-01-01", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would delete"), "{out}");
    assert!(out.contains("dry run: 30 row(s) from before 2025-01-01T00:00:00+00:00 would be deleted"), "{out}");
    let (code, out, err) =
        common::tmctl_on(home.path(), &["db", "clean", "--before", "2025-01-01", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["rows"]["runs"], 6, "{out}");
    assert_eq!(json["rows"]["task_attempts"], 6, "{out}");
    assert_eq!(json["total"], 30, "{out}");

    let (code, out, err) = common::tmctl_on(home.path(), &["db", "clean", "--before", "2025-01-01", "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((json["dry_run"].as_bool(), json["total"].as_u64()), (Some(false), Some(30)), "{out}");
    let (code, out, _) = common::tmctl_on(home.path(), &["db", "clean", "--before", "2025-01-01", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.contains("dry run: 0 row(s)"), "{out}");

    let (code, _, err) = common::tmctl_on(home.path(), &["db", "clean", "--before", "2999-01-01"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--before 2999-01-01 is in the future"), "{err}");

    // The setting is shown by `config show`.
    let (code, out, err) = common::tmctl_on(home.path(), &["config", "show"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retention.keep_days"), "{out}");
}

/// `[retention] keep_days` on a running daemon: it cleans once at start-up (then daily), with the
/// cut-off `keep_days` back, and records the job as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_cleans_with_keep_days() {
    let home = tempfile::tempdir().unwrap();
    let dags = tempfile::tempdir().unwrap();
    let overrides = tmctl::config::Overrides {
        config_file: None,
        home: Some(home.path().to_path_buf()),
        dags_dir: Some(dags.path().to_path_buf()),
    };
    let env = [("TM_RETENTION_KEEP_DAYS".to_string(), "30".to_string())].into();
    let settings = std::sync::Arc::new(tmctl::config::Settings::load_with(&overrides, &env).unwrap());
    assert_eq!(settings.retention.keep_days, 30);
    let s = Store::connect(&settings.database_url, 1).await.unwrap();
    let pool = sqlx::AnyPool::connect(&settings.database_url).await.unwrap();
    let w = world(&s, &pool).await;
    let running = tmctl::daemon::start(settings, s.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    common::eventually(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(30),
        "the daily clean",
        || {
            let pool = pool.clone();
            async move { (count(&pool, "daemon_jobs WHERE last_done_at IS NOT NULL").await == 1).then_some(()) }
        },
    )
    .await;
    let left = ids(&pool, "SELECT id FROM dag_runs").await;
    assert!(w.gone_runs.is_disjoint(&left), "{left:?}");
    // Unfinished runs and the newest of each DAG and type stay, whatever their age.
    for kept in [w.unfinished.0, w.unfinished.1, w.newest] {
        assert!(left.contains(&kept), "{kept} was deleted: {left:?}");
    }
    running.stop().await;
}

/// Regression: on SQLite a clean while another process writes (a daemon heartbeating, a run being
/// recorded) failed at once with "database is locked": each batch began by reading, and a read
/// transaction that then writes after another connection committed is refused without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_waits_for_other_writers_instead_of_failing() {
    let db = common::sqlite_db();
    let s = common::open(&db).await;
    let pool = raw(&db).await;
    // Many old runs (written directly, for speed): 20 batches.
    let n = tmctl::store::CLEAN_BATCH as usize * 20;
    let mut tx = pool.begin().await.unwrap();
    for i in 0..n {
        let day = ts(at(2000, 1, 1) + chrono::Duration::days(i as i64));
        sqlx::query(
            "INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, ds, data_interval_start, \
             data_interval_end, state, conf, created_at, ended_at) \
             VALUES ('busy', $1, 'scheduled', $1, '2000-01-01', $1, $1, 'success', '{}', $1, $2)",
        )
        .bind(&day)
        .bind(ts(at(2024, 1, 1)))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // Another process commits small writes all the time, as a daemon does.
    common::require_python(&["sqlite3"], "python3 with its sqlite3 module");
    let path = db.url.trim_start_matches("sqlite://").split('?').next().unwrap().to_string();
    let stop = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let stop_path = stop.to_path_buf();
    std::fs::remove_file(&stop_path).unwrap();
    let mut writer = std::process::Command::new("python3")
        .args(["-c", WRITER, &path, &stop_path.display().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The writer says when it has committed its first write.
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(writer.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "writing");
    }
    let done = s.clean(&scope(None)).await;
    std::fs::write(&stop_path, b"stop").unwrap();
    let out = writer.wait_with_output().unwrap();
    let writes = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let done = done.unwrap_or_else(|e| panic!("clean failed beside a writer ({writes} writes): {e}"));
    assert_eq!(done.runs, n as u64 - 1);
    assert!(writes.parse::<u64>().unwrap() > 0, "{writes}");
}

/// Commits small writes, one after the other, until the stop file exists; prints `writing` after the
/// first, and the number of writes at the end.
const WRITER: &str = r#"
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
n = 0
while not os.path.exists(sys.argv[2]):
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO daemons (id, host, pid, url, started_at, heartbeat_at) VALUES ('w', 'h', 1, 'u', 'x', 'x') "
               "ON CONFLICT (id) DO UPDATE SET heartbeat_at = 'y'")
    db.execute("COMMIT")
    n += 1
    if n == 1:
        print("writing", flush=True)
print(n)
"#;
