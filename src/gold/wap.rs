//! Write-audit-publish for one gold model: plan the model's query, stream its result into a
//! [`Stage`] (on the lake: Parquet data files of `gold.<table>`, written as batches come and not
//! committed), run the model's data tests against the staged rows (`tm_staging.staged.<table>`,
//! what `{{ this }}` names in tests), then commit the stage if no error-severity test failed and
//! delete it otherwise. No result is held in memory; until the commit, readers keep seeing the
//! previous version of `gold.<table>`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemTable, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;

use super::GoldError;
use super::datatests::{DataTest, TestOutcome, TestStatus, run_tests};
use super::incremental::{self, ChangedKeys, Partitions};
use super::models::{Incremental, ModelSpec};
use crate::lake::PartitionValues;

/// The catalog and schema staged results are registered under for data tests.
pub const STAGING_CATALOG: &str = "tm_staging";
pub const STAGING_SCHEMA: &str = "staged";
/// The schema an incremental run registers only the rows it writes under (the replaced
/// partitions), for the tests that hold per partition.
pub const WRITTEN_SCHEMA: &str = "written";

/// Opens stages for model results. A publisher is made per attempt and knows the attempt's run
/// key.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// A stage for `model`'s new result with columns `schema` (creating the table, partitioned by
    /// `model.partition_by`, if missing).
    async fn stage(&self, model: &ModelSpec, schema: SchemaRef) -> Result<Box<dyn Stage>, GoldError>;
}

/// One model result on its way in: written batch by batch, readable once finished, then
/// committed as the table's new content or discarded.
#[async_trait]
pub trait Stage: Send {
    /// The snapshot that already holds this attempt's commit (a resumed attempt): nothing needs
    /// to be written.
    fn already_committed(&self) -> Option<i64>;

    async fn write(&mut self, batch: RecordBatch) -> Result<(), GoldError>;

    /// Finishes writing; the returned table reads exactly the staged rows.
    async fn finish(&mut self) -> Result<Arc<dyn TableProvider>, GoldError>;

    /// Finishes the files written so far (no more rows of their partitions follow), so the
    /// stage holds no open file per partition in memory. A stage in memory has nothing to do.
    async fn roll(&mut self) -> Result<(), GoldError> {
        Ok(())
    }

    /// Makes the staged rows the table's content in one commit: all of it (`None`), or the
    /// listed partitions (an incremental run; every other partition stays as it is).
    async fn commit(self: Box<Self>, partitions: Option<Vec<PartitionValues>>) -> Result<Published, GoldError>;

    /// Removes whatever was staged.
    async fn discard(self: Box<Self>);
}

/// Which rows a run rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The whole table (every `materialized = "table"` model, the first run of an incremental
    /// one, `--full-refresh`).
    Full,
    /// For an incremental model whose table exists partitioned as declared: the keys that
    /// changed on `ds` (see [`super::incremental`]). A table model ignores it.
    Incremental { ds: chrono::NaiveDate },
    /// For an incremental model whose `changes` is by snapshot, and whose table exists
    /// partitioned as declared: the keys of the rows `changes` added or removed between its
    /// snapshots `from` and `to` (see [`incremental::changed_keys_between`]).
    Since { from: i64, to: i64 },
}

/// What a commit produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub snapshot_id: Option<i64>,
    /// The table's current snapshot already held this run key's commit (a resumed attempt):
    /// nothing new was written.
    pub already_committed: bool,
}

/// What running one model did.
#[derive(Debug, Clone)]
pub struct ModelRun {
    /// `gold.<table>`.
    pub table: String,
    /// Rows of the new result (staged; written if published).
    pub rows: u64,
    /// Whether the result was committed.
    pub published: bool,
    pub snapshot_id: Option<i64>,
    pub already_committed: bool,
    pub tests: Vec<TestOutcome>,
    pub elapsed_ms: u64,
    /// Incremental runs: the keys recomputed, the unchanged rows carried over from the replaced
    /// partitions (counted in `rows`), and the partitions replaced (`course_id=…/ingest_date=…`).
    pub incremental: Option<IncrementalRun>,
}

