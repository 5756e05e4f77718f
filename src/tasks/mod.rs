//! Task kinds: the explicit registry that maps a `kind = "..."` name in a DAG file to the code that
//! runs it. Every kind validates its own settings when a DAG is compiled (so `tmctl dags validate`
//! catches a bad setting) and gets its runtime handles through a [`TaskContext`].

mod basic;
mod bronze;
mod command;
mod freshness;
mod gold;
mod maintenance;
pub mod silver;
pub mod summary;
pub mod wait;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

/// One kind-specific setting that failed validation: the key (relative to the `[[task]]` table)
/// and a message that says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: String,
    pub message: String,
}

impl SettingError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// What a kind's builder sees: the task's kind-specific settings (the `[[task]]` table minus the
/// common keys) and where the DAG file lives, for settings that name files next to it.
pub struct BuildInput<'a> {
    pub settings: &'a toml::Table,
    pub dag_dir: &'a std::path::Path,
}

/// Builds a runnable task from its settings, or reports every bad setting.
pub type BuildFn = fn(&BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>>;

/// One entry of the registry.
pub struct KindEntry {
    pub name: &'static str,
    pub summary: &'static str,
    /// Kind-specific keys this kind accepts (anything else is an unknown key).
    pub keys: &'static [&'static str],
    pub build: BuildFn,
    /// What becomes of a try abandoned because the process running it died.
    pub crash: CrashRestart,
}

/// What becomes of a try abandoned because the process running it died (kill -9, OOM, a lost
/// machine) rather than because the task failed or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashRestart {
    /// Run it again without counting the try, however often: the kind only waits (sensors,
    /// `sleep`, `noop`), holds no work and cannot itself be what kills the process.
    Always,
    /// Run it again without counting the try, at most `daemon.crash_restarts` times per task
    /// instance: the work is safe to repeat by construction (content hashes, run keys, one
    /// replace commit), but a try that keeps killing its process must end (crash loop).
    Bounded,
    /// The abandoned try counts as a failed try and `retries` decide (Airflow's zombie rule):
    /// `command` tasks unless they say `idempotent = true`, and `fail`.
    Counted,
}

/// The registry: every task kind tmctl knows, in one literal list.
pub static KINDS: &[KindEntry] = &[
    KindEntry {
        name: "noop",
        summary: "does nothing and succeeds",
        keys: &[],
        build: basic::build_noop,
        crash: CrashRestart::Always,
    },
    KindEntry {
        name: "sleep",
        summary: "sleeps for `duration`",
        keys: &["duration"],
        build: basic::build_sleep,
        crash: CrashRestart::Always,
    },
    KindEntry {
        name: "fail",
        summary: "fails its first `times` tries, then succeeds",
        keys: &["times", "message"],
        build: basic::build_fail,
        crash: CrashRestart::Counted,
    },
    KindEntry {
        name: "command",
        summary: "runs an executable with args; exit code 0 is success",
        keys: &["program", "args", "env", "cwd"],
        build: command::build,
        crash: CrashRestart::Counted,
    },
    KindEntry {
        name: "wait.dag_run",
        summary: "waits until another DAG's run for the same date succeeded",
        keys: &["dag", "poll"],
        build: wait::build,
        crash: CrashRestart::Always,
    },
    KindEntry {
        name: "bronze.ingest",
        summary: "lands the inbox's rounds files (ds = ingest date), quarantines invalid ones, records every decision",
        keys: bronze::KEYS,
        build: bronze::build,
        crash: CrashRestart::Bounded,
    },
    KindEntry {
        name: "silver.transform",
        summary: "landing files of the run's date -> silver.fact_telemetry_event (replaces those partitions)",
        keys: &["table", "batch_rows"],
        build: silver::build,
        crash: CrashRestart::Bounded,
    },
    KindEntry {
        name: "gold.model",
        summary: "runs a data-tested gold model",
        keys: gold::KEYS,
        build: gold::build,
        crash: CrashRestart::Bounded,
    },
    KindEntry {
        name: "courses.freshness",
        summary: "checks every course's last landed file against its expected cadence; e-mails stale courses once a day",
        keys: freshness::KEYS,
        build: freshness::build,
        crash: CrashRestart::Bounded,
    },
    KindEntry {
        name: "lake.maintenance",
        summary: "Iceberg maintenance of the silver and gold tables: expire_snapshots, remove_orphans or compact; files and bytes freed",
        keys: maintenance::KEYS,
        build: maintenance::build,
        // Safe to repeat: expiry and compaction commit through the same compare-and-swap (a
        // repeat finds its work done or re-plans), and deletions only take unreferenced files.
        crash: CrashRestart::Bounded,
    },
];

