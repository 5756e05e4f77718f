//! Incremental gold models (`materialized = "incremental"`, see [`Incremental`]): which keys
//! changed on the run date, inputs narrowed to those keys, the partitions the recomputed rows
//! replace, and the rows of those partitions that are carried over unchanged.
//!
//! A run for date D:
//! 1. `changed` = the keys of `changes` (a table the model reads) whose date column is D, plus
//!    the keys the model's own table holds in partitions dated D (rounds a re-run of D no longer
//!    delivers must leave D's partition); or, for `changes` by snapshot ([`changed_keys_between`]),
//!    the keys of the rows in every data file `changes` added or removed since the snapshot the
//!    model's last commit recorded (old and new versions alike, whatever their date);
//! 2. the model's SQL runs over inputs narrowed to `changed` (every input holding all the key
//!    columns is semi-joined with `changed`; the key columns with few distinct values also become
//!    `IN` lists, so partitions of other courses are never read; a `latest_only` model's inputs
//!    are also narrowed to the dates of the changed keys' latest versions);
//! 3. the partitions replaced are those the new rows fall in plus those the changed keys' old rows
//!    are in; the old rows of those partitions whose key did not change are carried over;
//! 4. data tests see the table as the commit will leave it (old rows outside the replaced
//!    partitions plus the staged ones), except those that hold per partition (row-by-row tests,
//!    `unique` on the key), which read only the staged rows; the commit replaces exactly those
//!    partitions.
//!
//! A full refresh of a `latest_only` model runs the query once per batch of keys
//! ([`refresh_batches`]: whole `(date, course)` groups of `changes`), its inputs narrowed to the
//! batch's partitions by a predicate rather than joined with the keys, and its result restricted
//! to the batch's keys; one of a model incremental by snapshot runs the narrowed query once per
//! batch of keys ([`key_batches`]). Either way its memory follows `lake.memory_limit` and not the
//! lake's size.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::catalog::MemTable;
use datafusion::common::{JoinType, ScalarValue};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::utils::disjunction;
use datafusion::logical_expr::{Expr, ident, lit};
use datafusion::prelude::{DataFrame, SessionContext};

use super::models::{Incremental, ModelSpec};
use crate::lake::scan::LakeTable;
use crate::lake::session::OverlaySchema;
use crate::lake::{PartitionValue, PartitionValues};

/// Distinct values of a key column up to which it also becomes an `IN` list on the inputs (for
/// partition and statistics pruning); beyond it only the semi-join narrows.
const IN_LIST_LIMIT: usize = 256;

/// The keys that changed on the run date, as a small in-memory table with columns `__k0, __k1, …`
/// (one per `incremental_key` column).
#[derive(Debug)]
pub struct ChangedKeys {
    pub table: Arc<MemTable>,
    /// What `table` holds.
    batches: Vec<RecordBatch>,
    pub rows: usize,
    /// Distinct values of each key column, when there are at most [`IN_LIST_LIMIT`].
    in_lists: Vec<Option<Vec<ScalarValue>>>,
    /// The smallest and largest value of each key column, used where it has no `IN` list: a range
    /// that prunes by column statistics (round ids begin with their start time, so the rounds of a day
    /// fall in a narrow range and the files of other days are skipped).
    ranges: Vec<Option<(ScalarValue, ScalarValue)>>,
    /// How the inputs are narrowed to these keys besides the key join.
    scope: KeyScope,
}

/// What selects a [`ChangedKeys`]' rows in the inputs, besides the keys themselves.
#[derive(Debug)]
enum KeyScope {
    /// The keys alone.
    Keys,
    /// A `latest_only` model in a daily run: also the dates `changes` gives the changed keys
    /// (their latest versions).
    LatestDates(Vec<ScalarValue>),
    /// A batch of a `latest_only` model's full refresh ([`batch_keys`]): its `(date, first key
    /// values)` groups, which select its keys in `changes` exactly. Inputs are then narrowed by
    /// this predicate alone, with no join (see [`narrowed_session`]), and the result by the keys
    /// ([`ChangedKeys::key_set`]).
    BatchGroups(Vec<(ScalarValue, Vec<ScalarValue>)>),
}

