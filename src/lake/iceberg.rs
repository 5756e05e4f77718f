//! The Iceberg catalog `tm`: iceberg-catalog-sql on the state DB (SQLite file or PostgreSQL), so
//! PyIceberg's `SqlCatalog("tm", uri=…)` on the same database sees the same tables, or an Iceberg
//! REST catalog (`catalog.type = "rest"`, one warehouse per namespace). [`Lake`] owns the catalog
//! handles, the namespaces `silver` (source bucket) and `gold` (serve bucket), table creation,
//! and snapshot look-ups (run keys, history).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use datafusion::execution::runtime_env::RuntimeEnv;
use iceberg::io::StorageFactory;
use iceberg::spec::{FormatVersion, Schema as IcebergSchema, Transform, UnboundPartitionSpec};
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalog, RestCatalogBuilder};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlBindStyle, SqlCatalog, SqlCatalogBuilder,
};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::rest::RestCommits;
use super::s3_io::S3StorageFactory;
use crate::config::{CatalogKind, Settings, StorageKind};
use crate::store::{Store, StoreError};

/// The namespaces tmctl creates and reads.
pub const NAMESPACES: &[&str] = &["silver", "gold"];

/// Table properties every table gets (PyIceberg and Spark read them too).
const TABLE_PROPERTIES: &[(&str, &str)] =
    &[("write.format.default", "parquet"), ("write.parquet.compression-codec", "zstd"), ("created-by", "tmctl")];

/// Errors of the lakehouse layer. Each names the table (or catalog) it is about.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("cannot open the Iceberg catalog `{catalog}`: {}{source}", fault.hint())]
    Open {
        catalog: String,
        fault: CatalogFault,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("Iceberg catalog `{catalog}`: {message}")]
    Unsupported { catalog: String, message: String },
    #[error("Iceberg catalog: cannot {action}: {}{source}", fault.hint())]
    Catalog {
        action: String,
        fault: CatalogFault,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("Iceberg table {table} does not exist")]
    NoSuchTable { table: String },
    #[error("Iceberg table {table}: cannot {action}: {source}")]
    Table {
        table: String,
        action: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("Iceberg table {table}: {message}")]
    Invalid { table: String, message: String },
    #[error("Iceberg table {table}: the commit failed: {message}")]
    CommitFailed { table: String, message: String },
    #[error("Iceberg table {table}: the catalog refused the commit: {message}")]
    CommitRefused { table: String, message: String },
    #[error("Iceberg table {table}: commit lost the race {attempts} times in a row; giving up")]
    Conflict { table: String, attempts: u32 },
    #[error("Iceberg table {table}: {source}")]
    Store {
        table: String,
        #[source]
        source: StoreError,
    },
    /// A request that cannot be served as asked (bad options, not a table name).
    #[error("{0}")]
    Usage(String),
    #[error("no Iceberg table has snapshot {snapshot_id}")]
    SnapshotNotFound { snapshot_id: i64 },
    #[error("cannot build a DataFusion session: {source}")]
    Session {
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
}

/// What a catalog failure means for whoever handles it, decided once where the error is made:
/// refused credentials and an unreachable catalog are the two usual mistakes, and only the first
/// fails the same way every time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFault {
    /// The REST catalog refused the credentials (HTTP 401/403, OAuth `invalid_client`).
    Credentials,
    /// The catalog did not answer (connection refused, timeout).
    Unreachable,
    /// Anything else (a failed request, a database error): may pass on a retry.
    Other,
}

impl CatalogFault {
    /// Classifies an error of the Iceberg catalog crates. A transport failure is recognised by
    /// its `reqwest` source; iceberg-catalog-rest keeps an HTTP status only in the error's text
    /// (its context has no accessor), so statuses are read from there.
    pub fn of(e: &iceberg::Error) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(c) = cause {
            if let Some(r) = c.downcast_ref::<reqwest::Error>() {
                if r.status().is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) {
                    return CatalogFault::Credentials;
                }
                if r.is_connect() || r.is_timeout() {
                    return CatalogFault::Unreachable;
                }
            }
            cause = c.source();
        }
        let text = e.to_string();
        if text.contains("401 Unauthorized") || text.contains("403 Forbidden") || text.contains("invalid_client") {
            CatalogFault::Credentials
        } else if text.contains("error sending request") || text.contains("Connection refused") {
            CatalogFault::Unreachable
        } else {
            CatalogFault::Other
        }
    }

    /// A lead-in for the error message naming the setting to check.
    fn hint(self) -> &'static str {
        match self {
            CatalogFault::Credentials => {
                "the REST catalog refused the credentials (check catalog.rest_credential / \
                 TM_ICEBERG_REST_CREDENTIAL or catalog.rest_token / TM_ICEBERG_REST_TOKEN): "
            }
            CatalogFault::Unreachable => {
                "cannot reach the REST catalog (check catalog.rest_uri / TM_ICEBERG_REST_URI and that it runs): "
            }
            CatalogFault::Other => "",
        }
    }
}

