//! Reading one raw value as its type, naming the key and its source when it is wrong: strings,
//! booleans, numbers, durations, sizes, bucket names, http(s) URLs and allowed hosts.

use super::{ConfigError, Raw};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub(super) fn err(raw: &BTreeMap<&'static str, Raw>, key: &str, message: String) -> ConfigError {
    let source_name = raw.get(key).map(|r| r.source.clone()).unwrap_or_else(|| "defaults".into());
    ConfigError { key: key.to_string(), message, source_name }
}

/// `http://host[:port][/path]` or `https://…` with a host name: what a browser can open.
pub(super) fn check_http_url(raw: &BTreeMap<&'static str, Raw>, key: &str, url: &str) -> Result<(), ConfigError> {
    let authority = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = authority.map(url_host).unwrap_or_default();
    let ok = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    if ok { Ok(()) } else { Err(err(raw, key, format!("= \"{url}\" is not a URL like https://tmctl.example.com"))) }
}

/// The `host[:port]` of the part of a URL after `scheme://`, lower case.
fn url_host(authority: &str) -> String {
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_ascii_lowercase()
}

/// `web.allowed_hosts`: a list (TOML array or comma-separated text) of host names, optionally
/// with `:port`; empty = the bind address, `localhost`, `127.0.0.1`, `[::1]` and the hosts of
/// `web.public_url` and `web.base_url`.
pub(super) fn allowed_hosts(
    raw: &BTreeMap<&'static str, Raw>,
    bind: SocketAddr,
    urls: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let key = "web.allowed_hosts";
    let items: Vec<String> = match raw.get(key).map(|r| &r.value) {
        None => Vec::new(),
        Some(toml::Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.trim().to_string()),
                other => Err(err(raw, key, format!("must hold host names, found {}", other.type_str()))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(err(raw, key, format!("must be a list of host names, found {}", other.type_str()))),
    };
    for h in &items {
        let ok = h == "*"
            || (!h.is_empty()
                && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_')));
        if !ok {
            return Err(err(
                raw,
                key,
                format!(
                    "entry \"{h}\" is not a host name like tmctl.example.com or 127.0.0.1:8080 (no scheme, no path)"
                ),
            ));
        }
    }
    if !items.is_empty() {
        return Ok(items.into_iter().map(|h| h.to_ascii_lowercase()).collect());
    }
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "[::1]".to_string()];
    let ip = match bind.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let url_hosts = urls.iter().map(|u| url_host(u.split_once("://").map_or(*u, |(_, rest)| rest)));
    for h in std::iter::once(ip).chain(url_hosts) {
        if !h.is_empty() && !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    Ok(hosts)
}

pub(super) fn get_string(
    raw: &BTreeMap<&'static str, Raw>,
    key: &str,
    may_be_empty: bool,
) -> Result<String, ConfigError> {
    match raw.get(key).map(|r| &r.value) {
        Some(toml::Value::String(s)) if may_be_empty || !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(toml::Value::String(_)) | None => Err(err(raw, key, "is missing or empty".into())),
        Some(other) => Err(err(raw, key, format!("must be a string, found {}", other.type_str()))),
    }
}

/// Booleans as the reference parses them: 1/true/yes/y/on and 0/false/no/n/off, any case.
pub(super) fn get_bool(raw: &BTreeMap<&'static str, Raw>, key: &str) -> Result<bool, ConfigError> {
    match raw.get(key).map(|r| &r.value) {
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(toml::Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" | "on" => Ok(true),
            "0" | "false" | "no" | "n" | "off" | "" => Ok(false),
            _ => Err(err(raw, key, format!("= \"{s}\" must be true or false"))),
        },
        None => Err(err(raw, key, "is missing".into())),
        Some(other) => Err(err(raw, key, format!("must be true or false, found {}", other.type_str()))),
    }
}

pub(super) fn get_f64(raw: &BTreeMap<&'static str, Raw>, key: &str) -> Result<f64, ConfigError> {
    let v = match raw.get(key).map(|r| &r.value) {
        Some(toml::Value::Float(f)) => Some(*f),
        Some(toml::Value::Integer(i)) => Some(*i as f64),
        Some(toml::Value::String(s)) => s.trim().parse::<f64>().ok(),
        None => return Err(err(raw, key, "is missing".into())),
        Some(_) => None,
    };
    match v {
        Some(f) if f.is_finite() => Ok(f),
        _ => {
            let shown = raw.get(key).map(|r| r.value.to_string()).unwrap_or_default();
            Err(err(raw, key, format!("= {shown} must be a number")))
        }
    }
}

/// A bucket name: 3–63 lowercase letters, digits, `-` and `.` (S3's rule), so it is also a safe
/// directory name.
pub(super) fn get_bucket(raw: &BTreeMap<&'static str, Raw>, key: &str) -> Result<String, ConfigError> {
    let name = get_string(raw, key, false)?;
    let ok = (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if ok {
        Ok(name)
    } else {
        Err(err(raw, key, format!("= \"{name}\" is not a bucket name (3-63 of a-z, 0-9, '-', '.')")))
    }
}

/// A duration like `500ms`, `30s`, `10m`, `2h` (the DAG files' syntax), greater than zero.
pub(super) fn get_duration(raw: &BTreeMap<&'static str, Raw>, key: &str) -> Result<Duration, ConfigError> {
    let text = get_string(raw, key, false)?;
    match crate::dag::parse_duration(&text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(err(raw, key, format!("= \"{text}\" must be longer than zero"))),
        Err(e) => Err(err(raw, key, e)),
    }
}

/// A size in bytes: a number with an optional unit (`B`, `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`),
/// at least 1 MiB.
pub(super) fn get_size(raw: &BTreeMap<&'static str, Raw>, key: &str) -> Result<u64, ConfigError> {
    get_size_at_least(raw, key, 1 << 20)
}

/// A size (as [`get_size`]) of at least `min` bytes.
pub(super) fn get_size_at_least(raw: &BTreeMap<&'static str, Raw>, key: &str, min: u64) -> Result<u64, ConfigError> {
    let text = match raw.get(key).map(|r| &r.value) {
        Some(toml::Value::Integer(i)) => i.to_string(),
        Some(toml::Value::String(s)) => s.trim().to_string(),
        None => return Err(err(raw, key, "is missing".into())),
        Some(other) => return Err(err(raw, key, format!("must be a size like \"1GiB\", found {}", other.type_str()))),
    };
    match parse_size(&text) {
        Some(n) if n >= min => Ok(n),
        Some(_) if min == 1 << 20 => Err(err(raw, key, format!("= \"{text}\" must be at least 1MiB"))),
        Some(_) => Err(err(raw, key, format!("= \"{text}\" must be at least {min} bytes"))),
        None => Err(err(raw, key, format!("= \"{text}\" is not a size like 512MiB or 2GiB"))),
    }
}

/// `1GiB` → 1073741824; units B, KiB, MiB, GiB, TiB (powers of 1024) and KB, MB, GB, TB (of
/// 1000), any case; a bare number is bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    let bytes = number * factor as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// A whole number, 0 or more.
pub(super) fn get_count(raw: &BTreeMap<&'static str, Raw>, key: &str) -> Result<u64, ConfigError> {
    get_integer(raw, key, 0, "a whole number, 0 or more")
}

pub(super) fn get_positive(raw: &BTreeMap<&'static str, Raw>, key: &str) -> Result<u64, ConfigError> {
    get_integer(raw, key, 1, "a positive integer")
}

/// An integer (or a string holding one) of at least `min`; `what` names the range in the error.
fn get_integer(raw: &BTreeMap<&'static str, Raw>, key: &str, min: i64, what: &str) -> Result<u64, ConfigError> {
    let n = match raw.get(key).map(|r| &r.value) {
        Some(toml::Value::Integer(i)) => Some(*i),
        Some(toml::Value::String(s)) => s.trim().parse::<i64>().ok(),
        None => return Err(err(raw, key, "is missing".into())),
        Some(_) => None,
    };
    match n {
        Some(n) if n >= min => Ok(n as u64),
        _ => {
            let shown = raw.get(key).map(|r| r.value.to_string()).unwrap_or_default();
            Err(err(raw, key, format!("= {shown} must be {what}")))
        }
    }
}
