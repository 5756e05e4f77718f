//! The one place DataFusion sessions are built. [`Lake::session`] makes a fresh `SessionContext`
//! (explicit config: all cores, information_schema on) whose default catalog has one schema per
//! Iceberg namespace (`silver`, `gold`, …), so SQL says `silver.fact_telemetry_event`. Build one
//! per task attempt: the table list is read when the session is built (tables created later are
//! not in it), while the data of a current-state session is re-read at every scan.

use std::any::Any;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::CatalogProvider;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::datasource::empty::EmptyTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::inspect::MetadataTableType;
use iceberg::table::Table;
use iceberg::{Catalog, TableIdent};
use iceberg_datafusion::IcebergCatalogProvider;

use super::iceberg::{Lake, LakeError, Result, table_err};
use super::scan::LakeTable;
use crate::config::{Settings, StorageKind};

/// Which state of the tables a session reads. The default is the current state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Read the table that owns this snapshot as of it; every other table at its current state.
    pub snapshot_id: Option<i64>,
    /// Read every table as of its snapshot current at this time; tables created later are absent,
    /// tables that existed but had no data yet are empty.
    pub as_of: Option<DateTime<Utc>>,
    /// A gold model's session: it shares the cores with the other models running now.
    pub model: bool,
}

impl SessionOptions {
    pub fn current() -> SessionOptions {
        SessionOptions::default()
    }

    pub fn at_snapshot(snapshot_id: i64) -> SessionOptions {
        SessionOptions { snapshot_id: Some(snapshot_id), ..SessionOptions::default() }
    }

    pub fn as_of(time: DateTime<Utc>) -> SessionOptions {
        SessionOptions { as_of: Some(time), ..SessionOptions::default() }
    }

    /// The current state, for one gold model holding its slot: its queries run on its share of
    /// the cores among the models running now ([`model_partitions`]); alone, on all of them.
    pub fn model() -> SessionOptions {
        SessionOptions { model: true, ..SessionOptions::default() }
    }
}

/// DataFusion's target partitions for a gold model starting while `models` hold a slot (its own
/// included) on `cores`: its share of the cores, at least one. A model on every core split its
/// scans, joins and aggregates `cores` ways and hashed every row again to repartition them, while
/// the other models already kept those cores busy: a full refresh of the 8.6 M-row lake, two
/// models at once on two cores, took 31–38 s that way and 27 s with this share (benches/README.md,
/// tenth session).
pub fn model_partitions(cores: usize, models: usize) -> usize {
    (cores / models.max(1)).max(1)
}

/// The session configuration every tmctl session uses (gold models, `tmctl query`, the web UI):
/// all cores (a gold model's session: its share, [`model_partitions`]), Parquet filters evaluated
/// inside the reader (late materialisation; not in a gold model's session, [`model_scans`]) with
/// page indexes, strings as views, and `information_schema` on.
pub fn session_config() -> SessionConfig {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut config = SessionConfig::new().with_target_partitions(cores).with_information_schema(true);
    let options = config.options_mut();
    // Iceberg scans carry Parquet field-id metadata that DataFusion 53's aggregate planner
    // compares strictly ("Physical input schema should be the same"); the schemas are equal.
    options.execution.skip_physical_aggregate_schema_check = true;
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    options.execution.parquet.enable_page_index = true;
    options.execution.parquet.schema_force_view_types = true;
    config
}

/// What a gold model's session changes in [`session_config`]: no filter evaluated inside the
/// Parquet reader and no join filter pushed into scans. A model reads nearly every row it scans
/// (its inputs are narrowed by partition predicates, settled by pruning files, and it joins silver
/// with the latest delivery of each round, which keeps almost all of it), so late
/// materialisation only decoded the filter columns twice and evaluated, row by row, a predicate
/// that let everything through: in a full refresh of the 8.6 M-row lake (perf) the row filters
/// took about a tenth of the CPU time, and the refresh was 10 % faster without them
/// (benches/README.md, twelfth session). Row group, page and file pruning by statistics stay on;
/// the UI and `tmctl query`, whose filters are selective, keep the pushdown.
fn model_scans(config: &mut SessionConfig) {
    let options = config.options_mut();
    options.execution.parquet.pushdown_filters = false;
    options.optimizer.enable_join_dynamic_filter_pushdown = false;
}

