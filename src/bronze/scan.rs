//! One streaming pass over a local file: sha256 and size of every byte, and every record read by
//! the landing reader silver uses too (`crate::landing`): the record count, the malformed records
//! (the first one kept for the reason) and the `course` values. Memory stays bounded by one record
//! (plus the distinct `course` values), whatever the file size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::RejectReason;
use crate::landing::{self, Malformed, ReadError, Record};
pub use crate::landing::{Format, format_by_extension, format_by_first_byte};

/// Distinct `course` values remembered per file (a file with more names other courses anyway).
const MAX_COURSE_VALUES: usize = 10_000;

/// What one pass found.
#[derive(Debug, Clone)]
pub struct Scan {
    pub sha256: String,
    pub size: u64,
    /// None when the file is empty or blank.
    pub format: Option<Format>,
    /// Records read, good and malformed.
    pub records: u64,
    /// Records the reader could not read (silver quarantines them).
    pub malformed: u64,
    /// The first of them.
    pub first_malformed: Option<Malformed>,
    /// Why the file's content cannot be landed at all (empty, blank, unusable header, no records);
    /// the share of malformed records is judged by the caller.
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
/// [`Scan::problem`] or counted in [`Scan::malformed`]. `by_extension` is the format the file
/// name says, if it says one.
pub fn scan_file(path: &Path, by_extension: Option<Format>) -> io::Result<Scan> {
    scan_file_with(path, by_extension, landing::MAX_RECORD)
}

fn scan_file_with(path: &Path, by_extension: Option<Format>, max_record: usize) -> io::Result<Scan> {
    let mut tap = Tap { inner: File::open(path)?, hasher: Sha256::new(), size: 0 };
    let mut courses = CourseTally::default();
    let mut first_malformed = None;
    let name = path.to_string_lossy();
    let read = landing::read_with_limit(&name, by_extension, &mut tap, max_record, &mut |r| {
        match r {
            Record::Round(r) => {
                let course = landing::raw_text(r.field("course")).unwrap_or_default();
                courses.add(&course, r.record_number());
            }
            Record::Malformed(m) => {
                first_malformed.get_or_insert_with(|| m.clone());
            }
        }
        Ok(())
    });
    let (summary, problem) = match read {
        Ok(s) => (s, None),
        Err(ReadError::Unusable { problem, .. }) => {
            (landing::Summary { format: Some(Format::Csv), ..Default::default() }, Some(RejectReason::Header(problem)))
        }
        Err(ReadError::Io { source, .. }) => return Err(source),
        Err(ReadError::Callback(e)) => return Err(io::Error::other(e)),
    };
    // The rest of the file (after a problem stopped the reader) still counts for hash and size.
    io::copy(&mut tap, &mut io::sink())?;
    let problem = if tap.size == 0 {
        Some(RejectReason::Empty)
    } else if summary.format.is_none() {
        Some(RejectReason::Blank)
    } else if problem.is_some() {
        problem
    } else if summary.records == 0 {
        Some(if summary.format == Some(Format::Json) {
            RejectReason::JsonNoRecords
        } else {
            RejectReason::CsvNoRecords
        })
    } else {
        None
    };
    Ok(Scan {
        sha256: crate::util::hex(&tap.hasher.finalize()),
        size: tap.size,
        format: summary.format,
        records: summary.records,
        malformed: summary.malformed,
        first_malformed,
        problem,
        courses,
    })
}

// ---- the tap: hash and size of every byte read -----------------------------------------------

struct Tap<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giant_csv_lines_are_malformed_records_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("giant.csv");
        let mut text = b"_id,course\nr1,americanfalls\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 4096));
        text.extend_from_slice(b",americanfalls\nr3,americanfalls\n");
        std::fs::write(&path, &text).unwrap();
        let scan = scan_file_with(&path, None, 1024).unwrap();
        assert_eq!((scan.problem, scan.records, scan.malformed), (None, 3, 1));
        assert_eq!(scan.first_malformed.unwrap().line, 3);
        assert_eq!(scan.size, text.len() as u64, "hashed to the end anyway");
        assert_eq!(scan.sha256, crate::util::hex(&Sha256::digest(&text)));
        assert_eq!(scan_file_with(&path, None, 8192).unwrap().malformed, 0);
        // JSON elements have the same limit; a minified export on one line is fine.
        let json = dir.path().join("one_line.json");
        let record = format!("{{\"_id\": \"a\", \"course\": \"x\", \"pad\": \"{}\"}}", "y".repeat(4096));
        std::fs::write(&json, format!("[{record},{record}]")).unwrap();
        let scan = scan_file_with(&json, None, 8192).unwrap();
        assert_eq!((scan.problem, scan.records, scan.malformed), (None, 2, 0));
        let scan = scan_file_with(&json, None, 1024).unwrap();
        assert_eq!((scan.records, scan.malformed), (2, 2));
    }

    #[test]
    fn course_values_are_unwrapped() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("c.json");
        std::fs::write(
            &json,
            r#"[{"_id": 1, "course": {"$oid": "abc"}}, {"_id": 2, "course": null}, {"_id": 3, "course": 4}]"#,
        )
        .unwrap();
        let scan = scan_file(&json, None).unwrap();
        let values: Vec<&str> = scan.courses.values().into_iter().map(|(v, _, _)| v).collect();
        assert_eq!(values, ["abc", "", "4"]);
    }
}
