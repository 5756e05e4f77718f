//! Bronze ingest end to end on real files (`tests/fixtures/bronze/`), local buckets and real state
//! DBs: every validation rule and rejection reason (exact text), format detection, JSON wrappers
//! and NDJSON, every-record validation, idempotency by content (duplicates, renamed copies,
//! refusals, `replace`), course and date from file names, strict course match, the registry rows
//! on SQLite and PostgreSQL, and the `bronze.ingest` task kind through the executor.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use tmctl::bronze::{self, BronzeError, FileOutcome, IngestReport, IngestRequest, RunRef};
use tmctl::config::{Overrides, Settings};
use tmctl::dag::{self, schedule};
use tmctl::executor::{Executor, prepare_run};
use tmctl::lake::buckets::{Bucket, Buckets};
use tmctl::store::{IngestStatus, IngestionFilter, NewIngestion, RunState, RunType, Store, TaskState};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bronze").join(name)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A home directory with buckets, a state DB, and a scratch folder for files made by a test.
struct Env {
    settings: Settings,
    store: Store,
    buckets: Buckets,
    scratch: PathBuf,
    _home: tempfile::TempDir,
    db: common::TestDb,
}

impl Env {
    async fn new(db: common::TestDb) -> Env {
        let home = tempfile::tempdir().unwrap();
        let mut settings = Settings::load_with(&Overrides::default(), &Default::default()).unwrap();
        settings.home = home.path().to_path_buf();
        settings.database_url = db.url.clone();
        settings.lake.inbox = home.path().join("inbox");
        let store = common::open(&db).await;
        let buckets = Buckets::open(&settings).unwrap();
        let scratch = home.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        Env { settings, store, buckets, scratch, _home: home, db }
    }

    async fn sqlite() -> Env {
        Env::new(common::sqlite_db()).await
    }

    async fn all() -> Vec<Env> {
        let mut out = Vec::new();
        for db in common::both().await {
            out.push(Env::new(db).await);
        }
        out
    }

    /// Copies a fixture into the scratch folder under `name`.
    fn scratch_copy(&self, fixture_name: &str, name: &str) -> PathBuf {
        let to = self.scratch.join(name);
        std::fs::copy(fixture(fixture_name), &to).unwrap();
        to
    }

    fn scratch_write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let to = self.scratch.join(name);
        std::fs::write(&to, bytes).unwrap();
        to
    }

    async fn ingest(&self, req: &IngestRequest) -> Result<IngestReport, BronzeError> {
        bronze::ingest(&self.settings, &self.store, &self.buckets, req, None, &|_| {}).await
    }

    /// Ingests one file and returns its outcome.
    async fn one(&self, path: PathBuf, course: Option<&str>, on: Option<&str>, replace: bool) -> FileOutcome {
        let req = IngestRequest {
            paths: vec![path],
            course: course.map(str::to_string),
            date: on.map(date),
            default_date: None,
            replace,
        };
        let mut report = self.ingest(&req).await.unwrap_or_else(|e| panic!("{}: {e}", self.db.backend));
        assert_eq!(report.files.len(), 1);
        report.files.remove(0)
    }

    async fn landing(&self, key: &str) -> Vec<u8> {
        self.buckets.get_bytes(Bucket::Landing, key).await.unwrap().to_vec()
    }

    async fn quarantine(&self, key: &str) -> Vec<u8> {
        self.buckets.get_bytes(Bucket::Quarantine, key).await.unwrap().to_vec()
    }

    async fn rows(&self, filename: &str) -> Vec<tmctl::store::IngestionRow> {
        let mut rows = self
            .store
            .list_ingestions(&IngestionFilter { filename: Some(filename), limit: 100, ..Default::default() })
            .await
            .unwrap();
        rows.reverse();
        rows
    }
}

// ---- accepted files -----------------------------------------------------------------------------

#[tokio::test]
async fn wide_csv_lands_byte_for_byte_counting_records_not_lines() {
    let env = Env::sqlite().await;
    let o = env.one(fixture("americanfalls.rounds.csv"), None, Some("2025-01-02"), false).await;
    assert_eq!(o.status, IngestStatus::Accepted, "{:?}", o.reason);
    assert_eq!(o.reason, None, "'American Falls Golf Course' matches americanfalls");
    assert_eq!(o.course_id.as_deref(), Some("americanfalls"));
    assert_eq!(o.ingest_date, Some(date("2025-01-02")));
    assert_eq!(o.format, Some(bronze::Format::Csv));
    // 3 records: one has a quoted newline, and a blank line separates two (6 lines after the header).
    assert_eq!(o.rows, Some(3));
    let key = "course_id=americanfalls/ingest_date=2025-01-02/americanfalls.rounds.csv";
    assert_eq!(o.landing_key.as_deref(), Some(key));
    let original = std::fs::read(fixture("americanfalls.rounds.csv")).unwrap();
    assert_eq!(env.landing(key).await, original, "byte for byte");
    assert_eq!(o.sha256, sha256_hex(&original));
    assert_eq!(o.bytes, original.len() as u64);

    let rows = env.rows("americanfalls.rounds.csv").await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.layer, "bronze");
    assert_eq!(r.status, IngestStatus::Accepted);
    assert_eq!(r.course_id.as_deref(), Some("americanfalls"));
    assert_eq!(r.ingest_date, Some(date("2025-01-02")));
    assert_eq!(r.sha256.as_deref(), Some(o.sha256.as_str()));
    assert_eq!(r.size_bytes, Some(original.len() as i64));
    assert_eq!(r.row_count, Some(3));
    assert_eq!(r.landing_key.as_deref(), Some(key));
    assert_eq!((r.quarantine_key.as_deref(), r.run_pk, r.task_id.as_deref()), (None, None, None));
}

