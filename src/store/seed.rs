//! Synthetic history for `tmctl bench --ui`: finished runs of one DAG with their task instances,
//! one try each (with a short log), a few backfills over the latest dates, and ingestion registry
//! rows, written with batched multi-row INSERTs in one transaction. Only for fresh benchmark
//! databases; nothing else calls it.

use chrono::{Duration, NaiveDate, TimeZone};

use super::*;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedSpec<'a> {
    pub dag_id: &'a str,
    /// `(task_id, kind)` in topological order; every run gets one instance of each.
    pub tasks: &'a [(String, String)],
    /// Daily runs starting on `first_date`.
    pub runs: usize,
    pub first_date: NaiveDate,
    /// Every n-th run fails at its last task (0: none fails).
    pub fail_every: usize,
    /// Backfills over the latest runs, `backfill_len` dates each (their runs become backfill runs).
    pub backfills: usize,
    pub backfill_len: usize,
    /// Ingestion registry rows.
    pub ingestions: usize,
}

/// Rows written.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SeedCounts {
    pub runs: u64,
    pub task_instances: u64,
    pub attempts: u64,
    pub backfills: u64,
    /// Ids of the backfills written, latest dates first.
    pub backfill_ids: Vec<i64>,
    pub backfill_dates: u64,
    pub ingestions: u64,
}

/// One bound value.
enum V {
    I(i64),
    S(String),
    OI(Option<i64>),
    OS(Option<String>),
}

/// Most bound parameters per statement. SQLite allows 32,766 (PostgreSQL 65,535), but sqlx
/// looks each `$N` up by name (`sqlite3_bind_parameter_name`, a linear scan), so binding is
/// quadratic in the statement's parameters: about a thousand is the sweet spot.
const MAX_BINDS: usize = 1_000;
/// Most rows per statement.
const MAX_ROWS: usize = 1_000;

