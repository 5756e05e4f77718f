//! Streaming readers for landing files: the wide CSV (`locations[N].field` headers, N discovered
//! from the header) and the MongoDB JSON export (an array, one object, or one object per line,
//! with `$oid`/`$date`/`$number…` wrappers). Each round is handed to a callback as a
//! [`RoundSource`] view; nothing but the current round is held in memory.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

pub use crate::bronze::Format;

/// A UTF-8 byte-order mark, which bronze accepts at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bronze's rule, so silver reads a landed file as bronze accepted it: by extension, else by the
/// first non-blank byte after a byte-order mark.
pub fn detect(name: &str, head: &[u8]) -> Format {
    crate::bronze::format_by_extension(name).unwrap_or_else(|| {
        let head = head.strip_prefix(BOM).unwrap_or(head);
        head.iter().find(|b| !b.is_ascii_whitespace()).map_or(Format::Csv, |b| crate::bronze::format_by_first_byte(*b))
    })
}

/// A header cell without a leading byte-order mark.
fn header_name(cell: &[u8]) -> &[u8] {
    cell.strip_prefix(BOM).unwrap_or(cell)
}

/// A value as read from a cell, not yet typed.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    Missing,
    Str(&'a str),
    Json(&'a Value),
}

/// Per-slot fields of a location, by their source names.
pub const SLOT_FIELDS: &[&str] = &[
    "startTime",
    "date",
    "hole",
    "sectionNumber",
    "holeSection",
    "pace",
    "paceGap",
    "positionalGap",
    "batteryPercentage",
    "isCache",
    "isProjected",
    "isProblem",
];

/// Positions in [`SLOT_FIELDS`], for [`RoundSource::slot_field_at`].
pub mod slot {
    pub const START_TIME: usize = 0;
    pub const DATE: usize = 1;
    pub const HOLE: usize = 2;
    pub const SECTION_NUMBER: usize = 3;
    pub const HOLE_SECTION: usize = 4;
    pub const PACE: usize = 5;
    pub const PACE_GAP: usize = 6;
    pub const POSITIONAL_GAP: usize = 7;
    pub const BATTERY_PERCENTAGE: usize = 8;
    pub const IS_CACHE: usize = 9;
    pub const IS_PROJECTED: usize = 10;
    pub const IS_PROBLEM: usize = 11;
}

/// One round of a file.
pub trait RoundSource {
    /// A round-level field (`_id`, `startTime`, `goalTime`, …).
    fn field(&self, name: &str) -> Raw<'_>;
    /// Number of location slots of this round (CSV: every discovered slot, padding included).
    fn slot_count(&self) -> usize;
    /// The slot's `location_index` (CSV: N of `locations[N]`; JSON: array position).
    fn slot_index(&self, i: usize) -> i32;
    /// Field `f` (a position in [`SLOT_FIELDS`], see [`slot`]) of slot `i`.
    fn slot_field_at(&self, i: usize, f: usize) -> Raw<'_>;
    /// A field of slot `i` by name (one of [`SLOT_FIELDS`]; any other name is missing).
    fn slot_field(&self, i: usize, name: &str) -> Raw<'_> {
        match SLOT_FIELDS.iter().position(|f| *f == name) {
            Some(f) => self.slot_field_at(i, f),
            None => Raw::Missing,
        }
    }
    /// `fixCoordinates[k]` of slot `i` (0 = longitude, 1 = latitude).
    fn slot_coord(&self, i: usize, k: usize) -> Raw<'_>;
    /// 1-based record number in the file (for error details).
    fn record_number(&self) -> u64;
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{file}: {message}")]
    Malformed { file: String, message: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The callback stopped the read.
    #[error("{0}")]
    Callback(String),
}

// ---- CSV ----------------------------------------------------------------------------------------

/// Column positions of one slot.
#[derive(Debug, Clone, Default)]
struct SlotCols {
    index: i32,
    fields: [Option<usize>; SLOT_FIELDS.len()],
    coords: [Option<usize>; 2],
}

/// Where everything is in a wide CSV header.
#[derive(Debug, Clone)]
struct CsvLayout {
    round: HashMap<String, usize>,
    slots: Vec<SlotCols>,
}

impl CsvLayout {
    fn from_header(header: &csv::ByteRecord) -> CsvLayout {
        let mut round = HashMap::new();
        let mut slots: std::collections::BTreeMap<i32, SlotCols> = std::collections::BTreeMap::new();
        let mut defined: std::collections::BTreeSet<i32> = std::collections::BTreeSet::new();
        for (pos, name) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(header_name(name));
            let name = name.trim();
            if let Some((n, field)) = parse_slot_header(name) {
                let slot = slots.entry(n).or_insert_with(|| SlotCols { index: n, ..Default::default() });
                if field == "startTime" {
                    defined.insert(n);
                }
                if let Some(k) = field.strip_prefix("fixCoordinates[").and_then(|r| r.strip_suffix(']')) {
                    match k {
                        "0" => slot.coords[0] = Some(pos),
                        "1" => slot.coords[1] = Some(pos),
                        _ => {}
                    }
                } else if let Some(f) = SLOT_FIELDS.iter().position(|f| *f == field) {
                    slot.fields[f] = Some(pos);
                }
            } else {
                round.entry(name.to_string()).or_insert(pos);
            }
        }
        // A slot exists when its `startTime` column does (REFERENCE §2.3 step 5).
        let slots = slots.into_values().filter(|s| defined.contains(&s.index)).collect();
        CsvLayout { round, slots }
    }
}

