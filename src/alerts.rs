//! Alerts: the outbox senders (e-mail with lettre over SMTP, webhooks with reqwest), recovery and
//! deadline alerts.
//!
//! The executor records alerts in the outbox (`store::alerts`) through [`record`]: one e-mail row
//! for the recipients and one webhook row per URL, each with its own dedup key. Here a sender
//! claims the due rows of its channel, sends them and records the outcome: [`send_due`] /
//! [`send_due_webhooks`] once, [`run_sender`] / [`run_webhook_sender`] in the background for the
//! daemon, [`flush_run_alerts`] / [`flush_run_webhooks`] for the CLI's own runs. A failed send is
//! retried with backoff and given up only after [`ALERT_MAX_TRIES`] (kept, visible): an outage
//! delays alerts, never loses them. [`record_recovery`] records the all-clear after a failure,
//! [`check_deadlines`] deadline alerts for runs not done in time. A webhook body is
//! Slack-compatible JSON (`text` plus dag, run, state, url…), signed with HMAC-SHA256 in
//! [`SIGNATURE_HEADER`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use crate::config::{AlertSettings, SmtpSettings, SmtpTls};
use crate::dag::Dag;
use crate::store::{ALERT_MAX_TRIES, AlertRow, NewAlert, RunRow, RunState, RunType, Store, StoreError};
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
            let outcome = mailer.send(alert).await;
            if record_try(store, owner, alert, outcome, &MAIL, report).await? {
                store.release_alert_claims(owner).await?;
                return Ok(());
            }
        }
    }
}

/// How one outbox channel's deliveries are logged and backed off.
struct Channel {
    sent: &'static str,
    lost: &'static str,
    give_up: &'static str,
    failed: &'static str,
    first_backoff: Duration,
}

const MAIL: Channel = Channel {
    sent: "alert mailed",
    lost: "alert mailed after its claim was lost; it may be mailed twice",
    give_up: "alert cannot be mailed; giving it up",
    failed: "alert mail failed",
    first_backoff: FIRST_BACKOFF,
};

/// Records how one delivery try of a claimed `alert` went: sent, given up, or failed with its
/// error and the next try after `channel`'s backoff (doubling from its first wait, at most 10 min).
/// True when it failed for a reason worth retrying (the caller decides what else waits).
async fn record_try(
    store: &Store,
    owner: &str,
    alert: &AlertRow,
    outcome: Result<(), SendError>,
    channel: &Channel,
    report: &mut SendReport,
) -> Result<bool, StoreError> {
    match outcome {
        Ok(()) => {
            if store.mark_alert_sent(alert.id, owner).await? {
                report.sent += 1;
                tracing::info!(alert = alert.id, kind = %alert.kind, dag = %alert.dag_id, "{}", channel.sent);
            } else {
                tracing::warn!(alert = alert.id, "{}", channel.lost);
            }
            Ok(false)
        }
        Err(SendError::GiveUp(error)) => {
            report.failed += 1;
            tracing::error!(alert = alert.id, %error, "{}", channel.give_up);
            store.give_up_alert(alert.id, owner, &error).await?;
            Ok(false)
        }
        Err(SendError::Retry(error)) => {
            report.failed += 1;
            let delay = crate::util::doubling(channel.first_backoff, alert.tries, MAX_BACKOFF);
            let next = timefmt::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            tracing::warn!(
                alert = alert.id,
                tries = alert.tries + 1,
                retry_in = %timefmt::human_duration(delay),
                %error,
                "{}",
                channel.failed
            );
            store.mark_alert_failed(alert.id, owner, &error, next).await?;
            if alert.tries + 1 >= ALERT_MAX_TRIES {
                tracing::error!(alert = alert.id, tries = alert.tries + 1, "alert given up; it stays in the outbox");
            }
            Ok(true)
        }
    }
}

