//! Iceberg's file I/O over object_store: [`S3Storage`] implements iceberg-rust's `Storage` trait
//! for `s3://bucket/key` paths with the same per-bucket clients the bucket helpers use
//! ([`super::s3::client`]), so Iceberg data, manifests and metadata files and the plain bucket
//! objects share one S3 client, one credential set and one request tally. Chosen over
//! iceberg-storage-opendal so that the tree has one S3 implementation (object_store, which
//! DataFusion already brings) instead of two (ARCHITECTURE.md).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error, ErrorKind};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::config::S3Settings;

/// Builds [`S3Storage`] for every table a catalog loads, whatever storage properties the catalog
/// hands out (a REST catalog may vend its own; tmctl's configured credentials win).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3StorageFactory {
    s3: S3Settings,
}

impl S3StorageFactory {
    pub fn new(s3: S3Settings) -> S3StorageFactory {
        S3StorageFactory { s3 }
    }
}

#[typetag::serde(name = "tmctl-s3")]
impl StorageFactory for S3StorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(S3Storage { s3: self.s3.clone() }))
    }
}

/// `s3://bucket/key` (also `s3a://`, `s3n://`) files through object_store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Storage {
    s3: S3Settings,
}

fn io_error(action: &str, path: &str, e: object_store::Error) -> Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => ErrorKind::DataInvalid,
        _ => ErrorKind::Unexpected,
    };
    // The explanation carries the cause; no `with_source`, which would print it twice.
    Error::new(kind, format!("cannot {action} {path}: {}", super::s3::explain(&e)))
}

/// Splits `s3://bucket/key` into the bucket and the object path.
fn split(path: &str) -> iceberg::Result<(&str, Path)> {
    let rest = ["s3://", "s3a://", "s3n://"].iter().find_map(|scheme| path.strip_prefix(scheme)).ok_or_else(|| {
        Error::new(ErrorKind::FeatureUnsupported, format!("{path} is not an s3:// location (storage.kind = s3)"))
    })?;
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::DataInvalid, format!("{path} names no object (s3://bucket/key)")))?;
    let key = Path::parse(key)
        .map_err(|e| Error::new(ErrorKind::DataInvalid, format!("{path} is not a valid object key")).with_source(e))?;
    Ok((bucket, key))
}

impl S3Storage {
    fn open(&self, path: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, Path)> {
        let (bucket, key) = split(path)?;
        let store = super::s3::client(&self.s3, bucket).map_err(|e| {
            Error::new(ErrorKind::Unexpected, format!("cannot open S3 bucket `{bucket}` for {path}")).with_source(e)
        })?;
        Ok((store, key))
    }
}

#[async_trait]
#[typetag::serde(name = "tmctl-s3")]
impl Storage for S3Storage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (store, key) = self.open(path)?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_error("look up", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (store, key) = self.open(path)?;
        let meta = store.head(&key).await.map_err(|e| io_error("look up", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (store, key) = self.open(path)?;
        let got = store.get(&key).await.map_err(|e| io_error("read", path, e))?;
        got.bytes().await.map_err(|e| io_error("read", path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, key) = self.open(path)?;
        Ok(Box::new(S3Read { store, key, path: path.to_string() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (store, key) = self.open(path)?;
        store.put(&key, bs.into()).await.map(|_| ()).map_err(|e| io_error("write", path, e))
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (store, key) = self.open(path)?;
        Ok(Box::new(S3Write { writer: Some(BufWriter::new(store, key)), path: path.to_string() }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.open(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error("delete", path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.open(path.trim_end_matches('/'))?;
        let listed = store.list(Some(&key)).map_ok(|m| m.location).boxed();
        store.delete_stream(listed).try_collect::<Vec<_>>().await.map_err(|e| io_error("delete under", path, e))?;
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        split(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        split(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one object (Parquet and Avro readers ask for footers and chunks).
struct S3Read {
    store: Arc<dyn ObjectStore>,
    key: Path,
    path: String,
}

#[async_trait]
impl FileRead for S3Read {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store.get_range(&self.key, range).await.map_err(|e| io_error("read", &self.path, e))
    }
}

/// A streaming upload: one PUT for small files, a multipart upload once the buffer fills.
struct S3Write {
    writer: Option<BufWriter>,
    path: String,
}

#[async_trait]
impl FileWrite for S3Write {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, format!("{} is already closed", self.path)))?;
        w.put(bs).await.map_err(|e| io_error("write", &self.path, e))
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let mut w = self
            .writer
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, format!("{} is already closed", self.path)))?;
        w.shutdown().await.map_err(|e| {
            // BufWriter wraps the store's error in an io::Error; explain the store's error.
            let cause = match e.get_ref().and_then(|inner| inner.downcast_ref::<object_store::Error>()) {
                Some(store_error) => super::s3::explain(store_error),
                None => e.to_string(),
            };
            Error::new(ErrorKind::Unexpected, format!("cannot finish writing {}: {cause}", self.path))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_split_into_bucket_and_key() {
        let (b, k) = split("s3://tm-lakehouse-source/silver/t/metadata/v1.metadata.json").unwrap();
        assert_eq!(b, "tm-lakehouse-source");
        assert_eq!(k.as_ref(), "silver/t/metadata/v1.metadata.json");
        assert_eq!(split("s3a://b/k").unwrap().0, "b");
        let e = split("file:///tmp/x").unwrap_err();
        assert!(e.to_string().contains("file:///tmp/x is not an s3:// location"), "{e}");
        assert!(split("s3://bucket-only").is_err());
        assert!(split("s3:///key").is_err());
    }

    #[test]
    fn the_secret_is_never_serialised() {
        let s3 = S3Settings {
            endpoint: "http://127.0.0.1:8333".into(),
            region: "us-east-1".into(),
            access_key: "k".into(),
            secret_key: "very-secret".into(),
            force_path_style: true,
            allow_http: true,
        };
        let json = serde_json::to_string(&S3Storage { s3 }).unwrap();
        assert!(!json.contains("very-secret"), "{json}");
        assert!(json.contains("\"access_key\":\"k\""), "{json}");
    }
}
