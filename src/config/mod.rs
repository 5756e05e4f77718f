//! Settings: the embedded `config/local.toml`, then an optional file (`--config` / `TM_CONFIG`),
//! then `TM_*` environment variables, then command-line flags. Every key is declared once in
//! [`KEYS`]; a wrong or missing value is a one-line [`ConfigError`] naming the key and its source.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod sections;
mod values;

pub use sections::{
    AlertSettings, BucketNames, CatalogKind, DaemonSettings, HttpLimits, LakeSettings, RestCatalogSettings,
    RetentionSettings, S3Settings, SmtpSettings, SmtpTls, StorageKind,
};
pub use values::parse_size;
use values::{
    allowed_hosts, check_http_url, err, get_bool, get_bucket, get_count, get_duration, get_f64, get_positive, get_size,
    get_size_at_least, get_string,
};

/// The embedded defaults.
pub const EMBEDDED: &str = include_str!("../../config/local.toml");
const EMBEDDED_NAME: &str = "config/local.toml (embedded)";

/// Every setting: its dotted key in the TOML files and the environment variable that overrides it.
pub const KEYS: &[(&str, &str)] = &[
    ("home", "TM_HOME"),
    ("dags_dir", "TM_DAGS_DIR"),
    ("database.url", "TM_DATABASE_URL"),
    ("database.max_connections", "TM_DATABASE_MAX_CONNECTIONS"),
    ("executor.slots", "TM_EXECUTOR_SLOTS"),
    ("executor.crash_restarts", "TM_EXECUTOR_CRASH_RESTARTS"),
    ("web.bind", "TM_WEB_BIND"),
    ("web.public_url", "TM_WEB_PUBLIC_URL"),
    ("web.base_url", "TM_WEB_BASE_URL"),
    ("web.user", "TM_WEB_USER"),
    ("web.password_hash", "TM_WEB_PASSWORD_HASH"),
    ("web.anonymous_read", "TM_WEB_ANONYMOUS_READ"),
    ("web.allowed_hosts", "TM_WEB_ALLOWED_HOSTS"),
    ("web.session_idle", "TM_WEB_SESSION_IDLE"),
    ("web.session_max", "TM_WEB_SESSION_MAX"),
    ("log.level", "TM_LOG"),
    ("api.token", "TM_API_TOKEN"),
    ("daemon.lease", "TM_DAEMON_LEASE"),
    ("daemon.max_runs", "TM_DAEMON_MAX_RUNS"),
    ("daemon.shutdown_grace", "TM_SHUTDOWN_GRACE"),
    ("web.header_read_timeout", "TM_WEB_HEADER_READ_TIMEOUT"),
    ("web.request_timeout", "TM_WEB_REQUEST_TIMEOUT"),
    ("web.max_connections", "TM_WEB_MAX_CONNECTIONS"),
    ("web.max_body", "TM_WEB_MAX_BODY"),
    ("smtp.host", "TM_SMTP_HOST"),
    ("smtp.port", "TM_SMTP_PORT"),
    ("smtp.tls", "TM_SMTP_TLS"),
    ("smtp.user", "TM_SMTP_USER"),
    ("smtp.password", "TM_SMTP_PASSWORD"),
    ("smtp.from", "TM_SMTP_FROM"),
    ("smtp.timeout", "TM_SMTP_TIMEOUT"),
    ("alerts.webhook_secret", "TM_ALERTS_WEBHOOK_SECRET"),
    ("alerts.webhook_timeout", "TM_ALERTS_WEBHOOK_TIMEOUT"),
    ("retention.keep_days", "TM_RETENTION_KEEP_DAYS"),
    ("storage.kind", "TM_STORAGE"),
    ("buckets.landing", "TM_BUCKET_LANDING"),
    ("buckets.source", "TM_BUCKET_SOURCE"),
    ("buckets.serve", "TM_BUCKET_SERVE"),
    ("buckets.quarantine", "TM_BUCKET_QUARANTINE"),
    ("buckets.observability", "TM_BUCKET_OBSERVABILITY"),
    ("s3.endpoint", "TM_S3_ENDPOINT"),
    ("s3.region", "TM_S3_REGION"),
    ("s3.access_key", "TM_S3_ACCESS_KEY"),
    ("s3.secret_key", "TM_S3_SECRET_KEY"),
    ("s3.force_path_style", "TM_S3_FORCE_PATH_STYLE"),
    ("s3.allow_http", "TM_S3_ALLOW_HTTP"),
    ("catalog.name", "TM_ICEBERG_CATALOG_NAME"),
    ("catalog.type", "TM_ICEBERG_CATALOG_TYPE"),
    ("catalog.rest_uri", "TM_ICEBERG_REST_URI"),
    ("catalog.rest_credential", "TM_ICEBERG_REST_CREDENTIAL"),
    ("catalog.rest_token", "TM_ICEBERG_REST_TOKEN"),
    ("bronze.inbox", "TM_LOCAL_INPUT_DIR"),
    ("bronze.strict_course_match", "TM_STRICT_COURSE_MATCH"),
    ("bronze.max_bad_record_fraction", "TM_MAX_BAD_RECORD_FRACTION"),
    ("silver.min_lon", "TM_COORD_MIN_LON"),
    ("silver.max_lon", "TM_COORD_MAX_LON"),
    ("silver.min_lat", "TM_COORD_MIN_LAT"),
    ("silver.max_lat", "TM_COORD_MAX_LAT"),
    ("lake.memory_limit", "TM_LAKE_MEMORY_LIMIT"),
    ("lake.spill_dir", "TM_LAKE_SPILL_DIR"),
    ("lake.max_parallel_models", "TM_LAKE_MAX_PARALLEL_MODELS"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error: `{key}` {message} (from {source_name})")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
    pub source_name: String,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub home: PathBuf,
    pub dags_dir: PathBuf,
    /// Always set after loading: the configured URL or `sqlite://<home>/tm.db`.
    pub database_url: String,
    pub database_max_connections: u32,
    pub executor_slots: usize,
    /// Restarts of a repeat-safe task instance after its process died that do not count against
    /// its retries (`tasks::CrashRestart::Bounded`).
    pub executor_crash_restarts: u32,
    pub web_bind: SocketAddr,
    /// The URL people open the UI at (a proxy's, e.g. `https://tmctl.example.com`), without a
    /// trailing `/`; unset = `http://<web.bind>`. When it is https the session cookie is `Secure`.
    pub web_public_url: String,
    /// The UI's URL in alert e-mails; unset = `web_public_url`.
    pub web_base_url: String,
    /// The web UI's user name.
    pub web_user: String,
    /// argon2 PHC string of the web UI's password (`tmctl hash-password`); empty = the API token
    /// is the password.
    pub web_password_hash: String,
    /// Pages and GET API calls without login (read-only; a trusted network only).
    pub web_anonymous_read: bool,
    /// Host names (optionally `:port`) the server answers; anything else gets 421. `*` = any.
    pub web_allowed_hosts: Vec<String>,
    /// A web session ends after this long without a request...
    pub web_session_idle: Duration,
    /// ...and this long after login, whatever happens.
    pub web_session_max: Duration,
    pub log_level: String,
    /// Token for mutating API calls; empty = `tmctl serve` creates one in `<home>/api-token`.
    pub api_token: String,
    pub daemon: DaemonSettings,
    /// Limits of the HTTP server.
    pub http: HttpLimits,
    pub smtp: SmtpSettings,
    /// Webhook alerts.
    pub alerts: AlertSettings,
    /// The daemon's daily state-DB clean.
    pub retention: RetentionSettings,
    pub lake: LakeSettings,
}

/// Values that beat files and environment (the CLI's `--home` and `--dags`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub dags_dir: Option<PathBuf>,
}

