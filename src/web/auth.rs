//! Who is asking, and the login page.
//!
//! - [`guard`] runs before every route: the Host check (421 unless the host is in
//!   `web.allowed_hosts`), then the caller — a session cookie or `Authorization: Bearer` (the
//!   config admin's API token or a user's token) — put into the request as a [`Viewer`]. Without
//!   one only `/health`, `/login` and `/static/` answer (and GETs when `web.anonymous_read`): API
//!   calls get 401, pages a redirect to the login page.
//! - `POST /login` checks a user of the `users` table (argon2id on the blocking pool, see
//!   `ops::passwords`), or the config user (`web.user` with `web.password_hash`, or the API token
//!   as password: the first admin); throttled per user and per client address
//!   ([`super::throttle`]). It sets `tm_session` (random 256-bit id, HttpOnly, SameSite=Strict,
//!   Secure when `web.public_url` is https); the DB keeps the id's SHA-256, the role and the CSRF
//!   token. Sessions end after `web.session_idle` without use, `web.session_max` after login, and
//!   when the user's password or role changes.
//! - [`require_login`] is what every mutating form handler calls first: 401 without a session,
//!   403 when the form's `csrf` does not match the session's. The role is checked by `ops`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Chrome, error_page, render};
use crate::daemon::Daemon;
use crate::daemon::api::constant_time_eq;
use crate::ops::{Actor, Role};

const SESSION_COOKIE: &str = "tm_session";
const LOGIN_CSRF_COOKIE: &str = "tm_login_csrf";
/// An argon2id hash (default parameters) of a password nobody has: verified for unknown users.
const UNKNOWN_USER_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$5KyaIYbCGOUvTrDXOiMtZw$fjZqrigpqmXOXHmeohUyhjSkJN09/W8M7fCSCIvYaRk";

/// Who is looking at a page or calling the API.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// The logged-in user (session or token); `None` = anonymous.
    pub user: Option<String>,
    /// Their role; `None` when anonymous.
    pub role: Option<Role>,
    /// The session's CSRF token (empty for tokens and anonymous readers).
    pub csrf: String,
    /// Authenticated by a bearer token (no cookie, so no CSRF check is needed).
    pub via_token: bool,
}

impl Viewer {
    /// The actor the operations layer checks.
    pub fn actor(&self) -> Actor {
        Actor { name: self.user.clone().unwrap_or_else(|| "anonymous".into()), role: self.role }
    }

    pub fn can(&self, role: Role) -> bool {
        self.role.is_some_and(|r| r >= role)
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

fn sha256_hex(s: &str) -> String {
    crate::ops::users::token_hash(s)
}

/// A random URL-safe token of 256 bits.
pub fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    crate::util::hex(&bytes)
}

/// What the caller presented: `Ok(Some)` a valid session or token, `Ok(None)` nothing, `Err` a
/// bearer token that is not valid.
async fn identify(d: &Daemon, headers: &HeaderMap) -> Result<Option<Viewer>, ()> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let given = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or_default();
        if given.is_empty() {
            return Err(());
        }
        if constant_time_eq(given.as_bytes(), d.token.as_bytes()) {
            let user = Some(d.settings.web_user.clone());
            return Ok(Some(Viewer { user, role: Some(Role::Admin), csrf: String::new(), via_token: true }));
        }
        return match d.store.token_owner(&sha256_hex(given), chrono::Utc::now()).await {
            Ok(Some(owner)) => match owner.role.parse::<Role>() {
                Ok(role) => Ok(Some(Viewer {
                    user: Some(owner.username),
                    role: Some(role),
                    csrf: String::new(),
                    via_token: true,
                })),
                Err(_) => Err(()),
            },
            Ok(None) => Err(()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read API tokens");
                Err(())
            }
        };
    }
    let Some(id) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    match d.store.web_session(&sha256_hex(id), chrono::Utc::now(), d.settings.web_session_idle).await {
        Ok(Some(s)) => {
            let role = s.role.parse::<Role>().ok();
            Ok(role.map(|role| Viewer { user: Some(s.username), role: Some(role), csrf: s.csrf, via_token: false }))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the web session");
            Ok(None)
        }
    }
}

