//! How much is archived: per account (messages, bytes, last successful sync) and overall
//! (storage after deduplication and compression), and what a new installation still lacks.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::auth::Grants;
use crate::error::Result;

/// One archive account with its counts, for the dashboard's table and the reader's list.
#[derive(Debug, Clone)]
pub struct AccountTotals {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub messages: i64,
    /// Sum of the archived messages' sizes (before deduplication).
    pub bytes: i64,
    pub last_success_at: Option<OffsetDateTime>,
    pub next_run_at: Option<OffsetDateTime>,
    pub consecutive_failures: i32,
}

/// Accounts `grants` allows, by name, with their message counts and sync times.
pub async fn per_account(pool: &PgPool, grants: &Grants) -> Result<Vec<AccountTotals>> {
    Ok(sqlx::query_as!(
        AccountTotals,
        r#"SELECT a.id, a.name, a.kind, a.enabled,
                  coalesce(m.messages, 0) AS "messages!", coalesce(m.bytes, 0) AS "bytes!",
                  w.last_success_at AS "last_success_at?", w.next_run_at AS "next_run_at?",
                  coalesce(w.consecutive_failures, 0) AS "consecutive_failures!"
           FROM accounts a
           LEFT JOIN (SELECT account_id, count(*) AS messages, sum(size)::bigint AS bytes
                      FROM messages GROUP BY account_id) m ON m.account_id = a.id
           LEFT JOIN workers w ON w.account_id = a.id
           WHERE ($1::bigint[] IS NULL OR a.id = ANY($1))
           ORDER BY a.name"#,
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?)
}

/// The whole archive's size.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    pub messages: i64,
    /// What the archived copies would take stored one by one.
    pub logical_bytes: i64,
    /// Distinct raw messages (each stored once) and their size before compression.
    pub blobs: i64,
    pub blob_bytes: i64,
    /// What the distinct messages take compressed: the bytes actually stored.
    pub stored_bytes: i64,
    pub database_bytes: i64,
}

pub async fn storage(pool: &PgPool) -> Result<Storage> {
    Ok(sqlx::query_as!(
        Storage,
        r#"SELECT (SELECT count(*) FROM messages) AS "messages!",
                  (SELECT coalesce(sum(size), 0)::bigint FROM messages) AS "logical_bytes!",
                  (SELECT count(*) FROM blobs) AS "blobs!",
                  (SELECT coalesce(sum(size), 0)::bigint FROM blobs) AS "blob_bytes!",
                  (SELECT coalesce(sum(octet_length(zstd)), 0)::bigint FROM blobs)
                    + (SELECT coalesce(sum(octet_length(zstd)), 0)::bigint FROM parts)
                    AS "stored_bytes!",
                  pg_database_size(current_database()) AS "database_bytes!""#,
    )
    .fetch_one(pool)
    .await?)
}

/// The first steps of a new installation and whether each is done.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub has_account: bool,
    pub has_synced: bool,
    pub has_other_users: bool,
}

impl Setup {
    pub fn complete(&self) -> bool {
        self.has_account && self.has_synced && self.has_other_users
    }
}

pub async fn setup(pool: &PgPool) -> Result<Setup> {
    Ok(sqlx::query_as!(
        Setup,
        r#"SELECT EXISTS (SELECT 1 FROM accounts) AS "has_account!",
                  EXISTS (SELECT 1 FROM workers WHERE last_success_at IS NOT NULL)
                    OR EXISTS (SELECT 1 FROM messages) AS "has_synced!",
                  (SELECT count(*) FROM users) > 1 AS "has_other_users!""#,
    )
    .fetch_one(pool)
    .await?)
}

/// A recently archived message, for the reader's dashboard.
#[derive(Debug, Clone)]
pub struct RecentMessage {
    pub id: i64,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub account_name: String,
    /// The message's own date; `None` for undated mail (shown as such, not as today).
    pub date: Option<OffsetDateTime>,
    pub archived_at: OffsetDateTime,
}

/// The `limit` messages most recently archived into accounts `grants` allows.
pub async fn recent(pool: &PgPool, grants: &Grants, limit: i64) -> Result<Vec<RecentMessage>> {
    Ok(sqlx::query_as!(
        RecentMessage,
        "SELECT m.id, m.subject, m.from_addr, a.name AS account_name, m.date, m.archived_at
         FROM messages m JOIN accounts a ON a.id = m.account_id
         WHERE ($1::bigint[] IS NULL OR m.account_id = ANY($1))
         ORDER BY m.archived_at DESC, m.id DESC LIMIT $2",
        grants.as_ids(),
        limit,
    )
    .fetch_all(pool)
    .await?)
}
