//! Writing Iceberg tables: a streaming [`TableWriter`] (Arrow batches → partitioned Parquet data
//! files through iceberg's own writer stack) and the replace-partitions / full-refresh commit
//! iceberg-rust 0.10 lacks, built from its public pieces: data files of the replaced partitions
//! are recorded DELETED in rewritten manifests, the rest stay EXISTING, new files are ADDED, one
//! `overwrite` snapshot goes on `main`, and the catalog pointer moves with a compare-and-swap
//! (`Store::swap_iceberg_metadata_location` for the SQL catalog; the REST catalog's commit
//! endpoint with "same table UUID, `main` still at the parent" requirements, [`super::rest`]); a
//! lost race re-reads the table and tries again.
//!
//! # Run keys and resumed attempts
//!
//! Every commit carries a [`RunKey`] in its snapshot summary (`tm.run-key` = `dag/task/date[/scope]`,
//! plus `tm.dag`, `tm.task`, `tm.logical-date`, `tm.scope`, `tm.input-fingerprint`). When a
//! writer is opened and the table's *current* snapshot already carries the same run key (and, if
//! the key has one, the same input fingerprint), the writer is a no-op: `write` drops its batches
//! and the commit returns that snapshot with `already_committed: true`. That is how a resumed
//! attempt (crash after the commit, before the task was marked done) avoids redoing the work.
//! Replacing is idempotent anyway, so the short-circuit only saves work; it never changes the
//! result — unless the inputs changed under the same run key. Hence: give the key a `scope` when
//! one task commits several times to a table (one per course, say), give it a fingerprint of the
//! inputs (e.g. the landing files' sha256s) when a re-run of the same date may see new input, or
//! call [`TableWriter::force`] for a deliberate re-run. [`crate::lake::Lake::find_commit`] looks a
//! key up in the whole history.
//!
//! `key.rs` (run keys, partition values), `writer.rs` (the streaming writer, staged files),
//! `committer.rs` (the replace-partitions commit), `manifests.rs` (partition and manifest helpers).

mod committer;
mod key;
mod manifests;
mod writer;

pub use self::key::{CommitOutcome, PartitionValue, PartitionValues, RunKey};
pub use self::writer::{StagedFiles, TableWriter};
pub(crate) use committer::swap_next_metadata;

/// Snapshot summary keys tmctl writes.
pub const PROP_RUN_KEY: &str = "tm.run-key";
pub const PROP_DAG: &str = "tm.dag";
pub const PROP_TASK: &str = "tm.task";
pub const PROP_LOGICAL_DATE: &str = "tm.logical-date";
pub const PROP_SCOPE: &str = "tm.scope";
pub const PROP_FINGERPRINT: &str = "tm.input-fingerprint";
/// The snapshot of a model's `changes` table its commit was computed from (`changes` by snapshot:
/// its next run recomputes what changed since).
pub const PROP_CHANGES_SNAPSHOT: &str = "tm.changes-snapshot-id";

