//! The JSON export: a top-level array of round objects, or top-level values one after the other
//! (one object, or one object per line). A framer walks the bytes (strings, escapes, bracket
//! depth) to cut the file into elements, and each element is parsed on its own, so a broken one
//! is a malformed record and the next one is read. It resynchronises at a raw line break inside a
//! string (JSON strings cannot hold one: the quote was left open) and at a `{` that starts a line
//! at the column where the current element started (the element before was cut off).

use std::io::BufRead;

use serde_json::Value;

use super::{Malformed, Raw, ReadError, Record, RoundSource, SLOT_FIELDS};

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

/// Where the framer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between elements: skipping whitespace (and, in an array, the separating comma).
    Between,
    /// Inside an element.
    Element,
    /// After the top-level array's `]`.
    After,
}

/// An element being cut out of the stream.
struct Element {
    bytes: Vec<u8>,
    line: u64,
    col: u64,
    depth: i64,
    in_string: bool,
    escape: bool,
    /// A string was closed by a line break (the quote was left open).
    open_quote_line: Option<u64>,
    too_long: bool,
}

struct Framer<'f> {
    array: bool,
    phase: Phase,
    /// In an array: a comma was read since the last element (a `]` now is a trailing comma).
    after_comma: bool,
    el: Element,
    line: u64,
    col: u64,
    /// Only whitespace so far on the current line.
    line_blank: bool,
    /// One value per line, or one object: after a malformed value, the rest of its line is
    /// part of it (not the start of more values).
    skip_line: bool,
    max: usize,
    records: u64,
    malformed: u64,
    f: &'f mut dyn FnMut(Record<'_>) -> Result<(), String>,
}

