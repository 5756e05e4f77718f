//! The alert outbox: alerts are recorded here by the executor and sent by the SMTP sender (rows of
//! channel `email`) or the webhook sender (channel `webhook`, one row per URL), so an outage delays
//! them and never loses them. `dedup_key` makes recording idempotent; a sender claims due alerts
//! of its channel (`claimed_by`/`claimed_until`) so two senders never send the same alert.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::*;

/// Failed sending tries after which an alert is given up (`state = 'failed'`, kept with its last
/// error, never deleted). With the sender's backoff (10 s doubling, capped at 10 min) that is
/// about 2.5 hours of SMTP outage: mail is delayed, and after that left visible, never dropped.
pub const ALERT_MAX_TRIES: u32 = 20;

/// Rows the SMTP sender mails to `recipients`.
pub const CHANNEL_EMAIL: &str = "email";
/// Rows the webhook sender posts (`body`, a JSON payload) to the one URL in `recipients`.
pub const CHANNEL_WEBHOOK: &str = "webhook";

const ALERT_COLS: &str = "id, channel, dedup_key, kind, dag_id, run_pk, task_id, try_number, recipients, subject, body, state, \
                          tries, next_attempt_at, last_error, created_at, sent_at, claimed_by, claimed_until";

#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    /// `failure:<run_pk>:<task_id>:<try>` and the like: one alert per event, however often recorded.
    pub dedup_key: &'a str,
    /// failure, retry, recovery or deadline.
    pub kind: &'a str,
    pub dag_id: &'a str,
    pub run_pk: Option<i64>,
    pub task_id: Option<&'a str>,
    pub try_number: Option<u32>,
    pub recipients: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub id: i64,
    /// [`CHANNEL_EMAIL`] or [`CHANNEL_WEBHOOK`].
    pub channel: String,
    pub dedup_key: String,
    pub kind: String,
    pub dag_id: String,
    pub run_pk: Option<i64>,
    pub task_id: Option<String>,
    pub try_number: Option<u32>,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    pub state: String,
    pub tries: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The sender holding the alert, and until when (see [`Store::claim_due_alerts`]).
    pub claimed_by: Option<String>,
    pub claimed_until: Option<DateTime<Utc>>,
}

impl Store {
    /// Records an e-mail alert as pending. Returns false if an alert with the same key exists
    /// already.
    pub async fn enqueue_alert(&self, alert: &NewAlert<'_>) -> Result<bool> {
        self.enqueue_on(CHANNEL_EMAIL, alert).await
    }

    /// Records a webhook alert as pending: `recipients` holds the one URL, `body` the JSON payload
    /// posted as it is. Returns false if an alert with the same key exists already.
    pub async fn enqueue_webhook_alert(&self, alert: &NewAlert<'_>) -> Result<bool> {
        self.enqueue_on(CHANNEL_WEBHOOK, alert).await
    }

    async fn enqueue_on(&self, channel: &str, alert: &NewAlert<'_>) -> Result<bool> {
        let now = timefmt::to_db(timefmt::now());
        let recipients = serde_json::to_string(alert.recipients).unwrap_or_else(|_| "[]".into());
        let done = sqlx::query(
            "INSERT INTO alert_outbox (dedup_key, kind, dag_id, run_pk, task_id, try_number, recipients, subject, body, \
             state, tries, next_attempt_at, created_at, channel) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10, $11) \
             ON CONFLICT (dedup_key) DO NOTHING",
        )
        .bind(alert.dedup_key)
        .bind(alert.kind)
        .bind(alert.dag_id)
        .bind(alert.run_pk)
        .bind(alert.task_id)
        .bind(alert.try_number.map(i64::from))
        .bind(recipients)
        .bind(clean_text(alert.subject))
        .bind(clean_text(alert.body))
        .bind(now)
        .bind(channel)
        .execute(self.pool())
        .await
        .ctx("enqueue alert")?;
        Ok(done.rows_affected() == 1)
    }

