//! Recording alerts in the outbox: one row per channel and URL ([`record`]), the webhook payload,
//! and the recovery and deadline alerts ([`record_recovery`], [`check_deadlines`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::AlertError;
use crate::dag::Dag;
use crate::store::{NewAlert, RunRow, RunState, RunType, Store, StoreError};

/// One alert for every channel: `alert` (its `recipients` the e-mail addresses, possibly none)
/// and one webhook row per URL of `webhooks`, each posted with `payload` as its body.
pub struct Record<'a> {
    pub alert: NewAlert<'a>,
    pub webhooks: &'a [String],
    pub payload: serde_json::Value,
}

/// Records `record` in the outbox: an e-mail row when there are recipients, and one webhook row per
/// URL (dedup key `<key>|webhook:<first 16 hex digits of the URL's SHA-256>`), so each channel and
/// URL gets the alert exactly once however often it is recorded. True if any row was new.
pub async fn record(store: &Store, record: &Record<'_>) -> Result<bool, StoreError> {
    let mut fresh = false;
    if !record.alert.recipients.is_empty() {
        fresh |= store.enqueue_alert(&record.alert).await?;
    }
    let body = record.payload.to_string();
    for url in record.webhooks {
        let key = webhook_key(record.alert.dedup_key, url);
        let row =
            NewAlert { dedup_key: &key, recipients: std::slice::from_ref(url), body: &body, ..record.alert.clone() };
        fresh |= store.enqueue_webhook_alert(&row).await?;
    }
    Ok(fresh)
}

/// The dedup key of the webhook row of alert `key` for `url`.
pub fn webhook_key(key: &str, url: &str) -> String {
    use sha2::Digest;
    let digest = crate::util::hex(&sha2::Sha256::digest(url.as_bytes()));
    format!("{key}|webhook:{}", &digest[..16])
}

/// The Slack-compatible body of a webhook alert: `{"text": "…"}` (what Slack, Mattermost and
/// Teams' Slack-compatible endpoints show) plus `fields` (dag, run, state, url, …) beside it.
pub fn payload(text: &str, fields: serde_json::Value) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    body.insert("text".into(), serde_json::Value::String(text.to_string()));
    if let serde_json::Value::Object(more) = fields {
        for (k, v) in more {
            body.entry(k).or_insert(v);
        }
    }
    serde_json::Value::Object(body)
}

/// Records a recovery alert (kind `recovery`, to the DAG's e-mail recipients and webhooks) for
/// run `run` of `dag`, which just succeeded, if the DAG had failed before it: the newest earlier
/// finished run that is not a backfill (by logical date) failed, or this very run failed (a
/// failure alert was recorded for it) before it was cleared and run again. At most one per
/// failure: a run that recovered once does not again unless it failed again. Backfill runs never
/// send one (they rework the past; their failures are in the backfill's report). Returns whether
/// an alert was recorded.
pub async fn record_recovery(
    store: &Store,
    dag: &Dag,
    run: &RunRow,
    web_base_url: &str,
    masker: &crate::secrets::Masker,
) -> Result<bool, StoreError> {
    if run.run_type == RunType::Backfill || !dag.email_on_recovery || (dag.email.is_empty() && dag.webhook.is_empty()) {
        return Ok(false);
    }
    let (recovered_before, failed_since) = store.recovery_history(run.id).await?;
    let previous_failed = store.previous_finished_state(&dag.id, run.logical_date).await? == Some(RunState::Failed);
    if !(failed_since || (previous_failed && !recovered_before)) {
        return Ok(false);
    }
    // One key per execution of the run: a resumed execution keeps its start time, a re-run gets a
    // new one.
    let started = run.started_at.unwrap_or(run.created_at).timestamp_micros();
    let dedup = format!("recovery:{}:{started}", run.id);
    let url = format!("{}/runs/{}", web_base_url.trim_end_matches('/'), run.id);
    let subject = format!("[tmctl] RECOVERED: {} succeeded for {} after a failure", dag.id, run.ds);
    let what = if failed_since { "this run had failed before it was run again" } else { "the previous run had failed" };
    let body = format!(
        "DAG: {}\nRun: {} (id {})\nLogical date: {}\nState: success ({what})\n\nRun: {url}\n",
        dag.id,
        run.run_id,
        run.id,
        run.logical_date.with_timezone(&dag.timezone).to_rfc3339(),
    );
    let (subject, body) = (masker.mask(&subject), masker.mask(&body));
    let fields = serde_json::json!({
        "kind": "recovery",
        "dag": dag.id,
        "run": run.run_id,
        "run_pk": run.id,
        "logical_date": run.logical_date.to_rfc3339(),
        "state": "success",
        "url": url,
        "alert": dedup,
    });
    let fresh = record(
        store,
        &Record {
            alert: NewAlert {
                dedup_key: &dedup,
                kind: "recovery",
                dag_id: &dag.id,
                run_pk: Some(run.id),
                task_id: None,
                try_number: None,
                recipients: &dag.email,
                subject: &subject,
                body: &body,
            },
            webhooks: &dag.webhook,
            payload: payload(&format!("{subject}\n{url}"), fields),
        },
    )
    .await?;
    if fresh {
        tracing::info!(dag = %dag.id, run = run.id, "recovery alert recorded");
    }
    Ok(fresh)
}

