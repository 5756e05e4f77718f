//! Gold on the real lakehouse: the [`Publisher`] that stages a model's result as uncommitted
//! Parquet data files of `gold.<table>` and commits them as one full-refresh Iceberg snapshot
//! (`StagedFiles::replace_all`) carrying the attempt's run key, and the input fingerprint that
//! makes a resumed attempt's commit recognisable without hiding a deliberate re-run over new
//! inputs.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::TableProvider;
use iceberg::TableIdent;
use sha2::{Digest, Sha256};

use super::GoldError;
use super::models::ModelSpec;
use super::wap::{Published, Publisher, Stage};
use crate::lake::commit::StagedFiles;
use crate::lake::scan::LakeTable;
use crate::lake::{Lake, LakeError, PartitionValues, RunKey, TableWriter, parse_ident};

/// Suffix of the table a full rebuild is staged in when the old table no longer fits the model.
const REBUILD_SUFFIX: &str = "__tm_rebuild";

/// Stages model results as uncommitted data files of `gold.<table>` and commits them as the
/// table's new content.
#[derive(Debug, Clone)]
pub struct LakePublisher {
    pub lake: Lake,
    pub run_key: RunKey,
    /// Commit even if the table's current snapshot already carries this run key and inputs (a
    /// deliberate rebuild, `tmctl run gold --full-refresh`).
    pub force: bool,
    /// This is a full rebuild: an existing table that no longer fits the model (other partition
    /// columns, missing columns) is rebuilt beside it and swapped in at the commit, as dbt's
    /// `--full-refresh` does.
    pub rebuild: bool,
}

#[async_trait]
impl Publisher for LakePublisher {
    async fn stage(&self, model: &ModelSpec, schema: SchemaRef) -> Result<Box<dyn Stage>, GoldError> {
        let table = model.qualified_table();
        let fail = |e| publish_error(&model.table, &table, e);
        let ident = parse_ident(&table).map_err(fail)?;
        let partition_by: Vec<&str> = model.partition_by.iter().map(String::as_str).collect();
        let existed = self.lake.table_exists(&ident).await.map_err(fail)?;
        let (loaded, stage_ident, replaces) = match self.lake.ensure_table(&ident, &schema, &partition_by).await {
            Ok(loaded) => (loaded, ident.clone(), None),
            Err(LakeError::Invalid { message, .. }) if existed && self.rebuild => {
                // Built and tested beside the old table, which stays current until the commit
                // swaps them (as dbt builds `<table>__dbt_tmp`).
                tracing::warn!(table = %table, reason = %message, "the table no longer fits the model: building a new one beside it");
                let side = TableIdent::new(ident.namespace().clone(), format!("{}{REBUILD_SUFFIX}", ident.name()));
                if self.lake.table_exists(&side).await.map_err(fail)? {
                    self.lake.drop_table(&side).await.map_err(fail)?;
                }
                let loaded = self.lake.ensure_table(&side, &schema, &partition_by).await.map_err(fail)?;
                (loaded, side, Some(ident.clone()))
            }
            Err(LakeError::Invalid { message, .. }) if existed => {
                return Err(GoldError::Unfit { model: model.table.clone(), table, message });
            }
            Err(e) => return Err(fail(e)),
        };
        let mut writer = self.lake.writer_on(loaded, self.run_key.clone()).map_err(fail)?;
        if self.force {
            writer = writer.force();
        }
        Ok(Box::new(LakeStage {
            lake: self.lake.clone(),
            created: !existed || replaces.is_some(),
            ident: stage_ident,
            replaces,
            model: model.table.clone(),
            table,
            writer: Some(writer),
            staged: None,
        }))
    }
}

/// A model result being written to (or written to and not yet committed in) `gold.<table>`.
struct LakeStage {
    lake: Lake,
    ident: TableIdent,
    model: String,
    table: String,
    /// This stage created the table (so discarding it drops the empty table again).
    created: bool,
    /// A full rebuild of a table that no longer fit the model is staged in a new table beside it
    /// (`ident` = `<table>__tm_rebuild`); the commit drops this old table and renames the new one.
    replaces: Option<TableIdent>,
    writer: Option<TableWriter>,
    staged: Option<StagedFiles>,
}

/// A lake error while staging or committing `table` for `model`.
fn publish_error(model: &str, table: &str, e: LakeError) -> GoldError {
    GoldError::Publish {
        model: model.to_string(),
        table: table.to_string(),
        transient: e.is_transient(),
        message: e.to_string(),
    }
}

impl LakeStage {
    fn fail(&self, e: LakeError) -> GoldError {
        publish_error(&self.model, &self.table, e)
    }

    fn used_up(&self) -> GoldError {
        self.fail(LakeError::Invalid { table: self.table.clone(), message: "stage used after it was finished".into() })
    }
}

#[async_trait]
impl Stage for LakeStage {
    fn already_committed(&self) -> Option<i64> {
        self.writer.as_ref().and_then(TableWriter::already_committed)
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<(), GoldError> {
        let Some(writer) = self.writer.as_mut() else { return Err(self.used_up()) };
        match writer.write(batch).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn roll(&mut self) -> Result<(), GoldError> {
        let Some(writer) = self.writer.as_mut() else { return Err(self.used_up()) };
        match writer.roll().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn finish(&mut self) -> Result<Arc<dyn TableProvider>, GoldError> {
        let Some(writer) = self.writer.take() else { return Err(self.used_up()) };
        let staged = writer.stage().await.map_err(|e| self.fail(e))?;
        let schema = staged.arrow_schema().map_err(|e| self.fail(e))?;
        let table = LakeTable::files(format!("{} (staged)", self.table), &schema, staged.files());
        self.staged = Some(staged);
        Ok(Arc::new(table))
    }

    async fn commit(mut self: Box<Self>, partitions: Option<Vec<PartitionValues>>) -> Result<Published, GoldError> {
        if self.staged.is_none() {
            self.finish().await?;
        }
        let Some(staged) = self.staged.take() else { return Err(self.used_up()) };
        let outcome = match partitions {
            None => staged.replace_all().await,
            Some(partitions) => staged.replace_partitions(partitions).await,
        }
        .map_err(|e| self.fail(e))?;
        if let Some(old) = self.replaces.take() {
            self.lake.drop_table(&old).await.map_err(|e| self.fail(e))?;
            self.lake.rename_table(&self.ident, &old).await.map_err(|e| self.fail(e))?;
            tracing::info!(table = %self.table, "replaced the table by its rebuild");
        }
        Ok(Published { snapshot_id: Some(outcome.snapshot_id), already_committed: outcome.already_committed })
    }

    async fn discard(mut self: Box<Self>) {
        if let Some(writer) = self.writer.take() {
            writer.abort().await;
        }
        if let Some(staged) = self.staged.take() {
            staged.discard().await;
        }
        if self.created {
            self.lake.drop_if_empty(&self.ident).await;
        }
    }
}

/// A digest of what a model's result depends on: its SQL and tests, and the current snapshot of
/// every table it reads. Same fingerprint under the same run key = same result, so a resumed
/// attempt may reuse the earlier commit; new silver data changes it and forces a fresh commit.
pub async fn input_fingerprint(lake: &Lake, model: &ModelSpec) -> String {
    let mut hash = Sha256::new();
    hash.update(model.sql.as_bytes());
    hash.update(format!("{:?}", model.tests).as_bytes());
    let lineage = model.lineage();
    for name in lineage.reads.iter().chain(&lineage.other_reads) {
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
    crate::util::hex(&hash.finalize()[..16])
}