#[tokio::test]
async fn course_and_date_come_from_the_file_name_else_today() {
    let env = Env::sqlite().await;
    let o = env.one(fixture("erinhills.2025-06-01.1.csv"), None, None, false).await;
    assert_eq!(o.status, IngestStatus::Accepted, "{:?}", o.reason);
    assert_eq!((o.course_id.as_deref(), o.ingest_date), (Some("erinhills"), Some(date("2025-06-01"))));
    assert_eq!(o.rows, Some(2), "CRLF line ends");
    assert_eq!(o.landing_key.as_deref(), Some("course_id=erinhills/ingest_date=2025-06-01/erinhills.2025-06-01.1.csv"));

    // --date beats the file name; --course beats it too.
    let o = env.one(fixture("erinhills.2025-06-01.1.csv"), Some("erinhills"), Some("2025-07-01"), false).await;
    assert_eq!(o.ingest_date, Some(date("2025-07-01")));

    // No date anywhere: today (UTC), or the request's default date (the task's ds).
    let today = chrono::Utc::now().date_naive();
    let o = env.one(fixture("indiancreek.rounds.json"), None, None, false).await;
    assert_eq!((o.course_id.as_deref(), o.ingest_date), (Some("indiancreek"), Some(today)));
    let req = IngestRequest {
        paths: vec![fixture("pinehurst4.rounds.ndjson")],
        default_date: Some(date("2024-12-31")),
        ..Default::default()
    };
    let report = env.ingest(&req).await.unwrap();
    assert_eq!(report.files[0].ingest_date, Some(date("2024-12-31")));
    assert_eq!(report.files[0].course_id.as_deref(), Some("pinehurst4"));
}

#[tokio::test]
async fn json_array_single_object_and_ndjson_with_extended_json_wrappers() {
    let env = Env::sqlite().await;
    let o = env.one(fixture("indiancreek.rounds.json"), None, Some("2025-01-01"), false).await;
    assert_eq!((o.status, o.rows, o.format), (IngestStatus::Accepted, Some(2), Some(bronze::Format::Json)));
    assert_eq!(o.reason, None, "'Indian Creek Country Club' matches indiancreek");
    let o = env.one(fixture("pinehurst4.rounds.ndjson"), None, Some("2025-01-01"), false).await;
    assert_eq!((o.status, o.rows), (IngestStatus::Accepted, Some(3)), "one object per line, blank line skipped");
    let o = env.one(fixture("single_round_object.json"), Some("americanfalls"), Some("2025-01-01"), false).await;
    assert_eq!((o.status, o.rows), (IngestStatus::Accepted, Some(1)));
    assert_eq!(
        env.landing("course_id=americanfalls/ingest_date=2025-01-01/single_round_object.json").await,
        std::fs::read(fixture("single_round_object.json")).unwrap()
    );
}

#[tokio::test]
async fn format_comes_from_the_extension_else_the_first_non_blank_byte() {
    let env = Env::sqlite().await;
    let cases = [
        ("json_array_without_extension", bronze::Format::Json, 2),
        ("json_after_bom_and_blank_lines.data", bronze::Format::Json, 1),
        ("csv_with_txt_extension.txt", bronze::Format::Csv, 2),
        ("csv_after_blank_lines_no_extension", bronze::Format::Csv, 1),
    ];
    for (name, format, rows) in cases {
        let o = env.one(fixture(name), Some("americanfalls"), Some("2025-01-01"), false).await;
        assert_eq!(
            (o.status, o.format, o.rows),
            (IngestStatus::Accepted, Some(format), Some(rows)),
            "{name}: {:?}",
            o.reason
        );
    }
    // The extension wins over the content: JSON text in a .csv file is read as CSV.
    let o =
        env.one(fixture("json_content_with_csv_extension.csv"), Some("americanfalls"), Some("2025-01-01"), false).await;
    assert_eq!(o.status, IngestStatus::Rejected);
    assert_eq!(o.format, Some(bronze::Format::Csv));
    assert_eq!(o.reason.as_deref(), Some("CSV header missing required columns: _id, course"));
}

// ---- rejections ---------------------------------------------------------------------------------

/// (fixture, exact reason): each file is rejected, quarantined byte for byte with a sidecar, and
/// recorded. These small files have more malformed records than `bronze.max_bad_record_fraction`
/// (0.1) allows, so the whole file is rejected and the reason names the first bad record.
const REJECTIONS: &[(&str, &str)] = &[
    ("csv_missing_course_column.csv", "CSV header missing required column: course"),
    ("csv_missing_both_required_columns.csv", "CSV header missing required columns: _id, course"),
    ("csv_header_only.csv", "CSV file has no data rows (header only)"),
    (
        "csv_row_with_wrong_cell_count.csv",
        "1 of 3 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 3: record 2 has 3 fields, the header has 4",
    ),
    (
        "csv_truncated_inside_quotes.csv",
        "1 of 2 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 3: record 2 has an unbalanced quote (field 3)",
    ),
    ("empty_file.csv", "file is empty (0 bytes)"),
    ("whitespace_only.json", "file holds only whitespace"),
    (
        "csv_latin1_not_utf8.csv",
        "1 of 2 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 3: record 2 is not valid UTF-8 (invalid byte at byte 7 of the line)",
    ),
    (
        "json_truncated.json",
        "1 of 1 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 2: record 1 is cut off by the end of the file (inside a string; truncated)",
    ),
    (
        "json_syntax_error.json",
        "1 of 2 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 2: record 2 is not valid JSON: expected `,` or `}`",
    ),
    ("json_empty_array.json", "JSON file has no records (empty array)"),
    (
        "json_third_record_missing_course.json",
        "1 of 3 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 10: record 3 is missing required field: course",
    ),
    (
        "ndjson_second_line_missing_id.ndjson",
        "1 of 3 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 2: record 2 is missing required field: _id",
    ),
    (
        "json_object_missing_both_fields.json",
        "1 of 1 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 1: record 1 is missing required fields: _id, course",
    ),
    (
        "json_array_with_a_string_element.json",
        "1 of 2 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 2: record 2 is not an object (found a string)",
    ),
    (
        "json_content_after_the_array.json",
        "1 of 2 records are malformed, more than bronze.max_bad_record_fraction = 0.1; the first: line 2: record 2 follows the end of the top-level array (content after `]`)",
    ),
];

