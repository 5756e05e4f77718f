//! The typed sections of [`Settings`](super::Settings): alerts, retention, daemon, HTTP limits,
//! SMTP and the lake (storage, catalog, buckets, S3).

use std::path::PathBuf;
use std::time::Duration;

/// How webhook alerts are sent (the URLs are per DAG: `webhook` in a DAG's `[defaults]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    /// Key of the `X-Tmctl-Signature: sha256=<hex HMAC-SHA256 of the body>` header; empty = no
    /// signature header.
    pub webhook_secret: String,
    /// Bound on one webhook request (connect, send, answer).
    pub webhook_timeout: Duration,
}

/// What the daemon's daily clean keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Runs that ended (and alerts sent, backfills completed) more than this many days ago are
    /// deleted once a day by `tmctl serve`; 0 = never (the default: deleting history is the
    /// operator's decision; `tmctl db clean --dry-run` shows what a value would remove).
    pub keep_days: u32,
}

/// How `tmctl serve` holds work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// A claimed run (and its running attempts) is leased for this long and renewed every third
    /// of it; an expired lease is taken over by any daemon.
    pub lease: Duration,
    /// Runs one daemon executes at once.
    pub max_runs: usize,
    /// On SIGTERM/Ctrl-C, how long running attempts may finish before they are released.
    pub shutdown_grace: Duration,
}

/// What one client may take from `tmctl serve`'s HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// A connection must send a request's headers within this (slow clients are dropped).
    pub header_read_timeout: Duration,
    /// A request must be answered within this (503 after it).
    pub request_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Largest request body in bytes (413 beyond).
    pub max_body: u64,
}

/// How alert e-mail is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Implicit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Empty = no e-mail (alerts wait in the outbox).
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: String,
    pub password: String,
    pub from: String,
    /// Bound on connecting and on each SMTP command.
    pub timeout: Duration,
}

/// Where bucket objects live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// Directories under `<home>/buckets/<bucket>/` (object_store's LocalFileSystem).
    Local,
    /// An S3 endpoint (AWS, MinIO, SeaweedFS) via object_store's S3 client.
    S3,
}

/// Which Iceberg catalog holds the table pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    /// iceberg-catalog-sql in the state DB (SQLite or PostgreSQL).
    Sql,
    /// An Iceberg REST catalog (SeaweedFS, Polaris, Lakekeeper, Nessie, ...).
    Rest,
    /// AWS Glue: accepted as a name so configs can say what they mean, refused when opened (its
    /// Iceberg REST endpoint needs SigV4-signed requests, which iceberg-catalog-rest 0.10 lacks).
    Glue,
}

/// How to reach an Iceberg REST catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCatalogSettings {
    /// Base URI without `/v1`, e.g. `http://127.0.0.1:8181`.
    pub uri: String,
    /// OAuth2 client credentials `client_id:client_secret` (exchanged at `/v1/oauth/tokens`).
    pub credential: String,
    /// A static bearer token (used when no credential is set).
    pub token: String,
}

/// Bucket names (the reference's `TM_BUCKET_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketNames {
    pub landing: String,
    pub source: String,
    pub serve: String,
    pub quarantine: String,
    pub observability: String,
}

/// Serialisable because Iceberg's storage objects are (`typetag`); the secret never is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Settings {
    /// Empty for AWS itself; `http://127.0.0.1:8333` style for MinIO/SeaweedFS.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    #[serde(default, skip_serializing)]
    pub secret_key: String,
    pub force_path_style: bool,
    pub allow_http: bool,
}

/// Settings of the lakehouse tasks: storage, buckets, catalog, bronze inbox, silver rules.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeSettings {
    pub storage: StorageKind,
    pub buckets: BucketNames,
    pub s3: S3Settings,
    /// Iceberg catalog name; rows in the SQL catalog's tables are keyed by it.
    pub catalog_name: String,
    pub catalog_kind: CatalogKind,
    pub rest: RestCatalogSettings,
    /// Folder the `bronze.ingest` task scans for new files.
    pub inbox: PathBuf,
    /// Reject files whose `course` does not match the course id (else a warning).
    pub strict_course_match: bool,
    /// Largest share (0–1) of malformed records a file may hold and still land (they are
    /// quarantined by silver); more rejects the whole file.
    pub max_bad_record_fraction: f64,
    /// Valid coordinate bounds (inclusive); rows outside are quarantined.
    pub min_lon: f64,
    pub max_lon: f64,
    pub min_lat: f64,
    pub max_lat: f64,
    /// Bytes DataFusion may hold at once in this process (all queries together); operators that
    /// can spill (sorts, aggregations) spill to `spill_dir` beyond it.
    pub memory_limit: u64,
    /// Where queries spill (`<home>/spill` unless set).
    pub spill_dir: PathBuf,
    /// Gold models running at once in this process.
    pub max_parallel_models: usize,
}
