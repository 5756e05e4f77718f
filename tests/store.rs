//! The state DB on both backends: every test runs against a fresh SQLite file and a fresh
//! PostgreSQL database with the same assertions.

mod common;

use chrono::{NaiveDate, TimeZone, Utc};
use tmctl::store::{
    AttemptFinish, AttemptState, BackfillDateRow, NewAlert, NewBackfill, NewRun, RunFilter, RunState, RunType, Store,
    StoreError, TaskState,
};

fn new_run<'a>(dag: &'a str, day: u32, conf: &'a serde_json::Value) -> NewRun<'a> {
    let start = Utc.with_ymd_and_hms(2025, 1, day, 0, 0, 0).unwrap();
    NewRun {
        dag_id: dag,
        run_type: RunType::Manual,
        logical_date: start,
        ds: NaiveDate::from_ymd_opt(2025, 1, day).unwrap(),
        data_interval_start: start,
        data_interval_end: start + chrono::Duration::days(1),
        conf,
        backfill_id: None,
        hold: None,
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_the_db_reopens() {
    for db in common::both().await {
        let a = common::open(&db).await;
        let conf = serde_json::json!({"k": 1});
        a.create_run(&new_run("d", 1, &conf)).await.unwrap();
        a.close().await;
        let b = common::open(&db).await;
        let runs = b.list_runs(&RunFilter::default()).await.unwrap();
        assert_eq!(runs.len(), 1, "{}", db.backend);
        assert_eq!(runs[0].conf, conf, "{}", db.backend);
    }
}

#[tokio::test]
async fn runs_are_unique_per_dag_and_logical_date() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let conf = serde_json::json!({});
        let r = s.create_run(&new_run("silver", 2, &conf)).await.unwrap();
        assert_eq!(r.run_id, "manual__2025-01-02T00:00:00+00:00");
        assert_eq!(r.state, RunState::Queued);
        assert_eq!(r.ds.to_string(), "2025-01-02");
        let dup = s.create_run(&new_run("silver", 2, &conf)).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{}: {dup}", db.backend);
        assert_eq!(dup.to_string(), "DAG `silver` already has a run for logical date 2025-01-02T00:00:00+00:00");
        // Same date, other DAG: fine.
        s.create_run(&new_run("gold", 2, &conf)).await.unwrap();
        let found = s.find_run("silver", r.logical_date).await.unwrap().unwrap();
        assert_eq!(found, r, "{}", db.backend);
        assert!(s.find_run("silver", r.logical_date + chrono::Duration::days(1)).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn list_runs_filters_and_orders_newest_first() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let conf = serde_json::json!({});
        for day in [3, 1, 2] {
            s.create_run(&new_run("a", day, &conf)).await.unwrap();
        }
        s.create_run(&new_run("b", 9, &conf)).await.unwrap();
        let a = s.list_runs(&RunFilter { dag_id: Some("a"), state: None, limit: 10 }).await.unwrap();
        let days: Vec<String> = a.iter().map(|r| r.ds.to_string()).collect();
        assert_eq!(days, ["2025-01-03", "2025-01-02", "2025-01-01"], "{}", db.backend);
        let all = s.list_runs(&RunFilter { dag_id: None, state: None, limit: 2 }).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].dag_id, "b");
        s.set_run_state(a[0].id, RunState::Failed).await.unwrap();
        let failed = s.list_runs(&RunFilter { dag_id: None, state: Some(RunState::Failed), limit: 0 }).await.unwrap();
        assert_eq!(failed.len(), 1, "{}", db.backend);
        assert_eq!(failed[0].id, a[0].id);
    }
}

