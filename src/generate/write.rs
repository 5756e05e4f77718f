//! The streaming writers: rounds assembled as CSV rows or JSON documents in a reusable byte
//! buffer, byte-identical for the same arguments.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::rounds::*;

//
// Records are assembled in a reusable byte buffer (one CSV row / one JSON round) and handed to a
// `BufWriter`; numbers are formatted by hand (every float is pre-rounded to ≤ 6 decimals, so the
// text equals Rust's shortest `Display` form without its cost).

pub(super) const ROUND_COLUMNS: [&str; 23] = [
    "_id",
    "course",
    "startTime",
    "endTime",
    "startHole",
    "startSection",
    "endSection",
    "isNineHole",
    "currentNine",
    "goalTime",
    "complete",
    "device",
    "firstFix",
    "lastFix",
    "goalName",
    "goalTimeFraction",
    "isIncomplete",
    "isSecondary",
    "isAutoAssigned",
    "lastSectionStart",
    "currentSection",
    "currentHole",
    "currentHoleSection",
];

pub(super) const LOCATION_FIELDS: [&str; 13] = [
    "startTime",
    "hole",
    "sectionNumber",
    "holeSection",
    "fixCoordinates[0]",
    "fixCoordinates[1]",
    "pace",
    "paceGap",
    "positionalGap",
    "batteryPercentage",
    "isCache",
    "isProjected",
    "isProblem",
];

pub(super) fn tf(b: bool) -> &'static [u8] {
    if b { b"true" } else { b"false" }
}

pub(super) fn push_u64(b: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    b.extend_from_slice(&buf[i..]);
}

/// `v` with leading zeros to `width` digits.
pub(super) fn push_padded(b: &mut Vec<u8>, v: u64, width: usize) {
    let start = b.len();
    push_u64(b, v);
    let len = b.len() - start;
    if len < width {
        b.splice(start..start, std::iter::repeat_n(b'0', width - len));
    }
}

/// A float with at most 6 decimals, trailing zeros (and a bare point) dropped: 300, 1000.5, -80.139712.
pub(super) fn push_num(b: &mut Vec<u8>, x: f64) {
    let scaled = (x * 1e6).round() as i64;
    if scaled < 0 {
        b.push(b'-');
    }
    let a = scaled.unsigned_abs();
    push_u64(b, a / 1_000_000);
    let mut frac = a % 1_000_000;
    if frac != 0 {
        let mut digits = 6;
        while frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
        b.push(b'.');
        push_padded(b, frac, digits);
    }
}

/// `2024-11-01T12:30:52.000Z`.
pub(super) fn push_iso(b: &mut Vec<u8>, t: DateTime<Utc>) {
    push_padded(b, t.year().max(0) as u64, 4);
    b.push(b'-');
    push_padded(b, t.month().into(), 2);
    b.push(b'-');
    push_padded(b, t.day().into(), 2);
    b.push(b'T');
    push_padded(b, t.hour().into(), 2);
    b.push(b':');
    push_padded(b, t.minute().into(), 2);
    b.push(b':');
    push_padded(b, t.second().into(), 2);
    b.push(b'.');
    push_padded(b, t.timestamp_subsec_millis().into(), 3);
    b.push(b'Z');
}

pub(super) fn fix_time(start: DateTime<Utc>, offset: f64) -> DateTime<Utc> {
    start + chrono::Duration::milliseconds((offset * 1000.0).round() as i64)
}

/// A CSV cell, quoted when it holds a comma, quote or line break.
pub(super) fn push_csv_text(b: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        b.push(b'"');
        b.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        b.push(b'"');
    } else {
        b.extend_from_slice(s.as_bytes());
    }
}

pub(super) struct CsvOpts<'a> {
    pub(super) course_field: &'a str,
    pub(super) slots: usize,
    pub(super) with_id: bool,
    pub(super) with_date: bool,
}

pub(super) fn push_csv_header(b: &mut Vec<u8>, o: &CsvOpts) {
    let cols: Vec<&str> = ROUND_COLUMNS.iter().copied().filter(|c| o.with_id || *c != "_id").collect();
    b.extend_from_slice(cols.join(",").as_bytes());
    for n in 0..o.slots {
        for f in LOCATION_FIELDS {
            b.extend_from_slice(format!(",locations[{n}].{f}").as_bytes());
        }
        if o.with_date {
            b.extend_from_slice(format!(",locations[{n}].date").as_bytes());
        }
    }
    b.push(b'\n');
}

