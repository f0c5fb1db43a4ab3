//! Deletion statistics: how much mail left, per account, month and cause. Months are the
//! reader's calendar months (their time zone, as in every report); the counts are kept per
//! quarter hour so any zone's months can be cut from them.

use sqlx::PgPool;

use super::remove::Cause;
use crate::auth::Grants;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct StatRow {
    pub account_name: String,
    /// `2026-11`, in the time zone the rows were read for.
    pub month: String,
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

/// Newest month first, months in `timezone` (an IANA name); only accounts `grants` allows.
pub async fn by_account_month(
    pool: &PgPool,
    grants: &Grants,
    timezone: &str,
) -> Result<Vec<StatRow>> {
    Ok(sqlx::query_as!(
        StatRow,
        r#"SELECT a.name::text AS "account_name!",
                  to_char(s.bucket AT TIME ZONE $2, 'YYYY-MM') AS "month!", s.cause,
                  sum(s.messages)::bigint AS "messages!", sum(s.bytes)::bigint AS "bytes!"
           FROM deletion_stats s JOIN accounts a ON a.id = s.account_id
           WHERE ($1::bigint[] IS NULL OR s.account_id = ANY($1))
           GROUP BY 1, 2, 3
           ORDER BY 2 DESC, 1, 3"#,
        grants.as_ids(),
        timezone,
    )
    .fetch_all(pool)
    .await?)
}

/// The statistics as CSV (account, month, cause, messages, bytes, and the months' time zone).
pub fn to_csv(rows: &[StatRow], timezone: &str) -> String {
    let mut out = String::from("account,month,cause,messages,bytes,time_zone\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            csv_field(&r.account_name),
            r.month,
            r.cause,
            r.messages,
            r.bytes,
            csv_field(timezone),
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
