//! The `tmctl` command line (clap). Each sub-command loads settings, opens the state DB and calls
//! into `dag`, `executor`, `backfill` or `store`; this module only parses, prints and picks exit
//! codes: 0 success, 1 a run or task failed, 2 bad input (arguments, DAG files, unknown names),
//! 3 bad configuration.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use tokio::sync::mpsc;

use crate::backfill::{self, Action, Outcome, Reprocess};
use crate::config::{ConfigError, Overrides, Settings};
use crate::dag::{self, Dag, Diagnostic, schedule};
use crate::executor::{Event, Executor, Prepared, prepare_run};
use crate::store::{RunFilter, RunState, RunType, Store, TaskState};
use crate::timefmt;

mod courses;
mod daemon;
mod users;

#[derive(Parser, Debug)]
#[command(name = "tmctl", version, about = "Orchestrator for the Tagmarshal pace-of-play lakehouse", long_about = None)]
pub struct Cli {
    /// State directory: SQLite state DB, buckets, logs.
    #[arg(long, global = true, env = "TM_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Directory with the DAG files.
    #[arg(long, global = true, env = "TM_DAGS_DIR", value_name = "DIR")]
    dags: Option<PathBuf>,
    /// Settings file applied over the embedded config/local.toml.
    #[arg(long, global = true, env = "TM_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List, show, validate, pause and unpause DAGs.
    #[command(subcommand)]
    Dags(DagsCmd),
    /// Run one DAG run for a date and wait for it; exit code 0 only if it succeeded.
    Run(RunArgs),
    /// Run a DAG for every schedule slot in a date range (handed to `tmctl serve` when one is
    /// running; Ctrl-C then only stops following it), or look after a backfill.
    Backfill(BackfillArgs),
    /// Print the argon2 hash of a password (read from stdin) for `web.password_hash`.
    HashPassword,
    /// Users of the web UI and API, each with a role: viewer, operator or admin.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// API tokens of users (`Authorization: Bearer`): shown once, stored hashed.
    #[command(subcommand)]
    Tokens(users::TokensCmd),
    /// Run the daemon: scheduler, run workers, backfills, alert e-mail and the HTTP API.
    Serve {
        /// Address to listen on (default: web.bind, 127.0.0.1:8080; port 0 picks a free port).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
    /// List and inspect DAG runs.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Print the log of one try of a task.
    Logs(LogsArgs),
    /// Measure per-task orchestration overhead on SQLite and PostgreSQL (built with
    /// `--features bench`; see benches/README.md).
    #[cfg(feature = "bench")]
    Bench(crate::bench::BenchArgs),
    /// Write realistic synthetic round exports (CSV and JSON) for demos and tests.
    Generate(crate::generate::GenerateArgs),
    /// Run SQL over the silver and gold tables (with time travel).
    Query(crate::query::QueryArgs),
    /// Validate files and land them in the landing bucket (bronze).
    Ingest(crate::bronze::IngestArgs),
    /// The whole lakehouse on the embedded defaults: generate, ingest, backfill silver and gold.
    Demo(crate::demo::DemoArgs),
    /// Check the configuration end to end: state DB, Iceberg catalog, every bucket (write, read,
    /// delete) and SMTP; exit code 1 if any check fails.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Show the effective settings.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Course profiles (`<dags>/courses.toml`) and the courses seen in the data.
    #[command(subcommand)]
    Courses(courses::CoursesCmd),
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Every setting's effective value and where it came from (default, file, env, flag);
    /// secrets are shown as `***`.
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum DagsCmd {
    /// Every DAG with its schedule, time zone and pause flag.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A DAG's settings and tasks in topological order with their dependencies.
    Show { dag: String },
    /// Check DAG files (default: the DAGs directory) and report every problem with file:line:col.
    Validate { paths: Vec<PathBuf> },
    /// Stop scheduling new runs of a DAG.
    Pause { dag: String },
    /// Resume scheduling a paused DAG.
    Unpause { dag: String },
    /// The next fire times of a DAG's schedule (UTC, RFC 3339, one per line).
    Next {
        dag: String,
        /// How many fire times.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Start strictly after this instant (RFC 3339, e.g. 2025-03-09T00:00:00-06:00); default now.
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    dag: String,
    /// Logical date (YYYY-MM-DD, a local date in the DAG's time zone).
    #[arg(long)]
    date: String,
    /// Run configuration as a JSON object; overrides the DAG's params.
    #[arg(long)]
    conf: Option<String>,
    /// Rebuild the lakehouse tables of this run even where the same inputs were already committed
    /// (sets the DAG's `full_refresh` param; the gold and silver DAGs declare it).
    #[arg(long)]
    full_refresh: bool,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct BackfillArgs {
    #[command(subcommand)]
    action: Option<BackfillCmd>,
    #[arg(required = true)]
    dag: Option<String>,
    /// First date, inclusive (YYYY-MM-DD).
    #[arg(long, required = true)]
    from: Option<String>,
    /// Last date, inclusive (YYYY-MM-DD).
    #[arg(long, required = true)]
    to: Option<String>,
    /// Run it in this process even when a daemon is running.
    #[arg(long)]
    in_process: bool,
    /// What to do with dates that already have a run: none, failed, completed.
    #[arg(long, default_value = "none")]
    reprocess: String,
    /// Runs at once (default: the DAG's max_active_runs).
    #[arg(long)]
    max_active_runs: Option<u32>,
    /// Print the dates and what would happen to each; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Newest date first.
    #[arg(long)]
    run_backwards: bool,
    /// Run configuration (JSON object) for every run.
    #[arg(long)]
    conf: Option<String>,
    /// Most schedule slots the range may hold (a guard against typos like --to 9999-12-31).
    #[arg(long, default_value_t = backfill::DEFAULT_MAX_SLOTS)]
    max_slots: usize,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum BackfillCmd {
    /// A backfill's state and per-date outcomes.
    Status {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Follow a backfill until it ends (Ctrl-C stops following, not the backfill).
    Follow { id: i64 },
    /// Start no more dates; runs in flight finish.
    Pause { id: i64 },
    /// Continue a paused backfill.
    Resume { id: i64 },
    /// Skip the dates not started yet; runs in flight finish.
    Cancel { id: i64 },
}

#[derive(Subcommand, Debug)]
enum RunsCmd {
    /// Recent runs, newest logical date first.
    List {
        #[arg(long)]
        dag: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One run with its task instances.
    Show {
        run_id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct LogsArgs {
    /// Run id (the number `tmctl runs list` shows).
    run_id: i64,
    task: String,
    /// Try number (default: the latest).
    #[arg(long = "try")]
    try_number: Option<u32>,
}

/// A failure that ends the command, with its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad input: exit 2.
    Usage(String),
    /// Bad configuration: exit 3.
    Config(ConfigError),
    /// The work ran and failed: exit 1 (the message may be empty when already printed).
    Failed(String),
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Config(_) => 3,
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<crate::executor::ExecError> for CliError {
    fn from(e: crate::executor::ExecError) -> Self {
        match e {
            crate::executor::ExecError::Invalid(m) | crate::executor::ExecError::InFlight(m) => CliError::Usage(m),
            other => CliError::Failed(other.to_string()),
        }
    }
}

type CliResult = Result<(), CliError>;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides { config_file: cli.config.clone(), home: cli.home.clone(), dags_dir: cli.dags.clone() };
    if let Command::Config(ConfigCmd::Show { json }) = &cli.command {
        return config_show(overrides, *json);
    }
    let settings = match Settings::load(&overrides) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    // Whatever a library put into a log line or an error text, no configured secret is printed.
    let masker = crate::secrets::Masker::from_settings(&settings);
    init_console_log(&settings.log_level, &masker);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                CliError::Usage(m) => eprintln!("error: {}", masker.mask(m)),
                CliError::Config(c) => eprintln!("error: {}", masker.mask(&c.to_string())),
                CliError::Failed(m) if !m.is_empty() => eprintln!("error: {}", masker.mask(m)),
                CliError::Failed(_) => {}
            }
            ExitCode::from(e.code())
        }
    }
}

/// `tmctl config show`: loads the settings as every command does and prints each with its source.
fn config_show(mut overrides: Overrides, json: bool) -> ExitCode {
    let env: std::collections::BTreeMap<String, String> =
        std::env::vars().filter(|(k, _)| k.starts_with("TM_")).collect();
    // clap fills --home/--dags/--config from TM_HOME/TM_DAGS_DIR/TM_CONFIG; say "env" for those.
    let from_env =
        |v: &Option<PathBuf>, var: &str| v.as_ref().is_some_and(|p| env.get(var) == Some(&p.display().to_string()));
    if from_env(&overrides.home, "TM_HOME") {
        overrides.home = None;
    }
    if from_env(&overrides.dags_dir, "TM_DAGS_DIR") {
        overrides.dags_dir = None;
    }
    let shown = match Settings::explain(&overrides, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    if json {
        return match print_json(&shown) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    let mut t = table();
    t.set_header(["setting", "value", "source", "environment variable"]);
    for e in &shown {
        t.add_row([e.key.clone(), e.value.clone(), e.source.clone(), e.env.clone()]);
    }
    println!("{t}");
    ExitCode::SUCCESS
}

fn init_console_log(level: &str, masker: &crate::secrets::Masker) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let writer = crate::logcapture::MaskedStderr(masker.clone());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).try_init();
}

async fn dispatch(command: Command, settings: Arc<Settings>) -> CliResult {
    match command {
        Command::Dags(DagsCmd::Validate { paths }) => validate(&settings, paths),
        Command::Dags(DagsCmd::List { json }) => dags_list(&settings, json).await,
        Command::Dags(DagsCmd::Show { dag }) => dags_show(&settings, &dag).await,
        Command::Dags(DagsCmd::Pause { dag }) => set_paused(&settings, &dag, true).await,
        Command::Dags(DagsCmd::Unpause { dag }) => set_paused(&settings, &dag, false).await,
        Command::Dags(DagsCmd::Next { dag, count, after }) => {
            daemon::dags_next(&find_dag(&settings, &dag)?, count, after.as_deref())
        }
        Command::Serve { bind } => daemon::serve(settings.clone(), bind).await,
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| CliError::Failed(format!("cannot read stdin: {e}")))?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(CliError::Usage(
                    "give the password on stdin (e.g. `read -s p; echo \"$p\" | tmctl hash-password`)".into(),
                ));
            }
            println!("{}", crate::web::auth::hash_password(password).map_err(CliError::Failed)?);
            Ok(())
        }
        Command::Users(cmd) => users::users_cmd(&settings, cmd).await,
        Command::Tokens(cmd) => users::tokens_cmd(&settings, cmd).await,
        Command::Backfill(BackfillArgs { action: Some(cmd), .. }) => daemon::backfill_action(&settings, cmd).await,
        Command::Run(args) => run(&settings, args).await,
        Command::Backfill(args) => backfill_cmd(&settings, args).await,
        Command::Runs(RunsCmd::List { dag, limit, json }) => runs_list(&settings, dag.as_deref(), limit, json).await,
        Command::Runs(RunsCmd::Show { run_id, json }) => runs_show(&settings, run_id, json).await,
        Command::Logs(args) => logs(&settings, args).await,
        #[cfg(feature = "bench")]
        Command::Bench(args) => {
            crate::bench::run(&settings, args).await.map_err(|e| CliError::Failed(format!("{e:#}")))
        }
        Command::Generate(args) => crate::generate::run(args).map_err(|e| CliError::Failed(format!("{e:#}"))),
        Command::Query(args) => query(&settings, args).await,
        Command::Courses(cmd) => courses::run(&settings, cmd).await,
        Command::Ingest(args) => match crate::bronze::run_cli(&settings, args).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(CliError::Failed(String::new())),
            Err(e) => match e.downcast_ref::<crate::bronze::BronzeError>() {
                Some(crate::bronze::BronzeError::Input { .. } | crate::bronze::BronzeError::InvalidCourse(_)) => {
                    Err(CliError::Usage(format!("{e:#}")))
                }
                _ => Err(CliError::Failed(format!("{e:#}"))),
            },
        },
        Command::Config(ConfigCmd::Show { json }) => {
            // Handled in `main` (it needs the overrides, not the loaded settings).
            let _ = json;
            Ok(())
        }
        Command::Doctor { json } => {
            let checks = crate::doctor::run(settings.clone()).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&checks).map_err(|e| CliError::Failed(e.to_string()))?);
            } else {
                println!("{}", crate::doctor::render(&checks));
            }
            match checks.iter().filter(|c| c.status == crate::doctor::Status::Failed).count() {
                0 => Ok(()),
                n => Err(CliError::Failed(format!("{n} check(s) failed"))),
            }
        }
        Command::Demo(args) => {
            let store = open_store(&settings).await?;
            match crate::demo::run(settings.clone(), store, args).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(CliError::Failed("some runs failed; see the tables above".into())),
                Err(e) => Err(CliError::Failed(format!("{e:#}"))),
            }
        }
    }
}

