//! Bronze ingest: validates local rounds files (wide CSV, MongoDB JSON export), lands accepted ones
//! byte for byte in the landing bucket under `course_id=<id>/ingest_date=<date>/<filename>`,
//! quarantines rejected ones with a reason, and records every decision in the ingestion registry.
//! Idempotent by content (sha256): same bytes are skipped, different bytes under a taken key are
//! refused unless `replace`, which keeps the old version under the quarantine's `superseded/`.

mod cli;
pub mod naming;
pub mod scan;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};

pub use crate::landing::{Format, format_by_extension, format_by_first_byte};
pub use cli::{IngestArgs, run_cli};
pub use naming::{course_from_filename, course_matches, date_from_filename, is_safe_slug};

use crate::config::Settings;
use crate::lake::buckets::{Bucket, BucketError, Buckets};
use crate::store::{IngestStatus, IngestionRow, NewIngestion, Store, StoreError};

/// The registry's `layer` of bronze rows.
pub const LAYER: &str = "bronze";
/// Hex digits of a sha256 used in superseded / colliding quarantine keys.
const SHA_PREFIX: usize = 12;
/// Stands in for a course id or date that is not safe to put into a key (a rejected file's
/// quarantine key); uppercase, so no valid course id or date can be equal to it.
const INVALID_PART: &str = "INVALID";

/// What to ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestRequest {
    /// Files, or directories whose files (not recursive; names starting with `.` skipped) are
    /// ingested in name order.
    pub paths: Vec<PathBuf>,
    /// Course id for every file; default: from each file name (`<course>.rounds.csv`).
    pub course: Option<String>,
    /// Ingest date for every file; default: the file name's (`<course>.<YYYY-MM-DD>.<n>.csv`),
    /// else `default_date`.
    pub date: Option<NaiveDate>,
    /// The date of files that carry none; None = today (UTC). The DAG task passes its `ds`.
    pub default_date: Option<NaiveDate>,
    /// Replace a landed object whose bytes differ (else such a file is refused).
    pub replace: bool,
}

/// The DAG run and task an ingest runs for (recorded in the registry).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRef {
    pub run_pk: i64,
    pub task_id: String,
}

/// The decision about one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileOutcome {
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    pub filename: String,
    /// The course id the file was ingested under (as derived, even when it was rejected as unsafe).
    pub course_id: Option<String>,
    pub ingest_date: Option<NaiveDate>,
    pub format: Option<Format>,
    /// `accepted`, `skipped`, `rejected`, `superseded` (accepted, replacing other bytes) or `refused`.
    pub status: IngestStatus,
    /// Why (rejections, duplicates, refusals, replacements) or a warning (course mismatch).
    pub reason: Option<String>,
    /// Records in the file; None when it could not be read to the end.
    pub rows: Option<u64>,
    pub bytes: u64,
    pub sha256: String,
    /// Where the content is in the landing bucket (for a duplicate: where it already was).
    pub landing_key: Option<String>,
    /// Where a rejected file, or the version a replacement superseded, is in the quarantine bucket.
    pub quarantine_key: Option<String>,
}

fn lossy_path<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// Files per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub accepted: usize,
    pub skipped: usize,
    pub rejected: usize,
    pub superseded: usize,
    pub refused: usize,
}

impl Counts {
    pub fn get(&self, status: IngestStatus) -> usize {
        match status {
            IngestStatus::Accepted => self.accepted,
            IngestStatus::Skipped => self.skipped,
            IngestStatus::Rejected => self.rejected,
            IngestStatus::Superseded => self.superseded,
            IngestStatus::Refused => self.refused,
        }
    }
}

/// Every decision of one ingest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    pub files: Vec<FileOutcome>,
    pub counts: Counts,
    /// Records in the files landed by this ingest (accepted and superseding ones).
    pub rows_landed: u64,
}

