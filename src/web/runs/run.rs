//! `/runs/{run_pk}`: a run's tasks and the gantt of its tries.

use super::*;

pub(super) struct TaskLine {
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
pub(super) struct RunHead {
    pub(super) run_pk: i64,
    pub(super) run_id: String,
    pub(super) dag_id: String,
    pub(super) state: &'static str,
    pub(super) run_type: &'static str,
    pub(super) ds: String,
    pub(super) logical_utc: String,
    pub(super) logical_local: String,
    pub(super) interval: String,
    pub(super) started: String,
    pub(super) ended: String,
    pub(super) duration: String,
    pub(super) finished: bool,
    pub(super) backfill_id: Option<i64>,
}

pub(super) fn run_head(r: &RunRow, tz: chrono_tz::Tz) -> RunHead {
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
pub(super) struct RunPage {
    chrome: Chrome,
    run: RunHead,
    conf: String,
    tasks: Vec<TaskLine>,
    gantt: view::Gantt,
    row_h: i64,
    label_w: i64,
}

/// The run and its DAG's time zone (UTC if the DAG is no longer loaded).
pub(super) async fn load_run(d: &Daemon, viewer: &Viewer, run_pk: i64) -> Result<(RunRow, Option<Arc<Dag>>), Response> {
    let run = d
        .store
        .get_run(run_pk)
        .await
        .map_err(|e| db_error(viewer, e))?
        .ok_or_else(|| not_found(viewer, format!("No run {run_pk}.")))?;
    let dag = d.dag(&run.dag_id);
    Ok((run, dag))
}

pub(super) async fn run_detail(State(d): State<Arc<Daemon>>, viewer: Viewer, Path(run_pk): Path<i64>) -> PageResult {
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
