//! What `tmctl serve` processes share through the state DB: who is alive (`daemons`), which
//! process holds which run (a lease on `dag_runs`, mirrored on its running attempts), which
//! daemon drives which backfill, and one scheduler tick at a time (a PostgreSQL advisory lock).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::*;

/// Key of the advisory lock held by the daemon whose scheduler is ticking ("tmsched").
const SCHEDULER_LOCK_KEY: i64 = 0x0074_6d73_6368_6564;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRow {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Held while one daemon's scheduler ticks; [`SchedulerLock::release`] lets the next one in
/// (dropping it does too, once the pool has rolled the transaction back).
pub struct SchedulerLock {
    tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
}

impl SchedulerLock {
    /// Ends the lock's transaction now, so another daemon's tick need not wait.
    pub async fn release(mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await.ctx("release scheduler lock")?;
        }
        Ok(())
    }
}

fn expiry(now: DateTime<Utc>, lease: Duration) -> String {
    timefmt::to_db(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))
}

fn daemon_from(row: &AnyRow) -> Result<DaemonRow> {
    Ok(DaemonRow {
        id: get_str(row, "id")?,
        host: get_str(row, "host")?,
        pid: get_i64(row, "pid")?,
        url: get_str(row, "url")?,
        started_at: get_ts(row, "started_at")?,
        heartbeat_at: get_ts(row, "heartbeat_at")?,
        stopped_at: get_opt_ts(row, "stopped_at")?,
    })
}

impl Store {
    /// Records a daemon as alive (a restarted process with the same id starts afresh).
    pub async fn register_daemon(&self, id: &str, host: &str, pid: u32, url: &str) -> Result<()> {
        let now = timefmt::to_db(timefmt::now());
        sqlx::query(
            "INSERT INTO daemons (id, host, pid, url, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3, url = $4, started_at = $5, heartbeat_at = $5, \
             stopped_at = NULL",
        )
        .bind(id)
        .bind(host)
        .bind(i64::from(pid))
        .bind(url)
        .bind(now)
        .execute(self.pool())
        .await
        .ctx("register daemon")?;
        Ok(())
    }

    pub async fn heartbeat_daemon(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE daemons SET heartbeat_at = $1 WHERE id = $2")
            .bind(timefmt::to_db(timefmt::now()))
            .bind(id)
            .execute(self.pool())
            .await
            .ctx("daemon heartbeat")?;
        Ok(())
    }

    pub async fn stop_daemon(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE daemons SET stopped_at = $1 WHERE id = $2")
            .bind(timefmt::to_db(timefmt::now()))
            .bind(id)
            .execute(self.pool())
            .await
            .ctx("stop daemon")?;
        Ok(())
    }

    /// Daemons that have not stopped and said they were alive after `since`.
    pub async fn live_daemons(&self, since: DateTime<Utc>) -> Result<Vec<DaemonRow>> {
        let rows = sqlx::query(
            "SELECT id, host, pid, url, started_at, heartbeat_at, stopped_at FROM daemons \
             WHERE stopped_at IS NULL AND heartbeat_at > $1 ORDER BY started_at",
        )
        .bind(timefmt::to_db(since))
        .fetch_all(self.pool())
        .await
        .ctx("list daemons")?;
        rows.iter().map(daemon_from).collect()
    }

    /// Takes the scheduler lock if nobody holds it. On PostgreSQL it is a transaction-scoped
    /// advisory lock (released when the holder's connection ends, even if the process is killed);
    /// on SQLite, which has one writer and one process tree per file, every caller gets it and the
    /// unique `(dag_id, logical_date)` of runs keeps ticks idempotent.
    pub async fn try_scheduler_lock(&self) -> Result<Option<SchedulerLock>> {
        match self.backend() {
            Backend::Sqlite => Ok(Some(SchedulerLock { tx: None })),
            Backend::Postgres => {
                let mut tx = self.pool().begin().await.ctx("begin")?;
                let row = sqlx::query("SELECT CAST(pg_try_advisory_xact_lock($1) AS INTEGER) AS got")
                    .bind(SCHEDULER_LOCK_KEY)
                    .fetch_one(&mut *tx)
                    .await
                    .ctx("scheduler lock")?;
                Ok((get_i64(&row, "got")? == 1).then_some(SchedulerLock { tx: Some(tx) }))
            }
        }
    }

