//! `/dags/{dag_id}`: the grid of runs × tasks, coloured by state, with duration bars.

use super::*;

pub(super) struct GridCol {
    run_pk: i64,
    ds: String,
    state: &'static str,
    title: String,
    bar_h: i64,
}

pub(super) struct GridCell {
    run_pk: i64,
    state: &'static str,
    title: String,
}

pub(super) struct GridRow {
    task_id: String,
    cells: Vec<GridCell>,
}

#[derive(Template)]
#[template(path = "runs/grid.html")]
pub(super) struct GridPage {
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
pub(super) struct GridQuery {
    before: Option<String>,
}

pub(super) async fn grid(
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
