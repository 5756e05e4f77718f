//! `tmctl demo`: the whole lakehouse on the embedded defaults, in one command — generate synthetic
//! round exports, ingest them (bronze), backfill silver and then gold over the generated days,
//! and print what landed where: rows per layer, quarantined rows by reason, data-test results.
//! Everything goes through the same code paths as the DAGs and the CLI.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

use crate::backfill::{self, Outcome, Reprocess};
use crate::bronze::{self, IngestRequest};
use crate::config::Settings;
use crate::executor::Executor;
use crate::generate::{self, GenerateArgs, LakeShape};
use crate::lake::SessionOptions;
use crate::lake::buckets::Buckets;
use crate::store::{RunFilter, Store};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Where the generated exports go (default: <home>/demo-input).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The lake to generate, as `tmctl generate` takes it.
    #[command(flatten)]
    pub shape: LakeShape,
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t
}

/// Runs the demo; returns whether every step succeeded.
pub async fn run(settings: Arc<Settings>, store: Store, args: DemoArgs) -> Result<bool> {
    let start = NaiveDate::parse_from_str(&args.shape.start_date, "%Y-%m-%d")
        .with_context(|| format!("--start-date `{}` is not a date (YYYY-MM-DD)", args.shape.start_date))?;
    if args.shape.days == 0 {
        bail!("--days must be at least 1");
    }
    let end = start + chrono::Duration::days(args.shape.days as i64 - 1);
    let out = args.out.clone().unwrap_or_else(|| settings.home.join("demo-input"));

    section(&format!(
        "1/4 generate: {} courses × {} days × {} rounds into {}",
        args.shape.courses,
        args.shape.days,
        args.shape.rounds,
        out.display()
    ));
    let mut g = GenerateArgs::new(&out);
    g.shape = args.shape.clone();
    let generated = tokio::task::spawn_blocking(move || generate::generate(&g)).await??;
    let bytes: u64 = generated.files.iter().map(|f| f.bytes).sum();
    println!("{} files, {:.1} MB", generated.files.len(), bytes as f64 / 1e6);

    section("2/4 bronze: ingest into the landing zone");
    let buckets = Buckets::open(&settings)?;
    let req = IngestRequest { paths: vec![out.clone()], ..Default::default() };
    let report = bronze::ingest(&settings, &store, &buckets, &req, None, &|_| {}).await?;
    let c = report.counts;
    println!(
        "{} accepted, {} skipped (already landed), {} rejected, {} refused; {} records landed",
        c.accepted, c.skipped, c.rejected, c.refused, report.rows_landed
    );
    for f in report.files.iter().filter(|f| f.status == crate::store::IngestStatus::Rejected) {
        println!("  rejected {}: {}", f.filename, f.reason.as_deref().unwrap_or(""));
    }

    let (dags, problems) = crate::dag::load_dir(&settings.dags_dir);
    if !problems.is_empty() {
        bail!(
            "DAG files have problems; run `tmctl dags validate`:\n{}",
            problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")
        );
    }
    let exec = Executor::new(store.clone(), settings.clone());
    let mut ok = true;
    for (step, dag_id) in [("3/4", "silver"), ("4/4", "gold")] {
        let dag = dags
            .iter()
            .find(|d| d.id == dag_id)
            .with_context(|| format!("no DAG `{dag_id}` in {}", settings.dags_dir.display()))?;
        section(&format!("{step} backfill {dag_id} from {start} to {end}"));
        let req = backfill::Request {
            from: start,
            to: end,
            reprocess: Reprocess::Failed,
            max_active_runs: Some(1),
            run_backwards: false,
            conf: serde_json::json!({}),
            max_slots: usize::MAX,
        };
        let planned = backfill::plan(&store, dag, &req).await?;
        let report = backfill::execute(&exec, dag, &req, planned, &|d| {
            println!(
                "  {} {}{}",
                d.ds,
                d.outcome.as_str(),
                d.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            );
        })
        .await?;
        ok &= report.count(Outcome::Failed) == 0;
    }

    section("summary");
    let lake = exec.lake().get().await?;
    let ctx = lake.session(&SessionOptions::current()).await?;
    let count = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let batches = ctx.sql(&sql).await?.collect().await?;
            let n =
                batches.first().filter(|b| b.num_rows() > 0).map(|b| b.column(0).as_primitive::<Int64Type>().value(0));
            Ok::<i64, datafusion::error::DataFusionError>(n.unwrap_or(0))
        }
    };
    let mut t = table();
    t.set_header(["layer", "table", "rows"]);
    t.add_row(["bronze".to_string(), "landing files (records)".into(), report.rows_landed.to_string()]);
    let silver_rows = count("SELECT count(*) FROM silver.fact_telemetry_event".into()).await.unwrap_or(0);
    t.add_row(["silver".to_string(), "fact_telemetry_event".into(), silver_rows.to_string()]);
    let mut gold_tables: Vec<String> = lake.list_tables("gold").await?.iter().map(|i| i.name().to_string()).collect();
    gold_tables.sort();
    for name in &gold_tables {
        let n = count(format!("SELECT count(*) FROM gold.{name}")).await.unwrap_or(0);
        t.add_row(["gold".to_string(), name.clone(), n.to_string()]);
    }
    println!("{t}");

    // Quarantined rows and data tests, from the run summaries of this backfill's dates.
    let summaries = store.list_summaries(None, 10_000).await?;
    let mut quarantined: BTreeMap<String, u64> = BTreeMap::new();
    let mut latest_silver: BTreeMap<NaiveDate, &crate::store::SummaryRow> = BTreeMap::new();
    for s in summaries.iter().filter(|s| s.kind == "silver.transform" && s.ds >= start && s.ds <= end) {
        latest_silver.entry(s.ds).or_insert(s);
    }
    for s in latest_silver.values() {
        if let Some(q) = s.summary["quarantined"].as_object() {
            for (reason, n) in q {
                *quarantined.entry(reason.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
            }
        }
    }
    let mut t = table();
    t.set_header(["quarantined rows (silver)", "rows"]);
    if quarantined.is_empty() {
        t.add_row(["(none)".to_string(), "0".into()]);
    }
    for (reason, n) in &quarantined {
        t.add_row([reason.clone(), n.to_string()]);
    }
    println!("{t}");

    // The data tests of the gold run of the last date (from its tries' outputs).
    let gold_runs = store.list_runs(&RunFilter { dag_id: Some("gold"), state: None, limit: 1_000 }).await?;
    let tests = match gold_runs.iter().find(|r| r.ds == end) {
        Some(run) => crate::gold::datatests::tests_of_run(&store.list_run_attempts(run.id).await?),
        None => Default::default(),
    };
    println!(
        "data tests on {end}: {} passed, {} warned, {} failed across {} models",
        tests.pass, tests.warn, tests.failed, tests.models
    );
    for failing in &tests.failing {
        println!("  {failing} (see `tmctl runs list --dag gold`)");
    }

    section("next");
    println!(
        "tmctl query \"SELECT course_id, count(*) AS rounds, round(avg(avg_pace_sec)) AS avg_pace_s FROM gold.fact_rounds GROUP BY course_id ORDER BY course_id\""
    );
    println!("tmctl runs list --dag silver    # every run; `tmctl logs RUN TASK` for a try's log");
    println!("tmctl query --format json \"SELECT * FROM gold.data_quality_overview\"");
    println!("tmctl serve                     # then http://127.0.0.1:8080/lakehouse/course");
    Ok(ok)
}
