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

/// Up to `limit` rows matching `filter`, newest first.
pub async fn list(pool: &PgPool, filter: &Filter, limit: i64) -> Result<Vec<Row>> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT id, at, user_id, username, ip, user_agent, action, target, details, prev_hash, hash
         FROM audit_log WHERE TRUE",
    );
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
