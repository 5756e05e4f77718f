//! `gold.model`: runs one gold SQL model into `gold.<table>` with write-audit-publish (see
//! `crate::gold`). Settings: `sql` (file relative to the DAG file, checked when the DAG is
//! compiled), optional `table` (default: the file stem), optional `partition_by` and `tests`, and
//! `materialized = "table"` (default: full refresh) or `"incremental"` with `unique_key` and
//! `changes` (see `crate::gold::models::Incremental`). An incremental model is rebuilt in full
//! when its table is missing, empty or partitioned otherwise, when its `changes` is by snapshot
//! and its last commit recorded none of that table that is still in its metadata, and when the
//! run's `full_refresh` param is true. The tables the query (and its tests) read become the task's `reads`, so the DAG
//! compiler orders models without `depends_on`. A failing error-severity test is fatal (no retry).

use std::sync::Arc;

use async_trait::async_trait;

use super::{BuildInput, SettingError, Task, TaskContext, TaskError, TaskOutput};
use crate::courses;
use crate::gold::lake::{LakePublisher, input_fingerprint};
use crate::gold::{GoldError, ModelSpec, Refresh, TestStatus, run_model};
use crate::lake::commit::PROP_CHANGES_SNAPSHOT;
use crate::lake::{Lake, LakeError, RunKey, SessionOptions, parse_ident};

/// Kind-specific keys.
pub const KEYS: &[&str] = crate::gold::models::KEYS;

#[derive(Debug)]
struct GoldModel {
    model: ModelSpec,
}

pub fn build(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    ModelSpec::from_settings(input.settings, input.dag_dir).map(|model| Arc::new(GoldModel { model }) as Arc<dyn Task>)
}

fn task_error(e: GoldError) -> TaskError {
    if e.is_transient() { TaskError::Failed(e.to_string()) } else { TaskError::Fatal(e.to_string()) }
}

/// For a model whose `changes` is by snapshot: the snapshot of `changes` its current commit was
/// computed from (`from`, when recorded and still in `changes`' metadata) and `changes`' current
/// one (`to`, `None` while it has none).
struct ChangesSince {
    from: Option<i64>,
    to: Option<i64>,
}

async fn changes_since(lake: &Lake, model: &crate::gold::ModelSpec, changes: &str) -> Result<ChangesSince, LakeError> {
    let changes = lake.load_table(&parse_ident(changes)?).await?;
    let to = changes.metadata().current_snapshot_id();
    let ident = parse_ident(&model.qualified_table())?;
    let recorded = if lake.table_exists(&ident).await? {
        let this = lake.load_table(&ident).await?;
        this.metadata()
            .current_snapshot()
            .and_then(|s| s.summary().additional_properties.get(PROP_CHANGES_SNAPSHOT))
            .and_then(|v| v.parse::<i64>().ok())
    } else {
        None
    };
    let from = recorded.filter(|id| changes.metadata().snapshot_by_id(*id).is_some());
    Ok(ChangesSince { from, to })
}

