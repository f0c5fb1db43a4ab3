//! Message labels (Gmail labels; IMAP X-GM-LABELS): a message carries label ids in
//! `messages.labels`, and `account_labels` names them per account, so a renamed label needs no
//! rewrite of its messages. Shown as tags by name (system labels by a friendly name, raw ids
//! never); searched with `label:NAME`.

use std::collections::HashMap;

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

/// Gmail's system labels (API ids and their IMAP `X-GM-LABELS` spellings) and the names people
/// know them by, in the order tags show them. `None`: a reading state, not a tag.
const SYSTEM: &[(&str, Option<&str>)] = &[
    ("INBOX", Some("Inbox")),
    ("\\Inbox", Some("Inbox")),
    ("IMPORTANT", Some("Important")),
    ("\\Important", Some("Important")),
    ("STARRED", Some("Starred")),
    ("\\Starred", Some("Starred")),
    ("SENT", Some("Sent")),
    ("\\Sent", Some("Sent")),
    ("DRAFT", Some("Drafts")),
    ("\\Draft", Some("Drafts")),
    ("CHAT", Some("Chat")),
    ("SPAM", Some("Spam")),
    ("\\Spam", Some("Spam")),
    ("TRASH", Some("Trash")),
    ("\\Trash", Some("Trash")),
    ("CATEGORY_PERSONAL", Some("Personal")),
    ("CATEGORY_SOCIAL", Some("Social")),
    ("CATEGORY_PROMOTIONS", Some("Promotions")),
    ("CATEGORY_UPDATES", Some("Updates")),
    ("CATEGORY_FORUMS", Some("Forums")),
    ("UNREAD", None),
];

/// What a tag shows for label `id` (named `name` by its account, if at all): system labels by
/// their friendly name, others by their name; None for a reading state (UNREAD) and for an id
/// nobody named (a raw id means nothing to a reader).
pub fn display_name(id: &str, name: Option<&str>) -> Option<String> {
    match SYSTEM.iter().find(|(s, _)| *s == id) {
        Some((_, friendly)) => friendly.map(str::to_string),
        None => name.map(str::to_string),
    }
}

/// Whether `id` is one of Gmail's system labels (API id or IMAP spelling), named by this module.
pub fn is_system(id: &str) -> bool {
    SYSTEM.iter().any(|(s, _)| *s == id)
}

/// The system label ids a person means by `typed` (its friendly name or its id, any case):
/// `sent` → SENT and \Sent, `promotions` → CATEGORY_PROMOTIONS.
pub fn system_ids_called(typed: &str) -> Vec<String> {
    let typed = typed.trim_start_matches('\\');
    SYSTEM
        .iter()
        .filter(|(id, friendly)| {
            friendly.is_some_and(|f| {
                f.eq_ignore_ascii_case(typed)
                    || id.trim_start_matches('\\').eq_ignore_ascii_case(typed)
            })
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Tags in display order: system labels in [`SYSTEM`] order, then the rest alphabetically;
/// each name once.
fn tags(labels: Vec<(String, Option<String>)>) -> Vec<String> {
    let mut shown: Vec<(usize, String)> = labels
        .iter()
        .filter_map(|(id, name)| {
            let rank = SYSTEM
                .iter()
                .position(|(s, _)| s == id)
                .unwrap_or(SYSTEM.len());
            display_name(id, name.as_deref()).map(|n| (rank, n))
        })
        .collect();
    shown.sort_by(|(ra, a), (rb, b)| {
        ra.cmp(rb)
            .then_with(|| a.to_lowercase().cmp(&b.to_lowercase()))
    });
    let mut seen = std::collections::HashSet::new();
    shown
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| seen.insert(n.clone()))
        .collect()
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

/// Adds label names the source reported with messages, keeping every other name the account
/// has (a source that sees labels only on messages, like Gmail IMAP, never lists them all).
pub async fn add(tx: &mut PgConnection, account_id: i64, labels: &[LabelName]) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = labels.iter().map(|l| l.id.as_str()).collect();
    let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
    let kinds: Vec<&str> = labels.iter().map(|l| l.kind.as_str()).collect();
    sqlx::query!(
        "INSERT INTO account_labels (account_id, label_id, name, kind)
         SELECT DISTINCT ON (t.id) $1, t.id, t.name, t.kind
         FROM unnest($2::text[], $3::text[], $4::text[]) AS t(id, name, kind)
         ON CONFLICT (account_id, label_id) DO UPDATE SET name = excluded.name, kind = excluded.kind
         WHERE account_labels.name <> excluded.name OR account_labels.kind <> excluded.kind",
        account_id,
        &ids as &[&str],
        &names as &[&str],
        &kinds as &[&str],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A message's tags (see [`display_name`]), system labels first.
pub async fn of_message(conn: &mut PgConnection, message_id: i64) -> Result<Vec<String>> {
    Ok(of_messages(&mut *conn, &[message_id])
        .await?
        .remove(&message_id)
        .unwrap_or_default())
}

/// The tags of each of these messages (a message without tags is left out).
pub async fn of_messages<'e>(
    db: impl sqlx::PgExecutor<'e>,
    message_ids: &[i64],
) -> Result<HashMap<i64, Vec<String>>> {
    if message_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query!(
        r#"SELECT m.id AS "message_id!", l.id AS "label_id!", a.name AS "name?"
           FROM messages m CROSS JOIN LATERAL unnest(m.labels) AS l(id)
           LEFT JOIN account_labels a ON a.account_id = m.account_id AND a.label_id = l.id
           WHERE m.id = ANY($1::bigint[])"#,
        message_ids
    )
    .fetch_all(db)
    .await?;
    let mut by_message: HashMap<i64, Vec<(String, Option<String>)>> = HashMap::new();
    for r in rows {
        by_message
            .entry(r.message_id)
            .or_default()
            .push((r.label_id, r.name));
    }
    Ok(by_message
        .into_iter()
        .map(|(id, labels)| (id, tags(labels)))
        .filter(|(_, t)| !t.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: &str, name: Option<&str>) -> (String, Option<String>) {
        (id.to_string(), name.map(str::to_string))
    }

    #[test]
    fn tags_show_names_never_raw_ids_system_labels_first() {
        let shown = tags(vec![
            l("Label_2", Some("invoices")),
            l("UNREAD", Some("UNREAD")),
            l("Label_9", None),
            l("SENT", Some("SENT")),
            l("INBOX", Some("INBOX")),
            l("Label_1", Some("Projects/Apollo")),
            l("CATEGORY_PROMOTIONS", Some("CATEGORY_PROMOTIONS")),
            l("\\Inbox", None),
        ]);
        assert_eq!(
            shown,
            ["Inbox", "Sent", "Promotions", "invoices", "Projects/Apollo"]
        );
    }

    #[test]
    fn system_labels_are_found_by_friendly_name_or_id_in_any_case() {
        assert_eq!(system_ids_called("sent"), ["SENT", "\\Sent"]);
        assert_eq!(system_ids_called("INBOX"), ["INBOX", "\\Inbox"]);
        assert_eq!(system_ids_called("\\Inbox"), ["INBOX", "\\Inbox"]);
        assert_eq!(system_ids_called("Promotions"), ["CATEGORY_PROMOTIONS"]);
        assert!(system_ids_called("unread").is_empty());
        assert!(system_ids_called("Invoices").is_empty());
    }
}
