//! The executor: runs one DAG run in-process on tokio. Tasks start as soon as their upstreams
//! succeeded, bounded by a slot semaphore shared by every run of this process; each try is an
//! attempt row with its own captured log; failures are retried with (exponential) backoff and
//! deterministic jitter; a failure makes everything downstream `upstream_failed`. Every state
//! change is written to the state DB before it is reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::dag::{Backoff, Dag, ParamType, Slot, TaskDef, TaskPolicy};
use crate::lake::LakeHandle;
use crate::logcapture::{self, LogBuffer};
use crate::metrics::Metrics;
use crate::secrets::Masker;
use crate::store::{
    AttemptFinish, AttemptState, NewAlert, NewRun, RunRow, RunState, RunType, Store, StoreError, TaskInstanceRow,
    TaskState,
};
use crate::tasks::{TaskContext, TaskError};

/// Longest a retry waits when the DAG sets no `max_retry_delay` (Airflow's cap).
const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    /// The slot's run is queued or running already (a conflict, not bad input).
    #[error("{0}")]
    InFlight(String),
}

/// A state change, for whoever is watching (the CLI prints them).
#[derive(Debug, Clone)]
pub enum Event {
    Task {
        run_pk: i64,
        dag_id: String,
        ds: NaiveDate,
        task_id: String,
        state: TaskState,
        try_number: u32,
        max_tries: u32,
        error: Option<String>,
    },
    Run {
        run_pk: i64,
        dag_id: String,
        ds: NaiveDate,
        state: RunState,
    },
}

/// Runs DAG runs in this process.
#[derive(Clone)]
pub struct Executor {
    store: Store,
    settings: Arc<Settings>,
    slots: Arc<Semaphore>,
    cancel: CancellationToken,
    release: CancellationToken,
    events: Option<mpsc::UnboundedSender<Event>>,
    hostname: String,
    owner: String,
    lease: Duration,
    lake: LakeHandle,
    /// Woken when a run of this executor finishes (`wait.dag_run` tasks listen).
    run_finished: Arc<tokio::sync::Notify>,
    /// The configured secrets, masked in try logs, errors and alerts.
    masker: Masker,
    /// Runs, tries and their durations are counted here (the daemon's registry under `serve`).
    metrics: Arc<Metrics>,
}

