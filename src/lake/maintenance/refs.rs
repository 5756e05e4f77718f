//! Which files snapshots reference: a snapshot's manifest list, the manifests in it, and the data
//! and delete files of their entries. Manifests are shared by many snapshots, so each is read once
//! per operation ([`Manifests`]).

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::TableIdent;
use iceberg::spec::{DataContentType, SnapshotRef};
use iceberg::table::Table;

use super::FileKind;
use super::files::normalise;
use crate::lake::iceberg::{Result, table_err};

/// One content file named by a manifest entry.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) path: String,
    pub(super) size: u64,
    pub(super) kind: FileKind,
    /// ADDED or EXISTING (a reader of the snapshot reads it); DELETED entries only record a removal.
    pub(super) alive: bool,
}

/// A referenced file: normalised path → (kind, size in bytes if known).
pub(super) type FileSet = HashMap<String, (FileKind, Option<u64>)>;

/// The files of one snapshot.
#[derive(Debug, Default)]
pub(super) struct SnapshotFiles {
    pub(super) manifest_list: String,
    /// Manifests with their lengths.
    pub(super) manifests: Vec<(String, u64)>,
    /// Content files of every entry (alive or not) of those manifests.
    pub(super) entries: Vec<Entry>,
}

impl SnapshotFiles {
    /// Every file this snapshot references; with `alive_only`, DELETED entries are left out (what
    /// a reader of the snapshot needs).
    pub(super) fn add_to(&self, set: &mut FileSet, alive_only: bool) {
        set.insert(normalise(&self.manifest_list), (FileKind::ManifestList, None));
        for (path, len) in &self.manifests {
            set.insert(normalise(path), (FileKind::Manifest, Some(*len)));
        }
        for e in self.entries.iter().filter(|e| e.alive || !alive_only) {
            set.insert(normalise(&e.path), (e.kind, Some(e.size)));
        }
    }
}

/// Manifests read so far, by path.
#[derive(Default)]
pub(super) struct Manifests {
    read: HashMap<String, Arc<Vec<Entry>>>,
}

impl Manifests {
    /// The files `snapshot` of `table` references.
    pub(super) async fn snapshot_files(
        &mut self,
        ident: &TableIdent,
        table: &Table,
        snapshot: &SnapshotRef,
    ) -> Result<SnapshotFiles> {
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(table_err(ident, format!("read the manifest list of snapshot {}", snapshot.snapshot_id())))?;
        let mut out = SnapshotFiles { manifest_list: snapshot.manifest_list().to_string(), ..Default::default() };
        for m in list.entries() {
            out.manifests.push((m.manifest_path.clone(), m.manifest_length.max(0) as u64));
            let entries = match self.read.get(&m.manifest_path) {
                Some(e) => e.clone(),
                None => {
                    let manifest = m
                        .load_manifest(table.file_io())
                        .await
                        .map_err(table_err(ident, format!("read manifest {}", m.manifest_path)))?;
                    let entries: Vec<Entry> = manifest
                        .entries()
                        .iter()
                        .map(|e| Entry {
                            path: e.file_path().to_string(),
                            size: e.file_size_in_bytes(),
                            kind: match e.content_type() {
                                DataContentType::Data => FileKind::Data,
                                _ => FileKind::Deletes,
                            },
                            alive: e.is_alive(),
                        })
                        .collect();
                    let entries = Arc::new(entries);
                    self.read.insert(m.manifest_path.clone(), entries.clone());
                    entries
                }
            };
            out.entries.extend(entries.iter().cloned());
        }
        Ok(out)
    }

    /// Every file any snapshot of `table` references (alive or not), plus its metadata files: the
    /// current one, those in its metadata log, and statistics files.
    pub(super) async fn table_files(&mut self, ident: &TableIdent, table: &Table) -> Result<FileSet> {
        let md = table.metadata();
        let mut set = FileSet::new();
        if let Some(current) = table.metadata_location() {
            set.insert(normalise(current), (FileKind::Metadata, None));
        }
        for log in md.metadata_log() {
            set.insert(normalise(&log.metadata_file), (FileKind::Metadata, None));
        }
        for s in md.statistics_iter() {
            set.insert(normalise(&s.statistics_path), (FileKind::Other, None));
        }
        for s in md.partition_statistics_iter() {
            set.insert(normalise(&s.statistics_path), (FileKind::Other, None));
        }
        for snapshot in md.snapshots() {
            self.snapshot_files(ident, table, snapshot).await?.add_to(&mut set, false);
        }
        Ok(set)
    }
}
