//! The schema of `silver.fact_telemetry_event`: the reference's 48 columns in order, with
//! `ingest_date` a DATE, timestamps in microseconds UTC and ISO weekdays (1 = Monday).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// `namespace.table` of the silver fact table.
pub const TABLE: &str = "silver.fact_telemetry_event";

/// Timestamps: microseconds, UTC.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// Column names and types, in table order.
pub const COLUMNS: &[(&str, Kind)] = &[
    ("round_id", Kind::Str),
    ("course_id", Kind::Str),
    ("ingest_date", Kind::Date),
    ("fix_timestamp", Kind::Ts),
    ("is_location_padding", Kind::Bool),
    ("round_start_time", Kind::Ts),
    ("round_end_time", Kind::Ts),
    ("start_hole", Kind::Int),
    ("start_section", Kind::Int),
    ("end_section", Kind::Int),
    ("is_nine_hole", Kind::Bool),
    ("current_nine", Kind::Int),
    ("goal_time", Kind::Int),
    ("is_complete", Kind::Bool),
    ("device", Kind::Str),
    ("first_fix", Kind::Str),
    ("last_fix", Kind::Str),
    ("goal_name", Kind::Str),
    ("goal_time_fraction", Kind::Double),
    ("is_incomplete", Kind::Bool),
    ("is_secondary", Kind::Bool),
    ("is_auto_assigned", Kind::Bool),
    ("last_section_start", Kind::Double),
    ("current_section", Kind::Int),
    ("current_hole", Kind::Int),
    ("current_hole_section", Kind::Int),
    ("location_index", Kind::Int),
    ("hole_number", Kind::Int),
    ("section_number", Kind::Int),
    ("hole_section", Kind::Int),
    ("longitude", Kind::Double),
    ("latitude", Kind::Double),
    ("is_cache", Kind::Bool),
    ("is_projected", Kind::Bool),
    ("is_problem", Kind::Bool),
    ("pace_gap", Kind::Double),
    ("positional_gap", Kind::Double),
    ("pace", Kind::Double),
    ("battery_percentage", Kind::Double),
    ("event_date", Kind::Date),
    ("round_duration_minutes", Kind::Double),
    ("event_year", Kind::Int),
    ("event_month", Kind::Int),
    ("event_day", Kind::Int),
    ("event_weekday", Kind::Int),
    ("nine_number", Kind::Int),
    ("geometry_wkt", Kind::Str),
    ("is_timestamp_missing", Kind::Bool),
];

/// Logical column types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Double,
    Bool,
    Date,
    Ts,
}

impl Kind {
    pub fn arrow(self) -> DataType {
        match self {
            Kind::Str => DataType::Utf8,
            Kind::Int => DataType::Int32,
            Kind::Double => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Date => DataType::Date32,
            Kind::Ts => ts_type(),
        }
    }
}

/// Columns that are never NULL by construction.
const NOT_NULL: &[&str] =
    &["course_id", "ingest_date", "is_location_padding", "location_index", "is_timestamp_missing"];

/// The Arrow schema of the table.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|(name, kind)| Field::new(*name, kind.arrow(), !NOT_NULL.contains(name)))
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_eight_columns_in_reference_order() {
        let s = schema();
        assert_eq!(s.fields().len(), 48);
        assert_eq!(s.field(0).name(), "round_id");
        assert_eq!(s.field(2).data_type(), &DataType::Date32);
        assert_eq!(s.field(26).name(), "location_index");
        assert_eq!(s.field(47).name(), "is_timestamp_missing");
        assert!(!s.field(47).is_nullable());
    }
}