    /// Alerts, newest first, optionally only those in one state.
    pub async fn list_alerts(&self, state: Option<&str>, limit: i64) -> Result<Vec<AlertRow>> {
        let sql =
            format!("SELECT {ALERT_COLS} FROM alert_outbox WHERE ($1 IS NULL OR state = $1) ORDER BY id DESC LIMIT $2");
        let rows = sqlx::query(&sql).bind(state).bind(limit).fetch_all(self.pool()).await.ctx("list alerts")?;
        rows.iter().map(alert_from).collect()
    }

    /// Claims up to `limit` due alerts for `owner` until `now + claim_for`: pending, with
    /// `next_attempt_at <= now`, and not held by another sender's unexpired claim; with
    /// `only_runs`, only alerts of those runs. Two claimers never get the same alert: PostgreSQL
    /// skips rows another transaction has locked (`FOR UPDATE SKIP LOCKED`), SQLite runs one
    /// writer at a time. `claim_for` must outlast the sending, or another sender may take the
    /// alert over and mail it again. Only e-mail alerts: see [`Store::claim_due_webhooks`].
    pub async fn claim_due_alerts(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        claim_for: std::time::Duration,
        limit: i64,
        only_runs: Option<&[i64]>,
    ) -> Result<Vec<AlertRow>> {
        self.claim_due_on(CHANNEL_EMAIL, owner, now, claim_for, limit, only_runs).await
    }

    /// [`Store::claim_due_alerts`] for webhook alerts.
    pub async fn claim_due_webhooks(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        claim_for: std::time::Duration,
        limit: i64,
        only_runs: Option<&[i64]>,
    ) -> Result<Vec<AlertRow>> {
        self.claim_due_on(CHANNEL_WEBHOOK, owner, now, claim_for, limit, only_runs).await
    }