fn key_alias(i: usize) -> String {
    format!("__k{i}")
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The key columns as SQL: `"k0" AS __k0, "k1" AS __k1, …` and `"k0" IS NOT NULL AND …`.
fn key_sql(inc: &Incremental) -> (String, String) {
    let aliased: Vec<String> =
        inc.incremental_key.iter().enumerate().map(|(i, k)| format!("{} AS {}", quote(k), key_alias(i))).collect();
    let not_null: Vec<String> = inc.incremental_key.iter().map(|k| format!("{} IS NOT NULL", quote(k))).collect();
    (aliased.join(", "), not_null.join(" AND "))
}

/// `df`'s rows with every key column set, as the key columns `__k0, __k1, …`.
fn key_columns(df: DataFrame, inc: &Incremental) -> Result<DataFrame> {
    let mut df = df;
    for k in &inc.incremental_key {
        df = df.filter(ident(k).is_not_null())?;
    }
    df.select(inc.incremental_key.iter().enumerate().map(|(i, k)| ident(k).alias(key_alias(i))).collect::<Vec<_>>())
}

/// The `COUNT(*)` in `column` at `row`.
fn count_at(column: &dyn Array, row: usize) -> Result<usize> {
    match ScalarValue::try_from_array(column, row)? {
        ScalarValue::Int64(Some(n)) => Ok(usize::try_from(n).unwrap_or(0)),
        other => Err(DataFusionError::Internal(format!("COUNT(*) gave {other:?}"))),
    }
}

/// The date column of a dated `changes` (what date-driven steps need).
fn dated(inc: &Incremental) -> Result<&str> {
    inc.changes_column.as_deref().ok_or_else(|| {
        DataFusionError::Plan(format!(
            "`changes = \"{}\"` has no date column: its changes are found by snapshot",
            inc.changes_table
        ))
    })
}

/// Step 1 for `changes` by snapshot: the keys of every row in the data files `changes` added or
/// removed between its snapshots `from` (what the model's last commit recorded) and `to`. `None`
/// when `changes` is not a catalog table or `from` has expired: the model is then rebuilt in full.
pub async fn changed_keys_between(
    ctx: &SessionContext,
    inc: &Incremental,
    from: i64,
    to: i64,
) -> Result<Option<ChangedKeys>> {
    let provider = ctx.table_provider(inc.changes_table.as_str()).await?;
    let Some(table) = provider.as_any().downcast_ref::<LakeTable>() else { return Ok(None) };
    let Some(diff) = table.diff(from, to).await? else { return Ok(None) };
    let side = |t: LakeTable| key_columns(ctx.read_table(Arc::new(t))?, inc);
    let files = diff.files();
    let df = side(diff.removed)?.union(side(diff.added)?)?.distinct()?;
    let schema: SchemaRef = df.schema().inner().clone();
    let changed = ChangedKeys::new(schema, df.collect().await?)?;
    tracing::debug!(changes = %inc.changes_table, from, to, files, keys = changed.rows, "keys changed between snapshots");
    Ok(Some(changed))
}

/// Step 1: the keys to recompute for `ds`. `ctx` resolves the model's inputs and its own table.
pub async fn changed_keys(
    ctx: &SessionContext,
    model: &ModelSpec,
    inc: &Incremental,
    ds: NaiveDate,
) -> Result<ChangedKeys> {
    let day = format!("CAST('{}' AS DATE)", ds.format("%Y-%m-%d"));
    let (cols, not_null) = key_sql(inc);
    let sql = format!(
        "SELECT {cols} FROM {changes} WHERE {changes_col} = {day} AND {not_null} \
         UNION SELECT {cols} FROM {this} WHERE {date_col} = {day} AND {not_null}",
        changes = inc.changes_table,
        changes_col = quote(dated(inc)?),
        this = model.qualified_table(),
        date_col = quote(&inc.date_column),
    );
    let df = ctx.sql(&sql).await?;
    let schema: SchemaRef = df.schema().inner().clone();
    let batches = df.collect().await?;
    let mut changed = ChangedKeys::new(schema, batches)?;
    if inc.latest_only {
        let changes = ctx.table(inc.changes_table.as_str()).await?;
        let keys = ctx.read_table(changed.table.clone())?;
        let batches = semi(changes, keys, &inc.incremental_key, JoinType::LeftSemi)?
            .select_columns(&[dated(inc)?])?
            .distinct()?
            .collect()
            .await?;
        let mut dates = HashSet::new();
        for b in &batches {
            for row in 0..b.num_rows() {
                dates.insert(scalar(b.column(0), row)?);
            }
        }
        changed.scope = KeyScope::LatestDates(dates.into_iter().collect());
    }
    Ok(changed)
}

impl ChangedKeys {
    /// For a batch of a full refresh, whose inputs [`narrow`] may leave rows of other keys in:
    /// the batch's keys as a set, to keep only their rows of the result (in `schema`, the result's
    /// schema as staged); otherwise `None`. A filter on the result rather than a join: a hash join
    /// builds its left input unless statistics say the other is smaller, and a query result has
    /// none, so a join put a per-fix model's whole batch result in memory.
    pub fn key_set(&self, schema: &SchemaRef, inc: &Incremental) -> Result<Option<KeySet>> {
        if !matches!(self.scope, KeyScope::BatchGroups(_)) {
            return Ok(None);
        }
        let columns = inc.incremental_key.iter().map(|k| schema.index_of(k)).collect::<Result<Vec<_>, _>>()?;
        let types: Vec<DataType> = columns.iter().map(|&i| schema.field(i).data_type().clone()).collect();
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())?;
        let mut rows = datafusion::common::HashSet::with_capacity(self.rows);
        for b in &self.batches {
            let keys = b.columns().iter().zip(&types).map(|(c, t)| cast(c, t)).collect::<Result<Vec<_>, _>>()?;
            rows.extend(converter.convert_columns(&keys)?.iter().map(|r| r.as_ref().to_vec()));
        }
        Ok(Some(KeySet { columns, converter, rows }))
    }

    /// The keys in `batches` (columns `__k0…`), with the `IN` lists of their small key columns and
    /// the range of each column's values.
    fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<ChangedKeys> {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let mut in_lists = Vec::with_capacity(schema.fields().len());
        let mut ranges = Vec::with_capacity(schema.fields().len());
        for i in 0..schema.fields().len() {
            let mut values = Some(HashSet::new());
            let mut range: Option<(ScalarValue, ScalarValue)> = None;
            for b in &batches {
                for row in 0..b.num_rows() {
                    let v = ScalarValue::try_from_array(b.column(i), row)?;
                    if let Some(set) = &mut values {
                        set.insert(v.clone());
                        if set.len() > IN_LIST_LIMIT {
                            values = None;
                        }
                    }
                    let v = plain(v);
                    if v.is_null() {
                        continue;
                    }
                    range = Some(match range {
                        None => (v.clone(), v),
                        Some((lo, hi)) if v < lo => (v, hi),
                        Some((lo, hi)) if v > hi => (lo, v),
                        Some(same) => same,
                    });
                }
            }
            in_lists.push(values.map(|set| set.into_iter().collect()));
            ranges.push(range);
        }
        let table = Arc::new(MemTable::try_new(schema, vec![batches.clone()])?);
        Ok(ChangedKeys { table, batches, rows, in_lists, ranges, scope: KeyScope::Keys })
    }

    /// `df` filtered by what is known of the changed keys without a join (their columns' `IN`
    /// lists and ranges), so scans prune files by partition and column statistics; the rows of
    /// changed keys all pass, and the semi-join with the keys does the rest.
    fn prune(&self, mut df: DataFrame, key: &[String]) -> Result<DataFrame> {
        for ((k, values), range) in key.iter().zip(&self.in_lists).zip(&self.ranges) {
            if let Some(values) = values {
                df = df.filter(one_of(k, values))?;
            } else if let Some((lo, hi)) = range {
                df = df.filter(ident(k).gt_eq(lit(lo.clone())).and(ident(k).lt_eq(lit(hi.clone()))))?;
            }
        }
        Ok(df)
    }
}

