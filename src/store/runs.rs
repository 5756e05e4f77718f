//! DAG runs, task instances and task attempts (with their logs).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub run_type: RunType,
    pub logical_date: DateTime<Utc>,
    pub ds: NaiveDate,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub state: RunState,
    pub conf: serde_json::Value,
    pub backfill_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `host:pid` of the process executing the run, while it does.
    pub owner: Option<String>,
    /// Last sign of life of the owner.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Until when the owner holds the run; after that any daemon may take it over.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub dag_id: &'a str,
    pub run_type: RunType,
    pub logical_date: DateTime<Utc>,
    pub ds: NaiveDate,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub conf: &'a serde_json::Value,
    pub backfill_id: Option<i64>,
    /// `(owner, lease)`: the run is created leased to this owner (it executes it at once).
    pub hold: Option<(&'a str, std::time::Duration)>,
}

/// The lease end of a hold starting now.
fn hold_until(hold: Option<(&str, std::time::Duration)>) -> Option<String> {
    hold.map(|(_, lease)| {
        timefmt::to_db(timefmt::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))
    })
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter<'a> {
    pub dag_id: Option<&'a str>,
    pub state: Option<RunState>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskInstanceRow {
    pub id: i64,
    pub run_pk: i64,
    pub task_id: String,
    pub kind: String,
    pub state: Option<TaskState>,
    /// Tries started so far.
    pub try_number: u32,
    /// The try number after which no retry follows.
    pub max_tries: u32,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// Tries run again because the process running them died (not counted in `max_tries`).
    pub crash_restarts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub id: i64,
    pub ti_pk: i64,
    pub run_pk: i64,
    pub task_id: String,
    pub try_number: u32,
    pub state: AttemptState,
    pub hostname: String,
    pub pid: i64,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub output: Option<serde_json::Value>,
    pub log: String,
}

/// How an attempt ended and what its task instance becomes.
#[derive(Debug, Clone)]
pub struct AttemptFinish<'a> {
    pub attempt: AttemptState,
    pub task: TaskState,
    pub error: Option<&'a str>,
    pub output: Option<&'a serde_json::Value>,
    pub log: &'a str,
    pub next_retry_at: Option<DateTime<Utc>>,
}

pub(super) const RUN_COLS: &str = "id, dag_id, run_id, run_type, logical_date, ds, data_interval_start, \
                        data_interval_end, state, conf, backfill_id, created_at, started_at, ended_at, owner, \
                        heartbeat_at, lease_expires_at";
const TI_COLS: &str = "id, run_pk, task_id, kind, state, try_number, max_tries, next_retry_at, started_at, ended_at, \
                       duration_ms, error, crash_restarts";
const ATTEMPT_COLS: &str = "id, ti_pk, run_pk, task_id, try_number, state, hostname, pid, started_at, ended_at, \
                            duration_ms, error, output, log";

pub(super) fn run_from(row: &AnyRow) -> Result<RunRow> {
    let conf = get_str(row, "conf")?;
    Ok(RunRow {
        id: get_i64(row, "id")?,
        dag_id: get_str(row, "dag_id")?,
        run_id: get_str(row, "run_id")?,
        run_type: get_enum(row, "run_type")?,
        logical_date: get_ts(row, "logical_date")?,
        ds: get_date(row, "ds")?,
        data_interval_start: get_ts(row, "data_interval_start")?,
        data_interval_end: get_ts(row, "data_interval_end")?,
        state: get_enum(row, "state")?,
        conf: serde_json::from_str(&conf).map_err(|_| StoreError::Corrupt { column: "conf", value: conf })?,
        backfill_id: get_opt_i64(row, "backfill_id")?,
        created_at: get_ts(row, "created_at")?,
        started_at: get_opt_ts(row, "started_at")?,
        ended_at: get_opt_ts(row, "ended_at")?,
        owner: get_opt_str(row, "owner")?,
        heartbeat_at: get_opt_ts(row, "heartbeat_at")?,
        lease_expires_at: get_opt_ts(row, "lease_expires_at")?,
    })
}

fn ti_from(row: &AnyRow) -> Result<TaskInstanceRow> {
    Ok(TaskInstanceRow {
        id: get_i64(row, "id")?,
        run_pk: get_i64(row, "run_pk")?,
        task_id: get_str(row, "task_id")?,
        kind: get_str(row, "kind")?,
        state: get_opt_enum(row, "state")?,
        try_number: get_i64(row, "try_number")? as u32,
        max_tries: get_i64(row, "max_tries")? as u32,
        next_retry_at: get_opt_ts(row, "next_retry_at")?,
        started_at: get_opt_ts(row, "started_at")?,
        ended_at: get_opt_ts(row, "ended_at")?,
        duration_ms: get_opt_i64(row, "duration_ms")?,
        error: get_opt_str(row, "error")?,
        crash_restarts: get_i64(row, "crash_restarts")? as u32,
    })
}