/// True if `host` (a Host header, maybe with a port) is one of `allowed` (entries with a port
/// match exactly, entries without one match any port; `*` matches everything).
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or_default().to_string()
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n.to_string(),
            _ => host.clone(),
        }
    };
    allowed.iter().any(|a| a == "*" || *a == host || *a == name)
}

fn is_public(path: &str) -> bool {
    path == "/health" || path == "/login" || path.starts_with("/static/")
}

/// The layer in front of every route: Host check, then who is asking, then the login gate.
pub async fn guard(State(d): State<Arc<Daemon>>, mut req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host {
        None => return (StatusCode::BAD_REQUEST, "a Host header is needed\n").into_response(),
        Some(h) if !host_allowed(&d.settings.web_allowed_hosts, &h) => {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "this host name is not served here; add it to web.allowed_hosts (TM_WEB_ALLOWED_HOSTS)\n",
            )
                .into_response();
        }
        Some(_) => {}
    }
    let path = req.uri().path().to_string();
    // `/metrics` is for scrapers: a 401 like the API, not a redirect to the login page.
    let is_api = path.starts_with("/api/") || path == "/metrics";
    let viewer = match identify(&d, req.headers()).await {
        Ok(v) => v,
        Err(()) => {
            let resp = crate::daemon::api::unauthorized("the bearer token is not valid (or has expired)");
            return if is_public(&path) { next.run(req).await } else { resp };
        }
    };
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let allowed = viewer.is_some() || is_public(&path) || (read && d.settings.web_anonymous_read);
    req.extensions_mut().insert(viewer.unwrap_or_default());
    if allowed {
        return next.run(req).await;
    }
    if is_api {
        return crate::daemon::api::unauthorized(
            "this call needs `Authorization: Bearer <token>` (tmctl tokens create) or a web session",
        );
    }
    if read {
        let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    error_page(StatusCode::UNAUTHORIZED, &Viewer::default(), "Log in to do this (/login).")
}

impl FromRequestParts<Arc<Daemon>> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _d: &Arc<Daemon>) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Viewer>().cloned().unwrap_or_default())
    }
}

/// The actor of a mutating form whose `csrf` field was given; else the response to send (401
/// not logged in, 403 bad CSRF token). Token callers send no cookie, so need no CSRF token.
// The error is the HTTP response the handler returns as it is; boxing it would only add a step.
#[allow(clippy::result_large_err)]
pub fn require_login(viewer: &Viewer, csrf: &str) -> Result<Actor, Response> {
    if viewer.user.is_none() {
        return Err(error_page(StatusCode::UNAUTHORIZED, viewer, "Log in to do this (/login)."));
    }
    if !viewer.via_token && (viewer.csrf.is_empty() || !constant_time_eq(viewer.csrf.as_bytes(), csrf.as_bytes())) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            viewer,
            "The form's CSRF token does not match your session; reload the page and try again.",
        ));
    }
    Ok(viewer.actor())
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

/// Only same-site paths are followed after login: a single leading `/`, no `//`, no `\`, no
/// control characters or whitespace (browsers drop `\t` and read `/\t/evil` as `//evil`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && n.len() <= 2048 =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

fn secure_attr(d: &Daemon) -> &'static str {
    if d.settings.web_public_url.starts_with("https://") { "; Secure" } else { "" }
}