impl Executor {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        let slots = Arc::new(Semaphore::new(settings.executor_slots.max(1)));
        let hostname = hostname();
        let owner = format!("{hostname}:{}", std::process::id());
        let lease = settings.daemon.lease;
        let lake = LakeHandle::new(settings.clone(), store.clone());
        let masker = Masker::from_settings(&settings);
        Self {
            masker,
            metrics: Arc::default(),
            lake,
            run_finished: Arc::default(),
            store,
            settings,
            slots,
            cancel: CancellationToken::new(),
            release: CancellationToken::new(),
            events: None,
            hostname,
            owner,
            lease,
        }
    }

    /// The lake this executor's tasks use (opened on first use).
    pub fn lake(&self) -> &LakeHandle {
        &self.lake
    }

    /// Who this executor is in `dag_runs.owner` (`host:pid`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Cancelling this token releases every run this executor holds: no new tries start, running
    /// tries are stopped and recorded as released, and each unfinished run goes back to `queued`
    /// for another process (a daemon shutting down does this after its grace period).
    pub fn release_token(&self) -> CancellationToken {
        self.release.clone()
    }

    /// Records runs, tries and task results in `metrics` (by default a registry of its own).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Sends every state change to `tx`.
    pub fn with_events(mut self, tx: mpsc::UnboundedSender<Event>) -> Self {
        self.events = Some(tx);
        self
    }

    /// Cancelling this token stops new attempts and kills running ones (they fail as cancelled).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    /// Runs (or resumes) run `run_pk` of `dag` until every task is finished; returns the run's
    /// final state. Tasks already finished are kept; attempts left `running` by a process that
    /// is gone are marked failed and their tasks run again if they have tries left.
    ///
    /// The run is leased to this process while it executes (renewed every third of the lease).
    /// If the lease is lost to another process, work stops without touching the run's rows and
    /// the state is returned as `running`; if the executor is released, the unfinished run is
    /// put back to `queued` and `queued` is returned.
    pub async fn execute(&self, dag: &Dag, run_pk: i64) -> Result<RunState, ExecError> {
        let run = self
            .store
            .get_run(run_pk)
            .await?
            .ok_or_else(|| ExecError::Invalid(format!("run {run_pk} does not exist")))?;
        if run.dag_id != dag.id {
            return Err(ExecError::Invalid(format!("run {run_pk} belongs to DAG `{}`, not `{}`", run.dag_id, dag.id)));
        }
        // Lenient: a run queued before its DAG stopped accepting undeclared keys still runs, and
        // those keys simply are not params (so they render nowhere).
        let params = Arc::new(resolve_params_with(dag, &run.conf, false).map_err(ExecError::Invalid)?);
        let masker = self.masker.with_params(&run.conf).with_params(&serde_json::Value::Object((*params).clone()));
        let spec: Vec<(&str, &str, u32)> =
            dag.tasks.iter().map(|t| (t.id.as_str(), t.kind.as_str(), t.policy.max_tries())).collect();
        if !self.store.claim_run(run_pk, &self.owner, self.lease).await? {
            let holder = run.owner.clone().unwrap_or_default();
            return Err(ExecError::Invalid(format!("run {run_pk} is held by {holder} (its lease has not expired)")));
        }
        let stop = self.release.child_token();
        let lost = Arc::new(AtomicBool::new(false));
        let _lease = LeaseKeeper::start(self.store.clone(), run_pk, self.owner.clone(), self.lease, &stop, &lost);
        let mut tis = self.store.ensure_task_instances(run_pk, &spec).await?;
        let abandoned =
            self.store.abandon_running_attempts(run_pk, "abandoned: the process running this try stopped").await?;
        for ti in tis.iter_mut().filter(|ti| abandoned.contains(&ti.id)) {
            // The dead process's try counts (as Airflow counts a zombie's); retry only if tries are left.
            if ti.try_number >= ti.max_tries {
                let error = format!("try {} was abandoned (its process stopped) and no tries are left", ti.try_number);
                self.store.set_task_state(ti.id, Some(TaskState::Failed), Some(&error)).await?;
                ti.state = Some(TaskState::Failed);
                self.task_event(&run, ti, TaskState::Failed, Some(error));
            }
        }
        self.store.set_run_state(run_pk, RunState::Running).await?;
        self.emit(Event::Run { run_pk, dag_id: dag.id.clone(), ds: run.ds, state: RunState::Running });

        let by_id: HashMap<&str, TaskInstanceRow> = tis
            .into_iter()
            .map(|ti| (ti.task_id.clone(), ti))
            .filter_map(|(id, ti)| dag.task(&id).map(|t| (t.id.as_str(), ti)))
            .collect();
        // Everything below works on task positions: upstream/downstream lists are built once, and a
        // finished task only wakes its own downstreams, so a run costs O(tasks + edges).
        let n = dag.tasks.len();
        let rows: Vec<&TaskInstanceRow> = dag.tasks.iter().map(|t| &by_id[t.id.as_str()]).collect();
        let upstream: Vec<Vec<usize>> = (0..n).map(|i| dag.upstream_indices(i)).collect();
        let downstream: Vec<Vec<usize>> = (0..n).map(|i| dag.downstream_indices(i)).collect();
        // Finished tasks keep their state; anything else (none, or left mid-way) is to do.
        let mut state: Vec<Option<TaskState>> = rows.iter().map(|r| r.state.filter(|s| s.is_finished())).collect();
        let run = Arc::new(run);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, Option<TaskState>)>();
        let mut in_flight = 0usize;
        let mut worklist: Vec<usize> = dag.topological_indices().iter().rev().copied().collect();
        loop {
            while let Some(i) = worklist.pop() {
                if state[i].is_some() {
                    continue;
                }
                let ups = &upstream[i];
                let ti = rows[i];
                if stop.is_cancelled() {
                    // Released or lost: start nothing more; whoever resumes the run decides.
                    continue;
                }
                let decided =
                    if ups.iter().any(|&u| matches!(state[u], Some(TaskState::Failed | TaskState::UpstreamFailed))) {
                        self.store.set_task_state(ti.id, Some(TaskState::UpstreamFailed), None).await?;
                        self.task_event(&run, ti, TaskState::UpstreamFailed, None);
                        TaskState::UpstreamFailed
                    } else if ups.iter().all(|&u| state[u] == Some(TaskState::Success)) {
                        self.store.set_task_state(ti.id, Some(TaskState::Scheduled), None).await?;
                        self.task_event(&run, ti, TaskState::Scheduled, None);
                        in_flight += 1;
                        let runner = TaskRunner {
                            exec: self.clone(),
                            dag_id: dag.id.clone(),
                            task: dag.tasks[i].clone(),
                            run: run.clone(),
                            ti: ti.clone(),
                            params: params.clone(),
                            masker: masker.clone(),
                            tz: dag.timezone,
                            stop: stop.clone(),
                            lost: lost.clone(),
                        };
                        let tx = done_tx.clone();
                        tokio::spawn(async move {
                            let outcome = runner.run().await;
                            let _ = tx.send((i, outcome));
                        });
                        // In flight: not finished, so it is not looked at again.
                        TaskState::Scheduled
                    } else if ups.iter().all(|&u| state[u].is_some_and(|s| s.is_finished())) {
                        // Every upstream finished, none failed, some skipped: skip (all_success).
                        self.store
                            .set_task_state(ti.id, Some(TaskState::Skipped), Some("an upstream task was skipped"))
                            .await?;
                        self.task_event(&run, ti, TaskState::Skipped, None);
                        TaskState::Skipped
                    } else {
                        continue;
                    };
                state[i] = Some(decided);
                if decided.is_finished() {
                    worklist.extend(downstream[i].iter().copied());
                }
            }
            if in_flight == 0 {
                break;
            }
            let Some((i, outcome)) = done_rx.recv().await else { break };
            in_flight -= 1;
            match outcome {
                Some(outcome) => {
                    state[i] = Some(outcome);
                    worklist.extend(downstream[i].iter().copied());
                }
                // Released: the task is left for whoever resumes the run.
                None => state[i] = None,
            }
        }
        if stop.is_cancelled() && state.iter().any(|s| !s.is_some_and(|s| s.is_finished())) {
            if lost.load(Ordering::SeqCst) {
                tracing::warn!(run_pk, "lease lost to another process; stopped executing the run");
                return Ok(RunState::Running);
            }
            self.store.release_run(run_pk, &self.owner, true).await?;
            tracing::info!(run_pk, "run released; it is queued for another process");
            self.emit(Event::Run { run_pk, dag_id: dag.id.clone(), ds: run.ds, state: RunState::Queued });
            return Ok(RunState::Queued);
        }
        let all_ok = state.iter().all(|s| matches!(s, Some(TaskState::Success | TaskState::Skipped)));
        let final_state = if all_ok { RunState::Success } else { RunState::Failed };
        self.store.set_run_state(run_pk, final_state).await?;
        if final_state == RunState::Success
            && let Some(done) = self.store.get_run(run_pk).await?
            && let Err(e) =
                crate::alerts::record_recovery(&self.store, dag, &done, &self.settings.web_base_url, &masker).await
        {
            tracing::warn!(run_pk, error = %e, "cannot record the recovery alert");
        }
        self.store.release_run(run_pk, &self.owner, false).await?;
        self.metrics.run_finished(&dag.id, final_state.as_str());
        self.emit(Event::Run { run_pk, dag_id: dag.id.clone(), ds: run.ds, state: final_state });
        self.run_finished.notify_waiters();
        Ok(final_state)
    }

    fn task_event(&self, run: &RunRow, ti: &TaskInstanceRow, state: TaskState, error: Option<String>) {
        self.emit(Event::Task {
            run_pk: run.id,
            dag_id: run.dag_id.clone(),
            ds: run.ds,
            task_id: ti.task_id.clone(),
            state,
            try_number: ti.try_number,
            max_tries: ti.max_tries,
            error,
        });
    }
}

