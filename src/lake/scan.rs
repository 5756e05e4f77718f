//! Reading Iceberg tables with DataFusion's own Parquet scan. iceberg-rust plans the files (the
//! snapshot's manifests, pruned by partition values and by column statistics with the query's
//! filters); DataFusion reads them (`DataSourceExec` over a `ParquetSource`): only the projected
//! columns, files spread over all cores, row groups and pages pruned by their statistics, filters
//! evaluated inside the reader, and the shared memory pool and object stores of the lake's
//! runtime. Row counts come from the manifests, so `count(*)` without a filter reads no data file.
//!
//! iceberg-datafusion's own provider reads every table as one stream through iceberg's Arrow
//! reader; on a 16 M-row silver table that made single gold models 28–150× slower than DuckDB on
//! the same files (see benches/README.md, "Gold refresh").

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, ScalarValue, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use futures::TryStreamExt;
use iceberg::TableIdent;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::DataFileFormat;
use iceberg::table::Table;
use iceberg_datafusion::physical_plan::convert_filters_to_predicate;

use super::Lake;

type DfResult<T> = datafusion::error::Result<T>;

/// One data file to read: where it is, its size and its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFileRef {
    pub path: String,
    pub size: u64,
    pub rows: u64,
}

/// Which files a [`LakeTable`] reads.
#[derive(Clone)]
enum Source {
    /// The table's current snapshot, looked up at every scan (a long-lived session sees commits).
    Current { lake: Lake, ident: TableIdent },
    /// One snapshot of a loaded table (`None`: the table has no snapshot yet, so it is empty).
    Snapshot { table: Box<Table>, snapshot_id: Option<i64> },
    /// An explicit list of files: a staged result that is not committed yet.
    Files(Arc<Vec<DataFileRef>>),
}

/// A DataFusion table over an Iceberg table (or staged Iceberg data files).
#[derive(Clone)]
pub struct LakeTable {
    name: String,
    schema: SchemaRef,
    source: Source,
}

impl std::fmt::Debug for LakeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeTable").field("name", &self.name).finish()
    }
}

impl LakeTable {
    /// The current state of `table` (looked up again at every scan, through `lake`).
    pub fn current(lake: Lake, table: &Table) -> iceberg::Result<LakeTable> {
        let ident = table.identifier().clone();
        Ok(LakeTable { name: ident.to_string(), schema: read_schema(table)?, source: Source::Current { lake, ident } })
    }

    /// `table` as of `snapshot_id` (its current snapshot if `None`).
    pub fn snapshot(table: Table, snapshot_id: Option<i64>) -> iceberg::Result<LakeTable> {
        let snapshot_id = snapshot_id.or_else(|| table.metadata().current_snapshot_id());
        Ok(LakeTable {
            name: table.identifier().to_string(),
            schema: read_schema(&table)?,
            source: Source::Snapshot { table: Box::new(table), snapshot_id },
        })
    }

    /// Exactly `files`, read with `schema` (a staged result).
    pub fn files(name: impl Into<String>, schema: &Schema, files: Vec<DataFileRef>) -> LakeTable {
        LakeTable { name: name.into(), schema: scan_schema(schema), source: Source::Files(Arc::new(files)) }
    }

    /// The files a scan with `filters` reads.
    async fn plan(&self, filters: &[Expr]) -> DfResult<Vec<DataFileRef>> {
        let loaded;
        let (table, snapshot_id) = match &self.source {
            Source::Files(files) => return Ok(files.as_ref().clone()),
            Source::Current { lake, ident } => {
                loaded = lake.load_table(ident).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
                (&loaded, loaded.metadata().current_snapshot_id())
            }
            Source::Snapshot { table, snapshot_id } => (table.as_ref(), *snapshot_id),
        };
        let Some(snapshot_id) = snapshot_id else { return Ok(Vec::new()) };
        snapshot_files(&self.name, table, snapshot_id, filters).await
    }

