//! Data tests declared beside a gold model (`tests = [...]` in the DAG), dbt-style: each test
//! compiles to one SQL query that returns the failing rows of `{{ this }}` (the staged, not yet
//! published result). A test passes when the query returns no rows; a failing `error` test
//! blocks publication, a failing `warn` test is reported only.
//!
//! Syntax (one inline table per test; `name` and `severity = "error" | "warn"` on any of them):
//!
//! ```toml
//! tests = [
//!   { not_null = ["course_id", "round_id"] },          # or one column: not_null = "course_id"
//!   { unique = ["course_id", "round_id"] },            # the combination is unique
//!   { accepted_values = "round_length", values = ["9", "18", "27", "unknown"] },
//!   { accepted_range = "projected_rate", min = 0, max = 1 },   # inclusive unless inclusive = false
//!   { relationships = "course_id", to = "gold.dim_course", field = "course_id", severity = "warn" },
//!   { expression = "duration_sec >= 0" },              # rows where the expression is false fail
//!   { sql = "SELECT * FROM {{ this }} WHERE duration_sec < 0", name = "non_negative_duration" },
//! ]
//! ```

use std::fmt;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use super::GoldError;
use super::models::{is_identifier, model_reads, parse_query};
use crate::tasks::SettingError;

/// Test types, as written in the DAG.
pub const TEST_TYPES: &[&str] =
    &["not_null", "unique", "accepted_values", "accepted_range", "relationships", "expression", "sql"];

/// The placeholder for the staged result in custom SQL tests.
pub const THIS: &str = "{{ this }}";

/// How many failing rows a test result carries as a sample.
pub const SAMPLE_ROWS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A failure blocks publication and fails the task.
    Error,
    /// A failure is logged and reported; the result is still published.
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

/// A literal in `accepted_values`, `min` or `max`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Literal {
    fn sql(&self) -> String {
        match self {
            Literal::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Literal::Int(i) => i.to_string(),
            Literal::Float(f) => format!("{f:?}"),
            Literal::Bool(b) => b.to_string(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Literal::Text(_) => "string",
            Literal::Int(_) | Literal::Float(_) => "number",
            Literal::Bool(_) => "boolean",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TestKind {
    NotNull { columns: Vec<String> },
    Unique { columns: Vec<String> },
    AcceptedValues { column: String, values: Vec<Literal> },
    AcceptedRange { column: String, min: Option<Literal>, max: Option<Literal>, inclusive: bool },
    Relationships { columns: Vec<String>, to: String, fields: Vec<String> },
    Expression { expression: String },
    Sql { sql: String },
}

impl TestKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            TestKind::NotNull { .. } => "not_null",
            TestKind::Unique { .. } => "unique",
            TestKind::AcceptedValues { .. } => "accepted_values",
            TestKind::AcceptedRange { .. } => "accepted_range",
            TestKind::Relationships { .. } => "relationships",
            TestKind::Expression { .. } => "expression",
            TestKind::Sql { .. } => "sql",
        }
    }
}

/// One declared data test.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTest {
    pub name: String,
    pub severity: Severity,
    pub kind: TestKind,
}

fn quote(column: &str) -> String {
    format!("\"{column}\"")
}

fn quoted_list(columns: &[String]) -> String {
    columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
}

impl DataTest {
    /// Whether the test passing on the rows an incremental run writes (the rows of the partitions
    /// it replaces) and on the rows it leaves alone (tested when they were written) means it passes
    /// on the whole table, so an incremental run need not test the rest: the row-by-row tests, and
    /// `unique` over columns that include the whole incremental `key` (the partitions a changed
    /// key's old rows are in are always replaced, so a key cannot be both written and left alone).
    /// Not a free-form `sql` test, nor `unique` on other columns.
    pub fn holds_per_partition(&self, key: &[String]) -> bool {
        match &self.kind {
            TestKind::NotNull { .. }
            | TestKind::AcceptedValues { .. }
            | TestKind::AcceptedRange { .. }
            | TestKind::Relationships { .. }
            | TestKind::Expression { .. } => true,
            TestKind::Unique { columns } => key.iter().all(|k| columns.contains(k)),
            TestKind::Sql { .. } => false,
        }
    }

