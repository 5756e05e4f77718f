//! `tmctl dags validate|list|show|pause|unpause`.

use super::*;

pub(super) fn validate(settings: &Settings, paths: Vec<PathBuf>) -> CliResult {
    let paths = if paths.is_empty() { vec![settings.dags_dir.clone()] } else { paths };
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut files = 0usize;
    let mut ids: Vec<(String, PathBuf)> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut keep = |d: Dag, ids: &mut Vec<(String, PathBuf)>| {
        for t in &d.tasks {
            for w in t.task.warnings() {
                warnings.push(format!("{}: warning: task `{}`: {w}", d.file.display(), t.id));
            }
        }
        ids.push((d.head.id, d.head.file));
    };
    for path in &paths {
        if path.is_dir() {
            let (dags, mut diags) = dag::load_dir(path);
            files += count_toml(path);
            dags.into_iter().for_each(|d| keep(d, &mut ids));
            problems.append(&mut diags);
        } else if path.file_name().is_some_and(|n| n == crate::courses::FILE_NAME) && path.exists() {
            // The course profiles beside the DAGs, not a DAG.
            files += 1;
            if let Err(mut diags) = crate::courses::load_file(path) {
                problems.append(&mut diags);
            }
        } else if path.exists() {
            files += 1;
            match dag::load_file(path) {
                Ok(d) => keep(d, &mut ids),
                Err(mut diags) => problems.append(&mut diags),
            }
        } else {
            return Err(CliError::Usage(format!("{} does not exist", path.display())));
        }
    }
    for w in &warnings {
        println!("{w}");
    }
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("ok: {} DAG(s) in {files} file(s) are valid", ids.len());
        Ok(())
    } else {
        let mut bad: Vec<&PathBuf> = problems.iter().map(|p| &p.file).collect();
        bad.sort();
        bad.dedup();
        Err(CliError::Usage(format!("{} problem(s) in {} of {files} file(s)", problems.len(), bad.len())))
    }
}

pub(super) fn count_toml(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "toml")).count())
        .unwrap_or(0)
}

pub(super) async fn dags_list(settings: &Settings, json: bool) -> CliResult {
    let dags = load_dags(settings)?;
    let store = open_store(settings).await?;
    let paused = store.paused_flags().await?;
    let now = chrono::Utc::now();
    let rows: Vec<serde_json::Value> = dags
        .iter()
        .map(|d| {
            let next = d.schedule.as_ref().and_then(|s| s.next_after(now, d.timezone));
            serde_json::json!({
                "dag_id": d.id,
                "description": d.description,
                "schedule": d.schedule.as_ref().map(|s| s.expr.clone()),
                "timezone": d.timezone.name(),
                "next_run": next.map(|t| t.with_timezone(&d.timezone).to_rfc3339()),
                "tasks": d.tasks.len(),
                "paused": paused.get(&d.id).copied().unwrap_or(false),
                "file": d.file.display().to_string(),
            })
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    let mut t = table();
    t.set_header(["dag", "schedule", "timezone", "next run", "tasks", "paused", "file"]);
    for r in &rows {
        t.add_row([
            r["dag_id"].as_str().unwrap_or_default().to_string(),
            r["schedule"].as_str().unwrap_or("manual").to_string(),
            r["timezone"].as_str().unwrap_or_default().to_string(),
            r["next_run"].as_str().unwrap_or("-").to_string(),
            r["tasks"].to_string(),
            if r["paused"].as_bool() == Some(true) { "yes".into() } else { "no".into() },
            r["file"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub(super) async fn dags_show(settings: &Settings, id: &str) -> CliResult {
    let dag = find_dag(settings, id)?;
    println!("DAG {} ({})", dag.id, dag.file.display());
    if !dag.description.is_empty() {
        println!("  {}", dag.description);
    }
    println!(
        "  schedule: {}   timezone: {}   start_date: {}   catchup: {}   max_active_runs: {}",
        dag.schedule.as_ref().map(|s| s.expr.as_str()).unwrap_or("manual"),
        dag.timezone.name(),
        dag.start_date.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
        dag.catchup,
        dag.max_active_runs
    );
    if !dag.params.is_empty() {
        let ps: Vec<String> = dag
            .params
            .iter()
            .map(|(k, p)| match &p.default {
                Some(d) => format!("{k}: {} = {d}", p.ty.name()),
                None => format!("{k}: {} (required)", p.ty.name()),
            })
            .collect();
        println!("  params: {}", ps.join(", "));
    }
    let mut t = table();
    t.set_header(["#", "task", "kind", "depends on", "retries", "retry delay", "timeout"]);
    for (i, task) in dag.topological().enumerate() {
        let p = &task.policy;
        let backoff = if p.backoff == dag::Backoff::Exponential { " exp" } else { "" };
        t.add_row([
            (i + 1).to_string(),
            task.id.clone(),
            task.kind.clone(),
            if task.depends_on.is_empty() { "-".into() } else { dag.upstream(&task.id).join(", ") },
            p.retries.to_string(),
            format!("{}{backoff}", timefmt::human_duration(p.retry_delay)),
            p.timeout.map(timefmt::human_duration).unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub(super) async fn set_paused(settings: &Settings, id: &str, paused: bool) -> CliResult {
    find_dag(settings, id)?;
    let store = open_store(settings).await?;
    store.set_paused(id, paused).await?;
    println!("DAG `{id}` is now {}", if paused { "paused" } else { "unpaused" });
    Ok(())
}
