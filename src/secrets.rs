//! Secrets never leave the process: [`Masker`] replaces every configured secret (S3 secret key,
//! SMTP password, state DB password, REST credential and token, API token, webhook secret) and every value of a
//! secret-looking param (`password`, `secret`, `token`, `key` in its name) with `***` in try
//! logs, error texts, alert e-mails and API output; [`redact_url`] is the one URL redactor
//! (`user:***@host`, `?password=***`) used by errors, `tmctl doctor` and `tmctl config show`.

use std::sync::Arc;

use crate::config::Settings;

/// What a masked value becomes.
pub const MASK: &str = "***";

/// Values shorter than this are not masked: replacing every `a` or `42` in a log would destroy
/// it and hide nothing (README says so).
pub const MIN_SECRET_LEN: usize = 4;

/// Whether a setting, param or URL parameter name says its value is a secret.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "key", "credential"].iter().any(|w| n.contains(w))
}

/// Replaces known secret values in text. Cheap to clone (shared list).
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Arc<Vec<String>>,
}

impl Masker {
    /// A masker that masks nothing.
    pub fn none() -> Masker {
        Masker::default()
    }

    /// The secrets of a configuration: S3 secret key, SMTP password, the state DB URL's password,
    /// the REST catalog credential (whole and its secret half) and token, the API token (setting
    /// or `<home>/api-token`).
    pub fn from_settings(settings: &Settings) -> Masker {
        let mut values = vec![
            settings.lake.s3.secret_key.clone(),
            settings.smtp.password.clone(),
            settings.lake.rest.credential.clone(),
            settings.lake.rest.token.clone(),
            settings.api_token.clone(),
            settings.alerts.webhook_secret.clone(),
        ];
        if let Some((_, secret)) = settings.lake.rest.credential.split_once(':') {
            values.push(secret.to_string());
        }
        values.extend(url_secrets(&settings.database_url));
        if let Ok(token) = std::fs::read_to_string(settings.home.join("api-token")) {
            values.push(token.trim().to_string());
        }
        Masker::none().with_values(values)
    }

    /// This masker plus more secret values.
    pub fn with_values(&self, more: impl IntoIterator<Item = String>) -> Masker {
        let mut all: Vec<String> = self.secrets.iter().cloned().collect();
        for v in more {
            let v = v.trim().to_string();
            if v.chars().count() < MIN_SECRET_LEN {
                continue;
            }
            // The percent-encoded form too, as it appears inside URLs.
            let encoded = url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            if encoded != v && !all.contains(&encoded) {
                all.push(encoded);
            }
            if !all.contains(&v) {
                all.push(v);
            }
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Masker { secrets: Arc::new(all) }
    }

    /// This masker plus the string values of secret-looking keys of `params` (a run's conf or
    /// resolved params), at any depth.
    pub fn with_params(&self, params: &serde_json::Value) -> Masker {
        let mut found = Vec::new();
        secret_values(params, false, &mut found);
        if found.is_empty() { self.clone() } else { self.with_values(found) }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = std::borrow::Cow::Borrowed(text);
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
        out.into_owned()
    }
}

fn secret_values(v: &serde_json::Value, secret: bool, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                secret_values(v, secret || looks_secret(k), out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| secret_values(v, secret, out)),
        serde_json::Value::String(s) if secret => out.push(s.clone()),
        serde_json::Value::Number(n) if secret => out.push(n.to_string()),
        _ => {}
    }
}

/// A run conf or params object for display: the values of secret-looking keys become `***`.
pub fn mask_conf(conf: &serde_json::Value) -> serde_json::Value {
    fn walk(v: &serde_json::Value, secret: bool) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => serde_json::Value::Object(
                m.iter().map(|(k, v)| (k.clone(), walk(v, secret || looks_secret(k)))).collect(),
            ),
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(|v| walk(v, secret)).collect())
            }
            serde_json::Value::Null => serde_json::Value::Null,
            _ if secret => serde_json::Value::String(MASK.into()),
            other => other.clone(),
        }
    }
    walk(conf, false)
}

