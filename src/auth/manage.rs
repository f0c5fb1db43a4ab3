//! User management operations shared by the web UI, the first-run wizard and the CLI. Each
//! writes its audit row in the same transaction as the change.

use serde_json::json;
use sqlx::PgPool;

use super::delegation::{self, actor_holdings};
use super::{password, roles, totp, users};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::error::{Error, Result};

/// Serialises first-run setups: only one can see "no users yet" and act on it.
const SETUP_LOCK: i64 = 0x6461_7967_6c65_5355; // "daygleSU"

/// What creating a user needs: the form's fields, checked by [`create_user`].
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
    if let Some(me) = actor_holdings(&mut tx, actor).await? {
        check_assignment(&mut tx, &me, new.role_ids, new.account_ids).await?;
    }
    let id = users::insert(&mut tx, &username, &email, &hash, new.role_ids).await?;
    users::set_accounts(&mut tx, id, new.account_ids).await?;
    if chosen_by_someone_else(actor, id) {
        users::require_password_change(&mut tx, id).await?;
    }
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserCreate)
            .target(Target::User(id))
            .accounts(new.account_ids)
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
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK)
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
/// their sessions. Set through the web UI, the user must change it at their next sign-in.
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
    may_act_on(&mut tx, actor, user_id).await?;
    users::set_password(
        &mut tx,
        user_id,
        &hash,
        chosen_by_someone_else(actor, user_id),
    )
    .await?;
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
    let epoch = users::set_password(&mut tx, user_id, &hash, false).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::ProfilePasswordChange).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(epoch)
}

/// A password set through the web UI or API by someone other than its owner must be changed
/// by the owner at their next sign-in. The command line is the operator on the server, who
/// hands over passwords as they see fit, so its passwords carry no such flag.
fn chosen_by_someone_else(actor: &Actor, user_id: i64) -> bool {
    actor.user_id.is_some_and(|me| me != user_id)
}

/// Each role and archive account to assign must lie within the actor's own holdings.
pub(super) async fn check_assignment(
    tx: &mut sqlx::PgConnection,
    me: &delegation::Holdings,
    role_ids: &[i64],
    account_ids: &[i64],
) -> Result<()> {
    for id in role_ids {
        let role = roles::get(&mut *tx, *id).await?;
        delegation::check_role_within(me, &role)?;
    }
    delegation::check_accounts_within(me, account_ids)
}

async fn may_act_on(tx: &mut sqlx::PgConnection, actor: &Actor, user_id: i64) -> Result<()> {
    users::get(&mut *tx, user_id).await?;
    match actor_holdings(tx, actor).await? {
        Some(me) => delegation::check_may_act_on(tx, &me, user_id).await,
        None => Ok(()),
    }
}

/// A user's e-mail, roles and archive grants, as an administrator's form sets them.
pub struct UserUpdate<'a> {
    pub email: &'a str,
    pub role_ids: &'a [i64],
    pub account_ids: &'a [i64],
}

/// Changes someone's e-mail, roles and grants within the actor's ceiling.
pub async fn update_user(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    change: &UserUpdate<'_>,
) -> Result<()> {
    let email = users::check_email(change.email)?;
    let mut tx = pool.begin().await?;
    may_act_on(&mut tx, actor, user_id).await?;
    if let Some(me) = actor_holdings(&mut tx, actor).await? {
        check_assignment(&mut tx, &me, change.role_ids, change.account_ids).await?;
    }
    if actor.user_id == Some(user_id) {
        let mut keeps = false;
        for id in change.role_ids {
            keeps |= roles::get(&mut *tx, *id)
                .await?
                .has(super::Permission::ManageUsers);
        }
        if !keeps {
            return Err(Error::Conflict(
                "You cannot take away your own right to manage users; ask another administrator."
                    .into(),
            ));
        }
    }
    let before_roles = users::role_ids(&mut *tx, user_id).await?;
    let before_accounts = users::account_ids(&mut *tx, user_id).await?;
    users::set_email(&mut tx, user_id, &email).await?;
    users::set_roles(&mut tx, user_id, change.role_ids).await?;
    users::set_accounts(&mut tx, user_id, change.account_ids).await?;
    delegation::check_managers_remain(&mut tx).await?;
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
                .accounts([before_accounts.as_slice(), change.account_ids].concat())
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

/// Enables or disables someone (disabling ends their sessions).
pub async fn set_enabled(pool: &PgPool, actor: &Actor, user_id: i64, enabled: bool) -> Result<()> {
    if actor.user_id == Some(user_id) && !enabled {
        return Err(Error::Conflict(
            "You cannot disable your own account.".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    may_act_on(&mut tx, actor, user_id).await?;
    users::set_enabled(&mut tx, user_id, enabled).await?;
    delegation::check_managers_remain(&mut tx).await?;
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

/// Ends every session of someone.
pub async fn end_sessions(pool: &PgPool, actor: &Actor, user_id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    may_act_on(&mut tx, actor, user_id).await?;
    users::bump_epoch(&mut tx, user_id).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserSessionsEnd).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes someone's second factor (e.g. a lost phone).
pub async fn remove_totp(pool: &PgPool, actor: &Actor, user_id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    may_act_on(&mut tx, actor, user_id).await?;
    totp::disable(&mut tx, user_id).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::UserTotpRemove).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes someone (never oneself, never the last who can manage users or roles).
pub async fn delete_user(pool: &PgPool, actor: &Actor, user_id: i64) -> Result<()> {
    if actor.user_id == Some(user_id) {
        return Err(Error::Conflict(
            "You cannot delete your own account.".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    may_act_on(&mut tx, actor, user_id).await?;
    let target = users::get(&mut *tx, user_id).await?;
    users::delete(&mut tx, user_id).await?;
    delegation::check_managers_remain(&mut tx).await?;
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
