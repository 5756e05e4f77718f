//! The one backfill driver. A backfill's dates are rows (`backfill_dates`) that [`step`]
//! advances, whoever drives it: the plan recorded first (skipped dates with their reason, the
//! others `pending`), each `running` date's outcome taken from its run once the run ends, pending
//! dates started `max_active_runs` at a time (oldest first, or newest with `run_backwards`),
//! pending dates skipped once the backfill is cancelled, and the backfill finished when no date
//! is open. Where a date's run executes is the [`Launcher`]'s business: a daemon queues it for
//! its workers (`daemon::backfills`); `tmctl backfill` without a daemon executes it in this
//! process ([`run_here`]). Either way the driver holds the backfill under a lease, so a driver
//! that dies (a killed CLI, a killed daemon) is replaced by a daemon that finishes the work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{Action, BackfillError, DateOutcome, Outcome, PlannedDate, Report, Request};
use crate::dag::{Dag, schedule};
use crate::executor::{ExecError, Executor, Prepared, prepare_run};
use crate::store::{BackfillDateRow, BackfillRow, RunRow, RunState, RunType, Store, StoreError};

/// How often a driver looks at its backfill when nothing wakes it (runs of other processes
/// ending, pause/resume/cancel from the UI or the CLI).
pub const STEP_EVERY: Duration = Duration::from_millis(300);

/// Where a backfill's runs execute.
pub trait Launcher: Send + Sync {
    /// The executor the runs are leased to when they are created (runs this process executes
    /// itself), or `None` (queued for any daemon's workers).
    fn holder(&self) -> Option<&Executor>;
    /// A date's run is ready (created, re-queued or resumed): start it.
    fn launch(&self, dag: &Arc<Dag>, run: RunRow);
}

/// What one [`step`] did.
#[derive(Debug, Default)]
pub struct Stepped {
    /// The backfill is finished (completed, failed or cancelled).
    pub finished: bool,
    /// Dates that reached their outcome in this step, in time order.
    pub ended: Vec<BackfillDateRow>,
}

/// The request a recorded backfill was made with.
pub fn request_of(b: &BackfillRow) -> Request {
    Request {
        from: b.from_date,
        to: b.to_date,
        reprocess: b.reprocess.parse().unwrap_or(super::Reprocess::None),
        max_active_runs: Some(b.max_active_runs),
        run_backwards: b.run_backwards,
        conf: b.conf.clone(),
        // The range was held to its limit when it was submitted.
        max_slots: usize::MAX,
    }
}

/// Records the plan of a backfill: skipped dates with their reason, the others pending.
/// Returns the skipped ones.
pub async fn record_plan(
    store: &Store,
    backfill_id: i64,
    planned: &[PlannedDate],
) -> Result<Vec<BackfillDateRow>, StoreError> {
    let mut skipped = Vec::new();
    for p in planned {
        let (outcome, run_pk, reason) = match &p.action {
            Action::Skip { run_pk, reason } => ("skipped", Some(*run_pk), Some(reason.clone())),
            Action::Rerun { run_pk, .. } | Action::Resume { run_pk, .. } => ("pending", Some(*run_pk), None),
            Action::Create => ("pending", None, None),
        };
        let row = BackfillDateRow {
            backfill_id,
            logical_date: p.logical_date,
            ds: p.ds,
            run_pk,
            outcome: outcome.into(),
            reason,
        };
        store.set_backfill_date(&row).await?;
        if outcome == "skipped" {
            skipped.push(row);
        }
    }
    Ok(skipped)
}

