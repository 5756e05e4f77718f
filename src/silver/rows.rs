//! One row per location slot: typing, derived fields, quarantine rules and deduplication.
//!
//! Differences from the reference (REFERENCE_PIPELINE §2.3, §8), on purpose:
//! - fix timestamps keep sub-second precision (microseconds, UTC);
//! - `ingest_date` is a DATE; `event_weekday` is ISO (1 = Monday … 7 = Sunday);
//! - quarantine has reason codes: `missing_round_id`, `unparseable_timestamp`, `invalid_longitude`,
//!   `invalid_latitude`, `battery_out_of_range`, `invalid_value` (a cell of the wrong type), with a
//!   `reason_detail` naming column and value; NULL coordinates stay valid;
//! - `nine_number` is NULL for padding slots; a 9-hole layout played twice (loop course) counts
//!   the second loop as nine 2 (a hole revisited starts a new loop); holes 19–27 are nine 3;
//! - a JSON round with an empty `locations` array keeps one padding row, as a CSV round would;
//! - duplicates are resolved on (round_id, location_index) preferring is_cache, then not
//!   projected, then higher battery (NULLs last), then the first seen.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, PrimitiveBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::ArrowPrimitiveType;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

use super::read::{self, Malformed, Raw, Record, RoundSource, slot};

/// Validation bounds (inclusive) for coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub min_lon: f64,
    pub max_lon: f64,
    pub min_lat: f64,
    pub max_lat: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { min_lon: -180.0, max_lon: 180.0, min_lat: -90.0, max_lat: 90.0 }
    }
}

/// A row that broke a rule, as a JSON object of its columns plus `reason` and `reason_detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub reason: &'static str,
    pub row: serde_json::Map<String, Value>,
}

/// What one partition's transform did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PartitionStats {
    pub files: usize,
    pub records_in: u64,
    pub rounds: u64,
    pub rows_out: u64,
    pub padding_rows: u64,
    pub duplicate_rows_removed: u64,
    pub quarantined: BTreeMap<String, u64>,
}

/// One landing file of the partition: its name and a way to open it (it is read twice).
pub struct Input<'a> {
    pub name: String,
    pub open: Box<dyn Fn() -> std::io::Result<Box<dyn Read + Send>> + 'a>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Read(#[from] read::ReadError),
    #[error("cannot open {file}: {source}")]
    Open {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing rows failed: {0}")]
    Sink(String),
}

// ---- typed values -------------------------------------------------------------------------------

type Problem = (&'static str, String);

fn text(raw: Raw<'_>) -> Option<String> {
    match raw {
        Raw::Missing => None,
        Raw::Str(s) => Some(s.to_string()),
        Raw::Json(v) => read::json_text(v).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
    }
}

fn number(raw: Raw<'_>, col: &str, problems: &mut Vec<Problem>) -> Option<f64> {
    let parsed = match raw {
        Raw::Missing => return None,
        Raw::Str(s) => s.parse::<f64>().ok(),
        Raw::Json(Value::Number(n)) => n.as_f64(),
        Raw::Json(v) => read::json_text(v).and_then(|s| s.trim().parse::<f64>().ok()),
    };
    match parsed {
        Some(x) if x.is_finite() => Some(x),
        Some(x) => {
            problems.push(("invalid_value", format!("{col} = {x} is not a finite number")));
            None
        }
        None => {
            problems.push(("invalid_value", format!("{col} = {} is not a number", show(raw))));
            None
        }
    }
}

fn int(raw: Raw<'_>, col: &str, problems: &mut Vec<Problem>) -> Option<i32> {
    let x = number(raw, col, problems)?;
    if x.fract() == 0.0 && x >= i32::MIN as f64 && x <= i32::MAX as f64 {
        Some(x as i32)
    } else {
        problems.push(("invalid_value", format!("{col} = {} is not a whole number", show(raw))));
        None
    }
}

fn boolean(raw: Raw<'_>, col: &str, problems: &mut Vec<Problem>) -> Option<bool> {
    let parsed = match raw {
        Raw::Missing => return None,
        Raw::Json(Value::Bool(b)) => return Some(*b),
        Raw::Str(s) => parse_bool(s),
        Raw::Json(v) => parse_bool(&read::json_text(v).unwrap_or_default()),
    };
    if parsed.is_none() {
        problems.push(("invalid_value", format!("{col} = {} is not true or false", show(raw))));
    }
    parsed
}

/// `true`/`t`/`1`/`yes`/`y` or `false`/`f`/`0`/`no`/`n`, any ASCII case, blanks around ignored.
fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    let any = |words: [&str; 5]| words.iter().any(|w| s.eq_ignore_ascii_case(w));
    if any(["true", "t", "1", "yes", "y"]) {
        Some(true)
    } else if any(["false", "f", "0", "no", "n"]) {
        Some(false)
    } else {
        None
    }
}

fn show(raw: Raw<'_>) -> String {
    match raw {
        Raw::Missing => "NULL".into(),
        Raw::Str(s) => format!("{s:?}"),
        Raw::Json(v) => v.to_string(),
    }
}

/// Parses an ISO-8601 timestamp (UTC when no offset is given) to microseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

