//! Gold models on a hand-made silver fixture, checked cell by cell against hand-computed values;
//! write-audit-publish (an error-severity test blocks publication, a warn one does not); test-spec
//! and SQL validation messages; `model_reads`; and the `gold.model` task end to end on a real
//! Iceberg lake (SQLite catalog).
//!
//! The fixture (`fixture_rows()`), 21 silver rows over two courses:
//!
//! | course    | round | ingest date | what it exercises |
//! |-----------|-------|-------------|-------------------|
//! | loopfalls | lf-1  | 2025-06-02  | 9-hole loop course played as 18: holes 1 and 9 on nine 1 (sections 1–27) and again on nine 2 (28–54); one cached fix; a padding row |
//! | loopfalls | lf-2  | 2025-06-01  | stale delivery (2 rows, pace 999, goal_time 9999, battery 12): must vanish from gold |
//! | loopfalls | lf-2  | 2025-06-02  | the same round re-delivered: a 9-hole round on a Sunday, low (15, 10) and critical (8) battery, 900 s on hole 9 |
//! | loopfalls | lf-3  | 2025-06-02  | no timestamps at all, no device, NULL pace/battery/coordinates; a padding row |
//! | creekside | cs-1  | 2025-06-03  | 18-hole course from hole 1 on a Tuesday; a fix with NULL timestamp, one with NULL pace; a padding row |
//! | creekside | cs-2  | 2025-07-06  | shotgun start on hole 10 on a Saturday in July, incomplete, battery 18 and 5, NULL latitude |

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;
use tmctl::gold::{
    GoldError, MemoryPublisher, ModelRun, ModelSpec, Refresh, TestStatus, memory_session, model_reads, model_writes,
    run_model,
};

// ---------------------------------------------------------------------------------------------
// The silver fixture
// ---------------------------------------------------------------------------------------------

/// Round-level attributes (the same on every row of a round).
#[derive(Clone, Copy)]
struct R {
    course: &'static str,
    round: &'static str,
    ingest: &'static str,
    start: Option<&'static str>,
    end: Option<&'static str>,
    start_hole: Option<i32>,
    start_section: Option<i32>,
    end_section: Option<i32>,
    nine_hole: Option<bool>,
    current_nine: Option<i32>,
    goal_time: Option<i32>,
    complete: Option<bool>,
    device: Option<&'static str>,
    goal_name: Option<&'static str>,
    goal_fraction: Option<f64>,
    incomplete: Option<bool>,
    secondary: Option<bool>,
    auto_assigned: Option<bool>,
}

/// One location slot.
#[derive(Clone, Copy)]
struct F {
    idx: i32,
    hole: Option<i32>,
    section: Option<i32>,
    hole_section: Option<i32>,
    nine: Option<i32>,
    ts: Option<&'static str>,
    lon: Option<f64>,
    lat: Option<f64>,
    cache: Option<bool>,
    projected: Option<bool>,
    problem: Option<bool>,
    pace_gap: Option<f64>,
    positional_gap: Option<f64>,
    pace: Option<f64>,
    battery: Option<f64>,
}

/// A real fix: coordinates present, flags false; the rest per fix.
const FIX: F = F {
    idx: 0,
    hole: None,
    section: None,
    hole_section: None,
    nine: None,
    ts: None,
    lon: Some(-112.5),
    lat: Some(42.9),
    cache: Some(false),
    projected: Some(false),
    problem: Some(false),
    pace_gap: None,
    positional_gap: None,
    pace: None,
    battery: None,
};

/// A padding slot: nothing but its index (silver: nine_number NULL, timestamp NULL).
const PAD: F = F {
    idx: 0,
    hole: None,
    section: None,
    hole_section: None,
    nine: None,
    ts: None,
    lon: None,
    lat: None,
    cache: None,
    projected: None,
    problem: None,
    pace_gap: None,
    positional_gap: None,
    pace: None,
    battery: None,
};

#[allow(clippy::too_many_arguments)]
fn fix(
    idx: i32,
    hole: i32,
    section: i32,
    hole_section: i32,
    nine: i32,
    ts: Option<&'static str>,
    pace: Option<f64>,
    pace_gap: Option<f64>,
    positional_gap: Option<f64>,
    battery: Option<f64>,
) -> F {
    F {
        idx,
        hole: Some(hole),
        section: Some(section),
        hole_section: Some(hole_section),
        nine: Some(nine),
        ts,
        pace,
        pace_gap,
        positional_gap,
        battery,
        ..FIX
    }
}

const LF1: R = R {
    course: "loopfalls",
    round: "lf-1",
    ingest: "2025-06-02",
    start: Some("2025-06-02T08:00:00Z"),
    end: Some("2025-06-02T12:00:00Z"),
    start_hole: Some(1),
    start_section: Some(1),
    end_section: Some(54),
    nine_hole: Some(false),
    current_nine: Some(2),
    goal_time: Some(14400),
    complete: Some(true),
    device: Some("dev-A"),
    goal_name: Some("18 holes"),
    goal_fraction: Some(1.0),
    incomplete: Some(false),
    secondary: Some(false),
    auto_assigned: Some(false),
};

const LF2: R = R {
    course: "loopfalls",
    round: "lf-2",
    ingest: "2025-06-02",
    start: Some("2025-06-01T15:00:00Z"),
    end: Some("2025-06-01T17:00:00Z"),
    start_hole: Some(1),
    start_section: Some(1),
    end_section: Some(27),
    nine_hole: Some(true),
    current_nine: Some(1),
    goal_time: Some(7200),
    complete: Some(true),
    device: Some("dev-B"),
    goal_name: Some("9 holes"),
    goal_fraction: Some(0.5),
    incomplete: Some(false),
    secondary: Some(true),
    auto_assigned: Some(false),
};

/// The first delivery of lf-2, superseded by the 2025-06-02 one.
const LF2_STALE: R =
    R { ingest: "2025-06-01", goal_time: Some(9999), complete: Some(false), secondary: Some(false), ..LF2 };

const LF3: R = R {
    course: "loopfalls",
    round: "lf-3",
    ingest: "2025-06-02",
    start: None,
    end: None,
    start_hole: Some(1),
    start_section: Some(1),
    end_section: None,
    nine_hole: None,
    current_nine: None,
    goal_time: None,
    complete: Some(false),
    device: None,
    goal_name: None,
    goal_fraction: None,
    incomplete: Some(true),
    secondary: None,
    auto_assigned: Some(true),
};

const CS1: R = R {
    course: "creekside",
    round: "cs-1",
    ingest: "2025-06-03",
    start: Some("2025-06-03T07:00:00Z"),
    end: Some("2025-06-03T11:30:00Z"),
    start_hole: Some(1),
    start_section: Some(1),
    end_section: Some(54),
    nine_hole: Some(false),
    current_nine: Some(2),
    goal_time: Some(15000),
    complete: Some(true),
    device: Some("dev-C"),
    goal_name: Some("18 holes"),
    goal_fraction: Some(1.0),
    incomplete: Some(false),
    secondary: Some(false),
    auto_assigned: Some(false),
};

const CS2: R = R {
    course: "creekside",
    round: "cs-2",
    ingest: "2025-07-06",
    start: Some("2025-07-05T13:00:00Z"),
    end: Some("2025-07-05T14:00:00Z"),
    start_hole: Some(10),
    start_section: Some(28),
    end_section: Some(36),
    nine_hole: None,
    current_nine: Some(2),
    goal_time: None,
    complete: Some(false),
    device: Some("dev-C"),
    goal_name: None,
    goal_fraction: None,
    incomplete: Some(true),
    secondary: Some(false),
    auto_assigned: Some(true),
};

/// The fixture's rows, round by round.
fn fixture_rows() -> Vec<(R, F)> {
    let mut rows = Vec::new();
    let mut add = |r: R, fixes: Vec<F>| rows.extend(fixes.into_iter().map(|f| (r, f)));
    add(
        LF1,
        vec![
            fix(0, 1, 1, 1, 1, Some("2025-06-02T08:00:00Z"), Some(0.0), Some(0.0), Some(0.0), Some(90.0)),
            fix(1, 9, 27, 3, 1, Some("2025-06-02T10:00:00Z"), Some(60.0), Some(30.0), Some(1.5), Some(85.0)),
            F {
                cache: Some(true),
                ..fix(2, 1, 28, 1, 2, Some("2025-06-02T10:10:00Z"), Some(120.0), Some(60.0), Some(2.0), Some(80.0))
            },
            fix(3, 9, 54, 3, 2, Some("2025-06-02T12:00:00Z"), Some(-30.0), Some(-15.0), Some(-0.5), Some(75.0)),
            F { idx: 4, ..PAD },
        ],
    );
    add(
        LF2_STALE,
        vec![
            fix(0, 1, 1, 1, 1, Some("2025-06-01T15:00:00Z"), Some(999.0), Some(999.0), Some(9.0), Some(50.0)),
            fix(1, 2, 4, 1, 1, Some("2025-06-01T15:15:00Z"), Some(999.0), Some(999.0), Some(9.0), Some(12.0)),
        ],
    );
    add(
        LF2,
        vec![
            fix(0, 1, 1, 1, 1, Some("2025-06-01T15:00:00Z"), Some(10.0), Some(5.0), Some(0.5), Some(30.0)),
            F {
                projected: Some(true),
                ..fix(1, 5, 14, 2, 1, Some("2025-06-01T16:00:00Z"), Some(20.0), Some(10.0), Some(1.0), Some(15.0))
            },
            fix(2, 9, 26, 2, 1, Some("2025-06-01T16:45:00Z"), Some(26.0), Some(13.0), Some(1.5), Some(10.0)),
            F {
                problem: Some(true),
                ..fix(3, 9, 27, 3, 1, Some("2025-06-01T17:00:00Z"), Some(30.0), None, None, Some(8.0))
            },
        ],
    );
    let no_signal = |f: F| F { lon: None, lat: None, cache: None, projected: None, problem: None, ..f };
    add(
        LF3,
        vec![
            no_signal(fix(0, 1, 1, 1, 1, None, None, None, None, None)),
            no_signal(fix(1, 2, 4, 1, 1, None, None, None, None, None)),
            F { idx: 2, ..PAD },
        ],
    );
    add(
        CS1,
        vec![
            fix(0, 1, 1, 1, 1, Some("2025-06-03T07:00:00Z"), Some(0.0), Some(0.0), Some(0.0), Some(100.0)),
            F {
                projected: Some(true),
                ..fix(1, 10, 28, 1, 2, Some("2025-06-03T09:30:00Z"), Some(90.0), Some(45.0), Some(3.0), Some(95.0))
            },
            fix(2, 18, 54, 3, 2, Some("2025-06-03T11:30:00Z"), None, Some(20.0), Some(1.0), Some(90.0)),
            F { cache: Some(true), ..fix(3, 18, 53, 2, 2, None, Some(100.0), None, None, None) },
            F { idx: 4, ..PAD },
        ],
    );
    add(
        CS2,
        vec![
            F {
                problem: Some(true),
                ..fix(0, 10, 28, 1, 2, Some("2025-07-05T13:00:00Z"), Some(200.0), Some(100.0), Some(4.0), Some(18.0))
            },
            F {
                problem: Some(true),
                lat: None,
                ..fix(1, 11, 31, 1, 2, Some("2025-07-05T14:00:00Z"), Some(300.0), Some(150.0), Some(5.0), Some(5.0))
            },
        ],
    );
    rows
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// `silver.fact_telemetry_event` as the brief defines it: REFERENCE §2.2's 48 columns with
/// ingest_date a DATE, timestamps in µs UTC and ISO weekdays.
fn silver_schema() -> SchemaRef {
    use DataType::*;
    let cols: &[(&str, DataType)] = &[
        ("round_id", Utf8),
        ("course_id", Utf8),
        ("ingest_date", Date32),
        ("fix_timestamp", ts_type()),
        ("is_location_padding", Boolean),
        ("round_start_time", ts_type()),
        ("round_end_time", ts_type()),
        ("start_hole", Int32),
        ("start_section", Int32),
        ("end_section", Int32),
        ("is_nine_hole", Boolean),
        ("current_nine", Int32),
        ("goal_time", Int32),
        ("is_complete", Boolean),
        ("device", Utf8),
        ("first_fix", Utf8),
        ("last_fix", Utf8),
        ("goal_name", Utf8),
        ("goal_time_fraction", Float64),
        ("is_incomplete", Boolean),
        ("is_secondary", Boolean),
        ("is_auto_assigned", Boolean),
        ("last_section_start", Float64),
        ("current_section", Int32),
        ("current_hole", Int32),
        ("current_hole_section", Int32),
        ("location_index", Int32),
        ("hole_number", Int32),
        ("section_number", Int32),
        ("hole_section", Int32),
        ("longitude", Float64),
        ("latitude", Float64),
        ("is_cache", Boolean),
        ("is_projected", Boolean),
        ("is_problem", Boolean),
        ("pace_gap", Float64),
        ("positional_gap", Float64),
        ("pace", Float64),
        ("battery_percentage", Float64),
        ("event_date", Date32),
        ("round_duration_minutes", Float64),
        ("event_year", Int32),
        ("event_month", Int32),
        ("event_day", Int32),
        ("event_weekday", Int32),
        ("nine_number", Int32),
        ("geometry_wkt", Utf8),
        ("is_timestamp_missing", Boolean),
    ];
    Arc::new(Schema::new(cols.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>()))
}

fn micros(ts: &str) -> i64 {
    DateTime::parse_from_rfc3339(ts).unwrap().with_timezone(&Utc).timestamp_micros()
}

fn epoch_days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The fixture as one record batch, derived columns computed as silver does.
fn silver_batch(rows: &[(R, F)]) -> RecordBatch {
    let ts = |v: Vec<Option<&str>>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(v.into_iter().map(|t| t.map(micros)).collect::<Vec<_>>())
                .with_timezone("+00:00"),
        )
    };
    let s = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let i = |v: Vec<Option<i32>>| -> ArrayRef { Arc::new(Int32Array::from(v)) };
    let f = |v: Vec<Option<f64>>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
    let b = |v: Vec<Option<bool>>| -> ArrayRef { Arc::new(BooleanArray::from(v)) };
    let d = |v: Vec<Option<NaiveDate>>| -> ArrayRef {
        Arc::new(Date32Array::from(v.into_iter().map(|d| d.map(epoch_days)).collect::<Vec<_>>()))
    };
    let fix_date = |f: &F| f.ts.map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc).date_naive());
    let wkt: Vec<Option<String>> =
        rows.iter().map(|(_, f)| f.lon.zip(f.lat).map(|(lon, lat)| format!("POINT({lon} {lat})"))).collect();
    let columns: Vec<ArrayRef> = vec![
        s(rows.iter().map(|(r, _)| Some(r.round)).collect()),
        s(rows.iter().map(|(r, _)| Some(r.course)).collect()),
        d(rows.iter().map(|(r, _)| Some(date(r.ingest))).collect()),
        ts(rows.iter().map(|(_, f)| f.ts).collect()),
        b(rows.iter().map(|(_, f)| Some(f.hole.is_none() && f.section.is_none())).collect()),
        ts(rows.iter().map(|(r, _)| r.start).collect()),
        ts(rows.iter().map(|(r, _)| r.end).collect()),
        i(rows.iter().map(|(r, _)| r.start_hole).collect()),
        i(rows.iter().map(|(r, _)| r.start_section).collect()),
        i(rows.iter().map(|(r, _)| r.end_section).collect()),
        b(rows.iter().map(|(r, _)| r.nine_hole).collect()),
        i(rows.iter().map(|(r, _)| r.current_nine).collect()),
        i(rows.iter().map(|(r, _)| r.goal_time).collect()),
        b(rows.iter().map(|(r, _)| r.complete).collect()),
        s(rows.iter().map(|(r, _)| r.device).collect()),
        s(rows.iter().map(|(r, _)| r.start).collect()),
        s(rows.iter().map(|(r, _)| r.end).collect()),
        s(rows.iter().map(|(r, _)| r.goal_name).collect()),
        f(rows.iter().map(|(r, _)| r.goal_fraction).collect()),
        b(rows.iter().map(|(r, _)| r.incomplete).collect()),
        b(rows.iter().map(|(r, _)| r.secondary).collect()),
        b(rows.iter().map(|(r, _)| r.auto_assigned).collect()),
        f(rows.iter().map(|_| None).collect()),
        i(rows.iter().map(|_| None).collect()),
        i(rows.iter().map(|_| None).collect()),
        i(rows.iter().map(|_| None).collect()),
        i(rows.iter().map(|(_, f)| Some(f.idx)).collect()),
        i(rows.iter().map(|(_, f)| f.hole).collect()),
        i(rows.iter().map(|(_, f)| f.section).collect()),
        i(rows.iter().map(|(_, f)| f.hole_section).collect()),
        f(rows.iter().map(|(_, f)| f.lon).collect()),
        f(rows.iter().map(|(_, f)| f.lat).collect()),
        b(rows.iter().map(|(_, f)| f.cache).collect()),
        b(rows.iter().map(|(_, f)| f.projected).collect()),
        b(rows.iter().map(|(_, f)| f.problem).collect()),
        f(rows.iter().map(|(_, f)| f.pace_gap).collect()),
        f(rows.iter().map(|(_, f)| f.positional_gap).collect()),
        f(rows.iter().map(|(_, f)| f.pace).collect()),
        f(rows.iter().map(|(_, f)| f.battery).collect()),
        d(rows.iter().map(|(_, f)| fix_date(f)).collect()),
        f(rows
            .iter()
            .map(|(r, _)| {
                r.start.zip(r.end).map(|(a, b)| ((micros(b) - micros(a)) as f64 / 60e6 * 100.0).round() / 100.0)
            })
            .collect()),
        i(rows.iter().map(|(_, f)| fix_date(f).map(|d| d.year())).collect()),
        i(rows.iter().map(|(_, f)| fix_date(f).map(|d| d.month() as i32)).collect()),
        i(rows.iter().map(|(_, f)| fix_date(f).map(|d| d.day() as i32)).collect()),
        i(rows.iter().map(|(_, f)| fix_date(f).map(|d| d.weekday().number_from_monday() as i32)).collect()),
        i(rows.iter().map(|(_, f)| f.nine).collect()),
        Arc::new(StringArray::from(wkt)),
        b(rows.iter().map(|(_, f)| Some(f.ts.is_none())).collect()),
    ];
    RecordBatch::try_new(silver_schema(), columns).unwrap()
}

