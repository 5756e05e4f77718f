//! Table files as maintenance sees them: locations normalised so that a path written in a
//! manifest and the same file found by a listing compare equal (`file:/x`, `file:///x` and `/x`
//! are one file; `s3a://` and `s3n://` are `s3://`), listing everything under a table location
//! with size and age, and deleting one file. Local files go through `std::fs` (exact names, no
//! object-key encoding in between), S3 objects through the lake's per-bucket S3 client.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::config::Settings;
use crate::lake::iceberg::{LakeError, Result};

/// A file found under a table location.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    /// Normalised location ([`normalise`]).
    pub(super) path: String,
    pub(super) size: u64,
    pub(super) modified: DateTime<Utc>,
}

/// Where a location points.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

fn place(location: &str) -> Result<Place> {
    for scheme in ["s3://", "s3a://", "s3n://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                break;
            }
            return Ok(Place::S3 { bucket: bucket.to_string(), key: key.trim_matches('/').to_string() });
        }
    }
    let path = location.strip_prefix("file://").or_else(|| location.strip_prefix("file:")).unwrap_or(location);
    if path.starts_with('/') {
        // `file://` + `/abs` or `file:` + `/abs`; `file:////abs` has extra slashes.
        let trimmed = format!("/{}", path.trim_start_matches('/'));
        return Ok(Place::Local(PathBuf::from(trimmed)));
    }
    Err(LakeError::Usage(format!("table file location {location} is neither s3:// nor a local path")))
}

/// One spelling per file: `s3://bucket/key` or `file:///abs/path` (trailing `/` dropped).
pub(super) fn normalise(location: &str) -> String {
    match place(location) {
        Ok(Place::S3 { bucket, key }) => format!("s3://{bucket}/{key}"),
        Ok(Place::Local(path)) => format!("file://{}", path.display().to_string().trim_end_matches('/')),
        Err(_) => location.to_string(),
    }
}

/// The last path segment: file names of table files are unique (UUIDs, snapshot ids), which
/// [`super::orphans`] uses as a second, spelling-independent check before deleting anything.
pub(super) fn file_name(location: &str) -> &str {
    location.rsplit('/').next().unwrap_or(location)
}

fn s3_store(settings: &Settings, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    crate::lake::s3::client(&settings.lake.s3, bucket)
        .map_err(|e| LakeError::Usage(format!("bucket {bucket}: {}", crate::lake::s3::explain(&e))))
}

fn io_failed(action: &str, location: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Usage(format!("cannot {action} {location}: {e}"))
}

/// Every file under `location` (a table's directory), recursively.
pub(super) async fn list(settings: &Settings, location: &str) -> Result<Vec<Listed>> {
    match place(location)? {
        Place::Local(dir) => {
            let shown = location.to_string();
            tokio::task::spawn_blocking(move || list_local(&dir))
                .await
                .map_err(|e| io_failed("list", &shown, e))?
                .map_err(|e| io_failed("list", &shown, e))
        }
        Place::S3 { bucket, key } => {
            let store = s3_store(settings, &bucket)?;
            let prefix = (!key.is_empty()).then(|| ObjectPath::from(key.as_str()));
            let metas: Vec<object_store::ObjectMeta> = store
                .list(prefix.as_ref())
                .try_collect()
                .await
                .map_err(|e| io_failed("list", location, crate::lake::s3::explain(&e)))?;
            Ok(metas
                .into_iter()
                .map(|m| Listed {
                    path: format!("s3://{bucket}/{}", m.location),
                    size: m.size,
                    modified: m.last_modified,
                })
                .collect())
        }
    }
}

fn list_local(dir: &FsPath) -> std::io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                out.push(Listed {
                    path: format!("file://{}", entry.path().display()),
                    size: meta.len(),
                    modified: meta.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now()),
                });
            }
        }
    }
    Ok(out)
}

/// The size of a file, `None` when it does not exist.
pub(super) async fn size(settings: &Settings, location: &str) -> Result<Option<u64>> {
    match place(location)? {
        Place::Local(path) => match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_failed("look up", location, e)),
        },
        Place::S3 { bucket, key } => match s3_store(settings, &bucket)?.head(&ObjectPath::from(key.as_str())).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_failed("look up", location, crate::lake::s3::explain(&e))),
        },
    }
}

/// Deletes one file; `false` when it was already gone.
pub(super) async fn delete(settings: &Settings, location: &str) -> Result<bool> {
    match place(location)? {
        Place::Local(path) => match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_failed("delete", location, e)),
        },
        Place::S3 { bucket, key } => {
            let store = s3_store(settings, &bucket)?;
            let path = ObjectPath::from(key.as_str());
            match store.delete(&path).await {
                Ok(()) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(io_failed("delete", location, crate::lake::s3::explain(&e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_file_compare_equal() {
        assert_eq!(normalise("file:///a/b/c.parquet"), "file:///a/b/c.parquet");
        assert_eq!(normalise("file:/a/b/c.parquet"), "file:///a/b/c.parquet");
        assert_eq!(normalise("/a/b/c.parquet"), "file:///a/b/c.parquet");
        assert_eq!(normalise("file:///a/b/"), "file:///a/b");
        assert_eq!(normalise("s3a://bkt/x/y.avro"), "s3://bkt/x/y.avro");
        assert_eq!(normalise("s3://bkt/x/y.avro"), "s3://bkt/x/y.avro");
        assert_eq!(file_name("s3://bkt/x/y.avro"), "y.avro");
        assert!(place("hdfs://nn/x").is_err());
    }
}
