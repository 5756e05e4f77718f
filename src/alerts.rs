//! Alert e-mail: the outbox sender (lettre over SMTP) and deadline alerts.
//!
//! The executor records alerts in the outbox (`store::alerts`); here a sender claims the due ones,
//! mails them and records the outcome: [`send_due`] once, [`run_sender`] in the background for the
//! daemon, [`flush_run_alerts`] for the CLI's own runs. A failed send is retried with backoff and
//! given up only after [`ALERT_MAX_TRIES`] (kept, visible): an SMTP outage delays mail, never loses
//! it. [`check_deadlines`] records deadline alerts for runs not done in time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use crate::config::{SmtpSettings, SmtpTls};
use crate::dag::Dag;
use crate::store::{ALERT_MAX_TRIES, AlertRow, NewAlert, Store, StoreError};
use crate::timefmt;

/// Alerts claimed at a time.
const BATCH: i64 = 10;
/// Backoff after a failed send: 10 s · 2^(failed tries so far), at most 10 min.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Longest pause of [`run_sender`] between passes.
const IDLE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A bad `smtp.*` setting; names the key.
    #[error("config error: `{key}` {message}")]
    Config { key: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one [`send_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Alerts mailed (and recorded as sent).
    pub sent: usize,
    /// Alerts whose send failed: left pending for a later try, or given up.
    pub failed: usize,
}

/// What [`flush_run_alerts`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: usize,
    /// Alerts of those runs still pending (no SMTP, SMTP failed or out of time): the daemon's
    /// sender mails them later.
    pub left: u64,
}

/// An SMTP client built from `smtp.*` settings.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for messages.
    server: String,
    timeout: Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("server", &self.server).field("from", &self.from.to_string()).finish()
    }
}

/// Why one alert was not sent.
enum SendError {
    /// Worth another try later (connection, timeout, server refusal).
    Retry(String),
    /// No try can deliver it (no valid recipient, unbuildable message).
    GiveUp(String),
}

impl Mailer {
    /// The mailer of `smtp`, or `None` when `smtp.host` is empty (e-mail off: alerts wait in the
    /// outbox). Bad settings are a [`AlertError::Config`] naming the key.
    pub fn new(smtp: &SmtpSettings) -> Result<Option<Mailer>, AlertError> {
        let host = smtp.host.trim();
        if host.is_empty() {
            return Ok(None);
        }
        let from: Mailbox = smtp.from.trim().parse().map_err(|e| AlertError::Config {
            key: "smtp.from",
            message: format!("= {:?} is not an e-mail address ({e}); e.g. \"tmctl <tmctl@example.com>\"", smtp.from),
        })?;
        let tls_error = |e: lettre::transport::smtp::Error| AlertError::Config {
            key: "smtp.tls",
            message: format!("cannot set up TLS for smtp.host {host:?}: {}", error_chain(&e)),
        };
        let builder = match smtp.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(tls_error)?,
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(tls_error)?,
        };
        let mut builder = builder
            .port(smtp.port)
            .timeout(Some(smtp.timeout))
            // No pooled connections: a send cut off by the timeout must never leave a half-finished
            // SMTP conversation for the next alert to trip over. Alerts are rare; connect each time.
            .pool_config(PoolConfig::new().max_size(0));
        if !smtp.user.is_empty() {
            builder = builder.credentials(Credentials::new(smtp.user.clone(), smtp.password.clone()));
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            server: format!("{host}:{}", smtp.port),
            timeout: smtp.timeout,
        }))
    }

    /// `host:port` of the SMTP server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Connects, says EHLO (and STARTTLS/AUTH as configured) and quits, within the timeout: the
    /// server's answer, or why there is none.
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(format!("{} did not accept the connection", self.server)),
            Ok(Err(e)) => Err(format!("{}: {}", self.server, error_chain(&e))),
            Err(_) => Err(format!("{} did not answer within {:?} (smtp.timeout)", self.server, self.timeout)),
        }
    }

    /// How long a claim must hold for one batch: every send is bounded by the timeout.
    fn claim_for(&self) -> Duration {
        self.timeout.saturating_mul(BATCH as u32 + 1).saturating_add(Duration::from_secs(60))
    }

    /// Mails one alert: plain text, From `smtp.from`, To every valid recipient. The Message-ID
    /// depends only on the alert, so a resend after a crash reads as the same message.
    async fn send(&self, alert: &AlertRow) -> Result<(), SendError> {
        let message_id =
            format!("<tmctl.alert.{}.{}@{}>", alert.id, alert.created_at.timestamp_micros(), self.from.email.domain());
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(alert.subject.clone())
            .message_id(Some(message_id))
            .date_now()
            .header(ContentType::TEXT_PLAIN);
        let mut valid = 0;
        for recipient in &alert.recipients {
            match recipient.trim().parse::<Mailbox>() {
                Ok(mailbox) => {
                    builder = builder.to(mailbox);
                    valid += 1;
                }
                Err(e) => tracing::warn!(alert = alert.id, recipient, error = %e, "skipping a bad recipient address"),
            }
        }
        if valid == 0 {
            return Err(SendError::GiveUp(format!("no valid recipient address in {:?}", alert.recipients)));
        }
        let message = builder
            .body(alert.body.clone())
            .map_err(|e| SendError::GiveUp(format!("cannot build the message: {e}")))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError::Retry(format!("SMTP {}: {}", self.server, error_chain(&e)))),
            Err(_) => Err(SendError::Retry(format!(
                "SMTP {}: no answer within {} (smtp.timeout)",
                self.server,
                timefmt::human_duration(self.timeout)
            ))),
        }
    }
}

/// An error with its sources, `a: b: c`.
/// `e` and its sources, each once, joined by `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Delay before the next try of an alert that has failed `tries` times before this failure.
pub fn backoff(tries: u32) -> Duration {
    crate::util::doubling(FIRST_BACKOFF, tries, MAX_BACKOFF)
}

/// Claims the due alerts (in batches, until none is due) and mails them; each is recorded as sent,
/// or as failed with its error and a backoff (10 s · 2^tries, at most 10 min). When a send fails
/// for a reason worth retrying, the rest of the batch is released untried and the pass ends: with
/// the server down, a pass costs one timeout, not one per alert.
pub async fn send_due(store: &Store, mailer: &Mailer, owner: &str) -> Result<SendReport, AlertError> {
    let mut report = SendReport::default();
    send_pass(store, mailer, owner, None, &mut report).await?;
    Ok(report)
}

async fn send_pass(
    store: &Store,
    mailer: &Mailer,
    owner: &str,
    only_runs: Option<&[i64]>,
    report: &mut SendReport,
) -> Result<(), StoreError> {
    loop {
        let claimed = store.claim_due_alerts(owner, timefmt::now(), mailer.claim_for(), BATCH, only_runs).await?;
        if claimed.is_empty() {
            return Ok(());
        }
        for alert in &claimed {
            match mailer.send(alert).await {
                Ok(()) => {
                    if store.mark_alert_sent(alert.id, owner).await? {
                        report.sent += 1;
                        tracing::info!(alert = alert.id, kind = %alert.kind, dag = %alert.dag_id, "alert mailed");
                    } else {
                        tracing::warn!(
                            alert = alert.id,
                            "alert mailed after its claim was lost; it may be mailed twice"
                        );
                    }
                }
                Err(SendError::GiveUp(error)) => {
                    report.failed += 1;
                    tracing::error!(alert = alert.id, %error, "alert cannot be mailed; giving it up");
                    store.give_up_alert(alert.id, owner, &error).await?;
                }
                Err(SendError::Retry(error)) => {
                    report.failed += 1;
                    let delay = backoff(alert.tries);
                    let next = timefmt::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                    tracing::warn!(
                        alert = alert.id,
                        tries = alert.tries + 1,
                        retry_in = %timefmt::human_duration(delay),
                        %error,
                        "alert mail failed"
                    );
                    store.mark_alert_failed(alert.id, owner, &error, next).await?;
                    if alert.tries + 1 >= ALERT_MAX_TRIES {
                        tracing::error!(
                            alert = alert.id,
                            tries = alert.tries + 1,
                            "alert given up; it stays in the outbox"
                        );
                    }
                    store.release_alert_claims(owner).await?;
                    return Ok(());
                }
            }
        }
    }
}

/// The background sender of `tmctl serve`: sends due alerts, pausing at most 1 s between passes,
/// until `shutdown`; then releases its claims. Never panics and never returns early: errors are
/// logged and the next pass tries again. With `smtp.host` empty (or bad settings, logged) it only
/// waits for `shutdown`, and alerts stay pending in the outbox.
pub async fn run_sender(store: Store, smtp: SmtpSettings, owner: String, shutdown: CancellationToken) {
    let mailer = match Mailer::new(&smtp) {
        Ok(Some(mailer)) => mailer,
        Ok(None) => {
            tracing::info!("smtp.host is empty: alert e-mail is off; alerts stay in the outbox");
            shutdown.cancelled().await;
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "alert e-mail is off; alerts stay in the outbox");
            shutdown.cancelled().await;
            return;
        }
    };
    tracing::info!(server = %mailer.server, %owner, "alert sender started");
    while !shutdown.is_cancelled() {
        let pass = std::panic::AssertUnwindSafe(send_due(&store, &mailer, &owner)).catch_unwind();
        let outcome = tokio::select! {
            outcome = pass => outcome,
            _ = shutdown.cancelled() => break,
        };
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "alert sender pass failed"),
            Err(_) => tracing::error!("alert sender pass panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    match store.release_alert_claims(&owner).await {
        Ok(n) if n > 0 => tracing::info!(released = n, "alert sender stopped; released its claims"),
        Ok(_) => tracing::info!("alert sender stopped"),
        Err(e) => tracing::warn!(error = %e, "alert sender stopped; its claims expire on their own"),
    }
}

/// Mails the pending alerts of `run_pks` once, within `smtp.timeout` overall (for the CLI, which
/// should not wait on SMTP long). Whatever is not sent stays pending for the daemon's sender; the
/// claim makes every alert go out once either way. With `smtp.host` empty nothing is sent.
pub async fn flush_run_alerts(
    store: &Store,
    smtp: &SmtpSettings,
    owner: &str,
    run_pks: &[i64],
) -> Result<FlushReport, AlertError> {
    let mut report = SendReport::default();
    if let Some(mailer) = Mailer::new(smtp)?
        && !run_pks.is_empty()
    {
        let pass = tokio::time::timeout(smtp.timeout, send_pass(store, &mailer, owner, Some(run_pks), &mut report));
        let outcome = pass.await;
        // Cut off mid-send, or failed: hand what this sender still holds back to the others.
        store.release_alert_claims(owner).await?;
        match outcome {
            Ok(result) => result?,
            Err(_) => tracing::warn!(
                sent = report.sent,
                "alert mail took longer than smtp.timeout; the rest is left to the daemon"
            ),
        }
    }
    let left = store.count_pending_alerts(Some(run_pks)).await?;
    Ok(FlushReport { sent: report.sent, left })
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
        if dag.email.is_empty() {
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
            let fresh = store
                .enqueue_alert(&NewAlert {
                    dedup_key: &dedup,
                    kind: "deadline",
                    dag_id: &dag.id,
                    run_pk: Some(run.id),
                    task_id: None,
                    try_number: None,
                    recipients: &dag.email,
                    subject: &subject,
                    body: &body,
                })
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

    fn smtp(host: &str, from: &str) -> SmtpSettings {
        SmtpSettings {
            host: host.into(),
            port: 2525,
            tls: SmtpTls::None,
            user: String::new(),
            password: String::new(),
            from: from.into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_ten_minutes() {
        let secs: Vec<u64> = (0..8).map(|t| backoff(t).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn deadlines_read_in_minutes() {
        assert_eq!(minutes(Duration::from_secs(5400)), "90 min");
        assert_eq!(minutes(Duration::from_secs(45)), "45 s");
        assert_eq!(minutes(Duration::from_secs(90)), "90 s");
    }

    #[tokio::test]
    async fn mailers_come_from_settings() {
        assert!(Mailer::new(&smtp("", "x")).unwrap().is_none(), "no host, no mail");
        let mailer = Mailer::new(&smtp("127.0.0.1", "tmctl <tmctl@example.com>")).unwrap().unwrap();
        assert_eq!(mailer.server, "127.0.0.1:2525");
        let err = Mailer::new(&smtp("127.0.0.1", "not an address")).unwrap_err();
        assert!(
            err.to_string().starts_with("config error: `smtp.from` = \"not an address\" is not an e-mail address"),
            "{err}"
        );
        let err = Mailer::new(&smtp("127.0.0.1", "")).unwrap_err();
        assert!(err.to_string().starts_with("config error: `smtp.from`"), "{err}");
        let mut tls = smtp("mail.example.com", "tmctl@example.com");
        for mode in [SmtpTls::StartTls, SmtpTls::Implicit] {
            tls.tls = mode;
            assert!(Mailer::new(&tls).unwrap().is_some(), "{mode:?}");
        }
    }
}
