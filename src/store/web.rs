//! Web UI sessions (the id itself is never stored, only its SHA-256). A session ends at its
//! absolute `expires_at`, after `idle` without a request, and when its user's password or role
//! changes (`users.rs` deletes the user's rows).

use chrono::{DateTime, Utc};

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub username: String,
    /// The role the user had at login (a role change ends the session).
    pub role: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    pub async fn create_web_session(
        &self,
        id_hash: &str,
        username: &str,
        role: &str,
        csrf: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let now = timefmt::to_db(timefmt::now());
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, username, role, csrf, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(id_hash)
        .bind(username)
        .bind(role)
        .bind(csrf)
        .bind(now)
        .bind(timefmt::to_db(expires_at))
        .execute(self.pool())
        .await
        .ctx("create web session")?;
        Ok(())
    }

    /// The session, if it exists, has not expired at `now` and was used within `idle`. Its
    /// `last_seen_at` is brought up to date at most once a minute (one write per minute per
    /// session, not per request), so the idle timeout is exact to that minute.
    pub async fn web_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
        idle: std::time::Duration,
    ) -> Result<Option<WebSession>> {
        let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::hours(8));
        let row = sqlx::query(
            "SELECT username, role, csrf, expires_at, last_seen_at, created_at FROM web_sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(timefmt::to_db(now))
        .fetch_optional(self.pool())
        .await
        .ctx("read web session")?;
        let Some(r) = row else { return Ok(None) };
        let last_seen = match get_opt_ts(&r, "last_seen_at")? {
            Some(t) => t,
            None => get_ts(&r, "created_at")?,
        };
        if now - last_seen > idle {
            return Ok(None);
        }
        // At most one write a minute per session (sooner for a short idle timeout).
        if now - last_seen > (idle / 4).min(chrono::Duration::minutes(1)) {
            sqlx::query("UPDATE web_sessions SET last_seen_at = $2 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(timefmt::to_db(now))
                .execute(self.pool())
                .await
                .ctx("note session use")?;
        }
        Ok(Some(WebSession {
            username: get_str(&r, "username")?,
            role: get_str(&r, "role")?,
            csrf: get_str(&r, "csrf")?,
            expires_at: get_ts(&r, "expires_at")?,
        }))
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
