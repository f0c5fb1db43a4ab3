//! User management operations shared by the web UI, the first-run wizard and the CLI. Each
//! writes its audit row in the same transaction as the change.

use serde_json::json;
use sqlx::PgPool;

use super::{password, roles, users};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::error::{Error, Result};

/// Serialises first-run setups: only one can see "no users yet" and act on it.
const SETUP_LOCK: i64 = 0x6461_7967_6c65_5355; // "daygleSU"

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub role_ids: &'a [i64],
    pub account_ids: &'a [i64],
}

/// Creates a user after checking the username, e-mail and password policy.
pub async fn create_user(
    pool: &PgPool,
    actor: &Actor,
    new: &NewUser<'_>,
    min_password_length: usize,
) -> Result<i64> {
    let username = users::check_username(new.username)?;
    let email = users::check_email(new.email)?;
    password::check_policy(new.password, &username, min_password_length)?;
    let hash = password::hash(new.password).await?;
    let mut tx = pool.begin().await?;
    let id = users::insert(&mut tx, &username, &email, &hash, new.role_ids).await?;
    users::set_accounts(&mut tx, id, new.account_ids).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserCreate)
            .target(Target::User(id))
            .details(
                json!({ "username": username, "roles": new.role_ids, "accounts": new.account_ids }),
            ),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The first-run wizard: creates the first Administrator, or `NotFound` when any user exists
/// (also when another setup won a race a moment ago).
pub async fn create_first_admin(
    pool: &PgPool,
    actor: &Actor,
    username: &str,
    email: &str,
    password_text: &str,
    min_password_length: usize,
) -> Result<i64> {
    let username = users::check_username(username)?;
    let email = users::check_email(email)?;
    password::check_policy(password_text, &username, min_password_length)?;
    let hash = password::hash(password_text).await?;
    let admin = users::role_id_by_name(pool, roles::ADMINISTRATOR).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *tx)
        .await?;
    if users::any_exist(&mut *tx).await? {
        return Err(Error::NotFound);
    }
    let id = users::insert(&mut tx, &username, &email, &hash, &[admin]).await?;
    let actor = Actor {
        user_id: Some(id),
        username: username.clone(),
        ..actor.clone()
    };
    audit::record(
        &mut tx,
        &AuditEvent::by(&actor, Action::SetupFirstAdmin).target(Target::User(id)),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Sets a new password for someone (an administrator's reset or the CLI) and ends all of
/// their sessions.
pub async fn reset_password(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    new_password: &str,
    min_password_length: usize,
) -> Result<()> {
    let user = users::get(pool, user_id).await?;
    password::check_policy(new_password, &user.username, min_password_length)?;
    let hash = password::hash(new_password).await?;
    let mut tx = pool.begin().await?;
    users::set_password(&mut tx, user_id, &hash).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserPasswordReset).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Changing one's own password needs the current one. Returns the new session epoch, which
/// the caller stores in the current session so only the *other* sessions end.
pub async fn change_own_password(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    current: &str,
    new_password: &str,
    min_password_length: usize,
) -> Result<i64> {
    let user = users::get(pool, user_id).await?;
    if !password::verify(current, Some(user.password_hash.clone())).await? {
        return Err(Error::invalid(
            "current_password",
            "is not your current password",
        ));
    }
    password::check_policy(new_password, &user.username, min_password_length)?;
    let hash = password::hash(new_password).await?;
    let mut tx = pool.begin().await?;
    let epoch = users::set_password(&mut tx, user_id, &hash).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::ProfilePasswordChange).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(epoch)
}
