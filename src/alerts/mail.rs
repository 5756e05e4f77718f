//! E-mail alerts: the SMTP [`Mailer`] (lettre) and the sender that claims due e-mail rows of the
//! outbox and mails them ([`send_due`], [`run_sender`], [`flush_run_alerts`]).

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use super::{
    AlertError, BATCH, Channel, FIRST_BACKOFF, FlushReport, SendError, SendReport, error_chain, record_try, run_passes,
};
use crate::config::{SmtpSettings, SmtpTls};
use crate::store::{AlertRow, Store, StoreError};
use crate::timefmt;

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

const MAIL: Channel = Channel {
    sent: "alert mailed",
    lost: "alert mailed after its claim was lost; it may be mailed twice",
    give_up: "alert cannot be mailed; giving it up",
    failed: "alert mail failed",
    first_backoff: FIRST_BACKOFF,
};

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