/// Records one deadline alert (`deadline:<run_pk>`, kind `deadline`, to the DAG's recipients) for
/// every run of a DAG with a `deadline` that is not successful `deadline` after its data interval
/// ended. Runs created after their deadline had passed (backfills, late manual runs) get none:
/// they could never have met it. Idempotent; returns how many alerts were new.
pub async fn check_deadlines(
    store: &Store,
    dags: &[Dag],
    web_base_url: &str,
    now: DateTime<Utc>,
) -> Result<usize, AlertError> {
    let mut recorded = 0;
    for dag in dags {
        let Some(deadline) = dag.deadline else { continue };
        if dag.email.is_empty() && dag.webhook.is_empty() {
            continue;
        }
        let Ok(late) = chrono::Duration::from_std(deadline) else { continue };
        let Some(ended_before) = now.checked_sub_signed(late) else { continue };
        for run in store.overdue_runs(&dag.id, ended_before).await? {
            let due = run.data_interval_end.checked_add_signed(late).unwrap_or(DateTime::<Utc>::MAX_UTC);
            if run.created_at >= due {
                continue;
            }
            let subject = format!(
                "[tmctl] DEADLINE MISSED: {} for {} not done {} after its data interval ended",
                dag.id,
                run.ds,
                minutes(deadline)
            );
            let local = |t: DateTime<Utc>| t.with_timezone(&dag.timezone).to_rfc3339();
            let body = format!(
                "DAG: {dag_id}\nRun: {run_id} (id {pk})\nLogical date: {logical}\nData interval ended: {ended}\n\
                 Deadline: {limit} later, {due}\nState at {checked}: {state}\n\nRun: {base}/runs/{pk}\n",
                dag_id = dag.id,
                run_id = run.run_id,
                pk = run.id,
                logical = local(run.logical_date),
                ended = local(run.data_interval_end),
                limit = minutes(deadline),
                due = local(due),
                checked = local(now),
                state = run.state,
                base = web_base_url.trim_end_matches('/'),
            );
            let dedup = format!("deadline:{}", run.id);
            let url = format!("{}/runs/{}", web_base_url.trim_end_matches('/'), run.id);
            let fields = serde_json::json!({
                "kind": "deadline",
                "dag": dag.id,
                "run": run.run_id,
                "run_pk": run.id,
                "logical_date": run.logical_date.to_rfc3339(),
                "state": run.state.as_str(),
                "url": url,
                "alert": dedup,
            });
            let fresh = record(
                store,
                &Record {
                    alert: NewAlert {
                        dedup_key: &dedup,
                        kind: "deadline",
                        dag_id: &dag.id,
                        run_pk: Some(run.id),
                        task_id: None,
                        try_number: None,
                        recipients: &dag.email,
                        subject: &subject,
                        body: &body,
                    },
                    webhooks: &dag.webhook,
                    payload: payload(&format!("{subject}\n{url}"), fields),
                },
            )
            .await?;
            if fresh {
                recorded += 1;
                tracing::warn!(dag = %dag.id, run = run.id, ds = %run.ds, state = %run.state, "deadline missed");
            }
        }
    }
    Ok(recorded)
}

/// `90 min`; a deadline under a minute (or not whole minutes) in seconds, `45 s`.
fn minutes(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) { format!("{} min", secs / 60) } else { format!("{secs} s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_read_in_minutes() {
        assert_eq!(minutes(Duration::from_secs(5400)), "90 min");
        assert_eq!(minutes(Duration::from_secs(45)), "45 s");
        assert_eq!(minutes(Duration::from_secs(90)), "90 s");
    }
}