/// `locations[12].hole` → (12, "hole").
fn parse_slot_header(name: &str) -> Option<(i32, &str)> {
    let rest = name.strip_prefix("locations[")?;
    let close = rest.find(']')?;
    let n: i32 = rest[..close].parse().ok()?;
    let field = rest[close + 1..].strip_prefix('.')?;
    Some((n, field))
}

struct CsvRound<'a> {
    layout: &'a CsvLayout,
    record: &'a csv::ByteRecord,
    number: u64,
}

impl CsvRound<'_> {
    fn cell(&self, pos: Option<usize>) -> Raw<'_> {
        let Some(bytes) = pos.and_then(|p| self.record.get(p)) else { return Raw::Missing };
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else { return Raw::Missing };
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                // A cell that starts and ends with a visible ASCII character has nothing to trim
                // (the common case; `trim` is Unicode-aware and costs more).
                let visible = |b: u8| b > b' ' && b < 0x7f;
                let s = if visible(first) && visible(last) { s } else { s.trim() };
                if s.is_empty() { Raw::Missing } else { Raw::Str(s) }
            }
            Err(_) => Raw::Str("\u{FFFD}"),
        }
    }
}

impl RoundSource for CsvRound<'_> {
    fn field(&self, name: &str) -> Raw<'_> {
        self.cell(self.layout.round.get(name).copied())
    }
    fn slot_count(&self) -> usize {
        self.layout.slots.len()
    }
    fn slot_index(&self, i: usize) -> i32 {
        self.layout.slots[i].index
    }
    fn slot_field_at(&self, i: usize, f: usize) -> Raw<'_> {
        self.cell(self.layout.slots[i].fields.get(f).copied().flatten())
    }
    fn slot_coord(&self, i: usize, k: usize) -> Raw<'_> {
        self.cell(self.layout.slots[i].coords.get(k).copied().flatten())
    }
    fn record_number(&self) -> u64 {
        self.number
    }
}