pub fn lookup(kind: &str) -> Option<&'static KindEntry> {
    KINDS.iter().find(|k| k.name == kind)
}

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

/// Everything a running attempt may know about itself. Built by the executor per attempt.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub dag_id: String,
    pub task_id: String,
    /// Database id of the DAG run.
    pub run_pk: i64,
    /// Airflow-style run id (`manual__2025-01-01T00:00:00+00:00`).
    pub run_id: String,
    /// How the run came to be (a backfill run mails no freshness alerts).
    pub run_type: crate::store::RunType,
    pub logical_date: DateTime<Utc>,
    /// The logical date as a calendar date in the DAG's time zone (`ds` in Airflow).
    pub ds: NaiveDate,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub try_number: u32,
    pub max_tries: u32,
    /// What the task asks slots with ([`crate::dag::Dag::slot_priorities`]: its priority weight,
    /// 0 for a wait): the higher, the sooner it gets a slot it waits for (the executor's, a gold
    /// model's).
    pub priority_weight: u64,
    /// The DAG's params with the run's conf applied on top.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The task's alert recipients (`email`, from the DAG's `[defaults]` unless the task sets
    /// its own): whom the executor mails failures and `courses.freshness` mails stale courses.
    pub email: Vec<String>,
    pub settings: Arc<crate::config::Settings>,
    /// The state DB (registry rows, run summaries).
    pub store: crate::store::Store,
    /// The lake of this process (opened on first use, shared by all attempts).
    pub lake: crate::lake::LakeHandle,
    /// Woken whenever a run of the same executor finishes (what `wait.dag_run` waits on).
    pub run_finished: Arc<tokio::sync::Notify>,
    /// The metrics of the executor's owner (the daemon's registry under `tmctl serve`): silver
    /// counts rows, gold counts failed data tests.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Maps an infrastructure error to a retryable task failure that says what was being done.
pub(crate) fn failed<E: fmt::Display>(what: &str) -> impl Fn(E) -> TaskError + '_ {
    move |e| TaskError::Failed(format!("{what}: {e}"))
}

/// A lake error as a task failure: retried only when trying again may help (refused
/// credentials, a bad schema or a missing table fail the same way every time).
pub(crate) fn lake_failed(what: &str) -> impl Fn(crate::lake::LakeError) -> TaskError + '_ {
    move |e| {
        let text = format!("{what}: {e}");
        if e.is_transient() { TaskError::Failed(text) } else { TaskError::Fatal(text) }
    }
}

/// A task that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// A failure; retried while tries remain.
    Failed(String),
    /// A failure that retrying cannot fix (bad input, bad setting): no further tries.
    Fatal(String),
    /// The task decided there is nothing to do (state `skipped`).
    Skip(String),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed(m) | TaskError::Fatal(m) => f.write_str(m),
            TaskError::Skip(m) => write!(f, "skipped: {m}"),
        }
    }
}

/// What a successful task reports back; stored with its attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOutput {
    pub summary: Option<serde_json::Value>,
}

/// Names a template may use: `{{ ds }}`, `{{ ds_nodash }}`, `{{ logical_date }}`,
/// `{{ data_interval_start }}`, `{{ data_interval_end }}`, `{{ run_id }}`, `{{ dag_id }}`,
/// `{{ task_id }}`, `{{ try_number }}` and `{{ params.NAME }}`, each optionally followed by a
/// filter from [`TEMPLATE_FILTERS`] (`{{ params.who | shell_quote }}`).
pub const TEMPLATE_VARS: &[&str] = &[
    "ds",
    "ds_nodash",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "run_id",
    "dag_id",
    "task_id",
    "try_number",
];

/// Filters a placeholder may name after `|`: `shell_quote` makes the value one POSIX shell word
/// (single-quoted), so it can go inside a `sh -c` script without being run as shell code.
pub const TEMPLATE_FILTERS: &[&str] = &["shell_quote"];

/// One placeholder: the variable and its filters (`params.who | shell_quote`).
fn placeholder(inner: &str) -> (&str, Vec<&str>) {
    let mut parts = inner.split('|').map(str::trim);
    let name = parts.next().unwrap_or_default();
    (name, parts.collect())
}

