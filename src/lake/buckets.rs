//! The five buckets (landing, quarantine, observability, source, serve) as object_store handles:
//! directories under `<home>/buckets/<bucket>/` in the embedded mode, S3 buckets (AWS, MinIO,
//! SeaweedFS) in production. Every helper names the bucket and key in its errors.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Settings, StorageKind};

/// Buffer of the streaming writers: objects up to this size go up in one `put`, bigger ones as a
/// multipart upload of parts this large.
const WRITE_BUFFER: usize = 8 * 1024 * 1024;
/// Chunk size of streamed local file reads.
const READ_CHUNK: usize = 1024 * 1024;

/// One of the lakehouse buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Raw files, byte for byte (bronze).
    Landing,
    /// Rejected files, superseded versions and quarantined rows.
    Quarantine,
    /// Run summaries and artifacts.
    Observability,
    /// The silver Iceberg warehouse.
    Source,
    /// The gold Iceberg warehouse.
    Serve,
}

impl Bucket {
    pub const ALL: [Bucket; 5] =
        [Bucket::Landing, Bucket::Quarantine, Bucket::Observability, Bucket::Source, Bucket::Serve];

    /// The role's name as used in messages (`landing`, `quarantine`, ...).
    pub fn role(self) -> &'static str {
        match self {
            Bucket::Landing => "landing",
            Bucket::Quarantine => "quarantine",
            Bucket::Observability => "observability",
            Bucket::Source => "source",
            Bucket::Serve => "serve",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("cannot create the directory {path} of bucket `{bucket}`: {source}")]
    CreateDir {
        bucket: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // The store's error is explained in the message, not chained as a source: printed with its
    // sources it would repeat the same request three times over.
    #[error("cannot open bucket `{bucket}`: {}", super::s3::explain(.error))]
    Open { bucket: String, error: Box<object_store::Error> },
    #[error("`{key}` is not a valid object key in bucket `{bucket}`: {message}")]
    BadKey { bucket: String, key: String, message: String },
    #[error("{op} of `{key}` in bucket `{bucket}` failed: {}", super::s3::explain(.error))]
    Object { op: &'static str, bucket: String, key: String, error: Box<object_store::Error> },
    #[error("{op} of `{key}` in bucket `{bucket}` failed: {source}")]
    Io {
        op: &'static str,
        bucket: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path} for `{key}` in bucket `{bucket}`: {source}")]
    ReadFile {
        path: PathBuf,
        bucket: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} changed while it was copied to `{key}` in bucket `{bucket}` (sha256 {}, expected {}); \
         nothing was written",
        .sha256.1,
        .sha256.0
    )]
    Changed {
        path: PathBuf,
        bucket: String,
        key: String,
        /// (expected, actual)
        sha256: Box<(String, String)>,
    },
}

impl BucketError {
    /// True when the error says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BucketError::Object { error, .. } if matches!(**error, object_store::Error::NotFound { .. }))
    }
}

pub type Result<T> = std::result::Result<T, BucketError>;

/// What [`Buckets::put_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub sha256: String,
}

struct Handle {
    name: String,
    store: Arc<dyn ObjectStore>,
}

/// The bucket handles of one configuration.
#[derive(Clone)]
pub struct Buckets {
    kind: StorageKind,
    handles: Arc<[Handle; 5]>,
    /// `<home>/buckets` in the embedded mode.
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.handles.iter().map(|h| h.name.as_str()).collect();
        f.debug_struct("Buckets").field("kind", &self.kind).field("names", &names).finish()
    }
}