pub async fn open_store(settings: &Settings) -> Result<Store, CliError> {
    Store::connect(&settings.database_url, settings.database_max_connections)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))
}

/// Loads the DAGs directory; warns (once, on stderr) about files with problems.
fn load_dags(settings: &Settings) -> Result<Vec<Dag>, CliError> {
    let dir = &settings.dags_dir;
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "DAGs directory {} does not exist (set --dags or TM_DAGS_DIR)",
            dir.display()
        )));
    }
    let (dags, problems) = dag::load_dir(dir);
    if !problems.is_empty() {
        let mut files: Vec<_> = problems.iter().map(|p| p.file.display().to_string()).collect();
        files.dedup();
        eprintln!(
            "warning: {} problem(s) in {}; those DAGs are not loaded (see `tmctl dags validate`)",
            problems.len(),
            files.join(", ")
        );
    }
    Ok(dags)
}

fn find_dag(settings: &Settings, id: &str) -> Result<Dag, CliError> {
    let dags = load_dags(settings)?;
    let names: Vec<String> = dags.iter().map(|d| d.id.clone()).collect();
    dags.into_iter().find(|d| d.id == id).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown DAG `{id}` in {} (DAGs: {})",
            settings.dags_dir.display(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ))
    })
}

fn parse_conf(conf: Option<&str>) -> Result<serde_json::Value, CliError> {
    match conf {
        None => Ok(serde_json::json!({})),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(v),
            Ok(other) => Err(CliError::Usage(format!("--conf must be a JSON object, found {other}"))),
            Err(e) => Err(CliError::Usage(format!("--conf is not valid JSON: {e}"))),
        },
    }
}

