//! `tmctl generate`: realistic synthetic Tagmarshal round exports — the wide CSV of
//! REFERENCE_PIPELINE.md §1.2 and the MongoDB JSON export of §1.3 — for the five pilot courses of §7
//! (plus `course06`… cycling their layouts), with deliberate bad rows and bad files whose expected
//! rejection reasons are recorded in the [`GenerateReport`].
//! It owns the course models, a small seeded PRNG (SplitMix64 → xoshiro256**) and both streaming
//! writers. Output is byte-identical for the same arguments: every round is a pure function of
//! (seed, course, day, index), so course-days are written in parallel without changing a byte.
//!
//! `args.rs` (arguments and report), `rng.rs`, `courses.rs` (course models), `rounds.rs`, `plan.rs`
//! (rounds to files), `write.rs` (CSV and JSON writers); this file runs them.

mod args;
mod courses;
mod plan;
mod rng;
mod rounds;
mod write;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{Days, NaiveDate};

pub use self::args::*;
use self::courses::*;
use self::plan::*;
use self::rng::*;
pub use self::rng::{Rng, object_id, splitmix64};
use self::rounds::*;
use self::write::*;

struct Ctx<'a> {
    args: &'a GenerateArgs,
    courses: &'a [Course],
    start_date: NaiveDate,
}