fn timestamp(raw: Raw<'_>, col: &str, problems: &mut Vec<Problem>) -> Option<i64> {
    let parsed = match raw {
        Raw::Missing => return None,
        Raw::Str(s) => parse_timestamp(s),
        // Extended JSON: {"$date": "ISO"} or {"$date": {"$numberLong": "ms"}}; bare numbers are ms.
        Raw::Json(Value::Number(n)) => n.as_i64().map(|ms| ms * 1000),
        Raw::Json(Value::Object(o)) => match o.get("$date") {
            Some(Value::String(s)) => parse_timestamp(s),
            Some(Value::Number(n)) => n.as_i64().map(|ms| ms * 1000),
            Some(v @ Value::Object(_)) => read::json_text(v).and_then(|s| s.parse::<i64>().ok()).map(|ms| ms * 1000),
            _ => None,
        },
        Raw::Json(Value::String(s)) => parse_timestamp(s),
        Raw::Json(_) => None,
    };
    if parsed.is_none() {
        problems.push(("unparseable_timestamp", format!("{col} = {} is not a timestamp", show(raw))));
    }
    parsed
}

/// Rounds half away from zero to 3 decimals, as a decimal reading of the value would (4.2345 →
/// 4.235, like Spark's `round`), without formatting in the common case.
pub fn round3(x: f64) -> f64 {
    let y = x * 1000.0;
    let frac = (y - y.trunc()).abs();
    if (frac - 0.5).abs() > 1e-6 {
        return y.round() / 1000.0;
    }
    // Near a tie: decide on the shortest decimal representation of x.
    let s = format!("{}", x.abs());
    let (int_part, frac_part) = s.split_once('.').unwrap_or((&s, ""));
    let mut digits: Vec<u8> = frac_part.bytes().map(|b| b - b'0').collect();
    digits.resize(4, 0);
    let mut kept: i64 = int_part.parse::<i64>().unwrap_or(0) * 1000
        + i64::from(digits[0]) * 100
        + i64::from(digits[1]) * 10
        + i64::from(digits[2]);
    if digits[3] >= 5 {
        kept += 1;
    }
    (kept as f64 / 1000.0).copysign(x)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ---- rounds and slots ---------------------------------------------------------------------------

/// Round-level columns, typed once per round.
#[derive(Debug, Clone, Default)]
struct RoundFields {
    round_id: Option<String>,
    start: Option<i64>,
    end: Option<i64>,
    start_hole: Option<i32>,
    start_section: Option<i32>,
    end_section: Option<i32>,
    is_nine_hole: Option<bool>,
    current_nine: Option<i32>,
    goal_time: Option<i32>,
    is_complete: Option<bool>,
    device: Option<String>,
    first_fix: Option<String>,
    last_fix: Option<String>,
    goal_name: Option<String>,
    goal_time_fraction: Option<f64>,
    is_incomplete: Option<bool>,
    is_secondary: Option<bool>,
    is_auto_assigned: Option<bool>,
    last_section_start: Option<f64>,
    current_section: Option<i32>,
    current_hole: Option<i32>,
    current_hole_section: Option<i32>,
    duration_minutes: Option<f64>,
    problems: Vec<Problem>,
}

fn round_fields(r: &dyn RoundSource) -> RoundFields {
    let mut p = Vec::new();
    let start = timestamp(r.field("startTime"), "startTime", &mut p);
    let end = timestamp(r.field("endTime"), "endTime", &mut p);
    let round_id = text(r.field("_id"));
    if round_id.is_none() {
        p.insert(0, ("missing_round_id", format!("record {} has no _id", r.record_number())));
    }
    let f = RoundFields {
        round_id,
        start,
        end,
        start_hole: int(r.field("startHole"), "startHole", &mut p),
        start_section: int(r.field("startSection"), "startSection", &mut p),
        end_section: int(r.field("endSection"), "endSection", &mut p),
        is_nine_hole: boolean(r.field("isNineHole"), "isNineHole", &mut p),
        current_nine: int(r.field("currentNine"), "currentNine", &mut p),
        goal_time: int(r.field("goalTime"), "goalTime", &mut p),
        is_complete: boolean(r.field("complete"), "complete", &mut p),
        device: text(r.field("device")),
        first_fix: text(r.field("firstFix")),
        last_fix: text(r.field("lastFix")),
        goal_name: text(r.field("goalName")),
        goal_time_fraction: number(r.field("goalTimeFraction"), "goalTimeFraction", &mut p),
        is_incomplete: boolean(r.field("isIncomplete"), "isIncomplete", &mut p),
        is_secondary: boolean(r.field("isSecondary"), "isSecondary", &mut p),
        is_auto_assigned: boolean(r.field("isAutoAssigned"), "isAutoAssigned", &mut p),
        last_section_start: number(r.field("lastSectionStart"), "lastSectionStart", &mut p),
        current_section: int(r.field("currentSection"), "currentSection", &mut p),
        current_hole: int(r.field("currentHole"), "currentHole", &mut p),
        current_hole_section: int(r.field("currentHoleSection"), "currentHoleSection", &mut p),
        duration_minutes: match (start, end) {
            (Some(s), Some(e)) => Some(round2((e - s) as f64 / 60_000_000.0)),
            _ => None,
        },
        problems: Vec::new(),
    };
    RoundFields { problems: p, ..f }
}

/// Slot-level columns.
#[derive(Debug, Clone, Default)]
struct SlotFields {
    index: i32,
    fix_ts: Option<i64>,
    hole: Option<i32>,
    section: Option<i32>,
    hole_section: Option<i32>,
    lon: Option<f64>,
    lat: Option<f64>,
    is_cache: Option<bool>,
    is_projected: Option<bool>,
    is_problem: Option<bool>,
    pace_gap: Option<f64>,
    positional_gap: Option<f64>,
    pace: Option<f64>,
    battery: Option<f64>,
    nine: Option<i32>,
    padding: bool,
    problems: Vec<Problem>,
}

fn slot_fields(r: &dyn RoundSource, i: usize, round: &RoundFields, rules: &Rules) -> SlotFields {
    let mut p = Vec::new();
    let field = |f: usize| r.slot_field_at(i, f);
    let n = |f: usize, p: &mut Vec<Problem>| number(field(f), read::SLOT_FIELDS[f], p);
    let offset = n(slot::START_TIME, &mut p);
    let date = timestamp(field(slot::DATE), "date", &mut p);
    let fix_ts = date.or_else(|| match (round.start, offset) {
        (Some(start), Some(off)) => Some(start + (off * 1_000_000.0).round() as i64),
        _ => None,
    });
    let hole = int(field(slot::HOLE), "hole", &mut p);
    let section = int(field(slot::SECTION_NUMBER), "sectionNumber", &mut p);
    let lon = number(r.slot_coord(i, 0), "fixCoordinates[0]", &mut p);
    let lat = number(r.slot_coord(i, 1), "fixCoordinates[1]", &mut p);
    if let Some(x) = lon
        && (x < rules.min_lon || x > rules.max_lon)
    {
        p.push(("invalid_longitude", format!("longitude {x} outside {}..{}", rules.min_lon, rules.max_lon)));
    }
    if let Some(y) = lat
        && (y < rules.min_lat || y > rules.max_lat)
    {
        p.push(("invalid_latitude", format!("latitude {y} outside {}..{}", rules.min_lat, rules.max_lat)));
    }
    let battery = n(slot::BATTERY_PERCENTAGE, &mut p);
    if let Some(b) = battery
        && !(0.0..=100.0).contains(&b)
    {
        p.push(("battery_out_of_range", format!("batteryPercentage {b} outside 0..100")));
    }
    SlotFields {
        index: r.slot_index(i),
        fix_ts,
        hole,
        section,
        hole_section: int(field(slot::HOLE_SECTION), "holeSection", &mut p),
        lon,
        lat,
        is_cache: boolean(field(slot::IS_CACHE), "isCache", &mut p),
        is_projected: boolean(field(slot::IS_PROJECTED), "isProjected", &mut p),
        is_problem: boolean(field(slot::IS_PROBLEM), "isProblem", &mut p),
        pace_gap: n(slot::PACE_GAP, &mut p).map(round3),
        positional_gap: n(slot::POSITIONAL_GAP, &mut p).map(round3),
        pace: n(slot::PACE, &mut p).map(round3),
        battery,
        nine: None,
        padding: hole.is_none() && section.is_none(),
        problems: p,
    }
}

/// Assigns `nine_number` to the slots of one round (see the module doc).
fn assign_nines(slots: &mut [SlotFields]) {
    let max_hole = slots.iter().filter_map(|s| s.hole).max().unwrap_or(0);
    let max_section = slots.iter().filter_map(|s| s.section).max().unwrap_or(0);
    let band = |section: i32| Some(((section.max(1) - 1) / 27 + 1).min(9));
    if max_hole >= 10 {
        for s in slots.iter_mut().filter(|s| !s.padding) {
            s.nine = match (s.hole, s.section) {
                (Some(h), _) => Some(((h.max(1) - 1) / 9 + 1).min(9)),
                (None, Some(sec)) => band(sec),
                (None, None) => None,
            };
        }
    } else if max_section > 27 {
        for s in slots.iter_mut().filter(|s| !s.padding) {
            s.nine = s.section.and_then(band).or(Some(1));
        }
    } else {
        // A 9-hole layout: a hole seen again (after another hole) starts the next loop.
        let mut loop_no = 1;
        let mut seen = [false; 32];
        let mut prev: Option<i32> = None;
        for s in slots.iter_mut().filter(|s| !s.padding) {
            if let Some(h) = s.hole {
                let idx = h.clamp(0, 31) as usize;
                if seen[idx] && prev != Some(h) {
                    loop_no += 1;
                    seen = [false; 32];
                }
                seen[idx] = true;
                prev = Some(h);
            }
            s.nine = Some(loop_no);
        }
    }
}

/// Whether `a` is preferred over `b` for the same (round_id, location_index).
fn better(a: &SlotFields, b: &SlotFields) -> bool {
    // true > false > NULL for is_cache; false > true > NULL for is_projected; higher battery.
    let cache = |s: &SlotFields| match s.is_cache {
        Some(true) => 2,
        Some(false) => 1,
        None => 0,
    };
    let projected = |s: &SlotFields| match s.is_projected {
        Some(false) => 2,
        Some(true) => 1,
        None => 0,
    };
    let battery = |s: &SlotFields| s.battery.unwrap_or(f64::NEG_INFINITY);
    (cache(a), projected(a)).cmp(&(cache(b), projected(b))).then(battery(a).total_cmp(&battery(b))).is_gt()
}

// ---- output -------------------------------------------------------------------------------------

/// Column builders for one output batch.
struct Builder {
    course_id: String,
    ingest_date: i32,
    /// Rows reserved per batch.
    capacity: usize,
    len: usize,
    /// Scratch text for `geometry_wkt`.
    wkt_text: String,
    round_id: StringBuilder,
    course: StringBuilder,
    ingest: Date32Builder,
    fix_ts: TimestampMicrosecondBuilder,
    padding: BooleanBuilder,
    start: TimestampMicrosecondBuilder,
    end: TimestampMicrosecondBuilder,
    start_hole: Int32Builder,
    start_section: Int32Builder,
    end_section: Int32Builder,
    is_nine_hole: BooleanBuilder,
    current_nine: Int32Builder,
    goal_time: Int32Builder,
    is_complete: BooleanBuilder,
    device: StringBuilder,
    first_fix: StringBuilder,
    last_fix: StringBuilder,
    goal_name: StringBuilder,
    goal_time_fraction: Float64Builder,
    is_incomplete: BooleanBuilder,
    is_secondary: BooleanBuilder,
    is_auto_assigned: BooleanBuilder,
    last_section_start: Float64Builder,
    current_section: Int32Builder,
    current_hole: Int32Builder,
    current_hole_section: Int32Builder,
    location_index: Int32Builder,
    hole: Int32Builder,
    section: Int32Builder,
    hole_section: Int32Builder,
    lon: Float64Builder,
    lat: Float64Builder,
    is_cache: BooleanBuilder,
    is_projected: BooleanBuilder,
    is_problem: BooleanBuilder,
    pace_gap: Float64Builder,
    positional_gap: Float64Builder,
    pace: Float64Builder,
    battery: Float64Builder,
    event_date: Date32Builder,
    duration: Float64Builder,
    year: Int32Builder,
    month: Int32Builder,
    day: Int32Builder,
    weekday: Int32Builder,
    nine: Int32Builder,
    wkt: StringBuilder,
    ts_missing: BooleanBuilder,
}

const EPOCH_DAYS_CE: i32 = 719_163;

fn date32(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - EPOCH_DAYS_CE
}

/// Rows a builder reserves room for up front (more rows grow the buffers as needed).
const RESERVE_ROWS: usize = 65_536;

/// `n` copies of `v` (or `n` NULLs).
fn append_n<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>, v: Option<T::Native>, n: usize) {
    match v {
        Some(v) => b.append_value_n(v, n),
        None => b.append_nulls(n),
    }
}

