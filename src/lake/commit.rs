//! Writing Iceberg tables: a streaming [`TableWriter`] (Arrow batches → partitioned Parquet data
//! files through iceberg's own writer stack) and the replace-partitions / full-refresh commit
//! iceberg-rust 0.10 lacks, built from its public pieces: data files of the replaced partitions
//! are recorded DELETED in rewritten manifests, the rest stay EXISTING, new files are ADDED, one
//! `overwrite` snapshot goes on `main`, and the catalog pointer moves with a compare-and-swap
//! (`Store::swap_iceberg_metadata_location` for the SQL catalog; the REST catalog's commit
//! endpoint with "same table UUID, `main` still at the parent" requirements, [`super::rest`]); a
//! lost race re-reads the table and tries again.
//!
//! # Run keys and resumed attempts
//!
//! Every commit carries a [`RunKey`] in its snapshot summary (`tm.run-key` = `dag/task/date[/scope]`,
//! plus `tm.dag`, `tm.task`, `tm.logical-date`, `tm.scope`, `tm.input-fingerprint`). When a
//! writer is opened and the table's *current* snapshot already carries the same run key (and, if
//! the key has one, the same input fingerprint), the writer is a no-op: `write` drops its batches
//! and the commit returns that snapshot with `already_committed: true`. That is how a resumed
//! attempt (crash after the commit, before the task was marked done) avoids redoing the work.
//! Replacing is idempotent anyway, so the short-circuit only saves work; it never changes the
//! result — unless the inputs changed under the same run key. Hence: give the key a `scope` when
//! one task commits several times to a table (one per course, say), give it a fingerprint of the
//! inputs (e.g. the landing files' sha256s) when a re-run of the same date may see new input, or
//! call [`TableWriter::force`] for a deliberate re-run. [`crate::lake::Lake::find_commit`] looks a
//! key up in the whole history.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, Scalar, new_null_array};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, DataFileFormat, Datum, FormatVersion, Literal, MAIN_BRANCH, ManifestContentType, ManifestFile,
    ManifestListWriter, ManifestWriterBuilder, Operation, PartitionKey, PartitionSpecRef, PrimitiveType,
    SchemaRef as IcebergSchemaRef, Snapshot, SnapshotSummaryCollector, Struct, Summary, TableMetadataBuilder,
};
use iceberg::spec::{SnapshotReference, SnapshotRetention};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::unpartitioned_writer::UnpartitionedWriter;
use iceberg::{MetadataLocation, TableIdent, TableRequirement, TableUpdate};
use serde::Serialize;

use super::iceberg::{Lake, LakeError, Result, display_ident, table_err};
use super::rest::CommitError;

/// Snapshot summary keys tmctl writes.
pub const PROP_RUN_KEY: &str = "tm.run-key";
pub const PROP_DAG: &str = "tm.dag";
pub const PROP_TASK: &str = "tm.task";
pub const PROP_LOGICAL_DATE: &str = "tm.logical-date";
pub const PROP_SCOPE: &str = "tm.scope";
pub const PROP_FINGERPRINT: &str = "tm.input-fingerprint";

/// Data files roll over at about this size.
const TARGET_FILE_SIZE: usize = 128 * 1024 * 1024;
/// A Parquet row group is flushed at this many bytes, which bounds a partition writer's memory.
const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// Commit attempts before a lost race becomes an error.
const MAX_COMMIT_ATTEMPTS: u32 = 12;
/// Changed partitions listed one by one in the snapshot summary (`partitions.<path>`).
const PARTITION_SUMMARY_LIMIT: u64 = 100;

/// Who commits: identifies one logical unit of work so a resumed attempt can see its commit
/// already happened (see the module docs for the exact rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunKey {
    pub dag: String,
    pub task: String,
    pub logical_date: NaiveDate,
    /// Narrows the key when one task commits several times to one table (e.g. `course_id=abc`).
    pub scope: Option<String>,
    /// A digest of the inputs; a commit of the same key with other inputs is not "already done".
    pub fingerprint: Option<String>,
}

impl RunKey {
    pub fn new(dag: impl Into<String>, task: impl Into<String>, logical_date: NaiveDate) -> RunKey {
        RunKey { dag: dag.into(), task: task.into(), logical_date, scope: None, fingerprint: None }
    }

    pub fn with_scope(mut self, scope: impl Into<String>) -> RunKey {
        self.scope = Some(scope.into());
        self
    }

    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> RunKey {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// `dag/task/YYYY-MM-DD[/scope]`, the value of `tm.run-key`.
    pub fn key(&self) -> String {
        let mut k = format!("{}/{}/{}", self.dag, self.task, self.logical_date.format("%Y-%m-%d"));
        if let Some(scope) = &self.scope {
            k.push('/');
            k.push_str(scope);
        }
        k
    }

    fn properties(&self) -> HashMap<String, String> {
        let mut p = HashMap::from([
            (PROP_RUN_KEY.to_string(), self.key()),
            (PROP_DAG.to_string(), self.dag.clone()),
            (PROP_TASK.to_string(), self.task.clone()),
            (PROP_LOGICAL_DATE.to_string(), self.logical_date.format("%Y-%m-%d").to_string()),
        ]);
        if let Some(s) = &self.scope {
            p.insert(PROP_SCOPE.to_string(), s.clone());
        }
        if let Some(f) = &self.fingerprint {
            p.insert(PROP_FINGERPRINT.to_string(), f.clone());
        }
        p
    }

    /// Whether a snapshot summary records this very unit of work.
    fn is_recorded_in(&self, summary: &HashMap<String, String>) -> bool {
        summary.get(PROP_RUN_KEY) == Some(&self.key())
            && (self.fingerprint.is_none() || summary.get(PROP_FINGERPRINT) == self.fingerprint.as_ref())
    }
}

impl std::fmt::Display for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// One value of an identity partition column.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionValue {
    Null,
    Bool(bool),
    Int(i64),
    String(String),
    Date(NaiveDate),
}

