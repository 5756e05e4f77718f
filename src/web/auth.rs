//! Login, logout, sessions and CSRF for the web UI.
//!
//! - `POST /login` checks the user name and password (argon2 hash in `web.password_hash`, or the
//!   API token when no hash is configured), then sets `tm_session` (random 256-bit id, HttpOnly,
//!   SameSite=Strict); the DB keeps only the id's SHA-256 and the session's CSRF token.
//! - The login form itself is protected by a double-submit cookie (`tm_login_csrf`).
//! - [`require_login`] is what every mutating handler calls first: 401 without a session, 403
//!   when the form's `csrf` does not match the session's.

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Chrome, error_page, render};
use crate::daemon::Daemon;

const SESSION_COOKIE: &str = "tm_session";
const LOGIN_CSRF_COOKIE: &str = "tm_login_csrf";
/// How long a login lasts.
const SESSION_HOURS: i64 = 12;

/// Who is looking at a page: the logged-in user (if any) and the session's CSRF token.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub user: Option<String>,
    pub csrf: String,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A random URL-safe token of 256 bits.
pub fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FromRequestParts<Arc<Daemon>> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, d: &Arc<Daemon>) -> Result<Self, Self::Rejection> {
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else { return Ok(Viewer::default()) };
        match d.store.web_session(&sha256_hex(id), chrono::Utc::now()).await {
            Ok(Some(s)) => Ok(Viewer { user: Some(s.username), csrf: s.csrf }),
            Ok(None) => Ok(Viewer::default()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the web session");
                Ok(Viewer::default())
            }
        }
    }
}

/// The user of a mutating request whose form carried `csrf`; else the response to send (401
/// not logged in, 403 bad CSRF token).
// The error is the HTTP response the handler returns as it is; boxing it would only add a step.
#[allow(clippy::result_large_err)]
pub fn require_login(viewer: &Viewer, csrf: &str) -> Result<String, Response> {
    let Some(user) = &viewer.user else {
        return Err(error_page(StatusCode::UNAUTHORIZED, viewer, "Log in to do this (/login)."));
    };
    if viewer.csrf.is_empty() || !crate::daemon::api::constant_time_eq(viewer.csrf.as_bytes(), csrf.as_bytes()) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            viewer,
            "The form's CSRF token does not match your session; reload the page and try again.",
        ));
    }
    Ok(user.clone())
}

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    login_csrf: String,
    error: Option<String>,
    next: String,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Only same-site paths are followed after login.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".into(),
    }
}

fn login_form(viewer: &Viewer, status: StatusCode, error: Option<String>, next: String) -> Response {
    let token = random_token();
    let page = LoginPage { chrome: Chrome::new("Log in", viewer), login_csrf: token.clone(), error, next };
    let cookie = format!("{LOGIN_CSRF_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict");
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

async fn login_page(viewer: Viewer, axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Response {
    login_form(&viewer, StatusCode::OK, None, safe_next(q.next.as_deref()))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// True if `password` is right for the configured user.
pub fn check_password(d: &Daemon, username: &str, password: &str) -> bool {
    let user_ok = crate::daemon::api::constant_time_eq(username.as_bytes(), d.settings.web_user.as_bytes());
    let hash = &d.settings.web_password_hash;
    let pass_ok = if hash.is_empty() {
        crate::daemon::api::constant_time_eq(password.as_bytes(), d.token.as_bytes())
    } else {
        use argon2::PasswordVerifier;
        argon2::PasswordHash::new(hash)
            .map(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    };
    user_ok && pass_ok
}

async fn login(State(d): State<Arc<Daemon>>, viewer: Viewer, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(Some(&f.next));
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !crate::daemon::api::constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return login_form(&viewer, StatusCode::FORBIDDEN, Some("The form expired; try again.".into()), next);
    }
    if !check_password(&d, &f.username, &f.password) {
        tracing::warn!(user = %f.username, "failed web login");
        return login_form(&viewer, StatusCode::UNAUTHORIZED, Some("Wrong user name or password.".into()), next);
    }
    let id = random_token();
    let expires = chrono::Utc::now() + chrono::Duration::hours(SESSION_HOURS);
    if let Err(e) = d.store.create_web_session(&sha256_hex(&id), &f.username, &random_token(), expires).await {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, &viewer, format!("cannot create the session: {e}"));
    }
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_HOURS * 3600);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(d): State<Arc<Daemon>>, viewer: Viewer, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    if let Err(resp) = require_login(&viewer, &f.csrf) {
        return resp;
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = d.store.delete_web_session(&sha256_hex(id)).await
    {
        tracing::warn!(error = %e, "cannot delete the web session");
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

pub fn router() -> Router<Arc<Daemon>> {
    Router::new().route("/login", get(login_page).post(login)).route("/logout", post(logout))
}

/// `tmctl hash-password`: the argon2 PHC string for `web.password_hash`.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}