impl IngestReport {
    pub fn new(files: Vec<FileOutcome>) -> Self {
        let mut counts = Counts::default();
        let mut rows_landed = 0;
        for f in &files {
            match f.status {
                IngestStatus::Accepted => counts.accepted += 1,
                IngestStatus::Skipped => counts.skipped += 1,
                IngestStatus::Rejected => counts.rejected += 1,
                IngestStatus::Superseded => counts.superseded += 1,
                IngestStatus::Refused => counts.refused += 1,
            }
            if matches!(f.status, IngestStatus::Accepted | IngestStatus::Superseded) {
                rows_landed += f.rows.unwrap_or(0);
            }
        }
        IngestReport { files, counts, rows_landed }
    }

    /// True when no file was rejected or refused.
    pub fn all_ok(&self) -> bool {
        self.counts.rejected == 0 && self.counts.refused == 0
    }
}

/// Why a file is rejected. The `Display` text is the registry's `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("file name `{0}` is not valid UTF-8")]
    FileNameNotUtf8(String),
    #[error("file name `{name}` cannot be an object key: it contains {ch:?}")]
    FileNameUnsafe { name: String, ch: char },
    #[error("cannot tell the course id from file name `{0}`; give one with --course")]
    NoCourse(String),
    #[error(
        "course id `{0}` (from the file name) is not a safe slug (lowercase letters, digits, `-`, `_`); \
         rename the file or give --course"
    )]
    UnsafeCourse(String),
    #[error("file name `{name}` carries `{value}`, which is not a date (expected YYYY-MM-DD)")]
    BadFileDate { name: String, value: String },
    #[error("file is empty (0 bytes)")]
    Empty,
    #[error("file holds only whitespace")]
    Blank,
    /// The CSV header cannot be read or lacks `_id` / `course`.
    #[error("{0}")]
    Header(crate::landing::Unusable),
    #[error("CSV file has no data rows (header only)")]
    CsvNoRecords,
    #[error(
        "{malformed} of {records} records are malformed, more than bronze.max_bad_record_fraction = {max}; \
         the first: {first}"
    )]
    TooManyMalformed { malformed: u64, records: u64, max: String, first: String },
    #[error("JSON file has no records (empty array)")]
    JsonNoRecords,
    #[error(
        "Course mismatch: file contains course '{value}' (record {record}; {mismatching} of {total} records) \
         but course id is '{course}'"
    )]
    CourseMismatch { value: String, record: u64, mismatching: u64, total: u64, course: String },
}

#[derive(Debug, thiserror::Error)]
pub enum BronzeError {
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("course id `{0}` is not a safe slug (lowercase letters, digits, `-`, `_`)")]
    InvalidCourse(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scanning {path} stopped: {message}")]
    Scan { path: PathBuf, message: String },
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error("ingestion registry: {0}")]
    Registry(#[from] StoreError),
}

/// The files `paths` name: files as given, directories' regular files (not recursive, names
/// starting with `.` skipped) in name order; each file once. A path that does not exist is an error.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BronzeError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |p: PathBuf, out: &mut Vec<PathBuf>| {
        let id = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if seen.insert(id) {
            out.push(p);
        }
    };
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| BronzeError::Input {
            path: path.clone(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".into()
            } else {
                e.to_string()
            },
        })?;
        if meta.is_file() {
            push(path.clone(), &mut out);
        } else if meta.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| BronzeError::Read { path: path.clone(), source: e })?;
            let mut files = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| BronzeError::Read { path: path.clone(), source: e })?;
                let p = entry.path();
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if !hidden && std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
                    files.push(p);
                }
            }
            files.sort();
            for f in files {
                push(f, &mut out);
            }
        } else {
            return Err(BronzeError::Input { path: path.clone(), message: "is neither a file nor a directory".into() });
        }
    }
    Ok(out)
}

