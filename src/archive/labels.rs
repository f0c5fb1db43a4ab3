//! Message labels (Gmail labels; IMAP X-GM-LABELS): a message carries label ids in
//! `messages.labels`, and `account_labels` names them per account, so a renamed label needs no
//! rewrite of its messages. Shown as tags; searched with `label:NAME`.

use sqlx::PgConnection;

use crate::error::Result;

/// A label as the source names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelName {
    pub id: String,
    pub name: String,
    /// `system` (INBOX, SENT, ...) or `user`.
    pub kind: String,
}

/// Makes the account's label names what the source reports now.
pub async fn replace(tx: &mut PgConnection, account_id: i64, labels: &[LabelName]) -> Result<()> {
    let ids: Vec<&str> = labels.iter().map(|l| l.id.as_str()).collect();
    let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
    let kinds: Vec<&str> = labels.iter().map(|l| l.kind.as_str()).collect();
    sqlx::query!(
        "DELETE FROM account_labels WHERE account_id = $1 AND label_id <> ALL($2::text[])",
        account_id,
        &ids as &[&str],
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO account_labels (account_id, label_id, name, kind)
         SELECT $1, t.id, t.name, t.kind FROM unnest($2::text[], $3::text[], $4::text[])
             AS t(id, name, kind)
         ON CONFLICT (account_id, label_id) DO UPDATE SET name = excluded.name, kind = excluded.kind",
        account_id,
        &ids as &[&str],
        &names as &[&str],
        &kinds as &[&str],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A message's labels by name (the id where the account names none), system labels first.
pub async fn of_message(conn: &mut PgConnection, message_id: i64) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT coalesce(a.name, l.id) AS "name!"
           FROM messages m CROSS JOIN LATERAL unnest(m.labels) AS l(id)
           LEFT JOIN account_labels a ON a.account_id = m.account_id AND a.label_id = l.id
           WHERE m.id = $1
           ORDER BY (a.kind = 'system') DESC NULLS LAST, lower(coalesce(a.name, l.id))"#,
        message_id
    )
    .fetch_all(&mut *conn)
    .await?)
}