fn attempt_from(row: &AnyRow) -> Result<AttemptRow> {
    let output = match get_opt_str(row, "output")? {
        None => None,
        Some(s) => Some(serde_json::from_str(&s).map_err(|_| StoreError::Corrupt { column: "output", value: s })?),
    };
    Ok(AttemptRow {
        id: get_i64(row, "id")?,
        ti_pk: get_i64(row, "ti_pk")?,
        run_pk: get_i64(row, "run_pk")?,
        task_id: get_str(row, "task_id")?,
        try_number: get_i64(row, "try_number")? as u32,
        state: get_enum(row, "state")?,
        hostname: get_str(row, "hostname")?,
        pid: get_i64(row, "pid")?,
        started_at: get_ts(row, "started_at")?,
        ended_at: get_opt_ts(row, "ended_at")?,
        duration_ms: get_opt_i64(row, "duration_ms")?,
        error: get_opt_str(row, "error")?,
        output,
        log: get_str(row, "log")?,
    })
}

/// Airflow-style run id: `manual__2025-01-01T00:00:00+00:00`.
pub fn make_run_id(run_type: RunType, logical_date: DateTime<Utc>) -> String {
    format!("{}__{}", run_type.as_str(), logical_date.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
}

impl Store {
    /// Creates a queued run. A run for the same DAG and logical date is a [`StoreError::Conflict`].
    pub async fn create_run(&self, new: &NewRun<'_>) -> Result<RunRow> {
        let now = timefmt::to_db(timefmt::now());
        let sql = format!(
            "INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, ds, data_interval_start, data_interval_end, \
             state, conf, backfill_id, created_at, owner, heartbeat_at, lease_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $12 IS NULL THEN NULL ELSE $11 END, $13) \
             RETURNING {RUN_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.dag_id)
            .bind(make_run_id(new.run_type, new.logical_date))
            .bind(new.run_type.as_str())
            .bind(timefmt::to_db(new.logical_date))
            .bind(new.ds.to_string())
            .bind(timefmt::to_db(new.data_interval_start))
            .bind(timefmt::to_db(new.data_interval_end))
            .bind(RunState::Queued.as_str())
            .bind(new.conf.to_string())
            .bind(new.backfill_id)
            .bind(now)
            .bind(new.hold.map(|(owner, _)| owner))
            .bind(hold_until(new.hold))
            .fetch_one(self.pool())
            .await;
        match row {
            Ok(row) => run_from(&row),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "DAG `{}` already has a run for logical date {}",
                new.dag_id,
                new.logical_date.to_rfc3339()
            ))),
            Err(e) => Err(StoreError::Db { action: "create run", source: e }),
        }
    }

    pub async fn get_run(&self, id: i64) -> Result<Option<RunRow>> {
        let sql = format!("SELECT {RUN_COLS} FROM dag_runs WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await.ctx("get run")?;
        row.as_ref().map(run_from).transpose()
    }

    pub async fn find_run(&self, dag_id: &str, logical_date: DateTime<Utc>) -> Result<Option<RunRow>> {
        let sql = format!("SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND logical_date = $2");
        let row = sqlx::query(&sql)
            .bind(dag_id)
            .bind(timefmt::to_db(logical_date))
            .fetch_optional(self.pool())
            .await
            .ctx("find run")?;
        row.as_ref().map(run_from).transpose()
    }

    /// The runs of a DAG with logical dates in `from..=to`, oldest first (one query for a whole
    /// backfill plan).
    pub async fn runs_between(&self, dag_id: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND logical_date >= $2 AND logical_date <= $3 \
             ORDER BY logical_date"
        );
        let rows = sqlx::query(&sql)
            .bind(dag_id)
            .bind(timefmt::to_db(from))
            .bind(timefmt::to_db(to))
            .fetch_all(self.pool())
            .await
            .ctx("list runs in a range")?;
        rows.iter().map(run_from).collect()
    }

    /// The latest run of a DAG whose logical date falls on local date `ds`.
    pub async fn find_run_by_ds(&self, dag_id: &str, ds: NaiveDate) -> Result<Option<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND ds = $2 ORDER BY logical_date DESC, id DESC LIMIT 1"
        );
        let row =
            sqlx::query(&sql).bind(dag_id).bind(ds.to_string()).fetch_optional(self.pool()).await.ctx("find run")?;
        row.as_ref().map(run_from).transpose()
    }

    /// Runs, newest logical date first.
    pub async fn list_runs(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE ($1 IS NULL OR dag_id = $1) AND ($2 IS NULL OR state = $2) \
             ORDER BY logical_date DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.dag_id)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(if filter.limit > 0 { filter.limit } else { i64::MAX })
            .fetch_all(self.pool())
            .await
            .ctx("list runs")?;
        rows.iter().map(run_from).collect()
    }

    /// Sets a run's state; `running` stamps `started_at` the first time, finished states `ended_at`.
    pub async fn set_run_state(&self, id: i64, state: RunState) -> Result<()> {
        let now = timefmt::to_db(timefmt::now());
        sqlx::query(
            "UPDATE dag_runs SET state = $1, \
             started_at = CASE WHEN $1 = 'running' AND started_at IS NULL THEN $2 ELSE started_at END, \
             ended_at = CASE WHEN $1 IN ('success', 'failed') THEN $2 ELSE NULL END \
             WHERE id = $3",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await
        .ctx("set run state")?;
        Ok(())
    }

    /// Puts a finished run back to `queued` for a re-run with `conf` (its attempts stay as history),
    /// leased to the holder if there is one.
    pub async fn requeue_run(
        &self,
        id: i64,
        conf: &serde_json::Value,
        backfill_id: Option<i64>,
        hold: Option<(&str, std::time::Duration)>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE dag_runs SET state = 'queued', started_at = NULL, ended_at = NULL, conf = $1, \
             backfill_id = COALESCE($2, backfill_id), owner = $3, lease_expires_at = $4 WHERE id = $5",
        )
        .bind(conf.to_string())
        .bind(backfill_id)
        .bind(hold.map(|(owner, _)| owner))
        .bind(hold_until(hold))
        .bind(id)
        .execute(self.pool())
        .await
        .ctx("requeue run")?;
        Ok(())
    }

    /// Creates the missing task instances of a run (state none) and returns all of them.
    /// `tasks` is `(task_id, kind, tries allowed)`.
    pub async fn ensure_task_instances(
        &self,
        run_pk: i64,
        tasks: &[(&str, &str, u32)],
    ) -> Result<Vec<TaskInstanceRow>> {
        let now = timefmt::to_db(timefmt::now());
        let mut tx = self.pool().begin().await.ctx("begin")?;
        for (task_id, kind, tries) in tasks {
            sqlx::query(
                "INSERT INTO task_instances (run_pk, task_id, kind, try_number, max_tries, updated_at) \
                 VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (run_pk, task_id) DO NOTHING",
            )
            .bind(run_pk)
            .bind(*task_id)
            .bind(*kind)
            .bind(i64::from(*tries))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .ctx("create task instances")?;
        }
        tx.commit().await.ctx("commit")?;
        self.list_task_instances(run_pk).await
    }

    pub async fn list_task_instances(&self, run_pk: i64) -> Result<Vec<TaskInstanceRow>> {
        let sql = format!("SELECT {TI_COLS} FROM task_instances WHERE run_pk = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(run_pk).fetch_all(self.pool()).await.ctx("list task instances")?;
        rows.iter().map(ti_from).collect()
    }

    /// Clears task instances so they run again (Airflow's "clear"): state none, and `tries` more
    /// tries allowed from the current try number. Returns how many rows were cleared.
    pub async fn clear_task_instances(&self, run_pk: i64, tasks: &[(&str, u32)]) -> Result<u64> {
        let now = timefmt::to_db(timefmt::now());
        let mut tx = self.pool().begin().await.ctx("begin")?;
        let mut n = 0;
        for (task_id, tries) in tasks {
            n += sqlx::query(
                "UPDATE task_instances SET state = NULL, error = NULL, next_retry_at = NULL, ended_at = NULL, \
                 duration_ms = NULL, max_tries = try_number + $1, crash_restarts = 0, updated_at = $2 \
                 WHERE run_pk = $3 AND task_id = $4",
            )
            .bind(i64::from(*tries))
            .bind(&now)
            .bind(run_pk)
            .bind(*task_id)
            .execute(&mut *tx)
            .await
            .ctx("clear task instances")?
            .rows_affected();
        }
        tx.commit().await.ctx("commit")?;
        Ok(n)
    }

    /// Sets a task instance's state without an attempt (scheduled, queued, upstream_failed, skipped).
    pub async fn set_task_state(&self, ti_pk: i64, state: Option<TaskState>, error: Option<&str>) -> Result<()> {
        let now = timefmt::to_db(timefmt::now());
        let finished = state.is_some_and(|s| s.is_finished());
        sqlx::query(
            "UPDATE task_instances SET state = $1, error = COALESCE($2, error), next_retry_at = NULL, \
             ended_at = CASE WHEN $3 = 1 THEN $4 ELSE ended_at END, updated_at = $4 WHERE id = $5",
        )
        .bind(state.map(|s| s.as_str()))
        .bind(error.map(clean_text))
        .bind(i64::from(finished))
        .bind(now)
        .bind(ti_pk)
        .execute(self.pool())
        .await
        .ctx("set task state")?;
        Ok(())
    }

    /// Records the start of a try: an attempt row (running) and the task instance `running`, in
    /// one transaction. Returns the attempt id.
    pub async fn start_attempt(&self, ti: &TaskInstanceRow, try_number: u32, hostname: &str, pid: u32) -> Result<i64> {
        let now = timefmt::to_db(timefmt::now());
        let mut tx = self.pool().begin().await.ctx("begin")?;
        let row = sqlx::query(
            "INSERT INTO task_attempts (ti_pk, run_pk, task_id, try_number, state, hostname, pid, started_at) \
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $7) RETURNING id",
        )
        .bind(ti.id)
        .bind(ti.run_pk)
        .bind(&ti.task_id)
        .bind(i64::from(try_number))
        .bind(hostname)
        .bind(i64::from(pid))
        .bind(&now)
        .fetch_one(&mut *tx)
        .await;
        let row = match row {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "try {try_number} of task `{}` in run {} was already started",
                    ti.task_id, ti.run_pk
                )));
            }
            Err(e) => return Err(StoreError::Db { action: "start attempt", source: e }),
        };
        let attempt_id = get_i64(&row, "id")?;
        sqlx::query(
            "UPDATE task_instances SET state = 'running', try_number = $1, started_at = $2, ended_at = NULL, \
             duration_ms = NULL, error = NULL, next_retry_at = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(i64::from(try_number))
        .bind(&now)
        .bind(ti.id)
        .execute(&mut *tx)
        .await
        .ctx("start attempt")?;
        tx.commit().await.ctx("commit")?;
        Ok(attempt_id)
    }

    /// Records the end of a try and the task instance's resulting state, in one transaction.
    /// The duration is computed in SQL from the stored start, so the transaction begins with a
    /// write (a SQLite transaction that reads first could not wait for another writer's lock).
    pub async fn finish_attempt(&self, attempt_id: i64, ti_pk: i64, finish: &AttemptFinish<'_>) -> Result<()> {
        let now = timefmt::now();
        let now_s = timefmt::to_db(now);
        let mut tx = self.pool().begin().await.ctx("begin")?;
        sqlx::query(
            "UPDATE task_attempts SET state = $1, ended_at = $2, error = $3, output = $4, log = $5 WHERE id = $6",
        )
        .bind(finish.attempt.as_str())
        .bind(&now_s)
        .bind(finish.error.map(clean_text))
        .bind(finish.output.map(|v| v.to_string()))
        .bind(clean_text(finish.log))
        .bind(attempt_id)
        .execute(&mut *tx)
        .await
        .ctx("finish attempt")?;
        let row = sqlx::query("SELECT started_at FROM task_attempts WHERE id = $1")
            .bind(attempt_id)
            .fetch_one(&mut *tx)
            .await
            .ctx("finish attempt")?;
        let started = get_ts(&row, "started_at")?;
        let duration_ms = (now - started).num_milliseconds().max(0);
        sqlx::query("UPDATE task_attempts SET duration_ms = $1 WHERE id = $2")
            .bind(duration_ms)
            .bind(attempt_id)
            .execute(&mut *tx)
            .await
            .ctx("finish attempt")?;
        sqlx::query(
            "UPDATE task_instances SET state = $1, ended_at = $2, duration_ms = $3, error = $4, next_retry_at = $5, \
             updated_at = $2 WHERE id = $6",
        )
        .bind(finish.task.as_str())
        .bind(&now_s)
        .bind(duration_ms)
        .bind(finish.error.map(clean_text))
        .bind(finish.next_retry_at.map(timefmt::to_db))
        .bind(ti_pk)
        .execute(&mut *tx)
        .await
        .ctx("finish attempt")?;
        tx.commit().await.ctx("commit")?;
        Ok(())
    }

    /// The log so far of a try that is still running (a finished try keeps its final log).
    pub async fn update_running_log(&self, attempt_id: i64, log: &str) -> Result<()> {
        sqlx::query("UPDATE task_attempts SET log = $1 WHERE id = $2 AND state = 'running'")
            .bind(clean_text(log))
            .bind(attempt_id)
            .execute(self.pool())
            .await
            .ctx("write running log")?;
        Ok(())
    }

    /// Every try of one task in a run, oldest first.
    pub async fn list_attempts(&self, run_pk: i64, task_id: &str) -> Result<Vec<AttemptRow>> {
        let sql =
            format!("SELECT {ATTEMPT_COLS} FROM task_attempts WHERE run_pk = $1 AND task_id = $2 ORDER BY try_number");
        let rows = sqlx::query(&sql).bind(run_pk).bind(task_id).fetch_all(self.pool()).await.ctx("list attempts")?;
        rows.iter().map(attempt_from).collect()
    }

    /// Every try of every task in a run, in start order.
    pub async fn list_run_attempts(&self, run_pk: i64) -> Result<Vec<AttemptRow>> {
        let sql = format!("SELECT {ATTEMPT_COLS} FROM task_attempts WHERE run_pk = $1 ORDER BY started_at, id");
        let rows = sqlx::query(&sql).bind(run_pk).fetch_all(self.pool()).await.ctx("list attempts")?;
        rows.iter().map(attempt_from).collect()
    }
}

