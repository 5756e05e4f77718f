//! S3 clients (object_store's `AmazonS3`), one per bucket and process, shared by the bucket
//! helpers ([`super::buckets`]) and Iceberg's file I/O ([`super::s3_io`]) so both go through one
//! connection pool. Every client is wrapped in [`Counted`], which tallies the requests this
//! process made by kind ([`requests`]): the numbers behind "what does one silver run cost on S3".

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RetryConfig, UploadPart,
};
use serde::Serialize;

use crate::config::S3Settings;

/// A connection that does not open in this long counts as an unreachable endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one request (a part of a multipart upload is one request).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Transient failures (5xx, throttling, resets) are retried this often within [`RETRY_TIMEOUT`].
const MAX_RETRIES: usize = 4;
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// (settings, bucket) → client.
type ClientMap = HashMap<(String, String), Arc<dyn ObjectStore>>;

/// The S3 client of `bucket`, built on first use and then shared by everything in this process
/// that uses the same settings. Building makes no request.
pub fn client(s3: &S3Settings, bucket: &str) -> object_store::Result<Arc<dyn ObjectStore>> {
    static CLIENTS: LazyLock<Mutex<ClientMap>> = LazyLock::new(Default::default);
    // The secret is part of the key so that changed credentials get a new client; the key never
    // leaves this map.
    let key = (
        format!(
            "{}|{}|{}|{}|{}|{}",
            s3.endpoint, s3.region, s3.access_key, s3.secret_key, s3.force_path_style, s3.allow_http
        ),
        bucket.to_string(),
    );
    let mut clients = CLIENTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let store: Arc<dyn ObjectStore> = Arc::new(Counted { inner: Arc::new(builder(s3, bucket).build()?) });
    clients.insert(key, store.clone());
    Ok(store)
}

/// The S3 builder of one bucket. Credentials left empty fall back to the usual AWS chain
/// (environment, web identity, instance metadata).
fn builder(s3: &S3Settings, bucket: &str) -> AmazonS3Builder {
    // Client options first: `with_client_options` replaces them all, `allow_http` included.
    let mut builder = AmazonS3Builder::from_env()
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(s3.allow_http)
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_timeout(REQUEST_TIMEOUT),
        )
        .with_bucket_name(bucket)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(!s3.force_path_style)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_TIMEOUT,
        });
    if !s3.endpoint.is_empty() {
        let (endpoint, virtual_hosted) = endpoint_for(&s3.endpoint, bucket, s3.force_path_style);
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(virtual_hosted);
    }
    if !s3.access_key.is_empty() {
        builder = builder.with_access_key_id(&s3.access_key);
    }
    if !s3.secret_key.is_empty() {
        builder = builder.with_secret_access_key(&s3.secret_key);
    }
    builder
}

/// The endpoint URL of a bucket and whether requests are virtual-hosted. object_store expects a
/// virtual-hosted endpoint to carry the bucket in its host (`https://s3.example.com` becomes
/// `https://<bucket>.s3.example.com`); an endpoint whose host is an IP address cannot, so it is
/// used path-style whatever `force_path_style` says.
pub(crate) fn endpoint_for(endpoint: &str, bucket: &str, force_path_style: bool) -> (String, bool) {
    if force_path_style {
        return (endpoint.to_string(), false);
    }
    if let Ok(mut u) = url::Url::parse(endpoint)
        && let Some(url::Host::Domain(host)) = u.host().map(|h| h.to_owned())
        && u.set_host(Some(&format!("{bucket}.{host}"))).is_ok()
    {
        return (u.as_str().trim_end_matches('/').to_string(), true);
    }
    tracing::warn!(endpoint, bucket, "S3 endpoint has no domain name to put the bucket in; using path-style requests");
    (endpoint.to_string(), false)
}

