//! The OIDC sign-in use case: a validated identity becomes a local user (found by issuer +
//! subject, linked by verified e-mail when allowed, or provisioned just in time), whose roles
//! and archive grants follow their groups at every sign-in. Every outcome is audited here.
//!
//! Two-factor is the provider's job for these users: a successful sign-in here starts the
//! session without the TOTP step.

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::mapping;
use super::provider::Identity;
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::auth::{delegation, password, users};
use crate::config::OidcSettings;
use crate::error::{Error, Result};

/// What an OIDC sign-in came to.
#[derive(Debug)]
pub enum Outcome {
    SignedIn(Box<users::User>),
    /// Refused, with the reason (also in the audit log).
    Refused(String),
}

/// Audits a refusal that happened before there was an identity (state, token, signature).
pub async fn refuse(pool: &PgPool, actor: &Actor, reason: &str) -> Result<()> {
    audit::record_now(
        pool,
        &AuditEvent::by(actor, Action::LoginFailure)
            .details(json!({ "method": "oidc", "reason": reason })),
    )
    .await
}

/// Signs in the person the provider vouched for, under the `[oidc]` settings in force.
pub async fn sign_in(
    pool: &PgPool,
    o: &OidcSettings,
    actor: &Actor,
    id: &Identity,
) -> Result<Outcome> {
    let shown = id
        .username
        .clone()
        .or_else(|| id.email.clone())
        .unwrap_or_else(|| id.subject.clone());
    let attempted = Actor {
        username: shown.chars().take(64).collect(),
        ..actor.clone()
    };
    // A fresh argon2 hash of a random password for a provisioned user, computed outside the
    // transaction: nobody knows it, and a password attempt for them costs as long as any.
    let unusable = {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)
            .map_err(|e| crate::error::Error::context("read random bytes", e))?;
        password::hash(&hex::encode(raw)).await?
    };
    let mut tx = pool.begin().await?;
    let user = match find_or_create(&mut tx, o, &attempted, id, &unusable).await? {
        Ok(user) => user,
        Err(reason) => {
            refusal(&mut tx, &attempted, None, id, &reason).await?;
            tx.commit().await?;
            return Ok(Outcome::Refused(reason));
        }
    };
    let attempted = Actor {
        user_id: Some(user.id),
        username: user.username.clone(),
        ..attempted
    };
    if !user.enabled {
        let reason = "the account is disabled here".to_string();
        refusal(&mut tx, &attempted, Some(user.id), id, &reason).await?;
        tx.commit().await?;
        return Ok(Outcome::Refused(reason));
    }
    if o.maps_groups()
        && let Some(reason) = apply_groups(&mut tx, o, &attempted, user.id, id).await?
    {
        refusal(&mut tx, &attempted, Some(user.id), id, &reason).await?;
        tx.commit().await?;
        return Ok(Outcome::Refused(reason));
    }
    sqlx::query!(
        "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now() WHERE id = $1",
        user.id,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(&attempted, Action::LoginSuccess)
            .target(Target::User(user.id))
            .details(json!({ "method": "oidc", "subject": id.subject, "groups": id.groups })),
    )
    .await?;
    let user = users::get(&mut *tx, user.id).await?;
    tx.commit().await?;
    Ok(Outcome::SignedIn(Box::new(user)))
}

async fn refusal(
    conn: &mut PgConnection,
    actor: &Actor,
    user_id: Option<i64>,
    id: &Identity,
    reason: &str,
) -> Result<()> {
    let mut event = AuditEvent::by(actor, Action::LoginFailure).details(json!({
        "method": "oidc", "reason": reason, "subject": id.subject, "email": id.email,
    }));
    if let Some(uid) = user_id {
        event = event.target(Target::User(uid));
    }
    audit::record(conn, &event).await
}