/// `text` as one POSIX shell word: `'...'` with every `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The params a template renders without `| shell_quote` (for `dags validate`'s warning about
/// shell scripts).
pub fn unquoted_params(text: &str) -> Vec<String> {
    let Ok(parts) = template_parts(text) else { return Vec::new() };
    parts
        .into_iter()
        .filter(|(is_var, _)| *is_var)
        .map(|(_, inner)| placeholder(inner))
        .filter(|(name, filters)| name.starts_with("params.") && !filters.contains(&"shell_quote"))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Splits a template into literal text and `{{ name }}` placeholders.
fn template_parts(text: &str) -> Result<Vec<(bool, &str)>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        parts.push((false, &rest[..open]));
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| format!("unclosed `{{{{` in `{text}`"))?;
        parts.push((true, after[..close].trim()));
        rest = &after[close + 2..];
    }
    parts.push((false, rest));
    Ok(parts)
}

/// Checks that every placeholder in `text` names a known variable (params are checked at run time).
pub fn check_template(text: &str) -> Result<(), String> {
    for (is_var, inner) in template_parts(text)? {
        if !is_var {
            continue;
        }
        let (name, filters) = placeholder(inner);
        if !TEMPLATE_VARS.contains(&name) && !name.starts_with("params.") {
            return Err(format!(
                "unknown placeholder `{{{{ {name} }}}}` (known: {}, params.NAME)",
                TEMPLATE_VARS.join(", ")
            ));
        }
        if let Some(f) = filters.iter().find(|f| !TEMPLATE_FILTERS.contains(f)) {
            return Err(format!(
                "unknown filter `{f}` in `{{{{ {inner} }}}}` (known: {})",
                TEMPLATE_FILTERS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Fills `{{ name }}` placeholders from the running attempt.
pub fn render_template(text: &str, ctx: &TaskContext) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (is_var, inner) in template_parts(text)? {
        if !is_var {
            out.push_str(inner);
            continue;
        }
        let (name, filters) = placeholder(inner);
        let mut value = match name {
            "ds" => ctx.ds.to_string(),
            "ds_nodash" => ctx.ds.format("%Y%m%d").to_string(),
            "logical_date" => ctx.logical_date.to_rfc3339(),
            "data_interval_start" => ctx.data_interval_start.to_rfc3339(),
            "data_interval_end" => ctx.data_interval_end.to_rfc3339(),
            "run_id" => ctx.run_id.clone(),
            "dag_id" => ctx.dag_id.clone(),
            "task_id" => ctx.task_id.clone(),
            "try_number" => ctx.try_number.to_string(),
            other => match other.strip_prefix("params.").and_then(|p| ctx.params.get(p)) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => return Err(format!("placeholder `{{{{ {other} }}}}` names no variable or param of this run")),
            },
        };
        for f in filters {
            value = match f {
                "shell_quote" => shell_quote(&value),
                other => return Err(format!("unknown filter `{other}` in `{{{{ {inner} }}}}`")),
            };
        }
        out.push_str(&value);
    }
    Ok(out)
}

#[async_trait]
pub trait Task: Send + Sync + fmt::Debug {
    /// Runs one attempt. Dropping the future cancels the attempt (timeouts do that), so
    /// implementations must release what they hold on drop (child processes: `kill_on_drop`).
    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError>;

    /// Tables (`namespace.table`) this task reads. A task of the same DAG that [`writes`] one of
    /// them becomes an upstream of this one without a `depends_on` (gold models use this).
    ///
    /// [`writes`]: Task::writes
    fn reads(&self) -> Vec<String> {
        Vec::new()
    }

    /// Tables (`namespace.table`) this task writes.
    fn writes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Things `tmctl dags validate` should warn about (the DAG still loads), e.g. a param rendered
    /// unquoted into a shell script.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;

    #[test]
    fn shell_quote_makes_one_word() {
        assert_eq!(shell_quote("x; id > pwned.txt"), "'x; id > pwned.txt'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn filters_are_checked_and_unquoted_params_found() {
        assert!(check_template("echo {{ params.who | shell_quote }}").is_ok());
        assert_eq!(
            check_template("{{ params.who | upper }}").unwrap_err(),
            "unknown filter `upper` in `{{ params.who | upper }}` (known: shell_quote)"
        );
        assert_eq!(unquoted_params("echo {{ params.a }} {{ params.b|shell_quote }} {{ ds }}"), ["params.a"]);
    }
}