    /// The query returning the failing rows, with `this` as the tested table.
    pub fn sql(&self, this: &str) -> String {
        match &self.kind {
            TestKind::NotNull { columns } => {
                let cond = columns.iter().map(|c| format!("{} IS NULL", quote(c))).collect::<Vec<_>>().join(" OR ");
                format!("SELECT * FROM {this} WHERE {cond}")
            }
            TestKind::Unique { columns } => {
                let cols = quoted_list(columns);
                format!("SELECT {cols}, COUNT(*) AS n_records FROM {this} GROUP BY {cols} HAVING COUNT(*) > 1")
            }
            TestKind::AcceptedValues { column, values } => {
                let list = values.iter().map(Literal::sql).collect::<Vec<_>>().join(", ");
                let c = quote(column);
                format!("SELECT * FROM {this} WHERE {c} IS NOT NULL AND {c} NOT IN ({list})")
            }
            TestKind::AcceptedRange { column, min, max, inclusive } => {
                let c = quote(column);
                let (lt, gt) = if *inclusive { ("<", ">") } else { ("<=", ">=") };
                let mut conds = Vec::new();
                if let Some(min) = min {
                    conds.push(format!("{c} {lt} {}", min.sql()));
                }
                if let Some(max) = max {
                    conds.push(format!("{c} {gt} {}", max.sql()));
                }
                format!("SELECT * FROM {this} WHERE {}", conds.join(" OR "))
            }
            TestKind::Relationships { columns, to, fields } => relationships_sql(this, columns, to, fields, &[]),
            TestKind::Expression { expression } => format!("SELECT * FROM {this} WHERE NOT ({expression})"),
            TestKind::Sql { sql } => replace_this(sql, this),
        }
    }

