//! The Iceberg REST catalog's commit endpoint, called directly. iceberg-rust 0.10 builds
//! `TableCommit`s only inside its own `Transaction` actions (fast append, properties, …), none of
//! which replaces partitions; tmctl stages the overwrite snapshot itself ([`super::commit`]) and
//! sends it here as `POST /v1/{prefix}/namespaces/{ns}/tables/{table}` with requirements
//! (table UUID, `main` still at the parent snapshot) and updates (add snapshot, move `main`).
//! Everything else (config, namespaces, load/create/list tables) goes through
//! iceberg-catalog-rest's `RestCatalog`, which this client mirrors for auth: OAuth2 client
//! credentials exchanged at `/v1/oauth/tokens`, or a static bearer token.

use std::collections::HashMap;
use std::time::Duration;

use iceberg::{TableIdent, TableRequirement, TableUpdate};
use iceberg_catalog_rest::{CommitTableRequest, CommitTableResponse};
use reqwest::StatusCode;
use tokio::sync::Mutex;

use crate::config::RestCatalogSettings;

/// Bound on one catalog request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a commit request ended.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// 409: a requirement failed (another writer moved `main`); re-plan and try again.
    Conflict(String),
    /// The catalog refused the request for good (400, 401/403 after a fresh token, 404, …).
    Rejected { status: u16, message: String },
    /// No answer, or a 5xx: the commit may or may not have landed.
    Unknown(String),
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::Conflict(m) => write!(f, "conflict: {m}"),
            CommitError::Rejected { status, message } => write!(f, "refused with HTTP {status}: {message}"),
            CommitError::Unknown(m) => write!(f, "outcome unknown: {m}"),
        }
    }
}

/// The commit client of one REST catalog (all its warehouses).
pub(crate) struct RestCommits {
    http: reqwest::Client,
    settings: RestCatalogSettings,
    token: Mutex<Option<String>>,
    /// `prefix` of each warehouse, from `GET /v1/config?warehouse=`.
    prefixes: Mutex<HashMap<String, Option<String>>>,
}

