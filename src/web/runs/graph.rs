//! `/dags/{dag_id}/graph`: the DAG as SVG, coloured by one run's states.

use super::*;

pub(super) struct RunOption {
    run_pk: i64,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "runs/graph.html")]
pub(super) struct GraphPage {
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
pub(super) struct GraphQuery {
    run: Option<i64>,
}

pub(super) async fn graph(
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
