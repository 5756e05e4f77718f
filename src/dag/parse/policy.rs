//! Task policy keys (`[defaults]` or a task's own): [`PolicyPatch`] and the `email` and `webhook`
//! recipient lists.

use std::time::Duration;

use toml::de::DeValue;

use super::ctx::{Ctx, Scope, Value, found};
use crate::dag::{Backoff, TaskPolicy};

pub(super) const POLICY_KEYS: &[&str] = &[
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "email",
    "email_on_retry",
    "email_on_failure",
    "idempotent",
    "webhook",
];

/// Policy keys given in `[defaults]` or in a task; unset ones fall through.
#[derive(Debug, Clone, Default)]
pub(super) struct PolicyPatch {
    retries: Option<u32>,
    retry_delay: Option<Duration>,
    backoff: Option<Backoff>,
    max_retry_delay: Option<Duration>,
    timeout: Option<Duration>,
    pub(super) email: Option<Vec<String>>,
    email_on_retry: Option<bool>,
    email_on_failure: Option<bool>,
    idempotent: Option<bool>,
    webhook: Option<Vec<String>>,
}

impl PolicyPatch {
    pub(super) fn apply(&self, policy: &mut TaskPolicy) {
        if let Some(v) = self.retries {
            policy.retries = v;
        }
        if let Some(v) = self.retry_delay {
            policy.retry_delay = v;
        }
        if let Some(v) = self.backoff {
            policy.backoff = v;
        }
        if let Some(v) = self.max_retry_delay {
            policy.max_retry_delay = Some(v);
        }
        if let Some(v) = self.timeout {
            policy.timeout = Some(v);
        }
        if let Some(v) = &self.email {
            policy.email = v.clone();
        }
        if let Some(v) = self.email_on_retry {
            policy.email_on_retry = v;
        }
        if let Some(v) = self.email_on_failure {
            policy.email_on_failure = v;
        }
        if let Some(v) = self.idempotent {
            policy.idempotent = Some(v);
        }
        if let Some(v) = &self.webhook {
            policy.webhook = v.clone();
        }
    }

    /// Takes one policy key; `false` if `key` is not one.
    pub(super) fn take(&mut self, cx: &mut Ctx<'_>, scope: &Scope, key: &str, value: &Value<'_>) -> bool {
        match key {
            "retries" => self.retries = scope.count(cx, key, value, 0),
            "retry_delay" => self.retry_delay = scope.duration(cx, key, value),
            "max_retry_delay" => self.max_retry_delay = scope.duration(cx, key, value),
            "timeout" => self.timeout = scope.duration(cx, key, value),
            "email_on_retry" => self.email_on_retry = scope.boolean(cx, key, value),
            "email_on_failure" => self.email_on_failure = scope.boolean(cx, key, value),
            "idempotent" => self.idempotent = scope.boolean(cx, key, value),
            "retry_backoff" => {
                self.backoff = match value.get_ref().as_str() {
                    Some("exponential") => Some(Backoff::Exponential),
                    Some("fixed") => Some(Backoff::Fixed),
                    _ => {
                        let message = format!(
                            "`{}` must be \"exponential\" or \"fixed\", found {}",
                            scope.name(key),
                            found(value.get_ref())
                        );
                        cx.report(value.span(), scope.msg(message));
                        None
                    }
                }
            }
            "email" => self.email = email_list(cx, scope, key, value),
            "webhook" => self.webhook = webhook_list(cx, scope, key, value),
            _ => return false,
        }
        true
    }
}

/// `email`: one address or an array of them.
fn email_list(cx: &mut Ctx<'_>, scope: &Scope, key: &str, value: &Value<'_>) -> Option<Vec<String>> {
    let items: Vec<&Value<'_>> = match value.get_ref() {
        DeValue::String(_) => vec![value],
        DeValue::Array(items) => items.iter().collect(),
        other => {
            let message =
                format!("`{}` must be an e-mail address or an array of them, found {}", scope.name(key), found(other));
            cx.report(value.span(), scope.msg(message));
            return None;
        }
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        match item.get_ref().as_str() {
            Some(s) if is_mailbox(s) => out.push(s.to_string()),
            Some(s) => {
                cx.report(item.span(), scope.msg(format!("`{}`: \"{s}\" is not an e-mail address", scope.name(key))));
                ok = false;
            }
            None => {
                let message = format!(
                    "`{}` entries must be e-mail address strings, found {}",
                    scope.name(key),
                    found(item.get_ref())
                );
                cx.report(item.span(), scope.msg(message));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `webhook`: one http(s) URL or an array of them.
fn webhook_list(cx: &mut Ctx<'_>, scope: &Scope, key: &str, value: &Value<'_>) -> Option<Vec<String>> {
    let items: Vec<&Value<'_>> = match value.get_ref() {
        DeValue::String(_) => vec![value],
        DeValue::Array(items) => items.iter().collect(),
        other => {
            let message = format!("`{}` must be a URL or an array of URLs, found {}", scope.name(key), found(other));
            cx.report(value.span(), scope.msg(message));
            return None;
        }
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        match item.get_ref().as_str() {
            Some(s) => match crate::alerts::check_webhook_url(s) {
                Ok(()) => out.push(s.trim().to_string()),
                Err(why) => {
                    cx.report(item.span(), scope.msg(format!("`{}`: {why}", scope.name(key))));
                    ok = false;
                }
            },
            None => {
                let message =
                    format!("`{}` entries must be URL strings, found {}", scope.name(key), found(item.get_ref()));
                cx.report(item.span(), scope.msg(message));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Whether the alert sender will accept `s` as a recipient: the same parse (lettre's
/// [`Mailbox`](lettre::message::Mailbox), after trimming) that `alerts` does before mailing, so
/// an address it would skip is refused here, when the DAG is loaded.
fn is_mailbox(s: &str) -> bool {
    s.trim().parse::<lettre::message::Mailbox>().is_ok()
}
