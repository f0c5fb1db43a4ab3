//! Archive accounts: IMAP connection settings with the password sealed before it reaches the
//! database, and the import accounts that hold mail loaded from disk.

use sqlx::{PgConnection, PgExecutor, PgPool};
use zeroize::Zeroizing;

use crate::error::{Error, Result, ResultExt};
use crate::secrets::SealingKeys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Implicit,
    StartTls,
    None,
}

impl TlsMode {
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "implicit" | "tls" | "ssl" => Ok(Self::Implicit),
            "starttls" => Ok(Self::StartTls),
            "none" | "plain" => Ok(Self::None),
            other => Err(Error::invalid(
                "tls",
                format!("`{other}` is not known; use implicit, starttls or none"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Implicit => "implicit",
            Self::StartTls => "starttls",
            Self::None => "none",
        }
    }
}

/// An archive account as stored, with the password still sealed.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub host: Option<String>,
    pub port: Option<i32>,
    pub tls_mode: Option<String>,
    pub username: Option<String>,
    pub password_sealed: Option<String>,
    pub folders_include: Vec<String>,
    pub folders_exclude: Vec<String>,
    pub poll_interval_secs: i32,
    pub delete_after_days: Option<i32>,
    pub expunge: bool,
    pub pinned_cert_sha256: Option<String>,
    /// Gmail / Microsoft 365: the mailbox archived (None for a delegated account not yet
    /// connected, which archives whoever connects it).
    pub mailbox: Option<String>,
    /// `delegated` (a person connected it; refresh token stored) or `app` (the instance's own
    /// credentials); None for IMAP and imports.
    pub oauth_mode: Option<String>,
    pub oauth_refresh_sealed: Option<String>,
    pub oauth_token_url: Option<String>,
    pub oauth_identity: Option<String>,
    /// `ok`, or `reconnect` after the provider refused the grant.
    pub oauth_state: String,
    pub oauth_error: Option<String>,
    pub oauth_expires_at: Option<time::OffsetDateTime>,
    /// Watch INBOX with IDLE; None follows `sync.idle`.
    pub idle: Option<bool>,
    /// Copy flag changes made on the server to the archived copies.
    pub follow_flags: bool,
}

impl Account {
    /// Whether INBOX is watched with IDLE, given the installation's default.
    pub fn idles(&self, default: bool) -> bool {
        self.kind == "imap" && self.idle.unwrap_or(default)
    }

    pub fn tls(&self) -> Result<TlsMode> {
        TlsMode::parse(self.tls_mode.as_deref().unwrap_or("implicit"))
    }

    /// Where this account's password may be sent.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.clone().unwrap_or_default(),
            port: self.port.unwrap_or(0),
            tls_mode: self.tls_mode.clone().unwrap_or_default(),
            username: self.username.clone().unwrap_or_default(),
            pin: self.pinned_cert_sha256.clone().unwrap_or_default(),
        }
    }

    /// Opens the sealed password in memory. A missing or unopenable password is an error,
    /// never an empty password. The password opens only for the endpoint it was sealed for.
    pub fn password(&self, keys: &SealingKeys) -> Result<Zeroizing<String>> {
        let sealed = self.password_sealed.as_deref().ok_or_else(|| {
            Error::invalid(
                "password",
                format!(
                    "account {} has no stored password; enter it on the account page",
                    self.name
                ),
            )
        })?;
        let bytes = keys.open(sealed, &self.endpoint().password_context(self.id))?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::invalid("password", "stored password is not UTF-8"))?;
        Ok(Zeroizing::new(text))
    }
}

/// The parts of an account that decide where its password goes. Changing any of them drops the
/// stored password, and the sealed password's associated data names all of them, so a value
/// sealed for one server does not open for another (even if the row is edited in SQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
    pub tls_mode: String,
    pub username: String,
    pub pin: String,
}

impl Endpoint {
    /// Associated data of the sealed password: the row and every field of the endpoint, as a
    /// JSON array so no field can run into the next.
    pub fn password_context(&self, id: i64) -> String {
        let fields =
            serde_json::json!([self.host, self.port, self.tls_mode, self.username, self.pin]);
        format!("account:{id}:imap-password:{fields}")
    }

    fn of_settings(s: &ImapSettings) -> Self {
        Self {
            host: s.host.trim().to_string(),
            port: i32::from(s.port),
            tls_mode: s.tls.as_str().to_string(),
            username: s.username.trim().to_string(),
            pin: s
                .pinned_cert_sha256
                .as_deref()
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
        }
    }
}

/// The association used before passwords were bound to their endpoint; only
/// [`upgrade_password_bindings`] still opens it.
fn legacy_password_context(id: i64) -> String {
    format!("account:{id}:password")
}

