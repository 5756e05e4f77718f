//! `/runs/{run_pk}/tasks/{task_id}`: a task's tries and each try's log (tailed live while it
//! runs).

use super::run::{RunHead, load_run, run_head};
use super::*;

pub(super) struct TryLine {
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
pub(super) struct TaskPage {
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
pub(super) struct TaskQuery {
    #[serde(rename = "try")]
    try_number: Option<u32>,
}

pub(super) async fn task_page(
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