pub(super) fn push_csv_row(b: &mut Vec<u8>, r: &Round, o: &CsvOpts) {
    if o.with_id {
        if let Some(id) = &r.id {
            b.extend_from_slice(id.as_bytes());
        }
        b.push(b',');
    }
    push_csv_text(b, o.course_field);
    b.push(b',');
    match r.start_text {
        Some(text) => push_csv_text(b, text),
        None => push_iso(b, r.start),
    }
    b.push(b',');
    push_iso(b, r.end);
    for v in [r.start_hole.into(), r.start_section.into(), r.end_section.into()] {
        b.push(b',');
        push_u64(b, v);
    }
    b.push(b',');
    b.extend_from_slice(tf(r.is_nine_hole));
    b.push(b',');
    push_u64(b, r.current_nine.into());
    b.push(b',');
    push_u64(b, r.goal_time.into());
    b.push(b',');
    b.extend_from_slice(tf(r.complete));
    for id in [&r.device, &r.first_fix, &r.last_fix] {
        b.push(b',');
        b.extend_from_slice(id.as_bytes());
    }
    b.push(b',');
    push_csv_text(b, r.goal_name);
    b.push(b',');
    push_num(b, r.goal_time_fraction);
    for v in [r.is_incomplete, r.is_secondary, r.is_auto_assigned] {
        b.push(b',');
        b.extend_from_slice(tf(v));
    }
    b.push(b',');
    push_num(b, r.last_section_start);
    for v in [r.current_section.into(), r.current_hole.into(), r.current_hole_section.into()] {
        b.push(b',');
        push_u64(b, v);
    }
    for l in &r.locations {
        b.push(b',');
        push_num(b, l.offset);
        for v in [l.hole.into(), l.section.into(), l.hole_section.into()] {
            b.push(b',');
            push_u64(b, v);
        }
        for v in [l.lon, l.lat, Some(l.pace), l.pace_gap, l.positional_gap, Some(l.battery)] {
            b.push(b',');
            if let Some(x) = v {
                push_num(b, x);
            }
        }
        for v in [l.is_cache, l.is_projected, l.is_problem] {
            b.push(b',');
            b.extend_from_slice(tf(v));
        }
        if o.with_date {
            b.push(b',');
            push_iso(b, fix_time(r.start, l.offset));
        }
    }
    let per_slot = LOCATION_FIELDS.len() + usize::from(o.with_date);
    let pad = o.slots.saturating_sub(r.locations.len()) * per_slot;
    b.extend(std::iter::repeat_n(b',', pad));
    b.push(b'\n');
}

pub(super) fn push_json_str(b: &mut Vec<u8>, s: &str) {
    b.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => b.extend_from_slice(b"\\\""),
            '\\' => b.extend_from_slice(b"\\\\"),
            '\n' => b.extend_from_slice(b"\\n"),
            c if (c as u32) < 0x20 => b.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                b.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    b.push(b'"');
}

pub(super) struct JsonOpts<'a> {
    pub(super) course_field: &'a str,
    /// `{"$oid": …}` around `_id`, `device`, `firstFix`, `lastFix`.
    pub(super) wrap_oid: bool,
    /// `{"$date": …}` around `startTime`, `endTime`.
    pub(super) wrap_date: bool,
    /// Whether `paceGap`/`positionalGap` keys exist (never at Indian Creek).
    pub(super) gap_keys: bool,
    pub(super) pretty: bool,
    /// Indentation of the object itself (pretty only).
    pub(super) indent: &'static str,
}

/// Writes `"key": ` after the right separator.
pub(super) fn json_key(b: &mut Vec<u8>, first: &mut bool, key: &str, o: &JsonOpts) {
    if !*first {
        b.push(b',');
    }
    *first = false;
    if o.pretty {
        b.push(b'\n');
        b.extend_from_slice(o.indent.as_bytes());
        b.extend_from_slice(b"  ");
    }
    push_json_str(b, key);
    b.extend_from_slice(if o.pretty { b": " } else { b":" });
}

pub(super) fn json_oid(b: &mut Vec<u8>, id: &str, o: &JsonOpts) {
    if o.wrap_oid {
        b.extend_from_slice(if o.pretty { b"{\"$oid\": " } else { b"{\"$oid\":" });
        push_json_str(b, id);
        b.push(b'}');
    } else {
        push_json_str(b, id);
    }
}

pub(super) fn json_date(b: &mut Vec<u8>, text: Option<&str>, t: DateTime<Utc>, o: &JsonOpts) {
    if o.wrap_date {
        b.extend_from_slice(if o.pretty { b"{\"$date\": " } else { b"{\"$date\":" });
    }
    match text {
        Some(s) => push_json_str(b, s),
        None => {
            b.push(b'"');
            push_iso(b, t);
            b.push(b'"');
        }
    }
    if o.wrap_date {
        b.push(b'}');
    }
}

