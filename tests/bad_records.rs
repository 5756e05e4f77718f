//! Bad records in otherwise good files, end to end: good exports from `tmctl generate` (a wide
//! CSV, a JSON array, NDJSON) are mutated — truncated at several offsets, bytes flipped to invalid
//! UTF-8, a cell dropped, a line of NULs, an unbalanced quote, a byte-order mark, CRLF line ends,
//! a 2 MB cell — then ingested by bronze into a temp home and transformed by silver from the
//! landing bucket. Nothing panics; a file lands unless more than `bronze.max_bad_record_fraction`
//! of its records are malformed; every good round of a landed file reaches silver; every
//! malformed record is in silver's quarantine as `malformed_record` naming file and line.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use tmctl::bronze::{self, IngestRequest};
use tmctl::config::{Overrides, Settings};
use tmctl::lake::buckets::{Bucket, Buckets};
use tmctl::silver::rows::{Input, MALFORMED_RECORD};
use tmctl::silver::{Rules, transform_partition};
use tmctl::store::{IngestStatus, Store};

/// Good files written by the real binary (`--no-bad-files`, default seed): 40 rounds each.
fn generate(dir: &Path, json_share: &str) -> PathBuf {
    let out = dir.join(format!("gen-{json_share}"));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tmctl"))
        .args(["generate", "--courses", "5", "--days", "1", "--rounds", "40", "--no-bad-files", "--json-share"])
        .arg(json_share)
        .arg("--out")
        .arg(&out)
        .arg("--home")
        .arg(dir.join("gen-home"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// A file split at `\n` into lines (without the `\n`).
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if v.last().is_some_and(Vec::is_empty) {
        v.pop();
    }
    v
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// The round id a record line carries: CSV `_id` is the first cell; JSON `{"_id":{"$oid":"…"}`.
fn id_of(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    match text.strip_prefix("{\"_id\":") {
        Some(rest) => {
            let rest = rest.strip_prefix("{\"$oid\":").unwrap_or(rest);
            rest.split('"').nth(1).unwrap_or_default().to_string()
        }
        None => text.split(',').next().unwrap_or_default().to_string(),
    }
}

/// One mutated file and what it must give.
struct Case {
    name: String,
    bytes: Vec<u8>,
    /// Physical lines of the records that must be quarantined as malformed.
    bad_lines: Vec<u64>,
    /// Records bronze must count (good and malformed).
    records: u64,
    good: BTreeSet<String>,
}

/// Record lines of a generated file: (1-based line number, id), and whether it is a JSON array.
fn record_lines(all: &[Vec<u8>]) -> Vec<(u64, String)> {
    all.iter()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with(b"{") || (!l.starts_with(b"_id,") && !l.starts_with(b"[") && !l.starts_with(b"]"))
        })
        .map(|(i, l)| (i as u64 + 1, id_of(l)))
        .collect()
}

/// The cases for one good file (`csv`: a wide CSV whose first line is the header).
fn cases(stem: &str, ext: &str, original: &[u8]) -> Vec<Case> {
    let all = lines(original);
    let recs = record_lines(&all);
    assert_eq!(recs.len(), 40, "{stem}.{ext}: a 40-round file");
    let csv = ext == "csv";
    let mut out = Vec::new();
    let mut case = |label: &str, bytes: Vec<u8>, bad: &[u64], cut_after: Option<u64>| {
        let kept: Vec<&(u64, String)> = recs.iter().filter(|(l, _)| cut_after.is_none_or(|c| *l <= c)).collect();
        out.push(Case {
            name: format!("{stem}-{label}.{ext}"),
            bytes,
            bad_lines: bad.to_vec(),
            records: kept.len() as u64,
            good: kept.iter().filter(|(l, _)| !bad.contains(l)).map(|(_, id)| id.clone()).collect(),
        });
    };
    // A line whose cells can be found by commas (CSV: no quotes; JSON: goalName "Default").
    let plain = |from: usize| {
        (from..all.len())
            .find(|&i| {
                if csv { !all[i].contains(&b'"') } else { all[i].windows(20).any(|w| w == b"\"goalName\":\"Default\"") }
            })
            .unwrap()
    };

    // Truncated in the middle of a record: late (the file lands) and early (it is rejected).
    for (label, idx) in [("cut-last", recs[39].0), ("cut-at-90pct", recs[36].0), ("cut-early", recs[3].0)] {
        let line = &all[idx as usize - 1];
        let offset: usize = all[..idx as usize - 1].iter().map(|l| l.len() + 1).sum::<usize>() + line.len() / 2;
        case(label, original[..offset].to_vec(), &[idx], Some(idx));
    }
    // Bytes flipped to invalid UTF-8 on three lines (7.5 %: the file lands).
    let mut flipped = all.clone();
    let flip_lines = [recs[8].0, recs[19].0, recs[32].0];
    for l in flip_lines {
        let line = &mut flipped[l as usize - 1];
        let at = line.len() / 3;
        line[at] = 0xFF;
    }
    case("byte-flips", join(&flipped), &flip_lines, None);
    // A line of NUL bytes.
    let mut nul = all.clone();
    let nul_line = recs[14].0;
    nul[nul_line as usize - 1] = vec![0u8; 100];
    case("nul-line", join(&nul), &[nul_line], None);
    // NUL bytes inside one record (JSON: inside a string; CSV: in place of a separator).
    let mut nul_in = all.clone();
    let nul_in_line = recs[16].0;
    let target = &mut nul_in[nul_in_line as usize - 1];
    let pos = if csv { target.iter().position(|&b| b == b',').unwrap() } else { find(target, b"\"course\":\"") + 11 };
    target[pos] = 0;
    case("nul-in-record", join(&nul_in), &[nul_in_line], None);
    // A byte-order mark and CRLF line ends: nothing is malformed.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(original);
    case("bom", bom, &[], None);
    let crlf: Vec<u8> = original.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
    case("crlf", crlf, &[], None);
    // A 2 MB cell in a good record: it lands.
    let mut big = all.clone();
    let big_line = plain(recs[6].0 as usize - 1);
    if csv {
        let mut cells: Vec<Vec<u8>> = big[big_line].split(|&b| b == b',').map(<[u8]>::to_vec).collect();
        let at = lines(original)[0].split(|&b| b == b',').position(|h| h == b"goalName").unwrap();
        cells[at] = vec![b'x'; 2 << 20];
        big[big_line] = cells.join(&b","[..]);
    } else {
        let line = &big[big_line];
        let at = find(line, b"\"goalName\":\"") + 12;
        let end = at + line[at..].iter().position(|&b| b == b'"').unwrap();
        let mut l = line[..at].to_vec();
        l.extend(std::iter::repeat_n(b'x', 2 << 20));
        l.extend_from_slice(&line[end..]);
        big[big_line] = l;
    }
    case("2mb-cell", join(&big), &[], None);
    // A dropped cell (JSON: a dropped `:`), and an unbalanced quote.
    let mut dropped = all.clone();
    let drop_line = plain(recs[11].0 as usize - 1);
    let line = &mut dropped[drop_line];
    if csv {
        let first = line.iter().position(|&b| b == b',').unwrap();
        line.drain(first..first + 1 + line[first + 1..].iter().position(|&b| b == b',').unwrap());
    } else {
        let at = find(line, b"\"goalName\":") + 10;
        line.remove(at);
    }
    case("dropped-cell", join(&dropped), &[drop_line as u64 + 1], None);
    let mut quote = all.clone();
    let quote_line = plain(recs[24].0 as usize - 1);
    let line = &mut quote[quote_line];
    if csv {
        let first = line.iter().position(|&b| b == b',').unwrap();
        line.insert(first + 1, b'"');
    } else {
        let at = find(line, b"\"goalName\":\"") + 12;
        let end = at + line[at..].iter().position(|&b| b == b'"').unwrap();
        line.remove(end);
    }
    case("open-quote", join(&quote), &[quote_line as u64 + 1], None);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

struct Env {
    settings: Settings,
    store: Store,
    buckets: Buckets,
    home: tempfile::TempDir,
    _db: common::TestDb,
}

async fn env() -> Env {
    let db = common::sqlite_db();
    let home = tempfile::tempdir().unwrap();
    let mut settings = Settings::load_with(&Overrides::default(), &Default::default()).unwrap();
    settings.home = home.path().to_path_buf();
    settings.database_url = db.url.clone();
    assert_eq!(settings.lake.max_bad_record_fraction, 0.1, "the default");
    let store = common::open(&db).await;
    let buckets = Buckets::open(&settings).unwrap();
    Env { settings, store, buckets, home, _db: db }
}

/// What silver made of one landed file: round ids written, malformed quarantine details.
fn silver(env: &Env, course: &str, date: NaiveDate, key: &str, name: &str) -> (BTreeSet<String>, Vec<String>, u64) {
    let path = env.buckets.local_path(Bucket::Landing, key).unwrap();
    let inputs = vec![Input {
        name: name.to_string(),
        open: Box::new(move || Ok(Box::new(std::fs::File::open(&path)?) as Box<dyn std::io::Read + Send>)),
    }];
    let mut ids = BTreeSet::new();
    let mut malformed = Vec::new();
    let stats = transform_partition(
        course,
        date,
        &inputs,
        &Rules::default(),
        65_536,
        &mut |b| {
            let col = b.column_by_name("round_id").unwrap().as_string::<i32>();
            ids.extend((0..col.len()).filter(|&i| col.is_valid(i)).map(|i| col.value(i).to_string()));
            Ok(())
        },
        &mut |q| {
            if q.reason == MALFORMED_RECORD {
                malformed.push(q.row["reason_detail"].as_str().unwrap().to_string());
            }
        },
    )
    .unwrap_or_else(|e| panic!("{name}: silver failed: {e}"));
    let counted = stats.quarantined.get(MALFORMED_RECORD).copied().unwrap_or(0);
    assert_eq!(counted, malformed.len() as u64, "{name}: stats count what is quarantined");
    let other: Vec<_> = stats.quarantined.keys().filter(|k| *k != MALFORMED_RECORD).collect();
    assert!(other.is_empty(), "{name}: good rounds break no rule: {other:?}");
    (ids, malformed, stats.records_in)
}

/// Ingests `case` under its own date and checks bronze's decision and silver's result.
async fn check(env: &Env, course: &str, date: NaiveDate, case: &Case) {
    let path = env.home.path().join(&case.name);
    std::fs::write(&path, &case.bytes).unwrap();
    let req = IngestRequest {
        paths: vec![path],
        course: Some(course.into()),
        date: Some(date),
        default_date: None,
        replace: false,
    };
    let report = bronze::ingest(&env.settings, &env.store, &env.buckets, &req, None, &|_| {}).await.unwrap();
    let o = &report.files[0];
    let bad = case.bad_lines.len() as u64;
    let name = &case.name;
    if bad as f64 > 0.1 * case.records as f64 {
        assert_eq!(o.status, IngestStatus::Rejected, "{name}: {:?}", o.reason);
        let reason = o.reason.as_deref().unwrap();
        let expected = format!("{bad} of {} records are malformed", case.records);
        assert!(reason.starts_with(&expected), "{name}: {reason}");
        assert!(o.quarantine_key.is_some(), "{name}: the file is in quarantine");
        return;
    }
    assert_eq!(o.status, IngestStatus::Accepted, "{name}: {:?}", o.reason);
    assert_eq!(o.rows, Some(case.records), "{name}");
    if bad > 0 {
        let reason = o.reason.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with(&format!("warning: {bad} of {} records are malformed", case.records)),
            "{name}: {reason}"
        );
    } else {
        assert_eq!(o.reason, None, "{name}");
    }
    let (ids, malformed, records_in) = silver(env, course, date, o.landing_key.as_deref().unwrap(), name);
    assert_eq!(records_in, case.records, "{name}");
    assert_eq!(ids, case.good, "{name}: every good round lands, no other");
    let lines: Vec<String> = case.bad_lines.iter().map(|l| format!("{name}:{l}: ")).collect();
    assert_eq!(malformed.len(), lines.len(), "{name}: {malformed:?}");
    for (detail, prefix) in malformed.iter().zip(&lines) {
        assert!(detail.starts_with(prefix), "{name}: {detail} should start with {prefix}");
    }
}

#[tokio::test]
async fn mutated_exports_land_their_good_rounds_and_quarantine_each_bad_record() {
    let env = env().await;
    let csv_dir = generate(env.home.path(), "0");
    let json_dir = generate(env.home.path(), "1");
    let sources = [
        (csv_dir.join("bradshawfarmgc.2025-06-01.1.csv"), "bradshawfarmgc", "csv"),
        (json_dir.join("pinehurst4.2025-06-01.1.json"), "pinehurst4", "json"),
        (json_dir.join("bradshawfarmgc.2025-06-01.1.json"), "bradshawfarmgc", "ndjson"),
    ];
    let mut day = NaiveDate::from_ymd_opt(2025, 7, 1).unwrap();
    let mut checked = 0;
    for (path, course, ext) in sources {
        let original = std::fs::read(&path).unwrap();
        for case in cases(course, ext, &original) {
            check(&env, course, day, &case).await;
            day = day.succ_opt().unwrap();
            checked += 1;
        }
    }
    assert_eq!(checked, 33);
}

/// The two cases a new user met: a 40-round CSV whose line 6 is cut off at 304 fields, or whose
/// line 9 holds one invalid UTF-8 byte, used to be rejected whole; now 39 rounds land and the
/// bad line is quarantined with file, line and reason.
#[tokio::test]
async fn a_cut_off_line_or_one_invalid_byte_costs_one_round_not_forty() {
    let env = env().await;
    let dir = generate(env.home.path(), "0");
    let original = std::fs::read(dir.join("bradshawfarmgc.2025-06-01.1.csv")).unwrap();
    let all = lines(&original);
    let width = all[0].split(|&b| b == b',').count();
    assert!(width > 304);
    let mut cut = all.clone();
    assert!(!cut[5].contains(&b'"'));
    let cells: Vec<&[u8]> = cut[5].split(|&b| b == b',').take(304).collect();
    cut[5] = cells.join(&b","[..]);
    let mut utf8 = all.clone();
    utf8[8][40] = 0xC3; // a lead byte without its continuation
    utf8[8][41] = b'x';
    for (label, bytes, line, reason) in [
        ("cut", join(&cut), 6, format!("record 5 has 304 fields, the header has {width}")),
        ("utf8", join(&utf8), 9, "record 8 is not valid UTF-8 (invalid byte at byte 41 of the line)".to_string()),
    ] {
        let name = format!("bradshawfarmgc.2025-08-0{}.{label}.csv", line);
        let date = NaiveDate::parse_from_str(&format!("2025-08-0{line}"), "%Y-%m-%d").unwrap();
        let case = Case {
            name: name.clone(),
            bytes,
            bad_lines: vec![line],
            records: 40,
            good: all[1..].iter().enumerate().filter(|(i, _)| *i as u64 + 2 != line).map(|(_, l)| id_of(l)).collect(),
        };
        assert_eq!(case.good.len(), 39);
        check(&env, "bradshawfarmgc", date, &case).await;
        let key = format!("course_id=bradshawfarmgc/ingest_date={date}/{name}");
        let (ids, malformed, _) = silver(&env, "bradshawfarmgc", date, &key, &name);
        assert_eq!(ids.len(), 39, "{label}");
        assert_eq!(malformed, [format!("{name}:{line}: {reason}")], "{label}");
    }
}

/// Random damage (bytes replaced by structural characters, invalid UTF-8, NUL; cuts) to every
/// generated export, read by the landing reader: it never panics, every record is either a round
/// or malformed, and a CSV line nobody touched is a good round (unless the header was damaged,
/// which changes the width every line is held to, or a quote was added, which may join lines).
#[test]
fn random_damage_never_panics_and_counts_every_record() {
    use tmctl::landing::{self, Record};
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for share in ["0", "1"] {
        let out = generate(dir.path(), share);
        files.extend(std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()));
    }
    files.sort();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = [b'"', b',', b'\n', b'{', b'}', b'[', b']', b'\\', 0xFF, 0xC3, 0, b' ', b'\r', b':'];
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let original = std::fs::read(path).unwrap();
        for round in 0..20 {
            let mut bytes = original.clone();
            let mut touched = Vec::new();
            for _ in 0..(1 + next() % 4) {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
                touched.push(at);
            }
            if round % 5 == 0 {
                let cut = (next() % bytes.len() as u64) as usize;
                bytes.truncate(cut);
            }
            let (mut good, mut bad) = (0u64, 0u64);
            let mut ids = BTreeSet::new();
            let mut seen_bad: Vec<String> = Vec::new();
            let read = landing::read(&name, landing::format_by_extension(&name), &bytes[..], &mut |r| {
                match r {
                    Record::Round(r) => {
                        good += 1;
                        ids.extend(landing::raw_text(r.field("_id")));
                    }
                    Record::Malformed(m) => {
                        bad += 1;
                        seen_bad.push(m.to_string());
                        assert!(m.line >= 1 && !m.reason.is_empty(), "{name}: {m}");
                    }
                }
                Ok(())
            });
            let summary = match read {
                Ok(s) => s,
                // A damaged CSV header stops the file; that is the one allowed refusal.
                Err(landing::ReadError::Unusable { .. }) => continue,
                Err(e) => panic!("{name}: {e}"),
            };
            assert_eq!(summary.records, good + bad, "{name} round {round}");
            assert_eq!(summary.malformed, bad, "{name} round {round}");
            let header_len = original.iter().position(|&b| b == b'\n').unwrap();
            let header_intact = !touched.iter().any(|&t| t <= header_len);
            let quote_added = touched.iter().any(|&t| t < bytes.len() && bytes[t] == b'"');
            if name.ends_with(".csv") && header_intact && !quote_added {
                // Lines before the cut that no damage touched are read as rounds.
                let mut start = 0;
                for (i, line) in original.split(|&b| b == b'\n').enumerate() {
                    let end = start + line.len();
                    // The line, its own line break and the one before it (which may join it to the line above).
                    let intact = end < bytes.len() && !touched.iter().any(|&t| t + 1 >= start && t <= end);
                    if i > 0 && intact && !line.is_empty() && !line.contains(&b'"') {
                        let id = String::from_utf8_lossy(line.split(|&b| b == b',').next().unwrap()).to_string();
                        assert!(
                            ids.contains(&id),
                            "{name} round {round}: intact line {} lost; damage {:?}; malformed {seen_bad:?}",
                            i + 1,
                            touched.iter().map(|&t| (t, bytes.get(t))).collect::<Vec<_>>()
                        );
                    }
                    start = end + 1;
                }
            }
        }
    }
}
