//! Backfills and their per-date outcomes.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRow {
    pub id: i64,
    pub dag_id: String,
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    pub reprocess: String,
    pub max_active_runs: u32,
    pub run_backwards: bool,
    /// queued (waiting for a daemon), running, paused, completed, failed or cancelled.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub conf: serde_json::Value,
    /// The daemon driving it, if a daemon does.
    pub owner: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewBackfill<'a> {
    pub dag_id: &'a str,
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    pub reprocess: &'a str,
    pub max_active_runs: u32,
    pub run_backwards: bool,
    pub conf: &'a serde_json::Value,
    /// `None`: `queued`, for the daemons. `Some((owner, lease))`: `running`, driven by `owner`
    /// (this process) under a lease it renews; if it stops, a daemon takes the backfill over.
    pub holder: Option<(&'a str, std::time::Duration)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillDateRow {
    pub backfill_id: i64,
    pub logical_date: DateTime<Utc>,
    pub ds: NaiveDate,
    pub run_pk: Option<i64>,
    /// pending, running, succeeded, failed or skipped.
    pub outcome: String,
    pub reason: Option<String>,
}

pub(super) fn backfill_from(row: &AnyRow) -> Result<BackfillRow> {
    Ok(BackfillRow {
        id: get_i64(row, "id")?,
        dag_id: get_str(row, "dag_id")?,
        from_date: get_date(row, "from_date")?,
        to_date: get_date(row, "to_date")?,
        reprocess: get_str(row, "reprocess")?,
        max_active_runs: get_i64(row, "max_active_runs")? as u32,
        run_backwards: get_i64(row, "run_backwards")? != 0,
        state: get_str(row, "state")?,
        created_at: get_ts(row, "created_at")?,
        completed_at: get_opt_ts(row, "completed_at")?,
        conf: {
            let conf = get_str(row, "conf")?;
            serde_json::from_str(&conf).map_err(|_| StoreError::Corrupt { column: "conf", value: conf })?
        },
        owner: get_opt_str(row, "owner")?,
    })
}

pub(super) const BACKFILL_COLS: &str = "id, dag_id, from_date, to_date, reprocess, max_active_runs, run_backwards, \
                                       state, created_at, completed_at, conf, owner";

impl Store {
    pub async fn create_backfill(&self, new: &NewBackfill<'_>) -> Result<BackfillRow> {
        let sql = format!(
            "INSERT INTO backfills (dag_id, from_date, to_date, reprocess, max_active_runs, run_backwards, state, \
             created_at, conf, owner, lease_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING {BACKFILL_COLS}"
        );
        let now = timefmt::now();
        let (state, owner, lease_expires_at) = match new.holder {
            None => ("queued", None, None),
            Some((owner, lease)) => (
                "running",
                Some(owner),
                Some(timefmt::to_db(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))),
            ),
        };
        let row = sqlx::query(&sql)
            .bind(new.dag_id)
            .bind(new.from_date.to_string())
            .bind(new.to_date.to_string())
            .bind(new.reprocess)
            .bind(i64::from(new.max_active_runs))
            .bind(i64::from(new.run_backwards))
            .bind(state)
            .bind(timefmt::to_db(now))
            .bind(new.conf.to_string())
            .bind(owner)
            .bind(lease_expires_at)
            .fetch_one(self.pool())
            .await
            .ctx("create backfill")?;
        backfill_from(&row)
    }

    pub async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        let sql = format!("SELECT {BACKFILL_COLS} FROM backfills WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await.ctx("get backfill")?;
        row.as_ref().map(backfill_from).transpose()
    }

    pub async fn list_backfills(&self, dag_id: Option<&str>, limit: i64) -> Result<Vec<BackfillRow>> {
        let sql = format!(
            "SELECT {BACKFILL_COLS} FROM backfills WHERE ($1 IS NULL OR dag_id = $1) ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(dag_id).bind(limit).fetch_all(self.pool()).await.ctx("list backfills")?;
        rows.iter().map(backfill_from).collect()
    }

    pub async fn finish_backfill(&self, id: i64, state: &str) -> Result<()> {
        sqlx::query(
            "UPDATE backfills SET state = $1, completed_at = $2, owner = NULL, lease_expires_at = NULL WHERE id = $3",
        )
        .bind(state)
        .bind(timefmt::to_db(timefmt::now()))
        .bind(id)
        .execute(self.pool())
        .await
        .ctx("finish backfill")?;
        Ok(())
    }

    /// Moves a backfill from one of `from` to `to` (pause, resume, cancel). Returns false if it
    /// was in none of them.
    pub async fn transition_backfill(&self, id: i64, from: &[&str], to: &str) -> Result<bool> {
        let mut n = 0;
        for state in from {
            n += sqlx::query("UPDATE backfills SET state = $1 WHERE id = $2 AND state = $3")
                .bind(to)
                .bind(id)
                .bind(*state)
                .execute(self.pool())
                .await
                .ctx("change backfill state")?
                .rows_affected();
            if n > 0 {
                break;
            }
        }
        Ok(n > 0)
    }

    /// Inserts or updates the outcome of one date of a backfill.
    pub async fn set_backfill_date(&self, row: &BackfillDateRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO backfill_dates (backfill_id, logical_date, ds, run_pk, outcome, reason) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (backfill_id, logical_date) \
             DO UPDATE SET run_pk = $4, outcome = $5, reason = $6",
        )
        .bind(row.backfill_id)
        .bind(timefmt::to_db(row.logical_date))
        .bind(row.ds.to_string())
        .bind(row.run_pk)
        .bind(&row.outcome)
        .bind(row.reason.as_deref().map(clean_text))
        .execute(self.pool())
        .await
        .ctx("record backfill date")?;
        Ok(())
    }

    pub async fn list_backfill_dates(&self, backfill_id: i64) -> Result<Vec<BackfillDateRow>> {
        let rows = sqlx::query(
            "SELECT backfill_id, logical_date, ds, run_pk, outcome, reason FROM backfill_dates \
             WHERE backfill_id = $1 ORDER BY logical_date",
        )
        .bind(backfill_id)
        .fetch_all(self.pool())
        .await
        .ctx("list backfill dates")?;
        rows.iter()
            .map(|r| {
                Ok(BackfillDateRow {
                    backfill_id: get_i64(r, "backfill_id")?,
                    logical_date: get_ts(r, "logical_date")?,
                    ds: get_date(r, "ds")?,
                    run_pk: get_opt_i64(r, "run_pk")?,
                    outcome: get_str(r, "outcome")?,
                    reason: get_opt_str(r, "reason")?,
                })
            })
            .collect()
    }
}
