//! The one reader of the landing formats, used by bronze (validation at ingest) and silver
//! (parsing): the wide CSV (`locations[N].field` headers, N discovered from the header; a record
//! per line, a quoted line break allowed) and the MongoDB JSON export (an array, one
//! object, or one object per line, with `$oid`/`$date`/`$number…` wrappers).
//!
//! Tolerant per record: a record that cannot be read (wrong field count, invalid UTF-8, an
//! unbalanced quote, an unparseable JSON element, a record longer than [`MAX_RECORD`]) is handed
//! to the callback as [`Record::Malformed`] with its record number, line and reason, and reading
//! goes on with the next one. Only an unusable CSV header stops a file ([`Unusable`]). Memory stays
//! bounded by one record.

mod csv;
mod json;

use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

/// A UTF-8 byte-order mark, accepted (and skipped) at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Longest record held in memory (a CSV line, a JSON element); real rounds are ~8 KB. A longer one
/// is malformed, skipped without being held.
pub const MAX_RECORD: usize = 64 * 1024 * 1024;
const BUFFER: usize = 1 << 20;

/// A landing file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The wide CSV: a header row with `_id`, `course` and `locations[N].*` columns.
    Csv,
    /// MongoDB extended-JSON export: an array of round objects, one object, or one per line.
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// The format a file name's extension says (`.csv`; `.json`, `.ndjson`, `.jsonl`), any case.
pub fn format_by_extension(name: &str) -> Option<Format> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Format::Csv),
        "json" | "ndjson" | "jsonl" => Some(Format::Json),
        _ => None,
    }
}

/// The format the first byte that is not whitespace (after a UTF-8 byte-order mark) says:
/// `[` or `{` is JSON, anything else CSV.
pub fn format_by_first_byte(byte: u8) -> Format {
    if byte == b'[' || byte == b'{' { Format::Json } else { Format::Csv }
}

/// A record that could not be read as a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// 1-based among the file's records (blank CSV lines are not records).
    pub record: u64,
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// Why, e.g. `has 304 fields, the header has 712`.
    pub reason: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: record {} {}", self.line, self.record, self.reason)
    }
}

/// One record of a file, as the callback sees it.
pub enum Record<'a> {
    Round(&'a dyn RoundSource),
    Malformed(&'a Malformed),
}

/// What reading a file found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// None when the file is empty or holds only whitespace.
    pub format: Option<Format>,
    /// Records, good and malformed.
    pub records: u64,
    pub malformed: u64,
}