fn append_bool_n(b: &mut BooleanBuilder, v: Option<bool>, n: usize) {
    match v {
        Some(v) => b.append_n(n, v),
        None => b.append_nulls(n),
    }
}

fn append_str_n(b: &mut StringBuilder, v: Option<&str>, n: usize) {
    for _ in 0..n {
        b.append_option(v);
    }
}

impl Builder {
    /// Empty builders with room for `rows` rows (at most [`RESERVE_ROWS`]); `ingest_date` as a
    /// Date32 value.
    fn new(course_id: &str, ingest_date: i32, rows: usize) -> Builder {
        let rows = rows.min(RESERVE_ROWS);
        let ts = || TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("+00:00");
        let int = || Int32Builder::with_capacity(rows);
        let dbl = || Float64Builder::with_capacity(rows);
        let bool = || BooleanBuilder::with_capacity(rows);
        let date = || Date32Builder::with_capacity(rows);
        // Object ids are 24 characters; goal names and WKT points are longer.
        let text = |bytes: usize| StringBuilder::with_capacity(rows, rows * bytes);
        Builder {
            course_id: course_id.to_string(),
            ingest_date,
            capacity: rows,
            len: 0,
            wkt_text: String::new(),
            round_id: text(24),
            course: text(course_id.len()),
            ingest: date(),
            fix_ts: ts(),
            padding: bool(),
            start: ts(),
            end: ts(),
            start_hole: int(),
            start_section: int(),
            end_section: int(),
            is_nine_hole: bool(),
            current_nine: int(),
            goal_time: int(),
            is_complete: bool(),
            device: text(24),
            first_fix: text(24),
            last_fix: text(24),
            goal_name: text(16),
            goal_time_fraction: dbl(),
            is_incomplete: bool(),
            is_secondary: bool(),
            is_auto_assigned: bool(),
            last_section_start: dbl(),
            current_section: int(),
            current_hole: int(),
            current_hole_section: int(),
            location_index: int(),
            hole: int(),
            section: int(),
            hole_section: int(),
            lon: dbl(),
            lat: dbl(),
            is_cache: bool(),
            is_projected: bool(),
            is_problem: bool(),
            pace_gap: dbl(),
            positional_gap: dbl(),
            pace: dbl(),
            battery: dbl(),
            event_date: date(),
            duration: dbl(),
            year: int(),
            month: int(),
            day: int(),
            weekday: int(),
            nine: int(),
            wkt: text(40),
            ts_missing: bool(),
        }
    }