/// The DataFusion runtime of one lake (made once per process with the [`Lake`]): a spilling
/// memory pool of `lake.memory_limit`, spill files under `lake.spill_dir`, and the S3 client of
/// each table bucket registered for `s3://<bucket>` so scans share the lake's connection pool.
pub(crate) fn runtime(settings: &Settings) -> Result<Arc<RuntimeEnv>> {
    let limit = usize::try_from(settings.lake.memory_limit).unwrap_or(usize::MAX);
    let spill = &settings.lake.spill_dir;
    std::fs::create_dir_all(spill).map_err(|e| {
        LakeError::Usage(format!("cannot create lake.spill_dir {}: {e} (set TM_LAKE_SPILL_DIR)", spill.display()))
    })?;
    // Greedy, not fair: a fair pool gives each of the many spillable operators of a gold query an
    // equal slice, and aggregates that cannot spill (COUNT(DISTINCT …)) then fail far below the
    // limit; a greedy pool lets any operator use what is free and makes the others spill.
    let pool = TrackConsumersPool::new(GreedyMemoryPool::new(limit), NonZeroUsize::new(5).expect("5 > 0"));
    let disk = DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![super::absolute(spill)]));
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_disk_manager_builder(disk)
        .build_arc()
        .map_err(|source| LakeError::Session { source: Box::new(source) })?;
    if settings.lake.storage == StorageKind::S3 {
        let buckets = &settings.lake.buckets;
        for bucket in [&buckets.source, &buckets.serve] {
            let client = super::s3::client(&settings.lake.s3, bucket)
                .map_err(|e| LakeError::Usage(format!("bucket {bucket}: {}", super::s3::explain(&e))))?;
            let url = url::Url::parse(&format!("s3://{bucket}"))
                .map_err(|e| LakeError::Usage(format!("bucket {bucket}: not a URL host: {e}")))?;
            runtime.register_object_store(&url, client);
        }
    }
    Ok(runtime)
}

/// A session without lake tables (for reading raw files), configured like all others.
pub fn plain_session() -> SessionContext {
    let ctx = SessionContext::new_with_config(session_config());
    super::functions::register(&ctx);
    ctx
}

impl Lake {
    /// A fresh DataFusion session on this lake's runtime where `<namespace>.<table>` resolves to
    /// the Iceberg tables of the catalog, read as `opts` says (through [`LakeTable`]: DataFusion's
    /// Parquet scan over the files iceberg-rust plans). In a current-state session each table
    /// also has iceberg's metadata tables (`silver.t$snapshots`, `$manifests`), which
    /// `information_schema` lists. The table list is read when the session is built; the data of
    /// a current-state session is looked up again at every scan.
    pub async fn session(&self, opts: &SessionOptions) -> Result<SessionContext> {
        if opts.snapshot_id.is_some() && opts.as_of.is_some() {
            return Err(LakeError::Usage("a session reads at a snapshot id or as of a time, not both".into()));
        }
        let mut config = session_config();
        if opts.model {
            let cores = config.target_partitions();
            config = config.with_target_partitions(model_partitions(cores, self.models_running()));
            model_scans(&mut config);
        }
        let default_catalog = config.options().catalog.default_catalog.clone();
        let ctx = SessionContext::new_with_config_rt(config, self.runtime().clone());
        super::functions::register(&ctx);
        let schemas: Vec<(String, Arc<dyn SchemaProvider>)> = match (opts.snapshot_id, opts.as_of) {
            (None, None) => self.current_schemas().await?,
            _ => self.pinned_schemas(opts).await?,
        };
        let default = ctx
            .catalog(&default_catalog)
            .ok_or_else(|| LakeError::Usage(format!("the session has no default catalog `{default_catalog}`")))?;
        for (name, schema) in schemas {
            default.register_schema(&name, schema).map_err(|source| LakeError::Session { source: Box::new(source) })?;
        }
        Ok(ctx)
    }