impl From<&str> for PartitionValue {
    fn from(v: &str) -> Self {
        PartitionValue::String(v.to_string())
    }
}
impl From<String> for PartitionValue {
    fn from(v: String) -> Self {
        PartitionValue::String(v)
    }
}
impl From<i64> for PartitionValue {
    fn from(v: i64) -> Self {
        PartitionValue::Int(v)
    }
}
impl From<i32> for PartitionValue {
    fn from(v: i32) -> Self {
        PartitionValue::Int(v.into())
    }
}
impl From<bool> for PartitionValue {
    fn from(v: bool) -> Self {
        PartitionValue::Bool(v)
    }
}
impl From<NaiveDate> for PartitionValue {
    fn from(v: NaiveDate) -> Self {
        PartitionValue::Date(v)
    }
}
impl<T: Into<PartitionValue>> From<Option<T>> for PartitionValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(PartitionValue::Null, Into::into)
    }
}

impl std::fmt::Display for PartitionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionValue::Null => f.write_str("null"),
            PartitionValue::Bool(b) => write!(f, "{b}"),
            PartitionValue::Int(i) => write!(f, "{i}"),
            PartitionValue::String(s) => f.write_str(s),
            PartitionValue::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

/// One partition of an identity-partitioned table: a value per partition column, e.g.
/// `PartitionValues::new().with("course_id", "abc").with("ingest_date", date)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionValues {
    values: Vec<(String, PartitionValue)>,
}

impl PartitionValues {
    pub fn new() -> PartitionValues {
        PartitionValues::default()
    }

    pub fn with(mut self, column: impl Into<String>, value: impl Into<PartitionValue>) -> PartitionValues {
        self.values.push((column.into(), value.into()));
        self
    }

    pub fn get(&self, column: &str) -> Option<&PartitionValue> {
        self.values.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
}

impl std::fmt::Display for PartitionValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.values.iter().map(|(c, v)| format!("{c}={v}")).collect();
        f.write_str(&parts.join("/"))
    }
}

/// What a commit did. `already_committed`: the table's current snapshot already carried the run
/// key, nothing was written, and the numbers describe that earlier commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitOutcome {
    pub table: String,
    pub run_key: String,
    pub snapshot_id: i64,
    pub previous_snapshot_id: Option<i64>,
    pub added_files: u64,
    pub deleted_files: u64,
    pub added_records: u64,
    pub deleted_records: u64,
    pub already_committed: bool,
    /// Compare-and-swap attempts it took (1 unless another writer committed meanwhile).
    pub attempts: u32,
}

type DataWriterBuilder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

enum PartWriter {
    Unpartitioned(Box<UnpartitionedWriter<DataWriterBuilder>>),
    Fanout(Box<FanoutWriter<DataWriterBuilder>>),
}

/// Which data files a commit removes.
enum Replace {
    /// Every file whose partition tuple is in the set.
    Partitions(HashSet<Struct>),
    /// Every file (full refresh).
    All,
}

impl Lake {
    /// Opens a streaming writer on table `ident` for unit of work `run_key`. If the table's
    /// current snapshot already carries `run_key`, the writer is a no-op (see the module docs and
    /// [`TableWriter::already_committed`]).
    pub async fn writer(&self, ident: &TableIdent, run_key: RunKey) -> Result<TableWriter> {
        let table = self.load_table(ident).await?;
        self.writer_on(table, run_key)
    }

    /// [`Lake::writer`] on a table already loaded (e.g. by [`Lake::ensure_table`]).
    pub fn writer_on(&self, table: Table, run_key: RunKey) -> Result<TableWriter> {
        let ident = table.identifier().clone();
        let already = table
            .metadata()
            .current_snapshot()
            .filter(|s| run_key.is_recorded_in(&s.summary().additional_properties))
            .map(|s| s.snapshot_id());
        TableWriter::new(self.clone(), ident, run_key, table, already)
    }
}

/// Writes Arrow batches into new data files of one table, then commits them in one snapshot with
/// [`TableWriter::replace_partitions`] or [`TableWriter::replace_all`]. Batches are written as they
/// come (one open Parquet file per partition touched, flushed every 64 MiB, rolled at 128 MiB);
/// nothing is kept after `write` returns. Dropping a writer without committing leaves its files
/// as unreferenced orphans; call [`TableWriter::abort`] to remove them.
pub struct TableWriter {
    lake: Lake,
    ident: TableIdent,
    name: String,
    run_key: RunKey,
    table: Table,
    already: Option<i64>,
    arrow_schema: SchemaRef,
    schema: IcebergSchemaRef,
    spec: PartitionSpecRef,
    splitter: Option<RecordBatchPartitionSplitter>,
    writer: Option<PartWriter>,
    commit_id: String,
    rows: u64,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("table", &self.name)
            .field("run_key", &self.run_key.key())
            .field("already", &self.already)
            .field("rows", &self.rows)
            .finish()
    }
}