    /// [`Self::sql`], except that a `relationships` test reads only the parent rows within the
    /// range of values the tested rows have in each column (their `MIN` and `MAX`, looked up
    /// first), as literals the parent's scan prunes files and row groups by: a daily run's test
    /// of the rows it writes then reads the few parent files of those rows, not the whole parent
    /// table. The failing rows are the same, since every tested value lies in its range.
    pub async fn sql_within_parent_bounds(&self, ctx: &SessionContext, this: &str) -> Result<String, DataFusionError> {
        let TestKind::Relationships { columns, to, fields } = &self.kind else { return Ok(self.sql(this)) };
        let extremes = columns.iter().map(|c| format!("MIN({0}), MAX({0})", quote(c))).collect::<Vec<_>>().join(", ");
        let batches = ctx.sql(&format!("SELECT {extremes} FROM {this}")).await?.collect().await?;
        let Some(row) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(self.sql(this)) };
        let mut bounds = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let lo = ScalarValue::try_from_array(row.column(2 * i), 0)?;
            let hi = ScalarValue::try_from_array(row.column(2 * i + 1), 0)?;
            bounds.push(sql_literal(&lo).zip(sql_literal(&hi)));
        }
        Ok(relationships_sql(this, columns, to, fields, &bounds))
    }

    /// Tables this test reads besides the tested one.
    pub fn reads(&self) -> Vec<String> {
        match &self.kind {
            TestKind::Relationships { to, .. } => vec![to.clone()],
            TestKind::Expression { .. } | TestKind::Sql { .. } => {
                let placeholder = "tm_staging.staged.this";
                model_reads(&self.sql(placeholder))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| t != placeholder)
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// The rows of `this` whose `columns` (none NULL) match no row of `to` in `fields`; with
/// `bounds` (SQL literals, in `columns`' order), only the parent rows whose `fields` lie within
/// them are looked at.
fn relationships_sql(
    this: &str,
    columns: &[String],
    to: &str,
    fields: &[String],
    bounds: &[Option<(String, String)>],
) -> String {
    let present = columns.iter().map(|c| format!("child.{} IS NOT NULL", quote(c))).collect::<Vec<_>>().join(" AND ");
    let mut parent: Vec<String> =
        columns.iter().zip(fields).map(|(c, f)| format!("parent.{} = child.{}", quote(f), quote(c))).collect();
    for (f, bound) in fields.iter().zip(bounds) {
        if let Some((lo, hi)) = bound {
            let f = quote(f);
            parent.push(format!("parent.{f} >= {lo} AND parent.{f} <= {hi}"));
        }
    }
    let parent = parent.join(" AND ");
    format!(
        "SELECT * FROM {this} AS child WHERE {present} AND NOT EXISTS (SELECT 1 FROM {to} AS parent WHERE {parent})"
    )
}

/// `value` as a SQL literal, for the types keys have (text, integers, dates); `None` for a NULL
/// or another type.
fn sql_literal(value: &ScalarValue) -> Option<String> {
    use ScalarValue as V;
    match value {
        V::Utf8(Some(s)) | V::LargeUtf8(Some(s)) | V::Utf8View(Some(s)) => Some(format!("'{}'", s.replace('\'', "''"))),
        V::Int8(Some(_))
        | V::Int16(Some(_))
        | V::Int32(Some(_))
        | V::Int64(Some(_))
        | V::UInt8(Some(_))
        | V::UInt16(Some(_))
        | V::UInt32(Some(_))
        | V::UInt64(Some(_)) => Some(value.to_string()),
        V::Date32(Some(days)) => {
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(719_163 + days)?;
            Some(format!("DATE '{date}'"))
        }
        _ => None,
    }
}

/// Replaces every `{{ this }}` (any spacing inside the braces) by `this`.
fn replace_this(sql: &str, this: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) if after[..close].trim() == "this" => {
                out.push_str(&rest[..open]);
                out.push_str(this);
                rest = &after[close + 2..];
            }
            _ => {
                out.push_str(&rest[..open + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses the `tests` setting, reporting every bad test (key `tests`).
pub fn parse_tests(value: &toml::Value) -> Result<Vec<DataTest>, Vec<SettingError>> {
    let Some(items) = value.as_array() else {
        return Err(vec![SettingError::new(
            "tests",
            format!(
                "`tests` must be an array of tests such as {{ unique = [\"course_id\"] }}, found {}",
                value.type_str()
            ),
        )]);
    };
    let mut errors = Vec::new();
    let mut tests: Vec<(usize, DataTest)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse_test(i + 1, item) {
            Ok(test) => {
                if let Some((first, _)) = tests.iter().find(|(_, t)| t.name == test.name) {
                    errors.push(SettingError::new(
                        "tests",
                        format!(
                            "`tests` #{}: the test name `{}` is already used by test #{first}; give one of them a `name`",
                            i + 1,
                            test.name,
                        ),
                    ));
                }
                tests.push((i + 1, test));
            }
            Err(mut more) => errors.append(&mut more),
        }
    }
    if errors.is_empty() { Ok(tests.into_iter().map(|(_, t)| t).collect()) } else { Err(errors) }
}

/// Keys a test of type `ty` accepts besides its type key, `name` and `severity`.
fn extra_keys(ty: &str) -> &'static [&'static str] {
    match ty {
        "accepted_values" => &["values"],
        "accepted_range" => &["min", "max", "inclusive"],
        "relationships" => &["to", "field"],
        _ => &[],
    }
}

fn parse_test(n: usize, item: &toml::Value) -> Result<DataTest, Vec<SettingError>> {
    let err = |label: &str, message: String| SettingError::new("tests", format!("`tests` #{n}{label}: {message}"));
    let Some(table) = item.as_table() else {
        return Err(vec![err(
            "",
            format!("a test must be a table such as {{ not_null = [\"course_id\"] }}, found {}", item.type_str()),
        )]);
    };
    let types: Vec<&str> = table.keys().map(String::as_str).filter(|k| TEST_TYPES.contains(k)).collect();
    let ty = match types.as_slice() {
        [ty] => *ty,
        [] => {
            let unknown: Vec<&str> = table
                .keys()
                .map(String::as_str)
                .filter(|k| !["name", "severity"].contains(k) && !extra_keys_any(k))
                .collect();
            let hint = match unknown.first() {
                Some(k) => match closest(k, TEST_TYPES.iter().copied()) {
                    Some(s) => format!("unknown test type `{k}`; did you mean `{s}`?"),
                    None => format!("unknown test type `{k}`"),
                },
                None => "no test type given".to_string(),
            };
            return Err(vec![err("", format!("{hint} (test types: {})", TEST_TYPES.join(", ")))]);
        }
        many => {
            let list = many.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(" and ");
            return Err(vec![err("", format!("{list} in one test; write one test per table"))]);
        }
    };
    let label = format!(" (`{ty}`)");
    let mut errors = Vec::new();
    for key in table.keys() {
        let key = key.as_str();
        if key != ty && key != "name" && key != "severity" && !extra_keys(ty).contains(&key) {
            let allowed: Vec<String> =
                ["name", "severity"].iter().chain(extra_keys(ty)).map(|k| format!("`{k}`")).collect();
            let hint = match closest(key, extra_keys(ty).iter().copied().chain(["name", "severity"])) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => String::new(),
            };
            errors.push(err(&label, format!("unknown key `{key}`{hint} (a `{ty}` test takes {})", allowed.join(", "))));
        }
    }
    let severity = match table.get("severity") {
        None => Some(Severity::Error),
        Some(toml::Value::String(s)) if s == "error" => Some(Severity::Error),
        Some(toml::Value::String(s)) if s == "warn" => Some(Severity::Warn),
        Some(other) => {
            errors.push(err(&label, format!("`severity` must be \"error\" or \"warn\", found {other}")));
            None
        }
    };
    let name = match table.get("name") {
        None => None,
        Some(toml::Value::String(s)) if is_identifier(s) => Some(s.clone()),
        Some(other) => {
            errors.push(err(
                &label,
                format!("`name` must be lowercase letters, digits and `_`, starting with a letter, found {other}"),
            ));
            None
        }
    };
    let value = &table[ty];
    let kind = match ty {
        "not_null" | "unique" => column_or_columns(value, ty)
            .map(|columns| if ty == "not_null" { TestKind::NotNull { columns } } else { TestKind::Unique { columns } }),
        "accepted_values" => {
            let column = column(value, ty);
            let values = match table.get("values") {
                None => Err("needs `values`, the list of accepted values, e.g. values = [\"9\", \"18\"]".to_string()),
                Some(v) => literal_list(v),
            };
            match (column, values) {
                (Ok(column), Ok(values)) => Ok(TestKind::AcceptedValues { column, values }),
                (Err(a), Err(b)) => Err(format!("{a}; {b}")),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        "accepted_range" => {
            let bound = |key: &str| match table.get(key) {
                None => Ok(None),
                Some(toml::Value::Integer(i)) => Ok(Some(Literal::Int(*i))),
                Some(toml::Value::Float(f)) if f.is_finite() => Ok(Some(Literal::Float(*f))),
                Some(other) => Err(format!("`{key}` must be a number, found {other}")),
            };
            let inclusive = match table.get("inclusive") {
                None => Ok(true),
                Some(toml::Value::Boolean(b)) => Ok(*b),
                Some(other) => Err(format!("`inclusive` must be true or false, found {other}")),
            };
            match (column(value, ty), bound("min"), bound("max"), inclusive) {
                (Ok(_), Ok(None), Ok(None), Ok(_)) => Err("needs `min`, `max` or both".to_string()),
                (Ok(column), Ok(min), Ok(max), Ok(inclusive)) => {
                    if let (Some(lo), Some(hi)) = (number(&min), number(&max))
                        && lo > hi
                    {
                        Err(format!("`min` ({lo}) is greater than `max` ({hi})"))
                    } else {
                        Ok(TestKind::AcceptedRange { column, min, max, inclusive })
                    }
                }
                (a, b, c, d) => {
                    Err([a.err(), b.err(), c.err(), d.err()].into_iter().flatten().collect::<Vec<_>>().join("; "))
                }
            }
        }
        "relationships" => {
            let cols = column_or_columns(value, ty);
            let to = match table.get("to") {
                None => Err("needs `to`, the referenced table, e.g. to = \"gold.dim_course\"".to_string()),
                Some(toml::Value::String(s)) if is_table_name(s) => Ok(s.clone()),
                Some(other) => Err(format!(
                    "`to` must name a table as `<namespace>.<table>` (e.g. \"gold.dim_course\"), found {other}"
                )),
            };
            let fields = match table.get("field") {
                None => Ok(None),
                Some(v) => column_or_columns(v, "field").map(Some),
            };
            match (cols, to, fields) {
                (Ok(columns), Ok(to), Ok(fields)) => {
                    let fields = fields.unwrap_or_else(|| columns.clone());
                    if fields.len() == columns.len() {
                        Ok(TestKind::Relationships { columns, to, fields })
                    } else {
                        Err(format!(
                            "`field` names {} column(s) but `relationships` names {}; they pair up in order",
                            fields.len(),
                            columns.len()
                        ))
                    }
                }
                (a, b, c) => Err([a.err(), b.err(), c.err()].into_iter().flatten().collect::<Vec<_>>().join("; ")),
            }
        }
        "expression" => match value.as_str() {
            Some(e) if !e.trim().is_empty() => {
                let probe = format!("SELECT * FROM t WHERE NOT ({e})");
                match parse_query("test", std::path::Path::new("test"), &probe) {
                    Ok(_) => Ok(TestKind::Expression { expression: e.to_string() }),
                    Err(_) => Err(format!("`expression` is not a valid SQL boolean expression: {e}")),
                }
            }
            _ => Err(format!("`expression` must be a SQL boolean expression string, found {value}")),
        },
        "sql" => match value.as_str() {
            Some(sql) if !replace_this(sql, "\u{0}").contains('\u{0}') => Err(format!(
                "the query must select from {THIS} (the staged result), e.g. \"SELECT * FROM {THIS} WHERE …\""
            )),
            Some(sql) => match parse_query("test", std::path::Path::new("test"), &replace_this(sql, "this_")) {
                Ok(_) => Ok(TestKind::Sql { sql: sql.to_string() }),
                Err(GoldError::BadSql { line, col, message, .. }) => {
                    Err(format!("the query does not parse at {line}:{col}: {message}"))
                }
                Err(e) => Err(e.to_string()),
            },
            None => Err(format!("`sql` must be a query string returning the failing rows, found {value}")),
        },
        _ => unreachable!("test types are listed in TEST_TYPES"),
    };
    let kind = kind.map_err(|m| errors.push(err(&label, m))).ok();
    match (kind, severity) {
        (Some(kind), Some(severity)) if errors.is_empty() => {
            let name = name.unwrap_or_else(|| default_name(n, &kind));
            Ok(DataTest { name, severity, kind })
        }
        _ => Err(errors),
    }
}

fn extra_keys_any(key: &str) -> bool {
    TEST_TYPES.iter().any(|t| extra_keys(t).contains(&key))
}

fn number(l: &Option<Literal>) -> Option<f64> {
    match l {
        Some(Literal::Int(i)) => Some(*i as f64),
        Some(Literal::Float(f)) => Some(*f),
        _ => None,
    }
}

fn is_table_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 2 && parts.iter().all(|p| is_identifier(p))
}

fn default_name(n: usize, kind: &TestKind) -> String {
    match kind {
        TestKind::NotNull { columns } => format!("not_null_{}", columns.join("_")),
        TestKind::Unique { columns } => format!("unique_{}", columns.join("_")),
        TestKind::AcceptedValues { column, .. } => format!("accepted_values_{column}"),
        TestKind::AcceptedRange { column, .. } => format!("accepted_range_{column}"),
        TestKind::Relationships { columns, to, .. } => {
            format!("relationships_{}_to_{}", columns.join("_"), to.replace('.', "_"))
        }
        TestKind::Expression { .. } => format!("expression_{n}"),
        TestKind::Sql { .. } => format!("sql_{n}"),
    }
}

fn column(value: &toml::Value, key: &str) -> Result<String, String> {
    match value.as_str() {
        Some(c) if is_identifier(c) => Ok(c.to_string()),
        _ => Err(format!("`{key}` must be one column name (lowercase letters, digits, `_`), found {value}")),
    }
}

/// A non-empty list of column names (a single string is a list of one).
fn column_or_columns(value: &toml::Value, key: &str) -> Result<Vec<String>, String> {
    let bad = || format!("`{key}` needs a column name or a non-empty list of column names, found {value}");
    match value {
        toml::Value::String(_) => column(value, key).map(|c| vec![c]),
        toml::Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(c) if is_identifier(c) => {
                        if out.iter().any(|o| o == c) {
                            return Err(format!("`{key}` names column `{c}` twice"));
                        }
                        out.push(c.to_string());
                    }
                    _ => return Err(bad()),
                }
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

fn literal_list(value: &toml::Value) -> Result<Vec<Literal>, String> {
    let bad = || format!("`values` must be a non-empty list of strings, numbers or booleans, found {value}");
    let items = value.as_array().filter(|a| !a.is_empty()).ok_or_else(bad)?;
    let mut out = Vec::new();
    for item in items {
        out.push(match item {
            toml::Value::String(s) => Literal::Text(s.clone()),
            toml::Value::Integer(i) => Literal::Int(*i),
            toml::Value::Float(f) if f.is_finite() => Literal::Float(*f),
            toml::Value::Boolean(b) => Literal::Bool(*b),
            _ => return Err(bad()),
        });
    }
    if out.iter().any(|l| l.kind() != out[0].kind()) {
        return Err(format!("`values` mixes types ({value}); use only strings, only numbers or only booleans"));
    }
    Ok(out)
}

/// The candidate closest to `word` by edit distance, if it looks like a typo of it.
pub(crate) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= limit || c.starts_with(word) && word.len() >= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Outcome of one test against the staged result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStatus {
    Pass,
    /// A `warn` test found failing rows (or could not run).
    Warn,
    /// An `error` test found failing rows (or could not run): blocks publication.
    Fail,
}

impl TestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Pass => "pass",
            TestStatus::Warn => "warn",
            TestStatus::Fail => "fail",
        }
    }
}

impl fmt::Display for TestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What running one test found.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    pub name: String,
    pub test_type: &'static str,
    pub severity: Severity,
    pub status: TestStatus,
    /// Rows the test query returned (`None` if it could not run).
    pub failing_rows: Option<u64>,
    /// Up to [`SAMPLE_ROWS`] failing rows as JSON objects.
    pub sample: Vec<serde_json::Value>,
    /// Why the test query could not run.
    pub error: Option<String>,
    /// The query that was run.
    pub sql: String,
}

