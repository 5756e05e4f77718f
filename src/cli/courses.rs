//! `tmctl courses list [--json]`: every course — those with a profile in `<dags>/courses.toml`
//! and those seen in the data — with its profile, first and last ingest date and rounds (from
//! the gold tables, when they exist).

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::Subcommand;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::util::display::array_value_to_string;

use super::{CliError, CliResult, open_store, print_json, table};
use crate::config::Settings;
use crate::courses::{self, CourseProfile};
use crate::lake::{Lake, SessionOptions};

#[derive(Subcommand, Debug)]
pub enum CoursesCmd {
    /// Every course with its profile (time zone, type, season…), first/last ingest date and
    /// rounds; courses seen in the data without a profile are flagged `profile_missing`.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Each course's freshness: in its season, is its newest landed file within its expected
    /// cadence? (what the bronze DAG's `courses.freshness` task checks and mails)
    Freshness {
        /// The day to judge from (YYYY-MM-DD; default today, UTC). Later deliveries do not count.
        #[arg(long)]
        as_of: Option<String>,
        /// Only this course.
        #[arg(long)]
        course: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: &Arc<Settings>, cmd: CoursesCmd) -> CliResult {
    match cmd {
        CoursesCmd::List { json } => list(settings, json).await,
        CoursesCmd::Freshness { as_of, course, json } => freshness(settings, as_of, course, json).await,
    }
}

async fn freshness(settings: &Arc<Settings>, as_of: Option<String>, course: Option<String>, json: bool) -> CliResult {
    use crate::freshness::{self, CheckError, Status};
    let as_of = match as_of.as_deref() {
        None => chrono::Utc::now().date_naive(),
        Some(text) => super::date_arg("--as-of", text)?,
    };
    let store = open_store(settings).await?;
    let rows = freshness::check(&store, &settings.dags_dir, as_of, course.as_deref()).await.map_err(|e| match e {
        CheckError::Profiles(_) => CliError::Usage(e.to_string()),
        CheckError::Store(e) => CliError::Failed(e.to_string()),
    })?;
    if json {
        return print_json(&serde_json::json!({ "as_of": as_of, "courses": rows }));
    }
    if rows.is_empty() {
        println!("no courses: no profile in {} and nothing landed", courses::path_in(&settings.dags_dir).display());
        return Ok(());
    }
    let mut t = table();
    t.set_header(["course", "name", "last landed", "age (days)", "cadence", "season", "status"]);
    for r in &rows {
        t.add_row([
            r.course_id.clone(),
            r.name.clone(),
            r.last_landed.map_or_else(|| "never".into(), |d| d.to_string()),
            r.age_days.map_or_else(|| "-".into(), |a| a.to_string()),
            freshness::fmt_cadence(r.cadence),
            freshness::fmt_season(r.season),
            r.status.as_str().to_string(),
        ]);
    }
    println!("{t}");
    let stale = rows.iter().filter(|r| r.status == Status::Stale).count();
    println!("as of {as_of}: {stale} of {} course(s) stale", rows.len());
    Ok(())
}

/// What the data says about one course.
#[derive(Default)]
struct Seen {
    first_ingest_date: Option<String>,
    last_ingest_date: Option<String>,
    rounds: i64,
}

async fn list(settings: &Arc<Settings>, json: bool) -> CliResult {
    let profiles = courses::load_dir(&settings.dags_dir)
        .map_err(|diags| CliError::Usage(diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))?;
    let seen = seen_in_data(settings).await?;
    let mut ids: Vec<&str> = profiles.iter().map(|p| p.id.as_str()).chain(seen.keys().map(String::as_str)).collect();
    ids.sort_unstable();
    ids.dedup();
    let by_id: BTreeMap<&str, &CourseProfile> = profiles.iter().map(|p| (p.id.as_str(), p)).collect();
    let none = Seen::default();
    let rows: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let p = by_id.get(id);
            let s = seen.get(*id).unwrap_or(&none);
            serde_json::json!({
                "course_id": id,
                "name": p.map(|p| p.name.clone()),
                "timezone": p.map_or("UTC", |p| p.timezone.name()),
                "course_type": p.map(|p| p.course_type.clone()),
                "volume_profile": p.map(|p| p.volume_profile.clone()),
                "peak_season": p.and_then(|p| p.peak_season).map(|(f, t)| [f, t]),
                "season": p.and_then(|p| p.season).map(|(f, t)| [f, t]),
                "loop": p.map(|p| p.is_loop_course),
                "location": p.and_then(|p| p.location).map(|(lat, lon)| serde_json::json!({"lat": lat, "lon": lon})),
                "expected_cadence_hours": p.map_or(courses::DEFAULT_CADENCE, |p| p.expected_cadence).as_secs() / 3600,
                "profile_missing": p.is_none(),
                "first_ingest_date": s.first_ingest_date,
                "last_ingest_date": s.last_ingest_date,
                "rounds": s.rounds,
            })
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("no courses: no profile in {} and no data yet", courses::path_in(&settings.dags_dir).display());
        return Ok(());
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut t = table();
    t.set_header([
        "course",
        "name",
        "time zone",
        "type",
        "volume",
        "peak season",
        "loop",
        "first data",
        "last data",
        "rounds",
        "profile",
    ]);
    for r in &rows {
        let months = |v: &serde_json::Value| match v.as_array() {
            Some(a) if a.len() == 2 => format!("{}–{}", a[0], a[1]),
            _ => "-".into(),
        };
        t.add_row([
            text(&r["course_id"]),
            text(&r["name"]),
            text(&r["timezone"]),
            text(&r["course_type"]),
            text(&r["volume_profile"]),
            months(&r["peak_season"]),
            text(&r["loop"]),
            text(&r["first_ingest_date"]),
            text(&r["last_ingest_date"]),
            text(&r["rounds"]),
            if r["profile_missing"].as_bool() == Some(true) { "MISSING (UTC)".into() } else { "yes".into() },
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Per course: first and last ingest date and rounds, from `gold.silver_round_latest` (nothing
/// when gold has not run yet).
async fn seen_in_data(settings: &Arc<Settings>) -> Result<BTreeMap<String, Seen>, CliError> {
    let store = open_store(settings).await?;
    let lake = Lake::open(settings.clone(), store).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let ctx = lake.session(&SessionOptions::current()).await.map_err(|e| CliError::Failed(e.to_string()))?;
    if !ctx.table_exist("gold.silver_round_latest").unwrap_or(false) {
        return Ok(BTreeMap::new());
    }
    let sql = "SELECT course_id, CAST(MIN(first_ingest_date) AS VARCHAR) AS first_date, \
               CAST(MAX(latest_ingest_date) AS VARCHAR) AS last_date, COUNT(*) AS rounds \
               FROM gold.silver_round_latest GROUP BY course_id";
    let batches = async { ctx.sql(sql).await?.collect().await }
        .await
        .map_err(|e| CliError::Failed(format!("cannot read gold.silver_round_latest: {e}")))?;
    let mut seen = BTreeMap::new();
    for b in &batches {
        let text = |c: usize, row: usize| {
            let col = b.column(c);
            (!col.is_null(row)).then(|| array_value_to_string(col, row).unwrap_or_default())
        };
        let rounds = b.column(3);
        for row in 0..b.num_rows() {
            let Some(id) = text(0, row) else { continue };
            let n = match rounds.data_type() {
                DataType::Int64 => rounds.as_primitive::<Int64Type>().value(row),
                _ => 0,
            };
            seen.insert(id, Seen { first_ingest_date: text(1, row), last_ingest_date: text(2, row), rounds: n });
        }
    }
    Ok(seen)
}
