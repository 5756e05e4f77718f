//! Admin pages: the audit log (newest first, paged), and users and tokens with the forms that
//! manage them (add a user, change a role, reset a password, remove a user, create a token —
//! shown once — and revoke one).
//! Every form goes through `ops::users` like `tmctl users` and the API: the role check (403 for
//! non-admins, audited), typed errors, one `audit_log` row; `require_login` checks CSRF first.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Chrome, Viewer, error_page, render, require_login};
use crate::daemon::Daemon;
use crate::ops::{self, Actor, OpError, Role};

const AUDIT_PER_PAGE: i64 = 100;

struct AuditLine {
    at: String,
    actor: String,
    action: String,
    target: String,
    result: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditLine>,
    older: Option<i64>,
}

#[derive(Deserialize)]
struct Before {
    before: Option<i64>,
}

async fn audit(State(d): State<Arc<Daemon>>, viewer: Viewer, Query(q): Query<Before>) -> Response {
    if let Err(e) = ops::require(&viewer.actor(), Role::Admin, "read the audit log") {
        return error_page(e.status(), &viewer, e.to_string());
    }
    let fail = |e: crate::store::StoreError| super::internal_error(&viewer, "Reading the audit log", &e);
    let rows = match d.store.list_audit(q.before, AUDIT_PER_PAGE).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let older = (rows.len() as i64 == AUDIT_PER_PAGE).then(|| rows.last().map(|r| r.id)).flatten();
    let page = AuditPage {
        chrome: Chrome::new("Audit log", &viewer),
        rows: rows
            .into_iter()
            .map(|r| AuditLine {
                at: super::runs::view::utc(r.at),
                actor: r.actor,
                action: r.action,
                target: r.target,
                result: r.result,
            })
            .collect(),
        older,
    };
    render(&page)
}

// ---- users and tokens ---------------------------------------------------------------------------

struct UserLine {
    name: String,
    role: String,
    created: String,
    changed: String,
    last_login: String,
}

