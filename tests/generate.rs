//! `tmctl generate`: determinism, the wide-CSV and MongoDB-JSON shapes, per-course properties of
//! the synthetic data, and the bad rows / bad files the report promises.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use chrono::{DateTime, Timelike};
use clap::Parser;
use serde_json::Value;
use tmctl::generate::{
    BadFileKind, FileFormat, GenerateArgs, GenerateReport, GeneratedFile, Layout, RowDefectKind, generate,
};

fn run_with(dir: &Path, f: impl FnOnce(&mut GenerateArgs)) -> GenerateReport {
    let mut args = GenerateArgs::new(dir);
    f(&mut args);
    generate(&args).expect("generate")
}

fn default_run() -> (tempfile::TempDir, GenerateReport) {
    let dir = tempfile::tempdir().unwrap();
    let report = run_with(dir.path(), |_| {});
    (dir, report)
}

/// All files of a directory: name → bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())
        })
        .collect()
}

/// A quote-aware split of one CSV record (our files never put line breaks inside cells).
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => cells.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    assert!(!quoted, "unterminated quote in {line:?}");
    cells.push(cur);
    cells
}

#[derive(Debug, Clone)]
struct Loc {
    offset: f64,
    hole: i64,
    section: i64,
    hole_section: i64,
    lon: Option<f64>,
    lat: Option<f64>,
    pace: f64,
    pace_gap: Option<f64>,
    positional_gap: Option<f64>,
    battery: f64,
}

#[derive(Debug, Clone)]
struct Round {
    id: String,
    course: String,
    start: String,
    start_hole: i64,
    is_nine_hole: bool,
    complete: bool,
    current_nine: i64,
    goal_time: i64,
    locations: Vec<Loc>,
}

fn num(s: &str) -> Option<f64> {
    if s.is_empty() { None } else { Some(s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))) }
}

fn read_csv(f: &GeneratedFile) -> (Vec<String>, Vec<Vec<String>>) {
    let text = fs::read_to_string(&f.path).unwrap();
    let mut lines = text.lines();
    let header = split_csv(lines.next().expect("header"));
    let rows = lines.map(split_csv).collect();
    (header, rows)
}

fn csv_rounds(f: &GeneratedFile) -> Vec<Round> {
    let (header, rows) = read_csv(f);
    let col: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (h.as_str(), i)).collect();
    let slots = header.iter().filter(|h| h.starts_with("locations[") && h.ends_with("].startTime")).count();
    rows.iter()
        .map(|row| {
            let get = |name: &str| row[col[name]].as_str();
            let mut locations = Vec::new();
            let mut padding = false;
            for n in 0..slots {
                let cell = |field: &str| row[col[format!("locations[{n}].{field}").as_str()]].as_str();
                if cell("hole").is_empty() && cell("sectionNumber").is_empty() {
                    padding = true;
                    assert!(cell("startTime").is_empty() && cell("batteryPercentage").is_empty());
                    continue;
                }
                assert!(!padding, "{}: a location after padding", f.file_name);
                locations.push(Loc {
                    offset: num(cell("startTime")).unwrap(),
                    hole: cell("hole").parse().unwrap(),
                    section: cell("sectionNumber").parse().unwrap(),
                    hole_section: cell("holeSection").parse().unwrap(),
                    lon: num(cell("fixCoordinates[0]")),
                    lat: num(cell("fixCoordinates[1]")),
                    pace: num(cell("pace")).unwrap(),
                    pace_gap: num(cell("paceGap")),
                    positional_gap: num(cell("positionalGap")),
                    battery: num(cell("batteryPercentage")).unwrap(),
                });
            }
            Round {
                id: get("_id").to_string(),
                course: get("course").to_string(),
                start: get("startTime").to_string(),
                start_hole: get("startHole").parse().unwrap(),
                is_nine_hole: get("isNineHole") == "true",
                complete: get("complete") == "true",
                current_nine: get("currentNine").parse().unwrap(),
                goal_time: get("goalTime").parse().unwrap(),
                locations,
            }
        })
        .collect()
}

