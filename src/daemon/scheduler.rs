//! The scheduler: creates the runs of cron-scheduled DAGs when their data interval ends, in
//! each DAG's time zone (DST policy in `dag::schedule`), honouring `start_date`, `end_date`,
//! `catchup`, `max_active_runs` and pause. It sleeps until the next fire time of any DAG (at most
//! a second, so pause flags and new DAG files are seen). With several daemons on PostgreSQL one
//! tick runs at a time (advisory lock); a run's unique `(dag_id, logical_date)` makes a tick
//! idempotent anyway.
//!
//! Why not tokio-cron-scheduler: it keeps jobs and their next fire times in memory (or in its
//! own Postgres/NATS stores) and fires callbacks in the process that registered them. Our
//! schedule lives in the state DB (the runs that exist say what has been scheduled), must be
//! shared by several daemons, and needs Airflow's data-interval semantics and our DST policy,
//! so we use its cron engine, croner, inside this loop instead.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Daemon;
use crate::dag::Dag;
use crate::dag::schedule::{DueQuery, due_slots};
use crate::executor::{Prepared, prepare_run};
use crate::store::{RunType, StoreError};

/// Longest the scheduler sleeps between ticks.
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub async fn run(d: Arc<Daemon>) {
    loop {
        let now = Utc::now();
        match tick(&d, now).await {
            Ok(created) if created > 0 => d.wake.notify_waiters(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
        }
        let next = next_fire(&d, Utc::now());
        let sleep = next
            .and_then(|t| (t - Utc::now()).to_std().ok())
            .map_or(MAX_SLEEP, |wait| wait.min(MAX_SLEEP))
            // A fire time is due only once it has passed: wake just after it.
            + Duration::from_millis(1);
        tokio::select! {
            _ = d.shutdown.cancelled() => return,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// The next fire time of any unpaused scheduled DAG.
fn next_fire(d: &Daemon, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    d.dags().values().filter_map(|dag| dag.schedule.as_ref().and_then(|s| s.next_after(now, dag.timezone))).min()
}

/// One pass over the DAGs; returns how many runs it created.
pub async fn tick(d: &Daemon, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let Some(lock) = d.store.try_scheduler_lock().await? else {
        return Ok(0);
    };
    let result = async {
        let paused = d.store.paused_flags().await?;
        let mut created = 0;
        for dag in d.dags().values() {
            if dag.schedule.is_none() || paused.get(&dag.id).copied().unwrap_or(false) {
                continue;
            }
            created += schedule_dag(d, dag, now).await?;
        }
        Ok(created)
    }
    .await;
    lock.release().await?;
    result
}

async fn schedule_dag(d: &Daemon, dag: &Dag, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let Some(schedule) = &dag.schedule else { return Ok(0) };
    let active = d.store.count_active_runs(&dag.id).await?;
    let free = i64::from(dag.max_active_runs.max(1)) - active;
    if free <= 0 {
        return Ok(0);
    }
    let query = DueQuery {
        tz: dag.timezone,
        start_date: dag.start_date,
        end_date: dag.end_date,
        catchup: dag.catchup,
        last: d.store.last_scheduled_logical_date(&dag.id).await?,
        now,
        // Slots that already have a (manual) run are passed over without using up the limit.
        limit: free as usize + 64,
    };
    let mut created = 0;
    for slot in due_slots(schedule, &query) {
        if created >= free as usize {
            break;
        }
        if d.store.find_run(&dag.id, slot.logical_date).await?.is_some() {
            continue;
        }
        match prepare_run(&d.store, dag, &slot, RunType::Scheduled, &serde_json::Value::Null, None, None).await {
            Ok(Prepared::Created(run)) => {
                created += 1;
                let lag = (chrono::Utc::now() - slot.data_interval_end).num_microseconds().unwrap_or(i64::MAX);
                d.metrics.scheduled(&dag.id, lag as f64 / 1e6);
                tracing::info!(dag = %dag.id, run = run.id, logical_date = %slot.logical_date, "scheduled run");
            }
            // Another daemon or a CLI run created it in between.
            Ok(_) => {}
            Err(crate::executor::ExecError::Invalid(e) | crate::executor::ExecError::InFlight(e)) => {
                tracing::warn!(dag = %dag.id, error = %e, "not scheduled")
            }
            Err(crate::executor::ExecError::Store(e)) => return Err(e),
        }
    }
    Ok(created)
}
