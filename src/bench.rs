//! `tmctl bench`: per-task orchestration overhead of the executor with every state change
//! persisted, on SQLite and PostgreSQL, for (a) a 40-task sequential chain of `noop` and (b) a
//! 1,000-task wide-and-deep DAG of `noop` (20 levels × 50 tasks, each depending on two tasks of
//! the level above). Each measurement uses a fresh state DB; the median of `--repeat` runs is
//! reported. Figures are only meaningful from a `--release` build.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;

use crate::config::Settings;
use crate::dag::{Dag, DagHead, TaskDef, TaskPolicy, schedule};
use crate::executor::{Executor, prepare_run};
use crate::store::{RunState, RunType, Store};
use crate::tasks::{self, BuildInput};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Which state DB: sqlite, postgres or all.
    #[arg(long, default_value = "all")]
    db: String,
    /// PostgreSQL server for the postgres runs (a throwaway database is created and dropped).
    #[arg(long, env = "TM_BENCH_PG_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_url: String,
    /// Measurements per workload and DB; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Executor slots (tasks running at once).
    #[arg(long, default_value_t = 8)]
    slots: usize,
    /// Also time the same chain in Airflow (`airflow dags test`, in-process, SQLite), with this
    /// `airflow` executable, in the same run: per-task cost = (time of 40 tasks − time of 1) / 39.
    #[arg(long, value_name = "AIRFLOW_BIN")]
    airflow: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Instead: measure `tmctl serve` on PostgreSQL — task attempts per second with this many
    /// daemons sharing the database (e.g. `1,2,4`) and the cron-tick-to-first-task latency.
    #[arg(long, value_name = "N,N,..")]
    daemons: Option<String>,
    /// Runs queued per throughput measurement (with --daemons).
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Minute boundaries to time the cron latency on (with --daemons; 0 skips it).
    #[arg(long, default_value_t = 2)]
    ticks: usize,
    /// Instead: seed 2,000 runs / 100,000 task tries into a fresh state DB (SQLite unless
    /// `--db postgres`), serve it in-process and report p50/p99 per UI page and API endpoint.
    #[arg(long)]
    ui: bool,
    /// Requests per page (with --ui).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Concurrent HTTP clients (with --ui).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// With --ui: `login` (default: a logged-in session), `login-no-cache` (the daemon's session
    /// cache off: every request reads its session from the state DB) or `anonymous`
    /// (`web.anonymous_read`, no session: pages as they cost before logins existed).
    #[arg(long, default_value = "login", value_parser = ["login", "login-no-cache", "anonymous"])]
    session: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    pub workload: String,
    pub db: String,
    pub tasks: usize,
    pub median_ms: f64,
    pub ms_per_task: f64,
    pub tasks_per_s: f64,
    pub runs_ms: Vec<f64>,
}

/// Published per-task figures for a sequential chain (issue 2): Airflow ~2.9 s, Windmill
/// 50–110 ms, Hatchet 31 ms.
const PUBLISHED: &[(&str, f64)] = &[("Airflow", 2900.0), ("Windmill", 50.0), ("Hatchet", 31.0)];

fn noop_task(id: String, depends_on: Vec<String>) -> Result<TaskDef> {
    let entry = tasks::lookup("noop").context("noop kind missing")?;
    let settings = toml::Table::new();
    let task = (entry.build)(&BuildInput { settings: &settings, dag_dir: std::path::Path::new(".") })
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(TaskDef { id, kind: "noop".into(), depends_on, policy: TaskPolicy::default(), task })
}

fn head(id: &str) -> DagHead {
    DagHead {
        id: id.into(),
        description: String::new(),
        file: PathBuf::from(format!("<bench:{id}>")),
        schedule: None,
        timezone: chrono_tz::UTC,
        start_date: None,
        end_date: None,
        catchup: false,
        max_active_runs: 1,
        params: Default::default(),
        deadline: None,
        email: Vec::new(),
        webhook: Vec::new(),
        email_on_recovery: true,
        allow_undeclared_params: false,
    }
}