/// Memory a full refresh plans for one key (a round: its fixes through a scan, a join, a sort and
/// an aggregate) to size its batches from `lake.memory_limit`: 1 GiB gives batches of up to
/// 26,214 rounds, about 1.5 M silver fixes on the generated lake, which sort without spilling.
const BYTES_PER_KEY: usize = 40 << 10;

/// How many keys one batch of a full refresh holds under a memory pool of `limit` bytes (no
/// limit: one batch).
pub fn batch_budget(limit: Option<usize>) -> usize {
    limit.map_or(usize::MAX, |l| (l / BYTES_PER_KEY).max(1))
}

/// One batch of a batched full refresh: `(date, first key column)` groups of `changes`, each
/// standing for the keys `changes` dates so.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    groups: Vec<(ScalarValue, ScalarValue)>,
    pub keys: usize,
}

/// A full refresh of a `latest_only` model runs in batches, like a daily run per batch instead of
/// one query over all of history, so its memory follows `lake.memory_limit` and not the size of
/// the lake (a window sort over every fix of the lake spills, and DataFusion 53's sort cannot
/// always merge what it spilled within the limit). `changes` dates each key once (its latest
/// version), so the batches are disjoint; they are consecutive `(date, first key column)` groups,
/// in order, of at most `budget` keys each (a group larger than that is a batch of its own).
pub async fn refresh_batches(ctx: &SessionContext, inc: &Incremental, budget: usize) -> Result<Vec<Batch>> {
    let (_, not_null) = key_sql(inc);
    let sql = format!(
        "SELECT {date} AS d, {key} AS k, COUNT(*) AS n FROM {changes} WHERE {date} IS NOT NULL AND {not_null} \
         GROUP BY {date}, {key} ORDER BY 1, 2",
        date = quote(dated(inc)?),
        key = quote(&inc.incremental_key[0]),
        changes = inc.changes_table,
    );
    let mut groups = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        for row in 0..b.num_rows() {
            groups.push((
                ScalarValue::try_from_array(b.column(0), row)?,
                ScalarValue::try_from_array(b.column(1), row)?,
                count_at(b.column(2), row)?,
            ));
        }
    }
    Ok(pack(groups, budget))
}