    async fn claim_due_on(
        &self,
        channel: &str,
        owner: &str,
        now: DateTime<Utc>,
        claim_for: std::time::Duration,
        limit: i64,
        only_runs: Option<&[i64]>,
    ) -> Result<Vec<AlertRow>> {
        if limit <= 0 || only_runs.is_some_and(|runs| runs.is_empty()) {
            return Ok(Vec::new());
        }
        let runs_filter = match only_runs {
            None => String::new(),
            // Placeholders only: the run ids are bound like every other value.
            Some(runs) => format!(" AND run_pk IN ({})", placeholders(6, runs.len())),
        };
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE alert_outbox SET claimed_by = $1, claimed_until = $2 WHERE id IN (SELECT id FROM alert_outbox \
             WHERE channel = $5 AND state = 'pending' AND next_attempt_at <= $3 \
             AND (claimed_until IS NULL OR claimed_until <= $3){runs_filter} ORDER BY id LIMIT $4{lock}) \
             RETURNING {ALERT_COLS}"
        );
        let mut query = sqlx::query(&sql)
            .bind(owner)
            .bind(timefmt::to_db(later(now, claim_for)))
            .bind(timefmt::to_db(now))
            .bind(limit)
            .bind(channel);
        for run in only_runs.unwrap_or_default() {
            query = query.bind(*run);
        }
        let rows = query.fetch_all(self.pool()).await.ctx("claim alerts")?;
        let mut alerts = rows.iter().map(alert_from).collect::<Result<Vec<_>>>()?;
        alerts.sort_by_key(|a| a.id);
        Ok(alerts)
    }

    /// Records that a claimed alert was sent. False if `owner` no longer holds it (its claim
    /// expired and another sender took it over, or it is no longer pending).
    pub async fn mark_alert_sent(&self, id: i64, owner: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alert_outbox SET state = 'sent', sent_at = $3, claimed_by = NULL, claimed_until = NULL \
             WHERE id = $1 AND claimed_by = $2 AND state = 'pending'",
        )
        .bind(id)
        .bind(owner)
        .bind(timefmt::to_db(timefmt::now()))
        .execute(self.pool())
        .await
        .ctx("mark alert sent")?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a failed sending try of a claimed alert and releases it: `tries` + 1, `last_error`,
    /// and the next try not before `next_attempt_at`. The alert stays pending until it has failed
    /// [`ALERT_MAX_TRIES`] times; then it is `failed` (kept, with its error). False if `owner` no
    /// longer holds it.
    pub async fn mark_alert_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alert_outbox SET tries = tries + 1, last_error = $3, next_attempt_at = $4, claimed_by = NULL, \
             claimed_until = NULL, state = CASE WHEN tries + 1 >= $5 THEN 'failed' ELSE 'pending' END \
             WHERE id = $1 AND claimed_by = $2 AND state = 'pending'",
        )
        .bind(id)
        .bind(owner)
        .bind(clean_text(error))
        .bind(timefmt::to_db(next_attempt_at))
        .bind(i64::from(ALERT_MAX_TRIES))
        .execute(self.pool())
        .await
        .ctx("mark alert failed")?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claimed alert up at once (`state = 'failed'`, kept with `error`): for alerts no try
    /// can deliver, such as one without a single valid recipient address.
    pub async fn give_up_alert(&self, id: i64, owner: &str, error: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alert_outbox SET state = 'failed', tries = tries + 1, last_error = $3, claimed_by = NULL, \
             claimed_until = NULL WHERE id = $1 AND claimed_by = $2 AND state = 'pending'",
        )
        .bind(id)
        .bind(owner)
        .bind(clean_text(error))
        .execute(self.pool())
        .await
        .ctx("give up alert")?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases every claim `owner` holds on pending alerts (a sender stopping, or one whose time
    /// ran out), so other senders need not wait for the claims to expire. Returns how many.
    pub async fn release_alert_claims(&self, owner: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE alert_outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1 AND state = 'pending'",
        )
        .bind(owner)
        .execute(self.pool())
        .await
        .ctx("release alert claims")?;
        Ok(done.rows_affected())
    }

    /// How many alerts are pending (due or not, claimed or not), all or only those of `only_runs`.
    pub async fn count_pending_alerts(&self, only_runs: Option<&[i64]>) -> Result<u64> {
        if only_runs.is_some_and(|runs| runs.is_empty()) {
            return Ok(0);
        }
        let runs_filter = match only_runs {
            None => String::new(),
            Some(runs) => format!(" AND run_pk IN ({})", placeholders(1, runs.len())),
        };
        let sql = format!("SELECT COUNT(*) AS n FROM alert_outbox WHERE state = 'pending'{runs_filter}");
        let mut query = sqlx::query(&sql);
        for run in only_runs.unwrap_or_default() {
            query = query.bind(*run);
        }
        let row = query.fetch_one(self.pool()).await.ctx("count alerts")?;
        Ok(get_i64(&row, "n")?.max(0) as u64)
    }

    /// How many alerts of the outbox are in `state` (`pending`, `sent`, `failed`): the daemon's
    /// `/metrics` reads it at each scrape.
    pub async fn count_alerts_in_state(&self, state: &str) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM alert_outbox WHERE state = $1")
            .bind(state)
            .fetch_one(self.pool())
            .await
            .ctx("count alerts by state")?;
        Ok(get_i64(&row, "n")?.max(0) as u64)
    }

    /// The state of the newest finished run of `dag_id` that is not a backfill and whose logical
    /// date is before `before` (what a recovery alert compares with), if there is one.
    pub async fn previous_finished_state(&self, dag_id: &str, before: DateTime<Utc>) -> Result<Option<RunState>> {
        let row = sqlx::query(
            "SELECT state FROM dag_runs WHERE dag_id = $1 AND logical_date < $2 AND run_type <> 'backfill' \
             AND state IN ('success', 'failed') ORDER BY logical_date DESC LIMIT 1",
        )
        .bind(dag_id)
        .bind(timefmt::to_db(before))
        .fetch_optional(self.pool())
        .await
        .ctx("previous finished run")?;
        row.as_ref().map(|r| get_enum(r, "state")).transpose()
    }

    /// For a recovery alert of run `run_pk`: whether it had one already, and whether a failure
    /// alert (any channel) was recorded for it after its last recovery alert (or at all, when it
    /// has none): the run failed, was cleared and is running again.
    pub async fn recovery_history(&self, run_pk: i64) -> Result<(bool, bool)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM alert_outbox WHERE run_pk = $1 AND kind = 'recovery') AS recovered, \
             (SELECT COUNT(*) FROM alert_outbox f WHERE f.run_pk = $1 AND f.kind = 'failure' AND f.id > \
               COALESCE((SELECT MAX(g.id) FROM alert_outbox g WHERE g.run_pk = $1 AND g.kind = 'recovery'), 0)) \
             AS failed",
        )
        .bind(run_pk)
        .fetch_one(self.pool())
        .await
        .ctx("recovery history of a run")?;
        Ok((get_i64(&row, "recovered")? > 0, get_i64(&row, "failed")? > 0))
    }

    /// Runs of `dag_id` that may have missed a deadline: not `success`, data interval ended before
    /// `ended_before`, no deadline alert recorded yet, oldest first. Backfill runs are left out:
    /// they are created after their deadlines by design.
    pub async fn overdue_runs(&self, dag_id: &str, ended_before: DateTime<Utc>) -> Result<Vec<OverdueRun>> {
        let rows = sqlx::query(
            "SELECT r.id, r.dag_id, r.run_id, r.run_type, r.logical_date, r.ds, r.data_interval_end, r.state, \
             r.created_at FROM dag_runs r WHERE r.dag_id = $1 AND r.state <> 'success' AND r.data_interval_end < $2 \
             AND r.run_type <> 'backfill' \
             AND NOT EXISTS (SELECT 1 FROM alert_outbox a WHERE a.run_pk = r.id AND a.kind = 'deadline') \
             ORDER BY r.data_interval_end, r.id",
        )
        .bind(dag_id)
        .bind(timefmt::to_db(ended_before))
        .fetch_all(self.pool())
        .await
        .ctx("list overdue runs")?;
        rows.iter()
            .map(|r| {
                Ok(OverdueRun {
                    id: get_i64(r, "id")?,
                    dag_id: get_str(r, "dag_id")?,
                    run_id: get_str(r, "run_id")?,
                    run_type: get_enum(r, "run_type")?,
                    logical_date: get_ts(r, "logical_date")?,
                    ds: get_date(r, "ds")?,
                    data_interval_end: get_ts(r, "data_interval_end")?,
                    state: get_enum(r, "state")?,
                    created_at: get_ts(r, "created_at")?,
                })
            })
            .collect()
    }
}

