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
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::dag::{Backoff, Dag, ParamType, Slot, TaskDef, TaskPolicy};
use crate::lake::LakeHandle;
use crate::logcapture::{self, LogBuffer};
use crate::metrics::Metrics;
use crate::secrets::Masker;
use crate::slots::PrioritySlots;
use crate::store::{
    AttemptFinish, AttemptState, NewAlert, NewRun, RunRow, RunState, RunType, Store, StoreError, TaskInstanceRow,
    TaskState,
};
use crate::tasks::{CrashRestart, TaskContext, TaskError};

mod lease;
mod params;
mod runner;

pub use lease::{ABANDONED_AFTER, hostname, is_abandoned, owner_is_dead_here};
pub use params::{Prepared, local_time, prepare_run, resolve_params};
pub use runner::retry_delay;

use lease::LeaseKeeper;
use params::resolve_params_with;
use runner::TaskRunner;

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
    /// Tries running at once (`executor.slots`), handed out by priority weight.
    slots: PrioritySlots,
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
        let slots = PrioritySlots::new(settings.executor_slots);
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

    /// How long the runs (and an in-process backfill) this executor holds are leased for.
    pub fn lease(&self) -> Duration {
        self.lease
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
            let Some(task) = dag.task(&ti.task_id) else { continue };
            if let Some(note) = crash_restart_note(task.crash_restart(), ti, self.settings.executor_crash_restarts) {
                // Safe to repeat: the dead process's try is given back, so a crash never uses up
                // a retry (a wait with `retries = 0` survives a kill -9 of its daemon).
                tracing::warn!(run = run_pk, task = %ti.task_id, try_number = ti.try_number, "{note}");
                self.store.grant_crash_restart(ti.id, &note).await?;
                ti.max_tries += 1;
                ti.crash_restarts += 1;
                continue;
            }
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
        let weights = dag.slot_priorities();
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
                            priority_weight: weights[i],
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

/// Whether a try abandoned by a dead process is run again without counting it, and the note
/// its attempt then carries; `None` when the try counts (the retry policy decides).
fn crash_restart_note(rule: CrashRestart, ti: &TaskInstanceRow, bound: u32) -> Option<String> {
    let why = "abandoned: the process running this try stopped; run again without counting against retries";
    match rule {
        CrashRestart::Always => Some(format!("{why} (the task only waits)")),
        CrashRestart::Bounded if ti.crash_restarts < bound => {
            Some(format!("{why} (crash restart {} of {bound})", ti.crash_restarts + 1))
        }
        CrashRestart::Bounded | CrashRestart::Counted => None,
    }
}