fn login_form(d: &Daemon, viewer: &Viewer, status: StatusCode, error: Option<String>, next: String) -> Response {
    let token = random_token();
    let page = LoginPage { chrome: Chrome::new("Log in", viewer), login_csrf: token.clone(), error, next };
    let cookie = format!("{LOGIN_CSRF_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict{}", secure_attr(d));
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

async fn login_page(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    login_form(&d, &viewer, StatusCode::OK, None, safe_next(q.next.as_deref()))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// The role of `username` if `password` is theirs: a user of the `users` table, else the config
/// user (`web.user`: its `web.password_hash`, or the API token when no hash is set) as admin.
pub async fn authenticate(d: &Daemon, username: &str, password: &str) -> Option<Role> {
    match d.store.get_user(username).await {
        Ok(Some(u)) => {
            let ok = d.passwords.verify(password.to_string(), u.password_hash).await;
            return if ok { u.role.parse().ok() } else { None };
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot read users");
            return None;
        }
    }
    if !constant_time_eq(username.as_bytes(), d.settings.web_user.as_bytes()) {
        // As long as a real check, so timing does not tell which user names exist.
        d.passwords.verify(password.to_string(), UNKNOWN_USER_HASH.to_string()).await;
        return None;
    }
    let hash = &d.settings.web_password_hash;
    let ok = if hash.is_empty() {
        constant_time_eq(password.as_bytes(), d.token.as_bytes())
    } else {
        d.passwords.verify(password.to_string(), hash.clone()).await
    };
    ok.then_some(Role::Admin)
}

async fn login(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(Some(&f.next));
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return login_form(&d, &viewer, StatusCode::FORBIDDEN, Some("The form expired; try again.".into()), next);
    }
    let client = peer.map(|axum::Extension(ConnectInfo(a))| a.ip().to_string()).unwrap_or_else(|| "unknown".into());
    let keys = super::throttle::keys(&f.username, &client);
    if let Some(wait) = d.login_throttle.blocked(&keys) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::warn!(user = %f.username, client = %client, retry_after = secs, "web login throttled");
        let mut resp = login_form(
            &d,
            &viewer,
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!("Too many failed logins; try again in {secs} s.")),
            next,
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let Some(role) = authenticate(&d, &f.username, &f.password).await else {
        d.login_throttle.failed(&keys);
        tracing::warn!(user = %f.username, client = %client, "failed web login");
        return login_form(&d, &viewer, StatusCode::UNAUTHORIZED, Some("Wrong user name or password.".into()), next);
    };
    d.login_throttle.succeeded(&keys);
    let id = random_token();
    let max = chrono::Duration::from_std(d.settings.web_session_max).unwrap_or(chrono::Duration::hours(12));
    let expires = chrono::Utc::now() + max;
    if let Err(e) =
        d.store.create_web_session(&sha256_hex(&id), &f.username, role.as_str(), &random_token(), expires).await
    {
        return super::internal_error(&viewer, "Creating the session", &e);
    }
    if let Err(e) = d.store.note_login(&f.username).await {
        tracing::warn!(error = %e, user = %f.username, "cannot record the login time");
    }
    tracing::info!(user = %f.username, role = %role, client = %client, "web login");
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max.num_seconds(),
        secure_attr(&d)
    );
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
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", secure_attr(&d));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

pub fn router() -> Router<Arc<Daemon>> {
    Router::new().route("/login", get(login_page).post(login)).route("/logout", post(logout))
}

/// `tmctl hash-password`: the argon2id PHC string for `web.password_hash`.
pub fn hash_password(password: &str) -> Result<String, String> {
    crate::ops::passwords::hash_now(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_site() {
        for bad in
            ["//evil.example/", "/\\evil.example", "/\t/evil.example/", "https://evil.example/", "/\n/x", "", "x"]
        {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/dags/x?a=1")), "/dags/x?a=1");
    }

    #[test]
    fn hosts_match_with_or_without_port() {
        let allowed = vec!["localhost".to_string(), "127.0.0.1".into(), "tm.example.com:8443".into(), "[::1]".into()];
        assert!(host_allowed(&allowed, "localhost"));
        assert!(host_allowed(&allowed, "LOCALHOST:8080"));
        assert!(host_allowed(&allowed, "127.0.0.1:1234"));
        assert!(host_allowed(&allowed, "[::1]:8080"));
        assert!(host_allowed(&allowed, "tm.example.com:8443"));
        assert!(!host_allowed(&allowed, "tm.example.com"));
        assert!(!host_allowed(&allowed, "evil.example"));
        assert!(!host_allowed(&allowed, "localhost.evil.example"));
        assert!(host_allowed(&["*".to_string()], "anything"));
    }
}