/// Runs `pass` until `shutdown`, pausing at most [`IDLE`] between passes; a pass that fails or
/// panics is logged and the next one tries again. Then releases `owner`'s claims.
async fn run_passes<F, Fut>(what: &str, store: &Store, owner: &str, shutdown: &CancellationToken, pass: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<SendReport, AlertError>>,
{
    while !shutdown.is_cancelled() {
        let outcome = tokio::select! {
            outcome = std::panic::AssertUnwindSafe(pass()).catch_unwind() => outcome,
            _ = shutdown.cancelled() => break,
        };
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "{what} pass failed"),
            Err(_) => tracing::error!("{what} pass panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    match store.release_alert_claims(owner).await {
        Ok(n) if n > 0 => tracing::info!(released = n, "{what} stopped; released its claims"),
        Ok(_) => tracing::info!("{what} stopped"),
        Err(e) => tracing::warn!(error = %e, "{what} stopped; its claims expire on their own"),
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
    run_passes("alert sender", &store, &owner, &shutdown, || send_due(&store, &mailer, &owner)).await;
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

// ---- recording to every channel -------------------------------------------------------------------

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

// ---- webhooks -----------------------------------------------------------------------------------

/// The header carrying the body's signature: `sha256=<hex HMAC-SHA256 of the body>` keyed with
/// `alerts.webhook_secret`.
pub const SIGNATURE_HEADER: &str = "X-Tmctl-Signature";
/// The header carrying the alert's dedup key, so a receiver can drop a redelivery.
pub const ALERT_HEADER: &str = "X-Tmctl-Alert";

/// Whether `url` can be a webhook: an absolute `http://` or `https://` URL with a host. The error
/// completes "`webhook`: …".
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(u) => Err(format!("\"{}\" is not an http(s) URL (scheme `{}`)", redact_webhook(url), u.scheme())),
        Err(e) => Err(format!("\"{}\" is not an http(s) URL ({e})", redact_webhook(url))),
    }
}

/// A webhook URL as logs and errors show it: scheme, host and port only. The path of a Slack or
/// Teams webhook is its secret.
pub fn redact_webhook(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(u) if u.host_str().is_some() => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() { "/…" } else { "" };
            format!("{}://{}{port}{rest}", u.scheme(), u.host_str().unwrap_or_default())
        }
        _ => url.split(['/', '?']).next().unwrap_or_default().chars().take(12).collect(),
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed with `secret`, as [`SIGNATURE_HEADER`] carries
/// it (GitHub's `X-Hub-Signature-256` format).
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", crate::util::hex(&mac.finalize().into_bytes()))
}

/// An HTTP client for webhook alerts (reqwest, no redirects followed: a redirect is a failed
/// try, as a POST must not turn into a GET).
#[derive(Clone)]
pub struct Webhooks {
    client: reqwest::Client,
    secret: String,
    timeout: Duration,
    first_backoff: Duration,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").field("signed", &!self.secret.is_empty()).field("timeout", &self.timeout).finish()
    }
}

impl Webhooks {
    pub fn new(settings: &AlertSettings) -> Result<Webhooks, AlertError> {
        let client = reqwest::Client::builder()
            .timeout(settings.webhook_timeout)
            .connect_timeout(settings.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tmctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertError::Config {
                key: "alerts.webhook_timeout",
                message: format!("cannot build the webhook HTTP client: {}", error_chain(&e)),
            })?;
        Ok(Webhooks {
            client,
            secret: settings.webhook_secret.clone(),
            timeout: settings.webhook_timeout,
            first_backoff: FIRST_BACKOFF,
        })
    }

    /// The first retry waits `first` (then doubling up to 10 min) instead of 10 s; for tests.
    pub fn with_first_backoff(mut self, first: Duration) -> Webhooks {
        self.first_backoff = first;
        self
    }

    fn claim_for(&self) -> Duration {
        self.timeout.saturating_mul(BATCH as u32 + 1).saturating_add(Duration::from_secs(60))
    }