/// A run that is not done although its data interval ended a while ago (see
/// [`Store::overdue_runs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueRun {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub run_type: RunType,
    pub logical_date: DateTime<Utc>,
    pub ds: chrono::NaiveDate,
    pub data_interval_end: DateTime<Utc>,
    pub state: RunState,
    pub created_at: DateTime<Utc>,
}

/// `t + d`, at most 9999-12-31T23:59:59Z (later times would not sort as text).
fn later(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    use chrono::TimeZone;
    let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().unwrap_or(t);
    chrono::Duration::from_std(d).ok().and_then(|d| t.checked_add_signed(d)).map_or(last, |end| end.min(last))
}

fn alert_from(r: &AnyRow) -> Result<AlertRow> {
    let recipients = get_str(r, "recipients")?;
    Ok(AlertRow {
        id: get_i64(r, "id")?,
        channel: get_str(r, "channel")?,
        dedup_key: get_str(r, "dedup_key")?,
        kind: get_str(r, "kind")?,
        dag_id: get_str(r, "dag_id")?,
        run_pk: get_opt_i64(r, "run_pk")?,
        task_id: get_opt_str(r, "task_id")?,
        try_number: get_opt_i64(r, "try_number")?.map(|n| n as u32),
        recipients: serde_json::from_str(&recipients)
            .map_err(|_| StoreError::Corrupt { column: "recipients", value: recipients })?,
        subject: get_str(r, "subject")?,
        body: get_str(r, "body")?,
        state: get_str(r, "state")?,
        tries: get_i64(r, "tries")? as u32,
        next_attempt_at: get_ts(r, "next_attempt_at")?,
        last_error: get_opt_str(r, "last_error")?,
        created_at: get_ts(r, "created_at")?,
        sent_at: get_opt_ts(r, "sent_at")?,
        claimed_by: get_opt_str(r, "claimed_by")?,
        claimed_until: get_opt_ts(r, "claimed_until")?,
    })
}