/// `(date, first key, keys)` groups, in order, cut into batches of at most `budget` keys.
fn pack(groups: Vec<(ScalarValue, ScalarValue, usize)>, budget: usize) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut batch = Batch::default();
    for (date, first, n) in groups {
        if batch.keys > 0 && batch.keys.saturating_add(n) > budget {
            out.push(std::mem::take(&mut batch));
        }
        batch.groups.push((date, first));
        batch.keys += n;
    }
    if batch.keys > 0 {
        out.push(batch);
    }
    out
}

/// Memory a full refresh of a model incremental by snapshot plans for one row of its `changes`
/// table (the distinct-value sets and groups its query keeps per input row): 1 GiB gives batches
/// of up to 2 M rows. `COUNT(DISTINCT round_id)` per (course, ingest date, section) over 7 M
/// fixes in one query peaked at about 110 bytes a row above the rest of the run.
const BYTES_PER_CHANGES_ROW: usize = 512;

/// How many rows of `changes` one batch of a by-snapshot model's full refresh covers under a
/// memory pool of `limit` bytes (no limit: one batch).
pub fn changes_row_budget(limit: Option<usize>) -> usize {
    limit.map_or(usize::MAX, |l| (l / BYTES_PER_CHANGES_ROW).max(1))
}

/// A full refresh of a model incremental by snapshot runs in batches of its keys, like a
/// `latest_only` model's ([`refresh_batches`]): the key tuples of `changes` in order, cut into
/// batches whose rows of `changes` add up to at most `budget` (a key with more rows than that is
/// a batch of its own). Each batch is run as an incremental run of those keys would be. Empty
/// when all of `changes` fits in one batch (its row count, read from the snapshot's manifests,
/// is at most `budget`): the model then runs as one query, without grouping `changes` first.
pub async fn key_batches(ctx: &SessionContext, inc: &Incremental, budget: usize) -> Result<Vec<ChangedKeys>> {
    let total = ctx.sql(&format!("SELECT COUNT(*) FROM {}", inc.changes_table)).await?.collect().await?;
    if let Some(b) = total.first().filter(|b| b.num_rows() > 0)
        && count_at(b.column(0), 0)? <= budget
    {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = inc.incremental_key.iter().map(|k| quote(k)).collect();
    let (aliased, not_null) = key_sql(inc);
    let sql = format!(
        "SELECT {aliased}, COUNT(*) AS __n FROM {changes} WHERE {not_null} GROUP BY {keys} ORDER BY {keys}",
        changes = inc.changes_table,
        keys = keys.join(", "),
    );
    let df = ctx.sql(&sql).await?;
    let counted = df.schema().inner().clone();
    let all = datafusion::arrow::compute::concat_batches(&counted, &df.collect().await?)?;
    let n_keys = inc.incremental_key.len();
    let keys_only = all.project(&(0..n_keys).collect::<Vec<_>>())?;
    let counts: Vec<usize> = (0..all.num_rows()).map(|row| count_at(all.column(n_keys), row)).collect::<Result<_>>()?;
    cut(&counts, budget)
        .into_iter()
        .map(|range| ChangedKeys::new(keys_only.schema(), vec![keys_only.slice(range.start, range.len())]))
        .collect()
}

/// The keys of one batch of a full refresh, to keep only their rows of its result.
pub struct KeySet {
    /// The key columns in the result.
    columns: Vec<usize>,
    converter: RowConverter,
    /// The keys in row format, hashed as DataFusion hashes (every row of every batch of a full
    /// refresh is looked up here: with std's SipHash the lookups were 0.8 % of a full refresh's
    /// instructions, benches/README.md, thirteenth session).
    rows: datafusion::common::HashSet<Vec<u8>>,
}

impl KeySet {
    /// `batch`'s rows whose key is in the set.
    pub fn filter(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let keys: Vec<ArrayRef> = self.columns.iter().map(|&i| batch.column(i).clone()).collect();
        let mask: BooleanArray =
            self.converter.convert_columns(&keys)?.iter().map(|r| Some(self.rows.contains(r.as_ref()))).collect();
        if mask.true_count() == batch.num_rows() {
            return Ok(batch);
        }
        Ok(filter_record_batch(&batch, &mask)?)
    }
}

/// Consecutive ranges of `counts` whose sums are at most `budget` (a count above it alone).
fn cut(counts: &[usize], budget: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut sum) = (0, 0usize);
    for (i, n) in counts.iter().enumerate() {
        if i > start && sum.saturating_add(*n) > budget {
            ranges.push(start..i);
            (start, sum) = (i, 0);
        }
        sum = sum.saturating_add(*n);
    }
    if counts.len() > start {
        ranges.push(start..counts.len());
    }
    ranges
}

