//! State-DB retention (`tmctl db clean`, the daemon's daily clean): finished runs with their task
//! instances, tries (and their logs) and run summaries; sent alerts; finished backfills with their
//! per-date records; expired web sessions. Deleted in batches of [`CLEAN_BATCH`], one short
//! transaction each, so no lock is held long on either database.
//!
//! Never deleted: a run that is queued or running, a run of a backfill still active (queued,
//! running or paused), a run with an alert still pending in the outbox, the newest run of each DAG
//! and run type (the scheduler resumes from the newest scheduled or backfill run, and a recovery
//! alert compares with the newest finished one), pending or given-up alerts, active backfills, a
//! backfill any kept run still points to, the ingestion registry (bronze's idempotency) and the
//! audit log.

use chrono::{DateTime, Utc};

use super::*;

/// Runs (and alerts, backfills, sessions) deleted per transaction.
pub const CLEAN_BATCH: i64 = 500;

/// What to clean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanScope {
    /// Runs that ended, alerts sent and backfills completed before this instant.
    pub before: DateTime<Utc>,
    /// Only this DAG's runs, alerts and backfills (web sessions are left alone then).
    pub dag_id: Option<String>,
    /// Sessions past their absolute expiry at this instant are expired...
    pub now: DateTime<Utc>,
    /// ...and so are those last used before this one (the idle timeout).
    pub sessions_idle_before: DateTime<Utc>,
}

/// Rows per kind that a clean deleted (or, for a dry run, would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CleanCounts {
    pub runs: u64,
    pub task_instances: u64,
    pub task_attempts: u64,
    pub run_summaries: u64,
    pub alerts: u64,
    pub backfills: u64,
    pub backfill_dates: u64,
    pub sessions: u64,
}

impl CleanCounts {
    pub fn total(&self) -> u64 {
        self.runs
            + self.task_instances
            + self.task_attempts
            + self.run_summaries
            + self.alerts
            + self.backfills
            + self.backfill_dates
            + self.sessions
    }