impl TableWriter {
    fn new(lake: Lake, ident: TableIdent, run_key: RunKey, table: Table, already: Option<i64>) -> Result<TableWriter> {
        let name = display_ident(&ident);
        let md = table.metadata();
        if md.format_version() != FormatVersion::V2 {
            return Err(LakeError::Invalid {
                table: name,
                message: format!("has format version {}; tmctl commits to v2 tables only", md.format_version()),
            });
        }
        let schema = md.current_schema().clone();
        let spec = md.default_partition_spec().clone();
        let arrow_schema = Arc::new(schema_to_arrow_schema(&schema).map_err(table_err(&ident, "map its schema"))?);
        let commit_id = random_uuid();
        let splitter = if spec.is_unpartitioned() {
            None
        } else {
            Some(
                RecordBatchPartitionSplitter::try_new_with_computed_values(schema.clone(), spec.clone())
                    .map_err(table_err(&ident, "set up partitioning"))?,
            )
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .set_created_by(format!("tmctl {}", env!("CARGO_PKG_VERSION")))
            .build();
        let location = DefaultLocationGenerator::new(md).map_err(table_err(&ident, "locate its data"))?;
        let names = DefaultFileNameGenerator::new(commit_id.clone(), None, DataFileFormat::Parquet);
        let rolling = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(props, schema.clone()),
            TARGET_FILE_SIZE,
            table.file_io().clone(),
            location,
            names,
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let writer = if spec.is_unpartitioned() {
            PartWriter::Unpartitioned(Box::new(UnpartitionedWriter::new(builder)))
        } else {
            PartWriter::Fanout(Box::new(FanoutWriter::new(builder)))
        };
        Ok(TableWriter {
            lake,
            ident,
            name,
            run_key,
            table,
            already,
            arrow_schema,
            schema,
            spec,
            splitter,
            writer: Some(writer),
            commit_id,
            rows: 0,
        })
    }

    /// The snapshot that already holds this run key's commit (then `write` is a no-op).
    pub fn already_committed(&self) -> Option<i64> {
        self.already
    }

    /// Commit even if the current snapshot already carries this run key (a deliberate re-run).
    pub fn force(mut self) -> TableWriter {
        self.already = None;
        self
    }

    /// The table's schema as Arrow (with Iceberg field ids); batches are aligned to it by name.
    pub fn schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// Writes one batch. Columns are matched to the table's by name and cast where the types
    /// differ (a value that does not convert is an error, not a NULL); a nullable table column the
    /// batch lacks is filled with NULL; a column the table lacks is an error. Rows are split by
    /// the table's partition values.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if self.already.is_some() || batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = align_batch(&batch, &self.arrow_schema)
            .map_err(|message| LakeError::Invalid { table: self.name.clone(), message })?;
        let rows = batch.num_rows() as u64;
        let parts: Vec<(Option<PartitionKey>, RecordBatch)> = match &self.splitter {
            None => vec![(None, batch)],
            Some(splitter) => match single_partition_key(splitter, &self.spec, &batch) {
                Ok(Some(key)) => vec![(Some(key), batch)],
                Ok(None) => splitter
                    .split(&batch)
                    .map_err(table_err(&self.ident, "split rows by partition"))?
                    .into_iter()
                    .map(|(k, b)| (Some(k), b))
                    .collect(),
                Err(e) => return Err(table_err(&self.ident, "split rows by partition")(e)),
            },
        };
        let writer = self.writer.as_mut().ok_or_else(|| LakeError::Invalid {
            table: self.name.clone(),
            message: "writer used after it failed".into(),
        })?;
        let mut result = Ok(());
        for (key, part) in parts {
            result = match (&mut *writer, key) {
                (PartWriter::Unpartitioned(w), _) => w.write(part).await,
                (PartWriter::Fanout(w), Some(key)) => w.write(key, part).await,
                (PartWriter::Fanout(_), None) => unreachable_splitter(),
            };
            if result.is_err() {
                break;
            }
        }
        result.map_err(table_err(&self.ident, "write data files"))?;
        self.rows += rows;
        Ok(())
    }

    /// Commits the written files, replacing every existing file of `partitions` and of every
    /// partition the new rows fall in, in one `overwrite` snapshot. A listed partition without new
    /// rows ends up empty.
    pub async fn replace_partitions(self, partitions: Vec<PartitionValues>) -> Result<CommitOutcome> {
        self.stage().await?.replace_partitions(partitions).await
    }

    /// Commits the written files as the table's whole content (full refresh): every existing file
    /// is replaced, in one `overwrite` snapshot.
    pub async fn replace_all(self) -> Result<CommitOutcome> {
        self.commit(Replace::All).await
    }

    /// Closes the writer without committing and deletes the files it wrote.
    pub async fn abort(mut self) {
        if let Some(writer) = self.writer.take()
            && let Ok(files) = close_writer(writer).await
        {
            let paths: Vec<String> = files.iter().map(|f| f.file_path().to_string()).collect();
            delete_quietly(self.table.file_io(), paths).await;
        }
    }

    async fn commit(self, replace: Replace) -> Result<CommitOutcome> {
        self.stage().await?.commit(replace).await
    }

    /// Finishes the data files without committing them: a [`StagedFiles`] result that can be read
    /// ([`StagedFiles::files`]), then committed or discarded. Nothing of it is visible to readers of
    /// the table until it is committed.
    pub async fn stage(self) -> Result<StagedFiles> {
        // What the commit needs, apart from the (not `Sync`) Parquet writers.
        let TableWriter { lake, ident, name, run_key, table, already, schema, spec, writer, commit_id, .. } = self;
        let committer = Committer { lake, ident, name, run_key, table, schema, spec, commit_id };
        if already.is_some() {
            // Nothing was written (`write` is a no-op then): the commit reports the earlier one.
            return Ok(StagedFiles { committer, data_files: Vec::new(), already });
        }
        let writer = writer.ok_or_else(|| LakeError::Invalid {
            table: committer.name.clone(),
            message: "writer used after it failed".into(),
        })?;
        let data_files = close_writer(writer).await.map_err(table_err(&committer.ident, "finish data files"))?;
        Ok(StagedFiles { committer, data_files, already })
    }
}

/// Data files written for one table and not committed yet (see [`TableWriter::stage`]). Dropping
/// it without [`StagedFiles::discard`] leaves the files as orphans.
pub struct StagedFiles {
    committer: Committer,
    data_files: Vec<DataFile>,
    already: Option<i64>,
}

impl std::fmt::Debug for StagedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedFiles")
            .field("table", &self.committer.name)
            .field("files", &self.data_files.len())
            .finish()
    }
}

impl StagedFiles {
    /// The staged data files (path, size, rows), to read them before committing.
    pub fn files(&self) -> Vec<super::scan::DataFileRef> {
        self.data_files
            .iter()
            .map(|f| super::scan::DataFileRef {
                path: f.file_path().to_string(),
                size: f.file_size_in_bytes(),
                rows: f.record_count(),
            })
            .collect()
    }

    /// The table's current schema as Arrow (what the staged files hold).
    pub fn arrow_schema(&self) -> Result<SchemaRef> {
        schema_to_arrow_schema(&self.committer.schema)
            .map(Arc::new)
            .map_err(table_err(&self.committer.ident, "map its schema"))
    }

