//! Backfills with Airflow 3 semantics: one run per schedule slot whose logical date falls in
//! `--from..=--to` (local dates in the DAG's time zone); `--reprocess none|failed|completed`
//! decides what happens to dates that already have a run; runs go `--max-active-runs` at a time,
//! oldest first unless `--run-backwards`. The plan is computed first (that is all `--dry-run`
//! does), then driven by the one driver (`driver.rs`) — in this process (`driver::run_here`) or
//! by a daemon (`daemon::backfills`) — every per-date outcome recorded in the state DB.

pub mod driver;

pub use driver::{Launcher, run_here as execute};

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::dag::{Dag, Slot, schedule};
use crate::executor::ExecError;
use crate::store::{NewBackfill, RunState, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reprocess {
    /// Only dates without a run.
    None,
    /// Dates without a run and dates whose run failed.
    Failed,
    /// Every date whose run is finished (succeeded or failed).
    Completed,
}

impl FromStr for Reprocess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Reprocess::None),
            "failed" => Ok(Reprocess::Failed),
            "completed" => Ok(Reprocess::Completed),
            other => Err(format!("--reprocess `{other}` is not one of none, failed, completed")),
        }
    }
}

impl fmt::Display for Reprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reprocess::None => "none",
            Reprocess::Failed => "failed",
            Reprocess::Completed => "completed",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reprocess: Reprocess,
    /// Defaults to the DAG's `max_active_runs`.
    pub max_active_runs: Option<u32>,
    pub run_backwards: bool,
    pub conf: serde_json::Value,
    /// Most schedule slots the range may hold ([`DEFAULT_MAX_SLOTS`] unless `--max-slots`).
    pub max_slots: usize,
}

/// Slots one backfill may cover unless `--max-slots` says more: ten years of a daily DAG.
pub const DEFAULT_MAX_SLOTS: usize = 3660;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The request itself is wrong (exit code 2).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// What the backfill will do for one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// No run yet: create one.
    Create,
    /// Re-run the existing run (its previous state given).
    Rerun { run_pk: i64, previous: String },
    /// Resume a run whose process died (finished tasks are kept).
    Resume { run_pk: i64, previous: String },
    /// Leave the date alone.
    Skip { run_pk: i64, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDate {
    pub ds: NaiveDate,
    pub logical_date: DateTime<Utc>,
    #[serde(flatten)]
    pub action: Action,
    #[serde(skip)]
    pub slot: Slot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DateOutcome {
    pub ds: NaiveDate,
    pub logical_date: DateTime<Utc>,
    pub run_pk: Option<i64>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub backfill_id: i64,
    pub dag_id: String,
    pub dates: Vec<DateOutcome>,
}

impl Report {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.dates.iter().filter(|d| d.outcome == outcome).count()
    }
}

/// Checks the request against the DAG and works out what happens to each slot.
pub async fn plan(store: &Store, dag: &Dag, req: &Request) -> Result<Vec<PlannedDate>, BackfillError> {
    if req.from > req.to {
        return Err(BackfillError::Invalid(format!("--from {} is after --to {}", req.from, req.to)));
    }
    if let Some(start) = dag.start_date
        && req.from < start
    {
        return Err(BackfillError::Invalid(format!(
            "--from {} is before DAG `{}`'s start_date {start}",
            req.from, dag.id
        )));
    }
    if let Some(end) = dag.end_date
        && req.to > end
    {
        return Err(BackfillError::Invalid(format!("--to {} is after DAG `{}`'s end_date {end}", req.to, dag.id)));
    }
    if req.max_active_runs == Some(0) {
        return Err(BackfillError::Invalid("--max-active-runs must be at least 1".into()));
    }
    crate::executor::resolve_params(dag, &req.conf).map_err(BackfillError::Invalid)?;
    let Some(mut slots) =
        schedule::slots_between_at_most(dag.schedule.as_ref(), dag.timezone, req.from, req.to, req.max_slots)
    else {
        return Err(BackfillError::Invalid(format!(
            "--from {} --to {} holds more than {} schedule slots of DAG `{}`; backfill a shorter range, or raise \
             the limit with --max-slots",
            req.from, req.to, req.max_slots, dag.id
        )));
    };
    // One query for the runs already in the range, so planning is linear in the slots.
    let mut existing: HashMap<DateTime<Utc>, crate::store::RunRow> = match (slots.first(), slots.last()) {
        (Some(first), Some(last)) => store
            .runs_between(&dag.id, first.logical_date, last.logical_date)
            .await?
            .into_iter()
            .map(|r| (r.logical_date, r))
            .collect(),
        _ => HashMap::new(),
    };
    if req.run_backwards {
        slots.reverse();
    }
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        let action = match existing.remove(&slot.logical_date) {
            None => Action::Create,
            Some(run) if crate::executor::is_abandoned(&run, Utc::now()) => {
                Action::Resume { run_pk: run.id, previous: run.state.to_string() }
            }
            Some(run) => match (req.reprocess, run.state) {
                (_, RunState::Queued | RunState::Running) => {
                    Action::Skip { run_pk: run.id, reason: format!("run {} is {} already", run.id, run.state) }
                }
                (Reprocess::None, state) => Action::Skip {
                    run_pk: run.id,
                    reason: format!("already has run {} ({state}); use --reprocess to run it again", run.id),
                },
                (Reprocess::Failed, RunState::Success) => Action::Skip {
                    run_pk: run.id,
                    reason: format!("run {} succeeded; --reprocess failed re-runs only failed runs", run.id),
                },
                (Reprocess::Failed | Reprocess::Completed, state) => {
                    Action::Rerun { run_pk: run.id, previous: state.to_string() }
                }
            },
        };
        out.push(PlannedDate { ds: slot.ds, logical_date: slot.logical_date, action, slot });
    }
    Ok(out)
}

/// Records a backfill request: `queued` for the daemons, or `running` and leased to `holder`
/// (`owner`, lease) when this process drives it (a daemon takes it over if the lease runs out).
pub async fn record_request(
    store: &Store,
    dag: &Dag,
    req: &Request,
    holder: Option<(&str, std::time::Duration)>,
) -> Result<crate::store::BackfillRow, StoreError> {
    store
        .create_backfill(&NewBackfill {
            dag_id: &dag.id,
            from_date: req.from,
            to_date: req.to,
            reprocess: &req.reprocess.to_string(),
            max_active_runs: req.max_active_runs.unwrap_or(dag.max_active_runs).max(1),
            run_backwards: req.run_backwards,
            conf: &req.conf,
            holder,
        })
        .await
}

/// "task `transform` failed: <error>" for the first failed task of a run.
pub async fn failure_reason(store: &Store, run_pk: i64) -> Result<String, StoreError> {
    let tis = store.list_task_instances(run_pk).await?;
    let failed: Vec<_> = tis.iter().filter(|t| t.state == Some(crate::store::TaskState::Failed)).collect();
    Ok(match failed.first() {
        Some(t) => {
            let more = if failed.len() > 1 { format!(" (and {} more)", failed.len() - 1) } else { String::new() };
            format!("task `{}` failed: {}{more}", t.task_id, t.error.as_deref().unwrap_or("no error recorded"))
        }
        None => "run failed".into(),
    })
}
