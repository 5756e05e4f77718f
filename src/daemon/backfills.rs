//! Backfills owned by the daemons. `tmctl backfill` (or `POST /api/v1/backfills`) records a
//! backfill as `queued` with its plan checked; a daemon claims it under a lease (also one whose
//! in-process driver died) and drives it with the one driver (`backfill::driver::step`), whose
//! runs it queues for any daemon's workers. The CLI can exit at any point; pause, resume and
//! cancel are state changes on the row that the driver follows.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;

use super::Daemon;
use crate::backfill::{self, BackfillError, Launcher, Request, driver};
use crate::dag::Dag;
use crate::executor::Executor;
use crate::store::{BackfillRow, RunRow, Store, StoreError};

/// Checks a backfill request as the in-process backfill would (bad dates, unknown params…) and
/// records it for the daemons. Returns the queued backfill.
pub async fn submit(store: &Store, dag: &Dag, req: &Request) -> Result<BackfillRow, BackfillError> {
    backfill::plan(store, dag, req).await?;
    Ok(backfill::record_request(store, dag, req, None).await?)
}

/// A daemon's runs are queued for its (and every other daemon's) workers.
struct Queue<'a>(&'a Daemon);

impl Launcher for Queue<'_> {
    fn holder(&self) -> Option<&Executor> {
        None
    }

    fn launch(&self, _dag: &Arc<Dag>, _run: RunRow) {
        self.0.wake.notify_waiters();
    }
}

/// Claims backfills and drives them until shutdown (then hands them back, unfinished).
pub async fn run(d: Arc<Daemon>) {
    let mut driving: BTreeSet<i64> = BTreeSet::new();
    loop {
        loop {
            match d.store.claim_backfill(&d.id, Utc::now(), d.settings.daemon.lease).await {
                Ok(Some(b)) => {
                    tracing::info!(backfill = b.id, dag = %b.dag_id, "driving backfill");
                    driving.insert(b.id);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim backfills");
                    break;
                }
            }
        }
        let mut finished = Vec::new();
        for &id in &driving {
            match step(&d, id).await {
                Ok(true) => finished.push(id),
                Ok(false) => {}
                Err(e) => tracing::warn!(backfill = id, error = %e, "backfill step failed"),
            }
        }
        for id in finished {
            driving.remove(&id);
        }
        tokio::select! {
            _ = d.shutdown.cancelled() => break,
            _ = tokio::time::sleep(driver::STEP_EVERY) => {}
        }
    }
    for id in driving {
        if let Err(e) = d.store.release_backfill(id, &d.id).await {
            tracing::warn!(backfill = id, error = %e, "cannot release backfill");
        }
    }
}

/// One look at a backfill; true once this daemon is done with it (finished, or taken over).
async fn step(d: &Daemon, id: i64) -> Result<bool, StoreError> {
    if !d.store.renew_backfill_lease(id, &d.id, d.settings.daemon.lease).await? {
        return Ok(true);
    }
    let Some(b) = d.store.get_backfill(id).await? else { return Ok(true) };
    let Some(dag) = d.dag(&b.dag_id) else {
        tracing::warn!(backfill = id, dag = %b.dag_id, "backfill of a DAG this daemon has not loaded; handing it back");
        d.store.release_backfill(id, &d.id).await?;
        return Ok(true);
    };
    Ok(driver::step(&d.store, &b, &dag, &Queue(d)).await?.finished)
}