    /// Commits the staged files as the table's whole content (full refresh).
    pub async fn replace_all(self) -> Result<CommitOutcome> {
        self.commit(Replace::All).await
    }

    /// Commits the staged files, replacing every existing file of `partitions` and of every
    /// partition the staged rows fall in, in one `overwrite` snapshot.
    pub async fn replace_partitions(self, partitions: Vec<PartitionValues>) -> Result<CommitOutcome> {
        let c = &self.committer;
        let mut set = HashSet::new();
        for p in &partitions {
            set.insert(partition_struct(&c.name, &c.spec, &c.schema, p)?);
        }
        self.commit(Replace::Partitions(set)).await
    }

    /// Deletes the staged files.
    pub async fn discard(self) {
        let paths: Vec<String> = self.data_files.iter().map(|f| f.file_path().to_string()).collect();
        delete_quietly(self.committer.table.file_io(), paths).await;
    }

    async fn commit(self, replace: Replace) -> Result<CommitOutcome> {
        let StagedFiles { committer, data_files, already, .. } = self;
        if let Some(id) = already {
            return Ok(committer.earlier_outcome(id));
        }
        let mut replace = replace;
        if let Replace::Partitions(set) = &mut replace {
            for f in &data_files {
                set.insert(f.partition().clone());
            }
        }
        let result = committer.commit_files(&data_files, &replace).await;
        if result.is_err() {
            let paths: Vec<String> = data_files.iter().map(|f| f.file_path().to_string()).collect();
            delete_quietly(committer.table.file_io(), paths).await;
        }
        result
    }
}

/// The commit half of a [`TableWriter`].
struct Committer {
    lake: Lake,
    ident: TableIdent,
    name: String,
    run_key: RunKey,
    table: Table,
    schema: IcebergSchemaRef,
    spec: PartitionSpecRef,
    commit_id: String,
}

