//! `tmctl query`: SQL over the silver and gold Iceberg tables (DataFusion), with time travel by
//! snapshot id or timestamp, printed as a table, CSV or JSON.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::record_batch::RecordBatch;

use crate::config::Settings;
use crate::lake::{Lake, SessionOptions};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The SQL to run; tables are `silver.<table>` and `gold.<table>`.
    pub sql: String,
    /// Output format: table, csv or json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Read the table owning this snapshot as of it (time travel).
    #[arg(long, conflicts_with = "as_of")]
    pub snapshot: Option<i64>,
    /// Read every table as it was at this time (RFC 3339, or a date meaning its midnight UTC).
    #[arg(long)]
    pub as_of: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

fn parse_as_of(text: &str) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default());
    }
    Err(QueryError::Usage(format!(
        "--as-of `{text}` is not a time; use RFC 3339 (2025-01-31T12:00:00Z) or a date (2025-01-31)"
    )))
}

/// Runs the query and returns its batches.
pub async fn run_sql(settings: Arc<Settings>, store: Store, args: &QueryArgs) -> Result<Vec<RecordBatch>, QueryError> {
    let opts = match (args.snapshot, &args.as_of) {
        (Some(id), _) => SessionOptions::at_snapshot(id),
        (None, Some(t)) => SessionOptions::as_of(parse_as_of(t)?),
        (None, None) => SessionOptions::current(),
    };
    let lake = Lake::open(settings, store).await.map_err(|e| QueryError::Failed(e.to_string()))?;
    let ctx = lake.session(&opts).await.map_err(|e| QueryError::Usage(e.to_string()))?;
    let df = ctx.sql(&args.sql).await.map_err(|e| QueryError::Usage(format!("query: {e}")))?;
    df.collect().await.map_err(|e| QueryError::Failed(format!("query failed: {e}")))
}

/// Renders batches in `format`.
pub fn render(batches: &[RecordBatch], format: &str) -> Result<String, QueryError> {
    let fail = |e: datafusion::arrow::error::ArrowError| QueryError::Failed(e.to_string());
    match format {
        "table" => {
            let shown = datafusion::arrow::util::pretty::pretty_format_batches(batches).map_err(fail)?.to_string();
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            Ok(format!("{shown}\n({rows} row{})", if rows == 1 { "" } else { "s" }))
        }
        "csv" => {
            let mut out = Vec::new();
            {
                let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                for b in batches {
                    w.write(b).map_err(fail)?;
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        "json" => {
            let mut out = Vec::new();
            {
                let mut w = datafusion::arrow::json::ArrayWriter::new(&mut out);
                for b in batches {
                    w.write(b).map_err(fail)?;
                }
                w.finish().map_err(fail)?;
            }
            let text = String::from_utf8_lossy(&out).into_owned();
            Ok(if text.is_empty() { "[]".into() } else { text })
        }
        other => Err(QueryError::Usage(format!("--format `{other}` is not one of table, csv, json"))),
    }
}