impl TestOutcome {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "type": self.test_type,
            "severity": self.severity.as_str(),
            "status": self.status.as_str(),
            "failing_rows": self.failing_rows,
            "sample": self.sample,
        });
        if let Some(e) = &self.error {
            v["error"] = serde_json::Value::String(e.clone());
        }
        v
    }

    /// One line for logs and error messages.
    pub fn describe(&self) -> String {
        match (&self.error, self.failing_rows) {
            (Some(e), _) => format!("{} ({}): could not run: {e}", self.name, self.test_type),
            (None, Some(n)) => format!("{} ({}): {n} failing row(s)", self.name, self.test_type),
            (None, None) => format!("{} ({})", self.name, self.test_type),
        }
    }
}

/// Runs `tests` in order, each against the table `this` names for it in `ctx` (and, where
/// `within_bounds` says so, with the parent of a `relationships` test narrowed to the tested rows'
/// range: [`DataTest::sql_within_parent_bounds`]). A test whose query cannot run is an outcome of
/// its severity ("could not run: …"), except when the reason is `transient` (memory the models
/// running at once hold, I/O): then the run stops with that error, so the model's try fails as
/// retryable instead of being refused as if its data were wrong.
pub async fn run_tests(
    ctx: &SessionContext,
    tests: &[DataTest],
    this: impl Fn(&DataTest) -> String,
    within_bounds: impl Fn(&DataTest) -> bool,
    transient: impl Fn(&DataFusionError) -> bool,
) -> Result<Vec<TestOutcome>, DataFusionError> {
    let mut out = Vec::with_capacity(tests.len());
    for test in tests {
        let this = this(test);
        let sql =
            if within_bounds(test) { test.sql_within_parent_bounds(ctx, &this).await } else { Ok(test.sql(&this)) };
        let (sql, measured) = match sql {
            Ok(sql) => {
                let measured = measure(ctx, &sql).await;
                (sql, measured)
            }
            Err(e) => (test.sql(&this), Err(e)),
        };
        let measured = match measured {
            Err(e) if transient(&e) => return Err(e),
            other => other.map_err(|e| e.to_string()),
        };
        let failed_status = match test.severity {
            Severity::Error => TestStatus::Fail,
            Severity::Warn => TestStatus::Warn,
        };
        let outcome = match measured {
            Ok((0, _)) => TestOutcome {
                name: test.name.clone(),
                test_type: test.kind.type_name(),
                severity: test.severity,
                status: TestStatus::Pass,
                failing_rows: Some(0),
                sample: Vec::new(),
                error: None,
                sql,
            },
            Ok((n, sample)) => TestOutcome {
                name: test.name.clone(),
                test_type: test.kind.type_name(),
                severity: test.severity,
                status: failed_status,
                failing_rows: Some(n),
                sample,
                error: None,
                sql,
            },
            Err(e) => TestOutcome {
                name: test.name.clone(),
                test_type: test.kind.type_name(),
                severity: test.severity,
                status: failed_status,
                failing_rows: None,
                sample: Vec::new(),
                error: Some(e),
                sql,
            },
        };
        out.push(outcome);
    }
    Ok(out)
}

