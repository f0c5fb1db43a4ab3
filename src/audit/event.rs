//! What an audit row says: who ([`Actor`]), did what ([`Action`]), to what ([`Target`]).

use std::fmt;

use sqlx::encode::IsNull;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::{Encode, Postgres, Type};
use uuid::Uuid;

/// Who did something, from where. Built by the web layer per request (or by the CLI).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub username: String,
    pub ip: String,
    pub user_agent: String,
    /// The API token the request came with, if any (recorded in each audit row's details).
    pub api_token: Option<i64>,
}

impl Actor {
    /// The command line: no address, the operator's login name when known.
    pub fn cli() -> Self {
        Self {
            user_id: None,
            username: format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            ),
            ip: String::new(),
            user_agent: "daygle cli".into(),
            api_token: None,
        }
    }
}

/// Every kind of audit row. The dotted names are what the log stores and what the audit page
/// filters by prefix (`login` finds every `login.*`); never rename one that has shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    LoginSuccess,
    LoginFailure,
    LoginLockout,
    LoginRateLimited,
    LoginRefusedLocked,
    Logout,
    SetupFirstAdmin,
    UserCreate,
    UserUpdate,
    UserEnable,
    UserDisable,
    UserDelete,
    UserGrants,
    UserPasswordReset,
    UserSessionsEnd,
    UserTotpRemove,
    UserOidcLink,
    UserOidcProvision,
    UserOidcAccess,
    RoleCreate,
    RoleUpdate,
    RoleDelete,
    ProfileEmail,
    ProfilePreferences,
    ProfilePasswordChange,
    ProfileSessionsEnd,
    ProfileTotpEnable,
    ProfileTotpRemove,
    ProfileRecoveryCodes,
    InvitationCreate,
    InvitationResend,
    InvitationRevoke,
    InvitationAccept,
    PasswordResetRequest,
    PasswordResetComplete,
    AccountCreate,
    AccountUpdate,
    AccountEnable,
    AccountDisable,
    AccountDelete,
    AccountSearchLanguage,
    AccountSyncNow,
    AccountConnectStart,
    AccountConnect,
    AccountConnectRefused,
    MailView,
    MailBody,
    MailInlineImage,
    MailDownload,
    MailAttachment,
    MailSearch,
    MailExport,
    MailDeleteFromServer,
    QuarantineRelease,
    QuarantineDelete,
    QuarantineDownload,
    QuarantineExpire,
    AlertAcknowledge,
    SecretsRotateKey,
    SearchReindex,
    BackupCreate,
    BackupRestore,
    HoldAddMessages,
    HoldPlace,
    HoldRelease,
    MailDeleteApprove,
    MailDeleteReject,
    MailDeleteRequest,
    MailDeleteStart,
    MailDeleteBatch,
    MailDelete,
    MailEraseRequest,
    MailEraseBatch,
    MailErase,
    RetentionCollectBlobs,
    RetentionPolicyCreate,
    RetentionPolicyRemove,
    RetentionPolicyUpdate,
    RetentionPurge,
    RetentionPurgeBatch,
    RetentionSchedule,
    TokenCreate,
    TokenRevoke,
    ApiRead,
    SettingsUpdate,
    SettingsTestEmail,
    AlertTriggersUpdate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::LoginSuccess => "login.success",
            Action::LoginFailure => "login.failure",
            Action::LoginLockout => "login.lockout",
            Action::LoginRateLimited => "login.rate_limited",
            Action::LoginRefusedLocked => "login.refused_locked",
            Action::Logout => "logout",
            Action::SetupFirstAdmin => "setup.first_admin",
            Action::UserCreate => "user.create",
            Action::UserUpdate => "user.update",
            Action::UserEnable => "user.enable",
            Action::UserDisable => "user.disable",
            Action::UserDelete => "user.delete",
            Action::UserGrants => "user.grants",
            Action::UserPasswordReset => "user.password_reset",
            Action::UserSessionsEnd => "user.sessions_end",
            Action::UserTotpRemove => "user.totp_remove",
            Action::UserOidcLink => "user.oidc_link",
            Action::UserOidcProvision => "user.oidc_provision",
            Action::UserOidcAccess => "user.oidc_access",
            Action::RoleCreate => "role.create",
            Action::RoleUpdate => "role.update",
            Action::RoleDelete => "role.delete",
            Action::ProfileEmail => "profile.email",
            Action::ProfilePreferences => "profile.preferences",
            Action::ProfilePasswordChange => "profile.password_change",
            Action::ProfileSessionsEnd => "profile.sessions_end",
            Action::ProfileTotpEnable => "profile.totp_enable",
            Action::ProfileTotpRemove => "profile.totp_remove",
            Action::ProfileRecoveryCodes => "profile.recovery_codes",
            Action::InvitationCreate => "invitation.create",
            Action::InvitationResend => "invitation.resend",
            Action::InvitationRevoke => "invitation.revoke",
            Action::InvitationAccept => "invitation.accept",
            Action::PasswordResetRequest => "password_reset.request",
            Action::PasswordResetComplete => "password_reset.complete",
            Action::AccountCreate => "account.create",
            Action::AccountUpdate => "account.update",
            Action::AccountEnable => "account.enable",
            Action::AccountDisable => "account.disable",
            Action::AccountDelete => "account.delete",
            Action::AccountSearchLanguage => "account.search_language",
            Action::AccountSyncNow => "account.sync_now",
            Action::AccountConnectStart => "account.connect_start",
            Action::AccountConnect => "account.connect",
            Action::AccountConnectRefused => "account.connect_refused",
            Action::MailView => "mail.view",
            Action::MailBody => "mail.body",
            Action::MailInlineImage => "mail.inline_image",
            Action::MailDownload => "mail.download",
            Action::MailAttachment => "mail.attachment",
            Action::MailSearch => "mail.search",
            Action::MailExport => "mail.export",
            Action::MailDeleteFromServer => "mail.delete_from_server",
            Action::QuarantineRelease => "quarantine.release",
            Action::QuarantineDelete => "quarantine.delete",
            Action::QuarantineDownload => "quarantine.download",
            Action::QuarantineExpire => "quarantine.expire",
            Action::AlertAcknowledge => "alert.acknowledge",
            Action::SecretsRotateKey => "secrets.rotate_key",
            Action::SearchReindex => "search.reindex",
            Action::BackupCreate => "backup.create",
            Action::BackupRestore => "backup.restore",
            Action::HoldAddMessages => "hold.add_messages",
            Action::HoldPlace => "hold.place",
            Action::HoldRelease => "hold.release",
            Action::MailDeleteApprove => "mail.delete_approve",
            Action::MailDeleteReject => "mail.delete_reject",
            Action::MailDeleteRequest => "mail.delete_request",
            Action::MailDeleteStart => "mail.delete_start",
            Action::MailEraseRequest => "mail.erase_request",
            Action::MailDeleteBatch => "mail.delete_batch",
            Action::MailDelete => "mail.delete",
            Action::MailEraseBatch => "mail.erase_batch",
            Action::MailErase => "mail.erase",
            Action::RetentionCollectBlobs => "retention.collect_blobs",
            Action::RetentionPolicyCreate => "retention.policy_create",
            Action::RetentionPolicyRemove => "retention.policy_remove",
            Action::RetentionPolicyUpdate => "retention.policy_update",
            Action::RetentionPurge => "retention.purge",
            Action::RetentionPurgeBatch => "retention.purge_batch",
            Action::RetentionSchedule => "retention.schedule",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::ApiRead => "api.read",
            Action::SettingsUpdate => "settings.update",
            Action::SettingsTestEmail => "settings.test_email",
            Action::AlertTriggersUpdate => "settings.alert_triggers",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stored as its dotted name in the `text` column `audit_log.action`.
