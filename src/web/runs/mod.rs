//! The run views of the web UI: DAG list (`/`), grid (`/dags/{dag_id}`), graph
//! (`/dags/{dag_id}/graph`), run detail with gantt (`/runs/{run_id}`), a task's tries and logs
//! (`/runs/{run_id}/tasks/{task_id}`), backfills (`/backfills`, `/backfills/{id}`), the ingestion
//! registry (`/ingestion`) and the trigger form (`/dags/{dag_id}/trigger`).
//!
//! Handlers are thin: read through `store` (bounded pages; logs only on the task page), shape the
//! rows into view structs (`view.rs` formats and lays out), render askama. The mutating forms are
//! in `actions.rs`.

mod actions;
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
        .route("/", get(dag_list))
        .route("/dags/{dag_id}", get(grid))
        .route("/dags/{dag_id}/graph", get(graph))
        .route("/dags/{dag_id}/trigger", get(actions::trigger_form).post(actions::trigger))
        .route("/dags/{dag_id}/pause", post(actions::pause))
        .route("/dags/{dag_id}/unpause", post(actions::unpause))
        .route("/runs/{run_pk}", get(run_detail))
        .route("/runs/{run_pk}/tasks/{task_id}", get(task_page))
        .route("/runs/{run_pk}/tasks/{task_id}/clear", post(actions::clear))
        .route("/runs/{run_pk}/tasks/{task_id}/mark", post(actions::mark))
        .route("/backfills", get(backfills))
        .route("/backfills/{id}", get(backfill_detail))
        .route("/backfills/{id}/cancel", post(actions::cancel_backfill))
        .route("/ingestion", get(ingestion))
}

type PageResult = Result<Response, Response>;

