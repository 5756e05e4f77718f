//! The HTTP side of `tmctl serve`: `/health` and the JSON API under `/api/v1`. Reads are open
//! (the daemon binds to 127.0.0.1 by default); every mutating call needs
//! `Authorization: Bearer <token>` (401 without one, 403 with a wrong one).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Daemon;
use crate::backfill::{BackfillError, Request};
use crate::dag::schedule;
use crate::executor::{ExecError, Prepared, prepare_run};
use crate::store::{RunFilter, RunRow, RunState, RunType, StoreError, TaskState};

pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/dags", get(list_dags))
        .route("/api/v1/dags/{dag_id}", get(show_dag))
        .route("/api/v1/dags/{dag_id}/runs", get(list_runs).post(trigger))
        .route("/api/v1/dags/{dag_id}/pause", post(pause))
        .route("/api/v1/dags/{dag_id}/unpause", post(unpause))
        .route("/api/v1/runs/{run_pk}", get(show_run))
        .route("/api/v1/runs/{run_pk}/tasks/{task_id}", get(show_task))
        .route("/api/v1/runs/{run_pk}/tasks/{task_id}/clear", post(clear_task_api))
        .route("/api/v1/runs/{run_pk}/tasks/{task_id}/mark", post(mark_task_api))
        .route("/api/v1/backfills", get(list_backfills).post(submit_backfill))
        .route("/api/v1/backfills/{id}", get(show_backfill))
        .route("/api/v1/backfills/{id}/{action}", post(change_backfill))
        .merge(crate::web::router())
        .with_state(d)
}

/// An API error: a status and `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "state DB error in API call");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("state DB error: {e}"))
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, message.into())
}

/// Checks the bearer token of a mutating call.
fn authorize(d: &Daemon, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError(StatusCode::UNAUTHORIZED, "this call needs `Authorization: Bearer <token>`".into()));
    };
    let given = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
    if constant_time_eq(given.as_bytes(), d.token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError(StatusCode::FORBIDDEN, "the token is not valid".into()))
    }
}

/// Compares without stopping at the first difference, so timing says nothing about the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn dag_or_404(d: &Daemon, dag_id: &str) -> Result<Arc<crate::dag::Dag>, ApiError> {
    d.dag(dag_id).ok_or_else(|| not_found(format!("no DAG `{dag_id}`")))
}

async fn health(State(d): State<Arc<Daemon>>) -> ApiResult {
    let db_ok = d.store.paused_flags().await.is_ok();
    let status = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((
        status,
        Json(json!({
            "status": if db_ok { "ok" } else { "state DB unreachable" },
            "daemon": d.id,
            "dags": d.dags().len(),
        })),
    )
        .into_response())
}

pub fn run_json(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "dag_id": r.dag_id,
        "run_id": r.run_id,
        "run_type": r.run_type.as_str(),
        "logical_date": r.logical_date.to_rfc3339(),
        "ds": r.ds.to_string(),
        "data_interval_start": r.data_interval_start.to_rfc3339(),
        "data_interval_end": r.data_interval_end.to_rfc3339(),
        "state": r.state.as_str(),
        "conf": crate::secrets::mask_conf(&r.conf),
        "backfill_id": r.backfill_id,
        "started_at": r.started_at.map(|t| t.to_rfc3339()),
        "ended_at": r.ended_at.map(|t| t.to_rfc3339()),
        "owner": r.owner,
    })
}

async fn list_dags(State(d): State<Arc<Daemon>>) -> ApiResult {
    let paused = d.store.paused_flags().await?;
    let now = chrono::Utc::now();
    let dags: Vec<Value> = d
        .dags()
        .values()
        .map(|dag| {
            json!({
                "dag_id": dag.id,
                "description": dag.description,
                "schedule": dag.schedule.as_ref().map(|s| s.expr.clone()),
                "timezone": dag.timezone.name(),
                "paused": paused.get(&dag.id).copied().unwrap_or(false),
                "next_fire": dag.schedule.as_ref().and_then(|s| s.next_after(now, dag.timezone)).map(|t| t.to_rfc3339()),
                "tasks": dag.tasks.len(),
            })
        })
        .collect();
    Ok(Json(json!({ "dags": dags })).into_response())
}