/// What an operator gives to create or change an IMAP account.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub folders_include: Vec<String>,
    pub folders_exclude: Vec<String>,
    pub poll_interval_secs: i32,
    pub delete_after_days: Option<i32>,
    pub expunge: bool,
    pub pinned_cert_sha256: Option<String>,
}

impl ImapSettings {
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if self.host.trim().is_empty() {
            return Err(Error::invalid("host", "must not be empty"));
        }
        if self.port == 0 {
            return Err(Error::invalid("port", "must be between 1 and 65535"));
        }
        if self.username.trim().is_empty() {
            return Err(Error::invalid("username", "must not be empty"));
        }
        if self.poll_interval_secs < 10 {
            return Err(Error::invalid(
                "poll interval",
                "must be at least 10 seconds",
            ));
        }
        if self.delete_after_days.is_some_and(|d| d < 0) {
            return Err(Error::invalid("delete after days", "must not be negative"));
        }
        if let Some(pin) = &self.pinned_cert_sha256
            && (pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Error::invalid(
                "pinned certificate",
                "must be the certificate's SHA-256 as 64 hex digits",
            ));
        }
        Ok(())
    }
}

/// Creates an IMAP account and seals its password under the row's own identity.
pub async fn create_imap(
    tx: &mut PgConnection,
    keys: &SealingKeys,
    settings: &ImapSettings,
    password: &str,
) -> Result<i64> {
    settings.validate()?;
    if password.is_empty() {
        return Err(Error::invalid("password", "must not be empty"));
    }
    let pin = settings
        .pinned_cert_sha256
        .as_ref()
        .map(|p| p.to_ascii_lowercase());
    let id = sqlx::query_scalar!(
        "INSERT INTO accounts (name, kind, host, port, tls_mode, username, folders_include,
             folders_exclude, poll_interval_secs, delete_after_days, expunge, pinned_cert_sha256)
         VALUES ($1, 'imap', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        settings.name.trim(),
        settings.host.trim(),
        i32::from(settings.port),
        settings.tls.as_str(),
        settings.username.trim(),
        &settings.folders_include,
        &settings.folders_exclude,
        settings.poll_interval_secs,
        settings.delete_after_days,
        settings.expunge,
        pin,
    )
    .fetch_one(&mut *tx)
    .await
    .on_constraint("accounts_name_key", || name_taken(&settings.name))?;
    set_password(tx, keys, id, password).await?;
    Ok(id)
}

/// Seals and stores a new password for the account, bound to its current endpoint.
pub async fn set_password(
    tx: &mut PgConnection,
    keys: &SealingKeys,
    id: i64,
    password: &str,
) -> Result<()> {
    if password.is_empty() {
        return Err(Error::invalid("password", "must not be empty"));
    }
    let account = get(&mut *tx, id).await?;
    let sealed = keys.seal(
        password.as_bytes(),
        &account.endpoint().password_context(id),
    );
    store_sealed(tx, id, &sealed).await
}

/// What [`update_imap`] did to the stored password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordAfterEdit {
    /// The endpoint is unchanged: the stored password stays.
    Kept,
    /// Host, port, TLS mode, user name or pin changed: the stored password was dropped, so it
    /// is never sent to the new endpoint unless someone enters it again.
    Dropped,
}

/// Changes an IMAP account's settings (the password is changed with [`set_password`], after
/// this). A changed endpoint drops the stored password.
pub async fn update_imap(
    tx: &mut PgConnection,
    id: i64,
    settings: &ImapSettings,
) -> Result<PasswordAfterEdit> {
    settings.validate()?;
    let before = get(&mut *tx, id).await?;
    let moved = before.endpoint() != Endpoint::of_settings(settings);
    let pin = settings
        .pinned_cert_sha256
        .as_ref()
        .map(|p| p.to_ascii_lowercase());
    let done = sqlx::query!(
        "UPDATE accounts SET name = $2, host = $3, port = $4, tls_mode = $5, username = $6,
             folders_include = $7, folders_exclude = $8, poll_interval_secs = $9,
             delete_after_days = $10, expunge = $11, pinned_cert_sha256 = $12
         WHERE id = $1 AND kind = 'imap'",
        id,
        settings.name.trim(),
        settings.host.trim(),
        i32::from(settings.port),
        settings.tls.as_str(),
        settings.username.trim(),
        &settings.folders_include,
        &settings.folders_exclude,
        settings.poll_interval_secs,
        settings.delete_after_days,
        settings.expunge,
        pin,
    )
    .execute(&mut *tx)
    .await
    .on_constraint("accounts_name_key", || name_taken(&settings.name))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    if !moved {
        return Ok(PasswordAfterEdit::Kept);
    }
    sqlx::query!(
        "UPDATE accounts SET password_sealed = NULL WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    Ok(PasswordAfterEdit::Dropped)
}

/// What an operator gives to add a Gmail or Microsoft 365 account.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub name: String,
    /// `gmail` or `graph`.
    pub kind: String,
    /// The mailbox address; required for app-only access, optional for a browser connection
    /// (then whoever connects it).
    pub mailbox: Option<String>,
    /// App-only: the instance's own credentials (service account / client credentials).
    /// Otherwise someone connects the account in the browser.
    pub app_only: bool,
    pub poll_interval_secs: i32,
}

