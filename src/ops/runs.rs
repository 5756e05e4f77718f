//! Run operations of the UI and the API: trigger, clear (+ downstream), mark, pause/unpause,
//! submit a backfill and pause/resume/cancel one. Each needs the operator role and is audited.

use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::Value;

use super::{Actor, OpError, Role, audited, require};
use crate::backfill::{BackfillError, Request};
use crate::daemon::Daemon;
use crate::dag::{Dag, schedule};
use crate::executor::{Prepared, prepare_run};
use crate::store::{BackfillRow, RunRow, RunState, RunType, Store, StoreError, TaskState};

fn dag(d: &Daemon, dag_id: &str) -> Result<Arc<Dag>, OpError> {
    d.dag(dag_id).ok_or_else(|| OpError::NotFound(format!("no DAG `{dag_id}`")))
}

/// Queues a manual run of `dag_id` for `date` (a worker picks it up at once); `Conflict` if the
/// date's run is queued or running.
pub async fn trigger(
    d: &Daemon,
    actor: &Actor,
    dag_id: &str,
    date: NaiveDate,
    conf: &Value,
) -> Result<RunRow, OpError> {
    let outcome = async {
        require(actor, Role::Operator, "trigger a run")?;
        let dag = dag(d, dag_id)?;
        let slot = schedule::slot_for_date(dag.schedule.as_ref(), dag.timezone, date);
        let run = match prepare_run(&d.store, &dag, &slot, RunType::Manual, conf, None, None).await? {
            Prepared::Created(r) | Prepared::Requeued(r) | Prepared::Resumed(r) => r,
        };
        d.wake.notify_waiters();
        tracing::info!(dag = %dag.id, run = run.id, ds = %run.ds, user = %actor.name, "run triggered");
        Ok(run)
    }
    .await;
    audited(&d.store, actor, "trigger", &format!("dag {dag_id} {date}"), outcome).await
}

pub async fn set_paused(d: &Daemon, actor: &Actor, dag_id: &str, paused: bool) -> Result<(), OpError> {
    let action = if paused { "pause" } else { "unpause" };
    let outcome = async {
        require(actor, Role::Operator, &format!("{action} a DAG"))?;
        let dag = dag(d, dag_id)?;
        d.store.set_paused(&dag.id, paused).await?;
        tracing::info!(dag = %dag.id, paused, user = %actor.name, "pause flag set");
        Ok(())
    }
    .await;
    audited(&d.store, actor, action, &format!("dag {dag_id}"), outcome).await
}

/// The run, its DAG and the check that the DAG has the task and the run has finished.
async fn finished_run_with_task(
    d: &Daemon,
    run_pk: i64,
    task_id: &str,
    action: &str,
) -> Result<(RunRow, Arc<Dag>), OpError> {
    let run = d.store.get_run(run_pk).await?.ok_or_else(|| OpError::NotFound(format!("no run {run_pk}")))?;
    let dag = d
        .dag(&run.dag_id)
        .ok_or_else(|| OpError::NotFound(format!("DAG `{}` of run {run_pk} is not loaded", run.dag_id)))?;
    if dag.task(task_id).is_none() {
        return Err(OpError::NotFound(format!("DAG `{}` has no task `{task_id}`", dag.id)));
    }
    if !run.state.is_finished() {
        return Err(OpError::Conflict(format!(
            "run {run_pk} is {}; {action} its tasks once it has finished",
            run.state
        )));
    }
    Ok((run, dag))
}

/// Clears a task (and, with `downstream`, everything downstream of it) in a finished run so it
/// runs again: the cleared tasks get their tries back, the others keep their state, and the run
/// goes back to `queued` for a worker. Returns the cleared task ids in topological order.
pub async fn clear(
    d: &Daemon,
    actor: &Actor,
    run_pk: i64,
    task_id: &str,
    downstream: bool,
) -> Result<Vec<String>, OpError> {
    let outcome = async {
        require(actor, Role::Operator, "clear tasks")?;
        let (run, dag) = finished_run_with_task(d, run_pk, task_id, "clear").await?;
        let ids: Vec<&str> = if downstream { dag.with_downstream(task_id) } else { vec![task_id] };
        let tasks: Vec<(&str, u32)> =
            ids.iter().map(|id| (*id, dag.task(id).map(|t| t.policy.max_tries()).unwrap_or(1))).collect();
        d.store.clear_task_instances(run.id, &tasks).await?;
        d.store.requeue_run(run.id, &run.conf, None, None).await?;
        d.wake.notify_waiters();
        tracing::info!(run = run.id, task = task_id, downstream, cleared = ids.len(), user = %actor.name, "tasks cleared");
        Ok(ids.into_iter().map(String::from).collect())
    }
    .await;
    let what = if downstream { "clear+downstream" } else { "clear" };
    audited(&d.store, actor, what, &format!("run {run_pk} task {task_id}"), outcome).await
}

