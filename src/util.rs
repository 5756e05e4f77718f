//! Small helpers several modules need the same way: lowercase hex of bytes (digests, tokens, run
//! key fingerprints) and the doubling delay of retries (alert sending, commit races, task retries).

use std::time::Duration;

/// Lowercase hex of `bytes`, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `first · 2^n`, at most `cap` (no overflow for any `n`).
pub fn doubling(first: Duration, n: u32, cap: Duration) -> Duration {
    first.saturating_mul(2u32.saturating_pow(n.min(31))).min(cap)
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for a query value).
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn doubling_stops_at_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(doubling(s(10), 0, s(600)), s(10));
        assert_eq!(doubling(s(10), 3, s(600)), s(80));
        assert_eq!(doubling(s(10), 6, s(600)), s(600));
        assert_eq!(doubling(s(10), u32::MAX, s(600)), s(600));
    }
}
