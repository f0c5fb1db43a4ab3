//! Reading the audit log: filtered, newest first, keyset-paginated; and CSV export.

use sqlx::{PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::chain::Row;
use crate::error::{Error, Result};
use crate::render::csv::{spreadsheet_safe, writer};

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Exact username (case-insensitive).
    pub username: Option<String>,
    /// Action prefix, e.g. `login` matches `login.success` and `login.failure`.
    pub action: Option<String>,
    pub from: Option<OffsetDateTime>,
    /// Exclusive upper bound.
    pub until: Option<OffsetDateTime>,
    /// Keyset cursor: only rows with a smaller id.
    pub before_id: Option<i64>,
}

/// Which audit rows a reader may see. A reader whose grants cover every archive sees every
/// row. A reader with grants to some archives sees the rows about any of those archives
/// (including rows that also concern others: an auditor of one archive must see every read
/// of its mail), rows about every archive, and their own rows — not rows that concern no
/// archive at all (other people's sign-ins, user and role administration, settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Everything,
    Archives {
        accounts: Vec<i64>,
        own_user_id: i64,
    },
}

impl Scope {
    /// The scope of a user with `grants`.
    pub fn of(grants: &crate::auth::Grants, user_id: i64) -> Self {
        match grants {
            crate::auth::Grants::All => Scope::Everything,
            crate::auth::Grants::Accounts(ids) => Scope::Archives {
                accounts: ids.clone(),
                own_user_id: user_id,
            },
        }
    }
}

/// Up to `limit` rows matching `filter` that `scope` may see, newest first.
pub async fn list(pool: &PgPool, scope: &Scope, filter: &Filter, limit: i64) -> Result<Vec<Row>> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT id, at, user_id, username, ip, user_agent, action, target, details, prev_hash, hash
         FROM audit_log WHERE TRUE",
    );
    if let Scope::Archives {
        accounts,
        own_user_id,
    } = scope
    {
        qb.push(" AND (all_accounts OR accounts && ")
            .push_bind(accounts.clone())
            .push("::bigint[] OR user_id = ")
            .push_bind(*own_user_id)
            .push(")");
    }
    if let Some(u) = &filter.username {
        qb.push(" AND lower(username) = lower(")
            .push_bind(u.clone())
            .push(")");
    }
    if let Some(a) = &filter.action {
        let escaped = a
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        qb.push(" AND action LIKE ")
            .push_bind(format!("{escaped}%"));
    }
    if let Some(from) = filter.from {
        qb.push(" AND at >= ").push_bind(from);
    }
    if let Some(until) = filter.until {
        qb.push(" AND at < ").push_bind(until);
    }
    if let Some(before) = filter.before_id {
        qb.push(" AND id < ").push_bind(before);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    Ok(qb.build_query_as().fetch_all(pool).await?)
}

/// The rows as CSV (RFC 4180: CRLF line ends), with a header line; cells a
/// spreadsheet would run as formulas are neutralised.
pub fn csv(rows: &[Row]) -> Result<String> {
    let write_err = |e| Error::context("write the audit CSV", e);
    let mut out = writer(Vec::new(), true);
    out.write_record([
        "id",
        "at",
        "username",
        "ip",
        "user_agent",
        "action",
        "target",
        "details",
        "hash",
    ])
    .map_err(write_err)?;
    for row in rows {
        let at = row
            .at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let fields = [
            row.id.to_string(),
            at,
            row.username.clone(),
            row.ip.clone(),
            row.user_agent.clone(),
            row.action.clone(),
            row.target.clone(),
            row.details.to_string(),
            row.hash.clone(),
        ];
        out.write_record(fields.iter().map(|f| spreadsheet_safe(f).into_owned()))
            .map_err(write_err)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| Error::context("write the audit CSV", e.into_error()))?;
    String::from_utf8(bytes).map_err(|e| Error::context("write the audit CSV", e))
}