/// Why a file cannot be read at all (its CSV header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error(
        "CSV header missing required {}: {}",
        if .0.len() == 1 { "column" } else { "columns" },
        .0.join(", ")
    )]
    MissingColumns(Vec<String>),
    #[error("CSV header (line {line}) is not valid UTF-8 (invalid byte at byte {byte} of the line)")]
    NotUtf8 { line: u64, byte: usize },
    #[error("CSV header (line {line}) is longer than {} MiB; not a rounds file", limit / (1024 * 1024))]
    TooLong { line: u64, limit: usize },
    #[error("CSV header (line {line}) has an unbalanced quote")]
    Quote { line: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{file}: {problem}")]
    Unusable { file: String, problem: Unusable },
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

/// Reads every record of `reader` (a whole landing file named `file`) and hands each to `f`.
/// The format is `by_extension` if given, else the first byte that is not whitespace after a
/// byte-order mark says it ([`format_by_first_byte`]).
pub fn read(
    file: &str,
    by_extension: Option<Format>,
    reader: impl Read,
    f: &mut dyn FnMut(Record<'_>) -> Result<(), String>,
) -> Result<Summary, ReadError> {
    read_with_limit(file, by_extension, reader, MAX_RECORD, f)
}

/// [`read`] with another record length limit (tests).
pub fn read_with_limit(
    file: &str,
    by_extension: Option<Format>,
    reader: impl Read,
    max_record: usize,
    f: &mut dyn FnMut(Record<'_>) -> Result<(), String>,
) -> Result<Summary, ReadError> {
    let io = |source| ReadError::Io { file: file.into(), source };
    let mut rd = BufReader::with_capacity(BUFFER, reader);
    let (first, lead_lines) = skip_leading(&mut rd).map_err(io)?;
    let Some(first) = first else { return Ok(Summary::default()) };
    let format = by_extension.unwrap_or_else(|| format_by_first_byte(first));
    let (records, malformed) = match format {
        Format::Csv => csv::read(file, &mut rd, lead_lines, max_record, f)?,
        Format::Json => json::read(file, &mut rd, lead_lines, max_record, f)?,
    };
    Ok(Summary { format: Some(format), records, malformed })
}

/// Consumes a UTF-8 byte-order mark and leading ASCII whitespace; returns the first other byte
/// (None for a blank file) and the newlines skipped.
fn skip_leading(rd: &mut impl BufRead) -> std::io::Result<(Option<u8>, u64)> {
    let mut newlines = 0u64;
    let mut at_start = true;
    loop {
        let buf = rd.fill_buf()?;
        if buf.is_empty() {
            return Ok((None, newlines));
        }
        let start = if at_start && buf.starts_with(BOM) { BOM.len() } else { 0 };
        at_start = false;
        match buf[start..].iter().position(|b| !b.is_ascii_whitespace()) {
            Some(p) => {
                let first = buf[start + p];
                newlines += count_newlines(&buf[start..start + p]);
                rd.consume(start + p);
                return Ok((Some(first), newlines));
            }
            None => {
                newlines += count_newlines(&buf[start..]);
                let n = buf.len();
                rd.consume(n);
            }
        }
    }
}

fn count_newlines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// A string from a JSON value, unwrapping `{"$oid": …}`, `{"$date": …}` and `{"$number…": …}`.
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

/// The text of a cell, for callers that want a plain string (`course`, `_id`): trimmed, JSON
/// wrappers unwrapped; None when missing or blank.
pub fn raw_text(raw: Raw<'_>) -> Option<String> {
    match raw {
        Raw::Missing => None,
        Raw::Str(s) => Some(s.trim().to_string()),
        Raw::Json(v) => json_text(v).map(|s| s.trim().to_string()),
    }
    .filter(|s| !s.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` as file `name`: (Debug of each good round's `_id` and `slot`-th hole, malformed).
    fn collect(name: &str, text: &[u8]) -> (Summary, Vec<String>, Vec<String>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let summary = read(name, format_by_extension(name), text, &mut |r| {
            match r {
                Record::Round(r) => good.push(raw_text(r.field("_id")).unwrap_or_default()),
                Record::Malformed(m) => bad.push(m.to_string()),
            }
            Ok(())
        })
        .unwrap();
        (summary, good, bad)
    }

    #[test]
    fn formats_come_from_extensions_and_first_bytes() {
        assert_eq!(format_by_extension("a.CSV"), Some(Format::Csv));
        assert_eq!(format_by_extension("a.rounds.jsonl"), Some(Format::Json));
        assert_eq!(format_by_extension("a.txt"), None);
        assert_eq!(format_by_extension("noext"), None);
        assert_eq!(format_by_first_byte(b'['), Format::Json);
        assert_eq!(format_by_first_byte(b'{'), Format::Json);
        assert_eq!(format_by_first_byte(b'_'), Format::Csv);
        let format = |text: &[u8]| collect("a.txt", text).0.format;
        assert_eq!(format(b"  \n [{\"_id\": 1, \"course\": 2}]"), Some(Format::Json));
        assert_eq!(format(b"   "), None, "blank is not JSON (the reference's bug)");
        assert_eq!(format(b"_id,course\n"), Some(Format::Csv));
        assert_eq!(format(b"\xEF\xBB\xBF [{}]"), Some(Format::Json), "after a byte-order mark");
    }

    #[test]
    fn byte_order_marks_and_crlf_are_not_part_of_the_data() {
        let (s, good, bad) = collect("t.csv", b"\xEF\xBB\xBF_id,course,locations[0].startTime\r\nr1,c,300\r\n\r\n");
        assert_eq!((s.records, s.malformed, good, bad.len()), (1, 0, vec!["r1".to_string()], 0));
        let (s, good, _) = collect("t.json", b"\xEF\xBB\xBF[{\"_id\": \"a\", \"course\": \"c\"}]");
        assert_eq!((s.records, good), (1, vec!["a".to_string()]));
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
        read("t.csv", None, csv.as_bytes(), &mut |r| {
            let Record::Round(r) = r else { panic!("malformed") };
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
        assert_eq!(csv::parse_slot_header("locations[12].hole"), Some((12, "hole")));
        assert_eq!(csv::parse_slot_header("locations[0].fixCoordinates[1]"), Some((0, "fixCoordinates[1]")));
        assert_eq!(csv::parse_slot_header("locations[x].hole"), None);
        assert_eq!(csv::parse_slot_header("startTime"), None);
    }

    #[test]
    fn csv_slots_come_from_start_time_columns() {
        let csv = "_id,course,locations[0].startTime,locations[0].hole,locations[1].startTime,locations[5].startTime,locations[5].hole,locations[7].hole\n\
                   r1,c,300,1,600,900,2,9\n";
        let mut seen = Vec::new();
        read("t.csv", None, csv.as_bytes(), &mut |r| {
            let Record::Round(r) = r else { panic!("malformed") };
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
    fn bad_csv_lines_are_malformed_records_and_the_rest_is_read() {
        let text = b"_id,course,x\nr1,c,1\nr2,c\nr3,c,\xff\nr4,\"c,1\nr5,c,1\n\n,,\nr6,c,\"q\"\"\"\n";
        let (s, good, bad) = collect("t.csv", text);
        assert_eq!(good, ["r1", "r5", "r6"]);
        assert_eq!(
            bad,
            [
                "line 3: record 2 has 2 fields, the header has 3",
                "line 4: record 3 is not valid UTF-8 (invalid byte at byte 6 of the line)",
                "line 5: record 4 has an unbalanced quote (field 2)",
            ]
        );
        assert_eq!((s.records, s.malformed), (6, 3), "blank lines and lines of empty cells are not records");
        // A line longer than the limit is skipped, not held.
        let mut text = b"_id,course\nr1,c\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 4096));
        text.extend_from_slice(b",c\nr3,c\n");
        let mut bad = Vec::new();
        let s = read_with_limit("t.csv", None, &text[..], 1024, &mut |r| {
            if let Record::Malformed(m) = r {
                bad.push(m.to_string());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!((s.records, s.malformed), (3, 1));
        assert_eq!(bad, ["line 3: record 2 is longer than 0 MiB"]);
    }

    #[test]
    fn an_unusable_header_stops_the_file() {
        let err = |text: &[u8]| match read("t.csv", None, text, &mut |_| Ok(())) {
            Err(ReadError::Unusable { problem, .. }) => problem.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(err(b"_id,x\nr1,2\n"), "CSV header missing required column: course");
        assert_eq!(
            err(b"\n\n_id,c\xffourse\n"),
            "CSV header (line 3) is not valid UTF-8 (invalid byte at byte 6 of the line)"
        );
        assert_eq!(err(b"_id,\"course\n"), "CSV header (line 1) has an unbalanced quote");
    }
}
