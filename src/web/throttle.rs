//! Login throttling, per user name and per client address: the first [`FREE_FAILURES`] failures
//! cost nothing, then each further failure doubles the wait before the next try (1 s, 2 s, 4 s …
//! up to [`MAX_DELAY`]); a try during the wait gets 429 with `Retry-After` without its password
//! being checked. A success clears the user's count (not the address's). Failures are forgotten
//! [`FORGET_AFTER`] after the last one. Kept in memory per daemon.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FREE_FAILURES: u32 = 5;
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// Entries kept at most (oldest dropped first), so a flood of names cannot grow memory.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
}

/// The throttle keys of a login attempt.
pub fn keys(username: &str, client: &str) -> [String; 2] {
    [format!("user:{}", username.trim().to_lowercase()), format!("addr:{client}")]
}

fn delay(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(FREE_FAILURES)?;
    let secs = 1u64.checked_shl(over.min(30)).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_DELAY))
}

impl LoginThrottle {
    /// How long the caller must still wait, if any key is blocked.
    pub fn blocked(&self, keys: &[String]) -> Option<Duration> {
        self.blocked_at(keys, Instant::now())
    }

    fn blocked_at(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| entries.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    pub fn failed(&self, keys: &[String]) {
        self.failed_at(keys, Instant::now())
    }

    fn failed_at(&self, keys: &[String], now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        for k in keys {
            let e = entries.entry(k.clone()).or_insert(Entry { failures: 0, last: now, blocked_until: None });
            if now.duration_since(e.last) >= FORGET_AFTER {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            e.blocked_until = delay(e.failures).map(|d| now + d);
        }
    }

    /// A successful login clears the user's count (`keys[0]`).
    pub fn succeeded(&self, keys: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.first() {
            entries.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_are_free_then_the_wait_doubles() {
        let t = LoginThrottle::default();
        let k = keys("Ann", "10.0.0.1");
        let now = Instant::now();
        for _ in 0..4 {
            t.failed_at(&k, now);
            assert_eq!(t.blocked_at(&k, now), None);
        }
        t.failed_at(&k, now);
        assert_eq!(t.blocked_at(&k, now), Some(Duration::from_secs(1)));
        t.failed_at(&k, now);
        assert_eq!(t.blocked_at(&k, now), Some(Duration::from_secs(2)));
        // The address alone blocks another user name too.
        assert!(t.blocked_at(&keys("bob", "10.0.0.1"), now).is_some());
        assert_eq!(t.blocked_at(&keys("bob", "10.0.0.2"), now), None);
        assert_eq!(delay(100), Some(MAX_DELAY));
        t.succeeded(&k);
        assert!(t.blocked_at(&keys("ann", "10.0.0.9"), now).is_none(), "the user's count is cleared");
    }
}