    /// Appends one row per slot, all of round `r`: the round's columns are appended once per
    /// run rather than cell by cell.
    fn push_run(&mut self, r: &RoundFields, slots: &[&SlotFields]) {
        let n = slots.len();
        self.len += n;
        append_str_n(&mut self.round_id, r.round_id.as_deref(), n);
        append_str_n(&mut self.course, Some(&self.course_id), n);
        self.ingest.append_value_n(self.ingest_date, n);
        append_n(&mut self.start, r.start, n);
        append_n(&mut self.end, r.end, n);
        append_n(&mut self.start_hole, r.start_hole, n);
        append_n(&mut self.start_section, r.start_section, n);
        append_n(&mut self.end_section, r.end_section, n);
        append_bool_n(&mut self.is_nine_hole, r.is_nine_hole, n);
        append_n(&mut self.current_nine, r.current_nine, n);
        append_n(&mut self.goal_time, r.goal_time, n);
        append_bool_n(&mut self.is_complete, r.is_complete, n);
        append_str_n(&mut self.device, r.device.as_deref(), n);
        append_str_n(&mut self.first_fix, r.first_fix.as_deref(), n);
        append_str_n(&mut self.last_fix, r.last_fix.as_deref(), n);
        append_str_n(&mut self.goal_name, r.goal_name.as_deref(), n);
        append_n(&mut self.goal_time_fraction, r.goal_time_fraction, n);
        append_bool_n(&mut self.is_incomplete, r.is_incomplete, n);
        append_bool_n(&mut self.is_secondary, r.is_secondary, n);
        append_bool_n(&mut self.is_auto_assigned, r.is_auto_assigned, n);
        append_n(&mut self.last_section_start, r.last_section_start, n);
        append_n(&mut self.current_section, r.current_section, n);
        append_n(&mut self.current_hole, r.current_hole, n);
        append_n(&mut self.current_hole_section, r.current_hole_section, n);
        append_n(&mut self.duration, r.duration_minutes, n);
        for s in slots {
            self.fix_ts.append_option(s.fix_ts);
            self.padding.append_value(s.padding);
            self.location_index.append_value(s.index);
            self.hole.append_option(s.hole);
            self.section.append_option(s.section);
            self.hole_section.append_option(s.hole_section);
            self.lon.append_option(s.lon);
            self.lat.append_option(s.lat);
            self.is_cache.append_option(s.is_cache);
            self.is_projected.append_option(s.is_projected);
            self.is_problem.append_option(s.is_problem);
            self.pace_gap.append_option(s.pace_gap);
            self.positional_gap.append_option(s.positional_gap);
            self.pace.append_option(s.pace);
            self.battery.append_option(s.battery);
            let when = s.fix_ts.and_then(DateTime::<Utc>::from_timestamp_micros);
            self.event_date.append_option(when.map(|t| date32(t.date_naive())));
            self.year.append_option(when.map(|t| t.year()));
            self.month.append_option(when.map(|t| t.month() as i32));
            self.day.append_option(when.map(|t| t.day() as i32));
            self.weekday.append_option(when.map(|t| t.weekday().number_from_monday() as i32));
            self.nine.append_option(s.nine);
            match (s.lon, s.lat) {
                (Some(x), Some(y)) => {
                    use std::fmt::Write;
                    self.wkt_text.clear();
                    let _ = write!(self.wkt_text, "POINT({x} {y})");
                    self.wkt.append_value(&self.wkt_text);
                }
                _ => self.wkt.append_null(),
            }
            self.ts_missing.append_value(s.fix_ts.is_none());
        }
    }

