//! One task instance's tries: each try an attempt row with its captured log (flushed every few
//! seconds for the live tail), run under the task's timeout, retried with (exponential) backoff
//! and deterministic jitter.

use super::*;

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

/// Runs all tries of one task instance.
pub(super) struct TaskRunner {
    pub(super) exec: Executor,
    pub(super) dag_id: String,
    pub(super) task: TaskDef,
    pub(super) run: Arc<RunRow>,
    pub(super) ti: TaskInstanceRow,
    /// Its priority weight in the DAG: the executor's slots go to the highest first.
    pub(super) priority_weight: u64,
    pub(super) params: Arc<serde_json::Map<String, serde_json::Value>>,
    /// The process's secrets plus the run's secret-looking params.
    pub(super) masker: Masker,
    pub(super) tz: chrono_tz::Tz,
    /// Fired when the run is released (shutdown) or its lease was lost (`lost` set).
    pub(super) stop: CancellationToken,
    pub(super) lost: Arc<AtomicBool>,
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
    pub(super) async fn run(mut self) -> Option<TaskState> {
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
                p = exec.slots.acquire(self.priority_weight) => Some(p),
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
            priority_weight: self.priority_weight,
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
