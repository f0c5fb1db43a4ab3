//! The record of infected mail refused with `clamav.action = reject`: the facts about each
//! message (never its bytes), so an administrator can tell a sender what was refused and why.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::facts::{MessageFacts, Source};
use crate::error::{Error, Result};

/// One refused message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub id: i64,
    pub account_id: Option<i64>,
    pub folder: String,
    pub uidvalidity: Option<i64>,
    pub uid: Option<i64>,
    pub sha256: String,
    pub size: i64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub sent_at: Option<OffsetDateTime>,
    pub virus_name: String,
    pub source: String,
    pub created_at: OffsetDateTime,
}

/// Records a refusal. Returns false when this server message was already recorded (a replay).
pub async fn record(
    conn: &mut PgConnection,
    facts: &MessageFacts,
    virus_name: &str,
    source: Source,
) -> Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO scan_rejections (account_id, folder, uidvalidity, uid, sha256, size, \
             message_id, subject, from_addr, sent_at, virus_name, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (account_id, folder, uidvalidity, uid) WHERE uid IS NOT NULL DO NOTHING",
        facts.account_id,
        facts.folder,
        facts.uidvalidity,
        facts.uid,
        facts.sha256,
        facts.size,
        facts.message_id,
        facts.subject,
        facts.from,
        facts.date,
        virus_name,
        source.as_str(),
    )
    .execute(conn)
    .await
    .map_err(|e| Error::context("record a rejected message", e))?;
    if done.rows_affected() > 0 {
        tracing::warn!(account_id = ?facts.account_id, virus = virus_name, sha256 = %facts.sha256,
            "infected message rejected");
    }
    Ok(done.rows_affected() > 0)
}

/// The most recent refusals, newest first.
pub async fn recent(conn: &mut PgConnection, limit: i64) -> Result<Vec<Rejection>> {
    sqlx::query_as!(
        Rejection,
        "SELECT id, account_id, folder, uidvalidity, uid, sha256, size, message_id, subject, \
             from_addr, sent_at, virus_name, source, created_at \
         FROM scan_rejections ORDER BY created_at DESC, id DESC LIMIT $1",
        limit.max(1),
    )
    .fetch_all(conn)
    .await
    .map_err(|e| Error::context("list rejected messages", e))
}