fn json_records(f: &GeneratedFile) -> Vec<Value> {
    let text = fs::read_to_string(&f.path).unwrap();
    match f.layout {
        Layout::JsonArray | Layout::JsonArrayPretty => match serde_json::from_str(&text).unwrap() {
            Value::Array(v) => v,
            other => panic!("{}: not an array: {other}", f.file_name),
        },
        Layout::JsonLines => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        Layout::JsonObject => {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v.is_object());
            vec![v]
        }
        Layout::Csv => unreachable!(),
    }
}

fn unwrap_ext(v: &Value, key: &str) -> (String, bool) {
    match v {
        Value::Object(m) => (m[key].as_str().unwrap().to_string(), true),
        Value::String(s) => (s.clone(), false),
        Value::Null => (String::new(), false),
        other => panic!("unexpected {other}"),
    }
}

fn json_rounds(f: &GeneratedFile) -> Vec<Round> {
    json_records(f)
        .iter()
        .map(|r| {
            let (id, _) = unwrap_ext(&r["_id"], "$oid");
            let (start, _) = unwrap_ext(&r["startTime"], "$date");
            let locations = r["locations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    assert!(l.get("date").is_none(), "JSON locations carry no date");
                    let coords = l["fixCoordinates"].as_array();
                    Loc {
                        offset: l["startTime"].as_f64().unwrap(),
                        hole: l["hole"].as_i64().unwrap(),
                        section: l["sectionNumber"].as_i64().unwrap(),
                        hole_section: l["holeSection"].as_i64().unwrap(),
                        lon: coords.and_then(|c| c[0].as_f64()),
                        lat: coords.and_then(|c| c[1].as_f64()),
                        pace: l["pace"].as_f64().unwrap(),
                        pace_gap: l.get("paceGap").and_then(Value::as_f64),
                        positional_gap: l.get("positionalGap").and_then(Value::as_f64),
                        battery: l["batteryPercentage"].as_f64().unwrap(),
                    }
                })
                .collect();
            Round {
                id,
                course: r["course"].as_str().unwrap().to_string(),
                start,
                start_hole: r["startHole"].as_i64().unwrap(),
                is_nine_hole: r["isNineHole"].as_bool().unwrap(),
                complete: r["complete"].as_bool().unwrap(),
                current_nine: r["currentNine"].as_i64().unwrap(),
                goal_time: r["goalTime"].as_i64().unwrap(),
                locations,
            }
        })
        .collect()
}

fn rounds_of(f: &GeneratedFile) -> Vec<Round> {
    match f.format {
        FileFormat::Csv => csv_rounds(f),
        FileFormat::Json => json_rounds(f),
    }
}

/// Every round of every good file, with its file.
fn all_rounds(report: &GenerateReport) -> Vec<(&GeneratedFile, Round)> {
    let all: Vec<(&GeneratedFile, Round)> =
        report.good_files().flat_map(|f| rounds_of(f).into_iter().map(move |r| (f, r))).collect();
    for (f, r) in &all {
        assert_eq!(r.course, f.course_field, "{}", f.file_name);
    }
    all
}