    /// Claims the oldest unfinished run that nobody holds (no owner, or an expired lease) of one
    /// of the DAGs in `dag_ids`, for `owner` until `now + lease`. PostgreSQL skips rows another daemon
    /// is claiming (`FOR UPDATE SKIP LOCKED`); SQLite serialises writers. A claimed run of a DAG
    /// that is not in `dag_ids` (a `LIKE` near miss) is handed back at once.
    pub async fn claim_next_run(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        dag_ids: &[&str],
    ) -> Result<Option<RunRow>> {
        if dag_ids.is_empty() {
            return Ok(None);
        }
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE dag_runs SET owner = $1, heartbeat_at = $2, lease_expires_at = $3 WHERE id IN (\
               SELECT id FROM dag_runs WHERE state IN ('queued', 'running') \
                 AND (owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < $2) \
               AND (',' || $4 || ',') LIKE ('%,' || dag_id || ',%') \
               ORDER BY created_at, id LIMIT 1 {lock}) \
             RETURNING {}",
            runs::RUN_COLS
        );
        let row = sqlx::query(&sql)
            .bind(owner)
            .bind(timefmt::to_db(now))
            .bind(expiry(now, lease))
            .bind(dag_ids.join(","))
            .fetch_optional(self.pool())
            .await
            .ctx("claim run")?;
        let Some(run) = row.as_ref().map(runs::run_from).transpose()? else { return Ok(None) };
        if !dag_ids.contains(&run.dag_id.as_str()) {
            self.release_run(run.id, owner, false).await?;
            return Ok(None);
        }
        Ok(Some(run))
    }

    /// Renews `owner`'s lease on a run and on its running attempts. False if the run has another
    /// owner now (its lease expired and another process took it over).
    pub async fn renew_run_lease(&self, run_pk: i64, owner: &str, lease: Duration) -> Result<bool> {
        let now = timefmt::now();
        let until = expiry(now, lease);
        let mut tx = self.pool().begin().await.ctx("begin")?;
        let n =
            sqlx::query("UPDATE dag_runs SET heartbeat_at = $1, lease_expires_at = $2 WHERE id = $3 AND owner = $4")
                .bind(timefmt::to_db(now))
                .bind(&until)
                .bind(run_pk)
                .bind(owner)
                .execute(&mut *tx)
                .await
                .ctx("renew lease")?
                .rows_affected();
        if n == 1 {
            sqlx::query("UPDATE task_attempts SET lease_expires_at = $1 WHERE run_pk = $2 AND state = 'running'")
                .bind(&until)
                .bind(run_pk)
                .execute(&mut *tx)
                .await
                .ctx("renew lease")?;
        }
        tx.commit().await.ctx("commit")?;
        Ok(n == 1)
    }

    /// Gives a run up: no owner, no lease. `requeue` puts it back to `queued` (a daemon shutting
    /// down releases unfinished runs this way; the next claimer resumes them).
    pub async fn release_run(&self, run_pk: i64, owner: &str, requeue: bool) -> Result<()> {
        sqlx::query(
            "UPDATE dag_runs SET owner = NULL, lease_expires_at = NULL, \
             state = CASE WHEN $1 = 1 THEN 'queued' ELSE state END WHERE id = $2 AND owner = $3",
        )
        .bind(i64::from(requeue))
        .bind(run_pk)
        .bind(owner)
        .execute(self.pool())
        .await
        .ctx("release run")?;
        Ok(())
    }

    /// Ends the lease of every unfinished run and backfill owned by one of `owners` now (processes known to be
    /// dead), so the next claim takes them over without waiting for the lease to run out.
    pub async fn expire_leases_of(&self, owners: &[String]) -> Result<u64> {
        let mut n = 0;
        for owner in owners {
            n += sqlx::query(
                "UPDATE dag_runs SET lease_expires_at = $1 WHERE owner = $2 AND state IN ('queued', 'running')",
            )
            .bind(timefmt::to_db(timefmt::now() - chrono::Duration::seconds(1)))
            .bind(owner)
            .execute(self.pool())
            .await
            .ctx("expire leases")?
            .rows_affected();
            n += sqlx::query("UPDATE backfills SET lease_expires_at = $1 WHERE owner = $2")
                .bind(timefmt::to_db(timefmt::now() - chrono::Duration::seconds(1)))
                .bind(owner)
                .execute(self.pool())
                .await
                .ctx("expire leases")?
                .rows_affected();
        }
        Ok(n)
    }

    /// Owners of unfinished runs and of backfills (to find the dead ones among them).
    pub async fn run_owners(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT owner FROM dag_runs WHERE owner IS NOT NULL AND state IN ('queued', 'running') \
             UNION SELECT owner FROM backfills WHERE owner IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await
        .ctx("list run owners")?;
        rows.iter().map(|r| get_str(r, "owner")).collect()
    }

    /// Runs of a DAG that are queued or running.
    pub async fn count_active_runs(&self, dag_id: &str) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM dag_runs WHERE dag_id = $1 AND state IN ('queued', 'running')")
                .bind(dag_id)
                .fetch_one(self.pool())
                .await
                .ctx("count active runs")?;
        get_i64(&row, "n")
    }

    /// How many runs (of every DAG) are in `state`: the daemon's `/metrics` reads the queue's
    /// length with it at each scrape.
    pub async fn count_runs_in_state(&self, state: RunState) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM dag_runs WHERE state = $1")
            .bind(state.as_str())
            .fetch_one(self.pool())
            .await
            .ctx("count runs by state")?;
        Ok(get_i64(&row, "n")?.max(0) as u64)
    }

    /// The latest logical date of the DAG's scheduled and backfill runs (where its schedule has
    /// been covered; manual runs, which may be for any date, do not move it).
    pub async fn last_scheduled_logical_date(&self, dag_id: &str) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MAX(logical_date) AS last FROM dag_runs WHERE dag_id = $1 AND run_type IN ('scheduled', 'backfill')",
        )
        .bind(dag_id)
        .fetch_one(self.pool())
        .await
        .ctx("last scheduled run")?;
        get_opt_ts(&row, "last")
    }

    /// Claims a backfill that is queued or driven under an expired lease, for `owner`.
    pub async fn claim_backfill(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<BackfillRow>> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE backfills SET owner = $1, lease_expires_at = $2 WHERE id IN (\
               SELECT id FROM backfills WHERE state IN ('queued', 'running', 'paused') AND owner IS DISTINCT FROM $1 \
               AND (lease_expires_at IS NULL OR lease_expires_at < $3) ORDER BY id LIMIT 1 {lock}) \
             RETURNING {}",
            backfills::BACKFILL_COLS
        );
        let row = sqlx::query(&sql)
            .bind(owner)
            .bind(expiry(now, lease))
            .bind(timefmt::to_db(now))
            .fetch_optional(self.pool())
            .await
            .ctx("claim backfill")?;
        row.as_ref().map(backfills::backfill_from).transpose()
    }

    /// Renews `owner`'s lease on a backfill; false if another daemon drives it now.
    pub async fn renew_backfill_lease(&self, id: i64, owner: &str, lease: Duration) -> Result<bool> {
        let n = sqlx::query("UPDATE backfills SET lease_expires_at = $1 WHERE id = $2 AND owner = $3")
            .bind(expiry(timefmt::now(), lease))
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await
            .ctx("renew backfill lease")?
            .rows_affected();
        Ok(n == 1)
    }

    /// Gives a backfill up (its driver is shutting down).
    pub async fn release_backfill(&self, id: i64, owner: &str) -> Result<()> {
        sqlx::query("UPDATE backfills SET owner = NULL, lease_expires_at = NULL WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await
            .ctx("release backfill")?;
        Ok(())
    }
}
