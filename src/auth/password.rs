//! Password hashing (argon2id, OWASP defaults) and the password policy.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Hashes on a blocking thread: argon2id takes tens of milliseconds of CPU.
pub async fn hash(password: &str) -> Result<String> {
    let password = Zeroizing::new(password.to_owned());
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| Error::context("run the password hashing task", e))?
}

/// Hashes `password` with argon2id on the calling thread (use [`hash`] from async code).
pub fn hash_blocking(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::context("hash a password", e))
}

/// Checks `password` against `stored`, or against a fixed dummy hash when there is no stored
/// hash (unknown user), so both cases cost the same time and give the same answer shape.
pub async fn verify(password: &str, stored: Option<String>) -> Result<bool> {
    let password = Zeroizing::new(password.to_owned());
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (dummy_hash().to_owned(), false),
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        ok && real
    })
    .await
    .map_err(|e| Error::context("run the password check task", e))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_blocking("daygle dummy password for unknown users")
            .unwrap_or_else(|_| String::from("$argon2id$v=19$m=19456,t=2,p=1$invalid"))
    })
}

/// The policy every new password must meet. Returns the reason as a form error.
pub fn check_policy(password: &str, username: &str, min_length: usize) -> Result<()> {
    if password.chars().count() < min_length {
        return Err(Error::invalid(
            "password",
            format!("must be at least {min_length} characters long"),
        ));
    }
    if password.trim().to_lowercase() == username.trim().to_lowercase() {
        return Err(Error::invalid(
            "password",
            "must not be the same as the username",
        ));
    }
    if password.chars().count() > 1024 {
        return Err(Error::invalid(
            "password",
            "must be at most 1024 characters long",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_password_or_the_username_is_refused() {
        assert!(check_policy("short", "alice", 12).is_err());
        assert!(check_policy("alice-the-admin", "Alice-The-Admin", 12).is_err());
        assert!(check_policy("correct horse battery", "alice", 12).is_ok());
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let h = hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify("correct horse battery", Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse battery", Some(h)).await.unwrap());
        assert!(!verify("anything", None).await.unwrap());
    }
}
