//! The streaming [`TableWriter`]: Arrow batches into partitioned Parquet data files through
//! iceberg's writer stack, staged until the commit; [`StagedFiles`] for staged files written
//! elsewhere.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::basic::{Compression, GzipLevel, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use iceberg::TableIdent;
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::spec::{
    DataFile, DataFileFormat, FormatVersion, PartitionKey, PartitionSpecRef, SchemaRef as IcebergSchemaRef, Struct,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::unpartitioned_writer::UnpartitionedWriter;

use super::committer::*;
use super::key::*;
use super::manifests::*;
use super::{ROW_GROUP_BYTES, TARGET_FILE_SIZE};
use crate::lake::iceberg::{Lake, LakeError, Result, display_ident, table_err};

pub(super) type DataWriterBuilder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type RollingBuilder =
    RollingFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

pub(super) enum PartWriter {
    Unpartitioned(Box<UnpartitionedWriter<DataWriterBuilder>>),
    Fanout(Box<FanoutWriter<DataWriterBuilder>>),
}

/// Which data files a commit removes.
pub(super) enum Replace {
    /// Every file whose partition tuple is in the set.
    Partitions(HashSet<Struct>),
    /// Every file (full refresh).
    All,
    /// Exactly these data files (by path), all of which must still be in the table: a rewrite of
    /// the same rows (compaction).
    Files(HashSet<String>),
}

impl Replace {
    /// The snapshot's operation: a rewrite of the same rows is a `replace`, the rest `overwrite`.
    pub(super) fn operation(&self) -> iceberg::spec::Operation {
        match self {
            Replace::Files(_) => iceberg::spec::Operation::Replace,
            _ => iceberg::spec::Operation::Overwrite,
        }
    }
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
        self.writer_sized(table, run_key, TARGET_FILE_SIZE as u64)
    }

    /// [`Lake::writer_on`] with data files rolled over at `target_file_size` bytes.
    pub fn writer_sized(&self, table: Table, run_key: RunKey, target_file_size: u64) -> Result<TableWriter> {
        let ident = table.identifier().clone();
        let already = table
            .metadata()
            .current_snapshot()
            .filter(|s| run_key.is_recorded_in(&s.summary().additional_properties))
            .map(|s| s.snapshot_id());
        let target = usize::try_from(target_file_size).unwrap_or(usize::MAX).max(1);
        TableWriter::new(self.clone(), ident, run_key, table, already, target)
    }
}