/// What an incremental run recomputed and replaced.
#[derive(Debug, Clone, Default)]
pub struct IncrementalRun {
    pub changed_keys: usize,
    pub rows_carried: u64,
    pub partitions: Vec<String>,
}

impl ModelRun {
    /// Names and findings of the error-severity tests that failed.
    pub fn blocking_failures(&self) -> Vec<String> {
        self.tests.iter().filter(|t| t.status == TestStatus::Fail).map(TestOutcome::describe).collect()
    }

    /// The task summary: rows, snapshot, and every test with status, failing rows and a sample.
    pub fn summary(&self) -> serde_json::Value {
        let count = |s: TestStatus| self.tests.iter().filter(|t| t.status == s).count();
        serde_json::json!({
            "table": self.table,
            "rows_written": if self.published { self.rows } else { 0 },
            "rows_staged": self.rows,
            "published": self.published,
            "snapshot_id": self.snapshot_id,
            "already_committed": self.already_committed,
            "elapsed_ms": self.elapsed_ms,
            "tests_pass": count(TestStatus::Pass),
            "tests_warn": count(TestStatus::Warn),
            "tests_fail": count(TestStatus::Fail),
            "tests": self.tests.iter().map(TestOutcome::to_json).collect::<Vec<_>>(),
            "refresh": if self.incremental.is_some() { "incremental" } else { "full" },
            "changed_keys": self.incremental.as_ref().map(|i| i.changed_keys),
            "rows_carried": self.incremental.as_ref().map(|i| i.rows_carried),
            "partitions_replaced": self.incremental.as_ref().map(|i| i.partitions.len()),
            "partitions": self.incremental.as_ref().map(|i| i.partitions.iter().take(100).collect::<Vec<_>>()),
        })
    }
}

/// Whether a DataFusion error is worth retrying (I/O, object store, memory) rather than a
/// property of the SQL or the data. Memory counts: the pool of `lake.memory_limit` is shared by
/// the models running at once, and a sort's in-memory merge cannot spill, so a model can fail
/// while others hold the pool and succeed on its retry (measured: `round_progression`'s window
/// sort on 8.6 M silver rows beside `global_overview` and `global_time_patterns`; and a data
/// test's aggregate on `round_hole_profile` beside another model's 665 MB sort). A query too big
/// for the limit on its own fails every try and says so.
fn transient(e: &DataFusionError) -> bool {
    matches!(
        e.find_root(),
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) | DataFusionError::ResourcesExhausted(_)
    )
}

