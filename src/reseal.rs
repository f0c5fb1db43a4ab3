//! Key rotation for stored secrets: the one list of every value sealed with the sealing key,
//! and re-sealing all of them under the current key in the caller's transaction.
//!
//! A new sealed column must be added to [`Sealed`]: the `match` in [`reseal_all`] then makes
//! the compiler ask how it is re-sealed, and a test compares [`Sealed::ALL`] with the schema.

use sqlx::{PgConnection, PgPool};

use crate::error::Result;
use crate::secrets::SealingKeys;

/// Every kind of value sealed with the sealing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// `accounts.password_sealed`: IMAP passwords, bound to account id and endpoint.
    AccountPassword,
    /// `users.totp_secret`: two-factor secrets, bound to the user id.
    TotpSecret,
    /// `quarantine.wrapped_key`: each quarantined message's data key, bound to the row.
    QuarantineDataKey,
    /// `settings.sealed`: secret runtime settings (the SMTP password), bound to their key.
    SettingSecret,
    /// `accounts.oauth_refresh_sealed`: Gmail / Microsoft 365 refresh tokens, bound to the
    /// account id, its kind and the token endpoint that issued them.
    OAuthRefreshToken,
}

impl Sealed {
    pub const ALL: [Sealed; 5] = [
        Sealed::AccountPassword,
        Sealed::TotpSecret,
        Sealed::QuarantineDataKey,
        Sealed::SettingSecret,
        Sealed::OAuthRefreshToken,
    ];

    /// Where the values live: (table, column).
    pub fn column(self) -> (&'static str, &'static str) {
        match self {
            Sealed::AccountPassword => ("accounts", "password_sealed"),
            Sealed::TotpSecret => ("users", "totp_secret"),
            Sealed::QuarantineDataKey => ("quarantine", "wrapped_key"),
            Sealed::SettingSecret => ("settings", "sealed"),
            Sealed::OAuthRefreshToken => ("accounts", "oauth_refresh_sealed"),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sealed::AccountPassword => "account_passwords",
            Sealed::TotpSecret => "totp_secrets",
            Sealed::QuarantineDataKey => "quarantine_keys",
            Sealed::SettingSecret => "setting_secrets",
            Sealed::OAuthRefreshToken => "oauth_refresh_tokens",
        }
    }
}

/// How many values of each kind were re-sealed, in [`Sealed::ALL`] order.
#[derive(Debug, Default, Clone)]
pub struct Resealed {
    pub counts: Vec<(Sealed, u64)>,
}

impl Resealed {
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    pub fn count(&self, kind: Sealed) -> u64 {
        self.counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// For the audit row: `{"account_passwords": 2, ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.counts
                .iter()
                .map(|(k, n)| (k.label().to_string(), serde_json::json!(n)))
                .collect(),
        )
    }
}

/// Re-seals every stored secret still under an older key. `keys` must hold the new key as
/// current and the old one as previous. All or nothing: the caller commits.
pub async fn reseal_all(tx: &mut PgConnection, keys: &SealingKeys) -> Result<Resealed> {
    let mut counts = Vec::new();
    for kind in Sealed::ALL {
        let n = match kind {
            Sealed::AccountPassword => crate::ingest::accounts::reseal_all(tx, keys).await?,
            Sealed::TotpSecret => crate::auth::totp::reseal_all(tx, keys).await?,
            Sealed::QuarantineDataKey => crate::scan::quarantine::reseal_all(tx, keys).await?,
            Sealed::SettingSecret => crate::settings::store::reseal_all(tx, keys).await?,
            Sealed::OAuthRefreshToken => crate::ingest::oauth::store::reseal_all(tx, keys).await?,
        };
        counts.push((kind, n));
    }
    Ok(Resealed { counts })
}

/// Brings stored secrets up to the current association format (today: IMAP passwords bound
/// to their endpoint). Run before anything opens them: at start-up and by commands that
/// connect to mail servers.
pub async fn upgrade_stored(pool: &PgPool, keys: &SealingKeys) -> Result<()> {
    let mut tx = pool.begin().await?;
    let n = crate::ingest::accounts::upgrade_password_bindings(&mut tx, keys).await?;
    tx.commit().await?;
    if n > 0 {
        tracing::info!(
            accounts = n,
            "bound stored IMAP passwords to their server settings"
        );
    }
    Ok(())
}