    /// The tables of `listed` (a namespace's list), loaded; a table dropped since it was listed
    /// is left out, as if it had been dropped before: a full refresh that rebuilt a table beside
    /// the old one drops the old one and renames the new one while other models build their
    /// sessions, which list every table (a session over a table it had just lost failed).
    pub async fn load_listed(&self, listed: Vec<TableIdent>) -> Result<Vec<Table>> {
        let mut tables = Vec::with_capacity(listed.len());
        for ident in listed {
            match self.load_table(&ident).await {
                Ok(table) => tables.push(table),
                Err(LakeError::NoSuchTable { .. }) => tracing::debug!(table = ?ident, "dropped since it was listed"),
                Err(e) => return Err(e),
            }
        }
        Ok(tables)
    }

    /// One schema per namespace whose tables read their current snapshot at every scan.
    async fn current_schemas(&self) -> Result<Vec<(String, Arc<dyn SchemaProvider>)>> {
        let mut out = Vec::new();
        for (ns_name, catalog) in self.catalogs() {
            let mut tables = BTreeMap::new();
            for table in self.load_listed(self.list_tables(ns_name).await?).await? {
                let ident = table.identifier();
                let provider = LakeTable::current(self.clone(), &table).map_err(table_err(ident, "map its schema"))?;
                tables.insert(ident.name().to_string(), Arc::new(provider) as Arc<dyn TableProvider>);
            }
            let schema = LakeSchema { namespace: ns_name.clone(), catalog: catalog.clone(), tables };
            out.push((ns_name.clone(), Arc::new(schema) as Arc<dyn SchemaProvider>));
        }
        Ok(out)
    }

    /// Providers for every table, each pinned to the snapshot `opts` asks for.
    async fn pinned_schemas(&self, opts: &SessionOptions) -> Result<Vec<(String, Arc<dyn SchemaProvider>)>> {
        let mut found_snapshot = false;
        let mut out = Vec::new();
        for (ns_name, _) in self.catalogs() {
            let ns_name = ns_name.clone();
            let schema = Arc::new(MemorySchemaProvider::new());
            for table in self.load_listed(self.list_tables(&ns_name).await?).await? {
                let ident = table.identifier().clone();
                let provider: Option<Arc<dyn TableProvider>> = if let Some(id) = opts.snapshot_id {
                    let at = if table.metadata().snapshot_by_id(id).is_some() {
                        found_snapshot = true;
                        Some(id)
                    } else {
                        None
                    };
                    Some(Arc::new(
                        LakeTable::snapshot(table, at).map_err(table_err(&ident, format!("read snapshot {id}")))?,
                    ))
                } else if let Some(at) = opts.as_of {
                    as_of_provider(table, at).map_err(table_err(&ident, format!("read as of {at}")))?
                } else {
                    None
                };
                if let Some(p) = provider {
                    schema
                        .register_table(ident.name().to_string(), p)
                        .map_err(|source| LakeError::Session { source: Box::new(source) })?;
                }
            }
            out.push((ns_name, schema as Arc<dyn SchemaProvider>));
        }
        if let Some(snapshot_id) = opts.snapshot_id
            && !found_snapshot
        {
            return Err(LakeError::SnapshotNotFound { snapshot_id });
        }
        Ok(out)
    }
}

/// The tables of one namespace at their current state, plus iceberg's metadata tables
/// (`<table>$snapshots`, `<table>$manifests`).
struct LakeSchema {
    namespace: String,
    catalog: Arc<dyn Catalog>,
    tables: BTreeMap<String, Arc<dyn TableProvider>>,
}