/// The user of this identity: already linked, linked now by verified e-mail, or created.
/// `Err(reason)` when none may be used.
async fn find_or_create(
    conn: &mut PgConnection,
    o: &OidcSettings,
    actor: &Actor,
    id: &Identity,
    unusable_hash: &str,
) -> Result<std::result::Result<users::User, String>> {
    let linked = sqlx::query_scalar!(
        "SELECT id FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2",
        id.issuer,
        id.subject,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(user_id) = linked {
        return Ok(Ok(users::get(&mut *conn, user_id).await?));
    }
    if o.link_by_email
        && let Some(email) = &id.email
    {
        let local = sqlx::query!(
            r#"SELECT id, oidc_subject IS NOT NULL AS "linked!" FROM users
               WHERE lower(email) = lower($1) ORDER BY id"#,
            email,
        )
        .fetch_all(&mut *conn)
        .await?;
        if let [one] = local.as_slice() {
            if !id.email_verified {
                return Ok(Err(format!(
                    "the provider has not verified the e-mail address {email}, so it is not linked to the local user with that address"
                )));
            }
            if one.linked {
                return Ok(Err(format!(
                    "the local user with the e-mail address {email} is already linked to another identity"
                )));
            }
            link(conn, one.id, id).await?;
            audit::record(
                conn,
                &AuditEvent::by(actor, Action::UserOidcLink)
                    .target(Target::User(one.id))
                    .details(json!({ "issuer": id.issuer, "subject": id.subject, "email": email })),
            )
            .await?;
            return Ok(Ok(users::get(&mut *conn, one.id).await?));
        }
        if local.len() > 1 {
            return Ok(Err(format!(
                "several local users have the e-mail address {email}; an administrator must link one by hand"
            )));
        }
    }
    if !o.jit_provisioning {
        return Ok(Err(
            "no user here is linked to this identity, and just-in-time provisioning is off".into(),
        ));
    }
    let Some(username) = id.username.clone().or_else(|| id.email.clone()) else {
        return Ok(Err(format!(
            "the ID token has no {} claim to name a new user",
            o.username_claim
        )));
    };
    let Ok(username) = users::check_username(&username) else {
        return Ok(Err(format!("`{username}` cannot be a username here")));
    };
    let taken = users::find_by_username(&mut *conn, &username)
        .await?
        .is_some();
    if taken {
        return Ok(Err(format!(
            "a local user called {username} exists but is not linked to this identity; an administrator can allow linking by verified e-mail (oidc.link_by_email)"
        )));
    }
    let email = id
        .email
        .as_deref()
        .and_then(|e| users::check_email(e).ok())
        .unwrap_or_default();
    let user_id = users::insert(conn, &username, &email, unusable_hash, &[]).await?;
    link(conn, user_id, id).await?;
    audit::record(
        conn,
        &AuditEvent::by(actor, Action::UserOidcProvision)
            .target(Target::User(user_id))
            .details(json!({ "username": username, "issuer": id.issuer, "subject": id.subject })),
    )
    .await?;
    Ok(Ok(users::get(&mut *conn, user_id).await?))
}

async fn link(conn: &mut PgConnection, user_id: i64, id: &Identity) -> Result<()> {
    sqlx::query!(
        "UPDATE users SET oidc_issuer = $2, oidc_subject = $3 WHERE id = $1",
        user_id,
        id.issuer,
        id.subject,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the user's roles and archive grants to what their groups map to. A change is audited;
/// anything taken away also ends the user's other sessions. The last user who can manage
/// users (or roles) keeps their roles whatever their groups say (issue #9's rule; the audit
/// row says why). `Some(reason)` when they are left with nothing (refused).
async fn apply_groups(
    conn: &mut PgConnection,
    o: &OidcSettings,
    actor: &Actor,
    user_id: i64,
    id: &Identity,
) -> Result<Option<String>> {
    let mapped = mapping::resolve(conn, o, &id.groups).await?;
    let mut roles_before = users::role_ids(&mut *conn, user_id).await?;
    let mut accounts_before = users::account_ids(&mut *conn, user_id).await?;
    roles_before.sort_unstable();
    accounts_before.sort_unstable();
    let mut roles = mapped.role_ids.clone();
    let mut kept = None;
    if roles_before != roles {
        users::set_roles(conn, user_id, &roles).await?;
        match delegation::check_managers_remain(conn).await {
            Ok(()) => {}
            Err(Error::Conflict(reason)) => {
                users::set_roles(conn, user_id, &roles_before).await?;
                roles.clone_from(&roles_before);
                kept = Some(format!(
                    "the roles were kept: the groups would take them away from the last user who can manage users or roles ({reason})"
                ));
            }
            Err(e) => return Err(e),
        }
    }
    let accounts_changed = accounts_before != mapped.account_ids;
    if accounts_changed {
        users::set_accounts(conn, user_id, &mapped.account_ids).await?;
    }
    if roles_before != roles || accounts_changed || kept.is_some() {
        let lost = roles_before.iter().any(|r| !roles.contains(r))
            || accounts_before
                .iter()
                .any(|a| !mapped.account_ids.contains(a));
        if lost {
            users::bump_epoch(conn, user_id).await?;
        }
        audit::record(
            conn,
            &AuditEvent::by(actor, Action::UserOidcAccess)
                .target(Target::User(user_id))
                .details(json!({
                    "groups": id.groups,
                    "roles": { "before": roles_before, "after": roles, "mapped": mapped.role_ids },
                    "accounts": { "before": accounts_before, "after": mapped.account_ids },
                    "unknown_targets": mapped.unknown,
                    "kept": kept,
                })),
        )
        .await?;
    }
    if roles.is_empty() && mapped.account_ids.is_empty() {
        return Ok(Some(
            "none of the user's groups is mapped to a role or an archive".into(),
        ));
    }
    Ok(None)
}