/// The keys of one batch of a full refresh, as [`changed_keys`] gives a daily run's, with the
/// batch's `(date, first key values)` groups that select them (see [`narrow`]).
pub async fn batch_keys(ctx: &SessionContext, inc: &Incremental, batch: &Batch) -> Result<ChangedKeys> {
    // The groups come sorted by date: one `date = d AND first IN (…)` term per date.
    let groups: Vec<(ScalarValue, Vec<ScalarValue>)> = batch
        .groups
        .chunk_by(|a, b| a.0 == b.0)
        .map(|same| (plain(same[0].0.clone()), same.iter().map(|(_, k)| k.clone()).collect()))
        .collect();
    let df = ctx.table(inc.changes_table.as_str()).await?;
    let df = key_columns(df.filter(in_groups(&groups, Some(dated(inc)?), &inc.incremental_key[0]))?, inc)?;
    let schema: SchemaRef = df.schema().inner().clone();
    let mut changed = ChangedKeys::new(schema, df.collect().await?)?;
    changed.scope = KeyScope::BatchGroups(groups);
    Ok(changed)
}

/// `(date = d AND first IN (…)) OR …` over a batch's groups (without a date column:
/// `first IN (…) OR …`); FALSE for no groups.
fn in_groups(groups: &[(ScalarValue, Vec<ScalarValue>)], date: Option<&str>, first: &str) -> Expr {
    disjunction(groups.iter().map(|(d, firsts)| match date {
        Some(date) => ident(date).eq(lit(d.clone())).and(one_of(first, firsts)),
        None => one_of(first, firsts),
    }))
    .unwrap_or(lit(false))
}

/// Step 2: a session like `ctx` (same configuration and runtime) in which every input of the
/// model that has all key columns reads only the rows of the changed keys.
pub async fn narrowed_session(
    ctx: &SessionContext,
    model: &ModelSpec,
    inc: &Incremental,
    changed: &ChangedKeys,
) -> Result<SessionContext> {
    let narrowed = SessionContext::new_with_config_rt(ctx.copied_config(), ctx.runtime_env());
    crate::lake::functions::register(&narrowed);
    let default_catalog = ctx.copied_config().options().catalog.default_catalog.clone();
    let (Some(source), Some(target)) = (ctx.catalog(&default_catalog), narrowed.catalog(&default_catalog)) else {
        return Err(DataFusionError::Plan(format!("the session has no default catalog `{default_catalog}`")));
    };
    let mut overrides: HashMap<String, HashMap<String, Arc<dyn TableProvider>>> = HashMap::new();
    for name in &model.reads {
        let Some((ns, table)) = name.split_once('.') else { continue };
        let Some(schema) = source.schema(ns) else { continue };
        let Some(inner) = schema.table(table).await? else { continue };
        let schema = inner.schema();
        if !inc.incremental_key.iter().all(|k| schema.field_with_name(k).is_ok()) {
            continue;
        }
        let view = narrow(&narrowed, inner, inc, changed, name == &inc.changes_table)?;
        overrides.entry(ns.to_string()).or_default().insert(table.to_string(), view);
    }
    for ns in source.schema_names() {
        let Some(inner) = source.schema(&ns) else { continue };
        let tables = overrides.remove(&ns).unwrap_or_default();
        target.register_schema(&ns, Arc::new(OverlaySchema::new(inner, tables)))?;
    }
    Ok(narrowed)
}

