//! `tmctl lake …`: Iceberg table maintenance (`lake::maintenance`). `expire-snapshots` and
//! `remove-orphans` print every file removed (or, with `--dry-run`, that would be) with its size,
//! then the files and bytes freed; `--json` prints the report as JSON.

use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{CliError, CliResult, open_store, print_json, table};
use crate::config::Settings;
use crate::lake::maintenance::{self, ExpireOptions, OrphanOptions, Report, human_bytes};
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
