//! Reading the audit log: filtered, newest first, keyset-paginated; and CSV export.

use sqlx::{PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::chain::Row;
use crate::error::Result;

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

/// One CSV field: quoted, and with a leading `'` when a spreadsheet would read it as a formula.
pub fn csv_field(value: &str) -> String {
    let neutralised = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    format!("\"{}\"", neutralised.replace('"', "\"\""))
}

pub const CSV_HEADER: &str = "id,at,username,ip,user_agent,action,target,details,hash\r\n";

pub fn csv_line(row: &Row) -> String {
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
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_look_like_formulas_are_neutralised() {
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+1"), "\"'+1\"");
        assert_eq!(csv_field("-1"), "\"'-1\"");
        assert_eq!(csv_field("@SUM"), "\"'@SUM\"");
        assert_eq!(csv_field("alice"), "\"alice\"");
    }
}
