//! The run views of the web UI: DAG list (`/`), grid (`/dags/{dag_id}`), graph
//! (`/dags/{dag_id}/graph`), run detail with gantt (`/runs/{run_id}`), a task's tries and logs
//! (`/runs/{run_id}/tasks/{task_id}`), backfills (`/backfills`, `/backfills/{id}`), the ingestion
//! registry (`/ingestion`) and the trigger form (`/dags/{dag_id}/trigger`).
//!
//! Handlers are thin: read through `store` (bounded pages; logs only on the task page), shape the
//! rows into view structs (`view.rs` formats and lays out), render askama. The mutating forms are
//! in `actions.rs`.

mod actions;
mod backfills;
mod dags;
mod graph;
mod grid;
mod ingestion;
mod run;
mod task;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;

use super::{Chrome, Viewer, error_page, render};
use crate::daemon::Daemon;
use crate::dag::Dag;
use crate::store::{IngestStatus, RunRow, StoreError, TaskState};

/// Runs per grid page.
const GRID_RUNS: i64 = 25;
/// Dots of recent runs per DAG in the DAG list.
const RECENT_RUNS: i64 = 10;
/// Runs offered in the graph page's run picker.
const GRAPH_RUNS: i64 = 25;
const BACKFILLS_PER_PAGE: i64 = 50;
const INGESTIONS_PER_PAGE: i64 = 100;

pub fn router() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/", get(dags::dag_list))
        .route("/dags/{dag_id}", get(grid::grid))
        .route("/dags/{dag_id}/graph", get(graph::graph))
        .route("/dags/{dag_id}/trigger", get(actions::trigger_form).post(actions::trigger))
        .route("/dags/{dag_id}/pause", post(actions::pause))
        .route("/dags/{dag_id}/unpause", post(actions::unpause))
        .route("/runs/{run_pk}", get(run::run_detail))
        .route("/runs/{run_pk}/tasks/{task_id}", get(task::task_page))
        .route("/runs/{run_pk}/tasks/{task_id}/clear", post(actions::clear))
        .route("/runs/{run_pk}/tasks/{task_id}/mark", post(actions::mark))
        .route("/backfills", get(backfills::backfills))
        .route("/backfills/{id}", get(backfills::backfill_detail))
        .route("/backfills/{id}/cancel", post(actions::cancel_backfill))
        .route("/ingestion", get(ingestion::ingestion))
}

type PageResult = Result<Response, Response>;

/// A state DB error as a 500 page (the error is logged).
fn db_error(viewer: &Viewer, e: StoreError) -> Response {
    super::internal_error(viewer, "Reading the state DB", &e)
}

fn not_found(viewer: &Viewer, message: impl Into<String>) -> Response {
    error_page(StatusCode::NOT_FOUND, viewer, message)
}

// The error is the page to send (axum handlers return `Result<Response, Response>`).
#[allow(clippy::result_large_err)]
fn dag_or_404(d: &Daemon, viewer: &Viewer, dag_id: &str) -> Result<Arc<Dag>, Response> {
    d.dag(dag_id).ok_or_else(|| not_found(viewer, format!("No DAG `{dag_id}` is loaded.")))
}

/// A coloured dot/link for one run.
struct RunDot {
    run_pk: i64,
    state: &'static str,
    title: String,
}

fn run_dot(r: &RunRow) -> RunDot {
    RunDot { run_pk: r.id, state: r.state.as_str(), title: format!("{} · {} · {}", r.ds, r.run_type, r.state) }
}

fn schedule_text(dag: &Dag) -> String {
    dag.schedule.as_ref().map(|s| s.expr.clone()).unwrap_or_else(|| "manual only".into())
}

/// `DateTime` of a `before=` cursor, for tests.
#[cfg(test)]
fn parse_before(s: &str) -> Option<chrono::DateTime<Utc>> {
    crate::timefmt::from_db(s)
}

#[cfg(test)]
mod tests {
    use super::backfills::can_cancel;
    use super::*;

    #[test]
    fn grid_cursors_round_trip() {
        let t = Utc::now();
        let s = crate::timefmt::to_db(t);
        assert!(!s.contains('+'), "the cursor must survive a query string: {s}");
        assert_eq!(parse_before(&s).map(crate::timefmt::to_db), Some(s));
    }

    #[test]
    fn only_unfinished_backfills_can_be_cancelled() {
        assert!(can_cancel("running"));
        assert!(!can_cancel("completed"));
    }
}