fn date_arg(flag: &str, value: &str) -> Result<NaiveDate, CliError> {
    timefmt::parse_date(flag, value).map_err(CliError::Usage)
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t
}

/// Mails the alerts of this process's runs before it exits, bounded by `smtp.timeout`; what is
/// not sent stays in the outbox for a daemon (each alert goes out once either way).
async fn flush_alerts(store: &Store, settings: &Settings, owner: &str, run_pks: &[i64]) {
    match crate::alerts::flush_run_alerts(store, &settings.smtp, owner, run_pks).await {
        Ok(r) if r.sent > 0 || r.left > 0 => {
            eprintln!("alerts: {} e-mailed, {} left in the outbox for `tmctl serve` to send", r.sent, r.left)
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: alert e-mail failed ({e}); the alerts stay in the outbox"),
    }
}

/// A backfill's per-date outcomes as a table: date, outcome, run, reason.
fn outcome_table<'a>(rows: impl Iterator<Item = (NaiveDate, &'a str, Option<i64>, Option<&'a str>)>) -> Table {
    let mut t = table();
    t.set_header(["date", "outcome", "run", "reason"]);
    for (ds, outcome, run_pk, reason) in rows {
        t.add_row([
            ds.to_string(),
            outcome.to_string(),
            run_pk.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            reason.unwrap_or_default().to_string(),
        ]);
    }
    t
}

