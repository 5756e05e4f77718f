//! Reading the lakehouse for the UI: a DataFusion session over the Iceberg tables (built by
//! `crate::lake::session`), rows as plain values, and the tables that exist. Every query takes the
//! course filter as the bound parameter `$1` (`''` = all courses); table and column names that
//! end up in SQL come from the catalog and pass [`is_identifier`]. A date range narrows the
//! session itself: `gold.fact_rounds` to the rounds whose local date is in the range, and every
//! other gold table keyed by round to those rounds ([`Gold::open`]), so every page query sees
//! the range without repeating it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::TableProvider;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{col, lit};
use datafusion::scalar::ScalarValue;

use crate::daemon::Daemon;
use crate::lake::session::OverlaySchema;
use crate::lake::{Lake, SessionOptions};

/// `WHERE` clause fragment of the course filter (`$1`).
pub const COURSE: &str = "($1 = '' OR course_id = $1)";

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

/// One result row, read by column position: only for a page that shows arbitrary columns (the
/// table browser's partition values); a page's own queries read [`ReadModel`]s by name.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Val>);

impl Row {
    /// Cell `i` as a field of type `T` reads it ([`FromVal`]); past the end it is NULL.
    fn get<T: FromVal>(&self, i: usize) -> T {
        T::from_val(self.0.get(i).unwrap_or(&Val::Null))
    }

    pub fn f(&self, i: usize) -> Option<f64> {
        self.get(i)
    }

    pub fn i(&self, i: usize) -> i64 {
        self.get(i)
    }

    pub fn s(&self, i: usize) -> String {
        self.get(i)
    }
}

/// What a field of a [`ReadModel`] takes from one result cell. NULL (and a value of another
/// kind) reads as the type's "nothing": `None`, `0`, `""`, `false`.
pub trait FromVal: Sized {
    fn from_val(v: &Val) -> Self;
}

impl FromVal for Option<f64> {
    fn from_val(v: &Val) -> Self {
        match v {
            Val::Int(n) => Some(*n as f64),
            Val::Float(x) if x.is_finite() => Some(*x),
            _ => None,
        }
    }
}

impl FromVal for Option<i64> {
    fn from_val(v: &Val) -> Self {
        match v {
            Val::Int(n) => Some(*n),
            Val::Float(x) if x.is_finite() => Some(*x as i64),
            _ => None,
        }
    }
}

impl FromVal for i64 {
    fn from_val(v: &Val) -> Self {
        Option::<i64>::from_val(v).unwrap_or(0)
    }
}

impl FromVal for bool {
    fn from_val(v: &Val) -> Self {
        matches!(v, Val::Bool(true))
    }
}

impl FromVal for Option<String> {
    fn from_val(v: &Val) -> Self {
        match v {
            Val::Str(s) => Some(s.clone()),
            Val::Int(n) => Some(n.to_string()),
            Val::Float(x) => Some(x.to_string()),
            Val::Bool(b) => Some(b.to_string()),
            Val::Null => None,
        }
    }
}

impl FromVal for String {
    fn from_val(v: &Val) -> Self {
        Option::<String>::from_val(v).unwrap_or_default()
    }
}

/// A page's typed view of one result row: its fields are read from the result's columns of the
/// same names (declare one with [`read_model!`]; the SQL names its columns after the fields).
pub trait ReadModel: Sized {
    /// The columns it reads, in field order.
    const COLUMNS: &'static [&'static str];
    /// Builds one from the values of [`ReadModel::COLUMNS`], in that order.
    fn from_vals(vals: &[Val]) -> Self;
}

/// Declares a struct of public fields and its [`ReadModel`] impl: each field is read from the
/// result column of the same name, through [`FromVal`].
macro_rules! read_model {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl $crate::web::lakehouse::data::ReadModel for $name {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            fn from_vals(vals: &[$crate::web::lakehouse::data::Val]) -> Self {
                let mut vals = vals.iter();
                $name {
                    $($field: $crate::web::lakehouse::data::FromVal::from_val(
                        vals.next().unwrap_or(&$crate::web::lakehouse::data::Val::Null),
                    )),*
                }
            }
        }
    };
}
pub(crate) use read_model;

read_model! {
    /// One course of the course filter.
    struct CourseId { course_id: String }
}

