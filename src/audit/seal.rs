//! Seals over the audit chain: HMAC-SHA-256, with a key that never lives in the database, over
//! the hash of the newest entry. Each entry's hash covers every entry before it, so a valid
//! seal at entry N proves entries 1..=N unchanged even against whoever owns the database: they
//! can recompute the plain SHA-256 chain after an edit, but not the seal.
//!
//! The server seals the head every few seconds and at shutdown; commands that write audit
//! entries seal before they exit. `daygle verify audit` prints the newest seal as a checkpoint
//! (entry number + MAC) for the operator to keep elsewhere; `--since-checkpoint` later proves
//! the log up to that point is the one they saw.

use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::chain::{GENESIS, Row, hash_row};
use crate::error::{Error, Result};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The audit key, cheap to clone.
#[derive(Clone)]
pub struct AuditKey(Arc<Zeroizing<[u8; 32]>>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(********)")
    }
}

impl AuditKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Arc::new(Zeroizing::new(*key)))
    }

    /// HMAC-SHA-256 (hex) of a seal: the entry number and that entry's chain hash.
    pub fn mac(&self, seq: i64, hash: &str) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes a key of any length");
        mac.update(format!("daygle-audit-seal-v1\n{seq}\n{hash}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn checks(&self, seq: i64, hash: &str, mac: &str) -> bool {
        self.mac(seq, hash).as_bytes().ct_eq(mac.as_bytes()).into()
    }
}

/// A seal as an operator writes it down: `<entry>:<mac>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub mac: String,
}

impl Checkpoint {
    pub fn parse(text: &str) -> Option<Self> {
        let (seq, mac) = text.trim().split_once(':')?;
        let seq = seq.trim().parse().ok()?;
        let mac = mac.trim().to_ascii_lowercase();
        (mac.len() == 64 && mac.bytes().all(|b| b.is_ascii_hexdigit())).then_some(Self { seq, mac })
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.mac)
    }
}

/// Seals the newest entry if it is not sealed yet, and returns the newest seal. It first checks
/// the entries since the newest seal (the whole log when there is none yet) and that seal
/// itself, so it never vouches for a log someone rewrote: then it fails instead.
pub async fn seal_head(pool: &PgPool, key: &AuditKey) -> Result<Option<Checkpoint>> {
    let newest = sqlx::query!("SELECT seq, hash, mac FROM audit_seals ORDER BY seq DESC LIMIT 1")
        .fetch_optional(pool)
        .await?
        .map(|r| (r.seq, r.hash, r.mac));
    let from = newest.as_ref().map_or(0, |(seq, _, _)| *seq);
    let rows = sqlx::query_as!(
        Row,
        "SELECT id, at, user_id, username, ip, user_agent, action, target, details, prev_hash, hash
         FROM audit_log WHERE id >= $1 ORDER BY id",
        from,
    )
    .fetch_all(pool)
    .await?;
    let refuse = |why: &str| {
        Err(Error::Internal(format!(
            "the audit log was not sealed: {why}; run `daygle verify audit`"
        )))
    };
    let mut prev: Option<String> = None;
    for row in &rows {
        if let Some((seq, hash, mac)) = &newest
            && row.id == *seq
            && (row.hash != *hash || !key.checks(*seq, hash, mac))
        {
            return refuse("the newest seal does not match its entry");
        }
        let expected_prev = match &prev {
            Some(p) => p.as_str(),
            None if newest.is_none() => GENESIS,
            None => row.prev_hash.as_str(),
        };
        if row.prev_hash != expected_prev || hash_row(row) != row.hash {
            return refuse(&format!("entry {} does not link or hash correctly", row.id));
        }
        prev = Some(row.hash.clone());
    }
    if let Some((seq, _, _)) = &newest
        && rows.first().map(|r| r.id) != Some(*seq)
    {
        return refuse("the entry of the newest seal is missing");
    }
    let Some(head) = rows.last() else {
        return Ok(None);
    };
    let mac = key.mac(head.id, &head.hash);
    sqlx::query!(
        "INSERT INTO audit_seals (seq, hash, mac) VALUES ($1, $2, $3) ON CONFLICT (seq) DO NOTHING",
        head.id,
        head.hash,
        mac,
    )
    .execute(pool)
    .await?;
    Ok(Some(Checkpoint { seq: head.id, mac }))
}

/// Seals the head every `every` until shutdown, then once more. It remembers its newest seal,
/// so seals removed behind its back stop it (logged as an error) rather than being re-made.
pub async fn run_until_stopped(
    pool: PgPool,
    key: AuditKey,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut remembered: Option<i64> = None;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        match seals_still_there(&pool, remembered).await {
            Ok(true) => match seal_head(&pool, &key).await {
                Ok(head) => remembered = head.map(|c| c.seq).or(remembered),
                Err(e) => tracing::error!(error = %e, "audit log not sealed"),
            },
            Ok(false) => tracing::error!(
                "audit seals were removed from the database; not sealing again: run `daygle verify audit` with your last checkpoint"
            ),
            Err(e) => tracing::warn!(error = %e, "could not read the audit seals"),
        }
        if stopping {
            break;
        }
    }
}

async fn seals_still_there(pool: &PgPool, remembered: Option<i64>) -> Result<bool> {
    let Some(seq) = remembered else {
        return Ok(true);
    };
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM audit_seals WHERE seq = $1) AS "exists!""#,
        seq
    )
    .fetch_one(pool)
    .await?)
}

/// The seals as stored, oldest first.
pub(crate) async fn all(pool: &PgPool) -> Result<Vec<(i64, String, String)>> {
    Ok(
        sqlx::query!("SELECT seq, hash, mac FROM audit_seals ORDER BY seq")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.seq, r.hash, r.mac))
            .collect(),
    )
}

/// Whether a stored seal is genuine for the entry hash the chain walk computed.
pub(crate) fn genuine(key: &AuditKey, seq: i64, chain_hash: &str, mac: &str) -> bool {
    key.checks(seq, chain_hash, mac)
}
