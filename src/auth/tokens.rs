//! API tokens: created, listed, revoked, and turned into the rights of one request.
//!
//! A token is `dga_` followed by 43 characters of base64url (256 random bits); the prefix lets
//! secret scanners recognise a leaked one. Only its SHA-256 is stored. A token carries scopes
//! and an optional archive restriction, and it never grants more than its user holds *at the
//! moment of use*: [`Token::rights`] intersects the user's current permissions and grants
//! with the token's scopes and restriction on every request.

use base64::prelude::*;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::grants::Grants;
use super::permissions::{Permission, PermissionSet};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::error::{Error, Result, ResultExt};

/// What every token starts with.
pub const PREFIX: &str = "dga_";
/// How many characters of a token are stored in clear, to tell tokens apart in lists.
const SHOWN: usize = 10;
/// The longest expiry a token may have.
pub const MAX_EXPIRY_DAYS: i64 = 3650;

/// What a token may be used for. Each scope stands for a set of permissions; the request gets
/// the permissions of its scopes that the user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Search and read mail: `view_mail` (and `view_dashboard`).
    MailRead,
    /// Export mail: `export_mail`.
    MailExport,
    /// Everything else the user may do: quarantine, audit log, accounts, users, settings.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::MailRead, Scope::MailExport, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MailRead => "mail:read",
            Scope::MailExport => "mail:export",
            Scope::Admin => "admin",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Scope::MailRead => "Search and read mail",
            Scope::MailExport => "Export mail",
            Scope::Admin => "Administration: quarantine, audit log, accounts",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|s| s.as_str() == text.trim())
    }

    /// The scope a permission belongs to. The dashboard goes with reading mail, so that
    /// `admin` needs a permission readers do not have.
    pub fn of(p: Permission) -> Scope {
        match p {
            Permission::ViewMail | Permission::ViewDashboard => Scope::MailRead,
            Permission::ExportMail => Scope::MailExport,
            _ => Scope::Admin,
        }
    }

    /// Parses `mail:read,mail:export`; unknown names are an error, not ignored.
    pub fn parse_list(text: &str) -> Result<Vec<Scope>> {
        let mut scopes = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope = Scope::parse(part).ok_or_else(|| {
                Error::invalid(
                    "scope",
                    format!("`{part}` is not a scope (mail:read, mail:export, admin)"),
                )
            })?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes.sort();
        Ok(scopes)
    }
}

/// A stored token (never its secret).
#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<Scope>,
    /// `None`: every archive the user may read.
    pub account_ids: Option<Vec<i64>>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: String,
    pub created_at: OffsetDateTime,
}

impl Token {
    /// True while the token may be used.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// The rights of a request made with this token by a user who holds `permissions` and
    /// `grants` right now: never more than the user holds, never more than the token allows.
    pub fn rights(&self, permissions: &PermissionSet, grants: &Grants) -> (PermissionSet, Grants) {
        let permissions = permissions.only(|p| self.scopes.contains(&Scope::of(p)));
        let grants = grants.restrict(self.account_ids.as_deref());
        (permissions, grants)
    }

    pub fn scope_names(&self) -> String {
        self.scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct TokenRow {
    id: i64,
    user_id: i64,
    username: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    account_ids: Option<Vec<i64>>,
    expires_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    last_used_at: Option<OffsetDateTime>,
    last_used_ip: String,
    created_at: OffsetDateTime,
}

impl From<TokenRow> for Token {
    fn from(r: TokenRow) -> Self {
        Token {
            id: r.id,
            user_id: r.user_id,
            username: r.username,
            name: r.name,
            prefix: r.prefix,
            scopes: r.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            account_ids: r.account_ids,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            last_used_ip: r.last_used_ip,
            created_at: r.created_at,
        }
    }
}

/// SHA-256 of the whole token text, hex.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh token text: the prefix and 256 random bits.
fn generate() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("no randomness for a token: {e}")))?;
    Ok(format!("{PREFIX}{}", BASE64_URL_SAFE_NO_PAD.encode(bytes)))
}

/// What a new token should be.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// `None`: every archive the owner may read (now and later).
    pub account_ids: Option<Vec<i64>>,
    /// `None`: the token does not expire.
    pub expires_in_days: Option<i64>,
}

