//! Password hashing (argon2id, OWASP defaults) and the password policy.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::{Semaphore, SemaphorePermit};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Password hashes computed at once in this process. Each argon2id run holds 19 MiB and a
/// core; without a cap a sign-in flood starts one blocking thread per request (up to tokio's
/// 512) and can exhaust memory. Waiting callers hold no memory but their request.
pub fn concurrency_cap() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 16))
}

/// Callers waiting for a slot beyond this many are refused (the server is busy) rather than
/// queued without bound.
const MAX_WAITING_PER_SLOT: usize = 64;

static WAITING: AtomicUsize = AtomicUsize::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The most password hashes that ever ran at once in this process (for tests and metrics).
pub fn peak_concurrency() -> usize {
    PEAK.load(Ordering::Relaxed)
}

async fn slot() -> Result<SemaphorePermit<'static>> {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| Semaphore::new(concurrency_cap()));
    let waiting = WAITING.fetch_add(1, Ordering::SeqCst);
    let permit = if waiting >= concurrency_cap() * MAX_WAITING_PER_SLOT {
        Err(Error::Busy)
    } else {
        slots
            .acquire()
            .await
            .map_err(|e| Error::context("wait for a password-hashing slot", e))
    };
    WAITING.fetch_sub(1, Ordering::SeqCst);
    permit
}

/// Runs one argon2 computation on a blocking thread, within the process-wide cap.
async fn capped<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let _permit = slot().await?;
    tokio::task::spawn_blocking(move || {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        let out = work();
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        out
    })
    .await
    .map_err(|e| Error::context(what, e))
}

/// Hashes on a blocking thread: argon2id takes tens of milliseconds of CPU.
pub async fn hash(password: &str) -> Result<String> {
    let password = Zeroizing::new(password.to_owned());
    capped("run the password hashing task", move || {
        hash_blocking(&password)
    })
    .await?
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
    capped("run the password check task", move || {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_flood_of_password_checks_runs_at_most_the_cap_at_once() {
        let h = hash("correct horse battery").await.unwrap();
        let checks: Vec<_> = (0..24)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { verify("wrong horse battery", Some(h)).await })
            })
            .collect();
        for c in checks {
            assert!(!c.await.unwrap().unwrap());
        }
        let peak = peak_concurrency();
        assert!(
            (1..=concurrency_cap()).contains(&peak),
            "{peak} hashes ran at once; the cap is {}",
            concurrency_cap()
        );
    }
}
