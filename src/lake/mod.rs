//! The lakehouse storage layer: buckets (object_store: local directories or S3), the Iceberg
//! catalog (SQL in the state DB, or REST), Iceberg file I/O over the same S3 clients, the
//! replace-partitions commit iceberg-rust 0.10 lacks, and the one place DataFusion sessions are
//! built. Tasks (`bronze`, `silver`, `gold`) reach storage only through here.

pub mod buckets;
pub mod commit;
pub mod functions;
pub mod handle;
pub mod iceberg;
pub mod maintenance;
mod rest;
pub mod s3;
pub mod s3_io;
pub mod scan;
pub mod session;

pub use self::commit::{CommitOutcome, PartitionValue, PartitionValues, RunKey, TableWriter};
pub use self::handle::LakeHandle;
pub use self::iceberg::{Lake, LakeError, SnapshotInfo, display_ident, parse_ident};
pub use self::session::{SessionOptions, plain_session, session_config};

use std::path::{Path, PathBuf};

use crate::config::Settings;

/// Absolute form of `path` (relative paths are taken from the current directory).
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Local directory of a bucket in the embedded mode: `<home>/buckets/<bucket>`.
pub fn local_bucket_dir(settings: &Settings, bucket: &str) -> PathBuf {
    absolute(&settings.home).join("buckets").join(bucket)
}

/// The Iceberg warehouse of a namespace: silver in the source bucket, gold in the serve bucket
/// (`<bucket dir>/warehouse` locally, the bucket itself on S3), as a URL Iceberg clients (and
/// PyIceberg) understand.
pub fn warehouse_url(settings: &Settings, namespace: &str) -> String {
    let bucket = if namespace == "gold" { &settings.lake.buckets.serve } else { &settings.lake.buckets.source };
    match settings.lake.storage {
        crate::config::StorageKind::Local => {
            format!("file://{}/warehouse", local_bucket_dir(settings, bucket).display())
        }
        // `s3://<bucket>`: tables at `s3://<bucket>/<namespace>/<table>`, the layout of REST
        // catalogs whose warehouse is a (table) bucket, e.g. SeaweedFS's and S3 Tables'.
        crate::config::StorageKind::S3 => format!("s3://{bucket}"),
    }
}