async fn show_dag(State(d): State<Arc<Daemon>>, Path(dag_id): Path<String>) -> ApiResult {
    let dag = dag_or_404(&d, &dag_id)?;
    let tasks: Vec<Value> = dag
        .topological()
        .map(|t| json!({ "task_id": t.id, "kind": t.kind, "depends_on": dag.upstream(&t.id) }))
        .collect();
    let params: serde_json::Map<String, Value> = dag
        .params
        .iter()
        .map(|(k, p)| (k.clone(), json!({ "type": p.ty.name(), "default": p.default, "description": p.description })))
        .collect();
    Ok(Json(json!({
        "dag_id": dag.id,
        "description": dag.description,
        "schedule": dag.schedule.as_ref().map(|s| s.expr.clone()),
        "timezone": dag.timezone.name(),
        "paused": d.store.is_paused(&dag.id).await?,
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "params": params,
        "tasks": tasks,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
}

async fn list_runs(State(d): State<Arc<Daemon>>, Path(dag_id): Path<String>, Query(page): Query<Page>) -> ApiResult {
    let limit = page.limit.unwrap_or(50).clamp(1, 1000);
    let runs = d.store.list_runs(&RunFilter { dag_id: Some(&dag_id), state: None, limit }).await?;
    Ok(Json(json!({ "dag_id": dag_id, "runs": runs.iter().map(run_json).collect::<Vec<_>>() })).into_response())
}

#[derive(Deserialize)]
struct TriggerBody {
    logical_date: String,
    #[serde(default)]
    conf: Value,
}

/// `POST /api/v1/dags/{dag_id}/runs` `{"logical_date": "YYYY-MM-DD", "conf": {...}}`: queues a
/// manual run for that date (a workers picks it up at once); 409 if the date's run is in flight.
async fn trigger(
    State(d): State<Arc<Daemon>>,
    Path(dag_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<TriggerBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    authorize(&d, &headers)?;
    let Json(body) =
        body.map_err(|e| bad(format!("body must be {{\"logical_date\": \"YYYY-MM-DD\", \"conf\": {{}}}}: {e}")))?;
    let dag = dag_or_404(&d, &dag_id)?;
    let date = NaiveDate::parse_from_str(&body.logical_date, "%Y-%m-%d")
        .map_err(|_| bad(format!("logical_date `{}` is not a date like 2025-01-31", body.logical_date)))?;
    let slot = schedule::slot_for_date(dag.schedule.as_ref(), dag.timezone, date);
    let prepared = prepare_run(&d.store, &dag, &slot, RunType::Manual, &body.conf, None, None).await;
    let run = match prepared {
        Ok(Prepared::Created(r) | Prepared::Requeued(r) | Prepared::Resumed(r)) => r,
        Err(ExecError::Invalid(m)) if m.contains("already") => return Err(ApiError(StatusCode::CONFLICT, m)),
        Err(ExecError::Invalid(m)) => return Err(bad(m)),
        Err(ExecError::Store(e)) => return Err(e.into()),
    };
    d.wake.notify_waiters();
    Ok((StatusCode::CREATED, Json(run_json(&run))).into_response())
}

async fn set_pause(d: &Daemon, headers: &HeaderMap, dag_id: &str, paused: bool) -> ApiResult {
    authorize(d, headers)?;
    dag_or_404(d, dag_id)?;
    d.store.set_paused(dag_id, paused).await?;
    Ok(Json(json!({ "dag_id": dag_id, "paused": paused })).into_response())
}

async fn pause(State(d): State<Arc<Daemon>>, Path(dag_id): Path<String>, headers: HeaderMap) -> ApiResult {
    set_pause(&d, &headers, &dag_id, true).await
}

async fn unpause(State(d): State<Arc<Daemon>>, Path(dag_id): Path<String>, headers: HeaderMap) -> ApiResult {
    set_pause(&d, &headers, &dag_id, false).await
}

async fn show_run(State(d): State<Arc<Daemon>>, Path(run_pk): Path<i64>) -> ApiResult {
    let run = d.store.get_run(run_pk).await?.ok_or_else(|| not_found(format!("no run {run_pk}")))?;
    let tis = d.store.list_task_instances(run_pk).await?;
    let mut v = run_json(&run);
    v["tasks"] = tis
        .iter()
        .map(|t| {
            json!({
                "task_id": t.task_id, "kind": t.kind, "state": t.state.map(|s| s.as_str()),
                "try_number": t.try_number, "max_tries": t.max_tries,
                "started_at": t.started_at.map(|x| x.to_rfc3339()), "ended_at": t.ended_at.map(|x| x.to_rfc3339()),
                "duration_ms": t.duration_ms, "error": t.error,
            })
        })
        .collect();
    Ok(Json(v).into_response())
}

async fn show_task(State(d): State<Arc<Daemon>>, Path((run_pk, task_id)): Path<(i64, String)>) -> ApiResult {
    let attempts = d.store.list_attempts(run_pk, &task_id).await?;
    if attempts.is_empty() && d.store.get_run(run_pk).await?.is_none() {
        return Err(not_found(format!("no run {run_pk}")));
    }
    let tries: Vec<Value> = attempts
        .iter()
        .map(|a| {
            json!({
                "try_number": a.try_number, "state": a.state.as_str(), "hostname": a.hostname, "pid": a.pid,
                "started_at": a.started_at.to_rfc3339(), "ended_at": a.ended_at.map(|t| t.to_rfc3339()),
                "duration_ms": a.duration_ms, "error": a.error, "output": a.output, "log": a.log,
            })
        })
        .collect();
    Ok(Json(json!({ "run_id": run_pk, "task_id": task_id, "tries": tries })).into_response())
}

pub fn backfill_json(b: &crate::store::BackfillRow, dates: &[crate::store::BackfillDateRow]) -> Value {
    let count = |o: &str| dates.iter().filter(|d| d.outcome == o).count();
    json!({
        "id": b.id,
        "dag_id": b.dag_id,
        "from": b.from_date.to_string(),
        "to": b.to_date.to_string(),
        "reprocess": b.reprocess,
        "max_active_runs": b.max_active_runs,
        "run_backwards": b.run_backwards,
        "state": b.state,
        "owner": b.owner,
        "created_at": b.created_at.to_rfc3339(),
        "completed_at": b.completed_at.map(|t| t.to_rfc3339()),
        "counts": {
            "pending": count("pending"), "running": count("running"), "succeeded": count("succeeded"),
            "failed": count("failed"), "skipped": count("skipped"),
        },
        "dates": dates.iter().map(|x| json!({
            "ds": x.ds.to_string(), "logical_date": x.logical_date.to_rfc3339(), "run_id": x.run_pk,
            "outcome": x.outcome, "reason": x.reason,
        })).collect::<Vec<_>>(),
    })
}

async fn list_backfills(State(d): State<Arc<Daemon>>, Query(page): Query<Page>) -> ApiResult {
    let rows = d.store.list_backfills(None, page.limit.unwrap_or(50).clamp(1, 1000)).await?;
    Ok(Json(json!({ "backfills": rows.iter().map(|b| backfill_json(b, &[])).collect::<Vec<_>>() })).into_response())
}

async fn show_backfill(State(d): State<Arc<Daemon>>, Path(id): Path<i64>) -> ApiResult {
    let b = d.store.get_backfill(id).await?.ok_or_else(|| not_found(format!("no backfill {id}")))?;
    let dates = d.store.list_backfill_dates(id).await?;
    Ok(Json(backfill_json(&b, &dates)).into_response())
}

#[derive(Deserialize)]
struct BackfillBody {
    dag_id: String,
    from: String,
    to: String,
    #[serde(default)]
    reprocess: Option<String>,
    #[serde(default)]
    max_active_runs: Option<u32>,
    #[serde(default)]
    run_backwards: bool,
    #[serde(default)]
    conf: Value,
    /// Most schedule slots the range may hold (default `backfill::DEFAULT_MAX_SLOTS`).
    #[serde(default)]
    max_slots: Option<usize>,
}

async fn submit_backfill(
    State(d): State<Arc<Daemon>>,
    headers: HeaderMap,
    body: Result<Json<BackfillBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    authorize(&d, &headers)?;
    let Json(body) = body.map_err(|e| bad(format!("bad backfill request: {e}")))?;
    let dag = dag_or_404(&d, &body.dag_id)?;
    let date = |name: &str, v: &str| {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| bad(format!("`{name}` = `{v}` is not a date like 2025-01-31")))
    };
    let req = Request {
        from: date("from", &body.from)?,
        to: date("to", &body.to)?,
        reprocess: body.reprocess.as_deref().unwrap_or("none").parse().map_err(bad)?,
        max_active_runs: body.max_active_runs,
        run_backwards: body.run_backwards,
        conf: body.conf,
        max_slots: body.max_slots.unwrap_or(crate::backfill::DEFAULT_MAX_SLOTS),
    };
    let b = super::backfills::submit(&d.store, &dag, &req).await.map_err(|e| match e {
        BackfillError::Invalid(m) => bad(m),
        BackfillError::Store(e) => e.into(),
        BackfillError::Exec(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    Ok((StatusCode::CREATED, Json(backfill_json(&b, &[]))).into_response())
}

/// `POST /api/v1/backfills/{id}/pause|resume|cancel`.
async fn change_backfill(
    State(d): State<Arc<Daemon>>,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&d, &headers)?;
    let b = d.store.get_backfill(id).await?.ok_or_else(|| not_found(format!("no backfill {id}")))?;
    match change_backfill_state(&d.store, id, &action).await? {
        Ok(state) => Ok(Json(json!({ "id": id, "state": state })).into_response()),
        Err(m) if m.starts_with("unknown") => Err(not_found(m)),
        Err(m) => Err(ApiError(StatusCode::CONFLICT, format!("backfill {id} is {}: {m}", b.state))),
    }
}

/// Pause, resume or cancel a backfill: `Ok(Ok(new state))`, or `Ok(Err(why not))`.
pub async fn change_backfill_state(
    store: &crate::store::Store,
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

/// Why a task action (clear, mark) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    NotFound(String),
    /// The run is in a state that does not allow it (e.g. still running).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound(m) => not_found(m),
            ActionError::Conflict(m) => ApiError(StatusCode::CONFLICT, m),
            ActionError::Invalid(m) => bad(m),
            ActionError::Store(e) => e.into(),
        }
    }
}

/// The run, its DAG and the check that the DAG has the task and the run has finished.
async fn finished_run_with_task(
    d: &Daemon,
    run_pk: i64,
    task_id: &str,
    action: &str,
) -> Result<(RunRow, Arc<crate::dag::Dag>), ActionError> {
    let run = d.store.get_run(run_pk).await?.ok_or_else(|| ActionError::NotFound(format!("no run {run_pk}")))?;
    let dag = d
        .dag(&run.dag_id)
        .ok_or_else(|| ActionError::NotFound(format!("DAG `{}` of run {run_pk} is not loaded", run.dag_id)))?;
    if dag.task(task_id).is_none() {
        return Err(ActionError::NotFound(format!("DAG `{}` has no task `{task_id}`", dag.id)));
    }
    if !run.state.is_finished() {
        return Err(ActionError::Conflict(format!(
            "run {run_pk} is {}; {action} its tasks once it has finished",
            run.state
        )));
    }
    Ok((run, dag))
}

/// Clears a task (and, with `downstream`, everything downstream of it) in a finished run so it
/// runs again: the cleared tasks get their tries back, the others keep their state, and the run
/// goes back to `queued` for a worker. Returns the cleared task ids in topological order.
pub async fn clear_task(d: &Daemon, run_pk: i64, task_id: &str, downstream: bool) -> Result<Vec<String>, ActionError> {
    let (run, dag) = finished_run_with_task(d, run_pk, task_id, "clear").await?;
    let ids: Vec<&str> = if downstream { dag.with_downstream(task_id) } else { vec![task_id] };
    let tasks: Vec<(&str, u32)> =
        ids.iter().map(|id| (*id, dag.task(id).map(|t| t.policy.max_tries()).unwrap_or(1))).collect();
    d.store.clear_task_instances(run.id, &tasks).await?;
    d.store.requeue_run(run.id, &run.conf, None, None).await?;
    d.wake.notify_waiters();
    tracing::info!(run = run.id, task = task_id, downstream, cleared = ids.len(), "tasks cleared");
    Ok(ids.into_iter().map(String::from).collect())
}

/// Marks a task of a finished run `success` or `failed` (no try is recorded) and recomputes the
/// run's state: success when every task succeeded or was skipped, else failed.
pub async fn mark_task(d: &Daemon, run_pk: i64, task_id: &str, state: &str, by: &str) -> Result<RunState, ActionError> {
    let state = match state {
        "success" => TaskState::Success,
        "failed" => TaskState::Failed,
        other => return Err(ActionError::Invalid(format!("state `{other}` cannot be set; use success or failed"))),
    };
    let (run, _dag) = finished_run_with_task(d, run_pk, task_id, "mark").await?;
    let tis = d.store.list_task_instances(run.id).await?;
    let ti = tis
        .iter()
        .find(|t| t.task_id == task_id)
        .ok_or_else(|| ActionError::NotFound(format!("run {run_pk} has no task instance `{task_id}`")))?;
    let error = (state == TaskState::Failed).then(|| format!("marked failed by {by}"));
    d.store.set_task_state(ti.id, Some(state), error.as_deref()).await?;
    let all_ok = tis.iter().all(|t| {
        let s = if t.id == ti.id { Some(state) } else { t.state };
        matches!(s, Some(TaskState::Success | TaskState::Skipped))
    });
    let run_state = if all_ok { RunState::Success } else { RunState::Failed };
    if run_state != run.state {
        d.store.set_run_state(run.id, run_state).await?;
    }
    tracing::info!(run = run.id, task = task_id, state = %state, by, "task marked");
    Ok(run_state)
}

#[derive(Deserialize, Default)]
struct ClearBody {
    #[serde(default)]
    downstream: bool,
}

/// `POST /api/v1/runs/{run_id}/tasks/{task_id}/clear` `{"downstream": bool}`.
async fn clear_task_api(
    State(d): State<Arc<Daemon>>,
    Path((run_pk, task_id)): Path<(i64, String)>,
    headers: HeaderMap,
    body: Option<Json<ClearBody>>,
) -> ApiResult {
    authorize(&d, &headers)?;
    let downstream = body.map(|Json(b)| b.downstream).unwrap_or_default();
    let cleared = clear_task(&d, run_pk, &task_id, downstream).await?;
    Ok(Json(json!({ "run_id": run_pk, "cleared": cleared, "state": "queued" })).into_response())
}

#[derive(Deserialize)]
struct MarkBody {
    state: String,
}

/// `POST /api/v1/runs/{run_id}/tasks/{task_id}/mark` `{"state": "success"|"failed"}`.
async fn mark_task_api(
    State(d): State<Arc<Daemon>>,
    Path((run_pk, task_id)): Path<(i64, String)>,
    headers: HeaderMap,
    body: Result<Json<MarkBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    authorize(&d, &headers)?;
    let Json(body) = body.map_err(|e| bad(format!("body must be {{\"state\": \"success\"|\"failed\"}}: {e}")))?;
    let run_state = mark_task(&d, run_pk, &task_id, &body.state, "api").await?;
    Ok(Json(json!({ "run_id": run_pk, "task_id": task_id, "state": body.state, "run_state": run_state.as_str() }))
        .into_response())
}