fn of_course<'a>(rounds: &'a [(&'a GeneratedFile, Round)], c: &'a str) -> impl Iterator<Item = &'a Round> + 'a {
    rounds.iter().filter(move |(f, _)| f.course_id == c).map(|(_, r)| r)
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 24 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_differs() {
    let (a, ra) = default_run();
    let (b, _) = default_run();
    let c = tempfile::tempdir().unwrap();
    run_with(c.path(), |a| a.shape.seed = 43);
    let (sa, sb, sc) = (snapshot(a.path()), snapshot(b.path()), snapshot(c.path()));
    assert_eq!(sa.len(), ra.files.len());
    assert_eq!(sa, sb, "same arguments must give byte-identical files");
    assert_ne!(sa, sc, "another seed must give other data");
    let common: Vec<&String> = sa.keys().filter(|k| sc.contains_key(*k)).collect();
    assert!(common.iter().any(|k| sa[*k] != sc[*k]));
}

#[test]
fn file_names_follow_course_date_n() {
    let (_d, report) = default_run();
    for f in &report.files {
        let want = format!("{}.{}.{}.{}", f.course_id, f.date, f.n, f.format);
        assert_eq!(f.file_name, want);
        assert!(f.path.exists());
        assert_eq!(fs::metadata(&f.path).unwrap().len(), f.bytes);
    }
    let courses: BTreeSet<&str> = report.files.iter().map(|f| f.course_id.as_str()).collect();
    assert_eq!(courses, BTreeSet::from(["americanfalls", "bradshawfarmgc", "erinhills", "indiancreek", "pinehurst4"]));
    let dates: BTreeSet<String> = report.files.iter().map(|f| f.date.to_string()).collect();
    assert_eq!(dates, BTreeSet::from(["2025-06-01".into(), "2025-06-02".into(), "2025-06-03".into()]));
    // 30 % of the 15 course-days are JSON (rounded), the rest CSV.
    let json_days: BTreeSet<(String, String)> =
        report.good_files().filter(|f| f.format == "json").map(|f| (f.course_id.clone(), f.date.to_string())).collect();
    assert_eq!(json_days.len(), 5); // round(15 × 0.3) = 5 (4.5 rounds half away from zero)
    // Some course-days have two files.
    assert!(report.good_files().any(|f| f.n == 2));
    // Distinct rounds add up to courses × days × rounds (duplicates and carry-overs aside).
    let ids: BTreeSet<&String> = report.good_files().flat_map(|f| &f.round_ids).filter(|id| !id.is_empty()).collect();
    let missing = report.good_files().flat_map(|f| &f.round_ids).filter(|id| id.is_empty()).count();
    assert_eq!(ids.len() + missing, report.unique_rounds());
    assert_eq!(report.unique_rounds(), 5 * 3 * 40);
}

#[test]
fn csv_files_have_the_wide_header_and_rectangular_rows() {
    let (_d, report) = default_run();
    let csvs: Vec<&GeneratedFile> = report.good_files().filter(|f| f.format == FileFormat::Csv).collect();
    assert!(csvs.len() >= 8);
    let mut fields_seen = BTreeSet::new();
    for f in &csvs {
        let (header, rows) = read_csv(f);
        assert_eq!(
            &header[..23],
            &[
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
            ]
        );
        let slots: Vec<usize> = header
            .iter()
            .filter_map(|h| h.strip_prefix("locations[")?.strip_suffix("].startTime")?.parse().ok())
            .collect();
        assert_eq!(slots, (0..f.slots).collect::<Vec<_>>(), "{}: slots contiguous from 0", f.file_name);
        let per_slot = if f.has_date_column { 14 } else { 13 };
        assert_eq!(header.len(), 23 + per_slot * f.slots, "{}", f.file_name);
        for h in &header[23..] {
            fields_seen.insert(h.split_once('.').unwrap().1.to_string());
        }
        assert_eq!(rows.len(), f.rounds, "{}", f.file_name);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), header.len(), "{} row {i}: cells vs header", f.file_name);
        }
        // The slot count is the longest round of the file.
        let longest = csv_rounds(f).iter().map(|r| r.locations.len()).max().unwrap();
        assert_eq!(longest, f.slots);
        let text = fs::read_to_string(&f.path).unwrap();
        assert!(!text.contains("\r"));
    }
    for field in ["fixCoordinates[0]", "fixCoordinates[1]", "paceGap", "positionalGap", "isCache", "date"] {
        assert!(fields_seen.contains(field), "no CSV has locations[N].{field}");
    }
    // The course column: a human name in some files, the slug in others.
    let names: BTreeSet<bool> = csvs.iter().map(|f| f.course_field != f.course_id).collect();
    assert_eq!(names, BTreeSet::from([false, true]));
    // Goal names with a comma or quotes are quoted, and read back intact.
    let goal_names: BTreeSet<String> = csvs
        .iter()
        .flat_map(|f| {
            let (header, rows) = read_csv(f);
            let i = header.iter().position(|h| h == "goalName").unwrap();
            rows.into_iter().map(move |r| r[i].clone())
        })
        .collect();
    assert!(goal_names.contains("Default"));
    assert!(goal_names.iter().any(|g| g.contains(',') || g.contains('"')), "{goal_names:?}");
}

