//! `/api/v1/dags`: list and show DAGs, pause and unpause them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{ApiResult, Caller, ErrorBody, dag_or_404};
use crate::daemon::Daemon;
use crate::ops::{self};

#[utoipa::path(get, path = "/api/v1/dags", tag = "dags",
    responses((status = 200, description = "`{\"dags\": [...]}`: id, description, schedule, timezone, paused, next fire, task count", content_type = "application/json"), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn list_dags(State(d): State<Arc<Daemon>>) -> ApiResult {
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

#[utoipa::path(get, path = "/api/v1/dags/{dag_id}", tag = "dags",
    params(("dag_id" = String, Path, description = "DAG id")),
    responses((status = 200, description = "The DAG: schedule, params, tasks with kinds and upstreams", content_type = "application/json"),
        (status = 404, description = "No such DAG", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn show_dag(State(d): State<Arc<Daemon>>, Path(dag_id): Path<String>) -> ApiResult {
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

async fn set_pause(d: &Daemon, caller: &Caller, dag_id: &str, paused: bool) -> ApiResult {
    ops::runs::set_paused(d, &caller.0, dag_id, paused).await?;
    Ok(Json(json!({ "dag_id": dag_id, "paused": paused })).into_response())
}

#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/pause", tag = "dags",
    params(("dag_id" = String, Path, description = "DAG id")),
    responses((status = 200, description = "`{\"dag_id\", \"paused\": true}`", content_type = "application/json"),
        (status = 403, description = "Needs the operator role", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn pause(State(d): State<Arc<Daemon>>, caller: Caller, Path(dag_id): Path<String>) -> ApiResult {
    set_pause(&d, &caller, &dag_id, true).await
}

#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/unpause", tag = "dags",
    params(("dag_id" = String, Path, description = "DAG id")),
    responses((status = 200, description = "`{\"dag_id\", \"paused\": false}`", content_type = "application/json"),
        (status = 403, description = "Needs the operator role", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn unpause(State(d): State<Arc<Daemon>>, caller: Caller, Path(dag_id): Path<String>) -> ApiResult {
    set_pause(&d, &caller, &dag_id, false).await
}