/// A session with the fixture as `silver.fact_telemetry_event`.
fn session_with(rows: &[(R, F)]) -> SessionContext {
    session_with_profiles(rows, "")
}

/// A session over `rows` whose course profiles (`seed.course_profiles`) are the `courses.toml`
/// text `profiles` (the fixture's courses have none: they stay in UTC, flagged).
fn session_with_profiles(rows: &[(R, F)], profiles: &str) -> SessionContext {
    let ctx = memory_session();
    set_silver(&ctx, rows);
    let profiles = tmctl::courses::parse(profiles, std::path::Path::new("courses.toml")).unwrap();
    tmctl::courses::register_seed(&ctx, &profiles).unwrap();
    ctx
}

fn set_silver(ctx: &SessionContext, rows: &[(R, F)]) {
    let silver = ctx.catalog("datafusion").unwrap().schema("silver").unwrap();
    let table = MemTable::try_new(silver_schema(), vec![vec![silver_batch(rows)]]).unwrap();
    let _ = silver.deregister_table("fact_telemetry_event").unwrap();
    silver.register_table("fact_telemetry_event".into(), Arc::new(table)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The shipped gold DAG, read as specs
// ---------------------------------------------------------------------------------------------

fn dags_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dags")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gold")
}

/// `dags/gold.toml`'s models in the DAG's topological order (the order the executor runs them).
fn gold_models() -> Vec<ModelSpec> {
    let dag = tmctl::dag::load_file(&dags_dir().join("gold.toml")).unwrap_or_else(|d| panic!("gold.toml: {d:?}"));
    let text = std::fs::read_to_string(dags_dir().join("gold.toml")).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let mut specs: BTreeMap<String, ModelSpec> = BTreeMap::new();
    for task in doc["task"].as_array().unwrap() {
        let mut settings = task.as_table().unwrap().clone();
        let id = settings.remove("id").unwrap().as_str().unwrap().to_string();
        if settings.remove("kind").and_then(|k| k.as_str().map(str::to_string)).as_deref() != Some("gold.model") {
            continue; // the wait on silver
        }
        settings.remove("depends_on");
        let spec = ModelSpec::from_settings(&settings, &dags_dir()).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        specs.insert(id, spec);
    }
    dag.topological().filter_map(|t| specs.remove(&t.id)).collect()
}

/// Runs every model of the gold DAG in order; all must publish with every test passing.
async fn run_gold(ctx: &SessionContext) -> BTreeMap<String, ModelRun> {
    run_gold_expecting(ctx, true).await
}

/// Runs every shipped model on `ctx`; every data test passes, except the profile warning when
/// `unprofiled` (some course has no profile).
async fn run_gold_expecting(ctx: &SessionContext, unprofiled: bool) -> BTreeMap<String, ModelRun> {
    let publisher = MemoryPublisher::new(ctx);
    let mut runs = BTreeMap::new();
    for model in gold_models() {
        let run = run_model(ctx, &model, &publisher, Refresh::Full).await.unwrap_or_else(|e| panic!("{e}"));
        for t in &run.tests {
            // A course without a profile is a warning naming it, not an error.
            let expected =
                if t.name == "course_has_profile" && unprofiled { TestStatus::Warn } else { TestStatus::Pass };
            assert_eq!(t.status, expected, "{}: {}", model.table, t.describe());
        }
        assert!(run.published, "{}", model.table);
        runs.insert(model.table.clone(), run);
    }
    runs
}

// ---------------------------------------------------------------------------------------------
// Comparing a table with expectations
// ---------------------------------------------------------------------------------------------

