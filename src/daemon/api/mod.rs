//! The HTTP side of `tmctl serve`: `/health` and the JSON API under `/api/v1`. Every call but
//! `/health` needs `Authorization: Bearer <token>` or a web session (`web::auth::guard`: 401
//! without; GETs are open with `web.anonymous_read`). Mutations go through `ops`, which checks the
//! caller's role (403) and writes the audit log; a session caller also sends its CSRF token in
//! `X-CSRF-Token`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Daemon;
use crate::ops::{Actor, OpError};
use crate::store::StoreError;
use crate::web::Viewer;

mod admin;
mod backfills;
mod courses;
mod dags;
mod runs;

pub use backfills::backfill_json;
pub use runs::run_json;

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
        .routes(routes!(dags::list_dags))
        .routes(routes!(dags::show_dag))
        .routes(routes!(runs::list_runs, runs::trigger))
        .routes(routes!(dags::pause))
        .routes(routes!(dags::unpause))
        .routes(routes!(runs::show_run))
        .routes(routes!(runs::show_task))
        .routes(routes!(runs::clear_task_api))
        .routes(routes!(runs::mark_task_api))
        .routes(routes!(backfills::list_backfills, backfills::submit_backfill))
        .routes(routes!(backfills::show_backfill))
        .routes(routes!(backfills::change_backfill))
        .routes(routes!(admin::list_audit))
        .routes(routes!(courses::course_freshness))
        .routes(routes!(admin::list_users, admin::add_user))
        .routes(routes!(admin::remove_user))
        .routes(routes!(admin::set_user_role))
        .routes(routes!(admin::set_user_password))
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// At most this many (default 50, 1…1000).
    limit: Option<i64>,
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
