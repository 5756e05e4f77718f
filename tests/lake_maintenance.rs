//! Iceberg table maintenance end to end: `tmctl lake expire-snapshots` and `tmctl lake
//! remove-orphans` (dry run first, then for real) on the embedded lake, the same operations on
//! SeaweedFS's S3 + Iceberg REST catalog, and the shipped `maintenance` DAG. After each, PyIceberg
//! (and DuckDB's iceberg extension, on the local lake) read every retained snapshot with the same
//! rows as before, the files of expired snapshots are gone, and nothing a retained snapshot reads
//! is touched.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use datafusion::arrow::array::{Date32Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use iceberg::TableIdent;
use object_store::ObjectStoreExt;
use tmctl::config::{Overrides, Settings};
use tmctl::lake::maintenance::{CompactOptions, ExpireOptions, OrphanOptions};
use tmctl::lake::{Lake, PartitionValues, RunKey, parse_ident};
use tmctl::store::Store;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("course_id", DataType::Utf8, false),
        Field::new("ingest_date", DataType::Date32, false),
        Field::new("round_id", DataType::Utf8, false),
        Field::new("location_index", DataType::Int32, false),
    ]))
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
}

/// `n` rows of round `round` for (course, date).
fn batch(course: &str, date: NaiveDate, round: &str, n: i32) -> RecordBatch {
    let days = (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![course; n as usize])),
            Arc::new(Date32Array::from(vec![days; n as usize])),
            Arc::new(StringArray::from(vec![round; n as usize])),
            Arc::new(Int32Array::from((0..n).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn part(course: &str, date: NaiveDate) -> PartitionValues {
    PartitionValues::new().with("course_id", course).with("ingest_date", date)
}

/// Five snapshots of `t`: day 3 for A and B, then A's day 3 replaced four times (1, 2, 3, 4 rows
/// more each time), so every older snapshot has a data file no newer one reads. Returns the
/// snapshot ids, oldest first.
async fn five_snapshots(lake: &Lake, t: &TableIdent) -> Vec<i64> {
    lake.ensure_table(t, &schema(), &["course_id", "ingest_date"]).await.unwrap();
    let mut w = lake.writer(t, RunKey::new("silver", "transform", day(3))).await.unwrap();
    w.write(batch("A", day(3), "a0", 5)).await.unwrap();
    w.write(batch("B", day(3), "b0", 7)).await.unwrap();
    let mut ids = vec![w.replace_partitions(vec![part("A", day(3)), part("B", day(3))]).await.unwrap().snapshot_id];
    for i in 1..=4 {
        let key = RunKey::new("silver", "transform", day(3)).with_scope(format!("A/{i}"));
        let mut w = lake.writer(t, key).await.unwrap();
        w.write(batch("A", day(3), &format!("a{i}"), 5 + i)).await.unwrap();
        ids.push(w.replace_partitions(vec![part("A", day(3))]).await.unwrap().snapshot_id);
    }
    ids
}

/// The data files a reader of snapshot `id` opens, planned by iceberg-rust's own scan.
async fn data_files(lake: &Lake, t: &TableIdent, id: i64) -> BTreeSet<String> {
    let table = lake.load_table(t).await.unwrap();
    let scan = table.scan().snapshot_id(id).build().unwrap();
    let tasks: Vec<_> = scan.plan_files().await.unwrap().try_collect().await.unwrap();
    tasks.into_iter().map(|t| t.data_file_path).collect()
}

fn local(path: &str) -> PathBuf {
    PathBuf::from(path.strip_prefix("file://").unwrap_or(path))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

fn set_age(path: &Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

/// Rows of each snapshot as DuckDB's iceberg extension reads them (tests/duckdb_iceberg_read.py).
fn duckdb_rows(metadata: &str, snapshots: &[i64]) -> BTreeMap<String, i64> {
    const INSTALL: &str =
        "pip install \"duckdb==1.5.5\" \"duckdb-extension-iceberg==1.5.5\" \"duckdb-extension-avro==1.5.5\"";
    // The extension must match duckdb's version; .ci/run installs that pair in a venv of its own.
    // (TM_TEST_DUCKDB_PYTHON, else the venv .ci/run makes under the target directory, else python3)
    let venv = option_env!("CARGO_TARGET_DIR").map(|d| Path::new(d).join("duckdb-venv/bin/python3"));
    let python = std::env::var("TM_TEST_DUCKDB_PYTHON").unwrap_or_else(|_| match venv {
        Some(v) if v.exists() => v.display().to_string(),
        _ => "python3".into(),
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/duckdb_iceberg_read.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(metadata)
        .args(snapshots.iter().map(i64::to_string))
        .output()
        .unwrap_or_else(|e| panic!("{python} is needed with DuckDB's iceberg extension ({INSTALL}): {e}"));
    assert!(
        out.status.success(),
        "DuckDB cannot read {metadata} (set TM_TEST_DUCKDB_PYTHON to a python with: {INSTALL}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from duckdb_iceberg_read.py")
}

/// Row count of every snapshot as PyIceberg reads it.
fn pyiceberg_snapshots(home: &Path, table: &str) -> BTreeMap<i64, i64> {
    let py = common::pyiceberg_on(home, table, Some("all"));
    py["at_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_i64().unwrap(), s["row_count"].as_i64().unwrap()))
        .collect()
}

fn json_report(home: &Path, args: &[&str]) -> serde_json::Value {
    let (code, out, err) = common::tmctl_on(home, args);
    assert_eq!(code, 0, "tmctl {args:?}\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

async fn embedded_lake(home: &Path) -> Lake {
    let overrides = Overrides { home: Some(home.to_path_buf()), ..Default::default() };
    let settings = Settings::load_with(&overrides, &BTreeMap::new()).expect("settings");
    let store = Store::connect(&settings.database_url, 4).await.expect("state DB");
    Lake::open(Arc::new(settings), store).await.expect("lake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_snapshots_frees_only_what_no_retained_snapshot_reads() {
    let home = tempfile::tempdir().unwrap();
    let lake = embedded_lake(home.path()).await;
    let t = parse_ident("silver.t").unwrap();
    let ids = five_snapshots(&lake, &t).await;
    let before = pyiceberg_snapshots(home.path(), "silver.t");
    assert_eq!(before.len(), 5, "{before:?}");
    let mut files: Vec<BTreeSet<String>> = Vec::new();
    for id in &ids {
        files.push(data_files(&lake, &t, *id).await);
    }
    let retained: BTreeSet<String> = files[3..].iter().flatten().cloned().collect();
    let expired_only: BTreeSet<String> =
        files[..3].iter().flatten().filter(|f| !retained.contains(*f)).cloned().collect();
    assert_eq!(expired_only.len(), 3, "A's day-3 file of each of the three oldest snapshots");
    let expired_bytes: u64 = expired_only.iter().map(|f| std::fs::metadata(local(f)).unwrap().len()).sum();

    // Dry run: lists the three data files (with their sizes), their manifest lists and manifests;
    // changes nothing.
    let args = ["lake", "expire-snapshots", "--older-than", "0s", "--retain-last", "2", "--json"];
    let dry = json_report(home.path(), &[&args[..], &["--dry-run"][..]].concat());
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["expired_snapshots"], 3, "{dry}");
    let table = dry["tables"].as_array().unwrap().iter().find(|r| r["table"] == "silver.t").unwrap().clone();
    let listed = |report: &serde_json::Value, kind: &str| -> BTreeMap<String, u64> {
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind)
            .map(|f| (f["path"].as_str().unwrap().to_string(), f["size"].as_u64().unwrap()))
            .collect()
    };
    let dry_data = listed(&table, "data");
    assert_eq!(dry_data.keys().cloned().collect::<BTreeSet<_>>(), expired_only, "{table}");
    assert_eq!(dry_data.values().sum::<u64>(), expired_bytes);
    assert_eq!(listed(&table, "manifest-list").len(), 3, "one manifest list per expired snapshot: {table}");
    assert!(!listed(&table, "manifest").is_empty(), "{table}");
    assert_eq!(table["retained_snapshots"], 2);
    assert!(expired_only.iter().all(|f| local(f).exists()), "a dry run deletes nothing");
    assert_eq!(lake.table_snapshots(&t).await.unwrap().len(), 5, "a dry run keeps every snapshot");
    // The human form says what would happen, with sizes and totals.
    let (code, text, err) = common::tmctl_on(
        home.path(),
        &["lake", "expire-snapshots", "--older-than", "0s", "--retain-last", "2", "--dry-run"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("would expire 3 snapshot(s)") && text.contains("dry run: nothing changed"), "{text}");

    // For real: the same files go, the metadata keeps the two newest snapshots.
    let done = json_report(home.path(), &args);
    let table = done["tables"].as_array().unwrap().iter().find(|r| r["table"] == "silver.t").unwrap().clone();
    assert_eq!(done["dry_run"], false);
    assert_eq!(listed(&table, "data").keys().cloned().collect::<BTreeSet<_>>(), expired_only);
    assert_eq!(done["files_freed"], dry["files_freed"], "dry run and run agree:\n{dry}\n{done}");
    assert_eq!(done["bytes_freed"], dry["bytes_freed"]);
    assert!(done["bytes_freed"].as_u64().unwrap() > expired_bytes, "data plus manifests and lists");
    let snaps: Vec<i64> = lake.table_snapshots(&t).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(snaps, ids[3..], "the two newest snapshots stay");
    assert!(expired_only.iter().all(|f| !local(f).exists()), "files of expired snapshots are gone");
    assert!(retained.iter().all(|f| local(f).exists()), "files of retained snapshots stay");
    for f in listed(&table, "manifest-list").keys().chain(listed(&table, "manifest").keys()) {
        assert!(!local(f).exists(), "{f} was reported deleted");
    }

    // Independent readers read every retained snapshot with the same rows as before.
    let after = pyiceberg_snapshots(home.path(), "silver.t");
    let kept: BTreeMap<i64, i64> =
        before.iter().filter(|(id, _)| ids[3..].contains(id)).map(|(k, v)| (*k, *v)).collect();
    assert_eq!(after, kept);
    let metadata = lake.load_table(&t).await.unwrap().metadata_location().unwrap().to_string();
    let duck = duckdb_rows(&metadata, &ids[3..]);
    for id in &ids[3..] {
        assert_eq!(duck[&id.to_string()], before[id], "DuckDB at snapshot {id}: {duck:?}");
    }

    // Again: nothing left to expire; and the table takes new commits on top.
    let again = json_report(home.path(), &args);
    assert_eq!((again["expired_snapshots"].as_u64(), again["files_freed"].as_u64()), (Some(0), Some(0)), "{again}");
    let mut w = lake.writer(&t, RunKey::new("silver", "transform", day(4))).await.unwrap();
    w.write(batch("C", day(4), "c0", 2)).await.unwrap();
    w.replace_partitions(vec![part("C", day(4))]).await.unwrap();
    assert_eq!(pyiceberg_snapshots(home.path(), "silver.t").len(), 3);

    // An unknown table is bad input.
    let (code, _, err) = common::tmctl_on(home.path(), &["lake", "expire-snapshots", "--table", "gold.nope"]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_orphans_removes_old_unreferenced_files_and_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    let lake = embedded_lake(home.path()).await;
    let t = parse_ident("silver.t").unwrap();
    let ids = five_snapshots(&lake, &t).await;
    let before = pyiceberg_snapshots(home.path(), "silver.t");
    let dir = local(lake.load_table(&t).await.unwrap().metadata().location());
    // Every file of the table is 10 days old: age alone must not make a file an orphan.
    let referenced = files_under(&dir);
    for f in &referenced {
        set_age(f, Duration::from_secs(10 * 86_400));
    }
    // Planted: an old data file and an old manifest nobody references, and a young data file (a
    // writer's file not committed yet).
    let old_data = dir.join("data/course_id=A/ingest_date=2025-01-03/00000-0-orphan.parquet");
    let old_manifest = dir.join("metadata/orphan-m0.avro");
    let young = dir.join("data/course_id=A/ingest_date=2025-01-03/00000-0-in-flight.parquet");
    for (p, bytes) in [(&old_data, 1000usize), (&old_manifest, 300), (&young, 500)] {
        std::fs::write(p, vec![7u8; bytes]).unwrap();
    }
    set_age(&old_data, Duration::from_secs(5 * 86_400));
    set_age(&old_manifest, Duration::from_secs(4 * 86_400));

    let dry = json_report(home.path(), &["lake", "remove-orphans", "--older-than", "3d", "--dry-run", "--json"]);
    let paths: BTreeSet<String> =
        dry["tables"][0]["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect();
    let expect: BTreeSet<String> =
        [&old_data, &old_manifest].iter().map(|p| format!("file://{}", p.display())).collect();
    assert_eq!(paths, expect, "{dry}");
    assert_eq!((dry["files_freed"].as_u64(), dry["bytes_freed"].as_u64()), (Some(2), Some(1300)));
    assert!(old_data.exists() && old_manifest.exists(), "a dry run deletes nothing");

    let done = json_report(home.path(), &["lake", "remove-orphans", "--older-than", "3d", "--json"]);
    assert_eq!((done["files_freed"].as_u64(), done["bytes_freed"].as_u64()), (Some(2), Some(1300)), "{done}");
    assert!(!old_data.exists() && !old_manifest.exists(), "old orphans are gone");
    assert!(young.exists(), "a file younger than the limit stays");
    assert!(referenced.iter().all(|f| f.exists()), "every referenced file stays, however old");
    assert_eq!(pyiceberg_snapshots(home.path(), "silver.t"), before, "every snapshot still reads the same");
    let metadata = lake.load_table(&t).await.unwrap().metadata_location().unwrap().to_string();
    let duck = duckdb_rows(&metadata, &ids);
    assert!(ids.iter().all(|id| duck[&id.to_string()] == before[id]), "{duck:?} vs {before:?}");

    // The shipped weekly DAG runs both operations as tasks (nothing is old enough to go).
    let (code, out, err) = common::tmctl_on(home.path(), &["run", "maintenance", "--date", "2025-06-01"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(young.exists());
    assert_eq!(lake.table_snapshots(&t).await.unwrap().len(), 5, "30 days is the DAG's default limit");
}

/// The same on SeaweedFS: table files on S3, metadata through the Iceberg REST catalog (the
/// expiry is a `remove-snapshots` commit), PyIceberg reading through REST + S3 afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_works_on_s3_and_the_rest_catalog() {
    let buckets = common::seaweed::TestBuckets::create("maint");
    let db = common::sqlite_db();
    let home = tempfile::tempdir().unwrap();
    let mut env: BTreeMap<String, String> = buckets.env().into_iter().collect();
    env.insert("TM_ICEBERG_CATALOG_TYPE".into(), "rest".into());
    let overrides = Overrides { home: Some(home.path().to_path_buf()), ..Default::default() };
    let mut settings = Settings::load_with(&overrides, &env).expect("settings");
    settings.database_url = db.url.clone();
    let settings = Arc::new(settings);
    let store = Store::connect(&db.url, 4).await.unwrap();
    let lake = Lake::open(settings.clone(), store).await.expect("REST lake");
    let t = parse_ident("silver.t").unwrap();
    let ids = five_snapshots(&lake, &t).await;
    let rows_before = rest_rows(&buckets, &ids);
    let mut files: Vec<BTreeSet<String>> = Vec::new();
    for id in &ids {
        files.push(data_files(&lake, &t, *id).await);
    }
    let retained: BTreeSet<String> = files[3..].iter().flatten().cloned().collect();
    let expired_only: BTreeSet<String> =
        files[..3].iter().flatten().filter(|f| !retained.contains(*f)).cloned().collect();
    let s3 = tmctl::lake::s3::client(&settings.lake.s3, &buckets.source).unwrap();
    let exists = |path: String| {
        let s3 = s3.clone();
        let key = path.strip_prefix(&format!("s3://{}/", buckets.source)).unwrap().to_string();
        async move { s3.head(&object_store::path::Path::from(key)).await.is_ok() }
    };

    let options = |dry_run| ExpireOptions { older_than: Duration::ZERO, retain_last: 2, dry_run };
    let dry = lake.expire_snapshots(std::slice::from_ref(&t), &options(true)).await.unwrap();
    assert_eq!(dry.expired_snapshots, 3);
    for f in &expired_only {
        assert!(exists(f.clone()).await, "a dry run deletes nothing");
    }
    let done = lake.expire_snapshots(std::slice::from_ref(&t), &options(false)).await.unwrap();
    assert_eq!((done.files_freed, done.bytes_freed), (dry.files_freed, dry.bytes_freed));
    let data: BTreeSet<String> =
        done.tables[0].files.iter().filter(|f| f.kind.as_str() == "data").map(|f| f.path.clone()).collect();
    assert_eq!(data, expired_only);
    let snaps: Vec<i64> = lake.table_snapshots(&t).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(snaps, ids[3..], "the REST catalog removed the expired snapshots");
    for f in &expired_only {
        assert!(!exists(f.clone()).await, "{f} is gone");
    }
    for f in &retained {
        assert!(exists(f.clone()).await, "{f} stays");
    }
    let rows_after = rest_rows(&buckets, &ids[3..]);
    let kept: BTreeMap<i64, i64> = ids[3..].iter().map(|id| (*id, rows_before[id])).collect();
    assert_eq!(rows_after, kept, "PyIceberg via REST + S3");

    // An orphan object under the table location goes (a zero limit: S3 cannot age an object),
    // the table's own files stay.
    let location = lake.load_table(&t).await.unwrap().metadata().location().to_string();
    let orphan = format!("{location}/data/orphan.parquet");
    let key = orphan.strip_prefix(&format!("s3://{}/", buckets.source)).unwrap().to_string();
    s3.put(&object_store::path::Path::from(key), vec![1u8; 42].into()).await.unwrap();
    let opts = |dry_run| OrphanOptions { older_than: Duration::ZERO, dry_run };
    let dry = lake.remove_orphans(std::slice::from_ref(&t), &opts(true)).await.unwrap();
    assert_eq!(dry.tables[0].files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(), std::slice::from_ref(&orphan));
    assert!(exists(orphan.clone()).await);
    let done = lake.remove_orphans(std::slice::from_ref(&t), &opts(false)).await.unwrap();
    assert_eq!((done.files_freed, done.bytes_freed), (1, 42));
    assert!(!exists(orphan).await);
    assert_eq!(rest_rows(&buckets, &ids[3..]), rows_after);

    // Compaction through the REST commit: two small files of a new partition become one, rows
    // unchanged for PyIceberg.
    let table = lake.load_table(&t).await.unwrap();
    let mut w = lake.writer_sized(table, RunKey::new("silver", "transform", day(5)), 1).unwrap();
    w.write(batch("C", day(5), "c1", 3)).await.unwrap();
    w.write(batch("C", day(5), "c2", 4)).await.unwrap();
    let split = w.replace_partitions(vec![part("C", day(5))]).await.unwrap().snapshot_id;
    assert_eq!(data_files(&lake, &t, split).await.len(), 4, "A, B and two files of C");
    let options = CompactOptions { target_file_size: 128 << 20, partition: None, dry_run: false };
    let done = lake.compact(std::slice::from_ref(&t), &options).await.unwrap();
    let c = &done.tables[0].compacted;
    assert_eq!((c.len(), c[0].files_before, c[0].files_after, c[0].rows), (1, 2, 1, 7), "{c:?}");
    let compacted = c[0].snapshot_id.unwrap();
    assert_eq!(data_files(&lake, &t, compacted).await.len(), 3);
    let rows = rest_rows(&buckets, &[split, compacted]);
    assert_eq!(rows[&split], rows[&compacted], "{rows:?}");
}

/// Rows of each snapshot as PyIceberg reads them through the REST catalog and S3.
fn rest_rows(buckets: &common::seaweed::TestBuckets, ids: &[i64]) -> BTreeMap<i64, i64> {
    use common::seaweed;
    common::require_python(&["pyiceberg", "pyarrow"], "pip install \"pyiceberg[pyarrow]\"");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyiceberg_rest_read.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(seaweed::rest_uri())
        .arg(format!("{}:{}", seaweed::ACCESS_KEY, seaweed::SECRET_KEY))
        .arg(seaweed::s3_endpoint())
        .arg(seaweed::ACCESS_KEY)
        .arg(seaweed::SECRET_KEY)
        .arg(format!("s3://{}", buckets.source))
        .arg("silver.t")
        .env("TM_READ_SNAPSHOTS", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
        .output()
        .expect("python3 is needed (pip install \"pyiceberg[pyarrow]\")");
    assert!(out.status.success(), "PyIceberg failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["silver.t"]["at_snapshots"]
        .as_object()
        .unwrap_or_else(|| panic!("no at_snapshots: {v}"))
        .iter()
        .map(|(k, n)| (k.parse().unwrap(), n.as_i64().unwrap()))
        .collect()
}

/// Compaction: a partition's small files become one file in one `replace` snapshot with the same
/// rows; older snapshots still read their files; a rewrite whose files another commit replaced
/// meanwhile fails and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_rewrites_small_files_with_the_same_rows() {
    let home = tempfile::tempdir().unwrap();
    let lake = embedded_lake(home.path()).await;
    let t = parse_ident("silver.t").unwrap();
    lake.ensure_table(&t, &schema(), &["course_id", "ingest_date"]).await.unwrap();
    // Files rolled over at 1 byte: one file per batch, three for A and two for B.
    let table = lake.load_table(&t).await.unwrap();
    let mut w = lake.writer_sized(table, RunKey::new("silver", "transform", day(3)), 1).unwrap();
    for (course, round, n) in [("A", "a1", 4), ("B", "b1", 3), ("A", "a2", 5), ("B", "b2", 2), ("A", "a3", 6)] {
        w.write(batch(course, day(3), round, n)).await.unwrap();
    }
    w.write(batch("A", day(4), "a4", 3)).await.unwrap();
    let first = w.replace_all().await.unwrap().snapshot_id;
    let files_first = data_files(&lake, &t, first).await;
    assert_eq!(files_first.len(), 6, "{files_first:?}");
    let before = common::pyiceberg_on(home.path(), "silver.t", None);

    // Dry run: both day-3 partitions listed, nothing changes.
    let dry = json_report(home.path(), &["lake", "compact", "--dry-run", "--json"]);
    let parts: BTreeMap<String, (u64, u64)> = dry["tables"][0]["compacted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["partition"].as_str().unwrap().to_string(),
                (c["files_before"].as_u64().unwrap(), c["rows"].as_u64().unwrap()),
            )
        })
        .collect();
    let pa = "course_id=A/ingest_date=2025-01-03".to_string();
    let pb = "course_id=B/ingest_date=2025-01-03".to_string();
    assert_eq!(parts, BTreeMap::from([(pa.clone(), (3, 15)), (pb.clone(), (2, 5))]), "{dry}");
    assert_eq!(lake.table_snapshots(&t).await.unwrap().len(), 1, "a dry run commits nothing");

    // One partition, then the rest.
    let done = json_report(
        home.path(),
        &["lake", "compact", "--table", "silver.t", "--partition", &pa, "--target-file-size", "128MiB", "--json"],
    );
    let c = &done["tables"][0]["compacted"][0];
    assert_eq!(
        (c["partition"].as_str(), c["files_before"].as_u64(), c["files_after"].as_u64()),
        (Some(pa.as_str()), Some(3), Some(1))
    );
    let (code, text, err) = common::tmctl_on(home.path(), &["lake", "compact"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains(&pb) && text.contains("1 partition(s), 2 file(s) became 1"), "{text}");
    let snaps = lake.table_snapshots(&t).await.unwrap();
    assert_eq!(snaps.iter().map(|s| s.operation.as_str()).collect::<Vec<_>>(), ["overwrite", "replace", "replace"]);
    let now = data_files(&lake, &t, snaps[2].id).await;
    assert_eq!(now.len(), 3, "one file per partition: {now:?}");

    // Same rows, partitions and distinct rows for PyIceberg; the first snapshot still reads its
    // six files; DuckDB agrees.
    let after = common::pyiceberg_on(home.path(), "silver.t", Some(&first.to_string()));
    for key in ["row_count", "distinct_rows", "partitions"] {
        assert_eq!(after[key], before[key], "{key}: {after}");
    }
    assert_eq!(after["at_snapshot"]["row_count"], before["row_count"]);
    assert!(files_first.iter().all(|f| local(f).exists()), "the first snapshot's files stay until it expires");
    let metadata = lake.load_table(&t).await.unwrap().metadata_location().unwrap().to_string();
    let duck = duckdb_rows(&metadata, &[first, snaps[2].id]);
    assert!(duck.values().all(|n| Some(*n) == before["row_count"].as_i64()), "{duck:?}");

    // A rewrite of files that a newer commit already replaced fails and changes nothing.
    let table = lake.load_table(&t).await.unwrap();
    let mut stale = lake.writer_sized(table, RunKey::new("maintenance", "compact", day(9)), 1 << 27).unwrap();
    stale.write(batch("A", day(4), "a4", 3)).await.unwrap();
    let staged = stale.stage().await.unwrap();
    let old_day4: Vec<String> = now.iter().filter(|f| f.contains("ingest_date=2025-01-04")).cloned().collect();
    let mut w = lake.writer(&t, RunKey::new("silver", "transform", day(4))).await.unwrap();
    w.write(batch("A", day(4), "a5", 2)).await.unwrap();
    w.replace_partitions(vec![part("A", day(4))]).await.unwrap();
    let err = staged.rewrite(old_day4).await.unwrap_err().to_string();
    assert!(err.contains("no longer in the table"), "{err}");
    let last = lake.table_snapshots(&t).await.unwrap();
    assert_eq!(last.len(), 4, "the failed rewrite committed nothing");
    assert_eq!(last[3].operation, "overwrite");
}
