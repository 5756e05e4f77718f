//! The Iceberg SQL catalog's pointer table, as far as our own commits need it. The tables
//! (`iceberg_tables`, `iceberg_namespace_properties`) are created and otherwise used by
//! iceberg-catalog-sql (and PyIceberg's SqlCatalog); the column names below are theirs.
//! The replace-partitions commit in `lake::commit` swaps a table's metadata pointer here with a
//! compare-and-swap, the SQL catalog's optimistic concurrency.

use super::*;

/// `iceberg_tables.iceberg_type` of a table row (views would say `VIEW`; NULL in rows PyIceberg
/// wrote).
const TABLE_RECORD_TYPE: &str = "TABLE";

impl Store {
    /// Atomically points table `namespace.table` of catalog `catalog` at `new_location`, if and
    /// only if it still points at `expected_location`; the old pointer becomes
    /// `previous_metadata_location`. Returns whether exactly one row changed: `false` means another
    /// writer committed first (or the table is gone), and the caller re-reads and retries.
    pub async fn swap_iceberg_metadata_location(
        &self,
        catalog: &str,
        namespace: &str,
        table: &str,
        expected_location: &str,
        new_location: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 \
             WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5 \
             AND (iceberg_type = $6 OR iceberg_type IS NULL) AND metadata_location = $7",
        )
        .bind(new_location)
        .bind(expected_location)
        .bind(catalog)
        .bind(namespace)
        .bind(table)
        .bind(TABLE_RECORD_TYPE)
        .bind(expected_location)
        .execute(self.pool())
        .await
        .ctx("swap Iceberg metadata location")?;
        Ok(done.rows_affected() == 1)
    }

    /// Where table `namespace.table` of catalog `catalog` points now (`None`: no such table).
    pub async fn iceberg_metadata_location(
        &self,
        catalog: &str,
        namespace: &str,
        table: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT metadata_location FROM iceberg_tables \
             WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3 \
             AND (iceberg_type = $4 OR iceberg_type IS NULL)",
        )
        .bind(catalog)
        .bind(namespace)
        .bind(table)
        .bind(TABLE_RECORD_TYPE)
        .fetch_optional(self.pool())
        .await
        .ctx("read Iceberg metadata location")?;
        match row {
            Some(r) => get_opt_str(&r, "metadata_location"),
            None => Ok(None),
        }
    }
}