#[test]
fn json_files_are_mongodb_exports() {
    let (_d, report) = default_run();
    let jsons: Vec<&GeneratedFile> = report.good_files().filter(|f| f.format == FileFormat::Json).collect();
    let layouts: BTreeSet<String> = jsons.iter().map(|f| format!("{:?}", f.layout)).collect();
    for l in ["JsonArray", "JsonLines", "JsonObject"] {
        assert!(layouts.contains(l), "no {l} file among {layouts:?}");
    }
    assert_eq!(jsons.iter().filter(|f| f.layout == Layout::JsonObject).count(), 1);
    let mut wrapped = (0, 0, 0, 0);
    for f in &jsons {
        let records = json_records(f);
        assert_eq!(records.len(), f.rounds);
        for r in &records {
            for key in
                ["_id", "course", "startTime", "endTime", "startHole", "goalTime", "complete", "device", "locations"]
            {
                assert!(r.get(key).is_some(), "{}: no {key}", f.file_name);
            }
            match &r["_id"] {
                Value::Object(m) => {
                    assert!(is_hex_id(m["$oid"].as_str().unwrap()));
                    wrapped.0 += 1;
                }
                Value::String(s) => {
                    assert!(is_hex_id(s));
                    wrapped.1 += 1;
                }
                _ => {}
            }
            match &r["startTime"] {
                Value::Object(m) => {
                    assert!(m.contains_key("$date"));
                    wrapped.2 += 1;
                }
                _ => wrapped.3 += 1,
            }
            for l in r["locations"].as_array().unwrap() {
                let c = l["fixCoordinates"].as_array();
                if let Some(c) = c {
                    assert_eq!(c.len(), 2);
                    let (lon, lat) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
                    assert!(lon < 0.0 && lat > 20.0 || lon == 200.0 || lat == 100.0, "[lon, lat] order: {c:?}");
                }
            }
        }
    }
    assert!(wrapped.0 > 0 && wrapped.1 > 0, "$oid and plain ids: {wrapped:?}");
    assert!(wrapped.2 > 0 && wrapped.3 > 0, "$date and plain dates: {wrapped:?}");
    // A few rounds with an empty locations array, recorded as such.
    let empty: Vec<_> = report.bad_rows().filter(|(_, d)| d.kind == RowDefectKind::EmptyLocations).collect();
    assert!(!empty.is_empty());
    for (f, d) in empty {
        let records = json_records(f);
        assert_eq!(records[d.row]["locations"], Value::Array(vec![]));
        assert!(!d.rejected);
    }
}