    /// The rows so far as a batch; the builder starts again, empty, with the same room.
    fn finish(&mut self) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        let fresh = Builder::new(&self.course_id, self.ingest_date, self.capacity);
        std::mem::replace(self, fresh).batch()
    }

    fn batch(mut self) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.round_id.finish()),
            Arc::new(self.course.finish()),
            Arc::new(self.ingest.finish()),
            Arc::new(self.fix_ts.finish()),
            Arc::new(self.padding.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.end.finish()),
            Arc::new(self.start_hole.finish()),
            Arc::new(self.start_section.finish()),
            Arc::new(self.end_section.finish()),
            Arc::new(self.is_nine_hole.finish()),
            Arc::new(self.current_nine.finish()),
            Arc::new(self.goal_time.finish()),
            Arc::new(self.is_complete.finish()),
            Arc::new(self.device.finish()),
            Arc::new(self.first_fix.finish()),
            Arc::new(self.last_fix.finish()),
            Arc::new(self.goal_name.finish()),
            Arc::new(self.goal_time_fraction.finish()),
            Arc::new(self.is_incomplete.finish()),
            Arc::new(self.is_secondary.finish()),
            Arc::new(self.is_auto_assigned.finish()),
            Arc::new(self.last_section_start.finish()),
            Arc::new(self.current_section.finish()),
            Arc::new(self.current_hole.finish()),
            Arc::new(self.current_hole_section.finish()),
            Arc::new(self.location_index.finish()),
            Arc::new(self.hole.finish()),
            Arc::new(self.section.finish()),
            Arc::new(self.hole_section.finish()),
            Arc::new(self.lon.finish()),
            Arc::new(self.lat.finish()),
            Arc::new(self.is_cache.finish()),
            Arc::new(self.is_projected.finish()),
            Arc::new(self.is_problem.finish()),
            Arc::new(self.pace_gap.finish()),
            Arc::new(self.positional_gap.finish()),
            Arc::new(self.pace.finish()),
            Arc::new(self.battery.finish()),
            Arc::new(self.event_date.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.year.finish()),
            Arc::new(self.month.finish()),
            Arc::new(self.day.finish()),
            Arc::new(self.weekday.finish()),
            Arc::new(self.nine.finish()),
            Arc::new(self.wkt.finish()),
            Arc::new(self.ts_missing.finish()),
        ];
        RecordBatch::try_new(super::schema(), cols)
    }
}

