//! `tmctl ingest`: the command-line face of bronze ingest — a progress bar on a terminal (a line
//! per file otherwise), then a table of decisions and the counts, or the report as JSON.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::{FileOutcome, IngestReport, IngestRequest, expand_paths, ingest, is_safe_slug};
use crate::config::Settings;
use crate::lake::buckets::{Bucket, Buckets};
use crate::store::{IngestStatus, Store};

/// Land rounds files (CSV or JSON) in the landing bucket, quarantining invalid ones.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Files, or directories whose files are ingested (not recursive; dot-files skipped).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Course id of every file (default: from each file name, `<course>.rounds.csv`).
    #[arg(long, value_name = "ID")]
    pub course: Option<String>,
    /// Ingest date of every file (default: the file name's `<course>.<YYYY-MM-DD>.<n>.csv`, else
    /// today in UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date_flag)]
    pub date: Option<NaiveDate>,
    /// Replace landed files whose bytes differ; the old version is kept in the quarantine bucket
    /// under `superseded/`.
    #[arg(long)]
    pub replace: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_date_flag(value: &str) -> Result<NaiveDate, String> {
    crate::timefmt::parse_date("--date", value)
}

/// Runs `tmctl ingest`. Returns Ok(true) when every file was accepted, skipped as a duplicate or
/// superseded; Ok(false) when any was rejected or refused (the caller exits 1); Err for bad
/// arguments (a [`super::BronzeError`] `Input` or `InvalidCourse` inside the anyhow error) and
/// infrastructure failures.
pub async fn run_cli(settings: &Settings, args: IngestArgs) -> anyhow::Result<bool> {
    if let Some(c) = &args.course
        && !is_safe_slug(c)
    {
        return Err(super::BronzeError::InvalidCourse(c.clone()).into());
    }
    let total = expand_paths(&args.paths)?.len();
    let store = Store::connect(&settings.database_url, settings.database_max_connections).await?;
    let buckets = Buckets::open(settings)?;
    let req = IngestRequest {
        paths: args.paths.clone(),
        course: args.course.clone(),
        date: args.date,
        default_date: None,
        replace: args.replace,
    };

    let use_bar = std::io::stderr().is_terminal() && !args.json && total > 1;
    let bar = if use_bar {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} ingest [{bar:30}] {pos}/{len} files  {elapsed_precise}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let done = AtomicUsize::new(0);
    let quiet = args.json;
    let progress = |o: &FileOutcome| {
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        if use_bar {
            bar.inc(1);
            bar.set_message(format!("{} {}", o.filename, o.status));
        } else if !quiet {
            eprintln!("[{n}/{total}] {}", line(o));
        }
    };
    let result = ingest(settings, &store, &buckets, &req, None, &progress).await;
    bar.finish_and_clear();
    store.close().await;
    let report = result?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report, &buckets);
    }
    Ok(report.all_ok())
}

/// One line about one decision.
fn line(o: &FileOutcome) -> String {
    let rows = o.rows.map(|r| format!(" ({r} rows)")).unwrap_or_default();
    let place = match o.status {
        IngestStatus::Rejected => o.quarantine_key.as_deref().map(|k| format!(" -> quarantine {k}")),
        _ => o.landing_key.as_deref().map(|k| format!(" -> {k}")),
    }
    .unwrap_or_default();
    let reason = o.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    format!("{} {}{rows}{place}{reason}", o.path.display(), o.status)
}

fn print_table(report: &IngestReport, buckets: &Buckets) {
    if report.files.is_empty() {
        println!("no files to ingest");
        return;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["file", "course", "date", "status", "rows", "reason"]);
    for f in &report.files {
        t.add_row([
            f.filename.clone(),
            f.course_id.clone().unwrap_or_else(|| "-".into()),
            f.ingest_date.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            f.status.to_string(),
            f.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            f.reason.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    let c = &report.counts;
    println!(
        "{} file(s): {} accepted, {} skipped, {} rejected, {} superseded, {} refused; {} row(s) landed",
        report.files.len(),
        c.accepted,
        c.skipped,
        c.rejected,
        c.superseded,
        c.refused,
        report.rows_landed
    );
    if c.rejected > 0 {
        println!("rejected files and their reasons: {}", buckets.url(Bucket::Quarantine, "bronze/rejected/"));
    }
}