pub(super) fn json_opt(b: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(x) => push_num(b, x),
        None => b.extend_from_slice(b"null"),
    }
}

pub(super) fn push_json_round(b: &mut Vec<u8>, r: &Round, o: &JsonOpts) {
    let mut first = true;
    b.push(b'{');
    json_key(b, &mut first, "_id", o);
    match &r.id {
        Some(id) => json_oid(b, id, o),
        None => b.extend_from_slice(b"null"),
    }
    json_key(b, &mut first, "course", o);
    push_json_str(b, o.course_field);
    json_key(b, &mut first, "startTime", o);
    json_date(b, r.start_text, r.start, o);
    json_key(b, &mut first, "endTime", o);
    json_date(b, None, r.end, o);
    for (k, v) in [
        ("startHole", r.start_hole.into()),
        ("startSection", r.start_section.into()),
        ("endSection", r.end_section.into()),
    ] {
        json_key(b, &mut first, k, o);
        push_u64(b, v);
    }
    json_key(b, &mut first, "isNineHole", o);
    b.extend_from_slice(tf(r.is_nine_hole));
    json_key(b, &mut first, "currentNine", o);
    push_u64(b, r.current_nine.into());
    json_key(b, &mut first, "goalTime", o);
    push_u64(b, r.goal_time.into());
    json_key(b, &mut first, "goalName", o);
    push_json_str(b, r.goal_name);
    json_key(b, &mut first, "goalTimeFraction", o);
    push_num(b, r.goal_time_fraction);
    for (k, v) in [
        ("complete", r.complete),
        ("isIncomplete", r.is_incomplete),
        ("isSecondary", r.is_secondary),
        ("isAutoAssigned", r.is_auto_assigned),
    ] {
        json_key(b, &mut first, k, o);
        b.extend_from_slice(tf(v));
    }
    for (k, v) in [("device", &r.device), ("firstFix", &r.first_fix), ("lastFix", &r.last_fix)] {
        json_key(b, &mut first, k, o);
        json_oid(b, v, o);
    }
    json_key(b, &mut first, "lastSectionStart", o);
    push_num(b, r.last_section_start);
    for (k, v) in [
        ("currentSection", r.current_section.into()),
        ("currentHole", r.current_hole.into()),
        ("currentHoleSection", r.current_hole_section.into()),
    ] {
        json_key(b, &mut first, k, o);
        push_u64(b, v);
    }
    json_key(b, &mut first, "locations", o);
    b.push(b'[');
    let (sep, colon): (&[u8], &[u8]) = if o.pretty { (b", ", b": ") } else { (b",", b":") };
    let key = |b: &mut Vec<u8>, k: &str, lead: bool| {
        if lead {
            b.extend_from_slice(sep);
        }
        b.push(b'"');
        b.extend_from_slice(k.as_bytes());
        b.push(b'"');
        b.extend_from_slice(colon);
    };
    for (i, l) in r.locations.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        if o.pretty {
            b.push(b'\n');
            b.extend_from_slice(o.indent.as_bytes());
            b.extend_from_slice(b"    ");
        }
        b.push(b'{');
        key(b, "hole", false);
        push_u64(b, l.hole.into());
        key(b, "sectionNumber", true);
        push_u64(b, l.section.into());
        key(b, "holeSection", true);
        push_u64(b, l.hole_section.into());
        key(b, "startTime", true);
        push_num(b, l.offset);
        key(b, "fixCoordinates", true);
        match (l.lon, l.lat) {
            (None, None) => b.extend_from_slice(b"null"),
            (lon, lat) => {
                b.push(b'[');
                json_opt(b, lon);
                b.extend_from_slice(sep);
                json_opt(b, lat);
                b.push(b']');
            }
        }
        for (k, v) in [("isProjected", l.is_projected), ("isProblem", l.is_problem), ("isCache", l.is_cache)] {
            key(b, k, true);
            b.extend_from_slice(tf(v));
        }
        if o.gap_keys {
            key(b, "paceGap", true);
            json_opt(b, l.pace_gap);
            key(b, "positionalGap", true);
            json_opt(b, l.positional_gap);
        }
        key(b, "pace", true);
        push_num(b, l.pace);
        key(b, "batteryPercentage", true);
        push_num(b, l.battery);
        b.push(b'}');
    }
    if o.pretty && !r.locations.is_empty() {
        b.push(b'\n');
        b.extend_from_slice(o.indent.as_bytes());
        b.extend_from_slice(b"  ");
    }
    b.push(b']');
    if o.pretty {
        b.push(b'\n');
        b.extend_from_slice(o.indent.as_bytes());
    }
    b.push(b'}');
}
