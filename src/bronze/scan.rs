//! One streaming pass over a local file: sha256 and size of every byte, a UTF-8 check, format
//! detection, parsing and validation of EVERY record, the record count and the `course` values.
//! Memory stays bounded by one record (plus the distinct `course` values), whatever the file size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

use super::RejectReason;

const BUFFER: usize = 256 * 1024;
/// Distinct `course` values remembered per file (a file with more names other courses anyway).
const MAX_COURSE_VALUES: usize = 10_000;
const BOM: &[u8] = &[0xEF, 0xBB, 0xBF];
/// Longest physical CSV line read (a CSV record is held in memory whole; real rounds are ~8 KB).
/// JSON has no limit: a minified export is one line and is parsed as a stream.
pub const MAX_CSV_LINE: u64 = 64 * 1024 * 1024;

/// A file format bronze accepts.
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

/// What one pass found.
#[derive(Debug, Clone)]
pub struct Scan {
    pub sha256: String,
    pub size: u64,
    /// None when the file is empty or blank.
    pub format: Option<Format>,
    /// Records read (all of them when `problem` is None).
    pub records: u64,
    /// The first reason to reject the file's content.
    pub problem: Option<RejectReason>,
    pub courses: CourseTally,
}

/// The distinct `course` values of a file with the first record holding each and how many do.
#[derive(Debug, Clone, Default)]
pub struct CourseTally {
    values: HashMap<String, (u64, u64)>,
    /// Records whose value was not remembered because the file had too many distinct values.
    pub unremembered: u64,
}

impl CourseTally {
    fn add(&mut self, value: &str, record: u64) {
        if let Some((_, n)) = self.values.get_mut(value) {
            *n += 1;
        } else if self.values.len() < MAX_COURSE_VALUES {
            self.values.insert(value.to_string(), (record, 1));
        } else {
            self.unremembered += 1;
        }
    }

    /// `(value, first record, records)` in order of first appearance.
    pub fn values(&self) -> Vec<(&str, u64, u64)> {
        let mut v: Vec<(&str, u64, u64)> = self.values.iter().map(|(k, (f, n))| (k.as_str(), *f, *n)).collect();
        v.sort_by_key(|(_, first, _)| *first);
        v
    }
}

/// Reads `path` once. I/O errors on the file are errors; everything wrong with its content is a
/// [`Scan::problem`]. `by_extension` is the format the file name says, if it says one.
pub fn scan_file(path: &Path, by_extension: Option<Format>) -> io::Result<Scan> {
    scan_file_with(path, by_extension, MAX_CSV_LINE)
}

fn scan_file_with(path: &Path, by_extension: Option<Format>, max_csv_line: u64) -> io::Result<Scan> {
    let mut tap = Tap::new(File::open(path)?, max_csv_line);
    let parsed = (|| {
        let mut rd = BufReader::with_capacity(BUFFER, &mut tap);
        let (first, lead_lines) = skip_leading(&mut rd)?;
        match first {
            None => Ok((None, 0, None, CourseTally::default())),
            Some(byte) => {
                let format = by_extension.unwrap_or_else(|| format_by_first_byte(byte));
                let (records, problem, courses) = match format {
                    Format::Csv => {
                        rd.get_mut().enforce = true;
                        scan_csv(&mut rd, lead_lines)?
                    }
                    Format::Json => scan_json(&mut rd)?,
                };
                Ok((Some(format), records, problem, courses))
            }
        }
    })();
    let (format, records, problem, courses) = match (parsed, tap.giant_line) {
        (Ok(p), _) => p,
        // The tap stopped the CSV parser at a line too long to hold.
        (Err(_), Some(_)) => (Some(Format::Csv), 0, None, CourseTally::default()),
        (Err(e), None) => return Err(e),
    };
    // The rest of the file (after a problem stopped the parser) still counts for hash and size.
    tap.enforce = false;
    io::copy(&mut tap, &mut io::sink())?;
    tap.utf8.finish();
    let problem = if tap.size == 0 {
        Some(RejectReason::Empty)
    } else if format.is_none() {
        Some(RejectReason::Blank)
    } else if let Some((offset, line)) = tap.utf8.bad {
        Some(RejectReason::NotUtf8 { offset, line })
    } else if let (Some(Format::Csv), Some(line)) = (format, tap.giant_line) {
        Some(RejectReason::GiantLine { line, limit: max_csv_line })
    } else {
        problem
    };
    Ok(Scan { sha256: crate::util::hex(&tap.hasher.finalize()), size: tap.size, format, records, problem, courses })
}

