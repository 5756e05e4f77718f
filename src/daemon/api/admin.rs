//! Admin routes: the audit log and `/api/v1/users` (list, add, change role or password, remove).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiResult, Caller, ErrorBody, bad};
use crate::daemon::Daemon;
use crate::ops::{self};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditPage {
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
pub(super) async fn list_audit(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Query(page): Query<AuditPage>,
) -> ApiResult {
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
pub(super) async fn list_users(State(d): State<Arc<Daemon>>, caller: Caller) -> ApiResult {
    let users = ops::users::list(&d.store, &caller.0).await?;
    Ok(Json(json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub(super) struct NewUserBody {
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
pub(super) async fn add_user(
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
pub(super) struct RoleBody {
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
pub(super) async fn set_user_role(
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
pub(super) struct PasswordBody {
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
pub(super) async fn set_user_password(
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
pub(super) async fn remove_user(
    State(d): State<Arc<Daemon>>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult {
    ops::users::remove(&d.store, &caller.0, &username).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
