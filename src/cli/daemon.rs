//! The sub-commands that talk to or about the daemon: `serve`, `dags next`, and backfills handed
//! to a running daemon (`backfill` submits and follows; `backfill status|follow|pause|resume|
//! cancel ID`). The CLI shares the state DB with the daemons, so it submits and follows through
//! the same rows the daemons drive; the HTTP API offers the same operations to other clients.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{BackfillCmd, CliError, CliResult, open_store, outcome_table, print_json};
use crate::backfill::{BackfillError, Request};
use crate::config::Settings;
use crate::dag::Dag;
use crate::store::{DaemonRow, Store};

/// A daemon whose heartbeat is older than this is not counted as running.
const DAEMON_SILENT_AFTER: Duration = Duration::from_secs(20);
/// How often a followed backfill is looked at.
const FOLLOW_EVERY: Duration = Duration::from_millis(300);

pub async fn serve(settings: Arc<Settings>, bind: Option<std::net::SocketAddr>) -> CliResult {
    let store = open_store(&settings).await?;
    let bind = bind.unwrap_or(settings.web_bind);
    crate::daemon::serve(settings, store, bind).await.map_err(|e| match e {
        crate::daemon::DaemonError::Bind { .. } => CliError::Usage(e.to_string()),
        crate::daemon::DaemonError::Exposed { ref path, .. } => CliError::Config(crate::config::ConfigError {
            key: "api.token".into(),
            message: format!("file: {e}"),
            source_name: path.display().to_string(),
        }),
        other => CliError::Failed(other.to_string()),
    })
}

/// `tmctl dags next`: fire times strictly after `after` (default now), UTC, one per line.
pub fn dags_next(dag: &Dag, count: usize, after: Option<&str>) -> CliResult {
    let Some(schedule) = &dag.schedule else {
        return Err(CliError::Usage(format!("DAG `{}` has no schedule (it runs only when triggered)", dag.id)));
    };
    let after = match after {
        None => Utc::now(),
        Some(text) => DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            CliError::Usage(format!("--after `{text}` is not an RFC 3339 instant like 2025-03-09T00:00:00-06:00"))
        })?,
    };
    for fire in crate::dag::schedule::next_fires(schedule, dag.timezone, after, count) {
        println!("{}", fire.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    Ok(())
}

/// A daemon that said it was alive in the last few seconds, if any.
pub async fn live_daemon(store: &Store) -> Result<Option<DaemonRow>, CliError> {
    let since = Utc::now() - chrono::Duration::from_std(DAEMON_SILENT_AFTER).unwrap_or_default();
    Ok(store.live_daemons(since).await?.into_iter().next())
}

pub async fn submit_and_follow(store: &Store, dag: &Dag, req: &Request, daemon: &DaemonRow, json: bool) -> CliResult {
    let b = crate::daemon::backfills::submit(store, dag, req).await.map_err(|e| match e {
        BackfillError::Invalid(m) => CliError::Usage(m),
        other => CliError::Failed(other.to_string()),
    })?;
    if !json {
        eprintln!(
            "backfill {} of `{}` from {} to {} handed to the daemon {} ({}); Ctrl-C stops following, not the backfill",
            b.id, dag.id, req.from, req.to, daemon.id, daemon.url
        );
    }
    follow(store, b.id, json).await
}

pub async fn backfill_action(settings: &Settings, cmd: BackfillCmd) -> CliResult {
    let store = open_store(settings).await?;
    let (id, action) = match cmd {
        BackfillCmd::Status { id, json } => return status(&store, id, json).await,
        BackfillCmd::Follow { id } => return follow(&store, id, false).await,
        BackfillCmd::Pause { id } => (id, "pause"),
        BackfillCmd::Resume { id } => (id, "resume"),
        BackfillCmd::Cancel { id } => (id, "cancel"),
    };
    let b = get_backfill(&store, id).await?;
    match crate::daemon::api::change_backfill_state(&store, id, action).await? {
        Ok(state) => {
            println!("backfill {id} of `{}` is {state}", b.dag_id);
            if live_daemon(&store).await?.is_none() && b.owner.is_none() {
                eprintln!("note: no daemon is running; start `tmctl serve` to drive it");
            }
            Ok(())
        }
        Err(why) => Err(CliError::Usage(format!("backfill {id} is {}: {why}", b.state))),
    }
}

async fn get_backfill(store: &Store, id: i64) -> Result<crate::store::BackfillRow, CliError> {
    store.get_backfill(id).await?.ok_or_else(|| CliError::Usage(format!("backfill {id} does not exist")))
}

fn is_over(state: &str) -> bool {
    matches!(state, "completed" | "failed" | "cancelled")
}

async fn status(store: &Store, id: i64, json: bool) -> CliResult {
    let b = get_backfill(store, id).await?;
    let dates = store.list_backfill_dates(id).await?;
    if json {
        return print_json(&crate::daemon::api::backfill_json(&b, &dates));
    }
    println!(
        "backfill {} of `{}` from {} to {}: {}{}",
        b.id,
        b.dag_id,
        b.from_date,
        b.to_date,
        b.state,
        b.owner.as_deref().map(|o| format!(" (driven by {o})")).unwrap_or_default()
    );
    if !dates.is_empty() {
        println!("{}", outcome_table(dates.iter().map(|d| (d.ds, d.outcome.as_str(), d.run_pk, d.reason.as_deref()))));
    }
    Ok(())
}

/// Shows a daemon-driven backfill's progress until it ends; Ctrl-C detaches.
async fn follow(store: &Store, id: i64, json: bool) -> CliResult {
    let tty = std::io::stderr().is_terminal() && !json;
    let bar = if tty {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} backfill {prefix} [{bar:30}] {pos}/{len} dates  {elapsed_precise}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(id.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut reported = std::collections::BTreeSet::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let b = loop {
        let b = get_backfill(store, id).await?;
        let dates = store.list_backfill_dates(id).await?;
        bar.set_length(dates.len() as u64);
        let done: Vec<_> =
            dates.iter().filter(|d| matches!(d.outcome.as_str(), "succeeded" | "failed" | "skipped")).collect();
        bar.set_position(done.len() as u64);
        for d in done {
            if reported.insert(d.logical_date) {
                bar.set_message(format!("{} {}", d.ds, d.outcome));
                if !tty && !json {
                    eprintln!("[{}/{}] {} {}", reported.len(), dates.len(), d.ds, d.outcome);
                }
            }
        }
        if is_over(&b.state) {
            break b;
        }
        tokio::select! {
            _ = &mut ctrl_c => {
                bar.finish_and_clear();
                eprintln!("stopped following; backfill {id} goes on in the daemon (`tmctl backfill status {id}`)");
                return Ok(());
            }
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    };
    bar.finish_and_clear();
    let dates = store.list_backfill_dates(id).await?;
    let count = |o: &str| dates.iter().filter(|d| d.outcome == o).count();
    let (ok, failed, skipped) = (count("succeeded"), count("failed"), count("skipped"));
    if json {
        print_json(&crate::daemon::api::backfill_json(&b, &dates))?;
    } else {
        println!("backfill {} of `{}` from {} to {}: {}", b.id, b.dag_id, b.from_date, b.to_date, b.state);
        println!("{}", outcome_table(dates.iter().map(|d| (d.ds, d.outcome.as_str(), d.run_pk, d.reason.as_deref()))));
        println!("{ok} succeeded, {failed} failed, {skipped} skipped");
    }
    if failed > 0 || b.state == "failed" { Err(CliError::Failed(String::new())) } else { Ok(()) }
}
