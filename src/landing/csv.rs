//! The wide CSV: a header line, then records, one per physical line (`\n` or `\r\n`). Quoted
//! fields (`"a,b"`, `""` for a quote) are read as the `csv` crate reads them; a quoted line break
//! joins the next line to the record only while that can still give a record of the header's
//! width, so one quote left open never swallows the rest of the file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;

use super::{Malformed, Raw, ReadError, Record, RoundSource, SLOT_FIELDS, Unusable};

/// Column positions of one slot.
#[derive(Debug, Clone, Default)]
struct SlotCols {
    index: i32,
    fields: [Option<usize>; SLOT_FIELDS.len()],
    coords: [Option<usize>; 2],
}

/// Where everything is in a wide CSV header.
#[derive(Debug, Clone)]
struct Layout {
    round: HashMap<String, usize>,
    slots: Vec<SlotCols>,
    width: usize,
}

impl Layout {
    fn from_header(names: &[&str]) -> Layout {
        let mut round = HashMap::new();
        let mut slots: BTreeMap<i32, SlotCols> = BTreeMap::new();
        let mut defined: BTreeSet<i32> = BTreeSet::new();
        for (pos, name) in names.iter().enumerate() {
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
        Layout { round, slots, width: names.len() }
    }
}

/// `locations[12].hole` → (12, "hole").
pub(super) fn parse_slot_header(name: &str) -> Option<(i32, &str)> {
    let rest = name.strip_prefix("locations[")?;
    let close = rest.find(']')?;
    let n: i32 = rest[..close].parse().ok()?;
    let field = rest[close + 1..].strip_prefix('.')?;
    Some((n, field))
}

/// The fields of one line: spans into the line itself, or (when it has quotes) into `unquoted`.
#[derive(Default)]
struct Fields {
    spans: Vec<(usize, usize)>,
    unquoted: String,
    quoted: bool,
}

impl Fields {
    fn get<'a>(&'a self, line: &'a str, i: usize) -> Option<&'a str> {
        let (a, b) = *self.spans.get(i)?;
        Some(if self.quoted { &self.unquoted[a..b] } else { &line[a..b] })
    }

    /// Splits `line` at commas outside quotes; Err(field number) for a quote left open.
    fn split(&mut self, line: &str) -> Result<(), usize> {
        self.spans.clear();
        let bytes = line.as_bytes();
        if !bytes.contains(&b'"') {
            self.quoted = false;
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                if b == b',' {
                    self.spans.push((start, i));
                    start = i + 1;
                }
            }
            self.spans.push((start, bytes.len()));
            return Ok(());
        }
        // As csv-core reads a field: a quote opens quoting only at the start of a field; `""`
        // inside quotes is a quote; text after the closing quote is kept.
        self.quoted = true;
        self.unquoted.clear();
        let mut chars = line.char_indices().peekable();
        let mut start = 0;
        let mut at_field_start = true;
        let mut in_quotes = false;
        while let Some((_, c)) = chars.next() {
            if in_quotes {
                if c == '"' {
                    if chars.peek().is_some_and(|&(_, n)| n == '"') {
                        chars.next();
                        self.unquoted.push('"');
                    } else {
                        in_quotes = false;
                    }
                } else {
                    self.unquoted.push(c);
                }
                continue;
            }
            match c {
                '"' if at_field_start => {
                    in_quotes = true;
                    at_field_start = false;
                }
                ',' => {
                    self.spans.push((start, self.unquoted.len()));
                    start = self.unquoted.len();
                    at_field_start = true;
                }
                c => {
                    self.unquoted.push(c);
                    at_field_start = false;
                }
            }
        }
        if in_quotes {
            return Err(self.spans.len() + 1);
        }
        self.spans.push((start, self.unquoted.len()));
        Ok(())
    }
}

/// How one physical line was read.
enum Line {
    Eof,
    /// The line (without `\n`, `\r\n`) is in the buffer.
    Held,
    /// Longer than the limit: skipped, not held.
    TooLong,
}

/// Reads one physical line into `buf` (cleared first), holding at most `max` bytes of it.
fn next_line(rd: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    buf.clear();
    let n = std::io::Read::take(&mut *rd, max as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > max {
        // Skip the rest of the line without holding it.
        loop {
            let chunk = rd.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    rd.consume(p + 1);
                    break;
                }
                None => {
                    let len = chunk.len();
                    rd.consume(len);
                }
            }
        }
        buf.clear();
        return Ok(Line::TooLong);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Line::Held)
}