/// One sentence for an object store error that says what is wrong and which setting to look
/// at, for the three usual mistakes (bad credentials, unreachable endpoint, missing bucket),
/// followed by the store's own words; other errors as the store words them.
pub fn explain(e: &object_store::Error) -> String {
    let chain = crate::alerts::error_chain(e);
    let has = |needle: &str| chain.contains(needle);
    let hint = if has("NoSuchBucket") || has("specified bucket does not exist") {
        "the bucket does not exist: create it, or fix the bucket's name (buckets.* / TM_BUCKET_*)"
    } else if has("SignatureDoesNotMatch")
        || has("InvalidAccessKeyId")
        || has("AccessDenied")
        || has("Access Denied")
        || matches!(e, object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
    {
        "S3 refused the credentials (or they lack permission): check s3.access_key and s3.secret_key \
         (TM_S3_ACCESS_KEY / TM_S3_SECRET_KEY)"
    } else if has("error sending request")
        || has("Connection refused")
        || has("connection refused")
        || has("dns error")
        || has("error trying to connect")
        || has("operation timed out")
    {
        "cannot reach the S3 endpoint: check s3.endpoint (TM_S3_ENDPOINT) and that the server runs"
    } else {
        return chain;
    };
    format!("{hint} ({})", brief(&chain))
}

/// The part of an error chain that carries the cause: an S3 error body's `<Code>`, else the HTTP
/// status, else the chain's last link; bounded in length.
fn brief(chain: &str) -> String {
    if let Some(start) = chain.find("<Code>")
        && let Some(end) = chain[start..].find("</Code>")
        && end > 6
    {
        return chain[start + 6..start + end].to_string();
    }
    if let Some(at) = chain.find("status code: ") {
        let rest = &chain[at + "status code: ".len()..];
        return rest.split(':').next().unwrap_or(rest).trim().to_string();
    }
    let tail = chain.rsplit(": ").find(|part| !part.trim().is_empty()).unwrap_or(chain);
    tail.chars().take(200).collect()
}

/// Declares [`Requests`] (counts by kind), the process-wide atomics behind it and [`requests`]
/// from one list of fields.
macro_rules! request_counts {
    ($( $(#[$doc:meta])* $field:ident ),* $(,)?) => {
        /// Requests made through the S3 clients of this process, by kind.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct Requests {
            $( $(#[$doc])* pub $field: u64, )*
        }

        #[derive(Default)]
        struct Counters {
            $( $field: AtomicU64, )*
        }

        /// The requests this process has made to S3 so far (all buckets).
        pub fn requests() -> Requests {
            Requests { $( $field: COUNTERS.$field.load(Ordering::Relaxed), )* }
        }
    };
}

request_counts! {
    /// GET of a whole object.
    get,
    /// GET of a byte range (Parquet footers and column chunks, Avro manifests).
    get_range,
    /// HEAD (existence and size checks).
    head,
    /// Single-request PUT.
    put,
    /// Multipart uploads started (CreateMultipartUpload)…
    multipart_create,
    /// …their parts (UploadPart)…
    multipart_part,
    /// …and completions (CompleteMultipartUpload).
    multipart_complete,
    /// Objects deleted.
    delete,
    /// LIST calls (ListObjectsV2; a long listing pages, each page is not counted).
    list,
    /// Server-side copies.
    copy,
    /// Bytes sent in PUTs and parts.
    bytes_up,
    /// Bytes received by GETs.
    bytes_down,
}

impl Requests {
    pub fn total(&self) -> u64 {
        self.get
            + self.get_range
            + self.head
            + self.put
            + self.multipart_create
            + self.multipart_part
            + self.multipart_complete
            + self.delete
            + self.list
            + self.copy
    }
}

impl fmt::Display for Requests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests: GET {} (+{} ranged), HEAD {}, PUT {}, multipart {} ({} parts, {} completed), \
             DELETE {}, LIST {}, COPY {}; {:.1} MB up, {:.1} MB down",
            self.total(),
            self.get,
            self.get_range,
            self.head,
            self.put,
            self.multipart_create,
            self.multipart_part,
            self.multipart_complete,
            self.delete,
            self.list,
            self.copy,
            self.bytes_up as f64 / 1e6,
            self.bytes_down as f64 / 1e6,
        )
    }
}

static COUNTERS: LazyLock<Counters> = LazyLock::new(Counters::default);

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// An object store that counts the requests it forwards.
#[derive(Debug)]
struct Counted {
    inner: Arc<dyn ObjectStore>,
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for Counted {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        bump(&COUNTERS.put, 1);
        bump(&COUNTERS.bytes_up, payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        bump(&COUNTERS.multipart_create, 1);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountedUpload { inner }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        if options.head {
            bump(&COUNTERS.head, 1);
        } else if options.range.is_some() {
            bump(&COUNTERS.get_range, 1);
        } else {
            bump(&COUNTERS.get, 1);
        }
        let got = self.inner.get_opts(location, options).await?;
        bump(&COUNTERS.bytes_down, got.range.end.saturating_sub(got.range.start));
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let counted = locations.inspect(|p| {
            if p.is_ok() {
                bump(&COUNTERS.delete, 1);
            }
        });
        self.inner.delete_stream(counted.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        bump(&COUNTERS.list, 1);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        bump(&COUNTERS.list, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        bump(&COUNTERS.list, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        bump(&COUNTERS.copy, 1);
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct CountedUpload {
    inner: Box<dyn MultipartUpload>,
}

#[async_trait]
impl MultipartUpload for CountedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        bump(&COUNTERS.multipart_part, 1);
        bump(&COUNTERS.bytes_up, data.content_length() as u64);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        bump(&COUNTERS.multipart_complete, 1);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        let e = |endpoint: &str, force| endpoint_for(endpoint, "b1", force);
        assert_eq!(e("https://s3.example.com", false), ("https://b1.s3.example.com".into(), true));
        assert_eq!(e("http://minio:9000/", false), ("http://b1.minio:9000".into(), true));
        assert_eq!(e("http://minio:9000", true), ("http://minio:9000".into(), false));
        assert_eq!(e("http://127.0.0.1:8333", false), ("http://127.0.0.1:8333".into(), false), "IP: path style");
    }

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: text.to_string().into() }
    }

    #[test]
    fn the_usual_mistakes_are_explained_with_their_setting() {
        let e = explain(&generic("404 Not Found: <Error><Code>NoSuchBucket</Code><Message>x</Message></Error>"));
        assert!(e.starts_with("the bucket does not exist: create it, or fix the bucket's name"), "{e}");
        assert!(e.ends_with("(NoSuchBucket)"), "{e}");
        let e = explain(&object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "Server returned non-2xx status code: 403 Forbidden: ".to_string().into(),
        });
        assert!(e.contains("check s3.access_key and s3.secret_key") && e.ends_with("(403 Forbidden)"), "{e}");
        let e = explain(&generic("error sending request: tcp connect error: Connection refused (os error 111)"));
        assert!(e.starts_with("cannot reach the S3 endpoint: check s3.endpoint (TM_S3_ENDPOINT)"), "{e}");
        assert!(e.ends_with("(Connection refused (os error 111))"), "{e}");
        // Anything else: the store's own words.
        assert_eq!(explain(&generic("something else")), "Generic S3 error: something else");
    }

    #[test]
    fn request_counts_add_up_and_print() {
        let r = Requests { get: 3, list: 1, bytes_up: 20_000_000, ..Default::default() };
        assert_eq!(r.total(), 4);
        assert!(r.to_string().starts_with("4 requests: GET 3 (+0 ranged)"), "{r}");
        assert!(r.to_string().ends_with("20.0 MB up, 0.0 MB down"), "{r}");
    }
}
