//! The Iceberg lake end to end: tables in the SQL catalog on the state DB (SQLite and
//! PostgreSQL), the replace-partitions and full-refresh commits, run-key short-circuit, commit
//! races (also with table files on S3: SeaweedFS's REST catalog, and the SQL catalog over S3),
//! DataFusion sessions with time travel, and PyIceberg reading what we wrote.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::SessionContext;
use iceberg::TableIdent;
use tmctl::config::{Overrides, Settings};
use tmctl::lake::{Lake, LakeError, PartitionValues, RunKey, SessionOptions, parse_ident};
use tmctl::store::Store;

use common::TestDb;

/// A lake on a fresh home directory and the given state DB.
struct TestLake {
    lake: Lake,
    home: tempfile::TempDir,
    url: String,
    /// SeaweedFS buckets of a REST lake (deleted when the test ends).
    _buckets: Option<common::seaweed::TestBuckets>,
}

async fn open_lake(db: &TestDb) -> TestLake {
    let home = tempfile::tempdir().expect("temp dir");
    let overrides = Overrides { home: Some(home.path().to_path_buf()), ..Default::default() };
    let mut settings = Settings::load_with(&overrides, &BTreeMap::new()).expect("settings");
    settings.database_url = db.url.clone();
    let store = Store::connect(&db.url, 4).await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
    let lake = Lake::open(Arc::new(settings), store).await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
    TestLake { lake, home, url: db.url.clone(), _buckets: None }
}

/// A lake on SeaweedFS (S3 buckets of its own and the Iceberg REST catalog) with `db` as the
/// state DB.
async fn open_rest_lake(db: &TestDb) -> TestLake {
    open_s3_lake(db, common::seaweed::TestBuckets::create("lake"), "rest").await
}

/// A lake on SeaweedFS's S3 with `catalog` (`rest`, or `sql` in the state DB).
async fn open_s3_lake(db: &TestDb, buckets: common::seaweed::TestBuckets, catalog: &str) -> TestLake {
    let home = tempfile::tempdir().expect("temp dir");
    let mut env: BTreeMap<String, String> = buckets.env().into_iter().collect();
    env.insert("TM_ICEBERG_CATALOG_TYPE".into(), catalog.into());
    let overrides = Overrides { home: Some(home.path().to_path_buf()), ..Default::default() };
    let mut settings = Settings::load_with(&overrides, &env).expect("settings");
    settings.database_url = db.url.clone();
    let store = Store::connect(&db.url, 4).await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
    let lake = Lake::open(Arc::new(settings), store).await.unwrap_or_else(|e| panic!("{catalog} catalog on S3: {e}"));
    TestLake { lake, home, url: db.url.clone(), _buckets: Some(buckets) }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("course_id", DataType::Utf8, false),
        Field::new("ingest_date", DataType::Date32, false),
        Field::new("round_id", DataType::Utf8, false),
        Field::new("location_index", DataType::Int32, false),
        Field::new("pace", DataType::Float64, true),
        Field::new("fix_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
    ]))
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
}

fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// Rows `(course, date, round, index)`; pace and time derived from the index.
fn batch(rows: &[(&str, NaiveDate, &str, i32)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(Date32Array::from(rows.iter().map(|r| days(r.1)).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            Arc::new(Int32Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(rows.iter().map(|r| Some(r.3 as f64 * 1.5)).collect::<Vec<_>>())),
            Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter().map(|r| Some(1_735_900_000_000_000 + r.3 as i64 * 1_250)).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

fn part(course: &str, date: NaiveDate) -> PartitionValues {
    PartitionValues::new().with("course_id", course).with("ingest_date", date)
}

fn key(task: &str, date: NaiveDate) -> RunKey {
    RunKey::new("silver", task, date)
}

async fn count(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.unwrap();
    let col = batches[0].column(0);
    col.as_any().downcast_ref::<Int64Array>().map(|a| a.value(0)).unwrap_or_else(|| panic!("{sql}: not a count"))
}

async fn sql_count(lake: &Lake, opts: &SessionOptions, sql: &str) -> i64 {
    let ctx = lake.session(opts).await.unwrap();
    count(&ctx, sql).await
}

/// Creates `silver.t` and commits day-3 rows for courses A and B plus day-4 rows of A.
async fn seed(lake: &Lake, t: &TableIdent) -> i64 {
    lake.ensure_table(t, &schema(), &["course_id", "ingest_date"]).await.unwrap();
    let mut w = lake.writer(t, key("transform", day(3))).await.unwrap();
    assert_eq!(w.already_committed(), None);
    // One batch across three partitions: the writer splits it.
    w.write(batch(&[
        ("A", day(3), "r1", 0),
        ("B", day(3), "r2", 0),
        ("A", day(3), "r1", 1),
        ("A", day(4), "r9", 0),
        ("B", day(3), "r2", 1),
        ("A", day(3), "r1", 2),
    ]))
    .await
    .unwrap();
    let out = w.replace_partitions(vec![part("A", day(3)), part("B", day(3)), part("A", day(4))]).await.unwrap();
    assert_eq!((out.added_files, out.deleted_files, out.added_records, out.deleted_records), (3, 0, 6, 0));
    assert!(!out.already_committed);
    assert_eq!(out.previous_snapshot_id, None);
    out.snapshot_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_partitions_replaces_exactly_those_partitions() {
    for db in common::both().await {
        let be = db.backend;
        let TestLake { lake, home, .. } = open_lake(&db).await;
        let t = parse_ident("silver.t").unwrap();
        let started = Instant::now();
        let first = seed(&lake, &t).await;
        eprintln!("{be}: create + first commit {:?}", started.elapsed());

        // Where things are: the source bucket's warehouse, Hive-style partition directories.
        let table = lake.ensure_table(&t, &schema(), &["course_id", "ingest_date"]).await.unwrap();
        let loc = table.metadata().location().to_string();
        let expected_dir = home.path().join("buckets/tm-lakehouse-source/warehouse/silver/t");
        assert_eq!(loc, format!("file://{}", expected_dir.display()), "{be}");
        assert!(expected_dir.join("data/course_id=A/ingest_date=2025-01-03").is_dir(), "{be}");
        assert_eq!(parquet_codecs(&expected_dir), ["ZSTD(ZstdLevel(1))"], "{be}: silver is written with zstd");
        assert_eq!(table.metadata().format_version(), iceberg::spec::FormatVersion::V2);

        let now = SessionOptions::current();
        assert_eq!(sql_count(&lake, &now, "SELECT count(*) FROM silver.t").await, 6, "{be}");

        // Re-run course A, day 3 with other rows: one overwrite snapshot.
        let started = Instant::now();
        let mut w = lake.writer(&t, key("transform", day(3)).with_scope("course_id=A")).await.unwrap();
        w.write(batch(&[("A", day(3), "r5", 0), ("A", day(3), "r5", 1)])).await.unwrap();
        w.write(batch(&[("A", day(3), "r6", 0), ("A", day(3), "r6", 1)])).await.unwrap();
        assert_eq!(w.rows_written(), 4);
        let out = w.replace_partitions(vec![part("A", day(3))]).await.unwrap();
        eprintln!("{be}: replace one partition {:?}", started.elapsed());
        assert_eq!(out.previous_snapshot_id, Some(first), "{be}");
        assert_eq!((out.added_files, out.deleted_files, out.added_records, out.deleted_records), (1, 1, 4, 3), "{be}");
        let second = out.snapshot_id;

        let ctx = lake.session(&now).await.unwrap();
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t").await, 7, "{be}");
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM silver.t WHERE course_id = 'A' AND ingest_date = DATE '2025-01-03'")
                .await,
            4
        );
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE round_id = 'r1'").await, 0, "{be}: old rows gone");
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE course_id = 'B'").await, 2, "{be}: B untouched");
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE ingest_date = DATE '2025-01-04'").await, 1);
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM (SELECT DISTINCT round_id, location_index FROM silver.t)").await,
            7,
            "{be}: no duplicates"
        );
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'silver' AND table_name NOT LIKE '%$%'").await,
            1,
            "{be}"
        );
        // iceberg-datafusion's metadata tables ignore projections: only `SELECT *` works on them.
        let snapshots = ctx.sql("SELECT * FROM silver.\"t$snapshots\"").await.unwrap().collect().await.unwrap();
        assert_eq!(snapshots.iter().map(|b| b.num_rows()).sum::<usize>(), 2, "{be}: metadata tables");

        // The snapshot: operation overwrite, run key and counts in the summary.
        let snaps = lake.table_snapshots(&t).await.unwrap();
        assert_eq!(snaps.len(), 2, "{be}");
        let s = &snaps[1];
        assert_eq!((s.id, s.parent, s.operation.as_str(), s.current), (second, Some(first), "overwrite", true));
        let summary = &s.summary;
        assert_eq!(summary["tm.run-key"], "silver/transform/2025-01-03/course_id=A");
        assert_eq!(summary["tm.dag"], "silver");
        assert_eq!(summary["tm.task"], "transform");
        assert_eq!(summary["tm.logical-date"], "2025-01-03");
        assert_eq!(summary["added-data-files"], "1");
        assert_eq!(summary["deleted-data-files"], "1");
        assert_eq!(summary["added-records"], "4");
        assert_eq!(summary["deleted-records"], "3");
        assert_eq!(summary["total-records"], "7");
        assert_eq!(summary["total-data-files"], "3");
        assert_eq!(snaps[0].summary["total-records"], "6");

        // Time travel: by snapshot id, and by time.
        assert_eq!(sql_count(&lake, &SessionOptions::at_snapshot(first), "SELECT count(*) FROM silver.t").await, 6);
        assert_eq!(
            sql_count(
                &lake,
                &SessionOptions::at_snapshot(first),
                "SELECT count(*) FROM silver.t WHERE round_id = 'r1'"
            )
            .await,
            3,
            "{be}"
        );
        let between = snaps[0].timestamp;
        assert_eq!(sql_count(&lake, &SessionOptions::as_of(between), "SELECT count(*) FROM silver.t").await, 6);
        let before = snaps[0].timestamp - chrono::Duration::days(1);
        let ctx = lake.session(&SessionOptions::as_of(before)).await.unwrap();
        assert!(ctx.sql("SELECT count(*) FROM silver.t").await.is_err(), "{be}: table did not exist yet");
        match lake.session(&SessionOptions::at_snapshot(42)).await {
            Err(e) => assert_eq!(e.to_string(), "no Iceberg table has snapshot 42"),
            Ok(_) => panic!("{be}: a session at an unknown snapshot"),
        }

        // Emptying a partition: no rows, one partition listed.
        let w = lake.writer(&t, key("transform", day(3)).with_scope("course_id=B")).await.unwrap();
        let out = w.replace_partitions(vec![part("B", day(3))]).await.unwrap();
        assert_eq!((out.added_files, out.deleted_files, out.deleted_records), (0, 1, 2), "{be}");
        assert_eq!(sql_count(&lake, &now, "SELECT count(*) FROM silver.t").await, 5, "{be}");
        assert_eq!(sql_count(&lake, &SessionOptions::at_snapshot(second), "SELECT count(*) FROM silver.t").await, 7);

        // Later appends by another writer (iceberg-datafusion's own INSERT; tmctl's sessions are
        // read-only) still work on top of our snapshots.
        let ctx = SessionContext::new();
        let provider =
            iceberg_datafusion::IcebergCatalogProvider::try_new(lake.catalog_for("silver").unwrap()).await.unwrap();
        ctx.register_catalog("datafusion", Arc::new(provider));
        ctx.sql(
            "INSERT INTO silver.t VALUES ('C', DATE '2025-01-03', 'r7', 0, 1.0, \
             TIMESTAMP '2025-01-03T10:00:00.123456Z')",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        assert_eq!(sql_count(&lake, &now, "SELECT count(*) FROM silver.t").await, 6, "{be}");
        let w = lake.writer(&t, key("transform", day(3)).with_scope("course_id=C")).await.unwrap();
        let out = w.replace_partitions(vec![part("C", day(3))]).await.unwrap();
        assert_eq!((out.deleted_files, out.deleted_records), (1, 1), "{be}: appended file replaced too");
        assert_eq!(sql_count(&lake, &now, "SELECT count(*) FROM silver.t").await, 5, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_attempt_sees_its_commit_and_skips() {
    for db in common::both().await {
        let be = db.backend;
        let TestLake { lake, .. } = open_lake(&db).await;
        let t = parse_ident("silver.t").unwrap();
        let first = seed(&lake, &t).await;
        assert_eq!(lake.find_commit(&t, "silver/transform/2025-01-03").await.unwrap(), Some(first), "{be}");
        assert_eq!(lake.find_commit(&t, "silver/transform/2025-01-09").await.unwrap(), None);

        // Same key again: nothing written, nothing committed, the earlier commit reported.
        let mut w = lake.writer(&t, key("transform", day(3))).await.unwrap();
        assert_eq!(w.already_committed(), Some(first), "{be}");
        w.write(batch(&[("A", day(3), "zz", 0)])).await.unwrap();
        let out = w.replace_partitions(vec![part("A", day(3))]).await.unwrap();
        assert!(out.already_committed, "{be}");
        assert_eq!((out.snapshot_id, out.added_records, out.added_files), (first, 6, 3), "{be}");
        assert_eq!(lake.table_snapshots(&t).await.unwrap().len(), 1, "{be}");
        assert_eq!(sql_count(&lake, &SessionOptions::current(), "SELECT count(*) FROM silver.t").await, 6);

        // `force` re-runs deliberately; a different fingerprint is different work.
        let mut w = lake.writer(&t, key("transform", day(3))).await.unwrap().force();
        w.write(batch(&[("A", day(3), "r1", 0)])).await.unwrap();
        let forced = w.replace_partitions(vec![part("A", day(3))]).await.unwrap();
        assert!(!forced.already_committed);
        assert_eq!(forced.deleted_records, 3, "{be}");
        let fp = key("gold_build", day(3)).with_fingerprint("sha-1");
        let mut w = lake.writer(&t, fp.clone()).await.unwrap();
        w.write(batch(&[("B", day(3), "r2", 0)])).await.unwrap();
        let a = w.replace_partitions(vec![]).await.unwrap();
        assert!(lake.writer(&t, fp.clone()).await.unwrap().already_committed() == Some(a.snapshot_id));
        let other = lake.writer(&t, fp.with_fingerprint("sha-2")).await.unwrap();
        assert_eq!(other.already_committed(), None, "{be}: new inputs under the same key");
        other.abort().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_both_land_by_retrying() {
    for db in common::both().await {
        let TestLake { lake, .. } = open_lake(&db).await;
        racing_commits(&lake, db.backend).await;
    }
}

/// The same races through SeaweedFS's Iceberg REST catalog: the commit endpoint's requirements
/// (same table, `main` still at the parent) make the loser retry, as the SQL catalog's
/// compare-and-swap does; table files go to S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_both_land_by_retrying_on_the_rest_catalog() {
    let db = common::postgres_db().await;
    let TestLake { lake, _buckets, .. } = open_rest_lake(&db).await;
    racing_commits(&lake, "rest").await;
    let table = lake.load_table(&parse_ident("silver.t").unwrap()).await.unwrap();
    assert!(table.metadata().location().starts_with("s3://"), "{}", table.metadata().location());
}

/// And with table files on S3 but the SQL catalog in PostgreSQL (the compare-and-swap commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_both_land_by_retrying_on_s3_with_the_sql_catalog() {
    let db = common::postgres_db().await;
    let buckets = common::seaweed::TestBuckets::create_plain("sqls3");
    let source = buckets.source.clone();
    let TestLake { lake, _buckets, .. } = open_s3_lake(&db, buckets, "sql").await;
    racing_commits(&lake, "sql on s3").await;
    let table = lake.load_table(&parse_ident("silver.t").unwrap()).await.unwrap();
    assert!(
        table.metadata().location().starts_with(&format!("s3://{source}/silver/")),
        "{}",
        table.metadata().location()
    );
}

async fn racing_commits(lake: &Lake, be: &str) {
    {
        let t = parse_ident("silver.t").unwrap();
        seed(lake, &t).await;

        // Both writers read the same table state, so one of them must lose the first swap.
        let mut w1 = lake.writer(&t, key("transform", day(5)).with_scope("course_id=A")).await.unwrap();
        let mut w2 = lake.writer(&t, key("transform", day(5)).with_scope("course_id=B")).await.unwrap();
        w1.write(batch(&[("A", day(5), "a5", 0), ("A", day(5), "a5", 1)])).await.unwrap();
        w2.write(batch(&[("B", day(5), "b5", 0), ("B", day(5), "b5", 1), ("B", day(5), "b5", 2)])).await.unwrap();
        let started = Instant::now();
        let (r1, r2) = tokio::join!(
            w1.replace_partitions(vec![part("A", day(5))]),
            w2.replace_partitions(vec![part("B", day(5))])
        );
        eprintln!("{be}: two racing commits {:?}", started.elapsed());
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        assert_eq!(r1.attempts.max(r2.attempts), 2, "{be}: {r1:?} {r2:?}");
        assert_eq!(r1.attempts.min(r2.attempts), 1, "{be}");
        let ctx = lake.session(&SessionOptions::current()).await.unwrap();
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t").await, 6 + 5, "{be}");
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE ingest_date = DATE '2025-01-05'").await, 5);
        let snaps = lake.table_snapshots(&t).await.unwrap();
        assert_eq!(snaps.len(), 3, "{be}");
        assert_eq!(snaps[2].parent, Some(snaps[1].id), "{be}: linear history");

        // Many writers, same and different partitions, all at once: every commit lands, and each
        // partition holds exactly one writer's rows.
        let mut writers = Vec::new();
        for i in 0..6 {
            let course = ["A", "B", "C"][i % 3];
            let mut w = lake
                .writer(&t, key("transform", day(6)).with_scope(format!("course_id={course}/try={i}")))
                .await
                .unwrap();
            let round = format!("w{i}");
            w.write(batch(&[(course, day(6), round.as_str(), 0), (course, day(6), round.as_str(), 1)])).await.unwrap();
            writers.push((course, w));
        }
        let results = futures::future::join_all(
            writers.into_iter().map(|(course, w)| w.replace_partitions(vec![part(course, day(6))])),
        )
        .await;
        for r in &results {
            assert!(r.is_ok(), "{be}: {r:?}");
        }
        let ctx = lake.session(&SessionOptions::current()).await.unwrap();
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE ingest_date = DATE '2025-01-06'").await, 6, "{be}");
        assert_eq!(
            count(&ctx, "SELECT count(DISTINCT round_id) FROM silver.t WHERE ingest_date = DATE '2025-01-06'").await,
            3,
            "{be}: one writer's rows per partition"
        );
        assert_eq!(lake.table_snapshots(&t).await.unwrap().len(), 3 + 6, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_all_refreshes_an_unpartitioned_gold_table() {
    for db in common::both().await {
        let be = db.backend;
        let TestLake { lake, home, .. } = open_lake(&db).await;
        let g = parse_ident("gold.summary").unwrap();
        let table = lake.ensure_table(&g, &schema(), &[]).await.unwrap();
        let dir = home.path().join("buckets/tm-lakehouse-serve/warehouse/gold/summary");
        assert_eq!(table.metadata().location(), format!("file://{}", dir.display()), "{be}");

        let gold = |d| RunKey::new("gold", "build", d);
        let mut w = lake.writer(&g, gold(day(3))).await.unwrap();
        w.write(batch(&[("A", day(3), "r1", 0), ("A", day(3), "r1", 1), ("B", day(3), "r2", 0)])).await.unwrap();
        let first = w.replace_all().await.unwrap();
        assert_eq!((first.added_files, first.deleted_files, first.added_records), (1, 0, 3), "{be}");
        // Gold is written with snappy (many small files read on every run), as its table says.
        let props = lake.load_table(&g).await.unwrap().metadata().properties().clone();
        assert_eq!(props.get("write.parquet.compression-codec").map(String::as_str), Some("snappy"), "{be}");
        assert_eq!(parquet_codecs(&dir), ["SNAPPY"], "{be}");

        let started = Instant::now();
        let mut w = lake.writer(&g, gold(day(4))).await.unwrap();
        w.write(batch(&[("A", day(4), "r3", 0), ("C", day(4), "r4", 0)])).await.unwrap();
        let second = w.replace_all().await.unwrap();
        eprintln!("{be}: full refresh {:?}", started.elapsed());
        assert_eq!((second.added_records, second.deleted_files, second.deleted_records), (2, 1, 3), "{be}");
        assert_eq!(sql_count(&lake, &SessionOptions::current(), "SELECT count(*) FROM gold.summary").await, 2);
        assert_eq!(
            sql_count(&lake, &SessionOptions::at_snapshot(first.snapshot_id), "SELECT count(*) FROM gold.summary")
                .await,
            3,
            "{be}"
        );

        // Refresh to nothing: an empty table, still readable.
        let w = lake.writer(&g, gold(day(5))).await.unwrap();
        let third = w.replace_all().await.unwrap();
        assert_eq!((third.added_files, third.deleted_records), (0, 2), "{be}");
        assert_eq!(sql_count(&lake, &SessionOptions::current(), "SELECT count(*) FROM gold.summary").await, 0);

        // Partition replacement makes no sense here and says so.
        let w = lake.writer(&g, gold(day(6))).await.unwrap();
        let e = w.replace_partitions(vec![part("A", day(3))]).await.unwrap_err();
        assert_eq!(e.to_string(), "Iceberg table gold.summary: is not partitioned; use replace_all");
        assert_eq!(
            lake.list_tables("gold").await.unwrap().iter().map(|t| t.name().to_string()).collect::<Vec<_>>(),
            vec!["summary"]
        );
    }
}

/// A full refresh that rebuilt a table beside the old one drops the old one and renames the new
/// one while other models build their sessions, which list every table and then load each: a
/// table gone between the two is left out of the session instead of failing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_after_it_was_listed_is_left_out_of_a_session() {
    for db in common::both().await {
        let be = db.backend;
        let TestLake { lake, .. } = open_lake(&db).await;
        let kept = parse_ident("gold.kept").unwrap();
        let dropped = parse_ident("gold.dropped").unwrap();
        for t in [&kept, &dropped] {
            lake.ensure_table(t, &schema(), &[]).await.unwrap();
            let mut w = lake.writer(t, key("build", day(3))).await.unwrap();
            w.write(batch(&[("A", day(3), "r1", 0)])).await.unwrap();
            w.replace_all().await.unwrap();
        }
        let listed = lake.list_tables("gold").await.unwrap();
        assert_eq!(listed.len(), 2, "{be}");
        lake.drop_table(&dropped).await.unwrap();
        let loaded = lake.load_listed(listed).await.unwrap_or_else(|e| panic!("{be}: {e}"));
        let names: Vec<&str> = loaded.iter().map(|t| t.identifier().name()).collect();
        assert_eq!(names, ["kept"], "{be}");
        let ctx = lake.session(&SessionOptions::current()).await.unwrap();
        assert_eq!(count(&ctx, "SELECT count(*) FROM gold.kept").await, 1, "{be}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_table_serves_loads_until_another_writer_moves_the_catalog_pointer() {
    for db in common::both().await {
        let be = db.backend;
        // `_home` keeps the lake's directory until the end.
        let TestLake { lake, home: _home, .. } = open_lake(&db).await;
        let t = parse_ident("silver.t").unwrap();
        let first = seed(&lake, &t).await;
        let loaded = lake.load_table(&t).await.unwrap();
        let parts = lake.partition_rows(&t).await.unwrap();
        assert_eq!(parts.len(), 3, "{be}: {parts:?}");

        // With the metadata file out of the way, loads still work: the table loaded before is
        // served while the catalog points at the same file (a fresh load would fail).
        let file = loaded.metadata_location().unwrap().trim_start_matches("file://").to_string();
        let aside = format!("{file}.aside");
        std::fs::rename(&file, &aside).unwrap();
        let again = lake.load_table(&t).await.unwrap_or_else(|e| panic!("{be}: not served from memory: {e}"));
        assert_eq!(again.metadata().current_snapshot_id(), Some(first), "{be}");
        assert_eq!(lake.partition_rows(&t).await.unwrap(), parts, "{be}: partition rows kept with the table");
        assert_eq!(sql_count(&lake, &SessionOptions::current(), "SELECT count(*) FROM silver.t").await, 6, "{be}");
        std::fs::rename(&aside, &file).unwrap();

        // Another process (a lake of its own on the same catalog) commits: the pointer moves, and
        // the next load, partition count and scan here see its snapshot.
        let store = Store::connect(&db.url, 4).await.unwrap();
        let other = Lake::open(lake.settings().clone(), store).await.unwrap();
        let mut w = other.writer(&t, key("transform", day(5))).await.unwrap();
        w.write(batch(&[("C", day(5), "r7", 0), ("C", day(5), "r7", 1)])).await.unwrap();
        let second = w.replace_partitions(vec![part("C", day(5))]).await.unwrap().snapshot_id;
        assert_eq!(lake.load_table(&t).await.unwrap().metadata().current_snapshot_id(), Some(second), "{be}");
        let parts = lake.partition_rows(&t).await.unwrap();
        assert!(parts.contains(&(vec!["C".to_string(), "2025-01-05".to_string()], 2)), "{be}: {parts:?}");
        assert_eq!(sql_count(&lake, &SessionOptions::current(), "SELECT count(*) FROM silver.t").await, 8, "{be}");

        // Dropped elsewhere: gone here too.
        other.drop_table(&t).await.unwrap();
        assert!(matches!(lake.load_table(&t).await, Err(LakeError::NoSuchTable { .. })), "{be}");
    }
}

/// `(round_id, location_index)` of every row of `table`, sorted.
async fn round_rows(ctx: &SessionContext, table: tmctl::lake::scan::LakeTable) -> Vec<(String, i32)> {
    let df = ctx.read_table(Arc::new(table)).unwrap().select_columns(&["round_id", "location_index"]).unwrap();
    let mut rows = Vec::new();
    for b in df.collect().await.unwrap() {
        let ids = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let idx = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        rows.extend((0..ids.len()).map(|i| (ids.value(i).to_string(), idx.value(i))));
    }
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_diff_gives_the_rows_every_commit_in_between_replaced() {
    for db in common::both().await {
        let be = db.backend;
        let TestLake { lake, home: _home, .. } = open_lake(&db).await;
        let t = parse_ident("silver.t").unwrap();
        let first = seed(&lake, &t).await;
        // Replace course A, day 3 (r1 → r5), recording a property in the summary.
        let mut w =
            lake.writer(&t, key("transform", day(5)).with_property("tm.changes-snapshot-id", "42")).await.unwrap();
        w.write(batch(&[("A", day(3), "r5", 0), ("A", day(3), "r5", 1)])).await.unwrap();
        let second = w.replace_partitions(vec![part("A", day(3))]).await.unwrap().snapshot_id;
        let table = lake.load_table(&t).await.unwrap();
        let summary = &table.metadata().current_snapshot().unwrap().summary().additional_properties;
        assert_eq!(summary.get("tm.changes-snapshot-id").map(String::as_str), Some("42"), "{be}: {summary:?}");
        // Then course B, day 3 (r2 → r8).
        let mut w = lake.writer(&t, key("transform", day(6))).await.unwrap();
        w.write(batch(&[("B", day(3), "r8", 0)])).await.unwrap();
        let third = w.replace_partitions(vec![part("B", day(3))]).await.unwrap().snapshot_id;

        let ctx = lake.session(&SessionOptions::current()).await.unwrap();
        let provider = ctx.table_provider("silver.t").await.unwrap();
        let current = provider.as_any().downcast_ref::<tmctl::lake::scan::LakeTable>().expect("a lake table");
        assert_eq!(lake.load_table(&t).await.unwrap().metadata().current_snapshot_id(), Some(third), "{be}");
        let rows = |v: &[(&str, i32)]| v.iter().map(|(r, i)| (r.to_string(), *i)).collect::<Vec<_>>();

        // One commit: the old and new rows of the partition it replaced, nothing of the others.
        let diff = current.diff(first, second).await.unwrap().expect("both snapshots are known");
        assert_eq!(diff.files(), 2, "{be}");
        assert_eq!(round_rows(&ctx, diff.removed).await, rows(&[("r1", 0), ("r1", 1), ("r1", 2)]), "{be}");
        assert_eq!(round_rows(&ctx, diff.added).await, rows(&[("r5", 0), ("r5", 1)]), "{be}");
        // Two commits: the old and new rows of both partitions.
        let diff = current.diff(first, third).await.unwrap().unwrap();
        assert_eq!(
            round_rows(&ctx, diff.removed).await,
            rows(&[("r1", 0), ("r1", 1), ("r1", 2), ("r2", 0), ("r2", 1)]),
            "{be}"
        );
        assert_eq!(round_rows(&ctx, diff.added).await, rows(&[("r5", 0), ("r5", 1), ("r8", 0)]), "{be}");
        // No commit in between: nothing; a snapshot the table does not have: no answer.
        let same = current.diff(third, third).await.unwrap().unwrap();
        assert_eq!(same.files(), 0, "{be}");
        assert!(current.diff(first ^ 0x5555, third).await.unwrap().is_none(), "{be}");
    }
}

/// The data manifests the current snapshot of `t` lists.
async fn data_manifests(lake: &Lake, t: &TableIdent) -> usize {
    let table = lake.load_table(t).await.unwrap();
    let snapshot = table.metadata().current_snapshot().unwrap();
    let list = table.manifest_list_reader(snapshot).load().await.unwrap();
    list.entries().iter().filter(|m| m.content == iceberg::spec::ManifestContentType::Data).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_manifests_are_merged_and_every_reader_sees_the_same_rows() {
    let db = common::sqlite_db();
    let TestLake { lake, url, home: _home, .. } = open_lake(&db).await;
    let t = parse_ident("silver.t").unwrap();
    let first = seed(&lake, &t).await;
    // Twelve daily commits, each adding a partition of course C (one more manifest each); every
    // third one also replaces A's day 3, rewriting the manifest that holds it.
    let mut counts = Vec::new();
    for d in 5..17u32 {
        let mut rows = vec![("C", day(d), "rc", d as i32)];
        let mut parts = vec![part("C", day(d))];
        if d % 3 == 0 {
            rows.push(("A", day(3), "ra", d as i32));
            parts.push(part("A", day(3)));
        }
        let mut w = lake.writer(&t, key("transform", day(d))).await.unwrap();
        w.write(batch(&rows)).await.unwrap();
        w.replace_partitions(parts).await.unwrap();
        counts.push(data_manifests(&lake, &t).await);
    }
    // Without merging the list would reach 13; once eight small manifests of earlier commits
    // would be carried, they become one.
    assert!(counts.iter().all(|n| *n <= 9), "{counts:?}");
    assert!(counts.windows(2).any(|w| w[1] < w[0]), "a merge shortened the list: {counts:?}");

    // The rows: B's and A's day 4 from the seed, C's twelve days, A's day 3 from day 15.
    let ctx = lake.session(&SessionOptions::current()).await.unwrap();
    assert_eq!(count(&ctx, "SELECT COUNT(*) FROM silver.t").await, 16);
    assert_eq!(count(&ctx, "SELECT COUNT(*) FROM silver.t WHERE course_id = 'C'").await, 12);
    assert_eq!(count(&ctx, "SELECT COUNT(*) FROM silver.t WHERE round_id = 'ra' AND location_index = 15").await, 1);
    // The diff since the seed: A's day-3 rows replaced, C's and the last A row added.
    let provider = ctx.table_provider("silver.t").await.unwrap();
    let current = provider.as_any().downcast_ref::<tmctl::lake::scan::LakeTable>().expect("a lake table");
    let last = lake.load_table(&t).await.unwrap().metadata().current_snapshot_id().unwrap();
    let diff = current.diff(first, last).await.unwrap().unwrap();
    assert_eq!(
        round_rows(&ctx, diff.removed).await,
        [("r1".to_string(), 0), ("r1".to_string(), 1), ("r1".to_string(), 2)]
    );
    let mut added: Vec<(String, i32)> = (5..17).map(|d| ("rc".to_string(), d)).collect();
    added.insert(0, ("ra".to_string(), 15));
    assert_eq!(round_rows(&ctx, diff.added).await, added);
    // PyIceberg reads the merged manifests, and the seed's snapshot, alike.
    let warehouse = tmctl::lake::warehouse_url(lake.settings(), "silver");
    let seen = pyiceberg_read(&url, &warehouse, "silver.t", Some(first));
    assert_eq!((seen["row_count"].as_i64(), seen["distinct_rows"].as_i64()), (Some(16), Some(16)), "{seen}");
    assert_eq!(seen["partitions"]["A|2025-01-03"], 1, "{seen}");
    assert_eq!(seen["partitions"]["C|2025-01-16"], 1, "{seen}");
    assert_eq!(seen["at_snapshot"]["row_count"], 6, "{seen}");
}

/// The codecs of every column chunk of every data file under `dir`, distinct and sorted.
fn parquet_codecs(dir: &std::path::Path) -> Vec<String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let mut codecs = std::collections::BTreeSet::new();
    for f in parquet_files(dir) {
        let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
        for rg in reader.metadata().row_groups() {
            codecs.extend(rg.columns().iter().map(|c| format!("{:?}", c.compression())));
        }
    }
    codecs.into_iter().collect()
}

/// Every data file under `dir`.
fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_writer_commits_the_files_of_every_roll_and_an_abort_deletes_them() {
    for db in common::both().await {
        let be = db.backend;
        let TestLake { lake, home, .. } = open_lake(&db).await;
        let g = parse_ident("gold.rolled").unwrap();
        lake.ensure_table(&g, &schema(), &["course_id", "ingest_date"]).await.unwrap();
        let data = home.path().join("buckets/tm-lakehouse-serve/warehouse/gold/rolled/data");

        // Two partitions, rolled between them and again after the second: one file each, both
        // committed; a roll with nothing open adds no file.
        let mut w = lake.writer(&g, RunKey::new("gold", "rolled", day(3))).await.unwrap();
        w.write(batch(&[("A", day(3), "r1", 0), ("A", day(3), "r1", 1)])).await.unwrap();
        w.roll().await.unwrap();
        assert_eq!(parquet_files(&data).len(), 1, "{be}: the first roll finished A's file");
        w.write(batch(&[("B", day(3), "r2", 0)])).await.unwrap();
        w.roll().await.unwrap();
        w.roll().await.unwrap();
        let out = w.replace_all().await.unwrap();
        assert_eq!((out.added_files, out.added_records), (2, 3), "{be}");
        assert_eq!(sql_count(&lake, &SessionOptions::current(), "SELECT count(*) FROM gold.rolled").await, 3, "{be}");

        // An abort deletes what every roll finished, not only what was open.
        let mut w = lake.writer(&g, RunKey::new("gold", "rolled", day(4))).await.unwrap();
        w.write(batch(&[("A", day(4), "r3", 0)])).await.unwrap();
        w.roll().await.unwrap();
        w.write(batch(&[("C", day(4), "r4", 0)])).await.unwrap();
        w.abort().await;
        assert_eq!(parquet_files(&data).len(), 2, "{be}: only the committed files stay");
        assert_eq!(sql_count(&lake, &SessionOptions::current(), "SELECT count(*) FROM gold.rolled").await, 3, "{be}");
    }
}

#[tokio::test]
async fn bad_input_gets_errors_that_name_the_table() {
    let db = common::sqlite_db();
    let TestLake { lake, .. } = open_lake(&db).await;
    let t = parse_ident("silver.t").unwrap();
    let e = lake.ensure_table(&t, &schema(), &["nope"]).await.unwrap_err();
    assert_eq!(e.to_string(), "Iceberg table silver.t: partition column `nope` is not a column of the schema");
    let e = lake.load_table(&parse_ident("silver.missing").unwrap()).await.unwrap_err();
    assert!(matches!(e, LakeError::NoSuchTable { .. }));
    assert_eq!(e.to_string(), "Iceberg table silver.missing does not exist");

    lake.ensure_table(&t, &schema(), &["course_id", "ingest_date"]).await.unwrap();
    let e = lake.ensure_table(&t, &schema(), &["course_id"]).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Iceberg table silver.t: exists partitioned by [course_id, ingest_date], not by identity [course_id]"
    );

    // Batches are aligned by name and cast; what cannot be is an error naming the column.
    let mut w = lake.writer(&t, key("transform", day(3))).await.unwrap();
    let extra = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("colour", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["red"]))],
    )
    .unwrap();
    let e = w.write(extra).await.unwrap_err();
    assert_eq!(e.to_string(), "Iceberg table silver.t: the table has no column(s) colour");
    let narrow = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("course_id", DataType::LargeUtf8, false),
            Field::new("ingest_date", DataType::Utf8, false),
            Field::new("round_id", DataType::Utf8, false),
            Field::new("location_index", DataType::Int64, false),
        ])),
        vec![
            Arc::new(datafusion::arrow::array::LargeStringArray::from(vec!["A"])),
            Arc::new(StringArray::from(vec!["2025-01-03"])),
            Arc::new(StringArray::from(vec!["r1"])),
            Arc::new(Int64Array::from(vec![7])),
        ],
    )
    .unwrap();
    w.write(narrow).await.unwrap();
    let e = w.replace_partitions(vec![PartitionValues::new().with("course", "A")]).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Iceberg table silver.t: `course` is not a partition column (those are: course_id, ingest_date)"
    );
    let mut w = lake.writer(&t, key("transform", day(3))).await.unwrap();
    let bad_date = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("course_id", DataType::Utf8, false),
            Field::new("ingest_date", DataType::Utf8, false),
            Field::new("round_id", DataType::Utf8, false),
            Field::new("location_index", DataType::Int32, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["A"])),
            Arc::new(StringArray::from(vec!["not a date"])),
            Arc::new(StringArray::from(vec!["r1"])),
            Arc::new(Int32Array::from(vec![1])),
        ],
    )
    .unwrap();
    let e = w.write(bad_date).await.unwrap_err().to_string();
    assert!(e.starts_with("Iceberg table silver.t: column `ingest_date` (Utf8) cannot become Date32"), "{e}");
    let mut w = lake.writer(&t, key("transform", day(3))).await.unwrap();
    w.write(batch(&[("A", day(3), "r1", 0)])).await.unwrap();
    let out = w
        .replace_partitions(vec![PartitionValues::new().with("course_id", "A").with("ingest_date", "2025-01-03")])
        .await;
    assert_eq!(out.unwrap().added_records, 1);
}

