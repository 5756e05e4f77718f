//! Helpers of the writer and the committer: partition keys and structs, whether a manifest may
//! hold a replaced partition, snapshot ids, backoff and random names.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, Scalar, UInt32Array, new_null_array};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{CastOptions, cast_with_options, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, Datum, Literal, ManifestFile, PartitionKey, PartitionSpecRef, PrimitiveType,
    SchemaRef as IcebergSchemaRef, Struct,
};
use iceberg::table::Table;
use iceberg::writer::partitioning::PartitioningWriter;

use super::key::*;
use super::writer::*;
use crate::lake::iceberg::{LakeError, Result};

pub(super) fn unreachable_splitter() -> iceberg::Result<()> {
    Err(iceberg::Error::new(iceberg::ErrorKind::Unexpected, "partitioned writer without a splitter"))
}

pub(super) async fn close_writer(writer: PartWriter) -> iceberg::Result<Vec<DataFile>> {
    match writer {
        PartWriter::Unpartitioned(w) => w.close().await,
        PartWriter::Fanout(w) => w.close().await,
    }
}

pub(super) async fn delete_quietly(file_io: &FileIO, paths: Vec<String>) {
    for p in paths {
        if let Err(e) = file_io.delete(&p).await {
            tracing::debug!(path = %p, error = %e, "could not remove an uncommitted file");
        }
    }
}

/// The columns of `batch` holding the source of each partition field of `spec` (by Iceberg field
/// id), or `None` when a field is not an identity transform or its source is not in the batch.
fn identity_sources(spec: &PartitionSpecRef, batch: &RecordBatch) -> Option<Vec<usize>> {
    let schema = batch.schema();
    spec.fields()
        .iter()
        .map(|field| {
            if field.transform != iceberg::spec::Transform::Identity {
                return None;
            }
            let id = field.source_id.to_string();
            schema.fields().iter().position(|f| {
                f.metadata().get(datafusion::parquet::arrow::PARQUET_FIELD_ID_META_KEY).map(String::as_str)
                    == Some(id.as_str())
            })
        })
        .collect()
}

/// `batch` split into one batch per partition, for a spec of identity transforms only (`None`
/// otherwise: iceberg's splitter then). When every row has the same partition values (the usual
/// case: one comparison per partition column) the batch is the one part. Otherwise the rows of
/// each partition keep their order, the partitions come in the order of their first row, and
/// iceberg makes a key once per partition: its own splitter builds a `Literal` struct per row and
/// hashes it with SipHash, 2.6 % of a full refresh's instructions (benches/README.md, thirteenth
/// session).
pub(super) fn split_identity(
    splitter: &RecordBatchPartitionSplitter,
    spec: &PartitionSpecRef,
    batch: &RecordBatch,
) -> iceberg::Result<Option<Vec<(PartitionKey, RecordBatch)>>> {
    let Some(columns) = identity_sources(spec, batch) else {
        return Ok(None);
    };
    let key_of_row = |row: usize| -> iceberg::Result<Option<PartitionKey>> {
        Ok(splitter.split(&batch.slice(row, 1))?.pop().map(|(key, _)| key))
    };
    if columns.iter().all(|&i| is_constant(batch.column(i))) {
        return Ok(key_of_row(0)?.map(|key| vec![(key, batch.clone())]));
    }
    let arrow_err = |e: datafusion::arrow::error::ArrowError| {
        iceberg::Error::new(iceberg::ErrorKind::Unexpected, format!("split rows by partition: {e}"))
    };
    let values: Vec<ArrayRef> = columns.iter().map(|&i| batch.column(i).clone()).collect();
    let fields = values.iter().map(|v| SortField::new(v.data_type().clone())).collect();
    let rows = RowConverter::new(fields).and_then(|c| c.convert_columns(&values)).map_err(arrow_err)?;
    let mut groups: datafusion::common::HashMap<Box<[u8]>, usize> = datafusion::common::HashMap::default();
    let mut members: Vec<Vec<u32>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let group = *groups.entry_ref(row.as_ref()).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[group].push(i as u32);
    }
    let mut parts = Vec::with_capacity(members.len());
    for rows in members {
        let Some(key) = key_of_row(rows[0] as usize)? else {
            return Ok(None);
        };
        parts.push((key, take_record_batch(batch, &UInt32Array::from(rows)).map_err(arrow_err)?));
    }
    Ok(Some(parts))
}

