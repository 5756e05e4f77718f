//! Gold model files: a `gold.model` task's settings (`sql`, `table`, `partition_by`, `tests`)
//! compiled into a [`ModelSpec`], the SQL checked to be exactly one query, and the tables it reads
//! found by walking the sqlparser AST ([`model_reads`]) so that DAG edges can be inferred.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use datafusion::sql::sqlparser::ast::{Ident, ObjectName, Query, Statement, TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

use super::GoldError;
use super::datatests::{self, DataTest};
use crate::tasks::SettingError;

/// The namespace every model writes to.
pub const GOLD_NAMESPACE: &str = "gold";

/// Kind-specific keys of `gold.model`.
pub const KEYS: &[&str] =
    &["sql", "table", "partition_by", "tests", "materialized", "incremental_key", "changes", "latest_only"];

/// How a model's table is refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Materialized {
    /// Every run rebuilds the whole table (`materialized = "table"`, the default).
    Table,
    /// Every run recomputes only the keys that changed on its date and rewrites the partitions
    /// they were and are in (`materialized = "incremental"`, see [`Incremental`]).
    Incremental(Incremental),
}

/// An incremental model: `incremental_key` names the entity whose rows are recomputed together
/// (`[course_id, round_id]`: a round, whether it has one row or one per hole); `changes` (a
/// table the model reads) says which keys changed:
/// - `<ns>.<table>.<date column>` (dated): on run date D, the keys with `<date column> = D` there,
///   plus the keys the model's own table holds in partitions whose date (the last `partition_by`
///   column) is D;
/// - `<ns>.<table>` (by snapshot): the keys of every row in the data files `changes` added or
///   removed since the snapshot of it the model's last commit recorded (`tm.changes-snapshot-id`),
///   whatever the date: old and new versions of every row any commit replaced in between. For a
///   model whose key is not the entity `changes` is incremental by, e.g. a summary per (course,
///   day of play) over per-round facts.
///
/// The run recomputes those keys from inputs narrowed to them, and replaces every partition they
/// were or now are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incremental {
    pub incremental_key: Vec<String>,
    /// `<ns>.<table>` of `changes`.
    pub changes_table: String,
    /// The date column of `changes_table`; `None` when `changes` is by snapshot.
    pub changes_column: Option<String>,
    /// The model's own date column: the last of `partition_by` (dated `changes` only).
    pub date_column: String,
    /// `latest_only = true`: the model reads only each key's latest version (the rows dated as
    /// `changes` dates the key), so inputs that have a `date_column` column are also narrowed to
    /// the dates `changes` gives the changed keys, which prunes every other date's partitions.
    /// Off for a model that must see every version (silver_round_latest itself).
    pub latest_only: bool,
}

/// One validated gold model.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The table name inside `gold` (`fact_rounds`); also the model's name in messages.
    pub table: String,
    /// The SQL file as written in the DAG (`gold/fact_rounds.sql`), for messages.
    pub sql_path: String,
    /// The SQL file resolved against the DAG's directory.
    pub sql_file: PathBuf,
    /// The query text.
    pub sql: String,
    /// The DAG file's directory (where `courses.toml`, read as `seed.course_profiles`, lives).
    pub dag_dir: PathBuf,
    /// Tables the query reads (`silver.fact_telemetry_event`, `gold.fact_rounds`).
    pub reads: Vec<String>,
    pub partition_by: Vec<String>,
    pub tests: Vec<DataTest>,
    pub materialized: Materialized,
}

impl ModelSpec {
    /// `gold.<table>`.
    pub fn qualified_table(&self) -> String {
        format!("{GOLD_NAMESPACE}.{}", self.table)
    }

    /// The incremental settings, if the model is incremental.
    pub fn incremental(&self) -> Option<&Incremental> {
        match &self.materialized {
            Materialized::Incremental(i) => Some(i),
            Materialized::Table => None,
        }
    }

    /// Every table the model, its data tests and its `changes` read, sorted, without duplicates.
    pub fn lineage(&self) -> Lineage {
        let mut other_reads = BTreeSet::new();
        for t in &self.tests {
            other_reads.extend(t.reads());
        }
        if let Some(inc) = self.incremental() {
            other_reads.insert(inc.changes_table.clone());
        }
        other_reads.remove(&self.qualified_table());
        for read in &self.reads {
            other_reads.remove(read);
        }
        Lineage {
            writes: self.qualified_table(),
            reads: self.reads.clone(),
            other_reads: other_reads.into_iter().collect(),
        }
    }

