//! `tmctl generate`'s arguments (also `tmctl demo`'s) and the report of what was written,
//! with the bad files and rows planted and the reason each is expected to be rejected for.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;

/// The size and shape of a generated lake: shared by `tmctl generate` and `tmctl demo`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct LakeShape {
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
}

impl Default for LakeShape {
    /// The CLI defaults.
    fn default() -> Self {
        LakeShape { courses: 5, days: 3, rounds: 40, seed: 42, start_date: "2025-06-01".into() }
    }
}

/// Arguments of `tmctl generate`.
#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Directory the files are written to (created if missing; files of the same name are replaced).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub shape: LakeShape,
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
        GenerateArgs { out: out.into(), shape: LakeShape::default(), json_share: 0.3, bad_files: true, manifest: None }
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

    pub(super) fn format(self) -> FileFormat {
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
    pub(super) const ROTATION: [RowDefectKind; 6] = [
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
