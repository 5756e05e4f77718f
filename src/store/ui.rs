//! Read queries behind the web UI's run views: pages of runs, the task cells of a grid, try spans
//! for a gantt (without logs), one try's log, pages of backfills and of the ingestion registry.
//! Every list is bounded (a page size and a keyset cursor), so pages stay fast with a long history.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::backfills::{BACKFILL_COLS, backfill_from};
use super::registry::{COLS as INGEST_COLS, row_to_ingestion as ingestion_from};
use super::runs::{RUN_COLS, run_from};
use super::*;

/// One cell of the grid: a task instance without its error text.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCell {
    pub run_pk: i64,
    pub task_id: String,
    pub state: Option<TaskState>,
    pub try_number: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

/// One try without its log (gantt bars, the list of tries of a task).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSpan {
    pub task_id: String,
    pub try_number: u32,
    pub state: AttemptState,
    pub hostname: String,
    pub pid: i64,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
}

fn span_from(row: &AnyRow) -> Result<AttemptSpan> {
    Ok(AttemptSpan {
        task_id: get_str(row, "task_id")?,
        try_number: get_i64(row, "try_number")? as u32,
        state: get_enum(row, "state")?,
        hostname: get_str(row, "hostname")?,
        pid: get_i64(row, "pid")?,
        started_at: get_ts(row, "started_at")?,
        ended_at: get_opt_ts(row, "ended_at")?,
        duration_ms: get_opt_i64(row, "duration_ms")?,
        error: get_opt_str(row, "error")?,
    })
}

const SPAN_COLS: &str = "task_id, try_number, state, hostname, pid, started_at, ended_at, duration_ms, error";

impl Store {
    /// A page of a DAG's runs, newest logical date first, older than `before` when given.
    pub async fn runs_page(&self, dag_id: &str, before: Option<DateTime<Utc>>, limit: i64) -> Result<Vec<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND ($2 IS NULL OR logical_date < $2) \
             ORDER BY logical_date DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(dag_id)
            .bind(before.map(timefmt::to_db))
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .ctx("list runs")?;
        rows.iter().map(run_from).collect()
    }

    /// The task instances of these runs (grid cells), without error texts.
    pub async fn task_cells(&self, run_pks: &[i64]) -> Result<Vec<TaskCell>> {
        if run_pks.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT run_pk, task_id, state, try_number, started_at, ended_at, duration_ms FROM task_instances \
             WHERE run_pk IN ({})",
            placeholders(1, run_pks.len())
        );
        let mut q = sqlx::query(&sql);
        for pk in run_pks {
            q = q.bind(*pk);
        }
        let rows = q.fetch_all(self.pool()).await.ctx("list task cells")?;
        rows.iter()
            .map(|r| {
                Ok(TaskCell {
                    run_pk: get_i64(r, "run_pk")?,
                    task_id: get_str(r, "task_id")?,
                    state: get_opt_enum(r, "state")?,
                    try_number: get_i64(r, "try_number")? as u32,
                    started_at: get_opt_ts(r, "started_at")?,
                    ended_at: get_opt_ts(r, "ended_at")?,
                    duration_ms: get_opt_i64(r, "duration_ms")?,
                })
            })
            .collect()
    }

    /// The tries of a run (of one task when `task_id` is given), in start order, without logs.
    pub async fn attempt_spans(&self, run_pk: i64, task_id: Option<&str>) -> Result<Vec<AttemptSpan>> {
        let sql = format!(
            "SELECT {SPAN_COLS} FROM task_attempts WHERE run_pk = $1 AND ($2 IS NULL OR task_id = $2) \
             ORDER BY started_at, id"
        );
        let rows =
            sqlx::query(&sql).bind(run_pk).bind(task_id).fetch_all(self.pool()).await.ctx("list attempt spans")?;
        rows.iter().map(span_from).collect()
    }

    /// The log and output of one try.
    pub async fn attempt_log(
        &self,
        run_pk: i64,
        task_id: &str,
        try_number: u32,
    ) -> Result<Option<(String, Option<String>)>> {
        let row =
            sqlx::query("SELECT log, output FROM task_attempts WHERE run_pk = $1 AND task_id = $2 AND try_number = $3")
                .bind(run_pk)
                .bind(task_id)
                .bind(i64::from(try_number))
                .fetch_optional(self.pool())
                .await
                .ctx("read attempt log")?;
        row.map(|r| Ok((get_str(&r, "log")?, get_opt_str(&r, "output")?))).transpose()
    }

    /// A page of backfills, newest first, with ids below `before` when given.
    pub async fn backfills_page(&self, before: Option<i64>, limit: i64) -> Result<Vec<BackfillRow>> {
        let sql =
            format!("SELECT {BACKFILL_COLS} FROM backfills WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2");
        let rows = sqlx::query(&sql).bind(before).bind(limit).fetch_all(self.pool()).await.ctx("list backfills")?;
        rows.iter().map(backfill_from).collect()
    }

    /// `(backfill id, outcome, dates)` for these backfills.
    pub async fn backfill_outcomes(&self, ids: &[i64]) -> Result<Vec<(i64, String, i64)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT backfill_id, outcome, COUNT(*) AS n FROM backfill_dates WHERE backfill_id IN ({}) \
             GROUP BY backfill_id, outcome",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(self.pool()).await.ctx("count backfill outcomes")?;
        rows.iter().map(|r| Ok((get_i64(r, "backfill_id")?, get_str(r, "outcome")?, get_i64(r, "n")?))).collect()
    }

    /// A page of the ingestion registry, newest first, filtered by status and course, ids below
    /// `before` when given.
    pub async fn ingestions_page(
        &self,
        status: Option<IngestStatus>,
        course_id: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<IngestionRow>> {
        let sql = format!(
            "SELECT {INGEST_COLS} FROM ingestion_registry WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR course_id = $2) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(status.map(|s| s.as_str()))
            .bind(course_id)
            .bind(before)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .ctx("list ingestions")?;
        rows.iter().map(ingestion_from).collect()
    }

    /// The courses that appear in the ingestion registry (for its filter).
    pub async fn ingestion_courses(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT course_id FROM ingestion_registry WHERE course_id IS NOT NULL ORDER BY course_id",
        )
        .fetch_all(self.pool())
        .await
        .ctx("list ingestion courses")?;
        rows.iter().map(|r| get_str(r, "course_id")).collect()
    }
}