/// `inner`'s rows whose key is in `changed`. For a batch of a `latest_only` model's full refresh
/// (`KeyScope::BatchGroups`): the rows in the batch's `(date, first key)` groups, by a predicate alone,
/// which partition pruning mostly settles, instead of a join on the key with every row read. In
/// `changes` (`is_changes`) that is exactly the batch's keys; in another input it is all of their
/// latest versions (dated as in `changes`) and maybe rows of other keys (older versions of rounds
/// delivered again later), whose result rows [`ChangedKeys::key_set`] drops.
fn narrow(
    ctx: &SessionContext,
    inner: Arc<dyn TableProvider>,
    inc: &Incremental,
    changed: &ChangedKeys,
    is_changes: bool,
) -> Result<Arc<dyn TableProvider>> {
    let df = ctx.read_table(inner)?;
    if let KeyScope::BatchGroups(groups) = &changed.scope {
        let date = if is_changes {
            Some(dated(inc)?)
        } else {
            Some(inc.date_column.as_str()).filter(|c| df.schema().has_column_with_unqualified_name(c))
        };
        return Ok(df.filter(in_groups(groups, date, &inc.incremental_key[0]))?.into_view());
    }
    let mut df = changed.prune(df, &inc.incremental_key)?;
    if let KeyScope::LatestDates(dates) = &changed.scope
        && df.schema().has_column_with_unqualified_name(&inc.date_column)
    {
        df = df.filter(one_of(&inc.date_column, dates))?;
    }
    let keys = ctx.read_table(changed.table.clone())?;
    Ok(semi(df, keys, &inc.incremental_key, JoinType::LeftSemi)?.into_view())
}

/// `column IN (values)`; FALSE for no values.
fn one_of(column: &str, values: &[ScalarValue]) -> datafusion::logical_expr::Expr {
    if values.is_empty() { lit(false) } else { ident(column).in_list(values.iter().cloned().map(lit).collect(), false) }
}

/// `left` semi- or anti-joined with `keys` (columns `__k0…`) on `columns`.
fn semi(left: DataFrame, keys: DataFrame, columns: &[String], join: JoinType) -> Result<DataFrame> {
    let right_cols: Vec<String> = (0..columns.len()).map(key_alias).collect();
    let l: Vec<&str> = columns.iter().map(String::as_str).collect();
    let r: Vec<&str> = right_cols.iter().map(String::as_str).collect();
    left.join(keys, join, &l, &r, None)
}

/// The partitions a run replaces: tuples of `partition_by` values (never NULL).
#[derive(Debug, Default, Clone)]
pub struct Partitions {
    tuples: HashSet<Vec<ScalarValue>>,
}

impl Partitions {
    pub fn len(&self) -> usize {
        self.tuples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tuples.is_empty()
    }

    pub fn extend(&mut self, other: Partitions) {
        self.tuples.extend(other.tuples);
    }

    /// Adds the partitions of `batch`'s rows (its `columns`); refuses NULL keys and partition
    /// values, which an incremental table cannot address.
    pub fn add_rows(&mut self, batch: &RecordBatch, columns: &[String], keys: &[String]) -> Result<()> {
        for k in keys.iter().chain(columns) {
            let c = batch.column_by_name(k).ok_or_else(|| DataFusionError::Plan(format!("no column `{k}`")))?;
            if c.null_count() > 0 {
                return Err(DataFusionError::Execution(format!(
                    "column `{k}` is NULL in {} row(s); an incremental model's incremental_key and partition_by columns must never be NULL (filter those rows out or make the model a table)",
                    c.null_count()
                )));
            }
        }
        let arrays: Vec<&Arc<dyn Array>> = columns.iter().filter_map(|c| batch.column_by_name(c)).collect();
        let mut last: Option<Vec<ScalarValue>> = None;
        for row in 0..batch.num_rows() {
            let tuple = arrays.iter().map(|a| scalar(a, row)).collect::<Result<Vec<_>>>()?;
            if last.as_ref() != Some(&tuple) {
                self.tuples.insert(tuple.clone());
                last = Some(tuple);
            }
        }
        Ok(())
    }

    fn add_batches(&mut self, batches: &[RecordBatch]) -> Result<()> {
        for b in batches {
            for row in 0..b.num_rows() {
                let tuple = b.columns().iter().map(|a| scalar(a, row)).collect::<Result<Vec<_>>>()?;
                self.tuples.insert(tuple);
            }
        }
        Ok(())
    }