struct CsvRound<'a> {
    layout: &'a Layout,
    line: &'a str,
    fields: &'a Fields,
    number: u64,
}

impl CsvRound<'_> {
    fn cell(&self, pos: Option<usize>) -> Raw<'_> {
        let Some(s) = pos.and_then(|p| self.fields.get(self.line, p)) else { return Raw::Missing };
        let (Some(&first), Some(&last)) = (s.as_bytes().first(), s.as_bytes().last()) else { return Raw::Missing };
        // A cell that starts and ends with a visible ASCII character has nothing to trim
        // (the common case; `trim` is Unicode-aware and costs more).
        let visible = |b: u8| b > b' ' && b < 0x7f;
        let s = if visible(first) && visible(last) { s } else { s.trim() };
        if s.is_empty() { Raw::Missing } else { Raw::Str(s) }
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

/// Lines a quoted line break may join to a record (real exports have none; a few in a cell).
/// Bounds the work a quote left open costs: past this, its first line is malformed.
const MAX_JOINED_LINES: usize = 64;

/// A numbered physical line: its bytes, or Err(()) when it was longer than the limit (skipped).
type NumberedLine = (u64, Result<Vec<u8>, ()>);

/// Physical lines, numbered, with lines given back to be read again first.
struct Lines<'r, R> {
    rd: &'r mut R,
    replay: std::collections::VecDeque<NumberedLine>,
    next_no: u64,
    max: usize,
}

impl<R: BufRead> Lines<'_, R> {
    /// The next line and its number; Err(()) for a line longer than the limit (skipped).
    fn next(&mut self) -> std::io::Result<Option<NumberedLine>> {
        if let Some(line) = self.replay.pop_front() {
            return Ok(Some(line));
        }
        let mut buf = Vec::new();
        let no = self.next_no;
        match next_line(self.rd, &mut buf, self.max)? {
            Line::Eof => Ok(None),
            Line::Held => {
                self.next_no += 1;
                Ok(Some((no, Ok(buf))))
            }
            Line::TooLong => {
                self.next_no += 1;
                Ok(Some((no, Err(()))))
            }
        }
    }
}

/// How a record ended.
enum Assembled {
    Good,
    NotUtf8(usize),
    Quote(usize),
}

