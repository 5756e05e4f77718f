//! The Iceberg catalog `tm`: iceberg-catalog-sql on the state DB (SQLite file or PostgreSQL), so
//! PyIceberg's `SqlCatalog("tm", uri=…)` on the same database sees the same tables, or an Iceberg
//! REST catalog (`catalog.type = "rest"`, one warehouse per namespace). [`Lake`] owns the catalog
//! handles, the namespaces `silver` (source bucket) and `gold` (serve bucket), table creation,
//! and snapshot look-ups (run keys, history).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::runtime_env::RuntimeEnv;
use iceberg::io::StorageFactory;
use iceberg::spec::FormatVersion;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalog, RestCatalogBuilder};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlBindStyle, SqlCatalog, SqlCatalogBuilder,
};
use serde::Serialize;

use super::rest::RestCommits;
use super::s3_io::S3StorageFactory;
use crate::config::{CatalogKind, Settings, StorageKind};
use crate::slots::PrioritySlots;
use crate::store::Store;

mod errors;
mod schema;
mod snapshots;
mod tables;

pub use errors::{CatalogFault, LakeError, Result};
use schema::{check_existing, identity_spec};
pub use schema::{iceberg_arrow_schema, identity_partition_columns};
pub(crate) use snapshots::find_commit_in;
pub use snapshots::{partition_rows, snapshot_infos};
pub use tables::PartitionRows;

/// The namespaces tmctl creates and reads.
pub const NAMESPACES: &[&str] = &["silver", "gold"];

/// Table properties every table gets (PyIceberg and Spark read them too).
const TABLE_PROPERTIES: &[(&str, &str)] = &[("write.format.default", "parquet"), ("created-by", "tmctl")];

/// The Parquet codec a new table in `namespace` is written with (`write.parquet.compression-codec`,
/// which the writer honours). Silver: zstd, large files read mostly once per gold model. Gold:
/// snappy, because its tables are many small files (one per course and ingest date) that every
/// daily run reads again, and the Parquet reader makes a zstd compressor and decompressor for
/// every column chunk it opens: at 30 dates of history that set-up was 12 % of a daily gold run's
/// CPU (`ZSTD_createCCtx` + `ZSTD_createDCtx`, see benches/README.md), growing with the files.
fn codec_for(namespace: &str) -> &'static str {
    if namespace == "gold" { "snappy" } else { "zstd" }
}

/// `namespace.table` as people write it.
pub fn display_ident(ident: &TableIdent) -> String {
    format!("{}.{}", ident.namespace().join("."), ident.name())
}

/// Parses `silver.fact_telemetry_event` into a table identifier.
pub fn parse_ident(text: &str) -> Result<TableIdent> {
    match text.split_once('.') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('.') => {
            Ok(TableIdent::new(NamespaceIdent::new(ns.to_string()), name.to_string()))
        }
        _ => Err(LakeError::Invalid {
            table: format!("`{text}`"),
            message: "is not a table name like `silver.fact_telemetry_event`".into(),
        }),
    }
}

/// A failed load of table `ident`: a missing table says so plainly.
fn load_err(ident: &TableIdent) -> impl FnOnce(iceberg::Error) -> LakeError + '_ {
    move |e| {
        if e.kind() == ErrorKind::TableNotFound {
            LakeError::NoSuchTable { table: display_ident(ident) }
        } else {
            table_err(ident, "load")(e)
        }
    }
}

pub(crate) fn table_err(ident: &TableIdent, action: impl Into<String>) -> impl FnOnce(iceberg::Error) -> LakeError {
    let table = display_ident(ident);
    let action = action.into();
    move |source| LakeError::Table { table, action, source: Box::new(source) }
}

/// One snapshot of a table, for the UI, the CLI and run summaries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotInfo {
    pub id: i64,
    pub parent: Option<i64>,
    pub sequence_number: i64,
    pub timestamp: DateTime<Utc>,
    /// `append`, `overwrite`, `replace` or `delete`.
    pub operation: String,
    /// The snapshot summary (counts, `tm.run-key`, …), without `operation`.
    pub summary: BTreeMap<String, String>,
    /// Whether `main` points at it now.
    pub current: bool,
}