    /// Compiles a task's settings; reports every bad setting. `dag_dir` resolves `sql`.
    pub fn from_settings(settings: &toml::Table, dag_dir: &Path) -> Result<ModelSpec, Vec<SettingError>> {
        let mut errors = Vec::new();
        let sql_path = match settings.get("sql") {
            None => {
                errors.push(SettingError::new(
                    "sql",
                    "`gold.model` needs `sql`, the model's file relative to the DAG file, e.g. sql = \"gold/fact_rounds.sql\"",
                ));
                None
            }
            Some(toml::Value::String(s)) if s.ends_with(".sql") => Some(s.clone()),
            Some(toml::Value::String(s)) => {
                errors.push(SettingError::new("sql", format!("`sql` must name a `.sql` file, found \"{s}\"")));
                None
            }
            Some(other) => {
                errors.push(SettingError::new("sql", format!("`sql` must be a string, found {}", other.type_str())));
                None
            }
        };
        let table = match settings.get("table") {
            None => {
                sql_path.as_deref().and_then(|p| Path::new(p).file_stem()).map(|s| s.to_string_lossy().into_owned())
            }
            Some(toml::Value::String(s)) => Some(s.strip_prefix("gold.").unwrap_or(s).to_string()),
            Some(other) => {
                errors
                    .push(SettingError::new("table", format!("`table` must be a string, found {}", other.type_str())));
                None
            }
        };
        if let Some(t) = &table
            && !is_identifier(t)
        {
            let key = if settings.contains_key("table") { "table" } else { "sql" };
            errors.push(SettingError::new(
                key,
                format!(
                    "the table name `{t}` must be lowercase letters, digits and `_`, starting with a letter \
                     (it is written as `gold.<table>`)"
                ),
            ));
        }
        let partition_by = match settings.get("partition_by") {
            None => Vec::new(),
            Some(value) => column_list("partition_by", value, &mut errors),
        };
        let tests = match settings.get("tests") {
            None => Vec::new(),
            Some(value) => match datatests::parse_tests(value) {
                Ok(tests) => tests,
                Err(mut more) => {
                    errors.append(&mut more);
                    Vec::new()
                }
            },
        };
        let incremental_key = match settings.get("incremental_key") {
            None => Vec::new(),
            Some(value) => column_list("incremental_key", value, &mut errors),
        };
        let changes = match settings.get("changes") {
            None => None,
            Some(toml::Value::String(s)) => {
                let parts: Vec<&str> = s.split('.').collect();
                match parts.as_slice() {
                    [ns, table] if crate::lake::iceberg::NAMESPACES.contains(ns) && is_identifier(table) => {
                        Some((s.clone(), None))
                    }
                    [ns, table, column] if is_identifier(ns) && is_identifier(table) && is_identifier(column) => {
                        Some((format!("{ns}.{table}"), Some(column.to_string())))
                    }
                    _ => {
                        errors.push(SettingError::new(
                            "changes",
                            format!("`changes` must be `<ns>.<table>.<date column>` (the keys dated the run date there), e.g. \"gold.silver_round_latest.latest_ingest_date\", or `<ns>.<table>` of silver or gold (the keys of the rows its commits changed since the model's last run), found \"{s}\""),
                        ));
                        None
                    }
                }
            }
            Some(other) => {
                errors.push(SettingError::new(
                    "changes",
                    format!("`changes` must be a string, found {}", other.type_str()),
                ));
                None
            }
        };
        let latest_only = match settings.get("latest_only") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                errors.push(SettingError::new(
                    "latest_only",
                    format!("`latest_only` must be true or false, found {other}"),
                ));
                false
            }
        };
        let materialized = match settings.get("materialized").map(|v| (v, v.as_str())) {
            None | Some((_, Some("table"))) => {
                for key in ["incremental_key", "changes", "latest_only"] {
                    if settings.contains_key(key) {
                        errors.push(SettingError::new(
                            key,
                            format!("`{key}` only applies to materialized = \"incremental\""),
                        ));
                    }
                }
                Some(Materialized::Table)
            }
            Some((_, Some("incremental"))) => {
                if incremental_key.is_empty() && !errors.iter().any(|e| e.key == "incremental_key") {
                    errors.push(SettingError::new(
                        "incremental_key",
                        "an incremental model needs `incremental_key`, the columns naming one entity, e.g. incremental_key = [\"course_id\", \"round_id\"]",
                    ));
                }
                if changes.is_none() && !settings.contains_key("changes") {
                    errors.push(SettingError::new(
                        "changes",
                        "an incremental model needs `changes = \"<ns>.<table>.<date column>\"` (the input whose rows of the run date name the keys to recompute) or `changes = \"<ns>.<table>\"` (the input whose changed rows since the model's last run name them)",
                    ));
                }
                if partition_by.is_empty() {
                    errors.push(SettingError::new(
                        "partition_by",
                        "an incremental model needs `partition_by`: the partitions a run replaces (with a dated `changes`, ending with its date column, the ingest date its rows were computed from), e.g. partition_by = [\"course_id\", \"ingest_date\"]",
                    ));
                }
                match (changes, partition_by.last()) {
                    (None, _) | (_, None) => None,
                    (Some((changes_table, None)), Some(last)) => {
                        if latest_only {
                            errors.push(SettingError::new(
                                "latest_only",
                                "`latest_only` needs a dated `changes` (`<ns>.<table>.<date column>`): it narrows inputs to the dates that names",
                            ));
                        }
                        Some(Materialized::Incremental(Incremental {
                            incremental_key: incremental_key.clone(),
                            changes_table,
                            changes_column: None,
                            date_column: last.clone(),
                            latest_only,
                        }))
                    }
                    (Some((changes_table, Some(changes_column))), Some(date_column)) => {
                        Some(Materialized::Incremental(Incremental {
                            incremental_key: incremental_key.clone(),
                            changes_table,
                            changes_column: Some(changes_column),
                            date_column: date_column.clone(),
                            latest_only,
                        }))
                    }
                }
            }
            Some((v, _)) => {
                errors.push(SettingError::new(
                    "materialized",
                    format!("`materialized` must be \"table\" or \"incremental\", found {v}"),
                ));
                None
            }
        };
        let (Some(sql_path), Some(table), Some(materialized)) = (sql_path, table, materialized) else {
            return Err(errors);
        };
        let sql_file = dag_dir.join(&sql_path);
        let loaded = match std::fs::read_to_string(&sql_file) {
            Ok(sql) => match check_sql(&table, &sql_file, &sql_path, &sql) {
                Ok(reads) => Some((sql, reads)),
                Err(e) => {
                    errors.push(SettingError::new("sql", e));
                    None
                }
            },
            Err(e) => {
                errors.push(SettingError::new("sql", format!("`sql`: cannot read `{}`: {e}", sql_file.display())));
                None
            }
        };
        match loaded {
            Some((sql, reads)) if errors.is_empty() => {
                if let Materialized::Incremental(inc) = &materialized
                    && inc.changes_table == format!("gold.{table}")
                {
                    return Err(vec![SettingError::new(
                        "changes",
                        format!(
                            "`changes` names the model's own table `{}`; name a table it is computed from",
                            inc.changes_table
                        ),
                    )]);
                }
                Ok(ModelSpec {
                    table,
                    sql_path,
                    sql_file,
                    sql,
                    dag_dir: dag_dir.to_path_buf(),
                    reads,
                    partition_by,
                    tests,
                    materialized,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A setting that lists column names (`partition_by`, `incremental_key`).
fn column_list(key: &str, value: &toml::Value, errors: &mut Vec<SettingError>) -> Vec<String> {
    let toml::Value::Array(items) = value else {
        errors.push(SettingError::new(
            key,
            format!("`{key}` must be an array of column names, found {}", value.type_str()),
        ));
        return Vec::new();
    };
    let mut cols = Vec::new();
    for item in items {
        match item.as_str() {
            Some(c) if is_identifier(c) => cols.push(c.to_string()),
            _ => errors
                .push(SettingError::new(key, format!("`{key}` entries must be lowercase column names, found {item}"))),
        }
    }
    cols
}

/// Checks a model's SQL: one SELECT/WITH query reading only qualified tables, never its own.
/// Returns the tables read; errors are `` `sql`: file:line:col: message ``.
fn check_sql(table: &str, file: &Path, shown: &str, sql: &str) -> Result<Vec<String>, String> {
    let query = parse_query(table, file, sql).map_err(|e| match e {
        GoldError::BadSql { line, col, message, .. } => format!("`sql`: {shown}:{line}:{col}: {message}"),
        other => other.to_string(),
    })?;
    let reads = reads_of(&query);
    for name in &reads {
        if !name.contains('.') {
            return Err(format!(
                "`sql`: {shown}: reads `{name}`, which is neither a CTE nor a qualified table; \
                 name tables `silver.<table>` or `gold.<table>`"
            ));
        }
        if *name == format!("{GOLD_NAMESPACE}.{table}") {
            return Err(format!("`sql`: {shown}: the model reads its own table `{name}`"));
        }
    }
    Ok(reads)
}

/// Parses `sql` as exactly one query (SELECT, WITH …, VALUES, set operations).
pub fn parse_query(model: &str, file: &Path, sql: &str) -> Result<Query, GoldError> {
    let bad = |line: u64, col: u64, message: String| GoldError::BadSql {
        model: model.to_string(),
        file: file.to_path_buf(),
        line,
        col,
        message,
    };
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| {
        let (line, col, message) = parser_error_position(&e, sql);
        bad(line, col, message)
    })?;
    let mut statements = statements.into_iter();
    match (statements.next(), statements.next()) {
        (None, _) => Err(bad(1, 1, "the file holds no query; a model is one SELECT or WITH … SELECT".into())),
        (Some(Statement::Query(query)), None) => Ok(*query),
        (Some(Statement::Query(_)), Some(_)) => {
            Err(bad(1, 1, "the file holds more than one statement; a model is one SELECT or WITH … SELECT".into()))
        }
        (Some(other), _) => {
            let first = other.to_string();
            let word = first.split_whitespace().next().unwrap_or_default().to_uppercase();
            Err(bad(1, 1, format!("a model must be one SELECT or WITH … SELECT query, found a {word} statement")))
        }
    }
}

/// Splits sqlparser's "… at Line: 3, Column: 7" suffix into a position; an error at the end of
/// the input (which sqlparser does not locate) is placed just after the last character of `sql`.
fn parser_error_position(e: &ParserError, sql: &str) -> (u64, u64, String) {
    let text = match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.clone(),
        ParserError::RecursionLimitExceeded => return (1, 1, "the query nests too deeply".to_string()),
    };
    if let Some(at) = text.rfind(" at Line: ") {
        let tail = &text[at + " at Line: ".len()..];
        if let Some((line, col)) = tail.split_once(", Column: ")
            && let (Ok(line), Ok(col)) = (line.trim().parse(), col.trim().parse())
        {
            return (line, col, text[..at].to_string());
        }
    }
    if text.ends_with("found: EOF") {
        let trimmed = sql.trim_end();
        let line = trimmed.lines().count().max(1) as u64;
        let col = trimmed.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
        return (line, col, text);
    }
    (1, 1, text)
}

/// The tables `sql` reads, qualified as written (`silver.fact_telemetry_event`), lowercased
/// unless quoted, sorted and without duplicates. CTE names in scope are not tables; table
/// functions (`generate_series(1, 3)`) are not tables. Errors are parse errors.
pub fn model_reads(sql: &str) -> Result<Vec<String>, String> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| {
        let (line, col, message) = parser_error_position(&e, sql);
        format!("{line}:{col}: {message}")
    })?;
    let mut reads = BTreeSet::new();
    for statement in &statements {
        let mut walker = Reads::default();
        let _ = statement.visit(&mut walker);
        reads.extend(walker.found);
    }
    Ok(reads.into_iter().collect())
}