#[tokio::test]
async fn every_rejection_has_its_exact_reason_and_is_quarantined_with_a_sidecar() {
    let env = Env::sqlite().await;
    for (name, reason) in REJECTIONS {
        let o = env.one(fixture(name), Some("americanfalls"), Some("2025-03-04"), false).await;
        assert_eq!(o.status, IngestStatus::Rejected, "{name}");
        assert_eq!(o.reason.as_deref(), Some(*reason), "{name}");
        assert_eq!(o.landing_key, None, "{name}");
        assert_eq!(o.rows, None, "{name}: not counted when not read to the end");
        let key = format!("bronze/rejected/course_id=americanfalls/ingest_date=2025-03-04/{name}");
        assert_eq!(o.quarantine_key.as_deref(), Some(key.as_str()), "{name}");
        let original = std::fs::read(fixture(name)).unwrap();
        assert_eq!(env.quarantine(&key).await, original, "{name}: byte for byte");
        let sidecar: serde_json::Value =
            serde_json::from_slice(&env.quarantine(&format!("{key}.reason.json")).await).unwrap();
        assert_eq!(sidecar["reason"], *reason, "{name}");
        assert_eq!(sidecar["sha256"], sha256_hex(&original), "{name}");
        assert_eq!(sidecar["size_bytes"], original.len(), "{name}");
        assert_eq!(sidecar["course_id"], "americanfalls");
        assert_eq!(sidecar["ingest_date"], "2025-03-04");
        let rows = env.rows(name).await;
        assert_eq!(rows.len(), 1, "{name}");
        assert_eq!(rows[0].status, IngestStatus::Rejected);
        assert_eq!(rows[0].reason.as_deref(), Some(*reason));
        assert_eq!(rows[0].quarantine_key.as_deref(), Some(key.as_str()));
        assert_eq!(rows[0].sha256.as_deref(), Some(sha256_hex(&original).as_str()));
    }
    let landed = env.buckets.list(Bucket::Landing, "").await.unwrap();
    assert!(landed.is_empty(), "nothing rejected reaches landing: {landed:?}");
}

#[tokio::test]
async fn every_json_record_is_validated_not_just_the_first() {
    let env = Env::sqlite().await;
    // Records 1 and 2 are fine (the reference checked only record 1 and let this file through).
    let o = env.one(fixture("json_third_record_missing_course.json"), Some("americanfalls"), None, false).await;
    assert_eq!(o.status, IngestStatus::Rejected);
    assert!(o.reason.unwrap().contains("the first: line 10: record 3 "));
    let o = env.one(fixture("ndjson_second_line_missing_id.ndjson"), Some("americanfalls"), None, false).await;
    assert!(o.reason.unwrap().contains("the first: line 2: record 2 "));
}

#[tokio::test]
async fn file_names_that_give_no_safe_course_date_or_key_are_rejected() {
    let env = Env::sqlite().await;
    let cases: Vec<(PathBuf, &str, &str, u64)> = vec![
        (
            env.scratch_copy("americanfalls.rounds.csv", "American Falls.rounds.csv"),
            "course id `American Falls` (from the file name) is not a safe slug (lowercase letters, digits, `-`, `_`); \
             rename the file or give --course",
            "bronze/rejected/course_id=INVALID/ingest_date=2025-05-05/American Falls.rounds.csv",
            3,
        ),
        (
            env.scratch_copy("americanfalls.rounds.csv", ".rounds.csv"),
            "cannot tell the course id from file name `.rounds.csv`; give one with --course",
            "bronze/rejected/course_id=INVALID/ingest_date=2025-05-05/.rounds.csv",
            3,
        ),
        (
            env.scratch_copy("erinhills.2025-06-01.1.csv", "erinhills.2025-02-30.1.csv"),
            "file name `erinhills.2025-02-30.1.csv` carries `2025-02-30`, which is not a date (expected YYYY-MM-DD)",
            "bronze/rejected/course_id=erinhills/ingest_date=INVALID/erinhills.2025-02-30.1.csv",
            2,
        ),
        (
            env.scratch_copy("americanfalls.rounds.csv", "americanfalls#1.rounds.csv"),
            "file name `americanfalls#1.rounds.csv` cannot be an object key: it contains '#'",
            "bronze/rejected/course_id=INVALID/ingest_date=2025-05-05/americanfalls%231.rounds.csv",
            3,
        ),
    ];
    for (path, reason, key, rows) in cases {
        let req =
            IngestRequest { paths: vec![path.clone()], default_date: Some(date("2025-05-05")), ..Default::default() };
        let o = env.ingest(&req).await.unwrap().files.remove(0);
        assert_eq!((o.status, o.reason.as_deref()), (IngestStatus::Rejected, Some(reason)), "{}", path.display());
        assert_eq!(o.quarantine_key.as_deref(), Some(key));
        assert_eq!(o.rows, Some(rows), "the content was fine");
        assert_eq!(env.quarantine(key).await, std::fs::read(&path).unwrap());
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_file_name_that_is_not_utf8_is_rejected() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::sqlite().await;
    let path = env.scratch.join(std::ffi::OsStr::from_bytes(b"americanfalls\xff.rounds.csv"));
    std::fs::copy(fixture("americanfalls.rounds.csv"), &path).unwrap();
    let o = env.one(path.clone(), None, Some("2025-01-01"), false).await;
    assert_eq!(o.status, IngestStatus::Rejected);
    assert_eq!(o.reason.as_deref(), Some("file name `americanfalls\u{FFFD}.rounds.csv` is not valid UTF-8"));
    let key = "bronze/rejected/course_id=INVALID/ingest_date=2025-01-01/americanfalls\u{FFFD}.rounds.csv";
    assert_eq!(o.quarantine_key.as_deref(), Some(key));
    assert_eq!(env.quarantine(key).await, std::fs::read(&path).unwrap());
}

#[tokio::test]
async fn bad_arguments_are_errors_not_outcomes() {
    let env = Env::sqlite().await;
    let req = IngestRequest {
        paths: vec![fixture("americanfalls.rounds.csv")],
        course: Some("American Falls".into()),
        ..Default::default()
    };
    let e = env.ingest(&req).await.unwrap_err();
    assert_eq!(e.to_string(), "course id `American Falls` is not a safe slug (lowercase letters, digits, `-`, `_`)");
    let missing = env.scratch.join("nope.csv");
    let req = IngestRequest { paths: vec![missing.clone()], ..Default::default() };
    let e = env.ingest(&req).await.unwrap_err();
    assert_eq!(e.to_string(), format!("{}: no such file or directory", missing.display()));
    assert!(env.rows("nope.csv").await.is_empty());
}

#[tokio::test]
async fn directories_are_read_in_name_order_without_dot_files_or_subfolders() {
    let env = Env::sqlite().await;
    let dir = env.scratch.join("drop");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(fixture("pinehurst4.rounds.ndjson"), dir.join("pinehurst4.rounds.ndjson")).unwrap();
    std::fs::copy(fixture("erinhills.2025-06-01.1.csv"), dir.join("erinhills.2025-06-01.1.csv")).unwrap();
    std::fs::write(dir.join(".DS_Store"), b"\0\0junk").unwrap();
    std::fs::copy(fixture("americanfalls.rounds.csv"), dir.join("sub/americanfalls.rounds.csv")).unwrap();
    let seen = Mutex::new(Vec::new());
    let req = IngestRequest { paths: vec![dir.clone(), dir.join("erinhills.2025-06-01.1.csv")], ..Default::default() };
    let report = bronze::ingest(&env.settings, &env.store, &env.buckets, &req, None, &|o| {
        seen.lock().unwrap().push(o.filename.clone())
    })
    .await
    .unwrap();
    let names: Vec<&str> = report.files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["erinhills.2025-06-01.1.csv", "pinehurst4.rounds.ndjson"], "each file once");
    assert_eq!(*seen.lock().unwrap(), names, "progress is called per file");
    assert_eq!((report.counts.accepted, report.rows_landed, report.all_ok()), (2, 5, true));
}