    /// Posts one webhook alert: its stored body as JSON, signed when a secret is set. Any 2xx
    /// answer delivers it; anything else is retried.
    async fn send(&self, alert: &AlertRow) -> Result<(), SendError> {
        let Some(url) = alert.recipients.first() else {
            return Err(SendError::GiveUp("no webhook URL".into()));
        };
        let shown = redact_webhook(url);
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            // The event's key: the same for every URL the alert goes to.
            .header(ALERT_HEADER, alert.dedup_key.split("|webhook:").next().unwrap_or_default());
        if !self.secret.is_empty() {
            request = request.header(SIGNATURE_HEADER, signature(&self.secret, alert.body.as_bytes()));
        }
        // The URL never goes into the error text (its path may be the webhook's secret).
        match request.body(alert.body.clone()).send().await {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(SendError::Retry(format!("webhook {shown}: answered {}", answer.status()))),
            Err(e) if e.is_timeout() => Err(SendError::Retry(format!(
                "webhook {shown}: no answer within {} (alerts.webhook_timeout)",
                timefmt::human_duration(self.timeout)
            ))),
            Err(e) => Err(SendError::Retry(format!("webhook {shown}: {}", error_chain(&e.without_url())))),
        }
    }
}

const WEBHOOK: Channel = Channel {
    sent: "webhook alert posted",
    lost: "webhook posted after its claim was lost; it may be posted twice",
    give_up: "webhook alert cannot be posted; giving it up",
    failed: "webhook alert failed",
    first_backoff: FIRST_BACKOFF,
};

/// Claims the due webhook alerts (in batches, until none is due) and posts them; each is recorded
/// as sent, or as failed with its error and a backoff (10 s · 2^tries, at most 10 min). After a
/// failed post the rest of that URL's alerts in the batch wait for the next pass, and the pass ends
/// after that batch: one receiver that is down costs one timeout a pass and delays no other.
pub async fn send_due_webhooks(store: &Store, hooks: &Webhooks, owner: &str) -> Result<SendReport, AlertError> {
    let mut report = SendReport::default();
    webhook_pass(store, hooks, owner, None, &mut report).await?;
    Ok(report)
}

async fn webhook_pass(
    store: &Store,
    hooks: &Webhooks,
    owner: &str,
    only_runs: Option<&[i64]>,
    report: &mut SendReport,
) -> Result<(), StoreError> {
    loop {
        let claimed = store.claim_due_webhooks(owner, timefmt::now(), hooks.claim_for(), BATCH, only_runs).await?;
        if claimed.is_empty() {
            return Ok(());
        }
        let mut down: Vec<&str> = Vec::new();
        for alert in &claimed {
            let url = alert.recipients.first().map(String::as_str).unwrap_or_default();
            if down.contains(&url) {
                continue;
            }
            let outcome = hooks.send(alert).await;
            let channel = Channel { first_backoff: hooks.first_backoff, ..WEBHOOK };
            if record_try(store, owner, alert, outcome, &channel, report).await? {
                down.push(url);
            }
        }
        if !down.is_empty() {
            store.release_alert_claims(owner).await?;
            return Ok(());
        }
    }
}

/// The daemon's webhook sender: posts due webhook alerts, pausing at most 1 s between passes,
/// until `shutdown`; then releases its claims. Never panics and never returns early.
pub async fn run_webhook_sender(store: Store, settings: AlertSettings, owner: String, shutdown: CancellationToken) {
    let hooks = match Webhooks::new(&settings) {
        Ok(hooks) => hooks,
        Err(e) => {
            tracing::error!(error = %e, "webhook alerts are off; they stay in the outbox");
            shutdown.cancelled().await;
            return;
        }
    };
    if settings.webhook_secret.is_empty() {
        tracing::info!("alerts.webhook_secret is empty: webhook alerts are posted unsigned");
    }
    run_passes("webhook sender", &store, &owner, &shutdown, || send_due_webhooks(&store, &hooks, &owner)).await;
}

/// Posts the pending webhook alerts of `run_pks` once, within `alerts.webhook_timeout` overall
/// (the CLI's counterpart of [`flush_run_alerts`]); the rest is left to the daemon.
pub async fn flush_run_webhooks(
    store: &Store,
    settings: &AlertSettings,
    owner: &str,
    run_pks: &[i64],
) -> Result<usize, AlertError> {
    if run_pks.is_empty() {
        return Ok(0);
    }
    let hooks = Webhooks::new(settings)?;
    let mut report = SendReport::default();
    let outcome =
        tokio::time::timeout(settings.webhook_timeout, webhook_pass(store, &hooks, owner, Some(run_pks), &mut report))
            .await;
    store.release_alert_claims(owner).await?;
    if let Ok(result) = outcome {
        result?;
    }
    Ok(report.sent)
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
