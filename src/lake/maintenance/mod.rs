//! Iceberg table maintenance: [`Lake::expire_snapshots`] (old snapshots leave the metadata through
//! the same compare-and-swap / REST commit as every write, then the files only they referenced
//! are deleted), [`Lake::remove_orphans`] (files under a table's location that no metadata of
//! any table references, older than a limit) and [`Lake::compact`] (a partition's small files
//! rewritten in one `replace` commit). Both can run dry, list every file with its size and
//! report the files and bytes freed. `tmctl lake …` (`cli/lake.rs`) and the `lake.maintenance`
//! task kind call them.
//!
//! `files.rs` lists, sizes and deletes table files on the local disk or S3; `refs.rs` reads which
//! files snapshots reference; `expire.rs`, `orphans.rs` and `compact.rs` are the operations.

mod compact;
mod expire;
mod files;
mod orphans;
mod refs;

use std::time::Duration;

use iceberg::TableIdent;
use serde::Serialize;

pub use self::compact::{CompactOptions, Compacted, parse_size};

use super::iceberg::{Lake, LakeError, NAMESPACES, Result, parse_ident};

/// `tmctl lake expire-snapshots` defaults: Iceberg's `history.expire.max-snapshot-age-ms` is
/// 5 days; a team that time-travels a month back wants 30.
pub const DEFAULT_EXPIRE_OLDER_THAN: Duration = Duration::from_secs(30 * 86_400);
pub const DEFAULT_RETAIN_LAST: usize = 10;
/// `tmctl lake remove-orphans` default, Iceberg's own: no writer stages files for 3 days.
pub const DEFAULT_ORPHAN_OLDER_THAN: Duration = Duration::from_secs(3 * 86_400);

/// What [`Lake::expire_snapshots`] removes: snapshots older than `older_than`, except the
/// `retain_last` newest of every branch, every branch head and tag, and the current snapshot.
#[derive(Debug, Clone)]
pub struct ExpireOptions {
    pub older_than: Duration,
    pub retain_last: usize,
    /// List what would go; change nothing.
    pub dry_run: bool,
}

impl Default for ExpireOptions {
    fn default() -> Self {
        ExpireOptions { older_than: DEFAULT_EXPIRE_OLDER_THAN, retain_last: DEFAULT_RETAIN_LAST, dry_run: false }
    }
}

/// What [`Lake::remove_orphans`] removes: files under a table's location that no metadata
/// references and that were last written more than `older_than` ago.
#[derive(Debug, Clone)]
pub struct OrphanOptions {
    pub older_than: Duration,
    pub dry_run: bool,
}

impl Default for OrphanOptions {
    fn default() -> Self {
        OrphanOptions { older_than: DEFAULT_ORPHAN_OLDER_THAN, dry_run: false }
    }
}

/// The role of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Data,
    /// Position or equality delete files.
    Deletes,
    Manifest,
    ManifestList,
    Metadata,
    /// Anything else found under a table location (orphans only).
    Other,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Data => "data",
            FileKind::Deletes => "deletes",
            FileKind::Manifest => "manifest",
            FileKind::ManifestList => "manifest-list",
            FileKind::Metadata => "metadata",
            FileKind::Other => "other",
        }
    }
}

/// One file that was (or, dry, would be) deleted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedFile {
    pub path: String,
    pub kind: FileKind,
    /// Bytes; 0 when the file was already gone.
    pub size: u64,
}

/// What maintenance did to one table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    pub table: String,
    /// Snapshots removed from the metadata (expire only).
    pub expired_snapshots: Vec<i64>,
    /// Snapshots the table keeps.
    pub retained_snapshots: usize,
    /// Files deleted (or that would be, dry).
    pub files: Vec<RemovedFile>,
    pub files_freed: u64,
    pub bytes_freed: u64,
    /// Files that could not be deleted (each with its error); the operation can simply run again.
    pub failed: Vec<String>,
    /// Partitions rewritten (compact only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compacted: Vec<Compacted>,
}

impl TableReport {
    fn new(ident: &TableIdent) -> TableReport {
        TableReport { table: super::display_ident(ident), ..Default::default() }
    }

    fn add(&mut self, file: RemovedFile) {
        self.files_freed += 1;
        self.bytes_freed += file.size;
        self.files.push(file);
    }
}

/// What one maintenance command did, over all its tables.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `expire-snapshots`, `remove-orphans` or `compact`.
    pub action: &'static str,
    pub dry_run: bool,
    pub tables: Vec<TableReport>,
    pub expired_snapshots: u64,
    pub files_freed: u64,
    pub bytes_freed: u64,
    pub failed: u64,
}

impl Report {
    fn new(action: &'static str, dry_run: bool, tables: Vec<TableReport>) -> Report {
        Report {
            action,
            dry_run,
            expired_snapshots: tables.iter().map(|t| t.expired_snapshots.len() as u64).sum(),
            files_freed: tables.iter().map(|t| t.files_freed).sum(),
            bytes_freed: tables.iter().map(|t| t.bytes_freed).sum(),
            failed: tables.iter().map(|t| t.failed.len() as u64).sum(),
            tables,
        }
    }
}

impl Lake {
    /// The tables maintenance works on: `table` (`namespace.table`), or every table of the
    /// namespaces `silver` and `gold`.
    pub async fn maintenance_tables(&self, table: Option<&str>) -> Result<Vec<TableIdent>> {
        if let Some(name) = table {
            let ident = parse_ident(name)?;
            if !self.table_exists(&ident).await? {
                return Err(LakeError::NoSuchTable { table: name.to_string() });
            }
            return Ok(vec![ident]);
        }
        let mut all = Vec::new();
        for ns in NAMESPACES {
            all.extend(self.list_tables(ns).await?);
        }
        Ok(all)
    }

    /// Expires old snapshots of `tables` (see [`ExpireOptions`]); see `expire.rs`.
    pub async fn expire_snapshots(&self, tables: &[TableIdent], options: &ExpireOptions) -> Result<Report> {
        let mut reports = Vec::new();
        for ident in tables {
            reports.push(expire::expire_table(self, ident, options).await?);
        }
        Ok(Report::new("expire-snapshots", options.dry_run, reports))
    }

    /// Deletes files under the locations of `tables` that no table's metadata references (see
    /// [`OrphanOptions`]); see `orphans.rs`.
    pub async fn remove_orphans(&self, tables: &[TableIdent], options: &OrphanOptions) -> Result<Report> {
        let reports = orphans::remove_orphans(self, tables, options).await?;
        Ok(Report::new("remove-orphans", options.dry_run, reports))
    }

    /// Rewrites the small data files of each partition of `tables` into files of about the
    /// target size (see [`CompactOptions`]); see `compact.rs`.
    pub async fn compact(&self, tables: &[TableIdent], options: &CompactOptions) -> Result<Report> {
        let mut reports = Vec::new();
        for ident in tables {
            reports.push(compact::compact_table(self, ident, options).await?);
        }
        Ok(Report::new("compact", options.dry_run, reports))
    }
}

/// `1536` → `1.5 KiB`: sizes as people read them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(128 * 1024 * 1024), "128.0 MiB");
    }
}