    /// The partitions as the lake's commit names them.
    pub fn values(&self, columns: &[String]) -> Result<Vec<PartitionValues>> {
        let mut out = Vec::with_capacity(self.tuples.len());
        for tuple in &self.tuples {
            let mut p = PartitionValues::new();
            for (c, v) in columns.iter().zip(tuple) {
                p = p.with(c.clone(), partition_value(c, v)?);
            }
            out.push(p);
        }
        out.sort_by_key(|p| p.to_string());
        Ok(out)
    }

    /// The partitions as a table with columns `__k0…` (to join with).
    fn table(&self, columns: &[String], schema: &SchemaRef) -> Result<Arc<MemTable>> {
        let fields = columns
            .iter()
            .enumerate()
            .map(|(i, c)| schema.field_with_name(c).map(|f| f.clone().with_name(key_alias(i)).with_nullable(true)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        let mut columns_out = Vec::with_capacity(columns.len());
        for (i, f) in schema.fields().iter().enumerate() {
            let values: Vec<ScalarValue> =
                self.tuples.iter().map(|t| t[i].cast_to(f.data_type())).collect::<Result<_>>()?;
            columns_out.push(if values.is_empty() {
                datafusion::arrow::array::new_empty_array(f.data_type())
            } else {
                ScalarValue::iter_to_array(values)?
            });
        }
        Ok(Arc::new(MemTable::try_new(schema.clone(), vec![vec![RecordBatch::try_new(schema, columns_out)?]])?))
    }

    /// Distinct values of partition column `i` (to prune with an `IN` list).
    fn distinct(&self, i: usize) -> Vec<ScalarValue> {
        let set: HashSet<ScalarValue> = self.tuples.iter().map(|t| t[i].clone()).collect();
        set.into_iter().collect()
    }
}

/// One cell as a scalar, strings as plain `Utf8` whatever their Arrow layout (the staged rows and
/// the table read back lay strings out differently).
fn scalar(array: &Arc<dyn Array>, row: usize) -> Result<ScalarValue> {
    Ok(plain(ScalarValue::try_from_array(array, row)?))
}

/// Strings as plain `Utf8`, other values as they are.
fn plain(value: ScalarValue) -> ScalarValue {
    match value {
        ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => ScalarValue::Utf8(s),
        other => other,
    }
}

fn partition_value(column: &str, v: &ScalarValue) -> Result<PartitionValue> {
    Ok(match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            PartitionValue::String(s.clone())
        }
        ScalarValue::Date32(Some(d)) => PartitionValue::Date(
            NaiveDate::from_num_days_from_ce_opt(*d + 719_163)
                .ok_or_else(|| DataFusionError::Execution(format!("partition `{column}`: date {d} out of range")))?,
        ),
        ScalarValue::Boolean(Some(b)) => PartitionValue::Bool(*b),
        ScalarValue::Int8(Some(i)) => PartitionValue::Int((*i).into()),
        ScalarValue::Int16(Some(i)) => PartitionValue::Int((*i).into()),
        ScalarValue::Int32(Some(i)) => PartitionValue::Int((*i).into()),
        ScalarValue::Int64(Some(i)) => PartitionValue::Int(*i),
        other if other.is_null() => PartitionValue::Null,
        other => {
            return Err(DataFusionError::Plan(format!(
                "partition column `{column}` has type {}; incremental models partition by strings, dates, integers or booleans",
                other.data_type()
            )));
        }
    })
}

/// The current table, restricted to `partitions` (`inside`) or to everything else.
fn current_rows(
    current: DataFrame,
    ctx: &SessionContext,
    model: &ModelSpec,
    partitions: &Partitions,
    inside: bool,
) -> Result<DataFrame> {
    let schema: SchemaRef = current.schema().inner().clone();
    let mut df = current;
    if inside {
        for (i, c) in model.partition_by.iter().enumerate() {
            let values = partitions.distinct(i);
            if values.len() <= IN_LIST_LIMIT {
                df = df.filter(one_of(c, &values))?;
            }
        }
    }
    let keys = ctx.read_table(partitions.table(&model.partition_by, &schema)?)?;
    semi(df, keys, &model.partition_by, if inside { JoinType::LeftSemi } else { JoinType::LeftAnti })
}