fn quarantine_row(course_id: &str, ingest_date: NaiveDate, r: &RoundFields, s: &SlotFields) -> Quarantined {
    let problems: Vec<&Problem> = r.problems.iter().chain(s.problems.iter()).collect();
    // The first rule broken names the row's reason; the detail lists every problem.
    let priority = [
        "missing_round_id",
        "unparseable_timestamp",
        "invalid_longitude",
        "invalid_latitude",
        "battery_out_of_range",
        "invalid_value",
    ];
    let reason =
        priority.iter().copied().find(|code| problems.iter().any(|(c, _)| c == code)).unwrap_or("invalid_value");
    let ts = |t: Option<i64>| {
        t.and_then(DateTime::<Utc>::from_timestamp_micros)
            .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
            .unwrap_or(Value::Null)
    };
    let mut row = serde_json::Map::new();
    row.insert("round_id".into(), r.round_id.clone().map(Value::String).unwrap_or(Value::Null));
    row.insert("course_id".into(), Value::String(course_id.into()));
    row.insert("ingest_date".into(), Value::String(ingest_date.to_string()));
    row.insert("location_index".into(), Value::from(s.index));
    row.insert("round_start_time".into(), ts(r.start));
    row.insert("fix_timestamp".into(), ts(s.fix_ts));
    row.insert("hole_number".into(), s.hole.map(Value::from).unwrap_or(Value::Null));
    row.insert("section_number".into(), s.section.map(Value::from).unwrap_or(Value::Null));
    row.insert("longitude".into(), s.lon.map(Value::from).unwrap_or(Value::Null));
    row.insert("latitude".into(), s.lat.map(Value::from).unwrap_or(Value::Null));
    row.insert("battery_percentage".into(), s.battery.map(Value::from).unwrap_or(Value::Null));
    row.insert("device".into(), r.device.clone().map(Value::String).unwrap_or(Value::Null));
    row.insert("reason".into(), Value::String(reason.into()));
    row.insert(
        "reason_detail".into(),
        Value::String(problems.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>().join("; ")),
    );
    Quarantined { reason, row }
}

/// The quarantine row of a record the reader could not read: file, line and why.
fn malformed_row(course_id: &str, ingest_date: NaiveDate, file: &str, m: &Malformed) -> Quarantined {
    let mut row = serde_json::Map::new();
    row.insert("round_id".into(), Value::Null);
    row.insert("course_id".into(), Value::String(course_id.into()));
    row.insert("ingest_date".into(), Value::String(ingest_date.to_string()));
    row.insert("file".into(), Value::String(file.into()));
    row.insert("line".into(), Value::from(m.line));
    row.insert("record".into(), Value::from(m.record));
    row.insert("reason".into(), Value::String(MALFORMED_RECORD.into()));
    row.insert("reason_detail".into(), Value::String(format!("{file}:{}: record {} {}", m.line, m.record, m.reason)));
    Quarantined { reason: MALFORMED_RECORD, row }
}

/// The quarantine reason of a record the reader could not read (wrong field count, invalid UTF-8,
/// unbalanced quote, unparseable JSON element, …).
pub const MALFORMED_RECORD: &str = "malformed_record";

/// A round id as the row pass reads it (`text`), without allocating for CSV cells.
fn id_text<'a>(raw: Raw<'a>) -> Option<std::borrow::Cow<'a, str>> {
    match raw {
        Raw::Missing => None,
        Raw::Str(s) => Some(std::borrow::Cow::Borrowed(s.trim())),
        Raw::Json(v) => read::json_text(v).map(|s| std::borrow::Cow::Owned(s.trim().to_string())),
    }
    .filter(|s| !s.is_empty())
}