    /// `(kind, rows)` in a fixed order, for tables and logs.
    pub fn by_kind(&self) -> [(&'static str, u64); 8] {
        [
            ("runs", self.runs),
            ("task_instances", self.task_instances),
            ("task_attempts", self.task_attempts),
            ("run_summaries", self.run_summaries),
            ("alerts", self.alerts),
            ("backfills", self.backfills),
            ("backfill_dates", self.backfill_dates),
            ("sessions", self.sessions),
        ]
    }

    fn add(&mut self, other: &CleanCounts) {
        self.runs += other.runs;
        self.task_instances += other.task_instances;
        self.task_attempts += other.task_attempts;
        self.run_summaries += other.run_summaries;
        self.alerts += other.alerts;
        self.backfills += other.backfills;
        self.backfill_dates += other.backfill_dates;
        self.sessions += other.sessions;
    }
}

/// The runs a clean may delete: `$1` = before, `$2` = DAG or NULL. "Not the newest of its DAG and
/// run type" is a probe for a newer one (index `dag_runs_type_recent`), not a `MAX` per row: on
/// PostgreSQL the `MAX` form took 27 s per batch over 20,000 runs.
const RUNS_TO_CLEAN: &str = "FROM dag_runs r WHERE r.state IN ('success', 'failed') \
     AND COALESCE(r.ended_at, r.created_at) < $1 AND ($2 IS NULL OR r.dag_id = $2) \
     AND NOT EXISTS (SELECT 1 FROM backfills b WHERE b.id = r.backfill_id \
       AND b.state IN ('queued', 'running', 'paused')) \
     AND NOT EXISTS (SELECT 1 FROM alert_outbox a WHERE a.run_pk = r.id AND a.state = 'pending') \
     AND EXISTS (SELECT 1 FROM dag_runs n \
       WHERE n.dag_id = r.dag_id AND n.run_type = r.run_type AND n.logical_date > r.logical_date)";

/// Sent alerts a clean may delete: `$1` = before, `$2` = DAG or NULL.
const ALERTS_TO_CLEAN: &str = "FROM alert_outbox WHERE state = 'sent' AND sent_at < $1 AND ($2 IS NULL OR dag_id = $2)";

/// Finished backfills no run points to any more: `$1` = before, `$2` = DAG or NULL.
const BACKFILLS_TO_CLEAN: &str = "FROM backfills b WHERE b.state NOT IN ('queued', 'running', 'paused') \
     AND COALESCE(b.completed_at, b.created_at) < $1 AND ($2 IS NULL OR b.dag_id = $2) \
     AND NOT EXISTS (SELECT 1 FROM dag_runs r WHERE r.backfill_id = b.id)";

/// Expired web sessions: `$1` = now, `$2` = last used before this (idle).
const SESSIONS_TO_CLEAN: &str = "FROM web_sessions WHERE expires_at < $1 OR COALESCE(last_seen_at, created_at) < $2";

impl Store {
    /// What [`Store::clean`] would delete now (`tmctl db clean --dry-run`); deletes nothing.
    pub async fn count_clean(&self, scope: &CleanScope) -> Result<CleanCounts> {
        let before = timefmt::to_db(scope.before);
        let dag = scope.dag_id.as_deref();
        let count = |sql: String| {
            let before = before.clone();
            async move {
                let row =
                    sqlx::query(&sql).bind(before).bind(dag).fetch_one(self.pool()).await.ctx("count rows to clean")?;
                Ok::<u64, StoreError>(get_i64(&row, "n")?.max(0) as u64)
            }
        };
        let runs = format!("SELECT r.id {RUNS_TO_CLEAN}");
        let mut counts = CleanCounts {
            runs: count(format!("SELECT COUNT(*) AS n {RUNS_TO_CLEAN}")).await?,
            task_instances: count(format!("SELECT COUNT(*) AS n FROM task_instances WHERE run_pk IN ({runs})")).await?,
            task_attempts: count(format!("SELECT COUNT(*) AS n FROM task_attempts WHERE run_pk IN ({runs})")).await?,
            run_summaries: count(format!("SELECT COUNT(*) AS n FROM run_summaries WHERE run_pk IN ({runs})")).await?,
            alerts: count(format!("SELECT COUNT(*) AS n {ALERTS_TO_CLEAN}")).await?,
            // Backfills whose runs all go in this clean go too.
            backfills: count(format!(
                "SELECT COUNT(*) AS n FROM backfills b WHERE b.state NOT IN ('queued', 'running', 'paused') \
                 AND COALESCE(b.completed_at, b.created_at) < $1 AND ($2 IS NULL OR b.dag_id = $2) \
                 AND NOT EXISTS (SELECT 1 FROM dag_runs k WHERE k.backfill_id = b.id AND k.id NOT IN ({runs}))"
            ))
            .await?,
            backfill_dates: count(format!(
                "SELECT COUNT(*) AS n FROM backfill_dates WHERE backfill_id IN (SELECT b.id FROM backfills b \
                 WHERE b.state NOT IN ('queued', 'running', 'paused') \
                 AND COALESCE(b.completed_at, b.created_at) < $1 AND ($2 IS NULL OR b.dag_id = $2) \
                 AND NOT EXISTS (SELECT 1 FROM dag_runs k WHERE k.backfill_id = b.id AND k.id NOT IN ({runs})))"
            ))
            .await?,
            sessions: 0,
        };
        if scope.dag_id.is_none() {
            let row = sqlx::query(&format!("SELECT COUNT(*) AS n {SESSIONS_TO_CLEAN}"))
                .bind(timefmt::to_db(scope.now))
                .bind(timefmt::to_db(scope.sessions_idle_before))
                .fetch_one(self.pool())
                .await
                .ctx("count rows to clean")?;
            counts.sessions = get_i64(&row, "n")?.max(0) as u64;
        }
        Ok(counts)
    }