impl Store {
    /// Marks attempts of a run that are still `running` as failed: the process that ran them is
    /// gone (used when a run is resumed in-process without a daemon).
    /// Returns the task instances whose try was abandoned.
    pub async fn abandon_running_attempts(&self, run_pk: i64, reason: &str) -> Result<Vec<i64>> {
        let now = timefmt::to_db(timefmt::now());
        let rows = sqlx::query(
            "UPDATE task_attempts SET state = 'failed', ended_at = $1, error = $2 WHERE run_pk = $3 AND state = 'running' \
             RETURNING ti_pk",
        )
        .bind(now)
        .bind(clean_text(reason))
        .bind(run_pk)
        .fetch_all(self.pool())
        .await
        .ctx("abandon attempts")?;
        rows.iter().map(|r| get_i64(r, "ti_pk")).collect()
    }
}

impl Store {
    /// Gives a task instance whose try was abandoned by a dead process that try back: one more
    /// allowed try and one more crash restart on record, and the abandoned attempt says so.
    pub async fn grant_crash_restart(&self, ti_pk: i64, note: &str) -> Result<()> {
        let now = timefmt::to_db(timefmt::now());
        let mut tx = self.pool().begin().await.ctx("begin")?;
        sqlx::query(
            "UPDATE task_instances SET max_tries = max_tries + 1, crash_restarts = crash_restarts + 1, \
             updated_at = $1 WHERE id = $2",
        )
        .bind(&now)
        .bind(ti_pk)
        .execute(&mut *tx)
        .await
        .ctx("grant crash restart")?;
        sqlx::query(
            "UPDATE task_attempts SET error = $1 WHERE ti_pk = $2 \
             AND try_number = (SELECT try_number FROM task_instances WHERE id = $2)",
        )
        .bind(clean_text(note))
        .bind(ti_pk)
        .execute(&mut *tx)
        .await
        .ctx("note crash restart")?;
        tx.commit().await.ctx("commit")
    }

