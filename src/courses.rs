//! Course profiles: `courses.toml` next to the DAG files, versioned with them (the reference's
//! hand-entered `dim_course_profile` seed, REFERENCE §2.5, done as checked data).
//!
//! TOML rather than CSV: typed values (months as integers, the loop flag as a boolean, an
//! optional location table), comments beside the values that explain them, and the same
//! file:line:col diagnostics as the DAG files, which sit in the same folder. The file is optional;
//! a course seen in the data without a profile gets UTC and is flagged (`profile_missing`).
//!
//! The gold models read the profiles as the table `seed.course_profiles` (registered in every
//! gold session by [`register_seed`]); `gold.dim_course_profile` publishes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{MemTable, MemorySchemaProvider, SchemaProvider};
use datafusion::error::Result as DfResult;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::dag::Diagnostic;

/// The profiles file's name in the DAG folder (`load_dir` skips it as a DAG file).
pub const FILE_NAME: &str = "courses.toml";
/// The schema and table the gold models read the profiles from.
pub const SEED_SCHEMA: &str = "seed";
pub const SEED_TABLE: &str = "course_profiles";
/// Expected time between two deliveries of a course when its profile does not say.
pub const DEFAULT_CADENCE: Duration = Duration::from_secs(2 * 86_400);

/// Course types a profile may declare.
pub const COURSE_TYPES: &[&str] =
    &["9-hole", "9-hole loop", "18-hole", "27-hole facility", "36-hole facility", "other"];
/// Volume profiles a profile may declare.
pub const VOLUME_PROFILES: &[&str] = &["low", "medium", "high", "unknown"];

/// One course's profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseProfile {
    pub id: String,
    pub name: String,
    /// IANA time zone: every local date, weekday and hour of the course's rounds.
    #[serde(serialize_with = "tz_name")]
    pub timezone: Tz,
    pub course_type: String,
    pub volume_profile: String,
    /// Peak season as (first month, last month), inclusive; may wrap the new year (11, 2).
    pub peak_season: Option<(u32, u32)>,
    /// Months the course is open (first, last), inclusive, may wrap; `None` = all year. The
    /// freshness check runs only in season.
    pub season: Option<(u32, u32)>,
    /// A 9-hole course played around twice for 18.
    pub is_loop_course: bool,
    /// (latitude, longitude).
    pub location: Option<(f64, f64)>,
    /// Expected time between deliveries; older data is stale (freshness check).
    #[serde(with = "humantime_secs")]
    pub expected_cadence: Duration,
    pub notes: String,
}

fn tz_name<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

mod humantime_secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl CourseProfile {
    /// Whether `month` (1–12) is in the course's season (always, without one).
    pub fn in_season(&self, month: u32) -> bool {
        self.season.is_none_or(|(from, to)| month_in(month, from, to))
    }
}

/// Whether `month` lies in `from..=to`, wrapping the new year when `from > to`.
pub fn month_in(month: u32, from: u32, to: u32) -> bool {
    if from <= to { (from..=to).contains(&month) } else { month >= from || month <= to }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    course: Vec<Spanned<RawCourse>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCourse {
    id: Spanned<String>,
    name: Option<String>,
    timezone: Spanned<String>,
    course_type: Option<Spanned<String>>,
    volume_profile: Option<Spanned<String>>,
    peak_season: Option<Spanned<Vec<i64>>>,
    season: Option<Spanned<Vec<i64>>>,
    #[serde(rename = "loop")]
    is_loop: Option<bool>,
    location: Option<Spanned<RawLocation>>,
    expected_cadence: Option<Spanned<String>>,
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocation {
    lat: f64,
    lon: f64,
}

/// Reads and checks `path`: every problem as file:line:col (unknown keys, a bad time zone,
/// duplicate ids, months out of range, unknown course types).
pub fn load_file(path: &Path) -> Result<Vec<CourseProfile>, Vec<Diagnostic>> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic { file: path.to_path_buf(), line: 1, col: 1, message: format!("cannot read: {e}") }]
    })?;
    parse(&source, path)
}

/// The profiles of the DAG folder `dags_dir` (`courses.toml`); none when the file is absent.
pub fn load_dir(dags_dir: &Path) -> Result<Vec<CourseProfile>, Vec<Diagnostic>> {
    let path = dags_dir.join(FILE_NAME);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    load_file(&path)
}