fn is_constant(col: &ArrayRef) -> bool {
    if col.is_empty() || col.null_count() == col.len() {
        return true;
    }
    if col.null_count() > 0 {
        return false;
    }
    match eq(col, &Scalar::new(col.slice(0, 1))) {
        Ok(same) => same.true_count() == col.len(),
        Err(_) => false,
    }
}

/// `batch` with exactly `target`'s columns, by name, cast where types differ.
pub(crate) fn align_batch(batch: &RecordBatch, target: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let source = batch.schema();
    let extra: Vec<&str> =
        source.fields().iter().map(|f| f.name().as_str()).filter(|n| target.field_with_name(n).is_err()).collect();
    if !extra.is_empty() {
        return Err(format!("the table has no column(s) {}", extra.join(", ")));
    }
    let options = CastOptions { safe: false, ..Default::default() };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let col = match source.index_of(field.name()) {
            Ok(i) => {
                let col = batch.column(i);
                if col.data_type() == field.data_type() {
                    col.clone()
                } else {
                    cast_with_options(col, field.data_type(), &options).map_err(|e| {
                        format!(
                            "column `{}` ({}) cannot become {}: {e}",
                            field.name(),
                            col.data_type(),
                            field.data_type()
                        )
                    })?
                }
            }
            Err(_) if field.is_nullable() => new_null_array(field.data_type(), batch.num_rows()),
            Err(_) => return Err(format!("the batch lacks required column `{}`", field.name())),
        };
        columns.push(col);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(target.clone(), columns, &options).map_err(|e| e.to_string())
}

/// The partition tuple of `values` under `spec` (identity fields only), typed as the table has it.
pub(super) fn partition_struct(
    table: &str,
    spec: &PartitionSpecRef,
    schema: &IcebergSchemaRef,
    values: &PartitionValues,
) -> Result<Struct> {
    let invalid = |message: String| LakeError::Invalid { table: table.to_string(), message };
    if spec.is_unpartitioned() {
        return Err(invalid("is not partitioned; use replace_all".into()));
    }
    let partition_type = spec.partition_type(schema).map_err(|e| invalid(e.to_string()))?;
    for (column, _) in &values.values {
        if !spec.fields().iter().any(|f| &f.name == column) {
            let names: Vec<&str> = spec.fields().iter().map(|f| f.name.as_str()).collect();
            return Err(invalid(format!("`{column}` is not a partition column (those are: {})", names.join(", "))));
        }
    }
    let mut literals = Vec::with_capacity(spec.fields().len());
    for (pf, field) in spec.fields().iter().zip(partition_type.fields()) {
        if pf.transform != iceberg::spec::Transform::Identity {
            return Err(invalid(format!("partition field `{}` is not an identity partition", pf.name)));
        }
        let value = values
            .get(&pf.name)
            .ok_or_else(|| invalid(format!("partition {values} lacks a value for `{}`", pf.name)))?;
        let ty =
            field.field_type.as_primitive_type().ok_or_else(|| invalid(format!("`{}` is not primitive", pf.name)))?;
        literals.push(
            to_datum(value, ty)
                .map_err(|m| invalid(format!("partition column `{}`: {m}", pf.name)))?
                .map(Literal::from),
        );
    }
    Ok(Struct::from_iter(literals))
}

pub(super) fn to_datum(value: &PartitionValue, ty: &PrimitiveType) -> std::result::Result<Option<Datum>, String> {
    let bad = || format!("value {value:?} does not fit type {ty}");
    Ok(Some(match (value, ty) {
        (PartitionValue::Null, _) => return Ok(None),
        (PartitionValue::String(s), PrimitiveType::String) => Datum::string(s),
        (PartitionValue::String(s), PrimitiveType::Long) => Datum::long(s.parse::<i64>().map_err(|_| bad())?),
        (PartitionValue::String(s), PrimitiveType::Int) => Datum::int(s.parse::<i32>().map_err(|_| bad())?),
        (PartitionValue::String(s), PrimitiveType::Date) => {
            Datum::date(days_since_epoch(NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?))
        }
        (PartitionValue::Int(i), PrimitiveType::Long) => Datum::long(*i),
        (PartitionValue::Int(i), PrimitiveType::Int) => Datum::int(i32::try_from(*i).map_err(|_| bad())?),
        (PartitionValue::Int(i), PrimitiveType::String) => Datum::string(i),
        (PartitionValue::Bool(b), PrimitiveType::Boolean) => Datum::bool(*b),
        (PartitionValue::Date(d), PrimitiveType::Date) => Datum::date(days_since_epoch(*d)),
        (PartitionValue::Date(d), PrimitiveType::String) => Datum::string(d.format("%Y-%m-%d")),
        _ => return Err(bad()),
    }))
}

