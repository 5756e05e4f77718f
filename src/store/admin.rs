//! Scratch databases on a PostgreSQL server, for benchmarks and tests that need a fresh state DB.

use sqlx::Connection;

use super::*;
use crate::secrets::redact_url as redact;

/// Creates database `name` on the server of `admin_url` and returns a URL for it. `name` must be
/// a plain identifier (lowercase letters, digits, `_`), as it cannot be a bound parameter.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String> {
    check_name(name)?;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Open { url: redact(admin_url), message: e.to_string() })?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.ctx("create database")?;
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    Ok(format!("{base}/{name}"))
}

/// Drops database `name` (closing its connections), if it exists.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    check_name(name)?;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Open { url: redact(admin_url), message: e.to_string() })?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .ctx("drop database")?;
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok { Ok(()) } else { Err(StoreError::Conflict(format!("`{name}` is not a plain database name"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_pass() {
        assert!(check_name("tmtest_1_2").is_ok());
        assert!(check_name("x\"; DROP").is_err());
        assert!(check_name("").is_err());
    }
}
