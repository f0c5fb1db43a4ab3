//! Server-side sessions in PostgreSQL (tower-sessions) and what we keep in them.
//!
//! tower-sessions only extends an `OnInactivity` expiry when the session is *modified*, so
//! [`touch`] rewrites `seen` at most once a minute; the absolute limit counts from `login_at`.
//! `epoch` is compared with `users.session_epoch` on every request: bumping the column ends
//! every session of that user without having to find their rows.
//!
//! A session row is created only at sign-in (or at the second-factor step after a right
//! password): anonymous visitors get the cookies of `cookies` instead, so requests without a
//! cookie never write to the session table.

use time::OffsetDateTime;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

use crate::auth::csrf;
use crate::config::Settings;
use crate::error::{Error, Result};

/// The session cookie's name.
pub const COOKIE: &str = "daygle_session";

const USER: &str = "uid";
const EPOCH: &str = "epoch";
const LOGIN_AT: &str = "login_at";
const SEEN: &str = "seen";
const CSRF: &str = "csrf";
const PENDING_2FA: &str = "pending_2fa";

/// The session layer: PostgreSQL store, secure cookie settings from the config.
pub fn layer(store: PostgresStore, settings: &Settings) -> SessionManagerLayer<PostgresStore> {
    let idle = time::Duration::minutes(settings.security.session_idle_minutes.into());
    SessionManagerLayer::new(store)
        .with_name(COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.served_over_https())
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle))
}

fn store_error(e: tower_sessions::session::Error) -> Error {
    Error::context("use the session store", e)
}

/// Seconds since the Unix epoch, for session timestamps.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The signed-in part of a session.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn {
    pub user_id: i64,
    pub epoch: i64,
    pub login_at: i64,
    pub seen: i64,
}

impl SignedIn {
    /// Within both limits: idle (since the last recorded activity) and absolute (since sign-in).
    pub fn is_fresh(&self, now: i64, idle_minutes: u32, absolute_hours: u32) -> bool {
        now - self.seen < i64::from(idle_minutes) * 60
            && now - self.login_at < i64::from(absolute_hours) * 3600
    }
}

/// The signed-in user of this session, if any.
pub async fn signed_in(session: &Session) -> Result<Option<SignedIn>> {
    let Some(user_id) = session.get::<i64>(USER).await.map_err(store_error)? else {
        return Ok(None);
    };
    let get = |key: &'static str| async move {
        session
            .get::<i64>(key)
            .await
            .map_err(store_error)
            .map(|v| v.unwrap_or(0))
    };
    Ok(Some(SignedIn {
        user_id,
        epoch: get(EPOCH).await?,
        login_at: get(LOGIN_AT).await?,
        seen: get(SEEN).await?,
    }))
}

