//! Backfills owned by the daemons. `tmctl backfill` (or `POST /api/v1/backfills`) records a
//! backfill as `queued` with its plan checked; a daemon claims it under a lease and drives it:
//! it records every date's planned outcome, queues runs `max_active_runs` at a time (oldest
//! first, or newest with `run_backwards`), which any daemon's workers execute, and records each
//! date's outcome as its run ends. The CLI can exit at any point; pause, resume and cancel are
//! state changes on the row that the driver follows.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Daemon;
use crate::backfill::{self, Action, BackfillError, Request};
use crate::dag::{Dag, schedule};
use crate::executor::{ExecError, Prepared, prepare_run};
use crate::store::{BackfillDateRow, BackfillRow, RunType, Store, StoreError};

/// How often the driver looks at its backfills (runs finishing, new requests, state changes).
const STEP_EVERY: Duration = Duration::from_millis(300);

/// Checks a backfill request as the in-process backfill would (bad dates, unknown params…) and
/// records it for the daemons. Returns the queued backfill.
pub async fn submit(store: &Store, dag: &Dag, req: &Request) -> Result<BackfillRow, BackfillError> {
    backfill::plan(store, dag, req).await?;
    Ok(backfill::record_request(store, dag, req, "queued").await?)
}

/// Claims backfills and drives them until shutdown (then hands them back, unfinished).
pub async fn run(d: Arc<Daemon>) {
    let mut driving: BTreeSet<i64> = BTreeSet::new();
    loop {
        loop {
            match d.store.claim_backfill(&d.id, Utc::now(), d.settings.daemon.lease).await {
                Ok(Some(b)) => {
                    tracing::info!(backfill = b.id, dag = %b.dag_id, "driving backfill");
                    driving.insert(b.id);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim backfills");
                    break;
                }
            }
        }
        let mut finished = Vec::new();
        for &id in &driving {
            match step(&d, id).await {
                Ok(true) => finished.push(id),
                Ok(false) => {}
                Err(e) => tracing::warn!(backfill = id, error = %e, "backfill step failed"),
            }
        }
        for id in finished {
            driving.remove(&id);
        }
        tokio::select! {
            _ = d.shutdown.cancelled() => break,
            _ = tokio::time::sleep(STEP_EVERY) => {}
        }
    }
    for id in driving {
        if let Err(e) = d.store.release_backfill(id, &d.id).await {
            tracing::warn!(backfill = id, error = %e, "cannot release backfill");
        }
    }
}

/// One look at a backfill; true once this daemon is done with it (finished, or taken over).
async fn step(d: &Daemon, id: i64) -> Result<bool, StoreError> {
    if !d.store.renew_backfill_lease(id, &d.id, d.settings.daemon.lease).await? {
        return Ok(true);
    }
    let Some(b) = d.store.get_backfill(id).await? else { return Ok(true) };
    let Some(dag) = d.dag(&b.dag_id) else {
        tracing::warn!(backfill = id, dag = %b.dag_id, "backfill of a DAG this daemon has not loaded; handing it back");
        d.store.release_backfill(id, &d.id).await?;
        return Ok(true);
    };
    let req = Request {
        from: b.from_date,
        to: b.to_date,
        reprocess: b.reprocess.parse().unwrap_or(backfill::Reprocess::None),
        max_active_runs: Some(b.max_active_runs),
        run_backwards: b.run_backwards,
        conf: b.conf.clone(),
        // The range was held to its limit when it was submitted.
        max_slots: usize::MAX,
    };
    let mut dates = d.store.list_backfill_dates(id).await?;
    if dates.is_empty() && b.state != "cancelled" {
        start(d, &b, &dag, &req).await?;
        dates = d.store.list_backfill_dates(id).await?;
    } else if b.state == "queued" {
        d.store.transition_backfill(id, &["queued"], "running").await?;
    }
    if b.run_backwards {
        dates.reverse();
    }
    // Dates whose run ended.
    for date in dates.iter_mut().filter(|x| x.outcome == "running") {
        let Some(run_pk) = date.run_pk else { continue };
        let Some(run) = d.store.get_run(run_pk).await? else { continue };
        if run.state.is_finished() {
            let ok = run.state == crate::store::RunState::Success;
            date.outcome = if ok { "succeeded" } else { "failed" }.into();
            date.reason = if ok { None } else { Some(backfill::failure_reason(&d.store, run_pk).await?) };
            d.store.set_backfill_date(date).await?;
        }
    }
    let state = d.store.get_backfill(id).await?.map(|b| b.state).unwrap_or_default();
    if state == "cancelled" {
        for date in dates.iter_mut().filter(|x| x.outcome == "pending") {
            date.outcome = "skipped".into();
            date.reason = Some("backfill cancelled before this date started".into());
            d.store.set_backfill_date(date).await?;
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
                d.store.set_backfill_date(date).await?;
                continue;
            };
            match prepare_run(&d.store, &dag, slot, RunType::Backfill, &req.conf, Some(id), None).await {
                Ok(Prepared::Created(run) | Prepared::Requeued(run) | Prepared::Resumed(run)) => {
                    date.outcome = "running".into();
                    date.run_pk = Some(run.id);
                    d.wake.notify_waiters();
                }
                Err(ExecError::Invalid(reason) | ExecError::InFlight(reason)) => {
                    date.outcome = "skipped".into();
                    date.reason = Some(reason);
                }
                Err(ExecError::Store(e)) => return Err(e),
            }
            d.store.set_backfill_date(date).await?;
        }
    }
    let open = dates.iter().any(|x| x.outcome == "running" || (x.outcome == "pending" && state != "cancelled"));
    if open || state == "paused" {
        return Ok(false);
    }
    let end = match state.as_str() {
        "cancelled" => "cancelled",
        _ if dates.iter().any(|x| x.outcome == "failed") => "failed",
        _ => "completed",
    };
    d.store.finish_backfill(id, end).await?;
    tracing::info!(backfill = id, state = end, "backfill finished");
    Ok(true)
}

/// Records the plan of a newly claimed backfill and sets it running.
async fn start(d: &Daemon, b: &BackfillRow, dag: &Dag, req: &Request) -> Result<(), StoreError> {
    let planned = match backfill::plan(&d.store, dag, req).await {
        Ok(p) => p,
        Err(BackfillError::Store(e)) => return Err(e),
        Err(e) => {
            tracing::warn!(backfill = b.id, error = %e, "backfill cannot be planned any more");
            d.store.finish_backfill(b.id, "failed").await?;
            return Ok(());
        }
    };
    for p in &planned {
        let (outcome, run_pk, reason) = match &p.action {
            Action::Skip { run_pk, reason } => ("skipped", Some(*run_pk), Some(reason.clone())),
            Action::Rerun { run_pk, .. } | Action::Resume { run_pk, .. } => ("pending", Some(*run_pk), None),
            Action::Create => ("pending", None, None),
        };
        d.store
            .set_backfill_date(&BackfillDateRow {
                backfill_id: b.id,
                logical_date: p.logical_date,
                ds: p.ds,
                run_pk,
                outcome: outcome.into(),
                reason,
            })
            .await?;
    }
    d.store.transition_backfill(b.id, &["queued"], "running").await?;
    Ok(())
}
