//! The commit: replaced partitions' data files recorded DELETED in rewritten manifests, the
//! rest EXISTING, new files ADDED, one `overwrite` snapshot on `main`, and the catalog pointer
//! moved with a compare-and-swap, retried on a lost race.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use iceberg::spec::{
    DataFile, MAIN_BRANCH, ManifestContentType, ManifestEntry, ManifestFile, ManifestListWriter, ManifestWriterBuilder,
    PartitionSpecRef, SchemaRef as IcebergSchemaRef, Snapshot, SnapshotRef as IcebergSnapshotRef,
    SnapshotSummaryCollector, Summary, TableMetadataBuilder,
};
use iceberg::spec::{SnapshotReference, SnapshotRetention};
use iceberg::table::Table;
use iceberg::{MetadataLocation, TableIdent, TableRequirement, TableUpdate};

use super::key::*;
use super::manifests::*;
use super::writer::*;
use super::{MANIFEST_TARGET_BYTES, MAX_COMMIT_ATTEMPTS, MIN_COUNT_TO_MERGE, PARTITION_SUMMARY_LIMIT};
use crate::lake::iceberg::{Lake, LakeError, Result, table_err};
use crate::lake::rest::CommitError;

/// The commit half of a [`TableWriter`].
pub(super) struct Committer {
    pub(super) lake: Lake,
    pub(super) ident: TableIdent,
    pub(super) name: String,
    pub(super) run_key: RunKey,
    pub(super) table: Table,
    pub(super) schema: IcebergSchemaRef,
    pub(super) spec: PartitionSpecRef,
    pub(super) commit_id: String,
    /// Manifests named so far, for unique names across attempts.
    pub(super) manifests_named: AtomicU32,
}

