//! `lake.maintenance`: one Iceberg maintenance operation (`lake::maintenance`) over the silver
//! and gold tables (or the listed `tables`), as a DAG task — `action = "expire_snapshots"` with
//! `older_than` (default 30d) and `retain_last` (default 10), `action = "remove_orphans"` with
//! `older_than` (default 3d), or `action = "compact"` with `target_file_size` (default 128MiB). The run summary carries the snapshots expired and the files and
//! bytes freed per table; files that could not be deleted fail the try (a retry picks them up).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{BuildInput, SettingError, Task, TaskContext, TaskError, TaskOutput, failed, lake_failed};
use crate::lake::buckets::Buckets;
use crate::lake::maintenance::{self, CompactOptions, ExpireOptions, OrphanOptions, human_bytes};
use crate::lake::{iceberg::NAMESPACES, parse_ident};

/// Compaction's default target, Iceberg's `write.target-file-size-bytes` default.
const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Kind-specific keys.
pub const KEYS: &[&str] = &["action", "older_than", "retain_last", "target_file_size", "tables", "dry_run"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    ExpireSnapshots,
    RemoveOrphans,
    Compact,
}

#[derive(Debug)]
struct Maintenance {
    action: Action,
    older_than: Duration,
    retain_last: usize,
    target_file_size: u64,
    /// `namespace.table`s; empty: every silver and gold table.
    tables: Vec<String>,
    dry_run: bool,
}

#[async_trait]
impl Task for Maintenance {
    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        let lake = ctx.lake.get().await.map_err(lake_failed("opening the lake"))?;
        let mut idents = Vec::new();
        if self.tables.is_empty() {
            idents = lake.maintenance_tables(None).await.map_err(lake_failed("listing the tables"))?;
        } else {
            for name in &self.tables {
                let ident = parse_ident(name).map_err(lake_failed("table"))?;
                // A listed table that does not exist (yet) is nothing to maintain.
                if lake.table_exists(&ident).await.map_err(lake_failed("looking up a table"))? {
                    idents.push(ident);
                } else {
                    tracing::info!(table = %name, "no such table yet; skipped");
                }
            }
        }
        let report = match self.action {
            Action::ExpireSnapshots => {
                let options =
                    ExpireOptions { older_than: self.older_than, retain_last: self.retain_last, dry_run: self.dry_run };
                lake.expire_snapshots(&idents, &options).await.map_err(lake_failed("expiring snapshots"))?
            }
            Action::RemoveOrphans => {
                let options = OrphanOptions { older_than: self.older_than, dry_run: self.dry_run };
                lake.remove_orphans(&idents, &options).await.map_err(lake_failed("removing orphan files"))?
            }
            Action::Compact => {
                let options =
                    CompactOptions { target_file_size: self.target_file_size, partition: None, dry_run: self.dry_run };
                lake.compact(&idents, &options).await.map_err(lake_failed("compacting small files"))?
            }
        };
        let verb = if report.dry_run { "would free" } else { "freed" };
        for t in &report.tables {
            match self.action {
                Action::ExpireSnapshots => tracing::info!(
                    "{}: {} snapshot(s) expired, {} kept; {verb} {} file(s), {}",
                    t.table,
                    t.expired_snapshots.len(),
                    t.retained_snapshots,
                    t.files_freed,
                    human_bytes(t.bytes_freed)
                ),
                Action::RemoveOrphans => {
                    tracing::info!(
                        "{}: {verb} {} orphan file(s), {}",
                        t.table,
                        t.files_freed,
                        human_bytes(t.bytes_freed)
                    )
                }
                Action::Compact => {}
            }
            for f in &t.files {
                tracing::debug!(kind = f.kind.as_str(), size = f.size, "{}", f.path);
            }
            for c in &t.compacted {
                tracing::info!(
                    "{}: partition {}: {} file(s) ({}) rewritten into {} ({} rows)",
                    t.table,
                    c.partition,
                    c.files_before,
                    human_bytes(c.bytes_before),
                    c.files_after,
                    c.rows
                );
            }
        }
        if self.action == Action::Compact {
            let parts: usize = report.tables.iter().map(|t| t.compacted.len()).sum();
            tracing::info!("compact: {} table(s); {parts} partition(s) rewritten", report.tables.len());
        } else {
            tracing::info!(
                "{}: {} table(s); {verb} {} file(s), {} ({} bytes)",
                report.action,
                report.tables.len(),
                report.files_freed,
                human_bytes(report.bytes_freed),
                report.bytes_freed
            );
        }
        let summary = serde_json::json!({
            "action": report.action,
            "dry_run": report.dry_run,
            "older_than_seconds": self.older_than.as_secs(),
            "expired_snapshots": report.expired_snapshots,
            "files_freed": report.files_freed,
            "bytes_freed": report.bytes_freed,
            "failed": report.failed,
            "tables": report.tables.iter().map(|t| serde_json::json!({
                "table": t.table,
                "expired_snapshots": t.expired_snapshots.len(),
                "retained_snapshots": t.retained_snapshots,
                "files_freed": t.files_freed,
                "bytes_freed": t.bytes_freed,
                "failed": t.failed,
                "compacted": t.compacted,
            })).collect::<Vec<_>>(),
        });
        let buckets = Buckets::open(&ctx.settings).map_err(failed("opening buckets"))?;
        let key = format!(
            "maintenance/{}/ds={}/run_id={}-{}/summary.json",
            report.action, ctx.ds, ctx.run_pk, ctx.try_number
        );
        super::summary::record_summary(ctx, &buckets, &key, "lake.maintenance", &summary).await?;
        if report.failed > 0 {
            return Err(TaskError::Failed(format!(
                "{} file(s) could not be deleted; a retry deletes them: {}",
                report.failed,
                report.tables.iter().flat_map(|t| t.failed.iter()).next().cloned().unwrap_or_default()
            )));
        }
        Ok(TaskOutput { summary: Some(summary) })
    }
}

