//! `/backfills` and `/backfills/{id}`: backfills and their per-date outcomes.

use super::*;

pub(super) struct BackfillLine {
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

pub(super) fn can_cancel(state: &str) -> bool {
    matches!(state, "queued" | "running" | "paused")
}

#[derive(Template)]
#[template(path = "runs/backfills.html")]
pub(super) struct BackfillsPage {
    chrome: Chrome,
    backfills: Vec<BackfillLine>,
    older: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct IdPage {
    before: Option<i64>,
}

pub(super) async fn backfills(State(d): State<Arc<Daemon>>, viewer: Viewer, Query(q): Query<IdPage>) -> PageResult {
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

pub(super) struct DateLine {
    ds: String,
    logical: String,
    run_pk: Option<i64>,
    outcome: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "runs/backfill.html")]
pub(super) struct BackfillPage {
    chrome: Chrome,
    b: BackfillLine,
    max_active_runs: u32,
    run_backwards: bool,
    dates: Vec<DateLine>,
}

pub(super) async fn backfill_detail(State(d): State<Arc<Daemon>>, viewer: Viewer, Path(id): Path<i64>) -> PageResult {
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