impl Committer {
    /// The commit loop: plan against the freshest metadata, write manifests, manifest list and
    /// metadata file, swap the pointer; on a lost race clean up this attempt's files and go again.
    pub(super) async fn commit_files(&self, data_files: &[DataFile], replace: &Replace) -> Result<CommitOutcome> {
        let file_io = self.table.file_io().clone();
        let mut snapshot_id = unique_snapshot_id(&self.table);
        let mut added_manifest: Option<ManifestFile> = None;
        let mut table = self.table.clone();
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt)).await;
                table = self.lake.load_table(&self.ident).await?;
            }
            let md = table.metadata();
            if md.default_partition_spec().spec_id() != self.spec.spec_id() {
                return Err(LakeError::Invalid {
                    table: self.name.clone(),
                    message: "its partition spec changed while the writer was open".into(),
                });
            }
            if md.snapshot_by_id(snapshot_id).is_some() {
                snapshot_id = unique_snapshot_id(&table);
                if let Some(m) = added_manifest.take() {
                    delete_quietly(&file_io, vec![m.manifest_path]).await;
                }
            }
            // The manifest of the new files does not depend on the table's state: write it once.
            if added_manifest.is_none() && !data_files.is_empty() {
                let path = self.manifest_path(&table);
                let mut w = self.manifest_writer(&table, &path, snapshot_id, &self.spec)?;
                for f in data_files {
                    w.add_file(f.clone(), -1).map_err(table_err(&self.ident, "write the manifest of new files"))?;
                }
                added_manifest = Some(
                    w.write_manifest_file().await.map_err(table_err(&self.ident, "write the manifest of new files"))?,
                );
            }
            let change = Change { data_files, added_manifest: added_manifest.clone(), replace };
            let mut staged = self.stage(&Attempt { table: &table, snapshot_id, number: attempt }, &change).await?;
            match self.publish(&table, &mut staged).await? {
                Published::Landed => {
                    tracing::info!(
                        table = %self.name, run_key = %self.run_key, snapshot_id, attempt,
                        added_files = staged.outcome.added_files, deleted_files = staged.outcome.deleted_files,
                        "committed Iceberg overwrite"
                    );
                    return Ok(CommitOutcome { attempts: attempt, ..staged.outcome });
                }
                Published::Lost => {
                    tracing::debug!(table = %self.name, attempt, "Iceberg commit lost the race; retrying");
                    delete_quietly(&file_io, staged.files).await;
                }
                Published::Unknown(message) => {
                    // Unknown outcome: did the commit land before the error?
                    let fresh = self.lake.load_table(&self.ident).await?;
                    if fresh.metadata().snapshot_by_id(snapshot_id).is_some() {
                        return Ok(CommitOutcome { attempts: attempt, ..staged.outcome });
                    }
                    tracing::warn!(table = %self.name, attempt, error = %message, "Iceberg commit failed; retrying");
                    if attempt == MAX_COMMIT_ATTEMPTS {
                        return Err(LakeError::CommitFailed { table: self.name.clone(), message });
                    }
                }
            }
        }
        if let Some(m) = added_manifest {
            delete_quietly(&file_io, vec![m.manifest_path]).await;
        }
        Err(LakeError::Conflict { table: self.name.clone(), attempts: MAX_COMMIT_ATTEMPTS })
    }

    /// Builds one commit attempt against its table's current state: manifests, manifest list and
    /// the snapshot (not yet on any branch).
    pub(super) async fn stage(&self, attempt: &Attempt<'_>, change: &Change<'_>) -> Result<Staged> {
        let md = attempt.table.metadata();
        let parent = md.current_snapshot().cloned();
        let Carried { manifests, deleted, mut files_written } =
            self.carry_manifests(attempt, parent.as_ref(), change.replace).await?;
        if let Replace::Files(set) = change.replace
            && deleted.len() != set.len()
        {
            // A rewrite (compaction) replaces exactly the files it read; if a commit since then
            // replaced some of them, writing the rows back would undo that commit.
            delete_quietly(attempt.table.file_io(), files_written).await;
            return Err(LakeError::CommitFailed {
                table: self.name.clone(),
                message: format!(
                    "{} of the {} files being rewritten are no longer in the table (another commit replaced \
                     them); nothing was changed",
                    set.len() - deleted.len(),
                    set.len()
                ),
            });
        }
        let mut manifests = self.merge_small_manifests(attempt, manifests, &mut files_written).await?;
        if let Some(m) = &change.added_manifest {
            manifests.push(m.clone());
        }
        let props = self.summary(parent.as_ref(), change.data_files, &deleted, &manifests);
        let sequence_number = md.next_sequence_number();
        let list_path = self.write_manifest_list(attempt, parent.as_ref(), sequence_number, manifests).await?;
        files_written.push(list_path.clone());

        // Snapshot and metadata; history stays ordered even if clocks disagree a little.
        let last_ts = md.history().last().map(|l| l.timestamp_ms).unwrap_or(i64::MIN);
        let now = Utc::now().timestamp_millis().max(last_ts);
        let snapshot = Snapshot::builder()
            .with_snapshot_id(attempt.snapshot_id)
            .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
            .with_sequence_number(sequence_number)
            .with_timestamp_ms(now)
            .with_manifest_list(list_path)
            .with_summary(Summary { operation: change.replace.operation(), additional_properties: props })
            .with_schema_id(md.current_schema_id())
            .build();
        let outcome = CommitOutcome {
            table: self.name.clone(),
            run_key: self.run_key.key(),
            snapshot_id: attempt.snapshot_id,
            previous_snapshot_id: parent.as_ref().map(|p| p.snapshot_id()),
            added_files: change.data_files.len() as u64,
            deleted_files: deleted.len() as u64,
            added_records: change.data_files.iter().map(|f| f.record_count()).sum(),
            deleted_records: deleted.iter().map(|(f, _)| f.record_count()).sum(),
            already_committed: false,
            attempts: attempt.number,
        };
        Ok(Staged { snapshot, files: files_written, outcome })
    }

    /// The parent snapshot's manifests as the new snapshot carries them: a manifest that holds
    /// none of the replaced files as it is, one that does rewritten with those files DELETED and
    /// the rest EXISTING; delete manifests as they are, manifests with only DELETED entries dropped.
    async fn carry_manifests(
        &self,
        attempt: &Attempt<'_>,
        parent: Option<&IcebergSnapshotRef>,
        replace: &Replace,
    ) -> Result<Carried> {
        let table = attempt.table;
        let md = table.metadata();
        let err = |action: &'static str| table_err(&self.ident, action);
        let mut carried = Carried { manifests: Vec::new(), deleted: Vec::new(), files_written: Vec::new() };
        let Some(parent) = parent else {
            return Ok(carried);
        };
        let list = table.manifest_list_reader(parent).load().await.map_err(err("read the manifest list"))?;
        for m in list.entries() {
            if m.content == ManifestContentType::Deletes {
                carried.manifests.push(m.clone());
                continue;
            }
            let has_live = m.added_files_count.is_none_or(|n| n > 0) || m.existing_files_count.is_none_or(|n| n > 0);
            if !has_live {
                continue; // only DELETED entries of an older commit: no longer needed
            }
            if let Replace::Partitions(set) = replace
                && !manifest_may_contain(m, set, md.partition_spec_by_id(m.partition_spec_id), &self.schema)
            {
                carried.manifests.push(m.clone());
                continue;
            }
            let manifest = m.load_manifest(table.file_io()).await.map_err(err("read a manifest"))?;
            let doomed = |f: &DataFile| match replace {
                Replace::All => true,
                Replace::Partitions(set) => set.contains(f.partition()),
                Replace::Files(set) => set.contains(f.file_path()),
            };
            if !manifest.entries().iter().any(|e| e.is_alive() && doomed(&e.data_file)) {
                carried.manifests.push(m.clone());
                continue;
            }
            let spec = md.partition_spec_by_id(m.partition_spec_id).ok_or_else(|| LakeError::Invalid {
                table: self.name.clone(),
                message: format!("a manifest uses unknown partition spec {}", m.partition_spec_id),
            })?;
            let path = self.manifest_path(table);
            let mut w = self.manifest_writer(table, &path, attempt.snapshot_id, spec)?;
            carried.files_written.push(path);
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                let (seq, file_seq) = self.sequence_numbers(e, m)?;
                if doomed(&e.data_file) {
                    w.add_delete_file(e.data_file.clone(), seq, file_seq).map_err(err("rewrite a manifest"))?;
                    carried.deleted.push((e.data_file.clone(), spec.clone()));
                } else {
                    let added_by = e.snapshot_id().unwrap_or(m.added_snapshot_id);
                    w.add_existing_file(e.data_file.clone(), added_by, seq, file_seq)
                        .map_err(err("rewrite a manifest"))?;
                }
            }
            carried.manifests.push(w.write_manifest_file().await.map_err(err("rewrite a manifest"))?);
        }
        Ok(carried)
    }

    /// An entry's data and file sequence numbers, as a rewritten manifest keeps them.
    fn sequence_numbers(&self, e: &ManifestEntry, m: &ManifestFile) -> Result<(i64, Option<i64>)> {
        let seq = e.sequence_number().ok_or_else(|| LakeError::Invalid {
            table: self.name.clone(),
            message: format!("manifest {} has an entry without sequence number", m.manifest_path),
        })?;
        Ok((seq, e.file_sequence_number.or(Some(seq))))
    }

    /// Keeps the manifest list short, as Iceberg's merge on append does: once the new snapshot
    /// would carry at least `commit.manifest.min-count-to-merge` ([`MIN_COUNT_TO_MERGE`]) data
    /// manifests of earlier commits smaller than `commit.manifest.target-size-bytes`, those of each
    /// partition spec become one manifest of their live files (EXISTING, with the snapshot and
    /// sequence numbers that added them; the DELETED entries of earlier commits are dropped, as
    /// every later snapshot drops them). Without it every daily commit adds a manifest that every
    /// later scan plans through. `commit.manifest-merge.enabled = false` turns it off.
    async fn merge_small_manifests(
        &self,
        attempt: &Attempt<'_>,
        manifests: Vec<ManifestFile>,
        files_written: &mut Vec<String>,
    ) -> Result<Vec<ManifestFile>> {
        let table = attempt.table;
        let md = table.metadata();
        let property = |key: &str| md.properties().get(key).and_then(|v| v.parse::<i64>().ok());
        if md.properties().get("commit.manifest-merge.enabled").is_some_and(|v| v.eq_ignore_ascii_case("false")) {
            return Ok(manifests);
        }
        let min_count =
            property("commit.manifest.min-count-to-merge").map_or(MIN_COUNT_TO_MERGE, |n| n.max(2) as usize);
        let target = property("commit.manifest.target-size-bytes").unwrap_or(MANIFEST_TARGET_BYTES);
        let small = |m: &ManifestFile| {
            m.content == ManifestContentType::Data
                && m.added_snapshot_id != attempt.snapshot_id
                && m.manifest_length < target
        };
        if manifests.iter().filter(|m| small(m)).count() < min_count {
            return Ok(manifests);
        }
        let (merged, mut kept): (Vec<ManifestFile>, Vec<ManifestFile>) = manifests.into_iter().partition(small);
        let mut by_spec: std::collections::BTreeMap<i32, Vec<ManifestFile>> = Default::default();
        for m in merged {
            by_spec.entry(m.partition_spec_id).or_default().push(m);
        }
        let err = |action: &'static str| table_err(&self.ident, action);
        for (spec_id, group) in by_spec {
            if group.len() < 2 {
                kept.extend(group);
                continue;
            }
            let spec = md.partition_spec_by_id(spec_id).ok_or_else(|| LakeError::Invalid {
                table: self.name.clone(),
                message: format!("a manifest uses unknown partition spec {spec_id}"),
            })?;
            let path = self.manifest_path(table);
            let mut w = self.manifest_writer(table, &path, attempt.snapshot_id, spec)?;
            files_written.push(path);
            for m in &group {
                let manifest = m.load_manifest(table.file_io()).await.map_err(err("read a manifest"))?;
                for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                    let (seq, file_seq) = self.sequence_numbers(e, m)?;
                    let added_by = e.snapshot_id().unwrap_or(m.added_snapshot_id);
                    w.add_existing_file(e.data_file.clone(), added_by, seq, file_seq)
                        .map_err(err("merge manifests"))?;
                }
            }
            kept.push(w.write_manifest_file().await.map_err(err("merge manifests"))?);
            tracing::debug!(table = %self.name, merged = group.len(), "merged small manifests into one");
        }
        Ok(kept)
    }

    /// The snapshot summary: our run key, then the computed counts (which win on collision), and
    /// the table totals carried on from the parent.
    fn summary(
        &self,
        parent: Option<&IcebergSnapshotRef>,
        data_files: &[DataFile],
        deleted: &[(DataFile, PartitionSpecRef)],
        manifests: &[ManifestFile],
    ) -> HashMap<String, String> {
        let mut collector = SnapshotSummaryCollector::default();
        collector.set_partition_summary_limit(PARTITION_SUMMARY_LIMIT);
        for f in data_files {
            collector.add_file(f, self.schema.clone(), self.spec.clone());
        }
        for (f, spec) in deleted {
            collector.remove_file(f, self.schema.clone(), spec.clone());
        }
        let mut props = self.run_key.properties();
        props.extend(collector.build());
        let data_manifests = || manifests.iter().filter(|m| m.content == ManifestContentType::Data);
        let live_files: u64 = data_manifests()
            .map(|m| u64::from(m.added_files_count.unwrap_or(0)) + u64::from(m.existing_files_count.unwrap_or(0)))
            .sum();
        let live_rows: u64 =
            data_manifests().map(|m| m.added_rows_count.unwrap_or(0) + m.existing_rows_count.unwrap_or(0)).sum();
        let added_size: u64 = data_files.iter().map(|f| f.file_size_in_bytes()).sum();
        let removed_size: u64 = deleted.iter().map(|(f, _)| f.file_size_in_bytes()).sum();
        props.insert("total-data-files".into(), live_files.to_string());
        props.insert("total-records".into(), live_rows.to_string());
        let prev_total = |key: &str| -> Option<u64> {
            match parent {
                None => Some(0),
                Some(p) => p.summary().additional_properties.get(key).and_then(|v| v.parse().ok()),
            }
        };
        if let Some(size) = prev_total("total-files-size") {
            props.insert("total-files-size".into(), (size + added_size).saturating_sub(removed_size).to_string());
        }
        for key in ["total-delete-files", "total-position-deletes", "total-equality-deletes"] {
            props.insert(key.into(), prev_total(key).unwrap_or(0).to_string());
        }
        // Always present, even when zero, so readers need not guess.
        for (key, value) in [
            ("added-data-files", data_files.len() as u64),
            ("deleted-data-files", deleted.len() as u64),
            ("added-records", data_files.iter().map(|f| f.record_count()).sum()),
            ("deleted-records", deleted.iter().map(|(f, _)| f.record_count()).sum()),
        ] {
            props.insert(key.into(), value.to_string());
        }
        props
    }

    /// Writes the new snapshot's manifest list; returns its location.
    async fn write_manifest_list(
        &self,
        attempt: &Attempt<'_>,
        parent: Option<&IcebergSnapshotRef>,
        sequence_number: i64,
        manifests: Vec<ManifestFile>,
    ) -> Result<String> {
        let err = |action: &'static str| table_err(&self.ident, action);
        let md = attempt.table.metadata();
        let path = format!(
            "{}/metadata/snap-{}-{}-{}.avro",
            md.location(),
            attempt.snapshot_id,
            attempt.number,
            self.commit_id
        );
        let out = attempt.table.file_io().new_output(&path).map_err(err("write the manifest list"))?;
        let mut list = ManifestListWriter::v2(
            out.writer().await.map_err(err("write the manifest list"))?,
            attempt.snapshot_id,
            parent.map(|p| p.snapshot_id()),
            sequence_number,
        );
        list.add_manifests(manifests.into_iter()).map_err(err("write the manifest list"))?;
        list.close().await.map_err(err("write the manifest list"))?;
        Ok(path)
    }

    /// Puts the staged snapshot on `main`. SQL catalog: writes the next metadata file and moves
    /// the pointer with a compare-and-swap in the state DB. REST catalog: sends the snapshot to
    /// the commit endpoint, which checks the requirements (same table, `main` still at the
    /// parent) and writes the metadata file itself.
    pub(super) async fn publish(&self, table: &Table, staged: &mut Staged) -> Result<Published> {
        let md = table.metadata();
        let Some(rest) = self.lake.rest_commits() else {
            let (new_location, swapped) =
                swap_next_metadata(&self.lake, &self.ident, table, "build new metadata", |b| {
                    b.set_branch_snapshot(staged.snapshot.clone(), MAIN_BRANCH)
                })
                .await?;
            staged.files.push(new_location);
            return Ok(match swapped {
                Ok(true) => Published::Landed,
                Ok(false) => Published::Lost,
                Err(e) => Published::Unknown(e.to_string()),
            });
        };
        let requirements = vec![
            TableRequirement::UuidMatch { uuid: md.uuid() },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN_BRANCH.to_string(),
                snapshot_id: staged.snapshot.parent_snapshot_id(),
            },
        ];
        let updates = vec![
            TableUpdate::AddSnapshot { snapshot: staged.snapshot.clone() },
            TableUpdate::SetSnapshotRef {
                ref_name: MAIN_BRANCH.to_string(),
                reference: SnapshotReference::new(
                    staged.snapshot.snapshot_id(),
                    SnapshotRetention::branch(None, None, None),
                ),
            },
        ];
        let warehouse = crate::lake::warehouse_url(self.lake.settings(), &self.ident.namespace().join("."));
        Ok(match rest.commit(&warehouse, &self.ident, requirements, updates).await {
            Ok(_) => Published::Landed,
            Err(CommitError::Conflict(_)) => Published::Lost,
            Err(CommitError::Unknown(message)) => Published::Unknown(message),
            Err(refused @ CommitError::Rejected { .. }) => {
                return Err(LakeError::CommitRefused { table: self.name.clone(), message: refused.to_string() });
            }
        })
    }

    pub(super) fn manifest_path(&self, table: &Table) -> String {
        let n = self.manifests_named.fetch_add(1, Ordering::Relaxed);
        format!("{}/metadata/{}-m{n}.avro", table.metadata().location(), self.commit_id)
    }

    pub(super) fn manifest_writer(
        &self,
        table: &Table,
        path: &str,
        snapshot_id: i64,
        spec: &PartitionSpecRef,
    ) -> Result<iceberg::spec::ManifestWriter> {
        let out = table.file_io().new_output(path).map_err(table_err(&self.ident, "write a manifest"))?;
        Ok(ManifestWriterBuilder::new(out, Some(snapshot_id), self.schema.clone(), spec.as_ref().clone())
            .build_v2_data())
    }

    /// The outcome of the earlier commit that carries this run key.
    pub(super) fn earlier_outcome(&self, id: i64) -> CommitOutcome {
        let snap = self.table.metadata().snapshot_by_id(id);
        let summary = snap.map(|s| &s.summary().additional_properties);
        let count = |k: &str| summary.and_then(|s| s.get(k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        CommitOutcome {
            table: self.name.clone(),
            run_key: self.run_key.key(),
            snapshot_id: id,
            previous_snapshot_id: snap.and_then(|s| s.parent_snapshot_id()),
            added_files: count("added-data-files"),
            deleted_files: count("deleted-data-files"),
            added_records: count("added-records"),
            deleted_records: count("deleted-records"),
            already_committed: true,
            attempts: 0,
        }
    }
}

/// How putting a snapshot on `main` ended.
pub(super) enum Published {
    Landed,
    /// Another writer moved `main` first: plan again.
    Lost,
    /// No clear answer (the database or the catalog failed mid-way).
    Unknown(String),
}

/// One try at a commit: the table state it plans against and the snapshot it makes.
pub(super) struct Attempt<'a> {
    pub(super) table: &'a Table,
    pub(super) snapshot_id: i64,
    /// 1 for the first try.
    pub(super) number: u32,
}