/// Ingests every file of `req`, one after the other, calling `progress` after each decision.
/// Rejected, skipped and refused files are outcomes, not errors; errors are infrastructure
/// failures (a path that does not exist, an unreadable file, bucket or registry failures), and
/// files decided before one stay decided (re-running is safe: decisions are idempotent).
pub async fn ingest(
    settings: &Settings,
    store: &Store,
    buckets: &Buckets,
    req: &IngestRequest,
    run: Option<RunRef>,
    progress: &(dyn Fn(&FileOutcome) + Send + Sync),
) -> Result<IngestReport, BronzeError> {
    if let Some(c) = &req.course
        && !is_safe_slug(c)
    {
        return Err(BronzeError::InvalidCourse(c.clone()));
    }
    let files = expand_paths(&req.paths)?;
    let cx = Ingest {
        strict: settings.lake.strict_course_match,
        max_bad: settings.lake.max_bad_record_fraction,
        store,
        buckets,
        req,
        run: run.as_ref(),
        today: Utc::now().date_naive(),
    };
    let mut outcomes = Vec::with_capacity(files.len());
    for path in files {
        let outcome = cx.file(&path).await?;
        tracing::debug!(
            file = %path.display(),
            status = %outcome.status,
            course_id = outcome.course_id.as_deref().unwrap_or("-"),
            ingest_date = %outcome.ingest_date.map(|d| d.to_string()).unwrap_or_default(),
            rows = outcome.rows.unwrap_or(0),
            reason = outcome.reason.as_deref().unwrap_or(""),
            "bronze decision"
        );
        progress(&outcome);
        outcomes.push(outcome);
    }
    Ok(IngestReport::new(outcomes))
}

/// The landing key of a file.
pub fn landing_key(course_id: &str, ingest_date: NaiveDate, filename: &str) -> String {
    format!("course_id={course_id}/ingest_date={ingest_date}/{filename}")
}

struct Ingest<'a> {
    strict: bool,
    /// `bronze.max_bad_record_fraction`: a file with a larger share of malformed records is rejected.
    max_bad: f64,
    store: &'a Store,
    buckets: &'a Buckets,
    req: &'a IngestRequest,
    run: Option<&'a RunRef>,
    today: NaiveDate,
}

/// What the registry and the landing bucket say an existing landing object holds.
struct Landed {
    sha256: String,
    size: u64,
    /// The registry's newest `accepted` row for the key, when it describes the object (same size).
    row: Option<IngestionRow>,
}

