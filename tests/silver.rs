//! Silver transform on real files: typing, derived columns, padding, timestamps, rounding,
//! quarantine reasons, JSON wrappers and deduplication (REFERENCE_PIPELINE Appendix A).

use std::path::PathBuf;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, TimestampMicrosecondType};
use tmctl::silver::rows::Input;
use tmctl::silver::{PartitionStats, Quarantined, Rules, schema, transform_partition};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/silver").join(name)
}

fn inputs(names: &[&str]) -> Vec<Input<'static>> {
    names
        .iter()
        .map(|n| {
            let path = fixture(n);
            Input {
                name: n.to_string(),
                open: Box::new(move || Ok(Box::new(std::fs::File::open(&path)?) as Box<dyn std::io::Read + Send>)),
            }
        })
        .collect()
}

struct Out {
    batch: RecordBatch,
    stats: PartitionStats,
    quarantined: Vec<Quarantined>,
}

fn run(course: &str, names: &[&str], batch_rows: usize) -> Out {
    let mut batches = Vec::new();
    let mut quarantined = Vec::new();
    let stats = transform_partition(
        course,
        NaiveDate::from_ymd_opt(2024, 11, 2).unwrap(),
        &inputs(names),
        &Rules::default(),
        batch_rows,
        &mut |b| {
            assert!(b.num_rows() <= batch_rows);
            batches.push(b);
            Ok(())
        },
        &mut |q| quarantined.push(q),
    )
    .unwrap();
    let batch = concat_batches(&schema(), &batches).unwrap();
    Out { batch, stats, quarantined }
}

impl Out {
    fn col(&self, name: &str) -> &dyn Array {
        self.batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).as_ref()
    }
    fn str(&self, name: &str, row: usize) -> Option<String> {
        let a = self.col(name).as_string::<i32>();
        a.is_valid(row).then(|| a.value(row).to_string())
    }
    fn int(&self, name: &str, row: usize) -> Option<i32> {
        let a = self.col(name).as_primitive::<Int32Type>();
        a.is_valid(row).then(|| a.value(row))
    }
    fn f64(&self, name: &str, row: usize) -> Option<f64> {
        let a = self.col(name).as_primitive::<Float64Type>();
        a.is_valid(row).then(|| a.value(row))
    }
    fn bool(&self, name: &str, row: usize) -> Option<bool> {
        let a = self.col(name).as_boolean();
        a.is_valid(row).then(|| a.value(row))
    }
    fn ts(&self, name: &str, row: usize) -> Option<String> {
        let a = self.col(name).as_primitive::<TimestampMicrosecondType>();
        a.is_valid(row).then(|| {
            chrono::DateTime::from_timestamp_micros(a.value(row))
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        })
    }
    fn date(&self, name: &str, row: usize) -> Option<NaiveDate> {
        let a = self.col(name).as_primitive::<Date32Type>();
        a.is_valid(row).then(|| a.value_as_date(row).unwrap())
    }
    /// Row position of (round_id, location_index).
    fn row(&self, round: &str, index: i32) -> usize {
        (0..self.batch.num_rows())
            .find(|&r| {
                self.str("round_id", r).as_deref() == Some(round) && self.int("location_index", r) == Some(index)
            })
            .unwrap_or_else(|| panic!("no row ({round}, {index})"))
    }
}

#[test]
fn wide_csv_rows_follow_the_contract() {
    let out = run("americanfalls", &["wide.csv"], 1000);
    assert_eq!(out.batch.num_columns(), 48);
    assert_eq!(out.stats.records_in, 5);
    assert_eq!(out.stats.rows_out, 5, "r1: 3 slots, r2: 2 (slot 1 quarantined)");
    assert_eq!(out.stats.padding_rows, 2);
    // Every row carries the partition's course and ingest date, whatever the file's `course`.
    for r in 0..5 {
        assert_eq!(out.str("course_id", r).as_deref(), Some("americanfalls"));
        assert_eq!(out.date("ingest_date", r), NaiveDate::from_ymd_opt(2024, 11, 2));
    }

    let r1 = out.row("r1", 0);
    assert_eq!(out.ts("fix_timestamp", r1).as_deref(), Some("2024-11-01T12:35:52Z"), "start + 300 s");
    assert_eq!(out.ts("round_start_time", r1).as_deref(), Some("2024-11-01T12:30:52Z"));
    assert_eq!(out.f64("round_duration_minutes", r1), Some(246.15), "4 h 06 m 09 s");
    assert_eq!(
        (out.int("hole_number", r1), out.int("section_number", r1), out.int("hole_section", r1)),
        (Some(1), Some(2), Some(2))
    );
    assert_eq!(out.int("goal_time", r1), Some(14340));
    assert_eq!(out.bool("is_complete", r1), Some(true));
    assert_eq!(out.bool("is_location_padding", r1), Some(false));
    assert_eq!(out.str("geometry_wkt", r1).as_deref(), Some("POINT(-112.85 42.78)"));
    assert_eq!(out.date("event_date", r1), NaiveDate::from_ymd_opt(2024, 11, 1));
    assert_eq!(
        (out.int("event_year", r1), out.int("event_month", r1), out.int("event_day", r1)),
        (Some(2024), Some(11), Some(1))
    );
    assert_eq!(out.int("event_weekday", r1), Some(5), "2024-11-01 is a Friday: ISO 5");
    assert_eq!(out.int("nine_number", r1), Some(1));
    assert_eq!(out.f64("pace", r1), Some(0.0));

    let r1s1 = out.row("r1", 1);
    assert_eq!(out.ts("fix_timestamp", r1s1).as_deref(), Some("2024-11-01T12:43:41.250Z"), "sub-second offsets kept");

    let pad = out.row("r1", 5);
    assert_eq!(out.bool("is_location_padding", pad), Some(true));
    assert_eq!(out.ts("fix_timestamp", pad), None);
    assert_eq!(out.bool("is_timestamp_missing", pad), Some(true));
    assert_eq!(out.int("nine_number", pad), None, "padding has no nine");
    assert_eq!(out.date("event_date", pad), None);

    let r2 = out.row("r2", 0);
    assert_eq!(out.f64("pace", r2), Some(-12.346), "rounded half away from zero to 3 dp");
    assert_eq!(out.str("geometry_wkt", r2), None, "NULL coordinates are valid, without geometry");
    assert_eq!((out.f64("longitude", r2), out.f64("latitude", r2)), (None, None));
    assert_eq!(out.bool("is_cache", r2), Some(true));
    assert_eq!(out.int("nine_number", r2), Some(2), "hole 10 on an 18-hole layout");
    assert_eq!(out.f64("round_duration_minutes", r2), None, "no end time");
    assert_eq!(out.bool("is_nine_hole", r2), Some(true));
}