impl Buckets {
    /// Opens every bucket of `settings`: embedded mode creates `<home>/buckets/<bucket>/`; S3 mode
    /// builds clients (no request is made until an object is touched).
    pub fn open(settings: &Settings) -> Result<Buckets> {
        let names = &settings.lake.buckets;
        let name_of = |b: Bucket| match b {
            Bucket::Landing => names.landing.clone(),
            Bucket::Quarantine => names.quarantine.clone(),
            Bucket::Observability => names.observability.clone(),
            Bucket::Source => names.source.clone(),
            Bucket::Serve => names.serve.clone(),
        };
        let open_one = |b: Bucket| -> Result<Handle> {
            let name = name_of(b);
            let store: Arc<dyn ObjectStore> = match settings.lake.storage {
                StorageKind::Local => {
                    let dir = super::local_bucket_dir(settings, &name);
                    std::fs::create_dir_all(&dir).map_err(|source| BucketError::CreateDir {
                        bucket: name.clone(),
                        path: dir.clone(),
                        source,
                    })?;
                    Arc::new(
                        LocalFileSystem::new_with_prefix(&dir)
                            .map_err(|e| BucketError::Open { bucket: name.clone(), error: Box::new(e) })?,
                    )
                }
                StorageKind::S3 => super::s3::client(&settings.lake.s3, &name)
                    .map_err(|e| BucketError::Open { bucket: name.clone(), error: Box::new(e) })?,
            };
            Ok(Handle { name, store })
        };
        let handles = [
            open_one(Bucket::Landing)?,
            open_one(Bucket::Quarantine)?,
            open_one(Bucket::Observability)?,
            open_one(Bucket::Source)?,
            open_one(Bucket::Serve)?,
        ];
        let local_root = match settings.lake.storage {
            StorageKind::Local => Some(super::absolute(&settings.home).join("buckets")),
            StorageKind::S3 => None,
        };
        Ok(Buckets { kind: settings.lake.storage, handles: Arc::new(handles), local_root })
    }

    fn handle(&self, b: Bucket) -> &Handle {
        let i = match b {
            Bucket::Landing => 0,
            Bucket::Quarantine => 1,
            Bucket::Observability => 2,
            Bucket::Source => 3,
            Bucket::Serve => 4,
        };
        &self.handles[i]
    }

    pub fn storage_kind(&self) -> StorageKind {
        self.kind
    }

    /// The object store of a bucket.
    pub fn store(&self, b: Bucket) -> &Arc<dyn ObjectStore> {
        &self.handle(b).store
    }

    pub fn landing(&self) -> &Arc<dyn ObjectStore> {
        self.store(Bucket::Landing)
    }

    pub fn quarantine(&self) -> &Arc<dyn ObjectStore> {
        self.store(Bucket::Quarantine)
    }

    pub fn observability(&self) -> &Arc<dyn ObjectStore> {
        self.store(Bucket::Observability)
    }

    pub fn source(&self) -> &Arc<dyn ObjectStore> {
        self.store(Bucket::Source)
    }

    pub fn serve(&self) -> &Arc<dyn ObjectStore> {
        self.store(Bucket::Serve)
    }

    /// The configured name of a bucket (`tm-lakehouse-landing`, ...).
    pub fn name(&self, b: Bucket) -> &str {
        &self.handle(b).name
    }

    /// Where an object lives, for people: `s3://bucket/key` or the local file path.
    pub fn url(&self, b: Bucket, key: &str) -> String {
        match &self.local_root {
            Some(root) => root.join(self.name(b)).join(key).display().to_string(),
            None => format!("s3://{}/{key}", self.name(b)),
        }
    }

    /// The local file of an object in the embedded mode (None on S3).
    pub fn local_path(&self, b: Bucket, key: &str) -> Option<PathBuf> {
        self.local_root.as_ref().map(|root| root.join(self.name(b)).join(key))
    }

    /// Parses `key` into an object path, refusing empty keys, `.`/`..` segments and control
    /// characters.
    pub fn key(&self, b: Bucket, key: &str) -> Result<Path> {
        let bad = |message: String| BucketError::BadKey { bucket: self.name(b).to_string(), key: key.into(), message };
        if key.is_empty() || key.ends_with('/') {
            return Err(bad("a key names an object, not a folder".into()));
        }
        Path::parse(key).map_err(|e| bad(e.to_string()))
    }

    fn object_err(&self, op: &'static str, b: Bucket, key: &str) -> impl FnOnce(object_store::Error) -> BucketError {
        let bucket = self.name(b).to_string();
        let key = key.to_string();
        move |error| BucketError::Object { op, bucket, key, error: Box::new(error) }
    }

    fn io_err(&self, op: &'static str, b: Bucket, key: &str) -> impl FnOnce(std::io::Error) -> BucketError {
        let bucket = self.name(b).to_string();
        let key = key.to_string();
        move |source| BucketError::Io { op, bucket, key, source }
    }

    /// Writes `bytes` as one object (atomically: readers see all or nothing).
    pub async fn put_bytes(&self, b: Bucket, key: &str, bytes: impl Into<Bytes>) -> Result<()> {
        let path = self.key(b, key)?;
        self.store(b)
            .put(&path, PutPayload::from_bytes(bytes.into()))
            .await
            .map(|_| ())
            .map_err(self.object_err("put", b, key))
    }

