//! Table schemas and partitioning: Arrow types normalised for Iceberg v2, identity partition
//! specs, and the check that an existing table fits what a writer asks for.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use iceberg::TableIdent;
use iceberg::spec::{Schema as IcebergSchema, Transform, UnboundPartitionSpec};
use iceberg::table::Table;

use super::display_ident;
use super::errors::{LakeError, Result};

/// The Arrow schema with every type mapped to one Iceberg v2 can store without loss of meaning:
/// timestamps become microseconds (keeping their time zone), small and unsigned integers widen,
/// large/view strings and binaries become plain ones, `Date64` becomes `Date32`. Nested types are
/// mapped recursively. Batches written later are cast to the table's schema.
pub fn iceberg_arrow_schema(schema: &SchemaRef) -> Result<ArrowSchema, String> {
    let fields = schema.fields().iter().map(|f| normalise_field(f)).collect::<Result<Vec<Field>, String>>()?;
    Ok(ArrowSchema::new(fields))
}

fn normalise_field(field: &Field) -> Result<Field, String> {
    let data_type = normalise_type(field.name(), field.data_type())?;
    // Field ids are assigned by the catalog conversion; drop any stale ones.
    Ok(Field::new(field.name(), data_type, field.is_nullable()))
}

fn normalise_type(name: &str, t: &DataType) -> Result<DataType, String> {
    Ok(match t {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => return Err(format!("column `{name}` is UInt64, which Iceberg cannot store; cast it")),
        DataType::Float16 => DataType::Float32,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Date64 => DataType::Date32,
        DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
        DataType::Dictionary(_, value) => normalise_type(name, value)?,
        DataType::List(inner) | DataType::LargeList(inner) | DataType::ListView(inner) => {
            DataType::List(Arc::new(normalise_field(inner)?))
        }
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| normalise_field(f)).collect::<Result<Vec<Field>, String>>()?.into())
        }
        DataType::Map(entries, sorted) => DataType::Map(Arc::new(normalise_field(entries)?), *sorted),
        DataType::Null => return Err(format!("column `{name}` has type Null; give it a real type")),
        other => other.clone(),
    })
}

pub(super) fn identity_spec(schema: &IcebergSchema, columns: &[&str]) -> Result<UnboundPartitionSpec, String> {
    let mut builder = UnboundPartitionSpec::builder();
    for col in columns {
        let field = schema
            .field_by_name(col)
            .ok_or_else(|| format!("partition column `{col}` is not a column of the schema"))?;
        if !field.field_type.is_primitive() {
            return Err(format!("partition column `{col}` must have a primitive type"));
        }
        builder = builder
            .add_partition_field(field.id, col.to_string(), Transform::Identity)
            .map_err(|e| format!("cannot partition by `{col}`: {e}"))?;
    }
    Ok(builder.build())
}

/// An existing table must have every requested column and the same identity partition columns.
/// A table's partition columns: the column name for identity partitions, `transform(column)`
/// for others.
/// The default partition spec's fields, in order: the source column of an identity field, or
/// `transform(column)` (the order [`partition_rows`] gives values in).
pub fn identity_partition_columns(table: &Table) -> Vec<String> {
    let md = table.metadata();
    let current = md.current_schema();
    md.default_partition_spec()
        .fields()
        .iter()
        .map(|pf| {
            let source = current.field_by_id(pf.source_id).map(|f| f.name.clone()).unwrap_or_default();
            if pf.transform == Transform::Identity { source } else { format!("{}({source})", pf.transform) }
        })
        .collect()
}

pub(super) fn check_existing(
    ident: &TableIdent,
    table: &Table,
    schema: &SchemaRef,
    partition_columns: &[&str],
) -> Result<()> {
    let md = table.metadata();
    let current = md.current_schema();
    let missing: Vec<&str> =
        schema.fields().iter().map(|f| f.name().as_str()).filter(|n| current.field_by_name(n).is_none()).collect();
    if !missing.is_empty() {
        return Err(LakeError::Invalid {
            table: display_ident(ident),
            message: format!("exists without column(s) {} (schema evolution is not supported yet)", missing.join(", ")),
        });
    }
    let have = identity_partition_columns(table);
    if have.iter().map(String::as_str).ne(partition_columns.iter().copied()) {
        return Err(LakeError::Invalid {
            table: display_ident(ident),
            message: format!(
                "exists partitioned by [{}], not by identity [{}]",
                have.join(", "),
                partition_columns.join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_types_are_normalised_for_iceberg() {
        let schema: SchemaRef = Arc::new(ArrowSchema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), true),
            Field::new("small", DataType::Int16, false),
            Field::new("s", DataType::LargeUtf8, true),
        ]));
        let n = iceberg_arrow_schema(&schema).unwrap();
        assert_eq!(n.field(0).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert_eq!(n.field(1).data_type(), &DataType::Int32);
        assert!(!n.field(1).is_nullable());
        assert_eq!(n.field(2).data_type(), &DataType::Utf8);
        let bad: SchemaRef = Arc::new(ArrowSchema::new(vec![Field::new("u", DataType::UInt64, true)]));
        assert!(iceberg_arrow_schema(&bad).unwrap_err().contains("`u`"));
    }
}
