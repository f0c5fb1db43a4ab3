//! A signed-in user's changes to their own account: e-mail, display preferences, sessions and
//! the second factor. Each is one transaction with its audit row; the password change lives
//! with the other password rules in [`super::manage`].

use serde_json::json;
use sqlx::PgPool;

use super::users::{self, Preferences};
use super::{password, totp};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

/// Sets the user's own e-mail address (empty clears it).
pub async fn change_email(pool: &PgPool, actor: &Actor, user_id: i64, email: &str) -> Result<()> {
    let email = users::check_email(email)?;
    let mut tx = pool.begin().await?;
    users::set_email(&mut tx, user_id, &email).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::ProfileEmail)
            .target(Target::User(user_id))
            .details(json!({ "email": email })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Stores the user's time zone, date format, page size and theme.
pub async fn change_preferences(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    prefs: &Preferences,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    users::set_preferences(&mut tx, user_id, prefs).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::ProfilePreferences)
            .target(Target::User(user_id))
            .details(json!({
                "timezone": prefs.timezone,
                "date_format": prefs.date_format,
                "page_size": prefs.page_size,
                "theme": prefs.theme,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends every session of the user; returns the new session epoch, which the caller's own
/// session takes so that it carries on.
pub async fn end_sessions(pool: &PgPool, actor: &Actor, user_id: i64) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let epoch = users::bump_epoch(&mut tx, user_id).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::ProfileSessionsEnd).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(epoch)
}

/// Refused unless `current_password` is the user's password (re-authentication for changes
/// to the second factor; the web layer rate-limits these checks per user).
async fn check_password(pool: &PgPool, user_id: i64, current_password: &str) -> Result<()> {
    let stored = users::get(pool, user_id).await?.password_hash;
    if password::verify(current_password, Some(stored)).await? {
        Ok(())
    } else {
        Err(Error::invalid("password", "is not your current password"))
    }
}

/// Turns on two-factor sign-in with a secret whose code the user confirmed at `step`; the
/// user confirms with their current password. Returns the recovery codes, shown once.
pub async fn enable_totp(
    pool: &PgPool,
    keys: &SealingKeys,
    actor: &Actor,
    user_id: i64,
    current_password: &str,
    secret: &str,
    step: u64,
) -> Result<Vec<String>> {
    check_password(pool, user_id, current_password).await?;
    let codes = totp::RecoveryCodes::generate().await?;
    let mut tx = pool.begin().await?;
    totp::enable(&mut tx, keys, user_id, secret, step, &codes).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::ProfileTotpEnable).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(codes.plain)
}

/// Replaces the user's recovery codes (the old ones stop working); the user confirms with
/// their current password. Returns the new codes, shown once.
pub async fn regenerate_recovery_codes(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    current_password: &str,
) -> Result<Vec<String>> {
    check_password(pool, user_id, current_password).await?;
    let codes = totp::RecoveryCodes::generate().await?;
    let mut tx = pool.begin().await?;
    totp::regenerate_recovery_codes(&mut tx, user_id, &codes).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::ProfileRecoveryCodes).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(codes.plain)
}

/// Turns off two-factor sign-in; the user confirms with their current password.
pub async fn remove_totp(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    current_password: &str,
) -> Result<()> {
    check_password(pool, user_id, current_password).await?;
    let mut tx = pool.begin().await?;
    totp::disable(&mut tx, user_id).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::ProfileTotpRemove).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