/// Runs one model against `ctx` (which must resolve the tables the model reads): stage, test,
/// publish unless an error-severity test failed. `refresh` says whether the whole table or only
/// the changed keys of an incremental model are rebuilt. `Err` only for planning, execution or
/// commit failures; failed tests come back as `ModelRun { published: false, .. }`.
pub async fn run_model(
    ctx: &SessionContext,
    model: &ModelSpec,
    publisher: &dyn Publisher,
    refresh: Refresh,
) -> Result<ModelRun, GoldError> {
    let started = Instant::now();
    let table = model.qualified_table();
    let plan_error = |e: DataFusionError| GoldError::Plan {
        model: model.table.clone(),
        file: model.sql_file.clone(),
        message: e.to_string(),
    };
    let execute_error = |e: DataFusionError| GoldError::Execute {
        model: model.table.clone(),
        transient: transient(&e),
        message: e.to_string(),
    };
    // An incremental run reads its inputs narrowed to the keys that changed: on its date, or
    // between the snapshots of `changes` it was given.
    let changed = match (refresh, model.incremental()) {
        (Refresh::Incremental { ds }, Some(inc)) => {
            let changed = incremental::changed_keys(ctx, model, inc, ds).await.map_err(plan_error)?;
            tracing::info!(model = %model.table, %ds, changed_keys = changed.rows, "incremental run");
            Some((inc, changed))
        }
        (Refresh::Since { from, to }, Some(inc)) => {
            let changed = incremental::changed_keys_between(ctx, inc, from, to).await.map_err(plan_error)?.ok_or_else(
                || {
                    plan_error(DataFusionError::Plan(format!(
                        "cannot diff snapshot {from} of {}, which this model last read, with {to} (expired, or not a lake table): rebuild it with --full-refresh",
                        inc.changes_table
                    )))
                },
            )?;
            tracing::info!(model = %model.table, changes = %inc.changes_table, from, to, changed_keys = changed.rows, "incremental run");
            Some((inc, changed))
        }
        _ => None,
    };
    let increment = match changed {
        Some((inc, changed)) => {
            let narrowed = incremental::narrowed_session(ctx, model, inc, &changed).await.map_err(plan_error)?;
            Some((inc, changed, narrowed))
        }
        None => None,
    };
    let query_ctx = increment.as_ref().map_or(ctx, |(_, _, narrowed)| narrowed);
    let df = query_ctx.sql(&model.sql).await.map_err(plan_error)?;
    let schema = storable_schema(model, df.schema().inner())?;
    // A full refresh of an incremental model runs batch by batch (the plan above still gives the
    // schema): a `latest_only` model's in batches of (date, course) groups of keys, a by-snapshot
    // model's in batches of its keys.
    let limit = match ctx.runtime_env().memory_pool.memory_limit() {
        MemoryLimit::Finite(bytes) => Some(bytes),
        MemoryLimit::Infinite | MemoryLimit::Unknown => None,
    };
    let query = match (refresh, model.incremental()) {
        (Refresh::Full, Some(inc)) if inc.latest_only => {
            let budget = incremental::batch_budget(limit);
            let batches = incremental::refresh_batches(ctx, inc, budget).await.map_err(plan_error)?;
            tracing::info!(model = %model.table, batches = batches.len(), keys_per_batch = budget, "full refresh in batches");
            Query::Batched { inc, batches }
        }
        (Refresh::Full, Some(inc)) if inc.changes_column.is_none() => {
            let budget = incremental::changes_row_budget(limit);
            let batches = incremental::key_batches(ctx, inc, budget).await.map_err(plan_error)?;
            // None or one: the whole query, as it is planned above.
            if batches.len() > 1 {
                tracing::info!(model = %model.table, batches = batches.len(), changes_rows_per_batch = budget, "full refresh in batches");
                Query::KeyBatches { inc, batches }
            } else {
                Query::Whole(Box::new(df))
            }
        }
        _ => Query::Whole(Box::new(df)),
    };
    let mut stage = publisher.stage(model, schema.clone()).await?;
    if let Some(snapshot_id) = stage.already_committed() {
        tracing::info!(model = %model.table, snapshot_id, "already committed by an earlier try of this run");
        stage.discard().await;
        return Ok(ModelRun {
            table,
            rows: 0,
            published: true,
            snapshot_id: Some(snapshot_id),
            already_committed: true,
            tests: Vec::new(),
            elapsed_ms: started.elapsed().as_millis() as u64,
            incremental: None,
        });
    }
    let increment = increment.as_ref().map(|(inc, changed, _)| (*inc, changed));
    // Any failure before the verdict deletes what was staged.
    let audited = match audit(ctx, model, query, &schema, stage.as_mut(), increment, &execute_error).await {
        Ok(audited) => audited,
        Err(e) => {
            stage.discard().await;
            return Err(e);
        }
    };
    let Audited { rows, tests, replaced } = audited;
    for t in &tests {
        match t.status {
            TestStatus::Pass => tracing::info!(model = %model.table, test = %t.name, "data test passed"),
            TestStatus::Warn => {
                tracing::warn!(model = %model.table, test = %t.name, sample = %serde_json::Value::from(t.sample.clone()), "data test (warn): {}", t.describe())
            }
            TestStatus::Fail => {
                tracing::error!(model = %model.table, test = %t.name, sample = %serde_json::Value::from(t.sample.clone()), "data test failed: {}", t.describe())
            }
        }
    }

    let mut run = ModelRun {
        table,
        rows,
        published: false,
        snapshot_id: None,
        already_committed: false,
        tests,
        elapsed_ms: 0,
        incremental: None,
    };
    let partitions = match &replaced {
        Some((_, partitions, _)) => Some(partitions.values(&model.partition_by).map_err(execute_error)?),
        None => None,
    };
    if let Some((changed_keys, _, carried)) = &replaced {
        run.incremental = Some(IncrementalRun {
            changed_keys: *changed_keys,
            rows_carried: *carried,
            partitions: partitions.iter().flatten().map(ToString::to_string).collect(),
        });
    }
    if run.tests.iter().any(|t| t.status == TestStatus::Fail) {
        tracing::error!(model = %model.table, "error-severity data tests failed: not publishing; the previous version stays current");
        stage.discard().await;
    } else if partitions.as_ref().is_some_and(Vec::is_empty) {
        tracing::info!(model = %model.table, "no key changed on this date: nothing to replace");
        stage.discard().await;
        run.published = true;
    } else {
        let published = stage.commit(partitions).await?;
        run.snapshot_id = published.snapshot_id;
        run.already_committed = published.already_committed;
        run.published = true;
        tracing::info!(model = %model.table, rows, snapshot_id = ?run.snapshot_id, "published");
    }
    run.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(run)
}