/// A state DB error as a 500 page (the error is logged).
fn db_error(viewer: &Viewer, e: StoreError) -> Response {
    tracing::error!(error = %e, "state DB error in a web page");
    error_page(StatusCode::INTERNAL_SERVER_ERROR, viewer, format!("state DB error: {e}"))
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

// ---- DAG list ---------------------------------------------------------------------------------------

struct DagItem {
    id: String,
    description: String,
    schedule: String,
    timezone: String,
    next_utc: String,
    next_local: String,
    paused: bool,
    tasks: usize,
    recent: Vec<RunDot>,
}

#[derive(Template)]
#[template(path = "runs/dags.html")]
struct DagsPage {
    chrome: Chrome,
    dags: Vec<DagItem>,
}

async fn dag_list(State(d): State<Arc<Daemon>>, viewer: Viewer) -> PageResult {
    let paused = d.store.paused_flags().await.map_err(|e| db_error(&viewer, e))?;
    let now = Utc::now();
    let mut dags = Vec::new();
    for dag in d.dags().values() {
        let recent = d.store.runs_page(&dag.id, None, RECENT_RUNS).await.map_err(|e| db_error(&viewer, e))?;
        let next = dag.schedule.as_ref().and_then(|s| s.next_after(now, dag.timezone));
        dags.push(DagItem {
            id: dag.id.clone(),
            description: dag.description.clone(),
            schedule: schedule_text(dag),
            timezone: dag.timezone.name().to_string(),
            next_utc: view::opt_utc(next),
            next_local: next.map(|t| view::local(t, dag.timezone)).unwrap_or_default(),
            paused: paused.get(&dag.id).copied().unwrap_or(false),
            tasks: dag.tasks.len(),
            recent: recent.iter().map(run_dot).collect(),
        });
    }
    Ok(render(&DagsPage { chrome: Chrome::new("DAGs", &viewer), dags }))
}

// ---- grid -------------------------------------------------------------------------------------------

struct GridCol {
    run_pk: i64,
    ds: String,
    state: &'static str,
    title: String,
    bar_h: i64,
}

struct GridCell {
    run_pk: i64,
    state: &'static str,
    title: String,
}

struct GridRow {
    task_id: String,
    cells: Vec<GridCell>,
}

#[derive(Template)]
#[template(path = "runs/grid.html")]
struct GridPage {
    chrome: Chrome,
    dag_id: String,
    description: String,
    schedule: String,
    timezone: String,
    paused: bool,
    cols: Vec<GridCol>,
    rows: Vec<GridRow>,
    /// `before=` value of the next (older) page.
    older: Option<String>,
    paged: bool,
}

#[derive(Deserialize)]
struct GridQuery {
    before: Option<String>,
}

async fn grid(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path(dag_id): Path<String>,
    Query(q): Query<GridQuery>,
) -> PageResult {
    let dag = dag_or_404(&d, &viewer, &dag_id)?;
    let before = match q.before.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(crate::timefmt::from_db(s).ok_or_else(|| {
            error_page(StatusCode::BAD_REQUEST, &viewer, format!("`before` = `{s}` is not an RFC 3339 time"))
        })?),
    };
    let runs = d.store.runs_page(&dag.id, before, GRID_RUNS).await.map_err(|e| db_error(&viewer, e))?;
    let pks: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let cells = d.store.task_cells(&pks).await.map_err(|e| db_error(&viewer, e))?;
    let paused = d.store.is_paused(&dag.id).await.map_err(|e| db_error(&viewer, e))?;
    let by_key: HashMap<(i64, &str), &crate::store::TaskCell> =
        cells.iter().map(|c| ((c.run_pk, c.task_id.as_str()), c)).collect();
    let now = Utc::now();
    let durations: Vec<Option<i64>> = runs.iter().map(|r| view::elapsed_ms(r.started_at, r.ended_at, now)).collect();
    let longest = durations.iter().flatten().copied().max().unwrap_or(0).max(1);
    let cols = runs
        .iter()
        .zip(&durations)
        .map(|(r, dur)| GridCol {
            run_pk: r.id,
            ds: r.ds.format("%m-%d").to_string(),
            state: r.state.as_str(),
            title: format!(
                "{} · {} · {} · logical date {} ({}) · {}",
                r.run_id,
                r.run_type,
                r.state,
                view::utc(r.logical_date),
                view::local(r.logical_date, dag.timezone),
                dur.map(view::duration_ms).unwrap_or_else(|| "not started".into())
            ),
            bar_h: 2 + dur.unwrap_or(0) * 38 / longest,
        })
        .collect();
    let rows = dag
        .topological()
        .map(|t| GridRow {
            task_id: t.id.clone(),
            cells: runs
                .iter()
                .map(|r| {
                    let cell = by_key.get(&(r.id, t.id.as_str()));
                    let state = view::task_class(cell.and_then(|c| c.state));
                    let title = match cell {
                        Some(c) => format!(
                            "{} · {} · {} · try {}{}",
                            t.id,
                            r.ds,
                            state,
                            c.try_number,
                            view::elapsed_ms(c.started_at, c.ended_at, now)
                                .map(|ms| format!(" · {}", view::duration_ms(ms)))
                                .unwrap_or_default()
                        ),
                        None => format!("{} · {} · no state", t.id, r.ds),
                    };
                    GridCell { run_pk: r.id, state, title }
                })
                .collect(),
        })
        .collect();
    let older =
        (runs.len() as i64 == GRID_RUNS).then(|| runs.last().map(|r| crate::timefmt::to_db(r.logical_date))).flatten();
    let page = GridPage {
        chrome: Chrome::new(format!("{} · grid", dag.id), &viewer),
        dag_id: dag.id.clone(),
        description: dag.description.clone(),
        schedule: schedule_text(&dag),
        timezone: dag.timezone.name().to_string(),
        paused,
        cols,
        rows,
        older,
        paged: before.is_some(),
    };
    Ok(render(&page))
}

// ---- graph ------------------------------------------------------------------------------------------

struct RunOption {
    run_pk: i64,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "runs/graph.html")]
struct GraphPage {
    chrome: Chrome,
    dag_id: String,
    run_pk: Option<i64>,
    run_label: String,
    options: Vec<RunOption>,
    g: view::Graph,
    node_w: i64,
    node_h: i64,
}

#[derive(Deserialize)]
struct GraphQuery {
    run: Option<i64>,
}

