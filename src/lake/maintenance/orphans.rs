//! Orphan files: files under a table's location that no metadata references. The locations of
//! the chosen tables are listed first; then every table of every namespace is loaded and all it
//! references is collected (current metadata file, the metadata log, statistics files, and for
//! every snapshot its manifest list, manifests and their entries' files, deleted entries
//! included), so a commit landing during the listing counts as referenced. All tables count,
//! not only the chosen ones, because table locations can nest or coincide (a gold table rebuilt
//! beside itself and renamed keeps its side location). A file is removed only when
//!
//! * no table references it, by location nor by file name (table file names are unique, so a
//!   spelling difference between a manifest and the listing cannot make a live file look orphaned),
//! * it was last written more than `older_than` ago (a writer's staged, not yet committed files
//!   are young), and
//! * the listing of its table found the table's current metadata file (a listing that misses it
//!   looked in the wrong place: nothing of that table is removed).

use std::collections::HashSet;

use chrono::Utc;
use futures::StreamExt;
use iceberg::TableIdent;

use super::files::{self, Listed, file_name, normalise};
use super::refs::{FileSet, Manifests};
use super::{FileKind, OrphanOptions, RemovedFile, TableReport};
use crate::lake::iceberg::{Lake, LakeError, NAMESPACES, Result, display_ident};

const DELETE_CONCURRENCY: usize = 16;
/// Kept whatever references say: Hadoop-style catalogs' pointer file.
const ALWAYS_KEEP: &[&str] = &["version-hint.text"];

pub(super) async fn remove_orphans(
    lake: &Lake,
    tables: &[TableIdent],
    options: &OrphanOptions,
) -> Result<Vec<TableReport>> {
    let settings = lake.settings().clone();
    // 1. List each chosen table's location (a location inside another one is listed once).
    let mut targets: Vec<(TableIdent, String, String)> = Vec::new();
    for ident in tables {
        let table = lake.load_table(ident).await?;
        let location = normalise(table.metadata().location());
        let current = table.metadata_location().map(normalise).unwrap_or_default();
        targets.push((ident.clone(), location, current));
    }
    let mut listings: Vec<Vec<Listed>> = Vec::new();
    for (_, location, _) in &targets {
        listings.push(files::list(&settings, location).await?);
    }

    // 2. Everything any table references, loaded after the listing.
    let mut referenced = FileSet::new();
    let mut manifests = Manifests::default();
    for ns in NAMESPACES {
        for ident in lake.list_tables(ns).await? {
            let table = lake.load_table(&ident).await?;
            referenced.extend(manifests.table_files(&ident, &table).await?);
        }
    }
    let names: HashSet<&str> = referenced.keys().map(|p| file_name(p)).collect();

    // 3. Orphans, oldest limit applied, each file once even where locations overlap.
    let cutoff = chrono::Duration::from_std(options.older_than)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let mut seen: HashSet<String> = HashSet::new();
    let mut reports = Vec::new();
    for ((ident, location, current), listed) in targets.iter().zip(listings) {
        let mut report = TableReport::new(ident);
        if !current.is_empty() && !listed.iter().any(|f| &f.path == current) {
            return Err(LakeError::Invalid {
                table: display_ident(ident),
                message: format!(
                    "listing {location} did not find the current metadata file {current}; \
                     not removing anything (is the table location reachable with these settings?)"
                ),
            });
        }
        let mut doomed: Vec<Listed> = listed
            .into_iter()
            .filter(|f| {
                !referenced.contains_key(&f.path)
                    && !names.contains(file_name(&f.path))
                    && !ALWAYS_KEEP.contains(&file_name(&f.path))
                    && f.modified < cutoff
            })
            .filter(|f| seen.insert(f.path.clone()))
            .collect();
        doomed.sort_by(|a, b| a.path.cmp(&b.path));
        let results: Vec<(Listed, Result<bool>)> = futures::stream::iter(doomed)
            .map(|f| {
                let settings = settings.clone();
                let dry = options.dry_run;
                async move {
                    let outcome = if dry { Ok(true) } else { files::delete(&settings, &f.path).await };
                    (f, outcome)
                }
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .collect()
            .await;
        let mut results = results;
        results.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        for (f, outcome) in results {
            match outcome {
                Ok(true) => report.add(RemovedFile { kind: kind_of(&f.path), path: f.path, size: f.size }),
                Ok(false) => {}
                Err(e) => report.failed.push(e.to_string()),
            }
        }
        tracing::info!(
            table = %report.table, dry_run = options.dry_run, files = report.files_freed,
            bytes = report.bytes_freed, "removed orphan files"
        );
        reports.push(report);
    }
    Ok(reports)
}

/// What an unreferenced file looks like it was, by its name.
fn kind_of(path: &str) -> FileKind {
    let name = file_name(path);
    if name.ends_with(".metadata.json") || name.ends_with(".metadata.json.gz") {
        FileKind::Metadata
    } else if name.starts_with("snap-") && name.ends_with(".avro") {
        FileKind::ManifestList
    } else if name.ends_with(".avro") {
        FileKind::Manifest
    } else if name.ends_with(".parquet") || name.ends_with(".orc") {
        FileKind::Data
    } else {
        FileKind::Other
    }
}
