//! The ingestion registry (`ingestion_registry`): one row per ingest decision about one file
//! (accepted, skipped as a duplicate, rejected, superseded, refused), with its content hash, size,
//! row count, where its bytes went, and the run/task that decided when a DAG task did.

use chrono::{DateTime, NaiveDate, Utc};

use super::*;

/// What happened to one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    /// Landed byte for byte in the landing bucket.
    Accepted,
    /// Not landed because the same bytes are already landed for the course and date.
    Skipped,
    /// Invalid; copied to the quarantine bucket with a reason.
    Rejected,
    /// An older landed version, moved to the quarantine bucket's `superseded/` prefix by a
    /// replacing ingest (which records the new version as `accepted`).
    Superseded,
    /// Different bytes under a landing key that is taken, without `replace`: nothing written.
    Refused,
}

impl IngestStatus {
    pub const ALL: &'static [IngestStatus] = &[
        IngestStatus::Accepted,
        IngestStatus::Skipped,
        IngestStatus::Rejected,
        IngestStatus::Superseded,
        IngestStatus::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IngestStatus::Accepted => "accepted",
            IngestStatus::Skipped => "skipped",
            IngestStatus::Rejected => "rejected",
            IngestStatus::Superseded => "superseded",
            IngestStatus::Refused => "refused",
        }
    }
}

impl FromStr for IngestStatus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        IngestStatus::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| s.to_string())
    }
}

impl fmt::Display for IngestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewIngestion<'a> {
    /// `bronze` for file ingests.
    pub layer: &'a str,
    /// The course id the file was ingested under (as given, even when it was rejected as unsafe).
    pub course_id: Option<&'a str>,
    pub ingest_date: Option<NaiveDate>,
    /// The file's base name.
    pub filename: &'a str,
    /// Hex sha256 of the file's bytes.
    pub sha256: Option<&'a str>,
    pub size_bytes: Option<u64>,
    /// Records in the file (CSV data rows, JSON objects); None when it could not be counted.
    pub row_count: Option<u64>,
    pub status: IngestStatus,
    pub reason: Option<&'a str>,
    pub landing_key: Option<&'a str>,
    pub quarantine_key: Option<&'a str>,
    /// The DAG run and task that decided, when a task did.
    pub run_pk: Option<i64>,
    pub task_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestionRow {
    pub id: i64,
    pub layer: String,
    pub course_id: Option<String>,
    pub ingest_date: Option<NaiveDate>,
    pub filename: String,
    pub sha256: Option<String>,
    pub size_bytes: Option<i64>,
    pub row_count: Option<i64>,
    pub status: IngestStatus,
    pub reason: Option<String>,
    pub landing_key: Option<String>,
    pub quarantine_key: Option<String>,
    pub run_pk: Option<i64>,
    pub task_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which registry rows to list (newest first). Unset fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct IngestionFilter<'a> {
    pub layer: Option<&'a str>,
    pub course_id: Option<&'a str>,
    pub ingest_date: Option<NaiveDate>,
    pub status: Option<IngestStatus>,
    pub filename: Option<&'a str>,
    pub limit: i64,
}

pub(super) const COLS: &str = "id, layer, course_id, ingest_date, filename, sha256, size_bytes, row_count, status, reason, \
                    landing_key, quarantine_key, run_pk, task_id, created_at";

pub(super) fn row_to_ingestion(row: &AnyRow) -> Result<IngestionRow> {
    let ingest_date = match get_opt_str(row, "ingest_date")? {
        None => None,
        Some(s) => Some(
            NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .map_err(|_| StoreError::Corrupt { column: "ingest_date", value: s })?,
        ),
    };
    Ok(IngestionRow {
        id: get_i64(row, "id")?,
        layer: get_str(row, "layer")?,
        course_id: get_opt_str(row, "course_id")?,
        ingest_date,
        filename: get_str(row, "filename")?,
        sha256: get_opt_str(row, "sha256")?,
        size_bytes: get_opt_i64(row, "size_bytes")?,
        row_count: get_opt_i64(row, "row_count")?,
        status: get_enum(row, "status")?,
        reason: get_opt_str(row, "reason")?,
        landing_key: get_opt_str(row, "landing_key")?,
        quarantine_key: get_opt_str(row, "quarantine_key")?,
        run_pk: get_opt_i64(row, "run_pk")?,
        task_id: get_opt_str(row, "task_id")?,
        created_at: get_ts(row, "created_at")?,
    })
}