/// Writes Arrow batches into new data files of one table, then commits them in one snapshot with
/// [`TableWriter::replace_partitions`] or [`TableWriter::replace_all`]. Batches are written as they
/// come (one open Parquet file per partition touched, flushed every 64 MiB, rolled at 128 MiB);
/// nothing is kept after `write` returns. Dropping a writer without committing leaves its files
/// as unreferenced orphans; call [`TableWriter::abort`] to remove them.
pub struct TableWriter {
    pub(super) lake: Lake,
    pub(super) ident: TableIdent,
    pub(super) name: String,
    pub(super) run_key: RunKey,
    pub(super) table: Table,
    pub(super) already: Option<i64>,
    pub(super) arrow_schema: SchemaRef,
    pub(super) schema: IcebergSchemaRef,
    pub(super) spec: PartitionSpecRef,
    pub(super) splitter: Option<RecordBatchPartitionSplitter>,
    pub(super) writer: Option<PartWriter>,
    /// What makes the data file writers (again after each [`TableWriter::roll`]).
    rolling: RollingBuilder,
    /// Data files finished by [`TableWriter::roll`].
    closed: Vec<DataFile>,
    pub(super) commit_id: String,
    pub(super) rows: u64,
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

/// The Parquet codec of a table's `write.parquet.compression-codec` (Iceberg's values: `zstd`, the
/// default, at `write.parquet.compression-level`; `snappy`; `lz4`; `gzip`; `uncompressed`).
pub(crate) fn compression(
    properties: &std::collections::HashMap<String, String>,
) -> std::result::Result<Compression, String> {
    let level = properties.get("write.parquet.compression-level");
    let codec = properties.get("write.parquet.compression-codec").map_or("zstd", String::as_str);
    let bad_level = |l: &String| format!("write.parquet.compression-level `{l}` is not valid for `{codec}`");
    Ok(match codec.to_ascii_lowercase().as_str() {
        "zstd" => Compression::ZSTD(match level {
            None => ZstdLevel::default(),
            Some(l) => l.parse().ok().and_then(|l| ZstdLevel::try_new(l).ok()).ok_or_else(|| bad_level(l))?,
        }),
        "gzip" => Compression::GZIP(match level {
            None => GzipLevel::default(),
            Some(l) => l.parse().ok().and_then(|l| GzipLevel::try_new(l).ok()).ok_or_else(|| bad_level(l))?,
        }),
        "snappy" => Compression::SNAPPY,
        "lz4" => Compression::LZ4_RAW,
        "uncompressed" | "none" => Compression::UNCOMPRESSED,
        other => {
            return Err(format!(
                "write.parquet.compression-codec `{other}` is not one tmctl writes (zstd, snappy, lz4, gzip, uncompressed)"
            ));
        }
    })
}

impl TableWriter {
    pub(super) fn new(
        lake: Lake,
        ident: TableIdent,
        run_key: RunKey,
        table: Table,
        already: Option<i64>,
        target_file_size: usize,
    ) -> Result<TableWriter> {
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
        let compression =
            compression(md.properties()).map_err(|message| LakeError::Invalid { table: name.clone(), message })?;
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .set_created_by(format!("tmctl {}", env!("CARGO_PKG_VERSION")))
            .build();
        let location = DefaultLocationGenerator::new(md).map_err(table_err(&ident, "locate its data"))?;
        let names = DefaultFileNameGenerator::new(commit_id.clone(), None, DataFileFormat::Parquet);
        let rolling = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(props, schema.clone()),
            target_file_size,
            table.file_io().clone(),
            location,
            names,
        );
        let writer = part_writer(&rolling, spec.is_unpartitioned());
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
            rolling,
            closed: Vec::new(),
            commit_id,
            rows: 0,
        })
    }

    /// Finishes the data files open so far and goes on writing into new ones. For a caller that
    /// will write no more rows of the partitions written so far (a full refresh, batch by batch of
    /// partitions): otherwise each partition keeps an open file, its row group in memory, until
    /// the end.
    pub async fn roll(&mut self) -> Result<()> {
        if self.already.is_some() {
            return Ok(());
        }
        let writer = self.writer.take().ok_or_else(|| LakeError::Invalid {
            table: self.name.clone(),
            message: "writer used after it failed".into(),
        })?;
        let files = close_writer(writer).await.map_err(table_err(&self.ident, "finish data files"))?;
        self.closed.extend(files);
        self.writer = Some(part_writer(&self.rolling, self.spec.is_unpartitioned()));
        Ok(())
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
            Some(splitter) => split_identity(splitter, &self.spec, &batch)
                .transpose()
                .unwrap_or_else(|| splitter.split(&batch))
                .map_err(table_err(&self.ident, "split rows by partition"))?
                .into_iter()
                .map(|(k, b)| (Some(k), b))
                .collect(),
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
        let mut files = std::mem::take(&mut self.closed);
        if let Some(writer) = self.writer.take()
            && let Ok(open) = close_writer(writer).await
        {
            files.extend(open);
        }
        let paths: Vec<String> = files.iter().map(|f| f.file_path().to_string()).collect();
        if !paths.is_empty() {
            delete_quietly(self.table.file_io(), paths).await;
        }
    }

    pub(super) async fn commit(self, replace: Replace) -> Result<CommitOutcome> {
        self.stage().await?.commit(replace).await
    }

    /// Finishes the data files without committing them: a [`StagedFiles`] result that can be read
    /// ([`StagedFiles::files`]), then committed or discarded. Nothing of it is visible to readers of
    /// the table until it is committed.
    pub async fn stage(self) -> Result<StagedFiles> {
        // What the commit needs, apart from the (not `Sync`) Parquet writers.
        let TableWriter { lake, ident, name, run_key, table, already, schema, spec, writer, closed, commit_id, .. } =
            self;
        let committer = Committer {
            lake,
            ident,
            name,
            run_key,
            table,
            schema,
            spec,
            commit_id,
            manifests_named: AtomicU32::new(0),
        };
        if already.is_some() {
            // Nothing was written (`write` is a no-op then): the commit reports the earlier one.
            return Ok(StagedFiles { committer, data_files: Vec::new(), already });
        }
        let writer = writer.ok_or_else(|| LakeError::Invalid {
            table: committer.name.clone(),
            message: "writer used after it failed".into(),
        })?;
        let mut data_files = closed;
        data_files.extend(close_writer(writer).await.map_err(table_err(&committer.ident, "finish data files"))?);
        Ok(StagedFiles { committer, data_files, already })
    }
}

/// A data file writer for a table with or without partitions.
fn part_writer(rolling: &RollingBuilder, unpartitioned: bool) -> PartWriter {
    let builder = DataFileWriterBuilder::new(rolling.clone());
    if unpartitioned {
        PartWriter::Unpartitioned(Box::new(UnpartitionedWriter::new(builder)))
    } else {
        PartWriter::Fanout(Box::new(FanoutWriter::new(builder)))
    }
}

/// Data files written for one table and not committed yet (see [`TableWriter::stage`]). Dropping
/// it without [`StagedFiles::discard`] leaves the files as orphans.
pub struct StagedFiles {
    pub(super) committer: Committer,
    pub(super) data_files: Vec<DataFile>,
    pub(super) already: Option<i64>,
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
    pub fn files(&self) -> Vec<crate::lake::scan::DataFileRef> {
        self.data_files
            .iter()
            .map(|f| crate::lake::scan::DataFileRef {
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

    /// Commits the staged files in place of exactly the data files `files` (paths), which hold
    /// the same rows, in one `replace` snapshot; fails, changing nothing, if any of them is no
    /// longer in the table. Compaction's commit.
    pub async fn rewrite(self, files: Vec<String>) -> Result<CommitOutcome> {
        self.commit(Replace::Files(files.into_iter().collect())).await
    }

    /// Deletes the staged files.
    pub async fn discard(self) {
        let paths: Vec<String> = self.data_files.iter().map(|f| f.file_path().to_string()).collect();
        delete_quietly(self.committer.table.file_io(), paths).await;
    }

    pub(super) async fn commit(self, replace: Replace) -> Result<CommitOutcome> {
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
