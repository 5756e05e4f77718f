//! Run summaries of lakehouse tasks (observability): one JSON document per task try.

use chrono::{DateTime, NaiveDate, Utc};

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub run_pk: i64,
    pub dag_id: String,
    pub task_id: String,
    pub try_number: u32,
    pub ds: NaiveDate,
    pub kind: String,
    pub summary: serde_json::Value,
    pub object_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Records (or, for the same try, replaces) the summary of a task try.
    pub async fn record_summary(&self, row: &SummaryRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO run_summaries (run_pk, dag_id, task_id, try_number, ds, kind, summary, object_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (run_pk, task_id, try_number) \
             DO UPDATE SET summary = $7, object_key = $8, created_at = $9",
        )
        .bind(row.run_pk)
        .bind(&row.dag_id)
        .bind(&row.task_id)
        .bind(i64::from(row.try_number))
        .bind(row.ds.to_string())
        .bind(&row.kind)
        .bind(clean_text(&row.summary.to_string()))
        .bind(row.object_key.as_deref())
        .bind(timefmt::to_db(row.created_at))
        .execute(self.pool())
        .await
        .ctx("record summary")?;
        Ok(())
    }

    /// Summaries, newest first, optionally of one DAG.
    pub async fn list_summaries(&self, dag_id: Option<&str>, limit: i64) -> Result<Vec<SummaryRow>> {
        let rows = sqlx::query(
            "SELECT run_pk, dag_id, task_id, try_number, ds, kind, summary, object_key, created_at FROM run_summaries \
             WHERE ($1 IS NULL OR dag_id = $1) ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(dag_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .ctx("list summaries")?;
        rows.iter()
            .map(|r| {
                let text = get_str(r, "summary")?;
                Ok(SummaryRow {
                    run_pk: get_i64(r, "run_pk")?,
                    dag_id: get_str(r, "dag_id")?,
                    task_id: get_str(r, "task_id")?,
                    try_number: get_i64(r, "try_number")? as u32,
                    ds: get_date(r, "ds")?,
                    kind: get_str(r, "kind")?,
                    summary: serde_json::from_str(&text)
                        .map_err(|_| StoreError::Corrupt { column: "summary", value: text })?,
                    object_key: get_opt_str(r, "object_key")?,
                    created_at: get_ts(r, "created_at")?,
                })
            })
            .collect()
    }
}