    /// Marks the still-running tries of one task instance as failed (used when recording a try's
    /// end failed, so that no attempt row stays `running`).
    pub async fn fail_running_attempts_of(&self, ti_pk: i64, reason: &str) -> Result<u64> {
        let now = timefmt::to_db(timefmt::now());
        let n = sqlx::query(
            "UPDATE task_attempts SET state = 'failed', ended_at = $1, error = $2 WHERE ti_pk = $3 AND state = 'running'",
        )
        .bind(now)
        .bind(clean_text(reason))
        .bind(ti_pk)
        .execute(self.pool())
        .await
        .ctx("fail attempts")?
        .rows_affected();
        Ok(n)
    }

    /// Records that `owner` (`host:pid`) executes the run from now on, leased until now + `lease`,
    /// unless another owner holds an unexpired lease on it (then false).
    pub async fn claim_run(&self, run_pk: i64, owner: &str, lease: std::time::Duration) -> Result<bool> {
        let now = timefmt::now();
        let n = sqlx::query(
            "UPDATE dag_runs SET owner = $1, heartbeat_at = $2, lease_expires_at = $3 WHERE id = $4 \
             AND (owner IS NULL OR owner = $1 OR lease_expires_at IS NULL OR lease_expires_at < $2)",
        )
        .bind(owner)
        .bind(timefmt::to_db(now))
        .bind(timefmt::to_db(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)))
        .bind(run_pk)
        .execute(self.pool())
        .await
        .ctx("claim run")?
        .rows_affected();
        Ok(n == 1)
    }
}
