//! Web UI sessions (the id itself is never stored, only its SHA-256).

use chrono::{DateTime, Utc};

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub username: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    pub async fn create_web_session(
        &self,
        id_hash: &str,
        username: &str,
        csrf: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, username, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(username)
        .bind(csrf)
        .bind(timefmt::to_db(timefmt::now()))
        .bind(timefmt::to_db(expires_at))
        .execute(self.pool())
        .await
        .ctx("create web session")?;
        Ok(())
    }

    /// The session, if it exists and has not expired at `now`.
    pub async fn web_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<Option<WebSession>> {
        let row =
            sqlx::query("SELECT username, csrf, expires_at FROM web_sessions WHERE id_hash = $1 AND expires_at > $2")
                .bind(id_hash)
                .bind(timefmt::to_db(now))
                .fetch_optional(self.pool())
                .await
                .ctx("read web session")?;
        row.map(|r| {
            Ok(WebSession {
                username: get_str(&r, "username")?,
                csrf: get_str(&r, "csrf")?,
                expires_at: get_ts(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a session, and drops every expired one.
    pub async fn delete_web_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1 OR expires_at < $2")
            .bind(id_hash)
            .bind(timefmt::to_db(timefmt::now()))
            .execute(self.pool())
            .await
            .ctx("delete web session")?;
        Ok(())
    }
}
