//! `/`: the DAG list (schedule in the DAG's time zone, next run, paused, the last runs).

use super::*;

pub(super) struct DagItem {
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
pub(super) struct DagsPage {
    chrome: Chrome,
    dags: Vec<DagItem>,
}

pub(super) async fn dag_list(State(d): State<Arc<Daemon>>, viewer: Viewer) -> PageResult {
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