/// What `.ci/run` installs for the PyIceberg interop tests.
const PIP_PYICEBERG: &str = "pip install \"pyiceberg[sql-sqlite,pyarrow]\" psycopg2-binary";

/// Runs tests/pyiceberg_read.py; a missing python3 or PyIceberg fails the test.
fn pyiceberg_read(url: &str, warehouse: &str, table: &str, snapshot: Option<i64>) -> serde_json::Value {
    common::require_python(&["pyiceberg", "pyarrow", "sqlalchemy"], PIP_PYICEBERG);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyiceberg_read.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&script).arg(url).arg(warehouse).arg(table);
    if let Some(s) = snapshot {
        cmd.arg(s.to_string());
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("python3 is needed for the PyIceberg interop test (pip install \"pyiceberg[sql-sqlite,pyarrow]\"): {e}")
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "PyIceberg could not read {table} (exit {:?}); is it installed? pip install \"pyiceberg[sql-sqlite,pyarrow]\"\n{stderr}",
        out.status.code()
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("pyiceberg_read.py printed no JSON: {e}\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// Writes two snapshots of `silver.t` and one of `gold.summary` on `db`, then checks what
/// PyIceberg's SqlCatalog on the same database reads.
async fn check_pyiceberg_reads(db: &TestDb) {
    let TestLake { lake, url, .. } = open_lake(db).await;
    let t = parse_ident("silver.t").unwrap();
    let first = seed(&lake, &t).await;
    let mut w = lake.writer(&t, key("transform", day(3)).with_scope("course_id=A")).await.unwrap();
    w.write(batch(&[("A", day(3), "r5", 0), ("A", day(3), "r5", 1), ("A", day(3), "r6", 0), ("A", day(3), "r6", 1)]))
        .await
        .unwrap();
    let second = w.replace_partitions(vec![part("A", day(3))]).await.unwrap().snapshot_id;
    let g = parse_ident("gold.summary").unwrap();
    lake.ensure_table(&g, &schema(), &[]).await.unwrap();
    let mut w = lake.writer(&g, RunKey::new("gold", "build", day(3))).await.unwrap();
    w.write(batch(&[("A", day(3), "r1", 0)])).await.unwrap();
    w.replace_all().await.unwrap();

    let warehouse = tmctl::lake::warehouse_url(lake.settings(), "silver");
    let started = Instant::now();
    let seen = pyiceberg_read(&url, &warehouse, "silver.t", Some(first));
    eprintln!("{}: PyIceberg read {:?}", db.backend, started.elapsed());
    assert_eq!(seen["row_count"], 7, "{seen}");
    assert_eq!(seen["distinct_rows"], 7, "each row once: {seen}");
    assert_eq!(
        seen["partitions"],
        serde_json::json!({"A|2025-01-03": 4, "B|2025-01-03": 2, "A|2025-01-04": 1}),
        "{seen}"
    );
    assert_eq!(
        seen["fields"],
        serde_json::json!(["course_id", "ingest_date", "round_id", "location_index", "pace", "fix_time"])
    );
    assert_eq!(seen["partition_fields"], serde_json::json!(["course_id", "ingest_date"]));
    assert_eq!(seen["format_version"], 2);
    assert_eq!(seen["current_snapshot_id"], second);
    let ops: Vec<&str> =
        seen["snapshots"].as_array().unwrap().iter().map(|s| s["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["overwrite", "overwrite"]);
    assert_eq!(seen["snapshots"][1]["summary"]["tm.run-key"], "silver/transform/2025-01-03/course_id=A");
    assert_eq!(seen["at_snapshot"]["row_count"], 6, "previous snapshot by id: {seen}");
    assert_eq!(seen["at_snapshot"]["distinct_rows"], 6);
    assert_eq!(seen["at_snapshot"]["partitions"]["A|2025-01-03"], 3);
    assert_eq!(seen["namespaces"], serde_json::json!(["gold", "silver"]));

    let gold_seen = pyiceberg_read(&url, &warehouse, "gold.summary", None);
    assert_eq!(gold_seen["row_count"], 1, "{gold_seen}");
    assert!(gold_seen["location"].as_str().unwrap().contains("tm-lakehouse-serve/warehouse/gold/summary"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiceberg_reads_what_we_wrote() {
    check_pyiceberg_reads(&common::sqlite_db()).await;
}

/// The same on PostgreSQL (PyIceberg reaches it through psycopg2, which `.ci/run` installs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiceberg_reads_what_we_wrote_on_postgres() {
    common::require_python(&["pyiceberg", "pyarrow", "sqlalchemy", "psycopg2"], PIP_PYICEBERG);
    check_pyiceberg_reads(&common::postgres_db().await).await;
}

/// Timing of a realistic silver partition: 1M rows in 100 batches, replaced twice.
/// `cargo test --test lake_iceberg -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "1M-row timing run, not an assertion: cargo nextest run --test lake_iceberg --run-ignored only"]
async fn timing_one_million_rows_in_one_partition() {
    let db = common::sqlite_db();
    let TestLake { lake, .. } = open_lake(&db).await;
    let t = parse_ident("silver.big").unwrap();
    lake.ensure_table(&t, &schema(), &["course_id", "ingest_date"]).await.unwrap();
    for run in 0..2 {
        let started = Instant::now();
        let mut w = lake.writer(&t, key("transform", day(3)).with_scope(format!("run={run}"))).await.unwrap();
        for b in 0..100 {
            let rounds: Vec<String> = (0..10_000).map(|i| format!("r{b}-{i}")).collect();
            let rows: Vec<(&str, NaiveDate, &str, i32)> =
                rounds.iter().enumerate().map(|(i, r)| ("A", day(3), r.as_str(), i as i32)).collect();
            w.write(batch(&rows)).await.unwrap();
        }
        let written = started.elapsed();
        let out = w.replace_partitions(vec![part("A", day(3))]).await.unwrap();
        eprintln!(
            "run {run}: wrote 1M rows in {written:?}, committed after {:?}: {} file(s) added, {} deleted",
            started.elapsed(),
            out.added_files,
            out.deleted_files
        );
    }
    let started = Instant::now();
    assert_eq!(sql_count(&lake, &SessionOptions::current(), "SELECT count(*) FROM silver.big").await, 1_000_000);
    eprintln!("count(*) over 1M rows: {:?}", started.elapsed());
}

/// The physical plan of `sql` as text.
async fn plan(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap().collect().await.unwrap();
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    plan.split("physical_plan").nth(1).unwrap_or_else(|| panic!("no physical plan for {sql}: {plan}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_read_only_the_files_columns_and_rows_they_need() {
    for db in common::both().await {
        let be = db.backend;
        let TestLake { lake, .. } = open_lake(&db).await;
        let t = parse_ident("silver.t").unwrap();
        seed(&lake, &t).await;
        let ctx = lake.session(&SessionOptions::current()).await.unwrap();

        // count(*) from the manifests' record counts: no data file is opened.
        let p = plan(&ctx, "SELECT count(*) FROM silver.t").await;
        assert!(!p.contains("DataSourceExec"), "{be}: count(*) read files:\n{p}");
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t").await, 6, "{be}");

        // A partition filter prunes files before reading (iceberg's manifest evaluation).
        let p = plan(&ctx, "SELECT round_id FROM silver.t WHERE ingest_date = DATE '2025-01-04'").await;
        assert!(p.contains("DataSourceExec"), "{be}:\n{p}");
        assert!(p.contains("ingest_date=2025-01-04"), "{be}: the day-4 file is read:\n{p}");
        assert!(!p.contains("ingest_date=2025-01-03"), "{be}: day-3 files are pruned:\n{p}");
        // Only the projected (and filtered) columns are read, and the filter is evaluated in the reader.
        assert!(!p.contains("pace"), "{be}: an unused column is read:\n{p}");
        assert!(p.contains("predicate="), "{be}: the filter is not pushed into the Parquet reader:\n{p}");
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE ingest_date = DATE '2025-01-04'").await, 1);

        // Column statistics prune files too: no file has a location_index above 2.
        let p = plan(&ctx, "SELECT * FROM silver.t WHERE location_index > 100").await;
        assert!(!p.contains("ingest_date=2025-01-0"), "{be}: files outside the statistics are read:\n{p}");
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE location_index > 100").await, 0, "{be}");
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE location_index >= 1").await, 3, "{be}");
        // And on string columns (read as views, so DataFusion casts the literals to views): a
        // partition value, and a range of a non-partition column (round ids r1, r2, r9).
        let p = plan(&ctx, "SELECT * FROM silver.t WHERE course_id = 'B'").await;
        assert!(p.contains("course_id=B"), "{be}: the course-B file is read:\n{p}");
        assert!(!p.contains("course_id=A"), "{be}: course-A files are pruned:\n{p}");
        let p = plan(&ctx, "SELECT * FROM silver.t WHERE round_id >= 'r3' AND round_id <= 'r9'").await;
        assert!(p.contains("ingest_date=2025-01-04"), "{be}: the file with r9 is read:\n{p}");
        assert!(!p.contains("ingest_date=2025-01-03"), "{be}: files of r1 and r2 are pruned:\n{p}");
        assert_eq!(count(&ctx, "SELECT count(*) FROM silver.t WHERE round_id >= 'r3' AND round_id <= 'r9'").await, 1);

        // Results are right whichever way the scan is cut: joins, aggregates, filters on non-partition columns.
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM silver.t a JOIN silver.t b ON a.round_id = b.round_id AND a.location_index = b.location_index").await,
            6,
            "{be}"
        );
        assert_eq!(count(&ctx, "SELECT count(DISTINCT course_id) FROM silver.t WHERE round_id <> 'r2'").await, 1);
        let strings = ctx
            .sql("SELECT course_id, round_id FROM silver.t ORDER BY course_id, round_id, location_index LIMIT 1")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let shown = datafusion::arrow::util::pretty::pretty_format_batches(&strings).unwrap().to_string();
        assert!(shown.contains("| A         | r1       |"), "{be}: {shown}");
    }
}
