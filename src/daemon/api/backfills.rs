//! `/api/v1/backfills`: list, show, submit, and pause, resume or cancel backfills.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{ApiResult, Caller, ErrorBody, Page, bad, not_found};
use crate::backfill::Request;
use crate::daemon::Daemon;
use crate::ops::{self};

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

#[utoipa::path(get, path = "/api/v1/backfills", tag = "backfills",
    params(Page),
    responses((status = 200, description = "`{\"backfills\": [...]}`, newest first", content_type = "application/json"), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn list_backfills(State(d): State<Arc<Daemon>>, Query(page): Query<Page>) -> ApiResult {
    let rows = d.store.list_backfills(None, page.limit.unwrap_or(50).clamp(1, 1000)).await?;
    Ok(Json(json!({ "backfills": rows.iter().map(|b| backfill_json(b, &[])).collect::<Vec<_>>() })).into_response())
}

#[utoipa::path(get, path = "/api/v1/backfills/{id}", tag = "backfills",
    params(("id" = i64, Path, description = "Backfill id")),
    responses((status = 200, description = "The backfill with counts and per-date outcomes", content_type = "application/json"),
        (status = 404, description = "No such backfill", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn show_backfill(State(d): State<Arc<Daemon>>, Path(id): Path<i64>) -> ApiResult {
    let b = d.store.get_backfill(id).await?.ok_or_else(|| not_found(format!("no backfill {id}")))?;
    let dates = d.store.list_backfill_dates(id).await?;
    Ok(Json(backfill_json(&b, &dates)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub(super) struct BackfillBody {
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
    #[schema(value_type = Object)]
    conf: Value,
    /// Most schedule slots the range may hold (default `backfill::DEFAULT_MAX_SLOTS`).
    #[serde(default)]
    max_slots: Option<usize>,
}

#[utoipa::path(post, path = "/api/v1/backfills", tag = "backfills",
    request_body = BackfillBody,
    responses((status = 201, description = "The submitted backfill (the daemon drives it)", content_type = "application/json"),
        (status = 400, description = "Bad body, dates or options", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "No such DAG", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn submit_backfill(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    body: Result<Json<BackfillBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    ops::require_audited(&d.store, &caller.0, ops::Role::Operator, "start a backfill", "backfill", "backfill").await?;
    let Json(body) = body.map_err(|e| bad(format!("bad backfill request: {e}")))?;
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
    let b = ops::runs::submit_backfill(&d, &caller.0, &body.dag_id, &req).await?;
    Ok((StatusCode::CREATED, Json(backfill_json(&b, &[]))).into_response())
}

/// `POST /api/v1/backfills/{id}/pause|resume|cancel`.
#[utoipa::path(post, path = "/api/v1/backfills/{id}/{action}", tag = "backfills",
    params(("id" = i64, Path, description = "Backfill id"), ("action" = String, Path, description = "`pause`, `resume` or `cancel`")),
    responses((status = 200, description = "`{\"id\", \"state\"}`", content_type = "application/json"),
        (status = 400, description = "Unknown action", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "No such backfill", body = ErrorBody),
        (status = 409, description = "Not possible in the backfill's state", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
pub(super) async fn change_backfill(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Path((id, action)): Path<(i64, String)>,
) -> ApiResult {
    let state = ops::runs::change_backfill(&d, &caller.0, id, &action).await?;
    Ok(Json(json!({ "id": id, "state": state })).into_response())
}