// ---- course match -------------------------------------------------------------------------------

#[tokio::test]
async fn course_mismatch_warns_or_rejects_when_strict() {
    let mut env = Env::sqlite().await;
    let mismatch = "Course mismatch: file contains course 'Erin Hills' (record 2; 2 of 4 records) but course id is \
                    'americanfalls'";
    let o = env
        .one(fixture("csv_with_another_course_in_row_2.csv"), Some("americanfalls"), Some("2025-01-01"), false)
        .await;
    assert_eq!(o.status, IngestStatus::Accepted);
    assert_eq!(o.reason, Some(format!("warning: {mismatch}")));
    assert_eq!(env.rows("csv_with_another_course_in_row_2.csv").await[0].reason, Some(format!("warning: {mismatch}")));

    env.settings.lake.strict_course_match = true;
    let o = env
        .one(fixture("csv_with_another_course_in_row_2.csv"), Some("americanfalls"), Some("2025-01-02"), false)
        .await;
    assert_eq!((o.status, o.reason.as_deref()), (IngestStatus::Rejected, Some(mismatch)));
    assert_eq!(o.rows, Some(4));
    // Matching names still pass when strict.
    let o = env.one(fixture("americanfalls.rounds.csv"), None, Some("2025-01-02"), false).await;
    assert_eq!(o.status, IngestStatus::Accepted);
}

// ---- idempotency --------------------------------------------------------------------------------