/// Marks a task of a finished run `success` or `failed` (no try is recorded) and recomputes the
/// run's state: success when every task succeeded or was skipped, else failed.
pub async fn mark(d: &Daemon, actor: &Actor, run_pk: i64, task_id: &str, state: &str) -> Result<RunState, OpError> {
    let outcome = async {
        require(actor, Role::Operator, "mark tasks")?;
        let state = match state {
            "success" => TaskState::Success,
            "failed" => TaskState::Failed,
            other => return Err(OpError::Invalid(format!("state `{other}` cannot be set; use success or failed"))),
        };
        let (run, _dag) = finished_run_with_task(d, run_pk, task_id, "mark").await?;
        let tis = d.store.list_task_instances(run.id).await?;
        let ti = tis
            .iter()
            .find(|t| t.task_id == task_id)
            .ok_or_else(|| OpError::NotFound(format!("run {run_pk} has no task instance `{task_id}`")))?;
        let error = (state == TaskState::Failed).then(|| format!("marked failed by {}", actor.name));
        d.store.set_task_state(ti.id, Some(state), error.as_deref()).await?;
        let all_ok = tis.iter().all(|t| {
            let s = if t.id == ti.id { Some(state) } else { t.state };
            matches!(s, Some(TaskState::Success | TaskState::Skipped))
        });
        let run_state = if all_ok { RunState::Success } else { RunState::Failed };
        if run_state != run.state {
            d.store.set_run_state(run.id, run_state).await?;
        }
        tracing::info!(run = run.id, task = task_id, state = %state, user = %actor.name, "task marked");
        Ok(run_state)
    }
    .await;
    let target: String = format!("run {run_pk} task {task_id} as {state}").chars().take(300).collect();
    audited(&d.store, actor, "mark", &target, outcome).await
}

/// Hands a backfill to the daemons (`daemon::backfills` drives it).
pub async fn submit_backfill(d: &Daemon, actor: &Actor, dag_id: &str, req: &Request) -> Result<BackfillRow, OpError> {
    let outcome = async {
        require(actor, Role::Operator, "start a backfill")?;
        let dag = dag(d, dag_id)?;
        crate::daemon::backfills::submit(&d.store, &dag, req).await.map_err(|e| match e {
            BackfillError::Invalid(m) => OpError::Invalid(m),
            BackfillError::Store(e) => e.into(),
            BackfillError::Exec(e) => e.into(),
        })
    }
    .await;
    audited(&d.store, actor, "backfill", &format!("dag {dag_id} {}..{}", req.from, req.to), outcome).await
}

/// `pause`, `resume` or `cancel` a backfill; returns its new state.
pub async fn change_backfill(d: &Daemon, actor: &Actor, id: i64, action: &str) -> Result<&'static str, OpError> {
    let outcome = async {
        require(actor, Role::Operator, &format!("{action} a backfill"))?;
        let b = d.store.get_backfill(id).await?.ok_or_else(|| OpError::NotFound(format!("no backfill {id}")))?;
        match change_backfill_state(&d.store, id, action).await? {
            Ok(state) => Ok(state),
            Err(m) if m.starts_with("unknown") => Err(OpError::NotFound(m)),
            Err(m) => Err(OpError::Conflict(format!("backfill {id} is {}: {m}", b.state))),
        }
    }
    .await;
    audited(&d.store, actor, &format!("backfill {action}"), &format!("backfill {id}"), outcome).await
}

/// Pause, resume or cancel a backfill in the store: `Ok(Ok(new state))`, or `Ok(Err(why not))`.
/// (`tmctl backfill pause|resume|cancel` calls it directly.)
pub async fn change_backfill_state(
    store: &Store,
    id: i64,
    action: &str,
) -> Result<Result<&'static str, String>, StoreError> {
    let (from, to): (&[&str], &'static str) = match action {
        "pause" => (&["queued", "running"], "paused"),
        "resume" => (&["paused"], "running"),
        "cancel" => (&["queued", "running", "paused"], "cancelled"),
        other => return Ok(Err(format!("unknown action `{other}` (pause, resume, cancel)"))),
    };
    if store.transition_backfill(id, from, to).await? { Ok(Ok(to)) } else { Ok(Err(format!("cannot {action} it"))) }
}