/// Reads a wide CSV whose first line (after `lead_lines` blank ones) is the header. Returns
/// (records, malformed records).
///
/// A quoted field may hold line breaks (the record then spans lines), but only while the record
/// has fewer fields than the header and has joined at most [`MAX_JOINED_LINES`] lines: a quote
/// left open past that, or one that ends in a record of the wrong width, makes its first line a
/// malformed record, and the lines after it are read again as records of their own.
pub(super) fn read(
    file: &str,
    rd: &mut impl BufRead,
    lead_lines: u64,
    max: usize,
    f: &mut dyn FnMut(Record<'_>) -> Result<(), String>,
) -> Result<(u64, u64), ReadError> {
    let io = |source| ReadError::Io { file: file.into(), source };
    let unusable = |problem| ReadError::Unusable { file: file.into(), problem };
    let mut lines = Lines { rd, replay: Default::default(), next_no: lead_lines + 1, max };
    let mut fields = Fields::default();
    let (header_no, header) = match lines.next().map_err(io)? {
        None => return Ok((0, 0)),
        Some((no, Err(()))) => return Err(unusable(Unusable::TooLong { line: no, limit: max })),
        Some((no, Ok(bytes))) => (no, bytes),
    };
    let header = String::from_utf8(header)
        .map_err(|e| unusable(Unusable::NotUtf8 { line: header_no, byte: e.utf8_error().valid_up_to() + 1 }))?;
    fields.split(&header).map_err(|_| unusable(Unusable::Quote { line: header_no }))?;
    let names: Vec<&str> = (0..fields.spans.len()).filter_map(|i| fields.get(&header, i)).collect();
    let missing: Vec<String> =
        ["_id", "course"].iter().filter(|c| !names.iter().any(|h| h.trim() == **c)).map(|c| c.to_string()).collect();
    if !missing.is_empty() {
        return Err(unusable(Unusable::MissingColumns(missing)));
    }
    let layout = Layout::from_header(&names);
    let width = layout.width;

    let (mut records, mut malformed) = (0u64, 0u64);
    while let Some((no, line)) = lines.next().map_err(io)? {
        let mut bad = |records: &mut u64, reason: String| -> Result<(), ReadError> {
            *records += 1;
            malformed += 1;
            let m = Malformed { record: *records, line: no, reason };
            f(Record::Malformed(&m)).map_err(ReadError::Callback)
        };
        let Ok(mut bytes) = line else {
            bad(&mut records, format!("is longer than {} MiB", max / (1024 * 1024)))?;
            continue;
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Lines joined to this one by a quoted line break, kept to be read again if that was wrong.
        let mut held: Vec<(u64, Vec<u8>)> = Vec::new();
        // The field whose quote was left open at the end of the first line.
        let mut open_field = 0;
        let outcome = loop {
            let text = match std::str::from_utf8(&bytes) {
                Ok(t) => t,
                Err(e) => break Assembled::NotUtf8(e.valid_up_to() + 1),
            };
            match fields.split(text) {
                Ok(()) if held.is_empty() || fields.spans.len() == width => break Assembled::Good,
                Ok(()) => break Assembled::Quote(open_field),
                Err(k) => {
                    if open_field == 0 {
                        open_field = k;
                    }
                    if k >= width || bytes.len() >= max || held.len() >= MAX_JOINED_LINES {
                        break Assembled::Quote(open_field);
                    }
                    match lines.next().map_err(io)? {
                        Some((next_no, Ok(next))) if std::str::from_utf8(&next).is_ok() => {
                            bytes.push(b'\n');
                            bytes.extend_from_slice(&next);
                            held.push((next_no, next));
                        }
                        Some(other) => {
                            // Not a continuation (too long, not UTF-8): read again as its own record.
                            lines.replay.push_front(other);
                            break Assembled::Quote(open_field);
                        }
                        None => break Assembled::Quote(open_field),
                    }
                }
            }
        };
        match outcome {
            Assembled::Good => {
                let text = std::str::from_utf8(&bytes).unwrap_or_default();
                // A line of empty cells holds nothing: a blank line, not a record.
                if (0..fields.spans.len()).all(|i| fields.get(text, i).is_none_or(|c| c.trim().is_empty())) {
                    continue;
                }
                if fields.spans.len() != width {
                    let found = fields.spans.len();
                    bad(&mut records, format!("has {found} fields, the header has {width}"))?;
                    continue;
                }
                records += 1;
                let round = CsvRound { layout: &layout, line: text, fields: &fields, number: records };
                f(Record::Round(&round)).map_err(ReadError::Callback)?;
            }
            Assembled::NotUtf8(byte) => {
                bad(&mut records, format!("is not valid UTF-8 (invalid byte at byte {byte} of the line)"))?;
            }
            Assembled::Quote(k) => {
                bad(&mut records, format!("has an unbalanced quote (field {k})"))?;
                for (no, line) in held.into_iter().rev() {
                    lines.replay.push_front((no, Ok(line)));
                }
            }
        }
    }
    Ok((records, malformed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, usize> {
        let mut f = Fields::default();
        f.split(line)?;
        Ok((0..f.spans.len()).map(|i| f.get(line, i).unwrap().to_string()).collect())
    }

    #[test]
    fn fields_split_as_csv_reads_them() {
        assert_eq!(split("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(split("\"a,b\",\"say \"\"hi\"\"\",c").unwrap(), ["a,b", "say \"hi\"", "c"]);
        assert_eq!(split("ab\"c,d").unwrap(), ["ab\"c", "d"], "a quote inside a field is text");
        assert_eq!(split("\"ab\"c,d").unwrap(), ["abc", "d"], "text after the closing quote is kept");
        assert_eq!(split("\"é\",ü").unwrap(), ["é", "ü"]);
        assert_eq!(split("a,\"b,c"), Err(2), "unbalanced quote in field 2");
        assert_eq!(split("").unwrap(), [""]);
    }

    #[test]
    fn lines_are_bounded() {
        let text = b"short\r\nxxxxxxxxxxxxxxxxxxxx\nlast";
        let mut rd = &text[..];
        let mut buf = Vec::new();
        assert!(matches!(next_line(&mut rd, &mut buf, 8).unwrap(), Line::Held));
        assert_eq!(buf, b"short");
        assert!(matches!(next_line(&mut rd, &mut buf, 8).unwrap(), Line::TooLong));
        assert!(matches!(next_line(&mut rd, &mut buf, 8).unwrap(), Line::Held));
        assert_eq!(buf, b"last");
        assert!(matches!(next_line(&mut rd, &mut buf, 8).unwrap(), Line::Eof));
    }
}