impl Ingest<'_> {
    async fn file(&self, path: &Path) -> Result<FileOutcome, BronzeError> {
        let raw_name = path.file_name().unwrap_or(path.as_os_str());
        let (filename, name_problem) = match raw_name.to_str() {
            Some(s) => (
                s.to_string(),
                naming::key_unsafe_char(s).map(|ch| RejectReason::FileNameUnsafe { name: s.to_string(), ch }),
            ),
            None => {
                let lossy = raw_name.to_string_lossy().into_owned();
                (lossy.clone(), Some(RejectReason::FileNameNotUtf8(lossy)))
            }
        };

        let by_extension = scan::format_by_extension(&filename);
        let owned = path.to_path_buf();
        let scanned = tokio::task::spawn_blocking(move || scan::scan_file(&owned, by_extension))
            .await
            .map_err(|e| BronzeError::Scan { path: path.to_path_buf(), message: e.to_string() })?
            .map_err(|source| BronzeError::Read { path: path.to_path_buf(), source })?;

        let (course, course_problem) = match &self.req.course {
            Some(c) => (Some(c.clone()), None),
            None => {
                let c = course_from_filename(&filename);
                if c.is_empty() {
                    (None, Some(RejectReason::NoCourse(filename.clone())))
                } else if !is_safe_slug(&c) {
                    (Some(c.clone()), Some(RejectReason::UnsafeCourse(c)))
                } else {
                    (Some(c), None)
                }
            }
        };
        let (date, date_problem) = match self.req.date {
            Some(d) => (Some(d), None),
            None => match date_from_filename(&filename) {
                Some(Ok(d)) => (Some(d), None),
                Some(Err(value)) => (None, Some(RejectReason::BadFileDate { name: filename.clone(), value })),
                None => (Some(self.req.default_date.unwrap_or(self.today)), None),
            },
        };
        // Malformed records: a few land with the file (silver quarantines them), too many reject it.
        let mut malformed_note = None;
        let mut content_problem = scanned.problem.clone();
        if let (None, Some(first)) = (&content_problem, &scanned.first_malformed) {
            if scanned.malformed as f64 > self.max_bad * scanned.records as f64 {
                content_problem = Some(RejectReason::TooManyMalformed {
                    malformed: scanned.malformed,
                    records: scanned.records,
                    max: self.max_bad.to_string(),
                    first: first.to_string(),
                });
            } else {
                malformed_note = Some(format!(
                    "warning: {} of {} records are malformed and go to silver's quarantine; the first: {first}",
                    scanned.malformed, scanned.records
                ));
            }
        }
        let mismatch = match (&course, &content_problem, &course_problem) {
            (Some(c), None, None) => course_mismatch(&scanned.courses, c, scanned.records),
            _ => None,
        };

        let outcome = FileOutcome {
            path: path.to_path_buf(),
            filename,
            course_id: course.clone(),
            ingest_date: date,
            format: scanned.format,
            status: IngestStatus::Rejected,
            reason: None,
            rows: content_problem.is_none().then_some(scanned.records),
            bytes: scanned.size,
            sha256: scanned.sha256.clone(),
            landing_key: None,
            quarantine_key: None,
        };
        let problem = name_problem.or(course_problem).or(date_problem).or(content_problem).or(if self.strict {
            mismatch.clone()
        } else {
            None
        });
        match (problem, course, date) {
            (None, Some(course), Some(date)) => {
                let warning = match (malformed_note, mismatch.map(|m| format!("warning: {m}"))) {
                    (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                    (a, b) => a.or(b),
                };
                self.land(outcome, &course, date, warning).await
            }
            (problem, _, _) => {
                let reason = problem.map(|p| p.to_string()).unwrap_or_else(|| "no course id or date".into());
                self.reject(outcome, reason).await
            }
        }
    }

    /// Copies a rejected file to `bronze/rejected/course_id=…/ingest_date=…/<filename>` in the
    /// quarantine bucket with a `<filename>.reason.json` sidecar, and records it.
    async fn reject(&self, mut o: FileOutcome, reason: String) -> Result<FileOutcome, BronzeError> {
        let course_part = o.course_id.as_deref().filter(|c| is_safe_slug(c)).unwrap_or(INVALID_PART);
        let date_part = o.ingest_date.map(|d| d.to_string()).unwrap_or_else(|| INVALID_PART.into());
        let name_part = naming::key_safe_name(&o.filename);
        let mut key = format!("bronze/rejected/course_id={course_part}/ingest_date={date_part}/{name_part}");
        // Another version rejected under the same name keeps its bytes: this one gets a suffix.
        if self.buckets.head(Bucket::Quarantine, &key).await?.is_some()
            && self.quarantined_sha256(&key).await? != o.sha256
        {
            key = format!("{key}.{}", &o.sha256[..SHA_PREFIX]);
        }
        self.buckets.put_file(Bucket::Quarantine, &key, &o.path, Some(&o.sha256)).await?;
        let sidecar = serde_json::json!({
            "filename": o.filename,
            "source_path": o.path.to_string_lossy(),
            "course_id": o.course_id,
            "ingest_date": o.ingest_date,
            "format": o.format,
            "sha256": o.sha256,
            "size_bytes": o.bytes,
            "reason": reason,
            "rejected_at": crate::timefmt::to_db(crate::timefmt::now()),
            "run_pk": self.run.map(|r| r.run_pk),
            "task_id": self.run.map(|r| r.task_id.clone()),
        });
        let body = serde_json::to_vec_pretty(&sidecar).unwrap_or_default();
        self.buckets.put_bytes(Bucket::Quarantine, &format!("{key}.reason.json"), body).await?;
        o.status = IngestStatus::Rejected;
        o.reason = Some(reason);
        o.quarantine_key = Some(key);
        self.record(&self.row(&o, IngestStatus::Rejected)).await?;
        Ok(o)
    }

    /// The sha256 of a quarantined file: from its sidecar, else by reading it.
    async fn quarantined_sha256(&self, key: &str) -> Result<String, BronzeError> {
        let sidecar = format!("{key}.reason.json");
        if let Ok(bytes) = self.buckets.get_bytes(Bucket::Quarantine, &sidecar).await
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(sha) = v.get("sha256").and_then(|s| s.as_str())
        {
            return Ok(sha.to_string());
        }
        Ok(self.buckets.sha256(Bucket::Quarantine, key).await?.0)
    }

    /// Lands a valid file, or skips / refuses / supersedes per the landing bucket's content.
    async fn land(
        &self,
        mut o: FileOutcome,
        course: &str,
        date: NaiveDate,
        warning: Option<String>,
    ) -> Result<FileOutcome, BronzeError> {
        let key = landing_key(course, date, &o.filename);
        o.landing_key = Some(key.clone());
        if let Some(meta) = self.buckets.head(Bucket::Landing, &key).await? {
            let old = self.landed(&key, meta.size).await?;
            if old.sha256 == o.sha256 {
                if old.row.is_some() {
                    o.status = IngestStatus::Skipped;
                    o.reason = Some(format!("duplicate: the same bytes are already landed as {key}"));
                } else {
                    // Landed by an ingest that stopped before recording it (or put there by hand).
                    o.status = IngestStatus::Accepted;
                    o.reason = Some(join(
                        format!("{key} already held these bytes without a registry row; recorded now"),
                        warning,
                    ));
                }
                self.record(&self.row(&o, o.status)).await?;
                return Ok(o);
            }
            if !self.req.replace {
                o.status = IngestStatus::Refused;
                o.reason = Some(format!(
                    "refused: {key} already holds different bytes (sha256 {}…); use --replace to supersede them",
                    &old.sha256[..SHA_PREFIX]
                ));
                self.record(&self.row(&o, IngestStatus::Refused)).await?;
                return Ok(o);
            }
            return self.supersede(o, course, date, &key, old, warning).await;
        }
        if let Some(other) = self.same_bytes_elsewhere(course, date, &key, &o).await? {
            let other_name = other.rsplit('/').next().unwrap_or(&other).to_string();
            o.status = IngestStatus::Skipped;
            o.reason = Some(format!("duplicate of `{other_name}`: the same bytes are already landed as {other}"));
            o.landing_key = Some(other);
            self.record(&self.row(&o, IngestStatus::Skipped)).await?;
            return Ok(o);
        }
        self.buckets.put_file(Bucket::Landing, &key, &o.path, Some(&o.sha256)).await?;
        o.status = IngestStatus::Accepted;
        o.reason = warning;
        self.record(&self.row(&o, IngestStatus::Accepted)).await?;
        Ok(o)
    }

    /// Moves the landed version to `superseded/course_id=…/ingest_date=…/<filename>.<sha12>` in
    /// the quarantine bucket, then lands the new bytes. The old version is copied before the new
    /// one overwrites it, so no moment loses either.
    async fn supersede(
        &self,
        mut o: FileOutcome,
        course: &str,
        date: NaiveDate,
        key: &str,
        old: Landed,
        warning: Option<String>,
    ) -> Result<FileOutcome, BronzeError> {
        let old_short = &old.sha256[..SHA_PREFIX];
        let kept = format!("superseded/course_id={course}/ingest_date={date}/{}.{old_short}", o.filename);
        self.buckets.copy(Bucket::Landing, key, Bucket::Quarantine, &kept).await?;
        self.buckets.put_file(Bucket::Landing, key, &o.path, Some(&o.sha256)).await?;
        let superseded_reason = format!("superseded by sha256 {}… (replace)", &o.sha256[..SHA_PREFIX]);
        let old_row = NewIngestion {
            sha256: Some(&old.sha256),
            size_bytes: Some(old.size),
            row_count: old.row.as_ref().and_then(|r| r.row_count).and_then(|n| u64::try_from(n).ok()),
            reason: Some(&superseded_reason),
            landing_key: Some(key),
            quarantine_key: Some(&kept),
            ..self.row(&o, IngestStatus::Superseded)
        };
        self.record(&old_row).await?;
        o.status = IngestStatus::Superseded;
        o.quarantine_key = Some(kept.clone());
        o.reason = Some(join(
            format!("replaced sha256 {old_short}…; the old bytes are kept as {kept} in the quarantine bucket"),
            warning,
        ));
        self.record(&self.row(&o, IngestStatus::Accepted)).await?;
        Ok(o)
    }

    /// What the object at `key` (of `size` bytes) holds: the registry's word when its newest
    /// accepted row for the key has that size, else the object's own bytes, hashed.
    async fn landed(&self, key: &str, size: u64) -> Result<Landed, BronzeError> {
        let row = self.store.latest_accepted_at(LAYER, key).await?;
        if let Some(r) = row
            && let Some(sha) = r.sha256.clone()
            && r.size_bytes == i64::try_from(size).ok()
        {
            return Ok(Landed { sha256: sha, size, row: Some(r) });
        }
        let (sha256, size) = self.buckets.sha256(Bucket::Landing, key).await?;
        Ok(Landed { sha256, size, row: None })
    }

    /// Another object of the (course, date) partition with the same bytes, if any.
    async fn same_bytes_elsewhere(
        &self,
        course: &str,
        date: NaiveDate,
        key: &str,
        o: &FileOutcome,
    ) -> Result<Option<String>, BronzeError> {
        let prefix = format!("course_id={course}/ingest_date={date}/");
        for meta in self.buckets.list(Bucket::Landing, &prefix).await? {
            let other = meta.location.to_string();
            if other == key || meta.size != o.bytes {
                continue;
            }
            if self.landed(&other, meta.size).await?.sha256 == o.sha256 {
                return Ok(Some(other));
            }
        }
        Ok(None)
    }

    fn row<'o>(&'o self, o: &'o FileOutcome, status: IngestStatus) -> NewIngestion<'o> {
        NewIngestion {
            layer: LAYER,
            course_id: o.course_id.as_deref(),
            ingest_date: o.ingest_date,
            filename: &o.filename,
            sha256: Some(&o.sha256),
            size_bytes: Some(o.bytes),
            row_count: o.rows,
            status,
            reason: o.reason.as_deref(),
            landing_key: o.landing_key.as_deref(),
            quarantine_key: o.quarantine_key.as_deref(),
            run_pk: self.run.map(|r| r.run_pk),
            task_id: self.run.map(|r| r.task_id.as_str()),
        }
    }

    async fn record(&self, row: &NewIngestion<'_>) -> Result<(), BronzeError> {
        self.store.record_ingestion(row).await?;
        Ok(())
    }
}

fn join(text: String, warning: Option<String>) -> String {
    match warning {
        Some(w) => format!("{text}; {w}"),
        None => text,
    }
}

/// The course-match heuristic over every distinct `course` value of a file.
fn course_mismatch(tally: &scan::CourseTally, course: &str, total: u64) -> Option<RejectReason> {
    let bad: Vec<(&str, u64, u64)> =
        tally.values().into_iter().filter(|(v, _, _)| !course_matches(v, course)).collect();
    let (value, record, _) = *bad.first()?;
    Some(RejectReason::CourseMismatch {
        value: value.to_string(),
        record,
        mismatching: bad.iter().map(|(_, _, n)| n).sum(),
        total,
        course: course.to_string(),
    })
}