/// One look at backfill `b` of `dag` (see the module text). A backfill claimed before its plan
/// was recorded is planned here; one that can no longer be planned fails.
pub async fn step(
    store: &Store,
    b: &BackfillRow,
    dag: &Arc<Dag>,
    launcher: &dyn Launcher,
) -> Result<Stepped, StoreError> {
    let id = b.id;
    let req = request_of(b);
    let mut out = Stepped::default();
    let mut dates = store.list_backfill_dates(id).await?;
    if dates.is_empty() && b.state != "cancelled" {
        match super::plan(store, dag, &req).await {
            Ok(planned) => out.ended = record_plan(store, id, &planned).await?,
            Err(BackfillError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(backfill = id, error = %e, "backfill cannot be planned any more");
                store.finish_backfill(id, "failed").await?;
                out.finished = true;
                return Ok(out);
            }
        }
        store.transition_backfill(id, &["queued"], "running").await?;
        dates = store.list_backfill_dates(id).await?;
    } else if b.state == "queued" {
        store.transition_backfill(id, &["queued"], "running").await?;
    }
    if b.run_backwards {
        dates.reverse();
    }
    // Dates whose run ended.
    for date in dates.iter_mut().filter(|x| x.outcome == "running") {
        let Some(run_pk) = date.run_pk else { continue };
        let Some(run) = store.get_run(run_pk).await? else { continue };
        if run.state.is_finished() {
            let ok = run.state == RunState::Success;
            date.outcome = if ok { "succeeded" } else { "failed" }.into();
            date.reason = if ok { None } else { Some(super::failure_reason(store, run_pk).await?) };
            store.set_backfill_date(date).await?;
            out.ended.push(date.clone());
        }
    }
    let state = store.get_backfill(id).await?.map(|b| b.state).unwrap_or_default();
    if state == "cancelled" {
        for date in dates.iter_mut().filter(|x| x.outcome == "pending") {
            date.outcome = "skipped".into();
            date.reason = Some("backfill cancelled before this date started".into());
            store.set_backfill_date(date).await?;
            out.ended.push(date.clone());
        }
    }
    let running = dates.iter().filter(|x| x.outcome == "running").count();
    if state == "running" {
        let free = (b.max_active_runs as usize).saturating_sub(running);
        let mut slots: Option<Vec<crate::dag::Slot>> = None;
        for date in dates.iter_mut().filter(|x| x.outcome == "pending").take(free) {
            let slots = slots.get_or_insert_with(|| {
                schedule::slots_between(dag.schedule.as_ref(), dag.timezone, b.from_date, b.to_date)
            });
            // Slots come in time order: a binary search keeps each step linear in the range.
            let found = slots.binary_search_by_key(&date.logical_date, |s| s.logical_date).ok();
            let Some(slot) = found.map(|i| &slots[i]) else {
                date.outcome = "skipped".into();
                date.reason = Some("no longer a schedule slot of the DAG".into());
                store.set_backfill_date(date).await?;
                out.ended.push(date.clone());
                continue;
            };
            match prepare_run(store, dag, slot, RunType::Backfill, &req.conf, Some(id), launcher.holder()).await {
                Ok(Prepared::Created(run) | Prepared::Requeued(run) | Prepared::Resumed(run)) => {
                    date.outcome = "running".into();
                    date.run_pk = Some(run.id);
                    store.set_backfill_date(date).await?;
                    launcher.launch(dag, run);
                }
                Err(ExecError::InFlight(reason)) => {
                    // A run this backfill created whose date row a killed driver did not get to
                    // mark: a worker may have claimed it since. It is this date's run; follow it.
                    match store.find_run(&dag.id, date.logical_date).await? {
                        Some(run) if run.backfill_id == Some(id) && !run.state.is_finished() => {
                            date.outcome = "running".into();
                            date.run_pk = Some(run.id);
                        }
                        _ => {
                            date.outcome = "skipped".into();
                            date.reason = Some(reason);
                            out.ended.push(date.clone());
                        }
                    }
                    store.set_backfill_date(date).await?;
                }
                Err(ExecError::Invalid(reason)) => {
                    date.outcome = "skipped".into();
                    date.reason = Some(reason);
                    store.set_backfill_date(date).await?;
                    out.ended.push(date.clone());
                }
                Err(ExecError::Store(e)) => return Err(e),
            }
        }
    }
    out.ended.sort_by_key(|d| d.logical_date);
    let open = dates.iter().any(|x| x.outcome == "running" || (x.outcome == "pending" && state != "cancelled"));
    if open || state == "paused" {
        return Ok(out);
    }
    let end = match state.as_str() {
        "cancelled" => "cancelled",
        _ if dates.iter().any(|x| x.outcome == "failed") => "failed",
        _ => "completed",
    };
    store.finish_backfill(id, end).await?;
    tracing::info!(backfill = id, state = end, "backfill finished");
    out.finished = true;
    Ok(out)
}

/// A date row as the report's outcome (`None` while it is still open).
fn outcome_of(row: &BackfillDateRow) -> Option<DateOutcome> {
    let outcome = match row.outcome.as_str() {
        "succeeded" => Outcome::Succeeded,
        "failed" => Outcome::Failed,
        "skipped" => Outcome::Skipped,
        _ => return None,
    };
    Some(DateOutcome {
        ds: row.ds,
        logical_date: row.logical_date,
        run_pk: row.run_pk,
        outcome,
        reason: row.reason.clone(),
    })
}