#[test]
fn broken_rows_are_quarantined_with_a_reason() {
    let out = run("americanfalls", &["wide.csv"], 1000);
    let counts: Vec<(String, u64)> = out.stats.quarantined.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(
        counts,
        [
            ("battery_out_of_range".to_string(), 1),
            ("invalid_value".to_string(), 3),
            ("missing_round_id".to_string(), 3),
            ("unparseable_timestamp".to_string(), 3),
        ]
    );
    assert_eq!(out.quarantined.len(), 10);
    let battery = out.quarantined.iter().find(|q| q.reason == "battery_out_of_range").unwrap();
    assert_eq!(battery.row["round_id"], "r2");
    assert_eq!(battery.row["location_index"], 1);
    assert_eq!(battery.row["reason_detail"], "batteryPercentage 140 outside 0..100");
    assert_eq!(battery.row["fix_timestamp"], "2024-11-01T13:09:59.500000Z", "the slot's own date wins");
    let bad_ts = out.quarantined.iter().find(|q| q.reason == "unparseable_timestamp").unwrap();
    assert_eq!(bad_ts.row["reason_detail"], "startTime = \"not-a-date\" is not a timestamp");
    let bad_int = out.quarantined.iter().find(|q| q.reason == "invalid_value").unwrap();
    assert_eq!(bad_int.row["reason_detail"], "startHole = \"x\" is not a number");
    assert_eq!(bad_int.row["round_id"], "r5");
}

#[test]
fn json_exports_with_wrappers_and_empty_rounds() {
    let out = run("americanfalls", &["sample_json.json", "sample_json_mongodb.json"], 1000);
    assert_eq!(out.stats.records_in, 4);
    assert_eq!(out.stats.rows_out, 5, "2 + 1 locations, 1 location, 1 padding row for the empty round");
    let r = out.row("round123", 0);
    assert_eq!(out.ts("fix_timestamp", r).as_deref(), Some("2024-01-15T10:16:40.500Z"), "1000.5 s kept");
    assert_eq!(out.f64("pace", out.row("round123", 1)), Some(4.235));
    assert_eq!(out.f64("pace_gap", r), Some(0.5));
    let oid = out.row("507f1f77bcf86cd799439011", 0);
    assert_eq!(out.ts("round_start_time", oid).as_deref(), Some("2024-01-15T10:00:00Z"));
    assert_eq!(out.int("goal_time", oid), Some(6720), "$numberInt unwrapped");
    assert_eq!(out.str("device", oid).as_deref(), Some("68259d045b4523ced1f9ba66"), "$oid unwrapped");
    let empty = out.row("507f1f77bcf86cd799439012", 0);
    assert_eq!(out.bool("is_location_padding", empty), Some(true));
    assert_eq!(out.ts("round_start_time", empty).as_deref(), Some("2024-01-15T10:00:00Z"), "$date.$numberLong");
}

#[test]
fn invalid_coordinates_fixture_is_quarantined() {
    let out = run("americanfalls", &["invalid_coordinates.json"], 1000);
    assert_eq!(out.stats.rows_out, 0);
    assert_eq!(out.quarantined.len(), 1);
    assert_eq!(out.quarantined[0].reason, "invalid_longitude");
    assert_eq!(
        out.quarantined[0].row["reason_detail"],
        "longitude 200 outside -180..180; latitude 100 outside -90..90"
    );
}

#[test]
fn duplicates_keep_the_preferred_slot() {
    let out = run("c", &["dup_a.csv", "dup_b.csv"], 1000);
    assert_eq!(out.stats.rows_out, 2);
    assert_eq!(out.stats.duplicate_rows_removed, 3);
    let s0 = out.row("dup", 0);
    assert_eq!(
        (out.bool("is_cache", s0), out.f64("battery_percentage", s0)),
        (Some(true), Some(10.0)),
        "is_cache wins"
    );
    assert_eq!(out.int("hole_number", out.row("dup", 1)), Some(2));
}

#[test]
fn batches_respect_the_size_limit() {
    let out = run("americanfalls", &["wide.csv", "sample_json.json"], 2);
    assert_eq!(out.stats.rows_out, 8);
    assert_eq!(out.batch.num_rows(), 8);
}
