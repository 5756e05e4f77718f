//! `tmctl db clean --before DATE [--dag D] [--dry-run] [--json]`: deletes old state-DB rows (finished
//! runs with their task instances, tries, logs and summaries; sent alerts; finished backfills with
//! their per-date records; expired web sessions) in short batches, as the daemon's daily clean does
//! (`[retention] keep_days`). What is never deleted is listed in `store::retention`.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;

use super::{CliError, CliResult, open_store, print_json, table};
use crate::config::Settings;
use crate::store::CleanScope;

#[derive(Subcommand, Debug)]
pub enum DbCmd {
    /// Delete runs that ended before a date (with their task instances, tries and logs), alerts
    /// sent before it, backfills completed before it and expired web sessions. Queued and running
    /// runs, runs of active backfills, runs with pending alerts and the newest run of each DAG and
    /// run type are kept.
    Clean {
        /// Cut-off: a date (YYYY-MM-DD, midnight UTC) or an RFC 3339 instant; not in the future.
        #[arg(long)]
        before: String,
        /// Only this DAG's runs, alerts and backfills (web sessions are left alone).
        #[arg(long)]
        dag: Option<String>,
        /// Count what would be deleted, per kind of row; delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: &Arc<Settings>, cmd: DbCmd) -> CliResult {
    match cmd {
        DbCmd::Clean { before, dag, dry_run, json } => clean(settings, &before, dag, dry_run, json).await,
    }
}

/// `--before`: `YYYY-MM-DD` (00:00 UTC) or RFC 3339, not after `now`.
fn parse_before(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, CliError> {
    let at = match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(day) => day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
        Err(_) => DateTime::parse_from_rfc3339(value).ok().map(|t| t.with_timezone(&Utc)),
    }
    .ok_or_else(|| {
        CliError::Usage(format!(
            "--before `{value}` is not a date; expected YYYY-MM-DD (e.g. 2025-01-01) or an RFC 3339 instant"
        ))
    })?;
    if at > now {
        return Err(CliError::Usage(format!("--before {value} is in the future; only the past can be cleaned")));
    }
    Ok(at)
}

async fn clean(settings: &Arc<Settings>, before: &str, dag: Option<String>, dry_run: bool, json: bool) -> CliResult {
    let now = Utc::now();
    let before = parse_before(before, now)?;
    let idle = chrono::Duration::from_std(settings.web_session_idle).unwrap_or(chrono::Duration::hours(8));
    let scope = CleanScope { before, dag_id: dag, now, sessions_idle_before: now - idle };
    let store = open_store(settings).await?;
    let started = std::time::Instant::now();
    let counts = if dry_run { store.count_clean(&scope).await? } else { store.clean(&scope).await? };
    if json {
        return print_json(&serde_json::json!({
            "before": before.to_rfc3339(),
            "dag": scope.dag_id,
            "dry_run": dry_run,
            "rows": counts,
            "total": counts.total(),
        }));
    }
    let mut t = table();
    t.set_header(["rows", if dry_run { "would delete" } else { "deleted" }]);
    for (kind, n) in counts.by_kind() {
        t.add_row([kind.to_string(), n.to_string()]);
    }
    println!("{t}");
    let scope_text = scope.dag_id.as_deref().map(|d| format!(" of DAG `{d}`")).unwrap_or_default();
    if dry_run {
        println!(
            "dry run: {} row(s){scope_text} from before {} would be deleted; nothing was",
            counts.total(),
            before.to_rfc3339()
        );
    } else {
        println!(
            "deleted {} row(s){scope_text} from before {} in {}",
            counts.total(),
            before.to_rfc3339(),
            crate::timefmt::human_duration(started.elapsed())
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_is_a_past_date_or_instant() {
        let now = "2026-06-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(parse_before("2025-01-01", now).unwrap().to_rfc3339(), "2025-01-01T00:00:00+00:00");
        assert_eq!(parse_before("2025-01-01T06:00:00+02:00", now).unwrap().to_rfc3339(), "2025-01-01T04:00:00+00:00");
        let e = parse_before("2027-01-01", now).unwrap_err();
        assert!(matches!(&e, CliError::Usage(m) if m.contains("in the future")), "{e:?}");
        let e = parse_before("last year", now).unwrap_err();
        assert!(matches!(&e, CliError::Usage(m) if m.starts_with("--before `last year` is not a date")), "{e:?}");
    }
}
