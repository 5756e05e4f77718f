//! Users (name, argon2id hash, role), their API tokens (only the SHA-256 of a token is stored)
//! and the audit log of mutating actions.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last successful web login, if any.
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub username: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The user and role a valid (unexpired) token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub username: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
}

const USER_COLS: &str = "username, password_hash, role, created_at, updated_at, last_login_at";

fn user_row(r: &AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        username: get_str(r, "username")?,
        password_hash: get_str(r, "password_hash")?,
        role: get_str(r, "role")?,
        created_at: get_ts(r, "created_at")?,
        updated_at: get_ts(r, "updated_at")?,
        last_login_at: get_opt_ts(r, "last_login_at")?,
    })
}

impl Store {
    /// Adds a user; `Conflict` if the name is taken.
    pub async fn create_user(&self, username: &str, password_hash: &str, role: &str) -> Result<()> {
        let now = timefmt::to_db(timefmt::now());
        let done = sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .bind(now)
        .execute(self.pool())
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!("user `{username}` exists already"))),
            Err(e) => Err(StoreError::Db { action: "create user", source: e }),
        }
    }

    pub async fn get_user(&self, username: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE username = $1");
        let row = sqlx::query(&sql).bind(username).fetch_optional(self.pool()).await.ctx("read user")?;
        row.as_ref().map(user_row).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY username");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await.ctx("list users")?;
        rows.iter().map(user_row).collect()
    }

    /// Sets a user's role and ends their sessions (in one transaction); false if no such user.
    pub async fn set_user_role(&self, username: &str, role: &str) -> Result<bool> {
        self.update_user("UPDATE users SET role = $2, updated_at = $3 WHERE username = $1", username, role).await
    }

    /// Sets a user's password hash and ends their sessions; false if no such user.
    pub async fn set_user_password(&self, username: &str, password_hash: &str) -> Result<bool> {
        self.update_user(
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE username = $1",
            username,
            password_hash,
        )
        .await
    }

    async fn update_user(&self, sql: &'static str, username: &str, value: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await.ctx("begin user update")?;
        let n = sqlx::query(sql)
            .bind(username)
            .bind(value)
            .bind(timefmt::to_db(timefmt::now()))
            .execute(&mut *tx)
            .await
            .ctx("update user")?
            .rows_affected();
        sqlx::query("DELETE FROM web_sessions WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .ctx("end the user's sessions")?;
        tx.commit().await.ctx("commit user update")?;
        self.sessions.forget_user(username);
        self.tokens.forget_user(username);
        Ok(n > 0)
    }

    /// Removes a user with their tokens and sessions; false if no such user.
    pub async fn delete_user(&self, username: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await.ctx("begin user removal")?;
        for sql in ["DELETE FROM web_sessions WHERE username = $1", "DELETE FROM api_tokens WHERE username = $1"] {
            sqlx::query(sql).bind(username).execute(&mut *tx).await.ctx("remove the user's sessions and tokens")?;
        }
        let n = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .ctx("remove user")?
            .rows_affected();
        tx.commit().await.ctx("commit user removal")?;
        self.sessions.forget_user(username);
        self.tokens.forget_user(username);
        Ok(n > 0)
    }

    /// Ends every session of a user (the config user's, when its password changes).
    pub async fn delete_sessions_of(&self, username: &str) -> Result<u64> {
        let n = sqlx::query("DELETE FROM web_sessions WHERE username = $1")
            .bind(username)
            .execute(self.pool())
            .await
            .ctx("end sessions")?
            .rows_affected();
        self.sessions.forget_user(username);
        self.tokens.forget_user(username);
        Ok(n)
    }

    /// Records a successful web login of `username` (a user of the `users` table).
    pub async fn note_login(&self, username: &str) -> Result<()> {
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE username = $2")
            .bind(timefmt::to_db(timefmt::now()))
            .bind(username)
            .execute(self.pool())
            .await
            .ctx("note login")?;
        Ok(())
    }

    /// Stores a token's hash under `(username, name)`; `Conflict` if that name is taken.
    pub async fn create_token(
        &self,
        username: &str,
        name: &str,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO api_tokens (token_hash, username, name, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(username)
        .bind(name)
        .bind(timefmt::to_db(timefmt::now()))
        .bind(expires_at.map(timefmt::to_db))
        .execute(self.pool())
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("user `{username}` has a token named `{name}` already")))
            }
            Err(e) => Err(StoreError::Db { action: "create token", source: e }),
        }
    }

    /// Tokens (never their values), of one user or of all.
    pub async fn list_tokens(&self, username: Option<&str>) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT username, name, created_at, expires_at, last_used_at FROM api_tokens \
             WHERE ($1 IS NULL OR username = $1) ORDER BY username, name",
        )
        .bind(username)
        .fetch_all(self.pool())
        .await
        .ctx("list tokens")?;
        rows.iter()
            .map(|r| {
                Ok(TokenRow {
                    username: get_str(r, "username")?,
                    name: get_str(r, "name")?,
                    created_at: get_ts(r, "created_at")?,
                    expires_at: get_opt_ts(r, "expires_at")?,
                    last_used_at: get_opt_ts(r, "last_used_at")?,
                })
            })
            .collect()
    }

    /// Deletes a token by name; false if there was none.
    pub async fn delete_token(&self, username: &str, name: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM api_tokens WHERE username = $1 AND name = $2")
            .bind(username)
            .bind(name)
            .execute(self.pool())
            .await
            .ctx("revoke token")?
            .rows_affected();
        self.tokens.forget_user(username);
        Ok(n > 0)
    }

    /// Who a token (by its hash) belongs to, if it exists and has not expired at `now`: from the
    /// cache when this process read it within the cache's TTL (revoking it, or changing or
    /// removing its user, through this `Store` drops it at once; another process's change is
    /// seen within `SESSION_CACHE_TTL`), else from the DB, where its `last_used_at` is brought up
    /// to date at most once a minute.
    pub async fn token_owner(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<TokenOwner>> {
        let ttl = self.tokens.ttl(std::time::Duration::MAX);
        if !ttl.is_zero()
            && let Some(owner) = self.tokens.get(token_hash, ttl, now)
        {
            return Ok(Some(owner));
        }
        let generation = self.tokens.generation();
        let found = self.read_token_owner(token_hash, now).await?;
        if !ttl.is_zero()
            && let Some((owner, expires_at)) = &found
        {
            self.tokens.put(token_hash, owner.clone(), *expires_at, generation, ttl);
        }
        Ok(found.map(|(owner, _)| owner))
    }

    async fn read_token_owner(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(TokenOwner, Option<DateTime<Utc>>)>> {
        let now_text = timefmt::to_db(now);
        let row = sqlx::query(
            "SELECT t.username, u.role, t.expires_at, t.last_used_at FROM api_tokens t \
             JOIN users u ON u.username = t.username \
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now_text.as_str())
        .fetch_optional(self.pool())
        .await
        .ctx("read token")?;
        let Some(r) = row else { return Ok(None) };
        let last = get_opt_ts(&r, "last_used_at")?;
        if last.is_none_or(|t| now - t > chrono::Duration::minutes(1)) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1")
                .bind(token_hash)
                .bind(now_text.as_str())
                .execute(self.pool())
                .await
                .ctx("note token use")?;
        }
        let owner = TokenOwner { username: get_str(&r, "username")?, role: get_str(&r, "role")? };
        Ok(Some((owner, get_opt_ts(&r, "expires_at")?)))
    }

    /// Appends one line to the audit log.
    pub async fn audit(&self, actor: &str, action: &str, target: &str, result: &str) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (at, actor, action, target, result) VALUES ($1, $2, $3, $4, $5)")
            .bind(timefmt::to_db(timefmt::now()))
            .bind(clean_text(actor))
            .bind(action)
            .bind(clean_text(target))
            .bind(clean_text(result))
            .execute(self.pool())
            .await
            .ctx("write audit log")?;
        Ok(())
    }

    /// The newest audit lines, newest first, older than id `before` when given.
    pub async fn list_audit(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, result FROM audit_log \
             WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .ctx("read audit log")?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: get_i64(r, "id")?,
                    at: get_ts(r, "at")?,
                    actor: get_str(r, "actor")?,
                    action: get_str(r, "action")?,
                    target: get_str(r, "target")?,
                    result: get_str(r, "result")?,
                })
            })
            .collect()
    }
}