fn reads_of(query: &Query) -> Vec<String> {
    let mut walker = Reads::default();
    let _ = query.visit(&mut walker);
    walker.found.into_iter().collect()
}

/// The table a `gold.model` task writes, from its settings alone (`table`, else the `sql` file
/// stem), as `gold.<table>`. `None` when neither is usable.
pub fn model_writes(settings: &toml::Table) -> Option<String> {
    let table = match settings.get("table") {
        Some(toml::Value::String(s)) => s.strip_prefix("gold.").unwrap_or(s).to_string(),
        Some(_) => return None,
        None => Path::new(settings.get("sql")?.as_str()?).file_stem()?.to_string_lossy().into_owned(),
    };
    Some(format!("{GOLD_NAMESPACE}.{table}"))
}

/// What a model task writes and reads, for inferring DAG edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// `gold.<table>`.
    pub writes: String,
    /// Tables the model's query reads.
    pub reads: Vec<String>,
    /// Other tables the task reads: those its data tests read (relationships targets, custom SQL
    /// tests) and its `changes` table when the query does not read it (a model over another
    /// per-round model whose changes the round table says). The model must run after them too, or
    /// its tests or its changed keys would come from a missing or stale table.
    pub other_reads: Vec<String>,
}

/// The lineage of a `gold.model` task from its settings (reads the SQL file).
pub fn lineage(settings: &toml::Table, dag_dir: &Path) -> Result<Lineage, String> {
    ModelSpec::from_settings(settings, dag_dir).map(|m| m.lineage()).map_err(|errors| {
        errors.into_iter().map(|e| format!("`{}`: {}", e.key, e.message)).collect::<Vec<_>>().join("; ")
    })
}