impl LakeError {
    /// The catalog could not be opened.
    pub fn open(catalog: impl Into<String>, source: iceberg::Error) -> Self {
        LakeError::Open { catalog: catalog.into(), fault: CatalogFault::of(&source), source: Box::new(source) }
    }

    /// A catalog call (namespaces, table lists) failed.
    pub fn catalog(action: impl Into<String>, source: iceberg::Error) -> Self {
        LakeError::Catalog { action: action.into(), fault: CatalogFault::of(&source), source: Box::new(source) }
    }

    /// Whether trying again may help (I/O, the database, a lost commit race, an unreachable
    /// catalog), as opposed to bad input, a missing table or refused credentials, which fail the
    /// same way every time.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            LakeError::Open { fault: CatalogFault::Credentials, .. }
                | LakeError::Catalog { fault: CatalogFault::Credentials, .. }
                | LakeError::Invalid { .. }
                | LakeError::Usage(_)
                | LakeError::Unsupported { .. }
                | LakeError::CommitRefused { .. }
                | LakeError::NoSuchTable { .. }
                | LakeError::SnapshotNotFound { .. }
        )
    }
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

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
    /// Gold models running at once (`lake.max_parallel_models`).
    models: Arc<Semaphore>,
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
        let models = Arc::new(Semaphore::new(settings.lake.max_parallel_models.max(1)));
        let lake = Lake { inner: Arc::new(Inner { settings, store, catalogs, rest, runtime, models }) };
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
    pub async fn model_slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        // The semaphore is never closed.
        self.inner.models.clone().acquire_owned().await.expect("model semaphore open")
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

    /// Loads a table (its current metadata).
    pub async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        match self.catalog_for(&ident.namespace().join("."))?.load_table(ident).await {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == ErrorKind::TableNotFound => {
                Err(LakeError::NoSuchTable { table: display_ident(ident) })
            }
            Err(e) => Err(table_err(ident, "load")(e)),
        }
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
            .properties(TABLE_PROPERTIES.iter().map(|(k, v)| (k.to_string(), v.to_string())))
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
        self.catalog_for(&ns)?.drop_table(ident).await.map_err(table_err(ident, "drop"))
    }

    /// Renames table `from` to `to` (same namespace); `to` must not exist.
    pub async fn rename_table(&self, from: &TableIdent, to: &TableIdent) -> Result<()> {
        let ns = from.namespace().join(".");
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

/// Snapshots of a loaded table, oldest first.
/// Rows per partition of `table`'s current snapshot, from its manifests (no data file is
/// opened): each partition's values as text, in the partition spec's field order (dates as
/// YYYY-MM-DD, NULL as "NULL"), with its rows, sorted by the values.
pub async fn partition_rows(ident: &TableIdent, table: &Table) -> Result<Vec<(Vec<String>, u64)>> {
    use iceberg::spec::{Literal, ManifestContentType, PrimitiveLiteral, PrimitiveType, Type};
    let md = table.metadata();
    let Some(snapshot) = md.current_snapshot() else { return Ok(Vec::new()) };
    let list = table.manifest_list_reader(snapshot).load().await.map_err(table_err(ident, "read the manifest list"))?;
    let mut counts: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for m in list.entries().iter().filter(|m| m.content == ManifestContentType::Data) {
        let types: Vec<Option<Type>> = md
            .partition_spec_by_id(m.partition_spec_id)
            .and_then(|spec| spec.partition_type(md.current_schema()).ok())
            .map(|t| t.fields().iter().map(|f| Some((*f.field_type).clone())).collect())
            .unwrap_or_default();
        let manifest = m.load_manifest(table.file_io()).await.map_err(table_err(ident, "read a manifest"))?;
        for e in manifest.entries().iter().filter(|e| e.is_alive()) {
            let file = e.data_file();
            let key = file
                .partition()
                .iter()
                .enumerate()
                .map(|(i, v)| match (v, types.get(i).cloned().flatten()) {
                    (None, _) => "NULL".to_string(),
                    (
                        Some(Literal::Primitive(PrimitiveLiteral::Int(days))),
                        Some(Type::Primitive(PrimitiveType::Date)),
                    ) => (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                        + chrono::Duration::days((*days).into()))
                    .to_string(),
                    (Some(Literal::Primitive(PrimitiveLiteral::String(s))), _) => s.clone(),
                    (Some(Literal::Primitive(PrimitiveLiteral::Int(n))), _) => n.to_string(),
                    (Some(Literal::Primitive(PrimitiveLiteral::Long(n))), _) => n.to_string(),
                    (Some(Literal::Primitive(PrimitiveLiteral::Boolean(b))), _) => b.to_string(),
                    (Some(other), _) => format!("{other:?}"),
                })
                .collect();
            *counts.entry(key).or_default() += file.record_count();
        }
    }
    Ok(counts.into_iter().collect())
}

pub fn snapshot_infos(table: &Table) -> Vec<SnapshotInfo> {
    let md = table.metadata();
    let current = md.current_snapshot_id();
    let mut out: Vec<SnapshotInfo> = md
        .snapshots()
        .map(|s| SnapshotInfo {
            id: s.snapshot_id(),
            parent: s.parent_snapshot_id(),
            sequence_number: s.sequence_number(),
            timestamp: DateTime::from_timestamp_millis(s.timestamp_ms()).unwrap_or_default(),
            operation: s.summary().operation.as_str().to_string(),
            summary: s.summary().additional_properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            current: Some(s.snapshot_id()) == current,
        })
        .collect();
    out.sort_by_key(|s| (s.sequence_number, s.timestamp, s.id));
    out
}

/// Walks `main` from its head back through parents and returns the first snapshot whose
/// `tm.run-key` is `run_key`.
pub(crate) fn find_commit_in(table: &Table, run_key: &str) -> Option<i64> {
    let md = table.metadata();
    let mut next = md.current_snapshot_id();
    let mut hops = 0usize;
    while let Some(id) = next {
        let snap = md.snapshot_by_id(id)?;
        if snap.summary().additional_properties.get(super::commit::PROP_RUN_KEY).map(String::as_str) == Some(run_key) {
            return Some(id);
        }
        next = snap.parent_snapshot_id();
        hops += 1;
        if hops > md.snapshots().len() {
            break; // a parent cycle would be corrupt metadata; do not loop
        }
    }
    None
}

/// The Arrow schema with every type mapped to one Iceberg v2 can store without loss of meaning:
/// timestamps become microseconds (keeping their time zone), small and unsigned integers widen,
/// large/view strings and binaries become plain ones, `Date64` becomes `Date32`. Nested types are
/// mapped recursively. Batches written later are cast to the table's schema.
pub fn iceberg_arrow_schema(schema: &SchemaRef) -> Result<ArrowSchema, String> {
    let fields = schema.fields().iter().map(|f| normalise_field(f)).collect::<Result<Vec<Field>, String>>()?;
    Ok(ArrowSchema::new(fields))
}

fn normalise_field(field: &Field) -> Result<Field, String> {
    let data_type = normalise_type(field.name(), field.data_type())?;
    // Field ids are assigned by the catalog conversion; drop any stale ones.
    Ok(Field::new(field.name(), data_type, field.is_nullable()))
}

fn normalise_type(name: &str, t: &DataType) -> Result<DataType, String> {
    Ok(match t {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => return Err(format!("column `{name}` is UInt64, which Iceberg cannot store; cast it")),
        DataType::Float16 => DataType::Float32,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Date64 => DataType::Date32,
        DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
        DataType::Dictionary(_, value) => normalise_type(name, value)?,
        DataType::List(inner) | DataType::LargeList(inner) | DataType::ListView(inner) => {
            DataType::List(Arc::new(normalise_field(inner)?))
        }
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| normalise_field(f)).collect::<Result<Vec<Field>, String>>()?.into())
        }
        DataType::Map(entries, sorted) => DataType::Map(Arc::new(normalise_field(entries)?), *sorted),
        DataType::Null => return Err(format!("column `{name}` has type Null; give it a real type")),
        other => other.clone(),
    })
}