/// Calls `f` for every round of a wide CSV. Returns the number of records.
pub fn read_csv<R: Read>(
    file: &str,
    reader: R,
    f: &mut dyn FnMut(&dyn RoundSource) -> Result<(), String>,
) -> Result<u64, ReadError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).buffer_capacity(1 << 20).from_reader(reader);
    let header = rdr
        .byte_headers()
        .map_err(|e| ReadError::Malformed { file: file.into(), message: format!("unreadable CSV header: {e}") })?
        .clone();
    let layout = CsvLayout::from_header(&header);
    if layout.slots.is_empty() {
        return Err(ReadError::Malformed {
            file: file.into(),
            message: "no locations[N].startTime columns in the header".into(),
        });
    }
    let mut record = csv::ByteRecord::new();
    let mut n = 0u64;
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                n += 1;
                if record.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
                    continue;
                }
                f(&CsvRound { layout: &layout, record: &record, number: n }).map_err(ReadError::Callback)?;
            }
            Err(e) => {
                return Err(ReadError::Malformed { file: file.into(), message: format!("CSV record {}: {e}", n + 1) });
            }
        }
    }
    Ok(n)
}

/// Only the `_id` of every record of a wide CSV (the cheap first pass of deduplication).
pub fn csv_round_ids<R: Read>(file: &str, reader: R, f: &mut dyn FnMut(Option<&str>)) -> Result<(), ReadError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).buffer_capacity(1 << 20).from_reader(reader);
    let header = rdr
        .byte_headers()
        .map_err(|e| ReadError::Malformed { file: file.into(), message: format!("unreadable CSV header: {e}") })?;
    let id_pos = header.iter().position(|h| header_name(h) == b"_id");
    let mut record = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let id = id_pos.and_then(|p| record.get(p)).and_then(|b| std::str::from_utf8(b).ok()).map(str::trim);
                f(id.filter(|s| !s.is_empty()));
            }
            Err(e) => return Err(ReadError::Malformed { file: file.into(), message: e.to_string() }),
        }
    }
}

// ---- JSON ---------------------------------------------------------------------------------------

struct JsonRound<'a> {
    obj: &'a serde_json::Map<String, Value>,
    locations: &'a [Value],
    number: u64,
}

fn json_raw(v: Option<&Value>) -> Raw<'_> {
    match v {
        None | Some(Value::Null) => Raw::Missing,
        Some(Value::String(s)) if s.trim().is_empty() => Raw::Missing,
        Some(v) => Raw::Json(v),
    }
}

impl RoundSource for JsonRound<'_> {
    fn field(&self, name: &str) -> Raw<'_> {
        json_raw(self.obj.get(name))
    }
    fn slot_count(&self) -> usize {
        self.locations.len()
    }
    fn slot_index(&self, i: usize) -> i32 {
        i as i32
    }
    fn slot_field_at(&self, i: usize, f: usize) -> Raw<'_> {
        match SLOT_FIELDS.get(f) {
            Some(name) => json_raw(self.locations.get(i).and_then(|l| l.get(*name))),
            None => Raw::Missing,
        }
    }
    fn slot_coord(&self, i: usize, k: usize) -> Raw<'_> {
        json_raw(self.locations.get(i).and_then(|l| l.get("fixCoordinates")).and_then(|c| c.get(k)))
    }
    fn record_number(&self) -> u64 {
        self.number
    }
}

fn visit_json_round(
    value: &Value,
    number: u64,
    f: &mut dyn FnMut(&dyn RoundSource) -> Result<(), String>,
) -> Result<(), String> {
    let Some(obj) = value.as_object() else {
        return Err(format!("record {number} is not a JSON object"));
    };
    let locations: &[Value] = match obj.get("locations") {
        Some(Value::Array(a)) => a,
        _ => &[],
    };
    f(&JsonRound { obj, locations, number })
}

/// Streams the elements of a top-level JSON array to a callback.
struct ArrayVisitor<'f> {
    f: &'f mut dyn FnMut(Value) -> Result<(), String>,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_> {
    type Value = u64;
    fn expecting(&self, out: &mut fmt::Formatter) -> fmt::Result {
        out.write_str("a JSON array of round objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            n += 1;
            (self.f)(v).map_err(serde::de::Error::custom)?;
        }
        Ok(n)
    }
}

impl<'de> DeserializeSeed<'de> for ArrayVisitor<'_> {
    type Value = u64;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

