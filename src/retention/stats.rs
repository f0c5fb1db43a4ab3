//! Deletion statistics: how much mail left, per account, month and cause.

use sqlx::PgPool;
use time::Date;

use super::remove::Cause;
use crate::auth::Grants;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct StatRow {
    pub account_name: String,
    pub month: Date,
    pub cause: String,
    pub messages: i64,
    pub bytes: i64,
}

impl StatRow {
    pub fn cause_label(&self) -> &'static str {
        Cause::ALL
            .into_iter()
            .find(|c| c.as_str() == self.cause)
            .map_or("Other", Cause::label)
    }
}

/// Newest month first; only accounts `grants` allows.
pub async fn by_account_month(pool: &PgPool, grants: &Grants) -> Result<Vec<StatRow>> {
    Ok(sqlx::query_as!(
        StatRow,
        r#"SELECT a.name::text AS "account_name!", s.month, s.cause, s.messages, s.bytes
           FROM deletion_stats s JOIN accounts a ON a.id = s.account_id
           WHERE ($1::bigint[] IS NULL OR s.account_id = ANY($1))
           ORDER BY s.month DESC, a.name, s.cause"#,
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?)
}

/// The statistics as CSV (account, month, cause, messages, bytes).
pub fn to_csv(rows: &[StatRow]) -> String {
    let mut out = String::from("account,month,cause,messages,bytes\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            csv_field(&r.account_name),
            r.month,
            r.cause,
            r.messages,
            r.bytes
        ));
    }
    out
}

/// Quotes a field when needed, and defuses spreadsheet formulas (`=`, `+`, `-`, `@`).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
