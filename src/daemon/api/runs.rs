//! Runs: list a DAG's runs, trigger one, show a run and a task instance, clear and mark tasks.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{ApiResult, Caller, ErrorBody, Page, bad, dag_or_404, not_found};
use crate::daemon::Daemon;
use crate::ops::{self};
use crate::store::{RunFilter, RunRow};

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

#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/runs", tag = "runs",
    params(("dag_id" = String, Path, description = "DAG id"), Page),
    responses((status = 200, description = "`{\"dag_id\", \"runs\": [...]}`, newest logical date first", content_type = "application/json"), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn list_runs(
    State(d): State<Arc<Daemon>>,
    Path(dag_id): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult {
    let limit = page.limit.unwrap_or(50).clamp(1, 1000);
    let runs = d.store.list_runs(&RunFilter { dag_id: Some(&dag_id), state: None, limit }).await?;
    Ok(Json(json!({ "dag_id": dag_id, "runs": runs.iter().map(run_json).collect::<Vec<_>>() })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub(super) struct TriggerBody {
    /// The run's date, `YYYY-MM-DD`.
    logical_date: String,
    /// Values for the DAG's declared params.
    #[serde(default)]
    #[schema(value_type = Object)]
    conf: Value,
}

/// `POST /api/v1/dags/{dag_id}/runs` `{"logical_date": "YYYY-MM-DD", "conf": {...}}`: queues a
/// manual run for that date (a workers picks it up at once); 409 if the date's run is in flight.
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/runs", tag = "runs",
    params(("dag_id" = String, Path, description = "DAG id")),
    request_body = TriggerBody,
    responses((status = 201, description = "The queued run", content_type = "application/json"),
        (status = 400, description = "Bad body, date or conf", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "No such DAG", body = ErrorBody),
        (status = 409, description = "The date's run is in flight", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn trigger(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Path(dag_id): Path<String>,
    body: Result<Json<TriggerBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let target = format!("dag {dag_id}");
    ops::require_audited(&d.store, &caller.0, ops::Role::Operator, "trigger a run", "trigger", &target).await?;
    let Json(body) =
        body.map_err(|e| bad(format!("body must be {{\"logical_date\": \"YYYY-MM-DD\", \"conf\": {{}}}}: {e}")))?;
    dag_or_404(&d, &dag_id)?;
    let date = NaiveDate::parse_from_str(&body.logical_date, "%Y-%m-%d")
        .map_err(|_| bad(format!("logical_date `{}` is not a date like 2025-01-31", body.logical_date)))?;
    let run = ops::runs::trigger(&d, &caller.0, &dag_id, date, &body.conf).await?;
    Ok((StatusCode::CREATED, Json(run_json(&run))).into_response())
}

#[utoipa::path(get, path = "/api/v1/runs/{run_pk}", tag = "runs",
    params(("run_pk" = i64, Path, description = "Run id")),
    responses((status = 200, description = "The run with its task instances", content_type = "application/json"),
        (status = 404, description = "No such run", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn show_run(State(d): State<Arc<Daemon>>, Path(run_pk): Path<i64>) -> ApiResult {
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

#[utoipa::path(get, path = "/api/v1/runs/{run_pk}/tasks/{task_id}", tag = "runs",
    params(("run_pk" = i64, Path, description = "Run id"), ("task_id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The task's tries with state, error, output and log", content_type = "application/json"),
        (status = 404, description = "No such run", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn show_task(State(d): State<Arc<Daemon>>, Path((run_pk, task_id)): Path<(i64, String)>) -> ApiResult {
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

#[derive(Deserialize, Default, ToSchema)]
pub(super) struct ClearBody {
    #[serde(default)]
    downstream: bool,
}

/// `POST /api/v1/runs/{run_id}/tasks/{task_id}/clear` `{"downstream": bool}`.
#[utoipa::path(post, path = "/api/v1/runs/{run_pk}/tasks/{task_id}/clear", tag = "runs",
    params(("run_pk" = i64, Path, description = "Run id"), ("task_id" = String, Path, description = "Task id")),
    request_body(content = ClearBody, description = "Optional; `downstream` clears the tasks below too"),
    responses((status = 200, description = "`{\"run_id\", \"cleared\", \"state\": \"queued\"}`", content_type = "application/json"),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "No such run or task", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn clear_task_api(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Path((run_pk, task_id)): Path<(i64, String)>,
    body: Option<Json<ClearBody>>,
) -> ApiResult {
    let downstream = body.map(|Json(b)| b.downstream).unwrap_or_default();
    let cleared = ops::runs::clear(&d, &caller.0, run_pk, &task_id, downstream).await?;
    Ok(Json(json!({ "run_id": run_pk, "cleared": cleared, "state": "queued" })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub(super) struct MarkBody {
    /// `success` or `failed`.
    state: String,
}

/// `POST /api/v1/runs/{run_id}/tasks/{task_id}/mark` `{"state": "success"|"failed"}`.
#[utoipa::path(post, path = "/api/v1/runs/{run_pk}/tasks/{task_id}/mark", tag = "runs",
    params(("run_pk" = i64, Path, description = "Run id"), ("task_id" = String, Path, description = "Task id")),
    request_body = MarkBody,
    responses((status = 200, description = "`{\"run_id\", \"task_id\", \"state\", \"run_state\"}`", content_type = "application/json"),
        (status = 400, description = "Bad state", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "No such run or task", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn mark_task_api(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Path((run_pk, task_id)): Path<(i64, String)>,
    body: Result<Json<MarkBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(body) = body.map_err(|e| bad(format!("body must be {{\"state\": \"success\"|\"failed\"}}: {e}")))?;
    let run_state = ops::runs::mark(&d, &caller.0, run_pk, &task_id, &body.state).await?;
    Ok(Json(json!({ "run_id": run_pk, "task_id": task_id, "state": body.state, "run_state": run_state.as_str() }))
        .into_response())
}
