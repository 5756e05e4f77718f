//! Password hashing (argon2id) on tokio's blocking pool, at most a few at once: a hash takes
//! tens of milliseconds of CPU and must neither stall the async runtime threads nor let a flood
//! of logins take every core.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::OpError;

/// Shortest password `users add` / `set-password` accept.
pub const MIN_PASSWORD_LEN: usize = 8;

/// The hashing front door: one per process (the daemon's, the CLI's).
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Passwords::new((cores / 2).clamp(1, 4))
    }
}

impl Passwords {
    /// At most `max_at_once` hashes or verifications run at the same time.
    pub fn new(max_at_once: usize) -> Passwords {
        Passwords { permits: Arc::new(Semaphore::new(max_at_once.max(1))) }
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, OpError> {
        let _permit = self.permits.acquire().await.map_err(|_| OpError::Internal("password hashing stopped".into()))?;
        tokio::task::spawn_blocking(f).await.map_err(|e| OpError::Internal(format!("password hashing failed: {e}")))
    }

    /// The argon2id PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, OpError> {
        self.blocking(move || hash_now(&password)).await?.map_err(OpError::Internal)
    }

    /// True if `password` matches the PHC string `hash` (false for a malformed hash).
    pub async fn verify(&self, password: String, hash: String) -> bool {
        self.blocking(move || verify_now(&password, &hash)).await.unwrap_or(false)
    }
}

/// Hashes on the calling thread (`tmctl hash-password`, tests).
pub fn hash_now(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies on the calling thread.
pub fn verify_now(password: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(hash)
        .map(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A password a new user may have; the error says why not.
pub fn check_new(password: &str) -> Result<(), OpError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(OpError::Invalid(format!("the password must have at least {MIN_PASSWORD_LEN} characters")));
    }
    if password.chars().any(char::is_control) {
        return Err(OpError::Invalid("the password must not contain control characters".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let p = Passwords::new(1);
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(p.verify("correct horse".into(), h.clone()).await);
        assert!(!p.verify("wrong".into(), h).await);
        assert!(!p.verify("x".into(), "not a hash".into()).await);
    }
}
