//! Run workers: claim runs that are queued, or whose lease expired, and execute them, at most
//! `daemon.max_runs` at once. A claim is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
//! LOCKED)`, so two daemons never claim the same run, and a run is held under a lease that the
//! executor renews while it runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::Daemon;
use crate::store::RunState;

/// Longest a worker sleeps before looking for claimable runs again (runs queued by other
/// processes and leases running out are only seen by looking).
const POLL: Duration = Duration::from_millis(250);

/// Claims and executes runs until shutdown; then waits for the runs in flight (the caller bounds
/// that wait by the shutdown grace and releases the runs after it).
pub async fn run(d: Arc<Daemon>) {
    let slots = Arc::new(Semaphore::new(d.settings.daemon.max_runs.max(1)));
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = d.shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        while in_flight.try_join_next().is_some() {}
        // Registered before looking, so a wake-up between the claim and the sleep is not missed.
        let woken = d.wake.notified();
        let dags = d.dags();
        let ids: Vec<&str> = dags.keys().map(String::as_str).collect();
        let claimed = d.store.claim_next_run(&d.id, chrono::Utc::now(), d.settings.daemon.lease, &ids).await;
        match claimed {
            Ok(Some(run)) => {
                let Some(dag) = dags.get(&run.dag_id).cloned() else { continue };
                tracing::info!(run = run.id, dag = %run.dag_id, ds = %run.ds, previous = %run.state, "claimed run");
                if run.state == RunState::Running {
                    // Running but claimable: its owner's lease ran out (or the owner died).
                    d.metrics.lease_taken_over();
                }
                let d2 = d.clone();
                in_flight.spawn(async move {
                    let _permit = permit;
                    match d2.exec.execute(&dag, run.id).await {
                        Ok(RunState::Success | RunState::Failed) => {}
                        Ok(state) => tracing::info!(run = run.id, %state, "run left unfinished"),
                        Err(e) => tracing::error!(run = run.id, error = %e, "run could not be executed"),
                    }
                    d2.wake.notify_waiters();
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    _ = d.shutdown.cancelled() => break,
                    _ = woken => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "cannot claim runs");
                tokio::select! {
                    _ = d.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(POLL * 2) => {}
                }
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
}
