//! Errors of the lakehouse layer: [`LakeError`], and [`CatalogFault`], what a catalog failure
//! means (refused credentials, unreachable, other) and whether it is worth retrying.

use crate::store::StoreError;

/// Errors of the lakehouse layer. Each names the table (or catalog) it is about.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("cannot open the Iceberg catalog `{catalog}`: {}{source}", fault.hint())]
    Open {
        catalog: String,
        fault: CatalogFault,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("Iceberg catalog `{catalog}`: {message}")]
    Unsupported { catalog: String, message: String },
    #[error("Iceberg catalog: cannot {action}: {}{source}", fault.hint())]
    Catalog {
        action: String,
        fault: CatalogFault,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("Iceberg table {table} does not exist")]
    NoSuchTable { table: String },
    #[error("Iceberg table {table}: cannot {action}: {source}")]
    Table {
        table: String,
        action: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("Iceberg table {table}: {message}")]
    Invalid { table: String, message: String },
    #[error("Iceberg table {table}: the commit failed: {message}")]
    CommitFailed { table: String, message: String },
    #[error("Iceberg table {table}: the catalog refused the commit: {message}")]
    CommitRefused { table: String, message: String },
    #[error("Iceberg table {table}: commit lost the race {attempts} times in a row; giving up")]
    Conflict { table: String, attempts: u32 },
    #[error("Iceberg table {table}: {source}")]
    Store {
        table: String,
        #[source]
        source: StoreError,
    },
    /// A request that cannot be served as asked (bad options, not a table name).
    #[error("{0}")]
    Usage(String),
    #[error("no Iceberg table has snapshot {snapshot_id}")]
    SnapshotNotFound { snapshot_id: i64 },
    #[error("cannot build a DataFusion session: {source}")]
    Session {
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
}

/// What a catalog failure means for whoever handles it, decided once where the error is made:
/// refused credentials and an unreachable catalog are the two usual mistakes, and only the first
/// fails the same way every time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFault {
    /// The REST catalog refused the credentials (HTTP 401/403, OAuth `invalid_client`).
    Credentials,
    /// The catalog did not answer (connection refused, timeout).
    Unreachable,
    /// Anything else (a failed request, a database error): may pass on a retry.
    Other,
}

impl CatalogFault {
    /// Classifies an error of the Iceberg catalog crates. A transport failure is recognised by
    /// its `reqwest` source; iceberg-catalog-rest keeps an HTTP status only in the error's text
    /// (its context has no accessor), so statuses are read from there.
    pub fn of(e: &iceberg::Error) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(c) = cause {
            if let Some(r) = c.downcast_ref::<reqwest::Error>() {
                if r.status().is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) {
                    return CatalogFault::Credentials;
                }
                if r.is_connect() || r.is_timeout() {
                    return CatalogFault::Unreachable;
                }
            }
            cause = c.source();
        }
        let text = e.to_string();
        if text.contains("401 Unauthorized") || text.contains("403 Forbidden") || text.contains("invalid_client") {
            CatalogFault::Credentials
        } else if text.contains("error sending request") || text.contains("Connection refused") {
            CatalogFault::Unreachable
        } else {
            CatalogFault::Other
        }
    }

    /// A lead-in for the error message naming the setting to check.
    fn hint(self) -> &'static str {
        match self {
            CatalogFault::Credentials => {
                "the REST catalog refused the credentials (check catalog.rest_credential / \
                 TM_ICEBERG_REST_CREDENTIAL or catalog.rest_token / TM_ICEBERG_REST_TOKEN): "
            }
            CatalogFault::Unreachable => {
                "cannot reach the REST catalog (check catalog.rest_uri / TM_ICEBERG_REST_URI and that it runs): "
            }
            CatalogFault::Other => "",
        }
    }
}

impl LakeError {
    /// The catalog could not be opened.
    pub fn open(catalog: impl Into<String>, source: iceberg::Error) -> Self {
        LakeError::Open { catalog: catalog.into(), fault: CatalogFault::of(&source), source: Box::new(source) }
    }

    /// A catalog call (namespaces, table lists) failed.
    pub fn catalog(action: impl Into<String>, source: iceberg::Error) -> Self {
        LakeError::Catalog { action: action.into(), fault: CatalogFault::of(&source), source: Box::new(source) }
    }

    /// Whether trying again may help (I/O, the database, a lost commit race, an unreachable
    /// catalog), as opposed to bad input, a missing table or refused credentials, which fail the
    /// same way every time.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            LakeError::Open { fault: CatalogFault::Credentials, .. }
                | LakeError::Catalog { fault: CatalogFault::Credentials, .. }
                | LakeError::Invalid { .. }
                | LakeError::Usage(_)
                | LakeError::Unsupported { .. }
                | LakeError::CommitRefused { .. }
                | LakeError::NoSuchTable { .. }
                | LakeError::SnapshotNotFound { .. }
        )
    }
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::ErrorKind;

    #[test]
    fn catalog_faults_decide_what_is_retried() {
        let refused = iceberg::Error::new(ErrorKind::DataInvalid, "OAuthError: invalid_client");
        assert_eq!(CatalogFault::of(&refused), CatalogFault::Credentials);
        let e = LakeError::open("tm", refused);
        assert!(!e.is_transient());
        assert!(e.to_string().contains("refused the credentials"), "{e}");
        let status = iceberg::Error::new(ErrorKind::Unexpected, "Received response with unexpected status code")
            .with_context("status", "403 Forbidden");
        assert!(!LakeError::catalog("list the tables of gold", status).is_transient());
        let down =
            iceberg::Error::new(ErrorKind::Unexpected, "error sending request for url (http://127.0.0.1:1/v1/config)");
        let e = LakeError::catalog("look up namespace gold", down);
        assert!(matches!(e, LakeError::Catalog { fault: CatalogFault::Unreachable, .. }));
        assert!(e.is_transient());
        assert!(e.to_string().contains("cannot reach the REST catalog"), "{e}");
        let other = iceberg::Error::new(ErrorKind::Unexpected, "database is locked");
        let e = LakeError::catalog("list the tables of gold", other);
        assert!(e.is_transient());
        assert!(!e.to_string().contains("check catalog."), "{e}");
    }
}
