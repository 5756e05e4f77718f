//! `tmctl run` (one run in-process, Ctrl-C cancels it) and `tmctl backfill` (dates in-process,
//! with progress).

use super::*;

/// Cancels the executor on Ctrl-C (running tries are killed and recorded as failed).
pub(super) fn cancel_on_ctrl_c(exec: &Executor) {
    let token = exec.cancel_token();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: cancelling running tasks (Ctrl-C again to quit at once)");
            token.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}

pub(super) async fn run(settings: &Arc<Settings>, args: RunArgs) -> CliResult {
    let dag = find_dag(settings, &args.dag)?;
    let date = date_arg("--date", &args.date)?;
    let mut conf = parse_conf(args.conf.as_deref())?;
    if args.full_refresh {
        if !dag.params.contains_key("full_refresh") {
            return Err(CliError::Usage(format!(
                "--full-refresh: DAG `{}` has no `full_refresh` param (only lakehouse DAGs rebuild tables)",
                dag.id
            )));
        }
        if let Some(m) = conf.as_object_mut() {
            m.insert("full_refresh".into(), serde_json::Value::Bool(true));
        }
    }
    let store = open_store(settings).await?;
    let slot = schedule::slot_for_date(dag.schedule.as_ref(), dag.timezone, date);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let exec = Executor::new(store.clone(), settings.clone()).with_events(tx);
    let prepared = prepare_run(&store, &dag, &slot, RunType::Manual, &conf, None, Some(&exec)).await?;
    let run = prepared.run().clone();
    let verb = match prepared {
        Prepared::Created(_) => "created",
        Prepared::Requeued(_) => "re-running existing",
        Prepared::Resumed(_) => "resuming abandoned",
    };
    println!("{verb} run {} of `{}` for {} ({})", run.id, dag.id, run.ds, run.run_id);
    cancel_on_ctrl_c(&exec);
    let width = dag.tasks.iter().map(|t| t.id.len()).max().unwrap_or(4);
    let printer = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let Event::Task { task_id, state, try_number, max_tries, error, .. } = ev {
                if matches!(state, TaskState::Scheduled | TaskState::Queued) {
                    continue;
                }
                let time = chrono::Local::now().format("%H:%M:%S%.3f");
                let tries = if try_number > 0 { format!("try {try_number}/{max_tries}") } else { String::new() };
                let err = error.map(|e| format!("  {e}")).unwrap_or_default();
                println!("  {time}  {task_id:<width$}  {:<15} {tries}{err}", state.as_str());
            }
        }
    });
    let started = std::time::Instant::now();
    let state = exec.execute(&dag, run.id).await;
    let owner = exec.owner().to_string();
    drop(exec);
    let _ = printer.await;
    let state = state?;
    if settings.lake.storage == crate::config::StorageKind::S3 {
        // What the run cost on S3 (`TM_LOG=tmctl::s3=info` shows it; benches read it).
        tracing::info!(target: "tmctl::s3", "run {}: S3 {}", run.id, crate::lake::s3::requests());
    }
    flush_alerts(&store, settings, &owner, &[run.id]).await;
    let took = timefmt::human_duration(started.elapsed());
    match state {
        RunState::Success => {
            println!("run {} succeeded in {took}", run.id);
            Ok(())
        }
        other => {
            println!("run {} {other} after {took}; see `tmctl runs show {}`", run.id, run.id);
            Err(CliError::Failed(String::new()))
        }
    }
}