/// Step 3: the partitions the changed keys' current rows are in.
pub async fn old_partitions(
    ctx: &SessionContext,
    model: &ModelSpec,
    inc: &Incremental,
    changed: &ChangedKeys,
) -> Result<Partitions> {
    let current = changed.prune(ctx.table(model.qualified_table()).await?, &inc.incremental_key)?;
    let keys = ctx.read_table(changed.table.clone())?;
    let cols: Vec<&str> = model.partition_by.iter().map(String::as_str).collect();
    let batches = semi(current, keys, &inc.incremental_key, JoinType::LeftSemi)?
        .select_columns(&cols)?
        .distinct()?
        .collect()
        .await?;
    let mut p = Partitions::default();
    p.add_batches(&batches)?;
    Ok(p)
}

/// Step 3: the current rows of `partitions` whose key did not change, with `columns` in order.
pub async fn carried_rows(
    ctx: &SessionContext,
    model: &ModelSpec,
    inc: &Incremental,
    changed: &ChangedKeys,
    partitions: &Partitions,
    columns: &[String],
) -> Result<DataFrame> {
    let current = ctx.table(model.qualified_table()).await?;
    let inside = current_rows(current, ctx, model, partitions, true)?;
    let keys = ctx.read_table(changed.table.clone())?;
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    semi(inside, keys, &inc.incremental_key, JoinType::LeftAnti)?.select_columns(&cols)
}

/// Step 4: the table as the commit will leave it: current rows outside `partitions` plus
/// `staged`.
pub async fn after_commit(
    ctx: &SessionContext,
    model: &ModelSpec,
    partitions: &Partitions,
    staged: Arc<dyn TableProvider>,
    columns: &[String],
) -> Result<Arc<dyn TableProvider>> {
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let current = ctx.table(model.qualified_table()).await?;
    let outside = current_rows(current, ctx, model, partitions, false)?.select_columns(&cols)?;
    let staged = ctx.read_table(staged)?.select_columns(&cols)?;
    Ok(outside.union(staged)?.into_view())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(day: i32, course: &str, n: usize) -> (ScalarValue, ScalarValue, usize) {
        (ScalarValue::Date32(Some(day)), ScalarValue::Utf8(Some(course.into())), n)
    }

    #[test]
    fn by_snapshot_refresh_batches_cut_the_keys_in_order_within_the_budget() {
        assert_eq!(cut(&[3, 4, 2, 5, 1], 7), [0..2, 2..4, 4..5]);
        assert_eq!(cut(&[3, 4, 2, 5, 1], 6), [0..1, 1..3, 3..5]);
        // A key with more rows than the budget is a batch of its own.
        assert_eq!(cut(&[1, 9, 1], 5), [0..1, 1..2, 2..3]);
        let whole = cut(&[2, 2], usize::MAX);
        assert_eq!((whole.len(), whole[0].clone()), (1, 0..2));
        assert!(cut(&[], 5).is_empty());
        assert_eq!(changes_row_budget(Some(1 << 30)), 2 << 20);
        assert_eq!(changes_row_budget(None), usize::MAX);
    }

    #[test]
    fn full_refresh_batches_keep_the_groups_in_order_within_the_budget() {
        let groups =
            vec![group(1, "a", 300), group(1, "b", 500), group(2, "a", 200), group(2, "b", 900), group(3, "a", 100)];
        let batches = pack(groups.clone(), 1000);
        let seen: Vec<(Vec<(i32, String)>, usize)> = batches
            .iter()
            .map(|b| {
                let g = b
                    .groups
                    .iter()
                    .map(|(d, c)| match (d, c) {
                        (ScalarValue::Date32(Some(d)), ScalarValue::Utf8(Some(c))) => (*d, c.clone()),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                (g, b.keys)
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (vec![(1, "a".into()), (1, "b".into()), (2, "a".into())], 1000),
                (vec![(2, "b".into()), (3, "a".into())], 1000),
            ]
        );
        // A group larger than the budget is a batch of its own; every group is in one batch.
        let small = pack(groups.clone(), 400);
        assert_eq!(small.iter().map(|b| b.keys).collect::<Vec<_>>(), vec![300, 500, 200, 900, 100]);
        assert_eq!(pack(groups, usize::MAX).len(), 1);
        assert!(pack(Vec::new(), 10).is_empty());
        // 1 GiB gives batches of 26,214 keys; a tiny pool still one key per batch.
        assert_eq!(batch_budget(Some(1 << 30)), 26_214);
        assert_eq!(batch_budget(Some(10)), 1);
        assert_eq!(batch_budget(None), usize::MAX);
    }
}
