//! Webhook alerts: URL checks and redaction, HMAC signatures, the [`Webhooks`] HTTP client
//! (reqwest) and the sender that posts due webhook rows of the outbox.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AlertError, BATCH, Channel, FIRST_BACKOFF, SendError, SendReport, error_chain, record_try, run_passes};
use crate::config::AlertSettings;
use crate::store::{AlertRow, Store, StoreError};
use crate::timefmt;

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
