//! Web UI sessions (the id itself is never stored, only its SHA-256). A session ends at its
//! absolute `expires_at`, after `idle` without a request, and when its user's password or role
//! changes (`users.rs` deletes the user's rows).
//!
//! A session (and an API token, `users.rs`) read from the DB is kept in this process's
//! [`AuthCache`] for a few seconds, so a page or API call costs no state-DB round trip for its
//! login. Whatever ends sessions through this `Store`
//! (logout, password or role change, user removal) drops them from the cache at once; another
//! process (a second daemon on PostgreSQL, `tmctl users`) is seen within [`SESSION_CACHE_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::*;

/// How long a validated session or API token is believed without asking the state DB (for a
/// session at most a quarter of the idle timeout, so that stays exact to its minute).
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(5);

/// Above this many cached entries, stale ones are dropped (and all if that is not enough).
const SESSION_CACHE_MAX: usize = 10_000;

/// Credentials (web sessions, API tokens) validated by this process within the last
/// [`SESSION_CACHE_TTL`], by the SHA-256 of the secret.
#[derive(Debug)]
pub(crate) struct AuthCache<V> {
    /// `SESSION_CACHE_TTL` in ms, or 0 = no cache (`tmctl bench --ui --no-session-cache`).
    ttl_ms: AtomicU64,
    /// Bumped by every invalidation: a lookup that began before one does not fill the cache.
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Cached<V>>>,
}

#[derive(Debug)]
struct Cached<V> {
    at: Instant,
    /// The credential's own end (`None`: never), checked on every hit.
    expires_at: Option<DateTime<Utc>>,
    value: V,
}

/// The cache of web sessions.
pub(crate) type SessionCache = AuthCache<WebSession>;
/// The cache of API tokens.
pub(crate) type TokenCache = AuthCache<TokenOwner>;