/// Parses profiles from `source` (`path` names it in diagnostics).
pub fn parse(source: &str, path: &Path) -> Result<Vec<CourseProfile>, Vec<Diagnostic>> {
    let at = |offset: usize, message: String| {
        let (line, col) = line_col(source, offset);
        Diagnostic { file: path.to_path_buf(), line, col, message }
    };
    let raw: RawFile = toml::from_str(source).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        vec![at(offset, e.message().to_string())]
    })?;
    let mut diags = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut profiles = Vec::new();
    for entry in raw.course {
        let c = entry.into_inner();
        let id_span = c.id.span();
        let id = c.id.into_inner();
        if id.trim().is_empty() || id.trim() != id {
            diags.push(at(id_span.start, format!("course id `{id}` must be non-empty, without surrounding spaces")));
        }
        if let Some(first) = seen.get(&id) {
            let (line, _) = line_col(source, *first);
            diags.push(at(id_span.start, format!("duplicate course id `{id}`: also defined at line {line}")));
        } else {
            seen.insert(id.clone(), id_span.start);
        }
        let tz_span = c.timezone.span();
        let tz_text = c.timezone.into_inner();
        let timezone = match tz_text.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                diags.push(at(
                    tz_span.start,
                    format!("unknown time zone `{tz_text}`: use an IANA name such as America/Boise or Europe/London"),
                ));
                Tz::UTC
            }
        };
        let mut one_of = |value: Option<Spanned<String>>, key: &str, allowed: &[&str], default: &str| match value {
            None => default.to_string(),
            Some(v) => {
                let span = v.span();
                let v = v.into_inner();
                if !allowed.contains(&v.as_str()) {
                    diags.push(at(span.start, format!("{key} `{v}` is not one of {}", allowed.join(", "))));
                }
                v
            }
        };
        let course_type = one_of(c.course_type, "course_type", COURSE_TYPES, "other");
        let volume_profile = one_of(c.volume_profile, "volume_profile", VOLUME_PROFILES, "unknown");
        let mut months = |value: Option<Spanned<Vec<i64>>>, key: &str| {
            let v = value?;
            let span = v.span();
            match v.into_inner().as_slice() {
                [from, to] if (1..=12).contains(from) && (1..=12).contains(to) => Some((*from as u32, *to as u32)),
                other => {
                    diags.push(at(
                        span.start,
                        format!("{key} must be [first month, last month] with months 1–12 (e.g. [6, 8], or [11, 2] across the new year), not {other:?}"),
                    ));
                    None
                }
            }
        };
        let peak_season = months(c.peak_season, "peak_season");
        let season = months(c.season, "season");
        let location = match c.location {
            None => None,
            Some(l) => {
                let span = l.span();
                let l = l.into_inner();
                if !(-90.0..=90.0).contains(&l.lat) || !(-180.0..=180.0).contains(&l.lon) {
                    diags.push(at(
                        span.start,
                        format!("location {{ lat = {}, lon = {} }} is not on Earth", l.lat, l.lon),
                    ));
                }
                Some((l.lat, l.lon))
            }
        };
        let expected_cadence = match c.expected_cadence {
            None => DEFAULT_CADENCE,
            Some(v) => {
                let span = v.span();
                match crate::dag::parse_duration(v.get_ref()) {
                    Ok(d) if d >= Duration::from_secs(3600) => d,
                    Ok(_) => {
                        diags.push(at(span.start, format!("expected_cadence `{}` is under an hour", v.get_ref())));
                        DEFAULT_CADENCE
                    }
                    Err(e) => {
                        diags.push(at(span.start, format!("expected_cadence: {e}")));
                        DEFAULT_CADENCE
                    }
                }
            }
        };
        profiles.push(CourseProfile {
            name: c.name.unwrap_or_else(|| id.clone()),
            id,
            timezone,
            course_type,
            volume_profile,
            peak_season,
            season,
            is_loop_course: c.is_loop.unwrap_or(false),
            location,
            expected_cadence,
            notes: c.notes.unwrap_or_default(),
        });
    }
    if diags.is_empty() { Ok(profiles) } else { Err(diags) }
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The profiles as the rows of `seed.course_profiles`.
pub fn to_batch(profiles: &[CourseProfile]) -> RecordBatch {
    let schema = Arc::new(seed_schema());
    let s = |f: &dyn Fn(&CourseProfile) -> Option<String>| -> ArrayRef {
        Arc::new(profiles.iter().map(f).collect::<StringArray>())
    };
    let i = |f: &dyn Fn(&CourseProfile) -> Option<i32>| -> ArrayRef {
        Arc::new(profiles.iter().map(f).collect::<Int32Array>())
    };
    let d = |f: &dyn Fn(&CourseProfile) -> Option<f64>| -> ArrayRef {
        Arc::new(profiles.iter().map(f).collect::<Float64Array>())
    };
    let columns: Vec<ArrayRef> = vec![
        s(&|p| Some(p.id.clone())),
        s(&|p| Some(p.name.clone())),
        s(&|p| Some(p.timezone.name().to_string())),
        s(&|p| Some(p.course_type.clone())),
        s(&|p| Some(p.volume_profile.clone())),
        i(&|p| p.peak_season.map(|(f, _)| f as i32)),
        i(&|p| p.peak_season.map(|(_, t)| t as i32)),
        i(&|p| p.season.map(|(f, _)| f as i32)),
        i(&|p| p.season.map(|(_, t)| t as i32)),
        Arc::new(profiles.iter().map(|p| Some(p.is_loop_course)).collect::<BooleanArray>()),
        d(&|p| p.location.map(|(lat, _)| lat)),
        d(&|p| p.location.map(|(_, lon)| lon)),
        Arc::new(profiles.iter().map(|p| Some(p.expected_cadence.as_secs() as i64 / 3600)).collect::<Int64Array>()),
        s(&|p| (!p.notes.is_empty()).then(|| p.notes.clone())),
    ];
    RecordBatch::try_new(schema, columns).expect("columns match seed_schema")
}