/// One raw value and where it came from.
#[derive(Debug, Clone)]
struct Raw {
    value: toml::Value,
    source: String,
}

impl Settings {
    /// Loads settings from the process environment.
    pub fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("TM_")).collect();
        Self::load_with(overrides, &env)
    }

    /// Loads settings with an explicit environment (tests use this).
    pub fn load_with(overrides: &Overrides, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
        Self::from_raw(collect_raw(overrides, env)?)
    }

    /// Every setting's effective value and where it came from (`tmctl config show`); secrets
    /// are shown as `***` (empty ones as empty), the state DB URL without its password.
    pub fn explain(overrides: &Overrides, env: &BTreeMap<String, String>) -> Result<Vec<Explained>, ConfigError> {
        let raw = collect_raw(overrides, env)?;
        let settings = Self::from_raw(raw.clone())?;
        Ok(KEYS
            .iter()
            .map(|(key, var)| {
                let r = raw.get(key);
                let text = match r.map(|r| &r.value) {
                    Some(toml::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let effective = match *key {
                    "database.url" => settings.database_url.clone(),
                    "web.public_url" => settings.web_public_url.clone(),
                    "web.base_url" => settings.web_base_url.clone(),
                    "bronze.inbox" => settings.lake.inbox.display().to_string(),
                    "lake.spill_dir" => settings.lake.spill_dir.display().to_string(),
                    _ => text,
                };
                let source = match r.map(|r| r.source.as_str()) {
                    None | Some(EMBEDDED_NAME) => "default".to_string(),
                    Some(s) if s.starts_with("TM_") => format!("env {var}"),
                    Some(s) if s.starts_with("--") => format!("flag {s}"),
                    Some(s) => format!("file {s}"),
                };
                Explained { key: key.to_string(), value: display_value(key, &effective), source, env: var.to_string() }
            })
            .collect())
    }

    fn from_raw(raw: BTreeMap<&'static str, Raw>) -> Result<Settings, ConfigError> {
        let home = PathBuf::from(get_string(&raw, "home", false)?);
        let database_url = match get_string(&raw, "database.url", true)? {
            url if url.is_empty() => sqlite_url(&home.join("tm.db")),
            url => {
                if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(err(
                        &raw,
                        "database.url",
                        "must start with sqlite:, postgres:// or postgresql://".into(),
                    ));
                }
                url
            }
        };
        let web_bind_text = get_string(&raw, "web.bind", false)?;
        let web_bind: SocketAddr = web_bind_text.parse().map_err(|_| {
            err(&raw, "web.bind", format!("= \"{web_bind_text}\" is not an address like 127.0.0.1:8080"))
        })?;
        let public_url = get_string(&raw, "web.public_url", true)?;
        if !public_url.is_empty() {
            check_http_url(&raw, "web.public_url", &public_url)?;
        }
        let web_public_url = match public_url.trim_end_matches('/') {
            "" => format!("http://{web_bind}"),
            url => url.to_string(),
        };
        let mut web_base_url = get_string(&raw, "web.base_url", true)?;
        if web_base_url.is_empty() {
            web_base_url = web_public_url.clone();
        }
        // (A public URL derived from the bind address adds nothing: the bind host is in already.)
        let web_allowed_hosts = allowed_hosts(&raw, web_bind, &[public_url.as_str(), web_base_url.as_str()])?;
        let settings = Settings {
            dags_dir: PathBuf::from(get_string(&raw, "dags_dir", false)?),
            database_url,
            database_max_connections: get_positive(&raw, "database.max_connections")? as u32,
            executor_slots: get_positive(&raw, "executor.slots")? as usize,
            executor_crash_restarts: get_positive(&raw, "executor.crash_restarts")?.min(u64::from(u32::MAX)) as u32,
            web_bind,
            web_public_url,
            web_base_url: web_base_url.trim_end_matches('/').to_string(),
            web_user: get_string(&raw, "web.user", false)?,
            web_password_hash: match get_string(&raw, "web.password_hash", true)? {
                h if h.is_empty() || h.starts_with("$argon2") => h,
                _ => {
                    return Err(err(
                        &raw,
                        "web.password_hash",
                        "must be an argon2 hash from `tmctl hash-password` (starting with $argon2)".into(),
                    ));
                }
            },
            web_anonymous_read: get_bool(&raw, "web.anonymous_read")?,
            web_allowed_hosts,
            web_session_idle: get_duration(&raw, "web.session_idle")?,
            web_session_max: get_duration(&raw, "web.session_max")?,
            log_level: get_string(&raw, "log.level", false)?,
            api_token: get_string(&raw, "api.token", true)?,
            daemon: DaemonSettings {
                lease: get_duration(&raw, "daemon.lease")?,
                max_runs: get_positive(&raw, "daemon.max_runs")? as usize,
                shutdown_grace: get_duration(&raw, "daemon.shutdown_grace")?,
            },
            http: HttpLimits {
                header_read_timeout: get_duration(&raw, "web.header_read_timeout")?,
                request_timeout: get_duration(&raw, "web.request_timeout")?,
                max_connections: get_positive(&raw, "web.max_connections")? as usize,
                max_body: get_size_at_least(&raw, "web.max_body", 1024)?,
            },
            smtp: SmtpSettings {
                host: get_string(&raw, "smtp.host", true)?,
                port: match get_positive(&raw, "smtp.port")? {
                    p if p <= u64::from(u16::MAX) => p as u16,
                    p => return Err(err(&raw, "smtp.port", format!("= {p} is not a port (1-65535)"))),
                },
                tls: match get_string(&raw, "smtp.tls", false)?.to_ascii_lowercase().as_str() {
                    "none" => SmtpTls::None,
                    "starttls" => SmtpTls::StartTls,
                    "implicit" => SmtpTls::Implicit,
                    other => {
                        return Err(err(&raw, "smtp.tls", format!("= \"{other}\" must be none, starttls or implicit")));
                    }
                },
                user: get_string(&raw, "smtp.user", true)?,
                password: get_string(&raw, "smtp.password", true)?,
                from: get_string(&raw, "smtp.from", false)?,
                timeout: get_duration(&raw, "smtp.timeout")?,
            },
            alerts: AlertSettings {
                webhook_secret: get_string(&raw, "alerts.webhook_secret", true)?,
                webhook_timeout: get_duration(&raw, "alerts.webhook_timeout")?,
            },
            retention: RetentionSettings {
                keep_days: match get_count(&raw, "retention.keep_days")? {
                    n if n <= 36_500 => n as u32,
                    n => {
                        return Err(err(
                            &raw,
                            "retention.keep_days",
                            format!("= {n} is more than 100 years; use 0 to keep everything"),
                        ));
                    }
                },
            },
            lake: LakeSettings {
                storage: match get_string(&raw, "storage.kind", false)?.as_str() {
                    "local" => StorageKind::Local,
                    "s3" => StorageKind::S3,
                    other => return Err(err(&raw, "storage.kind", format!("= \"{other}\" must be local or s3"))),
                },
                buckets: BucketNames {
                    landing: get_bucket(&raw, "buckets.landing")?,
                    source: get_bucket(&raw, "buckets.source")?,
                    serve: get_bucket(&raw, "buckets.serve")?,
                    quarantine: get_bucket(&raw, "buckets.quarantine")?,
                    observability: get_bucket(&raw, "buckets.observability")?,
                },
                s3: S3Settings {
                    endpoint: get_string(&raw, "s3.endpoint", true)?,
                    region: get_string(&raw, "s3.region", false)?,
                    access_key: get_string(&raw, "s3.access_key", true)?,
                    secret_key: get_string(&raw, "s3.secret_key", true)?,
                    force_path_style: get_bool(&raw, "s3.force_path_style")?,
                    allow_http: get_bool(&raw, "s3.allow_http")?,
                },
                catalog_name: get_string(&raw, "catalog.name", false)?,
                catalog_kind: match get_string(&raw, "catalog.type", false)?.as_str() {
                    "sql" => CatalogKind::Sql,
                    "rest" => CatalogKind::Rest,
                    "glue" => CatalogKind::Glue,
                    other => return Err(err(&raw, "catalog.type", format!("= \"{other}\" must be sql, rest or glue"))),
                },
                rest: RestCatalogSettings {
                    uri: get_string(&raw, "catalog.rest_uri", true)?.trim_end_matches('/').to_string(),
                    credential: get_string(&raw, "catalog.rest_credential", true)?,
                    token: get_string(&raw, "catalog.rest_token", true)?,
                },
                inbox: match get_string(&raw, "bronze.inbox", true)? {
                    s if s.is_empty() => home.join("inbox"),
                    s => PathBuf::from(s),
                },
                strict_course_match: get_bool(&raw, "bronze.strict_course_match")?,
                max_bad_record_fraction: match get_f64(&raw, "bronze.max_bad_record_fraction")? {
                    f if (0.0..=1.0).contains(&f) => f,
                    f => {
                        return Err(err(
                            &raw,
                            "bronze.max_bad_record_fraction",
                            format!("= {f} must be between 0 and 1"),
                        ));
                    }
                },
                min_lon: get_f64(&raw, "silver.min_lon")?,
                max_lon: get_f64(&raw, "silver.max_lon")?,
                min_lat: get_f64(&raw, "silver.min_lat")?,
                max_lat: get_f64(&raw, "silver.max_lat")?,
                memory_limit: get_size(&raw, "lake.memory_limit")?,
                spill_dir: match get_string(&raw, "lake.spill_dir", true)? {
                    s if s.is_empty() => home.join("spill"),
                    s => PathBuf::from(s),
                },
                max_parallel_models: get_positive(&raw, "lake.max_parallel_models")? as usize,
            },
            home,
        };
        let lake = &settings.lake;
        if lake.catalog_kind == CatalogKind::Rest {
            if lake.rest.uri.is_empty() {
                return Err(err(&raw, "catalog.rest_uri", "must be set when catalog.type = \"rest\"".into()));
            }
            if lake.storage != StorageKind::S3 {
                return Err(err(
                    &raw,
                    "catalog.type",
                    "= \"rest\" needs storage.kind = \"s3\" (a REST catalog's tables live in object storage)".into(),
                ));
            }
        }
        if lake.storage == StorageKind::S3 && (lake.s3.access_key.is_empty() != lake.s3.secret_key.is_empty()) {
            return Err(err(
                &raw,
                "s3.secret_key",
                "and s3.access_key must be set together (or both left empty)".into(),
            ));
        }
        Ok(settings)
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }
}

