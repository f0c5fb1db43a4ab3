//! Per-session CSRF tokens: random, stored in the session, compared in constant time.

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Name of the hidden form field (and of the session key).
pub const FIELD: &str = "csrf_token";

/// A fresh random CSRF token for a new session.
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the operating system's random source failed");
    BASE64_URL_SAFE_NO_PAD.encode(raw)
}

/// Constant-time comparison; an empty expected token never matches.
pub fn matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_match_themselves() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(matches(&a, &a));
        assert!(!matches(&a, &b));
        assert!(!matches("", ""));
    }
}