/// What [`audit`] staged and found.
struct Audited {
    /// Rows staged (new and, in an incremental run, carried over).
    rows: u64,
    tests: Vec<TestOutcome>,
    /// Incremental runs: how many keys changed, the partitions to replace and the rows carried.
    replaced: Option<(usize, Partitions, u64)>,
}

/// What a model run executes.
enum Query<'a> {
    /// The model's query (over inputs narrowed to the changed keys in an incremental run).
    Whole(Box<DataFrame>),
    /// A full refresh of a `latest_only` incremental model: the query once per batch of keys, each
    /// over inputs narrowed to its keys (see [`incremental::refresh_batches`]).
    Batched { inc: &'a Incremental, batches: Vec<incremental::Batch> },
    /// The same for a model incremental by snapshot, its batches' keys known up front (see
    /// [`incremental::key_batches`]).
    KeyBatches { inc: &'a Incremental, batches: Vec<ChangedKeys> },
}

/// Executes `query` into `stage` (batches cast to `schema`), finishes the stage and runs the
/// model's data tests as `tm_staging.staged.<table>`: on the staged rows, or, in an incremental
/// run, on the table as the commit will leave it (after the rows of the replaced partitions whose
/// key did not change were staged too).
async fn audit(
    ctx: &SessionContext,
    model: &ModelSpec,
    query: Query<'_>,
    schema: &SchemaRef,
    stage: &mut dyn Stage,
    increment: Option<(&Incremental, &ChangedKeys)>,
    execute_error: &(dyn Fn(DataFusionError) -> GoldError + Sync),
) -> Result<Audited, GoldError> {
    let mut partitions = Partitions::default();
    let rows = match query {
        Query::Whole(df) => {
            write_all(*df, schema, stage, execute_error, |batch| {
                if let Some((inc, _)) = increment {
                    partitions.add_rows(&batch, &model.partition_by, &inc.incremental_key)?;
                }
                Ok(batch)
            })
            .await?
        }
        Query::Batched { inc, batches } => {
            let mut rows = 0;
            for (i, batch) in batches.iter().enumerate() {
                let keys = incremental::batch_keys(ctx, inc, batch).await.map_err(execute_error)?;
                rows += stage_batch(ctx, model, inc, &keys, schema, stage, execute_error).await?;
                tracing::debug!(model = %model.table, batch = i + 1, of = batches.len(), keys = batch.keys, rows, "full refresh batch staged");
            }
            rows
        }
        Query::KeyBatches { inc, batches } => {
            let mut rows = 0;
            for (i, keys) in batches.iter().enumerate() {
                rows += stage_batch(ctx, model, inc, keys, schema, stage, execute_error).await?;
                tracing::debug!(model = %model.table, batch = i + 1, of = batches.len(), keys = keys.rows, rows, "full refresh batch staged");
            }
            rows
        }
    };
    tracing::info!(model = %model.table, rows, "staged the new result");
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut carried = 0u64;
    if let Some((inc, changed)) = increment {
        let old = incremental::old_partitions(ctx, model, inc, changed).await.map_err(execute_error)?;
        partitions.extend(old);
        let df =
            incremental::carried_rows(ctx, model, inc, changed, &partitions, &columns).await.map_err(execute_error)?;
        carried = write_all(df, schema, stage, execute_error, Ok).await?;
        tracing::info!(model = %model.table, carried, partitions = partitions.len(), "staged the unchanged rows of the replaced partitions");
    }
    let staged = stage.finish().await?;
    // Tests see the table as the commit will leave it. In an incremental run that is the current
    // rows outside the replaced partitions plus the staged ones, but the tests that hold per
    // partition read only the staged rows (`tm_staging.written.<table>`), so what a daily run
    // tests does not grow with the history.
    let (whole, written) = match increment {
        Some((inc, _)) => {
            let whole = incremental::after_commit(ctx, model, &partitions, staged.clone(), &columns)
                .await
                .map_err(execute_error)?;
            (whole, Some((inc, staged)))
        }
        None => (staged, None),
    };
    let mut registered = vec![(STAGING_SCHEMA, whole)];
    registered.extend(written.as_ref().map(|(_, t)| (WRITTEN_SCHEMA, t.clone())));
    for (schema, table) in &registered {
        let s = staging_schema(ctx, schema).map_err(execute_error)?;
        let _ = s.deregister_table(&model.table);
        s.register_table(model.table.clone(), table.clone()).map_err(execute_error)?;
    }
    let per_partition =
        |test: &DataTest| matches!(&written, Some((inc, _)) if test.holds_per_partition(&inc.incremental_key));
    let this = |test: &DataTest| {
        let schema = if per_partition(test) { WRITTEN_SCHEMA } else { STAGING_SCHEMA };
        format!("{STAGING_CATALOG}.{schema}.{}", model.table)
    };
    // A test of only the written rows reads only the parent rows in their range (a daily run's
    // relationships test then reads the parent's files of those rounds, not all of its history).
    let tests = run_tests(ctx, &model.tests, this, per_partition, transient).await;
    for (schema, _) in &registered {
        if let Ok(s) = staging_schema(ctx, schema) {
            let _ = s.deregister_table(&model.table);
        }
    }
    let tests = tests.map_err(execute_error)?;
    let replaced = increment.map(|(_, changed)| (changed.rows, partitions, carried));
    Ok(Audited { rows: rows + carried, tests, replaced })
}

/// One batch of a full refresh: the model's query over inputs narrowed to `keys`, written into
/// `stage`, whose open files are then finished (`roll`): a `latest_only` model's batch holds
/// whole partitions, and where a later batch writes to a partition again (a by-snapshot model
/// partitioned more coarsely than its keys) it does so into new files. Returns the rows written.
async fn stage_batch(
    ctx: &SessionContext,
    model: &ModelSpec,
    inc: &Incremental,
    keys: &ChangedKeys,
    schema: &SchemaRef,
    stage: &mut dyn Stage,
    execute_error: &(dyn Fn(DataFusionError) -> GoldError + Sync),
) -> Result<u64, GoldError> {
    let narrowed = incremental::narrowed_session(ctx, model, inc, keys).await.map_err(execute_error)?;
    let df = narrowed.sql(&model.sql).await.map_err(execute_error)?;
    let keep = keys.key_set(schema, inc).map_err(execute_error)?;
    let rows = write_all(df, schema, stage, execute_error, |batch| match &keep {
        Some(keys) => keys.filter(batch),
        None => Ok(batch),
    })
    .await?;
    stage.roll().await?;
    Ok(rows)
}

/// Executes `df` into `stage`, each non-empty batch cast to `schema` and passed through `each`
/// (which may look at it or drop rows) before it is written; returns the rows written.
async fn write_all(
    df: DataFrame,
    schema: &SchemaRef,
    stage: &mut dyn Stage,
    execute_error: &(dyn Fn(DataFusionError) -> GoldError + Sync),
    mut each: impl FnMut(RecordBatch) -> Result<RecordBatch, DataFusionError>,
) -> Result<u64, GoldError> {
    let mut stream = df.execute_stream().await.map_err(execute_error)?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = conform(schema, batch.map_err(execute_error)?).map_err(execute_error)?;
        let batch = if batch.num_rows() > 0 { each(batch).map_err(execute_error)? } else { batch };
        if batch.num_rows() > 0 {
            rows += batch.num_rows() as u64;
            stage.write(batch).await?;
        }
    }
    Ok(rows)
}