    /// What changed between snapshots `from` and `to` of the table: the data files `from` has and
    /// `to` has not (`removed`: the old rows of every partition replaced in between) and those
    /// `to` has and `from` has not (`added`), each as a table of exactly those files. A
    /// copy-on-write commit replaces whole files, so every row that changed is in one or the
    /// other (with the rows that were only rewritten beside it, in both). `None` when either
    /// snapshot is no longer in the table's metadata (expired), or this is not a catalog table.
    pub async fn diff(&self, from: i64, to: i64) -> DfResult<Option<SnapshotDiff>> {
        let Source::Current { lake, ident } = &self.source else { return Ok(None) };
        let table = lake.load_table(ident).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        let metadata = table.metadata();
        if metadata.snapshot_by_id(from).is_none() || metadata.snapshot_by_id(to).is_none() {
            return Ok(None);
        }
        let schema = schema_to_arrow_schema(metadata.current_schema())
            .map_err(|e| external(&self.name, "map the schema of", e))?;
        let before = snapshot_files(&self.name, &table, from, &[]).await?;
        let after = snapshot_files(&self.name, &table, to, &[]).await?;
        let paths = |files: &[DataFileRef]| files.iter().map(|f| f.path.clone()).collect::<HashSet<_>>();
        let (before_paths, after_paths) = (paths(&before), paths(&after));
        let removed: Vec<DataFileRef> = before.into_iter().filter(|f| !after_paths.contains(&f.path)).collect();
        let added: Vec<DataFileRef> = after.into_iter().filter(|f| !before_paths.contains(&f.path)).collect();
        Ok(Some(SnapshotDiff {
            removed: LakeTable::files(format!("{} (removed after snapshot {from})", self.name), &schema, removed),
            added: LakeTable::files(format!("{} (added up to snapshot {to})", self.name), &schema, added),
        }))
    }
}

/// The data files that differ between two snapshots of a table ([`LakeTable::diff`]).
#[derive(Debug)]
pub struct SnapshotDiff {
    pub removed: LakeTable,
    pub added: LakeTable,
}

impl SnapshotDiff {
    /// Files on either side.
    pub fn files(&self) -> usize {
        let count = |t: &LakeTable| match &t.source {
            Source::Files(files) => files.len(),
            _ => 0,
        };
        count(&self.removed) + count(&self.added)
    }
}

/// The data files of `snapshot_id` of `table` that a scan with `filters` reads (manifests pruned
/// by partition values and column statistics).
async fn snapshot_files(name: &str, table: &Table, snapshot_id: i64, filters: &[Expr]) -> DfResult<Vec<DataFileRef>> {
    let mut scan = table.scan().snapshot_id(snapshot_id).select_empty();
    let filters: Vec<Expr> = filters.iter().cloned().map(plain_strings).collect();
    if let Some(predicate) = convert_filters_to_predicate(&filters) {
        scan = scan.with_filter(predicate);
    }
    let scan = scan.build().map_err(|e| external(name, "plan a scan of", e))?;
    let tasks: Vec<_> = scan
        .plan_files()
        .await
        .map_err(|e| external(name, "plan a scan of", e))?
        .try_collect()
        .await
        .map_err(|e| external(name, "read the manifests of", e))?;
    let mut files = Vec::with_capacity(tasks.len());
    for t in tasks {
        if !t.deletes.is_empty() {
            return Err(DataFusionError::NotImplemented(format!(
                "{name} has delete files (written by another engine); tmctl reads copy-on-write tables only"
            )));
        }
        if t.data_file_format != DataFileFormat::Parquet {
            return Err(DataFusionError::NotImplemented(format!(
                "{name}: data file {} is {:?}; tmctl reads Parquet data files only",
                t.data_file_path, t.data_file_format
            )));
        }
        files.push(DataFileRef {
            path: t.data_file_path,
            size: t.file_size_in_bytes,
            rows: t.record_count.unwrap_or(0),
        });
    }
    Ok(files)
}

#[async_trait]
impl TableProvider for LakeTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let files = self.plan(filters).await?;
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        // Files by object store (one store per bucket; a table lives in one), with their rows.
        let mut by_store: BTreeMap<String, (Vec<(PartitionedFile, u64)>, u64)> = BTreeMap::new();
        for f in &files {
            let (store, path) = split_location(&f.path).ok_or_else(|| {
                DataFusionError::Plan(format!("{}: cannot read data file location {}", self.name, f.path))
            })?;
            let stats = Statistics::new_unknown(&self.schema)
                .with_num_rows(Precision::Exact(f.rows as usize))
                .with_total_byte_size(Precision::Inexact(f.size as usize));
            let file = PartitionedFile::new(path, f.size).with_statistics(Arc::new(stats));
            let (store_files, rows) = by_store.entry(store).or_default();
            store_files.push((file, f.size));
            *rows += f.rows;
        }
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let target = state.config_options().execution.target_partitions.max(1);
        let mut plans = Vec::new();
        for (store, (files, rows)) in by_store {
            let url = ObjectStoreUrl::parse(&store)?;
            let groups = balance(files, target);
            let statistics = Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(rows as usize));
            let source = format.file_source(self.schema.clone().into());
            let config = FileScanConfigBuilder::new(url, source)
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_statistics(statistics)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            plans.push(format.create_physical_plan(state, config).await?);
        }
        if plans.len() == 1 { Ok(plans.remove(0)) } else { UnionExec::try_new(plans) }
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Used to prune files here and row groups in the reader; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

