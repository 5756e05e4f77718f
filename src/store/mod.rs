//! The state DB: the only module that speaks SQL. One schema (`migrations/sqlite`,
//! `migrations/postgres`), one set of queries with bound `$N` parameters, run through sqlx's `Any`
//! driver on SQLite (embedded default) or PostgreSQL. One file per table group.

pub mod admin;
mod alerts;
mod backfills;
mod daemons;
mod dags;
mod iceberg;
mod registry;
mod retention;
mod runs;
#[cfg(feature = "bench")]
pub mod seed;
mod summaries;
mod ui;
mod users;
mod web;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use alerts::{ALERT_MAX_TRIES, AlertRow, CHANNEL_EMAIL, CHANNEL_WEBHOOK, NewAlert, OverdueRun};
pub use backfills::{BackfillDateRow, BackfillRow, NewBackfill};
pub use daemons::{DaemonRow, SchedulerLock};
pub use registry::{IngestStatus, IngestionFilter, IngestionRow, NewIngestion};
pub use retention::{CLEAN_BATCH, CleanCounts, CleanScope};
pub use runs::{AttemptFinish, AttemptRow, NewRun, RunFilter, RunRow, TaskInstanceRow};
pub use summaries::SummaryRow;
pub use ui::{AttemptSpan, TaskCell};
pub use users::{AuditRow, TokenOwner, TokenRow, UserRow};
pub use web::{SESSION_CACHE_TTL, WebSession};

use crate::timefmt;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {action} failed: {source}")]
    Db {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("state database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot open state database {url}: {message}")]
    Open { url: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("state database holds a bad value in {column}: {value:?}")]
    Corrupt { column: &'static str, value: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Adds the action name to a sqlx error.
pub(crate) trait Ctx<T> {
    fn ctx(self, action: &'static str) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, sqlx::Error> {
    fn ctx(self, action: &'static str) -> Result<T> {
        self.map_err(|source| StoreError::Db { action, source })
    }
}

/// A connection pool to the state DB with the schema migrated.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Web sessions validated lately by this process (`web.rs`).
    sessions: Arc<web::SessionCache>,
    /// API tokens validated lately by this process (`users.rs`).
    tokens: Arc<web::TokenCache>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish()
    }
}

impl Store {
    /// Opens (creating a SQLite file and its directory on first use) and migrates the state DB.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Open {
                url: crate::secrets::redact_url(url),
                message: "unsupported URL scheme".into(),
            });
        };
        let sqlite_file = if backend == Backend::Sqlite { sqlite_path(url) } else { None };
        if let Some(file) = &sqlite_file {
            prepare_sqlite_file(file, url.contains("mode=ro"))
                .map_err(|message| StoreError::Open { url: crate::secrets::redact_url(url), message })?;
        }
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let options = match backend {
            // One connection: SQLite has a single writer anyway, and one connection never meets
            // SQLITE_BUSY from itself. WAL keeps readers in other processes unblocked.
            Backend::Sqlite => options.max_connections(1).after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(max_connections.max(2)),
        };
        let pool = options
            .connect(url)
            .await
            .map_err(|e| StoreError::Open { url: crate::secrets::redact_url(url), message: e.to_string() })?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATOR.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATOR.run(&pool).await?,
        }
        if let Some(file) = &sqlite_file {
            // SQLite gives -wal/-shm the database file's mode; older ones may predate that.
            for suffix in ["-wal", "-shm"] {
                let mut side = file.clone().into_os_string();
                side.push(suffix);
                if let Err(e) = crate::secrets::private_file(std::path::Path::new(&side)) {
                    tracing::warn!(file = ?side, error = %e, "cannot make the state DB file private (0600)");
                }
            }
        }
        Ok(Store { pool, backend, sessions: Arc::default(), tokens: Arc::default() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the SQLite file's directory (0700 when created here) and the file itself with mode
/// 0600, or makes an existing file 0600: the state DB holds run confs, sessions and the catalog.
fn prepare_sqlite_file(file: &std::path::Path, read_only: bool) -> std::result::Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("cannot create directory {}: {e}", parent.display()))?;
    }
    if !file.exists() && !read_only {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(file)
            .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    }
    if let Err(e) = crate::secrets::private_file(file) {
        tracing::warn!(file = %file.display(), error = %e, "cannot make the state DB private (0600)");
    }
    Ok(())
}