/// Reads every input of one (course_id, ingest_date) partition and hands typed row batches of at
/// most `batch_rows` rows to `sink` and quarantined rows to `quarantine`.
pub fn transform_partition(
    course_id: &str,
    ingest_date: NaiveDate,
    inputs: &[Input<'_>],
    rules: &Rules,
    batch_rows: usize,
    sink: &mut dyn FnMut(RecordBatch) -> Result<(), String>,
    quarantine: &mut dyn FnMut(Quarantined),
) -> Result<PartitionStats, TransformError> {
    let mut stats = PartitionStats { files: inputs.len(), ..Default::default() };
    let open = |input: &Input<'_>| -> Result<Box<dyn Read + Send>, TransformError> {
        (input.open)().map_err(|source| TransformError::Open { file: input.name.clone(), source })
    };
    // Pass 1: which round ids occur more than once in the partition.
    let mut counts: HashMap<String, u32> = HashMap::new();
    for input in inputs {
        let reader = open(input)?;
        read::read(&input.name, read::format_by_extension(&input.name), reader, &mut |r| {
            if let Record::Round(r) = r
                && let Some(id) = id_text(r.field("_id"))
            {
                *counts.entry(id.to_string()).or_insert(0) += 1;
            }
            Ok(())
        })?;
    }
    counts.retain(|_, n| *n > 1);

    // Pass 2: rows. Rounds seen once go straight out; repeated rounds wait for their best slots.
    let mut builder = Builder::new(course_id, date32(ingest_date), batch_rows);
    let mut repeated: HashMap<String, Vec<(Arc<RoundFields>, SlotFields)>> = HashMap::new();
    let mut sink_error: Option<String> = None;
    for input in inputs {
        let reader = open(input)?;
        let mut on_record = |r: Record<'_>| -> Result<(), String> {
            let r = match r {
                Record::Round(r) => r,
                Record::Malformed(m) => {
                    let q = malformed_row(course_id, ingest_date, &input.name, m);
                    *stats.quarantined.entry(q.reason.to_string()).or_insert(0) += 1;
                    quarantine(q);
                    return Ok(());
                }
            };
            stats.rounds += 1;
            let round = Arc::new(round_fields(r));
            let mut slots: Vec<SlotFields> = (0..r.slot_count()).map(|i| slot_fields(r, i, &round, rules)).collect();
            if slots.is_empty() {
                // A round without locations keeps one padding row (the reference lost it).
                slots.push(SlotFields { index: 0, padding: true, ..Default::default() });
            }
            assign_nines(&mut slots);
            let is_repeated = round.round_id.as_ref().is_some_and(|id| counts.contains_key(id));
            let mut out: Vec<SlotFields> = Vec::with_capacity(slots.len());
            for slot in slots {
                if !round.problems.is_empty() || !slot.problems.is_empty() {
                    let q = quarantine_row(course_id, ingest_date, &round, &slot);
                    *stats.quarantined.entry(q.reason.to_string()).or_insert(0) += 1;
                    quarantine(q);
                } else if is_repeated {
                    let id = round.round_id.clone().unwrap_or_default();
                    repeated.entry(id).or_default().push((round.clone(), slot));
                } else {
                    stats.rows_out += 1;
                    stats.padding_rows += u64::from(slot.padding);
                    out.push(slot);
                }
            }
            let out: Vec<&SlotFields> = out.iter().collect();
            emit(&mut builder, &round, &out, batch_rows, sink).map_err(|e| match e {
                Emit::Build(e) => e,
                Emit::Sink(e) => {
                    sink_error = Some(e.clone());
                    e
                }
            })
        };
        match read::read(&input.name, read::format_by_extension(&input.name), reader, &mut on_record) {
            Ok(summary) => stats.records_in += summary.records,
            Err(read::ReadError::Callback(e)) if sink_error.is_some() => return Err(TransformError::Sink(e)),
            Err(e) => return Err(e.into()),
        }
    }
    let mut ids: Vec<String> = repeated.keys().cloned().collect();
    ids.sort();
    for id in ids {
        let rows = repeated.remove(&id).unwrap_or_default();
        let mut best: BTreeMap<i32, (Arc<RoundFields>, SlotFields)> = BTreeMap::new();
        for (round, slot) in rows {
            match best.get(&slot.index) {
                Some((_, kept)) if !better(&slot, kept) => stats.duplicate_rows_removed += 1,
                Some(_) => {
                    stats.duplicate_rows_removed += 1;
                    best.insert(slot.index, (round, slot));
                }
                None => {
                    best.insert(slot.index, (round, slot));
                }
            }
        }
        let kept: Vec<(Arc<RoundFields>, SlotFields)> = best.into_values().collect();
        stats.rows_out += kept.len() as u64;
        stats.padding_rows += kept.iter().filter(|(_, s)| s.padding).count() as u64;
        // Consecutive slots taken from the same copy of the round go out as one run.
        for run in kept.chunk_by(|a, b| Arc::ptr_eq(&a.0, &b.0)) {
            let slots: Vec<&SlotFields> = run.iter().map(|(_, s)| s).collect();
            emit(&mut builder, &run[0].0, &slots, batch_rows, sink).map_err(|e| match e {
                Emit::Build(e) | Emit::Sink(e) => TransformError::Sink(e),
            })?;
        }
    }
    if builder.len > 0 {
        sink(builder.finish().map_err(|e| TransformError::Sink(e.to_string()))?).map_err(TransformError::Sink)?;
    }
    Ok(stats)
}

/// Why [`emit`] stopped.
enum Emit {
    Build(String),
    Sink(String),
}

