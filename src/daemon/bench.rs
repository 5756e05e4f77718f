//! `tmctl bench --daemons 1,2,4`: the daemon measured as users meet it, with real `tmctl serve`
//! processes on a throwaway PostgreSQL database:
//! - throughput: `--runs` runs of a 10-task fan-out DAG of `noop` tasks are queued at once; the
//!   figure is task attempts finished per second until the last run ends, for 1, 2 and 4 daemons
//!   sharing the database (ratios against 1 daemon are what to look at);
//! - latency: a `* * * * *` DAG on one daemon; for each of `--ticks` minute boundaries, the time
//!   from the fire time (the data interval's end) to its first task starting.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};

use crate::dag::schedule;
use crate::executor::prepare_run;
use crate::store::{RunFilter, RunState, RunType, Store};

/// A DAG of `start` → t1..t8 → `end`, all `noop`.
fn fanout_dag() -> String {
    let mut text = String::from("id = \"bench_fanout\"\n[[task]]\nid = \"start\"\nkind = \"noop\"\n");
    for i in 1..=8 {
        text.push_str(&format!("[[task]]\nid = \"t{i}\"\nkind = \"noop\"\ndepends_on = [\"start\"]\n"));
    }
    let all: Vec<String> = (1..=8).map(|i| format!("\"t{i}\"")).collect();
    text.push_str(&format!("[[task]]\nid = \"end\"\nkind = \"noop\"\ndepends_on = [{}]\n", all.join(", ")));
    text
}

const TICK_DAG: &str = "id = \"bench_tick\"\nschedule = \"* * * * *\"\nstart_date = \"2025-01-01\"\n\
                        [[task]]\nid = \"first\"\nkind = \"noop\"\n";

#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    pub daemons: usize,
    pub runs: usize,
    pub attempts: usize,
    pub seconds: f64,
    pub attempts_per_s: f64,
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn spawn_serve(home: &Path, dags: &Path, url: &str) -> Result<Serve> {
    let exe = std::env::current_exe().context("own executable")?;
    let child = Command::new(exe)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("TM_HOME", home)
        .env("TM_DAGS_DIR", dags)
        .env("TM_DATABASE_URL", url)
        .env("TM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start tmctl serve")?;
    Ok(Serve(child))
}

async fn wait_for_daemons(store: &Store, n: usize) -> Result<()> {
    let start = Instant::now();
    while store.live_daemons(Utc::now() - chrono::Duration::seconds(30)).await?.len() < n {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("{n} daemon(s) did not start within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Throughput of `runs` fan-out runs with `n` daemons on a fresh database under `admin_url`.
pub async fn throughput(admin_url: &str, n: usize, runs: usize) -> Result<Throughput> {
    let tmp = tempfile_dir()?;
    let dags = tmp.join("dags");
    std::fs::create_dir_all(&dags)?;
    let fanout = fanout_dag();
    std::fs::write(dags.join("bench_fanout.toml"), &fanout)?;
    let name = format!("tmbench_daemon_{}_{}", std::process::id(), n);
    let url = crate::store::admin::create_postgres_database(admin_url, &name).await?;
    let result = async {
        let store = Store::connect(&url, 4).await?;
        let dag = crate::dag::load_str(&fanout, &dags.join("bench_fanout.toml"))
            .map_err(|d| anyhow::anyhow!("bench DAG: {d:?}"))?;
        let daemons: Vec<Serve> =
            (0..n).map(|i| spawn_serve(&tmp.join(format!("home{i}")), &dags, &url)).collect::<Result<_>>()?;
        wait_for_daemons(&store, n).await?;
        let started = Instant::now();
        let first = NaiveDate::from_ymd_opt(2020, 1, 1).context("date")?;
        for i in 0..runs {
            let slot = schedule::slot_for_date(None, dag.timezone, first + chrono::Duration::days(i as i64));
            prepare_run(&store, &dag, &slot, RunType::Manual, &serde_json::json!({}), None, None).await?;
        }
        loop {
            let open = store.list_runs(&RunFilter { dag_id: Some("bench_fanout"), state: None, limit: 0 }).await?;
            if open.iter().all(|r| r.state.is_finished()) {
                if let Some(bad) = open.iter().find(|r| r.state != RunState::Success) {
                    bail!("bench run {} ended {}", bad.id, bad.state);
                }
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("runs did not finish within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        drop(daemons);
        store.close().await;
        let attempts = runs * dag.tasks.len();
        Ok(Throughput { daemons: n, runs, attempts, seconds, attempts_per_s: attempts as f64 / seconds })
    }
    .await;
    let _ = crate::store::admin::drop_postgres_database(admin_url, &name).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// For each of `ticks` minute boundaries: milliseconds from the fire time to the first task's start.
pub async fn cron_latency(admin_url: &str, ticks: usize) -> Result<Vec<f64>> {
    let tmp = tempfile_dir()?;
    let dags = tmp.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::write(dags.join("bench_tick.toml"), TICK_DAG)?;
    let name = format!("tmbench_tick_{}", std::process::id());
    let url = crate::store::admin::create_postgres_database(admin_url, &name).await?;
    let result = async {
        let store = Store::connect(&url, 4).await?;
        let _daemon = spawn_serve(&tmp.join("home"), &dags, &url)?;
        wait_for_daemons(&store, 1).await?;
        // Runs for intervals that ended before the daemon started are catch-up, not cron ticks.
        let since = Utc::now();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(70 * ticks as u64 + 30);
        while out.len() < ticks {
            if Instant::now() > deadline {
                bail!("no cron tick seen in time");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            out.clear();
            for run in store.list_runs(&RunFilter { dag_id: Some("bench_tick"), state: None, limit: 0 }).await? {
                if run.data_interval_end <= since {
                    continue;
                }
                if let Some(first) = store.list_run_attempts(run.id).await?.first() {
                    out.push(
                        (first.started_at - run.data_interval_end).num_microseconds().unwrap_or(0) as f64 / 1000.0,
                    );
                }
            }
        }
        store.close().await;
        Ok(out)
    }
    .await;
    let _ = crate::store::admin::drop_postgres_database(admin_url, &name).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("tmctl-bench-{}-{}", std::process::id(), Utc::now().timestamp_micros()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