impl Committer {
    /// The commit loop: plan against the freshest metadata, write manifests, manifest list and
    /// metadata file, swap the pointer; on a lost race clean up this attempt's files and go again.
    async fn commit_files(&self, data_files: &[DataFile], replace: &Replace) -> Result<CommitOutcome> {
        let file_io = self.table.file_io().clone();
        let mut snapshot_id = unique_snapshot_id(&self.table);
        let mut added_manifest: Option<ManifestFile> = None;
        let mut table = self.table.clone();
        let mut manifest_counter = 0u32;
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt)).await;
                table = self.lake.load_table(&self.ident).await?;
            }
            let md = table.metadata();
            if md.default_partition_spec().spec_id() != self.spec.spec_id() {
                return Err(LakeError::Invalid {
                    table: self.name.clone(),
                    message: "its partition spec changed while the writer was open".into(),
                });
            }
            if md.snapshot_by_id(snapshot_id).is_some() {
                snapshot_id = unique_snapshot_id(&table);
                if let Some(m) = added_manifest.take() {
                    delete_quietly(&file_io, vec![m.manifest_path]).await;
                }
            }
            // The manifest of the new files does not depend on the table's state: write it once.
            if added_manifest.is_none() && !data_files.is_empty() {
                let path = self.manifest_path(&table, &mut manifest_counter);
                let mut w = self.manifest_writer(&table, &path, snapshot_id, &self.spec)?;
                for f in data_files {
                    w.add_file(f.clone(), -1).map_err(table_err(&self.ident, "write the manifest of new files"))?;
                }
                added_manifest = Some(
                    w.write_manifest_file().await.map_err(table_err(&self.ident, "write the manifest of new files"))?,
                );
            }
            let mut staged = self
                .stage(&table, snapshot_id, data_files, added_manifest.clone(), replace, attempt, &mut manifest_counter)
                .await?;
            match self.publish(&table, &mut staged).await? {
                Published::Landed => {
                    tracing::info!(
                        table = %self.name, run_key = %self.run_key, snapshot_id, attempt,
                        added_files = staged.outcome.added_files, deleted_files = staged.outcome.deleted_files,
                        "committed Iceberg overwrite"
                    );
                    return Ok(CommitOutcome { attempts: attempt, ..staged.outcome });
                }
                Published::Lost => {
                    tracing::debug!(table = %self.name, attempt, "Iceberg commit lost the race; retrying");
                    delete_quietly(&file_io, staged.files).await;
                }
                Published::Unknown(message) => {
                    // Unknown outcome: did the commit land before the error?
                    let fresh = self.lake.load_table(&self.ident).await?;
                    if fresh.metadata().snapshot_by_id(snapshot_id).is_some() {
                        return Ok(CommitOutcome { attempts: attempt, ..staged.outcome });
                    }
                    tracing::warn!(table = %self.name, attempt, error = %message, "Iceberg commit failed; retrying");
                    if attempt == MAX_COMMIT_ATTEMPTS {
                        return Err(LakeError::CommitFailed { table: self.name.clone(), message });
                    }
                }
            }
        }
        if let Some(m) = added_manifest {
            delete_quietly(&file_io, vec![m.manifest_path]).await;
        }
        Err(LakeError::Conflict { table: self.name.clone(), attempts: MAX_COMMIT_ATTEMPTS })
    }

    /// Builds one commit attempt against `table`'s current state: manifests, manifest list and
    /// the snapshot (not yet on any branch).
    #[allow(clippy::too_many_arguments)]
    async fn stage(
        &self,
        table: &Table,
        snapshot_id: i64,
        data_files: &[DataFile],
        added_manifest: Option<ManifestFile>,
        replace: &Replace,
        attempt: u32,
        manifest_counter: &mut u32,
    ) -> Result<Staged> {
        let md = table.metadata();
        let file_io = table.file_io();
        let err = |action: &'static str| table_err(&self.ident, action);
        let parent = md.current_snapshot().cloned();
        let sequence_number = md.next_sequence_number();
        let mut files_written: Vec<String> = Vec::new();
        let mut manifests: Vec<ManifestFile> = Vec::new();
        let mut deleted: Vec<(DataFile, PartitionSpecRef)> = Vec::new();

        if let Some(parent) = &parent {
            let list = table.manifest_list_reader(parent).load().await.map_err(err("read the manifest list"))?;
            for m in list.entries() {
                if m.content == ManifestContentType::Deletes {
                    manifests.push(m.clone());
                    continue;
                }
                let has_live =
                    m.added_files_count.is_none_or(|n| n > 0) || m.existing_files_count.is_none_or(|n| n > 0);
                if !has_live {
                    continue; // only DELETED entries of an older commit: no longer needed
                }
                if let Replace::Partitions(set) = replace
                    && !manifest_may_contain(m, set, md.partition_spec_by_id(m.partition_spec_id), &self.schema)
                {
                    manifests.push(m.clone());
                    continue;
                }
                let manifest = m.load_manifest(file_io).await.map_err(err("read a manifest"))?;
                let doomed = |f: &DataFile| match replace {
                    Replace::All => true,
                    Replace::Partitions(set) => set.contains(f.partition()),
                };
                if !manifest.entries().iter().any(|e| e.is_alive() && doomed(&e.data_file)) {
                    manifests.push(m.clone());
                    continue;
                }
                let spec = md.partition_spec_by_id(m.partition_spec_id).ok_or_else(|| LakeError::Invalid {
                    table: self.name.clone(),
                    message: format!("a manifest uses unknown partition spec {}", m.partition_spec_id),
                })?;
                let path = self.manifest_path(table, manifest_counter);
                let mut w = self.manifest_writer(table, &path, snapshot_id, spec)?;
                files_written.push(path);
                for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                    let seq = e.sequence_number().ok_or_else(|| LakeError::Invalid {
                        table: self.name.clone(),
                        message: format!("manifest {} has an entry without sequence number", m.manifest_path),
                    })?;
                    let file_seq = e.file_sequence_number.or(Some(seq));
                    if doomed(&e.data_file) {
                        w.add_delete_file(e.data_file.clone(), seq, file_seq).map_err(err("rewrite a manifest"))?;
                        deleted.push((e.data_file.clone(), spec.clone()));
                    } else {
                        let added_by = e.snapshot_id().unwrap_or(m.added_snapshot_id);
                        w.add_existing_file(e.data_file.clone(), added_by, seq, file_seq)
                            .map_err(err("rewrite a manifest"))?;
                    }
                }
                manifests.push(w.write_manifest_file().await.map_err(err("rewrite a manifest"))?);
            }
        }
        if let Some(m) = added_manifest {
            manifests.push(m);
        }

        // Summary: our run key, then the computed counts (which win on collision).
        let mut collector = SnapshotSummaryCollector::default();
        collector.set_partition_summary_limit(PARTITION_SUMMARY_LIMIT);
        for f in data_files {
            collector.add_file(f, self.schema.clone(), self.spec.clone());
        }
        for (f, spec) in &deleted {
            collector.remove_file(f, self.schema.clone(), spec.clone());
        }
        let mut props = self.run_key.properties();
        props.extend(collector.build());
        let live_files: u64 = manifests
            .iter()
            .filter(|m| m.content == ManifestContentType::Data)
            .map(|m| u64::from(m.added_files_count.unwrap_or(0)) + u64::from(m.existing_files_count.unwrap_or(0)))
            .sum();
        let live_rows: u64 = manifests
            .iter()
            .filter(|m| m.content == ManifestContentType::Data)
            .map(|m| m.added_rows_count.unwrap_or(0) + m.existing_rows_count.unwrap_or(0))
            .sum();
        let added_records: u64 = data_files.iter().map(|f| f.record_count()).sum();
        let deleted_records: u64 = deleted.iter().map(|(f, _)| f.record_count()).sum();
        let added_size: u64 = data_files.iter().map(|f| f.file_size_in_bytes()).sum();
        let removed_size: u64 = deleted.iter().map(|(f, _)| f.file_size_in_bytes()).sum();
        props.insert("total-data-files".into(), live_files.to_string());
        props.insert("total-records".into(), live_rows.to_string());
        let prev_total = |key: &str| -> Option<u64> {
            match &parent {
                None => Some(0),
                Some(p) => p.summary().additional_properties.get(key).and_then(|v| v.parse().ok()),
            }
        };
        if let Some(size) = prev_total("total-files-size") {
            props.insert("total-files-size".into(), (size + added_size).saturating_sub(removed_size).to_string());
        }
        for key in ["total-delete-files", "total-position-deletes", "total-equality-deletes"] {
            props.insert(key.into(), prev_total(key).unwrap_or(0).to_string());
        }
        // Always present, even when zero, so readers need not guess.
        for (key, value) in [
            ("added-data-files", data_files.len() as u64),
            ("deleted-data-files", deleted.len() as u64),
            ("added-records", added_records),
            ("deleted-records", deleted_records),
        ] {
            props.insert(key.into(), value.to_string());
        }

        // Manifest list.
        let list_path = format!("{}/metadata/snap-{snapshot_id}-{attempt}-{}.avro", md.location(), self.commit_id);
        let out = file_io.new_output(&list_path).map_err(err("write the manifest list"))?;
        files_written.push(list_path.clone());
        let mut list = ManifestListWriter::v2(
            out.writer().await.map_err(err("write the manifest list"))?,
            snapshot_id,
            parent.as_ref().map(|p| p.snapshot_id()),
            sequence_number,
        );
        list.add_manifests(manifests.into_iter()).map_err(err("write the manifest list"))?;
        list.close().await.map_err(err("write the manifest list"))?;

        // Snapshot and metadata; history stays ordered even if clocks disagree a little.
        let last_ts = md.history().last().map(|l| l.timestamp_ms).unwrap_or(i64::MIN);
        let now = Utc::now().timestamp_millis().max(last_ts);
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
            .with_sequence_number(sequence_number)
            .with_timestamp_ms(now)
            .with_manifest_list(list_path)
            .with_summary(Summary { operation: Operation::Overwrite, additional_properties: props })
            .with_schema_id(md.current_schema_id())
            .build();
        let outcome = CommitOutcome {
            table: self.name.clone(),
            run_key: self.run_key.key(),
            snapshot_id,
            previous_snapshot_id: parent.as_ref().map(|p| p.snapshot_id()),
            added_files: data_files.len() as u64,
            deleted_files: deleted.len() as u64,
            added_records,
            deleted_records,
            already_committed: false,
            attempts: attempt,
        };
        Ok(Staged { snapshot, files: files_written, outcome })
    }

    /// Puts the staged snapshot on `main`. SQL catalog: writes the next metadata file and moves
    /// the pointer with a compare-and-swap in the state DB. REST catalog: sends the snapshot to
    /// the commit endpoint, which checks the requirements (same table, `main` still at the
    /// parent) and writes the metadata file itself.
    async fn publish(&self, table: &Table, staged: &mut Staged) -> Result<Published> {
        let md = table.metadata();
        let err = |action: &'static str| table_err(&self.ident, action);
        let Some(rest) = self.lake.rest_commits() else {
            let old_location = table.metadata_location_result().map_err(err("read its metadata location"))?;
            let new_metadata = TableMetadataBuilder::new_from_metadata(md.clone(), Some(old_location.to_string()))
                .set_branch_snapshot(staged.snapshot.clone(), MAIN_BRANCH)
                .and_then(|b| b.build())
                .map_err(err("build new metadata"))?
                .metadata;
            let location = MetadataLocation::from_str(old_location)
                .map_err(err("parse its metadata location"))?
                .with_next_version()
                .with_new_metadata(&new_metadata);
            new_metadata.write_to(table.file_io(), &location).await.map_err(err("write new metadata"))?;
            let new_location = location.to_string();
            staged.files.push(new_location.clone());
            let ns = self.ident.namespace().join(".");
            let swapped = self
                .lake
                .store()
                .swap_iceberg_metadata_location(
                    self.lake.catalog_name(),
                    &ns,
                    self.ident.name(),
                    old_location,
                    &new_location,
                )
                .await;
            return Ok(match swapped {
                Ok(true) => Published::Landed,
                Ok(false) => Published::Lost,
                Err(e) => Published::Unknown(e.to_string()),
            });
        };
        let requirements = vec![
            TableRequirement::UuidMatch { uuid: md.uuid() },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN_BRANCH.to_string(),
                snapshot_id: staged.snapshot.parent_snapshot_id(),
            },
        ];
        let updates = vec![
            TableUpdate::AddSnapshot { snapshot: staged.snapshot.clone() },
            TableUpdate::SetSnapshotRef {
                ref_name: MAIN_BRANCH.to_string(),
                reference: SnapshotReference::new(
                    staged.snapshot.snapshot_id(),
                    SnapshotRetention::branch(None, None, None),
                ),
            },
        ];
        let warehouse = super::warehouse_url(self.lake.settings(), &self.ident.namespace().join("."));
        Ok(match rest.commit(&warehouse, &self.ident, requirements, updates).await {
            Ok(_) => Published::Landed,
            Err(CommitError::Conflict(_)) => Published::Lost,
            Err(CommitError::Unknown(message)) => Published::Unknown(message),
            Err(refused @ CommitError::Rejected { .. }) => {
                return Err(LakeError::CommitRefused { table: self.name.clone(), message: refused.to_string() });
            }
        })
    }

    fn manifest_path(&self, table: &Table, counter: &mut u32) -> String {
        let n = *counter;
        *counter += 1;
        format!("{}/metadata/{}-m{n}.avro", table.metadata().location(), self.commit_id)
    }

    fn manifest_writer(
        &self,
        table: &Table,
        path: &str,
        snapshot_id: i64,
        spec: &PartitionSpecRef,
    ) -> Result<iceberg::spec::ManifestWriter> {
        let out = table.file_io().new_output(path).map_err(table_err(&self.ident, "write a manifest"))?;
        Ok(ManifestWriterBuilder::new(out, Some(snapshot_id), self.schema.clone(), spec.as_ref().clone())
            .build_v2_data())
    }

    /// The outcome of the earlier commit that carries this run key.
    fn earlier_outcome(&self, id: i64) -> CommitOutcome {
        let snap = self.table.metadata().snapshot_by_id(id);
        let summary = snap.map(|s| &s.summary().additional_properties);
        let count = |k: &str| summary.and_then(|s| s.get(k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        CommitOutcome {
            table: self.name.clone(),
            run_key: self.run_key.key(),
            snapshot_id: id,
            previous_snapshot_id: snap.and_then(|s| s.parent_snapshot_id()),
            added_files: count("added-data-files"),
            deleted_files: count("deleted-data-files"),
            added_records: count("added-records"),
            deleted_records: count("deleted-records"),
            already_committed: true,
            attempts: 0,
        }
    }
}

/// How putting a snapshot on `main` ended.
enum Published {
    Landed,
    /// Another writer moved `main` first: plan again.
    Lost,
    /// No clear answer (the database or the catalog failed mid-way).
    Unknown(String),
}

struct Staged {
    snapshot: Snapshot,
    /// Files this attempt wrote that nothing references if the commit fails.
    files: Vec<String>,
    outcome: CommitOutcome,
}

fn unreachable_splitter() -> iceberg::Result<()> {
    Err(iceberg::Error::new(iceberg::ErrorKind::Unexpected, "partitioned writer without a splitter"))
}

async fn close_writer(writer: PartWriter) -> iceberg::Result<Vec<DataFile>> {
    match writer {
        PartWriter::Unpartitioned(w) => w.close().await,
        PartWriter::Fanout(w) => w.close().await,
    }
}

async fn delete_quietly(file_io: &FileIO, paths: Vec<String>) {
    for p in paths {
        if let Err(e) = file_io.delete(&p).await {
            tracing::debug!(path = %p, error = %e, "could not remove an uncommitted file");
        }
    }
}

/// If every row of `batch` has the same partition values, their key (cheap: one comparison per
/// partition column instead of a literal per row).
fn single_partition_key(
    splitter: &RecordBatchPartitionSplitter,
    spec: &PartitionSpecRef,
    batch: &RecordBatch,
) -> iceberg::Result<Option<PartitionKey>> {
    for field in spec.fields() {
        if field.transform != iceberg::spec::Transform::Identity {
            return Ok(None);
        }
    }
    let schema = batch.schema();
    for field in spec.fields() {
        let Some((idx, _)) = schema.fields().iter().enumerate().find(|(_, f)| {
            f.metadata().get(datafusion::parquet::arrow::PARQUET_FIELD_ID_META_KEY).map(String::as_str)
                == Some(field.source_id.to_string().as_str())
        }) else {
            return Ok(None);
        };
        if !is_constant(batch.column(idx)) {
            return Ok(None);
        }
    }
    let mut parts = splitter.split(&batch.slice(0, 1))?;
    Ok(parts.pop().map(|(key, _)| key))
}

fn is_constant(col: &ArrayRef) -> bool {
    if col.is_empty() || col.null_count() == col.len() {
        return true;
    }
    if col.null_count() > 0 {
        return false;
    }
    match eq(col, &Scalar::new(col.slice(0, 1))) {
        Ok(same) => same.true_count() == col.len(),
        Err(_) => false,
    }
}

/// `batch` with exactly `target`'s columns, by name, cast where types differ.
pub(crate) fn align_batch(batch: &RecordBatch, target: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let source = batch.schema();
    let extra: Vec<&str> =
        source.fields().iter().map(|f| f.name().as_str()).filter(|n| target.field_with_name(n).is_err()).collect();
    if !extra.is_empty() {
        return Err(format!("the table has no column(s) {}", extra.join(", ")));
    }
    let options = CastOptions { safe: false, ..Default::default() };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let col = match source.index_of(field.name()) {
            Ok(i) => {
                let col = batch.column(i);
                if col.data_type() == field.data_type() {
                    col.clone()
                } else {
                    cast_with_options(col, field.data_type(), &options).map_err(|e| {
                        format!(
                            "column `{}` ({}) cannot become {}: {e}",
                            field.name(),
                            col.data_type(),
                            field.data_type()
                        )
                    })?
                }
            }
            Err(_) if field.is_nullable() => new_null_array(field.data_type(), batch.num_rows()),
            Err(_) => return Err(format!("the batch lacks required column `{}`", field.name())),
        };
        columns.push(col);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(target.clone(), columns, &options).map_err(|e| e.to_string())
}

/// The partition tuple of `values` under `spec` (identity fields only), typed as the table has it.
fn partition_struct(
    table: &str,
    spec: &PartitionSpecRef,
    schema: &IcebergSchemaRef,
    values: &PartitionValues,
) -> Result<Struct> {
    let invalid = |message: String| LakeError::Invalid { table: table.to_string(), message };
    if spec.is_unpartitioned() {
        return Err(invalid("is not partitioned; use replace_all".into()));
    }
    let partition_type = spec.partition_type(schema).map_err(|e| invalid(e.to_string()))?;
    for (column, _) in &values.values {
        if !spec.fields().iter().any(|f| &f.name == column) {
            let names: Vec<&str> = spec.fields().iter().map(|f| f.name.as_str()).collect();
            return Err(invalid(format!("`{column}` is not a partition column (those are: {})", names.join(", "))));
        }
    }
    let mut literals = Vec::with_capacity(spec.fields().len());
    for (pf, field) in spec.fields().iter().zip(partition_type.fields()) {
        if pf.transform != iceberg::spec::Transform::Identity {
            return Err(invalid(format!("partition field `{}` is not an identity partition", pf.name)));
        }
        let value = values
            .get(&pf.name)
            .ok_or_else(|| invalid(format!("partition {values} lacks a value for `{}`", pf.name)))?;
        let ty =
            field.field_type.as_primitive_type().ok_or_else(|| invalid(format!("`{}` is not primitive", pf.name)))?;
        literals.push(
            to_datum(value, ty)
                .map_err(|m| invalid(format!("partition column `{}`: {m}", pf.name)))?
                .map(Literal::from),
        );
    }
    Ok(Struct::from_iter(literals))
}

fn to_datum(value: &PartitionValue, ty: &PrimitiveType) -> std::result::Result<Option<Datum>, String> {
    let bad = || format!("value {value:?} does not fit type {ty}");
    Ok(Some(match (value, ty) {
        (PartitionValue::Null, _) => return Ok(None),
        (PartitionValue::String(s), PrimitiveType::String) => Datum::string(s),
        (PartitionValue::String(s), PrimitiveType::Long) => Datum::long(s.parse::<i64>().map_err(|_| bad())?),
        (PartitionValue::String(s), PrimitiveType::Int) => Datum::int(s.parse::<i32>().map_err(|_| bad())?),
        (PartitionValue::String(s), PrimitiveType::Date) => {
            Datum::date(days_since_epoch(NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?))
        }
        (PartitionValue::Int(i), PrimitiveType::Long) => Datum::long(*i),
        (PartitionValue::Int(i), PrimitiveType::Int) => Datum::int(i32::try_from(*i).map_err(|_| bad())?),
        (PartitionValue::Int(i), PrimitiveType::String) => Datum::string(i),
        (PartitionValue::Bool(b), PrimitiveType::Boolean) => Datum::bool(*b),
        (PartitionValue::Date(d), PrimitiveType::Date) => Datum::date(days_since_epoch(*d)),
        (PartitionValue::Date(d), PrimitiveType::String) => Datum::string(d.format("%Y-%m-%d")),
        _ => return Err(bad()),
    }))
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// Whether manifest `m` may hold a file of one of the partitions in `set`, judged by the
/// partition bounds in the manifest list (true when unsure).
fn manifest_may_contain(
    m: &ManifestFile,
    set: &HashSet<Struct>,
    spec: Option<&PartitionSpecRef>,
    schema: &IcebergSchemaRef,
) -> bool {
    if set.is_empty() {
        return false;
    }
    let (Some(summaries), Some(spec)) = (&m.partitions, spec) else { return true };
    let Ok(partition_type) = spec.partition_type(schema) else { return true };
    if summaries.len() != partition_type.fields().len() {
        return true;
    }
    set.iter().any(|p| {
        p.fields().len() != summaries.len()
            || p.fields().iter().zip(summaries).zip(partition_type.fields()).all(|((value, summary), field)| {
                let Some(ty) = field.field_type.as_primitive_type() else { return true };
                match value {
                    None => summary.contains_null,
                    Some(lit) => {
                        let Some(prim) = lit.as_primitive_literal() else { return true };
                        let Ok(v) = Datum::new_checked(ty, prim) else { return true };
                        let lower =
                            summary.lower_bound.as_ref().and_then(|b| Datum::try_from_bytes(b, ty.clone()).ok());
                        let upper =
                            summary.upper_bound.as_ref().and_then(|b| Datum::try_from_bytes(b, ty.clone()).ok());
                        match (lower, upper) {
                            (Some(lo), Some(hi)) => lo <= v && v <= hi,
                            _ => {
                                summary.lower_bound.is_none() && summary.upper_bound.is_none() && !summary.contains_null
                            }
                        }
                    }
                }
            })
    })
}

/// `Datum::new` is crate-private in iceberg 0.10; build the same from the primitive literal.
trait DatumExt: Sized {
    fn new_checked(ty: &PrimitiveType, lit: iceberg::spec::PrimitiveLiteral) -> std::result::Result<Self, ()>;
}

impl DatumExt for Datum {
    fn new_checked(ty: &PrimitiveType, lit: iceberg::spec::PrimitiveLiteral) -> std::result::Result<Datum, ()> {
        use iceberg::spec::PrimitiveLiteral as P;
        Ok(match (ty, lit) {
            (PrimitiveType::Boolean, P::Boolean(b)) => Datum::bool(b),
            (PrimitiveType::Int, P::Int(i)) => Datum::int(i),
            (PrimitiveType::Date, P::Int(i)) => Datum::date(i),
            (PrimitiveType::Long, P::Long(i)) => Datum::long(i),
            (PrimitiveType::String, P::String(s)) => Datum::string(s),
            (PrimitiveType::Float, P::Float(f)) => Datum::float(f.0),
            (PrimitiveType::Double, P::Double(f)) => Datum::double(f.0),
            (PrimitiveType::Timestamp, P::Long(i)) => Datum::timestamp_micros(i),
            (PrimitiveType::Timestamptz, P::Long(i)) => Datum::timestamptz_micros(i),
            _ => return Err(()),
        })
    }
}

fn unique_snapshot_id(table: &Table) -> i64 {
    loop {
        let id = (random_u64() >> 1) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let base = 25u64 << attempt.min(6); // 50 ms, 100 ms, … 1.6 s
    Duration::from_millis(base + random_u64() % base)
}

/// Random bits without a `rand` dependency: std's randomly keyed SipHash over a counter and the
/// clock.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}

/// A random UUID-shaped (version 4 layout) identifier for file names.
fn random_uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn run_keys_read_well() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 3).unwrap();
        let k = RunKey::new("silver", "transform", d);
        assert_eq!(k.key(), "silver/transform/2025-01-03");
        let k = k.with_scope("course_id=abc").with_fingerprint("f1");
        assert_eq!(k.key(), "silver/transform/2025-01-03/course_id=abc");
        let props = k.properties();
        assert!(k.is_recorded_in(&props));
        let other = RunKey { fingerprint: Some("f2".into()), ..k.clone() };
        assert!(!other.is_recorded_in(&props));
        let no_fp = RunKey { fingerprint: None, ..k };
        assert!(no_fp.is_recorded_in(&props));
    }

    // Compile-time checks: the futures tasks await are `Send` (tasks run on a multi-threaded
    // runtime behind `async_trait`). An iterator borrowing data passed into an async call is the
    // usual way to break this ("implementation of `Send` is not general enough").
    fn is_send<T: Send + 'static>(_: T) {}
    #[allow(dead_code)]
    fn send_a(lake: Lake, ident: TableIdent, rk: RunKey, b: RecordBatch) {
        is_send(async move {
            let mut w = lake.writer(&ident, rk).await?;
            w.write(b).await?;
            w.replace_all().await
        });
    }
    #[allow(dead_code)]
    fn send_b(lake: Lake) {
        is_send(async move { lake.session(&crate::lake::SessionOptions::current()).await.map(|_| ()) });
    }
    #[allow(dead_code)]
    fn send_c(lake: Lake, ident: TableIdent, schema: SchemaRef) {
        is_send(async move { lake.ensure_table(&ident, &schema, &["a"]).await.map(|_| ()) });
    }
    #[allow(dead_code)]
    fn send_d(lake: Lake, ident: TableIdent) {
        is_send(async move {
            lake.find_commit(&ident, "x").await?;
            lake.table_snapshots(&ident).await?;
            lake.list_tables("silver").await.map(|_| ())
        });
    }
    #[allow(dead_code)]
    fn send_e(lake: Lake, rk: RunKey, ident: TableIdent) {
        is_send(async move {
            let w = lake.writer(&ident, rk).await?;
            w.replace_partitions(vec![PartitionValues::new()]).await
        });
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_ne!(u, random_uuid());
    }

    #[test]
    fn batches_align_by_name_and_cast() {
        let target: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false), Field::new("b", DataType::Utf8, true)]));
        let src = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["1", "2"]))],
        )
        .unwrap();
        let out = align_batch(&src, &target).unwrap();
        assert_eq!(out.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values(), &[1, 2]);
        assert_eq!(out.column(1).null_count(), 2);
        let bad = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        assert!(align_batch(&bad, &target).unwrap_err().contains("column `a`"));
        let extra = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("z", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        assert!(align_batch(&extra, &target).unwrap_err().contains("no column(s) z"));
    }
}