async fn graph(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path(dag_id): Path<String>,
    Query(q): Query<GraphQuery>,
) -> PageResult {
    let dag = dag_or_404(&d, &viewer, &dag_id)?;
    let recent = d.store.runs_page(&dag.id, None, GRAPH_RUNS).await.map_err(|e| db_error(&viewer, e))?;
    let run = match q.run {
        Some(pk) => match d.store.get_run(pk).await.map_err(|e| db_error(&viewer, e))? {
            Some(r) if r.dag_id == dag.id => Some(r),
            _ => return Err(not_found(&viewer, format!("DAG `{}` has no run {pk}", dag.id))),
        },
        None => recent.first().cloned(),
    };
    let mut states: HashMap<String, Option<TaskState>> = HashMap::new();
    if let Some(r) = &run {
        for c in d.store.task_cells(&[r.id]).await.map_err(|e| db_error(&viewer, e))? {
            states.insert(c.task_id, c.state);
        }
    }
    let mut options: Vec<RunOption> = recent
        .iter()
        .map(|r| RunOption {
            run_pk: r.id,
            label: format!("{} · {} ({})", r.ds, r.run_type, r.state),
            selected: run.as_ref().is_some_and(|x| x.id == r.id),
        })
        .collect();
    if let Some(r) = run.as_ref().filter(|r| !recent.iter().any(|x| x.id == r.id)) {
        options.push(RunOption {
            run_pk: r.id,
            label: format!("{} · {} ({})", r.ds, r.run_type, r.state),
            selected: true,
        });
    }
    let page = GraphPage {
        chrome: Chrome::new(format!("{} · graph", dag.id), &viewer),
        dag_id: dag.id.clone(),
        run_pk: run.as_ref().map(|r| r.id),
        run_label: run.as_ref().map(|r| format!("{} ({})", r.run_id, r.state)).unwrap_or_default(),
        options,
        g: view::graph(&dag, &states),
        node_w: view::NODE_W,
        node_h: view::NODE_H,
    };
    Ok(render(&page))
}

// ---- run detail -------------------------------------------------------------------------------------

struct TaskLine {
    task_id: String,
    kind: String,
    state: &'static str,
    tries: String,
    started: String,
    ended: String,
    duration: String,
    error: String,
}

/// What the run pages show about a run.
struct RunHead {
    run_pk: i64,
    run_id: String,
    dag_id: String,
    state: &'static str,
    run_type: &'static str,
    ds: String,
    logical_utc: String,
    logical_local: String,
    interval: String,
    started: String,
    ended: String,
    duration: String,
    finished: bool,
    backfill_id: Option<i64>,
}

fn run_head(r: &RunRow, tz: chrono_tz::Tz) -> RunHead {
    RunHead {
        run_pk: r.id,
        run_id: r.run_id.clone(),
        dag_id: r.dag_id.clone(),
        state: r.state.as_str(),
        run_type: r.run_type.as_str(),
        ds: r.ds.to_string(),
        logical_utc: view::utc(r.logical_date),
        logical_local: view::local(r.logical_date, tz),
        interval: format!("{} → {}", view::utc(r.data_interval_start), view::utc(r.data_interval_end)),
        started: view::opt_utc(r.started_at),
        ended: view::opt_utc(r.ended_at),
        duration: view::elapsed_ms(r.started_at, r.ended_at, Utc::now()).map(view::duration_ms).unwrap_or_default(),
        finished: r.state.is_finished(),
        backfill_id: r.backfill_id,
    }
}

#[derive(Template)]
#[template(path = "runs/run.html")]
struct RunPage {
    chrome: Chrome,
    run: RunHead,
    conf: String,
    tasks: Vec<TaskLine>,
    gantt: view::Gantt,
    row_h: i64,
    label_w: i64,
}

/// The run and its DAG's time zone (UTC if the DAG is no longer loaded).
async fn load_run(d: &Daemon, viewer: &Viewer, run_pk: i64) -> Result<(RunRow, Option<Arc<Dag>>), Response> {
    let run = d
        .store
        .get_run(run_pk)
        .await
        .map_err(|e| db_error(viewer, e))?
        .ok_or_else(|| not_found(viewer, format!("No run {run_pk}.")))?;
    let dag = d.dag(&run.dag_id);
    Ok((run, dag))
}