/// `INSERT INTO … (cols) VALUES ($1, …), (…)` for `rows`, in batches; returns the rows written.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    head: &str,
    cols: usize,
    rows: Vec<Vec<V>>,
    action: &'static str,
) -> Result<u64> {
    let per = (MAX_BINDS / cols).clamp(1, MAX_ROWS);
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<Vec<V>> = rows.by_ref().take(per).collect();
        let mut sql = String::with_capacity(head.len() + batch.len() * cols * 6);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        let mut n = 0;
        for (r, row) in batch.iter().enumerate() {
            debug_assert_eq!(row.len(), cols);
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..cols {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for v in batch.into_iter().flatten() {
            q = match v {
                V::I(i) => q.bind(i),
                V::S(s) => q.bind(s),
                V::OI(i) => q.bind(i),
                V::OS(s) => q.bind(s),
            };
        }
        written += q.execute(&mut **tx).await.ctx(action)?.rows_affected();
    }
    Ok(written)
}

fn ts(t: DateTime<Utc>) -> V {
    V::S(timefmt::to_db(t))
}

fn s(x: impl Into<String>) -> V {
    V::S(x.into())
}

impl Store {
    /// Writes the history described by `spec` (see the module doc). Meant for an empty DB: a run
    /// that already exists for the DAG and date is a unique-constraint error.
    pub async fn seed_history(&self, spec: &SeedSpec<'_>) -> Result<SeedCounts> {
        let mut counts = SeedCounts::default();
        let mut tx = self.pool().begin().await.ctx("begin")?;
        let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        let dates: Vec<NaiveDate> = (0..spec.runs).map(|i| spec.first_date + Duration::days(i as i64)).collect();
        let failed = |i: usize| spec.fail_every > 0 && i % spec.fail_every == spec.fail_every - 1;

        // Backfills over the latest dates: backfill b covers runs [start_b, start_b + len).
        let mut backfill_of = vec![None::<usize>; spec.runs];
        let mut backfill_ranges = Vec::new();
        for b in 0..spec.backfills {
            let end = spec.runs.saturating_sub(b * spec.backfill_len);
            let start = end.saturating_sub(spec.backfill_len);
            if start >= end {
                break;
            }
            for slot in &mut backfill_of[start..end] {
                *slot = Some(b);
            }
            backfill_ranges.push((start, end));
        }
        let mut backfill_ids = Vec::new();
        for (start, end) in &backfill_ranges {
            let any_failed = (*start..*end).any(failed);
            let created = midnight(dates[*end - 1]) + Duration::days(1);
            let row = sqlx::query(
                "INSERT INTO backfills (dag_id, from_date, to_date, reprocess, max_active_runs, run_backwards, state, \
                 created_at, completed_at, conf) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(spec.dag_id)
            .bind(dates[*start].to_string())
            .bind(dates[*end - 1].to_string())
            .bind("completed")
            .bind(4_i64)
            .bind(0_i64)
            .bind(if any_failed { "failed" } else { "completed" })
            .bind(timefmt::to_db(created))
            .bind(timefmt::to_db(created + Duration::minutes(30)))
            .bind("{}")
            .fetch_one(&mut *tx)
            .await
            .ctx("seed backfills")?;
            backfill_ids.push(get_i64(&row, "id")?);
            counts.backfills += 1;
            counts.backfill_ids.push(get_i64(&row, "id")?);
        }

        // Runs: each starts a second after its interval ends; tasks run one after another.
        let task_secs = |run: usize, task: usize| 1 + ((run * 31 + task * 17) % 9) as i64;
        let run_rows: Vec<Vec<V>> = dates
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let logical = midnight(*d);
                let end = logical + Duration::days(1);
                let started = end + Duration::seconds(1);
                let took: i64 = (0..spec.tasks.len()).map(|t| task_secs(i, t)).sum();
                let (run_type, backfill) = match backfill_of[i] {
                    Some(b) => (RunType::Backfill, Some(backfill_ids[b])),
                    None => (RunType::Scheduled, None),
                };
                vec![
                    s(spec.dag_id),
                    s(super::runs::make_run_id(run_type, logical)),
                    s(run_type.as_str()),
                    ts(logical),
                    s(d.to_string()),
                    ts(logical),
                    ts(end),
                    s(if failed(i) { RunState::Failed } else { RunState::Success }.as_str()),
                    s("{}"),
                    V::OI(backfill),
                    ts(end),
                    ts(started),
                    ts(started + Duration::seconds(took)),
                ]
            })
            .collect();
        counts.runs = insert_rows(
            &mut tx,
            "INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, ds, data_interval_start, \
             data_interval_end, state, conf, backfill_id, created_at, started_at, ended_at)",
            13,
            run_rows,
            "seed runs",
        )
        .await?;
        let mut run_pk = std::collections::HashMap::new();
        for row in sqlx::query("SELECT id, ds FROM dag_runs WHERE dag_id = $1")
            .bind(spec.dag_id)
            .fetch_all(&mut *tx)
            .await
            .ctx("seed runs")?
        {
            run_pk.insert(get_str(&row, "ds")?, get_i64(&row, "id")?);
        }

        // Task instances and their single try, a chunk of runs at a time.
        let last = spec.tasks.len().saturating_sub(1);
        for chunk in (0..spec.runs).collect::<Vec<_>>().chunks(200) {
            let mut ti_rows = Vec::new();
            let mut timing = std::collections::HashMap::new();
            for &i in chunk {
                let pk = run_pk[&dates[i].to_string()];
                let mut at = midnight(dates[i]) + Duration::days(1) + Duration::seconds(1);
                for (t, (task_id, kind)) in spec.tasks.iter().enumerate() {
                    let secs = task_secs(i, t);
                    let end = at + Duration::seconds(secs);
                    let fails = failed(i) && t == last;
                    let state = if fails { TaskState::Failed } else { TaskState::Success };
                    ti_rows.push(vec![
                        V::I(pk),
                        s(task_id.as_str()),
                        s(kind.as_str()),
                        s(state.as_str()),
                        V::I(1),
                        V::I(1),
                        ts(at),
                        ts(end),
                        V::I(secs * 1000),
                        V::OS(fails.then(|| "synthetic failure for the UI benchmark".to_string())),
                        ts(end),
                    ]);
                    timing.insert((pk, task_id.clone()), (at, end, secs, fails, kind.clone()));
                    at = end;
                }
            }
            counts.task_instances += insert_rows(
                &mut tx,
                "INSERT INTO task_instances (run_pk, task_id, kind, state, try_number, max_tries, started_at, \
                 ended_at, duration_ms, error, updated_at)",
                11,
                ti_rows,
                "seed task instances",
            )
            .await?;
            let (lo, hi) = (run_pk[&dates[chunk[0]].to_string()], run_pk[&dates[chunk[chunk.len() - 1]].to_string()]);
            let tis = sqlx::query("SELECT id, run_pk, task_id FROM task_instances WHERE run_pk >= $1 AND run_pk <= $2")
                .bind(lo.min(hi))
                .bind(lo.max(hi))
                .fetch_all(&mut *tx)
                .await
                .ctx("seed task instances")?;
            let mut attempt_rows = Vec::with_capacity(tis.len());
            for row in &tis {
                let (ti, pk, task_id) = (get_i64(row, "id")?, get_i64(row, "run_pk")?, get_str(row, "task_id")?);
                let Some((start, end, secs, fails, kind)) = timing.get(&(pk, task_id.clone())) else { continue };
                let log = format!(
                    "{} INFO tmctl::executor: try 1 of {task_id} ({kind}) started\n{} INFO tmctl::tasks: {}\n{} {} \
                     tmctl::executor: try 1 of {task_id} {} after {secs} s\n",
                    timefmt::to_db(*start),
                    timefmt::to_db(*start),
                    if *fails { "synthetic failure for the UI benchmark" } else { "nothing to do" },
                    timefmt::to_db(*end),
                    if *fails { "ERROR" } else { "INFO" },
                    if *fails { "failed" } else { "succeeded" },
                );
                attempt_rows.push(vec![
                    V::I(ti),
                    V::I(pk),
                    s(task_id),
                    V::I(1),
                    s(if *fails { AttemptState::Failed } else { AttemptState::Success }.as_str()),
                    s("bench-host"),
                    V::I(4242),
                    ts(*start),
                    ts(*end),
                    V::I(secs * 1000),
                    V::OS(fails.then(|| "synthetic failure for the UI benchmark".to_string())),
                    s(log),
                ]);
            }
            counts.attempts += insert_rows(
                &mut tx,
                "INSERT INTO task_attempts (ti_pk, run_pk, task_id, try_number, state, hostname, pid, started_at, \
                 ended_at, duration_ms, error, log)",
                12,
                attempt_rows,
                "seed task attempts",
            )
            .await?;
        }

        // Per-date outcomes of the backfills.
        let mut date_rows = Vec::new();
        for (b, (start, end)) in backfill_ranges.iter().enumerate() {
            for (i, date) in dates.iter().enumerate().take(*end).skip(*start) {
                date_rows.push(vec![
                    V::I(backfill_ids[b]),
                    ts(midnight(*date)),
                    s(date.to_string()),
                    V::OI(run_pk.get(&date.to_string()).copied()),
                    s(if failed(i) { "failed" } else { "succeeded" }),
                    V::OS(None),
                ]);
            }
        }
        counts.backfill_dates = insert_rows(
            &mut tx,
            "INSERT INTO backfill_dates (backfill_id, logical_date, ds, run_pk, outcome, reason)",
            6,
            date_rows,
            "seed backfill dates",
        )
        .await?;

        // Ingestion registry: files of five courses, a few rejected or skipped.
        let statuses = ["accepted", "accepted", "accepted", "accepted", "skipped", "rejected"];
        let ingest_rows: Vec<Vec<V>> = (0..spec.ingestions)
            .map(|i| {
                let course = format!("course_{}", i % 5 + 1);
                let date = spec.first_date + Duration::days((i / 5) as i64 % spec.runs.max(1) as i64);
                let status = statuses[i % statuses.len()];
                let file = format!("rounds_{course}_{date}_{i}.csv");
                vec![
                    s("bronze"),
                    V::OS(Some(course.clone())),
                    V::OS(Some(date.to_string())),
                    s(file.clone()),
                    V::OS(Some(format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15))),
                    V::OI(Some(10_000 + (i as i64 * 37) % 90_000)),
                    V::OI(Some(100 + (i as i64 * 13) % 900)),
                    s(status),
                    V::OS((status == "rejected").then(|| "missing required column round_id".to_string())),
                    V::OS((status == "accepted").then(|| format!("course_id={course}/ingest_date={date}/{file}"))),
                    V::OS((status == "rejected").then(|| format!("bronze/{date}/{file}"))),
                    V::OI(None),
                    V::OS(None),
                    ts(midnight(date) + Duration::hours(1)),
                ]
            })
            .collect();
        counts.ingestions = insert_rows(
            &mut tx,
            "INSERT INTO ingestion_registry (layer, course_id, ingest_date, filename, sha256, size_bytes, row_count, \
             status, reason, landing_key, quarantine_key, run_pk, task_id, created_at)",
            14,
            ingest_rows,
            "seed ingestion registry",
        )
        .await?;

        tx.commit().await.ctx("commit")?;
        Ok(counts)
    }
}
