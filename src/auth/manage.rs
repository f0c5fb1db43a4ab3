//! User management operations shared by the web UI, the first-run wizard and the CLI. Each
//! writes its audit row in the same transaction as the change.

use serde_json::json;
use sqlx::PgPool;

use super::{Permission, password, roles, totp, users};
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

/// What an administrator sets on the user edit page.
pub struct UserChange<'a> {
    pub email: &'a str,
    pub role_ids: &'a [i64],
    pub account_ids: &'a [i64],
}

/// Changes someone's e-mail, roles and archive grants. Nobody can take away their own right
/// to manage users, and at least one enabled user keeps it.
pub async fn update_user(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    change: &UserChange<'_>,
) -> Result<()> {
    users::get(pool, user_id).await?;
    let email = users::check_email(change.email)?;
    if actor.user_id == Some(user_id) {
        let all_roles = roles::list(pool).await?;
        let keeps = all_roles
            .iter()
            .any(|r| change.role_ids.contains(&r.id) && r.has(Permission::ManageUsers));
        if !keeps {
            return Err(Error::Conflict(
                "You cannot take away your own right to manage users; ask another administrator."
                    .into(),
            ));
        }
    }
    let mut tx = pool.begin().await?;
    let before_roles = users::role_ids(&mut *tx, user_id).await?;
    let before_accounts = users::account_ids(&mut *tx, user_id).await?;
    users::set_email(&mut tx, user_id, &email).await?;
    users::set_roles(&mut tx, user_id, change.role_ids).await?;
    users::set_accounts(&mut tx, user_id, change.account_ids).await?;
    keep_a_user_manager(&mut tx).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserUpdate)
            .target(Target::User(user_id))
            .details(
                json!({ "email": email, "roles_before": before_roles, "roles": change.role_ids }),
            ),
    )
    .await?;
    if sorted(before_accounts.clone()) != sorted(change.account_ids.to_vec()) {
        audit::record(
            &mut tx,
            &AuditEvent::by(actor, Action::UserGrants)
                .target(Target::User(user_id))
                .details(
                    json!({ "accounts_before": before_accounts, "accounts": change.account_ids }),
                ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Refuses a change that would leave no enabled user able to manage users (checked inside the
/// transaction, after the change, so the rule holds whatever the change was).
pub(crate) async fn keep_a_user_manager(tx: &mut sqlx::PgConnection) -> Result<()> {
    if users::enabled_user_managers(&mut *tx).await? == 0 {
        return Err(Error::Conflict(
            "At least one enabled user must keep the right to manage users.".into(),
        ));
    }
    Ok(())
}

/// Enables or disables someone's sign-in. Nobody can disable themselves.
pub async fn set_user_enabled(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    enabled: bool,
) -> Result<()> {
    if actor.user_id == Some(user_id) && !enabled {
        return Err(Error::Conflict(
            "You cannot disable your own account.".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    users::set_enabled(&mut tx, user_id, enabled).await?;
    keep_a_user_manager(&mut tx).await?;
    let action = if enabled {
        Action::UserEnable
    } else {
        Action::UserDisable
    };
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, action).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Signs someone out everywhere.
pub async fn end_user_sessions(pool: &PgPool, actor: &Actor, user_id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    users::bump_epoch(&mut tx, user_id).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserSessionsEnd).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes someone's second factor (they lost their phone).
pub async fn remove_user_totp(pool: &PgPool, actor: &Actor, user_id: i64) -> Result<()> {
    users::get(pool, user_id).await?;
    let mut tx = pool.begin().await?;
    totp::disable(&mut tx, user_id).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserTotpRemove).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes someone. Nobody can delete themselves.
pub async fn delete_user(pool: &PgPool, actor: &Actor, user_id: i64) -> Result<()> {
    if actor.user_id == Some(user_id) {
        return Err(Error::Conflict(
            "You cannot delete your own account.".into(),
        ));
    }
    let target = users::get(pool, user_id).await?;
    let mut tx = pool.begin().await?;
    users::delete(&mut tx, user_id).await?;
    keep_a_user_manager(&mut tx).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserDelete)
            .target(Target::User(user_id))
            .details(json!({ "username": target.username })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