async fn run_detail(State(d): State<Arc<Daemon>>, viewer: Viewer, Path(run_pk): Path<i64>) -> PageResult {
    let (run, dag) = load_run(&d, &viewer, run_pk).await?;
    let tz = dag.as_ref().map(|g| g.timezone).unwrap_or(chrono_tz::UTC);
    let mut tis = d.store.list_task_instances(run.id).await.map_err(|e| db_error(&viewer, e))?;
    if let Some(dag) = &dag {
        let order: HashMap<&str, usize> = dag.topological().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
        tis.sort_by_key(|t| order.get(t.task_id.as_str()).copied().unwrap_or(usize::MAX));
    }
    let tries = d.store.attempt_spans(run.id, None).await.map_err(|e| db_error(&viewer, e))?;
    let now = Utc::now();
    let order: Vec<&str> = tis.iter().map(|t| t.task_id.as_str()).collect();
    let gantt = view::gantt(&order, &tries, now);
    let tasks = tis
        .iter()
        .map(|t| TaskLine {
            task_id: t.task_id.clone(),
            kind: t.kind.clone(),
            state: view::task_class(t.state),
            tries: format!("{}/{}", t.try_number, t.max_tries),
            started: view::opt_utc(t.started_at),
            ended: view::opt_utc(t.ended_at),
            duration: view::opt_duration(t.duration_ms.or_else(|| {
                (t.state == Some(TaskState::Running)).then(|| view::elapsed_ms(t.started_at, None, now)).flatten()
            })),
            error: t.error.as_deref().map(|e| view::clip(e, 200)).unwrap_or_default(),
        })
        .collect();
    let page = RunPage {
        chrome: Chrome::new(format!("Run {}", run.id), &viewer),
        conf: if run.conf.is_null() {
            "{}".to_string()
        } else {
            serde_json::to_string_pretty(&crate::secrets::mask_conf(&run.conf)).unwrap_or_default()
        },
        run: run_head(&run, tz),
        tasks,
        gantt,
        row_h: view::GANTT_ROW_H,
        label_w: view::GANTT_LABEL_W,
    };
    Ok(render(&page))
}

// ---- task tries and logs ----------------------------------------------------------------------------

struct TryLine {
    try_number: u32,
    state: &'static str,
    host: String,
    started: String,
    ended: String,
    duration: String,
    error: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "runs/task.html")]
struct TaskPage {
    chrome: Chrome,
    run: RunHead,
    task_id: String,
    kind: String,
    state: &'static str,
    upstream: Vec<String>,
    downstream: Vec<String>,
    tries: Vec<TryLine>,
    selected: Option<u32>,
    log: String,
    output: String,
    /// The selected try is running: app.js tails its log.
    tail: bool,
}

#[derive(Deserialize)]
struct TaskQuery {
    #[serde(rename = "try")]
    try_number: Option<u32>,
}

