//! `tmctl generate`: realistic synthetic Tagmarshal round exports — the wide CSV of
//! REFERENCE_PIPELINE.md §1.2 and the MongoDB JSON export of §1.3 — for the five pilot courses of §7
//! (plus `course06`… cycling their layouts), with deliberate bad rows and bad files whose expected
//! rejection reasons are recorded in the [`GenerateReport`].
//! It owns the course models, a small seeded PRNG (SplitMix64 → xoshiro256**) and both streaming
//! writers. Output is byte-identical for the same arguments: every round is a pure function of
//! (seed, course, day, index), so course-days are written in parallel without changing a byte.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

// ---------------------------------------------------------------------------------------------
// Arguments and report
// ---------------------------------------------------------------------------------------------

/// Arguments of `tmctl generate`.
#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Directory the files are written to (created if missing; files of the same name are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of courses: the 5 pilot courses first, then course06, course07… cycling their layouts.
    #[arg(long, default_value_t = 5)]
    pub courses: usize,
    /// Number of consecutive days (one ingest date each), starting at --start-date.
    #[arg(long, default_value_t = 3)]
    pub days: usize,
    /// Rounds teed off per course per day.
    #[arg(long, default_value_t = 40)]
    pub rounds: usize,
    /// PRNG seed: the same arguments always give byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First day (course-local date, YYYY-MM-DD).
    #[arg(long, default_value = "2025-06-01")]
    pub start_date: String,
    /// Fraction (0–1) of course-days written as JSON instead of CSV.
    #[arg(long, default_value_t = 0.3)]
    pub json_share: f64,
    /// Leave out the deliberately bad rows and bad files (`--no-bad-files`).
    #[arg(long = "no-bad-files", action = clap::ArgAction::SetFalse)]
    pub bad_files: bool,
    /// Also write the report (every file, its kind, rejection reason and bad rows) as JSON here.
    /// Keep it outside --out, or ingesting the directory will pick it up.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

impl GenerateArgs {
    /// The CLI defaults, writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        GenerateArgs {
            out: out.into(),
            courses: 5,
            days: 3,
            rounds: 40,
            seed: 42,
            start_date: "2025-06-01".into(),
            json_share: 0.3,
            bad_files: true,
            manifest: None,
        }
    }
}

/// File format, as given by the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Json,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for FileFormat {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How the records are laid out inside a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Wide CSV, one round per row (§1.2).
    Csv,
    /// `[` + one compact round object per line + `]`.
    JsonArray,
    /// A JSON array with indented round objects (one location object per line).
    JsonArrayPretty,
    /// One compact round object per line, no enclosing array (NDJSON).
    JsonLines,
    /// A single (indented) round object, no array.
    JsonObject,
}

/// Why a bad file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadFileKind {
    /// A CSV whose header has no `_id` column.
    MissingIdColumn,
    /// A JSON file holding `[]`.
    EmptyJsonArray,
    /// A JSON array cut off in the middle of a round.
    TruncatedJson,
    /// A CSV with a Latin-1 byte (0xF1) in a `goalName` cell.
    NonUtf8,
    /// A CSV with a header row and no data rows.
    HeaderOnlyCsv,
}

impl BadFileKind {
    pub const ALL: [BadFileKind; 5] = [
        BadFileKind::MissingIdColumn,
        BadFileKind::EmptyJsonArray,
        BadFileKind::TruncatedJson,
        BadFileKind::NonUtf8,
        BadFileKind::HeaderOnlyCsv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadFileKind::MissingIdColumn => "missing_id_column",
            BadFileKind::EmptyJsonArray => "empty_json_array",
            BadFileKind::TruncatedJson => "truncated_json",
            BadFileKind::NonUtf8 => "non_utf8",
            BadFileKind::HeaderOnlyCsv => "header_only_csv",
        }
    }

    fn format(self) -> FileFormat {
        match self {
            BadFileKind::EmptyJsonArray | BadFileKind::TruncatedJson => FileFormat::Json,
            _ => FileFormat::Csv,
        }
    }
}

/// Whether a file should be accepted by Bronze, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileKind {
    Good,
    Bad { bad: BadFileKind, reason: String },
}

impl FileKind {
    pub fn is_good(&self) -> bool {
        matches!(self, FileKind::Good)
    }

    /// The reason a bad file should be rejected (`None` for a good file).
    pub fn reason(&self) -> Option<&str> {
        match self {
            FileKind::Good => None,
            FileKind::Bad { reason, .. } => Some(reason),
        }
    }

    pub fn bad_kind(&self) -> Option<BadFileKind> {
        match self {
            FileKind::Good => None,
            FileKind::Bad { bad, .. } => Some(*bad),
        }
    }
}

/// A deliberate anomaly inside a good file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowDefectKind {
    /// `fixCoordinates[0]` = 200 on one location.
    InvalidLongitude,
    /// `fixCoordinates[1]` = 100 on one location.
    InvalidLatitude,
    /// The round's `_id` is empty (CSV) or `null` (JSON).
    MissingRoundId,
    /// The round's `startTime` is `not-a-date`.
    UnparseableStartTime,
    /// `batteryPercentage` 140 or −5 on one location.
    BatteryOutOfRange,
    /// 1–3 consecutive locations without coordinates (VALID: kept, geometry NULL).
    NullCoordinates,
    /// A JSON round with `"locations": []` (valid; the round has no location rows).
    EmptyLocations,
}

impl RowDefectKind {
    /// The defects injected in rotation (EmptyLocations is planned separately, JSON only).
    const ROTATION: [RowDefectKind; 6] = [
        RowDefectKind::InvalidLongitude,
        RowDefectKind::InvalidLatitude,
        RowDefectKind::MissingRoundId,
        RowDefectKind::UnparseableStartTime,
        RowDefectKind::BatteryOutOfRange,
        RowDefectKind::NullCoordinates,
    ];

