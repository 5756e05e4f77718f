//! `/api/v1/courses/freshness`: each course's data freshness.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{ApiError, ApiResult, ErrorBody, bad};
use crate::daemon::Daemon;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct FreshnessQuery {
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
pub(super) async fn course_freshness(State(d): State<Arc<Daemon>>, Query(q): Query<FreshnessQuery>) -> ApiResult {
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