/// The lakehouse: the Iceberg SQL catalog in the state DB plus the settings and store it needs.
/// Cheap to clone; open once per process and share.
#[derive(Clone)]
pub struct Lake {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<Settings>,
    store: Store,
    /// The catalog of each namespace in [`NAMESPACES`]: the SQL catalog serves both; a REST
    /// catalog is opened once per warehouse (`s3://<bucket>`), silver's and gold's.
    catalogs: Vec<(String, Arc<dyn Catalog>)>,
    /// The REST commit endpoint client (REST catalogs only).
    rest: Option<RestCommits>,
    /// DataFusion's runtime shared by every session of this lake: one memory pool of
    /// `lake.memory_limit` (spilling to `lake.spill_dir`), the buckets' object stores.
    runtime: Arc<RuntimeEnv>,
    /// Gold models running at once (`lake.max_parallel_models`), by priority weight.
    models: PrioritySlots,
    /// Tables loaded before, kept while the SQL catalog still points at their metadata file.
    tables: tables::TableCache,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("catalog", &self.inner.settings.lake.catalog_name).finish()
    }
}

impl Lake {
    /// Opens the configured catalog and makes sure the namespaces `silver` and `gold` exist.
    /// SQL: iceberg-catalog-sql on `settings.database_url` (its two tables are created on first
    /// use). REST: `settings.lake.rest.uri`, one warehouse per namespace. Table files go through
    /// the local file system or [`super::s3_io::S3Storage`], as `storage.kind` says.
    pub async fn open(settings: Arc<Settings>, store: Store) -> Result<Lake> {
        let name = settings.lake.catalog_name.clone();
        let factory: Arc<dyn StorageFactory> = match settings.lake.storage {
            StorageKind::Local => Arc::new(iceberg::io::LocalFsStorageFactory),
            StorageKind::S3 => Arc::new(S3StorageFactory::new(settings.lake.s3.clone())),
        };
        let open_err = |source: iceberg::Error| LakeError::open(name.clone(), source);
        let (catalogs, rest) = match settings.lake.catalog_kind {
            CatalogKind::Sql => {
                let catalog = Arc::new(Self::open_sql(&settings, factory).await.map_err(open_err)?) as Arc<dyn Catalog>;
                (NAMESPACES.iter().map(|ns| (ns.to_string(), catalog.clone())).collect(), None)
            }
            CatalogKind::Rest => {
                let mut catalogs = Vec::new();
                for ns in NAMESPACES {
                    let catalog = Self::open_rest(&settings, ns, factory.clone()).await.map_err(open_err)?;
                    catalogs.push((ns.to_string(), Arc::new(catalog) as Arc<dyn Catalog>));
                }
                let commits = RestCommits::new(settings.lake.rest.clone())
                    .map_err(|message| LakeError::Unsupported { catalog: name.clone(), message })?;
                (catalogs, Some(commits))
            }
            CatalogKind::Glue => {
                return Err(LakeError::Unsupported {
                    catalog: name,
                    message: "catalog.type = \"glue\" is not built in: Glue's Iceberg REST endpoint needs \
                              SigV4-signed requests, which iceberg-catalog-rest 0.10 cannot send; use \
                              catalog.type = \"rest\" with an OAuth2 REST catalog, or \"sql\""
                        .into(),
                });
            }
        };
        let runtime = super::session::runtime(&settings)?;
        let models = PrioritySlots::new(settings.lake.max_parallel_models);
        let tables = match settings.lake.catalog_kind {
            CatalogKind::Sql => tables::TableCache::sql(store.clone(), settings.lake.catalog_name.clone()),
            _ => tables::TableCache::none(),
        };
        let lake = Lake { inner: Arc::new(Inner { settings, store, catalogs, rest, runtime, models, tables }) };
        for ns in NAMESPACES {
            lake.ensure_namespace(ns).await?;
        }
        Ok(lake)
    }