    /// The quarantine reason (SPEC §5) for rejected kinds; a descriptive tag for kept ones.
    pub fn reason(self) -> &'static str {
        match self {
            RowDefectKind::InvalidLongitude => "invalid_longitude",
            RowDefectKind::InvalidLatitude => "invalid_latitude",
            RowDefectKind::MissingRoundId => "missing_round_id",
            RowDefectKind::UnparseableStartTime => "unparseable_timestamp",
            RowDefectKind::BatteryOutOfRange => "battery_out_of_range",
            RowDefectKind::NullCoordinates => "null_coordinates",
            RowDefectKind::EmptyLocations => "empty_locations",
        }
    }

    /// Whether Silver should quarantine the affected rows.
    pub fn rejected(self) -> bool {
        !matches!(self, RowDefectKind::NullCoordinates | RowDefectKind::EmptyLocations)
    }
}

/// One bad row inside a good file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RowDefect {
    pub kind: RowDefectKind,
    /// `kind.reason()`.
    pub reason: &'static str,
    /// Whether Silver should quarantine it (`kind.rejected()`).
    pub rejected: bool,
    /// 0-based position of the round in the file (CSV data row / JSON record).
    pub row: usize,
    /// The round's id as written (`None` when the defect is the missing id).
    pub round_id: Option<String>,
    /// Affected location indices; empty = the whole round.
    pub locations: Vec<usize>,
    /// The bad value as written (`200`, `100`, `not-a-date`, `140`, `-5`, empty for NULL/missing).
    pub value: String,
}

/// One file written by [`generate`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedFile {
    pub path: PathBuf,
    /// `<course>.<YYYY-MM-DD>.<n>.<csv|json>`.
    pub file_name: String,
    pub course_id: String,
    /// The course-local day = the ingest date the file belongs to.
    pub date: NaiveDate,
    /// 1, 2, … within the course-day (bad files come after the good ones).
    pub n: usize,
    pub format: FileFormat,
    pub layout: Layout,
    /// Rounds (CSV data rows / JSON records) in the file, duplicates and carry-overs included.
    pub rounds: usize,
    /// Location entries (non-padding) over all rounds of the file.
    pub locations: usize,
    /// CSV: `locations[N]` slots in the header; JSON: the longest `locations` array.
    pub slots: usize,
    pub bytes: u64,
    pub kind: FileKind,
    /// What the `course` field holds: the slug or a human name.
    pub course_field: String,
    /// CSV only: whether the optional `locations[N].date` columns are present.
    pub has_date_column: bool,
    /// Round ids in file order, as written ("" for a missing id).
    pub round_ids: Vec<String>,
    /// Rounds that also appear in another file of the same course-day.
    pub duplicate_ids: Vec<String>,
    /// Rounds teed off on the previous day, re-exported here (complete) after an in-progress
    /// snapshot in the previous day's file.
    pub carried_ids: Vec<String>,
    /// Deliberate bad rows (empty when `--no-bad-files`).
    pub bad_rows: Vec<RowDefect>,
}