impl<V> Default for AuthCache<V> {
    fn default() -> Self {
        AuthCache {
            ttl_ms: AtomicU64::new(SESSION_CACHE_TTL.as_millis() as u64),
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }
}

/// What the cache needs of a value: whose it is (to drop a user's entries).
pub(crate) trait Owned {
    fn owner(&self) -> &str;
}

impl Owned for WebSession {
    fn owner(&self) -> &str {
        &self.username
    }
}

impl Owned for TokenOwner {
    fn owner(&self) -> &str {
        &self.username
    }
}

impl<V: Clone + Owned> AuthCache<V> {
    /// The TTL, at most `limit`.
    pub(crate) fn ttl(&self, limit: Duration) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed)).min(limit)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn get(&self, key: &str, ttl: Duration, now: DateTime<Utc>) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let c = entries.get(key)?;
        (c.at.elapsed() < ttl && c.expires_at.is_none_or(|e| e > now)).then(|| c.value.clone())
    }

    /// Caches `value`, unless something was invalidated since `generation` was read.
    pub(crate) fn put(&self, key: &str, value: V, expires_at: Option<DateTime<Utc>>, generation: u64, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock that invalidations take too: nothing ended since the read.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= SESSION_CACHE_MAX {
            entries.retain(|_, c| c.at.elapsed() < ttl);
            if entries.len() >= SESSION_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(key.to_string(), Cached { at: Instant::now(), expires_at, value });
    }

    fn forget(&self, which: impl Fn(&str, &V) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|key, c| !which(key, &c.value));
    }

    /// Drops the entries of `username` (after their rows were deleted or changed).
    pub(crate) fn forget_user(&self, username: &str) {
        self.forget(|_, v| v.owner() == username);
    }

    /// Drops the entry of one credential.
    pub(crate) fn forget_key(&self, key: &str) {
        self.forget(|k, _| k == key);
    }

    fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(ttl.as_millis() as u64, Ordering::Relaxed);
        self.forget(|_, _| true);
    }
}

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

    /// The session, if it exists, has not expired at `now` and was used within `idle`: from the
    /// cache when this process read it within the cache's TTL, else from the DB (then cached).
    /// Its `last_seen_at` is brought up to date at most once a minute (one write per minute per
    /// session, not per request), so the idle timeout is exact to that minute.
    pub async fn web_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
        idle: std::time::Duration,
    ) -> Result<Option<WebSession>> {
        let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::hours(8));
        let cache = &self.sessions;
        let ttl = cache.ttl((idle / 4).to_std().unwrap_or_default());
        if ttl.is_zero() {
            return self.read_web_session(id_hash, now, idle).await;
        }
        if let Some(s) = cache.get(id_hash, ttl, now) {
            return Ok(Some(s));
        }
        let generation = cache.generation();
        let found = self.read_web_session(id_hash, now, idle).await?;
        if let Some(s) = &found {
            cache.put(id_hash, s.clone(), Some(s.expires_at), generation, ttl);
        }
        Ok(found)
    }

    /// Turns the session and token caches off (`Duration::ZERO`) or sets their TTL: `tmctl
    /// bench --ui --no-session-cache` measures what they save.
    pub fn set_session_cache_ttl(&self, ttl: Duration) {
        self.sessions.set_ttl(ttl);
        self.tokens.set_ttl(ttl);
    }

    async fn read_web_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<WebSession>> {
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
        self.sessions.forget_key(id_hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn session(store: &Store, id_hash: &str, user: &str) {
        let expires = Utc::now() + chrono::Duration::hours(1);
        store.create_web_session(id_hash, user, "operator", "csrf", expires).await.unwrap();
    }

    #[tokio::test]
    async fn sessions_are_cached_and_dropped_at_once_when_ended_through_this_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::sqlite_url(&dir.path().join("tm.db"));
        let here = Store::connect(&url, 1).await.unwrap();
        // Another process on the same state DB (a second daemon, `tmctl users`).
        let there = Store::connect(&url, 1).await.unwrap();
        here.set_session_cache_ttl(Duration::from_secs(3600));
        here.create_user("ann", "$argon2id$x", "operator").await.unwrap();
        let idle = Duration::from_secs(8 * 3600);
        let valid = |id: &'static str| {
            let here = here.clone();
            async move { here.web_session(id, Utc::now(), idle).await.unwrap().map(|s| s.username) }
        };

        // Ended by another process: still believed here until the TTL runs out.
        session(&here, "h1", "ann").await;
        assert_eq!(valid("h1").await.as_deref(), Some("ann"));
        there.delete_web_session("h1").await.unwrap();
        assert_eq!(valid("h1").await.as_deref(), Some("ann"), "served from the cache");
        // Ended here: gone at once.
        here.delete_web_session("h1").await.unwrap();
        assert_eq!(valid("h1").await, None);

        // A role change, a password change and the user's removal end the cached sessions.
        for (n, end) in ["role", "password", "remove"].into_iter().enumerate() {
            let id: &'static str = ["h2", "h3", "h4"][n];
            session(&here, id, "ann").await;
            assert_eq!(valid(id).await.as_deref(), Some("ann"));
            match end {
                "role" => assert!(here.set_user_role("ann", "viewer").await.unwrap()),
                "password" => assert!(here.set_user_password("ann", "$argon2id$y").await.unwrap()),
                _ => assert!(here.delete_user("ann").await.unwrap()),
            }
            assert_eq!(valid(id).await, None, "after the {end} change");
        }

        // Without the cache, another process's logout is seen by the next request.
        here.set_session_cache_ttl(Duration::ZERO);
        session(&here, "h5", "bob").await;
        assert_eq!(valid("h5").await.as_deref(), Some("bob"));
        there.delete_web_session("h5").await.unwrap();
        assert_eq!(valid("h5").await, None);
    }

    #[tokio::test]
    async fn tokens_are_cached_and_dropped_at_once_when_revoked_or_changed_through_this_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::sqlite_url(&dir.path().join("tm.db"));
        let here = Store::connect(&url, 1).await.unwrap();
        let there = Store::connect(&url, 1).await.unwrap();
        here.set_session_cache_ttl(Duration::from_secs(3600));
        here.create_user("ann", "$argon2id$x", "operator").await.unwrap();
        let owner = |hash: &'static str| {
            let here = here.clone();
            async move { here.token_owner(hash, Utc::now()).await.unwrap().map(|o| o.role) }
        };
        here.create_token("ann", "ci", "t1", None).await.unwrap();
        assert_eq!(owner("t1").await.as_deref(), Some("operator"));
        // Revoked by another process: still believed here until the TTL runs out.
        there.delete_token("ann", "ci").await.unwrap();
        assert_eq!(owner("t1").await.as_deref(), Some("operator"), "served from the cache");
        // Revoked here: refused at once.
        here.create_token("ann", "ci2", "t2", None).await.unwrap();
        assert_eq!(owner("t2").await.as_deref(), Some("operator"));
        here.delete_token("ann", "ci2").await.unwrap();
        assert_eq!(owner("t2").await, None);
        // A role change here is seen at once.
        here.create_token("ann", "ci3", "t3", None).await.unwrap();
        assert_eq!(owner("t3").await.as_deref(), Some("operator"));
        assert!(here.set_user_role("ann", "viewer").await.unwrap());
        assert_eq!(owner("t3").await.as_deref(), Some("viewer"));
        // A token past its expiry is refused even from the cache.
        let soon = Utc::now() + chrono::Duration::milliseconds(300);
        here.create_token("ann", "short", "t4", Some(soon)).await.unwrap();
        assert_eq!(owner("t4").await.as_deref(), Some("viewer"));
        let later = Utc::now() + chrono::Duration::seconds(1);
        assert_eq!(here.token_owner("t4", later).await.unwrap(), None);
    }
}