fn identity_spec(schema: &IcebergSchema, columns: &[&str]) -> Result<UnboundPartitionSpec, String> {
    let mut builder = UnboundPartitionSpec::builder();
    for col in columns {
        let field = schema
            .field_by_name(col)
            .ok_or_else(|| format!("partition column `{col}` is not a column of the schema"))?;
        if !field.field_type.is_primitive() {
            return Err(format!("partition column `{col}` must have a primitive type"));
        }
        builder = builder
            .add_partition_field(field.id, col.to_string(), Transform::Identity)
            .map_err(|e| format!("cannot partition by `{col}`: {e}"))?;
    }
    Ok(builder.build())
}

/// An existing table must have every requested column and the same identity partition columns.
/// A table's partition columns: the column name for identity partitions, `transform(column)`
/// for others.
/// The default partition spec's fields, in order: the source column of an identity field, or
/// `transform(column)` (the order [`partition_rows`] gives values in).
pub fn identity_partition_columns(table: &Table) -> Vec<String> {
    let md = table.metadata();
    let current = md.current_schema();
    md.default_partition_spec()
        .fields()
        .iter()
        .map(|pf| {
            let source = current.field_by_id(pf.source_id).map(|f| f.name.clone()).unwrap_or_default();
            if pf.transform == Transform::Identity { source } else { format!("{}({source})", pf.transform) }
        })
        .collect()
}