/// The rows of record batches as read models: each of `T`'s columns is looked up by name, so the
/// SQL's column order does not matter and a column the SQL does not produce is an error naming it.
pub fn to_models<T: ReadModel>(batches: &[RecordBatch]) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let cols = T::COLUMNS
            .iter()
            .map(|name| match schema.index_of(name) {
                Ok(i) => Ok(column_vals(b.column(i))),
                Err(_) => Err(format!(
                    "the query gives no column `{name}` ({} reads {})",
                    std::any::type_name::<T>().rsplit("::").next().unwrap_or("the page"),
                    T::COLUMNS.join(", ")
                )),
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut vals = Vec::with_capacity(cols.len());
        for r in 0..b.num_rows() {
            vals.clear();
            vals.extend(cols.iter().map(|c| c[r].clone()));
            out.push(T::from_vals(&vals));
        }
    }
    Ok(out)
}

fn column_vals(col: &ArrayRef) -> Vec<Val> {
    let n = col.len();
    let nulls = |i: usize| col.is_null(i);
    match col.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => match cast(col, &DataType::Int64) {
            Ok(a) => {
                let a = a.as_primitive::<Int64Type>();
                (0..n).map(|i| if nulls(i) { Val::Null } else { Val::Int(a.value(i)) }).collect()
            }
            Err(_) => vec![Val::Null; n],
        },
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => match cast(col, &DataType::Float64) {
            Ok(a) => {
                let a = a.as_primitive::<Float64Type>();
                (0..n).map(|i| if nulls(i) { Val::Null } else { Val::Float(a.value(i)) }).collect()
            }
            Err(_) => vec![Val::Null; n],
        },
        DataType::Boolean => {
            let a = col.as_boolean();
            (0..n).map(|i| if nulls(i) { Val::Null } else { Val::Bool(a.value(i)) }).collect()
        }
        _ => (0..n)
            .map(|i| if nulls(i) { Val::Null } else { Val::Str(array_value_to_string(col, i).unwrap_or_default()) })
            .collect(),
    }
}

/// A name that may go into SQL as an identifier: lower-case letters, digits, `_`.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The daemon's lake (its executor's: one catalog connection and memory pool per process).
pub async fn lake(d: &Daemon) -> Result<Lake, String> {
    d.exec.lake().get().await.map_err(|e| format!("cannot open the lake: {e}"))
}

/// The date filter of the lakehouse pages: rounds whose local date (`round_date_local`, the
/// course's time zone) is in `from ..= to`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl DateRange {
    pub fn is_all(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// How the range reads in a note (`2025-06-01 → 2025-06-30`, `from 2025-06-01`).
    pub fn describe(&self) -> String {
        match (self.from, self.to) {
            (Some(f), Some(t)) => format!("{f} → {t}"),
            (Some(f), None) => format!("from {f}"),
            (None, Some(t)) => format!("until {t}"),
            (None, None) => "all dates".into(),
        }
    }
}

/// A session over the current state of the lake plus the tables it has.
pub struct Gold {
    pub lake: Lake,
    pub ctx: SessionContext,
    /// `namespace.table` of every table.
    pub tables: BTreeSet<String>,
    /// The course filter (`""` = all).
    pub course: String,
    /// The date filter, already applied to the session's round-keyed gold tables.
    pub dates: DateRange,
    /// [`Gold::courses`], read once per request (the filter check and the pages both ask).
    courses: tokio::sync::OnceCell<Vec<String>>,
}

impl Gold {
    pub async fn open(d: &Daemon, course: &str, dates: DateRange) -> Result<Arc<Gold>, String> {
        Gold::open_with(lake(d).await?, course, dates).await
    }

    async fn open_with(lake: Lake, course: &str, dates: DateRange) -> Result<Arc<Gold>, String> {
        let mut tables = BTreeSet::new();
        for ns in crate::lake::iceberg::NAMESPACES {
            for ident in lake.list_tables(ns).await.map_err(|e| e.to_string())? {
                tables.insert(format!("{ns}.{}", ident.name()));
            }
        }
        let ctx = lake.session(&SessionOptions::current()).await.map_err(|e| e.to_string())?;
        if !dates.is_all() && tables.contains("gold.fact_rounds") {
            scope_to_dates(&ctx, dates).await.map_err(|e| format!("cannot apply the date filter: {e}"))?;
        }
        let courses = tokio::sync::OnceCell::new();
        Ok(Arc::new(Gold { lake, ctx, tables, course: course.to_string(), dates, courses }))
    }

    /// Whether a date filter narrows the round-keyed tables (summaries over all dates say so).
    pub fn dated(&self) -> bool {
        !self.dates.is_all()
    }

    /// The query string that keeps this page's course and dates on a link (`""` for none).
    pub fn query(&self) -> String {
        super::filter_query(&self.course, self.dates)
    }