/// A schema of the staging catalog, created on first use.
fn staging_schema(ctx: &SessionContext, name: &str) -> Result<Arc<dyn SchemaProvider>, DataFusionError> {
    let catalog = match ctx.catalog(STAGING_CATALOG) {
        Some(c) => c,
        None => {
            let c: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
            ctx.register_catalog(STAGING_CATALOG, c.clone());
            c
        }
    };
    match catalog.schema(name) {
        Some(s) => Ok(s),
        None => {
            let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
            catalog.register_schema(name, s.clone())?;
            Ok(s)
        }
    }
}

/// The schema the table is written with: string views become plain strings (what Iceberg
/// readers return), and a column without a type (a bare `NULL`) or named twice is refused.
fn storable_schema(model: &ModelSpec, schema: &Schema) -> Result<SchemaRef, GoldError> {
    let plan_error =
        |message: String| GoldError::Plan { model: model.table.clone(), file: model.sql_file.clone(), message };
    let mut fields = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        if schema.fields().iter().skip(i + 1).any(|g| g.name() == f.name()) {
            return Err(plan_error(format!("the result has two columns named `{}`; alias one of them", f.name())));
        }
        if f.data_type() == &DataType::Null {
            return Err(plan_error(format!(
                "column `{}` has no type (a bare NULL); CAST it, e.g. CAST(NULL AS DOUBLE)",
                f.name()
            )));
        }
        fields.push(Field::new(f.name(), plain(f.data_type()), true));
    }
    let keys = model.incremental().map(|i| i.incremental_key.as_slice()).unwrap_or_default();
    for column in model.partition_by.iter().chain(keys) {
        if !fields.iter().any(|f| f.name() == column) {
            return Err(GoldError::PartitionColumn {
                model: model.table.clone(),
                column: column.clone(),
                columns: fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
            });
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn plain(ty: &DataType) -> DataType {
    match ty {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::List(inner) | DataType::LargeList(inner) | DataType::ListView(inner) => {
            DataType::List(Arc::new(Field::new(inner.name(), plain(inner.data_type()), true)))
        }
        other => other.clone(),
    }
}

/// Casts a batch to the storable schema (same columns, plain types, all nullable).
fn conform(schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch, DataFusionError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A session for running models without a lake: schemas `silver` and `gold` (in-memory) in the
/// default catalog, so `silver.<t>` and `gold.<t>` resolve to tables registered there.
pub fn memory_session() -> SessionContext {
    let ctx = SessionContext::new_with_config(crate::lake::session_config());
    crate::lake::functions::register(&ctx);
    if let Some(catalog) = ctx.catalog("datafusion") {
        for ns in ["silver", "gold"] {
            let _ = catalog.register_schema(ns, Arc::new(MemorySchemaProvider::new()));
        }
    }
    ctx
}

/// Publishes into the `gold` schema of an in-memory session (see [`memory_session`]): each
/// publish replaces the table and gets the next snapshot id (1, 2, …). Stages are kept in memory.
/// For tests and dry runs.
#[derive(Clone)]
pub struct MemoryPublisher {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    ctx: SessionContext,
    next_snapshot: AtomicI64,
    /// `(table, rows)` of every publish, in order.
    log: Mutex<Vec<(String, usize)>>,
}

impl std::fmt::Debug for MemoryPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPublisher").field("log", &self.inner.log).finish()
    }
}

impl MemoryPublisher {
    pub fn new(ctx: &SessionContext) -> Self {
        let inner = MemoryInner { ctx: ctx.clone(), next_snapshot: AtomicI64::new(1), log: Mutex::new(Vec::new()) };
        Self { inner: Arc::new(inner) }
    }

    /// The tables published so far, in order.
    pub fn published(&self) -> Vec<String> {
        self.inner.log.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(t, _)| t.clone()).collect()
    }
}

