//! "Forgot password": a single-use link, valid for [`LINK_MINUTES`], to the address of a user
//! who signs in with a password. The person asking learns nothing from the answer: the web
//! layer says the same thing whether a link went out or not, and the mail goes out in the
//! background. Using a link sets the password and ends every session of the user; a second
//! factor is still asked for at the next sign-in.

use serde_json::json;
use sqlx::PgPool;

use super::{onetime, password, users};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::config::OidcSettings;
use crate::error::{Error, Result};

/// How long a reset link works.
pub const LINK_MINUTES: i32 = 30;

/// Links sent for one request at most (several users may share an e-mail address).
const MAX_LINKS: i64 = 5;

/// A link to mail: who to, and the token (never stored).
pub struct ResetLink {
    pub user_id: i64,
    pub username: String,
    pub email: String,
    pub token: String,
}

/// Whether a user may get a reset link: they need a password sign-in to come back to. With
/// single sign-on on, users linked to the provider (or all users, while `oidc.local_login` is
/// off) sign in there, except the break-glass users.
pub fn signs_in_with_password(
    oidc: &OidcSettings,
    username: &str,
    linked_to_provider: bool,
) -> bool {
    !oidc.enabled || oidc.is_break_glass(username) || (oidc.local_login && !linked_to_provider)
}

/// Makes a link for each enabled user whose username or e-mail address is `who` and who signs
/// in with a password (at most a few), audits the request either way, and returns the links to
/// mail. Disabled users, users without an e-mail address and single-sign-on users get none.
pub async fn request(
    pool: &PgPool,
    actor: &Actor,
    oidc: &OidcSettings,
    who: &str,
) -> Result<Vec<ResetLink>> {
    let who = who.trim();
    let candidates = sqlx::query!(
        r#"SELECT id, username::text AS "username!", email, oidc_subject IS NOT NULL AS "linked!"
           FROM users
           WHERE enabled AND email <> '' AND (username = $1 OR lower(email) = lower($1))
           ORDER BY id LIMIT $2"#,
        who,
        MAX_LINKS,
    )
    .fetch_all(pool)
    .await?;
    let mut links = Vec::new();
    let mut tx = pool.begin().await?;
    for c in candidates
        .into_iter()
        .filter(|c| signs_in_with_password(oidc, &c.username, c.linked))
    {
        let token = onetime::generate()?;
        sqlx::query!(
            "INSERT INTO password_resets (token_hash, user_id, expires_at, requested_ip)
             VALUES ($1, $2, now() + make_interval(mins => $3), $4)",
            token.hash,
            c.id,
            LINK_MINUTES,
            actor.ip,
        )
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            &AuditEvent::by(actor, Action::PasswordResetRequest)
                .target(Target::User(c.id))
                .details(json!({ "sent_to": c.email, "minutes": LINK_MINUTES })),
        )
        .await?;
        links.push(ResetLink {
            user_id: c.id,
            username: c.username,
            email: c.email,
            token: token.text,
        });
    }
    if links.is_empty() {
        audit::record(
            &mut tx,
            &AuditEvent::by(actor, Action::PasswordResetRequest).details(json!({
                "asked_for": who.chars().take(64).collect::<String>(),
                "sent": false,
            })),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(links)
}

/// Audits a request that the per-address limit stopped (nothing was looked up or sent).
pub async fn note_limited(pool: &PgPool, actor: &Actor, who: &str) -> Result<()> {
    audit::record_now(
        pool,
        &AuditEvent::by(actor, Action::PasswordResetRequest).details(json!({
            "asked_for": who.trim().chars().take(64).collect::<String>(),
            "sent": false,
            "reason": "too many requests for this address",
        })),
    )
    .await
}

/// The user a link resets, while it works (unused, not expired, user enabled).
pub async fn find_by_token(pool: &PgPool, token: &str) -> Result<Option<users::User>> {
    let user_id = sqlx::query_scalar!(
        "SELECT r.user_id FROM password_resets r JOIN users u ON u.id = r.user_id
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now() AND u.enabled",
        onetime::hash(token),
    )
    .fetch_optional(pool)
    .await?;
    match user_id {
        Some(id) => users::find(pool, id).await,
        None => Ok(None),
    }
}

/// Sets the new password through a link and uses the link up (with every other open link of
/// the user); the user's sessions all end. Returns the user, to sign them in. A link that was
/// used or has expired is [`Error::NotFound`].
pub async fn complete(
    pool: &PgPool,
    actor: &Actor,
    token: &str,
    new_password: &str,
    min_password_length: usize,
) -> Result<users::User> {
    let user = find_by_token(pool, token).await?.ok_or(Error::NotFound)?;
    password::check_policy(new_password, &user.username, min_password_length)?;
    let hash = password::hash(new_password).await?;
    let mut tx = pool.begin().await?;
    // Used up in the statement that checks it: two submissions cannot both succeed.
    let user_id = sqlx::query_scalar!(
        "UPDATE password_resets r SET used_at = now() FROM users u
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()
           AND u.id = r.user_id AND u.enabled
         RETURNING r.user_id",
        onetime::hash(token),
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    sqlx::query!(
        "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
        user_id,
    )
    .execute(&mut *tx)
    .await?;
    users::set_password(&mut tx, user_id, &hash, false).await?;
    let owner = Actor {
        user_id: Some(user_id),
        username: user.username.clone(),
        ..actor.clone()
    };
    audit::record(
        &mut tx,
        &AuditEvent::by(&owner, Action::PasswordResetComplete).target(Target::User(user_id)),
    )
    .await?;
    tx.commit().await?;
    users::get(pool, user_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_sign_on_users_get_no_link_unless_they_are_break_glass_users() {
        let mut oidc = OidcSettings::default();
        assert!(signs_in_with_password(&oidc, "alice", false));
        assert!(
            signs_in_with_password(&oidc, "alice", true),
            "with single sign-on off, a password is the only way in"
        );
        oidc.enabled = true;
        oidc.local_login = true;
        oidc.break_glass_users = "root".into();
        assert!(signs_in_with_password(&oidc, "alice", false));
        assert!(!signs_in_with_password(&oidc, "alice", true));
        assert!(signs_in_with_password(&oidc, "ROOT", true));
        oidc.local_login = false;
        assert!(!signs_in_with_password(&oidc, "alice", false));
        assert!(signs_in_with_password(&oidc, "root", false));
    }
}
