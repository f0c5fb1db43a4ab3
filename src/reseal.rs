//! Key rotation for stored secrets: every sealed column of the schema, re-sealed under the
//! current sealing key in the caller's transaction. A new sealed column must be listed here.

use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

/// How many values of each kind were re-sealed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Resealed {
    pub account_passwords: u64,
    pub totp_secrets: u64,
}

impl Resealed {
    pub fn total(&self) -> u64 {
        self.account_passwords + self.totp_secrets
    }
}

/// Re-seals every stored secret still under an older key. `keys` must hold the new key as
/// current and the old one as previous. All or nothing: the caller commits.
pub async fn reseal_all(tx: &mut PgConnection, keys: &SealingKeys) -> Result<Resealed> {
    let account_passwords = crate::ingest::accounts::reseal_all(tx, keys).await?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, totp_secret FROM users WHERE totp_secret IS NOT NULL FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut totp_secrets = 0;
    for (id, sealed) in rows {
        if !keys.needs_reseal(&sealed) {
            continue;
        }
        // Must match auth::totp's association for the value to open after rotation.
        let context = format!("user:{id}:totp");
        let plain = keys
            .open(&sealed, &context)
            .map_err(|e| Error::context(format!("open the TOTP secret of user {id}"), e))?;
        sqlx::query("UPDATE users SET totp_secret = $2 WHERE id = $1")
            .bind(id)
            .bind(keys.seal(&plain, &context))
            .execute(&mut *tx)
            .await?;
        totp_secrets += 1;
    }
    Ok(Resealed {
        account_passwords,
        totp_secrets,
    })
}
