//! Gold: SQL models over `silver.fact_telemetry_event`, each written as one Iceberg table in
//! namespace `gold`, by a full refresh or incrementally (the partitions holding the keys that
//! changed on the run date). This module owns the model files (`models`: parsing, what a query
//! reads and writes), the data tests declared next to each model (`datatests`), the write-audit-
//! publish run of one model (`wap`) and what an incremental run recomputes (`incremental`). The `gold.model` task kind (`tasks::gold`) is a
//! thin wrapper around it; `lake` provides the sessions and the commits.

pub mod datatests;
pub mod incremental;
pub mod lake;
pub mod models;
pub mod wap;

use std::path::PathBuf;

pub use datatests::{DataTest, Severity, TestKind, TestOutcome, TestStatus};
pub use models::{Lineage, ModelSpec, lineage, model_reads, model_writes};
pub use wap::{MemoryPublisher, ModelRun, Published, Publisher, Refresh, memory_session, run_model};

/// Everything that can go wrong with a gold model, naming the model (and file or test).
#[derive(Debug, thiserror::Error)]
pub enum GoldError {
    /// The model's SQL file cannot be read.
    #[error("model `{model}`: cannot read `{}`: {source}", file.display())]
    ReadSql { model: String, file: PathBuf, source: std::io::Error },
    /// The model's SQL does not parse or is not a single query (`file:line:col: message`).
    #[error("model `{model}`: {}:{line}:{col}: {message}", file.display())]
    BadSql { model: String, file: PathBuf, line: u64, col: u64, message: String },
    /// DataFusion could not plan the model's query (unknown table or column, type error…):
    /// the SQL or its inputs are wrong, retrying will not help.
    #[error("model `{model}`: cannot plan `{}`: {message}", file.display())]
    Plan { model: String, file: PathBuf, message: String },
    /// Executing the model's query failed.
    #[error("model `{model}`: query failed: {message}")]
    Execute { model: String, message: String, transient: bool },
    /// The result lacks a column named in `partition_by` or `unique_key`.
    #[error(
        "model `{model}`: column `{column}` of partition_by / incremental_key is not in the result (columns: {columns})"
    )]
    PartitionColumn { model: String, column: String, columns: String },
    /// One or more error-severity data tests failed; nothing was published.
    #[error("model `{model}`: {} error-severity data test(s) failed, table `{table}` not published: {}", failed.len(), failed.join("; "))]
    TestsFailed { model: String, table: String, failed: Vec<String> },
    /// Staging or committing the result failed.
    #[error("model `{model}`: publishing `{table}` failed: {message}")]
    Publish { model: String, table: String, message: String, transient: bool },
    /// An incremental run's result no longer fits the existing table (a column was added or its
    /// partitioning changed): the model must be rebuilt in full (dbt's `on_schema_change`).
    #[error("model `{model}`: the result no longer fits table `{table}`: {message}")]
    Unfit { model: String, table: String, message: String },
}

impl GoldError {
    /// Whether retrying the same attempt may succeed (I/O, catalog conflicts); bad SQL and
    /// failed data tests are not retried.
    pub fn is_transient(&self) -> bool {
        match self {
            GoldError::Execute { transient, .. } | GoldError::Publish { transient, .. } => *transient,
            _ => false,
        }
    }
}