#[async_trait]
impl Publisher for MemoryPublisher {
    async fn stage(&self, model: &ModelSpec, schema: SchemaRef) -> Result<Box<dyn Stage>, GoldError> {
        Ok(Box::new(MemoryStage { inner: self.inner.clone(), model: model.clone(), schema, batches: Vec::new() }))
    }
}

struct MemoryStage {
    inner: Arc<MemoryInner>,
    model: ModelSpec,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl MemoryStage {
    fn fail(&self, e: DataFusionError) -> GoldError {
        GoldError::Publish {
            model: self.model.table.clone(),
            table: self.model.qualified_table(),
            message: e.to_string(),
            transient: false,
        }
    }
}

#[async_trait]
impl Stage for MemoryStage {
    fn already_committed(&self) -> Option<i64> {
        None
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<(), GoldError> {
        self.batches.push(batch);
        Ok(())
    }

    async fn finish(&mut self) -> Result<Arc<dyn TableProvider>, GoldError> {
        let table = MemTable::try_new(self.schema.clone(), vec![self.batches.clone()]).map_err(|e| self.fail(e))?;
        Ok(Arc::new(table))
    }

    async fn commit(self: Box<Self>, partitions: Option<Vec<PartitionValues>>) -> Result<Published, GoldError> {
        if partitions.is_some() {
            return Err(self.fail(DataFusionError::NotImplemented(
                "the in-memory publisher replaces whole tables only; incremental runs need the lake".into(),
            )));
        }
        let rows = self.batches.iter().map(RecordBatch::num_rows).sum();
        let gold = self
            .inner
            .ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("gold"))
            .ok_or_else(|| self.fail(DataFusionError::Plan("the session has no `gold` schema".into())))?;
        let table =
            Arc::new(MemTable::try_new(self.schema.clone(), vec![self.batches.clone()]).map_err(|e| self.fail(e))?);
        gold.deregister_table(&self.model.table).map_err(|e| self.fail(e))?;
        gold.register_table(self.model.table.clone(), table).map_err(|e| self.fail(e))?;
        self.inner.log.lock().unwrap_or_else(|p| p.into_inner()).push((self.model.qualified_table(), rows));
        let snapshot_id = self.inner.next_snapshot.fetch_add(1, Ordering::SeqCst);
        Ok(Published { snapshot_id: Some(snapshot_id), already_committed: false })
    }

    async fn discard(self: Box<Self>) {}
}
