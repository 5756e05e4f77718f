//! The `bronze.ingest` kind: ingests every file of the inbox folder (settings `bronze.inbox`, or
//! the task's `inbox`) with ingest date = the run's `ds` unless a file name carries one, then moves
//! each decided file out of the inbox so a later day's run cannot land it again under its own date:
//! landed and duplicate files go to `<inbox>/processed/ingest_date=<date>/`, rejected ones to
//! `<inbox>/rejected/ingest_date=<date>/` (their bytes and reason are in the quarantine bucket
//! too); refused files stay in the inbox until an operator replaces (`replace = true`) or renames
//! them. Re-runs are idempotent (content-addressed decisions). Only infrastructure failures fail
//! the task; rejected and refused files are recorded outcomes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{BuildInput, SettingError, Task, TaskContext, TaskError, TaskOutput, check_template, render_template};
use crate::bronze::{self, FileOutcome, IngestRequest, RunRef};
use crate::lake::buckets::Buckets;
use crate::store::IngestStatus;

/// Kind-specific keys.
pub const KEYS: &[&str] = &["inbox", "course", "replace"];

#[derive(Debug)]
struct BronzeIngest {
    /// Inbox folder (may hold `{{ ds }}`-style placeholders); None = `settings.lake.inbox`.
    inbox: Option<String>,
    course: Option<String>,
    replace: bool,
}

/// Where a decided file goes inside the inbox (None: it stays).
fn destination(inbox: &Path, o: &FileOutcome) -> Option<PathBuf> {
    let folder = match o.status {
        IngestStatus::Accepted | IngestStatus::Skipped | IngestStatus::Superseded => "processed",
        IngestStatus::Rejected => "rejected",
        IngestStatus::Refused => return None,
    };
    let date = o.ingest_date.map(|d| d.to_string()).unwrap_or_else(|| "unknown".into());
    let name = o.path.file_name()?;
    Some(inbox.join(folder).join(format!("ingest_date={date}")).join(name))
}

fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(from, to)
}

#[async_trait]
impl Task for BronzeIngest {
    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        let settings = ctx.settings.clone();
        let inbox = match &self.inbox {
            Some(t) => PathBuf::from(render_template(t, ctx).map_err(TaskError::Fatal)?),
            None => settings.lake.inbox.clone(),
        };
        if !inbox.is_dir() {
            return Err(TaskError::Fatal(format!(
                "inbox {} is not a directory (set `bronze.inbox` / TM_LOCAL_INPUT_DIR or the task's `inbox`)",
                inbox.display()
            )));
        }
        let buckets = Buckets::open(&settings).map_err(|e| TaskError::Failed(format!("opening buckets: {e}")))?;
        let req = IngestRequest {
            paths: vec![inbox.clone()],
            course: self.course.clone(),
            date: None,
            default_date: Some(ctx.ds),
            replace: self.replace,
        };
        tracing::info!(inbox = %inbox.display(), ds = %ctx.ds, "ingesting the inbox");
        let move_errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let moved = std::sync::atomic::AtomicUsize::new(0);
        let progress = |o: &FileOutcome| {
            tracing::info!(
                "{} {} ({} rows){}",
                o.filename,
                o.status,
                o.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                o.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            );
            // Moved as soon as decided, so a failure later in the batch leaves no decided file behind.
            if let Some(to) = destination(&inbox, o) {
                match move_file(&o.path, &to) {
                    Ok(()) => {
                        moved.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(e) => {
                        let msg = format!("cannot move {} to {}: {e}", o.path.display(), to.display());
                        tracing::error!("{msg}");
                        move_errors.lock().unwrap_or_else(|p| p.into_inner()).push(msg);
                    }
                }
            }
        };
        let run = RunRef { run_pk: ctx.run_pk, task_id: ctx.task_id.clone() };
        let report = bronze::ingest(&settings, &ctx.store, &buckets, &req, Some(run), &progress)
            .await
            .map_err(|e| TaskError::Failed(format!("bronze ingest: {e}")))?;
        let move_errors = move_errors.into_inner().unwrap_or_else(|p| p.into_inner());
        let c = report.counts;
        let refused: Vec<&str> =
            report.files.iter().filter(|f| f.status == IngestStatus::Refused).map(|f| f.filename.as_str()).collect();
        let summary = serde_json::json!({
            "inbox": inbox.to_string_lossy(),
            "ds": ctx.ds,
            "files": report.files.len(),
            "accepted": c.accepted,
            "skipped": c.skipped,
            "rejected": c.rejected,
            "superseded": c.superseded,
            "refused": c.refused,
            "rows_landed": report.rows_landed,
            "moved_out_of_inbox": moved.load(std::sync::atomic::Ordering::SeqCst),
            "refused_files": refused,
            "decisions": report.files,
        });
        if !move_errors.is_empty() {
            // A decided file left in the inbox would be ingested again under a later run's date.
            return Err(TaskError::Failed(move_errors.join("; ")));
        }
        let key = format!("bronze/ingest_date={}/run_id={}-{}/summary.json", ctx.ds, ctx.run_pk, ctx.try_number);
        super::summary::record_summary(ctx, &buckets, &key, "bronze.ingest", &summary).await?;
        tracing::info!(
            "{} file(s): {} accepted, {} skipped, {} rejected, {} superseded, {} refused",
            report.files.len(),
            c.accepted,
            c.skipped,
            c.rejected,
            c.superseded,
            c.refused
        );
        Ok(TaskOutput { summary: Some(summary) })
    }
}

pub fn build(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    let mut errors = Vec::new();
    let inbox = match input.settings.get("inbox") {
        None => None,
        Some(toml::Value::String(s)) if !s.trim().is_empty() => match check_template(s) {
            Ok(()) => Some(s.clone()),
            Err(m) => {
                errors.push(SettingError::new("inbox", m));
                None
            }
        },
        Some(other) => {
            errors.push(SettingError::new("inbox", format!("`inbox` must be a folder path, found {other}")));
            None
        }
    };
    let course = match input.settings.get("course") {
        None => None,
        Some(toml::Value::String(s)) if bronze::is_safe_slug(s) => Some(s.clone()),
        Some(other) => {
            errors.push(SettingError::new(
                "course",
                format!("`course` must be a course id of lowercase letters, digits, `-` and `_`, found {other}"),
            ));
            None
        }
    };
    let replace = match input.settings.get("replace") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            errors.push(SettingError::new("replace", format!("`replace` must be true or false, found {other}")));
            false
        }
    };
    if errors.is_empty() { Ok(Arc::new(BronzeIngest { inbox, course, replace })) } else { Err(errors) }
}