impl Framer<'_> {
    fn start(&mut self) {
        self.phase = Phase::Element;
        self.after_comma = false;
        self.el.bytes.clear();
        self.el.line = self.line;
        self.el.col = self.col;
        self.el.depth = 0;
        self.el.in_string = false;
        self.el.escape = false;
        self.el.open_quote_line = None;
        self.el.too_long = false;
    }

    fn bad(&mut self, line: u64, reason: String) -> Result<(), String> {
        self.records += 1;
        self.malformed += 1;
        let m = Malformed { record: self.records, line, reason };
        (self.f)(Record::Malformed(&m))
    }

    /// The current element is complete (or cut off, with `cut` saying why): parse and hand it on.
    fn finish(&mut self, cut: Option<String>) -> Result<(), String> {
        self.phase = Phase::Between;
        let line = self.el.line;
        if let Some(reason) = cut {
            let reason = match self.el.open_quote_line {
                Some(q) => format!("has an unbalanced quote (a string runs into the end of line {q})"),
                None => reason,
            };
            return self.bad(line, reason);
        }
        if self.el.too_long {
            return self.bad(line, format!("is longer than {} MiB", self.max / (1024 * 1024)));
        }
        let value = match serde_json::from_slice::<Value>(&self.el.bytes) {
            Ok(v) => v,
            Err(e) => {
                let text = e.to_string();
                let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(t, _)| t);
                let at = line + e.line().saturating_sub(1) as u64;
                let mut reason = format!("is not valid JSON: {text}");
                if at != line {
                    reason.push_str(&format!(" (at line {at})"));
                }
                if let Some(q) = self.el.open_quote_line {
                    reason = format!("has an unbalanced quote (a string runs into the end of line {q})");
                }
                return self.bad(line, reason);
            }
        };
        let Value::Object(obj) = &value else {
            let found = match value {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return self.bad(line, format!("is not an object (found {found})"));
        };
        let missing: Vec<&str> = ["_id", "course"].into_iter().filter(|k| !obj.contains_key(*k)).collect();
        if !missing.is_empty() {
            let what = if missing.len() == 1 { "field" } else { "fields" };
            return self.bad(line, format!("is missing required {what}: {}", missing.join(", ")));
        }
        self.records += 1;
        let locations: &[Value] = match obj.get("locations") {
            Some(Value::Array(a)) => a,
            _ => &[],
        };
        let round = JsonRound { obj, locations, number: self.records };
        (self.f)(Record::Round(&round))
    }

    /// A chunk of the stream; Ok(false) stops (content after the array). Runs of element bytes
    /// that change nothing but string state and depth are taken in one go; every other byte
    /// (line breaks, `{`, the end of an element, …) goes through [`Framer::byte`].
    fn feed(&mut self, chunk: &[u8]) -> Result<bool, String> {
        let mut i = 0;
        while i < chunk.len() {
            if self.phase == Phase::Element {
                let start = i;
                let el = &mut self.el;
                while i < chunk.len() {
                    let b = chunk[i];
                    if el.in_string {
                        if el.escape {
                            el.escape = false;
                        } else if b == b'"' {
                            el.in_string = false;
                        } else if b == b'\\' {
                            el.escape = true;
                        } else if b == b'\n' {
                            break;
                        }
                    } else {
                        match b {
                            b'"' => el.in_string = true,
                            b'[' => el.depth += 1,
                            b'}' | b']' if el.depth > 1 => el.depth -= 1,
                            b'{' | b'}' | b']' | b'\n' => break,
                            b',' if el.depth == 0 && self.array => break,
                            b' ' | b'\t' | b'\r' if el.depth == 0 && !self.array => break,
                            _ => {}
                        }
                    }
                    i += 1;
                }
                if i > start {
                    let run = &chunk[start..i];
                    let room = self.max.saturating_sub(self.el.bytes.len());
                    self.el.bytes.extend_from_slice(&run[..run.len().min(room)]);
                    self.el.too_long |= run.len() > room;
                    self.col += run.len() as u64;
                    if self.line_blank && run.iter().any(|b| !b.is_ascii_whitespace()) {
                        self.line_blank = false;
                    }
                }
                if i == chunk.len() {
                    break;
                }
            }
            if !self.byte(chunk[i])? {
                return Ok(false);
            }
            i += 1;
        }
        Ok(true)
    }

    fn push(&mut self, b: u8) {
        if self.el.bytes.len() < self.max {
            self.el.bytes.push(b);
        } else {
            self.el.too_long = true;
        }
    }

    /// One byte of the stream; Ok(false) stops (content after the array).
    fn byte(&mut self, b: u8) -> Result<bool, String> {
        // Column and line state of this byte, before it moves them.
        let (col, line_blank) = (self.col, self.line_blank);
        if b == b'\n' {
            self.line += 1;
            self.col = 0;
            self.line_blank = true;
        } else {
            self.col += 1;
            if !b.is_ascii_whitespace() {
                self.line_blank = false;
            }
        }
        match self.phase {
            Phase::After => {
                if !b.is_ascii_whitespace() {
                    self.bad(self.line, "follows the end of the top-level array (content after `]`)".into())?;
                    return Ok(false);
                }
            }
            Phase::Between if self.skip_line => self.skip_line = b != b'\n',
            Phase::Between => {
                if b.is_ascii_whitespace() {
                } else if self.array && b == b',' && !self.after_comma {
                    self.after_comma = true;
                } else if self.array && b == b']' {
                    if self.after_comma {
                        self.bad(self.line, "is empty (a comma before `]`)".into())?;
                    }
                    self.phase = Phase::After;
                } else {
                    self.start();
                    self.el.col = col;
                    self.element_byte(b, false, col)?;
                }
            }
            Phase::Element => self.element_byte(b, line_blank, col)?,
        }
        Ok(true)
    }

    fn element_byte(&mut self, b: u8, line_blank: bool, col: u64) -> Result<(), String> {
        if self.el.in_string {
            if self.el.escape {
                self.el.escape = false;
            } else if b == b'\\' {
                self.el.escape = true;
            } else if b == b'"' {
                self.el.in_string = false;
            } else if b == b'\n' {
                // JSON strings cannot hold a line break: the quote was left open.
                self.el.in_string = false;
                self.el.open_quote_line.get_or_insert(self.line - 1);
            }
            self.push(b);
            return Ok(());
        }
        match b {
            b'"' => self.el.in_string = true,
            b'{' if line_blank && col == self.el.col && !self.el.bytes.is_empty() => {
                // A new record starts where this one did: this one was cut off.
                let reason = format!("does not end before line {}, where the next record starts (cut off)", self.line);
                self.finish(Some(reason))?;
                self.start();
                self.el.col = col;
                self.el.depth = 1;
                self.push(b);
                return Ok(());
            }
            b'{' | b'[' => self.el.depth += 1,
            b'}' | b']' => {
                if self.el.depth == 0 && self.array && b == b']' {
                    self.trim_end();
                    self.finish(None)?;
                    self.phase = Phase::After;
                    return Ok(());
                }
                self.el.depth -= 1;
                if self.el.depth == 0 && !self.array {
                    self.push(b);
                    let before = self.malformed;
                    self.finish(None)?;
                    self.skip_line = self.malformed > before;
                    return Ok(());
                }
            }
            b',' if self.el.depth == 0 && self.array => {
                self.trim_end();
                self.finish(None)?;
                self.after_comma = true;
                return Ok(());
            }
            b if self.el.depth == 0 && !self.array && b.is_ascii_whitespace() => {
                // A top-level value that is not an object or array (a number, `true`, …) ends here.
                return self.finish(None);
            }
            _ => {}
        }
        self.push(b);
        Ok(())
    }

    fn trim_end(&mut self) {
        while self.el.bytes.last().is_some_and(u8::is_ascii_whitespace) {
            self.el.bytes.pop();
        }
    }

    /// The end of the file.
    fn end(&mut self) -> Result<(), String> {
        match self.phase {
            Phase::Element if !self.array && self.el.depth == 0 && !self.el.in_string => self.finish(None),
            Phase::Element => {
                let reason = if self.el.in_string && self.el.open_quote_line.is_none() {
                    "is cut off by the end of the file (inside a string; truncated)"
                } else {
                    "is cut off by the end of the file (truncated)"
                };
                self.finish(Some(reason.into()))
            }
            Phase::Between if self.array => {
                self.bad(self.line, "is missing: the file ends before the array's closing `]` (truncated)".into())
            }
            _ => Ok(()),
        }
    }
}