/// A run without a lease (written before leases existed) whose owner has not said it is alive
/// for this long is abandoned.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// Renews a run's lease every third of its length until dropped. If the run turns out to have
/// another owner (this process was too slow and lost the lease), sets `lost` and fires `stop`.
struct LeaseKeeper(tokio::task::JoinHandle<()>);

impl LeaseKeeper {
    fn start(
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

/// How often a running try's log so far is written to its attempt row (for the UI's live tail).
const LOG_FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Writes a running try's log to the state DB every [`LOG_FLUSH_EVERY`] until dropped (the
/// final log is written with the try's end).
struct LogFlusher(tokio::task::JoinHandle<()>);

impl LogFlusher {
    fn start(store: Store, attempt_id: i64, log: LogBuffer) -> Self {
        LogFlusher(tokio::spawn(async move {
            let mut written = 0;
            loop {
                tokio::time::sleep(LOG_FLUSH_EVERY).await;
                let text = log.contents();
                if text.len() != written {
                    written = text.len();
                    if let Err(e) = store.update_running_log(attempt_id, &text).await {
                        tracing::debug!(attempt_id, error = %e, "could not write the running log");
                    }
                }
            }
        }))
    }
}

impl Drop for LogFlusher {
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

/// Runs all tries of one task instance.
struct TaskRunner {
    exec: Executor,
    dag_id: String,
    task: TaskDef,
    run: Arc<RunRow>,
    ti: TaskInstanceRow,
    params: Arc<serde_json::Map<String, serde_json::Value>>,
    /// The process's secrets plus the run's secret-looking params.
    masker: Masker,
    tz: chrono_tz::Tz,
    /// Fired when the run is released (shutdown) or its lease was lost (`lost` set).
    stop: CancellationToken,
    lost: Arc<AtomicBool>,
}

/// How one try ended.
enum TryEnd {
    Success(Option<serde_json::Value>),
    Skipped(String),
    Failed {
        error: String,
        retryable: bool,
    },
    /// Stopped because the run was released or lost; not a verdict on the task.
    Released,
}

impl TaskRunner {
    /// Returns the task's final state, or `None` if the run was released before it finished.
    /// Store errors end the task as failed (and are logged).
    async fn run(mut self) -> Option<TaskState> {
        match self.run_tries().await {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(dag = %self.dag_id, task = %self.task.id, error = %e, "state DB error; task failed");
                let reason = self.masker.mask(&format!("state DB error: {e}"));
                let _ = self.exec.store.fail_running_attempts_of(self.ti.id, &reason).await;
                let _ = self.exec.store.set_task_state(self.ti.id, Some(TaskState::Failed), Some(&reason)).await;
                Some(TaskState::Failed)
            }
        }
    }

    async fn run_tries(&mut self) -> Result<Option<TaskState>, StoreError> {
        let exec = self.exec.clone();
        loop {
            let permit = tokio::select! {
                p = exec.slots.clone().acquire_owned() => p.ok(),
                _ = exec.cancel.cancelled() => None,
                _ = self.stop.cancelled() => return Ok(None),
            };
            let Some(_permit) = permit else {
                let error = "cancelled before it started";
                exec.store.set_task_state(self.ti.id, Some(TaskState::Failed), Some(error)).await?;
                exec.task_event(&self.run, &self.ti, TaskState::Failed, Some(error.into()));
                return Ok(Some(TaskState::Failed));
            };
            if self.stop.is_cancelled() {
                return Ok(None);
            }
            exec.store.set_task_state(self.ti.id, Some(TaskState::Queued), None).await?;
            exec.task_event(&self.run, &self.ti, TaskState::Queued, None);

            let try_number = self.ti.try_number + 1;
            let attempt_id = exec.store.start_attempt(&self.ti, try_number, &exec.hostname, std::process::id()).await?;
            self.ti.try_number = try_number;
            exec.task_event(&self.run, &self.ti, TaskState::Running, None);

            let log = LogBuffer::masked(self.masker.clone());
            let flusher = LogFlusher::start(exec.store.clone(), attempt_id, log.clone());
            let started = Instant::now();
            let end = self.one_try(try_number, &log).await;
            let seconds = started.elapsed().as_secs_f64();
            drop(flusher);
            if matches!(end, TryEnd::Released) {
                exec.metrics.try_ended(&self.dag_id, &self.task.kind, "released", seconds);
                if self.lost.load(Ordering::SeqCst) {
                    // Another process holds the run now; it records this try as abandoned.
                    return Ok(None);
                }
                let error = "released: the daemon running it shut down; it runs again when the run is resumed";
                log.line(&format!("tmctl: try {try_number} {error}"));
                exec.store
                    .finish_attempt(
                        attempt_id,
                        self.ti.id,
                        &AttemptFinish {
                            attempt: AttemptState::Failed,
                            task: TaskState::Scheduled,
                            error: Some(error),
                            output: None,
                            log: &log.contents(),
                            next_retry_at: None,
                        },
                    )
                    .await?;
                return Ok(None);
            }
            let (attempt_state, task_state, error, output, next_retry) = match &end {
                TryEnd::Success(out) => (AttemptState::Success, TaskState::Success, None, out.clone(), None),
                TryEnd::Skipped(reason) => {
                    (AttemptState::Skipped, TaskState::Skipped, Some(reason.clone()), None, None)
                }
                TryEnd::Released => return Ok(None),
                TryEnd::Failed { error, retryable } => {
                    if *retryable && try_number < self.ti.max_tries {
                        let delay = retry_delay(&self.task.policy, try_number, &self.jitter_key(try_number));
                        log.line(&format!(
                            "tmctl: try {try_number} failed; retrying in {} (try {} of {})",
                            crate::timefmt::human_duration(delay),
                            try_number + 1,
                            self.ti.max_tries
                        ));
                        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                        (AttemptState::Failed, TaskState::UpForRetry, Some(error.clone()), None, Some((at, delay)))
                    } else {
                        log.line(&format!("tmctl: try {try_number} failed; no tries left, task failed"));
                        (AttemptState::Failed, TaskState::Failed, Some(error.clone()), None, None)
                    }
                }
            };
            exec.store
                .finish_attempt(
                    attempt_id,
                    self.ti.id,
                    &AttemptFinish {
                        attempt: attempt_state,
                        task: task_state,
                        error: error.as_deref(),
                        output: output.as_ref(),
                        log: &log.contents(),
                        next_retry_at: next_retry.map(|(at, _)| at),
                    },
                )
                .await?;
            drop(_permit);
            exec.metrics.try_ended(&self.dag_id, &self.task.kind, task_state.as_str(), seconds);
            exec.task_event(&self.run, &self.ti, task_state, error.clone());
            if matches!(task_state, TaskState::Failed | TaskState::UpForRetry) {
                self.record_alert(task_state, try_number, error.as_deref().unwrap_or(""), &log).await?;
            }
            let Some((_, delay)) = next_retry else { return Ok(Some(task_state)) };
            let cancelled = tokio::select! {
                _ = tokio::time::sleep(delay) => false,
                _ = exec.cancel.cancelled() => true,
                _ = self.stop.cancelled() => return Ok(None),
            };
            if cancelled {
                let error = "cancelled while waiting to retry";
                exec.store.set_task_state(self.ti.id, Some(TaskState::Failed), Some(error)).await?;
                exec.task_event(&self.run, &self.ti, TaskState::Failed, Some(error.into()));
                return Ok(Some(TaskState::Failed));
            }
            exec.store.set_task_state(self.ti.id, Some(TaskState::Scheduled), None).await?;
            exec.task_event(&self.run, &self.ti, TaskState::Scheduled, None);
        }
    }

    async fn one_try(&self, try_number: u32, log: &LogBuffer) -> TryEnd {
        let ctx = TaskContext {
            dag_id: self.dag_id.clone(),
            task_id: self.task.id.clone(),
            run_pk: self.run.id,
            run_id: self.run.run_id.clone(),
            run_type: self.run.run_type,
            logical_date: self.run.logical_date,
            ds: self.run.ds,
            data_interval_start: self.run.data_interval_start,
            data_interval_end: self.run.data_interval_end,
            try_number,
            max_tries: self.ti.max_tries,
            params: (*self.params).clone(),
            email: self.task.policy.email.clone(),
            settings: self.exec.settings.clone(),
            store: self.exec.store.clone(),
            lake: self.exec.lake.clone(),
            run_finished: self.exec.run_finished.clone(),
            metrics: self.exec.metrics.clone(),
        };
        log.line(&format!(
            "tmctl: starting try {try_number} of {} for {}.{} ({}, logical date {}) on {} pid {}",
            self.ti.max_tries,
            self.dag_id,
            self.task.id,
            self.task.kind,
            self.run.logical_date.with_timezone(&self.tz).to_rfc3339(),
            self.exec.hostname,
            std::process::id()
        ));
        let started = Instant::now();
        let task = self.task.task.clone();
        let attempt =
            logcapture::capture(log, async move { std::panic::AssertUnwindSafe(task.run(&ctx)).catch_unwind().await });
        let timed = async {
            match self.task.policy.timeout {
                Some(limit) => tokio::time::timeout(limit, attempt).await.map_err(|_| limit),
                None => Ok(attempt.await),
            }
        };
        let result = tokio::select! {
            r = timed => Some(r),
            _ = self.exec.cancel.cancelled() => None,
            _ = self.stop.cancelled() => return TryEnd::Released,
        };
        let took = crate::timefmt::human_duration(started.elapsed());
        let mask = |text: String| self.masker.mask(&text);
        let end = match result {
            None => TryEnd::Failed { error: "cancelled while running".into(), retryable: false },
            Some(Err(limit)) => TryEnd::Failed {
                error: format!("timed out after {}", crate::timefmt::human_duration(limit)),
                retryable: true,
            },
            Some(Ok(Err(panic))) => {
                TryEnd::Failed { error: mask(format!("task panicked: {}", panic_message(&panic))), retryable: true }
            }
            Some(Ok(Ok(Ok(out)))) => TryEnd::Success(out.summary),
            Some(Ok(Ok(Err(TaskError::Skip(reason))))) => TryEnd::Skipped(mask(reason)),
            Some(Ok(Ok(Err(TaskError::Failed(error))))) => TryEnd::Failed { error: mask(error), retryable: true },
            Some(Ok(Ok(Err(TaskError::Fatal(error))))) => TryEnd::Failed { error: mask(error), retryable: false },
        };
        match &end {
            TryEnd::Success(_) => log.line(&format!("tmctl: try {try_number} succeeded in {took}")),
            TryEnd::Skipped(reason) => log.line(&format!("tmctl: try {try_number} skipped after {took}: {reason}")),
            TryEnd::Failed { error, .. } => log.line(&format!("tmctl: try {try_number} failed after {took}: {error}")),
            TryEnd::Released => {}
        }
        end
    }

    fn jitter_key(&self, try_number: u32) -> String {
        format!("{}#{}#{}#{}", self.dag_id, self.task.id, self.run.logical_date.to_rfc3339(), try_number)
    }

    /// Records a failure (or, if asked for, a retry) alert in the outbox for the task's e-mail
    /// recipients and webhooks.
    async fn record_alert(
        &self,
        state: TaskState,
        try_number: u32,
        error: &str,
        log: &LogBuffer,
    ) -> Result<(), StoreError> {
        let policy = &self.task.policy;
        let kind = match state {
            TaskState::Failed if policy.email_on_failure => "failure",
            TaskState::UpForRetry if policy.email_on_retry => "retry",
            _ => return Ok(()),
        };
        if policy.email.is_empty() && policy.webhook.is_empty() {
            return Ok(());
        }
        let dedup = format!("{kind}:{}:{}:{try_number}", self.run.id, self.task.id);
        let subject = format!(
            "[tmctl] {}: {}.{} {} for {} (try {try_number} of {})",
            if kind == "failure" { "FAILED" } else { "RETRY" },
            self.dag_id,
            self.task.id,
            if kind == "failure" { "failed" } else { "will be retried" },
            self.run.ds,
            self.ti.max_tries
        );
        let link =
            format!("{}/runs/{}/tasks/{}?try={try_number}", self.exec.settings.web_base_url, self.run.id, self.task.id);
        // The log buffer masks as it is written; the error and texts are masked here.
        let tail = log.tail(20);
        let body = format!(
            "DAG: {}\nTask: {}\nRun: {} (id {})\nLogical date: {}\nTry: {try_number} of {}\n\nError:\n{error}\n\nLast log lines:\n{tail}\n\nLog: {link}\n",
            self.dag_id,
            self.task.id,
            self.run.run_id,
            self.run.id,
            self.run.logical_date.to_rfc3339(),
            self.ti.max_tries,
        );
        let (subject, body, error) = (self.masker.mask(&subject), self.masker.mask(&body), self.masker.mask(error));
        let fields = serde_json::json!({
            "kind": kind,
            "dag": self.dag_id,
            "run": self.run.run_id,
            "run_pk": self.run.id,
            "task": self.task.id,
            "try": try_number,
            "max_tries": self.ti.max_tries,
            "logical_date": self.run.logical_date.to_rfc3339(),
            "state": state.as_str(),
            "url": link,
            "error": error,
            "log_tail": self.masker.mask(&tail),
            "alert": dedup,
        });
        let first_line = error.lines().next().unwrap_or_default();
        let text = format!("{subject}\n{first_line}\n{link}");
        crate::alerts::record(
            &self.exec.store,
            &crate::alerts::Record {
                alert: NewAlert {
                    dedup_key: &dedup,
                    kind,
                    dag_id: &self.dag_id,
                    run_pk: Some(self.run.id),
                    task_id: Some(&self.task.id),
                    try_number: Some(try_number),
                    recipients: &policy.email,
                    subject: &subject,
                    body: &body,
                },
                webhooks: &policy.webhook,
                payload: crate::alerts::payload(&text, fields),
            },
        )
        .await?;
        Ok(())
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// The wait before try `try_number + 1` after try `try_number` failed.
///
/// Fixed: `retry_delay`. Exponential: `retry_delay · 2^(try−1)` plus a jitter in `[0, that)` that
/// is a hash of `key` (so the same task, run and try always wait the same), capped by
/// `max_retry_delay` (24 h when unset).
pub fn retry_delay(policy: &TaskPolicy, try_number: u32, key: &str) -> Duration {
    let cap = policy.max_retry_delay.unwrap_or(DEFAULT_MAX_RETRY_DELAY);
    let delay = match policy.backoff {
        Backoff::Fixed => policy.retry_delay,
        Backoff::Exponential => {
            let min_backoff = crate::util::doubling(policy.retry_delay, try_number.saturating_sub(1), cap).as_millis();
            let jitter = if min_backoff == 0 { 0 } else { u128::from(fnv1a(key.as_bytes())) % min_backoff };
            Duration::from_millis(min_backoff.saturating_add(jitter).min(u128::from(u64::MAX)) as u64)
        }
    };
    delay.min(cap)
}

/// FNV-1a, 64 bit: a small stable hash (the same on every machine and release).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The run's params: each declared param's default, overridden by the run's conf. A conf value
/// of the wrong type, a param with no default and no value, or a conf key the DAG does not
/// declare (unless it sets `allow_undeclared_params = true`) is an error naming the key.
pub fn resolve_params(
    dag: &Dag,
    conf: &serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    resolve_params_with(dag, conf, true)
}

/// [`resolve_params`]; with `strict` false, undeclared keys are dropped instead of refused (for
/// runs recorded before their DAG refused them).
fn resolve_params_with(
    dag: &Dag,
    conf: &serde_json::Value,
    strict: bool,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let conf = match conf {
        serde_json::Value::Object(m) => m.clone(),
        serde_json::Value::Null => serde_json::Map::new(),
        other => return Err(format!("--conf must be a JSON object, found {other}")),
    };
    let mut out = serde_json::Map::new();
    for (name, spec) in &dag.params {
        let value = match conf.get(name) {
            Some(v) => {
                if !type_matches(spec.ty, v) {
                    let article = if spec.ty == ParamType::Integer { "an" } else { "a" };
                    return Err(format!("param `{name}` must be {article} {}, found {v}", spec.ty.name()));
                }
                v.clone()
            }
            None => match &spec.default {
                Some(d) => d.clone(),
                None => {
                    return Err(format!("param `{name}` has no default; give it with --conf '{{\"{name}\": ...}}'"));
                }
            },
        };
        out.insert(name.clone(), value);
    }
    if dag.allow_undeclared_params {
        // The DAG asked for Airflow's dag_run.conf behaviour: other keys pass through.
        for (k, v) in conf {
            out.entry(k).or_insert(v);
        }
    } else if strict && let Some(key) = conf.keys().find(|k| !dag.params.contains_key(*k)) {
        let declared: Vec<&str> = dag.params.keys().map(String::as_str).collect();
        return Err(format!(
            "conf key `{key}` is not a param of DAG `{}` (declared: {}; a DAG accepts other keys only with \
             allow_undeclared_params = true)",
            dag.id,
            if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
        ));
    }
    Ok(out)
}

fn type_matches(ty: ParamType, v: &serde_json::Value) -> bool {
    match ty {
        ParamType::String => v.is_string(),
        ParamType::Integer => v.is_i64() || v.is_u64(),
        ParamType::Number => v.is_number(),
        ParamType::Boolean => v.is_boolean(),
        ParamType::Date => v.as_str().is_some_and(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
    }
}

/// Outcome of asking for a run of a slot.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// A new run was created.
    Created(RunRow),
    /// An existing finished run was put back in the queue with its tasks cleared.
    Requeued(RunRow),
    /// An unfinished run whose process died: it is resumed (finished tasks are kept).
    Resumed(RunRow),
}

impl Prepared {
    pub fn run(&self) -> &RunRow {
        match self {
            Prepared::Created(r) | Prepared::Requeued(r) | Prepared::Resumed(r) => r,
        }
    }
}

/// Creates the run for `slot`, or, if one exists and is finished, clears it for another go with
/// the given conf (attempt history is kept; try numbers keep counting, as in Airflow's clear).
/// With `hold` (an executor about to execute it here), the run is leased to that executor from
/// the start, so no daemon claims it in between; without, any daemon may claim it.
pub async fn prepare_run(
    store: &Store,
    dag: &Dag,
    slot: &Slot,
    run_type: RunType,
    conf: &serde_json::Value,
    backfill_id: Option<i64>,
    hold: Option<&Executor>,
) -> Result<Prepared, ExecError> {
    let hold = hold.map(|e| (e.owner.as_str(), e.lease));
    resolve_params(dag, conf).map_err(ExecError::Invalid)?;
    let new = NewRun {
        dag_id: &dag.id,
        run_type,
        logical_date: slot.logical_date,
        ds: slot.ds,
        data_interval_start: slot.data_interval_start,
        data_interval_end: slot.data_interval_end,
        conf,
        backfill_id,
        hold,
    };
    match store.create_run(&new).await {
        Ok(run) => Ok(Prepared::Created(run)),
        Err(StoreError::Conflict(_)) => {
            let run = store
                .find_run(&dag.id, slot.logical_date)
                .await?
                .ok_or_else(|| ExecError::Invalid("run vanished while being re-queued".into()))?;
            if is_abandoned(&run, Utc::now()) {
                tracing::warn!(run = run.id, owner = ?run.owner, "resuming an abandoned run");
                if let Some(owner) = run.owner.clone().filter(|o| owner_is_dead_here(Some(o))) {
                    // Its process is gone: no need to wait for the lease to run out.
                    store.expire_leases_of(&[owner]).await?;
                }
                return Ok(Prepared::Resumed(run));
            }
            if !run.state.is_finished() {
                return Err(ExecError::InFlight(format!(
                    "run {} of `{}` for {} is {} already",
                    run.id, dag.id, run.ds, run.state
                )));
            }
            let tasks: Vec<(&str, u32)> = dag.tasks.iter().map(|t| (t.id.as_str(), t.policy.max_tries())).collect();
            store.clear_task_instances(run.id, &tasks).await?;
            store.requeue_run(run.id, conf, backfill_id, hold).await?;
            let run = store.get_run(run.id).await?.ok_or_else(|| ExecError::Invalid("run vanished".into()))?;
            Ok(Prepared::Requeued(run))
        }
        Err(e) => Err(e.into()),
    }
}

/// When `logical_date` is in the DAG's time zone.
pub fn local_time(dag: &Dag, t: DateTime<Utc>) -> DateTime<chrono_tz::Tz> {
    t.with_timezone(&dag.timezone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, delay_s: u64, max_s: Option<u64>) -> TaskPolicy {
        TaskPolicy {
            retries: 5,
            retry_delay: Duration::from_secs(delay_s),
            backoff,
            max_retry_delay: max_s.map(Duration::from_secs),
            ..TaskPolicy::default()
        }
    }

    #[test]
    fn fixed_backoff_waits_the_same_each_time() {
        let p = policy(Backoff::Fixed, 30, None);
        for t in 1..5 {
            assert_eq!(retry_delay(&p, t, "k"), Duration::from_secs(30));
        }
    }

    #[test]
    fn exponential_backoff_doubles_with_jitter_below_the_step() {
        let p = policy(Backoff::Exponential, 10, None);
        for t in 1..=6u32 {
            let base = Duration::from_secs(10 * (1 << (t - 1)));
            let d = retry_delay(&p, t, &format!("dag#task#2025-01-01#{t}"));
            assert!(d >= base && d < base * 2, "try {t}: {d:?} not in [{base:?}, {:?})", base * 2);
        }
    }

    #[test]
    fn jitter_is_deterministic_and_depends_on_the_key() {
        let p = policy(Backoff::Exponential, 60, None);
        let a = retry_delay(&p, 3, "silver#transform#2025-01-01T00:00:00+00:00#3");
        assert_eq!(a, retry_delay(&p, 3, "silver#transform#2025-01-01T00:00:00+00:00#3"));
        let b = retry_delay(&p, 3, "silver#transform#2025-01-02T00:00:00+00:00#3");
        assert_ne!(a, b);
        // The exact figure is FNV-1a of the key modulo the step: 240 s + (hash % 240 000 ms).
        let expected = 240_000 + fnv1a(b"silver#transform#2025-01-01T00:00:00+00:00#3") % 240_000;
        assert_eq!(a, Duration::from_millis(expected));
    }

    #[test]
    fn max_retry_delay_caps_the_backoff() {
        let p = policy(Backoff::Exponential, 30, Some(100));
        assert!(retry_delay(&p, 1, "k") < Duration::from_secs(60));
        assert_eq!(retry_delay(&p, 4, "k"), Duration::from_secs(100));
        assert_eq!(retry_delay(&p, 60, "k"), Duration::from_secs(100));
        let fixed = policy(Backoff::Fixed, 300, Some(60));
        assert_eq!(retry_delay(&fixed, 1, "k"), Duration::from_secs(60));
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}
