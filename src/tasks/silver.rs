//! `silver.transform`: for the run's date D, every course with landing files under
//! `course_id=<c>/ingest_date=D/` is transformed (`crate::silver`) into
//! `silver.fact_telemetry_event`; every `(course, D)` partition — and any partition of D that has
//! no landing files any more — is replaced in ONE Iceberg snapshot. Broken rows go to the
//! quarantine bucket as JSON lines with a reason; a JSON summary goes to the observability bucket
//! and the state DB. The commit carries the run key and a fingerprint of the inputs, so a retry
//! after a commit that was not recorded does not write twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

use super::{BuildInput, SettingError, Task, TaskContext, TaskError, TaskOutput, failed, lake_failed};
use crate::lake::buckets::{Bucket, Buckets};
use crate::lake::{Lake, PartitionValues, RunKey, SessionOptions, parse_ident};
use crate::silver::{self, Quarantined, Rules};

/// Rows per batch handed to the writer.
const BATCH_ROWS: usize = 65_536;

#[derive(Debug)]
struct SilverTransform {
    table: String,
    batch_rows: usize,
}

/// One landing object to read.
#[derive(Debug, Clone)]
struct LandingFile {
    key: String,
    size: u64,
    modified: String,
}

/// Courses with landing files for `ds`, each with its files (sorted by key).
async fn landing_partitions(buckets: &Buckets, ds: NaiveDate) -> Result<BTreeMap<String, Vec<LandingFile>>, TaskError> {
    let store = buckets.landing().clone();
    let top = store
        .list_with_delimiter(None)
        .await
        .map_err(|e| TaskError::Failed(format!("listing the landing bucket: {e}")))?;
    let mut out = BTreeMap::new();
    for prefix in top.common_prefixes {
        let Some(course) = prefix.as_ref().strip_prefix("course_id=").map(str::to_string) else { continue };
        let day = object_store::path::Path::from(format!("course_id={course}/ingest_date={ds}"));
        let mut files: Vec<LandingFile> = store
            .list(Some(&day))
            .map_ok(|m| LandingFile {
                key: m.location.to_string(),
                size: m.size,
                modified: m.last_modified.to_rfc3339(),
            })
            .try_collect()
            .await
            .map_err(|e| TaskError::Failed(format!("listing landing {day}: {e}")))?;
        if files.is_empty() {
            continue;
        }
        files.sort_by(|a, b| a.key.cmp(&b.key));
        out.insert(course, files);
    }
    Ok(out)
}

/// Courses that have rows for `ds` in the table now (their partitions are replaced too).
async fn courses_in_table(lake: &Lake, table: &str, ds: NaiveDate) -> Result<Vec<String>, TaskError> {
    let ctx = lake.session(&SessionOptions::current()).await.map_err(failed("opening a session"))?;
    let sql = format!("SELECT DISTINCT course_id FROM {table} WHERE ingest_date = DATE '{ds}'");
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(failed("planning the partition query"))?
        .collect()
        .await
        .map_err(failed("reading existing partitions"))?;
    let mut out = Vec::new();
    for b in &batches {
        let col = cast(b.column(0), &DataType::Utf8).map_err(failed("reading existing partitions"))?;
        out.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    Ok(out)
}

/// Opens a landing object as a blocking reader: the file itself in the embedded mode, else the
/// object spooled to a temporary file (memory stays bounded either way). The spool is made once
/// per object and kept in `spooled`: the transform reads each file twice (a cheap first pass
/// counts round ids), and the second read must not download it again. The two reads never
/// overlap, so they can share the file handle, rewound each time.
fn open_landing(
    buckets: &Buckets,
    key: &str,
    handle: &tokio::runtime::Handle,
    spooled: &std::sync::Mutex<Option<std::fs::File>>,
) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    use std::io::Seek;
    if let Some(path) = buckets.local_path(Bucket::Landing, key) {
        return Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?)));
    }
    let mut cached = spooled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut file = match cached.as_ref() {
        Some(f) => f.try_clone()?,
        None => {
            let store = buckets.landing().clone();
            let location = object_store::path::Path::from(key);
            let mut spool = tempfile_spool()?;
            handle.block_on(async {
                let got = store.get(&location).await.map_err(std::io::Error::other)?;
                let mut stream = got.into_stream();
                use std::io::Write;
                while let Some(chunk) = stream.try_next().await.map_err(std::io::Error::other)? {
                    spool.write_all(&chunk)?;
                }
                Ok::<(), std::io::Error>(())
            })?;
            *cached = Some(spool.try_clone()?);
            spool
        }
    };
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
}

