//! Expiring snapshots with Iceberg's semantics. A snapshot goes when it is older than the limit
//! and is none of: the current snapshot, the head of a branch or a tag, one of the `retain_last`
//! newest snapshots on a branch's history. The metadata is updated first — SQL catalog: the next
//! metadata file without those snapshots and a compare-and-swap of the catalog row; REST catalog:
//! a `remove-snapshots` update with the requirements "same table UUID" and "`main` still where it
//! was planned" — and a lost race plans again from fresh metadata. Only then are files deleted,
//! and only those that expired snapshots referenced and no retained snapshot still reads: their
//! manifest lists, manifests no retained manifest list names, data files no retained manifest
//! holds alive. Metadata files are never deleted here (old ones are left to the metadata log's
//! own limit and to orphan removal).

use std::collections::{BTreeSet, HashSet};

use futures::StreamExt;
use iceberg::spec::{MAIN_BRANCH, TableMetadata};
use iceberg::table::Table;
use iceberg::{TableIdent, TableRequirement, TableUpdate};

use super::refs::{FileSet, Manifests};
use super::{ExpireOptions, FileKind, RemovedFile, TableReport, files};
use crate::lake::commit::swap_next_metadata;
use crate::lake::iceberg::{Lake, LakeError, Result, display_ident};
use crate::lake::rest::CommitError;

/// Commit attempts before a lost race becomes an error.
const MAX_ATTEMPTS: u32 = 8;
/// Files deleted at once.
const DELETE_CONCURRENCY: usize = 16;

/// Which snapshots stay and which go, for `md` at `now_ms`.
pub(super) fn plan(md: &TableMetadata, now_ms: i64, options: &ExpireOptions) -> (BTreeSet<i64>, Vec<i64>) {
    let cutoff = now_ms.saturating_sub(i64::try_from(options.older_than.as_millis()).unwrap_or(i64::MAX));
    let mut keep: BTreeSet<i64> = BTreeSet::new();
    keep.extend(md.current_snapshot_id());
    // Branch heads and tags (iceberg's `refs` map is only visible through the metadata's JSON).
    let mut branch_heads: Vec<i64> = md.current_snapshot_id().into_iter().collect();
    if let Ok(json) = serde_json::to_value(md)
        && let Some(refs) = json.get("refs").and_then(|r| r.as_object())
    {
        for r in refs.values() {
            let Some(id) = r.get("snapshot-id").and_then(|v| v.as_i64()) else { continue };
            keep.insert(id);
            if r.get("type").and_then(|t| t.as_str()) == Some("branch") {
                branch_heads.push(id);
            }
        }
    }
    // The newest `retain_last` of each branch's history (at least its head).
    for head in branch_heads {
        let mut next = Some(head);
        let mut kept = 0usize;
        while let Some(id) = next {
            if kept >= options.retain_last.max(1) {
                break;
            }
            let Some(s) = md.snapshot_by_id(id) else { break };
            keep.insert(id);
            kept += 1;
            next = s.parent_snapshot_id();
        }
    }
    for s in md.snapshots() {
        if s.timestamp_ms() >= cutoff {
            keep.insert(s.snapshot_id());
        }
    }
    let mut expire: Vec<i64> = md.snapshots().map(|s| s.snapshot_id()).filter(|id| !keep.contains(id)).collect();
    expire.sort_unstable();
    (keep, expire)
}

/// Expires the old snapshots of one table and deletes the files only they referenced.
pub(super) async fn expire_table(lake: &Lake, ident: &TableIdent, options: &ExpireOptions) -> Result<TableReport> {
    let mut report = TableReport::new(ident);
    let mut attempt = 0;
    let (table, keep, expired) = loop {
        attempt += 1;
        let table = lake.load_table(ident).await?;
        let (keep, expired) = plan(table.metadata(), chrono::Utc::now().timestamp_millis(), options);
        if expired.is_empty() || options.dry_run {
            break (table, keep, expired);
        }
        match commit(lake, ident, &table, &expired).await? {
            true => break (table, keep, expired),
            false if attempt < MAX_ATTEMPTS => {
                tracing::debug!(table = %display_ident(ident), attempt, "expire lost a commit race; planning again");
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            }
            false => return Err(LakeError::Conflict { table: display_ident(ident), attempts: attempt }),
        }
    };
    report.retained_snapshots = keep.len();
    report.expired_snapshots = expired.clone();
    if expired.is_empty() {
        return Ok(report);
    }

    // What the retained snapshots read, and what the expired ones referenced.
    let md = table.metadata();
    let mut manifests = Manifests::default();
    let mut retained = FileSet::new();
    let mut candidates = FileSet::new();
    for s in md.snapshots() {
        let files = manifests.snapshot_files(ident, &table, s).await?;
        if keep.contains(&s.snapshot_id()) {
            files.add_to(&mut retained, true);
        } else {
            files.add_to(&mut candidates, false);
        }
    }
    let never: HashSet<String> = table.metadata_location().map(files::normalise).into_iter().collect();
    let mut doomed: Vec<(String, FileKind, Option<u64>)> = candidates
        .into_iter()
        .filter(|(path, _)| !retained.contains_key(path) && !never.contains(path))
        .map(|(path, (kind, size))| (path, kind, size))
        .collect();
    doomed.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));

    let settings = lake.settings().clone();
    let results: Vec<(String, FileKind, Result<Option<u64>>)> = futures::stream::iter(doomed)
        .map(|(path, kind, size)| {
            let settings = settings.clone();
            let dry = options.dry_run;
            async move {
                let outcome = async {
                    let size = match size {
                        Some(s) => Some(s),
                        None => files::size(&settings, &path).await?,
                    };
                    if dry {
                        return Ok(size);
                    }
                    Ok(if files::delete(&settings, &path).await? { Some(size.unwrap_or(0)) } else { None })
                }
                .await;
                (path, kind, outcome)
            }
        })
        .buffer_unordered(DELETE_CONCURRENCY)
        .collect()
        .await;
    let mut results = results;
    results.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    for (path, kind, outcome) in results {
        match outcome {
            Ok(Some(size)) => report.add(RemovedFile { path, kind, size }),
            Ok(None) => {} // already gone
            Err(e) => report.failed.push(e.to_string()),
        }
    }
    tracing::info!(
        table = %report.table, dry_run = options.dry_run, expired = report.expired_snapshots.len(),
        retained = report.retained_snapshots, files = report.files_freed, bytes = report.bytes_freed,
        "expired snapshots"
    );
    Ok(report)
}

