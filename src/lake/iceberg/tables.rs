//! Loaded tables kept while the SQL catalog still points at their metadata file.
//!
//! An Iceberg metadata file is never rewritten: a commit writes a new one and swaps the
//! catalog's pointer. So a table loaded from the file the catalog points at now is exactly the
//! table a fresh load would give. With the SQL catalog, looking the pointer up is one indexed row
//! of `iceberg_tables`, where a load reads and parses the whole metadata file (a JSON that grows
//! with every snapshot: ~100 KB for a gold table after ten runs) and, for a scan, its manifest
//! list and manifests again. A kept table also keeps iceberg's manifest cache (its
//! `ObjectCache`, at most 32 MiB per table), so the next scan of the same snapshot plans from
//! memory; and its rows per partition ([`super::partition_rows`]), once asked for, are kept
//! with it. The UI, which opens a session and loads every table on each request, and the
//! lakehouse pages' metadata counts gain most.
//!
//! A REST catalog gives no cheap pointer: its tables are loaded every time, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iceberg::table::Table;
use iceberg::{Catalog, TableIdent};
use tokio::sync::OnceCell;

use crate::store::Store;

/// Rows per partition of a table's current snapshot: partition values (as text) and rows.
pub type PartitionRows = Arc<Vec<(Vec<String>, u64)>>;

/// A table as loaded, with what has been worked out from its metadata since.
#[derive(Clone)]
struct Kept {
    table: Table,
    partitions: Arc<OnceCell<PartitionRows>>,
}

/// The tables of one SQL catalog, by identifier (one entry per table: the latest load).
pub(super) struct TableCache {
    /// The state DB (where the SQL catalog keeps `iceberg_tables`) and the catalog's name;
    /// `None` for a REST catalog (nothing is kept).
    pointer: Option<(Store, String)>,
    tables: Mutex<HashMap<TableIdent, Kept>>,
}

impl TableCache {
    pub(super) fn sql(store: Store, catalog_name: String) -> TableCache {
        TableCache { pointer: Some((store, catalog_name)), tables: Mutex::default() }
    }

    pub(super) fn none() -> TableCache {
        TableCache { pointer: None, tables: Mutex::default() }
    }

    /// Table `ident` as the catalog points at it now: the kept one if the pointer has not moved
    /// since, else loaded through `catalog` (and kept).
    pub(super) async fn load(&self, catalog: &dyn Catalog, ident: &TableIdent) -> iceberg::Result<Table> {
        Ok(self.load_kept(catalog, ident).await?.table)
    }

    /// Rows per partition of table `ident`'s current snapshot, read from its manifests once per
    /// metadata file (with a REST catalog, every time).
    pub(super) async fn partition_rows(
        &self,
        catalog: &dyn Catalog,
        ident: &TableIdent,
    ) -> super::Result<PartitionRows> {
        let kept = self.load_kept(catalog, ident).await.map_err(super::load_err(ident))?;
        let rows = kept
            .partitions
            .get_or_try_init(|| async { super::partition_rows(ident, &kept.table).await.map(Arc::new) })
            .await?;
        Ok(rows.clone())
    }

    async fn load_kept(&self, catalog: &dyn Catalog, ident: &TableIdent) -> iceberg::Result<Kept> {
        let fresh = |table: Table| Kept { table, partitions: Arc::default() };
        let Some((store, name)) = &self.pointer else { return Ok(fresh(catalog.load_table(ident).await?)) };
        let namespace = ident.namespace().join(".");
        // A failed look-up only costs the shortcut: the catalog's own load says what is wrong.
        if let Ok(Some(location)) = store.iceberg_metadata_location(name, &namespace, ident.name()).await
            && let Some(kept) = self.kept(ident, &location)
        {
            return Ok(kept);
        }
        let kept = fresh(catalog.load_table(ident).await?);
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(ident.clone(), kept.clone());
        }
        Ok(kept)
    }

    fn kept(&self, ident: &TableIdent, location: &str) -> Option<Kept> {
        let tables = self.tables.lock().ok()?;
        tables.get(ident).filter(|k| k.table.metadata_location() == Some(location)).cloned()
    }

    /// Forgets table `ident` (dropped or renamed).
    pub(super) fn forget(&self, ident: &TableIdent) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.remove(ident);
        }
    }
}
