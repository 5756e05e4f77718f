//! Silver: landing files of one (course_id, ingest_date) → rows of `silver.fact_telemetry_event`
//! (48 columns, REFERENCE_PIPELINE §2.2 with `ingest_date` a DATE), plus quarantined rows with a
//! reason. Reading is streaming and tolerant per record (`crate::landing`: a malformed record is
//! quarantined with its file, line and reason), one row per location slot is derived by `rows`, and
//! duplicates of (round_id, location_index) are resolved in two passes so memory stays bounded by
//! the duplicated rounds, not by the file. The `silver.transform` task (tasks/silver.rs) feeds
//! the batches to the lake's replace-partitions writer.

/// The landing formats are read by [`crate::landing`], the reader bronze validates with too.
pub use crate::landing as read;
pub mod rows;
pub mod schema;

pub use rows::{PartitionStats, Quarantined, Rules, transform_partition};
pub use schema::{COLUMNS, TABLE, schema};