struct TokenLine {
    user: String,
    name: String,
    created: String,
    expires: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserLine>,
    tokens: Vec<TokenLine>,
    config_user: String,
    roles: [&'static str; 3],
}

/// The error page of a refused or failed operation (the status is `OpError::status`).
fn op_error(viewer: &Viewer, e: OpError) -> Response {
    super::op_error_page(viewer, e)
}

fn back_to_users() -> Response {
    Redirect::to("/admin/users").into_response()
}

async fn users(State(d): State<Arc<Daemon>>, viewer: Viewer) -> Response {
    let actor = viewer.actor();
    let listed = async {
        let users = ops::users::list(&d.store, &actor).await?;
        let tokens = ops::users::list_tokens(&d.store, &actor, None).await?;
        Ok::<_, OpError>((users, tokens))
    };
    let (users, tokens) = match listed.await {
        Ok(found) => found,
        Err(e) => return op_error(&viewer, e),
    };
    let utc = super::runs::view::utc;
    let page = UsersPage {
        chrome: Chrome::new("Users and tokens", &viewer),
        users: users
            .into_iter()
            .map(|u| UserLine {
                name: u.username,
                role: u.role,
                created: utc(u.created_at),
                changed: utc(u.updated_at),
                last_login: u.last_login_at.map(utc).unwrap_or_else(|| "never".into()),
            })
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|t| TokenLine {
                user: t.username,
                name: t.name,
                created: utc(t.created_at),
                expires: t.expires_at.map(utc).unwrap_or_else(|| "never".into()),
                last_used: t.last_used_at.map(utc).unwrap_or_else(|| "never".into()),
            })
            .collect(),
        config_user: d.settings.web_user.clone(),
        roles: Role::ALL.map(Role::as_str),
    };
    render(&page)
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

/// The form's role. A refusal to a non-admin comes first, as in the API; both are audited.
async fn role_of(d: &Daemon, actor: &Actor, f: &UserForm, what: &str, action: &str) -> Result<Role, OpError> {
    let target = format!("user {}", f.user);
    ops::require_audited(&d.store, actor, Role::Admin, what, action, &target).await?;
    match f.role.parse() {
        Ok(role) => Ok(role),
        Err(e) => ops::audited(&d.store, actor, action, &target, Err(OpError::Invalid(e))).await,
    }
}

async fn add_user(State(d): State<Arc<Daemon>>, viewer: Viewer, Form(f): Form<UserForm>) -> Response {
    let actor = match require_login(&viewer, &f.csrf) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let done = async {
        let role = role_of(&d, &actor, &f, "add users", "users.add").await?;
        ops::users::add(&d.store, &d.passwords, &actor, &f.user, &f.password, role).await
    };
    done.await.map_or_else(|e| op_error(&viewer, e), |()| back_to_users())
}

async fn set_role(State(d): State<Arc<Daemon>>, viewer: Viewer, Form(f): Form<UserForm>) -> Response {
    let actor = match require_login(&viewer, &f.csrf) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let done = async {
        let role = role_of(&d, &actor, &f, "change roles", "users.set-role").await?;
        ops::users::set_role(&d.store, &actor, &f.user, role).await
    };
    done.await.map_or_else(|e| op_error(&viewer, e), |()| back_to_users())
}

async fn set_password(State(d): State<Arc<Daemon>>, viewer: Viewer, Form(f): Form<UserForm>) -> Response {
    let actor = match require_login(&viewer, &f.csrf) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let done = ops::users::set_password(&d.store, &d.passwords, &actor, &f.user, &f.password).await;
    done.map_or_else(|e| op_error(&viewer, e), |()| back_to_users())
}

async fn remove_user(State(d): State<Arc<Daemon>>, viewer: Viewer, Form(f): Form<UserForm>) -> Response {
    let actor = match require_login(&viewer, &f.csrf) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let done = ops::users::remove(&d.store, &actor, &f.user).await;
    done.map_or_else(|e| op_error(&viewer, e), |()| back_to_users())
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct NewTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    name: String,
    /// `90d`, `12h`, …; empty = never.
    #[serde(default)]
    expires: String,
}

#[derive(Template)]
#[template(path = "admin/token_created.html")]
struct TokenCreatedPage {
    chrome: Chrome,
    user: String,
    name: String,
    token: String,
    expires: String,
}

/// Creates a token for a user and shows it once (the page is never cached; only the token's
/// SHA-256 is kept), as `tmctl tokens create` prints it once.
async fn create_token(State(d): State<Arc<Daemon>>, viewer: Viewer, Form(f): Form<NewTokenForm>) -> Response {
    let actor = match require_login(&viewer, &f.csrf) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    // A refusal to a non-admin comes first (audited), before the form's values are looked at.
    let target = format!("token {} of {}", f.name, f.user);
    if let Err(e) = ops::require_audited(&d.store, &actor, Role::Admin, "create tokens", "tokens.create", &target).await
    {
        return op_error(&viewer, e);
    }
    let expires_text = f.expires.trim();
    let expires = if expires_text.is_empty() {
        None
    } else {
        match crate::dag::parse_duration(expires_text) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => return op_error(&viewer, OpError::Invalid("expiry must be longer than zero".into())),
            Err(e) => return op_error(&viewer, OpError::Invalid(format!("expiry \"{expires_text}\": {e}"))),
        }
    };
    let token = match ops::users::create_token(&d.store, &actor, &f.user, &f.name, expires).await {
        Ok(t) => t,
        Err(e) => return op_error(&viewer, e),
    };
    let page = TokenCreatedPage {
        chrome: Chrome::new("Token created", &viewer),
        user: f.user,
        name: f.name,
        token,
        expires: if expires_text.is_empty() { "never".into() } else { format!("in {expires_text}") },
    };
    let mut resp = render(&page);
    resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp
}

async fn revoke_token(State(d): State<Arc<Daemon>>, viewer: Viewer, Form(f): Form<TokenForm>) -> Response {
    let actor = match require_login(&viewer, &f.csrf) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let done = ops::users::revoke_token(&d.store, &actor, &f.user, &f.name).await;
    done.map_or_else(|e| op_error(&viewer, e), |()| back_to_users())
}

pub fn router() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/admin/audit", get(audit))
        .route("/admin/users", get(users))
        .route("/admin/users/add", post(add_user))
        .route("/admin/users/role", post(set_role))
        .route("/admin/users/password", post(set_password))
        .route("/admin/users/remove", post(remove_user))
        .route("/admin/tokens/create", post(create_token))
        .route("/admin/tokens/revoke", post(revoke_token))
}
