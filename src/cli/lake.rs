//! `tmctl lake …`: Iceberg table maintenance (`lake::maintenance`). `expire-snapshots` and
//! `remove-orphans` print every file removed (or, with `--dry-run`, that would be) with its size,
//! then the files and bytes freed; `compact` prints each partition rewritten (files and size
//! before and after); `--json` prints the report as JSON.

use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{CliError, CliResult, open_store, print_json, table};
use crate::config::Settings;
use crate::lake::maintenance::{self, CompactOptions, ExpireOptions, OrphanOptions, Report, human_bytes};
use crate::lake::{Lake, LakeError};

#[derive(Subcommand, Debug)]
pub enum LakeCmd {
    /// Remove old snapshots from tables' metadata (commit first), then delete the files only
    /// they referenced. Kept always: the current snapshot, branch heads and tags, the newest
    /// `--retain-last` of each branch, and every snapshot younger than `--older-than`.
    ExpireSnapshots {
        #[command(flatten)]
        tables: Tables,
        /// Expire snapshots older than this (e.g. 30d, 12h).
        #[arg(long, default_value = "30d", value_name = "DURATION")]
        older_than: String,
        /// Keep at least this many of the newest snapshots of each branch.
        #[arg(long, default_value_t = maintenance::DEFAULT_RETAIN_LAST)]
        retain_last: usize,
        #[command(flatten)]
        output: Output,
    },
    /// Delete files under the tables' locations that no table metadata references and that are
    /// older than `--older-than` (files a running writer has not committed yet are younger).
    RemoveOrphans {
        #[command(flatten)]
        tables: Tables,
        /// Only files last written longer ago than this (e.g. 3d).
        #[arg(long, default_value = "3d", value_name = "DURATION")]
        older_than: String,
        #[command(flatten)]
        output: Output,
    },
    /// Rewrite each partition's data files smaller than `--target-file-size` (two or more) into
    /// files of about that size, in one `replace` commit per partition; rows stay the same. The
    /// old files stay for older snapshots until those expire.
    Compact {
        #[command(flatten)]
        tables: Tables,
        /// Only this partition, as its path: `course_id=A/ingest_date=2025-06-01`.
        #[arg(long, value_name = "PATH")]
        partition: Option<String>,
        /// Files smaller than this are rewritten into files of about this size.
        #[arg(long, default_value = "128MiB", value_name = "SIZE")]
        target_file_size: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Args, Debug)]
pub struct Tables {
    /// One table (`silver.fact_telemetry_event`); default: every silver and gold table.
    #[arg(long, value_name = "NAMESPACE.TABLE")]
    table: Option<String>,
}

#[derive(Args, Debug)]
pub struct Output {
    /// List what would be removed, with sizes; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Arc<Settings>, cmd: LakeCmd) -> CliResult {
    let store = open_store(settings).await?;
    let lake = Lake::open(settings.clone(), store).await.map_err(lake_error)?;
    let (report, json) = match cmd {
        LakeCmd::ExpireSnapshots { tables, older_than, retain_last, output } => {
            let options = ExpireOptions {
                older_than: duration("--older-than", &older_than)?,
                retain_last,
                dry_run: output.dry_run,
            };
            let idents = lake.maintenance_tables(tables.table.as_deref()).await.map_err(lake_error)?;
            (lake.expire_snapshots(&idents, &options).await.map_err(lake_error)?, output.json)
        }
        LakeCmd::RemoveOrphans { tables, older_than, output } => {
            let options = OrphanOptions { older_than: duration("--older-than", &older_than)?, dry_run: output.dry_run };
            let idents = lake.maintenance_tables(tables.table.as_deref()).await.map_err(lake_error)?;
            (lake.remove_orphans(&idents, &options).await.map_err(lake_error)?, output.json)
        }
        LakeCmd::Compact { tables, partition, target_file_size, output } => {
            let target_file_size = maintenance::parse_size(&target_file_size)
                .map_err(|e| CliError::Usage(format!("--target-file-size: {e}")))?;
            if partition.is_some() && tables.table.is_none() {
                return Err(CliError::Usage("--partition needs --table".into()));
            }
            let options = CompactOptions { target_file_size, partition, dry_run: output.dry_run };
            let idents = lake.maintenance_tables(tables.table.as_deref()).await.map_err(lake_error)?;
            (lake.compact(&idents, &options).await.map_err(lake_error)?, output.json)
        }
    };
    if json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    if report.failed > 0 {
        return Err(CliError::Failed(format!(
            "{} file(s) could not be deleted (see above); running the command again retries them",
            report.failed
        )));
    }
    Ok(())
}