/// 40 `noop` tasks, each depending on the one before.
pub fn chain(n: usize) -> Result<Dag> {
    let tasks = (0..n)
        .map(|i| noop_task(format!("t{i:03}"), if i == 0 { vec![] } else { vec![format!("t{:03}", i - 1)] }))
        .collect::<Result<Vec<_>>>()?;
    Dag::new(head("bench_chain"), tasks).map_err(anyhow::Error::msg)
}

/// `levels × width` `noop` tasks; task i of level L depends on tasks i and i+1 (mod width) of L−1.
pub fn wide_and_deep(levels: usize, width: usize) -> Result<Dag> {
    let mut tasks = Vec::with_capacity(levels * width);
    for l in 0..levels {
        for i in 0..width {
            let deps = if l == 0 {
                vec![]
            } else {
                let mut d = vec![format!("l{:02}_{i:03}", l - 1), format!("l{:02}_{:03}", l - 1, (i + 1) % width)];
                d.dedup();
                d
            };
            tasks.push(noop_task(format!("l{l:02}_{i:03}"), deps)?);
        }
    }
    Dag::new(head("bench_wide"), tasks).map_err(anyhow::Error::msg)
}

/// A fresh state DB for one measurement; dropped afterwards.
struct BenchDb {
    url: String,
    _dir: Option<tempfile_dir::TempDir>,
    pg: Option<(String, String)>,
}

mod tempfile_dir {
    /// A directory removed on drop (the bench must not need dev-dependencies).
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn fresh_db(kind: &str, pg_url: &str, n: usize) -> Result<BenchDb> {
    let stamp = format!("{}_{}_{}", std::process::id(), n, chrono::Utc::now().timestamp_subsec_nanos());
    match kind {
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("tmctl-bench-{stamp}"));
            std::fs::create_dir_all(&dir)?;
            let url = crate::config::sqlite_url(&dir.join("tm.db"));
            Ok(BenchDb { url, _dir: Some(tempfile_dir::TempDir(dir)), pg: None })
        }
        "postgres" => {
            let name = format!("tmbench_{stamp}");
            let url = crate::store::admin::create_postgres_database(pg_url, &name).await?;
            Ok(BenchDb { url, _dir: None, pg: Some((pg_url.to_string(), name)) })
        }
        other => bail!("--db `{other}` is not one of sqlite, postgres, all"),
    }
}

async fn drop_db(db: BenchDb) {
    if let Some((admin, name)) = &db.pg {
        let _ = crate::store::admin::drop_postgres_database(admin, name).await;
    }
}

/// Time from creating the run to its last task finishing.
async fn measure_once(settings: &Arc<Settings>, url: &str, dag: &Dag) -> Result<Duration> {
    let store = Store::connect(url, settings.database_max_connections).await?;
    let exec = Executor::new(store.clone(), settings.clone());
    let date = NaiveDate::from_ymd_opt(2025, 1, 1).context("date")?;
    let slot = schedule::slot_for_date(None, dag.timezone, date);
    let started = Instant::now();
    let run = prepare_run(&store, dag, &slot, RunType::Manual, &serde_json::json!({}), None, Some(&exec)).await?;
    let state = exec.execute(dag, run.run().id).await?;
    let took = started.elapsed();
    if state != RunState::Success {
        bail!("bench run of {} ended {state}", dag.id);
    }
    let finished = store.list_task_instances(run.run().id).await?;
    if finished.len() != dag.tasks.len() || finished.iter().any(|t| t.state != Some(crate::store::TaskState::Success)) {
        bail!("bench run of {} did not persist every task as success", dag.id);
    }
    store.close().await;
    Ok(took)
}

/// The Airflow peer's DAG file: a 1-task and a 40-task chain of EmptyOperator.
const AIRFLOW_DAGS: &str = r#"
from datetime import datetime
from airflow import DAG
try:
    from airflow.providers.standard.operators.empty import EmptyOperator
except ImportError:
    from airflow.operators.empty import EmptyOperator