#[async_trait]
impl Task for GoldModel {
    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        let model = &self.model;
        tracing::info!(model = %model.table, sql = %model.sql_file.display(), reads = ?model.reads, "running gold model");
        let lake = ctx
            .lake
            .get()
            .await
            .map_err(super::lake_failed(&format!("model `{}`: cannot open the lake", model.table)))?;
        // Bounded parallelism: each model may use all cores and the memory pool.
        let waited = std::time::Instant::now();
        let _slot = lake.model_slot(ctx.priority_weight).await;
        tracing::info!(
            model = %model.table,
            waited_ms = waited.elapsed().as_millis() as u64,
            priority_weight = ctx.priority_weight,
            "model slot acquired"
        );
        let session = lake
            .session(&SessionOptions::model())
            .await
            .map_err(|e| TaskError::Failed(format!("model `{}`: cannot build a session: {e}", model.table)))?;
        let mut fingerprint = input_fingerprint(&lake, model).await;
        // Course profiles (`seed.course_profiles`): read from the DAG folder at each run; their
        // content is part of the inputs a commit is recognised by.
        if model.reads.iter().any(|r| r.starts_with(&format!("{}.", courses::SEED_SCHEMA))) {
            let profiles = courses::load_dir(&model.dag_dir).map_err(|diags| {
                let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
                TaskError::Fatal(format!("model `{}`: bad course profiles: {}", model.table, shown.join("; ")))
            })?;
            courses::register_seed(&session, &profiles).map_err(|e| {
                TaskError::Fatal(format!("model `{}`: cannot register the course profiles: {e}", model.table))
            })?;
            fingerprint = format!("{fingerprint}-{}", courses::digest(&profiles));
        }
        let mut run_key = RunKey::new(&ctx.dag_id, &ctx.task_id, ctx.ds).with_fingerprint(fingerprint);
        let force = ctx.params.get("full_refresh").and_then(|v| v.as_bool()).unwrap_or(false);
        let lake_error = |table: &str| {
            let what = format!("model `{}`: cannot read table `{table}`", model.table);
            move |e: LakeError| super::lake_failed(&what)(e)
        };
        // `changes` by snapshot: every commit records the snapshot of `changes` it was computed
        // from, and the next run recomputes the keys of the rows changed since.
        let since = match model.incremental() {
            Some(inc) if inc.changes_column.is_none() => {
                let since =
                    changes_since(&lake, model, &inc.changes_table).await.map_err(lake_error(&inc.changes_table))?;
                if let Some(to) = since.to {
                    run_key = run_key.with_property(PROP_CHANGES_SNAPSHOT, to.to_string());
                }
                Some(since)
            }
            _ => None,
        };
        let refresh = match model.incremental() {
            Some(inc) if !force => {
                let ident = parse_ident(&model.qualified_table())
                    .map_err(|e| TaskError::Fatal(format!("model `{}`: {e}", model.table)))?;
                let columns: Vec<&str> = model.partition_by.iter().map(String::as_str).collect();
                let ready = lake
                    .has_data_partitioned_by(&ident, &columns)
                    .await
                    .map_err(lake_error(&model.qualified_table()))?;
                match (ready, since) {
                    (false, _) => Refresh::Full,
                    (true, None) => Refresh::Incremental { ds: ctx.ds },
                    (true, Some(ChangesSince { from: Some(from), to: Some(to) })) => Refresh::Since { from, to },
                    (true, Some(_)) => {
                        tracing::info!(model = %model.table, changes = %inc.changes_table, "no snapshot of `changes` recorded by the last commit (or it has expired): rebuilding in full");
                        Refresh::Full
                    }
                }
            }
            _ => Refresh::Full,
        };
        let publisher = LakePublisher { lake, run_key, force, rebuild: refresh == Refresh::Full };
        let run = match run_model(&session, model, &publisher, refresh).await {
            // The model changed shape (a new column, another partitioning): an incremental run
            // cannot carry the old rows over, so the table is rebuilt in full beside the old one.
            Err(e @ GoldError::Unfit { .. }) if refresh != Refresh::Full => {
                tracing::warn!(model = %model.table, reason = %e, "rebuilding the incremental model in full");
                let publisher = LakePublisher { rebuild: true, ..publisher };
                run_model(&session, model, &publisher, Refresh::Full).await
            }
            other => other,
        }
        .map_err(task_error)?;
        for test in run.tests.iter().filter(|t| t.status != TestStatus::Pass) {
            ctx.metrics.gold_test_failed(&ctx.dag_id, &run.table, test.severity.as_str());
        }
        let summary = run.summary();
        if run.published {
            Ok(TaskOutput { summary: Some(summary) })
        } else {
            tracing::error!(summary = %summary, "model not published");
            let failed = run.blocking_failures();
            Err(task_error(GoldError::TestsFailed { model: model.table.clone(), table: run.table, failed }))
        }
    }

    fn reads(&self) -> Vec<String> {
        let lineage = self.model.lineage();
        let mut reads = lineage.reads;
        reads.extend(lineage.other_reads);
        reads.sort();
        reads.dedup();
        reads
    }

    fn writes(&self) -> Vec<String> {
        vec![self.model.qualified_table()]
    }
}