/// Consumes a UTF-8 byte-order mark and leading ASCII whitespace; returns the first other byte
/// (None for a blank file) and the newlines skipped.
fn skip_leading(rd: &mut impl BufRead) -> io::Result<(Option<u8>, u64)> {
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

// ---- CSV ----------------------------------------------------------------------------------------

fn scan_csv(rd: impl Read, lead_lines: u64) -> io::Result<(u64, Option<RejectReason>, CourseTally)> {
    let mut tally = CourseTally::default();
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).buffer_capacity(BUFFER).from_reader(rd);
    let mut rec = csv::ByteRecord::new();
    if !read_csv(&mut rdr, &mut rec)? {
        return Ok((0, Some(RejectReason::CsvNoRecords), tally));
    }
    let header: Vec<String> = rec.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    let missing: Vec<String> =
        ["_id", "course"].iter().filter(|c| !header.iter().any(|h| h == *c)).map(|c| c.to_string()).collect();
    if !missing.is_empty() {
        return Ok((0, Some(RejectReason::CsvMissingColumns { missing }), tally));
    }
    let course_at = header.iter().position(|h| h == "course").unwrap_or(0);
    let width = header.len();
    let mut records = 0u64;
    while read_csv(&mut rdr, &mut rec)? {
        // A line of only spaces or tabs is a blank line, not a record.
        if rec.len() == 1 && rec[0].iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        records += 1;
        if rec.len() != width {
            let line = rec.position().map_or(0, |p| p.line()) + lead_lines;
            return Ok((
                records,
                Some(RejectReason::CsvFieldCount { record: records, line, found: rec.len(), expected: width }),
                tally,
            ));
        }
        tally.add(&String::from_utf8_lossy(&rec[course_at]), records);
    }
    if records == 0 {
        return Ok((0, Some(RejectReason::CsvNoRecords), tally));
    }
    Ok((records, None, tally))
}

fn read_csv<R: Read>(rdr: &mut csv::Reader<R>, rec: &mut csv::ByteRecord) -> io::Result<bool> {
    rdr.read_byte_record(rec).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("CSV reader: {other:?}")),
    })
}

// ---- JSON ---------------------------------------------------------------------------------------

/// A record-level problem found while parsing; turned into a [`RejectReason`] with the position
/// serde_json reports when the parse is aborted.
enum JsonProblem {
    NotObject { record: u64, found: &'static str },
    Missing { record: u64, fields: Vec<String> },
}

#[derive(Default)]
struct JsonState {
    records: u64,
    tally: CourseTally,
    problem: Option<JsonProblem>,
    top_array: bool,
}

const ABORT: &str = "bronze: record rejected";

impl JsonState {
    fn not_object<E: de::Error>(&mut self, found: &'static str) -> Result<(), E> {
        self.problem = Some(JsonProblem::NotObject { record: self.records + 1, found });
        Err(E::custom(ABORT))
    }

    fn record<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        let record = self.records + 1;
        let mut has_id = false;
        let mut course: Option<String> = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => {
                    has_id = true;
                    map.next_value::<IgnoredAny>()?;
                }
                Key::Course => course = Some(course_text(map.next_value::<serde_json::Value>()?)),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.records = record;
        let mut fields = Vec::new();
        if !has_id {
            fields.push("_id".to_string());
        }
        if course.is_none() {
            fields.push("course".to_string());
        }
        match course {
            Some(c) if fields.is_empty() => {
                self.tally.add(&c, record);
                Ok(())
            }
            _ => {
                self.problem = Some(JsonProblem::Missing { record, fields });
                Err(de::Error::custom(ABORT))
            }
        }
    }
}