impl OAuthSettings {
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if !matches!(self.kind.as_str(), "gmail" | "graph") {
            return Err(Error::invalid("kind", "must be gmail or graph"));
        }
        let mailbox = self.mailbox.as_deref().map(str::trim).unwrap_or_default();
        if self.app_only && mailbox.is_empty() {
            return Err(Error::invalid(
                "mailbox",
                "app-only access needs the mailbox address",
            ));
        }
        if !mailbox.is_empty() && (!mailbox.contains('@') || mailbox.contains(char::is_whitespace))
        {
            return Err(Error::invalid(
                "mailbox",
                format!("`{mailbox}` is not an e-mail address"),
            ));
        }
        if self.poll_interval_secs < 10 {
            return Err(Error::invalid(
                "poll interval",
                "must be at least 10 seconds",
            ));
        }
        Ok(())
    }
}

/// Creates a Gmail or Microsoft 365 account. App-only accounts are ready to sync; the others
/// wait until someone connects them.
pub async fn create_oauth(tx: &mut PgConnection, settings: &OAuthSettings) -> Result<i64> {
    settings.validate()?;
    let mailbox = settings
        .mailbox
        .as_deref()
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty());
    let mode = settings.app_only.then_some("app");
    sqlx::query_scalar!(
        "INSERT INTO accounts (name, kind, mailbox, oauth_mode, oauth_identity, poll_interval_secs,
             folders_exclude)
         VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'app' THEN $3 END, $5, '{}') RETURNING id",
        settings.name.trim(),
        settings.kind,
        mailbox,
        mode,
        settings.poll_interval_secs,
    )
    .fetch_one(&mut *tx)
    .await
    .on_constraint("accounts_name_key", || name_taken(&settings.name))
}