/// One setting as `tmctl config show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explained {
    pub key: String,
    /// The effective value (secrets `***`).
    pub value: String,
    /// `default`, `file PATH`, `env TM_X` or `flag --home`.
    pub source: String,
    /// The environment variable that sets it.
    pub env: String,
}

/// A value for messages and `config show`: secrets become `***` (an empty one stays empty so
/// "not set" is visible), URLs lose their passwords.
fn display_value(key: &str, value: &str) -> String {
    if key == "database.url" || key == "catalog.rest_uri" || key == "s3.endpoint" {
        crate::secrets::redact_url(value)
    } else if crate::secrets::looks_secret(key) && key != "s3.access_key" && !value.is_empty() {
        crate::secrets::MASK.to_string()
    } else {
        value.to_string()
    }
}

/// The raw values of every layer, last one winning: embedded defaults, file, environment, flags.
fn collect_raw(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<&'static str, Raw>, ConfigError> {
    let mut raw: BTreeMap<&'static str, Raw> = BTreeMap::new();
    merge_file(&mut raw, EMBEDDED, EMBEDDED_NAME)?;
    let file =
        overrides.config_file.clone().or_else(|| env.get("TM_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            key: "config".into(),
            message: format!("file cannot be read: {e}"),
            source_name: path.display().to_string(),
        })?;
        merge_file(&mut raw, &text, &path.display().to_string())?;
    }
    for (key, var) in KEYS {
        if let Some(v) = env.get(*var) {
            // Error messages name the source; a secret's value never appears in them.
            let shown = display_value(key, v);
            raw.insert(key, Raw { value: toml::Value::String(v.clone()), source: format!("{var}={shown}") });
        }
    }
    if let Some(home) = &overrides.home {
        raw.insert("home", Raw { value: toml::Value::String(home.display().to_string()), source: "--home".into() });
    }
    if let Some(dags) = &overrides.dags_dir {
        raw.insert("dags_dir", Raw { value: toml::Value::String(dags.display().to_string()), source: "--dags".into() });
    }

    Ok(raw)
}