    async fn open_sql(settings: &Settings, factory: Arc<dyn StorageFactory>) -> iceberg::Result<SqlCatalog> {
        let postgres = settings.is_postgres();
        // iceberg-catalog-sql rewrites `?` into `$N` itself for DollarNumeric (PostgreSQL); SQLite
        // takes `?` as is.
        let bind_style = if postgres { SqlBindStyle::DollarNumeric } else { SqlBindStyle::QMark };
        // SQLite has one writer anyway; a small pool keeps lock waits short.
        let max_connections = if postgres { settings.database_max_connections.max(2) } else { 2 };
        let props = HashMap::from([
            (SQL_CATALOG_PROP_URI.to_string(), settings.database_url.clone()),
            (SQL_CATALOG_PROP_WAREHOUSE.to_string(), super::warehouse_url(settings, "silver")),
            ("pool.max-connections".to_string(), max_connections.to_string()),
        ]);
        SqlCatalogBuilder::default()
            .sql_bind_style(bind_style)
            .with_storage_factory(factory)
            .load(settings.lake.catalog_name.clone(), props)
            .await
    }

    /// The REST catalog of namespace `ns`'s warehouse. Nothing is requested until first use.
    async fn open_rest(
        settings: &Settings,
        ns: &str,
        factory: Arc<dyn StorageFactory>,
    ) -> iceberg::Result<RestCatalog> {
        let rest = &settings.lake.rest;
        let mut props = HashMap::from([
            (REST_CATALOG_PROP_URI.to_string(), rest.uri.clone()),
            (REST_CATALOG_PROP_WAREHOUSE.to_string(), super::warehouse_url(settings, ns)),
        ]);
        if !rest.credential.is_empty() {
            props.insert("credential".into(), rest.credential.clone());
            props.insert("scope".into(), "catalog".into());
        } else if !rest.token.is_empty() {
            props.insert("token".into(), rest.token.clone());
        }
        RestCatalogBuilder::default()
            .with_storage_factory(factory)
            .load(format!("{}-{ns}", settings.lake.catalog_name), props)
            .await
    }

    /// The catalog that holds namespace `ns`.
    pub fn catalog_for(&self, ns: &str) -> Result<Arc<dyn Catalog>> {
        self.inner.catalogs.iter().find(|(n, _)| n == ns).map(|(_, c)| c.clone()).ok_or_else(|| {
            LakeError::Usage(format!(
                "there is no namespace `{ns}`: tmctl keeps tables in the namespaces {} only",
                NAMESPACES.join(" and ")
            ))
        })
    }

    /// The namespaces and their catalogs.
    pub(crate) fn catalogs(&self) -> &[(String, Arc<dyn Catalog>)] {
        &self.inner.catalogs
    }

    pub(crate) fn rest_commits(&self) -> Option<&RestCommits> {
        self.inner.rest.as_ref()
    }

    /// The DataFusion runtime (memory pool, spill directory, object stores) of this lake.
    pub fn runtime(&self) -> &Arc<RuntimeEnv> {
        &self.inner.runtime
    }

    /// Waits for a gold model slot (`lake.max_parallel_models`); held while the model runs.
    /// Among the models waiting, the one with the highest `priority` (its task's priority
    /// weight) gets the next free slot.
    pub async fn model_slot(&self, priority: u64) -> crate::slots::SlotPermit {
        self.inner.models.acquire(priority).await
    }

    /// Gold models holding a slot now (at least one: the caller's).
    pub(crate) fn models_running(&self) -> usize {
        self.inner.settings.lake.max_parallel_models.saturating_sub(self.inner.models.available()).max(1)
    }

    pub fn catalog_kind(&self) -> CatalogKind {
        self.inner.settings.lake.catalog_kind
    }

    pub fn catalog_name(&self) -> &str {
        &self.inner.settings.lake.catalog_name
    }

