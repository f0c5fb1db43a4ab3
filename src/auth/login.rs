//! Sign-in: password check with lockout, then the optional second factor. Every outcome is
//! written to the audit log here, so no caller can forget it.

use serde_json::json;
use sqlx::PgPool;

use super::{password, totp, users};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::error::Result;
use crate::secrets::SealingKeys;

/// How many wrong passwords lock an account, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub minutes: u32,
}

/// What a sign-in attempt came to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in; start the session.
    Success(users::User),
    /// Password right, now ask for the TOTP (or a recovery code).
    NeedsSecondFactor(users::User),
    /// Wrong username or password, disabled, or locked: the person sees one message for all.
    Failed,
}

/// Checks a username and password. Unknown users are checked against a dummy hash, so the
/// answer takes as long as for a real user.
pub async fn check_password(
    pool: &PgPool,
    policy: LockoutPolicy,
    actor: &Actor,
    username: &str,
    password_text: &str,
) -> Result<LoginOutcome> {
    let user = users::find_by_username(pool, username).await?;
    let ok = password::verify(
        password_text,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let attempted = Actor {
        user_id: user.as_ref().map(|u| u.id),
        username: user
            .as_ref()
            .map(|u| u.username.clone())
            .unwrap_or_else(|| username.trim().chars().take(64).collect()),
        ..actor.clone()
    };
    let Some(user) = user else {
        fail(pool, &attempted, "unknown user").await?;
        return Ok(LoginOutcome::Failed);
    };
    if is_locked(pool, user.id).await? {
        audit::record_now(
            pool,
            &AuditEvent::by(&attempted, Action::LoginRefusedLocked).target(Target::User(user.id)),
        )
        .await?;
        return Ok(LoginOutcome::Failed);
    }
    if !user.enabled {
        fail(pool, &attempted, "account disabled").await?;
        return Ok(LoginOutcome::Failed);
    }
    if !ok {
        count_failure(pool, policy, &attempted, user.id, "wrong password").await?;
        return Ok(LoginOutcome::Failed);
    }
    if user.has_totp() {
        return Ok(LoginOutcome::NeedsSecondFactor(user));
    }
    succeed(pool, &attempted, &user, "password").await?;
    Ok(LoginOutcome::Success(user))
}

/// The second step: a current TOTP code (each time step accepted once) or an unused
/// recovery code. Wrong codes count towards the lockout like wrong passwords.
pub async fn check_second_factor(
    pool: &PgPool,
    sealing: &SealingKeys,
    policy: LockoutPolicy,
    actor: &Actor,
    user_id: i64,
    code: &str,
) -> Result<LoginOutcome> {
    let Some(user) = users::find(pool, user_id).await? else {
        return Ok(LoginOutcome::Failed);
    };
    let attempted = Actor {
        user_id: Some(user.id),
        username: user.username.clone(),
        ..actor.clone()
    };
    if !user.enabled || is_locked(pool, user.id).await? {
        fail(pool, &attempted, "disabled or locked at second factor").await?;
        return Ok(LoginOutcome::Failed);
    }
    let method = if totp::accept_code(pool, sealing, &user, code).await? {
        "totp"
    } else if totp::use_recovery_code(pool, user.id, code).await? {
        "recovery code"
    } else {
        count_failure(
            pool,
            policy,
            &attempted,
            user.id,
            "wrong second-factor code",
        )
        .await?;
        return Ok(LoginOutcome::Failed);
    };
    succeed(pool, &attempted, &user, method).await?;
    Ok(LoginOutcome::Success(user))
}

/// A password sign-in while `oidc.local_login` is off, by someone not in
/// `oidc.break_glass_users`: refused before the password is looked at, and audited.
pub async fn refuse_local(pool: &PgPool, actor: &Actor, username: &str) -> Result<()> {
    let attempted = Actor {
        username: username.trim().chars().take(64).collect(),
        ..actor.clone()
    };
    fail(
        pool,
        &attempted,
        "password sign-in is off (oidc.local_login) and this user is not a break-glass user",
    )
    .await
}

async fn is_locked(pool: &PgPool, user_id: i64) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT coalesce(locked_until > now(), false) AS "locked!" FROM users WHERE id = $1"#,
        user_id,
    )
    .fetch_optional(pool)
    .await?
    .unwrap_or(false))
}

async fn fail(pool: &PgPool, actor: &Actor, reason: &str) -> Result<()> {
    audit::record_now(
        pool,
        &AuditEvent::by(actor, Action::LoginFailure).details(json!({ "reason": reason })),
    )
    .await
}

async fn count_failure(
    pool: &PgPool,
    policy: LockoutPolicy,
    actor: &Actor,
    user_id: i64,
    reason: &str,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    // One statement, so concurrent wrong guesses cannot slip past the threshold.
    let locked: bool = sqlx::query_scalar!(
        r#"UPDATE users SET
             failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
             locked_until = CASE WHEN failed_logins + 1 >= $2
                 THEN now() + make_interval(mins => $3) ELSE locked_until END
         WHERE id = $1
         RETURNING coalesce(locked_until > now(), false) AS "locked!""#,
        user_id,
        policy.threshold as i32,
        policy.minutes as i32,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::LoginFailure)
            .target(Target::User(user_id))
            .details(json!({ "reason": reason })),
    )
    .await?;
    if locked {
        audit::record(
            &mut tx,
            &AuditEvent::by(actor, Action::LoginLockout)
                .target(Target::User(user_id))
                .details(json!({ "minutes": policy.minutes, "failures": policy.threshold })),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn succeed(pool: &PgPool, actor: &Actor, user: &users::User, method: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now() WHERE id = $1",
        user.id,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::LoginSuccess)
            .target(Target::User(user.id))
            .details(json!({ "method": method })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
