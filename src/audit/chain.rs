//! The hash chain: how a row's hash is computed and how the whole log is checked.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::seal::{self, AuditKey, Checkpoint};
use crate::error::Result;

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit row as stored (also read by the filtered listing, hence `FromRow`).
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
    /// The newest genuine seal: entries up to it are proven against the database owner.
    pub sealed: Option<Checkpoint>,
    /// Entries after the newest seal (covered by the plain hash chain only).
    pub unsealed: u64,
}

impl Verification {
    fn broken(rows: u64, id: i64, reason: impl Into<String>) -> Self {
        Self {
            rows,
            broken: Some(BrokenLink {
                id,
                reason: reason.into(),
            }),
            sealed: None,
            unsealed: 0,
        }
    }
}

/// Walks the log in id order and stops at the first row whose link, hash or seal is wrong.
/// Every seal must be genuine under `key` for the hash the walk computed; a `checkpoint` the
/// operator kept must still be among them.
pub async fn verify(
    pool: &PgPool,
    key: &AuditKey,
    checkpoint: Option<&Checkpoint>,
) -> Result<Verification> {
    let seals: BTreeMap<i64, (String, String)> = seal::all(pool)
        .await?
        .into_iter()
        .map(|(seq, hash, mac)| (seq, (hash, mac)))
        .collect();
    let mut rows = sqlx::query_as!(
        Row,
        "SELECT id, at, user_id, username, ip, user_agent, action, target, details, prev_hash, hash
         FROM audit_log ORDER BY id",
    )
    .fetch(pool);
    let mut expected_prev = GENESIS.to_string();
    let mut count = 0u64;
    let mut sealed: Option<Checkpoint> = None;
    let mut unsealed = 0u64;
    let mut seen_seals = 0usize;
    while let Some(row) = rows.try_next().await? {
        count += 1;
        if row.prev_hash != expected_prev {
            return Ok(Verification::broken(
                count,
                row.id,
                "its prev_hash does not match the hash of the row before it (a row was removed or changed)",
            ));
        }
        let computed = hash_row(&row);
        if computed != row.hash {
            return Ok(Verification::broken(
                count,
                row.id,
                "its content does not match its hash (the row was changed)",
            ));
        }
        unsealed += 1;
        if let Some((hash, mac)) = seals.get(&row.id) {
            seen_seals += 1;
            if *hash != computed || !seal::genuine(key, row.id, &computed, mac) {
                return Ok(Verification::broken(
                    count,
                    row.id,
                    "its seal does not match (the log was rewritten by someone without the audit key, or the audit key is not the one that sealed it)",
                ));
            }
            sealed = Some(Checkpoint {
                seq: row.id,
                mac: mac.clone(),
            });
            unsealed = 0;
        }
        expected_prev = row.hash;
    }
    if seen_seals != seals.len() {
        let orphan = seals
            .keys()
            .copied()
            .find(|seq| *seq > sealed.as_ref().map_or(0, |c| c.seq))
            .unwrap_or(0);
        return Ok(Verification::broken(
            count,
            orphan,
            "a seal names an entry that no longer exists (entries were removed)",
        ));
    }
    if let Some(cp) = checkpoint {
        let kept = seals
            .get(&cp.seq)
            .is_some_and(|(_, mac)| mac.eq_ignore_ascii_case(&cp.mac));
        if !kept {
            return Ok(Verification::broken(
                count,
                cp.seq,
                "the checkpoint is not in the log any more (the log was rewritten or its seals removed since)",
            ));
        }
    }
    Ok(Verification {
        rows: count,
        broken: None,
        sealed,
        unsealed,
    })
}
