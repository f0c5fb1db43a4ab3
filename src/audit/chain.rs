//! The hash chain: how a row's hash is computed and how the whole log is checked.

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::error::Result;

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub at: OffsetDateTime,
    pub user_id: Option<i64>,
    pub username: String,
    pub ip: String,
    pub user_agent: String,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// PostgreSQL keeps microseconds; hashing the same precision makes the stored row re-hashable.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.unix_timestamp_nanos() / 1000;
    OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).unwrap_or(t)
}

/// SHA-256 (hex) of a canonical JSON array of the row's content and the previous hash. JSON
/// objects inside `details` serialise with sorted keys (serde_json's default map), so the
/// jsonb round trip gives the same bytes.
pub fn hash_row(row: &Row) -> String {
    let canonical = serde_json::json!([
        "daygle-audit-v1",
        (row.at.unix_timestamp_nanos() / 1000).to_string(),
        row.user_id,
        row.username,
        row.ip,
        row.user_agent,
        row.action,
        row.target,
        row.details,
        row.prev_hash,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub id: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub rows: u64,
    pub broken: Option<BrokenLink>,
}

/// Walks the log in id order and stops at the first row whose link or hash is wrong.
pub async fn verify(pool: &PgPool) -> Result<Verification> {
    let mut rows = sqlx::query_as::<_, Row>(
        "SELECT id, at, user_id, username, ip, user_agent, action, target, details, prev_hash, hash
         FROM audit_log ORDER BY id",
    )
    .fetch(pool);
    let mut expected_prev = GENESIS.to_string();
    let mut count = 0u64;
    while let Some(row) = rows.try_next().await? {
        count += 1;
        if row.prev_hash != expected_prev {
            return Ok(Verification {
                rows: count,
                broken: Some(BrokenLink {
                    id: row.id,
                    reason: "its prev_hash does not match the hash of the row before it (a row was removed or changed)".into(),
                }),
            });
        }
        if hash_row(&row) != row.hash {
            return Ok(Verification {
                rows: count,
                broken: Some(BrokenLink {
                    id: row.id,
                    reason: "its content does not match its hash (the row was changed)".into(),
                }),
            });
        }
        expected_prev = row.hash;
    }
    Ok(Verification {
        rows: count,
        broken: None,
    })
}