/// Starts a signed-in session under a new id (no fixation), with a new CSRF token.
pub async fn sign_in(session: &Session, user_id: i64, epoch: i64) -> Result<()> {
    session.cycle_id().await.map_err(store_error)?;
    session
        .remove_value(PENDING_2FA)
        .await
        .map_err(store_error)?;
    let t = now();
    session.insert(USER, user_id).await.map_err(store_error)?;
    session.insert(EPOCH, epoch).await.map_err(store_error)?;
    session.insert(LOGIN_AT, t).await.map_err(store_error)?;
    session.insert(SEEN, t).await.map_err(store_error)?;
    session
        .insert(CSRF, csrf::new_token())
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Ends the session: the row is deleted and the cookie cleared.
pub async fn end(session: &Session) -> Result<()> {
    session.flush().await.map_err(store_error)
}

/// Keeps the current session alive after the user's epoch moved (own password change).
pub async fn set_epoch(session: &Session, epoch: i64) -> Result<()> {
    session.insert(EPOCH, epoch).await.map_err(store_error)
}

/// Records activity, at most once a minute (each write is a database round trip).
pub async fn touch(session: &Session, s: &SignedIn) -> Result<()> {
    let t = now();
    if t - s.seen >= 60 {
        session.insert(SEEN, t).await.map_err(store_error)?;
    }
    Ok(())
}

/// Keeps the stored session's expiry at the idle limit in force, which the settings page can
/// change while the server runs (only a change costs a write).
pub fn keep_idle_limit(session: &Session, idle_minutes: u32) {
    let want = Expiry::OnInactivity(time::Duration::minutes(idle_minutes.into()));
    if session.expiry() != Some(want) {
        session.set_expiry(Some(want));
    }
}

/// The session's CSRF token, if it has one (signed-in sessions do). Reading it never creates
/// a session.
pub async fn stored_csrf(session: &Session) -> Result<Option<String>> {
    session.get::<String>(CSRF).await.map_err(store_error)
}

/// The session's CSRF token, created on first use.
pub async fn csrf_token(session: &Session) -> Result<String> {
    if let Some(t) = session.get::<String>(CSRF).await.map_err(store_error)? {
        return Ok(t);
    }
    let t = csrf::new_token();
    session.insert(CSRF, &t).await.map_err(store_error)?;
    Ok(t)
}

/// Between a right password and the TOTP step: which user, and since when.
pub async fn set_pending_second_factor(session: &Session, user_id: i64) -> Result<()> {
    session.cycle_id().await.map_err(store_error)?;
    session
        .insert(PENDING_2FA, (user_id, now()))
        .await
        .map_err(store_error)
}

/// The user waiting for the second step, if that started less than five minutes ago.
pub async fn pending_second_factor(session: &Session) -> Result<Option<i64>> {
    let pending = session
        .get::<(i64, i64)>(PENDING_2FA)
        .await
        .map_err(store_error)?;
    Ok(pending.and_then(|(id, at)| (now() - at < 300).then_some(id)))
}

const OIDC_ID_TOKEN: &str = "oidc_id_token";

/// Remembers the ID token of an OIDC sign-in: sent back to the provider as `id_token_hint`
/// when the user signs out (RP-initiated logout).
pub async fn set_oidc_id_token(session: &Session, id_token: &str) -> Result<()> {
    session
        .insert(OIDC_ID_TOKEN, id_token)
        .await
        .map_err(store_error)
}

/// The ID token of this session's OIDC sign-in, if it was one.
pub async fn oidc_id_token(session: &Session) -> Result<Option<String>> {
    session.get(OIDC_ID_TOKEN).await.map_err(store_error)
}

const TOTP_ENROL: &str = "totp_enrol";

/// The TOTP secret shown on the enrolment page, until the user confirms it with a code.
pub async fn set_enrolment_secret(session: &Session, secret: &str) -> Result<()> {
    session
        .insert(TOTP_ENROL, secret)
        .await
        .map_err(store_error)
}

/// The TOTP secret being enrolled, until it is confirmed.
pub async fn enrolment_secret(session: &Session) -> Result<Option<String>> {
    session.get(TOTP_ENROL).await.map_err(store_error)
}

/// Forgets the TOTP secret being enrolled.
pub async fn clear_enrolment_secret(session: &Session) -> Result<()> {
    session
        .remove_value(TOTP_ENROL)
        .await
        .map(|_| ())
        .map_err(store_error)
}

#[cfg(test)]
mod tests {
    use super::SignedIn;

    #[test]
    fn a_session_expires_when_idle_too_long_or_too_old_however_active() {
        let login = 1_000_000;
        let s = |seen| SignedIn {
            user_id: 1,
            epoch: 0,
            login_at: login,
            seen,
        };
        // Active a minute ago, signed in an hour ago: fine.
        assert!(s(login + 3540).is_fresh(login + 3600, 60, 12));
        // Idle for 61 minutes.
        assert!(!s(login).is_fresh(login + 61 * 60, 60, 12));
        // Busy all along, but 12 hours after sign-in.
        let now = login + 12 * 3600;
        assert!(!s(now - 5).is_fresh(now, 60, 12));
    }
}