impl RestCommits {
    pub(crate) fn new(settings: RestCatalogSettings) -> Result<RestCommits, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let token = (!settings.token.is_empty()).then(|| settings.token.clone());
        Ok(RestCommits { http, settings, token: Mutex::new(token), prefixes: Mutex::new(HashMap::new()) })
    }

    /// `POST …/tables/{table}` with `requirements` and `updates`; the new metadata location on
    /// success. A 401 is answered once with a fresh token.
    pub(crate) async fn commit(
        &self,
        warehouse: &str,
        ident: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<String, CommitError> {
        let body = CommitTableRequest { identifier: Some(ident.clone()), requirements, updates };
        let url = self.table_url(warehouse, ident).await?;
        for fresh_token in [false, true] {
            if fresh_token {
                self.refresh_token().await?;
            }
            let mut req = self.http.post(url.clone()).json(&body);
            if let Some(token) = self.token().await? {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await.map_err(|e| CommitError::Unknown(format!("POST {url}: {e}")))?;
            let status = resp.status();
            if status.is_success() {
                let parsed: CommitTableResponse = resp
                    .json()
                    .await
                    .map_err(|e| CommitError::Unknown(format!("POST {url}: unreadable answer: {e}")))?;
                return Ok(parsed.metadata_location);
            }
            let text = resp.text().await.unwrap_or_default();
            let message = error_message(&text);
            match status {
                StatusCode::UNAUTHORIZED if !fresh_token && !self.settings.credential.is_empty() => continue,
                StatusCode::CONFLICT => return Err(CommitError::Conflict(message)),
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    return Err(CommitError::Unknown(format!("POST {url}: HTTP {}: {message}", s.as_u16())));
                }
                s => return Err(CommitError::Rejected { status: s.as_u16(), message }),
            }
        }
        Err(CommitError::Rejected { status: 401, message: "the catalog refused a fresh token".into() })
    }

    async fn table_url(&self, warehouse: &str, ident: &TableIdent) -> Result<url::Url, CommitError> {
        let prefix = self.prefix(warehouse).await?;
        let mut url = url::Url::parse(&self.settings.uri).map_err(|e| CommitError::Rejected {
            status: 0,
            message: format!("catalog.rest_uri {} is not a URL: {e}", self.settings.uri),
        })?;
        {
            let mut segments = url.path_segments_mut().map_err(|_| CommitError::Rejected {
                status: 0,
                message: format!("catalog.rest_uri {} cannot take a path", self.settings.uri),
            })?;
            segments.pop_if_empty().push("v1");
            if let Some(p) = &prefix {
                for part in p.split('/').filter(|s| !s.is_empty()) {
                    segments.push(part);
                }
            }
            // Multi-level namespaces are joined with the unit separator (REST spec).
            segments.push("namespaces").push(&ident.namespace().join("\u{1f}")).push("tables").push(ident.name());
        }
        Ok(url)
    }

    /// The warehouse's path prefix, as `GET /v1/config?warehouse=` announces it (cached).
    async fn prefix(&self, warehouse: &str) -> Result<Option<String>, CommitError> {
        if let Some(p) = self.prefixes.lock().await.get(warehouse) {
            return Ok(p.clone());
        }
        let url = format!("{}/v1/config", self.settings.uri);
        let mut req = self.http.get(&url).query(&[("warehouse", warehouse)]);
        if let Some(token) = self.token().await? {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| CommitError::Unknown(format!("GET {url}: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(CommitError::Rejected { status: status.as_u16(), message: error_message(&text) });
        }
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let prefix = ["overrides", "defaults"]
            .iter()
            .find_map(|k| json.get(k).and_then(|m| m.get("prefix")).and_then(|p| p.as_str()))
            .map(str::to_string);
        self.prefixes.lock().await.insert(warehouse.to_string(), prefix.clone());
        Ok(prefix)
    }

    async fn token(&self) -> Result<Option<String>, CommitError> {
        if let Some(t) = self.token.lock().await.clone() {
            return Ok(Some(t));
        }
        if self.settings.credential.is_empty() {
            return Ok(None);
        }
        self.refresh_token().await?;
        Ok(self.token.lock().await.clone())
    }

    /// Client-credentials exchange at `/v1/oauth/tokens` (no-op with a static token).
    async fn refresh_token(&self) -> Result<(), CommitError> {
        let Some((id, secret)) = split_credential(&self.settings.credential) else {
            return Ok(());
        };
        let url = format!("{}/v1/oauth/tokens", self.settings.uri);
        let form =
            [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret), ("scope", "catalog")];
        let resp = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| CommitError::Unknown(format!("POST {url}: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(CommitError::Rejected {
                status: status.as_u16(),
                message: format!("the catalog refused the credential for `{id}`: {}", error_message(&text)),
            });
        }
        let token = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("access_token").and_then(|t| t.as_str()).map(str::to_string))
            .ok_or_else(|| CommitError::Rejected {
                status: status.as_u16(),
                message: "no access_token in the answer".into(),
            })?;
        *self.token.lock().await = Some(token);
        Ok(())
    }
}

/// `client_id:client_secret` (a credential without `:` is a bare secret, as PyIceberg reads it).
pub(crate) fn split_credential(credential: &str) -> Option<(&str, &str)> {
    if credential.is_empty() {
        return None;
    }
    Some(credential.split_once(':').unwrap_or(("", credential)))
}

/// The `error.message` of an Iceberg REST error body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_error_bodies_parse() {
        assert_eq!(split_credential("k:s:x"), Some(("k", "s:x")));
        assert_eq!(split_credential("s"), Some(("", "s")));
        assert_eq!(split_credential(""), None);
        assert_eq!(
            error_message(r#"{"error":{"message":"Requirement failed: branch main has changed","code":409}}"#),
            "Requirement failed: branch main has changed"
        );
        assert_eq!(error_message("plain"), "plain");
    }
}