/// `e` with its string literals as plain `Utf8`. Scans give strings as views, so DataFusion
/// casts a filter's string literals to `Utf8View`, which iceberg's predicate conversion does not
/// take: without this, a filter on a string column (a partition's `course_id`, a range of round
/// ids) would prune no file.
fn plain_strings(e: Expr) -> Expr {
    let original = e.clone();
    e.transform(|e| {
        Ok(match e {
            Expr::Literal(ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s), meta) => {
                Transformed::yes(Expr::Literal(ScalarValue::Utf8(s), meta))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
    .unwrap_or(original)
}

/// Spreads files over `n` groups of about equal bytes (largest first, each to the lightest group).
fn balance(mut files: Vec<(PartitionedFile, u64)>, n: usize) -> Vec<Vec<PartitionedFile>> {
    files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.path().as_ref().cmp(b.0.path().as_ref())));
    let n = n.min(files.len()).max(1);
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for (file, size) in files {
        let lightest = groups.iter_mut().min_by_key(|(bytes, _)| *bytes).expect("n >= 1");
        lightest.0 += size.max(1);
        lightest.1.push(file);
    }
    groups.into_iter().map(|(_, g)| g).filter(|g| !g.is_empty()).collect()
}

/// `file:///a/b.parquet` → (`file://`, `a/b.parquet`); `s3://bucket/k` → (`s3://bucket`, `k`);
/// a bare absolute path is a local file.
pub fn split_location(location: &str) -> Option<(String, String)> {
    if let Some(path) = location.strip_prefix("file://") {
        return Some(("file://".into(), path.trim_start_matches('/').to_string()));
    }
    if location.starts_with('/') {
        return Some(("file://".into(), location.trim_start_matches('/').to_string()));
    }
    let (scheme, rest) = location.split_once("://")?;
    let (bucket, key) = rest.split_once('/')?;
    let scheme = if scheme == "s3a" || scheme == "s3n" { "s3" } else { scheme };
    Some((format!("{scheme}://{bucket}"), key.to_string()))
}

/// The Arrow schema scans return for `table`: its current schema.
fn read_schema(table: &Table) -> iceberg::Result<SchemaRef> {
    Ok(scan_schema(&schema_to_arrow_schema(table.metadata().current_schema())?))
}

/// Field metadata dropped (Parquet field ids differ between plans otherwise) and strings read as
/// views (no copy out of the Parquet pages); gold writes plain strings back.
fn scan_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
                DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
                other => other.clone(),
            };
            Field::new(f.name(), ty, f.is_nullable())
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn external(table: &str, action: &str, e: iceberg::Error) -> DataFusionError {
    DataFusionError::External(format!("cannot {action} {table}: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_into_store_and_key() {
        assert_eq!(split_location("file:///a/b/c.parquet"), Some(("file://".into(), "a/b/c.parquet".into())));
        assert_eq!(split_location("/a/b.parquet"), Some(("file://".into(), "a/b.parquet".into())));
        assert_eq!(
            split_location("s3://tm-serve/gold/t/data/x=1/f.parquet"),
            Some(("s3://tm-serve".into(), "gold/t/data/x=1/f.parquet".into()))
        );
        assert_eq!(split_location("s3a://b/k"), Some(("s3://b".into(), "k".into())));
        assert_eq!(split_location("nonsense"), None);
    }

    #[test]
    fn files_are_balanced_by_bytes() {
        let files = [100u64, 90, 10, 10, 5]
            .iter()
            .enumerate()
            .map(|(i, s)| (PartitionedFile::new(format!("f{i}"), *s), *s))
            .collect();
        let groups = balance(files, 2);
        let bytes: Vec<u64> = groups.iter().map(|g| g.iter().map(|f| f.object_meta.size).sum()).collect();
        assert_eq!(bytes, vec![110, 105]);
        assert_eq!(balance(vec![(PartitionedFile::new("x", 1), 1)], 8).len(), 1);
    }
}
