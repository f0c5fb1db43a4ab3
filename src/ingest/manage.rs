//! Archive account use cases shared by the web UI and the CLI: create, change, pause or
//! resume, and remove an account. Each opens its transaction, writes its audit row and
//! commits, so both front ends behave alike (and the future API calls the same functions).

use serde_json::json;
use sqlx::PgPool;

use super::accounts::{
    self, ImapOptions, ImapSettings, OAuthSettings, PasswordAfterEdit, RemovalImpact, TlsMode,
};
use super::imap::{self, ConnectionReport, Timeouts};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::config::SyncSettings;
use crate::error::Result;
use crate::secrets::SealingKeys;

/// An IMAP account as an operator describes it; what they leave out gets the defaults both
/// front ends share ([`AccountDraft::settings`]).
#[derive(Debug, Clone)]
pub struct AccountDraft {
    pub name: String,
    pub host: String,
    /// Default: 993 for implicit TLS, 143 otherwise.
    pub port: Option<u16>,
    pub tls: TlsMode,
    pub username: String,
    /// Folder patterns to archive; empty means all.
    pub folders_include: Vec<String>,
    /// Default: `sync.exclude_folders`.
    pub folders_exclude: Option<Vec<String>>,
    /// Default: `sync.default_poll_secs`.
    pub poll_interval_secs: Option<i32>,
    pub delete_after_days: Option<i32>,
    pub expunge: bool,
    /// A self-signed server certificate's SHA-256 (any case; blank means none).
    pub pinned_cert_sha256: Option<String>,
}

impl AccountDraft {
    /// The complete settings, defaults filled in from `sync`.
    pub fn settings(self, sync: &SyncSettings) -> ImapSettings {
        let port = self.port.unwrap_or(if self.tls == TlsMode::Implicit {
            993
        } else {
            143
        });
        ImapSettings {
            name: self.name,
            host: self.host,
            port,
            tls: self.tls,
            username: self.username,
            folders_include: self.folders_include,
            folders_exclude: self
                .folders_exclude
                .unwrap_or_else(|| sync.exclude_patterns()),
            poll_interval_secs: self
                .poll_interval_secs
                .unwrap_or(i32::try_from(sync.default_poll_secs).unwrap_or(300)),
            delete_after_days: self.delete_after_days,
            expunge: self.expunge,
            pinned_cert_sha256: self
                .pinned_cert_sha256
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty()),
        }
    }
}

/// Creates an IMAP account with its sealed password (and IDLE / flag following when given);
/// returns its id.
pub async fn create_account(
    pool: &PgPool,
    keys: &SealingKeys,
    actor: &Actor,
    imap: &ImapSettings,
    password: &str,
    options: Option<ImapOptions>,
) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let id = accounts::create_imap(&mut tx, keys, imap, password).await?;
    if let Some(options) = options {
        accounts::set_imap_options(&mut tx, id, options).await?;
    }
    let event = AuditEvent::by(actor, Action::AccountCreate)
        .target(Target::Account(id))
        .details(json!({
            "name": imap.name, "host": imap.host, "username": imap.username, "options": options,
        }));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(id)
}

/// Creates a Gmail or Microsoft 365 account; returns its id.
pub async fn create_oauth_account(
    pool: &PgPool,
    actor: &Actor,
    settings: &OAuthSettings,
) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let id = accounts::create_oauth(&mut tx, settings).await?;
    let event = AuditEvent::by(actor, Action::AccountCreate)
        .target(Target::Account(id))
        .details(json!({
            "name": settings.name, "kind": settings.kind, "mailbox": settings.mailbox,
            "app_only": settings.app_only,
        }));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(id)
}

/// What became of the stored password after [`update_account`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordOutcome {
    Kept,
    Replaced,
    /// The endpoint changed and no new password came with it: it must be entered again.
    Dropped,
}

/// Changes an account's settings and, when given, its password and its IDLE / flag following.
/// A changed endpoint (server, port, TLS, user, pin) drops the stored password: it is never
/// sent to a server it was not given for.
pub async fn update_account(
    pool: &PgPool,
    keys: &SealingKeys,
    actor: &Actor,
    id: i64,
    imap: &ImapSettings,
    password: Option<&str>,
    options: Option<ImapOptions>,
) -> Result<PasswordOutcome> {
    let mut tx = pool.begin().await?;
    let kept = accounts::update_imap(&mut tx, id, imap).await?;
    if let Some(password) = password {
        accounts::set_password(&mut tx, keys, id, password).await?;
    }
    if let Some(options) = options {
        accounts::set_imap_options(&mut tx, id, options).await?;
    }
    let outcome = match (password, kept) {
        (Some(_), _) => PasswordOutcome::Replaced,
        (None, PasswordAfterEdit::Dropped) => PasswordOutcome::Dropped,
        (None, PasswordAfterEdit::Kept) => PasswordOutcome::Kept,
    };
    let event = AuditEvent::by(actor, Action::AccountUpdate)
        .target(Target::Account(id))
        .details(json!({
            "name": imap.name, "host": imap.host, "port": imap.port,
            "username": imap.username, "password_changed": password.is_some(),
            "password_dropped": outcome == PasswordOutcome::Dropped,
            "delete_after_days": imap.delete_after_days, "options": options,
        }));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Sets whether an IMAP account is watched with IDLE and follows flag changes.
pub async fn set_options(
    pool: &PgPool,
    actor: &Actor,
    id: i64,
    options: ImapOptions,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    accounts::set_imap_options(&mut tx, id, options).await?;
    let event = AuditEvent::by(actor, Action::AccountUpdate)
        .target(Target::Account(id))
        .details(json!({ "idle": options.idle, "follow_flags": options.follow_flags }));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(())
}

/// Pauses (`false`) or resumes (`true`) syncing an account; its archive stays.
pub async fn set_enabled(pool: &PgPool, actor: &Actor, id: i64, enabled: bool) -> Result<()> {
    let mut tx = pool.begin().await?;
    accounts::set_enabled(&mut tx, id, enabled).await?;
    let action = if enabled {
        Action::AccountEnable
    } else {
        Action::AccountDisable
    };
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, action).target(Target::Account(id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes an account and its archived mail (content other accounts share stays).
pub async fn remove_account(pool: &PgPool, actor: &Actor, id: i64) -> Result<RemovalImpact> {
    let mut tx = pool.begin().await?;
    let account = accounts::get(&mut *tx, id).await?;
    let done = accounts::remove(&mut tx, id).await?;
    let event = AuditEvent::by(actor, Action::AccountDelete)
        .target(Target::Account(id))
        .details(json!({ "name": account.name, "messages_deleted": done.messages }));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(done)
}

/// Connects to account `id`'s server with its stored password and lists the folders, changing
/// nothing (the account page's and `daygle account test`'s check).
pub async fn test_account(
    pool: &PgPool,
    keys: &SealingKeys,
    id: i64,
    timeouts: Timeouts,
) -> Result<ConnectionReport> {
    let account = accounts::get(pool, id).await?;
    let password = account.password(keys)?;
    imap::test_connection(&account, &password, timeouts).await
}
