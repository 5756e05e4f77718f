//! Admin pages: the audit log (newest first, paged) and the users with their roles.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{Chrome, Viewer, error_page, render};
use crate::daemon::Daemon;
use crate::ops::{self, Role};

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
    /// (name, role, created, updated)
    users: Vec<(String, String, String, String)>,
    config_user: String,
}

#[derive(Deserialize)]
struct Before {
    before: Option<i64>,
}

async fn audit(State(d): State<Arc<Daemon>>, viewer: Viewer, Query(q): Query<Before>) -> Response {
    if let Err(e) = ops::require(&viewer.actor(), Role::Admin, "read the audit log") {
        return error_page(e.status(), &viewer, e.to_string());
    }
    let fail = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "state DB error on the audit page");
        error_page(StatusCode::INTERNAL_SERVER_ERROR, &viewer, format!("state DB error: {e}"))
    };
    let rows = match d.store.list_audit(q.before, AUDIT_PER_PAGE).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let users = match d.store.list_users().await {
        Ok(u) => u,
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
        users: users
            .into_iter()
            .map(|u| (u.username, u.role, super::runs::view::utc(u.created_at), super::runs::view::utc(u.updated_at)))
            .collect(),
        config_user: d.settings.web_user.clone(),
    };
    render(&page)
}

pub fn router() -> Router<Arc<Daemon>> {
    Router::new().route("/admin/audit", get(audit))
}
