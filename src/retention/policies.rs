//! Retention policies: which mail may leave the archive, and after how long.

use serde_json::json;
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;

use super::scope::{Scope, parse_query};
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::auth::Grants;
use crate::error::{Error, Result};

/// What a policy's age is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeBasis {
    /// The Date header, falling back to the server's date, then the archive date.
    Message,
    /// When the message entered the archive.
    Archived,
}

impl AgeBasis {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "message" => Ok(AgeBasis::Message),
            "archived" => Ok(AgeBasis::Archived),
            _ => Err(Error::invalid("age_basis", "must be message or archived")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgeBasis::Message => "message",
            AgeBasis::Archived => "archived",
        }
    }

    /// The `messages m` column the age is measured on (trusted text from code).
    pub fn column(self) -> &'static str {
        match self {
            AgeBasis::Message => "m.sort_date",
            AgeBasis::Archived => "m.archived_at",
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct Policy {
    pub id: i64,
    pub name: String,
    pub all_accounts: bool,
    /// The accounts in scope that the reader of this list may read.
    pub account_ids: Vec<i64>,
    pub account_names: Vec<String>,
    /// Accounts in scope that the reader of this list may not read (named nowhere).
    pub hidden_accounts: i64,
    pub folder_pattern: Option<String>,
    pub query: Option<String>,
    pub keep_days: i32,
    pub age_basis: String,
    pub enabled: bool,
    pub created_by: String,
    pub updated_at: OffsetDateTime,
}

impl Policy {
    /// Whether a user with `grants` may change or remove this policy: one that reaches mail
    /// they cannot read (every account, or an account not granted to them) is out of reach.
    pub fn editable_by(&self, grants: &Grants) -> bool {
        *grants == Grants::All || (!self.all_accounts && self.hidden_accounts == 0)
    }

    pub fn basis(&self) -> AgeBasis {
        AgeBasis::parse(&self.age_basis).unwrap_or(AgeBasis::Message)
    }

    /// The messages this policy applies to, whatever their age.
    pub fn scope(&self) -> Result<Scope> {
        Ok(Scope {
            accounts: (!self.all_accounts).then(|| self.account_ids.clone()),
            folder_pattern: self.folder_pattern.clone(),
            query: parse_query("query", self.query.as_deref())?,
            from_day: None,
            to_day: None,
        })
    }

    /// Messages measured before this instant have outlived the policy at `as_of`.
    pub fn cutoff(&self, as_of: OffsetDateTime) -> OffsetDateTime {
        as_of - time::Duration::days(i64::from(self.keep_days))
    }

    /// "3 accounts", "all accounts", with folder and query when set: for lists.
    pub fn scope_text(&self) -> String {
        let mut parts = vec![if self.all_accounts {
            "all accounts".to_string()
        } else if self.account_names.is_empty() && self.hidden_accounts == 0 {
            "no accounts (deleted)".to_string()
        } else if self.hidden_accounts > 0 {
            let mut names = self.account_names.clone();
            names.push(format!("{} other accounts", self.hidden_accounts));
            names.join(", ")
        } else {
            self.account_names.join(", ")
        }];
        if let Some(f) = &self.folder_pattern {
            parts.push(format!("folder {f}"));
        }
        if let Some(q) = &self.query {
            parts.push(format!("query {q}"));
        }
        parts.join("; ")
    }
}

/// The policies that reach mail `grants` allows (`None`: every policy), one (`id`) or all, by
/// name, with account ids and names limited to the granted ones, so a list never names other
/// accounts.
async fn fetch(db: impl PgExecutor<'_>, grants: &Grants, id: Option<i64>) -> Result<Vec<Policy>> {
    Ok(sqlx::query_as!(
        Policy,
        r#"SELECT p.id, p.name AS "name!", p.all_accounts,
            coalesce(array_agg(a.id ORDER BY a.name)
                FILTER (WHERE a.id IS NOT NULL AND ($1::bigint[] IS NULL OR a.id = ANY($1))), '{}') AS "account_ids!",
            coalesce(array_agg(a.name::text ORDER BY a.name)
                FILTER (WHERE a.id IS NOT NULL AND ($1::bigint[] IS NULL OR a.id = ANY($1))), '{}') AS "account_names!",
            count(a.id) FILTER (WHERE NOT ($1::bigint[] IS NULL OR a.id = ANY($1))) AS "hidden_accounts!",
            p.folder_pattern, p.query, p.keep_days, p.age_basis, p.enabled, p.created_by, p.updated_at
         FROM retention_policies p
         LEFT JOIN retention_policy_accounts pa ON pa.policy_id = p.id
         LEFT JOIN accounts a ON a.id = pa.account_id
         WHERE $2::bigint IS NULL OR p.id = $2
         GROUP BY p.id
         -- keeps policies that cover every account or at least one granted account
         HAVING p.all_accounts OR $1::bigint[] IS NULL
            OR count(a.id) FILTER (WHERE a.id = ANY($1)) > 0
         ORDER BY p.name"#,
        grants.as_ids() as Option<&[i64]>,
        id,
    )
    .fetch_all(db)
    .await?)
}

/// The policies that reach mail `grants` allows, by name.
pub async fn list(db: impl PgExecutor<'_>, grants: &Grants) -> Result<Vec<Policy>> {
    fetch(db, grants, None).await
}

/// One policy, if it reaches mail `grants` allows (otherwise `NotFound`, as if absent).
pub async fn get(db: impl PgExecutor<'_>, grants: &Grants, id: i64) -> Result<Policy> {
    fetch(db, grants, Some(id))
        .await?
        .pop()
        .ok_or(Error::NotFound)
}

/// `get` for a change: the policy must be within the actor's reach (see [`Policy::editable_by`]).
async fn get_editable(conn: &mut PgConnection, grants: &Grants, id: i64) -> Result<Policy> {
    let policy = get(&mut *conn, grants, id).await?;
    if !policy.editable_by(grants) {
        return Err(Error::Forbidden);
    }
    Ok(policy)
}

/// A policy as someone entered it.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub name: String,
    /// Empty: every account.
    pub account_ids: Vec<i64>,
    pub folder_pattern: Option<String>,
    pub query: Option<String>,
    pub keep_days: i32,
    pub age_basis: String,
    pub enabled: bool,
}