/// `[a-z][a-z0-9_]*`: what a gold table or column name may be.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// AST walker: a stack of CTE scopes (one per query, its WITH names) and the tables found.
#[derive(Default)]
struct Reads {
    scopes: Vec<Vec<String>>,
    found: BTreeSet<String>,
}

fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| part.as_ident().map(normalize).unwrap_or_else(|| part.to_string()))
        .collect::<Vec<_>>()
        .join(".")
}

impl Visitor for Reads {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        // A WITH's names are visible in its body and in its own CTE bodies (the later ones, and
        // the CTE itself when RECURSIVE); a query planner rejects forward references anyway.
        let names = query
            .with
            .as_ref()
            .map(|w| w.cte_tables.iter().map(|cte| normalize(&cte.alias.name)).collect())
            .unwrap_or_default();
        self.scopes.push(names);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, args: None, .. } = factor {
            let name = object_name(name);
            let is_cte = !name.contains('.') && self.scopes.iter().any(|s| s.contains(&name));
            if !is_cte {
                self.found.insert(name);
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_skip_ctes_and_table_functions() {
        let sql = "WITH a AS (SELECT * FROM silver.t), b AS (SELECT * FROM a JOIN gold.x ON true) \
                   SELECT * FROM b, generate_series(1, 3)";
        assert_eq!(model_reads(sql).unwrap(), vec!["gold.x", "silver.t"]);
    }

    #[test]
    fn cte_scope_ends_with_its_query() {
        // `a` inside the scalar subquery is a CTE; `a` in the outer query is not (no WITH there).
        let sql = "SELECT (WITH a AS (SELECT 1) SELECT * FROM a) FROM a";
        assert_eq!(model_reads(sql).unwrap(), vec!["a"]);
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let e = parse_query("m", Path::new("m.sql"), "SELECT a\nFROM t\nWHERE a = ) ").unwrap_err();
        assert!(matches!(e, GoldError::BadSql { line: 3, col: 11, .. }), "{e}");
        // sqlparser does not locate errors at the end of the input: they go after its last character.
        let e = parse_query("m", Path::new("m.sql"), "SELECT a\nFROM t WHERE\n  (\n").unwrap_err();
        assert!(matches!(e, GoldError::BadSql { line: 3, col: 4, .. }), "{e}");
    }

    /// Settings of a model reading `silver.t` (a temporary SQL file) plus `extra` TOML lines.
    fn settings_errors(extra: &str) -> Result<ModelSpec, Vec<SettingError>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.sql"), "SELECT course_id, round_id, ingest_date FROM silver.t").unwrap();
        let settings: toml::Table = format!("sql = \"m.sql\"\n{extra}").parse().unwrap();
        ModelSpec::from_settings(&settings, dir.path())
    }

    fn keys_of(errors: Vec<SettingError>) -> Vec<String> {
        errors.into_iter().map(|e| format!("{}: {}", e.key, e.message)).collect()
    }

    #[test]
    fn incremental_settings_compile() {
        let spec = settings_errors(
            "materialized = \"incremental\"\nincremental_key = [\"course_id\", \"round_id\"]\n\
             changes = \"silver.t.ingest_date\"\npartition_by = [\"course_id\", \"ingest_date\"]\nlatest_only = true",
        )
        .unwrap();
        let inc = spec.incremental().unwrap();
        assert_eq!(inc.incremental_key, ["course_id", "round_id"]);
        assert_eq!((inc.changes_table.as_str(), inc.changes_column.as_deref()), ("silver.t", Some("ingest_date")));
        assert_eq!(inc.date_column, "ingest_date");
        assert!(inc.latest_only);
        // By snapshot: `<ns>.<table>`, any partitioning.
        let spec = settings_errors(
            "materialized = \"incremental\"\nincremental_key = [\"course_id\", \"ingest_date\"]\n\
             changes = \"silver.t\"\npartition_by = [\"course_id\"]",
        )
        .unwrap();
        let inc = spec.incremental().unwrap();
        assert_eq!((inc.changes_table.as_str(), inc.changes_column.as_deref()), ("silver.t", None));
        assert!(!inc.latest_only);
        assert_eq!(settings_errors("").unwrap().materialized, Materialized::Table);
    }

    #[test]
    fn bad_incremental_settings_name_the_key() {
        let e = keys_of(settings_errors("materialized = \"view\"").unwrap_err());
        assert!(e[0].starts_with("materialized: ") && e[0].contains("\"view\""), "{e:?}");
        let e = keys_of(settings_errors("materialized = \"incremental\"").unwrap_err());
        assert!(e.iter().any(|m| m.starts_with("incremental_key: ")), "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("changes: ")), "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("partition_by: ")), "{e:?}");
        let e = keys_of(
            settings_errors(
                "materialized = \"incremental\"\nincremental_key = [\"round_id\"]\n\
                 changes = \"gold.m.ingest_date\"\npartition_by = [\"ingest_date\"]",
            )
            .unwrap_err(),
        );
        assert!(e[0].starts_with("changes: ") && e[0].contains("own table"), "{e:?}");
        // `changes` need not be read by the query: the task then also depends on it.
        let spec = settings_errors(
            "materialized = \"incremental\"\nincremental_key = [\"round_id\"]\n\
             changes = \"gold.other.ingest_date\"\npartition_by = [\"ingest_date\"]",
        )
        .unwrap();
        assert_eq!(spec.lineage().reads, ["silver.t"]);
        assert_eq!(spec.lineage().other_reads, ["gold.other"]);
        let e = keys_of(settings_errors("changes = \"silver.t.ingest_date\"").unwrap_err());
        assert!(e[0].starts_with("changes: ") && e[0].contains("only applies"), "{e:?}");
        let e = keys_of(settings_errors("materialized = \"incremental\"\nchanges = \"t\"").unwrap_err());
        assert!(e.iter().any(|m| m.starts_with("changes: ") && m.contains("<ns>.<table>.<date column>")), "{e:?}");
        let e = keys_of(
            settings_errors(
                "materialized = \"incremental\"\nincremental_key = [\"round_id\"]\nchanges = \"silver.t\"\n\
                 partition_by = [\"course_id\"]\nlatest_only = true",
            )
            .unwrap_err(),
        );
        assert!(e.iter().any(|m| m.starts_with("latest_only: ") && m.contains("dated `changes`")), "{e:?}");
        // By snapshot needs a lake table: the course profiles have no snapshots.
        let e =
            keys_of(settings_errors("materialized = \"incremental\"\nchanges = \"seed.course_profiles\"").unwrap_err());
        assert!(e.iter().any(|m| m.starts_with("changes: ") && m.contains("of silver or gold")), "{e:?}");
    }

    #[test]
    fn non_queries_are_refused() {
        let e = parse_query("m", Path::new("m.sql"), "DELETE FROM t").unwrap_err();
        assert!(e.to_string().contains("found a DELETE statement"), "{e}");
    }
}