/// Creates a token for `owner_id` and returns it with its text, which exists nowhere else:
/// show it once. Refused when a scope gives the owner nothing or the archive restriction
/// names an archive the owner may not read.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    owner_id: i64,
    new: NewToken,
) -> Result<(Token, String)> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid(
            "name",
            "give the token a name of 1 to 100 characters",
        ));
    }
    if new.scopes.is_empty() {
        return Err(Error::invalid("scope", "choose at least one scope"));
    }
    let owner_permissions = super::users::permissions(pool, owner_id).await?;
    for scope in &new.scopes {
        if !owner_permissions.iter().any(|p| Scope::of(p) == *scope) {
            return Err(Error::invalid(
                "scope",
                format!(
                    "the user holds no permission that {} covers",
                    scope.as_str()
                ),
            ));
        }
    }
    let owner_grants = Grants::load(pool, owner_id).await?;
    if let Some(ids) = &new.account_ids {
        if ids.is_empty() {
            return Err(Error::invalid("accounts", "choose at least one archive"));
        }
        if ids.iter().any(|id| !owner_grants.allows(*id)) {
            return Err(Error::invalid(
                "accounts",
                "a token can only be restricted to archives its user may read",
            ));
        }
    }
    let expires_at = match new.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => {
            Some(OffsetDateTime::now_utc() + Duration::days(d))
        }
        Some(_) => {
            return Err(Error::invalid(
                "expires",
                format!("expiry must be between 1 and {MAX_EXPIRY_DAYS} days"),
            ));
        }
    };
    let secret = generate()?;
    let prefix: String = secret.chars().take(SHOWN).collect();
    let scopes: Vec<String> = new.scopes.iter().map(|s| s.as_str().to_string()).collect();
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO api_tokens (user_id, name, token_hash, prefix, scopes, account_ids, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        owner_id,
        name,
        hash(&secret),
        prefix,
        &scopes,
        new.account_ids.as_deref(),
        expires_at,
    )
    .fetch_one(&mut *tx)
    .await
    .on_constraint("api_tokens_user_name_key", || {
        Error::invalid("name", "a token with this name already exists")
    })?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::TokenCreate)
            .target(Target::User(owner_id))
            .details(serde_json::json!({
                "token": id,
                "name": name,
                "scopes": scopes,
                "accounts": new.account_ids,
                "expires_at": expires_at.map(|e| e.unix_timestamp()),
            })),
    )
    .await?;
    tx.commit().await?;
    let token = get(pool, id).await?.ok_or(Error::NotFound)?;
    Ok((token, secret))
}

async fn get(pool: &PgPool, id: i64) -> Result<Option<Token>> {
    Ok(sqlx::query_as!(
        TokenRow,
        r#"SELECT t.id, t.user_id, u.username::text AS "username!", t.name, t.prefix, t.scopes,
                  t.account_ids, t.expires_at, t.revoked_at, t.last_used_at, t.last_used_ip,
                  t.created_at
           FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?
    .map(Token::from))
}

/// The tokens of one user (`Some`) or of everyone (`None`), newest first.
pub async fn list(pool: &PgPool, user_id: Option<i64>) -> Result<Vec<Token>> {
    Ok(sqlx::query_as!(
        TokenRow,
        r#"SELECT t.id, t.user_id, u.username::text AS "username!", t.name, t.prefix, t.scopes,
                  t.account_ids, t.expires_at, t.revoked_at, t.last_used_at, t.last_used_ip,
                  t.created_at
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           WHERE ($1::bigint IS NULL OR t.user_id = $1)
           ORDER BY t.created_at DESC, t.id DESC"#,
        user_id
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Token::from)
    .collect())
}

/// The active token whose text is `secret`, noting its use (at most once a minute, so a busy
/// script does not write a row per request). `None` for unknown, revoked and expired tokens,
/// and for tokens of disabled users.
pub async fn authenticate(pool: &PgPool, secret: &str, ip: &str) -> Result<Option<Token>> {
    if !secret.starts_with(PREFIX) || secret.len() > 200 {
        return Ok(None);
    }
    let row = sqlx::query_as!(
        TokenRow,
        r#"SELECT t.id, t.user_id, u.username::text AS "username!", t.name, t.prefix, t.scopes,
                  t.account_ids, t.expires_at, t.revoked_at, t.last_used_at, t.last_used_ip,
                  t.created_at
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           WHERE t.token_hash = $1 AND t.revoked_at IS NULL
             AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.enabled"#,
        hash(secret)
    )
    .fetch_optional(pool)
    .await?;
    let Some(token) = row.map(Token::from) else {
        return Ok(None);
    };
    sqlx::query!(
        "UPDATE api_tokens SET last_used_at = now(), last_used_ip = $2
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'
                            OR last_used_ip <> $2)",
        token.id,
        ip
    )
    .execute(pool)
    .await?;
    Ok(Some(token))
}

/// Revokes token `id`. With `owner = Some(user)`, only that user's token: anyone else's is
/// "not found". Revoking twice is harmless.
pub async fn revoke(pool: &PgPool, actor: &Actor, id: i64, owner: Option<i64>) -> Result<()> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query!(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)
         RETURNING user_id, name",
        id,
        owner
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::TokenRevoke)
            .target(Target::User(found.user_id))
            .details(serde_json::json!({ "token": id, "name": found.name })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_prefix_and_256_random_bits() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 43);
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 64);
    }

    #[test]
    fn scopes_parse_strictly() {
        assert_eq!(
            Scope::parse_list("mail:export, mail:read,mail:read").unwrap(),
            vec![Scope::MailRead, Scope::MailExport]
        );
        assert!(Scope::parse_list("mail:write").is_err());
    }

    #[test]
    fn rights_never_exceed_the_user_or_the_token() {
        let token = Token {
            id: 1,
            user_id: 1,
            username: "a".into(),
            name: "t".into(),
            prefix: String::new(),
            scopes: vec![Scope::MailRead],
            account_ids: Some(vec![1, 2]),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            last_used_ip: String::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let user = PermissionSet::from_names(["view_mail", "manage_users", "export_mail"]);
        let (p, g) = token.rights(&user, &Grants::Accounts(vec![2, 3]));
        assert!(p.has(Permission::ViewMail));
        assert!(!p.has(Permission::ExportMail));
        assert!(!p.has(Permission::ManageUsers));
        assert_eq!(g, Grants::Accounts(vec![2]));
        let (p, g) = token.rights(&PermissionSet::default(), &Grants::All);
        assert!(!p.has(Permission::ViewMail));
        assert_eq!(g, Grants::Accounts(vec![1, 2]));
    }
}