#[test]
fn rounds_are_realistic() {
    let (_d, report) = default_run();
    let rounds = all_rounds(&report);
    assert!(rounds.len() >= 600);
    let tz =
        |c: &str| -> chrono_tz::Tz { report.courses.iter().find(|x| x.id == c).unwrap().timezone.parse().unwrap() };
    for (f, r) in &rounds {
        if r.locations.is_empty() {
            continue;
        }
        // Offsets strictly increase, start at the trigger zone (~300 s), and pace starts at 0.
        assert!(r.locations.windows(2).all(|w| w[0].offset < w[1].offset), "{}: {}", f.file_name, r.id);
        assert!((240.0..=360.0).contains(&r.locations[0].offset));
        assert_eq!(r.locations[0].pace, 0.0);
        assert!(r.locations.iter().all(|l| (1..=4).contains(&l.hole_section)));
        assert!([6720, 7920, 14340, 15840, 20160].contains(&r.goal_time), "goal {}", r.goal_time);
        // Tee times: course-local daytime, written as UTC with milliseconds.
        if let Ok(t) = DateTime::parse_from_rfc3339(&r.start) {
            assert!(r.start.ends_with(".000Z"), "{}", r.start);
            let local = t.with_timezone(&tz(&f.course_id));
            assert!((6..=19).contains(&local.hour()), "{} local tee {local}", f.course_id);
        } else {
            assert_eq!(r.start, "not-a-date");
        }
        if !r.id.is_empty() {
            assert!(is_hex_id(&r.id), "{}", r.id);
        }
        // Coordinates near the course (or the deliberate bad values).
        for l in &r.locations {
            if let (Some(lon), Some(lat)) = (l.lon, l.lat)
                && lon != 200.0
                && lat != 100.0
            {
                let c = report.courses.iter().find(|x| x.id == f.course_id).unwrap().center;
                assert!((lon - c.0).abs() < 0.05 && (lat - c.1).abs() < 0.05, "{lon},{lat} far from {c:?}");
            }
        }
    }
    // Offsets are sometimes fractional; 9-hole and 18-hole rounds are mixed everywhere.
    assert!(rounds.iter().flat_map(|(_, r)| &r.locations).any(|l| l.offset.fract() != 0.0));
    for c in ["americanfalls", "bradshawfarmgc", "indiancreek", "pinehurst4"] {
        let nine: BTreeSet<bool> =
            rounds.iter().filter(|(f, _)| f.course_id == c).map(|(_, r)| r.is_nine_hole).collect();
        assert_eq!(nine.len(), 2, "{c}: 9- and 18-hole rounds");
    }
    // Devices are reused across rounds of a course.
    let devices: BTreeSet<String> = report
        .good_files()
        .filter(|f| f.format == FileFormat::Csv && f.course_id == "erinhills")
        .flat_map(|f| {
            let (h, rows) = read_csv(f);
            let i = h.iter().position(|x| x == "device").unwrap();
            rows.into_iter().map(move |r| r[i].clone())
        })
        .collect();
    assert!(devices.len() >= 2 && devices.len() < 40, "{} devices", devices.len());
}

#[test]
fn per_course_properties_hold() {
    let (_d, report) = default_run();
    let rounds = all_rounds(&report);
    let of = |c: &'static str| of_course(&rounds, c);

    // Indian Creek: pace_gap / positional_gap always missing; shotgun starts.
    assert!(of("indiancreek").flat_map(|r| &r.locations).all(|l| l.pace_gap.is_none() && l.positional_gap.is_none()));
    assert!(of("indiancreek").any(|r| r.start_hole != 1 && r.start_hole != 10));
    assert!(of("pinehurst4").any(|r| r.start_hole != 1 && r.start_hole != 10));
    // Other courses: gaps mostly present.
    for c in ["americanfalls", "bradshawfarmgc", "erinhills", "pinehurst4"] {
        let locs: Vec<&Loc> = of(c).flat_map(|r| &r.locations).collect();
        let share = locs.iter().filter(|l| l.pace_gap.is_some()).count() as f64 / locs.len() as f64;
        assert!((0.75..0.99).contains(&share), "{c} paceGap coverage {share}");
    }

    // American Falls: a 9-hole loop; 18-hole rounds replay holes 1-9 (nine 2).
    let mut replays = 0;
    for r in of("americanfalls") {
        assert!(r.locations.iter().all(|l| l.hole <= 9 && l.section <= 24));
        if !r.is_nine_hole && r.complete {
            let wraps = r.locations.windows(2).filter(|w| w[1].section < w[0].section).count();
            assert_eq!(wraps, 1, "one replay of holes 1-9");
            assert_eq!(r.current_nine, 2);
            let holes: BTreeSet<i64> = r.locations.iter().map(|l| l.hole).collect();
            assert!(holes.len() >= 8);
            replays += 1;
        }
    }
    assert!(replays > 0);

    // Bradshaw: 27 holes in three nines numbered 1-9, sections up to ~80.
    let max = of("bradshawfarmgc").flat_map(|r| &r.locations).map(|l| l.section).max().unwrap();
    assert!((75..=80).contains(&max), "bradshaw max section {max}");
    assert!(of("bradshawfarmgc").flat_map(|r| &r.locations).all(|l| l.hole <= 9));
    assert!(of("bradshawfarmgc").any(|r| r.current_nine == 3));

    for (c, max_section) in [("erinhills", 55), ("indiancreek", 53), ("pinehurst4", 54)] {
        let locs: Vec<&Loc> = of(c).flat_map(|r| &r.locations).collect();
        assert!(locs.iter().all(|l| l.hole >= 1 && l.hole <= 18 && l.section <= max_section));
        assert!(locs.iter().any(|l| l.hole > 9));
    }
    // Erin Hills skips section 28 (the halfway house) between its nines.
    assert!(of("erinhills").flat_map(|r| &r.locations).all(|l| l.section != 28));

    // The first group of the day has no gaps.
    for f in report.good_files().filter(|f| f.course_id == "erinhills" && f.n == 1 && f.carried_ids.is_empty()) {
        let first = &rounds_of(f)[0];
        assert!(first.locations.iter().all(|l| l.pace_gap.is_none()), "{}", f.file_name);
    }
}

