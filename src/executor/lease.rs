//! Who holds a run: the lease keeper that renews a run's lease while this process executes it,
//! and how a run whose process died is recognised (abandoned).

use super::*;

/// A run without a lease (written before leases existed) whose owner has not said it is alive
/// for this long is abandoned.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// Renews a run's lease every third of its length until dropped. If the run turns out to have
/// another owner (this process was too slow and lost the lease), sets `lost` and fires `stop`.
pub(super) struct LeaseKeeper(tokio::task::JoinHandle<()>);

impl LeaseKeeper {
    pub(super) fn start(
        store: Store,
        run_pk: i64,
        owner: String,
        lease: Duration,
        stop: &CancellationToken,
        lost: &Arc<AtomicBool>,
    ) -> Self {
        let (stop, lost) = (stop.clone(), lost.clone());
        LeaseKeeper(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match store.renew_run_lease(run_pk, &owner, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        stop.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(run_pk, error = %e, "lease renewal failed"),
                }
            }
        }))
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// This machine's name, as recorded with runs and tries.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// True if an unfinished run has no live process executing it: its owner is a process of this
/// machine that no longer exists, or nobody has renewed its heartbeat for [`ABANDONED_AFTER`].
pub fn is_abandoned(run: &RunRow, now: DateTime<Utc>) -> bool {
    if run.state.is_finished() {
        return false;
    }
    if let Some(until) = run.lease_expires_at {
        return until < now || owner_is_dead_here(run.owner.as_deref());
    }
    let stale = |t: DateTime<Utc>| (now - t).to_std().is_ok_and(|age| age > ABANDONED_AFTER);
    match &run.owner {
        Some(_) => owner_is_dead_here(run.owner.as_deref()) || run.heartbeat_at.is_none_or(stale),
        None => stale(run.created_at),
    }
}

/// True if `owner` (`host:pid`) names a process of this machine that no longer exists.
pub fn owner_is_dead_here(owner: Option<&str>) -> bool {
    owner.and_then(|o| o.rsplit_once(':')).is_some_and(|(host, pid)| {
        host == hostname()
            && pid.parse::<i32>().is_ok_and(|pid| {
                matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH))
            })
    })
}