/// Appends the rows of one round (`slots`, in output order) to `builder`, handing a batch to `sink`
/// each time the builder reaches `batch_rows` rows.
fn emit(
    builder: &mut Builder,
    round: &RoundFields,
    slots: &[&SlotFields],
    batch_rows: usize,
    sink: &mut dyn FnMut(RecordBatch) -> Result<(), String>,
) -> Result<(), Emit> {
    let mut rest = slots;
    while !rest.is_empty() {
        let room = batch_rows.saturating_sub(builder.len).max(1);
        let (now, later) = rest.split_at(room.min(rest.len()));
        builder.push_run(round, now);
        if builder.len >= batch_rows {
            let batch = builder.finish().map_err(|e| Emit::Build(e.to_string()))?;
            sink(batch).map_err(Emit::Sink)?;
        }
        rest = later;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;

    use super::*;

    #[test]
    fn rounding_is_half_up_on_the_decimal_value() {
        assert_eq!(round3(4.23456), 4.235);
        assert_eq!(round3(4.2345), 4.235);
        assert_eq!(round3(-4.2345), -4.235);
        assert_eq!(round3(527.14), 527.14);
        assert_eq!(round3(0.0005), 0.001);
        assert_eq!(round3(-319.0), -319.0);
        assert_eq!(round3(899.8274), 899.827);
    }

    #[test]
    fn timestamps_parse_in_the_forms_seen() {
        let t = |s| parse_timestamp(s).map(|us| DateTime::<Utc>::from_timestamp_micros(us).unwrap().to_rfc3339());
        assert_eq!(t("2024-11-01T12:30:52.000Z").unwrap(), "2024-11-01T12:30:52+00:00");
        assert_eq!(t("2024-01-15T10:00:00Z").unwrap(), "2024-01-15T10:00:00+00:00");
        assert_eq!(t("2024-01-15T05:00:00-05:00").unwrap(), "2024-01-15T10:00:00+00:00");
        assert_eq!(t("2024-01-15 10:00:00.5").unwrap(), "2024-01-15T10:00:00.500+00:00");
        assert_eq!(t("not-a-date"), None);
    }

    fn slot(hole: Option<i32>, section: Option<i32>) -> SlotFields {
        SlotFields { hole, section, padding: hole.is_none() && section.is_none(), ..Default::default() }
    }

    #[test]
    fn nines_follow_the_layout() {
        // 18-hole course: by hole.
        let mut s = vec![slot(Some(1), Some(2)), slot(Some(10), Some(30)), slot(None, None)];
        assign_nines(&mut s);
        assert_eq!(s.iter().map(|x| x.nine).collect::<Vec<_>>(), [Some(1), Some(2), None]);
        // 27-hole facility, holes 1–9 per nine: by section band.
        let mut s = vec![slot(Some(9), Some(27)), slot(Some(1), Some(28)), slot(Some(1), Some(56))];
        assign_nines(&mut s);
        assert_eq!(s.iter().map(|x| x.nine).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
        // Loop course: 1..9 then 1..2 again.
        let mut s: Vec<SlotFields> = (1..=9).chain(1..=2).map(|h| slot(Some(h), Some(h * 2))).collect();
        assign_nines(&mut s);
        assert_eq!(s[8].nine, Some(1));
        assert_eq!(s[9].nine, Some(2));
        // Shotgun start on a 9-hole course: 5..9, 1..4 is one loop.
        let mut s: Vec<SlotFields> = (5..=9).chain(1..=4).map(|h| slot(Some(h), Some(h))).collect();
        assign_nines(&mut s);
        assert!(s.iter().all(|x| x.nine == Some(1)));
    }

    #[test]
    fn booleans_parse_in_any_ascii_case() {
        for (text, want) in [("true", Some(true)), (" YES ", Some(true)), ("T", Some(true)), ("1", Some(true))] {
            assert_eq!(parse_bool(text), want, "{text:?}");
        }
        for (text, want) in [("False", Some(false)), ("n", Some(false)), ("0", Some(false)), ("NO", Some(false))] {
            assert_eq!(parse_bool(text), want, "{text:?}");
        }
        for text in ["", "tru", "yes please", "2", "ﬁ"] {
            assert_eq!(parse_bool(text), None, "{text:?}");
        }
        let mut problems = Vec::new();
        assert_eq!(boolean(Raw::Str("maybe"), "isCache", &mut problems), None);
        assert_eq!(problems, [("invalid_value", "isCache = \"maybe\" is not true or false".to_string())]);
    }

    /// Rows and batch boundaries do not depend on how rows are appended: every batch but the last
    /// is full, and the rows are the same, in the same order, whatever the batch size.
    #[test]
    fn batches_split_runs_of_one_round_anywhere() {
        let a = "_id,course,startTime,locations[0].startTime,locations[0].hole,locations[0].batteryPercentage,\
                 locations[1].startTime,locations[1].hole,locations[1].batteryPercentage,locations[2].startTime\n\
                 r1,c,2024-11-01T12:00:00Z,10,1,90,20,2,140,30\n\
                 r2,c,2024-11-01T13:00:00Z,10,1,50,20,2,50,30\n\
                 r3,c,2024-11-01T14:00:00Z,10,1,50,20,2,50,\n";
        let b = "_id,course,startTime,locations[0].startTime,locations[0].hole,locations[0].batteryPercentage,\
                 locations[1].startTime,locations[1].hole,locations[1].batteryPercentage\n\
                 r2,c,2024-11-01T13:00:00Z,10,1,40,20,2,60\n\
                 r4,c,2024-11-01T15:00:00Z,10,1,50,20,2,50\n";
        let input = |name: &str, text: &'static str| Input {
            name: name.into(),
            open: Box::new(move || Ok(Box::new(text.as_bytes()) as Box<dyn Read + Send>)),
        };
        let inputs = [input("a.csv", a), input("b.csv", b)];
        let run = |batch_rows: usize| {
            let mut batches = Vec::new();
            let date = NaiveDate::from_ymd_opt(2024, 11, 2).unwrap();
            let stats = transform_partition(
                "c",
                date,
                &inputs,
                &Rules::default(),
                batch_rows,
                &mut |batch| {
                    batches.push(batch);
                    Ok(())
                },
                &mut |_| {},
            )
            .unwrap();
            (stats, batches)
        };
        let (stats, whole) = run(1000);
        assert_eq!((stats.rows_out, stats.duplicate_rows_removed, whole.len()), (10, 2, 1));
        let rows = |batches: &[RecordBatch]| {
            datafusion::arrow::compute::concat_batches(&super::super::schema(), batches).unwrap()
        };
        let battery = |b: &RecordBatch| {
            b.column_by_name("battery_percentage")
                .unwrap()
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .clone()
        };
        // r1 slot 1 is quarantined; r2 slot 0 keeps battery 50 (file a), slot 1 keeps 60 (file b).
        assert_eq!(
            battery(&whole[0]).iter().flatten().sum::<f64>(),
            90.0 + (50.0 + 60.0) + (50.0 + 50.0) + (50.0 + 50.0)
        );
        for batch_rows in 1..=4 {
            let (s, batches) = run(batch_rows);
            assert_eq!(s, stats);
            let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
            assert!(sizes[..sizes.len() - 1].iter().all(|&n| n == batch_rows), "{batch_rows}: {sizes:?}");
            assert_eq!(rows(&batches), whole[0], "batch_rows {batch_rows}");
        }
    }

    #[test]
    fn dedup_prefers_cache_then_not_projected_then_battery() {
        let mk = |c, p, b| SlotFields { is_cache: c, is_projected: p, battery: b, ..Default::default() };
        assert!(better(&mk(Some(true), None, None), &mk(Some(false), Some(false), Some(99.0))));
        assert!(better(&mk(None, Some(false), None), &mk(None, Some(true), Some(99.0))));
        assert!(better(&mk(None, None, Some(50.0)), &mk(None, None, Some(40.0))));
        assert!(!better(&mk(None, None, None), &mk(None, None, Some(1.0))));
        assert!(!better(&mk(None, None, Some(5.0)), &mk(None, None, Some(5.0))), "ties keep the first");
    }
}