impl PolicyInput {
    fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(Error::invalid(
                "name",
                "is required (at most 100 characters)",
            ));
        }
        if self.keep_days < 1 {
            return Err(Error::invalid("keep_days", "must be at least 1 day"));
        }
        AgeBasis::parse(&self.age_basis)?;
        parse_query("query", self.query.as_deref())?;
        Ok(())
    }
}

fn blank_to_none(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Creates a policy (`id` None) or replaces one, with its audit row.
///
/// A permission is a ceiling: a policy for every account needs a user who reads every account,
/// and each account in scope must be granted to the actor (checked in the INSERT's SQL).
pub async fn save(
    pool: &PgPool,
    actor: &Actor,
    grants: &Grants,
    id: Option<i64>,
    input: &PolicyInput,
) -> Result<i64> {
    input.check()?;
    check_reach(grants, &input.account_ids)?;
    let folder = blank_to_none(&input.folder_pattern);
    let query = blank_to_none(&input.query);
    let action = if id.is_some() {
        Action::RetentionPolicyUpdate
    } else {
        Action::RetentionPolicyCreate
    };
    let mut tx = pool.begin().await?;
    if let Some(id) = id {
        lock(&mut tx, id).await?;
        get_editable(&mut tx, grants, id).await?;
    }
    let id = match id {
        None => sqlx::query_scalar!(
            "INSERT INTO retention_policies
                 (name, all_accounts, folder_pattern, query, keep_days, age_basis, enabled, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            input.name.trim(),
            input.account_ids.is_empty(),
            folder,
            query,
            input.keep_days,
            input.age_basis,
            input.enabled,
            actor.username,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| name_taken(e, "a policy with this name exists"))?,
        Some(id) => {
            sqlx::query!(
                "UPDATE retention_policies SET name = $2, all_accounts = $3, folder_pattern = $4,
                     query = $5, keep_days = $6, age_basis = $7, enabled = $8
                 WHERE id = $1",
                id,
                input.name.trim(),
                input.account_ids.is_empty(),
                folder,
                query,
                input.keep_days,
                input.age_basis,
                input.enabled,
            )
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, "a policy with this name exists"))?;
            sqlx::query!(
                "DELETE FROM retention_policy_accounts WHERE policy_id = $1",
                id
            )
            .execute(&mut *tx)
                .await?;
            id
        }
    };
    insert_accounts(&mut tx, Owner::Policy(id), grants, &input.account_ids).await?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, action)
            .target(Target::RetentionPolicy(id))
            .details(json!({
                "name": input.name.trim(), "accounts": input.account_ids, "folder": folder,
                "query": query, "keep_days": input.keep_days, "age_basis": input.age_basis,
                "enabled": input.enabled,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Locks policy `id` for a change, before its reach is checked.
async fn lock(tx: &mut PgConnection, id: i64) -> Result<()> {
    sqlx::query_scalar!(
        "SELECT id FROM retention_policies WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(tx)
    .await?;
    Ok(())
}

pub async fn remove(pool: &PgPool, actor: &Actor, grants: &Grants, id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    lock(&mut tx, id).await?;
    get_editable(&mut tx, grants, id).await?;
    let name = sqlx::query_scalar!(
        r#"DELETE FROM retention_policies WHERE id = $1 RETURNING name AS "name!""#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::RetentionPolicyRemove)
            .target(Target::RetentionPolicy(id))
            .details(json!({ "name": name })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn id_by_name(pool: &PgPool, name: &str) -> Result<i64> {
    sqlx::query_scalar!("SELECT id FROM retention_policies WHERE name = $1", name)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)
}

/// An empty account list means every account: only for users who read every account.
pub(crate) fn check_reach(grants: &Grants, account_ids: &[i64]) -> Result<()> {
    if account_ids.is_empty() && *grants != Grants::All {
        return Err(Error::invalid(
            "account",
            "choose the archive accounts: only users who read every archive may cover all of them",
        ));
    }
    Ok(())
}

/// What [`insert_accounts`] links accounts to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    Policy(i64),
    Hold(i64),
}

/// Links `owner` to the accounts `ids`, only those `grants` allows (in the SQL); any other id
/// (missing or not granted, indistinguishably) refuses the whole change.
pub(crate) async fn insert_accounts(
    tx: &mut PgConnection,
    owner: Owner,
    grants: &Grants,
    ids: &[i64],
) -> Result<()> {
    let mut wanted = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let grants = grants.as_ids();
    let linked = match owner {
        Owner::Policy(id) => {
            sqlx::query!(
                "INSERT INTO retention_policy_accounts (policy_id, account_id)
             SELECT $1, a.id FROM accounts a
             WHERE a.id = ANY($2) AND ($3::bigint[] IS NULL OR a.id = ANY($3))",
                id,
                &wanted,
                grants as Option<&[i64]>,
            )
            .execute(&mut *tx)
            .await?
        }
        Owner::Hold(id) => {
            sqlx::query!(
                "INSERT INTO legal_hold_accounts (hold_id, account_id)
             SELECT $1, a.id FROM accounts a
             WHERE a.id = ANY($2) AND ($3::bigint[] IS NULL OR a.id = ANY($3))",
                id,
                &wanted,
                grants as Option<&[i64]>,
            )
            .execute(&mut *tx)
            .await?
        }
    }
    .rows_affected();
    if linked != wanted.len() as u64 {
        return Err(Error::invalid("account", "no such archive account"));
    }
    Ok(())
}

/// A unique violation on a `name` column becomes a form error; anything else stays as it is.
pub(crate) fn name_taken(e: sqlx::Error, message: &str) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::invalid("name", message),
        _ => e.into(),
    }
}
