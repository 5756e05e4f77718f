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
mod dags;
mod db;
mod lake;
mod run;
mod runs;
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
    /// Iceberg table maintenance: expire old snapshots, remove orphan files (`--dry-run` first).
    #[command(subcommand)]
    Lake(lake::LakeCmd),
    /// State DB upkeep: delete old runs, tries, logs, sent alerts and backfill records.
    #[command(subcommand)]
    Db(db::DbCmd),
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
        Command::Dags(DagsCmd::Validate { paths }) => dags::validate(&settings, paths),
        Command::Dags(DagsCmd::List { json }) => dags::dags_list(&settings, json).await,
        Command::Dags(DagsCmd::Show { dag }) => dags::dags_show(&settings, &dag).await,
        Command::Dags(DagsCmd::Pause { dag }) => dags::set_paused(&settings, &dag, true).await,
        Command::Dags(DagsCmd::Unpause { dag }) => dags::set_paused(&settings, &dag, false).await,
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
        Command::Run(args) => run::run(&settings, args).await,
        Command::Backfill(args) => run::backfill_cmd(&settings, args).await,
        Command::Runs(RunsCmd::List { dag, limit, json }) => {
            runs::runs_list(&settings, dag.as_deref(), limit, json).await
        }
        Command::Runs(RunsCmd::Show { run_id, json }) => runs::runs_show(&settings, run_id, json).await,
        Command::Logs(args) => runs::logs(&settings, args).await,
        #[cfg(feature = "bench")]
        Command::Bench(args) => {
            crate::bench::run(&settings, args).await.map_err(|e| CliError::Failed(format!("{e:#}")))
        }
        Command::Generate(args) => crate::generate::run(args).map_err(|e| CliError::Failed(format!("{e:#}"))),
        Command::Query(args) => query(&settings, args).await,
        Command::Courses(cmd) => courses::run(&settings, cmd).await,
        Command::Lake(cmd) => lake::run(&settings, cmd).await,
        Command::Db(cmd) => db::run(&settings, cmd).await,
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

/// Mails (and posts to webhooks) the alerts of this process's runs before it exits, bounded by
/// `smtp.timeout` (and `alerts.webhook_timeout`); what is not sent stays in the outbox for a daemon
/// (each alert goes out once either way).
async fn flush_alerts(store: &Store, settings: &Settings, owner: &str, run_pks: &[i64]) {
    match crate::alerts::flush_run_webhooks(store, &settings.alerts, owner, run_pks).await {
        Ok(n) if n > 0 => eprintln!("alerts: {n} posted to webhooks"),
        Ok(_) => {}
        Err(e) => eprintln!("warning: webhook alerts failed ({e}); they stay in the outbox"),
    }
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