    pub fn settings(&self) -> &Arc<Settings> {
        &self.inner.settings
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Where a table lives: `<warehouse of its namespace>/<namespace>/<table>`.
    pub fn table_location(&self, ident: &TableIdent) -> String {
        let ns = ident.namespace().join("/");
        let warehouse = super::warehouse_url(&self.inner.settings, &ident.namespace().join("."));
        format!("{warehouse}/{ns}/{}", ident.name())
    }

    /// Creates namespace `ns` (with its `location` property, which PyIceberg also honours) if it
    /// is missing.
    pub async fn ensure_namespace(&self, ns: &str) -> Result<()> {
        let ident = NamespaceIdent::new(ns.to_string());
        let catalog = self.catalog_for(ns)?;
        let exists = catalog
            .namespace_exists(&ident)
            .await
            .map_err(|source| LakeError::catalog(format!("look up namespace {ns}"), source))?;
        if exists {
            return Ok(());
        }
        // A REST catalog places namespaces in its warehouse itself.
        let props = if self.catalog_kind() == CatalogKind::Sql {
            HashMap::from([(
                "location".to_string(),
                format!("{}/{ns}", super::warehouse_url(&self.inner.settings, ns)),
            )])
        } else {
            HashMap::new()
        };
        match catalog.create_namespace(&ident, props).await {
            Ok(_) => Ok(()),
            // Another process created it in between.
            Err(e) if e.kind() == ErrorKind::NamespaceAlreadyExists => Ok(()),
            Err(source) => {
                if catalog.namespace_exists(&ident).await.unwrap_or(false) {
                    Ok(())
                } else {
                    Err(LakeError::catalog(format!("create namespace {ns}"), source))
                }
            }
        }
    }

    /// Loads a table (its current metadata; with the SQL catalog, the table loaded before if
    /// the catalog still points at the same metadata file).
    pub async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        let catalog = self.catalog_for(&ident.namespace().join("."))?;
        self.inner.tables.load(catalog.as_ref(), ident).await.map_err(load_err(ident))
    }

    /// The rows per partition of table `ident`'s current snapshot (partition values as text, see
    /// [`partition_rows`]), read from its manifests once per metadata file.
    pub async fn partition_rows(&self, ident: &TableIdent) -> Result<PartitionRows> {
        let catalog = self.catalog_for(&ident.namespace().join("."))?;
        self.inner.tables.partition_rows(catalog.as_ref(), ident).await
    }