/// The password of a URL and the values of its secret-looking query parameters.
fn url_secrets(text: &str) -> Vec<String> {
    let Ok(u) = url::Url::parse(text) else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(p) = u.password() {
        // The URL holds the password percent-encoded; the decoded form is what a driver prints.
        out.push(p.to_string());
        out.push(percent_decode(p));
    }
    out.extend(u.query_pairs().filter(|(k, _)| looks_secret(k)).map(|(_, v)| v.into_owned()));
    out
}

/// A URL without its secrets: the password of `user:password@` and the values of query
/// parameters such as `?password=`, `?sslpassword=`, `?token=` become `***`. Text that is not a
/// URL comes back unchanged, except for a `user:password@` part.
pub fn redact_url(text: &str) -> String {
    let (base, query) = match text.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (text, None),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &base[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:{MASK}{}", &base[..s + 3], &creds[..c], &base[at..]),
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    let Some(query) = query else { return base };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if looks_secret(&percent_decode(k)) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect();
    let mut out = format!("{base}?{}", pairs.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

// ---- files -------------------------------------------------------------------------------------

/// Creates `dir` (and its parents) if missing, and makes it `0700` (owner only): tmctl's home
/// holds the state DB, the API token and the buckets. Returns whether its mode was changed.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<bool> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode == 0o700 {
        return Ok(false);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(true)
}

/// Makes an existing file `0600` if group or others may read or write it; a missing file is
/// fine. Returns whether its mode was changed.
pub fn private_file(path: &std::path::Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    Ok(true)
}

/// The mode of `path` when group or others may read or write it (`None` when private or missing).
pub fn exposed_mode(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o066 != 0).then_some(mode)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_in_userinfo_and_query() {
        assert_eq!(redact_url("postgres://tm:secret@db:5432/tm"), "postgres://tm:***@db:5432/tm");
        assert_eq!(redact_url("postgres://tm@db/tm"), "postgres://tm@db/tm");
        assert_eq!(redact_url("sqlite://.tm/tm.db?mode=rwc"), "sqlite://.tm/tm.db?mode=rwc");
        assert_eq!(
            redact_url("postgres://db/tm?user=tm&password=hunter2&sslmode=require"),
            "postgres://db/tm?user=tm&password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://a:b@db/tm?sslpassword=x#f"), "postgres://a:***@db/tm?sslpassword=***#f");
        assert_eq!(redact_url("http://h/?api%5Fkey=zz"), "http://h/?api%5Fkey=***");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn secret_looking_names() {
        for n in ["password", "DB_PASSWORD", "api_key", "secret", "rest_token", "credential"] {
            assert!(looks_secret(n), "{n}");
        }
        for n in ["who", "ds", "full_refresh", "course"] {
            assert!(!looks_secret(n), "{n}");
        }
    }

    #[test]
    fn masker_replaces_every_secret_and_short_values_are_kept() {
        let m = Masker::none().with_values(["hunter2hunter2".to_string(), "ab".to_string(), "p@ss word".to_string()]);
        assert_eq!(m.mask("pw=hunter2hunter2 ab"), "pw=*** ab");
        assert_eq!(m.mask("in a url: p%40ss+word"), "in a url: ***");
        let m = m.with_params(&serde_json::json!({"who": "alice", "db": {"password": "s3cr3t!"}, "api_key": 12345}));
        assert_eq!(m.mask("alice s3cr3t! 12345"), "alice *** ***");
        assert!(Masker::none().is_empty());
    }

    #[test]
    fn conf_for_display_hides_secret_keys() {
        let c = serde_json::json!({"who": "x", "token": "abc", "nested": {"password": "p", "n": 1}});
        assert_eq!(
            mask_conf(&c),
            serde_json::json!({"who": "x", "token": "***", "nested": {"password": "***", "n": 1}})
        );
    }
}
