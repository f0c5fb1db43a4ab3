//! Invitations: an administrator names a new user (username, e-mail, roles, archives) and the
//! invitee sets their own password through a single-use link. The roles and archives must lie
//! within the inviter's own rights when the invitation is made, when it is resent, and again
//! when it is accepted — an inviter who has since lost rights (or left) cannot hand them out.

use serde_json::json;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;

use super::delegation::{Holdings, actor_holdings};
use super::manage::check_assignment;
use super::permissions::Permission;
use super::{onetime, password, users};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::error::{Error, Result, ResultExt};

/// What an administrator fills in.
pub struct NewInvitation<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub role_ids: &'a [i64],
    pub account_ids: &'a [i64],
}

/// A link just made: its token is here once and never stored.
pub struct Issued {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub token: String,
    pub expires_at: OffsetDateTime,
}

/// A not yet accepted, not revoked invitation, for the users page.
#[derive(Debug, Clone)]
pub struct Open {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub invited_by_name: String,
    pub sent_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub expired: bool,
}

/// Makes an invitation within the actor's rights; returns the link's token for the e-mail.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    new: &NewInvitation<'_>,
    expiry_hours: u32,
) -> Result<Issued> {
    let username = users::check_username(new.username)?;
    let email = users::check_email(new.email)?;
    if email.is_empty() {
        return Err(Error::invalid(
            "email",
            "is needed: the invitation is sent there",
        ));
    }
    let token = onetime::generate()?;
    let mut tx = pool.begin().await?;
    if let Some(me) = actor_holdings(&mut tx, actor).await? {
        check_assignment(&mut tx, &me, new.role_ids, new.account_ids).await?;
    }
    if users::find_by_username(&mut *tx, &username)
        .await?
        .is_some()
    {
        return Err(Error::invalid("username", "is already taken"));
    }
    let row = sqlx::query!(
        "INSERT INTO invitations (username, email, role_ids, account_ids, token_hash, invited_by,
                                  invited_by_name, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(hours => $8))
         RETURNING id, expires_at",
        username,
        email,
        new.role_ids,
        new.account_ids,
        token.hash,
        actor.user_id,
        actor.username,
        expiry_hours as i32,
    )
    .fetch_one(&mut *tx)
    .await
    .on_constraint("invitations_open_username_key", || {
        Error::invalid(
            "username",
            "already has an open invitation; resend or revoke it on the users page",
        )
    })?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::InvitationCreate)
            .target(Target::Invitation(row.id))
            .accounts(new.account_ids)
            .details(json!({
                "username": username, "email": email,
                "roles": new.role_ids, "accounts": new.account_ids,
                "expires_at": row.expires_at.to_string(),
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Issued {
        id: row.id,
        username,
        email,
        token: token.text,
        expires_at: row.expires_at,
    })
}

/// A new link (the old one stops working) with a new expiry, within the actor's rights.
pub async fn resend(pool: &PgPool, actor: &Actor, id: i64, expiry_hours: u32) -> Result<Issued> {
    let token = onetime::generate()?;
    let mut tx = pool.begin().await?;
    let inv = sqlx::query!(
        r#"SELECT username::text AS "username!", email, role_ids, account_ids FROM invitations
           WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL FOR UPDATE"#,
        id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    if let Some(me) = actor_holdings(&mut tx, actor).await? {
        check_assignment(&mut tx, &me, &inv.role_ids, &inv.account_ids).await?;
    }
    let expires_at = sqlx::query_scalar!(
        "UPDATE invitations SET token_hash = $2, sent_at = now(),
             expires_at = now() + make_interval(hours => $3)
         WHERE id = $1 RETURNING expires_at",
        id,
        token.hash,
        expiry_hours as i32,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::InvitationResend)
            .target(Target::Invitation(id))
            .details(json!({ "username": inv.username, "email": inv.email,
                             "expires_at": expires_at.to_string() })),
    )
    .await?;
    tx.commit().await?;
    Ok(Issued {
        id,
        username: inv.username,
        email: inv.email,
        token: token.text,
        expires_at,
    })
}

/// Withdraws an open invitation: its link stops working.
pub async fn revoke(pool: &PgPool, actor: &Actor, id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    let username = sqlx::query_scalar!(
        r#"UPDATE invitations SET revoked_at = now()
           WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
           RETURNING username::text AS "username!""#,
        id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::InvitationRevoke)
            .target(Target::Invitation(id))
            .details(json!({ "username": username })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Every open invitation, expired ones included (they can be resent or revoked).
pub async fn list_open(db: impl PgExecutor<'_>) -> Result<Vec<Open>> {
    Ok(sqlx::query_as!(
        Open,
        r#"SELECT id, username::text AS "username!", email, invited_by_name, sent_at, expires_at,
                  expires_at <= now() AS "expired!"
           FROM invitations WHERE accepted_at IS NULL AND revoked_at IS NULL
           ORDER BY sent_at DESC"#,
    )
    .fetch_all(db)
    .await?)
}

/// Who a link invites, while it works (open and not expired).
pub async fn find_by_token(db: impl PgExecutor<'_>, token: &str) -> Result<Option<Open>> {
    Ok(sqlx::query_as!(
        Open,
        r#"SELECT id, username::text AS "username!", email, invited_by_name, sent_at, expires_at,
                  false AS "expired!"
           FROM invitations
           WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL
             AND expires_at > now()"#,
        onetime::hash(token),
    )
    .fetch_optional(db)
    .await?)
}

/// The invitee sets their password: the user is created with the invitation's roles and
/// archives (if the inviter still may grant them) and the link is used up. Returns the new
/// user's id. A link that was used, revoked or has expired is [`Error::NotFound`].
pub async fn accept(
    pool: &PgPool,
    actor: &Actor,
    token: &str,
    new_password: &str,
    min_password_length: usize,
) -> Result<i64> {
    let Some(inv) = find_by_token(pool, token).await? else {
        return Err(Error::NotFound);
    };
    password::check_policy(new_password, &inv.username, min_password_length)?;
    let hash = password::hash(new_password).await?;
    let mut tx = pool.begin().await?;
    // Used up in the same statement that checks it, so two tabs cannot both accept.
    let row = sqlx::query!(
        r#"UPDATE invitations SET accepted_at = now()
           WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL
             AND expires_at > now()
           RETURNING id, username::text AS "username!", email, role_ids, account_ids, invited_by"#,
        onetime::hash(token),
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    inviter_still_may_grant(&mut tx, row.invited_by, &row.role_ids, &row.account_ids).await?;
    let user_id = users::insert(&mut tx, &row.username, &row.email, &hash, &row.role_ids).await?;
    users::set_accounts(&mut tx, user_id, &row.account_ids).await?;
    sqlx::query!(
        "UPDATE invitations SET accepted_user = $2 WHERE id = $1",
        row.id,
        user_id
    )
    .execute(&mut *tx)
    .await?;
    let invitee = Actor {
        user_id: Some(user_id),
        username: row.username.clone(),
        ..actor.clone()
    };
    audit::record(
        &mut tx,
        &AuditEvent::by(&invitee, Action::InvitationAccept)
            .target(Target::User(user_id))
            .accounts(row.account_ids.clone())
            .details(json!({
                "invitation": row.id, "username": row.username,
                "roles": row.role_ids, "accounts": row.account_ids,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(user_id)
}

/// The ceiling once more, with the inviter's rights as they are now.
async fn inviter_still_may_grant(
    tx: &mut sqlx::PgConnection,
    inviter: Option<i64>,
    role_ids: &[i64],
    account_ids: &[i64],
) -> Result<()> {
    let gone = || {
        Error::Refused(
            "This invitation can no longer be used: the person who sent it no longer has the rights it grants. Ask for a new invitation.".into(),
        )
    };
    let Some(inviter) = inviter else {
        return Err(gone());
    };
    let enabled = users::find(&mut *tx, inviter)
        .await?
        .is_some_and(|u| u.enabled);
    let me = Holdings::load(&mut *tx, inviter).await?;
    if !enabled || !me.permissions.has(Permission::ManageUsers) {
        return Err(gone());
    }
    check_assignment(tx, &me, role_ids, account_ids)
        .await
        .map_err(|_| gone())
}