/// Removes `expired` from the table's metadata; `false` when another writer committed first.
async fn commit(lake: &Lake, ident: &TableIdent, table: &Table, expired: &[i64]) -> Result<bool> {
    let md = table.metadata();
    let Some(rest) = lake.rest_commits() else {
        let (new_location, swapped) =
            swap_next_metadata(lake, ident, table, "build metadata without the expired snapshots", |b| {
                Ok(b.remove_snapshots(expired))
            })
            .await?;
        return match swapped {
            Ok(true) => Ok(true),
            Ok(false) => {
                if let Err(e) = table.file_io().delete(&new_location).await {
                    tracing::debug!(path = %new_location, error = %e, "could not remove an uncommitted metadata file");
                }
                Ok(false)
            }
            Err(e) => {
                // Outcome unknown: did the pointer move to our file?
                let now = lake.load_table(ident).await?;
                if now.metadata_location() == Some(new_location.as_str()) {
                    Ok(true)
                } else {
                    Err(LakeError::Store { table: display_ident(ident), source: e })
                }
            }
        };
    };
    let requirements = vec![
        TableRequirement::UuidMatch { uuid: md.uuid() },
        TableRequirement::RefSnapshotIdMatch { r#ref: MAIN_BRANCH.to_string(), snapshot_id: md.current_snapshot_id() },
    ];
    let updates = vec![TableUpdate::RemoveSnapshots { snapshot_ids: expired.to_vec() }];
    let warehouse = crate::lake::warehouse_url(lake.settings(), &ident.namespace().join("."));
    match rest.commit(&warehouse, ident, requirements, updates).await {
        Ok(_) => Ok(true),
        Err(CommitError::Conflict(_)) => Ok(false),
        Err(CommitError::Unknown(message)) => {
            let now = lake.load_table(ident).await?;
            if expired.iter().all(|id| now.metadata().snapshot_by_id(*id).is_none()) {
                Ok(true)
            } else {
                Err(LakeError::CommitFailed { table: display_ident(ident), message })
            }
        }
        Err(refused @ CommitError::Rejected { .. }) => {
            Err(LakeError::CommitRefused { table: display_ident(ident), message: refused.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Metadata with snapshots 1 → 2 → 3 → 4 (main at 4), one a day, and a tag on 1.
    fn metadata() -> TableMetadata {
        let day = 86_400_000i64;
        let snap = |id: i64, parent: Option<i64>| {
            serde_json::json!({"snapshot-id": id, "parent-snapshot-id": parent, "sequence-number": id,
                "timestamp-ms": id * day, "manifest-list": format!("file:///t/metadata/snap-{id}.avro"),
                "summary": {"operation": "overwrite"}, "schema-id": 0})
        };
        let json = serde_json::json!({
            "format-version": 2, "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
            "location": "file:///t", "last-sequence-number": 4, "last-updated-ms": 4 * day,
            "last-column-id": 1, "current-schema-id": 0,
            "schemas": [{"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "x", "required": false, "type": "long"}]}],
            "default-spec-id": 0, "partition-specs": [{"spec-id": 0, "fields": []}], "last-partition-id": 999,
            "default-sort-order-id": 0, "sort-orders": [{"order-id": 0, "fields": []}], "properties": {},
            "current-snapshot-id": 4,
            "refs": {"main": {"snapshot-id": 4, "type": "branch"}, "keep-me": {"snapshot-id": 1, "type": "tag"}},
            "snapshots": [snap(1, None), snap(2, Some(1)), snap(3, Some(2)), snap(4, Some(3))],
            "snapshot-log": [], "metadata-log": []
        });
        serde_json::from_value(json).expect("test metadata")
    }

    #[test]
    fn retention_keeps_heads_tags_recent_and_the_last_n() {
        let md = metadata();
        let day = 86_400_000i64;
        let opts = |older_than_days: u64, retain_last: usize| ExpireOptions {
            older_than: Duration::from_secs(older_than_days * 86_400),
            retain_last,
            dry_run: false,
        };
        // At day 10, everything is older than 1 day: keep main's head (4) and the tag (1).
        let (keep, expire) = plan(&md, 10 * day, &opts(1, 1));
        assert_eq!(keep.into_iter().collect::<Vec<_>>(), [1, 4]);
        assert_eq!(expire, [2, 3]);
        // retain_last 2 keeps 3 as well.
        assert_eq!(plan(&md, 10 * day, &opts(1, 2)).1, [2]);
        // Snapshots younger than the limit stay: at day 5 with 2 days, 3 and 4 are young.
        assert_eq!(plan(&md, 5 * day, &opts(2, 1)).1, [2]);
        // retain_last 0 still keeps the current snapshot.
        assert!(plan(&md, 10 * day, &opts(1, 0)).0.contains(&4));
    }
}