/// Calls `f` for every value of a JSON file: the elements of a top-level array, or each
/// top-level value (one object, or one object per line). Returns the number of values.
pub fn for_each_json_value<R: Read>(
    file: &str,
    reader: R,
    f: &mut dyn FnMut(Value) -> Result<(), String>,
) -> Result<u64, ReadError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let first = loop {
        let buf = reader.fill_buf().map_err(|source| ReadError::Io { file: file.into(), source })?;
        if buf.is_empty() {
            break None;
        }
        let skip_bom = if buf.starts_with(BOM) { BOM.len() } else { 0 };
        if skip_bom > 0 {
            reader.consume(skip_bom);
            continue;
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(p) => {
                let b = buf[p];
                reader.consume(p);
                break Some(b);
            }
            None => {
                let len = buf.len();
                reader.consume(len);
            }
        }
    };
    let malformed = |e: serde_json::Error| {
        if e.is_data() && !e.to_string().contains("line") {
            ReadError::Callback(e.to_string())
        } else {
            ReadError::Malformed { file: file.into(), message: format!("invalid JSON: {e}") }
        }
    };
    match first {
        None => Ok(0),
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_reader(reader);
            let n = ArrayVisitor { f }.deserialize(&mut de).map_err(malformed)?;
            de.end().map_err(malformed)?;
            Ok(n)
        }
        Some(_) => {
            let mut n = 0;
            for v in serde_json::Deserializer::from_reader(reader).into_iter::<Value>() {
                let v = v.map_err(malformed)?;
                n += 1;
                f(v).map_err(ReadError::Callback)?;
            }
            Ok(n)
        }
    }
}

/// Calls `f` for every round of a JSON export. Returns the number of records.
pub fn read_json<R: Read>(
    file: &str,
    reader: R,
    f: &mut dyn FnMut(&dyn RoundSource) -> Result<(), String>,
) -> Result<u64, ReadError> {
    let mut n = 0u64;
    for_each_json_value(file, reader, &mut |v| {
        n += 1;
        visit_json_round(&v, n, f)
    })
}

/// A string from a JSON value, unwrapping `{"$oid": …}` and `{"$date": …}`.
pub fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(o) => ["$oid", "$date", "$numberLong", "$numberInt", "$numberDouble", "$numberDecimal"]
            .iter()
            .find_map(|k| o.get(*k))
            .and_then(json_text),
        _ => None,
    }
}