pub async fn set_enabled(conn: &mut PgConnection, id: i64, enabled: bool) -> Result<()> {
    let done = sqlx::query!(
        "UPDATE accounts SET enabled = $2 WHERE id = $1",
        id,
        enabled
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// How an IMAP account follows its server between passes (IDLE, flag changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImapOptions {
    /// Watch INBOX with IDLE; None follows `sync.idle`.
    pub idle: Option<bool>,
    pub follow_flags: bool,
}

pub async fn set_imap_options(conn: &mut PgConnection, id: i64, o: ImapOptions) -> Result<()> {
    let done = sqlx::query!(
        "UPDATE accounts SET idle = $2, follow_flags = $3 WHERE id = $1 AND kind = 'imap'",
        id,
        o.idle,
        o.follow_flags
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

fn name_taken(name: &str) -> Error {
    Error::Conflict(format!("an account named {name} already exists"))
}

/// Accounts by name; `id` or `name` narrow the list to that one account.
async fn select(
    db: impl PgExecutor<'_>,
    id: Option<i64>,
    name: Option<&str>,
) -> Result<Vec<Account>> {
    Ok(sqlx::query_as!(
        Account,
        r#"SELECT id, name::text AS "name!", kind, enabled, host, port, tls_mode, username,
                  password_sealed, folders_include, folders_exclude, poll_interval_secs,
                  delete_after_days, expunge, pinned_cert_sha256, mailbox, oauth_mode,
                  oauth_refresh_sealed, oauth_token_url, oauth_identity, oauth_state, oauth_error,
                  oauth_expires_at, idle, follow_flags
           FROM accounts
           WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR name = $2)
           ORDER BY name"#,
        id,
        name,
    )
    .fetch_all(db)
    .await?)
}

pub async fn list(pool: &PgPool) -> Result<Vec<Account>> {
    select(pool, None, None).await
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<Account> {
    select(db, Some(id), None)
        .await?
        .pop()
        .ok_or(Error::NotFound)
}

pub async fn find_by_name(db: impl PgExecutor<'_>, name: &str) -> Result<Option<Account>> {
    Ok(select(db, None, Some(name)).await?.pop())
}

/// The import account called `name`, created on first use. An existing account of another
/// kind with that name is refused rather than mixed with imported mail.
pub async fn import_account(conn: &mut PgConnection, name: &str) -> Result<Account> {
    sqlx::query!(
        "INSERT INTO accounts (name, kind) VALUES ($1, 'import') ON CONFLICT (name) DO NOTHING",
        name.trim(),
    )
    .execute(&mut *conn)
    .await?;
    let account = find_by_name(&mut *conn, name.trim())
        .await?
        .ok_or(Error::NotFound)?;
    if account.kind != "import" {
        return Err(Error::Conflict(format!(
            "account {} is an {} account; import into an account of kind import (pick another name)",
            account.name, account.kind
        )));
    }
    Ok(account)
}

/// What removing an account would delete.
#[derive(Debug, Clone, Copy)]
pub struct RemovalImpact {
    pub messages: i64,
    /// Stored message contents only this account references (freed on removal).
    pub unshared_blobs: i64,
}

pub async fn removal_impact(conn: &mut PgConnection, id: i64) -> Result<RemovalImpact> {
    Ok(sqlx::query_as!(
        RemovalImpact,
        r#"SELECT (SELECT count(*) FROM messages WHERE account_id = $1) AS "messages!",
                  (SELECT count(DISTINCT m.blob_sha256) FROM messages m WHERE m.account_id = $1
                     AND NOT EXISTS (SELECT 1 FROM messages o
                                     WHERE o.blob_sha256 = m.blob_sha256
                                       AND o.account_id <> $1)) AS "unshared_blobs!""#,
        id,
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Deletes the account, its archived copies and ledger, and the stored contents no other
/// account references. Refused while any of its mail is under a legal hold.
pub async fn remove(tx: &mut PgConnection, id: i64) -> Result<RemovalImpact> {
    crate::retention::HeldFilter::lock(tx).await?;
    if crate::retention::holds::account_has_held_mail(tx, id).await? {
        return Err(Error::Conflict(
            "this account has mail under a legal hold; release the hold before removing it".into(),
        ));
    }
    let impact = removal_impact(tx, id).await?;
    let blobs = sqlx::query_scalar!(
        "SELECT DISTINCT blob_sha256 FROM messages WHERE account_id = $1",
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    let done = sqlx::query!("DELETE FROM accounts WHERE id = $1", id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    crate::retention::remove::collect_blobs(tx, &blobs).await?;
    Ok(impact)
}

/// Every stored password re-sealed under the current key (and bound to its endpoint):
/// returns how many changed. Run it with the old key loaded as a previous key; the caller
/// commits.
pub async fn reseal_all(tx: &mut PgConnection, keys: &SealingKeys) -> Result<u64> {
    let mut changed = 0;
    for a in with_password(tx).await? {
        let sealed = a.password_sealed.as_deref().unwrap_or_default();
        if !keys.needs_reseal(sealed) {
            continue;
        }
        let context = a.endpoint().password_context(a.id);
        let plain = keys
            .open(sealed, &context)
            .or_else(|_| keys.open(sealed, &legacy_password_context(a.id)))
            .map_err(|e| Error::context(format!("open the password of account {}", a.name), e))?;
        store_sealed(tx, a.id, &keys.seal(&plain, &context)).await?;
        changed += 1;
    }
    Ok(changed)
}

/// Re-seals passwords stored before they were bound to their endpoint (associated data
/// `account:<id>:password`), so they open only for the endpoint they were entered for. Run at
/// start-up and by `rotate-key`; returns how many changed. A value that opens with neither
/// association (e.g. under a key that is not loaded) is left alone: using it fails clearly.
pub async fn upgrade_password_bindings(tx: &mut PgConnection, keys: &SealingKeys) -> Result<u64> {
    let mut changed = 0;
    for a in with_password(tx).await? {
        let sealed = a.password_sealed.as_deref().unwrap_or_default();
        let context = a.endpoint().password_context(a.id);
        if keys.open(sealed, &context).is_ok() {
            continue;
        }
        if let Ok(plain) = keys.open(sealed, &legacy_password_context(a.id)) {
            store_sealed(tx, a.id, &keys.seal(&plain, &context)).await?;
            changed += 1;
        }
    }
    Ok(changed)
}

async fn with_password(tx: &mut PgConnection) -> Result<Vec<Account>> {
    Ok(sqlx::query_as!(
        Account,
        r#"SELECT id, name::text AS "name!", kind, enabled, host, port, tls_mode, username,
                  password_sealed, folders_include, folders_exclude, poll_interval_secs,
                  delete_after_days, expunge, pinned_cert_sha256, mailbox, oauth_mode,
                  oauth_refresh_sealed, oauth_token_url, oauth_identity, oauth_state, oauth_error,
                  oauth_expires_at, idle, follow_flags
           FROM accounts WHERE password_sealed IS NOT NULL ORDER BY id FOR UPDATE"#,
    )
    .fetch_all(&mut *tx)
    .await?)
}

async fn store_sealed(tx: &mut PgConnection, id: i64, sealed: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE accounts SET password_sealed = $2 WHERE id = $1",
        id,
        sealed
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