/// An anonymous temporary file (removed when closed).
fn tempfile_spool() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!(
        "tmctl-spool-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[async_trait]
impl Task for SilverTransform {
    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        let started = Instant::now();
        let settings = ctx.settings.clone();
        let buckets = Buckets::open(&settings).map_err(failed("opening buckets"))?;
        let lake = ctx.lake.get().await.map_err(lake_failed("opening the lake"))?;
        let ident = parse_ident(&self.table).map_err(|e| TaskError::Fatal(e.to_string()))?;
        lake.ensure_table(&ident, &silver::schema(), &["course_id", "ingest_date"])
            .await
            .map_err(failed("preparing the silver table"))?;
        let ds = ctx.ds;
        let landing = landing_partitions(&buckets, ds).await?;
        let mut courses: Vec<String> = landing.keys().cloned().collect();
        for c in courses_in_table(&lake, &self.table, ds).await? {
            if !courses.contains(&c) {
                tracing::warn!(course = %c, "rows for this date but no landing files any more: the partition is emptied");
                courses.push(c);
            }
        }
        courses.sort();
        let files: usize = landing.values().map(Vec::len).sum();
        tracing::info!(ds = %ds, courses = courses.len(), files, "landing files to transform");

        // Fingerprint of the inputs: the same files give the same table, so a commit of this run
        // key with this fingerprint means the work is already done.
        let mut h = Sha256::new();
        h.update(env!("CARGO_PKG_VERSION"));
        for (course, list) in &landing {
            for f in list {
                h.update(format!("{course}\n{}\n{}\n{}\n", f.key, f.size, f.modified));
            }
        }
        // `full_refresh` (declared by the silver DAG; `tmctl run --full-refresh`), or the older `force`.
        let flag = |name: &str| ctx.params.get(name).and_then(|v| v.as_bool()).unwrap_or(false);
        let force = flag("full_refresh") || flag("force");
        let run_key = RunKey::new(&ctx.dag_id, &ctx.task_id, ds).with_fingerprint(crate::util::hex(&h.finalize()));
        let mut writer = lake.writer(&ident, run_key).await.map_err(failed("opening the table writer"))?;
        if force {
            writer = writer.force();
        }
        if let Some(snapshot) = writer.already_committed() {
            tracing::info!(snapshot, "this date was already committed from the same landing files; nothing to do");
            let summary = serde_json::json!({
                "dag": ctx.dag_id, "task": ctx.task_id, "ds": ds.to_string(), "table": self.table,
                "already_committed": true, "snapshot_id": snapshot, "courses": courses,
            });
            return Ok(TaskOutput { summary: Some(summary) });
        }

        let rules = Rules {
            min_lon: settings.lake.min_lon,
            max_lon: settings.lake.max_lon,
            min_lat: settings.lake.min_lat,
            max_lat: settings.lake.max_lat,
        };
        let run_tag = format!("{}-{}", ctx.run_pk, ctx.try_number);
        let mut per_course = Vec::new();
        let mut quarantined_total: BTreeMap<String, u64> = BTreeMap::new();
        let mut quarantine_keys = Vec::new();
        for course in &courses {
            let list = landing.get(course).cloned().unwrap_or_default();
            // Parse on a blocking thread; batches come back over a small channel and are written
            // here, so reading and writing overlap and at most a few batches are in memory.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
            let buckets_r = buckets.clone();
            let course_r = course.clone();
            let batch_rows = self.batch_rows;
            let handle = tokio::runtime::Handle::current();
            let parse = tokio::task::spawn_blocking(move || {
                let inputs: Vec<silver::rows::Input<'_>> = list
                    .iter()
                    .map(|f| {
                        let key = f.key.clone();
                        let b = buckets_r.clone();
                        let h = handle.clone();
                        let spooled = std::sync::Mutex::new(None);
                        silver::rows::Input {
                            name: key.rsplit('/').next().unwrap_or(&key).to_string(),
                            open: Box::new(move || open_landing(&b, &key, &h, &spooled)),
                        }
                    })
                    .collect();
                let mut quarantined: Vec<Quarantined> = Vec::new();
                let stats = silver::transform_partition(
                    &course_r,
                    ds,
                    &inputs,
                    &rules,
                    batch_rows,
                    &mut |batch| tx.blocking_send(batch).map_err(|_| "the writer stopped".to_string()),
                    &mut |q| quarantined.push(q),
                );
                (stats, quarantined)
            });
            while let Some(batch) = rx.recv().await {
                writer.write(batch).await.map_err(failed("writing silver data files"))?;
            }
            let (stats, quarantined) = parse.await.map_err(failed("the transform thread"))?;
            let stats = stats.map_err(|e| TaskError::Failed(format!("course {course}: {e}")))?;
            for (reason, n) in &stats.quarantined {
                *quarantined_total.entry(reason.clone()).or_insert(0) += n;
            }
            if !quarantined.is_empty() {
                let key = format!("silver/course_id={course}/ingest_date={ds}/run_id={run_tag}/quarantine.jsonl");
                let mut body = Vec::new();
                for q in &quarantined {
                    serde_json::to_writer(&mut body, &q.row).map_err(failed("encoding quarantine rows"))?;
                    body.push(b'\n');
                }
                buckets.put_bytes(Bucket::Quarantine, &key, body).await.map_err(failed("writing quarantine rows"))?;
                quarantine_keys.push(key);
            }
            tracing::info!(course = %course, rows = stats.rows_out, quarantined = quarantined.len(), "course transformed");
            per_course.push(serde_json::json!({ "course_id": course, "stats": stats }));
        }
        let partitions: Vec<PartitionValues> = courses
            .iter()
            .map(|c| PartitionValues::new().with("course_id", c.as_str()).with("ingest_date", ds))
            .collect();
        let outcome = writer.replace_partitions(partitions).await.map_err(failed("committing silver"))?;
        tracing::info!(
            snapshot = outcome.snapshot_id,
            added = outcome.added_records,
            deleted = outcome.deleted_records,
            "committed"
        );

        let rows_in: u64 = per_course.iter().filter_map(|c| c["stats"]["records_in"].as_u64()).sum();
        let rows_out: u64 = per_course.iter().filter_map(|c| c["stats"]["rows_out"].as_u64()).sum();
        // Counted once the commit is in: a try that fails before it counts nothing.
        ctx.metrics.silver_rows(&ctx.dag_id, rows_in, rows_out, &quarantined_total);
        let summary = serde_json::json!({
            "dag": ctx.dag_id,
            "task": ctx.task_id,
            "run_id": ctx.run_id,
            "try": ctx.try_number,
            "ds": ds.to_string(),
            "table": self.table,
            "files": files,
            "records_in": rows_in,
            "rows_out": rows_out,
            "quarantined": quarantined_total,
            "quarantine_objects": quarantine_keys,
            "courses": per_course,
            "commit": outcome,
            "duration_ms": started.elapsed().as_millis() as u64,
        });
        let key = format!("silver/ingest_date={ds}/run_id={run_tag}/summary.json");
        record_summary(ctx, &buckets, &key, "silver.transform", &summary).await?;
        Ok(TaskOutput { summary: Some(summary) })
    }

    fn writes(&self) -> Vec<String> {
        vec![self.table.clone()]
    }
}

pub use super::summary::record_summary;

pub fn build(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    let mut errors = Vec::new();
    let table = match input.settings.get("table") {
        None => silver::TABLE.to_string(),
        Some(toml::Value::String(t)) if t.split('.').count() == 2 && !t.contains(' ') => t.clone(),
        Some(other) => {
            errors.push(SettingError::new("table", format!("`table` must be `namespace.table`, found {other}")));
            String::new()
        }
    };
    let batch_rows = match input.settings.get("batch_rows") {
        None => BATCH_ROWS,
        Some(toml::Value::Integer(n)) if *n >= 1 && *n <= 1_048_576 => *n as usize,
        Some(other) => {
            errors.push(SettingError::new("batch_rows", format!("`batch_rows` must be 1..=1048576, found {other}")));
            BATCH_ROWS
        }
    };
    if errors.is_empty() { Ok(Arc::new(SilverTransform { table, batch_rows })) } else { Err(errors) }
}