/// Runs executed by this process's executor, each on its own task.
struct Here {
    exec: Executor,
    runs: Mutex<JoinSet<Result<(), ExecError>>>,
    /// Woken whenever one of them ends.
    ended: Arc<Notify>,
}

impl Launcher for Here {
    fn holder(&self) -> Option<&Executor> {
        Some(&self.exec)
    }

    fn launch(&self, dag: &Arc<Dag>, run: RunRow) {
        let (exec, dag, ended) = (self.exec.clone(), dag.clone(), self.ended.clone());
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.spawn(async move {
            let done = exec.execute(&dag, run.id).await.map(|_| ());
            ended.notify_one();
            done
        });
    }
}

impl Here {
    /// Collects the runs that ended; the first error of one.
    fn reap(&self) -> Result<(), ExecError> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(joined) = runs.try_join_next() {
            match joined {
                Ok(done) => done?,
                Err(e) => return Err(ExecError::Invalid(format!("a backfill run stopped: {e}"))),
            }
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Drives a backfill in this process: records it (leased to this process's executor) with
/// `planned` (the plan the caller computed and maybe showed), then steps it until it is
/// finished, executing its runs here; `on_date` is called as each date reaches its outcome.
/// Ctrl-C (the executor's cancel token) cancels the backfill: no new date starts, and the dates
/// whose run was stopped are reported as skipped (their runs go back to the queue).
pub async fn run_here(
    exec: &Executor,
    dag: &Dag,
    req: &Request,
    planned: Vec<PlannedDate>,
    on_date: &(dyn Fn(&DateOutcome) + Sync),
) -> Result<Report, BackfillError> {
    let store = exec.store().clone();
    let lease = exec.lease();
    let b = super::record_request(&store, dag, req, Some((exec.owner(), lease))).await?;
    let report = |ended: &[BackfillDateRow]| {
        for row in ended {
            if let Some(d) = outcome_of(row) {
                on_date(&d);
            }
        }
    };
    report(&record_plan(&store, b.id, &planned).await?);
    let dag = Arc::new(dag.clone());
    let here = Here { exec: exec.clone(), runs: Mutex::new(JoinSet::new()), ended: Arc::new(Notify::new()) };
    let cancel = exec.cancel_token();
    let mut cancelled = false;
    loop {
        here.reap()?;
        if cancel.is_cancelled() && !cancelled {
            cancelled = true;
            store.transition_backfill(b.id, &["running", "paused"], "cancelled").await?;
        }
        if !store.renew_backfill_lease(b.id, exec.owner(), lease).await? {
            tracing::warn!(backfill = b.id, "another process took this backfill over; stopping here");
            break;
        }
        let Some(row) = store.get_backfill(b.id).await? else { break };
        let stepped = step(&store, &row, &dag, &here).await?;
        report(&stepped.ended);
        if stepped.finished {
            break;
        }
        if cancelled && here.in_flight() == 0 {
            // The runs stopped by Ctrl-C went back to the queue: their dates end here.
            for mut date in store.list_backfill_dates(b.id).await?.into_iter().filter(|d| d.outcome == "running") {
                date.outcome = "skipped".into();
                date.reason = Some("backfill cancelled while this date ran (its run is queued again)".into());
                store.set_backfill_date(&date).await?;
                report(std::slice::from_ref(&date));
            }
            continue;
        }
        tokio::select! {
            _ = here.ended.notified() => {}
            _ = cancel.cancelled(), if !cancelled => {}
            _ = tokio::time::sleep(STEP_EVERY) => {}
        }
    }
    // Runs still going (the backfill was taken over): let them end, they are this process's.
    let mut runs = std::mem::take(&mut *here.runs.lock().unwrap_or_else(|p| p.into_inner()));
    while let Some(joined) = runs.join_next().await {
        joined.map_err(|e| ExecError::Invalid(format!("a backfill run stopped: {e}")))??;
    }
    let mut dates: Vec<DateOutcome> = store.list_backfill_dates(b.id).await?.iter().filter_map(outcome_of).collect();
    dates.sort_by_key(|d| d.logical_date);
    if req.run_backwards {
        dates.reverse();
    }
    Ok(Report { backfill_id: b.id, dag_id: dag.id.clone(), dates })
}