/// A course the generator models.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CourseInfo {
    pub id: String,
    pub name: String,
    pub timezone: String,
    pub layout: &'static str,
    pub max_section: u16,
    pub max_hole: u8,
    pub center: (f64, f64),
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerateReport {
    pub out: PathBuf,
    pub seed: u64,
    pub start_date: NaiveDate,
    pub days: usize,
    pub rounds_per_day: usize,
    pub courses: Vec<CourseInfo>,
    /// Sorted by course (in course order), date, n.
    pub files: Vec<GeneratedFile>,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl GenerateReport {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Distinct rounds teed off (courses × days × rounds per day).
    pub fn unique_rounds(&self) -> usize {
        self.courses.len() * self.days * self.rounds_per_day
    }

    pub fn good_files(&self) -> impl Iterator<Item = &GeneratedFile> {
        self.files.iter().filter(|f| f.kind.is_good())
    }

    pub fn bad_files(&self) -> impl Iterator<Item = &GeneratedFile> {
        self.files.iter().filter(|f| !f.kind.is_good())
    }

    pub fn bad_rows(&self) -> impl Iterator<Item = (&GeneratedFile, &RowDefect)> {
        self.files.iter().flat_map(|f| f.bad_rows.iter().map(move |d| (f, d)))
    }

    pub fn file(&self, file_name: &str) -> Option<&GeneratedFile> {
        self.files.iter().find(|f| f.file_name == file_name)
    }
}

// ---------------------------------------------------------------------------------------------
// PRNG and ObjectIds
// ---------------------------------------------------------------------------------------------

/// One SplitMix64 step (Vigna): advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** seeded through SplitMix64. Only integer and IEEE basic arithmetic is used (no libm),
/// so streams are identical on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        Rng { s: [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)] }
    }

    /// An independent stream for a tuple of keys (seed, tag, course, day, …).
    pub fn from_parts(parts: &[u64]) -> Self {
        let mut h = 0x243F_6A88_85A3_08D3u64;
        for &p in parts {
            let mut x = h ^ p;
            h = splitmix64(&mut x);
        }
        Rng::new(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform index into a slice of length `n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Approximately standard normal (Irwin–Hall sum of four uniforms, scaled; range ±3.46).
    pub fn normal(&mut self) -> f64 {
        let s = self.f64() + self.f64() + self.f64() + self.f64();
        (s - 2.0) * 1.732_050_807_568_877_2
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.index(i + 1);
            xs.swap(i, j);
        }
    }
}

/// A MongoDB-style ObjectId: 4-byte big-endian creation time + 8 random bytes, 24 lowercase hex.
pub fn object_id(timestamp: i64, rng: &mut Rng) -> String {
    format!("{:08x}{:016x}", timestamp.clamp(0, u32::MAX as i64) as u32, rng.next_u64())
}

// Stream tags for Rng::from_parts.
const TAG_ROUND: u64 = 0x0052_4f55_4e44;
const TAG_PLAN: u64 = 0x504c_414e;
const TAG_CARRY: u64 = 0x0043_4152_5259;
const TAG_DEVICE: u64 = 0x4445_5649_4345;
const TAG_DEFECT: u64 = 0x4445_4645_4354;
const TAG_WRAP: u64 = 0x5752_4150;
const TAG_BADFILE: u64 = 0x0042_4144_4649_4c45;

// ---------------------------------------------------------------------------------------------
// Course models (§7.1–7.3)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CourseKind {
    /// 9 physical holes; 18-hole rounds replay holes 1–9 (sections 1–24) as a second loop.
    Loop9,
    /// 27-hole facility: three nines, each numbered 1–9, sections cumulative across the nines.
    ThreeNines,
    /// 18 holes numbered 1–18.
    Eighteen,
}

#[derive(Debug, Clone, Copy)]
struct Battery {
    /// Share of rounds whose device starts low (→ low/critical events).
    p_low: f64,
    low: (f64, f64),
    normal_min: f64,
    /// Percentage points per hour.
    drain: (f64, f64),
}

#[derive(Debug)]
struct Template {
    id: &'static str,
    name: &'static str,
    tz: Tz,
    center: (f64, f64),
    kind: CourseKind,
    /// Sections per hole, per physical nine.
    nines: &'static [&'static [u8]],
    /// First section number of each nine (Erin Hills skips 28, the halfway house).
    nine_first_section: &'static [u16],
    goal18: u32,
    goal9: u32,
    /// Share of 9-hole (one-nine) rounds.
    nine_share: f64,
    /// Share of regular starts at hole 10 (18-hole courses).
    back_start: f64,
    /// A third start point and its share.
    alt_start: (u8, f64),
    /// Share of shotgun / random starts and the holes they start on.
    shotgun: f64,
    shotgun_holes: &'static [u8],
    /// Mean of (actual / goal) time: > 1 = behind goal on average.
    speed_mean: f64,
    pace_gap_coverage: f64,
    positional_gap_coverage: f64,
    battery: Battery,
}

const PILOTS: [Template; 5] = [
    Template {
        id: "americanfalls",
        name: "American Falls Golf Course",
        tz: chrono_tz::America::Boise,
        center: (-112.8712, 42.7793),
        kind: CourseKind::Loop9,
        nines: &[&[3, 3, 2, 3, 3, 3, 2, 3, 2]],
        nine_first_section: &[1],
        goal18: 14340,
        goal9: 6720,
        nine_share: 0.528,
        back_start: 0.0,
        alt_start: (1, 0.0),
        shotgun: 0.0,
        shotgun_holes: &[],
        speed_mean: 0.95,
        pace_gap_coverage: 0.91,
        positional_gap_coverage: 0.91,
        battery: Battery { p_low: 0.55, low: (4.0, 26.0), normal_min: 45.0, drain: (5.0, 12.0) },
    },
    Template {
        id: "bradshawfarmgc",
        name: "Bradshaw Farm Golf Club",
        tz: chrono_tz::America::New_York,
        center: (-84.448, 34.153),
        kind: CourseKind::ThreeNines,
        nines: &[&[3, 3, 4, 2, 3, 3, 4, 2, 3], &[3, 4, 3, 2, 3, 3, 4, 2, 3], &[3, 3, 3, 2, 3, 4, 3, 2, 3]],
        nine_first_section: &[1, 28, 55],
        goal18: 14340,
        goal9: 6720,
        nine_share: 0.588,
        back_start: 0.0,
        alt_start: (1, 0.0),
        shotgun: 0.0,
        shotgun_holes: &[],
        speed_mean: 1.035,
        pace_gap_coverage: 0.94,
        positional_gap_coverage: 0.82,
        battery: Battery { p_low: 0.0, low: (30.0, 40.0), normal_min: 85.0, drain: (2.0, 7.0) },
    },
    Template {
        id: "erinhills",
        name: "Erin Hills",
        tz: chrono_tz::America::Chicago,
        center: (-88.3525, 43.2508),
        kind: CourseKind::Eighteen,
        nines: &[&[3, 4, 3, 2, 3, 3, 4, 2, 3], &[3, 3, 4, 2, 3, 3, 4, 2, 3]],
        nine_first_section: &[1, 29],
        goal18: 15840,
        goal9: 7920,
        nine_share: 0.08,
        back_start: 0.22,
        alt_start: (4, 0.05),
        shotgun: 0.0,
        shotgun_holes: &[],
        speed_mean: 0.995,
        pace_gap_coverage: 0.92,
        positional_gap_coverage: 0.88,
        battery: Battery { p_low: 0.009, low: (10.0, 28.0), normal_min: 75.0, drain: (3.0, 8.0) },
    },
    Template {
        id: "indiancreek",
        name: "Indian Creek Country Club",
        tz: chrono_tz::America::New_York,
        center: (-80.1397, 25.8748),
        kind: CourseKind::Eighteen,
        nines: &[&[3, 3, 4, 2, 3, 3, 3, 2, 3], &[3, 4, 3, 2, 3, 3, 4, 2, 3]],
        nine_first_section: &[1, 27],
        goal18: 14340,
        goal9: 6720,
        nine_share: 0.305,
        back_start: 0.15,
        alt_start: (1, 0.0),
        shotgun: 0.182,
        shotgun_holes: &[3, 5, 7, 12, 14, 16, 18],
        speed_mean: 1.04,
        pace_gap_coverage: 0.0,
        positional_gap_coverage: 0.0,
        battery: Battery { p_low: 0.004, low: (10.0, 25.0), normal_min: 80.0, drain: (3.0, 7.0) },
    },
    Template {
        id: "pinehurst4",
        name: "Pinehurst No. 4",
        tz: chrono_tz::America::New_York,
        center: (-79.4689, 35.1937),
        kind: CourseKind::Eighteen,
        nines: &[&[3, 4, 3, 2, 3, 3, 4, 2, 3], &[3, 3, 4, 2, 3, 3, 4, 2, 3]],
        nine_first_section: &[1, 28],
        goal18: 15840,
        goal9: 7920,
        nine_share: 0.176,
        back_start: 0.12,
        alt_start: (1, 0.0),
        shotgun: 0.12,
        shotgun_holes: &[2, 4, 6, 8, 11, 13, 15, 17],
        speed_mean: 0.95,
        pace_gap_coverage: 0.93,
        positional_gap_coverage: 0.92,
        battery: Battery { p_low: 0.024, low: (12.0, 30.0), normal_min: 75.0, drain: (3.0, 9.0) },
    },
];

#[derive(Debug, Clone, Copy)]
struct SectionGeo {
    number: u16,
    hole_section: u8,
    lon: f64,
    lat: f64,
}

#[derive(Debug)]
struct Hole {
    number: u8,
    sections: Vec<SectionGeo>,
}

#[derive(Debug)]
struct Course {
    idx: usize,
    id: String,
    name: String,
    t: &'static Template,
    nines: Vec<Vec<Hole>>,
    devices: Vec<String>,
    center: (f64, f64),
}

/// cos/sin of k·40° for k = 0..9 (nine holes around a loop), as literals so no libm is involved.
const RING: [(f64, f64); 9] = [
    (1.0, 0.0),
    (0.766_044_443_118_978, 0.642_787_609_686_539_3),
    (0.173_648_177_666_930_4, 0.984_807_753_012_208),
    (-0.5, 0.866_025_403_784_438_7),
    (-0.939_692_620_785_908_4, 0.342_020_143_325_668_8),
    (-0.939_692_620_785_908_4, -0.342_020_143_325_668_8),
    (-0.5, -0.866_025_403_784_438_7),
    (0.173_648_177_666_930_4, -0.984_807_753_012_208),
    (0.766_044_443_118_978, -0.642_787_609_686_539_3),
];

impl Course {
    fn build(idx: usize, seed: u64, rounds_per_day: usize) -> Course {
        let t = &PILOTS[idx % PILOTS.len()];
        let cycle = (idx / PILOTS.len()) as f64;
        let (id, name) = if idx < PILOTS.len() {
            (t.id.to_string(), t.name.to_string())
        } else {
            (format!("course{:02}", idx + 1), format!("Course {:02} Golf Club", idx + 1))
        };
        let center = (t.center.0 + 0.37 * cycle, t.center.1 + 0.23 * cycle);
        // ~500 m loop radius; a degree of longitude is shorter than one of latitude (lat ≤ 45°).
        let r_lat = 0.0045;
        let r_lon = r_lat * 1.3;
        let n_nines = t.nines.len();
        let mut nines = Vec::with_capacity(n_nines);
        for (n, holes) in t.nines.iter().enumerate() {
            let nine_center = (center.0 + (n as f64 - (n_nines as f64 - 1.0) / 2.0) * 0.014, center.1);
            let mut number = t.nine_first_section[n];
            let mut out = Vec::with_capacity(holes.len());
            for (h, &count) in holes.iter().enumerate() {
                let tee = (nine_center.0 + r_lon * RING[h].0, nine_center.1 + r_lat * RING[h].1);
                let green = (nine_center.0 + r_lon * RING[(h + 1) % 9].0, nine_center.1 + r_lat * RING[(h + 1) % 9].1);
                let mut sections = Vec::with_capacity(count as usize);
                for k in 0..count {
                    let f = if count > 1 { k as f64 / (count as f64 - 1.0) } else { 0.0 };
                    sections.push(SectionGeo {
                        number,
                        hole_section: k + 1,
                        lon: tee.0 + (green.0 - tee.0) * f,
                        lat: tee.1 + (green.1 - tee.1) * f,
                    });
                    number += 1;
                }
                let hole_number = match t.kind {
                    CourseKind::Eighteen => (n * 9 + h + 1) as u8,
                    _ => (h + 1) as u8,
                };
                out.push(Hole { number: hole_number, sections });
            }
            nines.push(out);
        }
        // A device pool reused by every round of the course, every day.
        let pool = (rounds_per_day / 2 + 4).clamp(6, 400);
        let mut drng = Rng::from_parts(&[seed, TAG_DEVICE, idx as u64]);
        let devices = (0..pool).map(|d| object_id(1_680_000_000 + d as i64 * 3_607, &mut drng)).collect();
        Course { idx, id, name, t, nines, devices, center }
    }

    fn info(&self) -> CourseInfo {
        let max_section = self.nines.iter().flatten().flat_map(|h| h.sections.iter()).map(|s| s.number).max();
        let max_hole = self.nines.iter().flatten().map(|h| h.number).max();
        CourseInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            timezone: self.t.tz.name().to_string(),
            layout: match self.t.kind {
                CourseKind::Loop9 => "9-hole loop (18-hole rounds replay 1-9)",
                CourseKind::ThreeNines => "27-hole facility (3 nines, holes 1-9 each)",
                CourseKind::Eighteen => "18-hole",
            },
            max_section: max_section.unwrap_or(0),
            max_hole: max_hole.unwrap_or(0),
            center: self.center,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rounds
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Loc {
    offset: f64,
    hole: u8,
    section: u16,
    hole_section: u8,
    /// Nine being played (reported `currentNine` when this is the last location).
    nine: u8,
    lon: Option<f64>,
    lat: Option<f64>,
    pace: f64,
    pace_gap: Option<f64>,
    positional_gap: Option<f64>,
    battery: f64,
    is_cache: bool,
    is_projected: bool,
    is_problem: bool,
}

#[derive(Debug, Clone)]
struct Round {
    id: Option<String>,
    start: DateTime<Utc>,
    /// Replaces the formatted start time (bad row).
    start_text: Option<&'static str>,
    end: DateTime<Utc>,
    start_hole: u8,
    start_section: u16,
    end_section: u16,
    is_nine_hole: bool,
    current_nine: u8,
    goal_time: u32,
    complete: bool,
    device: String,
    first_fix: String,
    last_fix: String,
    goal_name: &'static str,
    goal_time_fraction: f64,
    is_incomplete: bool,
    is_secondary: bool,
    is_auto_assigned: bool,
    last_section_start: f64,
    current_section: u16,
    current_hole: u8,
    current_hole_section: u8,
    locations: Vec<Loc>,
}

/// Goal profiles: name and goalTimeFraction, with cumulative probabilities.
const GOALS: [(&str, f64, f64); 4] = [
    ("Default", 1.0, 0.85),
    ("weekday mornings", 0.9, 0.93),
    ("Weekend, peak season", 1.0, 0.97),
    ("Members \"Fast\" Play", 0.8, 1.0),
];

/// A goalName that is valid UTF-8 here and becomes Latin-1 in the non-UTF-8 bad file.
const NON_UTF8_GOAL: &str = "Ma\u{f1}ana";

fn r3(x: f64) -> f64 {
    let v = (x * 1000.0).round() / 1000.0;
    if v == 0.0 { 0.0 } else { v }
}

fn r6(x: f64) -> f64 {
    let v = (x * 1e6).round() / 1e6;
    if v == 0.0 { 0.0 } else { v }
}

fn local_to_utc(tz: Tz, date: NaiveDate, seconds_of_day: i64) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight exists") + chrono::Duration::seconds(seconds_of_day);
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // In a spring-forward gap: the same wall time one hour later exists.
        None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

/// The day's round `idx` of a course: a pure function of its arguments.
fn make_round(course: &Course, seed: u64, day: usize, date: NaiveDate, per_day: usize, idx: usize, salt: u64) -> Round {
    let t = course.t;
    let mut rng = Rng::from_parts(&[seed, TAG_ROUND, course.idx as u64, day as u64, idx as u64, salt]);

    // Which holes, in which order: (nine index, hole index within the nine, nine number reported).
    let shotgun = t.shotgun > 0.0 && rng.chance(t.shotgun);
    let nine_hole = rng.chance(t.nine_share);
    let mut plan: Vec<(usize, usize, u8)> = Vec::with_capacity(27);
    match t.kind {
        CourseKind::Loop9 => {
            let loops: u8 = if nine_hole { 1 } else { 2 };
            for lp in 0..loops {
                plan.extend((0..9).map(|h| (0, h, lp + 1)));
            }
        }
        CourseKind::ThreeNines => {
            let nines: Vec<usize> = if nine_hole {
                vec![rng.index(3)]
            } else if rng.chance(0.015) {
                vec![0, 1, 2]
            } else {
                let (a, b) = rng.pick(&[(0, 1), (1, 2), (2, 0), (0, 2)]);
                vec![a, b]
            };
            for n in nines {
                plan.extend((0..9).map(|h| (n, h, n as u8 + 1)));
            }
        }
        CourseKind::Eighteen => {
            let start = if shotgun {
                rng.pick(t.shotgun_holes)
            } else if rng.chance(t.back_start) {
                10
            } else if rng.chance(t.alt_start.1) {
                t.alt_start.0
            } else {
                1
            };
            let len = if nine_hole { 9 } else { 18 };
            for k in 0..len {
                let h = (start as usize - 1 + k) % 18;
                plan.push((h / 9, h % 9, (h / 9) as u8 + 1));
            }
        }
    }
    let planned_sections: usize = plan.iter().map(|&(n, h, _)| course.nines[n][h].sections.len()).sum();
    let abandoned = rng.chance(0.04);
    let played = if abandoned { ((plan.len() as f64 * rng.uniform(0.3, 0.8)) as usize).max(2) } else { plan.len() };

    // Tee time, course-local: spread over 06:00–19:00 by tee-sheet position; shotguns at 08:00/13:00.
    let interval = 13.0 * 3600.0 / per_day.max(1) as f64;
    let tee = if shotgun {
        (if rng.chance(0.5) { 8.0 } else { 13.0 }) * 3600.0 + rng.uniform(0.0, 600.0)
    } else {
        6.0 * 3600.0 + (idx % per_day.max(1)) as f64 * interval + rng.uniform(0.0, interval * 0.8)
    };
    let start = local_to_utc(t.tz, date, tee as i64);

    let goal_time = if nine_hole {
        t.goal9
    } else if plan.len() > 18 {
        t.goal9 * 3
    } else {
        t.goal18
    };
    let g = rng.f64();
    let (goal_name, goal_time_fraction, _) = *GOALS.iter().find(|x| g < x.2).unwrap_or(&GOALS[0]);
    let per_section = goal_time as f64 * goal_time_fraction / planned_sections as f64;
    let speed = (t.speed_mean * (1.0 + 0.07 * rng.normal())).clamp(0.7, 1.6);

    let fractional = rng.chance(0.3);
    let first_group = idx == 0 && salt == 0;
    let has_gap = !first_group && t.pace_gap_coverage > 0.0 && rng.chance(1.0 - (1.0 - t.pace_gap_coverage) * 0.7);
    let gap_p = t.pace_gap_coverage / (1.0 - (1.0 - t.pace_gap_coverage) * 0.7);
    let has_pos =
        !first_group && t.positional_gap_coverage > 0.0 && rng.chance(1.0 - (1.0 - t.positional_gap_coverage) * 0.7);
    let pos_p = t.positional_gap_coverage / (1.0 - (1.0 - t.positional_gap_coverage) * 0.7);
    let mut gap = rng.uniform(420.0, 720.0);
    let mut pos = 120.0 * rng.normal();
    let b = t.battery;
    let b_start = if rng.chance(b.p_low) {
        rng.uniform(b.low.0, b.low.1)
    } else if rng.chance(0.45) {
        100.0
    } else {
        rng.uniform(b.normal_min, 100.0)
    };
    let drain = rng.uniform(b.drain.0, b.drain.1);

    let mut offset = rng.uniform(240.0, 360.0);
    offset = if fractional { r3(offset) } else { offset.round() };
    let mut offset0: Option<f64> = None;
    let mut sections_passed = 0usize;
    let mut locs: Vec<Loc> = Vec::with_capacity(planned_sections);
    for (pi, &(n, h, nine_no)) in plan[..played].iter().enumerate() {
        let hole = &course.nines[n][h];
        let fatigue = if t.kind == CourseKind::Loop9 && nine_no == 2 { 1.07 } else { 1.0 };
        for (si, sec) in hole.sections.iter().enumerate() {
            let last_of_round = pi + 1 == played && si + 1 == hole.sections.len();
            if offset0.is_none() && si == 0 && rng.chance(0.85) {
                continue; // the trigger zone is the 2nd section of the start hole
            }
            let mut held_up = false;
            if offset0.is_some() {
                let mut dt = per_section * speed * fatigue * rng.uniform(0.6, 1.4);
                if rng.chance(0.02) {
                    dt += rng.uniform(60.0, 420.0);
                    held_up = true;
                }
                let dt = dt.max(25.0);
                offset = if fractional { r3(offset + dt) } else { (offset + dt).round() };
                sections_passed += 1;
                if !last_of_round && rng.chance(0.03) {
                    continue; // no fix inside this geofence
                }
            }
            let off0 = *offset0.get_or_insert(offset);
            let raw_pace = (offset - off0) - per_section * sections_passed as f64;
            let pace = if fractional { r3(raw_pace) } else { raw_pace.round() + 0.0 };
            gap = (gap + 25.0 * rng.normal() + if held_up { 200.0 } else { 0.0 }).max(30.0);
            pos += 30.0 * rng.normal();
            let pace_gap = (has_gap && rng.chance(gap_p)).then(|| r3(gap));
            let positional_gap = (has_pos && rng.chance(pos_p)).then(|| r3(pos));
            let battery = (b_start - drain * offset / 3600.0).max(0.0).round();
            let is_problem = pace >= 600.0 && rng.chance(0.12);
            let is_projected = rng.chance(0.002);
            locs.push(Loc {
                offset,
                hole: hole.number,
                section: sec.number,
                hole_section: sec.hole_section,
                nine: nine_no,
                lon: Some(r6(sec.lon + rng.uniform(-8e-5, 8e-5))),
                lat: Some(r6(sec.lat + rng.uniform(-8e-5, 8e-5))),
                pace,
                pace_gap,
                positional_gap,
                battery,
                is_cache: false,
                is_projected,
                is_problem,
            });
        }
    }
    // An offline stretch uploaded from the cache later.
    if rng.chance(0.1) {
        let a = rng.index(locs.len());
        let len = 2 + rng.index(5);
        for l in locs.iter_mut().skip(a).take(len) {
            l.is_cache = true;
        }
    }

    let first = &locs[0];
    let last = &locs[locs.len() - 1];
    let start_ts = start.timestamp();
    let id = object_id(start_ts, &mut rng);
    let device = course.devices[rng.index(course.devices.len())].clone();
    let first_fix = object_id(start_ts + first.offset as i64, &mut rng);
    let last_fix = object_id(start_ts + last.offset as i64, &mut rng);
    let end = start + chrono::Duration::seconds((last.offset + rng.uniform(180.0, 420.0)).round() as i64);
    let start_hole = course.nines[plan[0].0][plan[0].1].number;
    Round {
        id: Some(id),
        start,
        start_text: None,
        end,
        start_hole,
        start_section: first.section,
        end_section: last.section,
        is_nine_hole: nine_hole,
        current_nine: last.nine,
        goal_time,
        complete: !abandoned && locs.len() * 4 >= planned_sections * 3,
        device,
        first_fix,
        last_fix,
        goal_name,
        goal_time_fraction,
        is_incomplete: abandoned,
        is_secondary: rng.chance(0.03),
        is_auto_assigned: rng.chance(0.25),
        last_section_start: last.offset,
        current_section: last.section,
        current_hole: last.hole,
        current_hole_section: last.hole_section,
        locations: locs,
    }
}

impl Round {
    /// The export taken while the round was still being played: the first ~55 % of its locations.
    fn into_snapshot(mut self) -> Round {
        let keep = (self.locations.len() * 55 / 100).max(1);
        self.locations.truncate(keep);
        let last = &self.locations[keep - 1];
        self.end = self.start + chrono::Duration::seconds(last.offset as i64);
        self.complete = false;
        self.is_incomplete = false;
        self.end_section = last.section;
        self.current_section = last.section;
        self.current_hole = last.hole;
        self.current_hole_section = last.hole_section;
        self.current_nine = last.nine;
        self.last_section_start = last.offset;
        self
    }

    /// A round registered by the tee sheet whose device never sent a fix.
    fn into_empty(mut self) -> Round {
        self.locations.clear();
        self.end = self.start;
        self.complete = false;
        self.end_section = self.start_section;
        self.current_section = self.start_section;
        self.current_hole = self.start_hole;
        self.current_hole_section = 1;
        self.last_section_start = 0.0;
        self
    }

    /// Applies a deliberate defect; returns (affected location indices, value as written).
    fn apply_defect(&mut self, kind: RowDefectKind, rng: &mut Rng) -> (Vec<usize>, String) {
        let n = self.locations.len();
        match kind {
            RowDefectKind::InvalidLongitude => {
                let j = rng.index(n);
                self.locations[j].lon = Some(200.0);
                (vec![j], "200".into())
            }
            RowDefectKind::InvalidLatitude => {
                let j = rng.index(n);
                self.locations[j].lat = Some(100.0);
                (vec![j], "100".into())
            }
            RowDefectKind::MissingRoundId => {
                self.id = None;
                (Vec::new(), String::new())
            }
            RowDefectKind::UnparseableStartTime => {
                self.start_text = Some("not-a-date");
                (Vec::new(), "not-a-date".into())
            }
            RowDefectKind::BatteryOutOfRange => {
                let j = rng.index(n);
                let v = if rng.chance(0.5) { 140.0 } else { -5.0 };
                self.locations[j].battery = v;
                (vec![j], format!("{v}"))
            }
            RowDefectKind::NullCoordinates => {
                let j = rng.index(n);
                let len = (1 + rng.index(3)).min(n - j);
                for l in &mut self.locations[j..j + len] {
                    l.lon = None;
                    l.lat = None;
                }
                ((j..j + len).collect(), String::new())
            }
            RowDefectKind::EmptyLocations => (Vec::new(), String::new()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plan: which rounds go to which file
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Full,
    /// In-progress export (the full round is re-exported the next day).
    Snapshot,
    Empty,
}

#[derive(Debug, Clone, Copy)]
struct RoundRef {
    day: usize,
    idx: usize,
    variant: Variant,
    defect: Option<RowDefectKind>,
    dup: bool,
    carried: bool,
}

impl RoundRef {
    fn own(day: usize, idx: usize) -> Self {
        RoundRef { day, idx, variant: Variant::Full, defect: None, dup: false, carried: false }
    }
}

#[derive(Debug)]
struct FilePlan {
    n: usize,
    layout: Layout,
    course_field: String,
    with_date: bool,
    rounds: Vec<RoundRef>,
}

#[derive(Debug)]
struct DayPlan {
    course: usize,
    day: usize,
    files: Vec<FilePlan>,
    bad: Vec<BadFileKind>,
}

fn json_course_days(total: usize, share: f64) -> usize {
    if share <= 0.0 || total == 0 {
        0
    } else if share >= 1.0 {
        total
    } else {
        let n = (total as f64 * share).round() as usize;
        if total >= 2 { n.clamp(1, total - 1) } else { n }
    }
}

fn plan(args: &GenerateArgs, courses: &[Course]) -> Vec<DayPlan> {
    let (nc, nd, nr, seed) = (courses.len(), args.days, args.rounds, args.seed);
    let total = nc * nd;
    let mut prng = Rng::from_parts(&[seed, TAG_PLAN]);
    let mut order: Vec<usize> = (0..total).collect();
    prng.shuffle(&mut order);
    let mut is_json = vec![false; total];
    for &i in &order[..json_course_days(total, args.json_share)] {
        is_json[i] = true;
    }
    // Rounds still in play at export time: snapshot today, full tomorrow.
    let mut carry: Vec<Vec<usize>> = vec![Vec::new(); total];
    for c in 0..nc {
        for d in 0..nd {
            let mut rng = Rng::from_parts(&[seed, TAG_CARRY, c as u64, d as u64]);
            if d + 1 < nd && nr >= 3 && (rng.chance(0.5) || (c == 0 && d == 0)) {
                carry[c * nd + d].push(nr - 1);
                if nr >= 6 && rng.chance(0.3) {
                    carry[c * nd + d].push(nr - 2);
                }
            }
        }
    }

    let mut plans = Vec::with_capacity(total);
    let mut defect_counter = 0usize;
    let mut json_ordinal = 0usize;
    for (c, course) in courses.iter().enumerate() {
        for d in 0..nd {
            let i = c * nd + d;
            let mut rng = Rng::from_parts(&[seed, TAG_PLAN, c as u64, d as u64]);
            let mut own: Vec<RoundRef> = (0..nr).map(|idx| RoundRef::own(d, idx)).collect();
            for &idx in &carry[i] {
                own[idx].variant = Variant::Snapshot;
            }
            let two = nr >= 6 && (rng.chance(0.4) || i == total / 2);
            let split = if two { nr / 3 + rng.index(nr / 3 + 1) } else { nr };
            // Overlapping export windows: a few rounds of file 1 again at the top of file 2.
            let mut dups: Vec<usize> = Vec::new();
            if two {
                let k = 1 + rng.index(3.min(split - 1));
                let mut cands: Vec<usize> = (1..split).collect();
                for _ in 0..k {
                    dups.push(cands.swap_remove(rng.index(cands.len())));
                }
                dups.sort_unstable();
            }
            let json = is_json[i];
            let ordinal = if json {
                json_ordinal += 1;
                Some(json_ordinal - 1)
            } else {
                None
            };
            let single = if ordinal == Some(0) && nr >= 2 {
                let cands: Vec<usize> = (1..split).filter(|x| !dups.contains(x)).collect();
                cands.get(rng.index(cands.len())).copied()
            } else {
                None
            };
            let busy = |idx: usize, own: &[RoundRef]| {
                idx == 0
                    || idx == split
                    || own[idx].variant != Variant::Full
                    || dups.contains(&idx)
                    || single == Some(idx)
            };
            if json && args.bad_files && nr >= 5 && (rng.chance(0.5) || ordinal == Some(0)) {
                let cands: Vec<usize> = (1..nr).filter(|&x| !busy(x, &own)).collect();
                if !cands.is_empty() {
                    let idx = cands[rng.index(cands.len())];
                    own[idx].variant = Variant::Empty;
                    own[idx].defect = Some(RowDefectKind::EmptyLocations);
                }
            }
            if args.bad_files && nr >= 8 {
                let mut cands: Vec<usize> = (1..nr).filter(|&x| !busy(x, &own)).collect();
                for _ in 0..(nr / 250).max(1) {
                    if cands.is_empty() {
                        break;
                    }
                    let idx = cands.swap_remove(rng.index(cands.len()));
                    own[idx].defect = Some(RowDefectKind::ROTATION[defect_counter % RowDefectKind::ROTATION.len()]);
                    defect_counter += 1;
                }
            }

            let mut file1: Vec<RoundRef> = Vec::with_capacity(split + 2);
            if d > 0 {
                for &idx in &carry[i - 1] {
                    file1.push(RoundRef { carried: true, ..RoundRef::own(d - 1, idx) });
                }
            }
            file1.extend_from_slice(&own[..split]);
            let mut groups = vec![file1];
            if two {
                let mut file2: Vec<RoundRef> = dups.iter().map(|&idx| RoundRef { dup: true, ..own[idx] }).collect();
                file2.extend_from_slice(&own[split..]);
                groups.push(file2);
            }
            if let Some(idx) = single {
                groups.push(vec![RoundRef { dup: true, ..own[idx] }]);
            }
            // Both copies of a duplicated round are marked.
            let dup_idx: Vec<usize> = dups.iter().copied().chain(single).collect();
            let mut files = Vec::with_capacity(groups.len());
            let n_groups = groups.len();
            for (k, mut rounds) in groups.into_iter().enumerate() {
                let n = k + 1;
                for r in rounds.iter_mut() {
                    if r.day == d && dup_idx.contains(&r.idx) {
                        r.dup = true;
                    }
                }
                let layout = if !json {
                    Layout::Csv
                } else if single.is_some() && n == n_groups {
                    Layout::JsonObject
                } else if ordinal == Some(0) {
                    if n == 1 { Layout::JsonArray } else { Layout::JsonLines }
                } else if ordinal == Some(1) && n == 1 {
                    Layout::JsonLines
                } else {
                    rng.pick(&[Layout::JsonArray, Layout::JsonArray, Layout::JsonArrayPretty, Layout::JsonLines])
                };
                let course_field = if (c + d + n) % 3 == 0 { course.name.clone() } else { course.id.clone() };
                let with_date = !json && (c + 2 * d + n) % 4 == 0;
                files.push(FilePlan { n, layout, course_field, with_date, rounds });
            }
            plans.push(DayPlan { course: c, day: d, files, bad: Vec::new() });
        }
    }
    if args.bad_files && total > 0 {
        for (k, kind) in BadFileKind::ALL.into_iter().enumerate() {
            plans[(k * (nd + 1) + 1) % total].bad.push(kind);
        }
    }
    plans
}

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------
//
// Records are assembled in a reusable byte buffer (one CSV row / one JSON round) and handed to a
// `BufWriter`; numbers are formatted by hand (every float is pre-rounded to ≤ 6 decimals, so the
// text equals Rust's shortest `Display` form without its cost).

const ROUND_COLUMNS: [&str; 23] = [
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

const LOCATION_FIELDS: [&str; 13] = [
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

fn tf(b: bool) -> &'static [u8] {
    if b { b"true" } else { b"false" }
}

fn push_u64(b: &mut Vec<u8>, mut v: u64) {
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
fn push_padded(b: &mut Vec<u8>, v: u64, width: usize) {
    let start = b.len();
    push_u64(b, v);
    let len = b.len() - start;
    if len < width {
        b.splice(start..start, std::iter::repeat_n(b'0', width - len));
    }
}

/// A float with at most 6 decimals, trailing zeros (and a bare point) dropped: 300, 1000.5, -80.139712.
fn push_num(b: &mut Vec<u8>, x: f64) {
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
fn push_iso(b: &mut Vec<u8>, t: DateTime<Utc>) {
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

fn fix_time(start: DateTime<Utc>, offset: f64) -> DateTime<Utc> {
    start + chrono::Duration::milliseconds((offset * 1000.0).round() as i64)
}

/// A CSV cell, quoted when it holds a comma, quote or line break.
fn push_csv_text(b: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        b.push(b'"');
        b.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        b.push(b'"');
    } else {
        b.extend_from_slice(s.as_bytes());
    }
}

struct CsvOpts<'a> {
    course_field: &'a str,
    slots: usize,
    with_id: bool,
    with_date: bool,
}

fn push_csv_header(b: &mut Vec<u8>, o: &CsvOpts) {
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

fn push_csv_row(b: &mut Vec<u8>, r: &Round, o: &CsvOpts) {
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

fn push_json_str(b: &mut Vec<u8>, s: &str) {
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

struct JsonOpts<'a> {
    course_field: &'a str,
    /// `{"$oid": …}` around `_id`, `device`, `firstFix`, `lastFix`.
    wrap_oid: bool,
    /// `{"$date": …}` around `startTime`, `endTime`.
    wrap_date: bool,
    /// Whether `paceGap`/`positionalGap` keys exist (never at Indian Creek).
    gap_keys: bool,
    pretty: bool,
    /// Indentation of the object itself (pretty only).
    indent: &'static str,
}

/// Writes `"key": ` after the right separator.
fn json_key(b: &mut Vec<u8>, first: &mut bool, key: &str, o: &JsonOpts) {
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

fn json_oid(b: &mut Vec<u8>, id: &str, o: &JsonOpts) {
    if o.wrap_oid {
        b.extend_from_slice(if o.pretty { b"{\"$oid\": " } else { b"{\"$oid\":" });
        push_json_str(b, id);
        b.push(b'}');
    } else {
        push_json_str(b, id);
    }
}

fn json_date(b: &mut Vec<u8>, text: Option<&str>, t: DateTime<Utc>, o: &JsonOpts) {
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

fn json_opt(b: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(x) => push_num(b, x),
        None => b.extend_from_slice(b"null"),
    }
}

fn push_json_round(b: &mut Vec<u8>, r: &Round, o: &JsonOpts) {
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

// ---------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------

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
        let round = make_round(course, a.seed, r.day, self.date(r.day), a.rounds, r.idx, 0);
        let mut round = match r.variant {
            Variant::Full => round,
            Variant::Snapshot => round.into_snapshot(),
            Variant::Empty => round.into_empty(),
        };
        let defect = r.defect.map(|kind| {
            let mut rng = Rng::from_parts(&[a.seed, TAG_DEFECT, course.idx as u64, r.day as u64, r.idx as u64]);
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
            let mut wrng = Rng::from_parts(&[self.args.seed, TAG_WRAP, course.idx as u64, day as u64, fp.n as u64]);
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
            .map(|i| make_round(course, a.seed, day, self.date(day), a.rounds, i, salt))
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
    let start_date = NaiveDate::parse_from_str(&args.start_date, "%Y-%m-%d")
        .map_err(|e| invalid(format!("--start-date {:?}: expected YYYY-MM-DD ({e})", args.start_date)))?;
    if args.courses == 0 || args.days == 0 || args.rounds == 0 {
        return Err(invalid("--courses, --days and --rounds must each be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&args.json_share) {
        return Err(invalid(format!("--json-share {}: expected a fraction between 0 and 1", args.json_share)));
    }
    start_date
        .checked_add_days(Days::new(args.days as u64))
        .ok_or_else(|| invalid(format!("--start-date {start_date} + {} days is out of range", args.days)))?;
    fs::create_dir_all(&args.out)?;

    let courses: Vec<Course> = (0..args.courses).map(|i| Course::build(i, args.seed, args.rounds)).collect();
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
        seed: args.seed,
        start_date,
        days: args.days,
        rounds_per_day: args.rounds,
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
