//! Compaction: the small data files of a partition (smaller than the target size) are read and
//! written again as files of about the target size, and one `replace` snapshot swaps exactly
//! those files for the new ones ([`crate::lake::commit::StagedFiles::rewrite`]). If another
//! commit replaced any of the files meanwhile, the rewrite fails and changes nothing, so a
//! concurrent silver or gold run never loses its rows to a compaction. The rows are the same
//! before and after (the row count is checked before the commit). Replaced files stay on storage
//! for the older snapshots until those expire.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use iceberg::TableIdent;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataContentType, ManifestContentType};
use serde::Serialize;

use super::TableReport;
use crate::lake::RunKey;
use crate::lake::iceberg::{Lake, LakeError, Result, display_ident, table_err};
use crate::lake::scan::{DataFileRef, LakeTable};
use crate::lake::session::SessionOptions;

/// What [`Lake::compact`] rewrites.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Files smaller than this are rewritten, into files of about this size.
    pub target_file_size: u64,
    /// Only the partition with this path (`course_id=A/ingest_date=2025-01-03`).
    pub partition: Option<String>,
    pub dry_run: bool,
}

/// One partition's rewrite.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Compacted {
    /// The partition path (`course_id=A/ingest_date=2025-01-03`; empty when unpartitioned).
    pub partition: String,
    pub files_before: u64,
    pub bytes_before: u64,
    /// Files written (an estimate from the target size in a dry run).
    pub files_after: u64,
    pub bytes_after: u64,
    pub rows: u64,
    pub snapshot_id: Option<i64>,
}

pub(super) async fn compact_table(lake: &Lake, ident: &TableIdent, options: &CompactOptions) -> Result<TableReport> {
    let mut report = TableReport::new(ident);
    let table = lake.load_table(ident).await?;
    let md = table.metadata();
    let Some(snapshot) = md.current_snapshot() else { return Ok(report) };
    let spec = md.default_partition_spec().clone();
    let schema = md.current_schema().clone();
    // Live data files of the current partition spec, by partition path.
    let mut groups: BTreeMap<String, Vec<DataFileRef>> = BTreeMap::new();
    let list = table.manifest_list_reader(snapshot).load().await.map_err(table_err(ident, "read the manifest list"))?;
    for m in list.entries().iter().filter(|m| m.content == ManifestContentType::Data) {
        if m.partition_spec_id != spec.spec_id() {
            continue; // files of an older partition spec are left alone
        }
        let manifest = m.load_manifest(table.file_io()).await.map_err(table_err(ident, "read a manifest"))?;
        for e in manifest.entries().iter().filter(|e| e.is_alive() && e.content_type() == DataContentType::Data) {
            let f = e.data_file();
            if f.file_size_in_bytes() >= options.target_file_size {
                continue;
            }
            let path = if spec.is_unpartitioned() {
                String::new()
            } else {
                spec.partition_to_path(f.partition(), schema.clone())
            };
            groups.entry(path).or_default().push(DataFileRef {
                path: f.file_path().to_string(),
                size: f.file_size_in_bytes(),
                rows: f.record_count(),
            });
        }
    }
    groups.retain(|path, files| files.len() >= 2 && options.partition.as_ref().is_none_or(|p| p == path));
    let arrow_schema = schema_to_arrow_schema(&schema).map_err(table_err(ident, "map its schema"))?;
    let today = chrono::Utc::now().date_naive();
    for (path, files) in groups {
        let mut done = Compacted {
            partition: path.clone(),
            files_before: files.len() as u64,
            bytes_before: files.iter().map(|f| f.size).sum(),
            rows: files.iter().map(|f| f.rows).sum(),
            ..Default::default()
        };
        if options.dry_run {
            done.files_after = done.bytes_before.div_ceil(options.target_file_size.max(1)).max(1);
            report.compacted.push(done);
            continue;
        }
        let run_key = RunKey::new("maintenance", "compact", today).with_scope(if path.is_empty() {
            "all".into()
        } else {
            path.clone()
        });
        let mut writer = lake.writer_sized(table.clone(), run_key, options.target_file_size)?.force();
        let ctx = lake.session(&SessionOptions::current()).await?;
        let input =
            LakeTable::files(format!("{} (compaction input)", display_ident(ident)), &arrow_schema, files.clone());
        ctx.register_table("tm_compaction_input", Arc::new(input)).map_err(session_err)?;
        let stream = async { ctx.sql("SELECT * FROM tm_compaction_input").await?.execute_stream().await }
            .await
            .map_err(session_err)?;
        let mut stream = stream;
        while let Some(batch) = stream.try_next().await.map_err(session_err)? {
            writer.write(batch).await?;
        }
        if writer.rows_written() != done.rows {
            let message = format!(
                "compacting {path}: read {} rows from files whose manifests say {}; nothing was changed",
                writer.rows_written(),
                done.rows
            );
            writer.abort().await;
            return Err(LakeError::Invalid { table: display_ident(ident), message });
        }
        let staged = writer.stage().await?;
        let written = staged.files();
        done.files_after = written.len() as u64;
        done.bytes_after = written.iter().map(|f| f.size).sum();
        let outcome = staged.rewrite(files.iter().map(|f| f.path.clone()).collect()).await?;
        done.snapshot_id = Some(outcome.snapshot_id);
        tracing::info!(
            table = %report.table, partition = %path, files_before = done.files_before, files_after = done.files_after,
            rows = done.rows, "compacted a partition"
        );
        report.compacted.push(done);
    }
    Ok(report)
}

fn session_err(e: datafusion::error::DataFusionError) -> LakeError {
    LakeError::Session { source: Box::new(e) }
}

/// `128MiB`, `64MB`, `1GiB`, `1048576`: a size in bytes.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number.parse().map_err(|_| format!("invalid size \"{text}\": expected e.g. 128MiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("invalid size \"{text}\": use B, KiB, MiB, GiB, KB, MB or GB")),
    };
    let bytes = n.checked_mul(factor).ok_or_else(|| format!("invalid size \"{text}\": too large"))?;
    if bytes == 0 {
        return Err(format!("invalid size \"{text}\": must be more than 0"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }
}