#[test]
fn battery_follows_each_courses_profile() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_with(dir.path(), |a| {
        a.shape.rounds = 150;
        a.shape.days = 2;
        a.bad_files = false;
    });
    let rounds = all_rounds(&report);
    let share = |c: &str| {
        let b: Vec<f64> = rounds
            .iter()
            .filter(|(f, _)| f.course_id == c)
            .flat_map(|(_, r)| &r.locations)
            .map(|l| l.battery)
            .collect();
        assert!(b.iter().all(|x| (0.0..=100.0).contains(x)));
        b.iter().filter(|x| **x < 20.0).count() as f64 / b.len() as f64
    };
    let af = share("americanfalls");
    assert!((0.35..0.7).contains(&af), "americanfalls low-battery share {af}");
    assert_eq!(share("bradshawfarmgc"), 0.0);
    for c in ["erinhills", "indiancreek", "pinehurst4"] {
        assert!(share(c) < 0.08, "{c} {}", share(c));
    }
    // Battery drains over a round.
    for (_, r) in &rounds {
        assert!(r.locations.windows(2).all(|w| w[1].battery <= w[0].battery));
    }
}

#[test]
fn rounds_repeat_within_a_day_and_across_days() {
    let (_d, report) = default_run();
    // Same round in two files of one course-day (dedup in silver).
    let mut seen: HashMap<(String, String, String), BTreeSet<usize>> = HashMap::new();
    for f in report.good_files() {
        for id in &f.round_ids {
            seen.entry((f.course_id.clone(), f.date.to_string(), id.clone())).or_default().insert(f.n);
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, ns)| ns.len() > 1).collect();
    assert!(!dups.is_empty());
    for ((c, d, id), _) in &dups {
        assert!(
            report.good_files().any(|f| &f.course_id == c && &f.date.to_string() == d && f.duplicate_ids.contains(id))
        );
    }
    // A round re-exported the next day: in progress on day 1, complete with more locations on day 2.
    let by_id: HashMap<String, Vec<(&GeneratedFile, Round)>> =
        all_rounds(&report).into_iter().fold(HashMap::new(), |mut m, (f, r)| {
            m.entry(r.id.clone()).or_default().push((f, r));
            m
        });
    let mut carried = 0;
    for copies in by_id.values() {
        let dates: BTreeSet<_> = copies.iter().map(|(f, _)| f.date).collect();
        if dates.len() == 2 {
            let first = copies.iter().min_by_key(|(f, _)| f.date).unwrap();
            let last = copies.iter().max_by_key(|(f, _)| f.date).unwrap();
            assert_eq!(last.0.date, first.0.date.succ_opt().unwrap());
            assert!(!first.1.complete);
            assert!(last.1.locations.len() > first.1.locations.len());
            assert_eq!(first.1.start, last.1.start);
            assert!(first.0.carried_ids.contains(&first.1.id) && last.0.carried_ids.contains(&last.1.id));
            carried += 1;
        }
        assert!(dates.len() <= 2);
    }
    assert!(carried > 0);
}