#[tokio::test]
async fn idempotent_by_content_on_both_backends() {
    for env in Env::all().await {
        let b = env.db.backend;
        let key = "course_id=americanfalls/ingest_date=2025-02-01/americanfalls.rounds.csv";
        let v1 = env.scratch_copy("americanfalls.rounds.csv", "americanfalls.rounds.csv");
        let original = std::fs::read(&v1).unwrap();
        let o = env.one(v1.clone(), None, Some("2025-02-01"), false).await;
        assert_eq!(o.status, IngestStatus::Accepted, "{b}");

        // The same bytes again: skipped.
        let o = env.one(v1.clone(), None, Some("2025-02-01"), false).await;
        assert_eq!(o.status, IngestStatus::Skipped, "{b}");
        assert_eq!(
            o.reason.as_deref(),
            Some(format!("duplicate: the same bytes are already landed as {key}").as_str())
        );

        // The same bytes under another name, same course and date: skipped, naming the first file.
        let renamed = env.scratch_copy("americanfalls.rounds.csv", "americanfalls.copy.csv");
        let o = env.one(renamed, None, Some("2025-02-01"), false).await;
        assert_eq!(o.status, IngestStatus::Skipped, "{b}");
        assert_eq!(
            o.reason.as_deref(),
            Some(
                format!("duplicate of `americanfalls.rounds.csv`: the same bytes are already landed as {key}").as_str()
            )
        );
        assert_eq!(o.landing_key.as_deref(), Some(key));
        assert!(
            !env.buckets
                .exists(Bucket::Landing, "course_id=americanfalls/ingest_date=2025-02-01/americanfalls.copy.csv")
                .await
                .unwrap()
        );

        // Another date is another partition: accepted there.
        let o = env.one(v1.clone(), None, Some("2025-02-02"), false).await;
        assert_eq!(o.status, IngestStatus::Accepted, "{b}");

        // Changed bytes under the same name: refused, nothing written.
        let mut changed = original.clone();
        changed.extend_from_slice(b"6724cb30657f3deb031720f6,americanfalls,,,,,,,,,,,,,,,,\n");
        std::fs::write(&v1, &changed).unwrap();
        let old_sha = sha256_hex(&original);
        let o = env.one(v1.clone(), None, Some("2025-02-01"), false).await;
        assert_eq!(o.status, IngestStatus::Refused, "{b}");
        assert_eq!(
            o.reason.as_deref(),
            Some(
                format!(
                    "refused: {key} already holds different bytes (sha256 {}…); use --replace to supersede them",
                    &old_sha[..12]
                )
                .as_str()
            )
        );
        assert_eq!(o.rows, Some(4));
        assert_eq!(env.landing(key).await, original, "{b}: the landed version is untouched");

        // --replace: the old version moves to quarantine superseded/, the new one lands.
        let o = env.one(v1.clone(), None, Some("2025-02-01"), true).await;
        assert_eq!(o.status, IngestStatus::Superseded, "{b}: {:?}", o.reason);
        let kept = format!(
            "superseded/course_id=americanfalls/ingest_date=2025-02-01/americanfalls.rounds.csv.{}",
            &old_sha[..12]
        );
        assert_eq!(o.quarantine_key.as_deref(), Some(kept.as_str()));
        assert_eq!(env.quarantine(&kept).await, original, "{b}: old bytes kept");
        assert_eq!(env.landing(key).await, changed, "{b}: new bytes landed byte for byte");
        assert_eq!(
            o.reason.as_deref(),
            Some(
                format!(
                    "replaced sha256 {}…; the old bytes are kept as {kept} in the quarantine bucket",
                    &old_sha[..12]
                )
                .as_str()
            )
        );

        // After the replacement, the new bytes are the duplicate, the old ones are refused.
        let o = env.one(v1.clone(), None, Some("2025-02-01"), false).await;
        assert_eq!(o.status, IngestStatus::Skipped, "{b}");
        std::fs::write(&v1, &original).unwrap();
        let o = env.one(v1.clone(), None, Some("2025-02-01"), false).await;
        assert_eq!(o.status, IngestStatus::Refused, "{b}");

        // The registry tells the whole story, in order.
        let rows = env.rows("americanfalls.rounds.csv").await;
        let story: Vec<(IngestStatus, Option<&str>)> =
            rows.iter().map(|r| (r.status, r.ingest_date.map(|_| ()).and(r.sha256.as_deref()))).collect();
        let new_sha = sha256_hex(&changed);
        assert_eq!(
            story,
            vec![
                (IngestStatus::Accepted, Some(old_sha.as_str())),
                (IngestStatus::Skipped, Some(old_sha.as_str())),
                (IngestStatus::Accepted, Some(old_sha.as_str())), // 2025-02-02
                (IngestStatus::Refused, Some(new_sha.as_str())),
                (IngestStatus::Superseded, Some(old_sha.as_str())),
                (IngestStatus::Accepted, Some(new_sha.as_str())),
                (IngestStatus::Skipped, Some(new_sha.as_str())),
                (IngestStatus::Refused, Some(old_sha.as_str())),
            ],
            "{b}"
        );
        let superseded = &rows[4];
        assert_eq!(superseded.quarantine_key.as_deref(), Some(kept.as_str()));
        assert_eq!(superseded.landing_key.as_deref(), Some(key));
        assert_eq!(superseded.row_count, Some(3), "{b}: the old version's count");
        assert_eq!(rows[5].row_count, Some(4));
        let latest = env.store.latest_accepted_at("bronze", key).await.unwrap().unwrap();
        assert_eq!(latest.sha256.as_deref(), Some(new_sha.as_str()));
    }
}

#[tokio::test]
async fn an_object_landed_without_a_registry_row_is_recognised_by_its_bytes() {
    let env = Env::sqlite().await;
    let key = "course_id=americanfalls/ingest_date=2025-02-01/americanfalls.rounds.csv";
    let bytes = std::fs::read(fixture("americanfalls.rounds.csv")).unwrap();
    env.buckets.put_bytes(Bucket::Landing, key, bytes.clone()).await.unwrap();
    let o = env.one(fixture("americanfalls.rounds.csv"), None, Some("2025-02-01"), false).await;
    assert_eq!(o.status, IngestStatus::Accepted);
    assert_eq!(
        o.reason.as_deref(),
        Some(format!("{key} already held these bytes without a registry row; recorded now").as_str())
    );
    let o = env.one(fixture("americanfalls.rounds.csv"), None, Some("2025-02-01"), false).await;
    assert_eq!(o.status, IngestStatus::Skipped);
    // A hand-edited landing object (size differs from the registry) is hashed, not trusted.
    env.buckets.put_bytes(Bucket::Landing, key, b"edited".to_vec()).await.unwrap();
    let o = env.one(fixture("americanfalls.rounds.csv"), None, Some("2025-02-01"), false).await;
    assert_eq!(o.status, IngestStatus::Refused);
}

#[tokio::test]
async fn a_different_file_rejected_under_the_same_name_does_not_overwrite_the_first() {
    let env = Env::sqlite().await;
    let p = env.scratch_write("americanfalls.rounds.csv", b"_id\nr1\n");
    let first = env.one(p.clone(), None, Some("2025-01-01"), false).await;
    let base = "bronze/rejected/course_id=americanfalls/ingest_date=2025-01-01/americanfalls.rounds.csv";
    assert_eq!(first.quarantine_key.as_deref(), Some(base));
    // Same bytes again: same key (nothing lost), a second registry row.
    let again = env.one(p.clone(), None, Some("2025-01-01"), false).await;
    assert_eq!(again.quarantine_key.as_deref(), Some(base));
    std::fs::write(&p, b"course\nx\n").unwrap();
    let second = env.one(p.clone(), None, Some("2025-01-01"), false).await;
    let suffixed = format!("{base}.{}", &second.sha256[..12]);
    assert_eq!(second.quarantine_key.as_deref(), Some(suffixed.as_str()));
    assert_eq!(env.quarantine(base).await, b"_id\nr1\n");
    assert_eq!(env.quarantine(&suffixed).await, b"course\nx\n");
    assert_eq!(env.rows("americanfalls.rounds.csv").await.len(), 3);
}

// ---- registry queries ---------------------------------------------------------------------------

