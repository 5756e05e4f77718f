//! Gold on the real lakehouse: the [`Publisher`] that commits a model's staged result to
//! `gold.<table>` as one full-refresh Iceberg snapshot (`TableWriter::replace_all`) carrying the
//! attempt's run key, and the input fingerprint that makes a resumed attempt's commit
//! recognisable without hiding a deliberate re-run over new inputs.

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use sha2::{Digest, Sha256};

use super::GoldError;
use super::models::ModelSpec;
use super::wap::{Published, Publisher};
use crate::lake::{Lake, LakeError, RunKey, parse_ident};

/// Commits to the lake's `gold` namespace.
#[derive(Debug, Clone)]
pub struct LakePublisher {
    pub lake: Lake,
    pub run_key: RunKey,
}

#[async_trait]
impl Publisher for LakePublisher {
    async fn publish(
        &self,
        model: &ModelSpec,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<Published, GoldError> {
        let table = model.qualified_table();
        commit_full_refresh(&self.lake, &table, schema, batches, &model.partition_by, self.run_key.clone())
            .await
            .map_err(|e| GoldError::Publish {
                model: model.table.clone(),
                table: table.clone(),
                transient: e.is_transient(),
                message: e.to_string(),
            })
    }
}

/// Creates `table` if needed, writes `batches` and commits them as its whole content.
async fn commit_full_refresh(
    lake: &Lake,
    table: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    partition_by: &[String],
    run_key: RunKey,
) -> Result<Published, LakeError> {
    let ident = parse_ident(table)?;
    let partition_by: Vec<&str> = partition_by.iter().map(String::as_str).collect();
    lake.ensure_table(&ident, &schema, &partition_by).await?;
    let mut writer = lake.writer(&ident, run_key).await?;
    if let Some(snapshot_id) = writer.already_committed() {
        tracing::info!(table, snapshot_id, "already committed by an earlier try of this run");
        writer.abort().await;
        return Ok(Published { snapshot_id: Some(snapshot_id), already_committed: true });
    }
    for batch in batches {
        if let Err(e) = writer.write(batch).await {
            writer.abort().await;
            return Err(e);
        }
    }
    let outcome = writer.replace_all().await?;
    Ok(Published { snapshot_id: Some(outcome.snapshot_id), already_committed: outcome.already_committed })
}

/// A digest of what a model's result depends on: its SQL and tests, and the current snapshot of
/// every table it reads. Same fingerprint under the same run key = same result, so a resumed
/// attempt may reuse the earlier commit; new silver data changes it and forces a fresh commit.
pub async fn input_fingerprint(lake: &Lake, model: &ModelSpec) -> String {
    let mut hash = Sha256::new();
    hash.update(model.sql.as_bytes());
    hash.update(format!("{:?}", model.tests).as_bytes());
    let lineage = model.lineage();
    for name in lineage.reads.iter().chain(&lineage.test_reads) {
        let snapshot = match parse_ident(name) {
            Ok(ident) if lake.table_exists(&ident).await.unwrap_or(false) => lake
                .load_table(&ident)
                .await
                .ok()
                .and_then(|t| t.metadata().current_snapshot_id())
                .map_or_else(|| "empty".to_string(), |id| id.to_string()),
            _ => "absent".to_string(),
        };
        hash.update(format!("\n{name}={snapshot}").as_bytes());
    }
    hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}