/// Only the `_id` of every record of a JSON export (first pass of deduplication).
pub fn json_round_ids<R: Read>(file: &str, reader: R, f: &mut dyn FnMut(Option<&str>)) -> Result<(), ReadError> {
    for_each_json_value(file, reader, &mut |v| {
        let id = v.get("_id").and_then(json_text);
        f(id.as_deref().map(str::trim).filter(|s| !s.is_empty()));
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension_then_first_byte() {
        assert_eq!(detect("a.JSON", b"x"), Format::Json);
        assert_eq!(detect("a.csv", b"["), Format::Csv);
        assert_eq!(detect("a.txt", b"  \n [{}]"), Format::Json);
        assert_eq!(detect("a.txt", b"   "), Format::Csv, "blank is not JSON (the reference's bug)");
        assert_eq!(detect("a.txt", b"_id,course"), Format::Csv);
        assert_eq!(detect("a.txt", b"\xEF\xBB\xBF [{}]"), Format::Json, "after a byte-order mark");
    }

    #[test]
    fn byte_order_marks_are_not_part_of_the_data() {
        let csv = b"\xEF\xBB\xBF_id,course,locations[0].startTime\nr1,c,300\n";
        let mut ids = Vec::new();
        csv_round_ids("t.csv", &csv[..], &mut |id| ids.push(id.map(str::to_string))).unwrap();
        assert_eq!(ids, [Some("r1".to_string())]);
        let mut seen = Vec::new();
        read_csv("t.csv", &csv[..], &mut |r| {
            seen.push(format!("{:?}", r.field("_id")));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["Str(\"r1\")"]);
        let json = b"\xEF\xBB\xBF[{\"_id\": \"a\"}]";
        let n = read_json("t.json", &json[..], &mut |_| Ok(())).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn slot_positions_name_the_fields() {
        let at = [
            (slot::START_TIME, "startTime"),
            (slot::DATE, "date"),
            (slot::HOLE, "hole"),
            (slot::SECTION_NUMBER, "sectionNumber"),
            (slot::HOLE_SECTION, "holeSection"),
            (slot::PACE, "pace"),
            (slot::PACE_GAP, "paceGap"),
            (slot::POSITIONAL_GAP, "positionalGap"),
            (slot::BATTERY_PERCENTAGE, "batteryPercentage"),
            (slot::IS_CACHE, "isCache"),
            (slot::IS_PROJECTED, "isProjected"),
            (slot::IS_PROBLEM, "isProblem"),
        ];
        assert_eq!(at.len(), SLOT_FIELDS.len());
        for (i, name) in at {
            assert_eq!(SLOT_FIELDS[i], name);
        }
    }

    #[test]
    fn csv_cells_are_trimmed_and_blank_is_missing() {
        let csv = "_id,course,locations[0].startTime,locations[0].hole,locations[0].pace\n r1 ,c,\" 300\",\u{a0}7\u{a0},\"  \"\n";
        let mut seen = Vec::new();
        read_csv("t.csv", csv.as_bytes(), &mut |r| {
            seen.push(format!(
                "{:?} {:?} {:?} {:?}",
                r.field("_id"),
                r.slot_field(0, "startTime"),
                r.slot_field_at(0, slot::HOLE),
                r.slot_field(0, "pace")
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["Str(\"r1\") Str(\"300\") Str(\"7\") Missing"]);
    }

    #[test]
    fn slot_headers_parse() {
        assert_eq!(parse_slot_header("locations[12].hole"), Some((12, "hole")));
        assert_eq!(parse_slot_header("locations[0].fixCoordinates[1]"), Some((0, "fixCoordinates[1]")));
        assert_eq!(parse_slot_header("locations[x].hole"), None);
        assert_eq!(parse_slot_header("startTime"), None);
    }

    #[test]
    fn csv_slots_come_from_start_time_columns() {
        let csv = "_id,course,locations[0].startTime,locations[0].hole,locations[1].startTime,locations[5].startTime,locations[5].hole,locations[7].hole\n\
                   r1,c,300,1,600,900,2,9\n";
        let mut seen = Vec::new();
        read_csv("t.csv", csv.as_bytes(), &mut |r| {
            let slots: Vec<(i32, String)> =
                (0..r.slot_count()).map(|i| (r.slot_index(i), format!("{:?}", r.slot_field(i, "hole")))).collect();
            seen.push(slots);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 1);
        let idx: Vec<i32> = seen[0].iter().map(|s| s.0).collect();
        assert_eq!(idx, [0, 1, 5], "slot 7 has no startTime column");
        assert_eq!(seen[0][1].1, "Missing");
    }

    #[test]
    fn json_arrays_objects_and_lines_stream() {
        let count = |text: &str| {
            let mut ids = Vec::new();
            read_json("t.json", text.as_bytes(), &mut |r| {
                ids.push(match r.field("_id") {
                    Raw::Json(v) => json_text(v).unwrap_or_default(),
                    _ => String::new(),
                });
                Ok(())
            })
            .map(|_| ids)
        };
        assert_eq!(count(r#" [{"_id": {"$oid": "a"}}, {"_id": "b"}] "#).unwrap(), ["a", "b"]);
        assert_eq!(count(r#"{"_id": "a", "locations": []}"#).unwrap(), ["a"]);
        assert_eq!(count("{\"_id\": \"a\"}\n{\"_id\": \"b\"}\n").unwrap(), ["a", "b"]);
        assert!(matches!(count(r#"[{"_id": "a"}, {"_id": "#), Err(ReadError::Malformed { .. })));
        assert!(count("[]").unwrap().is_empty());
    }
}