/// Reads a JSON export whose first byte (after `lead_lines` blank lines) is next in `rd`.
/// Returns (records, malformed records).
pub(super) fn read(
    file: &str,
    rd: &mut impl BufRead,
    lead_lines: u64,
    max: usize,
    f: &mut dyn FnMut(Record<'_>) -> Result<(), String>,
) -> Result<(u64, u64), ReadError> {
    let io = |source| ReadError::Io { file: file.into(), source };
    let first = rd.fill_buf().map_err(io)?.first().copied();
    let array = first == Some(b'[');
    let mut framer = Framer {
        array,
        phase: Phase::Between,
        after_comma: false,
        el: Element {
            bytes: Vec::new(),
            line: 0,
            col: 0,
            depth: 0,
            in_string: false,
            escape: false,
            open_quote_line: None,
            too_long: false,
        },
        line: lead_lines + 1,
        col: 0,
        line_blank: false,
        skip_line: false,
        max,
        records: 0,
        malformed: 0,
        f,
    };
    if array {
        rd.consume(1);
        framer.col = 1;
        // The elements of `[` + newline start at column 0 of the next lines.
    }
    loop {
        let chunk = rd.fill_buf().map_err(io)?;
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        let go_on = framer.feed(chunk).map_err(ReadError::Callback)?;
        rd.consume(len);
        if !go_on {
            break;
        }
    }
    framer.end().map_err(ReadError::Callback)?;
    Ok((framer.records, framer.malformed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (good round ids, malformed as "line: reason"); the same whatever the read chunks are.
    fn frame(text: &str) -> (Vec<String>, Vec<String>) {
        let whole = frame_in_chunks(text, 1 << 20);
        for chunk in [1, 2, 3, 7] {
            assert_eq!(frame_in_chunks(text, chunk), whole, "chunks of {chunk} bytes");
        }
        whole
    }

    fn frame_in_chunks(text: &str, chunk: usize) -> (Vec<String>, Vec<String>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let mut rd = std::io::BufReader::with_capacity(chunk, text.as_bytes());
        read("t.json", &mut rd, 0, 1 << 20, &mut |r| {
            match r {
                Record::Round(r) => good.push(super::super::raw_text(r.field("_id")).unwrap_or_default()),
                Record::Malformed(m) => bad.push(format!("{}: {}", m.line, m.reason)),
            }
            Ok(())
        })
        .unwrap();
        (good, bad)
    }

    #[test]
    fn arrays_objects_and_lines_frame() {
        let ok = |t: &str| frame(t).0;
        assert_eq!(ok(r#"[{"_id": {"$oid": "a"}, "course": "c"}, {"_id": "b", "course": "c"}]"#), ["a", "b"]);
        assert_eq!(ok(r#"{"_id": "a", "course": "c", "locations": [{"x": "}]"}]}"#), ["a"]);
        assert_eq!(ok("{\"_id\": \"a\", \"course\": 1}\n{\"_id\": \"b\", \"course\": 1}\n"), ["a", "b"]);
        assert!(frame("[]").0.is_empty() && frame("[]").1.is_empty());
        assert!(frame("[ \n ]").1.is_empty());
    }

    #[test]
    fn a_broken_element_is_one_malformed_record() {
        let text = "[\n{\"_id\": \"a\", \"course\": \"c\"},\n{\"_id\": \"b\" \"course\": \"c\"},\n{\"_id\": \"c\", \"course\": \"c\"}\n]";
        let (good, bad) = frame(text);
        assert_eq!(good, ["a", "c"]);
        assert_eq!(bad, ["3: is not valid JSON: expected `,` or `}`"]);
        // An open quote: the line break closes it, the element is bad, the next one is read.
        let text = "[\n{\"_id\": \"a, \"course\": \"c\"},\n{\"_id\": \"b\", \"course\": \"c\"}\n]";
        let (good, bad) = frame(text);
        assert_eq!(good, ["b"]);
        assert_eq!(bad, ["2: has an unbalanced quote (a string runs into the end of line 2)"]);
        // A line cut off in the middle: the next line's `{` at the same column starts a record.
        let text =
            "[\n{\"_id\": \"a\", \"course\": \"c\", \"locations\": [{\"ho\n{\"_id\": \"b\", \"course\": \"c\"}\n]";
        let (good, bad) = frame(text);
        assert_eq!(good, ["b"]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        // Truncated inside the last element; and between elements.
        let (good, bad) = frame("[\n{\"_id\": \"a\", \"course\": \"c\"},\n{\"_id\": \"b\", \"cou");
        assert_eq!(
            (good, bad),
            (
                vec!["a".to_string()],
                vec!["3: is cut off by the end of the file (inside a string; truncated)".to_string()]
            )
        );
        let (good, bad) = frame("[\n{\"_id\": \"a\", \"course\": \"c\"},\n");
        assert_eq!(good, ["a"]);
        assert_eq!(bad, ["3: is missing: the file ends before the array's closing `]` (truncated)"]);
    }

    #[test]
    fn records_must_be_objects_with_id_and_course() {
        let (good, bad) = frame("[{\"_id\": \"a\", \"course\": \"c\"},\n \"a2\", {\"course\": \"c\"}]");
        assert_eq!(good, ["a"]);
        assert_eq!(bad, ["2: is not an object (found a string)", "2: is missing required field: _id"]);
        let (_, bad) = frame("[{\"_id\": \"a\", \"course\": \"c\"}]\n[{\"_id\": \"b\", \"course\": \"c\"}]");
        assert_eq!(bad, ["2: follows the end of the top-level array (content after `]`)"]);
    }
}