#[test]
fn bad_files_are_written_with_their_reasons() {
    let (_d, report) = default_run();
    let bad: Vec<&GeneratedFile> = report.bad_files().collect();
    let kinds: BTreeSet<&str> = bad.iter().map(|f| f.kind.bad_kind().unwrap().as_str()).collect();
    assert_eq!(kinds, BadFileKind::ALL.iter().map(|k| k.as_str()).collect());
    for f in bad {
        let bytes = fs::read(&f.path).unwrap();
        let reason = f.kind.reason().unwrap();
        match f.kind.bad_kind().unwrap() {
            BadFileKind::MissingIdColumn => {
                assert_eq!(f.format, FileFormat::Csv);
                assert_eq!(reason, "CSV header missing required columns: _id");
                let text = String::from_utf8(bytes).unwrap();
                let header = split_csv(text.lines().next().unwrap());
                assert!(!header.contains(&"_id".to_string()) && header.contains(&"course".to_string()));
                assert!(text.lines().count() > 1);
            }
            BadFileKind::EmptyJsonArray => {
                assert_eq!(reason, "JSON file is empty");
                assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), Value::Array(vec![]));
            }
            BadFileKind::TruncatedJson => {
                assert_eq!(f.format, FileFormat::Json);
                assert!(reason.starts_with("truncated JSON: unexpected end of input at byte "), "{reason}");
                assert!(reason.ends_with(&bytes.len().to_string()));
                let err = serde_json::from_slice::<Value>(&bytes).unwrap_err();
                assert!(err.is_eof(), "{err}");
            }
            BadFileKind::NonUtf8 => {
                let err = String::from_utf8(bytes).unwrap_err();
                assert_eq!(reason, format!("invalid UTF-8 at byte offset {}", err.utf8_error().valid_up_to()));
            }
            BadFileKind::HeaderOnlyCsv => {
                assert_eq!(reason, "CSV file has no data");
                let text = String::from_utf8(bytes).unwrap();
                assert_eq!(text.lines().count(), 1);
                assert!(text.starts_with("_id,course,"));
                assert_eq!(f.rounds, 0);
            }
        }
        // Bad files carry n after the good files of their course-day.
        let good_n =
            report.good_files().filter(|g| g.course_id == f.course_id && g.date == f.date).map(|g| g.n).max().unwrap();
        assert!(f.n > good_n);
    }
}

