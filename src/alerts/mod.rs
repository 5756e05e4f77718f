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

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::store::{ALERT_MAX_TRIES, AlertRow, Store, StoreError};
use crate::timefmt;

mod mail;
mod outbox;
mod webhook;

pub use mail::{Mailer, flush_run_alerts, run_sender, send_due};
pub use outbox::{Record, check_deadlines, payload, record, record_recovery, webhook_key};
pub use webhook::{
    ALERT_HEADER, SIGNATURE_HEADER, Webhooks, check_webhook_url, flush_run_webhooks, redact_webhook,
    run_webhook_sender, send_due_webhooks, signature,
};

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

/// Why one alert was not sent.
enum SendError {
    /// Worth another try later (connection, timeout, server refusal).
    Retry(String),
    /// No try can deliver it (no valid recipient, unbuildable message).
    GiveUp(String),
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

/// How one outbox channel's deliveries are logged and backed off.
struct Channel {
    sent: &'static str,
    lost: &'static str,
    give_up: &'static str,
    failed: &'static str,
    first_backoff: Duration,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_ten_minutes() {
        let secs: Vec<u64> = (0..8).map(|t| backoff(t).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
