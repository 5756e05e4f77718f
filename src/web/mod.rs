//! The web UI of `tmctl serve` (axum + askama). Pages are rendered on the server from the state
//! DB (run views) and the gold tables (lakehouse views); templates live in `templates/` and
//! static assets in `static/`, both compiled into the binary. Every value is escaped by askama.
//!
//! Reading is open; every mutating form needs a logged-in session (user/password from config,
//! password checked against an argon2 hash) and the session's CSRF token. Sessions live in the
//! state DB, so any daemon behind a load balancer accepts them.

pub mod auth;
pub mod bench;
pub mod charts;
pub mod lakehouse;
pub mod runs;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::daemon::Daemon;
pub use auth::{Viewer, require_login};

/// What every page's frame (`templates/base.html`) shows.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub title: String,
    /// The logged-in user, if any.
    pub user: Option<String>,
    /// The session's CSRF token (empty when not logged in).
    pub csrf: String,
}

impl Chrome {
    pub fn new(title: impl Into<String>, viewer: &Viewer) -> Chrome {
        Chrome { title: title.into(), user: viewer.user.clone(), csrf: viewer.csrf.clone() }
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
        .merge(runs::router())
        .merge(lakehouse::router())
}