for n in (1, 40):
    with DAG(f"chain_{n}", start_date=datetime(2025, 1, 1), schedule=None, catchup=False) as dag:
        prev = None
        for i in range(n):
            t = EmptyOperator(task_id=f"t{i:03d}")
            if prev is not None:
                prev >> t
            prev = t
    globals()[f"chain_{n}"] = dag
"#;

/// Per-task milliseconds of Airflow's in-process `dags test` on a sequential chain, measured as
/// the difference between a 40-task and a 1-task chain (so interpreter start-up cancels out).
async fn airflow_chain_ms_per_task(bin: &std::path::Path, repeat: usize) -> Result<f64> {
    let home = std::env::temp_dir().join(format!("tmctl-bench-airflow-{}", std::process::id()));
    let _cleanup = tempfile_dir::TempDir(home.clone());
    std::fs::create_dir_all(home.join("dags"))?;
    std::fs::write(home.join("dags/chains.py"), AIRFLOW_DAGS)?;
    let run = |args: &'static [&'static str], date: Option<String>| {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(args)
            .args(date)
            .env("AIRFLOW_HOME", &home)
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .env("AIRFLOW__CORE__DAGS_FOLDER", home.join("dags"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        async move {
            let started = Instant::now();
            let status = cmd.status().await?;
            if !status.success() {
                bail!("airflow {} failed with {status}", args.join(" "));
            }
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        }
    };
    run(&["db", "migrate"], None).await?;
    run(&["dags", "reserialize"], None).await?;
    let mut per_task = Vec::new();
    for i in 0..repeat.max(1) {
        let date = format!("2025-01-{:02}", i + 1);
        let one = run(&["dags", "test", "chain_1"], Some(date.clone())).await?;
        let forty = run(&["dags", "test", "chain_40"], Some(date)).await?;
        per_task.push((forty - one) / 39.0);
    }
    per_task.sort_by(|a, b| a.total_cmp(b));
    Ok(per_task[per_task.len() / 2])
}

pub async fn run(base: &Settings, args: BenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; run `cargo run --release -- bench` for meaningful figures");
    }
    if let Some(list) = &args.daemons {
        return run_daemons(&args, list).await;
    }
    if args.ui {
        let opts = crate::web::bench::UiBenchOptions {
            db: if args.db == "all" { "sqlite".into() } else { args.db.clone() },
            pg_url: args.pg_url.clone(),
            requests: args.requests,
            concurrency: args.concurrency,
            session: match args.session.as_str() {
                "anonymous" => crate::web::bench::SessionMode::Anonymous,
                "login-no-cache" => crate::web::bench::SessionMode::LoginNoCache,
                _ => crate::web::bench::SessionMode::Login,
            },
            json: args.json,
            ..Default::default()
        };
        crate::web::bench::run(base, &opts).await?;
        return Ok(());
    }
    let dbs: Vec<&str> = match args.db.as_str() {
        "all" => vec!["sqlite", "postgres"],
        "sqlite" => vec!["sqlite"],
        "postgres" => vec!["postgres"],
        other => bail!("--db `{other}` is not one of sqlite, postgres, all"),
    };
    let mut settings = base.clone();
    settings.executor_slots = args.slots.max(1);
    let settings = Arc::new(settings);
    let workloads = [("chain_40", chain(40)?), ("wide_deep_1000", wide_and_deep(20, 50)?)];
    let mut results = Vec::new();
    let mut n = 0;
    for db in &dbs {
        for (name, dag) in &workloads {
            let mut times = Vec::new();
            for _ in 0..args.repeat.max(1) {
                n += 1;
                let fresh = fresh_db(db, &args.pg_url, n).await?;
                let t = measure_once(&settings, &fresh.url, dag).await;
                drop_db(fresh).await;
                times.push(t?.as_secs_f64() * 1000.0);
            }
            let mut sorted = times.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let median = sorted[sorted.len() / 2];
            let tasks = dag.tasks.len();
            let m = Measurement {
                workload: name.to_string(),
                db: db.to_string(),
                tasks,
                median_ms: median,
                ms_per_task: median / tasks as f64,
                tasks_per_s: tasks as f64 / (median / 1000.0),
                runs_ms: times,
            };
            if !args.json {
                eprintln!("{} on {}: {:.3} ms/task", m.workload, m.db, m.ms_per_task);
            }
            results.push(m);
        }
    }
    let airflow = match &args.airflow {
        Some(bin) => {
            eprintln!("timing Airflow's `dags test` on the same chain (this takes a minute)...");
            Some(airflow_chain_ms_per_task(bin, args.repeat).await?)
        }
        None => None,
    };
    if args.json {
        let out = serde_json::json!({ "tmctl": results, "airflow_dags_test_chain_ms_per_task": airflow });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["workload", "state DB", "tasks", "run (median)", "ms/task", "tasks/s", "vs Airflow 2.9 s/task"]);
    for m in &results {
        t.add_row([
            m.workload.clone(),
            m.db.clone(),
            m.tasks.to_string(),
            format!("{:.1} ms", m.median_ms),
            format!("{:.3}", m.ms_per_task),
            format!("{:.0}", m.tasks_per_s),
            format!("{:.0}× less overhead", PUBLISHED[0].1 / m.ms_per_task),
        ]);
    }
    println!("{t}");
    println!(
        "slots {}, {} measurement(s) each, fresh state DB per measurement, every state change persisted.",
        settings.executor_slots, args.repeat
    );
    if let Some(peer) = airflow {
        let chain_sqlite = results.iter().find(|m| m.workload == "chain_40" && m.db == "sqlite");
        println!(
            "Airflow `dags test` (in-process, SQLite), same chain, this run: {peer:.1} ms/task{}",
            chain_sqlite.map(|m| format!(" = {:.0}× tmctl on SQLite", peer / m.ms_per_task)).unwrap_or_default()
        );
    }
    println!(
        "published per-task figures for a sequential chain: {}",
        PUBLISHED.iter().map(|(n, ms)| format!("{n} {ms} ms")).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// `tmctl bench --daemons 1,2,4`.
async fn run_daemons(args: &BenchArgs, list: &str) -> Result<()> {
    use crate::daemon::bench;
    let counts: Vec<usize> = list
        .split(',')
        .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .with_context(|| format!("--daemons `{list}` must be numbers like 1,2,4"))?;
    let mut rows = Vec::new();
    for n in counts {
        eprintln!("throughput: {n} daemon(s), {} runs ...", args.runs);
        rows.push(bench::throughput(&args.pg_url, n, args.runs).await?);
    }
    let latency = if args.ticks > 0 {
        eprintln!("cron latency: waiting for {} minute boundaries ...", args.ticks);
        bench::cron_latency(&args.pg_url, args.ticks).await?
    } else {
        Vec::new()
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "throughput": rows, "cron_latency_ms": latency }))?
        );
        return Ok(());
    }
    let base = rows.first().map(|r| r.attempts_per_s).unwrap_or(1.0);
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["daemons", "runs", "task attempts", "seconds", "attempts/s", "vs first"]);
    for r in &rows {
        t.add_row([
            r.daemons.to_string(),
            r.runs.to_string(),
            r.attempts.to_string(),
            format!("{:.2}", r.seconds),
            format!("{:.0}", r.attempts_per_s),
            format!("{:.2}x", r.attempts_per_s / base),
        ]);
    }
    println!("{t}");
    for (i, ms) in latency.iter().enumerate() {
        println!("cron tick {}: first task started {ms:.1} ms after the fire time", i + 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_have_the_promised_shape() {
        let c = chain(40).unwrap();
        assert_eq!(c.tasks.len(), 40);
        assert_eq!(c.upstream("t039"), ["t038"]);
        let w = wide_and_deep(20, 50).unwrap();
        assert_eq!(w.tasks.len(), 1000);
        assert_eq!(w.upstream("l05_049"), ["l04_000", "l04_049"]);
        assert!(w.upstream("l00_007").is_empty());
    }
}
