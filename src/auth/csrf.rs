//! CSRF tokens, compared in constant time. A signed-in session holds a random token of its own;
//! an anonymous visitor (sign-in and setup forms) holds only a random nonce in a cookie, and
//! the token is the nonce's HMAC-SHA-256 under the session key, so no server-side session is
//! needed before sign-in and a token cannot be made up without the key.

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Name of the hidden form field (and of the session key).
pub const FIELD: &str = "csrf_token";

/// A fresh random CSRF token for a new session.
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the operating system's random source failed");
    BASE64_URL_SAFE_NO_PAD.encode(raw)
}

/// The anonymous form token for `nonce` (see the module doc).
pub fn anonymous_token(session_key: &[u8; 32], nonce: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(session_key)
        .expect("HMAC takes a key of any length");
    mac.update(b"daygle-anonymous-csrf-v1:");
    mac.update(nonce.as_bytes());
    BASE64_URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A nonce as [`new_token`] makes them (43 base64url characters); anything else is replaced.
pub fn is_nonce(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

    #[test]
    fn anonymous_tokens_depend_on_the_key_and_the_nonce() {
        let nonce = new_token();
        assert!(is_nonce(&nonce));
        let key = [7u8; 32];
        let t = anonymous_token(&key, &nonce);
        assert_eq!(t, anonymous_token(&key, &nonce));
        assert_ne!(t, anonymous_token(&[8u8; 32], &nonce));
        assert_ne!(t, anonymous_token(&key, &new_token()));
        assert!(!is_nonce("short"));
    }
}
