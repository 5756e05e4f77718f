//! `wait.dag_run`: a data-aware wait. Succeeds as soon as the run of another DAG for the same date
//! (`ds`) has succeeded — gold for day D waits for silver for day D. It looks at the state DB when
//! a run of the same executor finishes (`TaskContext::run_finished`) and at least once a second
//! (runs finished by other processes), fails at once if that run failed, and is bounded by the
//! task's `timeout`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{BuildInput, SettingError, Task, TaskContext, TaskError, TaskOutput};
use crate::store::RunState;

#[derive(Debug)]
struct WaitDagRun {
    dag: String,
    poll: Duration,
}

#[async_trait]
impl Task for WaitDagRun {
    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        tracing::info!(dag = %self.dag, ds = %ctx.ds, "waiting for the upstream DAG's run of this date to succeed");
        let mut last: Option<RunState> = None;
        loop {
            // Registered before looking, so a run finishing in between still wakes this wait.
            let finished = ctx.run_finished.notified();
            let run = ctx
                .store
                .find_run_by_ds(&self.dag, ctx.ds)
                .await
                .map_err(|e| TaskError::Failed(format!("cannot read runs of `{}`: {e}", self.dag)))?;
            let state = run.as_ref().map(|r| r.state);
            if state != last {
                match &run {
                    Some(r) => tracing::info!(run = r.id, state = %r.state, "upstream run of {}", self.dag),
                    None => tracing::info!("no run of `{}` for {} yet", self.dag, ctx.ds),
                }
                last = state;
            }
            match run {
                Some(r) if r.state == RunState::Success => {
                    return Ok(TaskOutput {
                        summary: Some(serde_json::json!({ "dag": self.dag, "run": r.id, "ds": ctx.ds.to_string() })),
                    });
                }
                Some(r) if r.state == RunState::Failed => {
                    return Err(TaskError::Failed(format!(
                        "run {} of `{}` for {} failed; nothing to wait for",
                        r.id, self.dag, ctx.ds
                    )));
                }
                _ => {
                    tokio::select! {
                        _ = finished => {}
                        _ = tokio::time::sleep(self.poll) => {}
                    }
                }
            }
        }
    }
}

pub fn build(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    let mut errors = Vec::new();
    let dag = match input.settings.get("dag") {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(other) => {
            errors.push(SettingError::new("dag", format!("`dag` must be a DAG id, found {other}")));
            String::new()
        }
        None => {
            errors.push(SettingError::new("dag", "`wait.dag_run` needs `dag`, the DAG whose run to wait for"));
            String::new()
        }
    };
    let poll = match input.settings.get("poll") {
        None => Duration::from_secs(1),
        Some(toml::Value::String(s)) => match crate::dag::parse_duration(s) {
            Ok(d) if d <= Duration::from_secs(1) => d,
            Ok(_) => {
                errors.push(SettingError::new("poll", "`poll` must be at most 1s"));
                Duration::from_secs(1)
            }
            Err(m) => {
                errors.push(SettingError::new("poll", m));
                Duration::from_secs(1)
            }
        },
        Some(other) => {
            errors.push(SettingError::new("poll", format!("`poll` must be a duration like \"500ms\", found {other}")));
            Duration::from_secs(1)
        }
    };
    if errors.is_empty() { Ok(Arc::new(WaitDagRun { dag, poll })) } else { Err(errors) }
}