    /// Deletes what `scope` selects, [`CLEAN_BATCH`] runs (or alerts, backfills, sessions) per
    /// transaction, until nothing is left; returns the rows deleted per kind. Safe to run while
    /// daemons work and while another clean runs: every batch re-checks its rows.
    pub async fn clean(&self, scope: &CleanScope) -> Result<CleanCounts> {
        let mut total = CleanCounts::default();
        loop {
            let batch = self.clean_runs_batch(scope, CLEAN_BATCH).await?;
            total.add(&batch);
            if batch.runs < CLEAN_BATCH as u64 {
                break;
            }
        }
        let before = timefmt::to_db(scope.before);
        let dag = scope.dag_id.as_deref();
        loop {
            let sql =
                format!("DELETE FROM alert_outbox WHERE id IN (SELECT id {ALERTS_TO_CLEAN} ORDER BY id LIMIT $3)");
            let n = sqlx::query(&sql)
                .bind(&before)
                .bind(dag)
                .bind(CLEAN_BATCH)
                .execute(self.pool())
                .await
                .ctx("clean alerts")?
                .rows_affected();
            total.alerts += n;
            if n < CLEAN_BATCH as u64 {
                break;
            }
        }
        loop {
            let batch = self.clean_backfills_batch(scope, CLEAN_BATCH).await?;
            total.add(&batch);
            if batch.backfills < CLEAN_BATCH as u64 {
                break;
            }
        }
        if scope.dag_id.is_none() {
            loop {
                let sql =
                    format!("DELETE FROM web_sessions WHERE id_hash IN (SELECT id_hash {SESSIONS_TO_CLEAN} LIMIT $3)");
                let n = sqlx::query(&sql)
                    .bind(timefmt::to_db(scope.now))
                    .bind(timefmt::to_db(scope.sessions_idle_before))
                    .bind(CLEAN_BATCH)
                    .execute(self.pool())
                    .await
                    .ctx("clean sessions")?
                    .rows_affected();
                total.sessions += n;
                if n < CLEAN_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// One transaction: up to `limit` runs with their tries, task instances and summaries.
    async fn clean_runs_batch(&self, scope: &CleanScope, limit: i64) -> Result<CleanCounts> {
        let lock = match self.backend() {
            // A run being requeued right now (cleared by an operator) waits for this batch, or
            // this batch skips it.
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.pool().begin().await.ctx("begin")?;
        // A write first (a no-op update that returns the batch): SQLite then takes the write lock
        // at once, waiting for other writers (busy_timeout), instead of failing with "database is
        // locked" when a read transaction tries to write after another process committed.
        let sql = format!(
            "UPDATE dag_runs SET owner = owner WHERE id IN (SELECT r.id {RUNS_TO_CLEAN} ORDER BY r.id LIMIT $3{lock}) \
             RETURNING id"
        );
        let ids = batch_ids(&mut tx, &sql, scope, limit, "find runs to clean").await?;
        let mut counts = CleanCounts::default();
        if ids.is_empty() {
            tx.commit().await.ctx("commit")?;
            return Ok(counts);
        }
        let list = placeholders(1, ids.len());
        counts.task_attempts =
            delete_in(&mut tx, &ids, format!("DELETE FROM task_attempts WHERE run_pk IN ({list})"), "clean tries")
                .await?;
        counts.task_instances = delete_in(
            &mut tx,
            &ids,
            format!("DELETE FROM task_instances WHERE run_pk IN ({list})"),
            "clean task instances",
        )
        .await?;
        counts.run_summaries = delete_in(
            &mut tx,
            &ids,
            format!("DELETE FROM run_summaries WHERE run_pk IN ({list})"),
            "clean run summaries",
        )
        .await?;
        counts.runs =
            delete_in(&mut tx, &ids, format!("DELETE FROM dag_runs WHERE id IN ({list})"), "clean runs").await?;
        tx.commit().await.ctx("commit")?;
        Ok(counts)
    }

    /// One transaction: up to `limit` finished backfills with their per-date records.
    async fn clean_backfills_batch(&self, scope: &CleanScope, limit: i64) -> Result<CleanCounts> {
        let mut tx = self.pool().begin().await.ctx("begin")?;
        // A write first, as in `clean_runs_batch`.
        let sql = format!(
            "UPDATE backfills SET owner = owner WHERE id IN (SELECT b.id {BACKFILLS_TO_CLEAN} ORDER BY b.id LIMIT $3) \
             RETURNING id"
        );
        let ids = batch_ids(&mut tx, &sql, scope, limit, "find backfills to clean").await?;
        let mut counts = CleanCounts::default();
        if ids.is_empty() {
            tx.commit().await.ctx("commit")?;
            return Ok(counts);
        }
        let list = placeholders(1, ids.len());
        counts.backfill_dates = delete_in(
            &mut tx,
            &ids,
            format!("DELETE FROM backfill_dates WHERE backfill_id IN ({list})"),
            "clean backfill dates",
        )
        .await?;
        counts.backfills =
            delete_in(&mut tx, &ids, format!("DELETE FROM backfills WHERE id IN ({list})"), "clean backfills").await?;
        tx.commit().await.ctx("commit")?;
        Ok(counts)
    }

    /// Claims the periodic job `name` for `owner` until `now + lease` if it was last done at
    /// least `every` ago (or never) and nobody holds it: with several daemons on one state DB
    /// exactly one of them does it each period.
    pub async fn claim_daemon_job(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        every: std::time::Duration,
        lease: std::time::Duration,
    ) -> Result<bool> {
        sqlx::query("INSERT INTO daemon_jobs (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(self.pool())
            .await
            .ctx("register daemon job")?;
        let due_before = chrono::Duration::from_std(every).ok().and_then(|d| now.checked_sub_signed(d)).unwrap_or(now);
        let until = chrono::Duration::from_std(lease).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(now);
        let n = sqlx::query(
            "UPDATE daemon_jobs SET owner = $2, lease_expires_at = $3 WHERE name = $1 \
             AND (lease_expires_at IS NULL OR lease_expires_at < $4) \
             AND (last_done_at IS NULL OR last_done_at <= $5)",
        )
        .bind(name)
        .bind(owner)
        .bind(timefmt::to_db(until))
        .bind(timefmt::to_db(now))
        .bind(timefmt::to_db(due_before))
        .execute(self.pool())
        .await
        .ctx("claim daemon job")?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records that `owner` did the job `name` at `now` (`ok`) or gave it up (not `ok`: the next
    /// claim may try again at once), and releases it.
    pub async fn finish_daemon_job(&self, name: &str, owner: &str, now: DateTime<Utc>, ok: bool) -> Result<()> {
        sqlx::query(
            "UPDATE daemon_jobs SET owner = NULL, lease_expires_at = NULL, \
             last_done_at = CASE WHEN $3 = 1 THEN $4 ELSE last_done_at END WHERE name = $1 AND owner = $2",
        )
        .bind(name)
        .bind(owner)
        .bind(i64::from(ok))
        .bind(timefmt::to_db(now))
        .execute(self.pool())
        .await
        .ctx("finish daemon job")?;
        Ok(())
    }
}

/// `sql` (a DELETE with `$1…$n` for `ids`) in `tx`: the rows it deleted.
/// The ids `sql` (bound: `scope.before` as `$1`, `scope.dag_id` as `$2`, `limit` as `$3`) returns.
async fn batch_ids(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sql: &str,
    scope: &CleanScope,
    limit: i64,
    action: &'static str,
) -> Result<Vec<i64>> {
    let rows = sqlx::query(sql)
        .bind(timefmt::to_db(scope.before))
        .bind(scope.dag_id.as_deref())
        .bind(limit)
        .fetch_all(&mut **tx)
        .await
        .ctx(action)?;
    rows.iter().map(|r| get_i64(r, "id")).collect()
}

async fn delete_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ids: &[i64],
    sql: String,
    action: &'static str,
) -> Result<u64> {
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.execute(&mut **tx).await.ctx(action)?.rows_affected())
}