pub(super) fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// Whether manifest `m` may hold a file of one of the partitions in `set`, judged by the
/// partition bounds in the manifest list (true when unsure).
pub(super) fn manifest_may_contain(
    m: &ManifestFile,
    set: &HashSet<Struct>,
    spec: Option<&PartitionSpecRef>,
    schema: &IcebergSchemaRef,
) -> bool {
    if set.is_empty() {
        return false;
    }
    let (Some(summaries), Some(spec)) = (&m.partitions, spec) else { return true };
    let Ok(partition_type) = spec.partition_type(schema) else { return true };
    if summaries.len() != partition_type.fields().len() {
        return true;
    }
    set.iter().any(|p| {
        p.fields().len() != summaries.len()
            || p.fields().iter().zip(summaries).zip(partition_type.fields()).all(|((value, summary), field)| {
                let Some(ty) = field.field_type.as_primitive_type() else { return true };
                match value {
                    None => summary.contains_null,
                    Some(lit) => {
                        let Some(prim) = lit.as_primitive_literal() else { return true };
                        let Ok(v) = Datum::new_checked(ty, prim) else { return true };
                        let lower =
                            summary.lower_bound.as_ref().and_then(|b| Datum::try_from_bytes(b, ty.clone()).ok());
                        let upper =
                            summary.upper_bound.as_ref().and_then(|b| Datum::try_from_bytes(b, ty.clone()).ok());
                        match (lower, upper) {
                            (Some(lo), Some(hi)) => lo <= v && v <= hi,
                            _ => {
                                summary.lower_bound.is_none() && summary.upper_bound.is_none() && !summary.contains_null
                            }
                        }
                    }
                }
            })
    })
}

/// `Datum::new` is crate-private in iceberg 0.10; build the same from the primitive literal.
pub(super) trait DatumExt: Sized {
    fn new_checked(ty: &PrimitiveType, lit: iceberg::spec::PrimitiveLiteral) -> std::result::Result<Self, ()>;
}

impl DatumExt for Datum {
    fn new_checked(ty: &PrimitiveType, lit: iceberg::spec::PrimitiveLiteral) -> std::result::Result<Datum, ()> {
        use iceberg::spec::PrimitiveLiteral as P;
        Ok(match (ty, lit) {
            (PrimitiveType::Boolean, P::Boolean(b)) => Datum::bool(b),
            (PrimitiveType::Int, P::Int(i)) => Datum::int(i),
            (PrimitiveType::Date, P::Int(i)) => Datum::date(i),
            (PrimitiveType::Long, P::Long(i)) => Datum::long(i),
            (PrimitiveType::String, P::String(s)) => Datum::string(s),
            (PrimitiveType::Float, P::Float(f)) => Datum::float(f.0),
            (PrimitiveType::Double, P::Double(f)) => Datum::double(f.0),
            (PrimitiveType::Timestamp, P::Long(i)) => Datum::timestamp_micros(i),
            (PrimitiveType::Timestamptz, P::Long(i)) => Datum::timestamptz_micros(i),
            _ => return Err(()),
        })
    }
}

pub(super) fn unique_snapshot_id(table: &Table) -> i64 {
    loop {
        let id = (random_u64() >> 1) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

pub(super) fn backoff(attempt: u32) -> Duration {
    // 25 ms · 2^attempt (the first retry, attempt 1: 50 ms), at most 1.6 s, plus a jitter of up to
    // as much again.
    let base = crate::util::doubling(Duration::from_millis(25), attempt, Duration::from_millis(1600));
    base + Duration::from_millis(random_u64() % base.as_millis() as u64)
}

/// Random bits without a `rand` dependency: std's randomly keyed SipHash over a counter and the
/// clock.
pub(super) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}

/// A random UUID-shaped (version 4 layout) identifier for file names.
pub(super) fn random_uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}
