//! The stored side of an OAuth account: its refresh token sealed like an IMAP password (bound
//! to the account, its kind and the token endpoint it may be sent to; write-only; re-sealed by
//! `rotate-key`), the connected identity, the last token's expiry, and the "reconnect this
//! account" state after the provider refused the grant.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::OAuthClient;
use crate::error::{Error, Result};
use crate::ingest::accounts::Account;
use crate::secrets::SealingKeys;

/// Associated data of a sealed refresh token: the row, the account kind and the token
/// endpoint, as a JSON array so no field can run into the next.
pub fn refresh_context(account_id: i64, kind: &str, token_url: &str) -> String {
    let fields = serde_json::json!([kind, token_url]);
    format!("account:{account_id}:oauth-refresh:{fields}")
}

/// Opens the account's refresh token for `client`. Refused when the configured token endpoint
/// is not the one the token was issued by: the token never follows a changed endpoint.
pub fn refresh_token(
    keys: &SealingKeys,
    account: &Account,
    client: &OAuthClient,
) -> Result<Zeroizing<String>> {
    let not_connected = || {
        Error::invalid(
            "account",
            format!(
                "account {} has no stored authorisation: connect it on its page",
                account.name
            ),
        )
    };
    let sealed = account
        .oauth_refresh_sealed
        .as_deref()
        .ok_or_else(not_connected)?;
    let issued_by = account.oauth_token_url.as_deref().unwrap_or_default();
    if issued_by != client.token_url {
        return Err(Error::invalid(
            "account",
            format!(
                "account {} was connected through {issued_by}, but the token endpoint is now {}: connect it again",
                account.name, client.token_url
            ),
        ));
    }
    let plain = keys.open(
        sealed,
        &refresh_context(account.id, &account.kind, issued_by),
    )?;
    String::from_utf8(plain.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| Error::invalid("account", "stored refresh token is not UTF-8"))
}

/// What a finished browser connection stores.
pub struct Connection<'a> {
    pub refresh: &'a str,
    pub identity: &'a str,
    pub expires_at: OffsetDateTime,
}

/// Stores a delegated connection: the refresh token sealed for this account and endpoint, the
/// identity, and `ok` (an account that had to be reconnected syncs again). The mailbox becomes
/// the connected identity when none was set.
pub async fn save_connection(
    tx: &mut PgConnection,
    keys: &SealingKeys,
    account: &Account,
    token_url: &str,
    c: &Connection<'_>,
) -> Result<()> {
    let sealed = keys.seal(
        c.refresh.as_bytes(),
        &refresh_context(account.id, &account.kind, token_url),
    );
    sqlx::query!(
        "UPDATE accounts SET oauth_mode = 'delegated', oauth_refresh_sealed = $2,
             oauth_token_url = $3, oauth_identity = $4, oauth_expires_at = $5,
             oauth_state = 'ok', oauth_error = NULL, mailbox = coalesce(mailbox, $4)
         WHERE id = $1",
        account.id,
        sealed,
        token_url,
        c.identity,
        c.expires_at,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Replaces the refresh token after the provider rotated it.
pub async fn save_rotated(
    pool: &PgPool,
    keys: &SealingKeys,
    account_id: i64,
    client: &OAuthClient,
    refresh: &str,
) -> Result<()> {
    let kind = client.provider.kind();
    let sealed = keys.seal(
        refresh.as_bytes(),
        &refresh_context(account_id, kind, &client.token_url),
    );
    sqlx::query!(
        "UPDATE accounts SET oauth_refresh_sealed = $2 WHERE id = $1 AND oauth_token_url = $3",
        account_id,
        sealed,
        client.token_url,
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn note_expiry(pool: &PgPool, account_id: i64, expires_at: OffsetDateTime) -> Result<()> {
    sqlx::query!(
        "UPDATE accounts SET oauth_expires_at = $2 WHERE id = $1",
        account_id,
        expires_at
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The provider refused the grant: the account waits for someone to connect it again (the
/// scheduler skips it, an alert says so). Its stored token is dropped; it cannot work again.
pub async fn mark_reconnect(pool: &PgPool, account_id: i64, reason: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE accounts SET oauth_state = 'reconnect', oauth_error = $2,
             oauth_refresh_sealed = CASE WHEN oauth_mode = 'delegated' THEN NULL
                                         ELSE oauth_refresh_sealed END
         WHERE id = $1",
        account_id,
        crate::archive::strip_nul(reason),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// App-only accounts are "connected" by the instance's credentials; a refused grant there is a
/// configuration problem, and setting the account `ok` again retries it.
pub async fn clear_reconnect(conn: &mut PgConnection, account_id: i64) -> Result<()> {
    sqlx::query!(
        "UPDATE accounts SET oauth_state = 'ok', oauth_error = NULL WHERE id = $1",
        account_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every stored refresh token re-sealed under the current key; returns how many changed.
pub async fn reseal_all(tx: &mut PgConnection, keys: &SealingKeys) -> Result<u64> {
    let rows = sqlx::query!(
        r#"SELECT id, kind, oauth_refresh_sealed AS "sealed!", oauth_token_url
           FROM accounts WHERE oauth_refresh_sealed IS NOT NULL ORDER BY id FOR UPDATE"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut changed = 0;
    for r in rows {
        if !keys.needs_reseal(&r.sealed) {
            continue;
        }
        let context = refresh_context(r.id, &r.kind, r.oauth_token_url.as_deref().unwrap_or(""));
        let plain = keys.open(&r.sealed, &context).map_err(|e| {
            Error::context(format!("open the refresh token of account {}", r.id), e)
        })?;
        sqlx::query!(
            "UPDATE accounts SET oauth_refresh_sealed = $2 WHERE id = $1",
            r.id,
            keys.seal(&plain, &context)
        )
        .execute(&mut *tx)
        .await?;
        changed += 1;
    }
    Ok(changed)
}