/// The text of a `course` value: strings as they are, `{"$oid": …}`-style wrappers unwrapped,
/// null as empty, anything else as its JSON text.
fn course_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        serde_json::Value::Object(ref m) if m.len() == 1 => match m.values().next() {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// An object key, without allocating for keys bronze does not look at.
enum Key {
    Id,
    Course,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "_id" => Key::Id,
                    "course" => Key::Course,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A top-level value (`top`) or an element of the top-level array.
struct RecordSeed<'a> {
    state: &'a mut JsonState,
    /// The first top-level value: the only one that may be an array of records.
    first_top: bool,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object (a round)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.state.record(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.first_top {
            return self.state.not_object("an array");
        }
        self.state.top_array = true;
        while seq.next_element_seed(RecordSeed { state: &mut *self.state, first_top: false })?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.state.not_object("a string")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.state.not_object("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.state.not_object("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.state.not_object("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.state.not_object("a number")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.state.not_object("null")
    }
}

fn scan_json(rd: impl Read) -> io::Result<(u64, Option<RejectReason>, CourseTally)> {
    let mut de = serde_json::Deserializer::from_reader(rd);
    let mut state = JsonState::default();
    let mut first_top = true;
    loop {
        // `end` only looks past whitespace: Ok at the end of input, an error if more follows.
        match de.end() {
            Ok(()) => break,
            Err(e) if e.is_io() => return Err(e.into()),
            Err(e) if state.top_array => {
                let problem = RejectReason::JsonSyntax(format!("{e} (content after the top-level array)"));
                return Ok((state.records, Some(problem), state.tally));
            }
            Err(_) => {}
        }
        if let Err(e) = (RecordSeed { state: &mut state, first_top }).deserialize(&mut de) {
            if e.is_io() {
                return Err(e.into());
            }
            let problem = match state.problem.take() {
                Some(JsonProblem::NotObject { record, found }) => {
                    RejectReason::JsonNotObject { record, line: e.line() as u64, found: found.to_string() }
                }
                Some(JsonProblem::Missing { record, fields }) => {
                    RejectReason::JsonMissingFields { record, line: e.line() as u64, missing: fields }
                }
                None if e.is_eof() => RejectReason::JsonTruncated(e.to_string()),
                None => RejectReason::JsonSyntax(e.to_string()),
            };
            return Ok((state.records, Some(problem), state.tally));
        }
        first_top = false;
    }
    if state.records == 0 {
        return Ok((0, Some(RejectReason::JsonNoRecords), state.tally));
    }
    Ok((state.records, None, state.tally))
}

// ---- the tap: hash, size and UTF-8 of every byte read --------------------------------------------

struct Tap<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    utf8: Utf8Check,
    /// Physical lines longer than this are remembered in `giant_line` (the first one).
    max_line: u64,
    /// Once a giant line is seen, fail reads (stops the CSV parser before it holds the line).
    enforce: bool,
    line_len: u64,
    line_no: u64,
    giant_line: Option<u64>,
}

impl<R> Tap<R> {
    fn new(inner: R, max_line: u64) -> Self {
        Tap {
            inner,
            hasher: Sha256::new(),
            size: 0,
            utf8: Utf8Check::default(),
            max_line,
            enforce: false,
            line_len: 0,
            line_no: 1,
            giant_line: None,
        }
    }

    /// Tracks physical line lengths, remembering the first line longer than `max_line`.
    fn track_lines(&mut self, data: &[u8]) {
        let mut parts = data.split(|&b| b == b'\n');
        if let Some(first) = parts.next() {
            self.line_len += first.len() as u64;
        }
        for part in parts {
            if self.line_len > self.max_line {
                break;
            }
            self.line_no += 1;
            self.line_len = part.len() as u64;
        }
        if self.line_len > self.max_line {
            self.giant_line = Some(self.line_no);
        }
    }
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        self.utf8.feed(&buf[..n]);
        if self.giant_line.is_none() {
            self.track_lines(&buf[..n]);
        }
        if self.enforce && self.giant_line.is_some() {
            self.enforce = false;
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        Ok(n)
    }
}

/// Incremental UTF-8 validation across read boundaries; remembers the first bad sequence's byte
/// offset and line.
#[derive(Default)]
struct Utf8Check {
    offset: u64,
    newlines: u64,
    carry: [u8; 4],
    carry_len: usize,
    bad: Option<(u64, u64)>,
}

impl Utf8Check {
    fn feed(&mut self, mut data: &[u8]) {
        if self.bad.is_some() {
            return;
        }
        if self.carry_len > 0 {
            let need = match self.carry[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            while self.carry_len < need && !data.is_empty() {
                if data[0] & 0xC0 != 0x80 {
                    return self.fail();
                }
                self.carry[self.carry_len] = data[0];
                self.carry_len += 1;
                data = &data[1..];
            }
            if self.carry_len < need {
                return;
            }
            if std::str::from_utf8(&self.carry[..need]).is_err() {
                return self.fail();
            }
            self.offset += need as u64;
            self.carry_len = 0;
        }
        match std::str::from_utf8(data) {
            Ok(_) => self.advance(data),
            Err(e) => {
                let valid = e.valid_up_to();
                self.advance(&data[..valid]);
                match e.error_len() {
                    Some(_) => self.fail(),
                    None => {
                        let rest = &data[valid..];
                        self.carry[..rest.len()].copy_from_slice(rest);
                        self.carry_len = rest.len();
                    }
                }
            }
        }
    }

    fn advance(&mut self, valid: &[u8]) {
        self.offset += valid.len() as u64;
        self.newlines += count_newlines(valid);
    }

    fn fail(&mut self) {
        self.bad = Some((self.offset, self.newlines + 1));
    }

    /// A sequence cut off by the end of the file is invalid too.
    fn finish(&mut self) {
        if self.carry_len > 0 && self.bad.is_none() {
            self.fail();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(chunks: &[&[u8]]) -> Option<(u64, u64)> {
        let mut c = Utf8Check::default();
        for ch in chunks {
            c.feed(ch);
        }
        c.finish();
        c.bad
    }

    #[test]
    fn utf8_check_spans_chunk_boundaries() {
        let e_acute = "é".as_bytes();
        assert_eq!(utf8(&[b"ab", &e_acute[..1], &e_acute[1..], b"c"]), None);
        let euro = "€".as_bytes();
        assert_eq!(utf8(&[&euro[..1], &euro[1..2], &euro[2..]]), None);
        assert_eq!(utf8(&[b"a\nb\n", b"\xff"]), Some((4, 3)));
        assert_eq!(utf8(&[b"ab", &euro[..2]]), Some((2, 1)), "cut off at the end");
        assert_eq!(utf8(&[b"ab", &euro[..1], b"x"]), Some((2, 1)), "lead byte without continuation");
        assert_eq!(utf8(&[b"\xed\xa0", b"\x80"]), Some((0, 1)), "surrogates are not UTF-8");
    }

    #[test]
    fn giant_csv_lines_are_rejected_without_holding_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("giant.csv");
        let mut text = b"_id,course\nr1,americanfalls\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 4096));
        text.extend_from_slice(b",americanfalls\nr3,americanfalls\n");
        std::fs::write(&path, &text).unwrap();
        let scan = scan_file_with(&path, None, 1024).unwrap();
        assert_eq!(scan.problem, Some(RejectReason::GiantLine { line: 3, limit: 1024 }));
        assert_eq!(scan.size, text.len() as u64, "hashed to the end anyway");
        assert_eq!(scan.sha256, crate::util::hex(&Sha256::digest(&text)));
        assert_eq!(scan_file_with(&path, None, 8192).unwrap().problem, None);
        // JSON has no line limit.
        let json = dir.path().join("one_line.json");
        let record = format!("{{\"_id\": \"a\", \"course\": \"x\", \"pad\": \"{}\"}}", "y".repeat(4096));
        std::fs::write(&json, format!("[{record},{record}]")).unwrap();
        let scan = scan_file_with(&json, None, 1024).unwrap();
        assert_eq!((scan.problem, scan.records), (None, 2));
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
    }

    #[test]
    fn course_json_values_are_unwrapped() {
        assert_eq!(course_text(serde_json::json!("erinhills")), "erinhills");
        assert_eq!(course_text(serde_json::json!(null)), "");
        assert_eq!(course_text(serde_json::json!({"$oid": "abc"})), "abc");
        assert_eq!(course_text(serde_json::json!(4)), "4");
    }
}