#[test]
fn bad_rows_are_where_the_report_says() {
    let (_d, report) = default_run();
    let mut kinds = BTreeSet::new();
    for (f, d) in report.bad_rows() {
        kinds.insert(d.reason);
        assert_eq!(d.reason, d.kind.reason());
        assert!(d.row > 0, "never the first record of a file");
        let r = &rounds_of(f)[d.row];
        match d.kind {
            RowDefectKind::InvalidLongitude => assert_eq!(r.locations[d.locations[0]].lon, Some(200.0)),
            RowDefectKind::InvalidLatitude => assert_eq!(r.locations[d.locations[0]].lat, Some(100.0)),
            RowDefectKind::MissingRoundId => {
                assert_eq!(r.id, "");
                assert_eq!(d.round_id, None);
                assert_eq!(f.round_ids[d.row], "");
            }
            RowDefectKind::UnparseableStartTime => assert_eq!(r.start, "not-a-date"),
            RowDefectKind::BatteryOutOfRange => {
                let b = r.locations[d.locations[0]].battery;
                assert!(b == 140.0 || b == -5.0);
                assert_eq!(d.value, format!("{b}"));
            }
            RowDefectKind::NullCoordinates => {
                assert!(!d.rejected && !d.locations.is_empty());
                for &j in &d.locations {
                    assert_eq!((r.locations[j].lon, r.locations[j].lat), (None, None));
                }
            }
            RowDefectKind::EmptyLocations => assert!(r.locations.is_empty()),
        }
        if d.kind != RowDefectKind::MissingRoundId {
            assert_eq!(d.round_id.as_deref(), Some(r.id.as_str()));
        }
    }
    for k in [
        "invalid_longitude",
        "invalid_latitude",
        "missing_round_id",
        "unparseable_timestamp",
        "battery_out_of_range",
        "null_coordinates",
        "empty_locations",
    ] {
        assert!(kinds.contains(k), "no bad row {k}");
    }
    // Outside the recorded bad rows, the data is clean.
    let recorded: BTreeSet<(String, usize)> = report.bad_rows().map(|(f, d)| (f.file_name.clone(), d.row)).collect();
    for (f, r) in all_rounds(&report) {
        let row = f.round_ids.iter().position(|id| *id == r.id).unwrap();
        if recorded.contains(&(f.file_name.clone(), row)) {
            continue;
        }
        assert!(is_hex_id(&r.id));
        assert!(r.locations.iter().all(|l| l.lon.is_some_and(|x| (-180.0..=180.0).contains(&x))
            && l.lat.is_some_and(|x| (-90.0..=90.0).contains(&x))
            && (0.0..=100.0).contains(&l.battery)));
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    generate: GenerateArgs,
}

#[test]
fn no_bad_files_flag_turns_bad_data_off() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = Cli::parse_from(["generate", "--out", out]).generate;
    assert!(args.bad_files);
    assert_eq!((args.shape.courses, args.shape.days, args.shape.rounds, args.shape.seed), (5, 3, 40, 42));
    assert_eq!((args.shape.start_date.as_str(), args.json_share), ("2025-06-01", 0.3));
    let args = Cli::parse_from(["generate", "--out", out, "--no-bad-files", "--rounds", "25"]).generate;
    assert!(!args.bad_files);
    let report = generate(&args).unwrap();
    assert_eq!(report.bad_files().count(), 0);
    assert_eq!(report.bad_rows().count(), 0);
    assert!(report.files.iter().all(|f| f.kind.is_good()));
    for (_, r) in all_rounds(&report) {
        assert!(is_hex_id(&r.id) && !r.locations.is_empty());
    }
}

#[test]
fn more_courses_cycle_the_pilot_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_with(dir.path(), |a| {
        a.shape.courses = 7;
        a.shape.days = 1;
        a.shape.rounds = 12;
        a.json_share = 0.0;
        a.shape.start_date = "2024-11-01".into();
    });
    let ids: Vec<&str> = report.courses.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids[5..], ["course06", "course07"]);
    assert!(report.good_files().all(|f| f.format == FileFormat::Csv && f.date.to_string() == "2024-11-01"));
    // course06 reuses the American Falls loop layout, course07 the Bradshaw nines.
    for (f, r) in all_rounds(&report) {
        match f.course_id.as_str() {
            "course06" => assert!(r.locations.iter().all(|l| l.hole <= 9 && l.section <= 24)),
            "course07" => assert!(r.locations.iter().all(|l| l.hole <= 9 && l.section <= 80)),
            _ => {}
        }
    }
    assert!(report.files.iter().any(|f| f.course_id == "course07"));
}

#[test]
fn all_json_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    let out = dir.path().join("out");
    let report = run_with(&out, |a| {
        a.json_share = 1.0;
        a.shape.days = 2;
        a.manifest = Some(manifest.clone());
    });
    assert!(report.good_files().all(|f| f.format == FileFormat::Json));
    let m: Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["files"].as_array().unwrap().len(), report.files.len());
    let reasons: Vec<&str> =
        m["files"].as_array().unwrap().iter().filter_map(|f| f["kind"].get("reason")?.as_str()).collect();
    assert_eq!(reasons.len(), 5);
}

#[test]
fn bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = GenerateArgs::new(dir.path());
    args.shape.start_date = "2025-13-01".into();
    let err = generate(&args).unwrap_err();
    assert!(err.to_string().contains("--start-date"), "{err}");
    let mut args = GenerateArgs::new(dir.path());
    args.json_share = 1.5;
    assert!(generate(&args).unwrap_err().to_string().contains("--json-share"));
    let mut args = GenerateArgs::new(dir.path());
    args.shape.rounds = 0;
    assert!(generate(&args).is_err());
}