/// Counts the rows of `sql` and takes a sample of them.
async fn measure(ctx: &SessionContext, sql: &str) -> Result<(u64, Vec<serde_json::Value>), DataFusionError> {
    let count_sql = format!("SELECT COUNT(*) AS failing FROM ({sql}) AS failing_rows");
    let batches = ctx.sql(&count_sql).await?.collect().await?;
    let n = batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().map(|a| a.value(0)))
        .unwrap_or(0);
    if n == 0 {
        return Ok((0, Vec::new()));
    }
    let sample_sql = format!("SELECT * FROM ({sql}) AS failing_rows LIMIT {SAMPLE_ROWS}");
    let batches = ctx.sql(&sample_sql).await?.collect().await?;
    Ok((n.max(0) as u64, rows_as_json(&batches)))
}

/// Record batches as a list of JSON objects (NULLs kept as `null`).
pub fn rows_as_json(batches: &[RecordBatch]) -> Vec<serde_json::Value> {
    use datafusion::arrow::json::writer::{JsonArray, WriterBuilder};
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    if writer.write_batches(&refs).is_err() || writer.finish().is_err() {
        return Vec::new();
    }
    match serde_json::from_slice::<serde_json::Value>(&writer.into_inner()) {
        Ok(serde_json::Value::Array(rows)) => rows,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_test_that_runs_out_of_memory_stops_the_run_as_retryable_and_a_broken_one_fails_itself() {
        use std::sync::Arc;

        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::MemTable;
        use datafusion::execution::memory_pool::GreedyMemoryPool;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        use datafusion::prelude::SessionConfig;
        // A pool of a few bytes: any aggregate that needs memory is refused, as when the models
        // running at once hold the shared pool.
        let runtime =
            RuntimeEnvBuilder::new().with_memory_pool(Arc::new(GreedyMemoryPool::new(16))).build_arc().unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let keys =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..50_000))]).unwrap();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![keys]]).unwrap())).unwrap();
        let tests =
            parse_tests(&toml::Value::Array(vec![toml::from_str::<toml::Table>("unique = \"k\"").unwrap().into()]))
                .unwrap();
        let is_memory = |e: &DataFusionError| matches!(e.find_root(), DataFusionError::ResourcesExhausted(_));
        let err = run_tests(&ctx, &tests, |_| "t".into(), |_| false, is_memory).await.unwrap_err();
        assert!(matches!(err.find_root(), DataFusionError::ResourcesExhausted(_)), "{err}");

        // A test that cannot run for a reason of its own (a column the table lacks) is an outcome
        // of its severity, as before.
        let broken = parse_tests(&toml::Value::Array(vec![
            toml::from_str::<toml::Table>("not_null = \"nope\"").unwrap().into(),
        ]))
        .unwrap();
        let out = run_tests(&ctx, &broken, |_| "t".into(), |_| false, is_memory).await.unwrap();
        assert_eq!((out[0].status, out[0].failing_rows), (TestStatus::Fail, None));
        assert!(out[0].describe().contains("could not run"), "{}", out[0].describe());
    }

    #[test]
    fn this_is_replaced_with_any_spacing() {
        assert_eq!(replace_this("SELECT * FROM {{this}} JOIN {{  this }} x", "t"), "SELECT * FROM t JOIN t x");
        assert_eq!(replace_this("{{ other }}", "t"), "{{ other }}");
    }

    #[test]
    fn generated_sql() {
        let t = DataTest {
            name: "r".into(),
            severity: Severity::Error,
            kind: TestKind::AcceptedRange {
                column: "rate".into(),
                min: Some(Literal::Int(0)),
                max: Some(Literal::Float(1.0)),
                inclusive: true,
            },
        };
        assert_eq!(t.sql("s.t"), "SELECT * FROM s.t WHERE \"rate\" < 0 OR \"rate\" > 1.0");
    }

    #[tokio::test]
    async fn a_relationships_test_within_the_tested_rows_bounds_finds_the_same_orphans() {
        use std::sync::Arc;

        use datafusion::arrow::array::{ArrayRef, Date32Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::MemTable;
        let ctx = SessionContext::new();
        let table = |ids: &[&str], days: &[i32]| {
            let schema = Arc::new(Schema::new(vec![
                Field::new("round_id", DataType::Utf8, true),
                Field::new("day", DataType::Date32, true),
            ]));
            let columns: Vec<ArrayRef> =
                vec![Arc::new(StringArray::from(ids.to_vec())), Arc::new(Date32Array::from(days.to_vec()))];
            let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
        };
        // 20240 = 2025-06-01. The child's ids span r'5 (a quote sorts before digits) … r9.
        ctx.register_table("parent", table(&["r1", "r'5", "r2", "r3", "r8"], &[20240, 20241, 20242, 20243, 20250]))
            .unwrap();
        ctx.register_table("child", table(&["r2", "r'5", "r9"], &[20242, 20241, 20260])).unwrap();
        let tests = parse_tests(&toml::Value::Array(vec![
            toml::from_str::<toml::Table>("relationships = \"round_id\"\nto = \"public.parent\"").unwrap().into(),
            toml::from_str::<toml::Table>("relationships = \"day\"\nto = \"public.parent\"").unwrap().into(),
        ]))
        .unwrap();
        let bounded = tests[0].sql_within_parent_bounds(&ctx, "child").await.unwrap();
        assert!(bounded.ends_with("parent.\"round_id\" >= 'r''5' AND parent.\"round_id\" <= 'r9')"), "{bounded}");
        let bounded = tests[1].sql_within_parent_bounds(&ctx, "child").await.unwrap();
        assert!(
            bounded.ends_with("parent.\"day\" >= DATE '2025-06-02' AND parent.\"day\" <= DATE '2025-06-21')"),
            "{bounded}"
        );
        let never = |_: &DataFusionError| false;
        let plain = run_tests(&ctx, &tests, |_| "child".into(), |_| false, never).await.unwrap();
        let within = run_tests(&ctx, &tests, |_| "child".into(), |_| true, never).await.unwrap();
        for (p, w) in plain.iter().zip(&within) {
            assert_eq!(p.failing_rows, Some(1), "r9 and 2025-06-21 have no parent: {p:?}");
            assert_eq!((w.failing_rows, &w.sample), (p.failing_rows, &p.sample));
        }
        // No tested rows: nothing to bound, the plain query.
        ctx.register_table("empty", table(&[], &[])).unwrap();
        assert_eq!(tests[0].sql_within_parent_bounds(&ctx, "empty").await.unwrap(), tests[0].sql("empty"));
    }
}

