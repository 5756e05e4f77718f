//! Before a run executes: its params resolved from the DAG's declarations and the run's conf,
//! and the run created, re-queued or resumed for a schedule slot.

use super::*;

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
pub(super) fn resolve_params_with(
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
