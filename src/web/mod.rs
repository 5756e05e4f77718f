//! The web UI of `tmctl serve` (axum + askama). Pages are rendered on the server from the state
//! DB (run views) and the gold tables (lakehouse views); templates live in `templates/` and
//! static assets in `static/`, both compiled into the binary. Every value is escaped by askama.
//!
//! Every page needs a login (`auth::guard`; `web.anonymous_read` opens the reads); every mutating
//! form also needs the session's CSRF token and the role the action needs (checked by `ops`,
//! whose buttons are hidden from roles without it). Sessions live in the state DB, so any daemon
//! behind a load balancer accepts them.

pub mod admin;
pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
pub mod charts;
pub mod lakehouse;
pub mod runs;
pub mod throttle;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::daemon::Daemon;
use crate::ops::Role;
pub use auth::{Viewer, require_login};

/// What every page's frame (`templates/base.html`) shows.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub title: String,
    /// The logged-in user, if any.
    pub user: Option<String>,
    /// Their role (`viewer`, `operator`, `admin`; empty when anonymous).
    pub role: String,
    /// The session's CSRF token (empty when not logged in).
    pub csrf: String,
    /// Trigger, clear, mark, pause and backfill buttons are shown.
    pub can_operate: bool,
    /// The admin pages are linked.
    pub is_admin: bool,
}

impl Chrome {
    pub fn new(title: impl Into<String>, viewer: &Viewer) -> Chrome {
        Chrome {
            title: title.into(),
            user: viewer.user.clone(),
            role: viewer.role.map(|r| r.as_str().to_string()).unwrap_or_default(),
            csrf: viewer.csrf.clone(),
            can_operate: viewer.can(Role::Operator) && !viewer.csrf.is_empty(),
            is_admin: viewer.can(Role::Admin),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    message: String,
}

/// An HTML error page with its status.
pub fn error_page(status: StatusCode, viewer: &Viewer, message: impl Into<String>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error").to_string();
    let page = ErrorPage { chrome: Chrome::new(title, viewer), message: message.into() };
    (status, render(&page)).into_response()
}

/// A new id for one server-side error: shown to the user, logged with the detail.
pub fn error_id() -> String {
    crate::util::hex(&rand::random::<[u8; 4]>())
}

/// What the user reads about a server-side error: what failed and its error id, never the
/// detail (a state DB error can name hosts, tables or paths); the log has the detail under the id.
pub fn internal_message(what: &str, id: &str) -> String {
    format!("{what} failed on the server (error id {id}); the daemon's log has the details under that id.")
}

/// A 500 page for an unexpected error: [`internal_message`] on the page, the detail in the log.
pub fn internal_error(viewer: &Viewer, what: &str, e: &dyn std::fmt::Display) -> Response {
    let id = error_id();
    tracing::error!(error_id = %id, error = %e, "{what} failed");
    error_page(StatusCode::INTERNAL_SERVER_ERROR, viewer, internal_message(what, &id))
}

/// The page of a refused or failed operation: its message (not found, conflict, forbidden,
/// invalid), or for an internal error an error id.
pub fn op_error_page(viewer: &Viewer, e: crate::ops::OpError) -> Response {
    match e {
        crate::ops::OpError::Internal(detail) => internal_error(viewer, "The operation", &detail),
        e => error_page(e.status(), viewer, e.to_string()),
    }
}

/// Renders a template; a template error becomes a 500 (it is a bug, logged).
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");

async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], APP_CSS)
        .into_response()
}

async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], APP_JS)
        .into_response()
}

/// The UI's routes (merged with the API's by the daemon).
pub fn router() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/static/app.css", get(app_css))
        .route("/static/app.js", get(app_js))
        .merge(auth::router())
        .merge(admin::router())
        .merge(runs::router())
        .merge(lakehouse::router())
}
