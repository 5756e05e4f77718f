//! The one place DataFusion sessions are built. [`Lake::session`] makes a fresh `SessionContext`
//! (explicit config: all cores, information_schema on) whose default catalog has one schema per
//! Iceberg namespace (`silver`, `gold`, …), so SQL says `silver.fact_telemetry_event`. Build one
//! per task attempt: the table list is read when the session is built (tables created later are
//! not in it), while the data of a current-state session is re-read at every scan.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::datasource::empty::EmptyTable;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::table::Table;
use iceberg_datafusion::{IcebergCatalogProvider, IcebergStaticTableProvider};

use super::iceberg::{Lake, LakeError, Result, table_err};

/// Which state of the tables a session reads. The default is the current state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Read the table that owns this snapshot as of it; every other table at its current state.
    pub snapshot_id: Option<i64>,
    /// Read every table as of its snapshot current at this time; tables created later are absent,
    /// tables that existed but had no data yet are empty.
    pub as_of: Option<DateTime<Utc>>,
}

impl SessionOptions {
    pub fn current() -> SessionOptions {
        SessionOptions::default()
    }

    pub fn at_snapshot(snapshot_id: i64) -> SessionOptions {
        SessionOptions { snapshot_id: Some(snapshot_id), as_of: None }
    }

    pub fn as_of(time: DateTime<Utc>) -> SessionOptions {
        SessionOptions { snapshot_id: None, as_of: Some(time) }
    }
}

/// The session configuration every tmctl session uses.
pub fn session_config() -> SessionConfig {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut config = SessionConfig::new().with_target_partitions(cores).with_information_schema(true);
    // Iceberg scans carry Parquet field-id metadata that DataFusion 53's aggregate planner
    // compares strictly ("Physical input schema should be the same"); the schemas are equal.
    config.options_mut().execution.skip_physical_aggregate_schema_check = true;
    config
}

/// A session without lake tables (for reading raw files), configured like all others.
pub fn plain_session() -> SessionContext {
    SessionContext::new_with_config(session_config())
}

impl Lake {
    /// A fresh DataFusion session where `<namespace>.<table>` resolves to the Iceberg tables of the
    /// catalog, read as `opts` says. In a current-state session each table also has iceberg's
    /// metadata tables (`silver.t$snapshots`, `$manifests`, …), which `information_schema` lists.
    pub async fn session(&self, opts: &SessionOptions) -> Result<SessionContext> {
        if opts.snapshot_id.is_some() && opts.as_of.is_some() {
            return Err(LakeError::Usage("a session reads at a snapshot id or as of a time, not both".into()));
        }
        let config = session_config();
        let default_catalog = config.options().catalog.default_catalog.clone();
        let ctx = SessionContext::new_with_config(config);
        let schemas: Vec<(String, Arc<dyn SchemaProvider>)> = match (opts.snapshot_id, opts.as_of) {
            (None, None) => {
                // Catalog-backed providers: fresh metadata at every scan; `t$snapshots` etc. too.
                // Each namespace comes from its own catalog (one per REST warehouse; the SQL
                // catalog is asked once).
                let catalogs = self.catalogs();
                let mut schemas = Vec::new();
                for (i, (_, catalog)) in catalogs.iter().enumerate() {
                    if catalogs[..i].iter().any(|(_, earlier)| Arc::ptr_eq(earlier, catalog)) {
                        continue;
                    }
                    let provider = IcebergCatalogProvider::try_new(catalog.clone()).await.map_err(|source| {
                        LakeError::Catalog { action: "list its tables for a session".into(), source: Box::new(source) }
                    })?;
                    schemas.extend(
                        provider.schema_names().into_iter().filter_map(|n| provider.schema(&n).map(|s| (n, s))),
                    );
                }
                schemas
            }
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

    /// Static providers for every table, each pinned to the snapshot `opts` asks for.
    async fn pinned_schemas(&self, opts: &SessionOptions) -> Result<Vec<(String, Arc<dyn SchemaProvider>)>> {
        let mut found_snapshot = false;
        let mut out = Vec::new();
        for (ns_name, _) in self.catalogs() {
            let ns_name = ns_name.clone();
            let schema = Arc::new(MemorySchemaProvider::new());
            for ident in self.list_tables(&ns_name).await? {
                let table = self.load_table(&ident).await?;
                let provider: Option<Arc<dyn TableProvider>> = if let Some(id) = opts.snapshot_id {
                    if table.metadata().snapshot_by_id(id).is_some() {
                        found_snapshot = true;
                        Some(Arc::new(
                            IcebergStaticTableProvider::try_new_from_table_snapshot(table, id)
                                .await
                                .map_err(table_err(&ident, format!("read snapshot {id}")))?,
                        ))
                    } else {
                        Some(Arc::new(
                            IcebergStaticTableProvider::try_new_from_table(table)
                                .await
                                .map_err(table_err(&ident, "read"))?,
                        ))
                    }
                } else if let Some(at) = opts.as_of {
                    as_of_provider(table, at).await.map_err(table_err(&ident, format!("read as of {at}")))?
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

/// The provider that shows `table` as it was at `at`, or `None` if it did not exist then.
async fn as_of_provider(table: Table, at: DateTime<Utc>) -> iceberg::Result<Option<Arc<dyn TableProvider>>> {
    let md = table.metadata();
    let t = at.timestamp_millis();
    let snapshot = md.history().iter().rev().find(|l| l.timestamp_ms <= t).map(|l| l.snapshot_id);
    if let Some(id) = snapshot.filter(|id| md.snapshot_by_id(*id).is_some()) {
        return Ok(Some(Arc::new(IcebergStaticTableProvider::try_new_from_table_snapshot(table, id).await?)));
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