/// Columns of `seed.course_profiles`.
pub fn seed_schema() -> Schema {
    Schema::new(vec![
        Field::new("course_id", DataType::Utf8, false),
        Field::new("course_name", DataType::Utf8, false),
        Field::new("timezone", DataType::Utf8, false),
        Field::new("course_type", DataType::Utf8, false),
        Field::new("volume_profile", DataType::Utf8, false),
        Field::new("peak_season_start_month", DataType::Int32, true),
        Field::new("peak_season_end_month", DataType::Int32, true),
        Field::new("season_start_month", DataType::Int32, true),
        Field::new("season_end_month", DataType::Int32, true),
        Field::new("is_loop_course", DataType::Boolean, false),
        Field::new("latitude", DataType::Float64, true),
        Field::new("longitude", DataType::Float64, true),
        Field::new("expected_cadence_hours", DataType::Int64, false),
        Field::new("notes", DataType::Utf8, true),
    ])
}

/// Registers `seed.course_profiles` (the profiles of `dags_dir`) in `ctx`.
pub fn register_seed(ctx: &SessionContext, profiles: &[CourseProfile]) -> DfResult<()> {
    let batch = to_batch(profiles);
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
    let catalog = ctx
        .catalog(&catalog_name)
        .ok_or_else(|| datafusion::error::DataFusionError::Plan(format!("no catalog `{catalog_name}`")))?;
    let schema: Arc<dyn SchemaProvider> = match catalog.schema(SEED_SCHEMA) {
        Some(s) => s,
        None => {
            let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
            catalog.register_schema(SEED_SCHEMA, s.clone())?;
            s
        }
    };
    let _ = schema.deregister_table(SEED_TABLE)?;
    schema.register_table(SEED_TABLE.to_string(), Arc::new(table))?;
    Ok(())
}

/// A short digest of `profiles` (changes when any value does).
pub fn digest(profiles: &[CourseProfile]) -> String {
    use sha2::{Digest, Sha256};
    let text = serde_json::to_string(profiles).unwrap_or_default();
    crate::util::hex(&Sha256::digest(text.as_bytes())[..8])
}

/// Where the profiles of `dags_dir` live.
pub fn path_in(dags_dir: &Path) -> PathBuf {
    dags_dir.join(FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(source: &str) -> Vec<String> {
        parse(source, Path::new("courses.toml")).unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_profile_with_every_key() {
        let p = parse(
            r#"
[[course]]
id = "americanfalls"
name = "American Falls Golf Course"
timezone = "America/Boise"
course_type = "9-hole loop"
volume_profile = "medium"
peak_season = [6, 8]
season = [4, 10]
loop = true
location = { lat = 42.7793, lon = -112.8712 }
expected_cadence = "3d"
"#,
            Path::new("courses.toml"),
        )
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].timezone, chrono_tz::America::Boise);
        assert_eq!(p[0].peak_season, Some((6, 8)));
        assert!(p[0].is_loop_course && p[0].in_season(4) && !p[0].in_season(11));
        assert_eq!(p[0].expected_cadence, Duration::from_secs(3 * 86_400));
        assert_eq!(to_batch(&p).num_rows(), 1);
    }

    #[test]
    fn bad_values_are_named_with_their_line() {
        let e = errors(
            "[[course]]\nid = \"a\"\ntimezone = \"Mars/Olympus\"\npeak_season = [13, 2]\n\n[[course]]\nid = \"a\"\ntimezone = \"UTC\"\ncourse_type = \"19-hole\"\n",
        );
        assert!(e.iter().any(|m| m.starts_with("courses.toml:3:12: unknown time zone `Mars/Olympus`")), "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("courses.toml:4:15: peak_season must be")), "{e:?}");
        assert!(
            e.iter().any(|m| m.starts_with("courses.toml:7:6: duplicate course id `a`: also defined at line 2")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.contains("course_type `19-hole` is not one of")), "{e:?}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = errors("[[course]]\nid = \"a\"\ntimezone = \"UTC\"\ntimezon = \"UTC\"\n");
        assert!(e[0].starts_with("courses.toml:4:1: unknown field `timezon`"), "{e:?}");
    }

    #[test]
    fn seasons_wrap_the_new_year() {
        assert!(month_in(12, 11, 2) && month_in(1, 11, 2) && !month_in(5, 11, 2));
        assert!(month_in(6, 6, 8) && !month_in(9, 6, 8));
    }
}