async fn task_page(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path((run_pk, task_id)): Path<(i64, String)>,
    Query(q): Query<TaskQuery>,
) -> PageResult {
    let (run, dag) = load_run(&d, &viewer, run_pk).await?;
    let tz = dag.as_ref().map(|g| g.timezone).unwrap_or(chrono_tz::UTC);
    let tis = d.store.list_task_instances(run.id).await.map_err(|e| db_error(&viewer, e))?;
    let ti = tis.iter().find(|t| t.task_id == task_id);
    let in_dag = dag.as_ref().is_some_and(|g| g.task(&task_id).is_some());
    if ti.is_none() && !in_dag {
        return Err(not_found(&viewer, format!("Run {run_pk} has no task `{task_id}`.")));
    }
    let spans = d.store.attempt_spans(run.id, Some(&task_id)).await.map_err(|e| db_error(&viewer, e))?;
    let selected = q.try_number.or_else(|| spans.iter().map(|a| a.try_number).max());
    let (log, output) = match selected {
        Some(n) => {
            d.store.attempt_log(run.id, &task_id, n).await.map_err(|e| db_error(&viewer, e))?.unwrap_or_default()
        }
        None => Default::default(),
    };
    let now = Utc::now();
    let tail = spans.iter().any(|a| Some(a.try_number) == selected && a.state == crate::store::AttemptState::Running);
    let tries = spans
        .iter()
        .map(|a| TryLine {
            try_number: a.try_number,
            state: a.state.as_str(),
            host: format!("{}:{}", a.hostname, a.pid),
            started: view::utc(a.started_at),
            ended: view::opt_utc(a.ended_at),
            duration: view::opt_duration(
                a.duration_ms.or_else(|| view::elapsed_ms(Some(a.started_at), a.ended_at, now)),
            ),
            error: a.error.as_deref().map(|e| view::clip(e, 300)).unwrap_or_default(),
            selected: Some(a.try_number) == selected,
        })
        .collect();
    let (upstream, downstream) = match &dag {
        Some(g) => (
            g.upstream(&task_id).into_iter().map(String::from).collect(),
            g.with_downstream(&task_id).into_iter().skip(1).map(String::from).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let output = output
        .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or_default();
    let page = TaskPage {
        chrome: Chrome::new(format!("{task_id} · run {}", run.id), &viewer),
        run: run_head(&run, tz),
        kind: ti.map(|t| t.kind.clone()).unwrap_or_default(),
        state: view::task_class(ti.and_then(|t| t.state)),
        task_id,
        upstream,
        downstream,
        tries,
        selected,
        log,
        output,
        tail,
    };
    Ok(render(&page))
}

// ---- backfills --------------------------------------------------------------------------------------

struct BackfillLine {
    id: i64,
    dag_id: String,
    range: String,
    reprocess: String,
    state: String,
    created: String,
    completed: String,
    counts: String,
    can_cancel: bool,
}

fn can_cancel(state: &str) -> bool {
    matches!(state, "queued" | "running" | "paused")
}

#[derive(Template)]
#[template(path = "runs/backfills.html")]
struct BackfillsPage {
    chrome: Chrome,
    backfills: Vec<BackfillLine>,
    older: Option<i64>,
}

#[derive(Deserialize)]
struct IdPage {
    before: Option<i64>,
}

async fn backfills(State(d): State<Arc<Daemon>>, viewer: Viewer, Query(q): Query<IdPage>) -> PageResult {
    let rows = d.store.backfills_page(q.before, BACKFILLS_PER_PAGE).await.map_err(|e| db_error(&viewer, e))?;
    let ids: Vec<i64> = rows.iter().map(|b| b.id).collect();
    let counts = d.store.backfill_outcomes(&ids).await.map_err(|e| db_error(&viewer, e))?;
    let backfills = rows
        .iter()
        .map(|b| {
            let mine: Vec<String> = ["succeeded", "failed", "skipped", "running", "pending"]
                .iter()
                .filter_map(|o| {
                    counts
                        .iter()
                        .find(|(id, out, _)| *id == b.id && out == o)
                        .map(|(_, _, n)| format!("{} {o}", view::int(*n)))
                })
                .collect();
            BackfillLine {
                id: b.id,
                dag_id: b.dag_id.clone(),
                range: format!("{} → {}", b.from_date, b.to_date),
                reprocess: b.reprocess.clone(),
                state: b.state.clone(),
                created: view::utc(b.created_at),
                completed: view::opt_utc(b.completed_at),
                counts: mine.join(", "),
                can_cancel: can_cancel(&b.state),
            }
        })
        .collect();
    let older = (rows.len() as i64 == BACKFILLS_PER_PAGE).then(|| rows.last().map(|b| b.id)).flatten();
    Ok(render(&BackfillsPage { chrome: Chrome::new("Backfills", &viewer), backfills, older }))
}

struct DateLine {
    ds: String,
    logical: String,
    run_pk: Option<i64>,
    outcome: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "runs/backfill.html")]
struct BackfillPage {
    chrome: Chrome,
    b: BackfillLine,
    max_active_runs: u32,
    run_backwards: bool,
    dates: Vec<DateLine>,
}

async fn backfill_detail(State(d): State<Arc<Daemon>>, viewer: Viewer, Path(id): Path<i64>) -> PageResult {
    let b = d
        .store
        .get_backfill(id)
        .await
        .map_err(|e| db_error(&viewer, e))?
        .ok_or_else(|| not_found(&viewer, format!("No backfill {id}.")))?;
    let dates = d.store.list_backfill_dates(id).await.map_err(|e| db_error(&viewer, e))?;
    let tz = d.dag(&b.dag_id).map(|g| g.timezone).unwrap_or(chrono_tz::UTC);
    let count = |o: &str| dates.iter().filter(|x| x.outcome == o).count();
    let counts = ["succeeded", "failed", "skipped", "running", "pending"]
        .iter()
        .filter(|o| count(o) > 0)
        .map(|o| format!("{} {o}", view::int(count(o) as i64)))
        .collect::<Vec<_>>()
        .join(", ");
    let page = BackfillPage {
        chrome: Chrome::new(format!("Backfill {id}"), &viewer),
        max_active_runs: b.max_active_runs,
        run_backwards: b.run_backwards,
        dates: dates
            .iter()
            .map(|x| DateLine {
                ds: x.ds.to_string(),
                logical: format!("{} ({})", view::utc(x.logical_date), view::local(x.logical_date, tz)),
                run_pk: x.run_pk,
                outcome: x.outcome.clone(),
                reason: x.reason.clone().unwrap_or_default(),
            })
            .collect(),
        b: BackfillLine {
            id: b.id,
            dag_id: b.dag_id.clone(),
            range: format!("{} → {}", b.from_date, b.to_date),
            reprocess: b.reprocess.clone(),
            state: b.state.clone(),
            created: view::utc(b.created_at),
            completed: view::opt_utc(b.completed_at),
            counts,
            can_cancel: can_cancel(&b.state),
        },
    };
    Ok(render(&page))
}

// ---- ingestion registry -----------------------------------------------------------------------------

struct IngestLine {
    id: i64,
    created: String,
    layer: String,
    course: String,
    date: String,
    filename: String,
    status: &'static str,
    reason: String,
    size: String,
    rows: String,
    run_pk: Option<i64>,
    task_id: String,
}

struct Choice {
    value: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "runs/ingestion.html")]
