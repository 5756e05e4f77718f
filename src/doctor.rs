//! `tmctl doctor`: checks one configuration end to end before anything runs on it — the state
//! DB answers (and takes its migrations), the Iceberg catalog answers and holds the namespaces,
//! every bucket takes a write, a read-back and a delete, and the SMTP server answers — and prints
//! one row per check. Every check is bounded in time and runs even when another failed (the
//! catalog needs the state DB, so it is skipped without one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::alerts::{Mailer, error_chain};
use crate::config::{CatalogKind, Settings, StorageKind};
use crate::lake::Lake;
use crate::lake::buckets::{Bucket, Buckets};
use crate::store::Store;

/// Bound on one check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `state DB`, `catalog`, `bucket landing`, `SMTP`.
    pub check: String,
    /// Where: a URL, `s3://bucket`, `host:port` (passwords removed).
    pub target: String,
    pub status: Status,
    pub detail: String,
    pub millis: u64,
}

/// Runs every check of `settings`.
pub async fn run(settings: Arc<Settings>) -> Vec<Check> {
    let mut out = Vec::new();

    let started = Instant::now();
    let store = match bounded(Store::connect(&settings.database_url, 2)).await {
        Ok(Ok(store)) => {
            let detail = format!(
                "connected, migrations applied ({})",
                if settings.is_postgres() { "PostgreSQL" } else { "SQLite" }
            );
            out.push(check(
                "state DB",
                crate::secrets::redact_url(&settings.database_url),
                Status::Ok,
                detail,
                started,
            ));
            Some(store)
        }
        Ok(Err(e)) => {
            out.push(check(
                "state DB",
                crate::secrets::redact_url(&settings.database_url),
                Status::Failed,
                e.to_string(),
                started,
            ));
            None
        }
        Err(t) => {
            out.push(check("state DB", crate::secrets::redact_url(&settings.database_url), Status::Failed, t, started));
            None
        }
    };

    let started = Instant::now();
    let catalog_target = match settings.lake.catalog_kind {
        CatalogKind::Sql => format!("sql `{}` in the state DB", settings.lake.catalog_name),
        CatalogKind::Rest => format!("rest {}", settings.lake.rest.uri),
        CatalogKind::Glue => "glue".to_string(),
    };
    match store {
        None => {
            out.push(check("Iceberg catalog", catalog_target, Status::Skipped, "needs the state DB".into(), started))
        }
        Some(store) => {
            let result = bounded(async {
                let lake = Lake::open(settings.clone(), store).await?;
                let mut parts = Vec::new();
                for ns in crate::lake::iceberg::NAMESPACES {
                    let tables = lake.list_tables(ns).await?;
                    parts.push(format!("{ns}: {} table(s)", tables.len()));
                }
                Ok::<String, crate::lake::LakeError>(format!("answers; namespaces {}", parts.join(", ")))
            })
            .await;
            let (status, detail) = match result {
                Ok(Ok(d)) => (Status::Ok, d),
                Ok(Err(e)) => (Status::Failed, error_chain(&e)),
                Err(t) => (Status::Failed, t),
            };
            out.push(check("Iceberg catalog", catalog_target, status, detail, started));
        }
    }

    match Buckets::open(&settings) {
        Err(e) => {
            out.push(check("buckets", storage_target(&settings), Status::Failed, e.to_string(), Instant::now()));
        }
        Ok(buckets) => {
            for b in Bucket::ALL {
                let started = Instant::now();
                let target = buckets.url(b, "").trim_end_matches('/').to_string();
                let (status, detail) = match bounded(probe(&buckets, b)).await {
                    Ok(Ok(d)) => (Status::Ok, d),
                    Ok(Err(e)) => (Status::Failed, e),
                    Err(t) => (Status::Failed, t),
                };
                out.push(check(&format!("bucket {}", b.role()), target, status, detail, started));
            }
        }
    }

    let started = Instant::now();
    match Mailer::new(&settings.smtp) {
        Ok(None) => out.push(check(
            "SMTP",
            "-".into(),
            Status::Skipped,
            "smtp.host is empty: alerts wait in the outbox".into(),
            started,
        )),
        Ok(Some(mailer)) => {
            let (status, detail) = match mailer.check().await {
                Ok(()) => (Status::Ok, "answers (EHLO accepted)".to_string()),
                Err(e) => (Status::Failed, e),
            };
            out.push(check("SMTP", mailer.server().to_string(), status, detail, started));
        }
        Err(e) => out.push(check("SMTP", settings.smtp.host.clone(), Status::Failed, e.to_string(), started)),
    }
    // No password or key in the report, whatever a driver put into its error text.
    let masker = crate::secrets::Masker::from_settings(&settings);
    for c in &mut out {
        c.target = masker.mask(&crate::secrets::redact_url(&c.target));
        c.detail = masker.mask(&c.detail);
    }
    out
}

/// Writes, reads back and deletes one small object. Table buckets on some S3 servers (SeaweedFS,
/// S3 Tables) accept only table files, so in the two warehouses the probe looks like a data file
/// of a table `tmctl_doctor`: `<namespace>/tmctl_doctor/data/probe-….parquet`.
async fn probe(buckets: &Buckets, b: Bucket) -> Result<String, String> {
    let id = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let key = match b {
        Bucket::Source => format!("silver/tmctl_doctor/data/probe-{id}.parquet"),
        Bucket::Serve => format!("gold/tmctl_doctor/data/probe-{id}.parquet"),
        _ => format!("_tmctl_doctor/probe-{id}.txt"),
    };
    let body = format!("tmctl doctor probe {key}");
    buckets.put_bytes(b, &key, body.clone().into_bytes()).await.map_err(|e| e.to_string())?;
    let read = buckets.get_bytes(b, &key).await.map_err(|e| e.to_string());
    let deleted = buckets.delete(b, &key).await.map_err(|e| e.to_string());
    let read = read?;
    if read.as_ref() != body.as_bytes() {
        return Err(format!("read back {} bytes that differ from the {} written", read.len(), body.len()));
    }
    deleted?;
    Ok("write, read back, delete".into())
}

async fn bounded<T>(f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(CHECK_TIMEOUT, f).await.map_err(|_| format!("no answer within {CHECK_TIMEOUT:?}"))
}

fn check(what: &str, target: String, status: Status, detail: String, started: Instant) -> Check {
    Check { check: what.to_string(), target, status, detail, millis: started.elapsed().as_millis() as u64 }
}

fn storage_target(settings: &Settings) -> String {
    match settings.lake.storage {
        StorageKind::Local => crate::lake::absolute(&settings.home).join("buckets").display().to_string(),
        StorageKind::S3 if settings.lake.s3.endpoint.is_empty() => "AWS S3".into(),
        StorageKind::S3 => settings.lake.s3.endpoint.clone(),
    }
}

/// The report as a table (`Result` is `ok`, `FAILED` or `skipped`).
pub fn render(checks: &[Check]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["Check", "Target", "Result", "Details", "ms"]);
    for c in checks {
        let result = match c.status {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        };
        t.add_row([c.check.clone(), c.target.clone(), result.to_string(), c.detail.clone(), c.millis.to_string()]);
    }
    t.to_string()
}