fn to_i64(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl Store {
    /// Records one decision and returns its id. Errors are errors: a decision that cannot be
    /// recorded must not be taken silently.
    pub async fn record_ingestion(&self, new: &NewIngestion<'_>) -> Result<i64> {
        let status = new.status;
        let now = timefmt::to_db(timefmt::now());
        let row = sqlx::query(
            "INSERT INTO ingestion_registry (layer, course_id, ingest_date, filename, sha256, size_bytes, row_count, \
             status, reason, landing_key, quarantine_key, run_pk, task_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(new.layer)
        .bind(new.course_id.map(clean_text))
        .bind(new.ingest_date.map(|d| d.to_string()))
        .bind(clean_text(new.filename))
        .bind(new.sha256)
        .bind(to_i64(new.size_bytes))
        .bind(to_i64(new.row_count))
        .bind(status.as_str())
        .bind(new.reason.map(clean_text))
        .bind(new.landing_key.map(clean_text))
        .bind(new.quarantine_key.map(clean_text))
        .bind(new.run_pk)
        .bind(new.task_id)
        .bind(now)
        .fetch_one(self.pool())
        .await
        .ctx("record ingestion")?;
        get_i64(&row, "id")
    }

    /// Every decision about (course, date, file name), newest first.
    pub async fn find_ingestions_by_file(
        &self,
        layer: &str,
        course_id: &str,
        ingest_date: NaiveDate,
        filename: &str,
    ) -> Result<Vec<IngestionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM ingestion_registry WHERE layer = $1 AND course_id = $2 AND ingest_date = $3 \
             AND filename = $4 ORDER BY id DESC"
        ))
        .bind(layer)
        .bind(course_id)
        .bind(ingest_date.to_string())
        .bind(filename)
        .fetch_all(self.pool())
        .await
        .ctx("find ingestions by file")?;
        rows.iter().map(row_to_ingestion).collect()
    }

    /// Accepted versions with this content for (course, date), newest first.
    pub async fn find_accepted_by_sha256(
        &self,
        layer: &str,
        course_id: &str,
        ingest_date: NaiveDate,
        sha256: &str,
    ) -> Result<Vec<IngestionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM ingestion_registry WHERE layer = $1 AND course_id = $2 AND ingest_date = $3 \
             AND sha256 = $4 AND status = 'accepted' ORDER BY id DESC"
        ))
        .bind(layer)
        .bind(course_id)
        .bind(ingest_date.to_string())
        .bind(sha256)
        .fetch_all(self.pool())
        .await
        .ctx("find ingestions by sha256")?;
        rows.iter().map(row_to_ingestion).collect()
    }

    /// The newest `accepted` row that wrote `landing_key`: the registry's idea of what the
    /// object holds now.
    pub async fn latest_accepted_at(&self, layer: &str, landing_key: &str) -> Result<Option<IngestionRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLS} FROM ingestion_registry WHERE layer = $1 AND landing_key = $2 AND status = 'accepted' \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(layer)
        .bind(landing_key)
        .fetch_optional(self.pool())
        .await
        .ctx("find landed version")?;
        row.as_ref().map(row_to_ingestion).transpose()
    }

    /// Registry rows, newest first, filtered by `filter`.
    pub async fn list_ingestions(&self, filter: &IngestionFilter<'_>) -> Result<Vec<IngestionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM ingestion_registry WHERE ($1 IS NULL OR layer = $1) AND ($2 IS NULL OR course_id = $2) \
             AND ($3 IS NULL OR ingest_date = $3) AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR filename = $5) \
             ORDER BY id DESC LIMIT $6"
        ))
        .bind(filter.layer)
        .bind(filter.course_id)
        .bind(filter.ingest_date.map(|d| d.to_string()))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.filename)
        .bind(filter.limit)
        .fetch_all(self.pool())
        .await
        .ctx("list ingestions")?;
        rows.iter().map(row_to_ingestion).collect()
    }

    /// The newest ingest date with a landed (`accepted`) file, per course, in one query: only
    /// dates up to `up_to` count when given, only `course_id` when given (the freshness check).
    pub async fn last_landed_per_course(
        &self,
        layer: &str,
        up_to: Option<NaiveDate>,
        course_id: Option<&str>,
    ) -> Result<std::collections::BTreeMap<String, NaiveDate>> {
        let rows = sqlx::query(
            "SELECT course_id, MAX(ingest_date) AS last_date FROM ingestion_registry WHERE layer = $1 \
             AND status = 'accepted' AND course_id IS NOT NULL AND ingest_date IS NOT NULL \
             AND ($2 IS NULL OR ingest_date <= $2) AND ($3 IS NULL OR course_id = $3) GROUP BY course_id",
        )
        .bind(layer)
        .bind(up_to.map(|d| d.to_string()))
        .bind(course_id)
        .fetch_all(self.pool())
        .await
        .ctx("last landed date per course")?;
        rows.iter().map(|r| Ok((get_str(r, "course_id")?, get_date(r, "last_date")?))).collect()
    }

    /// Number of rows per status for (course?, date?), for summaries.
    pub async fn count_ingestions(
        &self,
        layer: &str,
        course_id: Option<&str>,
        ingest_date: Option<NaiveDate>,
    ) -> Result<Vec<(IngestStatus, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM ingestion_registry WHERE layer = $1 AND ($2 IS NULL OR course_id = $2) \
             AND ($3 IS NULL OR ingest_date = $3) GROUP BY status ORDER BY status",
        )
        .bind(layer)
        .bind(course_id)
        .bind(ingest_date.map(|d| d.to_string()))
        .fetch_all(self.pool())
        .await
        .ctx("count ingestions")?;
        rows.iter().map(|r| Ok((get_enum(r, "status")?, get_i64(r, "n")?))).collect()
    }
}