fn print_json(value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

// ---- dags ---------------------------------------------------------------------------------------

fn validate(settings: &Settings, paths: Vec<PathBuf>) -> CliResult {
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
        ids.push((d.id, d.file));
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

fn count_toml(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "toml")).count())
        .unwrap_or(0)
}

async fn dags_list(settings: &Settings, json: bool) -> CliResult {
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

async fn dags_show(settings: &Settings, id: &str) -> CliResult {
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

async fn set_paused(settings: &Settings, id: &str, paused: bool) -> CliResult {
    find_dag(settings, id)?;
    let store = open_store(settings).await?;
    store.set_paused(id, paused).await?;
    println!("DAG `{id}` is now {}", if paused { "paused" } else { "unpaused" });
    Ok(())
}

// ---- run ----------------------------------------------------------------------------------------

/// Cancels the executor on Ctrl-C (running tries are killed and recorded as failed).
fn cancel_on_ctrl_c(exec: &Executor) {
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

async fn run(settings: &Arc<Settings>, args: RunArgs) -> CliResult {
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

// ---- backfill -----------------------------------------------------------------------------------

async fn backfill_cmd(settings: &Arc<Settings>, args: BackfillArgs) -> CliResult {
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

// ---- query --------------------------------------------------------------------------------------

async fn query(settings: &Arc<Settings>, args: crate::query::QueryArgs) -> CliResult {
    use crate::query::QueryError;
    let store = open_store(settings).await?;
    let to_cli = |e: QueryError| match e {
        QueryError::Usage(m) => CliError::Usage(m),
        QueryError::Failed(m) => CliError::Failed(m),
    };
    let batches = crate::query::run_sql(settings.clone(), store, &args).await.map_err(to_cli)?;
    println!("{}", crate::query::render(&batches, &args.format).map_err(to_cli)?);
    Ok(())
}

// ---- runs and logs ------------------------------------------------------------------------------

async fn runs_list(settings: &Settings, dag: Option<&str>, limit: i64, json: bool) -> CliResult {
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

fn duration(start: Option<chrono::DateTime<chrono::Utc>>, end: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => timefmt::human_duration((e - s).to_std().unwrap_or_default()),
        (Some(_), None) => "running".into(),
        _ => String::new(),
    }
}

async fn get_run(store: &Store, run_id: i64) -> Result<crate::store::RunRow, CliError> {
    store
        .get_run(run_id)
        .await?
        .ok_or_else(|| CliError::Usage(format!("run {run_id} does not exist (see `tmctl runs list`)")))
}

async fn runs_show(settings: &Settings, run_id: i64, json: bool) -> CliResult {
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

async fn logs(settings: &Settings, args: LogsArgs) -> CliResult {
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
