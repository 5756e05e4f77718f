//! The alert outbox: alerts are recorded here by the executor and sent by the SMTP sender, so an
//! SMTP outage delays mail and never loses it. `dedup_key` makes recording idempotent.

use chrono::{DateTime, Utc};

use super::*;

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
}

impl Store {
    /// Records an alert as pending. Returns false if an alert with the same key exists already.
    pub async fn enqueue_alert(&self, alert: &NewAlert<'_>) -> Result<bool> {
        let now = timefmt::to_db(timefmt::now());
        let recipients = serde_json::to_string(alert.recipients).unwrap_or_else(|_| "[]".into());
        let done = sqlx::query(
            "INSERT INTO alert_outbox (dedup_key, kind, dag_id, run_pk, task_id, try_number, recipients, subject, body, \
             state, tries, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10) \
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
        .execute(self.pool())
        .await
        .ctx("enqueue alert")?;
        Ok(done.rows_affected() == 1)
    }

    /// Alerts, newest first, optionally only those in one state.
    pub async fn list_alerts(&self, state: Option<&str>, limit: i64) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(
            "SELECT id, dedup_key, kind, dag_id, run_pk, task_id, try_number, recipients, subject, body, state, tries, \
             next_attempt_at, last_error, created_at, sent_at FROM alert_outbox WHERE ($1 IS NULL OR state = $1) \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(state)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .ctx("list alerts")?;
        rows.iter()
            .map(|r| {
                let recipients = get_str(r, "recipients")?;
                Ok(AlertRow {
                    id: get_i64(r, "id")?,
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
                })
            })
            .collect()
    }
}