    pub fn has(&self, table: &str) -> bool {
        self.tables.contains(table)
    }

    pub fn has_all(&self, tables: &[&str]) -> bool {
        tables.iter().all(|t| self.has(t))
    }

    /// Runs `sql` with the course filter bound as `$1` (when the SQL uses it); its rows as `T`s.
    pub async fn read<T: ReadModel>(&self, sql: &str) -> Result<Vec<T>, String> {
        self.read_for(sql, &self.course).await
    }

    /// Runs `sql` with `course` bound as `$1` (when the SQL uses it); its rows as `T`s.
    pub async fn read_for<T: ReadModel>(&self, sql: &str, course: &str) -> Result<Vec<T>, String> {
        let params = if sql.contains("$1") { vec![ScalarValue::Utf8(Some(course.to_string()))] } else { Vec::new() };
        to_models(&self.batches(sql, params).await?)
    }

    /// Runs `sql` with the course filter as `$1` and `more` as `$2`, `$3`, …; its rows as `T`s.
    pub async fn read_bound<T: ReadModel>(&self, sql: &str, more: Vec<ScalarValue>) -> Result<Vec<T>, String> {
        let mut params = vec![ScalarValue::Utf8(Some(self.course.clone()))];
        params.extend(more);
        to_models(&self.batches(sql, params).await?)
    }

    /// Runs `sql` with the course filter bound as `$1`; the one row of an aggregate as a `T`.
    pub async fn read_one<T: ReadModel>(&self, sql: &str) -> Result<T, String> {
        self.read::<T>(sql).await?.into_iter().next().ok_or_else(|| "the query gave no row".to_string())
    }