pub fn build(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    let s = input.settings;
    let mut errors = Vec::new();
    let action = match s.get("action") {
        Some(toml::Value::String(a)) if a == "expire_snapshots" => Some(Action::ExpireSnapshots),
        Some(toml::Value::String(a)) if a == "remove_orphans" => Some(Action::RemoveOrphans),
        Some(toml::Value::String(a)) if a == "compact" => Some(Action::Compact),
        Some(other) => {
            errors.push(SettingError::new(
                "action",
                format!("`action` must be \"expire_snapshots\", \"remove_orphans\" or \"compact\", found {other}"),
            ));
            None
        }
        None => {
            errors.push(SettingError::new(
                "action",
                "`action` is required: \"expire_snapshots\", \"remove_orphans\" or \"compact\"",
            ));
            None
        }
    };
    let default_age = match action {
        Some(Action::RemoveOrphans) => maintenance::DEFAULT_ORPHAN_OLDER_THAN,
        _ => maintenance::DEFAULT_EXPIRE_OLDER_THAN,
    };
    let older_than = match s.get("older_than") {
        None => default_age,
        Some(toml::Value::String(text)) => crate::dag::parse_duration(text).unwrap_or_else(|e| {
            errors.push(SettingError::new("older_than", format!("`older_than`: {e}")));
            default_age
        }),
        Some(other) => {
            errors.push(SettingError::new(
                "older_than",
                format!("`older_than` must be a duration such as \"30d\", found {other}"),
            ));
            default_age
        }
    };
    let retain_last = match s.get("retain_last") {
        None => maintenance::DEFAULT_RETAIN_LAST,
        Some(toml::Value::Integer(n)) if *n >= 1 && action == Some(Action::ExpireSnapshots) => *n as usize,
        Some(other) => {
            let message = if action.is_some_and(|a| a != Action::ExpireSnapshots) {
                "`retain_last` applies to action \"expire_snapshots\" only".to_string()
            } else {
                format!("`retain_last` must be a whole number of at least 1, found {other}")
            };
            errors.push(SettingError::new("retain_last", message));
            0
        }
    };
    let target_file_size = match s.get("target_file_size") {
        None => DEFAULT_TARGET_FILE_SIZE,
        Some(_) if action.is_some_and(|a| a != Action::Compact) => {
            errors.push(SettingError::new("target_file_size", "`target_file_size` applies to action \"compact\" only"));
            0
        }
        Some(toml::Value::String(text)) => maintenance::parse_size(text).unwrap_or_else(|e| {
            errors.push(SettingError::new("target_file_size", format!("`target_file_size`: {e}")));
            0
        }),
        Some(other) => {
            errors.push(SettingError::new(
                "target_file_size",
                format!("`target_file_size` must be a size such as \"128MiB\", found {other}"),
            ));
            0
        }
    };
    if action == Some(Action::Compact) && s.contains_key("older_than") {
        errors.push(SettingError::new("older_than", "`older_than` does not apply to action \"compact\""));
    }
    let mut tables = Vec::new();
    match s.get("tables") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for item in items {
                match item.as_str().map(parse_ident) {
                    Some(Ok(ident)) if NAMESPACES.contains(&ident.namespace().join(".").as_str()) => {
                        tables.push(item.as_str().unwrap_or_default().to_string())
                    }
                    _ => errors.push(SettingError::new(
                        "tables",
                        format!(
                            "`tables` entries are silver or gold table names like \"gold.fact_rounds\", found {item}"
                        ),
                    )),
                }
            }
        }
        Some(other) => errors.push(SettingError::new(
            "tables",
            format!("`tables` must be a list of table names such as [\"gold.fact_rounds\"], found {other}"),
        )),
    }
    let dry_run = match s.get("dry_run") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            errors.push(SettingError::new("dry_run", format!("`dry_run` must be true or false, found {other}")));
            false
        }
    };
    match action {
        Some(action) if errors.is_empty() => {
            Ok(Arc::new(Maintenance { action, older_than, retain_last, target_file_size, tables, dry_run }))
        }
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_with(settings: &str) -> Result<Arc<dyn Task>, Vec<SettingError>> {
        let settings: toml::Table = toml::from_str(settings).unwrap();
        build(&BuildInput { settings: &settings, dag_dir: std::path::Path::new(".") })
    }

    fn messages(settings: &str) -> Vec<String> {
        build_with(settings).unwrap_err().into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn settings_are_checked_at_compile_time() {
        assert!(build_with("action = \"expire_snapshots\"\nolder_than = \"30d\"\nretain_last = 10").is_ok());
        assert!(build_with("action = \"remove_orphans\"\ntables = [\"gold.fact_rounds\"]\ndry_run = true").is_ok());
        assert!(build_with("action = \"compact\"\ntarget_file_size = \"64MiB\"").is_ok());
        assert_eq!(messages(""), ["`action` is required: \"expire_snapshots\", \"remove_orphans\" or \"compact\""]);
        assert_eq!(
            messages("action = \"vacuum\""),
            ["`action` must be \"expire_snapshots\", \"remove_orphans\" or \"compact\", found \"vacuum\""]
        );
        assert_eq!(
            messages("action = \"compact\"\ntarget_file_size = \"big\""),
            ["`target_file_size`: invalid size \"big\": expected e.g. 128MiB"]
        );
        assert_eq!(
            messages("action = \"remove_orphans\"\ntarget_file_size = \"1MiB\""),
            ["`target_file_size` applies to action \"compact\" only"]
        );
        assert_eq!(
            messages("action = \"expire_snapshots\"\nretain_last = 0\nolder_than = \"soon\""),
            [
                "`older_than`: invalid duration \"soon\": expected a whole number and a unit, e.g. \"30s\" or \"1h30m\"",
                "`retain_last` must be a whole number of at least 1, found 0"
            ]
        );
        assert_eq!(
            messages("action = \"remove_orphans\"\nretain_last = 3"),
            ["`retain_last` applies to action \"expire_snapshots\" only"]
        );
        assert_eq!(
            messages("action = \"remove_orphans\"\ntables = [\"bronze.x\"]"),
            ["`tables` entries are silver or gold table names like \"gold.fact_rounds\", found \"bronze.x\""]
        );
    }
}