#[tokio::test]
async fn registry_records_and_finds_rows_on_both_backends() {
    for db in common::both().await {
        let store = common::open(&db).await;
        let b = db.backend;
        let d = date("2025-04-01");
        let new = |filename: &'static str, sha: &'static str, status: IngestStatus| NewIngestion {
            layer: "bronze",
            course_id: Some("erinhills"),
            ingest_date: Some(d),
            filename,
            sha256: Some(sha),
            size_bytes: Some(10),
            row_count: Some(2),
            status,
            reason: Some("it's \"quoted\"; DROP TABLE x; --\0nul"),
            landing_key: Some("course_id=erinhills/ingest_date=2025-04-01/a.csv"),
            quarantine_key: None,
            run_pk: Some(7),
            task_id: Some("ingest"),
        };
        let id1 = store.record_ingestion(&new("a.csv", "aaa", IngestStatus::Accepted)).await.unwrap();
        let id2 = store.record_ingestion(&new("a.csv", "aaa", IngestStatus::Skipped)).await.unwrap();
        let id3 = store.record_ingestion(&new("b.csv", "bbb", IngestStatus::Rejected)).await.unwrap();
        assert!(id1 < id2 && id2 < id3, "{b}");

        let by_file = store.find_ingestions_by_file("bronze", "erinhills", d, "a.csv").await.unwrap();
        assert_eq!(by_file.iter().map(|r| r.id).collect::<Vec<_>>(), [id2, id1], "{b}: newest first");
        let r = &by_file[1];
        assert_eq!(
            r.reason.as_deref(),
            Some("it's \"quoted\"; DROP TABLE x; --\u{FFFD}nul"),
            "{b}: bound, NUL cleaned"
        );
        assert_eq!(
            (r.run_pk, r.task_id.as_deref(), r.size_bytes, r.row_count),
            (Some(7), Some("ingest"), Some(10), Some(2))
        );
        assert_eq!(r.ingest_date, Some(d));
        assert!(
            store.find_ingestions_by_file("bronze", "erinhills", date("2025-04-02"), "a.csv").await.unwrap().is_empty()
        );

        let by_sha = store.find_accepted_by_sha256("bronze", "erinhills", d, "aaa").await.unwrap();
        assert_eq!(by_sha.iter().map(|r| r.id).collect::<Vec<_>>(), [id1], "{b}: accepted only");
        assert!(store.find_accepted_by_sha256("bronze", "pinehurst4", d, "aaa").await.unwrap().is_empty());
        let latest =
            store.latest_accepted_at("bronze", "course_id=erinhills/ingest_date=2025-04-01/a.csv").await.unwrap();
        assert_eq!(latest.map(|r| r.id), Some(id1));

        let all = store.list_ingestions(&IngestionFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 3, "{b}");
        let rejected = store
            .list_ingestions(&IngestionFilter {
                layer: Some("bronze"),
                course_id: Some("erinhills"),
                ingest_date: Some(d),
                status: Some(IngestStatus::Rejected),
                filename: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(rejected.iter().map(|r| r.id).collect::<Vec<_>>(), [id3], "{b}");
        let limited = store.list_ingestions(&IngestionFilter { limit: 1, ..Default::default() }).await.unwrap();
        assert_eq!(limited[0].id, id3, "{b}");
        assert!(
            store
                .list_ingestions(&IngestionFilter {
                    ingest_date: Some(date("2025-04-02")),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .is_empty()
        );
        let counts = store.count_ingestions("bronze", Some("erinhills"), Some(d)).await.unwrap();
        assert_eq!(
            counts,
            vec![(IngestStatus::Accepted, 1), (IngestStatus::Rejected, 1), (IngestStatus::Skipped, 1)],
            "{b}"
        );
    }
}

/// The freshness check's one query: the newest accepted ingest date per course, up to a day.
#[tokio::test]
async fn last_landed_per_course_counts_accepted_files_up_to_a_date() {
    for db in common::both().await {
        let store = common::open(&db).await;
        let b = db.backend;
        for (course, day, status) in [
            ("erinhills", "2025-04-01", IngestStatus::Accepted),
            ("erinhills", "2025-04-05", IngestStatus::Accepted),
            ("erinhills", "2025-04-09", IngestStatus::Rejected),
            ("pinehurst4", "2025-03-20", IngestStatus::Accepted),
            ("pinehurst4", "2025-04-07", IngestStatus::Skipped),
            ("indiancreek", "2025-04-08", IngestStatus::Refused),
        ] {
            let name = format!("{course}.{day}.1.csv");
            store
                .record_ingestion(&NewIngestion {
                    layer: "bronze",
                    course_id: Some(course),
                    ingest_date: Some(date(day)),
                    filename: &name,
                    sha256: Some("x"),
                    size_bytes: None,
                    row_count: None,
                    status,
                    reason: None,
                    landing_key: None,
                    quarantine_key: None,
                    run_pk: None,
                    task_id: None,
                })
                .await
                .unwrap();
        }
        let last = |up_to: Option<&'static str>, course: Option<&'static str>| {
            let store = store.clone();
            async move {
                let got = store.last_landed_per_course("bronze", up_to.map(date), course).await.unwrap();
                got.into_iter().map(|(c, d)| format!("{c}={d}")).collect::<Vec<_>>()
            }
        };
        assert_eq!(last(None, None).await, ["erinhills=2025-04-05", "pinehurst4=2025-03-20"], "{b}");
        assert_eq!(last(Some("2025-04-04"), None).await, ["erinhills=2025-04-01", "pinehurst4=2025-03-20"], "{b}");
        assert_eq!(last(Some("2025-03-31"), None).await, ["pinehurst4=2025-03-20"], "{b}");
        assert_eq!(last(None, Some("erinhills")).await, ["erinhills=2025-04-05"], "{b}");
        assert!(store.last_landed_per_course("silver", None, None).await.unwrap().is_empty(), "{b}");
    }
}

#[tokio::test]
async fn registry_write_failures_are_errors() {
    let env = Env::sqlite().await;
    env.store.close().await;
    let e = env.ingest(&IngestRequest { paths: vec![fixture("americanfalls.rounds.csv")], ..Default::default() }).await;
    let e = e.unwrap_err();
    assert!(matches!(e, BronzeError::Registry(_)), "{e}");
    assert!(e.to_string().starts_with("ingestion registry: "), "{e}");
}

#[tokio::test]
async fn run_and_task_are_recorded_when_given() {
    let env = Env::sqlite().await;
    let req = IngestRequest { paths: vec![fixture("empty_file.csv")], course: Some("x".into()), ..Default::default() };
    let run = RunRef { run_pk: 42, task_id: "ingest".into() };
    bronze::ingest(&env.settings, &env.store, &env.buckets, &req, Some(run), &|_| {}).await.unwrap();
    let r = &env.rows("empty_file.csv").await[0];
    assert_eq!((r.run_pk, r.task_id.as_deref()), (Some(42), Some("ingest")));
    let key = r.quarantine_key.clone().unwrap();
    let sidecar: serde_json::Value =
        serde_json::from_slice(&env.quarantine(&format!("{key}.reason.json")).await).unwrap();
    assert_eq!((sidecar["run_pk"].as_i64(), sidecar["task_id"].as_str()), (Some(42), Some("ingest")));
}

// ---- the task kind ------------------------------------------------------------------------------

const BRONZE_DAG: &str = r#"
id = "bronze"
start_date = "2025-01-01"
[[task]]
id = "ingest"
kind = "bronze.ingest"
"#;

#[tokio::test]
async fn the_task_ingests_the_inbox_with_the_run_date_and_moves_decided_files() {
    for env in Env::all().await {
        let b = env.db.backend;
        let inbox = env.settings.lake.inbox.clone();
        std::fs::create_dir_all(&inbox).unwrap();
        for name in ["americanfalls.rounds.csv", "erinhills.2025-06-01.1.csv", "indiancreek.rounds.json"] {
            std::fs::copy(fixture(name), inbox.join(name)).unwrap();
        }
        std::fs::copy(fixture("json_empty_array.json"), inbox.join("pinehurst4.rounds.json")).unwrap();
        let d = dag::load_str(BRONZE_DAG, Path::new("bronze.toml")).unwrap_or_else(|e| panic!("{e:?}"));
        let exec = Executor::new(env.store.clone(), Arc::new(env.settings.clone()));
        let run_on = |ds: &'static str| {
            let (exec, d) = (exec.clone(), &d);
            async move {
                let slot = schedule::slot_for_date(d.schedule.as_ref(), d.timezone, date(ds));
                let prepared = prepare_run(exec.store(), d, &slot, RunType::Manual, &serde_json::json!({}), None, None)
                    .await
                    .unwrap();
                let run = prepared.run().clone();
                (run.id, exec.execute(d, run.id).await.unwrap())
            }
        };
        let (run, state) = run_on("2025-03-10").await;
        assert_eq!(state, RunState::Success, "{b}");
        let ti = env.store.list_task_instances(run).await.unwrap();
        assert_eq!(ti[0].state, Some(TaskState::Success), "{b}");
        let attempts = env.store.list_attempts(run, "ingest").await.unwrap();
        let out = attempts[0].output.clone().unwrap();
        assert_eq!(
            (&out["files"], &out["accepted"], &out["rejected"], &out["skipped"], &out["refused"]),
            (
                &serde_json::json!(4),
                &serde_json::json!(3),
                &serde_json::json!(1),
                &serde_json::json!(0),
                &serde_json::json!(0)
            ),
            "{b}: {out}"
        );
        assert_eq!(out["rows_landed"], 3 + 2 + 2);
        // ds is the date unless the file name carries one.
        for key in [
            "course_id=americanfalls/ingest_date=2025-03-10/americanfalls.rounds.csv",
            "course_id=erinhills/ingest_date=2025-06-01/erinhills.2025-06-01.1.csv",
            "course_id=indiancreek/ingest_date=2025-03-10/indiancreek.rounds.json",
        ] {
            assert!(env.buckets.exists(Bucket::Landing, key).await.unwrap(), "{b}: {key}");
        }
        let rows = env.store.list_ingestions(&IngestionFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.run_pk == Some(run) && r.task_id.as_deref() == Some("ingest")), "{b}");
        // Decided files left the inbox.
        assert!(inbox.join("processed/ingest_date=2025-03-10/americanfalls.rounds.csv").is_file(), "{b}");
        assert!(inbox.join("processed/ingest_date=2025-06-01/erinhills.2025-06-01.1.csv").is_file(), "{b}");
        assert!(inbox.join("rejected/ingest_date=2025-03-10/pinehurst4.rounds.json").is_file(), "{b}");
        let left: Vec<_> =
            std::fs::read_dir(&inbox).unwrap().filter_map(|e| e.ok()).filter(|e| e.path().is_file()).collect();
        assert!(left.is_empty(), "{b}: {left:?}");

        // A re-run of the same date finds nothing new and succeeds. The next day: a file already
        // landed (its name carries its date) and a renamed copy of a landed file are skipped as
        // duplicates; new bytes under a processed name land under the new date.
        let (_, state) = run_on("2025-03-10").await;
        assert_eq!(state, RunState::Success, "{b}");
        std::fs::copy(fixture("erinhills.2025-06-01.1.csv"), inbox.join("erinhills.2025-06-01.1.csv")).unwrap();
        std::fs::write(inbox.join("americanfalls.rounds.csv"), b"_id,course\nr1,americanfalls\n").unwrap();
        std::fs::copy(fixture("americanfalls.rounds.csv"), inbox.join("americanfalls.2025-03-10.2.csv")).unwrap();
        let (run3, state) = run_on("2025-03-11").await;
        assert_eq!(state, RunState::Success, "{b}");
        let out = env.store.list_attempts(run3, "ingest").await.unwrap()[0].output.clone().unwrap();
        assert_eq!((&out["skipped"], &out["accepted"]), (&serde_json::json!(2), &serde_json::json!(1)), "{b}: {out}");
        assert_eq!(out["refused"], 0, "{b}: a different name and date is a new file: {out}");
        assert!(inbox.join("processed/ingest_date=2025-03-10/americanfalls.2025-03-10.2.csv").is_file());
        assert!(!inbox.join("americanfalls.rounds.csv").exists(), "{b}: landed under 2025-03-11");
    }
}

#[tokio::test]
async fn the_task_leaves_refused_files_in_the_inbox_and_does_not_fail() {
    let env = Env::sqlite().await;
    let inbox = env.settings.lake.inbox.clone();
    std::fs::create_dir_all(&inbox).unwrap();
    let key = "course_id=americanfalls/ingest_date=2025-03-10/americanfalls.rounds.csv";
    env.buckets.put_bytes(Bucket::Landing, key, b"_id,course\nold,americanfalls\n".to_vec()).await.unwrap();
    std::fs::copy(fixture("americanfalls.rounds.csv"), inbox.join("americanfalls.rounds.csv")).unwrap();
    let d = dag::load_str(BRONZE_DAG, Path::new("bronze.toml")).unwrap();
    let exec = Executor::new(env.store.clone(), Arc::new(env.settings.clone()));
    let slot = schedule::slot_for_date(d.schedule.as_ref(), d.timezone, date("2025-03-10"));
    let run = prepare_run(exec.store(), &d, &slot, RunType::Manual, &serde_json::json!({}), None, None).await.unwrap();
    assert_eq!(exec.execute(&d, run.run().id).await.unwrap(), RunState::Success);
    let out = env.store.list_attempts(run.run().id, "ingest").await.unwrap()[0].output.clone().unwrap();
    assert_eq!(out["refused"], 1);
    assert_eq!(out["refused_files"], serde_json::json!(["americanfalls.rounds.csv"]));
    assert!(inbox.join("americanfalls.rounds.csv").is_file());
}

#[tokio::test]
async fn the_task_fails_without_an_inbox_and_checks_its_settings() {
    let env = Env::sqlite().await;
    let d = dag::load_str(BRONZE_DAG, Path::new("bronze.toml")).unwrap();
    let exec = Executor::new(env.store.clone(), Arc::new(env.settings.clone()));
    let slot = schedule::slot_for_date(d.schedule.as_ref(), d.timezone, date("2025-03-10"));
    let run = prepare_run(exec.store(), &d, &slot, RunType::Manual, &serde_json::json!({}), None, None).await.unwrap();
    assert_eq!(exec.execute(&d, run.run().id).await.unwrap(), RunState::Failed);
    let attempts = env.store.list_attempts(run.run().id, "ingest").await.unwrap();
    assert_eq!(attempts.len(), 1, "not retried: retrying cannot create the folder");
    assert!(attempts[0].error.as_deref().unwrap().contains("is not a directory"), "{:?}", attempts[0].error);

    let bad = r#"
id = "bronze"
[[task]]
id = "ingest"
kind = "bronze.ingest"
course = "Erin Hills"
replace = "yes"
inbox = "/data/{{ nope }}"
"#;
    let errors = dag::load_str(bad, Path::new("bronze.toml")).unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let all = text.join("\n");
    assert!(all.contains("`course` must be a course id of lowercase letters, digits, `-` and `_`"), "{all}");
    assert!(all.contains("`replace` must be true or false"), "{all}");
    assert!(all.contains("unknown placeholder `{{ nope }}`"), "{all}");
    let ok = r#"
id = "bronze"
[[task]]
id = "ingest"
kind = "bronze.ingest"
course = "erinhills"
replace = true
inbox = "/data/{{ ds }}"
"#;
    dag::load_str(ok, Path::new("bronze.toml")).unwrap_or_else(|e| panic!("{e:?}"));
}

// ---- big files and the command line ---------------------------------------------------------------

#[tokio::test]
async fn a_big_file_is_streamed_hashed_and_landed_byte_for_byte() {
    let env = Env::sqlite().await;
    // ~11 MB: bigger than the 8 MiB write buffer (multipart upload) and many read chunks, with
    // two-byte characters falling across chunk boundaries somewhere.
    let mut text = String::from("_id,course,goalName\n");
    for i in 0..50_000 {
        text.push_str(&format!("{i:024x},americanfalls,\"caf\u{e9} {}\"\n", "x".repeat(180)));
    }
    let path = env.scratch_write("americanfalls.rounds.csv", text.as_bytes());
    let o = env.one(path, None, Some("2025-01-01"), false).await;
    assert_eq!((o.status, o.rows), (IngestStatus::Accepted, Some(50_000)), "{:?}", o.reason);
    assert_eq!(o.sha256, sha256_hex(text.as_bytes()));
    let landed = env.landing("course_id=americanfalls/ingest_date=2025-01-01/americanfalls.rounds.csv").await;
    assert!(landed == text.as_bytes(), "byte for byte");
}

#[tokio::test]
async fn the_command_line_entry_reports_whether_every_file_was_fine() {
    let env = Env::sqlite().await;
    let args = |paths: Vec<PathBuf>, course: Option<&str>| bronze::IngestArgs {
        paths,
        course: course.map(str::to_string),
        date: Some(date("2025-01-01")),
        replace: false,
        json: true,
    };
    let ok = bronze::run_cli(&env.settings, args(vec![fixture("americanfalls.rounds.csv")], None)).await.unwrap();
    assert!(ok, "accepted");
    let ok = bronze::run_cli(&env.settings, args(vec![fixture("americanfalls.rounds.csv")], None)).await.unwrap();
    assert!(ok, "a duplicate is fine");
    let ok = bronze::run_cli(&env.settings, args(vec![fixture("json_empty_array.json")], Some("americanfalls")))
        .await
        .unwrap();
    assert!(!ok, "a rejected file makes the command fail");
    let e = bronze::run_cli(&env.settings, args(vec![fixture("americanfalls.rounds.csv")], Some("Bad Id")))
        .await
        .unwrap_err();
    assert!(matches!(e.downcast_ref::<BronzeError>(), Some(BronzeError::InvalidCourse(_))), "{e}");
    let rows = env.store.list_ingestions(&IngestionFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(rows.len(), 3);
}
