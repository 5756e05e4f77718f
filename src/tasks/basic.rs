//! The orchestration-only kinds: `noop` (succeeds), `sleep` (waits `duration`) and `fail` (fails
//! its first `times` tries, then succeeds — for tests and demos of retries).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{BuildInput, SettingError, Task, TaskContext, TaskError, TaskOutput};

#[derive(Debug)]
struct Noop;

#[async_trait]
impl Task for Noop {
    async fn run(&self, _ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        Ok(TaskOutput::default())
    }
}

pub fn build_noop(_: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    Ok(Arc::new(Noop))
}

#[derive(Debug)]
struct Sleep {
    duration: Duration,
}

#[async_trait]
impl Task for Sleep {
    async fn run(&self, _ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        tracing::info!(duration_ms = self.duration.as_millis() as u64, "sleeping");
        tokio::time::sleep(self.duration).await;
        tracing::info!("woke up");
        Ok(TaskOutput::default())
    }
}

pub fn build_sleep(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    match input.settings.get("duration") {
        None => Err(vec![SettingError::new("duration", "`sleep` needs `duration`, e.g. duration = \"2s\"")]),
        Some(toml::Value::String(s)) => match crate::dag::parse_duration(s) {
            Ok(duration) => Ok(Arc::new(Sleep { duration })),
            Err(message) => Err(vec![SettingError::new("duration", message)]),
        },
        Some(other) => Err(vec![SettingError::new(
            "duration",
            format!("`duration` must be a string like \"2s\", found {}", other.type_str()),
        )]),
    }
}

#[derive(Debug)]
struct Fail {
    times: u32,
    message: String,
}

#[async_trait]
impl Task for Fail {
    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        if ctx.try_number <= self.times {
            tracing::error!(try_number = ctx.try_number, times = self.times, "failing on purpose");
            Err(TaskError::Failed(format!(
                "{} (try {} of the first {} that fail)",
                self.message, ctx.try_number, self.times
            )))
        } else {
            tracing::info!(try_number = ctx.try_number, "succeeding after {} failed tries", self.times);
            Ok(TaskOutput::default())
        }
    }
}

pub fn build_fail(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    let mut errors = Vec::new();
    let times = match input.settings.get("times") {
        None => 1,
        Some(toml::Value::Integer(n)) if *n >= 0 && *n <= i64::from(u32::MAX) => *n as u32,
        Some(other) => {
            errors.push(SettingError::new("times", format!("`times` must be a non-negative integer, found {other}")));
            0
        }
    };
    let message = match input.settings.get("message") {
        None => "failed on purpose".to_string(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => {
            errors
                .push(SettingError::new("message", format!("`message` must be a string, found {}", other.type_str())));
            String::new()
        }
    };
    if errors.is_empty() { Ok(Arc::new(Fail { times, message })) } else { Err(errors) }
}