struct IngestionPage {
    chrome: Chrome,
    rows: Vec<IngestLine>,
    statuses: Vec<Choice>,
    courses: Vec<Choice>,
    status: String,
    course: String,
    older: Option<i64>,
}

#[derive(Deserialize)]
struct IngestionQuery {
    status: Option<String>,
    course: Option<String>,
    before: Option<i64>,
}

async fn ingestion(State(d): State<Arc<Daemon>>, viewer: Viewer, Query(q): Query<IngestionQuery>) -> PageResult {
    let status_text = q.status.unwrap_or_default();
    let course = q.course.unwrap_or_default();
    let status = match status_text.as_str() {
        "" => None,
        s => Some(s.parse::<IngestStatus>().map_err(|_| {
            let all: Vec<&str> = IngestStatus::ALL.iter().map(|s| s.as_str()).collect();
            error_page(StatusCode::BAD_REQUEST, &viewer, format!("status `{s}` is not one of {}", all.join(", ")))
        })?),
    };
    let course_filter = Some(course.as_str()).filter(|c| !c.is_empty());
    let rows = d
        .store
        .ingestions_page(status, course_filter, q.before, INGESTIONS_PER_PAGE)
        .await
        .map_err(|e| db_error(&viewer, e))?;
    let courses = d.store.ingestion_courses().await.map_err(|e| db_error(&viewer, e))?;
    let older = (rows.len() as i64 == INGESTIONS_PER_PAGE).then(|| rows.last().map(|r| r.id)).flatten();
    let page = IngestionPage {
        chrome: Chrome::new("Ingestion registry", &viewer),
        rows: rows
            .iter()
            .map(|r| IngestLine {
                id: r.id,
                created: view::utc(r.created_at),
                layer: r.layer.clone(),
                course: r.course_id.clone().unwrap_or_default(),
                date: r.ingest_date.map(|x| x.to_string()).unwrap_or_default(),
                filename: r.filename.clone(),
                status: r.status.as_str(),
                reason: r.reason.clone().unwrap_or_default(),
                size: r.size_bytes.map(view::bytes).unwrap_or_default(),
                rows: r.row_count.map(view::int).unwrap_or_default(),
                run_pk: r.run_pk,
                task_id: r.task_id.clone().unwrap_or_default(),
            })
            .collect(),
        statuses: IngestStatus::ALL
            .iter()
            .map(|s| Choice { value: s.as_str().to_string(), selected: s.as_str() == status_text })
            .collect(),
        courses: courses.into_iter().map(|c| Choice { selected: c == course, value: c }).collect(),
        status: status_text,
        course,
        older,
    };
    Ok(render(&page))
}

/// `DateTime` of a `before=` cursor, for tests.
#[cfg(test)]
fn parse_before(s: &str) -> Option<chrono::DateTime<Utc>> {
    crate::timefmt::from_db(s)
}

#[cfg(test)]
mod tests {
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