    async fn batches(&self, sql: &str, params: Vec<ScalarValue>) -> Result<Vec<RecordBatch>, String> {
        let started = std::time::Instant::now();
        // Read-only, as every SQL the UI runs (no DDL, DML, COPY or SET).
        let df = self
            .ctx
            .sql_with_options(sql, crate::query::read_only_options())
            .await
            .map_err(|e| format!("query failed: {e}"))?;
        let df =
            if params.is_empty() { df } else { df.with_param_values(params).map_err(|e| format!("query: {e}"))? };
        let batches = df.collect().await.map_err(|e| format!("query failed: {e}"))?;
        // Which query of a page is slow (`RUST_LOG=tmctl::web::lakehouse=debug`).
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            rows = batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            sql = %sql.split_whitespace().collect::<Vec<_>>().join(" "),
            "lakehouse query"
        );
        Ok(batches)
    }

    /// The column names of a table.
    pub async fn columns(&self, table: &str) -> Vec<String> {
        match self.ctx.table(table).await {
            Ok(df) => df.schema().fields().iter().map(|f| f.name().clone()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Courses for the filter, from `gold.dim_course` (queried once per [`Gold`]).
    pub async fn courses(&self) -> Vec<String> {
        if !self.has("gold.dim_course") {
            return Vec::new();
        }
        self.courses
            .get_or_init(|| async {
                self.read::<CourseId>("SELECT course_id FROM gold.dim_course ORDER BY course_id")
                    .await
                    .map(|rows| rows.into_iter().map(|r| r.course_id).collect())
                    .unwrap_or_default()
            })
            .await
            .clone()
    }
}

/// Replaces the session's `gold` schema by one in which `fact_rounds` holds only the rounds of
/// `dates` (local round date), every other table with `course_id` and `round_date_local` only
/// the rows of those days (a per-day summary, or a per-round table whose `round_date_local` is
/// its round's in fact_rounds), every other table with `course_id` and `round_id` only the rows
/// of those rounds (a semi-join). Other tables (per-course summaries over all dates) stay as
/// they are.
async fn scope_to_dates(ctx: &SessionContext, dates: DateRange) -> datafusion::error::Result<()> {
    let default_catalog = ctx.copied_config().options().catalog.default_catalog.clone();
    let Some(catalog) = ctx.catalog(&default_catalog) else { return Ok(()) };
    let Some(gold) = catalog.schema("gold") else { return Ok(()) };
    let Some(fact_rounds) = gold.table("fact_rounds").await? else { return Ok(()) };
    let rounds = local_dates_in(ctx.read_table(fact_rounds.clone())?, dates)?;
    let mut views: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    let keys = rounds.clone().select_columns(&["course_id", "round_id"])?.with_column_renamed("course_id", "__c")?;
    let keys = keys.with_column_renamed("round_id", "__r")?;
    for name in gold.table_names() {
        // `t$snapshots` and the other metadata tables have no rounds, and asking for one loads
        // every table of the catalog (that made each dated page ~300 ms slower).
        if name == "fact_rounds" || name.contains('$') {
            continue;
        }
        let Some(table) = gold.table(&name).await? else { continue };
        let schema = table.schema();
        if schema.field_with_name("course_id").is_err() {
            continue;
        }
        if schema.field_with_name("round_date_local").is_ok() {
            // A daily summary (`course_hole_pace_daily`), or a per-round table that carries its
            // round's local date from fact_rounds (`round_validation`): narrowed by that column,
            // which prunes by the files' statistics instead of joining with the rounds.
            views.insert(name, local_dates_in(ctx.read_table(table)?, dates)?.into_view());
            continue;
        }
        if schema.field_with_name("round_id").is_err() {
            continue;
        }
        let view = ctx.read_table(table)?.join(
            keys.clone(),
            JoinType::LeftSemi,
            &["course_id", "round_id"],
            &["__c", "__r"],
            None,
        )?;
        views.insert(name, view.into_view());
    }
    views.insert("fact_rounds".into(), rounds.into_view());
    catalog.register_schema("gold", Arc::new(OverlaySchema::new(gold, views)))?;
    Ok(())
}

/// The rows of `df` whose `round_date_local` is in `dates`.
fn local_dates_in(mut df: DataFrame, dates: DateRange) -> datafusion::error::Result<DataFrame> {
    if let Some(from) = dates.from {
        df = df.filter(col("round_date_local").gt_eq(lit(ScalarValue::Date32(Some(date32(from))))))?;
    }
    if let Some(to) = dates.to {
        df = df.filter(col("round_date_local").lt_eq(lit(ScalarValue::Date32(Some(date32(to))))))?;
    }
    Ok(df)
}

/// Days since 1970-01-01 (Arrow's Date32).
fn date32(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_become_plain_values() {
        use datafusion::arrow::array::{BooleanArray, Float32Array, Int32Array, StringArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("x", DataType::Float32, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(Float32Array::from(vec![Some(1.5), None])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap();
        let cols: Vec<Vec<Val>> = batch.columns().iter().map(column_vals).collect();
        let rows: Vec<Row> = (0..batch.num_rows()).map(|r| Row(cols.iter().map(|c| c[r].clone()).collect())).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, vec![Val::Int(7), Val::Float(1.5), Val::Bool(true), Val::Str("a".into())]);
        assert_eq!(rows[0].i(0), 7);
        assert_eq!(rows[0].f(1), Some(1.5));
        assert!(bool::from_val(&rows[0].0[2]));
        assert_eq!(rows[1].0, vec![Val::Null; 4]);
        assert_eq!(
            (rows[1].i(0), rows[1].f(1), bool::from_val(&rows[1].0[2]), rows[1].s(3)),
            (0, None, false, String::new())
        );
    }

    read_model! {
        struct Sample { name: String, n: i64, x: Option<f64>, missing_ok: Option<String> }
    }

    #[test]
    fn read_models_take_their_columns_by_name() {
        use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        // Column order differs from field order; an extra column is ignored.
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("extra", DataType::Int64, true),
            Field::new("missing_ok", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![Some(2.5), None])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2)])),
                Arc::new(StringArray::from(vec![None, Some("y")])),
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec![Some("a"), Some("b")])),
            ],
        )
        .unwrap();
        let rows: Vec<Sample> = to_models(std::slice::from_ref(&batch)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].name.as_str(), rows[0].n, rows[0].x, rows[0].missing_ok.clone()),
            ("a", 7, Some(2.5), None)
        );
        assert_eq!(
            (rows[1].name.as_str(), rows[1].n, rows[1].x, rows[1].missing_ok.as_deref()),
            ("b", 0, None, Some("y"))
        );

        read_model! {
            // Never built: only its columns matter.
            #[allow(dead_code)]
            struct Wants { name: String, absent: i64 }
        }
        let err = to_models::<Wants>(&[batch]).unwrap_err();
        assert!(err.contains("no column `absent`") && err.contains("Wants"), "{err}");
    }

    #[test]
    fn identifiers_are_plain_names() {
        assert!(is_identifier("fact_rounds"));
        assert!(is_identifier("course_id"));
        assert!(!is_identifier("x' OR '1'='1"));
        assert!(!is_identifier("Fact"));
        assert!(!is_identifier("a.b"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("1a"));
    }
}