#[tokio::test]
async fn run_state_stamps_start_and_end() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let conf = serde_json::json!({});
        let r = s.create_run(&new_run("a", 1, &conf)).await.unwrap();
        assert!(r.started_at.is_none() && r.ended_at.is_none());
        s.set_run_state(r.id, RunState::Running).await.unwrap();
        let running = s.get_run(r.id).await.unwrap().unwrap();
        let started = running.started_at.expect("started_at");
        assert!(running.ended_at.is_none());
        s.set_run_state(r.id, RunState::Running).await.unwrap();
        assert_eq!(s.get_run(r.id).await.unwrap().unwrap().started_at, Some(started), "{}: kept", db.backend);
        s.set_run_state(r.id, RunState::Success).await.unwrap();
        let done = s.get_run(r.id).await.unwrap().unwrap();
        assert!(done.ended_at.unwrap() >= started);
        s.requeue_run(r.id, &serde_json::json!({"x": 1}), None, None).await.unwrap();
        let again = s.get_run(r.id).await.unwrap().unwrap();
        assert_eq!(again.state, RunState::Queued);
        assert_eq!(again.conf, serde_json::json!({"x": 1}));
        assert!(again.started_at.is_none() && again.ended_at.is_none(), "{}", db.backend);
    }
}

#[tokio::test]
async fn attempts_record_tries_logs_and_task_states() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let conf = serde_json::json!({});
        let run = s.create_run(&new_run("a", 1, &conf)).await.unwrap();
        let tis = s.ensure_task_instances(run.id, &[("t1", "noop", 2), ("t2", "sleep", 1)]).await.unwrap();
        assert_eq!(tis.len(), 2);
        assert!(tis.iter().all(|t| t.state.is_none() && t.try_number == 0));
        // Idempotent: no duplicates, existing rows untouched.
        s.set_task_state(tis[0].id, Some(TaskState::Scheduled), None).await.unwrap();
        let again = s.ensure_task_instances(run.id, &[("t1", "noop", 2), ("t2", "sleep", 1)]).await.unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].state, Some(TaskState::Scheduled), "{}", db.backend);

        let a1 = s.start_attempt(&tis[0], 1, "host", 42).await.unwrap();
        let dup = s.start_attempt(&tis[0], 1, "host", 42).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{}: {dup}", db.backend);
        let running = &s.list_task_instances(run.id).await.unwrap()[0];
        assert_eq!((running.state, running.try_number), (Some(TaskState::Running), 1));
        let retry_at = Utc::now() + chrono::Duration::seconds(30);
        s.finish_attempt(
            a1,
            tis[0].id,
            &AttemptFinish {
                attempt: AttemptState::Failed,
                task: TaskState::UpForRetry,
                error: Some("boom 'quoted' \"too\""),
                output: None,
                log: "line one\nline two\n",
                next_retry_at: Some(retry_at),
            },
        )
        .await
        .unwrap();
        let ti = &s.list_task_instances(run.id).await.unwrap()[0];
        assert_eq!(ti.state, Some(TaskState::UpForRetry));
        assert_eq!(ti.error.as_deref(), Some("boom 'quoted' \"too\""));
        assert_eq!(ti.next_retry_at.map(|t| t.timestamp_micros()), Some(retry_at.timestamp_micros()));

        let a2 = s.start_attempt(ti, 2, "host", 42).await.unwrap();
        let out = serde_json::json!({"rows": 3});
        s.finish_attempt(
            a2,
            ti.id,
            &AttemptFinish {
                attempt: AttemptState::Success,
                task: TaskState::Success,
                error: None,
                output: Some(&out),
                log: "ok\n",
                next_retry_at: None,
            },
        )
        .await
        .unwrap();
        let attempts = s.list_attempts(run.id, "t1").await.unwrap();
        assert_eq!(attempts.len(), 2, "{}", db.backend);
        assert_eq!(attempts[0].state, AttemptState::Failed);
        assert_eq!(attempts[0].log, "line one\nline two\n");
        assert_eq!(attempts[1].try_number, 2);
        assert_eq!(attempts[1].output, Some(out.clone()));
        assert!(attempts[1].ended_at.is_some() && attempts[1].duration_ms.is_some());
        let ti = &s.list_task_instances(run.id).await.unwrap()[0];
        assert_eq!((ti.state, ti.try_number, ti.error.clone()), (Some(TaskState::Success), 2, None));
        assert_eq!(s.list_run_attempts(run.id).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn clearing_keeps_try_numbers_counting_and_abandoned_attempts_fail() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let conf = serde_json::json!({});
        let run = s.create_run(&new_run("a", 1, &conf)).await.unwrap();
        let tis = s.ensure_task_instances(run.id, &[("t", "noop", 3)]).await.unwrap();
        let a = s.start_attempt(&tis[0], 1, "h", 1).await.unwrap();
        let _ = a;
        assert_eq!(s.abandon_running_attempts(run.id, "gone").await.unwrap(), vec![tis[0].id]);
        let att = s.list_attempts(run.id, "t").await.unwrap();
        assert_eq!((att[0].state, att[0].error.as_deref()), (AttemptState::Failed, Some("gone")), "{}", db.backend);
        assert_eq!(s.clear_task_instances(run.id, &[("t", 3)]).await.unwrap(), 1);
        let ti = &s.list_task_instances(run.id).await.unwrap()[0];
        assert_eq!((ti.state, ti.try_number, ti.max_tries), (None, 1, 4), "{}", db.backend);
    }
}