/// The data-test outcome of one gold run, from the last try of each of its tasks: a model task's
/// output carries its `tests` (name, status); a try that failed on an error test carries it in
/// its error instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunTests {
    pub models: u64,
    pub pass: u64,
    pub warn: u64,
    pub failed: u64,
    /// `task: test` of every warned (marked `(warn)`) or failed test.
    pub failing: Vec<String>,
}

pub fn tests_of_run(attempts: &[crate::store::AttemptRow]) -> RunTests {
    let mut last: std::collections::BTreeMap<&str, &crate::store::AttemptRow> = Default::default();
    for a in attempts {
        if last.get(a.task_id.as_str()).is_none_or(|prev| prev.try_number <= a.try_number) {
            last.insert(&a.task_id, a);
        }
    }
    let mut out = RunTests::default();
    for (task, a) in &last {
        if let Some(o) = &a.output
            && o.get("tests").is_some()
        {
            out.models += 1;
            for t in o["tests"].as_array().into_iter().flatten() {
                let name = t["name"].as_str().unwrap_or("?");
                match t["status"].as_str() {
                    Some("pass") => out.pass += 1,
                    Some("warn") => {
                        out.warn += 1;
                        out.failing.push(format!("{task}: {name} (warn)"));
                    }
                    _ => {
                        out.failed += 1;
                        out.failing.push(format!("{task}: {name}"));
                    }
                }
            }
        } else if let Some(err) = &a.error
            && err.contains("test")
        {
            out.models += 1;
            out.failed += 1;
            out.failing.push(format!("{task}: {}", err.chars().take(160).collect::<String>()));
        }
    }
    out
}