pub(super) async fn backfill_cmd(settings: &Arc<Settings>, args: BackfillArgs) -> CliResult {
    let missing = |flag: &str| CliError::Usage(format!("backfill needs {flag}"));
    let dag = find_dag(settings, args.dag.as_deref().ok_or_else(|| missing("a DAG"))?)?;
    let from = date_arg("--from", args.from.as_deref().ok_or_else(|| missing("--from"))?)?;
    let to = date_arg("--to", args.to.as_deref().ok_or_else(|| missing("--to"))?)?;
    let reprocess: Reprocess = args.reprocess.parse().map_err(CliError::Usage)?;
    let conf = parse_conf(args.conf.as_deref())?;
    let req = backfill::Request {
        from,
        to,
        reprocess,
        max_active_runs: args.max_active_runs,
        run_backwards: args.run_backwards,
        conf,
        max_slots: args.max_slots,
    };
    let store = open_store(settings).await?;
    let planned = backfill::plan(&store, &dag, &req).await.map_err(|e| match e {
        backfill::BackfillError::Invalid(m) => CliError::Usage(m),
        other => CliError::Failed(other.to_string()),
    })?;
    if args.dry_run {
        if args.json {
            return print_json(&serde_json::json!({ "dag_id": dag.id, "dry_run": true, "dates": planned }));
        }
        println!("dry run: backfill of `{}` from {from} to {to} (reprocess {reprocess}) would:", dag.id);
        let mut t = table();
        t.set_header(["date", "logical date", "action", "detail"]);
        for p in &planned {
            let (action, detail) = match &p.action {
                Action::Create => ("create run".to_string(), String::new()),
                Action::Rerun { run_pk, previous } => ("re-run".to_string(), format!("run {run_pk} ({previous})")),
                Action::Resume { run_pk, previous } => {
                    ("resume".to_string(), format!("run {run_pk} ({previous}, its process is gone)"))
                }
                Action::Skip { reason, .. } => ("skip".to_string(), reason.clone()),
            };
            t.add_row([p.ds.to_string(), p.logical_date.to_rfc3339(), action, detail]);
        }
        println!("{t}");
        let n = planned.iter().filter(|p| !matches!(p.action, Action::Skip { .. })).count();
        println!("{n} of {} date(s) would run; nothing was changed", planned.len());
        return Ok(());
    }
    if !args.in_process
        && let Some(daemon) = daemon::live_daemon(&store).await?
    {
        return daemon::submit_and_follow(&store, &dag, &req, &daemon, args.json).await;
    }
    let exec = Executor::new(store.clone(), settings.clone());
    cancel_on_ctrl_c(&exec);
    let total = planned.len() as u64;
    let tty = std::io::stderr().is_terminal() && !args.json;
    let bar = if tty {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} backfill {prefix} [{bar:30}] {pos}/{len} dates  {elapsed_precise}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(dag.id.clone());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    let quiet = args.json;
    let on_date = |d: &backfill::DateOutcome| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        bar.inc(1);
        bar.set_message(format!("{} {}", d.ds, d.outcome.as_str()));
        if !tty && !quiet {
            eprintln!("[{n}/{total}] {} {}", d.ds, d.outcome.as_str());
        }
    };
    let report = backfill::execute(&exec, &dag, &req, planned, &on_date).await.map_err(|e| match e {
        backfill::BackfillError::Invalid(m) => CliError::Usage(m),
        other => CliError::Failed(other.to_string()),
    })?;
    bar.finish_and_clear();
    let run_pks: Vec<i64> = report.dates.iter().filter_map(|d| d.run_pk).collect();
    flush_alerts(&store, settings, exec.owner(), &run_pks).await;
    let (ok, failed, skipped) =
        (report.count(Outcome::Succeeded), report.count(Outcome::Failed), report.count(Outcome::Skipped));
    if args.json {
        print_json(&serde_json::json!({
            "backfill_id": report.backfill_id,
            "dag_id": report.dag_id,
            "dry_run": false,
            "succeeded": ok,
            "failed": failed,
            "skipped": skipped,
            "dates": report.dates,
        }))?;
    } else {
        let t = outcome_table(report.dates.iter().map(|d| (d.ds, d.outcome.as_str(), d.run_pk, d.reason.as_deref())));
        println!("backfill {} of `{}` from {from} to {to}:", report.backfill_id, dag.id);
        println!("{t}");
        println!("{ok} succeeded, {failed} failed, {skipped} skipped");
    }
    if failed > 0 { Err(CliError::Failed(String::new())) } else { Ok(()) }
}