    pub async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        self.catalog_for(&ident.namespace().join("."))?.table_exists(ident).await.map_err(table_err(ident, "look up"))
    }

    /// The tables of a namespace, sorted by name.
    pub async fn list_tables(&self, namespace: &str) -> Result<Vec<TableIdent>> {
        let ns = NamespaceIdent::new(namespace.to_string());
        let mut tables = self
            .catalog_for(namespace)?
            .list_tables(&ns)
            .await
            .map_err(|source| LakeError::catalog(format!("list the tables of {namespace}"), source))?;
        tables.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(tables)
    }

    /// Returns table `ident`, creating it first if it does not exist: format v2, field ids
    /// assigned from the Arrow schema (types normalised to what Iceberg v2 stores, see
    /// [`iceberg_arrow_schema`]), identity partitions on `identity_partition_columns` (in that
    /// order), located at [`Lake::table_location`]. An existing table is returned as it is, after
    /// checking that it has every column of `schema` and the same partition columns.
    pub async fn ensure_table(
        &self,
        ident: &TableIdent,
        schema: &SchemaRef,
        identity_partition_columns: &[&str],
    ) -> Result<Table> {
        if self.table_exists(ident).await? {
            let table = self.load_table(ident).await?;
            check_existing(ident, &table, schema, identity_partition_columns)?;
            return Ok(table);
        }
        let table_name = display_ident(ident);
        let invalid = |message: String| LakeError::Invalid { table: table_name.clone(), message };
        let normalised = iceberg_arrow_schema(schema).map_err(invalid)?;
        let iceberg_schema = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&normalised)
            .map_err(table_err(ident, "convert the Arrow schema"))?;
        let spec = identity_spec(&iceberg_schema, identity_partition_columns).map_err(invalid)?;
        // A REST catalog chooses table locations itself (some refuse others); the SQL catalog is
        // told where each table goes.
        let location = (self.catalog_kind() == CatalogKind::Sql).then(|| self.table_location(ident));
        let creation = TableCreation::builder()
            .name(ident.name().to_string())
            .location_opt(location)
            .schema(iceberg_schema)
            .partition_spec(spec)
            .properties(TABLE_PROPERTIES.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain([(
                "write.parquet.compression-codec".to_string(),
                codec_for(&ident.namespace().join(".")).to_string(),
            )]))
            .format_version(FormatVersion::V2)
            .build();
        let ns = ident.namespace().join(".");
        self.ensure_namespace(&ns).await?;
        match self.catalog_for(&ns)?.create_table(ident.namespace(), creation).await {
            Ok(table) => {
                tracing::info!(table = %table_name, location = %table.metadata().location(), "created Iceberg table");
                Ok(table)
            }
            Err(e) => {
                // Lost a creation race with another process: use its table.
                if self.table_exists(ident).await.unwrap_or(false) {
                    let table = self.load_table(ident).await?;
                    check_existing(ident, &table, schema, identity_partition_columns)?;
                    Ok(table)
                } else {
                    Err(table_err(ident, "create")(e))
                }
            }
        }
    }

    /// Drops table `ident` (its metadata; data files are left to orphan removal). Used when a
    /// full refresh replaces a derived table whose partitioning changed.
    pub async fn drop_table(&self, ident: &TableIdent) -> Result<()> {
        let ns = ident.namespace().join(".");
        self.inner.tables.forget(ident);
        self.catalog_for(&ns)?.drop_table(ident).await.map_err(table_err(ident, "drop"))
    }

    /// Renames table `from` to `to` (same namespace); `to` must not exist.
    pub async fn rename_table(&self, from: &TableIdent, to: &TableIdent) -> Result<()> {
        let ns = from.namespace().join(".");
        self.inner.tables.forget(from);
        self.catalog_for(&ns)?.rename_table(from, to).await.map_err(table_err(from, "rename"))
    }

    /// Whether table `ident` exists, has a current snapshot and is identity-partitioned by exactly
    /// `partition_columns`: what an incremental run needs to replace partitions of it.
    pub async fn has_data_partitioned_by(&self, ident: &TableIdent, partition_columns: &[&str]) -> Result<bool> {
        if !self.table_exists(ident).await? {
            return Ok(false);
        }
        let table = self.load_table(ident).await?;
        Ok(table.metadata().current_snapshot_id().is_some()
            && identity_partition_columns(&table).iter().map(String::as_str).eq(partition_columns.iter().copied()))
    }

    /// Drops `ident` if it has no snapshot (a table created for a result that was then discarded);
    /// failures are only logged.
    pub async fn drop_if_empty(&self, ident: &TableIdent) {
        let Ok(table) = self.load_table(ident).await else { return };
        if table.metadata().current_snapshot_id().is_some() {
            return;
        }
        let ns = ident.namespace().join(".");
        match self.catalog_for(&ns) {
            Ok(catalog) => {
                if let Err(e) = catalog.drop_table(ident).await {
                    tracing::warn!(table = %display_ident(ident), error = %e, "cannot drop the empty table");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot drop the empty table"),
        }
    }

    /// The snapshots of a table, oldest first.
    pub async fn table_snapshots(&self, ident: &TableIdent) -> Result<Vec<SnapshotInfo>> {
        let table = self.load_table(ident).await?;
        Ok(snapshot_infos(&table))
    }

    /// The id of the snapshot on `main`'s history that carries run key `run_key` (the
    /// `tm.run-key` summary property of [`super::commit::RunKey`]), newest first; `None` if no
    /// commit of this run key is in the table's history.
    pub async fn find_commit(&self, ident: &TableIdent, run_key: &str) -> Result<Option<i64>> {
        let table = self.load_table(ident).await?;
        Ok(find_commit_in(&table, run_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents_parse_and_print() {
        let t = parse_ident("silver.fact_telemetry_event").unwrap();
        assert_eq!(display_ident(&t), "silver.fact_telemetry_event");
        let e = parse_ident("nonamespace").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Iceberg table `nonamespace`: is not a table name like `silver.fact_telemetry_event`"
        );
        assert!(!e.is_transient());
        assert!(parse_ident("a.b.c").is_err());
    }
}