/// What a commit changes: the new files (with their manifest, written once) and what they replace.
pub(super) struct Change<'a> {
    pub(super) data_files: &'a [DataFile],
    pub(super) added_manifest: Option<ManifestFile>,
    pub(super) replace: &'a Replace,
}

/// The parent's manifests as the new snapshot carries them (see [`Committer::carry_manifests`]).
struct Carried {
    manifests: Vec<ManifestFile>,
    /// The replaced files, with the spec of the manifest they were in.
    deleted: Vec<(DataFile, PartitionSpecRef)>,
    /// Rewritten manifests: nothing references them if the commit fails.
    files_written: Vec<String>,
}

pub(super) struct Staged {
    pub(super) snapshot: Snapshot,
    /// Files this attempt wrote that nothing references if the commit fails.
    pub(super) files: Vec<String>,
    pub(super) outcome: CommitOutcome,
}

/// SQL catalog: writes the next metadata file of `table` — its current metadata with `edit`
/// applied (`action` names the edit in an error) — and moves the catalog pointer from the current
/// file to it with a compare-and-swap in the state DB. Returns the new file's location and the
/// swap's outcome: `Ok(false)` when another writer moved the pointer first, `Err` when the state
/// DB did not answer (the pointer may or may not have moved).
pub(crate) async fn swap_next_metadata(
    lake: &Lake,
    ident: &TableIdent,
    table: &Table,
    action: &'static str,
    edit: impl FnOnce(TableMetadataBuilder) -> iceberg::Result<TableMetadataBuilder>,
) -> Result<(String, std::result::Result<bool, crate::store::StoreError>)> {
    let err = |action: &'static str| table_err(ident, action);
    let old_location = table.metadata_location_result().map_err(err("read its metadata location"))?;
    let builder = TableMetadataBuilder::new_from_metadata(table.metadata().clone(), Some(old_location.to_string()));
    let new_metadata = edit(builder).and_then(|b| b.build()).map_err(err(action))?.metadata;
    let location = MetadataLocation::from_str(old_location)
        .map_err(err("parse its metadata location"))?
        .with_next_version()
        .with_new_metadata(&new_metadata);
    new_metadata.write_to(table.file_io(), &location).await.map_err(err("write new metadata"))?;
    let new_location = location.to_string();
    let swapped = lake
        .store()
        .swap_iceberg_metadata_location(
            lake.catalog_name(),
            &ident.namespace().join("."),
            ident.name(),
            old_location,
            &new_location,
        )
        .await;
    Ok((new_location, swapped))
}
