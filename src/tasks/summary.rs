//! Run summaries of lakehouse tasks: one JSON document per try, written to the observability
//! bucket and recorded in the state DB (the UI and `tmctl demo` read them).

use crate::lake::buckets::{Bucket, Buckets};
use crate::store::SummaryRow;

use super::{TaskContext, TaskError, failed};

/// Writes a task's summary to the observability bucket and the state DB.
pub async fn record_summary(
    ctx: &TaskContext,
    buckets: &Buckets,
    key: &str,
    kind: &str,
    summary: &serde_json::Value,
) -> Result<(), TaskError> {
    let body = serde_json::to_vec_pretty(summary).map_err(failed("encoding the summary"))?;
    buckets.put_bytes(Bucket::Observability, key, body).await.map_err(failed("writing the summary"))?;
    ctx.store
        .record_summary(&SummaryRow {
            run_pk: ctx.run_pk,
            dag_id: ctx.dag_id.clone(),
            task_id: ctx.task_id.clone(),
            try_number: ctx.try_number,
            ds: ctx.ds,
            kind: kind.into(),
            summary: summary.clone(),
            object_key: Some(key.to_string()),
            created_at: chrono::Utc::now(),
        })
        .await
        .map_err(failed("recording the summary"))?;
    Ok(())
}
