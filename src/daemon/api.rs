//! The HTTP side of `tmctl serve`: `/health` and the JSON API under `/api/v1`. Every call but
//! `/health` needs `Authorization: Bearer <token>` or a web session (`web::auth::guard`: 401
//! without; GETs are open with `web.anonymous_read`). Mutations go through `ops`, which checks the
//! caller's role (403) and writes the audit log; a session caller also sends its CSRF token in
//! `X-CSRF-Token`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Daemon;
use crate::backfill::Request;
use crate::ops::{self, Actor, OpError};
use crate::store::{RunFilter, RunRow, StoreError};
use crate::web::Viewer;

pub use crate::ops::runs::change_backfill_state;

/// The daemon's whole router: `/health`, `/metrics`, the API ([`api_routes`]) and the web UI,
/// behind `web::auth::guard`.
pub fn router(d: Arc<Daemon>) -> Router {
    let (api, _doc) = api_routes().split_for_parts();
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(api)
        .merge(crate::web::router())
        .layer(axum::middleware::from_fn_with_state(d.clone(), crate::web::auth::guard))
        .with_state(d)
}

/// Everything under `/api/v1`, as one list that both the router and the OpenAPI document are
/// built from: each handler's `#[utoipa::path]` names its method and path, and `routes!` serves
/// exactly that (a route cannot be served undocumented or documented unserved).
pub fn api_routes() -> OpenApiRouter<Arc<Daemon>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(list_dags))
        .routes(routes!(show_dag))
        .routes(routes!(list_runs, trigger))
        .routes(routes!(pause))
        .routes(routes!(unpause))
        .routes(routes!(show_run))
        .routes(routes!(show_task))
        .routes(routes!(clear_task_api))
        .routes(routes!(mark_task_api))
        .routes(routes!(list_backfills, submit_backfill))
        .routes(routes!(show_backfill))
        .routes(routes!(change_backfill))
        .routes(routes!(list_audit))
        .routes(routes!(course_freshness))
        .routes(routes!(list_users, add_user))
        .routes(routes!(remove_user))
        .routes(routes!(set_user_role))
        .routes(routes!(set_user_password))
}

/// The OpenAPI 3.1 document of `/api/v1` (what `GET /api/v1/openapi.json` answers).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tmctl API",
        description = "The JSON API of `tmctl serve`. Every call needs `Authorization: Bearer <token>` \
                       (`tmctl tokens create`, or the config admin's API token) or a web session \
                       (which also sends its CSRF token in `X-CSRF-Token` on mutations); GETs are \
                       open when `web.anonymous_read = true`. Roles: viewer reads, operator \
                       triggers/clears/marks/pauses and runs backfills, admin manages users and \
                       reads the audit log. Errors are `{\"error\": \"message\"}`."
    ),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The bearer token and the session cookie, as the document's security schemes.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components
            .add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("tm_session"))));
    }
}

/// What every error answers.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorBody {
    /// What went wrong, in one sentence.
    error: String,
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This API's OpenAPI document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}

/// An API error: a status and `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl ApiError {
    /// A 500 whose body names the error id; the detail goes to the log only.
    fn internal(what: &str, e: &dyn std::fmt::Display) -> ApiError {
        let id = crate::web::error_id();
        tracing::error!(error_id = %id, error = %e, "{what} failed in an API call");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, crate::web::internal_message(what, &id))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal("Reading the state DB", &e)
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Internal(detail) => ApiError::internal("The operation", &detail),
            e => ApiError(e.status(), e.to_string()),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

/// The 401 answer of an API call without valid credentials.
pub fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError(StatusCode::UNAUTHORIZED, message.to_string()).into_response();
    resp.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
    resp
}

/// The caller of a mutating API call, as the operations layer sees them. A web session (not a
/// token) must also send its CSRF token in `X-CSRF-Token`, so another site cannot post with the
/// user's cookie.
pub struct Caller(pub Actor);

impl axum::extract::FromRequestParts<Arc<Daemon>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _d: &Arc<Daemon>) -> Result<Self, ApiError> {
        let viewer = parts.extensions.get::<Viewer>().cloned().unwrap_or_default();
        if viewer.user.is_none() {
            return Err(ApiError(StatusCode::UNAUTHORIZED, "this call needs `Authorization: Bearer <token>`".into()));
        }
        if !viewer.via_token && parts.method != axum::http::Method::GET {
            let given = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if viewer.csrf.is_empty() || !constant_time_eq(given.as_bytes(), viewer.csrf.as_bytes()) {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "a session caller must send its CSRF token in X-CSRF-Token (or use a bearer token)".into(),
                ));
            }
        }
        Ok(Caller(viewer.actor()))
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, message.into())
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