/// Data files roll over at about this size.
const TARGET_FILE_SIZE: usize = 128 * 1024 * 1024;
/// A Parquet row group is flushed at this many bytes, which bounds a partition writer's memory.
const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// Commit attempts before a lost race becomes an error.
const MAX_COMMIT_ATTEMPTS: u32 = 12;
/// Changed partitions listed one by one in the snapshot summary (`partitions.<path>`).
const PARTITION_SUMMARY_LIMIT: u64 = 100;
/// Small data manifests a snapshot may carry from earlier commits before they are merged into
/// one (Iceberg's `commit.manifest.min-count-to-merge`, which a table property overrides). Java
/// merges at 100; ours is lower because every daily run of every incremental table adds one,
/// and each scan's planning reads every manifest of the snapshot.
const MIN_COUNT_TO_MERGE: usize = 8;
/// A manifest at least this large is left as it is (`commit.manifest.target-size-bytes`).
const MANIFEST_TARGET_BYTES: i64 = 8 << 20;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::NaiveDate;
    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::datatypes::SchemaRef;
    use iceberg::TableIdent;

    use super::manifests::*;
    use super::*;
    use crate::lake::iceberg::Lake;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn run_keys_read_well() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 3).unwrap();
        let k = RunKey::new("silver", "transform", d);
        assert_eq!(k.key(), "silver/transform/2025-01-03");
        let k = k.with_scope("course_id=abc").with_fingerprint("f1");
        assert_eq!(k.key(), "silver/transform/2025-01-03/course_id=abc");
        let props = k.properties();
        assert!(k.is_recorded_in(&props));
        let other = RunKey { fingerprint: Some("f2".into()), ..k.clone() };
        assert!(!other.is_recorded_in(&props));
        let no_fp = RunKey { fingerprint: None, ..k };
        assert!(no_fp.is_recorded_in(&props));
    }

    // Compile-time checks: the futures tasks await are `Send` (tasks run on a multi-threaded
    // runtime behind `async_trait`). An iterator borrowing data passed into an async call is the
    // usual way to break this ("implementation of `Send` is not general enough").
    fn is_send<T: Send + 'static>(_: T) {}
    #[allow(dead_code)]
    fn send_a(lake: Lake, ident: TableIdent, rk: RunKey, b: RecordBatch) {
        is_send(async move {
            let mut w = lake.writer(&ident, rk).await?;
            w.write(b).await?;
            w.replace_all().await
        });
    }
    #[allow(dead_code)]
    fn send_b(lake: Lake) {
        is_send(async move { lake.session(&crate::lake::SessionOptions::current()).await.map(|_| ()) });
    }
    #[allow(dead_code)]
    fn send_c(lake: Lake, ident: TableIdent, schema: SchemaRef) {
        is_send(async move { lake.ensure_table(&ident, &schema, &["a"]).await.map(|_| ()) });
    }
    #[allow(dead_code)]
    fn send_d(lake: Lake, ident: TableIdent) {
        is_send(async move {
            lake.find_commit(&ident, "x").await?;
            lake.table_snapshots(&ident).await?;
            lake.list_tables("silver").await.map(|_| ())
        });
    }
    #[allow(dead_code)]
    fn send_e(lake: Lake, rk: RunKey, ident: TableIdent) {
        is_send(async move {
            let w = lake.writer(&ident, rk).await?;
            w.replace_partitions(vec![PartitionValues::new()]).await
        });
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_ne!(u, random_uuid());
    }

    #[test]
    fn batches_align_by_name_and_cast() {
        let target: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false), Field::new("b", DataType::Utf8, true)]));
        let src = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["1", "2"]))],
        )
        .unwrap();
        let out = align_batch(&src, &target).unwrap();
        assert_eq!(out.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values(), &[1, 2]);
        assert_eq!(out.column(1).null_count(), 2);
        let bad = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        assert!(align_batch(&bad, &target).unwrap_err().contains("column `a`"));
        let extra = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("z", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        assert!(align_batch(&extra, &target).unwrap_err().contains("no column(s) z"));
    }

    /// The identity split gives the partitions iceberg's own splitter gives, each with its rows
    /// in their order, partitions in the order of their first row, a NULL value its own partition.
    #[test]
    fn batches_split_by_identity_partitions_as_iceberg_splits_them() {
        use datafusion::arrow::array::{Date32Array, Int64Array as Longs, UInt32Array};
        use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
        use iceberg::spec::{NestedField, PartitionSpec, PrimitiveType, Schema as IcebergSchema, Transform, Type};

        let schema = Arc::new(
            IcebergSchema::builder()
                .with_fields(vec![
                    NestedField::optional(1, "course_id", Type::Primitive(PrimitiveType::String)).into(),
                    NestedField::optional(2, "ingest_date", Type::Primitive(PrimitiveType::Date)).into(),
                    NestedField::optional(3, "n", Type::Primitive(PrimitiveType::Long)).into(),
                ])
                .build()
                .unwrap(),
        );
        let spec = Arc::new(
            PartitionSpec::builder(schema.clone())
                .add_partition_field("course_id", "course_id", Transform::Identity)
                .unwrap()
                .add_partition_field("ingest_date", "ingest_date", Transform::Identity)
                .unwrap()
                .build()
                .unwrap(),
        );
        let splitter =
            RecordBatchPartitionSplitter::try_new_with_computed_values(schema.clone(), spec.clone()).unwrap();
        let arrow = Arc::new(schema_to_arrow_schema(&schema).unwrap());
        let courses = [Some("b"), Some("a"), Some("b"), None, Some("a"), Some("b"), Some("a")];
        let days = [Some(1), Some(1), Some(1), Some(1), Some(2), Some(1), Some(1)];
        let batch = RecordBatch::try_new(
            arrow,
            vec![
                Arc::new(StringArray::from(courses.to_vec())),
                Arc::new(Date32Array::from(days.to_vec())),
                Arc::new(Longs::from_iter_values(0..7)),
            ],
        )
        .unwrap();
        let ns = |b: &RecordBatch| b.column(2).as_any().downcast_ref::<Longs>().unwrap().values().to_vec();

        let ours = split_identity(&splitter, &spec, &batch).unwrap().expect("identity transforms only");
        let got: Vec<(String, Vec<i64>)> = ours.iter().map(|(k, b)| (format!("{:?}", k.data()), ns(b))).collect();
        let order: Vec<Vec<i64>> = got.iter().map(|(_, n)| n.clone()).collect();
        assert_eq!(order, vec![vec![0, 2, 5], vec![1, 6], vec![3], vec![4]]);

        let mut theirs: Vec<(String, Vec<i64>)> =
            splitter.split(&batch).unwrap().iter().map(|(k, b)| (format!("{:?}", k.data()), ns(b))).collect();
        let mut got = got;
        got.sort();
        theirs.sort();
        assert_eq!(got, theirs);

        // Rows of one partition: the batch itself is the one part, under iceberg's key for it.
        let one = datafusion::arrow::compute::take_record_batch(&batch, &UInt32Array::from(vec![0, 2, 5])).unwrap();
        let ours = split_identity(&splitter, &spec, &one).unwrap().expect("identity transforms only");
        let theirs = splitter.split(&one).unwrap();
        assert_eq!(ours.len(), 1);
        assert_eq!(format!("{:?}", ours[0].0.data()), format!("{:?}", theirs[0].0.data()));
        assert_eq!(ours[0].1, one);
    }

    #[test]
    fn the_writer_honours_the_table_s_parquet_codec() {
        use datafusion::parquet::basic::{Compression, GzipLevel, ZstdLevel};
        let props = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::HashMap<_, _>>()
        };
        let codec = "write.parquet.compression-codec";
        let level = "write.parquet.compression-level";
        assert_eq!(writer::compression(&props(&[])), Ok(Compression::ZSTD(ZstdLevel::default())));
        assert_eq!(writer::compression(&props(&[(codec, "snappy")])), Ok(Compression::SNAPPY));
        assert_eq!(writer::compression(&props(&[(codec, "LZ4")])), Ok(Compression::LZ4_RAW));
        assert_eq!(writer::compression(&props(&[(codec, "uncompressed")])), Ok(Compression::UNCOMPRESSED));
        assert_eq!(
            writer::compression(&props(&[(codec, "zstd"), (level, "9")])),
            Ok(Compression::ZSTD(ZstdLevel::try_new(9).unwrap()))
        );
        assert_eq!(
            writer::compression(&props(&[(codec, "gzip"), (level, "6")])),
            Ok(Compression::GZIP(GzipLevel::try_new(6).unwrap()))
        );
        let e = writer::compression(&props(&[(codec, "zstd"), (level, "99")])).unwrap_err();
        assert!(e.contains("compression-level `99`"), "{e}");
        let e = writer::compression(&props(&[(codec, "brotli")])).unwrap_err();
        assert!(e.contains("`brotli`"), "{e}");
    }
}