impl std::fmt::Debug for LakeSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSchema").field("namespace", &self.namespace).finish()
    }
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for name in self.tables.keys() {
            names.push(name.clone());
            names.extend(MetadataTableType::all_types().map(|t| format!("{name}${}", t.as_str())));
        }
        names
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if let Some((table, kind)) = name.split_once('$') {
            MetadataTableType::try_from(kind).map_err(DataFusionError::Plan)?;
            if !self.tables.contains_key(table) {
                return Ok(None);
            }
            // iceberg-datafusion builds metadata tables only through its own catalog provider
            // (which loads every table, so only now that one is asked for).
            let provider = IcebergCatalogProvider::try_new(self.catalog.clone())
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let Some(schema) = provider.schema(&self.namespace) else { return Ok(None) };
            return schema.table(name).await;
        }
        Ok(self.tables.get(name).cloned())
    }

    fn table_exist(&self, name: &str) -> bool {
        match name.split_once('$') {
            Some((table, kind)) => self.tables.contains_key(table) && MetadataTableType::try_from(kind).is_ok(),
            None => self.tables.contains_key(name),
        }
    }
}

/// The provider that shows `table` as it was at `at`, or `None` if it did not exist then.
fn as_of_provider(table: Table, at: DateTime<Utc>) -> iceberg::Result<Option<Arc<dyn TableProvider>>> {
    let md = table.metadata();
    let t = at.timestamp_millis();
    let snapshot = md.history().iter().rev().find(|l| l.timestamp_ms <= t).map(|l| l.snapshot_id);
    if let Some(id) = snapshot.filter(|id| md.snapshot_by_id(*id).is_some()) {
        return Ok(Some(Arc::new(LakeTable::snapshot(table, Some(id))?)));
    }
    // No snapshot yet at `at`: the table is empty if it already existed (its first metadata file
    // is its creation), absent otherwise.
    let created = md.metadata_log().first().map(|l| l.timestamp_ms).unwrap_or_else(|| md.last_updated_ms());
    if created <= t {
        let schema = Arc::new(schema_to_arrow_schema(md.current_schema())?);
        Ok(Some(Arc::new(EmptyTable::new(schema))))
    } else {
        Ok(None)
    }
}

/// A schema whose listed tables are replaced by other providers (views over the originals): the
/// narrowed inputs of an incremental gold model, the UI's date-filtered gold tables.
#[derive(Debug)]
pub struct OverlaySchema {
    inner: Arc<dyn SchemaProvider>,
    tables: std::collections::HashMap<String, Arc<dyn TableProvider>>,
}

impl OverlaySchema {
    pub fn new(
        inner: Arc<dyn SchemaProvider>,
        tables: std::collections::HashMap<String, Arc<dyn TableProvider>>,
    ) -> OverlaySchema {
        OverlaySchema { inner, tables }
    }
}

#[async_trait]
impl SchemaProvider for OverlaySchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name) {
            Some(t) => Ok(Some(t.clone())),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

#[cfg(test)]
mod tests {
    use super::{model_partitions, model_scans, session_config};

    #[test]
    fn only_a_model_session_reads_without_filters_in_the_reader() {
        let mut config = session_config();
        assert!(config.options().execution.parquet.pushdown_filters, "the UI and tmctl query keep the pushdown");
        model_scans(&mut config);
        assert!(!config.options().execution.parquet.pushdown_filters);
        assert!(!config.options().optimizer.enable_join_dynamic_filter_pushdown);
        assert!(config.options().execution.parquet.enable_page_index, "pruning by statistics stays on");
    }

    #[test]
    fn a_model_runs_on_its_share_of_the_cores() {
        assert_eq!(model_partitions(2, 2), 1);
        assert_eq!(model_partitions(8, 2), 4);
        assert_eq!(model_partitions(8, 3), 2);
        assert_eq!(model_partitions(1, 4), 1, "at least one");
        assert_eq!(model_partitions(4, 1), 4);
    }
}