impl Ctx<'_> {
    fn date(&self, day: usize) -> NaiveDate {
        self.start_date + Days::new(day as u64)
    }

    /// The round a reference stands for, with its variant and defect applied.
    fn materialize(&self, course: &Course, r: &RoundRef) -> (Round, Option<(Vec<usize>, String)>) {
        let a = self.args;
        let round = make_round(course, a.shape.seed, r.day, self.date(r.day), a.shape.rounds, r.idx, 0);
        let mut round = match r.variant {
            Variant::Full => round,
            Variant::Snapshot => round.into_snapshot(),
            Variant::Empty => round.into_empty(),
        };
        let defect = r.defect.map(|kind| {
            let mut rng = Rng::from_parts(&[a.shape.seed, TAG_DEFECT, course.idx as u64, r.day as u64, r.idx as u64]);
            round.apply_defect(kind, &mut rng)
        });
        (round, defect)
    }

    fn file_name(&self, course: &Course, day: usize, n: usize, format: FileFormat) -> String {
        format!("{}.{}.{}.{}", course.id, self.date(day), n, format)
    }

    fn write_day(&self, p: &DayPlan) -> io::Result<Vec<GeneratedFile>> {
        let course = &self.courses[p.course];
        let mut out = Vec::with_capacity(p.files.len() + p.bad.len());
        for fp in &p.files {
            out.push(self.write_good(course, p.day, fp)?);
        }
        for (k, &kind) in p.bad.iter().enumerate() {
            out.push(self.write_bad(course, p.day, p.files.len() + 1 + k, kind)?);
        }
        Ok(out)
    }

    fn write_good(&self, course: &Course, day: usize, fp: &FilePlan) -> io::Result<GeneratedFile> {
        let format = if fp.layout == Layout::Csv { FileFormat::Csv } else { FileFormat::Json };
        let file_name = self.file_name(course, day, fp.n, format);
        let path = self.args.out.join(&file_name);
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut gf = GeneratedFile {
            path: path.clone(),
            file_name,
            course_id: course.id.clone(),
            date: self.date(day),
            n: fp.n,
            format,
            layout: fp.layout,
            rounds: fp.rounds.len(),
            locations: 0,
            slots: 0,
            bytes: 0,
            kind: FileKind::Good,
            course_field: fp.course_field.clone(),
            has_date_column: fp.with_date,
            round_ids: Vec::with_capacity(fp.rounds.len()),
            duplicate_ids: Vec::new(),
            carried_ids: Vec::new(),
            bad_rows: Vec::new(),
        };
        let record = |gf: &mut GeneratedFile, row: usize, r: &RoundRef, round: &Round, defect| {
            let id = round.id.clone().unwrap_or_default();
            gf.locations += round.locations.len();
            gf.slots = gf.slots.max(round.locations.len());
            if r.dup {
                gf.duplicate_ids.push(id.clone());
            }
            if r.carried || r.variant == Variant::Snapshot {
                gf.carried_ids.push(id.clone());
            }
            if let (Some(kind), Some((locations, value))) = (r.defect, defect) {
                gf.bad_rows.push(RowDefect {
                    kind,
                    reason: kind.reason(),
                    rejected: kind.rejected(),
                    row,
                    round_id: round.id.clone(),
                    locations,
                    value,
                });
            }
            gf.round_ids.push(id);
        };
        if format == FileFormat::Csv {
            // Pass 1: the slot count (rounds are pure functions, so regenerating is cheap and keeps
            // memory flat however many rounds a file holds).
            let slots = fp.rounds.iter().map(|r| self.materialize(course, r).0.locations.len()).max().unwrap_or(0);
            let o = CsvOpts { course_field: &fp.course_field, slots, with_id: true, with_date: fp.with_date };
            let mut buf = Vec::with_capacity(1 << 16);
            push_csv_header(&mut buf, &o);
            w.write_all(&buf)?;
            for (row, r) in fp.rounds.iter().enumerate() {
                let (round, defect) = self.materialize(course, r);
                buf.clear();
                push_csv_row(&mut buf, &round, &o);
                w.write_all(&buf)?;
                record(&mut gf, row, r, &round, defect);
            }
            gf.slots = slots;
        } else {
            let mut wrng =
                Rng::from_parts(&[self.args.shape.seed, TAG_WRAP, course.idx as u64, day as u64, fp.n as u64]);
            // Per file: always wrapped, never wrapped, or mixed round by round.
            let mode = wrng.index(5);
            let pretty = matches!(fp.layout, Layout::JsonArrayPretty | Layout::JsonObject);
            let indent = if fp.layout == Layout::JsonArrayPretty { "  " } else { "" };
            match fp.layout {
                Layout::JsonArray => w.write_all(b"[\n")?,
                Layout::JsonArrayPretty => w.write_all(b"[")?,
                _ => {}
            }
            let mut buf = Vec::with_capacity(1 << 16);
            for (row, r) in fp.rounds.iter().enumerate() {
                let (round, defect) = self.materialize(course, r);
                let (wrap_oid, wrap_date) = match mode {
                    0 | 1 => (true, true),
                    2 => (false, false),
                    _ => (wrng.chance(0.5), wrng.chance(0.5)),
                };
                let o = JsonOpts {
                    course_field: &fp.course_field,
                    wrap_oid,
                    wrap_date,
                    gap_keys: course.t.pace_gap_coverage > 0.0,
                    pretty,
                    indent,
                };
                match fp.layout {
                    Layout::JsonArray if row > 0 => w.write_all(b",\n")?,
                    Layout::JsonArrayPretty if row > 0 => w.write_all(b",\n  ")?,
                    Layout::JsonArrayPretty => w.write_all(b"\n  ")?,
                    _ => {}
                }
                buf.clear();
                push_json_round(&mut buf, &round, &o);
                w.write_all(&buf)?;
                if fp.layout == Layout::JsonLines {
                    w.write_all(b"\n")?;
                }
                record(&mut gf, row, r, &round, defect);
            }
            match fp.layout {
                Layout::JsonArray | Layout::JsonArrayPretty => w.write_all(b"\n]\n")?,
                Layout::JsonObject => w.write_all(b"\n")?,
                _ => {}
            }
        }
        w.flush()?;
        drop(w);
        gf.bytes = fs::metadata(&path)?.len();
        Ok(gf)
    }

    fn write_bad(&self, course: &Course, day: usize, n: usize, kind: BadFileKind) -> io::Result<GeneratedFile> {
        let a = self.args;
        let salt = TAG_BADFILE + kind as u64;
        let rounds: Vec<Round> = (0..3)
            .map(|i| make_round(course, a.shape.seed, day, self.date(day), a.shape.rounds, i, salt))
            .map(|mut r| {
                if kind == BadFileKind::NonUtf8 {
                    r.goal_name = NON_UTF8_GOAL;
                }
                r
            })
            .collect();
        let slots = rounds.iter().map(|r| r.locations.len()).max().unwrap_or(0);
        let mut buf: Vec<u8> = Vec::new();
        let (written, reason): (&[Round], String) = match kind {
            BadFileKind::MissingIdColumn => {
                let o = CsvOpts { course_field: &course.id, slots, with_id: false, with_date: false };
                push_csv_header(&mut buf, &o);
                for r in &rounds {
                    push_csv_row(&mut buf, r, &o);
                }
                (&rounds, "CSV header missing required columns: _id".into())
            }
            BadFileKind::EmptyJsonArray => {
                buf.extend_from_slice(b"[]\n");
                (&[], "JSON file is empty".into())
            }
            BadFileKind::TruncatedJson => {
                buf.extend_from_slice(b"[\n");
                for (i, r) in rounds[..2].iter().enumerate() {
                    if i > 0 {
                        buf.extend_from_slice(b",\n");
                    }
                    let o = JsonOpts {
                        course_field: &course.id,
                        wrap_oid: true,
                        wrap_date: true,
                        gap_keys: true,
                        pretty: false,
                        indent: "",
                    };
                    push_json_round(&mut buf, r, &o);
                }
                buf.extend_from_slice(b"\n]\n");
                let cut = buf.len() * 3 / 5;
                buf.truncate(cut);
                (&rounds[..2], format!("truncated JSON: unexpected end of input at byte {cut}"))
            }
            BadFileKind::NonUtf8 => {
                let o = CsvOpts { course_field: &course.id, slots, with_id: true, with_date: false };
                push_csv_header(&mut buf, &o);
                for r in &rounds[..2] {
                    push_csv_row(&mut buf, r, &o);
                }
                // "Mañana" in UTF-8 (C3 B1) → Latin-1 (F1).
                let pos = buf.windows(2).position(|x| x == [0xC3, 0xB1]).unwrap_or(buf.len());
                let mut patched = Vec::with_capacity(buf.len());
                for (i, &byte) in buf.iter().enumerate() {
                    if i > 0 && buf[i - 1] == 0xC3 && byte == 0xB1 {
                        continue;
                    }
                    patched.push(if byte == 0xC3 && buf.get(i + 1) == Some(&0xB1) { 0xF1 } else { byte });
                }
                buf = patched;
                (&rounds[..2], format!("invalid UTF-8 at byte offset {pos}"))
            }
            BadFileKind::HeaderOnlyCsv => {
                let o = CsvOpts { course_field: &course.id, slots, with_id: true, with_date: false };
                push_csv_header(&mut buf, &o);
                (&[], "CSV file has no data".into())
            }
        };
        let format = kind.format();
        let file_name = self.file_name(course, day, n, format);
        let path = a.out.join(&file_name);
        fs::write(&path, &buf)?;
        Ok(GeneratedFile {
            path,
            file_name,
            course_id: course.id.clone(),
            date: self.date(day),
            n,
            format,
            layout: if format == FileFormat::Csv { Layout::Csv } else { Layout::JsonArray },
            rounds: written.len(),
            locations: written.iter().map(|r| r.locations.len()).sum(),
            slots: if matches!(kind, BadFileKind::EmptyJsonArray) { 0 } else { slots },
            bytes: buf.len() as u64,
            kind: FileKind::Bad { bad: kind, reason },
            course_field: course.id.clone(),
            has_date_column: false,
            round_ids: written.iter().map(|r| r.id.clone().unwrap_or_default()).collect(),
            duplicate_ids: Vec::new(),
            carried_ids: Vec::new(),
            bad_rows: Vec::new(),
        })
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Writes the synthetic exports described by `args` into `args.out`. Deterministic: the same
/// arguments always produce byte-identical files (whatever the number of CPUs).
pub fn generate(args: &GenerateArgs) -> io::Result<GenerateReport> {
    let started = Instant::now();
    let start_date = NaiveDate::parse_from_str(&args.shape.start_date, "%Y-%m-%d")
        .map_err(|e| invalid(format!("--start-date {:?}: expected YYYY-MM-DD ({e})", args.shape.start_date)))?;
    if args.shape.courses == 0 || args.shape.days == 0 || args.shape.rounds == 0 {
        return Err(invalid("--courses, --days and --rounds must each be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&args.json_share) {
        return Err(invalid(format!("--json-share {}: expected a fraction between 0 and 1", args.json_share)));
    }
    start_date
        .checked_add_days(Days::new(args.shape.days as u64))
        .ok_or_else(|| invalid(format!("--start-date {start_date} + {} days is out of range", args.shape.days)))?;
    fs::create_dir_all(&args.out)?;

    let courses: Vec<Course> =
        (0..args.shape.courses).map(|i| Course::build(i, args.shape.seed, args.shape.rounds)).collect();
    let plans = plan(args, &courses);
    let ctx = Ctx { args, courses: &courses, start_date };

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, io::Result<Vec<GeneratedFile>>)>> = Mutex::new(Vec::with_capacity(plans.len()));
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(plans.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= plans.len() {
                        break;
                    }
                    let r = ctx.write_day(&plans[i]);
                    let failed = r.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                    if failed {
                        next.store(plans.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut files = Vec::new();
    for (_, r) in results {
        files.extend(r?);
    }

    let report = GenerateReport {
        out: args.out.clone(),
        seed: args.shape.seed,
        start_date,
        days: args.shape.days,
        rounds_per_day: args.shape.rounds,
        courses: courses.iter().map(Course::info).collect(),
        files,
        elapsed: started.elapsed(),
    };
    if let Some(path) = &args.manifest {
        let mut w = BufWriter::new(File::create(path)?);
        serde_json::to_writer_pretty(&mut w, &report)?;
        w.write_all(b"\n")?;
        w.flush()?;
    }
    Ok(report)
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `tmctl generate`: writes the files and prints a summary per course, the bad files with their
/// reasons and the bad rows by reason.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

    let report = generate(&args).with_context(|| format!("generating into {}", args.out.display()))?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["course", "timezone", "files (csv/json)", "bad files", "rounds", "locations", "bad rows", "bytes"]);
    for c in &report.courses {
        let files: Vec<&GeneratedFile> = report.files.iter().filter(|f| f.course_id == c.id).collect();
        let good: Vec<&&GeneratedFile> = files.iter().filter(|f| f.kind.is_good()).collect();
        let csv = good.iter().filter(|f| f.format == FileFormat::Csv).count();
        t.add_row([
            c.id.clone(),
            c.timezone.clone(),
            format!("{} ({csv}/{})", good.len(), good.len() - csv),
            (files.len() - good.len()).to_string(),
            good.iter().map(|f| f.rounds).sum::<usize>().to_string(),
            good.iter().map(|f| f.locations).sum::<usize>().to_string(),
            files.iter().map(|f| f.bad_rows.len()).sum::<usize>().to_string(),
            human_bytes(files.iter().map(|f| f.bytes).sum()),
        ]);
    }
    let good: Vec<&GeneratedFile> = report.good_files().collect();
    t.add_row([
        "total".to_string(),
        String::new(),
        good.len().to_string(),
        report.bad_files().count().to_string(),
        good.iter().map(|f| f.rounds).sum::<usize>().to_string(),
        good.iter().map(|f| f.locations).sum::<usize>().to_string(),
        report.bad_rows().count().to_string(),
        human_bytes(report.total_bytes()),
    ]);
    let mut out = io::stdout().lock();
    writeln!(out, "{t}")?;

    if report.bad_files().next().is_some() {
        let mut b = Table::new();
        b.load_preset(UTF8_FULL_CONDENSED);
        b.set_header(["bad file", "kind", "should be rejected because"]);
        for f in report.bad_files() {
            let kind = f.kind.bad_kind().map(BadFileKind::as_str).unwrap_or_default();
            b.add_row([f.file_name.clone(), kind.to_string(), f.kind.reason().unwrap_or_default().to_string()]);
        }
        writeln!(out, "{b}")?;
    }
    if report.bad_rows().next().is_some() {
        let mut b = Table::new();
        b.load_preset(UTF8_FULL_CONDENSED);
        b.set_header(["bad rows", "count", "expected"]);
        let mut kinds: Vec<RowDefectKind> = report.bad_rows().map(|(_, d)| d.kind).collect();
        kinds.sort_by_key(|k| k.reason());
        kinds.dedup();
        for k in kinds {
            let n = report.bad_rows().filter(|(_, d)| d.kind == k).count();
            b.add_row([
                k.reason().to_string(),
                n.to_string(),
                (if k.rejected() { "quarantine" } else { "keep" }).into(),
            ]);
        }
        writeln!(out, "{b}")?;
    }
    let secs = report.elapsed.as_secs_f64();
    writeln!(
        out,
        "{} files, {} unique rounds, {} in {:.2} s ({}/s), seed {}, into {}",
        report.files.len(),
        report.unique_rounds(),
        human_bytes(report.total_bytes()),
        secs,
        human_bytes((report.total_bytes() as f64 / secs.max(1e-9)) as u64),
        report.seed,
        report.out.display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn splitmix64_matches_reference_vector() {
        // Reference outputs of Vigna's splitmix64.c for seed 1234567.
        let mut s = 1_234_567u64;
        assert_eq!(splitmix64(&mut s), 6_457_827_717_110_365_317);
        assert_eq!(splitmix64(&mut s), 3_203_168_211_198_807_973);
    }

    #[test]
    fn rng_is_deterministic_and_streams_differ() {
        let a: Vec<u64> = {
            let mut r = Rng::from_parts(&[42, 1, 2]);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::from_parts(&[42, 1, 2]);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::from_parts(&[42, 1, 3]);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rng_ranges_hold() {
        let mut r = Rng::new(7);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let x = r.f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
            assert!(r.below(10) < 10);
            let u = r.uniform(-3.0, 5.0);
            assert!((-3.0..5.0).contains(&u));
            assert!(r.normal().abs() < 3.5);
        }
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02, "mean {}", sum / 10_000.0);
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn object_id_is_24_lowercase_hex_with_timestamp_prefix() {
        let mut r = Rng::new(1);
        let id = object_id(0x6724_cb30, &mut r);
        assert_eq!(id.len(), 24);
        assert!(id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{id}");
        assert!(id.starts_with("6724cb30"));
        assert_ne!(object_id(0x6724_cb30, &mut r), id);
    }

    #[test]
    fn layouts_match_the_documented_section_ranges() {
        let want = [
            ("americanfalls", 24, 9),
            ("bradshawfarmgc", 80, 9),
            ("erinhills", 55, 18),
            ("indiancreek", 53, 18),
            ("pinehurst4", 54, 18),
        ];
        for (i, (id, max_section, max_hole)) in want.into_iter().enumerate() {
            let info = Course::build(i, 42, 40).info();
            assert_eq!((info.id.as_str(), info.max_section, info.max_hole), (id, max_section, max_hole));
        }
        assert_eq!(Course::build(5, 42, 40).info().id, "course06");
    }

    #[test]
    fn csv_cells_are_quoted_when_needed() {
        let mut out = Vec::new();
        push_csv_text(&mut out, "Members \"Fast\" Play");
        out.push(b'|');
        push_csv_text(&mut out, "Weekend, peak");
        out.push(b'|');
        push_csv_text(&mut out, "Default");
        assert_eq!(String::from_utf8(out).unwrap(), "\"Members \"\"Fast\"\" Play\"|\"Weekend, peak\"|Default");
    }

    #[test]
    fn numbers_print_like_display() {
        let mut r = Rng::new(3);
        for x in [0.0, 300.0, 1000.5, -80.139712, 25.8748, -0.0004, 9024.836, 140.0, -5.0, 0.9, 15840.0] {
            let mut out = Vec::new();
            push_num(&mut out, x);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{x}"));
        }
        for _ in 0..100_000 {
            let x = r6(r.uniform(-200.0, 20_000.0));
            let y = r3(r.uniform(-2_000.0, 2_000.0));
            for v in [x, y] {
                let mut out = Vec::new();
                push_num(&mut out, v);
                assert_eq!(String::from_utf8(out).unwrap(), format!("{v}"));
            }
        }
        let mut out = Vec::new();
        push_padded(&mut out, 7, 3);
        push_u64(&mut out, 0);
        push_u64(&mut out, u64::MAX);
        assert_eq!(String::from_utf8(out).unwrap(), format!("0070{}", u64::MAX));
    }

    #[test]
    fn iso_times_have_milliseconds() {
        let t = Utc.with_ymd_and_hms(2024, 11, 1, 12, 30, 52).unwrap();
        let mut out = Vec::new();
        push_iso(&mut out, t);
        push_iso(&mut out, fix_time(t, 1000.5));
        assert_eq!(String::from_utf8(out).unwrap(), "2024-11-01T12:30:52.000Z2024-11-01T12:47:32.500Z");
    }

    #[test]
    fn rounds_are_pure_and_offsets_increase() {
        let course = Course::build(3, 9, 40);
        let date = NaiveDate::from_ymd_opt(2024, 11, 1).unwrap();
        let a = make_round(&course, 9, 0, date, 40, 5, 0);
        let b = make_round(&course, 9, 0, date, 40, 5, 0);
        assert_eq!(a.id, b.id);
        assert_eq!(a.locations.len(), b.locations.len());
        assert!(a.locations.windows(2).all(|w| w[0].offset < w[1].offset));
        assert_eq!(a.locations[0].pace, 0.0);
        assert!(a.locations.iter().all(|l| l.pace_gap.is_none() && l.positional_gap.is_none()));
    }

    #[test]
    fn local_tee_times_become_utc() {
        let date = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
        let t = local_to_utc(chrono_tz::America::New_York, date, 8 * 3600);
        assert_eq!(t, Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap());
        // 02:30 on a spring-forward night does not exist: it becomes 03:30 EDT.
        let gap = NaiveDate::from_ymd_opt(2025, 3, 9).unwrap();
        let t = local_to_utc(chrono_tz::America::New_York, gap, 2 * 3600 + 1800);
        assert_eq!(t, Utc.with_ymd_and_hms(2025, 3, 9, 7, 30, 0).unwrap());
    }
}