    /// Reads a whole object into memory (for small objects: sidecars, summaries).
    pub async fn get_bytes(&self, b: Bucket, key: &str) -> Result<Bytes> {
        let path = self.key(b, key)?;
        let got = self.store(b).get(&path).await.map_err(self.object_err("get", b, key))?;
        got.bytes().await.map_err(self.object_err("get", b, key))
    }

    /// The object's metadata, or None when it does not exist (other errors are errors).
    pub async fn head(&self, b: Bucket, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.key(b, key)?;
        match self.store(b).head(&path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.object_err("head", b, key)(e)),
        }
    }

    pub async fn exists(&self, b: Bucket, key: &str) -> Result<bool> {
        Ok(self.head(b, key).await?.is_some())
    }

    /// Every object under `prefix` (a folder-like prefix such as `course_id=x/ingest_date=y/`;
    /// empty for the whole bucket), sorted by key.
    pub async fn list(&self, b: Bucket, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let trimmed = prefix.trim_end_matches('/');
        let path = if trimmed.is_empty() { None } else { Some(self.key(b, trimmed)?) };
        let mut all: Vec<ObjectMeta> =
            self.store(b).list(path.as_ref()).try_collect().await.map_err(self.object_err("list", b, prefix))?;
        all.sort_by(|x, y| x.location.cmp(&y.location));
        Ok(all)
    }

    pub async fn delete(&self, b: Bucket, key: &str) -> Result<()> {
        let path = self.key(b, key)?;
        self.store(b).delete(&path).await.map_err(self.object_err("delete", b, key))
    }

    /// Copies an object, overwriting the target: inside one bucket with the store's own copy,
    /// across buckets as a stream (never the whole object in memory).
    pub async fn copy(&self, from: Bucket, from_key: &str, to: Bucket, to_key: &str) -> Result<()> {
        let src = self.key(from, from_key)?;
        let dst = self.key(to, to_key)?;
        if from == to {
            return self.store(from).copy(&src, &dst).await.map_err(self.object_err("copy", to, to_key));
        }
        let got = self.store(from).get(&src).await.map_err(self.object_err("get", from, from_key))?;
        let mut stream = got.into_stream();
        let mut writer = BufWriter::with_capacity(self.store(to).clone(), dst, WRITE_BUFFER);
        loop {
            let chunk = match stream.try_next().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(self.object_err("get", from, from_key)(e));
                }
            };
            if let Err(e) = writer.write_all(&chunk).await {
                let _ = writer.abort().await;
                return Err(self.io_err("put", to, to_key)(e));
            }
        }
        writer.shutdown().await.map_err(self.io_err("put", to, to_key))
    }

    /// The sha256 (hex) and size of an object, read as a stream.
    pub async fn sha256(&self, b: Bucket, key: &str) -> Result<(String, u64)> {
        let path = self.key(b, key)?;
        let got = self.store(b).get(&path).await.map_err(self.object_err("get", b, key))?;
        let mut stream = got.into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(self.object_err("get", b, key))? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
        Ok((crate::util::hex(&hasher.finalize()), size))
    }

    /// Streams a local file into an object (one `put` when small, a multipart upload when big),
    /// hashing it on the way. With `expected_sha256`, a file whose bytes no longer hash to it is
    /// not written (the upload is aborted) and [`BucketError::Changed`] is returned.
    pub async fn put_file(
        &self,
        b: Bucket,
        key: &str,
        file: &FsPath,
        expected_sha256: Option<&str>,
    ) -> Result<Written> {
        let dst = self.key(b, key)?;
        let read_err = |source| BucketError::ReadFile {
            path: file.to_path_buf(),
            bucket: self.name(b).to_string(),
            key: key.to_string(),
            source,
        };
        let mut input = tokio::fs::File::open(file).await.map_err(read_err)?;
        let mut writer = BufWriter::with_capacity(self.store(b).clone(), dst, WRITE_BUFFER);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match input.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(BucketError::ReadFile {
                        path: file.to_path_buf(),
                        bucket: self.name(b).to_string(),
                        key: key.to_string(),
                        source: e,
                    });
                }
            };
            hasher.update(&buf[..n]);
            size += n as u64;
            if let Err(e) = writer.write_all(&buf[..n]).await {
                let _ = writer.abort().await;
                return Err(self.io_err("put", b, key)(e));
            }
        }
        let sha256 = crate::util::hex(&hasher.finalize());
        if let Some(expected) = expected_sha256
            && expected != sha256
        {
            let _ = writer.abort().await;
            return Err(BucketError::Changed {
                path: file.to_path_buf(),
                bucket: self.name(b).to_string(),
                key: key.to_string(),
                sha256: Box::new((expected.to_string(), sha256)),
            });
        }
        writer.shutdown().await.map_err(self.io_err("put", b, key))?;
        Ok(Written { size, sha256 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn settings(home: &FsPath) -> Settings {
        let mut s = Settings::load_with(&Overrides::default(), &Default::default()).unwrap();
        s.home = home.to_path_buf();
        s
    }

    #[test]
    fn s3_clients_build_without_touching_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.lake.storage = StorageKind::S3;
        s.lake.s3.endpoint = "http://127.0.0.1:8333".into();
        s.lake.s3.allow_http = true;
        s.lake.s3.access_key = "k".into();
        s.lake.s3.secret_key = "s".into();
        let b = Buckets::open(&s).unwrap();
        assert_eq!(b.url(Bucket::Landing, "a/b.csv"), "s3://tm-lakehouse-landing/a/b.csv");
        assert!(b.local_path(Bucket::Landing, "a").is_none());
        assert!(!dir.path().join("buckets").exists(), "S3 mode creates no local directories");
        s.lake.s3.force_path_style = false;
        Buckets::open(&s).unwrap();
    }

    #[tokio::test]
    async fn local_buckets_put_get_list_copy_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let b = Buckets::open(&settings(dir.path())).unwrap();
        for bucket in Bucket::ALL {
            assert!(dir.path().join("buckets").join(b.name(bucket)).is_dir(), "{}", bucket.role());
        }
        b.put_bytes(Bucket::Landing, "course_id=x/ingest_date=2025-01-01/a.csv", &b"hello"[..]).await.unwrap();
        assert_eq!(
            &b.get_bytes(Bucket::Landing, "course_id=x/ingest_date=2025-01-01/a.csv").await.unwrap()[..],
            b"hello"
        );
        assert!(b.exists(Bucket::Landing, "course_id=x/ingest_date=2025-01-01/a.csv").await.unwrap());
        assert!(b.head(Bucket::Landing, "course_id=x/nope.csv").await.unwrap().is_none());
        let listed = b.list(Bucket::Landing, "course_id=x/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location.as_ref(), "course_id=x/ingest_date=2025-01-01/a.csv");
        assert!(b.list(Bucket::Landing, "course_id=none/").await.unwrap().is_empty());
        b.copy(Bucket::Landing, "course_id=x/ingest_date=2025-01-01/a.csv", Bucket::Quarantine, "q/a.csv")
            .await
            .unwrap();
        b.copy(Bucket::Quarantine, "q/a.csv", Bucket::Quarantine, "q/b.csv").await.unwrap();
        assert_eq!(&b.get_bytes(Bucket::Quarantine, "q/b.csv").await.unwrap()[..], b"hello");
        let (sha, size) = b.sha256(Bucket::Quarantine, "q/b.csv").await.unwrap();
        assert_eq!(size, 5);
        assert_eq!(sha, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        let e = b.get_bytes(Bucket::Landing, "missing.csv").await.unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().starts_with("get of `missing.csv` in bucket `tm-lakehouse-landing` failed"), "{e}");
        let e = b.put_bytes(Bucket::Landing, "a/../b", &b"x"[..]).await.unwrap_err();
        assert!(
            e.to_string().starts_with("`a/../b` is not a valid object key in bucket `tm-lakehouse-landing`"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn put_file_streams_and_refuses_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = Buckets::open(&settings(dir.path())).unwrap();
        let file = dir.path().join("big.bin");
        let data: Vec<u8> = (0..(WRITE_BUFFER + READ_CHUNK * 3 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let expected = crate::util::hex(&Sha256::digest(&data));
        let w = b.put_file(Bucket::Landing, "big.bin", &file, Some(&expected)).await.unwrap();
        assert_eq!(w, Written { size: data.len() as u64, sha256: expected.clone() });
        assert_eq!(std::fs::read(b.local_path(Bucket::Landing, "big.bin").unwrap()).unwrap(), data);
        let e = b.put_file(Bucket::Landing, "other.bin", &file, Some("00")).await.unwrap_err();
        assert!(matches!(e, BucketError::Changed { .. }), "{e}");
        assert!(!b.exists(Bucket::Landing, "other.bin").await.unwrap());
    }
}