#[tokio::test]
async fn backfills_record_per_date_outcomes() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let d = |n| NaiveDate::from_ymd_opt(2025, 1, n).unwrap();
        let b = s
            .create_backfill(&NewBackfill {
                dag_id: "silver",
                from_date: d(1),
                to_date: d(3),
                reprocess: "failed",
                max_active_runs: 2,
                run_backwards: true,
                conf: &serde_json::json!({}),
                holder: Some(("here:1", std::time::Duration::from_secs(30))),
            })
            .await
            .unwrap();
        assert_eq!((b.state.as_str(), b.run_backwards, b.max_active_runs), ("running", true, 2));
        for n in [3, 1, 2] {
            s.set_backfill_date(&BackfillDateRow {
                backfill_id: b.id,
                logical_date: Utc.with_ymd_and_hms(2025, 1, n, 0, 0, 0).unwrap(),
                ds: d(n),
                run_pk: None,
                outcome: "pending".into(),
                reason: None,
            })
            .await
            .unwrap();
        }
        s.set_backfill_date(&BackfillDateRow {
            backfill_id: b.id,
            logical_date: Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap(),
            ds: d(2),
            run_pk: Some(7),
            outcome: "failed".into(),
            reason: Some("task `x` failed".into()),
        })
        .await
        .unwrap();
        let dates = s.list_backfill_dates(b.id).await.unwrap();
        let summary: Vec<(String, String)> = dates.iter().map(|r| (r.ds.to_string(), r.outcome.clone())).collect();
        assert_eq!(
            summary,
            [
                ("2025-01-01".into(), "pending".into()),
                ("2025-01-02".into(), "failed".into()),
                ("2025-01-03".into(), "pending".into())
            ],
            "{}",
            db.backend
        );
        assert_eq!(dates[1].run_pk, Some(7));
        s.finish_backfill(b.id, "failed").await.unwrap();
        let b2 = s.get_backfill(b.id).await.unwrap().unwrap();
        assert_eq!(b2.state, "failed");
        assert!(b2.completed_at.is_some());
        assert_eq!(s.list_backfills(Some("silver"), 10).await.unwrap().len(), 1);
        assert!(s.list_backfills(Some("gold"), 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn alerts_are_recorded_once_per_key() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let to = vec!["ops@example.com".to_string(), "data@example.com".to_string()];
        let alert = NewAlert {
            dedup_key: "failure:1:t:2",
            kind: "failure",
            dag_id: "silver",
            run_pk: Some(1),
            task_id: Some("t"),
            try_number: Some(2),
            recipients: &to,
            subject: "[tmctl] FAILED",
            body: "it's broken; \"quotes\" survive",
        };
        assert!(s.enqueue_alert(&alert).await.unwrap());
        assert!(!s.enqueue_alert(&alert).await.unwrap(), "{}: second enqueue is a no-op", db.backend);
        let rows = s.list_alerts(Some("pending"), 10).await.unwrap();
        assert_eq!(rows.len(), 1, "{}", db.backend);
        assert_eq!(rows[0].recipients, to);
        assert_eq!(rows[0].body, "it's broken; \"quotes\" survive");
        assert_eq!(rows[0].try_number, Some(2));
        assert!(s.list_alerts(Some("sent"), 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn pause_flags_default_to_unpaused() {
    for db in common::both().await {
        let s = common::open(&db).await;
        assert!(!s.is_paused("silver").await.unwrap());
        s.set_paused("silver", true).await.unwrap();
        assert!(s.is_paused("silver").await.unwrap(), "{}", db.backend);
        s.set_paused("silver", false).await.unwrap();
        s.set_paused("gold", true).await.unwrap();
        let flags = s.paused_flags().await.unwrap();
        assert_eq!(flags.get("silver"), Some(&false));
        assert_eq!(flags.get("gold"), Some(&true), "{}", db.backend);
    }
}

#[tokio::test]
async fn runs_are_claimed_once_and_taken_over_only_when_the_lease_ran_out() {
    use std::time::Duration;
    for db in common::both().await {
        let s = common::open(&db).await;
        let conf = serde_json::json!({});
        let mut ids = Vec::new();
        for day in 1..=6 {
            ids.push(s.create_run(&new_run("a", day, &conf)).await.unwrap().id);
        }
        // A run of another DAG is not claimed by a daemon that does not know that DAG.
        s.create_run(&new_run("other", 1, &conf)).await.unwrap();
        let now = Utc::now();
        let lease = Duration::from_secs(30);
        // Two claimers racing: every run is claimed exactly once.
        let (x, y) = (s.clone(), s.clone());
        let claim_all = |st: Store, owner: &'static str| async move {
            let mut got = Vec::new();
            while let Some(r) = st.claim_next_run(owner, now, lease, &["a"]).await.unwrap() {
                assert_eq!(r.owner.as_deref(), Some(owner));
                got.push(r.id);
            }
            got
        };
        let (gx, gy) = tokio::join!(claim_all(x, "h:1"), claim_all(y, "h:2"));
        let mut all: Vec<i64> = gx.iter().chain(&gy).copied().collect();
        all.sort();
        assert_eq!(all, ids, "{}: each run claimed once ({gx:?} / {gy:?})", db.backend);
        // Held runs cannot be claimed by anyone else, nor taken with claim_run.
        assert!(s.claim_next_run("h:3", now, lease, &["a"]).await.unwrap().is_none());
        assert!(!s.claim_run(ids[0], "h:3", lease).await.unwrap(), "{}", db.backend);
        // The owner renews; a stranger cannot.
        let holder = s.get_run(ids[0]).await.unwrap().unwrap().owner.unwrap();
        assert!(s.renew_run_lease(ids[0], &holder, lease).await.unwrap());
        assert!(!s.renew_run_lease(ids[0], "h:3", lease).await.unwrap());
        // After the lease runs out, another claimer takes the run over.
        let later = now + chrono::Duration::seconds(31);
        let taken = s.claim_next_run("h:3", later, lease, &["a"]).await.unwrap().expect("expired lease is claimable");
        assert_eq!(taken.owner.as_deref(), Some("h:3"), "{}", db.backend);
        assert!(!s.renew_run_lease(taken.id, &holder, lease).await.unwrap(), "the old owner lost it");
        // Releasing with requeue puts it back, ownerless.
        s.release_run(taken.id, "h:3", true).await.unwrap();
        let back = s.get_run(taken.id).await.unwrap().unwrap();
        assert_eq!((back.state, back.owner), (RunState::Queued, None), "{}", db.backend);
        // Leases of a dead owner end at once: the owner of a run still held (the takeover above
        // may have taken the only run `holder` had, so ask the runs who holds them).
        let mut dead = None;
        for id in &ids {
            if let Some(owner) = s.get_run(*id).await.unwrap().unwrap().owner {
                dead = Some(owner);
                break;
            }
        }
        let dead = dead.expect("one run is still held");
        let n = s.expire_leases_of(std::slice::from_ref(&dead)).await.unwrap();
        assert!(n >= 1, "{}", db.backend);
        assert!(s.claim_next_run("h:4", Utc::now(), lease, &["a"]).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn one_scheduler_lock_at_a_time_on_postgres() {
    let db = common::postgres_db().await;
    let s = common::open(&db).await;
    let first = s.try_scheduler_lock().await.unwrap();
    assert!(first.is_some());
    assert!(s.try_scheduler_lock().await.unwrap().is_none(), "a second tick must wait");
    first.unwrap().release().await.unwrap();
    assert!(s.try_scheduler_lock().await.unwrap().is_some(), "released when the holder is dropped");
}