fn check_existing(ident: &TableIdent, table: &Table, schema: &SchemaRef, partition_columns: &[&str]) -> Result<()> {
    let md = table.metadata();
    let current = md.current_schema();
    let missing: Vec<&str> =
        schema.fields().iter().map(|f| f.name().as_str()).filter(|n| current.field_by_name(n).is_none()).collect();
    if !missing.is_empty() {
        return Err(LakeError::Invalid {
            table: display_ident(ident),
            message: format!("exists without column(s) {} (schema evolution is not supported yet)", missing.join(", ")),
        });
    }
    let have = identity_partition_columns(table);
    if have.iter().map(String::as_str).ne(partition_columns.iter().copied()) {
        return Err(LakeError::Invalid {
            table: display_ident(ident),
            message: format!(
                "exists partitioned by [{}], not by identity [{}]",
                have.join(", "),
                partition_columns.join(", ")
            ),
        });
    }
    Ok(())
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

    #[test]
    fn catalog_faults_decide_what_is_retried() {
        let refused = iceberg::Error::new(ErrorKind::DataInvalid, "OAuthError: invalid_client");
        assert_eq!(CatalogFault::of(&refused), CatalogFault::Credentials);
        let e = LakeError::open("tm", refused);
        assert!(!e.is_transient());
        assert!(e.to_string().contains("refused the credentials"), "{e}");
        let status = iceberg::Error::new(ErrorKind::Unexpected, "Received response with unexpected status code")
            .with_context("status", "403 Forbidden");
        assert!(!LakeError::catalog("list the tables of gold", status).is_transient());
        let down =
            iceberg::Error::new(ErrorKind::Unexpected, "error sending request for url (http://127.0.0.1:1/v1/config)");
        let e = LakeError::catalog("look up namespace gold", down);
        assert!(matches!(e, LakeError::Catalog { fault: CatalogFault::Unreachable, .. }));
        assert!(e.is_transient());
        assert!(e.to_string().contains("cannot reach the REST catalog"), "{e}");
        let other = iceberg::Error::new(ErrorKind::Unexpected, "database is locked");
        let e = LakeError::catalog("list the tables of gold", other);
        assert!(e.is_transient());
        assert!(!e.to_string().contains("check catalog."), "{e}");
    }

    #[test]
    fn arrow_types_are_normalised_for_iceberg() {
        let schema: SchemaRef = Arc::new(ArrowSchema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), true),
            Field::new("small", DataType::Int16, false),
            Field::new("s", DataType::LargeUtf8, true),
        ]));
        let n = iceberg_arrow_schema(&schema).unwrap();
        assert_eq!(n.field(0).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert_eq!(n.field(1).data_type(), &DataType::Int32);
        assert!(!n.field(1).is_nullable());
        assert_eq!(n.field(2).data_type(), &DataType::Utf8);
        let bad: SchemaRef = Arc::new(ArrowSchema::new(vec![Field::new("u", DataType::UInt64, true)]));
        assert!(iceberg_arrow_schema(&bad).unwrap_err().contains("`u`"));
    }
}
