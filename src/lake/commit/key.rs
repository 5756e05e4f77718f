//! Run keys (what makes a commit recognisable on a re-run), partition values and the outcome of
//! a commit.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{PROP_DAG, PROP_FINGERPRINT, PROP_LOGICAL_DATE, PROP_RUN_KEY, PROP_SCOPE, PROP_TASK};

/// Who commits: identifies one logical unit of work so a resumed attempt can see its commit
/// already happened (see the module docs for the exact rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunKey {
    pub dag: String,
    pub task: String,
    pub logical_date: NaiveDate,
    /// Narrows the key when one task commits several times to one table (e.g. `course_id=abc`).
    pub scope: Option<String>,
    /// A digest of the inputs; a commit of the same key with other inputs is not "already done".
    pub fingerprint: Option<String>,
    /// More `tm.*` summary properties the commit records (e.g. `tm.changes-snapshot-id`); not part
    /// of what makes a commit recognisable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<(String, String)>,
}

impl RunKey {
    pub fn new(dag: impl Into<String>, task: impl Into<String>, logical_date: NaiveDate) -> RunKey {
        RunKey {
            dag: dag.into(),
            task: task.into(),
            logical_date,
            scope: None,
            fingerprint: None,
            recorded: Vec::new(),
        }
    }

    pub fn with_scope(mut self, scope: impl Into<String>) -> RunKey {
        self.scope = Some(scope.into());
        self
    }

    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> RunKey {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// Records `key = value` in the commit's snapshot summary as well.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> RunKey {
        self.recorded.push((key.into(), value.into()));
        self
    }

    /// `dag/task/YYYY-MM-DD[/scope]`, the value of `tm.run-key`.
    pub fn key(&self) -> String {
        let mut k = format!("{}/{}/{}", self.dag, self.task, self.logical_date.format("%Y-%m-%d"));
        if let Some(scope) = &self.scope {
            k.push('/');
            k.push_str(scope);
        }
        k
    }

    pub(super) fn properties(&self) -> HashMap<String, String> {
        let mut p = HashMap::from([
            (PROP_RUN_KEY.to_string(), self.key()),
            (PROP_DAG.to_string(), self.dag.clone()),
            (PROP_TASK.to_string(), self.task.clone()),
            (PROP_LOGICAL_DATE.to_string(), self.logical_date.format("%Y-%m-%d").to_string()),
        ]);
        if let Some(s) = &self.scope {
            p.insert(PROP_SCOPE.to_string(), s.clone());
        }
        if let Some(f) = &self.fingerprint {
            p.insert(PROP_FINGERPRINT.to_string(), f.clone());
        }
        p.extend(self.recorded.iter().cloned());
        p
    }

    /// Whether a snapshot summary records this very unit of work.
    pub(super) fn is_recorded_in(&self, summary: &HashMap<String, String>) -> bool {
        summary.get(PROP_RUN_KEY) == Some(&self.key())
            && (self.fingerprint.is_none() || summary.get(PROP_FINGERPRINT) == self.fingerprint.as_ref())
    }
}

impl std::fmt::Display for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// One value of an identity partition column.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionValue {
    Null,
    Bool(bool),
    Int(i64),
    String(String),
    Date(NaiveDate),
}

impl From<&str> for PartitionValue {
    fn from(v: &str) -> Self {
        PartitionValue::String(v.to_string())
    }
}
impl From<String> for PartitionValue {
    fn from(v: String) -> Self {
        PartitionValue::String(v)
    }
}
impl From<i64> for PartitionValue {
    fn from(v: i64) -> Self {
        PartitionValue::Int(v)
    }
}
impl From<i32> for PartitionValue {
    fn from(v: i32) -> Self {
        PartitionValue::Int(v.into())
    }
}
impl From<bool> for PartitionValue {
    fn from(v: bool) -> Self {
        PartitionValue::Bool(v)
    }
}
impl From<NaiveDate> for PartitionValue {
    fn from(v: NaiveDate) -> Self {
        PartitionValue::Date(v)
    }
}
impl<T: Into<PartitionValue>> From<Option<T>> for PartitionValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(PartitionValue::Null, Into::into)
    }
}

impl std::fmt::Display for PartitionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionValue::Null => f.write_str("null"),
            PartitionValue::Bool(b) => write!(f, "{b}"),
            PartitionValue::Int(i) => write!(f, "{i}"),
            PartitionValue::String(s) => f.write_str(s),
            PartitionValue::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

/// One partition of an identity-partitioned table: a value per partition column, e.g.
/// `PartitionValues::new().with("course_id", "abc").with("ingest_date", date)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionValues {
    pub(super) values: Vec<(String, PartitionValue)>,
}

impl PartitionValues {
    pub fn new() -> PartitionValues {
        PartitionValues::default()
    }

    pub fn with(mut self, column: impl Into<String>, value: impl Into<PartitionValue>) -> PartitionValues {
        self.values.push((column.into(), value.into()));
        self
    }

    pub fn get(&self, column: &str) -> Option<&PartitionValue> {
        self.values.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
}

impl std::fmt::Display for PartitionValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.values.iter().map(|(c, v)| format!("{c}={v}")).collect();
        f.write_str(&parts.join("/"))
    }
}

/// What a commit did. `already_committed`: the table's current snapshot already carried the run
/// key, nothing was written, and the numbers describe that earlier commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitOutcome {
    pub table: String,
    pub run_key: String,
    pub snapshot_id: i64,
    pub previous_snapshot_id: Option<i64>,
    pub added_files: u64,
    pub deleted_files: u64,
    pub added_records: u64,
    pub deleted_records: u64,
    pub already_committed: bool,
    /// Compare-and-swap attempts it took (1 unless another writer committed meanwhile).
    pub attempts: u32,
}
