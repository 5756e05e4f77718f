//! Reading a loaded table's snapshots and manifests: rows per partition, snapshot history for
//! the UI, and the commit of a run key.

use std::collections::BTreeMap;

use chrono::DateTime;
use iceberg::TableIdent;
use iceberg::table::Table;

use super::errors::Result;
use super::{SnapshotInfo, table_err};

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
        if snap.summary().additional_properties.get(crate::lake::commit::PROP_RUN_KEY).map(String::as_str)
            == Some(run_key)
        {
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