/// A duration such as `30d` or `12h`; `0s` (no age limit) is allowed here.
fn duration(flag: &str, text: &str) -> Result<std::time::Duration, CliError> {
    if text.trim_end_matches(|c: char| c.is_ascii_alphabetic()).chars().all(|c| c == '0')
        && !text.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Ok(std::time::Duration::ZERO);
    }
    crate::dag::parse_duration(text).map_err(|e| CliError::Usage(format!("{flag}: {e}")))
}

fn lake_error(e: LakeError) -> CliError {
    match e {
        LakeError::Usage(_) | LakeError::NoSuchTable { .. } => CliError::Usage(e.to_string()),
        LakeError::Invalid { ref message, .. } if message.contains("is not a table name") => {
            CliError::Usage(e.to_string())
        }
        other => CliError::Failed(other.to_string()),
    }
}

fn print_report(report: &Report) {
    if report.action == "compact" {
        return print_compaction(report);
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    let files: usize = report.tables.iter().map(|t| t.files.len()).sum();
    if files > 0 {
        let mut t = table();
        t.set_header(["table", "kind", "file", "size"]);
        for tr in &report.tables {
            for f in &tr.files {
                t.add_row([tr.table.clone(), f.kind.as_str().to_string(), f.path.clone(), human_bytes(f.size)]);
            }
        }
        println!("{t}");
    }
    for tr in &report.tables {
        let snapshots = if report.action == "expire-snapshots" {
            let ids: Vec<String> = tr.expired_snapshots.iter().map(i64::to_string).collect();
            format!(
                "{} {} snapshot(s){}, {} kept; ",
                if report.dry_run { "would expire" } else { "expired" },
                ids.len(),
                if ids.is_empty() { String::new() } else { format!(" ({})", ids.join(", ")) },
                tr.retained_snapshots
            )
        } else {
            String::new()
        };
        println!("{}: {snapshots}{verb} {} file(s), {}", tr.table, tr.files_freed, human_bytes(tr.bytes_freed));
        for f in &tr.failed {
            println!("  FAILED: {f}");
        }
    }
    let dry = if report.dry_run { " (dry run: nothing changed)" } else { "" };
    println!(
        "{}: {} table(s), {verb} {} file(s), {} ({} bytes){dry}",
        report.action,
        report.tables.len(),
        report.files_freed,
        human_bytes(report.bytes_freed),
        report.bytes_freed
    );
}

fn print_compaction(report: &Report) {
    let parts: Vec<_> = report.tables.iter().flat_map(|t| t.compacted.iter().map(move |c| (&t.table, c))).collect();
    let dry = if report.dry_run { " (dry run: nothing changed; files after estimated)" } else { "" };
    if parts.is_empty() {
        println!("compact: {} table(s), no partition with two or more small files{dry}", report.tables.len());
        return;
    }
    let mut t = table();
    t.set_header(["table", "partition", "files before", "size before", "files after", "size after", "rows"]);
    for (name, c) in &parts {
        t.add_row([
            name.to_string(),
            if c.partition.is_empty() { "(unpartitioned)".into() } else { c.partition.clone() },
            c.files_before.to_string(),
            human_bytes(c.bytes_before),
            c.files_after.to_string(),
            if report.dry_run { "-".into() } else { human_bytes(c.bytes_after) },
            c.rows.to_string(),
        ]);
    }
    println!("{t}");
    let before: u64 = parts.iter().map(|(_, c)| c.files_before).sum();
    let after: u64 = parts.iter().map(|(_, c)| c.files_after).sum();
    println!(
        "compact: {} partition(s), {before} file(s) {} {after}{dry}; the replaced files are freed when \
         `tmctl lake expire-snapshots` expires the snapshots that still read them",
        parts.len(),
        if report.dry_run { "would become" } else { "became" }
    );
}
