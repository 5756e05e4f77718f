//! `tmctl runs list|show` and `tmctl logs`.

use super::*;

pub(super) async fn runs_list(settings: &Settings, dag: Option<&str>, limit: i64, json: bool) -> CliResult {
    let store = open_store(settings).await?;
    let runs = store.list_runs(&RunFilter { dag_id: dag, state: None, limit }).await?;
    if json {
        let rows: Vec<serde_json::Value> = runs.iter().map(crate::daemon::api::run_json).collect();
        return print_json(&rows);
    }
    if runs.is_empty() {
        println!("no runs{}", dag.map(|d| format!(" of `{d}`")).unwrap_or_default());
        return Ok(());
    }
    let mut t = table();
    t.set_header(["id", "dag", "date", "run id", "type", "state", "started", "duration"]);
    for r in &runs {
        t.add_row([
            r.id.to_string(),
            r.dag_id.clone(),
            r.ds.to_string(),
            r.run_id.clone(),
            r.run_type.to_string(),
            r.state.to_string(),
            r.started_at
                .map(|s| s.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            duration(r.started_at, r.ended_at),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub(super) fn duration(
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    match (start, end) {
        (Some(s), Some(e)) => timefmt::human_duration((e - s).to_std().unwrap_or_default()),
        (Some(_), None) => "running".into(),
        _ => String::new(),
    }
}

pub(super) async fn get_run(store: &Store, run_id: i64) -> Result<crate::store::RunRow, CliError> {
    store
        .get_run(run_id)
        .await?
        .ok_or_else(|| CliError::Usage(format!("run {run_id} does not exist (see `tmctl runs list`)")))
}

pub(super) async fn runs_show(settings: &Settings, run_id: i64, json: bool) -> CliResult {
    let store = open_store(settings).await?;
    let run = get_run(&store, run_id).await?;
    let tis = store.list_task_instances(run.id).await?;
    if json {
        let mut v = crate::daemon::api::run_json(&run);
        v["tasks"] = tis
            .iter()
            .map(|t| {
                serde_json::json!({
                    "task_id": t.task_id, "kind": t.kind, "state": t.state.map(|s| s.as_str()),
                    "try_number": t.try_number, "max_tries": t.max_tries,
                    "started_at": t.started_at.map(|x| x.to_rfc3339()), "ended_at": t.ended_at.map(|x| x.to_rfc3339()),
                    "duration_ms": t.duration_ms, "error": t.error,
                })
            })
            .collect();
        return print_json(&v);
    }
    println!("run {} of `{}`: {} ({}, {})", run.id, run.dag_id, run.state, run.run_id, run.run_type);
    println!(
        "  logical date {}  data interval {} .. {}",
        run.logical_date.to_rfc3339(),
        run.data_interval_start.to_rfc3339(),
        run.data_interval_end.to_rfc3339()
    );
    if run.conf.as_object().is_some_and(|o| !o.is_empty()) {
        println!("  conf {}", crate::secrets::mask_conf(&run.conf));
    }
    let mut t = table();
    t.set_header(["task", "kind", "state", "tries", "duration", "error"]);
    for ti in &tis {
        t.add_row([
            ti.task_id.clone(),
            ti.kind.clone(),
            ti.state.map(|s| s.as_str().to_string()).unwrap_or_else(|| "none".into()),
            format!("{}/{}", ti.try_number, ti.max_tries),
            ti.duration_ms
                .map(|ms| timefmt::human_duration(std::time::Duration::from_millis(ms as u64)))
                .unwrap_or_default(),
            ti.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    println!("logs: tmctl logs {} TASK [--try N]", run.id);
    Ok(())
}

pub(super) async fn logs(settings: &Settings, args: LogsArgs) -> CliResult {
    let store = open_store(settings).await?;
    let run = get_run(&store, args.run_id).await?;
    let tis = store.list_task_instances(run.id).await?;
    if !tis.iter().any(|t| t.task_id == args.task) {
        let names: Vec<&str> = tis.iter().map(|t| t.task_id.as_str()).collect();
        return Err(CliError::Usage(format!(
            "run {} of `{}` has no task `{}` (tasks: {})",
            run.id,
            run.dag_id,
            args.task,
            names.join(", ")
        )));
    }
    let attempts = store.list_attempts(run.id, &args.task).await?;
    if attempts.is_empty() {
        return Err(CliError::Usage(format!("task `{}` of run {} has not started a try yet", args.task, run.id)));
    }
    let attempt = match args.try_number {
        None => attempts.last(),
        Some(n) => attempts.iter().find(|a| a.try_number == n),
    };
    let Some(attempt) = attempt else {
        let tries: Vec<String> = attempts.iter().map(|a| a.try_number.to_string()).collect();
        return Err(CliError::Usage(format!(
            "task `{}` of run {} has no try {} (tries: {})",
            args.task,
            run.id,
            args.try_number.unwrap_or_default(),
            tries.join(", ")
        )));
    };
    eprintln!(
        "--- {}.{} run {} try {} ({}) on {} ---",
        run.dag_id, args.task, run.id, attempt.try_number, attempt.state, attempt.hostname
    );
    print!("{}", attempt.log);
    Ok(())
}