/// `sqlite://` URL for a file, created on first use.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

fn merge_file(raw: &mut BTreeMap<&'static str, Raw>, text: &str, name: &str) -> Result<(), ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
        key: "config".into(),
        message: format!("is not valid TOML: {}", e.message()),
        source_name: name.to_string(),
    })?;
    let mut flat = Vec::new();
    flatten("", &table, &mut flat);
    for (key, value) in flat {
        let Some((known, _)) = KEYS.iter().find(|(k, _)| *k == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            return Err(ConfigError {
                key,
                message: format!("is not a setting (known: {})", known.join(", ")),
                source_name: name.to_string(),
            });
        };
        raw.insert(known, Raw { value, source: name.to_string() });
    }
    Ok(())
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn embedded_defaults_load() {
        let s = Settings::load_with(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(s.home, PathBuf::from(".tm"));
        assert_eq!(s.dags_dir, PathBuf::from("dags"));
        assert_eq!(s.database_url, "sqlite://.tm/tm.db?mode=rwc");
        assert_eq!(s.executor_slots, 8);
        assert_eq!(s.web_bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.web_base_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn environment_beats_file_and_flags_beat_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.toml");
        std::fs::write(&file, "[executor]\nslots = 3\n[database]\nurl = \"postgres://db/x\"\n").unwrap();
        let o = Overrides { config_file: Some(file), home: Some("/h".into()), dags_dir: None };
        let s = Settings::load_with(&o, &env(&[("TM_EXECUTOR_SLOTS", "5"), ("TM_HOME", "/e")])).unwrap();
        assert_eq!(s.executor_slots, 5);
        assert_eq!(s.database_url, "postgres://db/x");
        assert_eq!(s.home, PathBuf::from("/h"));
    }

    #[test]
    fn bad_values_name_key_and_source() {
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_EXECUTOR_SLOTS", "many")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `executor.slots` = \"many\" must be a positive integer (from TM_EXECUTOR_SLOTS=many)"
        );
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_WEB_BIND", "localhost")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `web.bind` = \"localhost\" is not an address like 127.0.0.1:8080 (from TM_WEB_BIND=localhost)"
        );
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `database.url` must start with sqlite:, postgres:// or postgresql:// (from TM_DATABASE_URL=mysql://x)"
        );
    }

    #[test]
    fn lake_settings_have_the_reference_names_and_defaults() {
        let s = Settings::load_with(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(s.lake.storage, StorageKind::Local);
        assert_eq!(s.lake.buckets.landing, "tm-lakehouse-landing");
        assert_eq!(s.lake.buckets.source, "tm-lakehouse-source");
        assert_eq!(s.lake.buckets.serve, "tm-lakehouse-serve");
        assert_eq!(s.lake.catalog_name, "tm");
        assert_eq!(s.lake.inbox, PathBuf::from(".tm/inbox"));
        assert_eq!((s.lake.min_lon, s.lake.max_lat), (-180.0, 90.0));
        let s = Settings::load_with(
            &Overrides::default(),
            &env(&[("TM_S3_FORCE_PATH_STYLE", "No"), ("TM_STRICT_COURSE_MATCH", "YES"), ("TM_COORD_MIN_LAT", "-60.5")]),
        )
        .unwrap();
        assert!(!s.lake.s3.force_path_style);
        assert!(s.lake.strict_course_match);
        assert_eq!(s.lake.min_lat, -60.5);
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_BUCKET_LANDING", "Bad_Bucket")])).unwrap_err();
        assert_eq!(e.key, "buckets.landing");
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_S3_ALLOW_HTTP", "maybe")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `s3.allow_http` = \"maybe\" must be true or false (from TM_S3_ALLOW_HTTP=maybe)"
        );
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_STORAGE", "gcs")])).unwrap_err();
        assert_eq!(e.key, "storage.kind");
    }

    #[test]
    fn lake_memory_settings_parse_sizes_and_name_bad_ones() {
        let s = Settings::load_with(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(s.lake.memory_limit, 1 << 30);
        assert_eq!(s.lake.spill_dir, PathBuf::from(".tm/spill"));
        assert_eq!(s.lake.max_parallel_models, 2);
        let s = Settings::load_with(
            &Overrides::default(),
            &env(&[("TM_LAKE_MEMORY_LIMIT", "64MiB"), ("TM_LAKE_SPILL_DIR", "/var/tmp/x")]),
        )
        .unwrap();
        assert_eq!(s.lake.memory_limit, 64 << 20);
        assert_eq!(s.lake.spill_dir, PathBuf::from("/var/tmp/x"));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size("512 mib"), Some(512 << 20));
        assert_eq!(parse_size("12 parsecs"), None);
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_LAKE_MEMORY_LIMIT", "lots")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `lake.memory_limit` = \"lots\" is not a size like 512MiB or 2GiB (from TM_LAKE_MEMORY_LIMIT=lots)"
        );
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_LAKE_MEMORY_LIMIT", "10KiB")])).unwrap_err();
        assert_eq!(e.key, "lake.memory_limit");
    }

    #[test]
    fn secrets_never_appear_in_errors_or_config_show() {
        let e = Settings::load_with(
            &Overrides::default(),
            &env(&[("TM_DATABASE_URL", "mysql://tm:hunter2@db/x?password=hunter3")]),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter"), "{e}");
        assert!(e.to_string().contains("TM_DATABASE_URL=mysql://tm:***@db/x?password=***"), "{e}");
        let shown = Settings::explain(
            &Overrides::default(),
            &env(&[
                ("TM_SMTP_PASSWORD", "smtp-secret"),
                ("TM_DATABASE_URL", "postgres://tm:dbpass@db/tm"),
                ("TM_EXECUTOR_SLOTS", "3"),
            ]),
        )
        .unwrap();
        let get = |k: &str| shown.iter().find(|e| e.key == k).unwrap().clone();
        assert_eq!(
            (get("smtp.password").value, get("smtp.password").source),
            ("***".into(), "env TM_SMTP_PASSWORD".into())
        );
        assert_eq!(get("database.url").value, "postgres://tm:***@db/tm");
        assert_eq!(
            (get("executor.slots").value, get("executor.slots").source),
            ("3".into(), "env TM_EXECUTOR_SLOTS".into())
        );
        assert_eq!((get("s3.secret_key").value, get("s3.secret_key").source), (String::new(), "default".into()));
        assert_eq!(get("web.max_connections").value, "256");
    }

    #[test]
    fn retention_is_off_by_default_and_the_webhook_secret_is_masked() {
        let s = Settings::load_with(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(s.retention.keep_days, 0);
        assert_eq!(s.alerts.webhook_secret, "");
        assert_eq!(s.alerts.webhook_timeout, Duration::from_secs(10));
        let vars = env(&[("TM_RETENTION_KEEP_DAYS", "365"), ("TM_ALERTS_WEBHOOK_SECRET", "hook-secret-1")]);
        let s = Settings::load_with(&Overrides::default(), &vars).unwrap();
        assert_eq!((s.retention.keep_days, s.alerts.webhook_secret.as_str()), (365, "hook-secret-1"));
        let shown = Settings::explain(&Overrides::default(), &vars).unwrap();
        let get = |k: &str| shown.iter().find(|e| e.key == k).unwrap().clone();
        assert_eq!(
            (get("retention.keep_days").value, get("retention.keep_days").source),
            ("365".into(), "env TM_RETENTION_KEEP_DAYS".into())
        );
        assert_eq!(get("alerts.webhook_secret").value, "***");
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_RETENTION_KEEP_DAYS", "-1")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `retention.keep_days` = \"-1\" must be a whole number, 0 or more \
             (from TM_RETENTION_KEEP_DAYS=-1)"
        );
    }

    #[test]
    fn http_limits_have_defaults_and_name_bad_values() {
        let s = Settings::load_with(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(s.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.http.request_timeout, Duration::from_secs(60));
        assert_eq!((s.http.max_connections, s.http.max_body), (256, 1 << 20));
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_WEB_MAX_BODY", "12")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `web.max_body` = \"12\" must be at least 1024 bytes (from TM_WEB_MAX_BODY=12)"
        );
    }

    #[test]
    fn unknown_keys_in_a_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[executor]\nslot = 3\n").unwrap();
        let o = Overrides { config_file: Some(file.clone()), ..Default::default() };
        let e = Settings::load_with(&o, &env(&[])).unwrap_err();
        assert_eq!(e.key, "executor.slot");
        assert_eq!(e.source_name, file.display().to_string());
        assert!(e.to_string().starts_with("config error: `executor.slot` is not a setting (known: home, dags_dir,"));
    }

    #[test]
    fn web_security_settings_have_safe_defaults_and_name_bad_values() {
        let s = Settings::load_with(&Overrides::default(), &env(&[])).unwrap();
        assert!(!s.web_anonymous_read);
        assert_eq!(s.web_allowed_hosts, ["localhost", "127.0.0.1", "[::1]", "127.0.0.1:8080"]);
        assert_eq!(
            (s.web_session_idle, s.web_session_max),
            (Duration::from_secs(8 * 3600), Duration::from_secs(12 * 3600))
        );
        let s = Settings::load_with(
            &Overrides::default(),
            &env(&[("TM_WEB_BASE_URL", "https://TM.example.com/ui/"), ("TM_WEB_BIND", "0.0.0.0:8080")]),
        )
        .unwrap();
        assert_eq!(s.web_allowed_hosts, ["localhost", "127.0.0.1", "[::1]", "0.0.0.0", "tm.example.com"]);
        let s = Settings::load_with(
            &Overrides::default(),
            &env(&[("TM_WEB_ALLOWED_HOSTS", " a.example , B.example:8443")]),
        )
        .unwrap();
        assert_eq!(s.web_allowed_hosts, ["a.example", "b.example:8443"]);
        let e =
            Settings::load_with(&Overrides::default(), &env(&[("TM_WEB_ALLOWED_HOSTS", "a.example/x")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `web.allowed_hosts` entry \"a.example/x\" is not a host name like tmctl.example.com or \
             127.0.0.1:8080 (no scheme, no path) (from TM_WEB_ALLOWED_HOSTS=a.example/x)"
        );
        let e = Settings::load_with(&Overrides::default(), &env(&[("TM_WEB_SESSION_IDLE", "0s")])).unwrap_err();
        assert_eq!(e.key, "web.session_idle");
    }

    #[test]
    fn the_public_url_defaults_to_the_bind_address_and_its_host_is_allowed() {
        let s = Settings::load_with(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(
            (s.web_public_url.as_str(), s.web_base_url.as_str()),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080")
        );
        let s = Settings::load_with(&Overrides::default(), &env(&[("TM_WEB_PUBLIC_URL", "https://TM.example.com/")]))
            .unwrap();
        assert_eq!(s.web_public_url, "https://TM.example.com");
        assert_eq!(s.web_base_url, "https://TM.example.com", "alert links follow the public URL");
        assert_eq!(s.web_allowed_hosts, ["localhost", "127.0.0.1", "[::1]", "tm.example.com"]);
        // An explicit host list is taken as it is; an explicit base_url keeps its own host.
        let s = Settings::load_with(
            &Overrides::default(),
            &env(&[
                ("TM_WEB_PUBLIC_URL", "https://tm.example.com:8443"),
                ("TM_WEB_BASE_URL", "https://mail-links.example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.web_allowed_hosts,
            ["localhost", "127.0.0.1", "[::1]", "tm.example.com:8443", "mail-links.example.com"]
        );
        let s = Settings::load_with(
            &Overrides::default(),
            &env(&[("TM_WEB_PUBLIC_URL", "https://tm.example.com"), ("TM_WEB_ALLOWED_HOSTS", "a.example")]),
        )
        .unwrap();
        assert_eq!(s.web_allowed_hosts, ["a.example"]);
        let e =
            Settings::load_with(&Overrides::default(), &env(&[("TM_WEB_PUBLIC_URL", "tm.example.com")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: `web.public_url` = \"tm.example.com\" is not a URL like https://tmctl.example.com \
             (from TM_WEB_PUBLIC_URL=tm.example.com)"
        );
    }
}