/// The file path inside a `sqlite://PATH?opts` URL.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

// ---- states -------------------------------------------------------------------------------------

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s { $($text => Ok($name::$variant),)+ other => Err(other.to_string()) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// State of a DAG run.
    RunState { Queued => "queued", Running => "running", Success => "success", Failed => "failed" }
);

impl RunState {
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }
}

string_enum!(
    /// State of a task instance (SPEC §4); a task that has not been looked at yet has none.
    TaskState {
        Scheduled => "scheduled",
        Queued => "queued",
        Running => "running",
        Success => "success",
        Failed => "failed",
        UpForRetry => "up_for_retry",
        UpstreamFailed => "upstream_failed",
        Skipped => "skipped",
    }
);

impl TaskState {
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Success | TaskState::Failed | TaskState::UpstreamFailed | TaskState::Skipped)
    }
}

string_enum!(
    /// Outcome of one try of a task.
    AttemptState { Running => "running", Success => "success", Failed => "failed", Skipped => "skipped" }
);

string_enum!(
    /// How a run came to be.
    RunType { Manual => "manual", Backfill => "backfill", Scheduled => "scheduled" }
);

// ---- row decoding helpers -----------------------------------------------------------------------

/// `$first, $first+1, …`: `n` placeholders for a list of bound values (an `IN (…)` list).
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub(crate) fn get_str(row: &AnyRow, col: &'static str) -> Result<String> {
    row.try_get::<String, _>(col).ctx("read")
}

pub(crate) fn get_opt_str(row: &AnyRow, col: &'static str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(col).ctx("read")
}

pub(crate) fn get_i64(row: &AnyRow, col: &'static str) -> Result<i64> {
    row.try_get::<i64, _>(col).ctx("read")
}

pub(crate) fn get_opt_i64(row: &AnyRow, col: &'static str) -> Result<Option<i64>> {
    row.try_get::<Option<i64>, _>(col).ctx("read")
}

pub(crate) fn get_ts(row: &AnyRow, col: &'static str) -> Result<DateTime<Utc>> {
    let s = get_str(row, col)?;
    timefmt::from_db(&s).ok_or(StoreError::Corrupt { column: col, value: s })
}

pub(crate) fn get_opt_ts(row: &AnyRow, col: &'static str) -> Result<Option<DateTime<Utc>>> {
    match get_opt_str(row, col)? {
        None => Ok(None),
        Some(s) => timefmt::from_db(&s).map(Some).ok_or(StoreError::Corrupt { column: col, value: s }),
    }
}

pub(crate) fn get_date(row: &AnyRow, col: &'static str) -> Result<NaiveDate> {
    let s = get_str(row, col)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| StoreError::Corrupt { column: col, value: s })
}

pub(crate) fn get_enum<T: FromStr>(row: &AnyRow, col: &'static str) -> Result<T> {
    let s = get_str(row, col)?;
    s.parse().map_err(|_| StoreError::Corrupt { column: col, value: s })
}

pub(crate) fn get_opt_enum<T: FromStr>(row: &AnyRow, col: &'static str) -> Result<Option<T>> {
    match get_opt_str(row, col)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| StoreError::Corrupt { column: col, value: s }),
    }
}

/// Text as the state DB can hold it: PostgreSQL TEXT cannot store NUL, so NUL becomes U+FFFD.
pub(crate) fn clean_text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() || db.code().is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_come_out_of_urls() {
        assert_eq!(sqlite_path("sqlite://.tm/tm.db?mode=rwc"), Some(".tm/tm.db".into()));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