impl Type<Postgres> for Action {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Action {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<IsNull, Box<dyn std::error::Error + Send + Sync>> {
        <&str as Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
    }
}

/// What an action was done to. Stored as `kind:id` (`user:42`), empty for no target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    None,
    /// The whole archive, every account.
    Archive,
    User(i64),
    Role(i64),
    Account(i64),
    Message(i64),
    Quarantine(Uuid),
    LegalHold(i64),
    RetentionPolicy(i64),
    DeletionRequest(i64),
    Alert(i64),
    Invitation(i64),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::None => Ok(()),
            Target::Archive => f.write_str("archive"),
            Target::User(id) => write!(f, "user:{id}"),
            Target::Role(id) => write!(f, "role:{id}"),
            Target::Account(id) => write!(f, "account:{id}"),
            Target::Message(id) => write!(f, "message:{id}"),
            Target::Quarantine(id) => write!(f, "quarantine:{id}"),
            Target::LegalHold(id) => write!(f, "legal_hold:{id}"),
            Target::RetentionPolicy(id) => write!(f, "retention_policy:{id}"),
            Target::DeletionRequest(id) => write!(f, "deletion_request:{id}"),
            Target::Invitation(id) => write!(f, "invitation:{id}"),
            Target::Alert(id) => write!(f, "alert:{id}"),
        }
    }
}

/// One audit row before it is chained.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub user_id: Option<i64>,
    pub username: String,
    pub ip: String,
    pub user_agent: String,
    pub action: Action,
    pub target: Target,
    pub details: serde_json::Value,
    /// Copied from [`Actor::api_token`]; written into `details` as `api_token`.
    pub api_token: Option<i64>,
    /// The archive accounts the row is about, when the target alone does not say (a search,
    /// an export, a grant change). `None`: derived from the target in SQL
    /// (`audit_target_accounts`), which is none for targets outside any archive.
    pub accounts: Option<Vec<i64>>,
    /// The action concerned every archive (e.g. a search by someone who may read them all).
    pub all_accounts: bool,
}

impl AuditEvent {
    pub fn by(actor: &Actor, action: Action) -> Self {
        Self {
            user_id: actor.user_id,
            username: actor.username.clone(),
            ip: actor.ip.clone(),
            user_agent: actor.user_agent.clone(),
            action,
            target: Target::None,
            details: serde_json::json!({}),
            api_token: actor.api_token,
            accounts: None,
            all_accounts: false,
        }
    }

    /// The row is about these archive accounts (see [`AuditEvent::accounts`]).
    pub fn accounts(mut self, ids: impl Into<Vec<i64>>) -> Self {
        let mut ids = ids.into();
        ids.sort_unstable();
        ids.dedup();
        self.accounts = Some(ids);
        self
    }

    /// The row is about what `grants` reach: every archive, or the listed accounts. For reads
    /// over everything a user may see, such as a search.
    pub fn reach(self, grants: &crate::auth::Grants) -> Self {
        match grants {
            crate::auth::Grants::All => self.every_archive(),
            crate::auth::Grants::Accounts(ids) => self.accounts(ids.clone()),
        }
    }

    /// The row is about every archive account.
    pub fn every_archive(mut self) -> Self {
        self.all_accounts = true;
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_kind_and_id() {
        assert_eq!(Target::User(42).to_string(), "user:42");
        assert_eq!(Target::Account(7).to_string(), "account:7");
        assert_eq!(Target::None.to_string(), "");
        let id = Uuid::nil();
        assert_eq!(
            Target::Quarantine(id).to_string(),
            "quarantine:00000000-0000-0000-0000-000000000000"
        );
    }
}
