//! Per-user archive access: which archive accounts a reader may see.
//!
//! **Every query that reads mail (or anything belonging to an archive account) must apply a
//! [`Grants`].** Load it once per request (the web layer's `CurrentUser` carries it) and either
//! push it into a [`sqlx::QueryBuilder`]:
//!
//! ```ignore
//! let mut qb = QueryBuilder::new("SELECT m.id, m.subject FROM messages m WHERE ");
//! grants.push_filter(&mut qb, "m.account_id");
//! qb.push(" AND m.received_at > ").push_bind(since);
//! ```
//!
//! or bind [`Grants::as_bind`] in static SQL:
//!
//! ```ignore
//! sqlx::query("SELECT … FROM messages WHERE ($1::bigint[] IS NULL OR account_id = ANY($1))")
//!     .bind(grants.as_bind())
//! ```
//!
//! Administrators and Auditors (roles with `all_accounts`) get [`Grants::All`]; everyone else
//! sees only the accounts listed in `user_accounts` — nothing until an administrator grants it.

use sqlx::{PgExecutor, Postgres, QueryBuilder};

use crate::error::Result;

/// Which archive accounts a user may read: all of them, or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grants {
    /// Every archive account, present and future.
    All,
    /// Only these account ids (possibly none).
    Accounts(Vec<i64>),
}

impl Grants {
    /// Loads the grants of `user_id`: `All` when any of their roles has `all_accounts`.
    pub async fn load(db: &sqlx::PgPool, user_id: i64) -> Result<Self> {
        let all: bool = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
             WHERE ur.user_id = $1 AND r.all_accounts) AS "all!""#,
            user_id,
        )
        .fetch_one(db)
        .await?;
        if all {
            return Ok(Grants::All);
        }
        let ids = sqlx::query_scalar!(
            "SELECT account_id FROM user_accounts WHERE user_id = $1 ORDER BY account_id",
            user_id,
        )
        .fetch_all(db)
        .await?;
        Ok(Grants::Accounts(ids))
    }

    /// Appends a boolean SQL condition restricting `column` (an account id column such as
    /// `m.account_id`) to what these grants allow. `column` must be a trusted identifier from
    /// code, never user input.
    pub fn push_filter(&self, qb: &mut QueryBuilder<'_, Postgres>, column: &str) {
        match self {
            Grants::All => {
                qb.push("TRUE");
            }
            Grants::Accounts(ids) => {
                qb.push(column)
                    .push(" = ANY(")
                    .push_bind(ids.clone())
                    .push(")");
            }
        }
    }

    /// For `($1::bigint[] IS NULL OR account_id = ANY($1))`: `None` means every account.
    /// The granted account ids, borrowed; `None` for all accounts. For `query!` parameters.
    pub fn as_ids(&self) -> Option<&[i64]> {
        match self {
            Grants::All => None,
            Grants::Accounts(ids) => Some(ids),
        }
    }

    pub fn as_bind(&self) -> Option<Vec<i64>> {
        match self {
            Grants::All => None,
            Grants::Accounts(ids) => Some(ids.clone()),
        }
    }

    /// These grants cut down to `to` (an API token's archive restriction): never more than
    /// either. `None` leaves them as they are.
    pub fn restrict(&self, to: Option<&[i64]>) -> Grants {
        match (self, to) {
            (g, None) => g.clone(),
            (Grants::All, Some(ids)) => Grants::Accounts(ids.to_vec()),
            (Grants::Accounts(mine), Some(ids)) => {
                Grants::Accounts(mine.iter().copied().filter(|a| ids.contains(a)).collect())
            }
        }
    }

    /// True when these grants include `account_id`.
    pub fn allows(&self, account_id: i64) -> bool {
        match self {
            Grants::All => true,
            Grants::Accounts(ids) => ids.contains(&account_id),
        }
    }
}

/// An archive account as a reader sees it in lists.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VisibleAccount {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
}

/// The archive accounts `grants` allows, by name. The reference use of [`Grants::push_filter`].
pub async fn visible_accounts(
    db: impl PgExecutor<'_>,
    grants: &Grants,
) -> Result<Vec<VisibleAccount>> {
    let mut qb = QueryBuilder::new("SELECT a.id, a.name, a.kind, a.enabled FROM accounts a WHERE ");
    grants.push_filter(&mut qb, "a.id");
    qb.push(" ORDER BY a.name");
    Ok(qb.build_query_as().fetch_all(db).await?)
}

/// One account if `grants` allows it; `None` both when it does not exist and when it is not
/// granted, so a reader cannot probe for accounts they may not see.
pub async fn visible_account(
    db: impl PgExecutor<'_>,
    grants: &Grants,
    id: i64,
) -> Result<Option<VisibleAccount>> {
    Ok(sqlx::query_as!(
        VisibleAccount,
        "SELECT a.id, a.name, a.kind, a.enabled FROM accounts a
         WHERE a.id = $1 AND ($2::bigint[] IS NULL OR a.id = ANY($2))",
        id,
        grants.as_ids(),
    )
    .fetch_optional(db)
    .await?)
}