/// An expected cell.
#[derive(Debug, Clone)]
enum V {
    /// NULL.
    N,
    I(i64),
    /// A double, compared to 1e-9 relative.
    F(f64),
    S(&'static str),
    B(bool),
    /// A date `YYYY-MM-DD`.
    D(&'static str),
    /// A UTC timestamp `YYYY-MM-DDTHH:MM:SS`.
    T(&'static str),
    /// A list of strings.
    L(&'static [&'static str]),
}
use V::*;

fn matches(expected: &V, col: &dyn Array, row: usize) -> Result<(), String> {
    if col.is_null(row) {
        return if matches!(expected, N) { Ok(()) } else { Err("NULL".into()) };
    }
    let actual = array_value_to_string(col, row).unwrap();
    let ok = match expected {
        N => false,
        I(i) => actual == i.to_string(),
        F(f) => actual.parse::<f64>().is_ok_and(|a| (a - f).abs() <= 1e-9 * f.abs().max(1.0)),
        S(s) => actual == *s,
        B(b) => actual == b.to_string(),
        D(d) => actual == *d,
        T(t) => actual.trim_end_matches("+00:00").trim_end_matches('Z') == *t,
        L(items) => actual == format!("[{}]", items.join(", ")),
    };
    if ok { Ok(()) } else { Err(actual) }
}

/// Reads `gold.<model>` ordered by `order_by` and compares every column and cell with `expected`
/// (column names in table order, one value per row).
async fn check(ctx: &SessionContext, model: &str, order_by: &str, expected: &[(&str, Vec<V>)]) {
    let sql = format!("SELECT * FROM gold.{model} ORDER BY {order_by}");
    let df = ctx.sql(&sql).await.unwrap_or_else(|e| panic!("{model}: {e}"));
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batch = concat_batches(&schema, &df.collect().await.unwrap()).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let wanted: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, wanted, "{model}: columns");
    let mut problems = Vec::new();
    for (c, (name, values)) in expected.iter().enumerate() {
        assert_eq!(values.len(), batch.num_rows(), "{model}: rows (column {name})");
        for (row, v) in values.iter().enumerate() {
            if let Err(actual) = matches(v, batch.column(c).as_ref(), row) {
                problems.push(format!("{model} row {row} `{name}`: expected {v:?}, found {actual}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Every model against hand-computed values
// ---------------------------------------------------------------------------------------------

#[test]
fn fixture_matches_the_silver_contract() {
    // Same names and types as the silver module writes.
    let ours: Vec<(String, DataType)> =
        silver_schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    let theirs: Vec<(String, DataType)> =
        tmctl::silver::schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    assert_eq!(ours, theirs);
    assert_eq!(fixture_rows().len(), 21);
}

#[tokio::test]
async fn every_model_matches_hand_computed_values() {
    let ctx = session_with(&fixture_rows());
    let runs = run_gold(&ctx).await;
    assert_eq!(runs.len(), 38);

    // silver_round_latest: lf-2 came twice (2 rows on 06-01, 4 on 06-02) → latest 06-02, 2 dates, 6 rows.
    check(
        &ctx,
        "silver_round_latest",
        "course_id, round_id",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("round_id", vec![S("cs-1"), S("cs-2"), S("lf-1"), S("lf-2"), S("lf-3")]),
            (
                "latest_ingest_date",
                vec![D("2025-06-03"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02"), D("2025-06-02")],
            ),
            (
                "first_ingest_date",
                vec![D("2025-06-03"), D("2025-07-06"), D("2025-06-02"), D("2025-06-01"), D("2025-06-02")],
            ),
            ("ingest_dates_seen", vec![I(1), I(1), I(1), I(2), I(1)]),
            ("rows_all_ingest_dates", vec![I(5), I(2), I(5), I(6), I(3)]),
        ],
    )
    .await;

    // course_topology (non-padding latest rows):
    //   creekside nine 1: cs-1 hole 1 s1 → 1 fix; nine 2: cs-1 h10 s28, h18 s54, h18 s53 + cs-2 h10 s28,
    //     h11 s31 → sections 28..54, holes 10..18, 3 distinct holes, 2 rounds, 5 fixes. Max hole 18 →
    //     Front/Back Nine.
    //   loopfalls nine 1: lf-1 (h1 s1, h9 s27), lf-2 (h1 s1, h5 s14, h9 s26, h9 s27), lf-3 (h1 s1, h2 s4)
    //     → sections 1..27, holes {1,2,5,9}, 3 rounds, 2+4+2 = 8 fixes; nine 2: lf-1 h1 s28, h9 s54.
    //     No hole above 9 and two nines → a loop course: Loop 1 / Loop 2.
    check(
        &ctx,
        "course_topology",
        "course_id, nine_number",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls")]),
            ("nine_number", vec![I(1), I(2), I(1), I(2)]),
            ("unit_id", vec![I(1), I(2), I(1), I(2)]),
            ("unit_name", vec![S("Front Nine"), S("Back Nine"), S("Loop 1"), S("Loop 2")]),
            ("section_start", vec![I(1), I(28), I(1), I(28)]),
            ("section_end", vec![I(1), I(54), I(27), I(54)]),
            ("min_hole_number", vec![I(1), I(10), I(1), I(1)]),
            ("max_hole_number", vec![I(1), I(18), I(9), I(9)]),
            ("holes_observed", vec![I(1), I(3), I(4), I(2)]),
            ("rounds_observed", vec![I(1), I(2), I(3), I(1)]),
            ("fix_count", vec![I(1), I(5), I(8), I(2)]),
            ("unit_count", vec![I(2), I(2), I(2), I(2)]),
        ],
    )
    .await;

    // fact_rounds, rows cs-1, cs-2, lf-1, lf-2, lf-3 (non-padding fixes of the latest delivery):
    //   cs-1: 4 fixes 07:00, 09:30, 11:30, NULL → 4.5 h = 16200 s; pace (0+90+100)/3 (one NULL);
    //         gap (0+45+20)/3; positional (0+3+1)/3; battery (100+95+90)/3 = 95; 1 projected, 1 cached,
    //         1 without timestamp → rates 1/4; holes {1,10,18}, nines {1,2} → '18'.
    //   cs-2: 13:00–14:00 = 3600 s; pace (200+300)/2 = 250; gap 125; positional 4.5; battery
    //         (18+5)/2 = 11.5, both < 20, 5 < 10; 2 problems → problem_rate 1; one nine but max section
    //         31 > 27 → '18'; first tee section min(28, 31) = 28; shotgun start 10.
    //   lf-1: 08:00–12:00 = 14400 s; pace (0+60+120−30)/4 = 37.5; gap (0+30+60−15)/4 = 18.75;
    //         positional (0+1.5+2−0.5)/4 = 0.75; battery (90+85+80+75)/4 = 82.5; 1 cached of 4;
    //         nines {1,2} → '18' (max section 54 is not > 54); Monday.
    //   lf-2: 15:00–17:00 = 7200 s; pace (10+20+26+30)/4 = 21.5; gap (5+10+13)/3 = 28/3; positional
    //         (0.5+1+1.5)/3 = 1; battery (30+15+10+8)/4 = 15.75, three < 20, one < 10 (10 is not);
    //         one nine, max section 27 → '9'; Sunday = 7. The stale delivery (pace 999) is ignored.
    //   lf-3: no timestamps → duration, dates NULL; ts_missing_rate 2/2 = 1; NULL pace and battery.
    let rounds = || vec![S("cs-1"), S("cs-2"), S("lf-1"), S("lf-2"), S("lf-3")];
    check(
        &ctx,
        "fact_rounds",
        "course_id, round_id",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("round_id", rounds()),
            ("ingest_date", vec![D("2025-06-03"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02"), D("2025-06-02")]),
            (
                "round_start_ts",
                vec![
                    T("2025-06-03T07:00:00"),
                    T("2025-07-05T13:00:00"),
                    T("2025-06-02T08:00:00"),
                    T("2025-06-01T15:00:00"),
                    N,
                ],
            ),
            (
                "round_end_ts",
                vec![
                    T("2025-06-03T11:30:00"),
                    T("2025-07-05T14:00:00"),
                    T("2025-06-02T12:00:00"),
                    T("2025-06-01T17:00:00"),
                    N,
                ],
            ),
            ("duration_sec", vec![F(16200.0), F(3600.0), F(14400.0), F(7200.0), N]),
            ("round_duration_minutes", vec![F(270.0), F(60.0), F(240.0), F(120.0), N]),
            ("fix_count", vec![I(4), I(2), I(4), I(4), I(2)]),
            ("ts_missing_fix_count", vec![I(1), I(0), I(0), I(0), I(2)]),
            ("holes_played", vec![I(3), I(2), I(2), I(3), I(2)]),
            ("nines_played", vec![I(2), I(1), I(2), I(1), I(1)]),
            ("max_hole_number", vec![I(18), I(11), I(9), I(9), I(2)]),
            ("min_section_number", vec![I(1), I(28), I(1), I(1), I(1)]),
            ("max_section_number", vec![I(54), I(31), I(54), I(27), I(4)]),
            ("first_tee_section_number", vec![I(1), I(28), I(1), I(1), I(1)]),
            ("start_hole", vec![I(1), I(10), I(1), I(1), I(1)]),
            ("start_section", vec![I(1), I(28), I(1), I(1), I(1)]),
            ("end_section", vec![I(54), I(36), I(54), I(27), N]),
            ("is_nine_hole", vec![B(false), B(false), B(false), B(true), B(false)]),
            ("is_complete", vec![B(true), B(false), B(true), B(true), B(false)]),
            ("avg_pace_sec", vec![F(190.0 / 3.0), F(250.0), F(37.5), F(21.5), N]),
            ("max_pace_sec", vec![F(100.0), F(300.0), F(120.0), F(30.0), N]),
            ("avg_pace_gap_sec", vec![F(65.0 / 3.0), F(125.0), F(18.75), F(28.0 / 3.0), N]),
            ("avg_positional_gap", vec![F(4.0 / 3.0), F(4.5), F(0.75), F(1.0), N]),
            ("projected_fix_count", vec![I(1), I(0), I(0), I(1), I(0)]),
            ("problem_fix_count", vec![I(0), I(2), I(0), I(1), I(0)]),
            ("min_battery_pct", vec![F(90.0), F(5.0), F(75.0), F(8.0), N]),
            ("avg_battery_pct", vec![F(95.0), F(11.5), F(82.5), F(15.75), N]),
            ("low_battery_fix_count", vec![I(0), I(2), I(0), I(3), I(0)]),
            ("critical_battery_fix_count", vec![I(0), I(1), I(0), I(1), I(0)]),
            ("cached_fix_count", vec![I(1), I(0), I(1), I(0), I(0)]),
            ("projected_rate", vec![F(0.25), F(0.0), F(0.0), F(0.25), F(0.0)]),
            ("problem_rate", vec![F(0.0), F(1.0), F(0.0), F(0.25), F(0.0)]),
            ("cached_rate", vec![F(0.25), F(0.0), F(0.25), F(0.0), F(0.0)]),
            ("ts_missing_rate", vec![F(0.25), F(0.0), F(0.0), F(0.0), F(1.0)]),
            ("round_length", vec![S("18"), S("18"), S("18"), S("9"), S("9")]),
            ("round_date", vec![D("2025-06-03"), D("2025-07-05"), D("2025-06-02"), D("2025-06-01"), N]),
            ("round_year", vec![I(2025), I(2025), I(2025), I(2025), N]),
            ("round_month", vec![I(6), I(7), I(6), I(6), N]),
            ("round_day", vec![I(3), I(5), I(2), I(1), N]),
            // ISO: Tuesday 2, Saturday 6, Monday 1, Sunday 7.
            ("round_weekday", vec![I(2), I(6), I(1), I(7), N]),
            // No profile: local time is UTC, flagged.
            ("timezone", vec![S("UTC"); 5]),
            ("profile_missing", vec![B(true); 5]),
            (
                "round_start_local",
                vec![
                    T("2025-06-03T07:00:00"),
                    T("2025-07-05T13:00:00"),
                    T("2025-06-02T08:00:00"),
                    T("2025-06-01T15:00:00"),
                    N,
                ],
            ),
            ("round_date_local", vec![D("2025-06-03"), D("2025-07-05"), D("2025-06-02"), D("2025-06-01"), N]),
            ("round_hour_local", vec![I(7), I(13), I(8), I(15), N]),
        ],
    )
    .await;

    // fact_round_hole_performance: one row per (round, hole, nine). lf-1 plays holes 1 and 9 twice:
    // four rows, loop 1 and loop 2 kept apart by nine_number. lf-2 hole 9 has two fixes 16:45 and
    // 17:00 → 900 s, pace (26+30)/2 = 28, gap 13 (17:00 has none). cs-1 hole 18: 11:30 and a fix
    // without timestamp → 0 s, pace 100 (11:30 has none), gap 20. lf-3: no timestamps, no pace.
    let t = |s: &'static str| T(s);
    check(
        &ctx,
        "fact_round_hole_performance",
        "course_id, round_id, hole_number, nine_number",
        &[
            ("course_id", [vec![S("creekside"); 5], vec![S("loopfalls"); 9]].concat()),
            (
                "round_id",
                vec![
                    S("cs-1"),
                    S("cs-1"),
                    S("cs-1"),
                    S("cs-2"),
                    S("cs-2"),
                    S("lf-1"),
                    S("lf-1"),
                    S("lf-1"),
                    S("lf-1"),
                    S("lf-2"),
                    S("lf-2"),
                    S("lf-2"),
                    S("lf-3"),
                    S("lf-3"),
                ],
            ),
            (
                "hole_number",
                vec![I(1), I(10), I(18), I(10), I(11), I(1), I(1), I(9), I(9), I(1), I(5), I(9), I(1), I(2)],
            ),
            ("nine_number", vec![I(1), I(2), I(2), I(2), I(2), I(1), I(2), I(1), I(2), I(1), I(1), I(1), I(1), I(1)]),
            (
                "hole_start_time",
                vec![
                    t("2025-06-03T07:00:00"),
                    t("2025-06-03T09:30:00"),
                    t("2025-06-03T11:30:00"),
                    t("2025-07-05T13:00:00"),
                    t("2025-07-05T14:00:00"),
                    t("2025-06-02T08:00:00"),
                    t("2025-06-02T10:10:00"),
                    t("2025-06-02T10:00:00"),
                    t("2025-06-02T12:00:00"),
                    t("2025-06-01T15:00:00"),
                    t("2025-06-01T16:00:00"),
                    t("2025-06-01T16:45:00"),
                    N,
                    N,
                ],
            ),
            (
                "hole_end_time",
                vec![
                    t("2025-06-03T07:00:00"),
                    t("2025-06-03T09:30:00"),
                    t("2025-06-03T11:30:00"),
                    t("2025-07-05T13:00:00"),
                    t("2025-07-05T14:00:00"),
                    t("2025-06-02T08:00:00"),
                    t("2025-06-02T10:10:00"),
                    t("2025-06-02T10:00:00"),
                    t("2025-06-02T12:00:00"),
                    t("2025-06-01T15:00:00"),
                    t("2025-06-01T16:00:00"),
                    t("2025-06-01T17:00:00"),
                    N,
                    N,
                ],
            ),
            ("duration_sec", [vec![F(0.0); 11], vec![F(900.0), N, N]].concat()),
            ("fix_count", vec![I(1), I(1), I(2), I(1), I(1), I(1), I(1), I(1), I(1), I(1), I(1), I(2), I(1), I(1)]),
            (
                "avg_pace_sec",
                vec![
                    F(0.0),
                    F(90.0),
                    F(100.0),
                    F(200.0),
                    F(300.0),
                    F(0.0),
                    F(120.0),
                    F(60.0),
                    F(-30.0),
                    F(10.0),
                    F(20.0),
                    F(28.0),
                    N,
                    N,
                ],
            ),
            (
                "max_pace_sec",
                vec![
                    F(0.0),
                    F(90.0),
                    F(100.0),
                    F(200.0),
                    F(300.0),
                    F(0.0),
                    F(120.0),
                    F(60.0),
                    F(-30.0),
                    F(10.0),
                    F(20.0),
                    F(30.0),
                    N,
                    N,
                ],
            ),
            (
                "avg_pace_gap_sec",
                vec![
                    F(0.0),
                    F(45.0),
                    F(20.0),
                    F(100.0),
                    F(150.0),
                    F(0.0),
                    F(60.0),
                    F(30.0),
                    F(-15.0),
                    F(5.0),
                    F(10.0),
                    F(13.0),
                    N,
                    N,
                ],
            ),
            (
                "round_was_completed",
                [vec![B(true); 3], vec![B(false); 2], vec![B(true); 7], vec![B(false); 2]].concat(),
            ),
            (
                "course_unit",
                vec![
                    S("Front Nine"),
                    S("Back Nine"),
                    S("Back Nine"),
                    S("Back Nine"),
                    S("Back Nine"),
                    S("Loop 1"),
                    S("Loop 2"),
                    S("Loop 1"),
                    S("Loop 2"),
                    S("Loop 1"),
                    S("Loop 1"),
                    S("Loop 1"),
                    S("Loop 1"),
                    S("Loop 1"),
                ],
            ),
            (
                "round_date_local",
                [
                    vec![D("2025-06-03"); 3],
                    vec![D("2025-07-05"); 2],
                    vec![D("2025-06-02"); 4],
                    vec![D("2025-06-01"); 3],
                    vec![N; 2],
                ]
                .concat(),
            ),
            ("nines_played", [vec![I(2); 3], vec![I(1); 2], vec![I(2); 4], vec![I(1); 5]].concat()),
            ("ingest_date", [vec![D("2025-06-03"); 3], vec![D("2025-07-06"); 2], vec![D("2025-06-02"); 9]].concat()),
        ],
    )
    .await;

    // pace_summary_by_round and signal_quality_rounds: projections of fact_rounds (values above).
    check(
        &ctx,
        "pace_summary_by_round",
        "course_id, round_id",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("round_id", rounds()),
            (
                "round_start_ts",
                vec![
                    T("2025-06-03T07:00:00"),
                    T("2025-07-05T13:00:00"),
                    T("2025-06-02T08:00:00"),
                    T("2025-06-01T15:00:00"),
                    N,
                ],
            ),
            (
                "round_end_ts",
                vec![
                    T("2025-06-03T11:30:00"),
                    T("2025-07-05T14:00:00"),
                    T("2025-06-02T12:00:00"),
                    T("2025-06-01T17:00:00"),
                    N,
                ],
            ),
            ("fix_count", vec![I(4), I(2), I(4), I(4), I(2)]),
            ("avg_pace", vec![F(190.0 / 3.0), F(250.0), F(37.5), F(21.5), N]),
            ("avg_pace_gap", vec![F(65.0 / 3.0), F(125.0), F(18.75), F(28.0 / 3.0), N]),
            ("avg_positional_gap", vec![F(4.0 / 3.0), F(4.5), F(0.75), F(1.0), N]),
            ("ingest_date", vec![D("2025-06-03"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02"), D("2025-06-02")]),
        ],
    )
    .await;
    check(
        &ctx,
        "signal_quality_rounds",
        "course_id, round_id",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("round_id", rounds()),
            ("fix_count", vec![I(4), I(2), I(4), I(4), I(2)]),
            ("projected_fix_count", vec![I(1), I(0), I(0), I(1), I(0)]),
            ("problem_fix_count", vec![I(0), I(2), I(0), I(1), I(0)]),
            ("projected_rate", vec![F(0.25), F(0.0), F(0.0), F(0.25), F(0.0)]),
            ("problem_rate", vec![F(0.0), F(1.0), F(0.0), F(0.25), F(0.0)]),
            ("ingest_date", vec![D("2025-06-03"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02"), D("2025-06-02")]),
        ],
    )
    .await;

    // device_health_errors: fixes with battery < 20: cs-2 18 (low) and 5 (critical); lf-2 15 and 10
    // (low: 10 ≤ x < 20) and 8 (critical). The stale lf-2 delivery's 12 % is not there.
    check(
        &ctx,
        "device_health_errors",
        "course_id, round_id, location_index",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("round_id", vec![S("cs-2"), S("cs-2"), S("lf-2"), S("lf-2"), S("lf-2")]),
            ("location_index", vec![I(0), I(1), I(1), I(2), I(3)]),
            ("device_id", vec![S("dev-C"), S("dev-C"), S("dev-B"), S("dev-B"), S("dev-B")]),
            (
                "fix_timestamp",
                vec![
                    T("2025-07-05T13:00:00"),
                    T("2025-07-05T14:00:00"),
                    T("2025-06-01T16:00:00"),
                    T("2025-06-01T16:45:00"),
                    T("2025-06-01T17:00:00"),
                ],
            ),
            ("battery_percentage", vec![F(18.0), F(5.0), F(15.0), F(10.0), F(8.0)]),
            (
                "health_flag",
                vec![
                    S("battery_low"),
                    S("battery_critical"),
                    S("battery_low"),
                    S("battery_low"),
                    S("battery_critical"),
                ],
            ),
            ("ingest_date", vec![D("2025-07-06"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02"), D("2025-06-02")]),
        ],
    )
    .await;

    // course_configuration_analysis:
    //   creekside: 2 rounds, max section 54 → 18-hole; max hole 18 → not a loop; complete 1/2 = 50 %,
    //     incomplete 50 %, nine-hole 0 %, full 100 %; start holes {1, 10} → 2, shotgun 1/2 = 50 %;
    //     fixes 4, 2 → avg 3; score 2·10 + 20 + 0 (0 % ≤ 20) + 5 (50 % > 10) = 45.
    //   loopfalls: 3 rounds, max section 54 → 18-hole; max hole 9 and a round with 2 nines → loop;
    //     complete 2/3 = 66.7 %, incomplete 33.3 %, nine-hole (lf-2) 33.3 %, full 66.7 %; start hole
    //     {1} → 1, shotgun 0 %; fixes 4, 4, 2 → avg 10/3 → 3; score 10 + 20 + 10 (33.3 > 20) + 5 = 45.
    //   The per-nine shares are NULL (not 27-hole courses).
    check(
        &ctx,
        "course_configuration_analysis",
        "course_id",
        &[
            ("course_id", vec![S("creekside"), S("loopfalls")]),
            ("total_rounds", vec![I(2), I(3)]),
            ("likely_course_type", vec![S("18-hole"), S("18-hole")]),
            ("is_loop_course", vec![B(false), B(true)]),
            ("max_section_seen", vec![I(54), I(54)]),
            ("max_holes_in_round", vec![I(3), I(3)]),
            ("max_nines_in_round", vec![I(2), I(2)]),
            ("pct_complete", vec![F(50.0), F(66.7)]),
            ("pct_incomplete", vec![F(50.0), F(33.3)]),
            ("pct_nine_hole", vec![F(0.0), F(33.3)]),
            ("pct_full_rounds", vec![F(100.0), F(66.7)]),
            ("unique_start_holes", vec![I(2), I(1)]),
            ("pct_shotgun_starts", vec![F(50.0), F(0.0)]),
            ("pct_single_nine", vec![N, N]),
            ("pct_two_nines", vec![N, N]),
            ("pct_all_three_nines", vec![N, N]),
            ("avg_locations_per_round", vec![F(3.0), F(3.0)]),
            ("min_locations_per_round", vec![I(2), I(2)]),
            ("max_locations_per_round", vec![I(4), I(4)]),
            ("course_complexity_score", vec![I(45), I(45)]),
        ],
    )
    .await;

    // course_start_hole_distribution: creekside starts 1 (cs-1, complete) and 10 (cs-2, not): 1 of 2
    // rounds each = 50 %; of the 1 complete round: 100 % and 0 %. loopfalls: all 3 from hole 1, 2
    // complete. Section sanity: cs-2 starts at section 28 (configured and observed).
    check(
        &ctx,
        "course_start_hole_distribution",
        "course_id, start_hole",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls")]),
            ("start_hole", vec![I(1), I(10), I(1)]),
            ("rounds_with_this_start", vec![I(1), I(1), I(3)]),
            ("complete_rounds_with_this_start", vec![I(1), I(0), I(2)]),
            ("total_rounds", vec![I(2), I(2), I(3)]),
            ("total_complete_rounds", vec![I(1), I(1), I(2)]),
            ("distinct_start_holes", vec![I(2), I(2), I(1)]),
            ("pct_rounds_with_this_start", vec![F(50.0), F(50.0), F(100.0)]),
            ("pct_complete_rounds_with_this_start", vec![F(100.0), F(0.0), F(100.0)]),
            ("min_min_section_number", vec![I(1), I(28), I(1)]),
            ("max_min_section_number", vec![I(1), I(28), I(1)]),
            ("min_start_section", vec![I(1), I(28), I(1)]),
            ("max_start_section", vec![I(1), I(28), I(1)]),
            ("min_first_tee_section_number", vec![I(1), I(28), I(1)]),
            ("max_first_tee_section_number", vec![I(1), I(28), I(1)]),
        ],
    )
    .await;

    // course_rounds_by_month: creekside June 1 + July 1 (50 % each); loopfalls lf-3 without
    // timestamps in the 1900-01-01 sentinel (1/3 = 33.33 %), lf-1 and lf-2 in June (2/3 = 66.67 %).
    check(
        &ctx,
        "course_rounds_by_month",
        "course_id, month_start",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls")]),
            ("month_start", vec![D("2025-06-01"), D("2025-07-01"), D("1900-01-01"), D("2025-06-01")]),
            ("month_number", vec![I(6), I(7), I(0), I(6)]),
            ("month_name", vec![S("June"), S("July"), S("Unknown (missing timestamp)"), S("June")]),
            ("rounds", vec![I(1), I(1), I(1), I(2)]),
            ("pct_total", vec![F(50.0), F(50.0), F(33.33), F(66.67)]),
        ],
    )
    .await;

    // course_rounds_by_weekday (ISO): cs-1 Tuesday 2, cs-2 Saturday 6; lf-3 unknown 0, lf-1 Monday 1,
    // lf-2 Sunday 7.
    check(
        &ctx,
        "course_rounds_by_weekday",
        "course_id, weekday_number",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("weekday_number", vec![I(2), I(6), I(0), I(1), I(7)]),
            (
                "weekday_name",
                vec![S("Tuesday"), S("Saturday"), S("Unknown (missing timestamp)"), S("Monday"), S("Sunday")],
            ),
            ("rounds", vec![I(1), I(1), I(1), I(1), I(1)]),
        ],
    )
    .await;

    // telemetry_completeness_summary (all latest rows):
    //   creekside: 5 + 2 = 7 rows, 1 padding, 6 real; no timestamp: cs-1's padding and its fix 3 = 2
    //     (1 real) → 1/7 = 14.29 %, 2/7 = 28.57 %, 1/6 = 16.67 %.
    //   loopfalls: 5 + 4 + 3 = 12 rows, 2 padding, 10 real; no timestamp: lf-1 padding + lf-3's 3 = 4
    //     (2 real) → 2/12 = 16.67 %, 4/12 = 33.33 %, 2/10 = 20 %.
    check(
        &ctx,
        "telemetry_completeness_summary",
        "course_id",
        &[
            ("course_id", vec![S("creekside"), S("loopfalls")]),
            ("total_rows", vec![I(7), I(12)]),
            ("padding_rows", vec![I(1), I(2)]),
            ("non_padding_rows", vec![I(6), I(10)]),
            ("ts_missing_rows", vec![I(2), I(4)]),
            ("ts_missing_non_padding_rows", vec![I(1), I(2)]),
            ("pct_padding_total", vec![F(14.29), F(16.67)]),
            ("pct_ts_missing_total", vec![F(28.57), F(33.33)]),
            ("pct_ts_missing_non_padding", vec![F(16.67), F(20.0)]),
        ],
    )
    .await;

    // data_quality_overview (real fixes): creekside 6, one missing = 16.67 %, two = 33.33 %:
    //   pace (cs-1 #2), pace_gap and positional_gap (cs-1 #3), goal_time (cs-2 ×2 → 33.33),
    //   coordinates (cs-2 #1 latitude), fix_timestamp (cs-1 #3), battery (cs-1 #3), timestamp flag
    //   (cs-1 #3), is_nine_hole (cs-2 ×2 → 33.33).
    //   tier1 = 100 − (50/3·3 + 100/3)/4 = 100 − 250/12 = 79.17 → 79.2
    //   tier2 = 100 − (50/3 + 50/3 + 0 + 0)/4 = 91.67 → 91.7
    //   tier3 = 100 − (50/3 + 0 + 50/3)/3 = 88.89 → 88.9
    //   tier4 = 100 − (0 + 100/3 + 0)/3 = 88.89 → 88.9
    //   score = (79.167 + 91.667 + 88.889 + 88.889)/4 = 87.15 → 87.2
    // loopfalls 10: lf-3's two fixes lack pace, goal_time, coordinates, timestamp, current_nine,
    //   battery, the three flags, end_section and is_nine_hole (20 %); lf-2 #3 also lacks pace_gap and
    //   positional_gap (3/10 = 30 %).
    //   tier1 = 100 − (20+30+30+20)/4 = 75; tier2 = 100 − (20+20)/4 = 90; tier3 = 100 − 60/3 = 80;
    //   tier4 = 100 − 20/3 = 93.33 → 93.3; score = (75 + 90 + 80 + 93.33)/4 = 84.58 → 84.6
    check(
        &ctx,
        "data_quality_overview",
        "course_id",
        &[
            ("course_id", vec![S("creekside"), S("loopfalls")]),
            ("events", vec![I(6), I(10)]),
            ("pct_missing_pace", vec![F(16.67), F(20.0)]),
            ("pct_missing_pace_gap", vec![F(16.67), F(30.0)]),
            ("pct_missing_positional_gap", vec![F(16.67), F(30.0)]),
            ("pct_missing_goal_time", vec![F(33.33), F(20.0)]),
            ("pct_missing_coordinates", vec![F(16.67), F(20.0)]),
            ("pct_missing_fix_timestamp", vec![F(16.67), F(20.0)]),
            ("pct_missing_hole_number", vec![F(0.0), F(0.0)]),
            ("pct_missing_section_number", vec![F(0.0), F(0.0)]),
            ("pct_missing_hole_section", vec![F(0.0), F(0.0)]),
            ("pct_missing_nine_number", vec![F(0.0), F(0.0)]),
            ("pct_missing_current_nine", vec![F(0.0), F(20.0)]),
            ("pct_missing_battery", vec![F(16.67), F(20.0)]),
            ("pct_missing_is_cache", vec![F(0.0), F(20.0)]),
            ("pct_missing_is_projected", vec![F(0.0), F(20.0)]),
            ("pct_missing_is_problem", vec![F(0.0), F(20.0)]),
            ("pct_timestamp_missing_flag", vec![F(16.67), F(20.0)]),
            ("pct_missing_start_hole", vec![F(0.0), F(0.0)]),
            ("pct_missing_start_section", vec![F(0.0), F(0.0)]),
            ("pct_missing_end_section", vec![F(0.0), F(20.0)]),
            ("pct_missing_is_nine_hole", vec![F(33.33), F(20.0)]),
            ("pct_missing_is_complete", vec![F(0.0), F(0.0)]),
            ("tier1_pace_score", vec![F(79.2), F(75.0)]),
            ("tier2_position_score", vec![F(91.7), F(90.0)]),
            ("tier3_device_score", vec![F(88.9), F(80.0)]),
            ("tier4_round_context_score", vec![F(88.9), F(93.3)]),
            ("data_quality_score", vec![F(87.2), F(84.6)]),
            ("overall_quality_score", vec![F(87.2), F(84.6)]),
        ],
    )
    .await;

    // critical_column_gaps:
    //   creekside (6): pace, pace_gap, positional, latitude, timestamp, battery 16.67 %, goal_time
    //     33.33 %, hole/section/start_hole 0; worst pace = max(16.67, 16.67); device health =
    //     (1 battery + 0 projected)/12 = 8.33 %; round config = (2 goal_time + 0 start_hole)/12 =
    //     16.67 %. Pace 16.67 > 5 → MINOR. Usability = 100 − (0.4·16.667 + 0.3·(0 + 16.667)/2 +
    //     0.2·8.333 + 0.1·16.667) = 100 − (6.667 + 2.5 + 1.667 + 1.667) = 87.5.
    //   loopfalls (10): pace 20, pace_gap 30, positional 30, latitude 20, timestamp 20, battery 20,
    //     goal_time 20; worst 30 → WARNING; device health (2 + 2)/20 = 20 % (not > 20 → GOOD);
    //     round config (2 + 0)/20 = 10 %. Usability = 100 − (12 + 3 + 4 + 1) = 80; worst pace > 20 →
    //     check the pace algorithm.
    check(
        &ctx,
        "critical_column_gaps",
        "course_id",
        &[
            ("course_id", vec![S("creekside"), S("loopfalls")]),
            ("total_events", vec![I(6), I(10)]),
            ("pct_missing_pace", vec![F(16.67), F(20.0)]),
            ("pct_missing_pace_gap", vec![F(16.67), F(30.0)]),
            ("pct_missing_positional_gap", vec![F(16.67), F(30.0)]),
            ("pct_missing_hole", vec![F(0.0), F(0.0)]),
            ("pct_missing_section", vec![F(0.0), F(0.0)]),
            ("pct_missing_latitude", vec![F(16.67), F(20.0)]),
            ("pct_missing_timestamp", vec![F(16.67), F(20.0)]),
            ("pct_missing_battery", vec![F(16.67), F(20.0)]),
            ("pct_missing_start_hole", vec![F(0.0), F(0.0)]),
            ("pct_missing_goal_time", vec![F(33.33), F(20.0)]),
            ("worst_pace_missing_pct", vec![F(16.67), F(30.0)]),
            ("device_health_missing_pct", vec![F(8.33), F(20.0)]),
            ("round_config_missing_pct", vec![F(16.67), F(10.0)]),
            ("pace_data_status", vec![S("🟡 MINOR: Some pace gaps"), S("🟠 WARNING: Pace analysis degraded")]),
            (
                "location_data_status",
                vec![S("🟢 GOOD: Hole assignment complete"), S("🟢 GOOD: Hole assignment complete")],
            ),
            (
                "device_health_status",
                vec![S("🟢 GOOD: Device health data complete"), S("🟢 GOOD: Device health data complete")],
            ),
            (
                "round_config_status",
                vec![S("🟢 GOOD: Round configuration complete"), S("🟢 GOOD: Round configuration complete")],
            ),
            ("usability_score", vec![F(87.5), F(80.0)]),
            (
                "top_recommendation",
                vec![S("Data quality acceptable"), S("Check the pace algorithm: pace is missing for many fixes")],
            ),
        ],
    )
    .await;

    // dim_course: the models above joined per course; creekside's rounds are both '18', loopfalls has
    // '18' (lf-1) and '9' (lf-2, lf-3), sorted as text; units as named by course_topology.
    check(
        &ctx,
        "dim_course",
        "course_id",
        &[
            ("course_id", vec![S("creekside"), S("loopfalls")]),
            ("likely_course_type", vec![S("18-hole"), S("18-hole")]),
            ("is_loop_course", vec![B(false), B(true)]),
            ("max_section_seen", vec![I(54), I(54)]),
            ("max_holes_in_round", vec![I(3), I(3)]),
            ("unique_start_holes", vec![I(2), I(1)]),
            ("pct_shotgun_starts", vec![F(50.0), F(0.0)]),
            ("pct_nine_hole", vec![F(0.0), F(33.3)]),
            ("pct_full_rounds", vec![F(100.0), F(66.7)]),
            ("course_complexity_score", vec![I(45), I(45)]),
            ("data_quality_score", vec![F(87.2), F(84.6)]),
            ("overall_quality_score", vec![F(87.2), F(84.6)]),
            ("pct_missing_pace", vec![F(16.67), F(20.0)]),
            ("pct_missing_pace_gap", vec![F(16.67), F(30.0)]),
            ("pct_missing_hole_number", vec![F(0.0), F(0.0)]),
            ("pct_missing_section_number", vec![F(0.0), F(0.0)]),
            ("pct_missing_fix_timestamp", vec![F(16.67), F(20.0)]),
            ("pct_missing_start_hole", vec![F(0.0), F(0.0)]),
            ("total_rows", vec![I(7), I(12)]),
            ("padding_rows", vec![I(1), I(2)]),
            ("non_padding_rows", vec![I(6), I(10)]),
            ("pct_padding_total", vec![F(14.29), F(16.67)]),
            ("pct_ts_missing_total", vec![F(28.57), F(33.33)]),
            ("pct_ts_missing_non_padding", vec![F(16.67), F(20.0)]),
            ("rounds_observed", vec![I(2), I(3)]),
            ("complete_rounds_observed", vec![I(1), I(2)]),
            ("first_round_start_ts", vec![T("2025-06-03T07:00:00"), T("2025-06-01T15:00:00")]),
            ("last_round_start_ts", vec![T("2025-07-05T13:00:00"), T("2025-06-02T08:00:00")]),
            ("playable_round_lengths", vec![L(&["18"]), L(&["18", "9"])]),
            ("unit_names", vec![L(&["Back Nine", "Front Nine"]), L(&["Loop 1", "Loop 2"])]),
            ("unit_count", vec![I(2), I(2)]),
            // Neither course has a profile.
            ("course_name", vec![N, N]),
            ("timezone", vec![S("UTC"), S("UTC")]),
            ("profile_course_type", vec![N, N]),
            ("volume_profile", vec![N, N]),
            ("peak_season_start_month", vec![N, N]),
            ("peak_season_end_month", vec![N, N]),
            ("profile_missing", vec![B(true), B(true)]),
        ],
    )
    .await;

    // dim_round: all rows of the latest delivery, padding included. lf-2's goal_time is 7200 (not the
    // stale 9999), is_complete true, is_secondary true; it arrived under 2 ingest dates.
    check(
        &ctx,
        "dim_round",
        "course_id, round_id",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("round_id", rounds()),
            ("ingest_date", vec![D("2025-06-03"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02"), D("2025-06-02")]),
            ("ingest_dates_seen", vec![I(1), I(1), I(1), I(2), I(1)]),
            ("total_rows", vec![I(5), I(2), I(5), I(4), I(3)]),
            ("padding_rows", vec![I(1), I(0), I(1), I(0), I(1)]),
            ("non_padding_rows", vec![I(4), I(2), I(4), I(4), I(2)]),
            ("ts_missing_rows", vec![I(2), I(0), I(1), I(0), I(3)]),
            ("ts_missing_non_padding_rows", vec![I(1), I(0), I(0), I(0), I(2)]),
            (
                "first_fix_ts",
                vec![
                    T("2025-06-03T07:00:00"),
                    T("2025-07-05T13:00:00"),
                    T("2025-06-02T08:00:00"),
                    T("2025-06-01T15:00:00"),
                    N,
                ],
            ),
            (
                "last_fix_ts",
                vec![
                    T("2025-06-03T11:30:00"),
                    T("2025-07-05T14:00:00"),
                    T("2025-06-02T12:00:00"),
                    T("2025-06-01T17:00:00"),
                    N,
                ],
            ),
            ("holes_observed", vec![I(3), I(2), I(2), I(3), I(2)]),
            ("nines_observed", vec![I(2), I(1), I(2), I(1), I(1)]),
            ("min_section_number", vec![I(1), I(28), I(1), I(1), I(1)]),
            ("max_section_number", vec![I(54), I(31), I(54), I(27), I(4)]),
            (
                "round_start_time",
                vec![
                    T("2025-06-03T07:00:00"),
                    T("2025-07-05T13:00:00"),
                    T("2025-06-02T08:00:00"),
                    T("2025-06-01T15:00:00"),
                    N,
                ],
            ),
            (
                "round_end_time",
                vec![
                    T("2025-06-03T11:30:00"),
                    T("2025-07-05T14:00:00"),
                    T("2025-06-02T12:00:00"),
                    T("2025-06-01T17:00:00"),
                    N,
                ],
            ),
            ("start_hole", vec![I(1), I(10), I(1), I(1), I(1)]),
            ("start_section", vec![I(1), I(28), I(1), I(1), I(1)]),
            ("end_section", vec![I(54), I(36), I(54), I(27), N]),
            ("current_nine", vec![I(2), I(2), I(2), I(1), N]),
            ("goal_time", vec![I(15000), N, I(14400), I(7200), N]),
            ("goal_name", vec![S("18 holes"), N, S("18 holes"), S("9 holes"), N]),
            ("goal_time_fraction", vec![F(1.0), N, F(1.0), F(0.5), N]),
            ("device_id", vec![S("dev-C"), S("dev-C"), S("dev-A"), S("dev-B"), N]),
            (
                "first_fix",
                vec![
                    S("2025-06-03T07:00:00Z"),
                    S("2025-07-05T13:00:00Z"),
                    S("2025-06-02T08:00:00Z"),
                    S("2025-06-01T15:00:00Z"),
                    N,
                ],
            ),
            (
                "last_fix",
                vec![
                    S("2025-06-03T11:30:00Z"),
                    S("2025-07-05T14:00:00Z"),
                    S("2025-06-02T12:00:00Z"),
                    S("2025-06-01T17:00:00Z"),
                    N,
                ],
            ),
            ("is_nine_hole", vec![B(false), B(false), B(false), B(true), B(false)]),
            ("is_complete", vec![B(true), B(false), B(true), B(true), B(false)]),
            ("is_incomplete", vec![B(false), B(true), B(false), B(false), B(true)]),
            ("is_secondary", vec![B(false), B(false), B(false), B(true), B(false)]),
            ("is_auto_assigned", vec![B(false), B(true), B(false), B(false), B(true)]),
        ],
    )
    .await;

    // dim_device: dev-A = lf-1's 5 rows (battery 90, 85, 80, 75 → avg 82.5; padding without
    // timestamp); dev-B = lf-2's 4 latest rows (30, 15, 10, 8 → 15.75; the stale 50 % is gone);
    // dev-C = cs-1 + cs-2, 7 rows, 2 rounds (100, 95, 90, 18, 5 → 308/5 = 61.6; 2 without timestamp).
    // lf-3 has no device.
    check(
        &ctx,
        "dim_device",
        "device_id",
        &[
            ("device_id", vec![S("dev-A"), S("dev-B"), S("dev-C")]),
            ("total_rows", vec![I(5), I(4), I(7)]),
            ("courses_seen", vec![I(1), I(1), I(1)]),
            ("rounds_seen", vec![I(1), I(1), I(2)]),
            ("first_seen_ts", vec![T("2025-06-02T08:00:00"), T("2025-06-01T15:00:00"), T("2025-06-03T07:00:00")]),
            ("last_seen_ts", vec![T("2025-06-02T12:00:00"), T("2025-06-01T17:00:00"), T("2025-07-05T14:00:00")]),
            ("ts_missing_rows", vec![I(1), I(0), I(2)]),
            ("min_battery_pct", vec![F(75.0), F(8.0), F(5.0)]),
            ("max_battery_pct", vec![F(90.0), F(30.0), F(100.0)]),
            ("avg_battery_pct", vec![F(82.5), F(15.75), F(61.6)]),
        ],
    )
    .await;

    // gold_coverage_audit: loopfalls holds 14 silver rows of which 2 (lf-2's first delivery) are
    // superseded; 1 round arrived twice. Sum of fix_count = real rows (6 and 10); hole rows 5 and 9.
    check(
        &ctx,
        "gold_coverage_audit",
        "course_id",
        &[
            ("course_id", vec![S("creekside"), S("loopfalls")]),
            ("silver_rows_all_ingest_dates", vec![I(7), I(14)]),
            ("superseded_rows", vec![I(0), I(2)]),
            ("rounds_in_several_ingest_dates", vec![I(0), I(1)]),
            ("silver_rows", vec![I(7), I(12)]),
            ("silver_padding_rows", vec![I(1), I(2)]),
            ("silver_non_padding_rows", vec![I(6), I(10)]),
            ("silver_ts_missing_rows", vec![I(2), I(4)]),
            ("silver_ts_missing_non_padding_rows", vec![I(1), I(2)]),
            ("silver_rounds", vec![I(2), I(3)]),
            ("silver_rounds_non_padding", vec![I(2), I(3)]),
            ("fact_rounds_rows", vec![I(2), I(3)]),
            ("fact_rounds_distinct_rounds", vec![I(2), I(3)]),
            ("fact_rounds_fix_count_sum", vec![I(6), I(10)]),
            ("hole_perf_rows", vec![I(5), I(9)]),
            ("hole_perf_distinct_rounds", vec![I(2), I(3)]),
            ("hole_perf_distinct_round_hole_nine", vec![I(5), I(9)]),
            ("month_rounds_sum", vec![I(2), I(3)]),
            ("month_rounds_unknown", vec![I(0), I(1)]),
            ("weekday_rounds_sum", vec![I(2), I(3)]),
            ("weekday_rounds_unknown", vec![I(0), I(1)]),
            ("in_dim_course", vec![I(1), I(1)]),
            ("dim_course_unit_count", vec![I(2), I(2)]),
        ],
    )
    .await;

    // global_course_summary (latest rows): creekside 7 rows, 1 padding, 1 device; problems cs-2 ×2;
    //   complete cs-1, auto-assigned cs-2 → 50 % each; pace_gap of real fixes 0, 45, 20, 100, 150 →
    //   avg 315/5 = 63, median 45.
    // loopfalls 12 rows, 2 padding, devices dev-A, dev-B; problem lf-2 #3; complete lf-1, lf-2 (2/3);
    //   nine-hole lf-2, secondary lf-2, auto lf-3 (1/3 each); pace_gap 0, 30, 60, −15, 5, 10, 13 →
    //   avg 103/7, median 10.
    check(
        &ctx,
        "global_course_summary",
        "course_id",
        &[
            ("course_id", vec![S("creekside"), S("loopfalls")]),
            ("total_rows", vec![I(7), I(12)]),
            ("padding_rows", vec![I(1), I(2)]),
            ("non_padding_rows", vec![I(6), I(10)]),
            ("rounds", vec![I(2), I(3)]),
            ("non_padding_rounds", vec![I(2), I(3)]),
            ("devices", vec![I(1), I(2)]),
            ("ts_missing_rows", vec![I(2), I(4)]),
            ("ts_missing_non_padding_rows", vec![I(1), I(2)]),
            ("problem_rows", vec![I(2), I(1)]),
            ("complete_rounds", vec![I(1), I(2)]),
            ("nine_hole_rounds", vec![I(0), I(1)]),
            ("secondary_rounds", vec![I(0), I(1)]),
            ("auto_assigned_rounds", vec![I(1), I(1)]),
            ("pct_complete_rounds", vec![F(50.0), F(66.67)]),
            ("pct_nine_hole_rounds", vec![F(0.0), F(33.33)]),
            ("pct_secondary_rounds", vec![F(0.0), F(33.33)]),
            ("pct_auto_assigned_rounds", vec![F(50.0), F(33.33)]),
            ("pct_padding_rows", vec![F(14.29), F(16.67)]),
            ("pct_ts_missing_rows", vec![F(28.57), F(33.33)]),
            ("pct_ts_missing_non_padding_rows", vec![F(16.67), F(20.0)]),
            ("avg_pace_gap", vec![F(63.0), F(103.0 / 7.0)]),
            ("median_pace_gap", vec![F(45.0), F(10.0)]),
        ],
    )
    .await;

    // round_progression: the positioned fixes of each round's latest delivery, by location_index.
    //   cs-1: hole 1 → 10 → 18 → 18 (two skips; section 54 → 53 on hole 18 goes back) → minor;
    //   cs-2: 10 → 11 → clean; lf-1: 1 → 9 (skip) → 1 (a wrap from 9, fine) → 9 (skip) → minor;
    //   lf-2 (06-02's rows, not the stale 06-01 ones): 1 → 5 → 9 (skips) → 9 (26 → 27) → minor;
    //   lf-3: 1 → 2 → clean (its padding slot has no position).
    check(
        &ctx,
        "round_progression",
        "course_id, round_id",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("round_id", vec![S("cs-1"), S("cs-2"), S("lf-1"), S("lf-2"), S("lf-3")]),
            ("ingest_date", vec![D("2025-06-03"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02"), D("2025-06-02")]),
            ("positioned_fixes", vec![I(4), I(2), I(4), I(4), I(2)]),
            ("steps", vec![I(3), I(1), I(3), I(3), I(1)]),
            ("hole_backward_steps", vec![I(0), I(0), I(0), I(0), I(0)]),
            ("hole_skip_steps", vec![I(2), I(0), I(2), I(2), I(0)]),
            ("section_backward_steps", vec![I(1), I(0), I(0), I(0), I(0)]),
            (
                "progression_class",
                vec![S("minor_issues"), S("clean"), S("minor_issues"), S("minor_issues"), S("clean")],
            ),
        ],
    )
    .await;

    // round_validation: per round, fact_rounds' figures beside round_fix_profile's and
    // round_progression's (the same values as those tables' checks above; lf-3 has no local date).
    check(
        &ctx,
        "round_validation",
        "course_id, round_id",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls"), S("loopfalls")]),
            ("round_id", vec![S("cs-1"), S("cs-2"), S("lf-1"), S("lf-2"), S("lf-3")]),
            ("ingest_date", vec![D("2025-06-03"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02"), D("2025-06-02")]),
            ("round_date_local", vec![D("2025-06-03"), D("2025-07-05"), D("2025-06-02"), D("2025-06-01"), N]),
            ("is_complete", vec![B(true), B(false), B(true), B(true), B(false)]),
            ("is_nine_hole", vec![B(false), B(false), B(false), B(true), B(false)]),
            ("round_duration_minutes", vec![F(270.0), F(60.0), F(240.0), F(120.0), N]),
            ("fix_count", vec![I(4), I(2), I(4), I(4), I(2)]),
            ("holes_played", vec![I(3), I(2), I(2), I(3), I(2)]),
            ("non_padding_rows", vec![I(4), I(2), I(4), I(4), I(2)]),
            // cs-1's third fix and both of lf-3's have no pace.
            ("n_missing_pace", vec![I(1), I(0), I(0), I(0), I(2)]),
            (
                "progression_class",
                vec![S("minor_issues"), S("clean"), S("minor_issues"), S("minor_issues"), S("clean")],
            ),
            ("hole_backward_steps", vec![I(0), I(0), I(0), I(0), I(0)]),
            ("hole_skip_steps", vec![I(2), I(0), I(2), I(2), I(0)]),
            ("section_backward_steps", vec![I(1), I(0), I(0), I(0), I(0)]),
        ],
    )
    .await;

    // round_device_health: device_health_errors' five fixes per round, device, UTC day and flag
    // (cs-2: one low and one critical fix; lf-2: two low, one critical), with the round's local date.
    check(
        &ctx,
        "round_device_health",
        "course_id, round_id, health_flag",
        &[
            ("course_id", vec![S("creekside"), S("creekside"), S("loopfalls"), S("loopfalls")]),
            ("round_id", vec![S("cs-2"), S("cs-2"), S("lf-2"), S("lf-2")]),
            ("ingest_date", vec![D("2025-07-06"), D("2025-07-06"), D("2025-06-02"), D("2025-06-02")]),
            ("round_date_local", vec![D("2025-07-05"), D("2025-07-05"), D("2025-06-01"), D("2025-06-01")]),
            ("device_id", vec![S("dev-C"), S("dev-C"), S("dev-B"), S("dev-B")]),
            ("fix_date", vec![D("2025-07-05"), D("2025-07-05"), D("2025-06-01"), D("2025-06-01")]),
            ("health_flag", vec![S("battery_critical"), S("battery_low"), S("battery_critical"), S("battery_low")]),
            ("fixes", vec![I(1), I(1), I(1), I(2)]),
        ],
    )
    .await;

    // course_hole_pace_daily: only holes with a positive duration count; in the fixture that is
    // lf-2's hole 9 (one nine played, local date 2025-06-01): 900 s, pace 28, worst fix 30.
    check(
        &ctx,
        "course_hole_pace_daily",
        "course_id, round_date_local, hole_number, nine_number",
        &[
            ("course_id", vec![S("loopfalls")]),
            ("round_date_local", vec![D("2025-06-01")]),
            ("hole_number", vec![I(9)]),
            ("nine_number", vec![I(1)]),
            ("multi_nine", vec![B(false)]),
            ("rounds", vec![I(1)]),
            ("hole_rounds", vec![I(1)]),
            ("duration_ms_sum", vec![I(900_000)]),
            ("duration_count", vec![I(1)]),
            ("pace_ms_sum", vec![I(28_000)]),
            ("pace_count", vec![I(1)]),
            ("max_pace_sec", vec![F(30.0)]),
        ],
    )
    .await;

    // course_section_summary: the real fixes per (course, nine, hole, section). creekside (1,1,1)
    // cs-1 pace 0; (2,10,28) cs-1 90 and cs-2 200 → 145; (2,11,31) cs-2 300 without a latitude;
    // (2,18,53) 100; (2,18,54) no pace. loopfalls (1,1,1) lf-1 0, lf-2 10, lf-3 none (no position
    // either) → 5 over 2; (1,2,4) lf-3 only: nothing; (1,5,14) 20; (1,9,26) 26; (1,9,27) lf-1 60 and
    // lf-2 30 → 45; (2,1,28) 120; (2,9,54) −30. Every located fix is at (42.9, −112.5).
    let (lat, lon) = (|| F(42.9), || F(-112.5));
    check(
        &ctx,
        "course_section_summary",
        "course_id, nine_number, hole_number, section_number",
        &[
            ("course_id", [vec![S("creekside"); 5], vec![S("loopfalls"); 7]].concat()),
            ("nine_number", vec![I(1), I(2), I(2), I(2), I(2), I(1), I(1), I(1), I(1), I(1), I(2), I(2)]),
            ("hole_number", vec![I(1), I(10), I(11), I(18), I(18), I(1), I(2), I(5), I(9), I(9), I(1), I(9)]),
            ("section_number", vec![I(1), I(28), I(31), I(53), I(54), I(1), I(4), I(14), I(26), I(27), I(28), I(54)]),
            ("rounds", vec![I(1), I(2), I(1), I(1), I(1), I(3), I(1), I(1), I(1), I(2), I(1), I(1)]),
            ("fix_count", vec![I(1), I(2), I(1), I(1), I(1), I(3), I(1), I(1), I(1), I(2), I(1), I(1)]),
            ("pace_count", vec![I(1), I(2), I(1), I(1), I(0), I(2), I(0), I(1), I(1), I(2), I(1), I(1)]),
            (
                "avg_pace_sec",
                vec![F(0.0), F(145.0), F(300.0), F(100.0), N, F(5.0), N, F(20.0), F(26.0), F(45.0), F(120.0), F(-30.0)],
            ),
            (
                "median_pace_sec",
                vec![F(0.0), F(145.0), F(300.0), F(100.0), N, F(5.0), N, F(20.0), F(26.0), F(45.0), F(120.0), F(-30.0)],
            ),
            ("located_fix_count", vec![I(1), I(2), I(0), I(1), I(1), I(2), I(0), I(1), I(1), I(2), I(1), I(1)]),
            ("avg_latitude", vec![lat(), lat(), N, lat(), lat(), lat(), N, lat(), lat(), lat(), lat(), lat()]),
            ("avg_longitude", vec![lon(), lon(), N, lon(), lon(), lon(), N, lon(), lon(), lon(), lon(), lon()]),
        ],
    )
    .await;

    // global_overview: both courses together: 19 rows, 3 padding, 16 real, 5 rounds, 3 devices,
    // 6 without timestamp (3 real), 3 problems; complete cs-1, lf-1, lf-2 = 60 %; nine-hole lf-2 and
    // secondary lf-2 = 20 %; auto cs-2, lf-3 = 40 %; padding 3/19 = 15.79 %, no timestamp 6/19 =
    // 31.58 %, 3/16 = 18.75 %; fixes from lf-2's 06-01 15:00 to cs-2's 07-05 14:00; pace_gap avg
    // (315 + 103)/12, median of 12 values = (13 + 20)/2 = 16.5.
    check(
        &ctx,
        "global_overview",
        "total_rows",
        &[
            ("total_rows", vec![I(19)]),
            ("padding_rows", vec![I(3)]),
            ("non_padding_rows", vec![I(16)]),
            ("courses", vec![I(2)]),
            ("rounds", vec![I(5)]),
            ("non_padding_rounds", vec![I(5)]),
            ("devices", vec![I(3)]),
            ("ts_missing_rows", vec![I(6)]),
            ("ts_missing_non_padding_rows", vec![I(3)]),
            ("problem_rows", vec![I(3)]),
            ("complete_rounds", vec![I(3)]),
            ("nine_hole_rounds", vec![I(1)]),
            ("secondary_rounds", vec![I(1)]),
            ("auto_assigned_rounds", vec![I(2)]),
            ("pct_complete_rounds", vec![F(60.0)]),
            ("pct_nine_hole_rounds", vec![F(20.0)]),
            ("pct_secondary_rounds", vec![F(20.0)]),
            ("pct_auto_assigned_rounds", vec![F(40.0)]),
            ("pct_padding_rows", vec![F(15.79)]),
            ("pct_ts_missing_rows", vec![F(31.58)]),
            ("pct_ts_missing_non_padding_rows", vec![F(18.75)]),
            ("first_fix_ts", vec![T("2025-06-01T15:00:00")]),
            ("last_fix_ts", vec![T("2025-07-05T14:00:00")]),
            ("avg_pace_gap", vec![F(418.0 / 12.0)]),
            ("median_pace_gap", vec![F(16.5)]),
        ],
    )
    .await;

    // global_time_patterns (real fixes, UTC hours, ISO weekdays): cs-1 is a Tuesday (weekday), cs-2 a
    // Saturday and lf-2 a Sunday (weekend), lf-1 a Monday; lf-1's 10:00 and 10:10 share hour 10
    // (gap 30, 60 → 45); lf-2's 16:00 and 16:45 share hour 16 (10, 13 → 11.5); lf-2 17:00 is a
    // problem fix without gap; fixes without timestamp: cs-1 #3, lf-3 ×2.
    check(
        &ctx,
        "global_time_patterns",
        "course_id, day_type, time_bucket, hour_of_day NULLS FIRST",
        &[
            ("course_id", [vec![S("creekside"); 6], vec![S("loopfalls"); 7]].concat()),
            (
                "day_type",
                vec![
                    S("unknown"),
                    S("weekday"),
                    S("weekday"),
                    S("weekday"),
                    S("weekend"),
                    S("weekend"),
                    S("unknown"),
                    S("weekday"),
                    S("weekday"),
                    S("weekday"),
                    S("weekend"),
                    S("weekend"),
                    S("weekend"),
                ],
            ),
            (
                "time_bucket",
                vec![
                    S("unknown"),
                    S("morning"),
                    S("morning"),
                    S("morning"),
                    S("afternoon"),
                    S("afternoon"),
                    S("unknown"),
                    S("afternoon"),
                    S("morning"),
                    S("morning"),
                    S("afternoon"),
                    S("afternoon"),
                    S("afternoon"),
                ],
            ),
            ("hour_of_day", vec![N, I(7), I(9), I(11), I(13), I(14), N, I(12), I(8), I(10), I(15), I(16), I(17)]),
            ("fix_rows", vec![I(1), I(1), I(1), I(1), I(1), I(1), I(2), I(1), I(1), I(2), I(1), I(2), I(1)]),
            ("rounds", vec![I(1); 13]),
            ("problem_rows", vec![I(0), I(0), I(0), I(0), I(1), I(1), I(0), I(0), I(0), I(0), I(0), I(0), I(1)]),
            (
                "pct_problem_rows",
                vec![
                    F(0.0),
                    F(0.0),
                    F(0.0),
                    F(0.0),
                    F(100.0),
                    F(100.0),
                    F(0.0),
                    F(0.0),
                    F(0.0),
                    F(0.0),
                    F(0.0),
                    F(0.0),
                    F(100.0),
                ],
            ),
            (
                "avg_pace_gap",
                vec![N, F(0.0), F(45.0), F(20.0), F(100.0), F(150.0), N, F(-15.0), F(0.0), F(45.0), F(5.0), F(11.5), N],
            ),
            (
                "median_pace_gap",
                vec![N, F(0.0), F(45.0), F(20.0), F(100.0), F(150.0), N, F(-15.0), F(0.0), F(45.0), F(5.0), F(11.5), N],
            ),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Write-audit-publish
// ---------------------------------------------------------------------------------------------

/// A model spec from TOML settings, resolved against `dags/`.
fn spec(settings: &str) -> ModelSpec {
    let table: toml::Table = settings.parse().unwrap();
    ModelSpec::from_settings(&table, &dags_dir()).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A third creekside round, one hour long, delivered later.
fn cs3() -> Vec<(R, F)> {
    let r = R {
        round: "cs-3",
        ingest: "2025-07-07",
        start: Some("2025-07-07T09:00:00Z"),
        end: Some("2025-07-07T10:00:00Z"),
        ..CS1
    };
    vec![
        (r, fix(0, 1, 1, 1, 1, Some("2025-07-07T09:00:00Z"), Some(5.0), Some(1.0), Some(0.1), Some(70.0))),
        (r, fix(1, 2, 4, 1, 1, Some("2025-07-07T10:00:00Z"), Some(7.0), Some(2.0), Some(0.2), Some(69.0))),
    ]
}

async fn count(ctx: &SessionContext, table: &str) -> i64 {
    let batches = ctx.sql(&format!("SELECT COUNT(*) FROM {table}")).await.unwrap().collect().await.unwrap();
    array_value_to_string(batches[0].column(0).as_ref(), 0).unwrap().parse().unwrap()
}

/// A round of `course` whose only fix is at `ts` (UTC).
fn one_fix_round(course: &'static str, round: &'static str, ts: &'static str) -> Vec<(R, F)> {
    let r = R { course, round, ingest: "2025-11-03", start: Some(ts), end: Some(ts), ..CS1 };
    vec![(r, fix(0, 1, 1, 1, 1, Some(ts), Some(10.0), Some(5.0), Some(1.0), Some(90.0)))]
}

#[tokio::test]
async fn local_dates_weekdays_and_hours_follow_the_course_time_zone() {
    // An America/Boise course (MST -7 / MDT -6) around UTC midnight and both DST changes, and a
    // course without a profile, which stays in UTC and is flagged.
    let rows: Vec<(R, F)> = [
        // Saturday 18:10 MDT = Sunday 00:10 UTC.
        ("b-1", "2025-06-08T00:10:00Z"),
        // Spring forward 2025-03-09 02:00 MST → 03:00 MDT (09:00 UTC): 01:30 MST before, 03:30 MDT after.
        ("b-2", "2025-03-09T08:30:00Z"),
        ("b-3", "2025-03-09T09:30:00Z"),
        // Fall back 2025-11-02 02:00 MDT → 01:00 MST (08:00 UTC): 01:30 MDT, then 01:30 MST.
        ("b-4", "2025-11-02T07:30:00Z"),
        ("b-5", "2025-11-02T08:30:00Z"),
        // Friday 2025-10-31 23:59 MDT = Saturday 2025-11-01 05:59 UTC: another day and month.
        ("b-6", "2025-11-01T05:59:00Z"),
    ]
    .into_iter()
    .flat_map(|(round, ts)| one_fix_round("boisecourse", round, ts))
    .chain(one_fix_round("nowhere", "n-1", "2025-06-08T00:10:00Z"))
    .collect();
    let ctx = session_with_profiles(
        &rows,
        "[[course]]\nid = \"boisecourse\"\nname = \"Boise Test\"\ntimezone = \"America/Boise\"\n",
    );
    run_gold_expecting(&ctx, true).await;
    let local = query(
        &ctx,
        "SELECT course_id, round_id, timezone, profile_missing, CAST(round_start_local AS VARCHAR) AS start_local, \
         CAST(round_date_local AS VARCHAR) AS date_local, CAST(round_date AS VARCHAR) AS date_utc, round_weekday, \
         round_hour_local, round_month FROM gold.fact_rounds ORDER BY course_id, round_id",
    )
    .await;
    let expected = [
        "boisecourse b-1 America/Boise false 2025-06-07T18:10:00 2025-06-07 2025-06-08 6 18 6",
        "boisecourse b-2 America/Boise false 2025-03-09T01:30:00 2025-03-09 2025-03-09 7 1 3",
        "boisecourse b-3 America/Boise false 2025-03-09T03:30:00 2025-03-09 2025-03-09 7 3 3",
        "boisecourse b-4 America/Boise false 2025-11-02T01:30:00 2025-11-02 2025-11-02 7 1 11",
        "boisecourse b-5 America/Boise false 2025-11-02T01:30:00 2025-11-02 2025-11-02 7 1 11",
        "boisecourse b-6 America/Boise false 2025-10-31T23:59:00 2025-10-31 2025-11-01 5 23 10",
        "nowhere n-1 UTC true 2025-06-08T00:10:00 2025-06-08 2025-06-08 7 0 6",
    ];
    assert_eq!(local, expected);
    // The weekday and month models count local days: b-1 on Saturday, b-6 on Friday in October.
    let weekdays = query(
        &ctx,
        "SELECT weekday_number, rounds FROM gold.course_rounds_by_weekday WHERE course_id = 'boisecourse' ORDER BY 1",
    )
    .await;
    assert_eq!(weekdays, ["5 1", "6 1", "7 4"]);
    let months = query(
        &ctx,
        "SELECT CAST(month_start AS VARCHAR), rounds FROM gold.course_rounds_by_month WHERE course_id = 'boisecourse' ORDER BY 1",
    )
    .await;
    assert_eq!(months, ["2025-03-01 2", "2025-06-01 1", "2025-10-01 1", "2025-11-01 2"]);
    // Play patterns by local hour: Saturday evening, not Sunday midnight.
    let hours = query(
        &ctx,
        "SELECT day_type, time_bucket, hour_of_day, fix_rows FROM gold.global_time_patterns \
         WHERE course_id = 'boisecourse' ORDER BY hour_of_day",
    )
    .await;
    assert_eq!(hours, ["weekend night 1 3", "weekend night 3 1", "weekend evening 18 1", "weekday evening 23 1"]);
    // The profile is published, dim_course joins it, and the unprofiled course is flagged.
    let courses = query(
        &ctx,
        "SELECT course_id, COALESCE(course_name, '-'), timezone, profile_missing FROM gold.dim_course ORDER BY 1",
    )
    .await;
    assert_eq!(courses, ["boisecourse Boise Test America/Boise false", "nowhere - UTC true"]);
}

/// The rows of `sql` as space-separated cell texts.
async fn query(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        for row in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| {
                    if b.column(c).is_null(row) {
                        "NULL".to_string()
                    } else {
                        array_value_to_string(b.column(c), row).unwrap()
                    }
                })
                .collect();
            rows.push(cells.join(" "));
        }
    }
    rows
}

#[tokio::test]
async fn a_failing_error_test_blocks_publication_and_a_warn_test_does_not() {
    let ctx = session_with(&fixture_rows());
    run_gold(&ctx).await;
    assert_eq!(count(&ctx, "gold.fact_rounds").await, 5);

    // New silver data: cs-3 arrives. silver_round_latest is refreshed; fact_rounds would now have 6
    // rows, but a new error-severity test rejects rounds over 10 000 s: cs-1 (16 200) and lf-1 (14 400).
    set_silver(&ctx, &[fixture_rows(), cs3()].concat());
    let publisher = MemoryPublisher::new(&ctx);
    let latest = spec(r#"sql = "gold/silver_round_latest.sql""#);
    assert!(run_model(&ctx, &latest, &publisher, Refresh::Full).await.unwrap().published);

    let strict = spec(
        r#"sql = "gold/fact_rounds.sql"
           tests = [ { unique = ["course_id", "round_id"] }, { accepted_range = "duration_sec", max = 10000, name = "short_rounds" } ]"#,
    );
    let run = run_model(&ctx, &strict, &publisher, Refresh::Full).await.unwrap();
    assert!(!run.published, "an error-severity failure must block publication");
    assert_eq!(run.rows, 6, "the staged result had the new round");
    assert_eq!(run.snapshot_id, None);
    assert_eq!(run.tests[0].status, TestStatus::Pass);
    let failed = &run.tests[1];
    assert_eq!((failed.name.as_str(), failed.status, failed.failing_rows), ("short_rounds", TestStatus::Fail, Some(2)));
    let mut sampled: Vec<&str> = failed.sample.iter().map(|r| r["round_id"].as_str().unwrap()).collect();
    sampled.sort();
    assert_eq!(sampled, ["cs-1", "lf-1"], "the sample shows the failing rows");
    assert_eq!(run.blocking_failures(), ["short_rounds (accepted_range): 2 failing row(s)"]);
    // The previous version stays current: still 5 rounds, and nothing was published.
    assert_eq!(count(&ctx, "gold.fact_rounds").await, 5);
    assert_eq!(publisher.published(), ["gold.silver_round_latest"]);
    let summary = run.summary();
    assert_eq!(summary["published"], false);
    assert_eq!(summary["rows_written"], 0);
    assert_eq!(summary["tests_fail"], 1);
    assert_eq!(summary["tests"][1]["status"], "fail");
    assert_eq!(summary["tests"][1]["failing_rows"], 2);

    // The same test as a warning: reported, and the new version is published.
    let lenient = spec(
        r#"sql = "gold/fact_rounds.sql"
           tests = [ { accepted_range = "duration_sec", max = 10000, name = "short_rounds", severity = "warn" } ]"#,
    );
    let run = run_model(&ctx, &lenient, &publisher, Refresh::Full).await.unwrap();
    assert!(run.published);
    assert_eq!((run.tests[0].status, run.tests[0].failing_rows), (TestStatus::Warn, Some(2)));
    assert_eq!(run.tests[0].sample.len(), 2);
    assert!(run.blocking_failures().is_empty());
    assert_eq!(count(&ctx, "gold.fact_rounds").await, 6);
    let summary = run.summary();
    assert_eq!((summary["rows_written"].as_u64(), summary["tests_warn"].as_u64()), (Some(6), Some(1)));
    assert_eq!(summary["snapshot_id"], 2);
    assert_eq!(summary["tests"][0]["status"], "warn");
    assert_eq!(summary["tests"][0]["severity"], "warn");
}

#[tokio::test]
async fn every_test_type_finds_its_failing_rows() {
    let ctx = session_with(&fixture_rows());
    run_gold(&ctx).await;
    // Each test below fails on the fixture's fact_rounds with a known number of rows.
    let model = spec(
        r#"sql = "gold/fact_rounds.sql"
           tests = [
             { not_null = ["round_start_ts", "avg_pace_sec"], severity = "warn" },
             { unique = "course_id", severity = "warn" },
             { accepted_values = "round_length", values = ["18"], severity = "warn" },
             { accepted_values = "start_hole", values = [1], severity = "warn" },
             { accepted_range = "avg_battery_pct", min = 20, max = 90, severity = "warn" },
             { accepted_range = "fix_count", min = 2, max = 4, inclusive = false, severity = "warn" },
             { relationships = "course_id", to = "gold.course_topology", field = "course_id", severity = "warn" },
             { relationships = ["course_id", "round_id"], to = "gold.device_health_errors", severity = "warn" },
             { expression = "holes_played >= 3", severity = "warn" },
             { sql = "SELECT * FROM {{ this }} WHERE is_complete AND round_length = '9'", name = "complete_nines", severity = "warn" },
           ]"#,
    );
    let run = run_model(&ctx, &model, &MemoryPublisher::new(&ctx), Refresh::Full).await.unwrap();
    let found: Vec<(&str, Option<u64>)> = run.tests.iter().map(|t| (t.name.as_str(), t.failing_rows)).collect();
    assert_eq!(
        found,
        [
            ("not_null_round_start_ts_avg_pace_sec", Some(1)), // lf-3
            ("unique_course_id", Some(2)),                     // creekside ×2, loopfalls ×3: two groups
            ("accepted_values_round_length", Some(2)),         // lf-2, lf-3 are '9'
            ("accepted_values_start_hole", Some(1)),           // cs-2 starts at 10
            ("accepted_range_avg_battery_pct", Some(3)),       // cs-1 95, cs-2 11.5, lf-2 15.75 (lf-3 NULL passes)
            ("accepted_range_fix_count", Some(5)),             // 2 and 4 are outside the open interval
            ("relationships_course_id_to_gold_course_topology", Some(0)),
            ("relationships_course_id_round_id_to_gold_device_health_errors", Some(3)), // only cs-2, lf-2 there
            ("expression_9", Some(3)),   // cs-2, lf-1, lf-3 played 2 holes
            ("complete_nines", Some(1)), // lf-2
        ]
    );
    assert!(run.tests.iter().all(|t| t.error.is_none()));
    assert!(run.published, "warn-severity failures do not block");
}

#[tokio::test]
async fn a_test_that_cannot_run_counts_as_failed() {
    let ctx = session_with(&fixture_rows());
    run_gold(&ctx).await;
    let model = spec(
        r#"sql = "gold/pace_summary_by_round.sql"
           tests = [ { not_null = "no_such_column" } ]"#,
    );
    let run = run_model(&ctx, &model, &MemoryPublisher::new(&ctx), Refresh::Full).await.unwrap();
    assert!(!run.published);
    assert_eq!(run.tests[0].status, TestStatus::Fail);
    assert_eq!(run.tests[0].failing_rows, None);
    assert!(run.tests[0].error.as_deref().unwrap().contains("no_such_column"), "{:?}", run.tests[0].error);
}

#[tokio::test]
async fn planning_errors_name_the_model_and_are_not_retried() {
    let ctx = session_with(&fixture_rows());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.sql"), "SELECT no_such_column FROM silver.fact_telemetry_event").unwrap();
    let table: toml::Table = r#"sql = "broken.sql""#.parse().unwrap();
    let model = ModelSpec::from_settings(&table, dir.path()).unwrap();
    let err = run_model(&ctx, &model, &MemoryPublisher::new(&ctx), Refresh::Full).await.unwrap_err();
    assert!(matches!(err, GoldError::Plan { .. }), "{err}");
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.starts_with("model `broken`: cannot plan `") && text.contains("no_such_column"), "{text}");

    let table: toml::Table = r#"sql = "gold/silver_round_latest.sql"
                                partition_by = ["course"]"#
        .parse()
        .unwrap();
    let model = ModelSpec::from_settings(&table, &dags_dir()).unwrap();
    let err = run_model(&ctx, &model, &MemoryPublisher::new(&ctx), Refresh::Full).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "model `silver_round_latest`: column `course` of partition_by / incremental_key is not in the result (columns: course_id, round_id, \
         latest_ingest_date, first_ingest_date, ingest_dates_seen, rows_all_ingest_dates)"
    );
}

// ---------------------------------------------------------------------------------------------
// Validation of settings, SQL files and test specs (as `tmctl dags validate` reports them)
// ---------------------------------------------------------------------------------------------

/// Diagnostics of a one-task DAG whose `[[task]]` body is `task` (the DAG file sits in
/// tests/fixtures/gold, so `sql` paths resolve there).
fn diagnostics(task: &str) -> Vec<String> {
    let text = format!("id = \"d\"\n\n[[task]]\nid = \"m\"\nkind = \"gold.model\"\n{task}\n");
    match tmctl::dag::load_str(&text, &fixtures().join("d.toml")) {
        Ok(_) => Vec::new(),
        Err(diags) => diags
            .iter()
            .map(|d| {
                let s = d.to_string();
                s.rsplit_once("d.toml:").map_or(s.clone(), |(_, rest)| format!("d.toml:{rest}"))
            })
            .collect(),
    }
}

#[test]
fn a_valid_model_compiles() {
    assert_eq!(diagnostics("sql = \"ok.sql\"\ntests = [{ not_null = \"course_id\" }]"), Vec::<String>::new());
}

#[test]
fn sql_problems_name_the_file_and_line() {
    let d = diagnostics("sql = \"bad_syntax.sql\"");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0], "d.toml:6:1: task `m`: `sql`: bad_syntax.sql:4:13: Expected: end of statement, found: BY");
    assert_eq!(
        diagnostics("sql = \"two_statements.sql\""),
        [
            "d.toml:6:1: task `m`: `sql`: two_statements.sql:1:1: the file holds more than one statement; a model is one SELECT or WITH … SELECT"
        ]
    );
    assert_eq!(
        diagnostics("sql = \"not_a_query.sql\""),
        [
            "d.toml:6:1: task `m`: `sql`: not_a_query.sql:1:1: a model must be one SELECT or WITH … SELECT query, found a DELETE statement"
        ]
    );
    assert_eq!(
        diagnostics("sql = \"empty.sql\""),
        ["d.toml:6:1: task `m`: `sql`: empty.sql:1:1: the file holds no query; a model is one SELECT or WITH … SELECT"]
    );
    assert_eq!(
        diagnostics("sql = \"unqualified.sql\""),
        [
            "d.toml:6:1: task `m`: `sql`: unqualified.sql: reads `rounds`, which is neither a CTE nor a qualified table; name tables `silver.<table>` or `gold.<table>`"
        ]
    );
    let d = diagnostics("sql = \"missing.sql\"");
    assert!(d[0].starts_with("d.toml:6:1: task `m`: `sql`: cannot read `"), "{d:?}");
    assert_eq!(
        diagnostics("table = \"ok\""),
        [
            "d.toml:3:1: task `m`: `gold.model` needs `sql`, the model's file relative to the DAG file, e.g. sql = \"gold/fact_rounds.sql\""
        ]
    );
    assert_eq!(
        diagnostics("sql = \"ok.sql\"\ntable = \"Fact Rounds\"\npartition_by = \"course_id\""),
        [
            "d.toml:7:1: task `m`: `table`: the table name `Fact Rounds` must be lowercase letters, digits and `_`, starting with a letter (it is written as `gold.<table>`)",
            "d.toml:8:1: task `m`: `partition_by` must be an array of column names, found string",
        ]
    );
}

#[test]
fn test_specs_are_validated_with_precise_messages() {
    let d = diagnostics(
        r#"sql = "ok.sql"
tests = [
  { uniq = "course_id" },
  { not_null = [] },
  { unique = "course_id", severity = "fatal" },
  { accepted_values = "round_length" },
  { accepted_range = "rate" },
  { accepted_range = "rate", min = 1, max = 0 },
  { relationships = "course_id" },
  { relationships = ["a", "b"], to = "gold.dim_round", field = "a" },
  { sql = "SELECT * FROM gold.fact_rounds" },
  { not_null = "a", unique = "a" },
  { not_null = "a", colums = ["b"] },
  { expression = "a >" },
  { unique = "n" },
  { unique = "n" },
  "unique",
]"#,
    );
    let p = "d.toml:7:1: task `m`: `tests` #";
    let expected: Vec<String> = [
        "1: unknown test type `uniq`; did you mean `unique`? (test types: not_null, unique, accepted_values, accepted_range, relationships, expression, sql)",
        "2 (`not_null`): `not_null` needs a column name or a non-empty list of column names, found []",
        "3 (`unique`): `severity` must be \"error\" or \"warn\", found \"fatal\"",
        "4 (`accepted_values`): needs `values`, the list of accepted values, e.g. values = [\"9\", \"18\"]",
        "5 (`accepted_range`): needs `min`, `max` or both",
        "6 (`accepted_range`): `min` (1) is greater than `max` (0)",
        "7 (`relationships`): needs `to`, the referenced table, e.g. to = \"gold.dim_course\"",
        "8 (`relationships`): `field` names 1 column(s) but `relationships` names 2; they pair up in order",
        "9 (`sql`): the query must select from {{ this }} (the staged result), e.g. \"SELECT * FROM {{ this }} WHERE …\"",
        "10: `not_null` and `unique` in one test; write one test per table",
        "11 (`not_null`): unknown key `colums` (a `not_null` test takes `name`, `severity`)",
        "12 (`expression`): `expression` is not a valid SQL boolean expression: a >",
        "14: the test name `unique_n` is already used by test #13; give one of them a `name`",
        "15: a test must be a table such as { not_null = [\"course_id\"] }, found string",
    ]
    .iter()
    .map(|m| format!("{p}{m}"))
    .collect();
    assert_eq!(d, expected);
}

#[test]
fn the_shipped_gold_dag_validates_and_orders_models_by_what_they_read() {
    let dag = tmctl::dag::load_file(&dags_dir().join("gold.toml")).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(dag.tasks.len(), 39, "38 models and the wait on silver");
    let order: Vec<&str> = dag.topological().map(|t| t.id.as_str()).collect();
    let pos = |id: &str| order.iter().position(|t| *t == id).unwrap();
    assert_eq!(order[..2], ["wait_for_silver", "silver_round_latest"]);
    assert_eq!(dag.upstream("silver_round_latest"), ["wait_for_silver"]);
    // Inferred from the SQL: fact_rounds reads silver_round_latest; the hole model reads the
    // topology and fact_rounds; dim_course reads four models.
    assert_eq!(dag.upstream("fact_rounds"), ["silver_round_latest", "dim_course_profile", "dim_round"]);
    assert_eq!(dag.upstream("fact_round_hole_performance"), ["silver_round_latest", "course_topology", "fact_rounds"]);
    for up in [
        "fact_rounds",
        "course_configuration_analysis",
        "data_quality_overview",
        "telemetry_completeness_summary",
        "course_topology",
    ] {
        assert!(pos(up) < pos("dim_course"), "{up} before dim_course");
    }
    assert!(pos("dim_course") < pos("gold_coverage_audit"));
    // The summaries incremental by snapshot run after the table whose changes they follow.
    assert_eq!(dag.upstream("hole_performance_coverage"), ["fact_round_hole_performance"]);
    assert!(pos("hole_performance_coverage") < pos("gold_coverage_audit"));
    for (coverage, summary) in
        [("section_pace_coverage", "course_section_summary"), ("time_pattern_coverage", "global_time_patterns")]
    {
        assert_eq!(dag.upstream(coverage), ["fact_fix_pace"]);
        let mut ups = dag.upstream(summary);
        ups.sort_unstable();
        assert_eq!(ups, ["fact_fix_pace", coverage]);
    }
    assert_eq!(dag.upstream("course_hole_pace_daily"), ["fact_round_hole_performance"]);
    // The course-level sums of the per-round models, and the summaries that add them up.
    assert_eq!(dag.upstream("course_fix_coverage"), ["round_fix_profile"]);
    assert_eq!(dag.upstream("course_start_coverage"), ["fact_rounds"]);
    assert_eq!(dag.upstream("course_device_coverage"), ["round_device_profile"]);
    assert_eq!(dag.upstream("dim_device"), ["course_device_coverage"]);
    assert_eq!(dag.upstream("course_round_calendar"), ["fact_rounds"]);
    for summary in ["course_rounds_by_month", "course_rounds_by_weekday"] {
        assert_eq!(dag.upstream(summary), ["course_round_calendar"], "{summary}");
    }
    for summary in ["telemetry_completeness_summary", "critical_column_gaps", "data_quality_overview"] {
        assert_eq!(dag.upstream(summary), ["course_fix_coverage"], "{summary}");
    }
    for summary in ["course_start_hole_distribution", "course_configuration_analysis"] {
        assert_eq!(dag.upstream(summary), ["course_start_coverage"], "{summary}");
    }

    // Priority weights (one plus everything downstream): fact_rounds, which most models read,
    // outranks the other per-round models that wait for a slot with it (its own upstreams,
    // dim_round and dim_course_profile, outrank it, as every upstream does).
    let weights = dag.priority_weights();
    let weight = |id: &str| weights[dag.tasks.iter().position(|t| t.id == id).unwrap()];
    // Everything but dim_course_profile (it reads only the course profiles) waits on silver.
    assert_eq!(weight("wait_for_silver"), 38);
    // …but a wait asks the executor's slots with 0: it holds its slot while it polls.
    let asks = dag.slot_priorities();
    let ask = |id: &str| asks[dag.tasks.iter().position(|t| t.id == id).unwrap()];
    assert_eq!((ask("wait_for_silver"), ask("fact_rounds")), (0, weight("fact_rounds")));
    assert!(dag.upstream("dim_course_profile").is_empty());
    assert_eq!(weight("global_overview"), 1, "nothing reads global_overview");
    for other in [
        "round_fix_profile",
        "round_device_profile",
        "round_hole_profile",
        "round_progression",
        "fact_fix_pace",
        "device_health_errors",
    ] {
        assert!(
            weight("fact_rounds") > weight(other),
            "fact_rounds {} > {other} {}",
            weight("fact_rounds"),
            weight(other)
        );
    }
}

#[test]
fn the_models_rebuilt_on_every_run_read_gold_not_silver() {
    // Tables (full refresh on every daily run) read the incremental per-round models, never
    // silver: otherwise a daily run's cost grows with all of silver's history.
    let doc: toml::Table = std::fs::read_to_string(dags_dir().join("gold.toml")).unwrap().parse().unwrap();
    let (mut tables, mut incremental) = (0, 0);
    for task in doc["task"].as_array().unwrap() {
        if task.get("kind").and_then(|k| k.as_str()) != Some("gold.model") {
            continue;
        }
        let file = dags_dir().join(task["sql"].as_str().unwrap());
        let reads = model_reads(&std::fs::read_to_string(&file).unwrap()).unwrap();
        if task.get("materialized").and_then(|m| m.as_str()) == Some("incremental") {
            incremental += 1;
        } else {
            tables += 1;
            assert!(!reads.iter().any(|r| r.starts_with("silver.")), "{}: reads {reads:?}", file.display());
        }
    }
    assert_eq!((tables, incremental), (16, 22));
}

// ---------------------------------------------------------------------------------------------
// model_reads / model_writes
// ---------------------------------------------------------------------------------------------

#[test]
fn model_reads_sees_tables_not_ctes() {
    let reads = |sql: &str| model_reads(sql).unwrap();
    // CTEs (chained, shadowing nothing) are not tables.
    assert_eq!(
        reads("WITH a AS (SELECT * FROM silver.fact_telemetry_event), b AS (SELECT * FROM a) SELECT * FROM b"),
        ["silver.fact_telemetry_event"]
    );
    // Joins, derived tables, IN / EXISTS / scalar subqueries, set operations, quoted names.
    assert_eq!(
        reads(
            "SELECT f.*, (SELECT MAX(x) FROM gold.t1) AS m
             FROM gold.fact_rounds AS f
             JOIN (SELECT * FROM gold.dim_course) AS d ON d.course_id = f.course_id
             LEFT JOIN \"gold\".\"Quoted\" q ON true
             WHERE f.round_id IN (SELECT round_id FROM gold.dim_round)
               AND EXISTS (SELECT 1 FROM GOLD.Upper u WHERE u.id = f.round_id)
             UNION ALL SELECT * FROM silver.other"
        ),
        [
            "gold.Quoted",
            "gold.dim_course",
            "gold.dim_round",
            "gold.fact_rounds",
            "gold.t1",
            "gold.upper",
            "silver.other"
        ]
    );
    // A CTE named like a table shadows only the unqualified name.
    assert_eq!(
        reads("WITH fact_rounds AS (SELECT 1) SELECT * FROM fact_rounds, gold.fact_rounds"),
        ["gold.fact_rounds"]
    );
    // A CTE's scope is its query: the outer `x` is a (bad, unqualified) table.
    assert_eq!(reads("SELECT * FROM x WHERE EXISTS (WITH x AS (SELECT 1) SELECT * FROM x)"), ["x"]);
    // Table functions are not tables.
    assert_eq!(reads("SELECT * FROM generate_series(1, 3)"), Vec::<String>::new());
    assert_eq!(model_reads("SELECT a\nFROM (SELECT b").unwrap_err(), "2:15: Expected: ), found: EOF");
}

#[test]
fn shipped_models_read_what_their_headers_say() {
    let by_table: BTreeMap<String, ModelSpec> = gold_models().into_iter().map(|m| (m.table.clone(), m)).collect();
    let reads = |t: &str| by_table[t].reads.clone();
    assert_eq!(reads("silver_round_latest"), ["silver.fact_telemetry_event"]);
    assert_eq!(
        reads("fact_rounds"),
        ["gold.dim_course_profile", "gold.silver_round_latest", "silver.fact_telemetry_event"]
    );
    assert_eq!(
        reads("fact_round_hole_performance"),
        ["gold.course_topology", "gold.fact_rounds", "gold.silver_round_latest", "silver.fact_telemetry_event"]
    );
    assert_eq!(reads("pace_summary_by_round"), ["gold.fact_rounds"]);
    assert_eq!(
        reads("dim_course"),
        [
            "gold.course_configuration_analysis",
            "gold.course_fix_coverage",
            "gold.course_round_calendar",
            "gold.course_topology",
            "gold.data_quality_overview",
            "gold.dim_course_profile",
            "gold.telemetry_completeness_summary",
        ]
    );
    assert_eq!(by_table["fact_rounds"].lineage().other_reads, ["gold.dim_round"]);
    // Every model that reads silver reads it through silver_round_latest.
    for (table, m) in &by_table {
        if m.reads.contains(&"silver.fact_telemetry_event".to_string()) && table != "silver_round_latest" {
            assert!(m.reads.contains(&"gold.silver_round_latest".to_string()), "{table}");
        }
    }
    let settings: toml::Table = r#"sql = "gold/fact_rounds.sql""#.parse().unwrap();
    assert_eq!(model_writes(&settings).as_deref(), Some("gold.fact_rounds"));
    let settings: toml::Table = "sql = \"gold/x.sql\"\ntable = \"gold.y\"".parse().unwrap();
    assert_eq!(model_writes(&settings).as_deref(), Some("gold.y"));
}

// ---------------------------------------------------------------------------------------------
// The `gold.model` task on a real lake (Iceberg SQL catalog on SQLite)
// ---------------------------------------------------------------------------------------------

mod on_the_lake {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::{NaiveDate, TimeZone, Utc};
    use tmctl::config::{Overrides, Settings};
    use tmctl::lake::{Lake, RunKey, SessionOptions, parse_ident};
    use tmctl::store::Store;
    use tmctl::tasks::{TaskContext, TaskError};

    use super::*;

    fn context(settings: &Arc<Settings>, store: &Store, task: &str) -> TaskContext {
        let ds = NaiveDate::from_ymd_opt(2025, 7, 8).unwrap();
        let start = Utc.with_ymd_and_hms(2025, 7, 8, 4, 0, 0).unwrap();
        TaskContext {
            dag_id: "gold".into(),
            task_id: task.into(),
            run_pk: 1,
            run_id: "scheduled__2025-07-08T04:00:00+00:00".into(),
            run_type: tmctl::store::RunType::Scheduled,
            logical_date: start,
            ds,
            data_interval_start: start,
            data_interval_end: start + chrono::Duration::days(1),
            try_number: 1,
            max_tries: 3,
            priority_weight: 1,
            params: Default::default(),
            email: Vec::new(),
            settings: settings.clone(),
            store: store.clone(),
            lake: tmctl::lake::LakeHandle::new(settings.clone(), store.clone()),
            run_finished: Default::default(),
            metrics: Default::default(),
        }
    }

    async fn query(lake: &Lake, sql: &str) -> Vec<String> {
        let ctx = lake.session(&SessionOptions::current()).await.unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                let cells: Vec<String> =
                    (0..b.num_columns()).map(|c| array_value_to_string(b.column(c).as_ref(), r).unwrap()).collect();
                out.push(cells.join("|"));
            }
        }
        out
    }

    async fn current_snapshot(lake: &Lake, table: &str) -> (usize, Option<i64>) {
        let snaps = lake.table_snapshots(&parse_ident(table).unwrap()).await.unwrap();
        (snaps.len(), snaps.iter().find(|s| s.current).map(|s| s.id))
    }

    #[tokio::test]
    async fn the_gold_dag_publishes_every_model_and_a_failing_test_is_fatal() {
        let db = crate::common::sqlite_db();
        let home = tempfile::tempdir().unwrap();
        let overrides = Overrides { home: Some(home.path().to_path_buf()), ..Default::default() };
        let mut settings = Settings::load_with(&overrides, &BTreeMap::new()).unwrap();
        settings.database_url = db.url.clone();
        let settings = Arc::new(settings);
        let store = Store::connect(&db.url, 4).await.unwrap();
        let lake = Lake::open(settings.clone(), store.clone()).await.unwrap();

        // Silver, as the silver DAG would have left it.
        let silver = parse_ident("silver.fact_telemetry_event").unwrap();
        lake.ensure_table(&silver, &silver_schema(), &["course_id", "ingest_date"]).await.unwrap();
        let mut w = lake
            .writer(&silver, RunKey::new("silver", "transform", NaiveDate::from_ymd_opt(2025, 7, 7).unwrap()))
            .await
            .unwrap();
        w.write(silver_batch(&fixture_rows())).await.unwrap();
        w.replace_all().await.unwrap();

        // Every task of dags/gold.toml, in the DAG's order.
        let dag = tmctl::dag::load_file(&dags_dir().join("gold.toml")).unwrap();
        let mut summaries = BTreeMap::new();
        for t in dag.topological().filter(|t| t.kind == "gold.model") {
            let out = t.task.run(&context(&settings, &store, &t.id)).await.unwrap_or_else(|e| panic!("{}: {e}", t.id));
            summaries.insert(t.id.clone(), out.summary.unwrap());
        }
        let fr = &summaries["fact_rounds"];
        assert_eq!(fr["table"], "gold.fact_rounds");
        assert_eq!(fr["rows_written"], 5);
        assert_eq!(fr["published"], true);
        assert_eq!(fr["tests"].as_array().unwrap().len(), 12);
        assert!(fr["tests"].as_array().unwrap().iter().all(|t| t["status"] == "pass"));
        let (_, current) = current_snapshot(&lake, "gold.fact_rounds").await;
        assert_eq!(fr["snapshot_id"].as_i64(), current);

        // What the lake now serves (read back through Iceberg).
        assert_eq!(
            query(
                &lake,
                "SELECT round_id, round_weekday, round_length, duration_sec FROM gold.fact_rounds ORDER BY round_id"
            )
            .await,
            ["cs-1|2|18|16200.0", "cs-2|6|18|3600.0", "lf-1|1|18|14400.0", "lf-2|7|9|7200.0", "lf-3||9|"]
        );
        assert_eq!(
            query(&lake, "SELECT course_id, is_loop_course, playable_round_lengths, unit_names FROM gold.dim_course ORDER BY course_id").await,
            ["creekside|false|[18]|[Back Nine, Front Nine]", "loopfalls|true|[18, 9]|[Loop 1, Loop 2]"]
        );
        assert_eq!(query(&lake, "SELECT COUNT(*) FROM gold.fact_round_hole_performance").await, ["14"]);

        // course_hole_pace_daily (`changes` by snapshot) recorded the fact_round_hole_performance
        // snapshot it read.
        let recorded = |lake: Lake| async move {
            let t = lake.load_table(&parse_ident("gold.course_hole_pace_daily").unwrap()).await.unwrap();
            let s = t.metadata().current_snapshot().unwrap().summary().additional_properties.clone();
            s.get("tm.changes-snapshot-id").and_then(|v| v.parse::<i64>().ok())
        };
        assert_eq!(recorded(lake.clone()).await, current_snapshot(&lake, "gold.fact_round_hole_performance").await.1);
        let daily = dag.task("course_hole_pace_daily").unwrap();
        let hole_rows = query(&lake, "SELECT * FROM gold.course_hole_pace_daily ORDER BY 1, 2, 3, 4, 5").await;
        let forced = |task: &str| {
            let mut ctx = context(&settings, &store, task);
            ctx.params.insert("full_refresh".into(), serde_json::Value::Bool(true));
            ctx
        };
        let holes = dag.task("fact_round_hole_performance").unwrap();
        // fact_round_hole_performance rewritten: the next run diffs from the recorded snapshot and recomputes the
        // (course, day) groups of the rewritten files, to the same rows.
        holes.task.run(&forced("fact_round_hole_performance")).await.unwrap();
        let second = current_snapshot(&lake, "gold.fact_round_hole_performance").await.1;
        let out = daily.task.run(&context(&settings, &store, "course_hole_pace_daily")).await.unwrap().summary.unwrap();
        assert_eq!(out["refresh"], "incremental", "{out}");
        assert!(out["changed_keys"].as_u64().unwrap() > 0, "{out}");
        assert_eq!(recorded(lake.clone()).await, second);
        assert_eq!(query(&lake, "SELECT * FROM gold.course_hole_pace_daily ORDER BY 1, 2, 3, 4, 5").await, hole_rows);
        // fact_round_hole_performance rewritten again and the snapshot the model recorded expired: rebuilt in full.
        holes.task.run(&forced("fact_round_hole_performance")).await.unwrap();
        let third = current_snapshot(&lake, "gold.fact_round_hole_performance").await.1;
        let options = tmctl::lake::maintenance::ExpireOptions {
            older_than: std::time::Duration::ZERO,
            retain_last: 1,
            dry_run: false,
        };
        lake.expire_snapshots(&[parse_ident("gold.fact_round_hole_performance").unwrap()], &options).await.unwrap();
        assert_eq!(
            current_snapshot(&lake, "gold.fact_round_hole_performance").await.0,
            1,
            "only the current snapshot is left"
        );
        let out = daily.task.run(&context(&settings, &store, "course_hole_pace_daily")).await.unwrap().summary.unwrap();
        assert_eq!(out["refresh"], "full", "{out}");
        assert_eq!(recorded(lake.clone()).await, third);
        assert_eq!(query(&lake, "SELECT * FROM gold.course_hole_pace_daily ORDER BY 1, 2, 3, 4, 5").await, hole_rows);

        // A resumed attempt over the same inputs finds its commit and writes nothing.
        let fact_rounds = dag.task("fact_rounds").unwrap();
        let before = current_snapshot(&lake, "gold.fact_rounds").await;
        let again = fact_rounds.task.run(&context(&settings, &store, "fact_rounds")).await.unwrap().summary.unwrap();
        assert_eq!(again["already_committed"], true);
        assert_eq!(current_snapshot(&lake, "gold.fact_rounds").await, before);

        // A version of fact_rounds with a failing error-severity test: fatal, nothing committed.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("gold")).unwrap();
        std::fs::copy(dags_dir().join("gold/fact_rounds.sql"), dir.path().join("gold/fact_rounds.sql")).unwrap();
        let toml = "id = \"strict\"\n[[task]]\nid = \"fact_rounds\"\nkind = \"gold.model\"\nsql = \"gold/fact_rounds.sql\"\n\
                    partition_by = [\"course_id\"]\n\
                    tests = [{ accepted_range = \"duration_sec\", max = 10000 }]\n";
        let strict = tmctl::dag::load_str(toml, &dir.path().join("strict.toml")).unwrap();
        let mut ctx = context(&settings, &store, "fact_rounds");
        ctx.dag_id = "strict".into();
        let err = strict.tasks[0].task.run(&ctx).await.unwrap_err();
        let TaskError::Fatal(message) = err else { panic!("expected a fatal error, got {err:?}") };
        assert_eq!(
            message,
            "model `fact_rounds`: 1 error-severity data test(s) failed, table `gold.fact_rounds` not published: \
             accepted_range_duration_sec (accepted_range): 2 failing row(s)"
        );
        assert_eq!(current_snapshot(&lake, "gold.fact_rounds").await, before, "the previous version stays current");

        // An incremental model that gained a column: its next (incremental) run cannot carry the
        // old rows over, so it is rebuilt in full instead of failing.
        let original = std::fs::read_to_string(dags_dir().join("gold/pace_summary_by_round.sql")).unwrap();
        std::fs::write(
            dir.path().join("gold/pace_summary_by_round.sql"),
            format!("SELECT p.*, 1 AS added_column FROM (\n{original}\n) AS p"),
        )
        .unwrap();
        let toml = "id = \"shape\"\n[[task]]\nid = \"pace_summary_by_round\"\nkind = \"gold.model\"\n\
                    sql = \"gold/pace_summary_by_round.sql\"\nmaterialized = \"incremental\"\n\
                    incremental_key = [\"course_id\", \"round_id\"]\nchanges = \"gold.fact_rounds.ingest_date\"\n\
                    latest_only = true\npartition_by = [\"course_id\", \"ingest_date\"]\n";
        let shape = tmctl::dag::load_str(toml, &dir.path().join("shape.toml")).unwrap();
        let mut ctx = context(&settings, &store, "pace_summary_by_round");
        ctx.dag_id = "shape".into();
        let out = shape.tasks[0].task.run(&ctx).await.unwrap_or_else(|e| panic!("{e}")).summary.unwrap();
        assert_eq!(out["published"], true, "{out}");
        assert_eq!(
            query(&lake, "SELECT count(*), min(added_column), max(added_column) FROM gold.pace_summary_by_round").await,
            ["5|1|1"]
        );
    }
}