/// `GET /metrics`: the daemon's Prometheus metrics (`crate::metrics`), with the queue and the
/// alert outbox read from the state DB now. Same rules as every read: a session, a bearer token
/// or `web.anonymous_read`; without, 401 (a scraper is not sent to the login page).
async fn metrics(State(d): State<Arc<Daemon>>) -> ApiResult {
    let snapshot = crate::metrics::StateSnapshot::read(&d.store).await?;
    let text = d.metrics.render(&snapshot);
    Ok(([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
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

#[utoipa::path(get, path = "/api/v1/dags", tag = "dags",
    responses((status = 200, description = "`{\"dags\": [...]}`: id, description, schedule, timezone, paused, next fire, task count", content_type = "application/json"), (status = 401, description = "No valid session or token", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/api/v1/dags/{dag_id}", tag = "dags",
    params(("dag_id" = String, Path, description = "DAG id")),
    responses((status = 200, description = "The DAG: schedule, params, tasks with kinds and upstreams", content_type = "application/json"),
        (status = 404, description = "No such DAG", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// At most this many (default 50, 1…1000).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/runs", tag = "runs",
    params(("dag_id" = String, Path, description = "DAG id"), Page),
    responses((status = 200, description = "`{\"dag_id\", \"runs\": [...]}`, newest logical date first", content_type = "application/json"), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn list_runs(State(d): State<Arc<Daemon>>, Path(dag_id): Path<String>, Query(page): Query<Page>) -> ApiResult {
    let limit = page.limit.unwrap_or(50).clamp(1, 1000);
    let runs = d.store.list_runs(&RunFilter { dag_id: Some(&dag_id), state: None, limit }).await?;
    Ok(Json(json!({ "dag_id": dag_id, "runs": runs.iter().map(run_json).collect::<Vec<_>>() })).into_response())
}

#[derive(Deserialize, ToSchema)]
struct TriggerBody {
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
async fn trigger(
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

async fn set_pause(d: &Daemon, caller: &Caller, dag_id: &str, paused: bool) -> ApiResult {
    ops::runs::set_paused(d, &caller.0, dag_id, paused).await?;
    Ok(Json(json!({ "dag_id": dag_id, "paused": paused })).into_response())
}

#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/pause", tag = "dags",
    params(("dag_id" = String, Path, description = "DAG id")),
    responses((status = 200, description = "`{\"dag_id\", \"paused\": true}`", content_type = "application/json"),
        (status = 403, description = "Needs the operator role", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn pause(State(d): State<Arc<Daemon>>, caller: Caller, Path(dag_id): Path<String>) -> ApiResult {
    set_pause(&d, &caller, &dag_id, true).await
}

#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/unpause", tag = "dags",
    params(("dag_id" = String, Path, description = "DAG id")),
    responses((status = 200, description = "`{\"dag_id\", \"paused\": false}`", content_type = "application/json"),
        (status = 403, description = "Needs the operator role", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn unpause(State(d): State<Arc<Daemon>>, caller: Caller, Path(dag_id): Path<String>) -> ApiResult {
    set_pause(&d, &caller, &dag_id, false).await
}

#[utoipa::path(get, path = "/api/v1/runs/{run_pk}", tag = "runs",
    params(("run_pk" = i64, Path, description = "Run id")),
    responses((status = 200, description = "The run with its task instances", content_type = "application/json"),
        (status = 404, description = "No such run", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/api/v1/runs/{run_pk}/tasks/{task_id}", tag = "runs",
    params(("run_pk" = i64, Path, description = "Run id"), ("task_id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The task's tries with state, error, output and log", content_type = "application/json"),
        (status = 404, description = "No such run", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/api/v1/backfills", tag = "backfills",
    params(Page),
    responses((status = 200, description = "`{\"backfills\": [...]}`, newest first", content_type = "application/json"), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn list_backfills(State(d): State<Arc<Daemon>>, Query(page): Query<Page>) -> ApiResult {
    let rows = d.store.list_backfills(None, page.limit.unwrap_or(50).clamp(1, 1000)).await?;
    Ok(Json(json!({ "backfills": rows.iter().map(|b| backfill_json(b, &[])).collect::<Vec<_>>() })).into_response())
}

#[utoipa::path(get, path = "/api/v1/backfills/{id}", tag = "backfills",
    params(("id" = i64, Path, description = "Backfill id")),
    responses((status = 200, description = "The backfill with counts and per-date outcomes", content_type = "application/json"),
        (status = 404, description = "No such backfill", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn show_backfill(State(d): State<Arc<Daemon>>, Path(id): Path<i64>) -> ApiResult {
    let b = d.store.get_backfill(id).await?.ok_or_else(|| not_found(format!("no backfill {id}")))?;
    let dates = d.store.list_backfill_dates(id).await?;
    Ok(Json(backfill_json(&b, &dates)).into_response())
}

#[derive(Deserialize, ToSchema)]
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
async fn submit_backfill(
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
async fn change_backfill(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Path((id, action)): Path<(i64, String)>,
) -> ApiResult {
    let state = ops::runs::change_backfill(&d, &caller.0, id, &action).await?;
    Ok(Json(json!({ "id": id, "state": state })).into_response())
}

#[derive(Deserialize, Default, ToSchema)]
struct ClearBody {
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
async fn clear_task_api(
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
struct MarkBody {
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
async fn mark_task_api(
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditPage {
    /// At most this many (default 100, 1…1000).
    limit: Option<i64>,
    /// Only entries with an id below this one (the next page).
    before: Option<i64>,
}

/// `GET /api/v1/audit?limit=&before=`: the audit log, newest first (admins only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin",
    params(AuditPage),
    responses((status = 200, description = "`{\"audit\": [...]}`, newest first", content_type = "application/json"),
        (status = 403, description = "Needs the admin role", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn list_audit(State(d): State<Arc<Daemon>>, caller: Caller, Query(page): Query<AuditPage>) -> ApiResult {
    ops::require(&caller.0, ops::Role::Admin, "read the audit log")?;
    let rows = d.store.list_audit(page.before, page.limit.unwrap_or(100).clamp(1, 1000)).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({ "id": r.id, "at": r.at.to_rfc3339(), "actor": r.actor, "action": r.action,
                    "target": r.target, "result": r.result })
        })
        .collect();
    Ok(Json(json!({ "audit": rows })).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FreshnessQuery {
    /// The day to judge from (YYYY-MM-DD; default today, UTC).
    as_of: Option<String>,
    /// Only this course.
    course: Option<String>,
}

/// `GET /api/v1/courses/freshness?as_of=&course=`: each course's freshness (in its season, is its
/// newest landed file within its expected cadence?), as the bronze DAG's `courses.freshness`
/// task checks it.
#[utoipa::path(get, path = "/api/v1/courses/freshness", tag = "courses",
    params(FreshnessQuery),
    responses((status = 200, description = "`{\"as_of\": date, \"courses\": [...]}`: course_id, name, profile_missing, last_landed, age_days, expected_cadence_hours, season, in_season, status (fresh | stale | out_of_season)", content_type = "application/json"),
        (status = 400, description = "A bad date, or dags/courses.toml has problems", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn course_freshness(State(d): State<Arc<Daemon>>, Query(q): Query<FreshnessQuery>) -> ApiResult {
    use crate::freshness::{self, CheckError};
    let as_of = match q.as_of.as_deref() {
        None | Some("") => chrono::Utc::now().date_naive(),
        Some(text) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| bad(format!("as_of `{text}` is not a date (YYYY-MM-DD)")))?,
    };
    let course = q.course.as_deref().filter(|c| !c.is_empty());
    let rows = freshness::check(&d.store, &d.settings.dags_dir, as_of, course).await.map_err(|e| match e {
        CheckError::Profiles(_) => bad(e.to_string()),
        CheckError::Store(e) => ApiError::from(e),
    })?;
    Ok(Json(json!({ "as_of": as_of, "courses": rows })).into_response())
}

fn user_json(u: &crate::store::UserRow) -> Value {
    json!({ "username": u.username, "role": u.role, "created_at": u.created_at.to_rfc3339(),
            "updated_at": u.updated_at.to_rfc3339() })
}

fn role_of(text: &str) -> Result<ops::Role, ApiError> {
    text.parse::<ops::Role>().map_err(bad)
}

/// `GET /api/v1/users` (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "admin",
    responses((status = 200, description = "`{\"users\": [...]}`: username, role, created, updated", content_type = "application/json"),
        (status = 403, description = "Needs the admin role", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn list_users(State(d): State<Arc<Daemon>>, caller: Caller) -> ApiResult {
    let users = ops::users::list(&d.store, &caller.0).await?;
    Ok(Json(json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() })).into_response())
}

#[derive(Deserialize, ToSchema)]
struct NewUserBody {
    username: String,
    password: String,
    /// `viewer` (default), `operator` or `admin`.
    #[serde(default = "viewer")]
    role: String,
}

fn viewer() -> String {
    "viewer".into()
}

/// `POST /api/v1/users` `{"username", "password", "role"?}` (admins) → 201.
#[utoipa::path(post, path = "/api/v1/users", tag = "admin",
    request_body = NewUserBody,
    responses((status = 201, description = "`{\"username\", \"role\"}`", content_type = "application/json"),
        (status = 400, description = "Bad body, name, password or role", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 409, description = "The user exists", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn add_user(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    body: Result<Json<NewUserBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    ops::require_audited(&d.store, &caller.0, ops::Role::Admin, "add users", "users.add", "user").await?;
    let Json(b) = body.map_err(|e| bad(format!("body must be {{\"username\", \"password\", \"role\"}}: {e}")))?;
    let role = role_of(&b.role)?;
    ops::users::add(&d.store, &d.passwords, &caller.0, &b.username, &b.password, role).await?;
    Ok((StatusCode::CREATED, Json(json!({ "username": b.username, "role": role.as_str() }))).into_response())
}

#[derive(Deserialize, ToSchema)]
struct RoleBody {
    /// `viewer`, `operator` or `admin`.
    role: String,
}

/// `POST /api/v1/users/{username}/role` `{"role"}` (admins; ends the user's sessions).
#[utoipa::path(post, path = "/api/v1/users/{username}/role", tag = "admin",
    params(("username" = String, Path, description = "User name")),
    request_body = RoleBody,
    responses((status = 200, description = "`{\"username\", \"role\"}`", content_type = "application/json"),
        (status = 400, description = "Bad role", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn set_user_role(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Path(username): Path<String>,
    body: Result<Json<RoleBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(b) =
        body.map_err(|e| bad(format!("body must be {{\"role\": \"viewer\"|\"operator\"|\"admin\"}}: {e}")))?;
    let role = role_of(&b.role)?;
    ops::users::set_role(&d.store, &caller.0, &username, role).await?;
    Ok(Json(json!({ "username": username, "role": role.as_str() })).into_response())
}

#[derive(Deserialize, ToSchema)]
struct PasswordBody {
    password: String,
}

/// `POST /api/v1/users/{username}/password` `{"password"}` (admins; ends the user's sessions).
#[utoipa::path(post, path = "/api/v1/users/{username}/password", tag = "admin",
    params(("username" = String, Path, description = "User name")),
    request_body = PasswordBody,
    responses((status = 200, description = "`{\"username\"}`", content_type = "application/json"),
        (status = 400, description = "Bad password", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn set_user_password(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Path(username): Path<String>,
    body: Result<Json<PasswordBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    ops::require_audited(&d.store, &caller.0, ops::Role::Admin, "set passwords", "users.set-password", &username)
        .await?;
    let Json(b) = body.map_err(|e| bad(format!("body must be {{\"password\": \"...\"}}: {e}")))?;
    ops::users::set_password(&d.store, &d.passwords, &caller.0, &username, &b.password).await?;
    Ok(Json(json!({ "username": username })).into_response())
}

/// `DELETE /api/v1/users/{username}` (admins; with their tokens and sessions).
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "admin",
    params(("username" = String, Path, description = "User name")),
    responses((status = 204, description = "Removed, with their tokens and sessions"),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody), (status = 401, description = "No valid session or token", body = ErrorBody)))]
async fn remove_user(State(d): State<Arc<Daemon>>, caller: Caller, Path(username): Path<String>) -> ApiResult {
    ops::users::remove(&d.store, &caller.0, &username).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_answer_an_error_id_never_the_detail() {
        let ApiError(status, body) =
            ApiError::from(OpError::Internal("password authentication failed for db at 10.0.0.7".into()));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("10.0.0.7") && !body.contains("password"), "{body}");
        let id = body.split("error id ").nth(1).and_then(|t| t.get(..8)).unwrap_or_default();
        assert!(id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit()), "{body}");
        // The other kinds keep their message: the caller can act on it.
        let ApiError(status, body) = ApiError::from(OpError::NotFound("no DAG `x`".into()));
        assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, "no DAG `x`"));
    }
}
