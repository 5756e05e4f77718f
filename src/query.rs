//! `tmctl query`: SQL over the silver and gold Iceberg tables (DataFusion), with time travel by
//! snapshot id or timestamp, printed as a table, CSV or JSON. User SQL is read-only: only
//! SELECT/WITH/EXPLAIN/SHOW/DESCRIBE statements are accepted ([`check_read_only`]), and the plan
//! is run with [`read_only_options`] (no DDL, DML, COPY or SET), here and in the web UI.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{SetExpr, Statement as SqlStatement};

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
    check_read_only(&args.sql).map_err(QueryError::Usage)?;
    let lake = Lake::open(settings, store).await.map_err(|e| QueryError::Failed(e.to_string()))?;
    let ctx = lake.session(&opts).await.map_err(|e| QueryError::Usage(e.to_string()))?;
    let df = ctx
        .sql_with_options(&args.sql, read_only_options())
        .await
        .map_err(|e| QueryError::Usage(format!("query: {e}")))?;
    df.collect().await.map_err(|e| QueryError::Failed(format!("query failed: {e}")))
}

/// DataFusion's own guard for user SQL: no DDL (CREATE, DROP), no DML (INSERT, COPY), no
/// statements (SET, PREPARE).
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

const READ_ONLY: &str = "only SELECT, WITH, EXPLAIN, SHOW and DESCRIBE are allowed (SQL here is read-only)";

/// Refuses SQL that is not one read-only statement, naming what was found.
pub fn check_read_only(sql: &str) -> Result<(), String> {
    let statements = DFParser::parse_sql(sql).map_err(|e| format!("query: {e}"))?;
    if statements.len() != 1 {
        return Err(format!("query: give exactly one statement, found {}", statements.len()));
    }
    statements.iter().try_for_each(check_df_statement)
}

fn check_df_statement(s: &DfStatement) -> Result<(), String> {
    match s {
        DfStatement::Statement(s) => check_sql_statement(s),
        DfStatement::Explain(e) => check_df_statement(&e.statement),
        DfStatement::CopyTo(_) => Err(format!("query: COPY is refused; {READ_ONLY}")),
        DfStatement::CreateExternalTable(_) => Err(format!("query: CREATE EXTERNAL TABLE is refused; {READ_ONLY}")),
        DfStatement::Reset(_) => Err(format!("query: RESET is refused; {READ_ONLY}")),
    }
}

fn check_sql_statement(s: &SqlStatement) -> Result<(), String> {
    match s {
        SqlStatement::Query(q) => match q.body.as_ref() {
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                Err(format!("query: a data-changing statement inside WITH is refused; {READ_ONLY}"))
            }
            _ => Ok(()),
        },
        SqlStatement::Explain { statement, .. } => check_sql_statement(statement),
        SqlStatement::ExplainTable { .. } => Ok(()),
        other => {
            let text = other.to_string();
            let words: Vec<&str> = text.split_whitespace().take(2).collect();
            if words.first().is_some_and(|w| w.eq_ignore_ascii_case("SHOW")) {
                return Ok(());
            }
            let first = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
            let shown = match (first.as_str(), words.get(1)) {
                ("CREATE" | "DROP" | "ALTER", Some(w)) => format!("{first} {}", w.to_ascii_uppercase()),
                _ => first,
            };
            Err(format!("query: {shown} is refused; {READ_ONLY}"))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reading_statements_pass() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "DESCRIBE gold.fact_rounds",
            "(SELECT 1) UNION ALL (SELECT 2)",
        ] {
            assert_eq!(check_read_only(ok), Ok(()), "{ok}");
        }
        let refused = |sql: &str| check_read_only(sql).unwrap_err();
        assert_eq!(refused("COPY (SELECT 1) TO 'x.csv' STORED AS CSV"), format!("query: COPY is refused; {READ_ONLY}"));
        assert!(refused("EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'").starts_with("query: COPY is refused"));
        assert!(refused("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'").contains("CREATE EXTERNAL TABLE"));
        assert!(refused("INSERT INTO t VALUES (1)").starts_with("query: INSERT is refused"));
        assert!(refused("DROP TABLE gold.x").starts_with("query: DROP TABLE is refused"));
        assert!(refused("SET datafusion.execution.batch_size = 1").starts_with("query: SET is refused"));
        assert!(refused("SELECT 1; SELECT 2").contains("exactly one statement, found 2"));
    }
}
